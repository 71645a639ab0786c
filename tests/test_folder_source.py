"""A folder of images as a data source: reading every kind of file, the split, the sub-images, and bad input."""
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from interruption import killed_in_epoch
from photo_fixture import BAD_KINDS, photo, write_bad_file, write_good_folder
from PIL import Image

from sr4x.config import SourceParams, TrainParams
from sr4x.degradation import downscale
from sr4x.folder_source import SourceError, held_out, positions, prepare_folder
from sr4x.photos import BadImage, read_photo
from sr4x.source_data import PatchSet, held_out_images, read_info, validation_pairs

SOURCE = SourceParams(folder="photos", test_fraction=0.3, patch=32, stride=16, flat_threshold=2.0, skip_bad=False,
                      crop=16, start_from="scratch")


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the stage runs in the repository; the folder is relative to it
    write_good_folder(tmp_path / "photos")
    return tmp_path / "photos"


def prepare(source: SourceParams = SOURCE, out: str = "out") -> dict:
    return prepare_folder("photos", source, Path(out))


def read(array: np.ndarray, fmt: str, **options) -> tuple[np.ndarray, str | None]:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    buffer.seek(0)
    return read_photo(buffer)


def test_every_mode_becomes_8_bit_rgb_and_names_what_it_was():
    rgb = photo(20, 24, 0)
    assert read(rgb, "PNG")[1] is None and np.array_equal(read(rgb, "PNG")[0], rgb)
    grey, mode = read(np.asarray(Image.fromarray(rgb).convert("L")), "PNG")
    assert mode == "L" and grey.shape == (20, 24, 3) and (grey[..., 0] == grey[..., 2]).all()
    rgba = np.concatenate([rgb, np.full((20, 24, 1), 7, np.uint8)], axis=2)
    out, mode = read(rgba, "PNG")
    assert mode == "RGBA" and np.array_equal(out, rgb)  # alpha dropped, colours kept
    out, mode = read_photo(_saved(Image.fromarray(rgb).convert("CMYK"), "JPEG"))
    assert mode == "CMYK" and out.shape == (20, 24, 3)
    out, mode = read_photo(_saved(Image.fromarray(rgb).convert("P"), "PNG"))
    assert mode == "P" and out.shape == (20, 24, 3)


def _saved(image: Image.Image, fmt: str) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    buffer.seek(0)
    return buffer


def test_16_bit_greyscale_is_scaled_to_8_bits_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    out, mode = read_photo(_saved(Image.fromarray(values), "PNG"))
    assert mode.startswith("I") and out[0, :, 0].tolist() == [0, 1, 128, 255]


def test_exif_orientation_is_applied():
    image = Image.fromarray(photo(30, 50, 1))
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=100, exif=exif)
    buffer.seek(0)
    out, _ = read_photo(buffer)
    assert out.shape == (50, 30, 3)
    buffer.seek(0)
    stored = Image.open(buffer).convert("RGB")  # the pixels as stored, unrotated
    assert np.array_equal(out, np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))


def test_prepare_cuts_sub_images_aligned_with_inputs_made_by_the_cifar_degradation(folder):
    info = prepare()
    assert info["files"] == 8 and info["train_images"] + info["test_images"] == 8
    assert info["converted"] == {"L": 1, "P": 1} and not info["skipped"]
    assert info["train_patches"] == sum(e["patches"] for e in info["train"]) == sum(info["shards"])
    rotated = next(e for e in info["train"] + info["test"] if e["file"] == "rotated.jpg")
    assert (rotated["width"], rotated["height"]) == (64, 96)  # the EXIF rotation, applied
    hr = np.load("out/train/hr-00000.npy")
    lr = np.load("out/train/lr-00000.npy")
    assert hr.shape[1:] == (3, 32, 32) and lr.shape[1:] == (3, 8, 8) and len(hr) == len(lr)
    for i in range(len(hr)):  # away from its edges, a sub-image's input is its own downscale
        own = downscale(hr[i].transpose(1, 2, 0)).transpose(2, 0, 1)
        assert np.array_equal(own[:, 1:-1, 1:-1], lr[i, :, 1:-1, 1:-1])
    for file, low, high in held_out_images(Path("out")):
        assert tuple(high.shape[1:]) == tuple(4 * n for n in low.shape[1:])
        assert np.array_equal(downscale(high.permute(1, 2, 0).numpy()), low.permute(1, 2, 0).numpy()), file


def test_sub_images_cover_the_image_to_its_edges():
    assert positions(64, 32, 16) == [0, 16, 32]
    assert positions(72, 32, 16) == [0, 16, 32, 40]
    assert positions(32, 32, 16) == [0]


def test_near_flat_sub_images_are_dropped(folder):
    for value in range(256):  # a flat image whose hash puts it in the training split
        buffer = _saved(Image.fromarray(np.full((64, 64, 3), value, np.uint8)), "PNG")
        if not held_out(hashlib.sha256(buffer.getvalue()).hexdigest(), SOURCE.test_fraction):
            break
    (folder / "flat.png").write_bytes(buffer.getvalue())
    info = prepare()
    assert next(e for e in info["train"] if e["file"] == "flat.png")["patches"] == 0
    assert info["flat_patches_dropped"] == 9  # 3 x 3 sub-images of 32 every 16 in 64 x 64: all flat, none else


def test_split_is_by_content_and_stable_when_images_are_added(folder):
    before = prepare()
    Image.fromarray(photo(64, 64, 40)).save(folder / "new.png")
    after = prepare()
    for split in ("train", "test"):
        old = {e["file"] for e in before[split]}
        assert old <= {e["file"] for e in after[split]}  # nothing moved
    assert all(held_out(e["sha256"], 0.3) for e in after["test"])
    assert not any(held_out(e["sha256"], 0.3) for e in after["train"])


def test_identical_files_are_used_once_and_never_in_both_splits(folder):
    shutil.copyfile(folder / "a.png", folder / "nested" / "copy_of_a.png")
    info = prepare()
    assert info["duplicates"] == [{"file": "nested/copy_of_a.png", "same_as": "a.png"}]
    files = [e["file"] for e in info["train"] + info["test"]]
    assert "a.png" in files and "nested/copy_of_a.png" not in files


def test_the_hash_split_holds_out_about_the_fraction_asked():
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    share = np.mean([held_out(d, 0.2) for d in digests])
    assert 0.18 < share < 0.22


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_input_is_refused_with_its_reason_and_nothing_is_written(folder, kind):
    name, reason = write_bad_file(folder, kind)
    with pytest.raises(SourceError) as err:
        prepare()
    message = str(err.value)
    assert "1 of 9 files cannot be used; nothing was written" in message
    assert f"  {name}: " in message and reason in message, message
    assert "sources.photos.skip_bad" in message
    assert not Path("out").exists() and not list(Path(".").glob(".out.*"))


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_skip_bad_skips_each_bad_input_and_lists_it(folder, kind):
    name, reason = write_bad_file(folder, kind)
    info = prepare(SourceParams(**{**SOURCE.__dict__, "skip_bad": True}))
    assert [s["file"] for s in info["skipped"]] == [name] and reason in info["skipped"][0]["reason"]
    assert info["train_images"] + info["test_images"] == 8


def test_every_bad_file_is_listed_at_once(folder):
    names = [write_bad_file(folder, kind)[0] for kind in BAD_KINDS]
    with pytest.raises(SourceError) as err:
        prepare()
    assert all(f"  {name}: " in str(err.value) for name in names)


def test_an_empty_or_missing_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="photos: no such folder"):
        prepare()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / ".DS_Store").write_text("x")
    with pytest.raises(SourceError, match="the folder has no files"):
        prepare()


def test_a_failed_prepare_leaves_the_previous_output_as_it_was(folder):
    prepare()
    before = read_info(Path("out"))
    write_bad_file(folder, "truncated")
    with pytest.raises(SourceError):
        prepare()
    assert read_info(Path("out")) == before


def test_a_link_inside_the_folder_is_read(folder):
    (folder / "again.png").symlink_to(folder / "a.png")
    info = prepare()
    assert info["duplicates"] == [{"file": "again.png", "same_as": "a.png"}]  # same bytes as a.png


def test_patch_set_draws_aligned_random_crops_reproducibly(folder):
    prepare()
    patches = PatchSet(Path("out"), 16, torch.device("cpu"))
    idx = torch.arange(len(patches))
    low, high = patches.batch(idx, torch.Generator().manual_seed(0))
    assert low.shape == (len(patches), 3, 4, 4) and high.shape == (len(patches), 3, 16, 16)
    again, _ = patches.batch(idx, torch.Generator().manual_seed(0))
    other, _ = patches.batch(idx, torch.Generator().manual_seed(1))
    assert torch.equal(low, again) and not torch.equal(low, other)
    hr = np.load("out/train/hr-00000.npy")
    lr = np.load("out/train/lr-00000.npy")
    as_uint8 = lambda t: (t * 255).round().byte().numpy()  # noqa: E731
    for i in range(len(patches)):  # each crop is the same window of a sub-image and of its input
        assert any(np.array_equal(lr[i, :, y:y + 4, x:x + 4], as_uint8(low[i]))
                   and np.array_equal(hr[i, :, 4 * y:4 * y + 16, 4 * x:4 * x + 16], as_uint8(high[i]))
                   for y in range(5) for x in range(5))
    validation = validation_pairs(Path("out"), 16)
    assert validation.low.shape[1:] == (3, 4, 4) and validation.high.shape[1:] == (3, 16, 16)


def test_read_photo_refuses_what_is_not_a_still_image(tmp_path):
    with pytest.raises(BadImage, match="not an image Pillow can read"):
        read_photo(io.BytesIO(b"hello"))


def test_training_on_sub_images_is_deterministic_and_resumes_to_the_same_weights(folder):
    import sr4x.training as training
    from sr4x.models import build_model
    from sr4x.provenance import fingerprint

    prepare()
    params = TrainParams(epochs=3, batch_size=4, lr=1e-3, schedule="onecycle", seed=0, device="cpu", threads=1,
                         precision="fp32", augment=True)

    def run(checkpoint: str):
        _, _, options = training.setup_run(params, "sr")
        model = build_model("sr", width=8, depth=1)
        patches = PatchSet(Path("out"), 16, torch.device("cpu"))
        log = training.fit(model, patches, validation_pairs(Path("out"), 16), params, options, Path(checkpoint),
                           fingerprint(params), "sr")
        return model.state_dict(), log

    full, log_full = run("full.pt")
    again, _ = run("again.pt")
    with killed_in_epoch(3):
        run("ckpt.pt")
    resumed, log_resumed = run("ckpt.pt")
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(full, again) and same(full, resumed) and log_resumed == log_full
    assert log_full[-1]["train_mse"] < log_full[0]["train_mse"]


def test_prepare_never_imports_torch():
    """Its memory is one photo and one shard, not torch's libraries (docs/own-images.md, bench/prepare_folder.py)."""
    root = Path(__file__).resolve().parents[1]
    check = "import sys, stages.prepare_folder; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("height, width", [(300, 451), (64, 96), (37, 41)])
def test_the_degradation_is_torchvisions_resize(height, width):
    import torchvision.transforms.functional as TF

    image = photo(height, width, 3)
    expected = TF.resize(Image.fromarray(image), [height // 4, width // 4])  # the tutorial's Resize, on any size
    assert np.array_equal(downscale(image), np.asarray(expected))


def test_start_from_begins_training_at_the_given_weights(folder, tmp_path):
    import sr4x.training as training
    from sr4x.models import build_model

    prepare()
    params = TrainParams(epochs=1, batch_size=4, lr=1e-9, seed=0, device="cpu", threads=1, precision="fp32")
    start = {k: v + 0.5 for k, v in build_model("sr", width=8, depth=1).state_dict().items()}  # not the seeded init
    runs = {}
    for label, initial in (("scratch", None), ("start", start)):
        run = training.setup_run(params, "sr")
        files = training.RunFiles(*(tmp_path / f"{label}.{ext}" for ext in ("pt", "json", "csv", "ckpt")))
        training.train_and_save("sr", "sr", {"width": 8, "depth": 1}, params, run,
                                PatchSet(Path("out"), 16, run[0]), validation_pairs(Path("out"), 16), files, [label],
                                0.0, initial)
        runs[label] = torch.load(files.weights, weights_only=True)["state_dict"]
    assert all((runs["start"][k] - start[k]).abs().max() < 1e-6 for k in start)  # moved by lr 1e-9 only
    assert all((runs["scratch"][k] - start[k]).abs().max() > 0.4 for k in start)
