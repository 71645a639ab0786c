"""A folder source at scale: prepare's images/s, MB/s and peak resident memory on generated multi-megapixel
JPEGs, then training throughput on its sub-images. Not a test.

    python bench/prepare_folder.py [--gigabytes 2] [--megapixels 12] [--workdir /tmp/prepare_bench]

The JPEGs (quality 95, textured so that they are as large as camera photos) are written once into
WORKDIR/photos and reused. Prepare runs as the stage runs it (`python -m stages.prepare_folder`, with a
params.yaml of one source) in a fresh process, which reports its own peak resident memory (VmHWM). The
sub-images are sparse (patch 192 every 576 pixels) so that the output stays a few GB; the work per input
byte (hash, decode, crop, downscale, cut) is what a denser stride does, plus the writes. Training: `sr`
steps at the stage's batch, crop and precision (`auto` on this machine), on batches drawn from the
memory-mapped shards, with the share of the time spent drawing them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from timing import timed

from sr4x.config import TrainParams
from sr4x.devices import detect_machine, resolve_speed_options
from sr4x.models import build_model
from sr4x.provenance import ROOT
from sr4x.source_data import PatchSet

SOURCE = {"folder": "photos", "test_fraction": 0.1, "patch": 192, "stride": 576, "flat_threshold": 2.0,
          "skip_bad": False, "crop": 96, "start_from": "scratch", "train": {"batch_size": 16}}


def write_photos(folder: Path, gigabytes: float, megapixels: float) -> list[Path]:
    """JPEGs of about `megapixels` each until they hold `gigabytes`; each differs from every other."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if sum(p.stat().st_size for p in existing) >= gigabytes * 1e9:
        return existing
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(x / 40) * np.cos(y / 55), np.sin((x + y) / 70), np.cos(x / 90 - y / 30)], axis=2)
    base = (base * 70 + 128 + rng.normal(0, 12, (height, width, 3))).astype(np.float32)
    total, files = 0, []
    while total < gigabytes * 1e9:
        i = len(files)
        image = np.roll(base, (i * 37 % height, i * 101 % width), axis=(0, 1)) + (i % 13)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path, quality=95)
        total += path.stat().st_size
        files.append(path)
    return files


# The stage as `python -m stages.prepare_folder bench` runs it, reporting its own peak resident memory at exit:
# VmHWM of its address space (a child's ru_maxrss would include its parent's peak from before the exec).
STAGE_WITH_PEAK = """
import atexit, re, runpy, sys
atexit.register(lambda: print("VmHWM_kB", re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)))
sys.argv = ["prepare_folder", "bench"]
runpy.run_module("stages.prepare_folder", run_name="__main__", alter_sys=True)
"""


def run_prepare(workdir: Path) -> dict:
    """The stage in a fresh process: wall time and its peak resident memory (Linux)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sources"] = {"bench": SOURCE}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(workdir / "data", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the stage modules; sr4x is the installed package
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", STAGE_WITH_PEAK], cwd=workdir, env=env, check=True,
                         capture_output=True, text=True).stdout
    seconds = time.perf_counter() - start
    print(out.strip())
    return {"seconds": seconds, "peak_rss_mb": int(out.split("VmHWM_kB")[-1]) / 1024}


def train_throughput(data: Path, steps: int) -> dict:
    """`sr` training steps on batches drawn from the shards: samples/s, and the share spent drawing batches."""
    device = torch.device("cpu")
    machine = detect_machine(device)
    options = resolve_speed_options(TrainParams(), "sr", machine)
    model = build_model("sr")
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    patches = PatchSet(data, SOURCE["crop"], device)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(patches), generator=generator)
    batch = SOURCE["train"]["batch_size"]
    drawing = computing = 0.0
    for step in range(steps + 2):  # two warm-up steps
        idx = order[(step * batch) % len(patches):][:batch]
        t_draw, (low, high) = timed(device, lambda: patches.batch(idx, generator))  # noqa: B023

        def train_step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.bf16):
                out = model(low)  # noqa: B023
            loss = torch.nn.functional.mse_loss(out.float(), high)  # noqa: B023
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        t_step, _ = timed(device, train_step)
        if step >= 2:
            drawing, computing = drawing + t_draw, computing + t_step
    total = drawing + computing
    return {"samples_per_second": steps * batch / total, "drawing_share": drawing / total,
            "precision": "bf16" if options.bf16 else "fp32", "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prepare_bench"))
    parser.add_argument("--train-steps", type=int, default=30)
    args = parser.parse_args()
    files = write_photos(args.workdir / "photos", args.gigabytes, args.megapixels)
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    with Image.open(files[0]) as first:
        width, height = first.size
    prepared = run_prepare(args.workdir)
    info = json.loads((args.workdir / "data/sources/bench/info.json").read_text())
    output_mb = sum(p.stat().st_size for p in (args.workdir / "data/sources/bench").rglob("*") if p.is_file()) / 1e6
    training = train_throughput(args.workdir / "data/sources/bench", args.train_steps)
    print(json.dumps({
        "input": {"images": len(files), "megabytes": round(size_mb), "width": width, "height": height},
        "prepare": {"seconds": round(prepared["seconds"], 1),
                    "images_per_second": round(len(files) / prepared["seconds"], 2),
                    "megabytes_per_second": round(size_mb / prepared["seconds"], 1),
                    "peak_rss_mb": round(prepared["peak_rss_mb"]), "output_megabytes": round(output_mb),
                    "train_images": info["train_images"], "test_images": info["test_images"],
                    "train_patches": info["train_patches"]},
        "training": {k: round(v, 3) if isinstance(v, float) else v for k, v in training.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
