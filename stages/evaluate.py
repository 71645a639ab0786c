"""DVC stage `evaluate@NAME`: test-split metrics, per-class table and sample figure for a model or baseline.

Usage: python -m stages.evaluate NAME   (NAME: a trained architecture, or nearest/bilinear/bicubic)
"""
import sys

import pandas as pd
import torch
from tqdm import tqdm

from src.archive import CLASSES
from src.atomic import save_figure, write_json, write_text
from src.cli import PREPARED, run_stage, split_sizes
from src.config import ARCHITECTURES, BASELINES, ParamsError, check_limit, load_params
from src.figures import image_grid
from src.inference import project_consistent, self_ensemble
from src.metrics import interpolate, mse, per_class_psnr, psnr, quality
from src.models import count_parameters
from src.pairs import load_pairs, to_float
from src.trained import load_trained
from src.training import predict, resolve_device


def predict_with_progress(model, low, batch_size, desc, transform=None) -> torch.Tensor:
    """`predict` over the test split, one progress-bar step per batch."""
    chunks = tqdm(low.split(batch_size), desc=desc, disable=None)
    return torch.cat([predict(model, chunk, batch_size, transform) for chunk in chunks])


def main() -> str:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    params = load_params()
    if name not in ARCHITECTURES + BASELINES:
        raise ParamsError(f"unknown model or baseline {name!r}; allowed: {', '.join(ARCHITECTURES + BASELINES)}")
    opts = params.evaluate
    n_test = check_limit("data.test_images", params.data.test_images, split_sizes()["test"])
    test = load_pairs(PREPARED / "test.pt").head(n_test)
    bicubic = interpolate(test.low, "bicubic")
    bicubic_psnr = psnr(mse(bicubic, test.high))

    metrics = {}
    if name in BASELINES:
        pred, n_params = interpolate(test.low, name), 0
    else:
        config = params.models[name]
        device = resolve_device(config.train.device)
        model = load_trained(name, config.options, f"models/{name}.pt").to(device)
        n_params = count_parameters(model)
        low = test.low.to(device)
        plain = predict_with_progress(model, low, opts.batch_size, f"evaluate@{name}")
        ensembled = predict_with_progress(model, low, opts.batch_size, f"evaluate@{name} x8 ensemble", self_ensemble)
        base_psnr = psnr(mse(plain, test.high))
        gain = lambda p: psnr(mse(p, test.high)) - base_psnr  # noqa: E731
        metrics["inference"] = {
            "self_ensemble_gain_db": gain(ensembled),
            "consistency_gain_db": gain(project_consistent(plain, to_float(test.low))),
        }
        pred = ensembled if name in opts.self_ensemble else plain
        if name in opts.consistency:
            pred = project_consistent(pred, to_float(test.low))

    scores = quality(pred, test.high)
    metrics = {
        "test": {**scores, "gain_over_bicubic_db": scores["psnr"] - bicubic_psnr},
        "model": {"parameters": n_params},
        **metrics,
    }
    write_json(f"metrics/{name}.json", metrics)

    ours = per_class_psnr(pred, test.high, test.labels)
    base = per_class_psnr(bicubic, test.high, test.labels)
    table = pd.DataFrame({"class": CLASSES, "psnr": ours, "bicubic_psnr": base})
    table["gain_db"] = table["psnr"] - table["bicubic_psnr"]
    write_text(f"plots/per_class/{name}.csv", table.to_csv(index=False, float_format="%.4f"))

    k = min(opts.samples, len(test))
    rows = {"input 8x8": test.low[:k], "original": test.high[:k], name: pred[:k]}
    save_figure(f"plots/samples/{name}.png", image_grid(rows, f"{name}: test images"))
    return (f"evaluate@{name}: test MSE {scores['mse']:.5f}, PSNR {scores['psnr']:.2f} dB "
            f"({metrics['test']['gain_over_bicubic_db']:+.2f} dB vs bicubic), SSIM {scores['ssim']:.4f}")


if __name__ == "__main__":
    run_stage(main)
