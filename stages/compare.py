"""DVC stage `compare`: one grid of every baseline and model on the same test images, and all training curves.

Usage: python -m stages.compare
"""
import pandas as pd

from src import paths
from src.architectures import ARCHITECTURES
from src.atomic import save_figure
from src.config import BASELINES, load_params
from src.figures import curves_figure, image_grid
from src.inference import predict
from src.metrics import interpolate
from src.pairs import load_pairs
from src.stage import run_stage
from src.trained import load_trained


def main() -> str:
    params = load_params()
    test = load_pairs(paths.prepared_split("test")).head(params.evaluate.samples)
    columns = {"input 8x8": test.low}
    columns |= {name: interpolate(test.low, name) for name in BASELINES}
    for arch in ARCHITECTURES:
        _, model = load_trained(paths.weights(arch), arch, params.models[arch].options)
        columns[arch] = predict(model, test.low, params.evaluate.batch_size)
    columns["original"] = test.high
    grid = image_grid(columns, "Test images: input, baselines, models, original", by="column")
    save_figure(paths.GRID, grid)
    logs = {arch: pd.read_csv(paths.curves(arch)) for arch in ARCHITECTURES}
    save_figure(paths.CURVES_FIGURE, curves_figure(logs))
    return f"compare: {len(test)} test images x {len(columns)} columns, curves of {len(logs)} models"


if __name__ == "__main__":
    run_stage(main)
