"""Convolutions cropped to the kernel taps that can touch data: the same maths, less work.

At 8x8 input, the tutorial's ResNet18 encoder runs its last two stages on 2x2 and 1x1 maps,
and its decoder starts with a transposed convolution from 1x1. There most kernel taps meet
only padding (or land outside the output), yet CPU kernels compute them all, forward and
backward. The same layer over its live taps alone, with the padding shifted to match, forms
the same sums. Layers that then read their whole input with every output pixel run as one
matrix product. The dead taps' gradients are zero, so Adam never moves them: training the live
taps alone is the same update, without the full-size zero gradients (76 % of ResNet's
parameters) and the optimizer's work on them. Weights keep their full shape in every
state_dict, so saved models do not change.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

Layer = nn.Conv2d | nn.ConvTranspose2d


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length, along one axis, of a convolution with dilation 1."""
    return (size + 2 * padding - kernel) // stride + 1


def transposed_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    """Output length, along one axis, of a transposed convolution with dilation 1."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def live_taps(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """First and last tap, along one axis, of a convolution that reads a real input position."""
    outputs = output_size(size, kernel, stride, padding)
    live = [t for t in range(kernel) if any(0 <= j * stride + t - padding < size for j in range(outputs))]
    return live[0], live[-1]


def live_transposed_taps(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> tuple[int, int]:
    """First and last tap, along one axis, of a transposed convolution that writes a real output."""
    outputs = transposed_output_size(size, kernel, stride, padding, output_padding)
    live = [t for t in range(kernel) if any(0 <= i * stride + t - padding < outputs for i in range(size))]
    return live[0], live[-1]


def axis_geometry(layer: Layer, axis: int, size: int) -> tuple[slice, int, int]:
    """Taps, padding and output padding of `layer` along `axis` for inputs of length `size`:
    its live taps where a shifted padding gives the same output, else its own full kernel."""
    k, s, p = layer.kernel_size[axis], layer.stride[axis], layer.padding[axis]
    if isinstance(layer, nn.ConvTranspose2d):
        op = layer.output_padding[axis]
        first, last = live_transposed_taps(size, k, s, p, op)
        full = transposed_output_size(size, k, s, p, op)
        new_op = full - transposed_output_size(size, last - first + 1, s, p - first, 0)
        if p - first >= 0 and 0 <= new_op < s:
            return slice(first, last + 1), p - first, new_op
        return slice(0, k), p, op
    first, last = live_taps(size, k, s, p)
    if output_size(size, last - first + 1, s, p - first) == output_size(size, k, s, p):
        return slice(first, last + 1), p - first, 0
    return slice(0, k), p, 0


def _cropped_forward(layer: Layer, weight: nn.Parameter, padding: tuple[int, int],
                     output_padding: tuple[int, int], x: torch.Tensor) -> torch.Tensor:
    n, taps = x.shape[0], weight.shape[-2:]
    # Where every output pixel reads every input pixel through its own tap (a conv whose live
    # kernel covers its unpadded input; a transposed conv from 1x1), the layer is one matrix
    # product, which runs faster on CPU than the convolution kernels at these sizes.
    if layer.groups == 1 and padding == (0, 0) and output_padding == (0, 0):
        if isinstance(layer, nn.ConvTranspose2d) and x.shape[-2:] == (1, 1):
            out = x.flatten(1) @ weight.permute(0, 2, 3, 1).flatten(1)  # (n, rows * cols * out channels)
            out = out.view(n, *taps, weight.shape[1]).permute(0, 3, 1, 2)  # channels_last layout
            return out if layer.bias is None else out + layer.bias.view(1, -1, 1, 1)
        if isinstance(layer, nn.Conv2d) and x.shape[-2:] == taps:
            return F.linear(x.reshape(n, -1), weight.flatten(1), layer.bias).view(n, -1, 1, 1)
    if isinstance(layer, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, layer.bias, layer.stride, padding, output_padding, layer.groups)
    return F.conv2d(x, weight, layer.bias, layer.stride, padding, 1, layer.groups)


def crop_dead_taps(model: nn.Module, example: torch.Tensor) -> dict[nn.Parameter, nn.Parameter]:
    """Make every Conv2d and ConvTranspose2d of `model` that has dead taps at `example`'s input
    size compute with its live taps only. Only valid for inputs of that size, on the model's
    current device and layout (call it after moving the model).

    Returns {full weight: live-taps parameter} for each cropped layer: an optimizer must train
    the live-taps parameters in place of those full weights. A full weight stays registered (same
    parameter count and state_dict keys), is brought up to date from its live taps whenever a
    state_dict is taken, and loading a state_dict sets the live taps from it.

    One forward pass in eval mode (BatchNorm statistics untouched) records each layer's input size.
    """
    sizes: dict[Layer, set[tuple[int, int]]] = {}

    def record(layer: Layer, args: tuple[torch.Tensor, ...]) -> None:
        sizes.setdefault(layer, set()).add(tuple(args[0].shape[-2:]))

    layers = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.ConvTranspose2d)
              and m.padding_mode == "zeros" and m.dilation == (1, 1) and not isinstance(m.padding, str)]
    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    live: dict[nn.Parameter, nn.Parameter] = {}
    for layer, seen in sizes.items():
        if len(seen) > 1:  # a layer reused at two sizes
            continue
        (size,) = seen
        (rows, pad_r, op_r), (cols, pad_c, op_c) = [axis_geometry(layer, axis, n) for axis, n in enumerate(size)]
        if (rows, cols) == (slice(0, layer.kernel_size[0]), slice(0, layer.kernel_size[1])):
            continue
        taps = nn.Parameter(layer.weight.detach()[:, :, rows, cols].contiguous())
        layer.forward = functools.partial(_cropped_forward, layer, taps, (pad_r, pad_c), (op_r, op_c))
        layer.register_state_dict_pre_hook(functools.partial(_store_taps, taps=taps, rows=rows, cols=cols))
        layer.register_load_state_dict_post_hook(functools.partial(_load_taps, taps=taps, rows=rows, cols=cols))
        live[layer.weight] = taps
    return live


@torch.no_grad()
def _store_taps(layer: Layer, prefix: str, keep_vars: bool, *, taps: nn.Parameter, rows: slice, cols: slice) -> None:
    layer.weight[:, :, rows, cols] = taps


@torch.no_grad()
def _load_taps(layer: Layer, incompatible_keys: object, *, taps: nn.Parameter, rows: slice, cols: slice) -> None:
    taps.copy_(layer.weight[:, :, rows, cols])
