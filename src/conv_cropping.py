"""Convolutions cropped to the kernel taps that can read data: the same maths, less work.

At 8x8 input, the tutorial's ResNet18 encoder runs its last two stages on 2x2 and 1x1 maps.
There a 3x3 convolution with padding 1 multiplies most of its taps by padding zeros only, yet
CPU kernels compute them all, forward and backward. A convolution over the live taps alone,
with the padding shifted to match, reads the same input positions with the same weights, so
its outputs are the same sums, and the dead taps' gradients are zero either way. Weights keep
their full shape, so parameters, optimizer state and saved state_dicts do not change.
(The decoder's first transposed convolution, from 1x1, also has dead taps; cropping it gained
nothing measurable, so only Conv2d is handled.)
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length, along one axis, of a convolution with dilation 1."""
    return (size + 2 * padding - kernel) // stride + 1


def live_taps(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """First and last tap, along one axis, that reads a real input position for some output."""
    outputs = output_size(size, kernel, stride, padding)
    live = [t for t in range(kernel) if any(0 <= j * stride + t - padding < size for j in range(outputs))]
    return live[0], live[-1]


def _cropped_forward(conv: nn.Conv2d, rows: slice, cols: slice, padding: tuple[int, int], x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, conv.weight[:, :, rows, cols], conv.bias, conv.stride, padding, 1, conv.groups)


def crop_dead_taps(model: nn.Module, example: torch.Tensor) -> int:
    """Make every Conv2d of `model` that has dead taps at `example`'s input size compute with its
    live taps only; returns how many were cropped. Only valid for inputs of that size.

    One forward pass in eval mode (BatchNorm statistics untouched) records each conv's input size.
    """
    sizes: dict[nn.Conv2d, set[tuple[int, int]]] = {}

    def record(conv: nn.Conv2d, args: tuple[torch.Tensor, ...]) -> None:
        sizes.setdefault(conv, set()).add(tuple(args[0].shape[-2:]))

    convs = [m for m in model.modules() if type(m) is nn.Conv2d and m.padding_mode == "zeros"
             and m.dilation == (1, 1) and not isinstance(m.padding, str)]
    hooks = [conv.register_forward_pre_hook(record) for conv in convs]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    cropped = 0
    for conv, seen in sizes.items():
        if len(seen) > 1:  # a conv reused at two sizes
            continue
        (size,) = seen
        spans, pads = [], []
        for n, k, s, p in zip(size, conv.kernel_size, conv.stride, conv.padding):
            first, last = live_taps(n, k, s, p)
            same = output_size(n, last - first + 1, s, p - first) == output_size(n, k, s, p)
            spans.append(slice(first, last + 1) if same else slice(0, k))
            pads.append(p - first if same else p)
        if any(span != slice(0, k) for span, k in zip(spans, conv.kernel_size)):
            conv.forward = functools.partial(_cropped_forward, conv, spans[0], spans[1], tuple(pads))
            cropped += 1
    return cropped
