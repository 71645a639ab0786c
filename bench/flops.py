"""Distance to the limit: each model's training-step FLOPs and FLOP/s against this device's GEMM peak. Not a test.

    python bench/flops.py [--device cpu|cuda|mps] [--steps 30] [--rounds 3] [--compile]

Per architecture, with the speed options `auto` resolves to on this device (as train@ARCH runs):
the FLOPs of one training step at batch 128 (forward + backward, counted by
`torch.utils.flop_counter.FlopCounterMode`; Adam's elementwise update is not counted), the step
time (best of `--rounds` rounds of `--steps` steps on random batches already on the device), the
achieved FLOP/s, and that as a fraction of the device's GEMM peak measured in the same run
(best of several 4096x4096 matrix products in fp32, and in bf16 where a model trains under bf16
autocast, which is then compared with the bf16 peak). With `--compile`, steps run as `train.compile: true` runs them
(on CUDA: CUDA graphs); the FLOPs are counted on the eager model, the same maths. Needs no data.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import torch
from timing import best_time, gemm_peak
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sr4x.config import load_params
from sr4x.devices import detect_machine, resolve_device, resolve_speed_options
from sr4x.models import build_model
from sr4x.training import compiled, prepare_model


def training_step(arch: str, device: torch.device, compile_model: bool) -> tuple[Callable[..., None], nn.Module, str]:
    """One adopted training step of `arch` (forward, loss, backward, Adam) on a fixed random batch.

    Returns the step, which runs the model as train@ARCH does (or compiled), the eager model it
    may be given instead, and the precision.
    """
    cfg = load_params().models[arch]
    speed = resolve_speed_options(cfg.train, arch, detect_machine(device))
    speed = dataclasses.replace(speed, compile=True) if compile_model else speed
    model = build_model(arch, **cfg.options).to(device)
    x = torch.rand(cfg.train.batch_size, 3, 8, 8, device=device)
    y = torch.rand(cfg.train.batch_size, 3, 32, 32, device=device)
    optimizer = prepare_model(model, speed, cfg.train.lr, x[:1])
    runner = compiled(model, speed, device.type)
    bf16 = speed.bf16

    def step(net: nn.Module = runner) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model, speed.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="train.device value: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="time the steps with train.compile: true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    steps = {arch: training_step(arch, device, args.compile) for arch in load_params().models}
    # The bf16 peak only where a model trains in bf16: without native bf16 its emulated GEMM takes minutes.
    peaks = {precision: gemm_peak(device, {"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
             for precision in sorted({precision for _, _, precision in steps.values()})}
    rows = []
    for arch, (step, model, precision) in steps.items():
        step()  # warm-up (and compilation)
        with FlopCounterMode(display=False) as counter:
            step(model)
        flops = counter.get_total_flops()
        seconds = best_time(device, lambda step=step: [step() for _ in range(args.steps)], args.rounds) / args.steps
        rate = flops / seconds
        rows.append((arch, precision, flops / 1e9, seconds * 1e3, rate / 1e9, rate / peaks[precision]))

    name = detect_machine(device).describe()
    print(f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'compiled' if args.compile else 'options as auto resolves them'}; "
          "GEMM peak " + ", ".join(f"{p} {rate / 1e9:.0f} GFLOP/s" for p, rate in peaks.items()))
    print("| model | precision | GFLOP per step | ms per step | GFLOP/s | fraction of the GEMM peak |")
    print("|---|---|---:|---:|---:|---:|")
    for arch, precision, gflop, ms, rate, fraction in rows:
        print(f"| {arch} | {precision} | {gflop:.1f} | {ms:.1f} | {rate:.0f} | {fraction:.0%} |")


if __name__ == "__main__":
    main()
