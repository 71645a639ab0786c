"""Image-quality metrics and the interpolation baselines.

Conventions: RGB, values in [0, 1], all 32x32 pixels (no border crop). PSNR is 10*log10(1/MSE)
over the whole test set; the mean per-image PSNR is reported beside it (it is never lower, by
Jensen's inequality). SSIM is torchmetrics' Gaussian SSIM (11x11, sigma 1.5) with
data_range=1.0, averaged over images.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from src.config import BASELINES
from src.pairs import HIGH_SIZE, to_float


def psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def interpolate(low: torch.Tensor, mode: str) -> torch.Tensor:
    """Upscale uint8 (N,3,8,8) images to 32x32 with a fixed interpolation, clamped to [0, 1]."""
    if mode not in BASELINES:
        raise ValueError(f"unknown interpolation {mode!r}; allowed: {', '.join(BASELINES)}")
    align = None if mode == "nearest" else False
    out = F.interpolate(to_float(low), size=HIGH_SIZE, mode=mode, align_corners=align)
    return out.clamp_(0, 1)


def per_image_mse(pred: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """MSE of each image: float predictions against uint8 targets, shape (N,)."""
    return (pred - to_float(high)).pow_(2).flatten(1).mean(1)


def mse(pred: torch.Tensor, high: torch.Tensor) -> float:
    """MSE over all pixels: float predictions against uint8 targets (without quality()'s SSIM cost)."""
    return per_image_mse(pred, high).double().mean().item()


def quality(pred: torch.Tensor, high: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """MSE, PSNR, mean per-image PSNR and SSIM of predictions against uint8 targets."""
    mse_i = per_image_mse(pred, high).double()
    overall = mse_i.mean().item()
    ssim = torch.cat([
        structural_similarity_index_measure(p, to_float(h), data_range=1.0, reduction="none")
        for p, h in zip(pred.split(batch_size), high.split(batch_size), strict=True)
    ])
    return {
        "mse": overall,
        "psnr": psnr(overall),
        "psnr_per_image": (10 * torch.log10(1 / mse_i.clamp_min(1e-12))).mean().item(),
        "ssim": ssim.double().mean().item(),
    }


def per_class_psnr(pred: torch.Tensor, high: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> list[float]:
    """PSNR over each class's images (from the class's mean MSE)."""
    mse_i = per_image_mse(pred, high).double()
    return [psnr(mse_i[labels == c].mean().item()) if (labels == c).any() else math.nan for c in range(n_classes)]
