"""Training: seeding, device choice, one epoch, the evaluation pass, and resumable fitting.

Shape follows torchvision's references: `train_one_epoch`, `evaluate_mse`, and `fit` as the
loop. Batches are drawn by index from the uint8 tensors kept in memory (on the device), with a
seeded generator that shuffles anew every epoch.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sr4x.atomic import torch_save
from sr4x.config import TrainParams
from sr4x.conv_cropping import crop_dead_taps
from sr4x.devices import (
    Machine,
    SpeedOptions,
    cores,
    default_threads,
    detect_machine,
    queue_workers,
    resolve_device,
    resolve_speed_options,
)
from sr4x.pairs import Pairs, to_float


def setup_run(train: TrainParams, arch: str) -> tuple[torch.device, Machine, SpeedOptions]:
    """Seed every RNG, fix the thread count, request deterministic kernels.

    Returns the device, what its hardware can do, and the speed options resolved for it and
    `arch`. `train.threads: 0` means cores / running queue workers: all cores for a plain `dvc repro`.
    """
    device = resolve_device(train.device)
    machine = detect_machine(device)
    options = resolve_speed_options(train, arch, machine)
    torch.set_num_threads(train.threads or default_threads(cores(), queue_workers()))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    random.seed(train.seed)
    np.random.seed(train.seed)
    torch.manual_seed(train.seed)
    return device, machine, options


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, lr: float, total_steps: int):
    """Per-batch learning-rate schedule: constant (the tutorial), OneCycle or cosine decay."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"unknown schedule {schedule!r}; allowed: constant, onecycle, cosine")


def prepare_model(model: nn.Module, options: SpeedOptions, lr: float, example: torch.Tensor) -> torch.optim.Optimizer:
    """Apply the speed `options` to `model` (inputs shaped like `example`); return its Adam at `lr`.

    None of them changes the maths beyond float rounding.
    """
    if options.channels_last:  # faster oneDNN convolutions on CPU
        model.to(memory_format=torch.channels_last)
    # ResNet's layers on 1x1 and 2x2 maps compute, and train, only the kernel taps that meet data
    live = crop_dead_taps(model, example) if options.crop_dead_taps else {}
    # fused: one kernel per step instead of ~10 per tensor; same update rule
    return torch.optim.Adam([live.get(p, p) for p in model.parameters()], lr=lr, fused=options.fused_adam)


def compiled(model: nn.Module, options: SpeedOptions, device_type: str) -> nn.Module:
    """`model`, or with `options.compile` a `torch.compile` of it that shares its weights.

    On CUDA the mode is "reduce-overhead": each graph's forward and backward replay as CUDA
    graphs, one launch instead of hundreds per step. Shapes stay static (`dynamic=False`), so the
    last, smaller batch and the test pass get graphs of their own and no step is dropped.
    Checkpoints save `model` itself, whose keys do not change.
    """
    if not options.compile:
        return model
    return torch.compile(model, mode="reduce-overhead" if device_type == "cuda" else None, dynamic=False)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: Pairs,
    batch_size: int,
    generator: torch.Generator,
    desc: str,
    bf16: bool = False,
    augment: bool = False,
) -> float:
    """One pass over `data` in a fresh random order; returns the mean training MSE per pixel.

    With `bf16`, the forward pass runs under bfloat16 autocast; the loss is taken in fp32.
    With `augment`, each batch gets a random flip/90-degree rotation, applied to input and
    target alike (the antialiased downscale commutes with them).
    """
    model.train()
    device = data.low.device
    batches = torch.randperm(len(data), generator=generator).to(device).split(batch_size)
    # Kept on the device and read once per epoch (a read per step would stall a GPU every step),
    # in float32: MPS has no float64. The weighted sum is taken on the host in Python floats.
    losses = torch.empty(len(batches), device=device)
    for i, idx in enumerate(tqdm(batches, desc=desc, leave=False, disable=None)):
        low, high = to_float(data.low[idx]), to_float(data.high[idx])
        if augment:
            low, high = dihedral(low, high, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(low)
        loss = nn.functional.mse_loss(out.float(), high)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses[i] = loss.detach()
    return weighted_sum(losses, [len(idx) for idx in batches]) / len(data)


def weighted_sum(values: torch.Tensor, weights: list[int]) -> float:
    """sum(values[i] * weights[i]) in double precision on the host, from one copy of `values`."""
    return sum(value * weight for value, weight in zip(values.tolist(), weights, strict=True))


def dihedral(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random one of the 8 flips/rotations applied to a batch of inputs and targets."""
    k, flip = torch.randint(0, 4, (2,), generator=generator).tolist()
    pair = [t.rot90(k, (-2, -1)) for t in (low, high)]
    return tuple(t.flip(-1) if flip % 2 else t for t in pair)


@torch.no_grad()
def evaluate_mse(model: nn.Module, data: Pairs, batch_size: int, bf16: bool = False) -> float:
    """Mean squared error per pixel over `data` (outputs clamped to [0, 1]).

    With `bf16`, the forward pass runs under bfloat16 autocast, as in training; the error is
    summed in fp32.
    """
    model.eval()
    batches = list(zip(data.low.split(batch_size), data.high.split(batch_size), strict=True))
    sums = torch.empty(len(batches), device=data.low.device)  # float32, read once, as in training
    for i, (low, high) in enumerate(batches):
        with torch.autocast(low.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(to_float(low))
        sums[i] = nn.functional.mse_loss(out.float().clamp_(0, 1), to_float(high), reduction="sum")
    return weighted_sum(sums, [1] * len(batches)) / data.high.numel()


def _rng_state() -> dict[str, Any]:
    """torch's global RNG states; training draws from no other global RNG (shuffling has its own)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at `path` if it belongs to this exact run (same fingerprint), else None."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, weights_only=True)
    except Exception as err:  # an unreadable checkpoint is discarded, never trusted
        print(f"ignoring unreadable checkpoint {path}: {err}")
        return None
    if ckpt.get("fingerprint") != expected_fingerprint:
        print(f"checkpoint {path} belongs to other params or code; starting fresh")
        return None
    return ckpt


def fit(
    model: nn.Module,
    train: Pairs,
    test: Pairs,
    params: TrainParams,
    options: SpeedOptions,
    checkpoint: Path,
    run_fingerprint: str,
    name: str,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[dict[str, float]]:
    """Train for `params.epochs` with the speed `options`, logging train and test MSE per epoch; resume from
    `checkpoint`.

    After each epoch the model, optimizer, scheduler, epoch, log and every RNG state are saved
    atomically, so a killed run continues from its last completed epoch and ends with the same
    weights as an uninterrupted one. `on_epoch`, if given, then receives the log so far.
    """
    optimizer = prepare_model(model, options, params.lr, to_float(train.low[:1]))
    runner = compiled(model, options, train.low.device.type)  # `model` itself unless options.compile
    steps = params.epochs * -(-len(train) // params.batch_size)
    scheduler = make_scheduler(optimizer, params.schedule, params.lr, steps)
    generator = torch.Generator().manual_seed(params.seed)
    log: list[dict[str, float]] = []
    state = load_checkpoint(checkpoint, run_fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        _set_rng_state(state["rng"])
        log = state["log"]
        print(f"{name}: resuming after epoch {len(log)} from {checkpoint}")
    bf16 = options.bf16
    for epoch in range(len(log) + 1, params.epochs + 1):
        train_mse = train_one_epoch(
            runner, optimizer, scheduler, train, params.batch_size, generator,
            desc=f"{name} epoch {epoch}/{params.epochs}",
            bf16=bf16, augment=params.augment,
        )
        # The per-epoch test pass runs at the training precision and batch size (docs/speed.md);
        # the evaluate stage scores in fp32.
        test_mse = evaluate_mse(runner, test, params.batch_size, bf16)
        log.append({"epoch": epoch, "train_mse": train_mse, "test_mse": test_mse})
        print(f"{name} epoch {epoch}/{params.epochs}: train MSE {train_mse:.5f}, test MSE {test_mse:.5f}", flush=True)
        torch_save(checkpoint, {
            "fingerprint": run_fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "rng": _rng_state(), "log": log,
        })
        if on_epoch:
            on_epoch(log)
    return log
