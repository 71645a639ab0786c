"""`auto` speed options per machine class, joint resolution, and real epochs under each device's rules."""
import contextlib
import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from simulated_machines import MACHINES
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from sr4x import devices
from sr4x.architectures import ARCHITECTURES
from sr4x.config import load_params
from sr4x.devices import (
    AUTO_OPTIONS,
    CPU,
    CPU_BF16,
    CUDA_OLDER,
    CUDA_SM80,
    MACHINE_CLASSES,
    MPS,
    REFUSED,
    SPEED_OPTIONS,
    resolve_speed_options,
)
from sr4x.errors import ParamsError
from sr4x.models import build_model
from sr4x.pairs import make_pairs, to_float
from sr4x.paths import JUDGE
from sr4x.training import compiled, evaluate_mse, make_scheduler, prepare_model, setup_run, train_one_epoch


def test_each_simulated_machine_is_of_its_class_and_the_table_covers_every_class_option_and_model():
    assert {name: m.machine_class for name, m in MACHINES.items()} == {name: name for name in MACHINES}
    assert set(AUTO_OPTIONS) == set(MACHINE_CLASSES)
    for table in AUTO_OPTIONS.values():
        assert set(table) == set(SPEED_OPTIONS)
        for choice in table.values():
            assert "*" in choice.values and set(choice.values) - {"*"} <= {*ARCHITECTURES, JUDGE}
            # the choice and a one-line why; the measurements live in docs/speed.md and docs/gpu.md
            assert choice.why and "\n" not in choice.why and not re.search(r"\d+(\.\d+)?x\b|%", choice.why)


def resolved(arch: str, machine_class: str, **explicit):
    train = dataclasses.replace(load_params().models[arch].train, **explicit)
    return resolve_speed_options(train, arch, MACHINES[machine_class])


def test_bf16_only_where_the_cpu_computes_it_natively():
    assert {arch: resolved(arch, CPU_BF16).precision for arch in ARCHITECTURES} == {
        "fc": "bf16", "conv": "fp32", "resnet": "fp32", "sr": "bf16"}
    assert {resolved(arch, c).precision for arch in ARCHITECTURES for c in (CPU, CUDA_SM80, CUDA_OLDER, MPS)} == {
        "fp32"}
    judge = [resolve_speed_options(load_params().train, JUDGE, MACHINES[c]).precision for c in (CPU_BF16, CPU)]
    assert judge == ["bf16", "fp32"]  # the judge trains and judges in bf16 only where it is native


def test_the_amx_class_keeps_the_options_the_committed_amx_models_were_trained_with():
    options = {arch: tuple(resolved(arch, CPU_BF16).values().values()) for arch in ARCHITECTURES}
    assert options == {
        "fc": ("bf16", True, True, True, False), "conv": ("fp32", True, True, True, False),
        "resnet": ("fp32", True, True, True, False), "sr": ("bf16", True, True, True, False),
    }


@pytest.mark.parametrize("machine_class", MACHINE_CLASSES)
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_auto_never_completes_a_refused_combination(machine_class, arch):
    for precision in ("auto", "fp32", "bf16"):
        for channels_last in ("auto", True, False):
            explicit = {"precision": precision, "channels_last": channels_last}
            try:
                options = resolved(arch, machine_class, **explicit)
            except ParamsError:  # only an explicit refused combination may fail
                set_values = {k: v for k, v in explicit.items() if v != "auto"}
                assert any(machine_class in r.machines and r.values.items() <= set_values.items() for r in REFUSED)
                continue
            values = options.values()
            assert not any(machine_class in r.machines and r.values.items() <= values.items() for r in REFUSED)
            for key, value in explicit.items():
                assert value == "auto" or values[key] == value  # an explicit value is honoured


def test_auto_completes_an_explicit_bf16_on_cuda_without_channels_last():
    options = resolved("conv", CUDA_SM80, precision="bf16")  # channels_last is auto, True on its own
    assert (options.precision, options.channels_last) == ("bf16", False)
    assert "refused" in options.reasons["channels_last"]
    assert resolved("conv", CUDA_SM80).channels_last is True


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_an_explicit_refused_combination_is_one_error_naming_keys_values_model_and_device(arch):
    with pytest.raises(ParamsError) as err:
        resolved(arch, CUDA_SM80, precision="bf16", channels_last=True)
    message = str(err.value)
    assert "precision=bf16 with channels_last=true" in message and "train.channels_last" in message
    assert f"refused for {arch} on cuda:0 (NVIDIA H200, sm_90)" in message
    with pytest.raises(ParamsError, match=r"refused for sr on cuda:0 \(Tesla V100, sm_70\).*sm_80"):
        resolved("sr", CUDA_OLDER, precision="bf16", channels_last=False)


class MPSRules(TorchDispatchMode):
    """Refuse what Apple's MPS backend refuses, on the CPU: any float64 tensor an op takes or makes."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten((args, kwargs, out))[0]:
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64:
                raise RuntimeError(f"{func}: Cannot convert a MPS Tensor to float64 dtype (emulated MPS rules)")
        return out


def test_the_mps_emulation_refuses_float64():
    with MPSRules(), pytest.raises(RuntimeError, match="float64"):
        torch.zeros(2).double()


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    pairs = make_pairs(rng.integers(0, 256, size=(72, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 72))
    return pairs.head(40), pairs


def reference_epoch_mse(model, data, batch_size, seed):
    """The mean of the per-batch losses weighted by batch size, in float64, over the same order (lr=0)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    total = 0.0
    with torch.no_grad():
        for idx in order.split(batch_size):
            out = model(to_float(data.low[idx]))
            total += torch.nn.functional.mse_loss(out.float(), to_float(data.high[idx])).double().item() * len(idx)
    return total / len(data)


@pytest.mark.parametrize("machine_class", MACHINE_CLASSES)
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_a_real_epoch_and_test_pass_under_each_devices_rules_and_auto_options(machine_class, arch, tiny):
    """Every model trains an epoch and runs the per-epoch test pass with the options `auto` picks for each
    machine class (run on this CPU), under MPS's rules for the MPS class; the reported MSEs are exact."""
    train_set, test_set = tiny
    options = resolved(arch, machine_class)
    torch.manual_seed(0)
    model = build_model(arch, **load_params().models[arch].options)
    if arch == "sr":  # away from exactly bicubic, so that the check sees the network's output
        torch.nn.init.normal_(model.tail.weight, std=0.01)
    optimizer = prepare_model(model, options, 0.0, to_float(train_set.low[:1]))  # lr 0: the weights stay
    runner = compiled(model, options, "cpu")
    scheduler = make_scheduler(optimizer, "constant", 0.0, 10)
    expected = reference_epoch_mse(model.train(), train_set, 16, seed=3) if not options.bf16 else None
    with MPSRules() if machine_class == MPS else contextlib.nullcontext():
        got = train_one_epoch(runner, optimizer, scheduler, train_set, 16, torch.Generator().manual_seed(3),
                              "epoch", bf16=options.bf16)
        test_mse = evaluate_mse(runner, test_set, 32, bf16=options.bf16)
    if expected is not None:
        assert got == pytest.approx(expected, rel=1e-6, abs=0)
        with torch.no_grad():
            out = model.eval()(to_float(test_set.low)).clamp(0, 1).double()
        assert test_mse == pytest.approx(((out - to_float(test_set.high).double()) ** 2).mean().item(), rel=1e-6)
    else:  # bf16 autocast: the same computation, rounded
        assert 0 < got < 1 and 0 < test_mse < 1


@pytest.mark.parametrize("machine_class", [CPU, CPU_BF16])
def test_setup_run_resolves_for_the_machine_it_detects(machine_class, monkeypatch):
    monkeypatch.setattr(devices, "native_cpu_bf16", lambda: MACHINES[machine_class].cpu_bf16)
    device, machine, options = setup_run(load_params().models["sr"].train, "sr")
    assert device.type == "cpu" and machine.machine_class == machine_class
    assert options.precision == ("bf16" if machine_class == CPU_BF16 else "fp32")


def test_ask_the_machine_prints_the_device_what_it_detected_and_each_models_options_with_reasons():
    result = subprocess.run([sys.executable, "-m", "sr4x.devices"], capture_output=True, text=True, check=True)
    text = result.stdout
    assert "device auto picks: cpu" in text and torch.backends.cpu.get_cpu_capability() in text
    assert f"{devices.cores()} cores" in text and "CUDA: not available" in text and "MPS:" in text
    for arch in ARCHITECTURES:
        assert f"\n{arch} (train.device=auto):" in text
    assert text.count("precision=") == len(ARCHITECTURES) and "(auto: " in text
