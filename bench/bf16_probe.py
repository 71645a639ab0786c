"""Why sr fails to train under bf16 autocast with channels_last on CUDA: a probe. Not a test.

    python bench/bf16_probe.py [--device cuda] [--steps 300]

Part 1, one step against a float64 CPU reference. `sr` (params.yaml's width and depth; the tail
conv set to small random values so that every gradient is live) takes one forward and backward
pass on a fixed batch. For each variant, precision (fp32, bf16 autocast) x layout (NCHW,
channels_last) x input (plain, rotated by 90 degrees and flipped, as `train.augment` does) x
deterministic kernels (on, off), it prints the relative error ||x - x_ref|| / ||x_ref|| of the
output and of each parameter's gradient, and the worst layer. bf16 should sit near 1e-2 on every
layer; one layer far worse under channels_last only points at a kernel.

Part 2, training. `--steps` steps at a constant lr of 2e-3 (sr's OneCycle peak) in bf16 with
channels_last, with and without `clip_grad_norm_(1.0)`; prints the largest gradient norm, the
step it came at, and the loss at the end. A spike that clipping removes is instability, not a
wrong kernel.

It reads data/prepared when `dvc repro` made it, else random smooth pairs (only relative numbers
mean anything then). On the CPU it gives the reference behaviour of the same code.
"""
from __future__ import annotations

import argparse
import copy
import itertools

import torch
import torch.nn.functional as F
from device_train import synthetic_pairs  # bench/ is this script's folder

from sr4x import paths
from sr4x.config import load_params
from sr4x.devices import resolve_device
from sr4x.models import build_model
from sr4x.pairs import load_pairs, to_float


def batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n prepared test pairs as floats, or synthetic pairs as bench/device_train.py builds them."""
    exists = paths.prepared_split("test").exists()
    pairs = load_pairs(paths.prepared_split("test")).head(n) if exists else synthetic_pairs(n, seed)
    return to_float(pairs.low), to_float(pairs.high)


def sr_model(seed: int = 0) -> torch.nn.Module:
    options = load_params().models["sr"].options
    torch.manual_seed(seed)
    model = build_model("sr", **options)
    torch.nn.init.normal_(model.tail.weight, std=1e-2)  # live gradients everywhere (it starts at zero)
    return model


def one_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> dict[str, torch.Tensor]:
    """Output and every parameter's gradient of one MSE step, as float64 CPU tensors."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    F.mse_loss(out.float(), y).backward()
    result = {"output": out.detach()}
    result |= {name: p.grad for name, p in model.named_parameters()}
    return {k: v.double().cpu() for k, v in result.items()}


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm().clamp_min(1e-30)).item()


def step_errors(device: torch.device, x: torch.Tensor, y: torch.Tensor) -> None:
    base = sr_model()
    reference = one_step(copy.deepcopy(base).double(), x.double(), y.double(), bf16=False)
    rotated = (x.rot90(1, (-2, -1)).flip(-1), y.rot90(1, (-2, -1)).flip(-1))
    reference_rotated = one_step(copy.deepcopy(base).double(), *(t.double() for t in rotated), bf16=False)
    rows = []
    for precision, layout, inputs, deterministic in itertools.product(
            ("fp32", "bf16"), ("nchw", "channels_last"), ("plain", "rotated"), (True, False)):
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        model = copy.deepcopy(base).to(device)
        xi, yi = (x, y) if inputs == "plain" else rotated
        xi, yi = xi.to(device), yi.to(device)
        if layout == "channels_last":
            model, xi = model.to(memory_format=torch.channels_last), xi.contiguous(memory_format=torch.channels_last)
        got = one_step(model, xi, yi, bf16=precision == "bf16")
        want = reference if inputs == "plain" else reference_rotated
        errors = {name: rel_error(got[name], want[name]) for name in want}
        worst = max(errors, key=errors.get)
        rows.append((f"{precision} {layout} {inputs} det={'on' if deterministic else 'off'}", errors, worst))
    torch.use_deterministic_algorithms(False)
    print("relative error against float64 on the CPU, one step")
    print(f"{'variant':<36} {'output':>9} {'head.w':>9} {'tail.w':>9} {'worst layer':>26}")
    for label, errors, worst in rows:
        print(f"{label:<36} {errors['output']:>9.2e} {errors['head.weight']:>9.2e} {errors['tail.weight']:>9.2e} "
              f"{worst:>18} {errors[worst]:.1e}")


def train_steps(device: torch.device, x: torch.Tensor, y: torch.Tensor, steps: int, clip: bool) -> str:
    model = sr_model().to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
    order = torch.Generator().manual_seed(0)
    norms, loss = [], torch.zeros(())
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=order).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = model(x[idx])
        loss = F.mse_loss(out.float(), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0 if clip else float("inf"))
        norms.append(norm.item())
        optimizer.step()
    peak = max(range(steps), key=norms.__getitem__)
    return (f"bf16 channels_last, lr 2e-3, {steps} steps, clipping {'on' if clip else 'off'}: "
            f"largest gradient norm {norms[peak]:.3g} at step {peak + 1}, final loss {loss.item():.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="train.device value: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--steps", type=int, default=300, help="training steps of part 2 (0 = skip)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"{name}, torch {torch.__version__}")
    x, y = batch(128, 0)
    step_errors(device, x, y)
    if args.steps:
        x, y = batch(4096, 1)
        for clip in (False, True):
            print(train_steps(device, x, y, args.steps, clip), flush=True)


if __name__ == "__main__":
    main()
