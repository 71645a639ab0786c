"""Wall-clock timing on any device, for the benchmarks: the device's queue is drained around each timing."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(device: torch.device, fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds `fn` took on `device`, and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def best_time(device: torch.device, fn: Callable[[], object], rounds: int) -> float:
    """The best of `rounds` timings of `fn`."""
    return min(timed(device, fn)[0] for _ in range(rounds))


def gemm_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matrix products: the device's practical arithmetic peak."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    return 2 * n**3 / best_time(device, lambda: a @ b, repeats)
