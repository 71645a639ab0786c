"""Trained models on disk: weights files that describe themselves (architecture, options, tensors).

A weights file is a dict `{"arch", "options", "state_dict"}` read tensors-only (no code runs),
so a file alone rebuilds its model. Files written before that format hold the state dict alone;
they load when the architecture and options are given.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from src.atomic import torch_save
from src.errors import ParamsError
from src.models import build_model


def save_weights(path: str | os.PathLike, arch: str, options: Mapping[str, int], model: nn.Module) -> None:
    """Atomically write `model`'s tensors with the architecture and options that rebuild it."""
    torch_save(path, {"arch": arch, "options": dict(options), "state_dict": model.state_dict()})


def read_weights(path: str | os.PathLike) -> tuple[str | None, dict[str, int] | None, dict[str, Any]]:
    """(arch, options, state dict) of a weights file; arch and options are None in the older format."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    if isinstance(saved, dict) and {"arch", "options", "state_dict"} <= saved.keys():
        return saved["arch"], dict(saved["options"]), saved["state_dict"]
    return None, None, saved


def load_trained(weights: str | os.PathLike, arch: str | None = None,
                 options: Mapping[str, int] | None = None) -> tuple[str, nn.Module]:
    """The architecture's name and the model of a weights file, on the CPU.

    `arch` and `options`, where given, are what the caller expects (a stage: params.yaml) and must
    match what the file says; a file in the older format needs both.
    """
    saved_arch, saved_options, state = read_weights(weights)
    if saved_arch is None:
        if arch is None or options is None:
            raise ParamsError(f"{weights}: weights in the older format (tensors only); name the architecture "
                              "and its options (--model and --params)")
        saved_arch, saved_options = arch, dict(options)
    expected = (arch, dict(options) if options is not None else saved_options)
    if arch is not None and (saved_arch, saved_options) != expected:
        raise ParamsError(f"{weights}: weights of {saved_arch} {saved_options}, expected {arch} {dict(options or {})}; "
                          f"retrain with `dvc repro train@{arch}`")
    model = build_model(saved_arch, **saved_options)
    model.load_state_dict(state)
    return saved_arch, model
