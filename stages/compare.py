"""DVC stage `compare`: one grid of every baseline and model on the same test images, and all training curves.

Usage: python -m stages.compare
"""
import pandas as pd

from sr4x import paths
from sr4x.architectures import ARCHITECTURES
from sr4x.config import MODELS, load_params
from sr4x.evaluation import BASELINES, interpolate
from sr4x.figures import curves_figure, image_grid, save_figure
from sr4x.inference import predict, trained_model
from sr4x.pairs import load_pairs
from sr4x.stage import run_stage


def main() -> str:
    params = load_params()
    test = load_pairs(paths.prepared_split("test")).head(params.evaluate.samples)
    columns = {f"input {test.low.shape[-1]}x{test.low.shape[-2]}": test.low}
    columns |= {name: interpolate(test.low, name) for name in BASELINES}
    for name in MODELS:
        model = trained_model(name, params)
        columns[name] = predict(model, test.low.to(next(model.parameters()).device), params.evaluate.batch_size)
    columns["original"] = test.high
    grid = image_grid(columns, "Test images: input, baselines, models, original", by="column")
    save_figure(paths.GRID, grid)
    logs = {arch: pd.read_csv(paths.curves(arch)) for arch in ARCHITECTURES}
    save_figure(paths.CURVES_FIGURE, curves_figure(logs))
    return f"compare: {len(test)} test images x {len(columns)} columns, curves of {len(logs)} models"


if __name__ == "__main__":
    run_stage(main)
