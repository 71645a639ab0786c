import errno
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from simulated_machines import MACHINES

import sr4x.upscale as upscale
from sr4x.devices import CPU, CPU_BF16, CUDA_OLDER, CUDA_SM80, MPS
from sr4x.inference import self_ensemble
from sr4x.models import build_model, load_trained, read_weights, save_weights
from sr4x.png import PngStream
from sr4x.tiling import plan_tiles, receptive_radius
from sr4x.upscale import device_choices, load_upscaler, main

ROOT = Path(__file__).resolve().parents[1]


def trained_like(arch, **options):
    """A model whose every layer matters (an untrained sr is exactly bicubic)."""
    torch.manual_seed(0)
    model = build_model(arch, **options)
    if arch == "sr":
        torch.nn.init.normal_(model.tail.weight, std=0.02)
    return model


@pytest.fixture
def weights(tmp_path):
    """Self-describing weights of sr (the committed options), a small sr, conv and fc."""
    files = {}
    for name, arch, options in [("sr", "sr", {"width": 64, "depth": 8}), ("small", "sr", {"width": 8, "depth": 2}),
                                ("conv", "conv", {}), ("fc", "fc", {})]:
        files[name] = tmp_path / f"{name}.pt"
        save_weights(files[name], arch, options, trained_like(arch, **options))
    return files


def save(path, size=(8, 8), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def run(*args):
    return main([*map(str, args)])


def whole_image(upscaler, image):
    """The reference: the whole image through the same network, precision and layout at once, in 8 bits."""
    with torch.no_grad():
        out = upscaler.forward(image[None].float() / 255)
    return out[0].clamp(0, 1).mul(255).round().to(torch.uint8)


def tiled(upscaler, image):
    return upscaler.upscale(image)


# -- tiling -------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, 2, 8])
def test_receptive_radius_is_measured_on_the_architecture(depth):
    # head, two convs per block, the body's last conv and the tail: 3x3 each
    assert receptive_radius(build_model("sr", width=8, depth=depth)) == 2 * depth + 3


@pytest.mark.parametrize("height, width, tile", [(37, 23, 100), (37, 23, 37), (37, 23, 8), (40, 40, 16), (5, 9, 3)])
def test_tiles_cover_the_image_once_with_margins_only_where_it_goes_on(height, width, tile):
    bands = plan_tiles(height, width, tile, margin=5)
    tiles = [t for band in bands for t in band]
    assert all(len({(t.core_top, t.core_bottom) for t in band}) == 1 for band in bands)  # a band shares its rows
    assert [band[0].core_top for band in bands] == sorted(band[0].core_top for band in bands)
    covered = torch.zeros(height, width, dtype=torch.int64)
    for t in tiles:
        covered[t.core_top:t.core_bottom, t.core_left:t.core_right] += 1
        assert t.core_bottom - t.core_top <= tile and t.core_right - t.core_left <= tile
        assert t.top == max(0, t.core_top - 5) and t.bottom == min(height, t.core_bottom + 5)
        assert t.left == max(0, t.core_left - 5) and t.right == min(width, t.core_right + 5)
    assert torch.equal(covered, torch.ones_like(covered))
    assert (len(tiles) == 1) == (tile >= max(height, width))


TILINGS = pytest.mark.parametrize("name, size, tile", [
    ("sr", (37, 23), 16),  # odd sizes, many tiles, none a multiple of the tile
    ("sr", (37, 23), 64),  # one tile, larger than the image
    ("sr", (37, 23), 37),  # one tile, exactly the image's longer side
    ("small", (61, 45), 7),  # many small tiles, most of each a margin
    ("conv", (44, 28), 8),  # tiles aligned to conv's multiples of 4
])


def random_image(seed, width, height):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, height, width), dtype=np.uint8))


@TILINGS
def test_tiled_output_equals_the_whole_image_pass(name, size, tile, weights):
    # precision forced: `auto` gives bf16 on a CPU with native bf16 and fp32 elsewhere
    upscaler = load_upscaler(weights[name], "cpu", tile=tile, precision="fp32")
    image = random_image(1, *size)
    assert torch.equal(tiled(upscaler, image), whole_image(upscaler, image))
    _, model = load_trained(weights[name])  # and the plain model, NCHW, as the evaluate stage runs it
    with torch.no_grad():
        plain = model(image[None].float() / 255)[0].clamp(0, 1).mul(255).round()
    assert (plain - tiled(upscaler, image).float()).abs().max() <= 1


@TILINGS
def test_bf16_tiles_stay_within_one_level_of_the_whole_bf16_pass(name, size, tile, weights):
    # forced bf16 runs everywhere (emulated without native bf16); its rounding may depend on the tile's shape
    upscaler = load_upscaler(weights[name], "cpu", tile=tile, precision="bf16")
    assert upscaler.bf16
    image = random_image(1, *size)
    difference = tiled(upscaler, image).int() - whole_image(upscaler, image).int()
    assert difference.abs().max() <= 1 and (difference != 0).float().mean() < 0.01


def test_tiled_self_ensemble_equals_the_whole_image_ensemble(weights):
    upscaler = load_upscaler(weights["small"], "cpu", tile=10, precision="fp32", ensemble=True)
    image = random_image(2, 30, 21)
    assert torch.equal(tiled(upscaler, image), whole_image(upscaler, image))
    _, model = load_trained(weights["small"])
    with torch.no_grad():
        plain = self_ensemble(model, image[None].float() / 255)[0].clamp(0, 1).mul(255).round()
    assert (plain - tiled(upscaler, image).float()).abs().max() <= 1


def test_a_too_small_margin_would_show():
    """The equality test can fail: tiles with half the receptive field differ from the whole-image pass."""
    model = trained_like("sr", width=8, depth=2)
    image = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 30, 30), dtype=np.uint8))
    upscaler = upscale.Upscaler("sr", model.eval(), torch.device("cpu"), False, False, False, 10, 3, 1)
    assert not torch.equal(tiled(upscaler, image), whole_image(upscaler, image))


def test_the_png_is_written_band_by_band_and_reads_back_exactly(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    with open(tmp_path / "x.png", "wb") as f:
        png = PngStream(f, 23, 37)
        for top, bottom in [(0, 1), (1, 17), (17, 37)]:
            png.write_rows(pixels[top:bottom])
        png.close()
    with Image.open(tmp_path / "x.png") as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), pixels)
    with open(tmp_path / "y.png", "wb") as f:
        png = PngStream(f, 23, 37)
        png.write_rows(pixels[:10])
        with pytest.raises(ValueError, match="10 of 37 rows written"):
            png.close()
        with pytest.raises(ValueError, match="expected uint8 rows of shape"):
            png.write_rows(pixels[:, :5])


def test_memory_holds_one_band_of_the_output_not_the_whole(weights, tmp_path, monkeypatch):
    upscaler = load_upscaler(weights["small"], "cpu", tile=8, precision="fp32")
    image = random_image(5, 20, 40)
    heights = []
    real = PngStream.write_rows
    monkeypatch.setattr(PngStream, "write_rows", lambda self, rows: heights.append(len(rows)) or real(self, rows))
    with open(tmp_path / "x.png", "wb") as f:
        upscaler.write_png(image, f)
    assert heights == [32] * 5  # five bands of 8 input rows, each 32 output rows
    with Image.open(tmp_path / "x.png") as out:
        assert torch.equal(torch.from_numpy(np.array(out)).permute(2, 0, 1), upscaler.upscale(image))


# -- the device ------------------------------------------------------------------------------------

def test_device_choices_follow_trainings_auto_on_each_machine():
    choices = {name: device_choices("sr", machine) for name, machine in MACHINES.items()}
    assert {name: c.bf16 for name, c in choices.items()} == {
        CPU: False, CPU_BF16: True, CUDA_SM80: False, CUDA_OLDER: False, MPS: False}
    assert choices[CPU].batch == 1 and choices[CUDA_SM80].batch > 1 and choices[MPS].batch > 1
    assert choices[CPU].channels_last and not choices[MPS].channels_last
    assert device_choices("sr", MACHINES[CPU], tile=100).tile == 100
    assert device_choices("fc", MACHINES[CUDA_SM80], tile=100).tile == 8  # a fixed-size model is one tile
    assert device_choices("sr", MACHINES[CPU], precision="bf16").bf16  # explicit precision is honoured
    with pytest.raises(Exception, match="sm_80"):
        device_choices("sr", MACHINES[CUDA_OLDER], precision="bf16")


def test_auto_resolves_to_simulated_cuda_and_mps(monkeypatch):
    from sr4x import devices
    for kind in ("cuda", "mps"):
        monkeypatch.setattr(devices.torch.cuda, "is_available", lambda kind=kind: kind == "cuda")
        monkeypatch.setattr(devices, "mps_available", lambda kind=kind: kind == "mps")
        assert devices.resolve_device("auto").type == kind


def test_a_device_this_machine_lacks_is_one_line(weights, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image = save(tmp_path / "x.png")
    assert run("--weights", weights["fc"], image, "--out", tmp_path / "out", "--device", "cuda:3") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda:3: no such device" in err
    assert not (tmp_path / "out").exists()


def test_cpu_runs(weights, tmp_path):
    image = save(tmp_path / "x.png", (13, 9))
    assert run("--weights", weights["small"], image, "--out", tmp_path / "out", "--device", "cpu", "--tile", "4") == 0
    assert Image.open(tmp_path / "out/x.png").size == (52, 36)


# -- weights that describe themselves --------------------------------------------------------------

def test_a_weights_file_alone_is_enough(weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    assert not Path("params.yaml").exists()
    save(tmp_path / "x.png", (12, 10))
    assert run("--weights", weights["sr"], "x.png", "--out", "out") == 0
    assert Image.open(tmp_path / "out/x.png").size == (48, 40)


def test_saved_weights_round_trip_and_a_bare_state_dict_is_refused(weights, tmp_path, capsys):
    arch, options, state = read_weights(weights["small"])
    assert (arch, options) == ("sr", {"width": 8, "depth": 2})
    model = trained_like("sr", width=8, depth=2)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)  # tensors without the architecture that rebuilds them
    assert run("--weights", bare, "--model", "sr", save(tmp_path / "x.png"), "--out", tmp_path / "out") == 1
    assert "bare.pt: not a weights file (not a weights file of this project" in capsys.readouterr().err


def test_wrong_weights_file(weights, tmp_path, capsys):
    image = save(tmp_path / "x.png")
    assert run("--model", "fc", "--weights", weights["sr"], image, "--out", tmp_path / "out") == 1
    assert "not weights for fc (they are sr's)" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert run("--weights", tmp_path / "junk.pt", image, "--out", tmp_path / "out") == 1
    assert "junk.pt: not a weights file" in capsys.readouterr().err


def test_missing_weights_and_unknown_model(tmp_path, capsys):
    image = save(tmp_path / "x.png")
    assert run("--model", "sr", "--weights", tmp_path / "none.pt", image, "--out", tmp_path / "out") == 1
    assert "none.pt: no weights; run `dvc repro train@sr`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run("--model", "vgg", image, "--out", tmp_path / "out")
    assert exit_info.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err


# -- the command -----------------------------------------------------------------------------------

def test_upscales_files_and_folders(weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / "a.png", (12, 10))
    save(folder / "b.jpg", (8, 8))
    (folder / "sub").mkdir()
    save(folder / "sub" / "d.png", (4, 4))
    single = save(tmp_path / "c.png", (5, 7))
    assert run("--weights", weights["sr"], folder, single, "--out", tmp_path / "out") == 0
    outputs = {str(p.relative_to(tmp_path / "out")): Image.open(p).size for p in (tmp_path / "out").rglob("*.png")}
    assert outputs == {"a.png": (48, 40), "b.png": (32, 32), "c.png": (20, 28)}  # no subfolders unless asked
    assert run("--weights", weights["sr"], folder, "--out", tmp_path / "deep", "--recursive") == 0
    assert sorted(str(p.relative_to(tmp_path / "deep")) for p in (tmp_path / "deep").rglob("*.png")) == [
        "a.png", "b.png", "sub/d.png"]


def test_an_existing_output_is_skipped_unless_overwrite(weights, tmp_path, capsys):
    image = save(tmp_path / "x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/x.png").write_bytes(b"keep me")
    assert run("--weights", weights["fc"], image, "--out", tmp_path / "out") == 0
    assert (tmp_path / "out/x.png").read_bytes() == b"keep me"
    assert "exists, skipped (--overwrite replaces it)" in capsys.readouterr().out
    assert run("--weights", weights["fc"], image, "--out", tmp_path / "out", "--overwrite") == 0
    assert Image.open(tmp_path / "out/x.png").size == (32, 32)


def test_a_killed_runs_temporary_is_removed_by_the_next_run_over_that_output(weights, tmp_path, capsys):
    image = save(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    # what `kill -9` during a write leaves: atomic_path's temporary, named after the output
    _, stale = tempfile.mkstemp(prefix=".x.png.", suffix=".tmp", dir=out)
    others = [out / ".y.png.abcd1234.tmp", out / "notes.tmp"]  # not this run's outputs: kept
    for other in others:
        other.write_bytes(b"keep me")
    assert run("--weights", weights["fc"], image, "--out", out) == 0
    assert not Path(stale).exists() and f"removed {stale}, left by an interrupted run" in capsys.readouterr().out
    assert all(other.read_bytes() == b"keep me" for other in others)
    assert sorted(p.name for p in out.iterdir()) == [".y.png.abcd1234.tmp", "notes.tmp", "x.png"]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_non_rgb_inputs_are_converted_and_reported(mode, weights, tmp_path, capsys):
    image = save(tmp_path / "x.png", mode=mode)
    assert run("--weights", weights["fc"], image, "--out", tmp_path / "out") == 0
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
    assert run("--weights", weights["fc"], good, bad, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_size_rules(weights, tmp_path, capsys):
    assert run("--weights", weights["conv"], save(tmp_path / "x.png", (10, 8)), "--out", tmp_path / "out") == 1
    assert "10x8 image; conv needs a width and height that are multiples of 4" in capsys.readouterr().err
    assert run("--weights", weights["conv"], save(tmp_path / "y.png", (12, 8)), "--out", tmp_path / "out") == 0


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff", ".gif"])
def test_every_still_format_pillow_opens_is_accepted_in_files_and_folders(suffix, weights, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save(folder / f"a{suffix}")
    (folder / "notes.txt").write_text("not an image, skipped by extension")
    assert run("--weights", weights["fc"], folder, "--out", tmp_path / "out") == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_animated_image_is_refused(weights, tmp_path, capsys):
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert run("--weights", weights["fc"], tmp_path / "anim.gif", "--out", tmp_path / "out") == 1
    assert "anim.gif: an image of 2 frames; only still images" in capsys.readouterr().err


def test_full_disk_is_one_line_naming_the_file(weights, tmp_path, capsys, monkeypatch):
    save(tmp_path / "x.png")

    def no_space(self, rows):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(PngStream, "write_rows", no_space)
    assert run("--weights", weights["fc"], tmp_path / "x.png", "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write" in err and "x.png: No space left on device" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_the_console_script_is_installed_and_runs_the_same_command(weights, tmp_path):
    script = Path(sys.executable).parent / "sr4x-upscale"
    assert script.exists(), "install the project: pip install -e . (requirements.lock does)"
    image = save(tmp_path / "x.png", (6, 5))
    result = subprocess.run([str(script), "--weights", str(weights["sr"]), str(image), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out/x.png").size == (24, 20)
