"""Upscale image files 4x with a trained model: any size in bounded memory, on the GPU when there is one.

Usage: python -m sr4x.upscale photo.png more/ --out upscaled/        (or: sr4x-upscale ...)

The weights file describes itself (architecture and options), so it is all the command needs:
`models/sr.pt` by default, `--weights` for another. Images go through the network in tiles with a
margin of the network's receptive field, so the output equals a whole-image pass and memory does
not grow with the image. `--device auto` picks CUDA, then MPS, then the CPU, as training does,
and bf16 only where that device computes it natively. Input sizes each model accepts (the output
is always 4x the input): sr any size; conv multiples of 4; fc and resnet exactly 8x8.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms.functional import pil_to_tensor
from tqdm import tqdm

from sr4x import paths
from sr4x.architectures import ARCHITECTURES, SCALE
from sr4x.atomic import OutputError, atomic_path, stale_temporaries
from sr4x.config import TrainParams
from sr4x.devices import Machine, detect_machine, resolve_device, resolve_speed_options
from sr4x.errors import ProjectError, UpscaleError
from sr4x.inference import self_ensemble
from sr4x.models import load_trained
from sr4x.png import PngStream
from sr4x.tiling import plan_tiles, receptive_radius, upscale_bands

# Every file extension of an image format Pillow can open (PNG, JPEG, WebP, BMP, TIFF, ...).
EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
# Input pixels per tile side, and tiles per forward pass: on a CPU one large tile at a time (the
# overlap costs little, memory stays near 1 GB); on a GPU batches of tiles keep it busy.
DEFAULT_TILE = {"cpu": 512, "cuda": 512, "mps": 512}
TILE_BATCH = {"cpu": 1, "cuda": 8, "mps": 4}


@dataclasses.dataclass(frozen=True)
class Job:
    """One input image, checked, and where its output goes."""

    source: Path
    target: Path
    width: int
    height: int
    converted_from: str | None  # the mode converted to RGB, if not RGB


@dataclasses.dataclass
class Upscaler:
    """A trained model on a device, with the tiling and precision chosen for it."""

    arch: str
    model: nn.Module
    device: torch.device
    bf16: bool
    channels_last: bool
    ensemble: bool
    tile: int
    margin: int
    batch: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch in [0, 1] -> its 4x upscale (8-fold self-ensemble with `ensemble`)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return (self_ensemble(self.model, x) if self.ensemble else self.model(x)).float()

    def bands(self, image: torch.Tensor, progress: tqdm | None = None) -> Iterator[torch.Tensor]:
        """A uint8 (3, H, W) image upscaled 4x, as uint8 bands of rows (3, h, 4W), top to bottom."""
        multiple = ARCHITECTURES[self.arch].input_multiple
        yield from upscale_bands(self.forward, image, self.tile, self.margin, multiple, self.batch, self.device,
                                 None if progress is None else progress.update)

    def upscale(self, image: torch.Tensor) -> torch.Tensor:
        """A uint8 (3, H, W) image upscaled 4x, whole (for images that fit in memory)."""
        return torch.cat(list(self.bands(image)), dim=1)

    def tiles(self, height: int, width: int) -> int:
        """How many tiles a height x width input takes."""
        return sum(map(len, plan_tiles(height, width, self.tile, self.margin, ARCHITECTURES[self.arch].input_multiple)))

    def write_png(self, image: torch.Tensor, file: BinaryIO, progress: tqdm | None = None) -> None:
        """Upscale a uint8 (3, H, W) image 4x into `file` as PNG, one band at a time: memory holds one band."""
        png = PngStream(file, SCALE * image.shape[2], SCALE * image.shape[1])
        for band in self.bands(image, progress):
            png.write_rows(band.permute(1, 2, 0).numpy())
        png.close()


def load_upscaler(weights: Path, device_name: str = "auto", tile: int | None = None, precision: str = "auto",
                  ensemble: bool = False, arch: str | None = None) -> Upscaler:
    """The model of a weights file on the resolved device, with its tiling; `arch`, if given, must match the file."""
    if not weights.is_file():
        raise UpscaleError(f"{weights}: no weights; run `dvc repro train@{arch or 'sr'}` or pass --weights")
    try:
        saved_arch, model = load_trained(weights)
    except Exception as err:
        raise UpscaleError(f"{weights}: not a weights file ({err})") from err
    if arch is not None and arch != saved_arch:
        raise UpscaleError(f"{weights}: not weights for {arch} (they are {saved_arch}'s)")

    try:
        device = resolve_device(device_name)
    except ProjectError as err:
        raise UpscaleError(f"--device {device_name}: no such device on this machine") from err
    choice = device_choices(saved_arch, detect_machine(device), precision, tile)
    spec = ARCHITECTURES[saved_arch]
    margin = receptive_radius(copy.deepcopy(model), spec.input_multiple) if spec.any_size else 0  # overwrites weights
    model = model.to(device).eval()
    if choice.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Upscaler(saved_arch, model, device, choice.bf16, choice.channels_last, ensemble, choice.tile, margin,
                    choice.batch)


@dataclasses.dataclass(frozen=True)
class DeviceChoice:
    """How a model runs on one machine: precision, layout, tile size and tiles per forward pass."""

    bf16: bool
    channels_last: bool
    tile: int
    batch: int


def device_choices(arch: str, machine: Machine, precision: str = "auto", tile: int | None = None) -> DeviceChoice:
    """The inference settings for `arch` on `machine`: precision and layout as training's `auto` resolves them
    there (bf16 only where native), the default tile and batch of the device type unless `tile` is given."""
    options = resolve_speed_options(TrainParams(precision=precision), arch, machine)
    spec = ARCHITECTURES[arch]
    if tile is not None and tile < 1:
        raise UpscaleError(f"--tile {tile}: a tile needs at least 1 pixel a side")
    size = spec.exact_input or max(tile or DEFAULT_TILE[machine.type], spec.input_multiple)  # fixed size: one tile
    return DeviceChoice(options.bf16, options.channels_last, size, TILE_BATCH[machine.type])


def collect_inputs(inputs: list[Path], out_dir: Path, recursive: bool = False) -> list[tuple[Path, Path]]:
    """(source, target) per image: folders expand to their image files (by extension; subfolders too with
    `recursive`, mirrored under `out_dir`); every named file must exist and no two targets may clash."""
    pairs: list[tuple[Path, Path]] = []
    for path in inputs:
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in walk if p.suffix.lower() in EXTENSIONS and p.is_file())
            if not found:
                raise UpscaleError(f"{path}: folder has no image files Pillow can open (.png, .jpg, .webp, ...)")
            pairs += [(p, out_dir / p.relative_to(path).with_suffix(".png")) for p in found]
        elif path.is_file():
            pairs.append((path, out_dir / f"{path.stem}.png"))
        else:
            raise UpscaleError(f"{path}: no such file or folder")
    targets = [target for _, target in pairs]
    clash = next((t for t in targets if targets.count(t) > 1), None)
    if clash:
        raise UpscaleError(f"two inputs would both be written as {clash}")
    return pairs


def check_image(source: Path, target: Path, arch: str) -> Job:
    """Decode `source` once to check it is a still image that `arch` can upscale (its pixels are not kept)."""
    try:
        with Image.open(source) as image:
            image.load()
            frames, mode, (width, height) = getattr(image, "n_frames", 1), image.mode, image.size
    except (UnidentifiedImageError, OSError) as err:
        raise UpscaleError(f"{source}: not an image Pillow can read ({err})") from err
    if frames > 1:
        raise UpscaleError(f"{source}: an image of {frames} frames; only still images can be upscaled")
    problem = ARCHITECTURES[arch].size_problem(width, height)
    if problem:
        raise UpscaleError(f"{source}: {width}x{height} image; {arch} {problem}")
    return Job(source, target, width, height, None if mode == "RGB" else mode)


def read_rgb(path: Path) -> torch.Tensor:
    """An image file as a uint8 (3, H, W) RGB tensor."""
    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


def upscale_files(upscaler: Upscaler, inputs: list[Path], out_dir: Path, recursive: bool = False,
                  overwrite: bool = False) -> list[Path]:
    """Upscale every input 4x into `out_dir` as PNG; every input is checked before anything is written.

    An existing output is kept (and reported) unless `overwrite`. Returns the files written.
    """
    jobs = [check_image(source, target, upscaler.arch) for source, target in collect_inputs(inputs, out_dir, recursive)]
    for job in jobs:  # what a killed earlier run left behind for these outputs
        for stale in stale_temporaries(job.target):
            stale.unlink(missing_ok=True)
            print(f"removed {stale}, left by an interrupted run")
    written = []
    for job in tqdm(jobs, desc="images", unit="image", disable=None):
        if job.target.exists() and not overwrite:
            print(f"{job.source}: {job.target} exists, skipped (--overwrite replaces it)")
            continue
        if job.converted_from:
            print(f"{job.source}: converted from {job.converted_from} to RGB")
        tiles = upscaler.tiles(job.height, job.width)
        with (tqdm(total=tiles, desc=job.source.name, unit="tile", leave=False, disable=None) as progress,
              atomic_path(job.target) as tmp, open(tmp, "wb") as file):
            upscaler.write_png(read_rgb(job.source), file, progress)
        written.append(job.target)
        print(f"{job.source} -> {job.target} ({SCALE * job.width}x{SCALE * job.height})")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sr4x.upscale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="image files (any still format Pillow opens) or folders of them")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the upscaled PNGs")
    parser.add_argument("--weights", type=Path,
                        help="weights file (default: models/MODEL.pt from `dvc repro`, MODEL being sr)")
    parser.add_argument("--model", choices=list(ARCHITECTURES),
                        help="the architecture: picks models/MODEL.pt (with --weights, the file must hold it)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--tile", type=int,
                        help=f"input pixels per tile side (default: {DEFAULT_TILE['cpu']}); smaller uses less memory")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="auto: bf16 only where the device computes it natively, as training decides")
    parser.add_argument("--ensemble", action="store_true",
                        help="average the 8 flips/rotations of the input (slower, a little sharper)")
    parser.add_argument("--recursive", action="store_true", help="read folders' subfolders too, mirrored in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist (default: skip them)")
    args = parser.parse_args(argv)
    weights = args.weights or paths.weights(args.model or "sr")
    try:
        upscaler = load_upscaler(weights, args.device, args.tile, args.precision, args.ensemble, args.model)
        upscale_files(upscaler, args.inputs, args.out, args.recursive, args.overwrite)
    except OutputError as err:  # a full disk, no permission: the file and the cause, no traceback
        print(f"error: {err.strerror}", file=sys.stderr)
        return 1
    except ProjectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
