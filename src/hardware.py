"""The hardware behind a torch device: which device `auto` means, and what the machine computes natively.

Torch's own checks answer (CPU dispatch level, native bf16, CUDA compute capability), so that
the speed options (`src/devices.py`) and the run info name the same facts.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

import torch

from src.errors import ParamsError

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
