"""Which device a run uses, and the speed options that fit it.

The speed options of `train` (precision, channels_last, fused_adam, crop_dead_taps, compile) default to
`auto`: `resolve_speed_options` replaces each `auto` with the entry of `AUTO_OPTIONS` for the
device type and architecture. An explicit value is honoured, unless `check_speed_options` knows
the combination fails on that device.
"""
from __future__ import annotations

import dataclasses

import torch

from src.config import AUTO, ParamsError, TrainParams

SPEED_OPTIONS = ("precision", "channels_last", "fused_adam", "crop_dead_taps", "compile")
DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `auto` means for one option on one device type: a value per architecture ("*": the rest)."""

    values: dict[str, bool | str]
    measured: str  # the measurement that chose it (docs/speed.md, docs/gpu.md)

    def value(self, arch: str) -> bool | str:
        return self.values.get(arch, self.values["*"])


AUTO_OPTIONS: dict[str, dict[str, Choice]] = {
    "cpu": {
        "precision": Choice({"fc": "bf16", "sr": "bf16", "*": "fp32"},
                            "bench/benchmark.py, 2 cores: bf16 steps fc 1.36x, sr 1.56x; conv 1.08x, resnet 1.05x "
                            "(and +3.9 % test MSE in a full run)"),
        "channels_last": Choice({"*": True}, "bench/benchmark.py: conv 1.18x, resnet 1.17x, sr 1.04x, fc 0.99x"),
        "fused_adam": Choice({"*": True}, "bench/benchmark.py: fc 1.22x, conv 1.05x, resnet 1.45x, sr 1.00x"),
        "crop_dead_taps": Choice({"*": True}, "bench/benchmark.py: resnet 2.21x; a no-op for the other models"),
        "compile": Choice({"*": False}, "bench/benchmark.py --compile: slower after 45-50 s of compiling "
                                        "(sr 44 against 37 s per epoch, resnet 117 against 71 s)"),
    },
    "cuda": {
        "precision": Choice({"*": "fp32"}, "bench/device_train.py, H200: bf16 autocast fc 0.85x, sr 0.79x, "
                                           "resnet 0.86x-1.02x; with channels_last it failed to train sr"),
        "channels_last": Choice({"*": True}, "bench/device_train.py, H200: conv 1.22x, resnet 1.09x"),
        "fused_adam": Choice({"*": True}, "not raced on CUDA: one kernel per step instead of ~10 per tensor; "
                                          "every H200 run used it"),
        "crop_dead_taps": Choice({"*": False}, "bench/device_train.py, H200: resnet 1.41x faster without it"),
        "compile": Choice({"*": False}, "not raced on CUDA yet: CUDA graphs remove launch overhead, compiling "
                                        "costs time; bench/device_train.py --variants '' compile=true decides"),
    },
    "mps": {  # no MPS machine has measured these: PyTorch's own defaults, the safe choice
        "precision": Choice({"*": "fp32"}, "not measured on MPS: PyTorch's default"),
        "channels_last": Choice({"*": False}, "not measured on MPS: PyTorch's default"),
        "fused_adam": Choice({"*": False}, "not measured on MPS: PyTorch's default"),
        "crop_dead_taps": Choice({"*": False}, "not measured on MPS: saves arithmetic, adds kernels"),
        "compile": Choice({"*": False}, "not measured on MPS: PyTorch's default"),
    },
}


def mps_available() -> bool:
    """Whether this torch build and machine offer Apple's MPS backend."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA, then MPS, then CPU; an explicit device must exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    if name.startswith("cuda"):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ParamsError(f"params.yaml: invalid train.device={name!r}; this machine has no such CUDA device")
    if name == "mps" and not mps_available():
        raise ParamsError("params.yaml: invalid train.device='mps'; MPS is not available on this machine")
    return torch.device(name)


def resolve_speed_options(train: TrainParams, arch: str, device_type: str) -> TrainParams:
    """`train` with every `auto` speed option replaced by its `AUTO_OPTIONS` entry for this device and model."""
    table = AUTO_OPTIONS[device_type]
    chosen = {name: table[name].value(arch) for name in SPEED_OPTIONS if getattr(train, name) == AUTO}
    return dataclasses.replace(train, **chosen)


def require_resolved(train: TrainParams, *names: str) -> None:
    """Raise ValueError if any of the speed options `names` of `train` is still `auto`.

    Code that applies an option calls this first, so that an unresolved `auto` is never read as a value.
    """
    left = [name for name in names if getattr(train, name) == AUTO]
    if left:
        raise ValueError(f"speed options still auto: {', '.join(left)}; resolve them first "
                         "(src.devices.resolve_speed_options)")


def check_speed_options(device: torch.device, train: TrainParams) -> None:
    """Refuse explicit speed options known to break training on `device`.

    On CUDA (an H200, torch 2.11) bf16 autocast with channels_last failed to train sr, where either
    option alone trained; the cause is not established (docs/gpu.md). `auto` never picks it.
    """
    if device.type == "cuda" and train.precision == "bf16" and train.channels_last is True:
        raise ParamsError("params.yaml: precision bf16 with channels_last true failed to train sr on CUDA "
                          "(cause not established, docs/gpu.md); on CUDA set train.channels_last=false "
                          "or the model's train.precision to fp32 or auto")
