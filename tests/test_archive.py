import codecs
import hashlib
import io
import os
import pickle
import pickletools
import tarfile
from pathlib import Path

import numpy as np
import pytest
from cifar_fixture import CLASSES, PREFIX, batch_bytes, smooth_images, write_archive

from sr4x.archive import ALLOWED_GLOBALS, download, load_batch, read_archive
from sr4x.errors import ArchiveError
from sr4x.provenance import file_md5


def test_reads_both_splits(tiny_archive):
    splits = read_archive(tiny_archive)
    assert splits["train"].images.shape == (200, 32, 32, 3)
    assert splits["test"].images.shape == (100, 32, 32, 3)
    assert splits["train"].images.dtype == np.uint8
    assert splits["test"].labels.dtype == np.int64 and splits["test"].labels.max() <= 9
    assert splits["train"].classes == splits["test"].classes == CLASSES  # from batches.meta, in label order


@pytest.mark.parametrize("meta, message", [
    (pickle.dumps({b"label_names": [b"cat"] * 9}, protocol=3), "expected 'label_names', a list of 10 names"),
    (pickle.dumps([b"cat"] * 10, protocol=3), "expected 'label_names', a list of 10 names"),
    (b"junk", "batches.meta: not a valid CIFAR-10 file"),
])
def test_class_names_come_from_a_valid_batches_meta(meta, message, tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", members={f"{PREFIX}/batches.meta": meta})
    with pytest.raises(ArchiveError, match=message):
        read_archive(archive)


def test_pixel_order_is_chw_rows(tmp_path):
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, :1024] = 200  # the red plane comes first in each official row
    archive = write_archive(tmp_path / "a.tar.gz", members={f"{PREFIX}/test_batch": batch_bytes(data, [3])})
    image = read_archive(archive)["test"].images[0]
    assert (image[..., 0] == 200).all() and (image[..., 1:] == 0).all()


def test_corrupted_archive(tiny_archive):
    blob = bytearray(tiny_archive.read_bytes())
    del blob[len(blob) // 2:]  # truncated mid-stream
    tiny_archive.write_bytes(bytes(blob))
    with pytest.raises(ArchiveError, match="corrupted|not a readable"):
        read_archive(tiny_archive)


# --- download: md5, atomicity, sources -------------------------------------------------------

def test_download_from_path_and_file_url(tiny_archive, tmp_path):
    md5 = file_md5(tiny_archive)
    download(str(tiny_archive), md5, tmp_path / "a" / "x.tar.gz")
    download(tiny_archive.as_uri(), md5, tmp_path / "b" / "x.tar.gz")
    assert file_md5(tmp_path / "a" / "x.tar.gz") == file_md5(tmp_path / "b" / "x.tar.gz") == md5


def test_tampered_archive_names_both_digests_and_leaves_nothing(tiny_archive, tmp_path):
    good = file_md5(tiny_archive)
    blob = bytearray(tiny_archive.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one byte flipped
    tiny_archive.write_bytes(bytes(blob))
    bad = hashlib.md5(bytes(blob)).hexdigest()
    dest = tmp_path / "out" / "x.tar.gz"
    with pytest.raises(ArchiveError, match=f"expected {good}, got {bad}"):
        download(str(tiny_archive), good, dest)
    assert list(dest.parent.iterdir()) == []


def test_interrupted_download_leaves_no_file_and_retry_succeeds(tiny_archive, tmp_path, monkeypatch):
    import sr4x.archive as archive

    real_open = archive._open_source

    class Dying(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 1000:
                raise ConnectionResetError("connection lost")
            return super().read(n if n < 0 else min(n, 512))

    monkeypatch.setattr(archive, "_open_source", lambda url: (Dying(tiny_archive.read_bytes()), None))
    dest = tmp_path / "out" / "x.tar.gz"
    with pytest.raises(ConnectionResetError):
        download(str(tiny_archive), file_md5(tiny_archive), dest)
    assert list(dest.parent.iterdir()) == []
    monkeypatch.setattr(archive, "_open_source", real_open)
    download(str(tiny_archive), file_md5(tiny_archive), dest)
    assert file_md5(dest) == file_md5(tiny_archive)


@pytest.mark.parametrize("url, message", [
    ("/no/such/archive.tar.gz", "no such file"),
    ("ftp://example.org/x.tar.gz", "unsupported scheme 'ftp'"),
])
def test_bad_sources(url, message, tmp_path):
    with pytest.raises(ArchiveError, match=message):
        download(url, "0" * 32, tmp_path / "x")


# --- hostile archives ----------------------------------------------------------------------------

def _archive_with(tmp_path: Path, member: tarfile.TarInfo, blob: bytes = b"") -> Path:
    path = write_archive(tmp_path / "base.tar.gz")
    out = tmp_path / "hostile.tar.gz"
    with tarfile.open(path) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        dst.addfile(member, io.BytesIO(blob) if member.isreg() else None)
    return out


def _member(name, kind=tarfile.REGTYPE, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize("member, message", [
    (_member("../x", size=1), "unexpected archive member '../x'"),
    (_member("/abs", size=1), "unexpected archive member '/abs'"),
    (_member(f"{PREFIX}/extra", size=1), "unexpected archive member"),
    (_member(f"{PREFIX}/readme.html", tarfile.SYMTYPE, link="/etc/passwd"), "not a regular file"),
    (_member(f"{PREFIX}/readme.html", tarfile.LNKTYPE, link=f"{PREFIX}/test_batch"), "not a regular file"),
    (_member(f"{PREFIX}/readme.html", tarfile.CHRTYPE), "not a regular file"),
])
def test_hostile_members_are_refused_before_anything_is_written(member, message, tmp_path, monkeypatch):
    archive = _archive_with(tmp_path, member, b"x" * member.size)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ArchiveError, match=message):
        read_archive(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_oversized_member_is_refused(tmp_path, monkeypatch):
    import sr4x.archive as archive

    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(ArchiveError, match="over the 1000 limit"):
        read_archive(write_archive(tmp_path / "a.tar.gz"))


def test_missing_batch_is_reported(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"{PREFIX}/data_batch_1")
        blob = batch_bytes(smooth_images(2, 0), [0, 1])
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ArchiveError, match="lacks cifar-10-batches-py/data_batch_2"):
        read_archive(path)


# --- hostile and invalid pickles -----------------------------------------------------------------

class _Payload:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


class _EvalPayload:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return eval, (f"open({str(self.sentinel)!r}, 'w')",)


@pytest.mark.parametrize("payload", [_Payload, _EvalPayload])
def test_malicious_pickle_is_refused_and_never_runs(payload, tmp_path):
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps({b"data": payload(sentinel), b"labels": [0]}, protocol=2)
    with pytest.raises(ArchiveError, match="is not allowed in a CIFAR-10 batch"):
        load_batch(blob, "evil_batch")
    assert not sentinel.exists()


def test_allowed_globals_are_exactly_what_a_batch_needs():
    """Walk an official-format pickle without executing it and pin the global set."""
    blob = batch_bytes(smooth_images(3, 0), [1, 2, 3])
    strings, globals_used = [], set()
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            globals_used.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            globals_used.add(tuple(arg.split(" ")))
    assert globals_used <= set(ALLOWED_GLOBALS)
    assert set(ALLOWED_GLOBALS) == {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes under protocol 2
    }


def test_protocol_2_batch_pickled_by_python3_loads():
    data, labels = smooth_images(2, 0), [4, 5]
    blob = pickle.dumps({b"batch_label": b"p2", b"data": data, b"labels": labels}, protocol=2)
    assert b"_codecs" in blob  # bytes keys and the array's raw bytes go through _codecs.encode
    images, got = load_batch(blob, "protocol2_batch")
    assert got.tolist() == labels and np.array_equal(images, data.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1))


def test_other_codecs_functions_stay_refused():
    blob = pickle.dumps(codecs.decode, protocol=2)
    with pytest.raises(ArchiveError, match="global _codecs.decode is not allowed"):
        load_batch(blob, "evil_batch")


def test_numpy1_module_name_loads():
    blob = batch_bytes(smooth_images(2, 0), [4, 5])
    old = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert old != blob
    images, labels = load_batch(old, "numpy1_batch")
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [4, 5]


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 3072), dtype=np.float32), [0, 1], "uint8"),
    (np.zeros((2, 1024), dtype=np.uint8), [0, 1], r"shape \(N, 3072\)"),
    (np.zeros((2, 3072), dtype=np.uint8), [0, 10], "labels must be in 0-9"),
    (np.zeros((2, 3072), dtype=np.uint8), [0], "1 labels for 2 images"),
])
def test_invalid_batches_name_the_file_and_problem(data, labels, message):
    with pytest.raises(ArchiveError, match=f"bad_batch: .*{message}"):
        load_batch(batch_bytes(data, labels), "bad_batch")
