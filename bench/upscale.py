"""Upscaling photos of 0.25 to 12 megapixels: time, throughput, peak memory, distance to the GEMM peak. Not a test.

    python bench/upscale.py [--weights models/sr.pt] [--device auto] [--sizes 500x500 1000x1000 ...]

Each measurement runs in a fresh process, so its peak resident memory (VmHWM) is its own. Per
input size, on smooth synthetic photos (bicubic upsamples of coarse noise, with grain):
- `python -m sr4x.upscale` as a user runs it (read, tiled network pass, assemble, write the PNG):
  the command's wall time and the process's peak resident memory;
- the tiled network pass alone (the output assembled in memory): megapixels (input) per
  second, and the achieved FLOP/s (the network's FLOPs per input pixel, counted by
  `torch.utils.flop_counter`, times the image's pixels, over the time) as a fraction of the
  device's fp32 GEMM peak measured in this run;
- the whole image through the network at once (sizes up to `--whole-max` megapixels), for the
  tiled/whole ratio and the memory it needs;
- Pillow's bicubic resize of the same image, the baseline a user compares against.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timing import gemm_peak, timed
from torch.utils.flop_counter import FlopCounterMode

from sr4x import paths
from sr4x.devices import detect_machine, resolve_device
from sr4x.upscale import load_upscaler, read_rgb
from sr4x.upscale import main as upscale_command

SIZES = ["500x500", "1000x1000", "2000x2000", "4000x3000"]  # 0.25, 1, 4 and 12 megapixels


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth synthetic photo: bicubic upsample of 1/16-size noise, plus a little grain."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 16 + 1, width // 16 + 1, generator=g)
    image = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    image = image + 0.02 * torch.randn(image.shape, generator=g)
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(pixels))


def peak_rss_gib() -> float:
    """This process's peak resident memory (Linux VmHWM), in GiB; NaN where /proc is missing."""
    status = Path("/proc/self/status")
    if not status.exists():
        return float("nan")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20


def flops_per_pixel(upscaler) -> float:
    """Network FLOPs per input pixel, counted on a 64x64 input (convolutions scale with the pixels)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        upscaler.forward(torch.rand(1, 3, 64, 64, device=upscaler.device))
    return counter.get_total_flops() / 64**2


def child(mode: str, source: Path, weights: Path, device: str) -> dict:
    """One measurement in this (fresh) process; prints a JSON line."""
    result: dict = {}
    if mode == "command":
        with tempfile.TemporaryDirectory() as out:
            seconds, code = timed(torch.device("cpu"), lambda: upscale_command(
                [str(source), "--weights", str(weights), "--out", out, "--device", device]))
            assert code == 0
            result["seconds"] = seconds
    elif mode in ("tiled", "whole"):
        upscaler = load_upscaler(weights, device)
        image = read_rgb(source)
        if mode == "tiled":
            upscaler.upscale(image[:, :64, :64])  # warm-up
            result["seconds"] = timed(upscaler.device, lambda: upscaler.upscale(image))[0]
        else:
            x = image[None].to(upscaler.device).float().div_(255)
            with torch.no_grad():
                upscaler.forward(x[..., :64, :64])
                result["seconds"] = timed(upscaler.device, lambda: upscaler.forward(x))[0]
        result["flops_per_pixel"] = flops_per_pixel(upscaler)
    else:  # Pillow's bicubic
        with Image.open(source) as image:
            image.load()
            result["seconds"] = timed(torch.device("cpu"), lambda: image.resize(
                (4 * image.width, 4 * image.height), Image.BICUBIC))[0]
    result["peak_rss_gib"] = peak_rss_gib()
    return result


def measure(mode: str, source: Path, weights: Path, device: str) -> dict:
    code = [sys.executable, __file__, "--child", mode, "--image", str(source), "--weights", str(weights),
            "--device", device]
    done = subprocess.run(code, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=paths.weights("sr"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", nargs="+", default=SIZES, help="input sizes, WIDTHxHEIGHT")
    parser.add_argument("--whole-max", type=float, default=1.0, help="largest input (megapixels) run whole")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.image, args.weights, args.device)))
        return

    device = resolve_device(args.device)
    peak = gemm_peak(device, torch.float32)
    upscaler = load_upscaler(args.weights, args.device)
    print(f"{detect_machine(device).describe()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"fp32 GEMM peak {peak / 1e9:.0f} GFLOP/s; {upscaler.arch}, tile {upscaler.tile} + margin "
          f"{upscaler.margin}, {'bf16' if upscaler.bf16 else 'fp32'}, channels_last {upscaler.channels_last}, "
          f"{flops_per_pixel(upscaler) / 1e6:.2f} MFLOP per input pixel")
    print("| input | output | command s | command peak RSS GiB | tiled pass s | input MP/s | fraction of GEMM peak "
          "| whole-image pass s | tiled / whole speed | whole-image peak RSS GiB | Pillow bicubic s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = map(int, size.split("x"))
            source = Path(tmp) / f"photo-{size}.png"
            photo(width, height).save(source)
            megapixels = width * height / 1e6
            command = measure("command", source, args.weights, args.device)
            tiled = measure("tiled", source, args.weights, args.device)
            whole = measure("whole", source, args.weights, args.device) if megapixels <= args.whole_max else {}
            bicubic = measure("bicubic", source, args.weights, args.device)
            rate = tiled["flops_per_pixel"] * width * height / tiled["seconds"]
            cells = [f"{width}x{height} ({megapixels:.2f} MP)", f"{4 * width}x{4 * height}",
                     f"{command.get('seconds', float('nan')):.1f}", f"{command.get('peak_rss_gib', float('nan')):.2f}",
                     f"{tiled['seconds']:.1f}", f"{megapixels / tiled['seconds']:.3f}", f"{rate / peak:.0%}",
                     f"{whole['seconds']:.1f}" if "seconds" in whole else "–",
                     f"{whole['seconds'] / tiled['seconds']:.2f}x" if "seconds" in whole else "–",
                     f"{whole['peak_rss_gib']:.2f}" if "seconds" in whole else "–",
                     f"{bicubic['seconds']:.2f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
            for name, result in (("command", command), ("whole", whole)):
                if "error" in result:
                    print(f"  {size} {name}: {result['error']}")


if __name__ == "__main__":
    main()
