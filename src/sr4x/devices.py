"""The device and what it computes natively, and the speed options `auto` picks for it.

`resolve_device` turns `auto` into CUDA, then MPS, then the CPU; `detect_machine` reads what the
hardware behind it computes natively through torch's own checks (CPU dispatch level, native bf16,
CUDA compute capability). The speed options of `train` (precision, channels_last, fused_adam,
crop_dead_taps, compile) default to `auto`: `resolve_speed_options` replaces each with the
`AUTO_OPTIONS` entry for the machine's class. Resolution is joint: `auto` never completes a
combination listed in `REFUSED`, and an explicit refused combination is one error that names
the keys, the values, the model and the device. The measurements behind each choice are in
docs/speed.md (CPUs) and docs/gpu.md (CUDA).

    python -m sr4x.devices      # what `auto` picks on this machine, and why
"""
from __future__ import annotations

import dataclasses
import os
import platform
import sys
from pathlib import Path

import torch

from sr4x.config import AUTO, TrainParams, load_params
from sr4x.errors import ParamsError

# Machine classes: the device type, refined where an option's gain depends on the hardware.
CPU_BF16, CPU = "cpu, native bf16", "cpu, no native bf16"
CUDA_SM80, CUDA_OLDER = "cuda, sm_80+", "cuda, before sm_80"
MPS = "mps"
MACHINE_CLASSES = (CPU_BF16, CPU, CUDA_SM80, CUDA_OLDER, MPS)


@dataclasses.dataclass(frozen=True)
class Machine:
    """What the hardware behind one torch device can do, as far as the speed options care."""

    device: str  # such as "cpu", "cuda:0", "mps"
    cpu_model: str
    cpu_capability: str  # torch's own dispatch level: AVX2, AVX512, SVE256, DEFAULT, ...
    cpu_bf16: str | None  # the native bf16 instructions: AMX, AVX512_BF16, ARM BF16; None if emulated
    cores: int
    cuda_name: str | None = None
    cuda_capability: tuple[int, int] | None = None

    @property
    def type(self) -> str:
        return torch.device(self.device).type

    @property
    def machine_class(self) -> str:
        """The key of `AUTO_OPTIONS` that applies to this machine."""
        if self.type == "cuda":
            return CUDA_SM80 if self.cuda_capability and self.cuda_capability >= (8, 0) else CUDA_OLDER
        if self.type == "mps":
            return MPS
        return CPU_BF16 if self.cpu_bf16 else CPU

    def describe(self) -> str:
        """One line naming the device, for messages."""
        if self.type == "cuda":
            major, minor = self.cuda_capability or (0, 0)
            return f"{self.device} ({self.cuda_name}, sm_{major}{minor})"
        if self.type == "mps":
            return "mps (Apple GPU)"
        return f"cpu ({self.cpu_model}, {self.cpu_capability}, native bf16: {self.cpu_bf16 or 'no'})"


def cpu_model() -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux, sysctl on macOS, else what Python knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Model")):  # x86 / ARM
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        import subprocess

        result = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return platform.processor() or platform.machine()


def native_cpu_bf16() -> str | None:
    """The CPU's native bf16 instructions, through torch's own checks; None where bf16 would be emulated."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512_BF16"
    # On ARM, oneDNN's bf16 check is the CPU's BF16 feature (Armv8.6+); on x86 it accepts plain AVX-512.
    if platform.machine().lower() in ("arm64", "aarch64") and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "ARM BF16"
    return None


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def queue_workers(proc: Path = Path("/proc")) -> int:
    """How many `dvc exp queue-worker` processes run on this machine (Linux /proc; 0 elsewhere).

    `dvc queue start -j N` starts N such workers, each running one training at a time.
    """
    count = 0
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            count += b"queue-worker" in cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            pass
    return count


def default_threads(cores: int, workers: int) -> int:
    """An equal share of the cores per concurrent job, so that N queued trainings never oversubscribe."""
    return max(1, cores // max(1, workers))


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


def detect_machine(device: torch.device) -> Machine:
    """What the hardware behind `device` can do."""
    cuda_name = cuda_capability = None
    if device.type == "cuda":
        cuda_name = torch.cuda.get_device_name(device)
        cuda_capability = tuple(torch.cuda.get_device_capability(device))
    return Machine(str(device), cpu_model(), torch.backends.cpu.get_cpu_capability(), native_cpu_bf16(), cores(),
                   cuda_name, cuda_capability)


SPEED_OPTIONS = ("precision", "channels_last", "fused_adam", "crop_dead_taps", "compile")


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `auto` means for one option on one machine class: a value per architecture ("*": the rest)."""

    values: dict[str, bool | str]
    why: str  # one line; the measurement is in docs/speed.md or docs/gpu.md

    def value(self, arch: str) -> bool | str:
        return self.values.get(arch, self.values["*"])


AUTO_OPTIONS: dict[str, dict[str, Choice]] = {
    CPU_BF16: {  # Intel Xeon with AMX: docs/speed.md, "Intel Xeon with AMX"
        "precision": Choice({"fc": "bf16", "sr": "bf16", "judge": "bf16", "*": "fp32"},
                            "bf16 steps faster for fc, sr and the judge only"),
        "channels_last": Choice({"*": True}, "faster oneDNN convolutions"),
        "fused_adam": Choice({"*": True}, "one kernel per step instead of ~10 per tensor"),
        "crop_dead_taps": Choice({"*": True}, "ResNet's 1x1 and 2x2 maps skip the taps that meet padding"),
        "compile": Choice({"*": False}, "slower than eager once compiling is counted"),
    },
    CPU: {  # AMD EPYC, AVX2 only: docs/speed.md, "AMD EPYC with AVX2"
        "precision": Choice({"*": "fp32"}, "bf16 is emulated here, many times slower"),
        "channels_last": Choice({"*": True}, "faster oneDNN convolutions"),
        "fused_adam": Choice({"*": True}, "one kernel per step instead of ~10 per tensor"),
        "crop_dead_taps": Choice({"*": True}, "ResNet's 1x1 and 2x2 maps skip the taps that meet padding"),
        "compile": Choice({"*": False}, "not raced on this class; slower on the AMX CPU"),
    },
    CUDA_SM80: {  # an H200 (sm_90): docs/gpu.md
        "precision": Choice({"*": "fp32"}, "bf16 autocast was slower on the H200"),
        "channels_last": Choice({"*": True}, "faster convolutions on the H200"),
        "fused_adam": Choice({"*": True}, "one kernel per step instead of ~10 per tensor"),
        "crop_dead_taps": Choice({"*": False}, "ResNet trained faster without it on the H200"),
        "compile": Choice({"*": False}, "not raced on CUDA yet: PyTorch's default"),
    },
    CUDA_OLDER: {  # no GPU before sm_80 has measured these
        "precision": Choice({"*": "fp32"}, "no native bf16 before sm_80"),
        "channels_last": Choice({"*": False}, "not measured before sm_80: PyTorch's default"),
        "fused_adam": Choice({"*": True}, "one kernel per step instead of ~10 per tensor"),
        "crop_dead_taps": Choice({"*": False}, "slower on the H200; not measured before sm_80"),
        "compile": Choice({"*": False}, "not measured before sm_80: PyTorch's default"),
    },
    MPS: {  # no MPS machine has measured these: PyTorch's own defaults
        "precision": Choice({"*": "fp32"}, "not measured on MPS: PyTorch's default"),
        "channels_last": Choice({"*": False}, "not measured on MPS: PyTorch's default"),
        "fused_adam": Choice({"*": False}, "not measured on MPS: PyTorch's default"),
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
    reasons = {name: "set in params.yaml" if name in explicit else f"auto: {table[name].why}"
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
    """What `auto` picks on this machine and why: the text `python -m sr4x.devices` prints."""
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
        "the measurements behind each auto choice: docs/speed.md (CPUs), docs/gpu.md (CUDA)",
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
