"""Trained models: an architecture rebuilt from its params and loaded with its saved weights."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from src.models import build_model


def load_trained(arch: str, options: Mapping[str, int], weights: str | Path) -> nn.Module:
    """`arch` built with `options`, its weights read tensors-only (no code runs) onto the CPU."""
    model = build_model(arch, **options)
    model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    return model
