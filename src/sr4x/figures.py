"""Matplotlib figures (Agg backend, no display needed): image grids and training curves, saved atomically."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sr4x.atomic import atomic_path  # noqa: E402


def _as_image(t: torch.Tensor):
    """CHW uint8 or float [0,1] tensor -> HWC array for imshow."""
    t = t.float() / 255 if t.dtype == torch.uint8 else t.float()
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def image_grid(sets: dict[str, torch.Tensor], title: str, by: str = "row") -> Figure:
    """A grid of images: one row (by="row") or one column (by="column") per labelled set.

    Every set is a (N, 3, H, W) tensor with the same N. Low-resolution images are drawn with
    nearest-neighbour pixels, so the 8x8 input looks as coarse as it is.
    """
    labels = list(sets)
    n = len(sets[labels[0]])
    shape = (len(labels), n) if by == "row" else (n, len(labels))
    fig, axes = plt.subplots(*shape, figsize=(1.15 * shape[1] + 1.2, 1.2 * shape[0] + 0.6), squeeze=False)
    for i, label in enumerate(labels):
        for j in range(n):
            ax = axes[i][j] if by == "row" else axes[j][i]
            ax.imshow(_as_image(sets[label][j]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
        if by == "row":
            axes[i][0].set_ylabel(label, rotation=0, ha="right", va="center")
        else:
            axes[0][i].set_title(label, fontsize=9)
    fig.suptitle(title)
    return fig


def curves_figure(logs: dict[str, pd.DataFrame]) -> Figure:
    """Train (dashed) and test (solid) MSE per epoch of every architecture, on shared axes."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, log) in enumerate(logs.items()):
        color = f"C{i}"
        ax.plot(log["epoch"], log["test_mse"], color=color, label=f"{name} test")
        ax.plot(log["epoch"], log["train_mse"], color=color, linestyle="--", label=f"{name} train")
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title="Train (dashed) and test (solid) MSE per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    return fig


def perception_figure(points: pd.DataFrame, sweep: tuple[str, str] = ("sr", "sr_gan")) -> Figure:
    """PSNR (x) against KID (y), one labelled point per row of `points` (columns point, psnr, kid); the rows named
    "interp ..." are joined, with the two ends of `sweep`, by a line: the network-interpolation sweep."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(points["psnr"], points["kid"], color="C0")
    for row in points.itertuples():
        ax.annotate(row.point, (row.psnr, row.kid), textcoords="offset points", xytext=(5, 4), fontsize=8)
    by_name = points.set_index("point")
    line = [sweep[0], *(p for p in points["point"] if p.startswith("interp ")), sweep[1]]
    if set(line) <= set(by_name.index):
        ax.plot(by_name.loc[line, "psnr"], by_name.loc[line, "kid"], color="C1", linewidth=1, zorder=0)
    ax.set(xlabel="PSNR (dB), higher is less distortion", ylabel="KID (judge's features), lower is more realistic",
           title="Perception-distortion: test images")
    ax.grid(True, alpha=0.3)
    return fig


def save_figure(path: str | os.PathLike, figure: Figure) -> None:
    """Atomically save a figure as PNG, and free it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
