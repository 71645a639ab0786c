"""DVC stage `compare`: one grid of every baseline and model on the same test images, and all training curves.

Usage: python -m stages.compare
"""
import pandas as pd

from src.atomic import save_figure
from src.cli import PREPARED, run_stage
from src.config import ARCHITECTURES, BASELINES, load_params
from src.figures import curves_figure, image_grid
from src.inference import predict
from src.metrics import interpolate
from src.pairs import load_pairs
from src.trained import load_trained


def main() -> str:
    params = load_params()
    test = load_pairs(PREPARED / "test.pt").head(params.evaluate.samples)
    columns = {"input 8x8": test.low}
    columns |= {name: interpolate(test.low, name) for name in BASELINES}
    for arch in ARCHITECTURES:
        model = load_trained(arch, params.models[arch].options, f"models/{arch}.pt")
        columns[arch] = predict(model, test.low, params.evaluate.batch_size)
    columns["original"] = test.high
    grid = image_grid(columns, "Test images: input, baselines, models, original", by="column")
    save_figure("plots/compare/grid.png", grid)
    logs = {arch: pd.read_csv(f"plots/curves/{arch}.csv") for arch in ARCHITECTURES}
    save_figure("plots/compare/curves.png", curves_figure(logs))
    return f"compare: {len(test)} test images x {len(columns)} columns, curves of {len(logs)} models"


if __name__ == "__main__":
    run_stage(main)
