"""The project's one degradation: how every low-resolution input is made from its original.

PIL's bilinear resize to 1/SCALE of the size, which antialiases (its filter widens with the
reduction): exactly what torchvision's `Resize` does to a PIL image, so CIFAR-10's 32x32 -> 8x8 is
the tutorial's `Resize(8)`. CIFAR pairs, folder sources and every baseline's input come from it.
Torch-free, so that preparing a folder of photos runs without torch's memory.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from sr4x.architectures import SCALE


def downscale(image: np.ndarray) -> np.ndarray:
    """One HWC uint8 image -> 1/SCALE of its size (rounded down)."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((width // SCALE, height // SCALE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)
