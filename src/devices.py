"""The speed options that fit the machine: the `auto` table, joint resolution, and a report.

The speed options of `train` (precision, channels_last, fused_adam, crop_dead_taps, compile)
default to `auto`. `resolve_speed_options` replaces each `auto` with the `AUTO_OPTIONS` entry
for the machine's class: the device type refined by what the hardware computes natively (bf16
on the CPU, the CUDA compute capability). Resolution is joint: `auto` never completes a
combination listed in `REFUSED`, and an explicit refused combination is one error that names
the keys, the values, the model and the device.

    python -m src.devices      # what `auto` picks on this machine, and why
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from src.config import AUTO, TrainParams, load_params
from src.errors import ParamsError
from src.hardware import (
    CPU,
    CPU_BF16,
    CUDA_OLDER,
    CUDA_SM80,
    MPS,
    Machine,
    default_threads,
    detect_machine,
    mps_available,
    queue_workers,
    resolve_device,
)

SPEED_OPTIONS = ("precision", "channels_last", "fused_adam", "crop_dead_taps", "compile")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `auto` means for one option on one machine class: a value per architecture ("*": the rest)."""

    values: dict[str, bool | str]
    measured: str  # the measurement on that machine class that chose it (docs/speed.md, docs/gpu.md)

    def value(self, arch: str) -> bool | str:
        return self.values.get(arch, self.values["*"])


_NOT_ON_MPS = "not measured on MPS: PyTorch's default"
AUTO_OPTIONS: dict[str, dict[str, Choice]] = {
    CPU_BF16: {  # Intel Xeon with AMX (2 cores, torch 2.14.1): docs/speed.md, "Intel AMX"
        "precision": Choice({"fc": "bf16", "sr": "bf16", "*": "fp32"},
                            "bench/benchmark.py, Intel AMX: bf16 steps fc 1.36x, sr 1.56x; conv 1.08x, resnet 1.05x "
                            "(and +3.9 % test MSE in a full run)"),
        "channels_last": Choice({"*": True}, "bench/benchmark.py, Intel AMX: conv 1.18x, resnet 1.17x, sr 1.04x, "
                                             "fc 0.99x"),
        "fused_adam": Choice({"*": True}, "bench/benchmark.py, Intel AMX: fc 1.22x, conv 1.05x, resnet 1.45x, "
                                          "sr 1.00x"),
        "crop_dead_taps": Choice({"*": True}, "bench/benchmark.py, Intel AMX: resnet 2.21x; a no-op elsewhere"),
        "compile": Choice({"*": False}, "bench/benchmark.py --compile, Intel AMX: slower after 45-50 s of "
                                        "compiling (sr 44 against 37 s per epoch, resnet 117 against 71 s)"),
    },
    CPU: {  # AMD EPYC, AVX2 only (2 cores, torch 2.14.1): docs/speed.md, "AMD AVX2"
        "precision": Choice({"*": "fp32"}, "bench/device_train.py, AMD AVX2: bf16 autocast is emulated, "
                                           "fc 24x and sr 13x slower than fp32"),
        "channels_last": Choice({"*": True}, "bench/device_train.py, AMD AVX2: off is conv 0.93x, resnet 0.93x, "
                                             "sr 0.84x; fc 0.94x"),
        "fused_adam": Choice({"*": True}, "bench/device_train.py, AMD AVX2: off is fc 0.84x, resnet 0.93x, sr 0.92x; "
                                          "conv 0.98x"),
        "crop_dead_taps": Choice({"*": True}, "bench/device_train.py, AMD AVX2: off is resnet 0.32x; a no-op "
                                              "elsewhere"),
        "compile": Choice({"*": False}, "not raced on AVX2; slower on the AMX CPU (bench/benchmark.py --compile)"),
    },
    CUDA_SM80: {  # an H200 (sm_90): docs/gpu.md
        "precision": Choice({"*": "fp32"}, "bench/device_train.py, H200: bf16 autocast fc 0.85x, sr 0.79x, "
                                           "resnet 0.86x-1.02x; with channels_last it failed to train sr"),
        "channels_last": Choice({"*": True}, "bench/device_train.py, H200: conv 1.22x, resnet 1.09x"),
        "fused_adam": Choice({"*": True}, "not raced on CUDA: one kernel per step instead of ~10 per tensor; "
                                          "every H200 run used it"),
        "crop_dead_taps": Choice({"*": False}, "bench/device_train.py, H200: resnet 1.41x faster without it"),
        "compile": Choice({"*": False}, "not raced on CUDA yet: CUDA graphs remove launch overhead, compiling "
                                        "costs time; bench/device_train.py --variants '' compile=true decides"),
    },
    CUDA_OLDER: {  # no GPU before sm_80 has measured these: no bf16 or TF32 tensor cores there
        "precision": Choice({"*": "fp32"}, "no native bf16 before sm_80 (refused there)"),
        "channels_last": Choice({"*": False}, "not measured before sm_80; its H200 gain comes from TF32 tensor "
                                              "cores, which older GPUs lack: PyTorch's default"),
        "fused_adam": Choice({"*": True}, "not raced: one kernel per step instead of ~10 per tensor, on any GPU"),
        "crop_dead_taps": Choice({"*": False}, "bench/device_train.py, H200: slower; not measured before sm_80"),
        "compile": Choice({"*": False}, "not measured before sm_80: PyTorch's default"),
    },
    MPS: {  # no MPS machine has measured these: PyTorch's own defaults, the safe choice
        "precision": Choice({"*": "fp32"}, _NOT_ON_MPS),
        "channels_last": Choice({"*": False}, _NOT_ON_MPS),
        "fused_adam": Choice({"*": False}, _NOT_ON_MPS),
        "crop_dead_taps": Choice({"*": False}, "not measured on MPS: saves arithmetic, adds kernels"),
        "compile": Choice({"*": False}, "not measured on MPS: experimental there"),
    },
}


@dataclasses.dataclass(frozen=True)
class Refused:
    """A combination of option values that a machine class does not train, and why."""

    machines: tuple[str, ...]
    values: dict[str, bool | str]
    why: str


REFUSED = (
    Refused((CUDA_SM80, CUDA_OLDER), {"precision": "bf16", "channels_last": True},
            "it failed to train sr on an H200 where either option alone trained (cause not established, docs/gpu.md)"),
    Refused((CUDA_OLDER,), {"precision": "bf16"}, "bf16 needs compute capability 8.0 (sm_80) or newer"),
)
# The value `auto` falls back to when its table entry would complete a refused combination.
SAFE_VALUES: dict[str, bool | str] = {"precision": "fp32", "channels_last": False, "fused_adam": False,
                                      "crop_dead_taps": False, "compile": False}


@dataclasses.dataclass(frozen=True)
class SpeedOptions:
    """The speed options of one training run, resolved: no value is `auto`."""

    precision: str  # fp32 | bf16 (bfloat16 autocast of the forward pass)
    channels_last: bool
    fused_adam: bool
    crop_dead_taps: bool
    compile: bool
    reasons: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)  # option -> why this value

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def values(self) -> dict[str, bool | str]:
        """The options by name, without the reasons (for run info and fingerprints)."""
        return {name: getattr(self, name) for name in SPEED_OPTIONS}


def _show(value: bool | str) -> str:
    return str(value).lower() if isinstance(value, bool) else value


def resolve_speed_options(train: TrainParams, arch: str, machine: Machine) -> SpeedOptions:
    """`train`'s speed options for `arch` on `machine`: each `auto` from `AUTO_OPTIONS`, jointly checked.

    An explicit combination in `REFUSED` for the machine is a ParamsError naming keys, values,
    model and device. An `auto` whose table entry would complete one takes its safe value instead.
    """
    table = AUTO_OPTIONS[machine.machine_class]
    explicit = {name: getattr(train, name) for name in SPEED_OPTIONS if getattr(train, name) != AUTO}
    values = {name: explicit.get(name, table[name].value(arch)) for name in SPEED_OPTIONS}
    reasons = {name: "set in params.yaml" if name in explicit else f"auto: {table[name].measured}"
               for name in SPEED_OPTIONS}
    for rule in REFUSED:
        if machine.machine_class not in rule.machines or any(values[k] != v for k, v in rule.values.items()):
            continue
        chosen_by_auto = [k for k in rule.values if k not in explicit]
        if not chosen_by_auto:
            keys = " with ".join(f"precision={_show(v)}" if k == "precision" else f"{k}={_show(v)}"
                                 for k, v in rule.values.items())
            raise ParamsError(
                f"params.yaml: train {keys} (train.* or models.{arch}.train.*) is refused for {arch} on "
                f"{machine.describe()}: {rule.why}; set one of "
                + ", ".join(f"train.{k}" for k in rule.values) + " to auto or another value")
        for name in chosen_by_auto:
            values[name] = SAFE_VALUES[name]
            fixed = ", ".join(f"{k}={_show(v)}" for k, v in explicit.items() if k in rule.values)
            reasons[name] = f"auto: {_show(values[name])}, because {fixed} is set and the combination is refused here"
    return SpeedOptions(**values, reasons=reasons)


def report(params_file: Path = Path("params.yaml")) -> str:
    """What `auto` picks on this machine and why: the text `python -m src.devices` prints."""
    device = resolve_device("auto")
    machine = detect_machine(device)
    gpus = [detect_machine(torch.device(f"cuda:{i}")) for i in range(torch.cuda.device_count())]
    cuda = ", ".join(gpu.describe() for gpu in gpus) if torch.cuda.is_available() else "not available"
    lines = [
        f"device auto picks: {device}",
        f"CPU: {machine.cpu_model}; torch capability {machine.cpu_capability}; "
        f"native bf16: {machine.cpu_bf16 or 'no (emulated)'}; {machine.cores} cores; torch {torch.__version__}",
        f"CUDA: {cuda}",
        f"MPS: {'available' if mps_available() else 'not available'}",
        f"machine class: {machine.machine_class}",
        f"torch threads a training uses (train.threads: 0): {default_threads(machine.cores, queue_workers())}",
    ]
    params = load_params(params_file)
    for arch, config in params.models.items():
        lines.append(f"\n{arch} (train.device={config.train.device}):")
        try:
            options = resolve_speed_options(config.train, arch, detect_machine(resolve_device(config.train.device)))
        except ParamsError as err:
            lines.append(f"  refused: {err}")
            continue
        lines += [f"  {name}={_show(getattr(options, name))}  ({options.reasons[name]})" for name in SPEED_OPTIONS]
    return "\n".join(lines)


def main() -> int:
    try:
        print(report())
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
