import copy

import pytest
import torch
import yaml

from sr4x.config import ParamsError, check_limit, load_params, parse_params
from sr4x.devices import resolve_device

DEFAULTS = yaml.safe_load(open("params.yaml"))


def with_value(path: str, value):
    raw = copy.deepcopy(DEFAULTS)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return raw


def test_committed_params_are_valid():
    params = load_params("params.yaml")
    assert params.train.lr == 0.001 and params.train.epochs == 20 and params.train.batch_size == 128
    assert set(params.models) == {"fc", "conv", "resnet", "sr"}
    # models.ARCH.train overrides only the keys it names
    assert params.models["sr"].train.schedule == "onecycle"
    assert params.models["sr"].train.batch_size == params.train.batch_size
    # the tutorial's models share its settings; speed options are left to the device (src/sr4x/devices.py)
    assert params.models["fc"].train == params.models["conv"].train == params.models["resnet"].train == params.train
    assert {params.train.precision, params.train.channels_last, params.train.fused_adam,
            params.train.crop_dead_taps} == {"auto"}
    assert params.evaluate.self_ensemble == ("sr",) and params.evaluate.consistency == ("sr",)
    # the judge and sr_gan: lists become tuples of their element type
    assert params.judge.widths == (32, 128, 128) and params.gan.interpolation == (0.25, 0.5, 0.75)
    assert parse_params(with_value("judge.widths", [8, 16, 16])).judge.widths == (8, 16, 16)


@pytest.mark.parametrize("path, value, message", [
    ("train.lrr", 0.01, "unknown key train.lrr; allowed keys in train: epochs, batch_size, lr"),
    ("download.mirror", "x", "unknown key download.mirror"),
    ("train.lr", 0, r"invalid train.lr=0.0; allowed: a number > 0"),
    ("train.lr", -1, r"invalid train.lr=-1.0; allowed: a number > 0"),
    ("train.lr", "fast", "invalid train.lr='fast'; allowed: a value of type float"),
    ("train.epochs", 0, "invalid train.epochs=0; allowed: an integer >= 1"),
    ("train.epochs", 2.5, "invalid train.epochs=2.5; allowed: a value of type int"),
    ("train.batch_size", 0, "invalid train.batch_size=0; allowed: an integer >= 1"),
    ("train.schedule", "step", "invalid train.schedule='step'; allowed: constant, onecycle, cosine"),
    ("train.device", "tpu", "invalid train.device='tpu'; allowed: auto, cpu, cuda, cuda:N or mps"),
    ("train.precision", "fp16", "invalid train.precision='fp16'; allowed: auto, fp32, bf16"),
    ("train.threads", -1, "invalid train.threads=-1"),
    ("models.vgg", {}, "invalid models='vgg'; allowed: architectures fc, conv, resnet, sr"),
    ("models.sr.widht", 32, "unknown key models.sr.widht; allowed keys in models.sr: train, width, depth"),
    ("models.sr.width", 0, "invalid models.sr.width=0; allowed: an integer >= 1"),
    ("models.sr.train.lr", -0.1, "invalid models.sr.train.lr=-0.1; allowed: a number > 0"),
    ("models.fc.train", {"epoch": 3}, "unknown key models.fc.train.epoch"),
    ("data.train_images", -5, "invalid data.train_images=-5"),
    ("download.md5", "abc", "invalid download.md5='abc'; allowed: 32 lowercase hexadecimal digits"),
    ("evaluate.batch_size", 0, "invalid evaluate.batch_size=0"),
    ("extra.key", 1, "unknown group extra"),
    ("evaluate.self_ensemble", ["vgg"], "invalid evaluate.self_ensemble='vgg'; allowed: a list of models among fc, "
     "conv, resnet, sr, sr_gan"),
    ("evaluate.consistency", True, r"invalid evaluate.consistency=True; allowed: a list of names, such as \[sr\]"),
    ("evaluate.consistency", [1], r"invalid evaluate.consistency=\[1\]"),
    ("train.fused_adam", "yes", "invalid train.fused_adam='yes'; allowed: true, false or auto"),
    ("models.resnet.train.crop_dead_taps", 1,
     "invalid models.resnet.train.crop_dead_taps=1; allowed: true, false or auto"),
    ("judge.epoch", 3, "unknown key judge.epoch; allowed keys in judge: epochs, batch_size, lr"),
    ("judge.widths", [64, 256], r"invalid judge.widths=\[64, 256\]; allowed: three positive integers"),
    ("judge.widths", [64, 2.5, 8], r"invalid judge.widths=\[64, 2.5, 8\]; allowed: a list of integers"),
    ("judge.label_smoothing", 1, r"invalid judge.label_smoothing=1.0; allowed: a number in \[0, 1\)"),
    ("gan.epochs", 0, "invalid gan.epochs=0; allowed: a number > 0"),
    ("gan.ema", 1, r"invalid gan.ema=1.0; allowed: a number in \[0, 1\)"),
    ("gan.adversarial_weight", -0.1, "invalid gan.adversarial_weight=-0.1; allowed: a number >= 0"),
    ("gan.epoch_images", -1, "invalid gan.epoch_images=-1; allowed: 0 .all. or a positive count"),
    ("gan.interpolation", [0.5, 1], r"invalid gan.interpolation=\[0.5, 1.0\]; allowed: a list of numbers between 0"),
    ("gan.interpolation", ["half"], r"invalid gan.interpolation=\['half'\]; allowed: a list of numbers"),
])
def test_invalid_params_name_key_value_and_what_is_allowed(path, value, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(with_value(path, value))


@pytest.mark.parametrize("key", ["url", "md5"])
def test_the_archive_source_is_named_in_params_only(key):
    raw = copy.deepcopy(DEFAULTS)
    del raw["download"][key]
    with pytest.raises(ParamsError, match=f"missing key download.{key}"):
        parse_params(raw)


def test_data_limit_larger_than_the_split():
    with pytest.raises(ParamsError, match="invalid data.test_images=20000; allowed: 0 .all. or at most 10000"):
        check_limit("data.test_images", 20000, 10000)
    assert check_limit("data.test_images", 0, 10000) == 10000
    assert check_limit("data.test_images", 500, 10000) == 500


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda():
    with pytest.raises(ParamsError, match="invalid train.device='cuda'; this machine has no such CUDA device"):
        resolve_device("cuda")


def test_auto_device_is_available():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}


SOURCE = {"folder": "data/photos", "test_fraction": 0.2, "patch": 128, "stride": 64, "flat_threshold": 2.0,
          "skip_bad": False, "crop": 96, "start_from": "sr"}


def with_source(**changes):
    raw = copy.deepcopy(DEFAULTS)
    raw["sources"] = {"photos": {**SOURCE, **changes}}
    return raw


def test_a_source_trains_sr_with_its_own_overrides_of_srs_recipe():
    params = parse_params(with_source(train={"epochs": 300, "batch_size": 16}))
    source = params.sources["photos"]
    sr = params.models["sr"].train
    assert source.train.epochs == 300 and source.train.batch_size == 16
    assert (source.train.lr, source.train.schedule, source.train.augment) == (sr.lr, sr.schedule, sr.augment)
    assert parse_params(DEFAULTS).sources == {}  # CIFAR-10 only by default


@pytest.mark.parametrize("changes, message", [
    ({"patch": 30}, r"sources.photos.patch=30; allowed: a multiple of 4, at least 16"),
    ({"stride": 2}, r"sources.photos.stride=2; allowed: a multiple of 4, at least 4"),
    ({"crop": 132}, r"sources.photos.crop=132; allowed: at most sources.photos.patch \(128\)"),
    ({"test_fraction": 1.0}, r"sources.photos.test_fraction=1.0; allowed: a number between 0 and 1"),
    ({"folder": "/home/me/photos"}, r"sources.photos.folder='/home/me/photos'; allowed: a folder inside"),
    ({"folder": "../photos"}, r"allowed: a folder inside the repository"),
    ({"flat_threshold": -1}, r"sources.photos.flat_threshold=-1.0; allowed: a number >= 0"),
    ({"colour": "yes"}, r"unknown key sources.photos.colour; allowed keys in sources.photos: folder"),
    ({"train": {"epochs": 0}}, r"sources.photos.train.epochs=0; allowed: an integer >= 1"),
    ({"start_from": "imagenet"}, r"sources.photos.start_from='imagenet'; allowed: scratch, sr"),
])
def test_invalid_source_keys_are_named(changes, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(with_source(**changes))


def test_every_source_key_but_train_is_required():
    raw = with_source()
    del raw["sources"]["photos"]["stride"]
    with pytest.raises(ParamsError, match="missing key sources.photos.stride"):
        parse_params(raw)
    raw = with_source()
    raw["sources"] = {"My Photos": SOURCE}
    with pytest.raises(ParamsError, match="names of lowercase letters, digits and underscores"):
        parse_params(raw)
