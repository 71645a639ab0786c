"""`auto` speed options: resolved per device type and architecture, never to a combination refused there."""
import dataclasses

import numpy as np
import pytest
import torch

import src.devices as devices
from src.config import ARCHITECTURES, AUTO, ParamsError, load_params
from src.devices import AUTO_OPTIONS, DEVICE_TYPES, SPEED_OPTIONS, check_speed_options, resolve_speed_options
from src.models import build_model
from src.pairs import make_pairs
from src.training import compiled, fit, prepare_model, setup_run


@pytest.fixture
def simulate(monkeypatch):
    """Make this machine report one device type as available (and nothing better than it)."""
    def use(device_type: str) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: device_type == "cuda")
        monkeypatch.setattr(torch.cuda, "device_count", lambda: int(device_type == "cuda"))
        monkeypatch.setattr(devices, "mps_available", lambda: device_type == "mps")
        monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # would initialise the simulated CUDA
    return use


@pytest.mark.parametrize("device_type", DEVICE_TYPES)
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_committed_defaults_set_up_on_every_device(device_type, arch, simulate):
    simulate(device_type)
    train = load_params().models[arch].train
    device, resolved = setup_run(train, arch)  # the train stage's setup: device, options, refusal check
    assert device.type == device_type
    assert AUTO not in {getattr(resolved, name) for name in SPEED_OPTIONS}
    switches = {resolved.channels_last, resolved.fused_adam, resolved.crop_dead_taps, resolved.compile}
    assert resolved.precision in ("fp32", "bf16") and switches <= {True, False}
    model = build_model(arch, **load_params().models[arch].options)
    prepare_model(model, resolved, torch.rand(1, 3, 8, 8))  # applies them (on this CPU)
    compiled(model, resolved, device_type)


def test_cpu_auto_is_exactly_the_settings_the_committed_models_were_trained_with():
    params = load_params()
    resolved = {arch: resolve_speed_options(params.models[arch].train, arch, "cpu") for arch in ARCHITECTURES}
    options = {arch: tuple(getattr(r, name) for name in SPEED_OPTIONS) for arch, r in resolved.items()}
    assert options == {
        "fc": ("bf16", True, True, True, False), "conv": ("fp32", True, True, True, False),
        "resnet": ("fp32", True, True, True, False), "sr": ("bf16", True, True, True, False),
    }


def test_auto_never_picks_a_combination_refused_on_its_device():
    train = load_params().train
    for device_type in DEVICE_TYPES:
        for arch in ARCHITECTURES:
            check_speed_options(torch.device(device_type), resolve_speed_options(train, arch, device_type))


def test_explicit_values_are_honoured():
    train = dataclasses.replace(load_params().train, precision="bf16", crop_dead_taps=True, channels_last=False)
    resolved = resolve_speed_options(train, "resnet", "cuda")
    assert (resolved.precision, resolved.crop_dead_taps, resolved.channels_last) == ("bf16", True, False)
    check_speed_options(torch.device("cuda"), resolved)  # bf16 without channels_last trains on CUDA


def test_explicit_bf16_with_channels_last_on_cuda_is_refused_naming_the_keys(simulate):
    simulate("cuda")
    train = dataclasses.replace(load_params().models["sr"].train, precision="bf16", channels_last=True)
    with pytest.raises(ParamsError, match="precision bf16 with channels_last true failed to train sr on CUDA.*"
                                          "train.channels_last=false.*train.precision"):
        setup_run(train, "sr")
    check_speed_options(torch.device("cpu"), resolve_speed_options(train, "sr", "cpu"))  # the CPU trains it


def test_the_table_covers_every_device_option_and_model_and_says_what_chose_it():
    assert set(AUTO_OPTIONS) == set(DEVICE_TYPES)
    for table in AUTO_OPTIONS.values():
        assert set(table) == set(SPEED_OPTIONS)
        for choice in table.values():
            assert "*" in choice.values and set(choice.values) - {"*"} <= set(ARCHITECTURES)
            assert choice.measured


@pytest.mark.parametrize("option", SPEED_OPTIONS)
def test_an_option_left_auto_stops_training_before_it_starts(option, tmp_path):
    params = dataclasses.replace(resolve_speed_options(load_params().train, "fc", "cpu"), **{option: AUTO})
    pairs = make_pairs(np.zeros((2, 32, 32, 3), dtype=np.uint8), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=f"speed options still auto: {option}; resolve them first"):
        fit(build_model("fc"), pairs, pairs, params, tmp_path / "ckpt.pt", "run", "fc")
    assert not (tmp_path / "ckpt.pt").exists()
