"""Upscale image files 4x with a trained model.

Usage: python -m src.upscale --model sr photo.png more/ --out upscaled/

Input sizes each model accepts (output is always 4x the input):
  sr      any size (fully convolutional, works at the input resolution)
  conv    height and width multiples of 4 (two 2x2 max-pools)
  fc      exactly 8x8 (a fixed 192-value input)
  resnet  exactly 8x8 (its encoder collapses an 8x8 input to 1x1; other sizes do not give 4x)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor

from src.atomic import OutputError, atomic_path
from src.config import ARCHITECTURES, ParamsError, load_params
from src.pairs import to_float
from src.trained import load_trained

# Every file extension of an image format Pillow can open (PNG, JPEG, WebP, BMP, TIFF, ...).
EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


class UpscaleError(Exception):
    """A problem with the command's inputs, named for the user."""


def size_problem(arch: str, width: int, height: int) -> str | None:
    """Why `arch` cannot upscale a width x height image, or None if it can."""
    if arch in ("fc", "resnet") and (width, height) != (8, 8):
        return f"{arch} needs exactly 8x8 images"
    if arch == "conv" and (width % 4 or height % 4):
        return "conv needs a width and height that are multiples of 4"
    return None


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Expand folders to their image files (by extension); every named file must exist."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
            if not found:
                raise UpscaleError(f"{path}: folder has no image files Pillow can open (.png, .jpg, .webp, ...)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UpscaleError(f"{path}: no such file or folder")
    stems = [f.stem for f in files]
    clash = next((s for s in stems if stems.count(s) > 1), None)
    if clash:
        raise UpscaleError(f"two inputs would both be written as {clash}.png")
    return files


def read_rgb(path: Path) -> tuple[torch.Tensor, str | None]:
    """An image as a float (3, H, W) tensor in [0, 1], and the mode it was converted from, if any."""
    try:
        with Image.open(path) as image:
            image.load()
            frames = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError) as err:
        raise UpscaleError(f"{path}: not an image Pillow can read ({err})") from err
    if frames > 1:
        raise UpscaleError(f"{path}: an image of {frames} frames; only still images can be upscaled")
    converted = None if image.mode == "RGB" else image.mode
    return to_float(pil_to_tensor(image.convert("RGB"))), converted


def load_model(arch: str, weights: Path, params_file: Path) -> torch.nn.Module:
    """Build `arch` with its options from params.yaml and load `weights` (tensors only)."""
    if not weights.is_file():
        raise UpscaleError(f"{weights}: no weights; run `dvc repro train@{arch}` or pass --weights")
    options = load_params(params_file).models[arch].options
    try:
        model = load_trained(arch, options, weights)
    except Exception as err:
        raise UpscaleError(f"{weights}: not weights for {arch} ({err})") from err
    return model.eval()


def upscale_files(arch: str, weights: Path, inputs: list[Path], out_dir: Path, params_file: Path) -> list[Path]:
    """Upscale every input 4x into `out_dir` as PNG; all inputs are checked before anything is written."""
    files = collect_inputs(inputs)
    images = []
    for path in files:
        image, converted = read_rgb(path)
        problem = size_problem(arch, image.shape[2], image.shape[1])
        if problem:
            raise UpscaleError(f"{path}: {image.shape[2]}x{image.shape[1]} image; {problem}")
        if converted:
            print(f"{path}: converted from {converted} to RGB")
        images.append(image)
    model = load_model(arch, weights, params_file)
    written = []
    for path, image in zip(files, images, strict=True):
        with torch.no_grad():
            out = model(image[None]).clamp(0, 1)[0]
        pixels = (out * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        target = out_dir / f"{path.stem}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        written.append(target)
        print(f"{path} -> {target} ({pixels.shape[1]}x{pixels.shape[0]})")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.upscale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="image files (any still format Pillow opens) or folders of them")
    parser.add_argument("--model", required=True, choices=list(ARCHITECTURES), help="trained architecture to use")
    parser.add_argument("--weights", type=Path, help="weights file (default: models/MODEL.pt from `dvc repro`)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the upscaled PNGs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file with the model's options (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        upscale_files(args.model, args.weights or Path(f"models/{args.model}.pt"), args.inputs, args.out, args.params)
    except (UpscaleError, ParamsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OutputError as err:  # a full disk, no permission: the file and the cause, no traceback
        print(f"error: {err.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
