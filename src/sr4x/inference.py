"""Inference: batched prediction, and two optional refinements, geometric self-ensemble and
low-resolution consistency.

- Self-ensemble (EDSR+): average the model's outputs over the 8 flips/rotations of the input,
  each mapped back.
- Consistency: project the output onto the images whose downscale (the exact linear map of
  PIL's antialiased bilinear resize, the one that made the input) equals the input:
  x + P (y - A x A^T) P^T with P = A^T (A A^T)^-1. The true image lies in that set (up to 8-bit rounding of y), so the
  orthogonal projection cannot move the output further from it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from sr4x import paths
from sr4x.config import Params, architecture_of
from sr4x.devices import resolve_device
from sr4x.evaluation import mse, psnr
from sr4x.models import load_trained
from sr4x.pairs import Pairs, to_float


@torch.no_grad()
def predict(model: nn.Module, low: torch.Tensor, batch_size: int,
            transform: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
            desc: str | None = None) -> torch.Tensor:
    """Upscale uint8 low-res images in batches; float32 outputs clamped to [0, 1], on the CPU.

    Batches stay on the model's device and come back in one copy, not one per batch. With `desc`,
    a progress bar counts the batches (when output is a terminal).
    """
    model.eval()
    run = transform or (lambda m, x: m(x))
    chunks = tqdm(low.split(batch_size), desc=desc, disable=None if desc else True)
    return torch.cat([run(model, to_float(chunk)).clamp_(0, 1) for chunk in chunks]).cpu()


def self_ensemble(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean of T^-1(model(T(x))) over the 8 dihedral transforms T of the square input."""
    total = torch.zeros(0)
    for flip in (False, True):
        for k in range(4):
            t = x.flip(-1) if flip else x
            y = model(t.rot90(k, (-2, -1))).rot90(-k, (-2, -1))
            y = y.flip(-1) if flip else y
            total = y if total.numel() == 0 else total + y
    return total / 8


@functools.cache
def downscale_matrix(low: int, high: int) -> torch.Tensor:
    """A (low, high): one axis of PIL's antialiased bilinear high->low resize, so D(X) = A X A^T."""
    a = np.zeros((low, high))
    for j in range(high):
        basis = np.zeros((high, high), dtype=np.float32)
        basis[:, j] = 1  # constant along rows, so every output row is column j of A^T
        small = Image.fromarray(basis, mode="F").resize((low, low), Image.BILINEAR)
        a[:, j] = np.asarray(small)[0]
    return torch.from_numpy(a).float()


def project_consistent(pred: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Project float square predictions (N,3,H,H) so that their downscale equals `low` (float), clamped."""
    a = downscale_matrix(low.shape[-1], pred.shape[-1])
    p = a.T @ torch.linalg.inv(a @ a.T)
    residual = low - a @ pred @ a.T
    return (pred + p @ residual @ p.T).clamp_(0, 1)


def refined_prediction(model: nn.Module, test: Pairs, batch_size: int, ensemble: bool, consistency: bool,
                       desc: str) -> tuple[torch.Tensor, dict[str, float]]:
    """The prediction with the chosen refinements, and the PSNR gain of each on `test`.

    Both refinements are measured every time (their gains in dB over the plain prediction);
    `ensemble` and `consistency` choose which ones the returned prediction uses.
    """
    low = test.low.to(next(model.parameters()).device)
    plain = predict(model, low, batch_size, desc=desc)
    ensembled = predict(model, low, batch_size, self_ensemble, desc=f"{desc} x8 ensemble")
    base_psnr = psnr(mse(plain, test.high))
    gain = lambda p: psnr(mse(p, test.high)) - base_psnr  # noqa: E731
    gains = {
        "self_ensemble_gain_db": gain(ensembled),
        "consistency_gain_db": gain(project_consistent(plain, to_float(test.low))),
    }
    pred = ensembled if ensemble else plain
    if consistency:
        pred = project_consistent(pred, to_float(test.low))
    return pred, gains


def trained_model(name: str, params: Params) -> nn.Module:
    """A trained model by name (an architecture, or sr_gan), checked against params.yaml, on its training device."""
    arch = architecture_of(name)
    config = params.models[arch]
    _, model = load_trained(paths.weights(name), arch, config.options)
    return model.to(resolve_device(config.train.device))


def evaluated_output(name: str, model: nn.Module, low: torch.Tensor, params: Params) -> torch.Tensor:
    """Model `name`'s output as its evaluate stage scores it: with the refinements `evaluate` names for it."""
    opts = params.evaluate
    on_device = low.to(next(model.parameters()).device)
    pred = predict(model, on_device, opts.batch_size, self_ensemble if name in opts.self_ensemble else None)
    return project_consistent(pred, to_float(low.cpu())) if name in opts.consistency else pred
