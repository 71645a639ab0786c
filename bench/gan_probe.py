"""Can a short adversarial fine-tune of `sr` move it along the perception-distortion plane? Not a test.

    python bench/gan_probe.py [--judge-epochs 13] [--gan-epochs 2] [--adversarial 0.1] [--pixel 1.0]

A probe for a GAN-trained `sr` judged offline. It needs `dvc repro` (data/prepared, models/sr.pt).
1. The judge: `bench/classifier.py`'s network and recipe, trained on the original 32x32 training
   images (cached in --judge-cache, so later runs skip it).
2. The points: for the originals, bicubic, `sr`, the fine-tuned `sr` (its EMA) and the network
   interpolations between `sr` and it (ESRGAN's net_interp: w = (1 - a) w_sr + a w_gan): PSNR on the
   test split, the judge's accuracy on the upscaled images (flip test-time augmentation), and FID
   and KID (torchmetrics, with the judge's penultimate features as a custom feature extractor:
   nothing is downloaded) between the upscaled and the original test images.
3. The fine-tune: `sr` from models/sr.pt, pixel L1 plus a weighted vanilla GAN loss against a small
   spectral-norm PatchGAN for 32x32 images, Adam (1e-4, betas 0.9/0.99) for both, an EMA (0.999) of
   the generator; no perceptual loss (none is available offline that is not the judge).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from classifier import Classifier, accuracy, augment
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from sr4x import paths
from sr4x.evaluation import interpolate, mse, psnr
from sr4x.inference import predict
from sr4x.models import load_trained
from sr4x.pairs import load_pairs, to_float, to_uint8


class JudgeFeatures(nn.Module):
    """The judge's penultimate features of float images in [0, 1], as torchmetrics' custom feature extractor."""

    def __init__(self, judge: Classifier) -> None:
        super().__init__()
        self.judge = judge.eval()
        self.num_features = judge.head.in_features

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.judge.features(x.contiguous(memory_format=torch.channels_last)).double()


def train_judge(train, epochs: int, lr: float, seed: int) -> Classifier:
    """bench/classifier.py's recipe (bf16 autocast, batch 512, label smoothing 0.2, Nesterov SGD, triangular lr)."""
    torch.manual_seed(seed)
    model = Classifier((64, 256, 256)).to(memory_format=torch.channels_last)
    model.init_whitening(to_float(train.high[:5000]))
    steps = epochs * -(-len(train) // 512)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9,
                                nesterov=True, weight_decay=5e-4)
    warmup = max(1, steps // 5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)))
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=generator).split(512):
            x = augment(to_float(train.high[idx]), generator).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x).float(), train.labels[idx], label_smoothing=0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"judge epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", flush=True)
    return model.eval()


class PatchDiscriminator(nn.Module):
    """A spectral-norm PatchGAN for 32x32 images: one real/fake logit per 8x8 patch position."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        sn = spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, width, 3, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 16x16
            sn(nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),  # 8x8
            sn(nn.Conv2d(4 * width, 4 * width, 3, padding=1)), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fine_tune(generator_net: nn.Module, train, epochs: int, pixel: float, adversarial: float, batch: int,
              seed: int) -> tuple[nn.Module, list[dict[str, float]]]:
    """The GAN fine-tune; returns the generator's EMA and per-epoch mean losses."""
    torch.manual_seed(seed)
    g, d = generator_net.train(), PatchDiscriminator().train()
    ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99))
    bce = nn.BCEWithLogitsLoss()
    rng = torch.Generator().manual_seed(seed)
    log = []
    for epoch in range(epochs):
        sums = {"l1": 0.0, "g_adv": 0.0, "d": 0.0}
        order = torch.randperm(len(train), generator=rng).split(batch)
        start = time.perf_counter()
        for idx in order:
            low, high = to_float(train.low[idx]), to_float(train.high[idx])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fake = g(low).float()
                for p in d.parameters():
                    p.requires_grad_(False)
                score = d(fake).float()
            l1 = F.l1_loss(fake, high)
            g_adv = bce(score, torch.ones_like(score))
            opt_g.zero_grad(set_to_none=True)
            (pixel * l1 + adversarial * g_adv).backward()
            opt_g.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), g.parameters(), strict=True):
                    e.lerp_(p, 1 - 0.999)
            for p in d.parameters():
                p.requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                real_score, fake_score = d(high).float(), d(fake.detach()).float()
            d_loss = bce(real_score, torch.ones_like(real_score)) + bce(fake_score, torch.zeros_like(fake_score))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            sums["l1"] += l1.item()
            sums["g_adv"] += g_adv.item()
            sums["d"] += d_loss.item()
        row = {k: v / len(order) for k, v in sums.items()} | {"seconds": time.perf_counter() - start}
        log.append(row)
        print(f"gan epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    return ema, log


def interpolated(a: nn.Module, b: nn.Module, alpha: float) -> nn.Module:
    """ESRGAN's network interpolation: every weight (1 - alpha) * a + alpha * b."""
    net = copy.deepcopy(a)
    sa, sb = a.state_dict(), b.state_dict()
    net.load_state_dict({k: torch.lerp(sa[k].float(), sb[k].float(), alpha) for k in sa})
    return net


def scores(features: JudgeFeatures, judge: Classifier, pred: torch.Tensor, test, kid_subset: int) -> dict:
    """PSNR, the judge's accuracy, FID and KID (mean over 100 seeded subsets) of float predictions in [0, 1]."""
    torch.manual_seed(0)  # KID's subsets
    fid = FrechetInceptionDistance(feature=features)
    kid = KernelInceptionDistance(feature=features, subsets=100, subset_size=min(kid_subset, len(test)))
    for metric in (fid, kid):
        for real, fake in zip(to_float(test.high).split(1000), pred.split(1000), strict=True):
            metric.update(real, real=True)
            metric.update(fake, real=False)
    return {"psnr": psnr(mse(pred, test.high)), "accuracy": accuracy(judge, to_uint8(pred), test.labels, bf16=True),
            "fid": fid.compute().item(), "kid": kid.compute()[0].item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge-epochs", type=int, default=13)
    parser.add_argument("--judge-lr", type=float, default=0.4)
    parser.add_argument("--judge-cache", type=Path, default=Path("/tmp/gan_probe_judge.pt"))
    parser.add_argument("--gan-epochs", type=int, default=2)
    parser.add_argument("--pixel", type=float, default=1.0, help="weight of the L1 loss")
    parser.add_argument("--adversarial", type=float, default=0.1, help="weight of the generator's GAN loss")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--kid-subset", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = (load_pairs(paths.prepared_split(s)) for s in ("train", "test"))
    if args.judge_cache.exists():
        judge = Classifier((64, 256, 256)).to(memory_format=torch.channels_last)
        judge.load_state_dict(torch.load(args.judge_cache, weights_only=True))
        judge.eval()
    else:
        start = time.perf_counter()
        judge = train_judge(train, args.judge_epochs, args.judge_lr, args.seed)
        print(f"judge trained in {time.perf_counter() - start:.0f} s", flush=True)
        torch.save(judge.state_dict(), args.judge_cache)
    features = JudgeFeatures(judge)
    _, sr = load_trained(paths.weights("sr"), "sr")
    points = {"original": to_float(test.high), "bicubic": interpolate(test.low, "bicubic"),
              "sr": predict(sr, test.low, 500)}
    results = {name: scores(features, judge, pred, test, args.kid_subset) for name, pred in points.items()}
    for name, row in results.items():
        print(name, json.dumps({k: round(v, 5) for k, v in row.items()}), flush=True)
    ema, log = fine_tune(copy.deepcopy(sr), train, args.gan_epochs, args.pixel, args.adversarial, args.batch,
                         args.seed)
    for alpha in (0.25, 0.5, 0.75, 1.0):
        name = f"interp {alpha}"
        results[name] = scores(features, judge, predict(interpolated(sr, ema, alpha), test.low, 500), test,
                               args.kid_subset)
        print(name, json.dumps({k: round(v, 5) for k, v in results[name].items()}), flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "gan_log": log, "points": results},
                     indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))


if __name__ == "__main__":
    main()
