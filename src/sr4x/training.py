"""Training: seeding, device choice, one epoch, the evaluation pass, and resumable fitting.

Shape follows torchvision's references: `train_one_epoch`, `evaluate_mse`, and `fit` as the
loop; `train_and_save` is a whole run with its files. Batches are drawn by index with a seeded
generator that shuffles anew every epoch, from a `TrainingSet`: CIFAR-10's pairs (uint8 tensors
kept on the device) or a folder source's sub-images (memory-mapped, random crops).
"""
from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from sr4x.atomic import torch_save, write_json, write_text
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
from sr4x.models import build_model, count_parameters, save_weights
from sr4x.pairs import Pairs, to_float
from sr4x.provenance import environment, fingerprint


class TrainingSet(Protocol):
    """What training draws batches from."""

    device: torch.device

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Float (low, high) training examples `idx` on `device`."""


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
    data: TrainingSet,
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
    device = data.device
    batches = torch.randperm(len(data), generator=generator).to(device).split(batch_size)
    # Kept on the device and read once per epoch (a read per step would stall a GPU every step),
    # in float32: MPS has no float64. The weighted sum is taken on the host in Python floats.
    losses = torch.empty(len(batches), device=device)
    for i, idx in enumerate(tqdm(batches, desc=desc, leave=False, disable=None)):
        low, high = data.batch(idx, generator)
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


def rng_state() -> dict[str, Any]:
    """torch's global RNG states; training draws from no other global RNG (shuffling has its own)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
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


def resumable_epochs(
    epochs: int,
    run_epoch: Callable[[int], dict[str, float]],
    stateful: Mapping[str, Any],
    generator: torch.Generator,
    checkpoint: Path,
    run_fingerprint: str,
    name: str,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[dict[str, float]]:
    """Run epochs 1..`epochs` with `run_epoch(epoch)` -> its log row, resuming from `checkpoint`; return the log.

    After each epoch the state dicts of `stateful` (models, optimizers, schedulers, ...), the shuffling
    `generator`, every global RNG state and the log are saved atomically, so a killed run continues from its
    last completed epoch and ends with the same weights as an uninterrupted one. `on_epoch`, if given, then
    receives the log so far.
    """
    reserved = {"fingerprint", "generator", "rng", "log"} & set(stateful)
    if reserved:
        raise ValueError(f"checkpoint keys {sorted(reserved)} are the loop's own; name the state otherwise")
    log: list[dict[str, float]] = []
    state = load_checkpoint(checkpoint, run_fingerprint)
    if state is not None:
        for key, obj in stateful.items():
            obj.load_state_dict(state[key])
        generator.set_state(state["generator"])
        set_rng_state(state["rng"])
        log = state["log"]
        print(f"{name}: resuming after epoch {len(log)} from {checkpoint}")
    for epoch in range(len(log) + 1, epochs + 1):
        log.append(run_epoch(epoch))
        torch_save(checkpoint, {
            "fingerprint": run_fingerprint, **{key: obj.state_dict() for key, obj in stateful.items()},
            "generator": generator.get_state(), "rng": rng_state(), "log": log,
        })
        if on_epoch:
            on_epoch(log)
    return log


def fit(
    model: nn.Module,
    train: TrainingSet,
    test: Pairs,
    params: TrainParams,
    options: SpeedOptions,
    checkpoint: Path,
    run_fingerprint: str,
    name: str,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[dict[str, float]]:
    """Train for `params.epochs` with the speed `options`, logging train and test MSE per epoch; resumable
    from `checkpoint` (`resumable_epochs`)."""
    optimizer = prepare_model(model, options, params.lr, to_float(test.low[:1]))  # test inputs: the training size
    runner = compiled(model, options, train.device.type)  # `model` itself unless options.compile
    steps = params.epochs * -(-len(train) // params.batch_size)
    scheduler = make_scheduler(optimizer, params.schedule, params.lr, steps)
    generator = torch.Generator().manual_seed(params.seed)
    bf16 = options.bf16

    def run_epoch(epoch: int) -> dict[str, float]:
        train_mse = train_one_epoch(
            runner, optimizer, scheduler, train, params.batch_size, generator,
            desc=f"{name} epoch {epoch}/{params.epochs}",
            bf16=bf16, augment=params.augment,
        )
        # The per-epoch test pass runs at the training precision and batch size (docs/speed.md);
        # the evaluate stage scores in fp32.
        test_mse = evaluate_mse(runner, test, params.batch_size, bf16)
        print(f"{name} epoch {epoch}/{params.epochs}: train MSE {train_mse:.5f}, test MSE {test_mse:.5f}", flush=True)
        return {"epoch": epoch, "train_mse": train_mse, "test_mse": test_mse}

    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    return resumable_epochs(params.epochs, run_epoch, stateful, generator, checkpoint, run_fingerprint, name, on_epoch)


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """Where one training run writes: weights, run info (git), per-epoch log, resumable checkpoint."""

    weights: Path
    run_info: Path
    curves: Path
    checkpoint: Path


def train_and_save(name: str, arch: str, model_options: Mapping[str, int], params: TrainParams,
                   run: tuple[torch.device, Machine, SpeedOptions], train: TrainingSet, test: Pairs, files: RunFiles,
                   identity: list[Any], started: float,
                   start: Mapping[str, torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Train `arch` on `train` (resuming from `files.checkpoint`), and write its weights, run info and log.

    `run` is what `setup_run` returned; `identity` names the data and code (the checkpoint is reused only by a
    run with the same params, options, data, code and torch); `started` is the stage's start time; `start`, if
    given, is the state dict training starts from (fine-tuning) instead of the seeded initialisation. The log
    and the run info are rewritten after every epoch, so `dvc plots show` follows a running training.
    """
    device, machine, options = run
    model = build_model(arch, **model_options)
    if start is not None:
        model.load_state_dict(start)
    model = model.to(device)
    run_id = fingerprint(arch, model_options, params, options.values(), torch.__version__, torch.get_num_threads(),
                         str(device), *identity)
    info = {
        "arch": arch, "parameters": count_parameters(model), "train_images": len(train),
        "machine": dataclasses.asdict(machine), "threads": torch.get_num_threads(),
        "options": options.values(),  # the speed options this run used, after `auto` was resolved
        "environment": environment(),
    }
    trained = []  # the epochs this process trained (a resumed run skips the earlier ones)

    def write_progress(log: list[dict[str, float]]) -> None:
        trained.append(len(log))
        write_text(files.curves, pd.DataFrame(log).to_csv(index=False))
        write_json(files.run_info, {**info, "epochs": len(log)})

    fit_start = time.perf_counter()
    log = fit(model, train, test, params, options, files.checkpoint, run_id, name, write_progress)
    fit_seconds = time.perf_counter() - fit_start
    write_text(files.curves, pd.DataFrame(log).to_csv(index=False))  # also when no epoch was left to train
    save_weights(files.weights, arch, model_options, model)
    write_json(files.run_info, {
        **info, "epochs": len(log), "stage_wall_seconds": round(time.perf_counter() - started, 1),
        # over the epochs this process ran, their per-epoch test pass and checkpoint included
        "train_images_per_second": round(len(train) * len(trained) / fit_seconds, 1) if trained else None,
    })
    files.checkpoint.unlink(missing_ok=True)  # only an interrupted run leaves one to resume from
    return log
