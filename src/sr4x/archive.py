"""The CIFAR-10 python archive: download with md5 check, safe tar reading, restricted unpickling.

torchvision's CIFAR10 class cannot be used here: it insists on the official per-file md5s (so
an offline copy fails), extracts with `extractall` and unpickles with an unrestricted
`pickle.load`. This module reads only the member names the official layout allows, as regular
files, through `extractfile`, and unpickles them with an allowlist of numpy globals.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import tarfile
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from sr4x.atomic import atomic_path
from sr4x.errors import ArchiveError

PREFIX = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
# Members the official archive holds. The batches and the metadata are read; the readme is allowed, not read.
META = "batches.meta"  # the class names, in label order
ALLOWED_FILES = {f"{PREFIX}/{name}" for name in (*TRAIN_BATCHES, *TEST_BATCHES, META, "readme.html")}
MAX_MEMBER_BYTES = 64 * 2**20  # an official batch is about 31 MB


def _open_source(url: str) -> tuple[BinaryIO, int | None]:
    """Open an http(s) URL, a file:// URL or a plain local path for reading."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - scheme checked above
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    elif scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        path = Path(url).expanduser()
    else:
        raise ArchiveError(f"download.url {url!r}: unsupported scheme {scheme!r}; use https, http, file or a path")
    if not path.is_file():
        raise ArchiveError(f"download.url {url!r}: no such file {path}")
    return open(path, "rb"), path.stat().st_size


def download(url: str, md5: str, dest: str | os.PathLike) -> Path:
    """Fetch `url` to `dest`, verifying its md5 before `dest` appears.

    The bytes go to a temporary file beside `dest`; it is moved into place only if its md5
    equals `md5`. On a mismatch or an interrupted transfer no file is left at `dest`.
    """
    dest = Path(dest)
    source, total = _open_source(url)
    digest = hashlib.md5(usedforsecurity=False)
    with source, atomic_path(dest) as tmp, open(tmp, "wb") as out:
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", disable=None) as bar:
            for chunk in iter(lambda: source.read(2**20), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        out.flush()
        if digest.hexdigest() != md5:
            raise ArchiveError(
                f"md5 mismatch for {url}: expected {md5}, got {digest.hexdigest()}; the file was not kept"
            )
    return dest


try:  # numpy >= 2 moved it to numpy._core; both names appear in pickles in the wild
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

# The only globals a pickled CIFAR-10 batch needs (numpy 1 and numpy 2 module names), and the one
# Python 3 uses to pickle bytes under protocol 2; torch's weights_only unpickler allows it too.
ALLOWED_GLOBALS = {
    ("_codecs", "encode"): codecs.encode,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `ALLOWED_GLOBALS`; any other global is refused unexecuted."""

    def find_class(self, module: str, name: str):  # noqa: D102 - documented on the class
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return ALLOWED_GLOBALS[(module, name)]


def _unpickle_dict(blob: bytes, name: str) -> dict:
    """Unpickle a batch or the metadata safely, with str keys: official files have bytes keys, files re-packed
    by Python 3 str keys (torchvision reads both). Not a dict: an empty one."""
    try:
        loaded = _NumpyOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:
        raise ArchiveError(f"{name}: not a valid CIFAR-10 file: {err}") from err
    return {key.decode("latin1") if isinstance(key, bytes) else key: value
            for key, value in loaded.items()} if isinstance(loaded, dict) else {}


def load_class_names(blob: bytes, name: str) -> list[str]:
    """The ten class names, in label order, from the pickled `batches.meta`."""
    names = _unpickle_dict(blob, name).get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, bytes | str) for n in names):
        raise ArchiveError(f"{name}: expected 'label_names', a list of 10 names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def load_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle one batch safely and validate it; return images (N, 32, 32, 3) uint8 and labels (N,) int64."""
    fields = _unpickle_dict(blob, name)
    if "data" not in fields or "labels" not in fields:
        raise ArchiveError(f"{name}: expected a dict with 'data' and 'labels' (bytes or str keys)")
    data, labels = fields["data"], fields["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise ArchiveError(f"{name}: data must be a uint8 array, got {getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] == 0:
        raise ArchiveError(f"{name}: data must have shape (N, 3072), got {data.shape}")
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise ArchiveError(f"{name}: labels must be a list of integers")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(data):
        raise ArchiveError(f"{name}: {len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ArchiveError(f"{name}: labels must be in 0-9, found {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> HWC images
    return np.ascontiguousarray(images), labels


def _check_members(members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """Refuse any member outside the official layout before anything is read."""
    found: dict[str, tarfile.TarInfo] = {}
    for m in members:
        if m.name.rstrip("/") == PREFIX and m.isdir():
            continue
        if m.name not in ALLOWED_FILES:
            raise ArchiveError(f"unexpected archive member {m.name!r}; refusing the archive")
        if not m.isreg():
            raise ArchiveError(f"archive member {m.name!r} is not a regular file; refusing the archive")
        if m.size > MAX_MEMBER_BYTES:
            raise ArchiveError(f"archive member {m.name!r} is {m.size} bytes, over the {MAX_MEMBER_BYTES} limit")
        if m.name in found:
            raise ArchiveError(f"archive member {m.name!r} appears twice")
        found[m.name] = m
    missing = [n for n in (*TRAIN_BATCHES, *TEST_BATCHES, META) if f"{PREFIX}/{n}" not in found]
    if missing:
        raise ArchiveError(f"archive lacks {PREFIX}/{missing[0]}")
    return found


@dataclass(frozen=True)
class Split:
    """One split of CIFAR-10 as HWC uint8 images and int64 labels, with the class names in label order."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]


def read_archive(path: str | os.PathLike) -> dict[str, Split]:
    """Read the train and test splits from a CIFAR-10 python archive, safely."""
    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ArchiveError(f"{path}: not a readable .tar.gz archive: {err}") from err
    with tar:
        try:
            members = _check_members(tar.getmembers())
            meta = members[f"{PREFIX}/{META}"]
            classes = load_class_names(tar.extractfile(meta).read(), f"{path}:{meta.name}")
            splits = {}
            for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
                parts = []
                for name in names:
                    member = members[f"{PREFIX}/{name}"]
                    parts.append(load_batch(tar.extractfile(member).read(), f"{path}:{member.name}"))
                splits[split] = Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                      classes)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise ArchiveError(f"{path}: corrupted archive: {err}") from err
    return splits
