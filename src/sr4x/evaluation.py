"""Scoring on the test split: image-quality metrics, the interpolation baselines, and the report of one
model or baseline.

Conventions: RGB, values in [0, 1], every pixel (no border crop). PSNR is 10*log10(1/MSE) over the
whole test set; the mean per-image PSNR is reported beside it (it is never lower, by Jensen's
inequality). SSIM is torchmetrics' Gaussian SSIM (11x11, sigma 1.5) with data_range=1.0, averaged
over images. The baselines upscale by the project's one scale with a fixed interpolation.

Whole photos (folder sources) are scored by the SR field's protocol instead (BasicSR's
`psnr_ssim.py`), on 8-bit outputs: SCALE pixels cropped from every edge; PSNR and SSIM (the same
SSIM, valid region, on the 0-255 scale) on the luma Y of ITU-R BT.601 (16-235) and on RGB; each
image scored alone, and a set's score is the mean over its images.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from sr4x import paths
from sr4x.architectures import SCALE
from sr4x.atomic import write_json, write_text
from sr4x.figures import image_grid, save_figure
from sr4x.pairs import Pairs, to_float

BASELINES = ("nearest", "bilinear", "bicubic")  # the fixed interpolations evaluated beside the models
SSIM_WINDOW = 11  # torchmetrics' default Gaussian window (sigma 1.5), as in the field


def psnr(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def to_y(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (3, H, W) -> float64 luma (1, H, W) on the 0-255 scale: BT.601, 16-235 (BasicSR's to_y_channel)."""
    r, g, b = image.double() / 255
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b)[None]


def protocol_scores(pred: torch.Tensor, high: torch.Tensor) -> dict[str, float]:
    """PSNR and SSIM on Y and on RGB of one uint8 (3, H, W) output against its original, SCALE border pixels cropped."""
    inner = (slice(None), slice(SCALE, -SCALE), slice(SCALE, -SCALE))
    pred, high = pred[inner], high[inner]
    scores = {}
    for channels, (a, b) in {"y": (to_y(pred), to_y(high)), "rgb": (pred.double(), high.double())}.items():
        error = (a - b).pow(2).mean().item()
        scores[f"psnr_{channels}"] = 10 * math.log10(255**2 / error) if error > 0 else math.inf
        # in float32 on [0, 1] (float64 convolutions are tens of times slower on a CPU; SSIM moves by < 1e-5)
        a, b = (t[None].float() / 255 for t in (a, b))
        _, ssim_map = structural_similarity_index_measure(a, b, data_range=1.0, return_full_image=True)
        valid = SSIM_WINDOW // 2  # torchmetrics pads by reflection; the field averages where the window fits
        scores[f"ssim_{channels}"] = ssim_map[..., valid:-valid, valid:-valid].double().mean().item()
    return scores


def interpolate(low: torch.Tensor, mode: str) -> torch.Tensor:
    """Upscale uint8 (N,3,h,w) images by SCALE with a fixed interpolation, clamped to [0, 1]."""
    if mode not in BASELINES:
        raise ValueError(f"unknown interpolation {mode!r}; allowed: {', '.join(BASELINES)}")
    align = None if mode == "nearest" else False
    out = F.interpolate(to_float(low), scale_factor=SCALE, mode=mode, align_corners=align)
    return out.clamp_(0, 1)


def per_image_mse(pred: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """MSE of each image: float predictions against uint8 targets, shape (N,)."""
    return (pred - to_float(high)).pow_(2).flatten(1).mean(1)


def mse(pred: torch.Tensor, high: torch.Tensor) -> float:
    """MSE over all pixels: float predictions against uint8 targets (without quality()'s SSIM cost)."""
    return per_image_mse(pred, high).double().mean().item()


def quality(pred: torch.Tensor, high: torch.Tensor, batch_size: int) -> dict[str, float]:
    """MSE, PSNR, mean per-image PSNR and SSIM of predictions against uint8 targets (SSIM in batches)."""
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


def per_class_psnr(pred: torch.Tensor, high: torch.Tensor, labels: torch.Tensor, classes: int) -> list[float]:
    """PSNR over each of `classes` classes' images (from the class's mean MSE); NaN for a class with none."""
    mse_i = per_image_mse(pred, high).double()
    return [psnr(mse_i[labels == c].mean().item()) if (labels == c).any() else math.nan for c in range(classes)]


def write_report(name: str, pred: torch.Tensor, test: Pairs, classes: Sequence[str], samples: int, batch_size: int,
                 parameters: int, extra: dict[str, Any] | None = None,
                 beside: dict[str, torch.Tensor] | None = None) -> str:
    """Score `pred` (float, [0, 1]) against `test`; write metrics/NAME.json, plots/per_class/NAME.csv and
    plots/samples/NAME.png (with the rows of `beside`, other outputs of the sample images, above NAME's);
    return a one-line summary of the scores.

    Every report has the same `test` keys, so `dvc metrics show` lines models and baselines up.
    """
    bicubic = interpolate(test.low, "bicubic")
    scores = quality(pred, test.high, batch_size)
    gain = scores["psnr"] - psnr(mse(bicubic, test.high))
    write_json(paths.metrics(name), {
        "test": {**scores, "gain_over_bicubic_db": gain}, "model": {"parameters": parameters}, **(extra or {}),
    })

    table = pd.DataFrame({"class": list(classes),
                          "psnr": per_class_psnr(pred, test.high, test.labels, len(classes)),
                          "bicubic_psnr": per_class_psnr(bicubic, test.high, test.labels, len(classes))})
    table["gain_db"] = table["psnr"] - table["bicubic_psnr"]
    write_text(paths.per_class(name), table.to_csv(index=False, float_format="%.4f"))

    k = min(samples, len(test))
    h, w = test.low.shape[-2:]
    rows = {f"input {w}x{h}": test.low[:k], "original": test.high[:k], **(beside or {}), name: pred[:k]}
    save_figure(paths.samples(name), image_grid(rows, f"{name}: test images"))
    return (f"test MSE {scores['mse']:.5f}, PSNR {scores['psnr']:.2f} dB ({gain:+.2f} dB vs bicubic), "
            f"SSIM {scores['ssim']:.4f}")
