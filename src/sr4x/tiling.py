"""Upscaling an image of any size in tiles, with the same result as one pass over the whole image.

Each tile is cut from the image with a margin of at least the network's receptive-field radius
on every side where the image goes on, run through the network, and cropped back to its core,
so every output pixel sees exactly the input it sees in a whole-image pass (the convolutions'
zero padding happens only where the image itself ends). Memory is bounded by the tile size,
not the image size. Tiles of the same shape go through the network in batches.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from sr4x.architectures import SCALE
from sr4x.pairs import to_uint8


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile: the input region the network sees, and the core of it whose output is kept."""

    top: int  # input region, in input pixels
    left: int
    bottom: int
    right: int
    core_top: int  # the kept core, in input pixels
    core_left: int
    core_bottom: int
    core_right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


def _spans(length: int, tile: int, multiple: int) -> list[tuple[int, int]]:
    """`length` cut into nearly equal pieces of at most `tile`, each boundary a multiple of `multiple`."""
    count = math.ceil(length / tile)
    cuts = [round(i * length / count / multiple) * multiple for i in range(count)] + [length]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def plan_tiles(height: int, width: int, tile: int, margin: int, multiple: int = 1) -> list[list[Tile]]:
    """The tiles covering a height x width input, in bands of rows (top to bottom, each left to right):
    cores of at most `tile` pixels a side, each seen with `margin` more pixels on every side that has
    image (margin and cores aligned to `multiple`)."""
    margin = -(-margin // multiple) * multiple
    return [[Tile(max(0, top - margin), max(0, left - margin), min(height, bottom + margin),
                  min(width, right + margin), top, left, bottom, right)
             for left, right in _spans(width, tile, multiple)]
            for top, bottom in _spans(height, tile, multiple)]


def receptive_radius(model: nn.Module, multiple: int = 1) -> int:
    """How far (in input pixels) an output pixel's inputs reach, measured on a fresh copy of `model`'s
    architecture (pass an untrained instance; its weights are overwritten).

    Positive weights on a positive input keep every ReLU open, so the gradient of the outputs of one
    central input pixel is non-zero exactly on their receptive field.
    """
    model = model.double().eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # about 1 / fan-in each, so that no sigmoid saturates to a zero gradient
            p.copy_(torch.rand(p.shape, generator=generator, dtype=torch.float64) / p[0].numel())
    size = 32
    while True:
        size = -(-size // multiple) * multiple
        x = (torch.rand(1, 3, size, size, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
        centre = size // 2
        model(x)[0, :, SCALE * centre:SCALE * (centre + 1), SCALE * centre:SCALE * (centre + 1)].sum().backward()
        rows, cols = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero(as_tuple=True)
        reach = max(centre - rows.min().item(), rows.max().item() - centre,
                    centre - cols.min().item(), cols.max().item() - centre)
        if reach < centre - 1:  # the field ends inside the input
            return int(reach)
        size *= 2


def upscale_bands(
    run: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: int,
    margin: int,
    multiple: int = 1,
    batch: int = 1,
    device: torch.device | None = None,
    on_tile: Callable[[], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Upscale a uint8 (3, H, W) image with `run` (float batch in [0, 1] -> 4x float batch), tile by tile.

    Yields the output one band of tile rows at a time, top to bottom, as uint8 (3, 4h, 4W) on the CPU,
    so that the caller can write it out without ever holding the whole output. Within a band, up to
    `batch` tiles of one shape share a forward pass.
    """
    device = device or torch.device("cpu")
    width = image.shape[2]
    for band in plan_tiles(image.shape[1], width, tile, margin, multiple):
        top, bottom = band[0].core_top, band[0].core_bottom
        out = torch.empty(3, SCALE * (bottom - top), SCALE * width, dtype=torch.uint8)
        by_shape: dict[tuple[int, int], list[Tile]] = {}
        for t in band:
            by_shape.setdefault(t.shape, []).append(t)
        for group in by_shape.values():
            for i in range(0, len(group), batch):
                chunk = group[i:i + batch]
                inputs = torch.stack([image[:, t.top:t.bottom, t.left:t.right] for t in chunk]).to(device)
                with torch.no_grad():
                    outputs = run(inputs.float().div_(255))
                for t, result in zip(chunk, outputs, strict=True):
                    y, x = SCALE * (t.core_top - t.top), SCALE * (t.core_left - t.left)
                    core = result[:, y:y + SCALE * (bottom - top), x:x + SCALE * (t.core_right - t.core_left)]
                    out[:, :, SCALE * t.core_left:SCALE * t.core_right] = to_uint8(core).cpu()
                    if on_tile:
                        on_tile()
        yield out
