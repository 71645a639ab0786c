"""The architectures as plain nn.Modules, built by name from their descriptions (`architectures.py`), and
trained models on disk.

Every model maps a float batch (N, 3, h, w) in [0, 1] to (N, 3, SCALE*h, SCALE*w). The first three
are the tutorial's encoder-decoders, layer for layer (fixed 8x8 inputs); `SRResNet` is this
project's super-resolution network (EDSR body + ESPCN sub-pixel upsampling + a residual over bicubic).

A weights file is a dict `{"arch", "options", "state_dict"}` read tensors-only (no code runs), so a
file alone rebuilds its model.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from sr4x.architectures import ARCHITECTURES, SCALE
from sr4x.atomic import torch_save
from sr4x.errors import ParamsError


class FC(nn.Module):
    """The tutorial's fully connected autoencoder: 192 -> 64 -> 3072, sigmoid output."""

    def __init__(self) -> None:
        super().__init__()
        widths = [192, 512, 256, 128, 64, 128, 256, 512]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        layers += [nn.Linear(512, 3 * 32 * 32), nn.Sigmoid(), nn.Unflatten(1, (3, 32, 32))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv(nn.Module):
    """The tutorial's small convolutional encoder (-> 128x2x2) and transposed-conv decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64x4x4
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 128x2x2
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 2, stride=2), nn.ReLU(),  # 64x4x4
            nn.ConvTranspose2d(64, 32, 2, stride=2), nn.ReLU(),  # 32x8x8
            nn.ConvTranspose2d(32, 3, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 3x16x16
            nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 3x32x32
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class ResNet(nn.Module):
    """The tutorial's ResNet18 encoder (3x3 stem, no avgpool/fc; -> 512x1x1) and a 5-step x2 decoder."""

    def __init__(self) -> None:
        super().__init__()
        backbone = resnet18(weights=None)
        backbone.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1)
        self.encoder = nn.Sequential(*list(backbone.children())[:-2])  # drop avgpool and fc
        self.decoder = nn.Sequential(
            _up_block(512, 256), _up_block(256, 128), _up_block(128, 64), _up_block(64, 32),  # 32x16x16
            nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1), nn.Sigmoid(),  # 3x32x32
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ResidualBlock(nn.Module):
    """EDSR's block: conv-ReLU-conv plus the identity, with no BatchNorm."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Super-resolution network: a residual body at 8x8, PixelShuffle(4), plus the bicubic upsample.

    The last conv starts at zero, so an untrained model outputs exactly the bicubic upsample and
    training only ever has to learn the correction.
    """

    def __init__(self, width: int = 64, depth: int = 8, scale: int = SCALE) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(depth)], nn.Conv2d(width, width, 3, padding=1))
        self.tail = nn.Conv2d(width, 3 * scale**2, 3, padding=1)
        self.upsample = nn.PixelShuffle(scale)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        features = self.head(x)
        features = features + self.body(features)
        return base + self.upsample(self.tail(features))


def interpolate_weights(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """ESRGAN's network interpolation (net_interp.py): every tensor (1 - alpha) * a + alpha * b."""
    if a.keys() != b.keys():
        raise ValueError("the two state dicts hold different tensors")
    return {k: torch.lerp(a[k].float(), b[k].float(), alpha) for k in a}


def build_model(arch: str, **options: int) -> nn.Module:
    """Instantiate architecture `arch` (its class named in `ARCHITECTURES`) with its options from params.yaml."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    return globals()[ARCHITECTURES[arch].model](**options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_weights(path: str | os.PathLike, arch: str, options: Mapping[str, int], model: nn.Module) -> None:
    """Atomically write `model`'s tensors with the architecture and options that rebuild it."""
    torch_save(path, {"arch": arch, "options": dict(options), "state_dict": model.state_dict()})


def read_weights(path: str | os.PathLike) -> tuple[str, dict[str, int], dict[str, torch.Tensor]]:
    """(arch, options, state dict) of a weights file written by `save_weights`."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    if not (isinstance(saved, dict) and {"arch", "options", "state_dict"} <= saved.keys()):
        raise ValueError("not a weights file of this project (a dict of arch, options and state_dict)")
    return saved["arch"], dict(saved["options"]), saved["state_dict"]


def load_trained(weights: str | os.PathLike, arch: str | None = None,
                 options: Mapping[str, int] | None = None) -> tuple[str, nn.Module]:
    """The architecture's name and the model of a weights file, on the CPU.

    `arch` and `options`, where given, are what the caller expects (a stage: params.yaml) and must
    match what the file says.
    """
    saved_arch, saved_options, state = read_weights(weights)
    expected = (arch, dict(options) if options is not None else saved_options)
    if arch is not None and (saved_arch, saved_options) != expected:
        raise ParamsError(f"{weights}: weights of {saved_arch} {saved_options}, expected {arch} {dict(options or {})}; "
                          f"retrain with `dvc repro train@{arch}`")
    model = build_model(saved_arch, **saved_options)
    model.load_state_dict(state)
    return saved_arch, model
