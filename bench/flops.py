"""Distance to the limit: each model's training-step FLOPs and FLOP/s against this device's GEMM peak. Not a test.

    python bench/flops.py [--device cpu|cuda|mps] [--steps 30] [--rounds 3] [--compile]

Per architecture, with the speed options `auto` resolves to on this device (as train@ARCH runs):
the FLOPs of one training step at batch 128 (forward + backward, counted by
`torch.utils.flop_counter.FlopCounterMode`; Adam's elementwise update is not counted), the step
time (best of `--rounds` rounds of `--steps` steps on random batches already on the device), the
achieved FLOP/s, and that as a fraction of the device's GEMM peak measured in the same run
(best of several 4096x4096 matrix products in fp32 and bf16; a model trained under bf16 autocast
is compared with the bf16 peak). With `--compile`, steps run as `train.compile: true` runs them
(on CUDA: CUDA graphs); the FLOPs are counted on the eager model, the same maths. Needs no data.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.device_train import synchronize  # noqa: E402
from src.config import load_params  # noqa: E402
from src.devices import resolve_device, resolve_speed_options  # noqa: E402
from src.models import build_model  # noqa: E402
from src.training import compiled, prepare_model  # noqa: E402


def best_time(device: torch.device, run: Callable[[], None], rounds: int) -> float:
    """Best wall time of `run` over `rounds` rounds, the device's queue drained around each."""
    best = float("inf")
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matrix products."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    return 2 * n**3 / best_time(device, lambda: a @ b, repeats)


def training_step(arch: str, device: torch.device, compile_model: bool) -> tuple[Callable[..., None], nn.Module, str]:
    """One adopted training step of `arch` (forward, loss, backward, Adam) on a fixed random batch.

    Returns the step, which runs the model as train@ARCH does (or compiled), the eager model it
    may be given instead, and the precision.
    """
    cfg = load_params().models[arch]
    train = resolve_speed_options(cfg.train, arch, device.type)
    train = dataclasses.replace(train, compile=True) if compile_model else train
    model = build_model(arch, **cfg.options).to(device)
    x = torch.rand(train.batch_size, 3, 8, 8, device=device)
    y = torch.rand(train.batch_size, 3, 32, 32, device=device)
    optimizer = prepare_model(model, train, x[:1])
    runner = compiled(model, train, device.type)
    bf16 = train.precision == "bf16"

    def step(net: nn.Module = runner) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model, train.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="train.device value: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="time the steps with train.compile: true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    peaks = {"fp32": gemm_peak(device, torch.float32), "bf16": gemm_peak(device, torch.bfloat16)}
    rows = []
    for arch in load_params().models:
        step, model, precision = training_step(arch, device, args.compile)
        step()  # warm-up (and compilation)
        with FlopCounterMode(display=False) as counter:
            step(model)
        flops = counter.get_total_flops()
        seconds = best_time(device, lambda step=step: [step() for _ in range(args.steps)], args.rounds) / args.steps
        rate = flops / seconds
        rows.append((arch, precision, flops / 1e9, seconds * 1e3, rate / 1e9, rate / peaks[precision]))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'compiled' if args.compile else 'options as auto resolves them'}; "
          f"GEMM peak fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print("| model | precision | GFLOP per step | ms per step | GFLOP/s | fraction of the GEMM peak |")
    print("|---|---|---:|---:|---:|---:|")
    for arch, precision, gflop, ms, rate, fraction in rows:
        print(f"| {arch} | {precision} | {gflop:.1f} | {ms:.1f} | {rate:.0f} | {fraction:.0%} |")


if __name__ == "__main__":
    main()
