"""The judge: a small CIFAR-10 classifier trained on the original 32x32 images, which grades upscaled images
offline (docs/gan.md). Its accuracy on them, and its penultimate features for FID and KID (`perception.py`).

The network is airbench's (Jordan 2024, arXiv:2404.00498), without its lookahead and frozen BN scales: a
frozen 2x2 patch-whitening convolution, three conv-pool-BN-GELU groups, max-pool and a linear head.
A judge file is self-describing: `{"widths", "state_dict"}`, read tensors-only.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sr4x.atomic import torch_save
from sr4x.pairs import to_float

CLASSES = 10


def conv_group(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU(),
    )


class Classifier(nn.Module):
    """airbench's network: whitening (32 -> 31), three groups (31 -> 15 -> 7 -> 3), max-pool, linear."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.body = nn.Sequential(conv_group(24, widths[0]), conv_group(widths[0], widths[1]),
                                  conv_group(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten())
        self.head = nn.Linear(widths[2], CLASSES, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features of float images in [0, 1]."""
        return self.body(F.gelu(self.whiten(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) / 9  # airbench's logit scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Whitening filters from the eigenvectors of the images' 2x2 patch covariance, and their negatives."""
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
        patches = patches - patches.mean(0)
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (vectors.T / (values + eps).sqrt()[:, None]).reshape(12, 3, 2, 2).float()
        self.whiten.weight.copy_(torch.cat([filters, -filters]))


def save_judge(path: str | os.PathLike, judge: Classifier) -> None:
    torch_save(path, {"widths": list(judge.widths), "state_dict": judge.state_dict()})


def load_judge(path: str | os.PathLike) -> Classifier:
    """The trained judge of a file written by `save_judge`, in eval mode, on the CPU."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    judge = Classifier(saved["widths"])
    judge.load_state_dict(saved["state_dict"])
    return judge.eval()


@torch.no_grad()
def judge_outputs(judge: Classifier, images: torch.Tensor, bf16: bool,
                  batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, features) of images (uint8, or float in [0, 1]) on the judge's device.

    The logits are summed over the image and its mirror (test-time augmentation); the features, float64,
    are the image's own. With `bf16`, the forward passes run under bfloat16 autocast.
    """
    judge.eval()
    device = next(judge.parameters()).device
    logits, features = [], []
    for chunk in images.split(batch_size):
        x = chunk.to(device)
        x = (to_float(x) if x.dtype == torch.uint8 else x.float()).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            own, mirrored = judge.features(x).float(), judge.features(x.flip(-1)).float()
            logits.append((judge.head(own).float() + judge.head(mirrored).float()).cpu())
        features.append(own.double().cpu())
    return torch.cat(logits), torch.cat(features)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels.cpu()).double().mean().item()
