"""Matplotlib figures (Agg backend, no display needed): image grids."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _as_image(t: torch.Tensor):
    """CHW uint8 or float [0,1] tensor -> HWC array for imshow."""
    t = t.float() / 255 if t.dtype == torch.uint8 else t.float()
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def image_grid(rows: dict[str, torch.Tensor], title: str) -> Figure:
    """One row of images per entry in `rows` (label -> (N,3,H,W)), same N per row.

    Low-resolution images are drawn with nearest-neighbour pixels, so the 8x8 input looks as
    coarse as it is.
    """
    n = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n + 1.2, 1.25 * len(rows) + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(_as_image(images[c]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig
