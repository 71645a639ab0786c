"""How much fine detail the upscaled test images carry, against the originals. Not a test.

    python bench/sharpness.py [--models sr sr_gan]

Needs `dvc repro` (data/prepared and the models). For bicubic and each model (its output as its evaluate
stage scores it), the mean squared response of a 3x3 Laplacian per channel over the 10,000 test images, as a
share of the originals': the high-frequency energy that MSE training averages away.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from sr4x.config import load_params
from sr4x.evaluation import interpolate
from sr4x.inference import evaluated_output, trained_model
from sr4x.pairs import load_split, to_float

LAPLACIAN = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)


def laplacian_energy(images: torch.Tensor) -> float:
    return F.conv2d(images.float(), LAPLACIAN, groups=3).pow(2).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["sr", "sr_gan"])
    args = parser.parse_args()
    params = load_params()
    test = load_split("test", params.data.test_images)
    original = laplacian_energy(to_float(test.high))
    outputs = {"bicubic": interpolate(test.low, "bicubic")}
    outputs |= {name: evaluated_output(name, trained_model(name, params), test.low, params) for name in args.models}
    for name, images in outputs.items():
        print(f"{name}: {100 * laplacian_energy(images) / original:.1f} % of the originals' Laplacian energy")


if __name__ == "__main__":
    main()
