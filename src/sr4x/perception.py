"""Perceptual scores of upscaled test images, from the judge alone (nothing is downloaded).

For each set of upscaled images: the judge's accuracy on them (flip test-time augmentation, as for
the originals, whose accuracy is the upper bound), and FID and KID between the judge's penultimate
features of them and of the original test images. FID and KID are torchmetrics' own, given the
features through its custom feature-extractor interface (`PrecomputedFeatures`); the features are
unscaled, so the numbers rank models here and compare with no published FID. KID is the mean over
`KID_SUBSETS` seeded random subsets of `KID_SUBSET_SIZE` images (torchmetrics' defaults).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from sr4x.judge import accuracy

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


class PrecomputedFeatures(nn.Identity):
    """A feature extractor for torchmetrics that returns its input: the features are computed once, outside."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


class FeatureDistances:
    """FID and KID of sets of features against one fixed set of real features."""

    def __init__(self, real: torch.Tensor) -> None:
        extractor = PrecomputedFeatures(real.shape[1])
        self.kid_subset = min(KID_SUBSET_SIZE, len(real))
        self.fid = FrechetInceptionDistance(feature=extractor, reset_real_features=False)
        with warnings.catch_warnings():  # its note that it keeps every feature: 10,000 x 128 here (judge.widths), 10 MB
            warnings.filterwarnings("ignore", message="Metric `Kernel Inception Distance` will save")
            self.kid = KernelInceptionDistance(feature=extractor, subsets=KID_SUBSETS, subset_size=self.kid_subset,
                                               reset_real_features=False)
        for metric in (self.fid, self.kid):
            metric.update(real.double(), real=True)

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        scores = {}
        for name, metric in (("fid", self.fid), ("kid", self.kid)):
            metric.reset()  # the fake features only
            metric.update(fake.double(), real=False)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # KID's subsets: the same draw for every model
                value = metric.compute()
            scores[name] = (value[0] if name == "kid" else value).item()
        return scores


def perceptual_scores(distances: FeatureDistances, logits: torch.Tensor, features: torch.Tensor,
                      labels: torch.Tensor) -> dict[str, float]:
    """The judge's accuracy, FID and KID of one set of upscaled images, from the judge's outputs on them."""
    return {"accuracy": accuracy(logits, labels), **distances(features)}
