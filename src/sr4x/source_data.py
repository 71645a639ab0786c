"""Reading a prepared folder source (written by `folder_source.py`; its files are named in `paths.py`).

Training reads the shards memory-mapped, one batch of random aligned crops at a time, so neither the
host nor the device ever holds the whole set.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from sr4x.architectures import SCALE
from sr4x.pairs import Pairs, to_float
from sr4x.paths import SOURCE_INFO, source_shard, source_test_image


def read_info(root: Path) -> dict:
    return json.loads((root / SOURCE_INFO).read_text())


def held_out_images(root: Path) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(source file, low uint8 (3,h,w), high uint8 (3,SCALE*h,SCALE*w)) of each held-out image, one at a time."""
    for index, entry in enumerate(read_info(root)["test"]):
        low, high = (_read_png(source_test_image(root, half, index)) for half in ("lr", "hr"))
        yield entry["file"], low, high


def _read_png(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return pil_to_tensor(image)


def validation_pairs(root: Path, crop: int) -> Pairs:
    """The central `crop` x `crop` region of every held-out image with its aligned input: the per-epoch test set
    (labels: the image's index)."""
    lows, highs = [], []
    for _, low, high in held_out_images(root):
        c = crop // SCALE
        y, x = (low.shape[1] - c) // 2, (low.shape[2] - c) // 2
        lows.append(low[:, y:y + c, x:x + c])
        highs.append(high[:, SCALE * y:SCALE * (y + c), SCALE * x:SCALE * (x + c)])
    return Pairs(torch.stack(lows), torch.stack(highs), torch.arange(len(lows)))


class PatchSet:
    """The training sub-images, memory-mapped; a batch is a random aligned `crop` of each chosen sub-image."""

    def __init__(self, root: Path, crop: int, device: torch.device) -> None:
        shards = range(len(read_info(root)["shards"]))
        self.hr, self.lr = ([np.load(source_shard(root, half, i), mmap_mode="r") for i in shards]
                            for half in ("hr", "lr"))
        self.starts = np.cumsum([0] + [len(a) for a in self.hr])
        self.crop, self.device = crop // SCALE, device  # the crop in low-resolution pixels

    def __len__(self) -> int:
        return int(self.starts[-1])

    def batch(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Float (low, high) crops of the sub-images `idx`, on the device; offsets drawn from `generator`."""
        c, side = self.crop, self.lr[0].shape[-1]
        offsets = torch.randint(0, side - c + 1, (len(idx), 2), generator=generator).tolist()
        lows, highs = [], []
        for i, (y, x) in zip(idx.tolist(), offsets, strict=True):
            shard = int(np.searchsorted(self.starts, i, side="right")) - 1
            j = i - int(self.starts[shard])
            lows.append(self.lr[shard][j, :, y:y + c, x:x + c])
            highs.append(self.hr[shard][j, :, SCALE * y:SCALE * (y + c), SCALE * x:SCALE * (x + c)])
        return tuple(to_float(torch.from_numpy(np.stack(t)).to(self.device)) for t in (lows, highs))
