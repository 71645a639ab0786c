import errno

import numpy as np
import pytest
import torch
from PIL import Image

from src.models import build_model
from src.upscale import main, size_problem

ROOT_PARAMS = "params.yaml"


@pytest.fixture
def weights(tmp_path):
    """Untrained SR and FC weights (an untrained SR model is exactly bicubic)."""
    paths = {}
    for arch in ("sr", "fc"):
        torch.manual_seed(0)
        paths[arch] = tmp_path / f"{arch}.pt"
        torch.save(build_model(arch, **({"width": 64, "depth": 8} if arch == "sr" else {})).state_dict(), paths[arch])
    return paths


def save(path, size=(8, 8), mode="RGB"):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def run(*args):
    return main([*map(str, args), "--params", ROOT_PARAMS])


def test_upscales_files_and_folders(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a.png", (12, 10))
    save(folder / "b.jpg", (8, 8))
    single = save(tmp_path / "c.png", (5, 7))
    assert run("--model", "sr", "--weights", weights["sr"], folder, single, "--out", tmp_path / "out") == 0
    outputs = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()}
    assert outputs == {"a.png": (48, 40), "b.png": (32, 32), "c.png": (20, 28)}


def test_untrained_sr_output_is_bicubic(weights, tmp_path):
    image = save(tmp_path / "x.png", (8, 8))
    run("--model", "sr", "--weights", weights["sr"], image, "--out", tmp_path / "out")
    got = torch.from_numpy(np.array(Image.open(tmp_path / "out/x.png"))).permute(2, 0, 1).float()
    low = torch.from_numpy(np.array(Image.open(image))).permute(2, 0, 1).float()[None] / 255
    ref = torch.nn.functional.interpolate(low, scale_factor=4, mode="bicubic").clamp(0, 1)[0] * 255
    assert (got - ref).abs().max() <= 0.5 + 1e-4


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_non_rgb_inputs_are_converted_and_reported(mode, weights, tmp_path, capsys):
    image = save(tmp_path / "x.png", mode=mode)
    assert run("--model", "fc", "--weights", weights["fc"], image, "--out", tmp_path / "out") == 0
    assert f"converted from {mode} to RGB" in capsys.readouterr().out
    assert Image.open(tmp_path / "out/x.png").size == (32, 32)


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "bad.png").write_bytes(b"not an image") and d / "bad.png", "bad.png: not an image Pillow can read"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "empty: folder has no image files Pillow can open"),
    (lambda d: d / "missing.png", "missing.png: no such file or folder"),
    (lambda d: save(d / "big.png", (16, 16)), "big.png: 16x16 image; fc needs exactly 8x8 images"),
])
def test_bad_inputs_fail_clearly_and_write_nothing(setup, message, weights, tmp_path, capsys):
    good = save(tmp_path / "good.png")
    bad = setup(tmp_path)
    assert run("--model", "fc", "--weights", weights["fc"], good, bad, "--out", tmp_path / "out") == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_weights_and_unknown_model(tmp_path, capsys):
    image = save(tmp_path / "x.png")
    assert run("--model", "sr", "--weights", tmp_path / "none.pt", image, "--out", tmp_path / "out") == 1
    assert "none.pt: no weights; run `dvc repro train@sr`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run("--model", "vgg", image, "--out", tmp_path / "out")
    assert exit_info.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err


def test_wrong_weights_file(weights, tmp_path, capsys):
    image = save(tmp_path / "x.png")
    assert run("--model", "fc", "--weights", weights["sr"], image, "--out", tmp_path / "out") == 1
    assert "not weights for fc" in capsys.readouterr().err


def test_size_rules():
    assert size_problem("sr", 13, 7) is None
    assert size_problem("conv", 12, 8) is None and "multiples of 4" in size_problem("conv", 10, 8)
    assert size_problem("resnet", 8, 8) is None and "exactly 8x8" in size_problem("resnet", 16, 16)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff", ".gif"])
def test_every_still_format_pillow_opens_is_accepted_in_files_and_folders(suffix, weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / f"a{suffix}")
    (folder / "notes.txt").write_text("not an image, skipped by extension")
    assert run("--model", "fc", "--weights", weights["fc"], folder, "--out", tmp_path / "out") == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_animated_image_is_refused(weights, tmp_path, capsys):
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert run("--model", "fc", "--weights", weights["fc"], tmp_path / "anim.gif", "--out", tmp_path / "out") == 1
    assert "anim.gif: an image of 2 frames; only still images" in capsys.readouterr().err


def test_full_disk_is_one_line_naming_the_file(weights, tmp_path, capsys, monkeypatch):
    save(tmp_path / "x.png")

    def no_space(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", no_space)
    assert run("--model", "fc", "--weights", weights["fc"], tmp_path / "x.png", "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write" in err and "x.png: No space left on device" in err
    assert list((tmp_path / "out").iterdir()) == []
