"""Low/high-resolution pairs: images and their downscales by SCALE (CIFAR-10: 32x32 and 8x8), as stored tensors.

Both halves are kept as uint8. That is lossless: the tutorial's input is PIL's 8-bit output of
`Resize(8)` and its target the 8-bit original, each later divided by 255 by `ToTensor`. uint8
takes a quarter of float32's space (184 MB for all 60k pairs) and is converted per batch.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from sr4x import paths
from sr4x.architectures import SCALE
from sr4x.atomic import torch_save
from sr4x.config import check_limit
from sr4x.degradation import downscale


@dataclass(frozen=True)
class Pairs:
    """Paired images of one split: low (N,3,h,w), high (N,3,SCALE*h,SCALE*w) uint8; labels (N,) int64."""

    low: torch.Tensor
    high: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Pairs:
        """The first `n` pairs (the splits are already shuffled, so this is a fair subset)."""
        return Pairs(self.low[:n], self.high[:n], self.labels[:n])

    @property
    def device(self) -> torch.device:
        return self.low.device

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The float (low, high) images `idx` (training's batches; the generator is for sets that crop at random)."""
        return to_float(self.low[idx]), to_float(self.high[idx])

    def to(self, device: torch.device) -> Pairs:
        """The same pairs on `device` (kept as uint8: the whole split fits on any GPU)."""
        return Pairs(self.low.to(device), self.high.to(device), self.labels.to(device))


def make_pairs(images: np.ndarray, labels: np.ndarray) -> Pairs:
    """Build the pairs of one split from HWC uint8 images of shape (N, H, W, 3), H and W multiples of SCALE."""
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3
            or images.shape[1] % SCALE or images.shape[2] % SCALE):
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3) with H and W multiples of {SCALE}, "
                         f"got {images.dtype} {images.shape}")
    low = np.stack([downscale(im) for im in images])
    to_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    return Pairs(to_chw(low), to_chw(images), torch.from_numpy(labels.astype(np.int64)))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1], as `ToTensor` gives."""
    return images.float().div_(255)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8, rounded, as an 8-bit image file stores them."""
    return images.float().clamp(0, 1).mul(255).round().to(torch.uint8)


def save_pairs(path: str | os.PathLike, pairs: Pairs) -> None:
    """Atomically write pairs as a dict of tensors."""
    torch_save(path, {"low": pairs.low, "high": pairs.high, "labels": pairs.labels})


def load_pairs(path: str | os.PathLike) -> Pairs:
    """Load pairs written by `save_pairs`, with `weights_only=True` (no arbitrary objects)."""
    d = torch.load(path, weights_only=True)
    pairs = Pairs(d["low"], d["high"], d["labels"])
    n, (h, w) = len(pairs.labels), pairs.low.shape[-2:]
    expected = {"low": (n, 3, h, w), "high": (n, 3, SCALE * h, SCALE * w)}
    for name, shape in expected.items():
        t = getattr(pairs, name)
        if t.dtype != torch.uint8 or tuple(t.shape) != shape:
            raise ValueError(f"{path}: {name} must be uint8 {shape}, got {t.dtype} {tuple(t.shape)}")
    return pairs


def load_split(split: str, limit: int) -> Pairs:
    """The first `limit` pairs of a prepared split (0: all), checked against its size before loading.

    `limit` is `data.train_images` or `data.test_images`; more than the split holds is a ParamsError.
    """
    size = json.loads(paths.PREPARED_INFO.read_text())[split]
    return load_pairs(paths.prepared_split(split)).head(check_limit(f"data.{split}_images", limit, size))


def class_names() -> list[str]:
    """The names of the prepared data's classes, in label order (from the archive's metadata)."""
    return json.loads(paths.PREPARED_INFO.read_text())["classes"]
