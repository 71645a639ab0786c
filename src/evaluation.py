"""The evaluation report of one model or baseline on the test split: metrics, per-class table, samples."""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from src import paths
from src.atomic import save_figure, write_json, write_text
from src.figures import image_grid
from src.metrics import interpolate, mse, per_class_psnr, psnr, quality
from src.pairs import CLASSES, Pairs


def write_report(name: str, pred: torch.Tensor, test: Pairs, samples: int, parameters: int,
                 extra: dict[str, Any] | None = None) -> str:
    """Score `pred` (float, [0, 1]) against `test`; write metrics/NAME.json, plots/per_class/NAME.csv and
    plots/samples/NAME.png; return a one-line summary of the scores.

    Every report has the same `test` keys, so `dvc metrics show` lines models and baselines up.
    """
    bicubic = interpolate(test.low, "bicubic")
    scores = quality(pred, test.high)
    gain = scores["psnr"] - psnr(mse(bicubic, test.high))
    write_json(paths.metrics(name), {
        "test": {**scores, "gain_over_bicubic_db": gain}, "model": {"parameters": parameters}, **(extra or {}),
    })

    table = pd.DataFrame({"class": CLASSES, "psnr": per_class_psnr(pred, test.high, test.labels),
                          "bicubic_psnr": per_class_psnr(bicubic, test.high, test.labels)})
    table["gain_db"] = table["psnr"] - table["bicubic_psnr"]
    write_text(paths.per_class(name), table.to_csv(index=False, float_format="%.4f"))

    k = min(samples, len(test))
    rows = {"input 8x8": test.low[:k], "original": test.high[:k], name: pred[:k]}
    save_figure(paths.samples(name), image_grid(rows, f"{name}: test images"))
    return (f"test MSE {scores['mse']:.5f}, PSNR {scores['psnr']:.2f} dB ({gain:+.2f} dB vs bicubic), "
            f"SSIM {scores['ssim']:.4f}")
