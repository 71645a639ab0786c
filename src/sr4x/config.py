"""params.yaml -> frozen, validated dataclasses.

Every stage loads the whole file through `load_params` before doing any work, so a misspelt
key or an out-of-range value anywhere stops the stage at once with one message that names
the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sr4x.architectures import ARCHITECTURES, SCALE
from sr4x.errors import ParamsError

SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
START_FROM = ("scratch", "sr")  # how a folder source's sr begins: seeded weights, or the CIFAR-trained sr
AUTO = "auto"  # a speed option chosen per device type and architecture (devices.py)
GAN_MODEL = "sr_gan"  # `sr` fine-tuned adversarially: a model of architecture sr with weights of its own
MODELS = (*ARCHITECTURES, GAN_MODEL)  # every trained upscaler the pipeline evaluates
# The lists params.yaml holds: their element types, and an example for messages.
LIST_ITEMS = {"tuple[str, ...]": str, "tuple[int, ...]": int, "tuple[float, ...]": (int, float)}
LIST_EXAMPLES = {"tuple[str, ...]": "a list of names, such as [sr]", "tuple[int, ...]": "a list of integers",
                 "tuple[float, ...]": "a list of numbers"}


@dataclasses.dataclass(frozen=True)
class DownloadParams:
    """Where the CIFAR-10 python archive comes from: an http(s)/file URL or a local path (params.yaml names
    the official archive), and its md5. Both are required."""

    url: str
    md5: str


@dataclasses.dataclass(frozen=True)
class DataParams:
    """Limits on the images used, for short runs; 0 means the whole split."""

    train_images: int = 0
    test_images: int = 0


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Optimisation settings shared by every architecture (a model may override them)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "constant"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    # Speed options: "auto" picks per device type and architecture (devices.py); a value is honoured.
    precision: str = AUTO
    channels_last: bool | str = AUTO
    fused_adam: bool | str = AUTO
    crop_dead_taps: bool | str = AUTO
    compile: bool | str = AUTO
    augment: bool = False


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """One architecture: its constructor options and its overrides of `train`."""

    options: Mapping[str, int]
    train: TrainParams


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """Test-split evaluation and figures."""

    batch_size: int = 500
    samples: int = 6
    self_ensemble: tuple[str, ...] = ()  # models whose outputs are averaged over 8 flips/rotations
    consistency: tuple[str, ...] = ()  # models whose outputs are projected to match the input


@dataclasses.dataclass(frozen=True)
class JudgeParams:
    """The CIFAR-10 classifier that grades upscaled images (judge.py): airbench's recipe. Its device and speed
    options are `train`'s."""

    epochs: int = 8
    batch_size: int = 512
    lr: float = 0.4  # peak of the triangular schedule
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    widths: tuple[int, ...] = (32, 128, 128)
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class GanParams:
    """sr_gan: `sr` fine-tuned adversarially (gan.py), and the network interpolations scored beside it. Its device
    and speed options are `sr`'s."""

    epochs: int = 2
    epoch_images: int = 25000  # training pairs drawn afresh each epoch; 0 (or more than there are) = all
    batch_size: int = 64
    lr: float = 1e-4  # Adam (0.9, 0.99), generator and discriminator
    pixel_weight: float = 1.0  # of the L1 loss
    adversarial_weight: float = 0.1  # of the generator's GAN loss
    ema: float = 0.999  # decay of the generator's moving average, which is what sr_gan.pt holds
    discriminator_width: int = 32
    seed: int = 0
    interpolation: tuple[float, ...] = (0.25, 0.5, 0.75)  # alphas of (1 - alpha) sr + alpha sr_gan scored


@dataclasses.dataclass(frozen=True)
class SourceParams:
    """A folder of your own images as a data source (docs/own-images.md): how it is split and cut, and how `sr`
    trains on it (`train` overrides models.sr.train). Every key but `train` is required: dvc.yaml lists them all."""

    folder: str  # a folder in the repository, tracked with `dvc add`
    test_fraction: float  # share of images held out, chosen by a hash of each file's contents
    patch: int  # side of the high-resolution sub-images cut for training, in pixels
    stride: int  # step between sub-images
    flat_threshold: float  # sub-images whose pixel standard deviation (0-255) is below this are dropped
    skip_bad: bool  # skip unreadable or unusable files (listed with their reasons) instead of refusing
    crop: int  # side of the random high-resolution crop each training sample takes from a sub-image
    start_from: str  # "scratch", or "sr": fine-tune the CIFAR-trained sr (models/sr.pt)
    train: TrainParams = TrainParams()


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    download: DownloadParams
    data: DataParams
    train: TrainParams
    models: Mapping[str, ModelParams]
    evaluate: EvaluateParams
    judge: JudgeParams = JudgeParams()
    gan: GanParams = GanParams()
    sources: Mapping[str, SourceParams] = dataclasses.field(default_factory=dict)


def _fail(key: str, value: Any, allowed: str) -> ParamsError:
    return ParamsError(f"params.yaml: invalid {key}={value!r}; allowed: {allowed}")


def _build(cls: type, raw: Any, prefix: str, base: Any = None) -> Any:
    """Build dataclass `cls` from mapping `raw`, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail(prefix, raw, "a mapping of keys to values")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown key {prefix}.{unknown[0]}; allowed keys in {prefix}: "
            + ", ".join(fields)
        )
    values = {}
    for name, field in fields.items():
        default = getattr(base, name) if base is not None else field.default
        if name not in raw and default is dataclasses.MISSING:
            raise ParamsError(f"params.yaml: missing key {prefix}.{name}")
        value = raw.get(name, default)
        kind = {"int": int, "float": float, "str": str, "bool": bool, "bool | str": bool,
                **dict.fromkeys(LIST_ITEMS, (list, tuple)), "TrainParams": TrainParams}[field.type]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if field.type == "bool | str":  # a switch that may be left to the device: true, false or auto
            ok = ok or value == AUTO
        item = LIST_ITEMS.get(field.type)
        if item is not None:  # a list, kept as a tuple so that params stay immutable
            ok = ok and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
            value = tuple(float(v) if field.type == "tuple[float, ...]" else v for v in value) if ok else value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            expected = (LIST_EXAMPLES[field.type] if item is not None else "true, false or auto"
                        if field.type == "bool | str" else f"a value of type {field.type}")
            raise _fail(f"{prefix}.{name}", value, expected)
        values[name] = value
    return cls(**values)


def _check_train(t: TrainParams, prefix: str) -> None:
    if t.epochs < 1:
        raise _fail(f"{prefix}.epochs", t.epochs, "an integer >= 1")
    if t.batch_size < 1:
        raise _fail(f"{prefix}.batch_size", t.batch_size, "an integer >= 1")
    if not t.lr > 0:
        raise _fail(f"{prefix}.lr", t.lr, "a number > 0")
    if t.schedule not in SCHEDULES:
        raise _fail(f"{prefix}.schedule", t.schedule, ", ".join(SCHEDULES))
    if t.precision not in PRECISIONS:
        raise _fail(f"{prefix}.precision", t.precision, ", ".join(PRECISIONS))
    if t.threads < 0:
        raise _fail(f"{prefix}.threads", t.threads, "0 (cores / running DVC queue workers) or a positive count")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", t.device):
        raise _fail(f"{prefix}.device", t.device, "auto, cpu, cuda, cuda:N or mps")


def _build_models(raw: Any, shared: TrainParams) -> dict[str, ModelParams]:
    if not isinstance(raw, Mapping):
        raise _fail("models", raw, "a mapping from architecture name to its settings")
    unknown = sorted(set(raw) - set(ARCHITECTURES))
    if unknown:
        raise _fail("models", unknown[0], "architectures " + ", ".join(ARCHITECTURES))
    models = {}
    for arch in ARCHITECTURES:
        entry = dict(raw.get(arch) or {})
        overrides = entry.pop("train", None)
        options = {}
        for name, value in entry.items():
            bounds = ARCHITECTURES[arch].options
            if name not in bounds:
                allowed = ", ".join(["train", *bounds])
                raise ParamsError(
                    f"params.yaml: unknown key models.{arch}.{name}; allowed keys in models.{arch}: {allowed}"
                )
            low = bounds[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise _fail(f"models.{arch}.{name}", value, f"an integer >= {low}")
            options[name] = value
        train = _build(TrainParams, overrides, f"models.{arch}.train", base=shared)
        _check_train(train, f"models.{arch}.train")
        models[arch] = ModelParams(options=options, train=train)
    return models


def _build_sources(raw: Any, sr_train: TrainParams) -> dict[str, SourceParams]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail("sources", raw, "a mapping from a source's name to its settings")
    sources = {}
    for name, entry in raw.items():
        prefix = f"sources.{name}"
        if not (isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+", name)):
            raise _fail("sources", name, "names of lowercase letters, digits and underscores")
        entry = dict(entry or {})
        train = _build(TrainParams, entry.pop("train", None), f"{prefix}.train", base=sr_train)
        _check_train(train, f"{prefix}.train")
        source = _build(SourceParams, {**entry, "train": train}, prefix)
        folder = Path(source.folder)
        if folder.is_absolute() or ".." in folder.parts or not source.folder.strip():
            raise _fail(f"{prefix}.folder", source.folder, "a folder inside the repository, as a relative path")
        if not 0 < source.test_fraction < 1:
            raise _fail(f"{prefix}.test_fraction", source.test_fraction, "a number between 0 and 1")
        for key, low in (("patch", 4 * SCALE), ("stride", SCALE), ("crop", 2 * SCALE)):
            value = getattr(source, key)
            if value < low or value % SCALE:
                raise _fail(f"{prefix}.{key}", value, f"a multiple of {SCALE}, at least {low}")
        if source.crop > source.patch:
            raise _fail(f"{prefix}.crop", source.crop, f"at most {prefix}.patch ({source.patch})")
        if source.start_from not in START_FROM:
            raise _fail(f"{prefix}.start_from", source.start_from, ", ".join(START_FROM))
        if source.flat_threshold < 0:
            raise _fail(f"{prefix}.flat_threshold", source.flat_threshold, "a number >= 0 (0 keeps every patch)")
        sources[name] = source
    return sources


def parse_params(raw: Any) -> Params:
    """Validate the parsed YAML of params.yaml and return it as frozen dataclasses."""
    if not isinstance(raw, Mapping):
        raise ParamsError("params.yaml: expected a mapping of parameter groups at the top level")
    groups = ("download", "data", "train", "models", "evaluate", "judge", "gan", "sources")
    unknown = sorted(set(raw) - set(groups))
    if unknown:
        raise ParamsError(f"params.yaml: unknown group {unknown[0]}; allowed groups: " + ", ".join(groups))
    download = _build(DownloadParams, raw.get("download"), "download")
    if not re.fullmatch(r"[0-9a-f]{32}", download.md5):
        raise _fail("download.md5", download.md5, "32 lowercase hexadecimal digits")
    data = _build(DataParams, raw.get("data"), "data")
    for name in ("train_images", "test_images"):
        if getattr(data, name) < 0:
            raise _fail(f"data.{name}", getattr(data, name), "0 (the whole split) or a positive count")
    train = _build(TrainParams, raw.get("train"), "train")
    _check_train(train, "train")
    models = _build_models(raw.get("models", {}), train)
    evaluate = _build(EvaluateParams, raw.get("evaluate"), "evaluate")
    if evaluate.batch_size < 1:
        raise _fail("evaluate.batch_size", evaluate.batch_size, "an integer >= 1")
    if evaluate.samples < 1:
        raise _fail("evaluate.samples", evaluate.samples, "an integer >= 1")
    for key in ("self_ensemble", "consistency"):
        for name in getattr(evaluate, key):
            if name not in MODELS:
                raise _fail(f"evaluate.{key}", name, "a list of models among " + ", ".join(MODELS))
    judge = _build(JudgeParams, raw.get("judge"), "judge")
    _check_positive(judge, "judge", ("epochs", "batch_size", "lr"))
    if not 0 <= judge.label_smoothing < 1:
        raise _fail("judge.label_smoothing", judge.label_smoothing, "a number in [0, 1)")
    if judge.weight_decay < 0:
        raise _fail("judge.weight_decay", judge.weight_decay, "a number >= 0")
    if len(judge.widths) != 3 or min(judge.widths) < 1:
        raise _fail("judge.widths", list(judge.widths), "three positive integers, the widths of the conv groups")
    gan = _build(GanParams, raw.get("gan"), "gan")
    _check_positive(gan, "gan", ("epochs", "batch_size", "lr", "discriminator_width"))
    if gan.epoch_images < 0:
        raise _fail("gan.epoch_images", gan.epoch_images, "0 (all) or a positive count")
    if gan.pixel_weight < 0 or gan.adversarial_weight < 0:
        key = "pixel_weight" if gan.pixel_weight < 0 else "adversarial_weight"
        raise _fail(f"gan.{key}", getattr(gan, key), "a number >= 0")
    if not 0 <= gan.ema < 1:
        raise _fail("gan.ema", gan.ema, "a number in [0, 1)")
    if any(not 0 < a < 1 for a in gan.interpolation):
        raise _fail("gan.interpolation", list(gan.interpolation), "a list of numbers between 0 and 1 (exclusive)")
    return Params(download, data, train, models, evaluate, judge, gan,
                  _build_sources(raw.get("sources"), models["sr"].train))


def _check_positive(group: Any, prefix: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if not getattr(group, key) > 0:
            raise _fail(f"{prefix}.{key}", getattr(group, key), "a number > 0")


def architecture_of(model: str) -> str:
    """The architecture of a model in `MODELS`: sr_gan is an sr."""
    return "sr" if model == GAN_MODEL else model


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    with open(path) as f:
        return parse_params(yaml.safe_load(f))


def check_limit(key: str, limit: int, available: int) -> int:
    """Resolve a data limit against the split size: 0 means all; more than exists is an error."""
    if limit > available:
        raise _fail(key, limit, f"0 (all) or at most {available}, the size of the split")
    return limit or available
