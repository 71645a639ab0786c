"""Short trials of `sr` design variants, to decide what goes into src/sr4x/models.py. Not a test.

Run from the repository root after `dvc repro` (it reads data/prepared):

    python bench/sr_variants.py --epochs 4 base prog ca no-augment

Each variant trains through the pipeline's own `fit` for `--epochs` epochs (OneCycle over those
epochs) with `models.sr.train` from params.yaml, on the whole training split, and prints its
final test MSE and PSNR gain over bicubic. Variants are one change each against `base`, the
committed SRResNet; the ablation modules live here, not in src/sr4x/models.py, because the pipeline
does not use them.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sr4x import paths
from sr4x.config import load_params
from sr4x.evaluation import interpolate, psnr
from sr4x.models import ResidualBlock, SRResNet
from sr4x.pairs import load_pairs, to_float
from sr4x.training import fit, setup_run


class ChannelAttention(nn.Module):
    """RCAN's squeeze-and-excitation gate on a block's output."""

    def __init__(self, width: int, reduction: int = 16) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width // reduction, 1), nn.ReLU(),
                                  nn.Conv2d(width // reduction, width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ScaledBlock(ResidualBlock):
    """EDSR's residual scaling: the block adds 0.1 of its output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.body(x)


def with_body(model: SRResNet, blocks: list[nn.Module]) -> SRResNet:
    """Replace the model's body with `blocks`, followed by the body's closing conv."""
    width = model.head.out_channels
    model.body = nn.Sequential(*blocks, nn.Conv2d(width, width, 3, padding=1))
    return model


def with_blocks(model: SRResNet, block: Callable[[int], nn.Module], width: int, depth: int) -> SRResNet:
    return with_body(model, [block(width) for _ in range(depth)])


def attention_block(width: int) -> nn.Module:
    block = ResidualBlock(width)
    block.body.append(ChannelAttention(width))
    return block


def progressive(width: int, depth: int, up: int = 32) -> SRResNet:
    """Two x2 sub-pixel stages with a ReLU between (a nonlinear upsampler); last conv zero-init."""
    model = SRResNet(width, depth)
    last = nn.Conv2d(up, 3 * 4, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    model.tail = nn.Sequential(nn.Conv2d(width, 4 * up, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(), last)
    model.upsample = nn.PixelShuffle(2)
    return model


class WideActivationBlock(nn.Module):
    """WDSR-A's block: conv to `expand` times the width, ReLU, conv back, plus the identity."""

    def __init__(self, width: int, expand: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width * expand, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width * expand, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TwoScale(SRResNet):
    """Blocks at 8x8, a stage of twice the width at 4x4 (4x the parameters per FLOP), sub-pixel back up."""

    def __init__(self, width: int = 64, outer: int = 2, inner: int = 4) -> None:
        super().__init__(width, outer)
        self.pre = nn.Sequential(*[ResidualBlock(width) for _ in range(outer)])
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.low = nn.Sequential(*[ResidualBlock(2 * width) for _ in range(inner)])
        self.up = nn.Sequential(nn.Conv2d(2 * width, 4 * width, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        features = self.head(x)
        early = self.pre(features)
        coarse = self.down(early)
        features = features + self.body(early + self.up(coarse + self.low(coarse)))
        return base + self.upsample(self.tail(features))


def identity_blocks(width: int, depth: int) -> SRResNet:
    """Every block's last conv starts at zero, so each block starts as the identity (SkipInit)."""
    model = SRResNet(width, depth)
    for block in model.body[:-1]:
        nn.init.zeros_(block.body[-1].weight)
        nn.init.zeros_(block.body[-1].bias)
    return model


def replicate_padding(width: int, depth: int) -> SRResNet:
    """Every 3x3 conv pads by repeating the border pixel instead of zeros (44 % of an 8x8 map is border)."""
    model = SRResNet(width, depth)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.padding_mode = "replicate"
    return model


class TransformerBlock(nn.Module):
    """Pre-norm transformer block over the 64 pixels of an 8x8 map: global self-attention + MLP."""

    def __init__(self, width: int, heads: int = 4, mlp: int = 2, tokens: int = 64) -> None:
        super().__init__()
        self.heads = heads
        self.position = nn.Parameter(torch.zeros(1, tokens, width))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp * width), nn.GELU(), nn.Linear(mlp * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.position
        q, k, v = self.qkv(self.norm1(tokens)).view(n, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # Plain matrix products: on this CPU, torch's fused attention kernel made the block 2.7x slower.
        weights = torch.softmax(q @ k.transpose(-1, -2) * (c // self.heads) ** -0.5, dim=-1)
        tokens = tokens + self.proj((weights @ v).transpose(1, 2).reshape(n, h * w, c))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(n, c, h, w)


def mixed_body(width: int, pattern: str) -> SRResNet:
    """SRResNet whose body is `pattern`: "c" a residual conv block, "a" a transformer block."""
    model = SRResNet(width, 0)
    return with_body(model, [ResidualBlock(width) if kind == "c" else TransformerBlock(width) for kind in pattern])


# name -> (model builder from (width, depth), overrides of models.sr.train)
VARIANTS: dict[str, tuple[Callable[[int, int], nn.Module], dict]] = {
    "base": (SRResNet, {}),
    "prog": (progressive, {}),
    "ca": (lambda w, d: with_blocks(SRResNet(w, d), attention_block, w, d), {}),
    "res-scale-lr4e-3": (lambda w, d: with_blocks(SRResNet(w, d), ScaledBlock, w, d), {"lr": 0.004}),
    "zero-init-lr4e-3": (identity_blocks, {"lr": 0.004}),
    "wide-act": (lambda w, d: with_blocks(SRResNet(w // 2, d), WideActivationBlock, w // 2, d), {}),
    "two-scale": (lambda w, d: TwoScale(w, d // 4, d // 2), {}),
    "batch64": (SRResNet, {"batch_size": 64}),
    "no-augment": (SRResNet, {"augment": False}),
    "replicate-pad": (replicate_padding, {}),
    "deep-narrow": (lambda w, d: SRResNet(w * 3 // 4, d * 7 // 4), {}),  # 48 wide, 14 blocks: the same multiply-adds
    # A transformer block costs about 2.2 conv blocks here (27.8 against 12.8 ms forward+backward at batch 128).
    "attn1-conv6": (lambda w, d: mixed_body(w, "cccccca"), {}),
    "attn2-conv4": (lambda w, d: mixed_body(w, "ccacca"), {}),
    "attn3-conv3": (lambda w, d: mixed_body(w, "cacaca"), {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=0, help="first N training pairs; 0 = all")
    parser.add_argument("variants", nargs="+", choices=list(VARIANTS))
    args = parser.parse_args()
    config = load_params().models["sr"]
    train, test = load_pairs(paths.prepared_split("train")), load_pairs(paths.prepared_split("test"))
    train = train.head(args.train_images or len(train))
    bicubic = torch.nn.functional.mse_loss(interpolate(test.low, "bicubic"), to_float(test.high)).item()
    print(f"bicubic test MSE {bicubic:.5f}")
    rows = []
    for name in args.variants:
        build, overrides = VARIANTS[name]
        params = dataclasses.replace(config.train, epochs=args.epochs, **overrides)
        _, _, speed = setup_run(params, "sr")
        model = build(config.options["width"], config.options["depth"])
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            log = fit(model, train, test, params, speed, Path(tmp) / "ckpt.pt", name, name)
        seconds = time.perf_counter() - start
        mse = log[-1]["test_mse"]
        rows.append(f"| {name} | {sum(p.numel() for p in model.parameters()):,} | {mse:.5f} "
                    f"| {psnr(mse) - psnr(bicubic):+.3f} | {seconds / args.epochs:.1f} |")
    print(f"\n| variant | parameters | test MSE after {args.epochs} epochs | dB over bicubic | s/epoch |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
