import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from interruption import killed_in_epoch
from torch._dynamo.utils import counters

import sr4x.training as training
from sr4x import devices
from sr4x.config import TrainParams
from sr4x.devices import SpeedOptions
from sr4x.models import build_model
from sr4x.pairs import make_pairs
from sr4x.provenance import fingerprint
from sr4x.training import fit, setup_run

# precision forced: `auto` trains sr in bf16 on a CPU with native bf16 and in fp32 elsewhere
PARAMS = TrainParams(epochs=3, batch_size=16, lr=1e-3, seed=0, device="cpu", threads=1, precision="fp32")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(80, 32, 32, 3), dtype=np.uint8)
    pairs = make_pairs(images, rng.integers(0, 10, 80))
    return pairs.head(64), pairs


def run(data, checkpoint, params=PARAMS, arch="conv"):
    _, _, options = setup_run(params, arch)
    model = build_model(arch)
    log = fit(model, data[0], data[1], params, options, checkpoint, fingerprint(params, options.values()), arch)
    return model.state_dict(), log


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_log_has_one_row_per_epoch_and_training_reduces_loss(data, tmp_path):
    _, log = run(data, tmp_path / "ckpt.pt", dataclasses.replace(PARAMS, epochs=4, lr=3e-3))
    assert [row["epoch"] for row in log] == [1, 2, 3, 4]
    assert log[-1]["train_mse"] < log[0]["train_mse"]


def test_same_seed_gives_bit_identical_weights(data, tmp_path):
    a, log_a = run(data, tmp_path / "a.pt")
    b, log_b = run(data, tmp_path / "b.pt")
    assert same_weights(a, b) and log_a == log_b
    c, _ = run(data, tmp_path / "c.pt", dataclasses.replace(PARAMS, seed=1))
    assert not same_weights(a, c)


def test_each_epoch_is_shuffled_anew(data, monkeypatch, tmp_path):
    orders = []
    real = torch.randperm
    monkeypatch.setattr(training.torch, "randperm", lambda *a, **k: orders.append(real(*a, **k)) or orders[-1])
    run(data, tmp_path / "ckpt.pt")
    assert len(orders) == 3 and not torch.equal(orders[0], orders[1])


@pytest.mark.parametrize("arch, precision", [("conv", "fp32"), ("sr", "fp32"), ("sr", "bf16")])
def test_interrupted_run_resumes_to_the_same_result(arch, precision, data, tmp_path):
    params = dataclasses.replace(PARAMS, schedule="onecycle", precision=precision)  # the schedule resumes too
    uninterrupted, log_full = run(data, tmp_path / "full.pt", params, arch)

    with killed_in_epoch(3):
        run(data, tmp_path / "ckpt.pt", params, arch)
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert len(saved["log"]) == 2

    resumed, log_resumed = run(data, tmp_path / "ckpt.pt", params, arch)
    assert same_weights(uninterrupted, resumed)
    assert log_resumed == log_full


def test_checkpoint_of_other_params_is_not_reused(data, tmp_path, capsys):
    run(data, tmp_path / "ckpt.pt", dataclasses.replace(PARAMS, epochs=2))
    changed = dataclasses.replace(PARAMS, epochs=2, lr=1e-2)
    weights, log = run(data, tmp_path / "ckpt.pt", changed)
    assert "starting fresh" in capsys.readouterr().out
    fresh, fresh_log = run(data, tmp_path / "other.pt", changed)
    assert same_weights(weights, fresh) and log == fresh_log


def test_unreadable_checkpoint_is_discarded(data, tmp_path, capsys):
    (tmp_path / "ckpt.pt").write_bytes(b"truncated")
    _, log = run(data, tmp_path / "ckpt.pt", dataclasses.replace(PARAMS, epochs=1))
    assert len(log) == 1 and "ignoring unreadable checkpoint" in capsys.readouterr().out


def test_bf16_training_runs_and_stays_close(data, tmp_path):
    _, log32 = run(data, tmp_path / "a.pt", dataclasses.replace(PARAMS, epochs=2))
    _, log16 = run(data, tmp_path / "b.pt", dataclasses.replace(PARAMS, epochs=2, precision="bf16"))
    assert log16[-1]["test_mse"] == pytest.approx(log32[-1]["test_mse"], rel=0.05)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_per_epoch_test_pass_runs_at_the_training_precision(precision, dtype, data, tmp_path):
    params = dataclasses.replace(PARAMS, epochs=1, precision=precision, crop_dead_taps=False)  # no extra fp32 pass
    _, _, options = setup_run(params, "conv")
    model = build_model("conv")
    seen = []  # (training mode, output dtype) of the first conv at every call
    model.encoder[0].register_forward_hook(lambda m, args, out: seen.append((m.training, out.dtype)))
    fit(model, data[0], data[1], params, options, tmp_path / "ckpt.pt", fingerprint(params), "conv")
    assert {d for training_mode, d in seen if not training_mode} == {dtype}


def test_bf16_evaluation_is_close_to_fp32(data):
    torch.manual_seed(0)
    model = build_model("conv")
    fp32 = training.evaluate_mse(model, data[1], 16)
    assert training.evaluate_mse(model, data[1], 16, bf16=True) == pytest.approx(fp32, rel=0.01)


def test_dihedral_augmentation_transforms_input_and_target_alike():
    from sr4x.inference import downscale_matrix

    a = downscale_matrix(8, 32)
    high = torch.rand(4, 3, 32, 32)
    low = a @ high @ a.T  # the exact float downscale
    seen = set()
    for seed in range(12):
        aug_low, aug_high = training.dihedral(low, high, torch.Generator().manual_seed(seed))
        assert torch.allclose(a @ aug_high @ a.T, aug_low, atol=1e-5)  # still a valid pair
        seen.add(aug_high.flatten()[:4].tolist().__repr__())
    assert len(seen) > 4  # several of the 8 transforms occur


def test_augmented_training_is_deterministic_and_differs(data, tmp_path):
    params = dataclasses.replace(PARAMS, epochs=2, augment=True)
    a, _ = run(data, tmp_path / "a.pt", params)
    b, _ = run(data, tmp_path / "b.pt", params)
    plain, _ = run(data, tmp_path / "c.pt", dataclasses.replace(params, augment=False))
    assert same_weights(a, b) and not same_weights(a, plain)


def test_fused_and_foreach_adam_train_to_nearly_the_same_weights(data, tmp_path):
    fused, _ = run(data, tmp_path / "a.pt", dataclasses.replace(PARAMS, fused_adam=True))
    plain, _ = run(data, tmp_path / "b.pt", dataclasses.replace(PARAMS, fused_adam=False))
    assert all(torch.allclose(fused[k].float(), plain[k].float(), atol=1e-4) for k in fused)


def test_compiled_training_matches_eager_and_checkpoints_the_plain_model(data, monkeypatch, tmp_path):
    calls = []
    real_compile = torch.compile
    monkeypatch.setattr(training.torch, "compile", lambda *a, **k: calls.append(k) or real_compile(*a, **k))
    params = dataclasses.replace(PARAMS, epochs=2, batch_size=24)  # 64 images: a last batch of 16, its own graph
    eager, eager_log = run(data, tmp_path / "a.pt", dataclasses.replace(params, compile=False))
    assert calls == []
    counters.clear()
    weights, log = run(data, tmp_path / "b.pt", dataclasses.replace(params, compile=True))
    assert calls == [{"mode": None, "dynamic": False}]  # CUDA graphs are for CUDA only
    # train (64 images): batches of 24 and a last of 16; the test pass (80) at the training batch: 24 and 8
    assert counters["stats"]["unique_graphs"] == 4  # every shape compiled, none dropped
    assert weights.keys() == eager.keys()  # no `_orig_mod.` prefix: checkpoints and models/ARCH.pt as before
    assert all(torch.allclose(weights[k].float(), eager[k].float(), atol=1e-4) for k in eager)
    for row, eager_row in zip(log, eager_log, strict=True):
        assert row == pytest.approx(eager_row, rel=1e-4)


def test_compile_on_cuda_captures_cuda_graphs(monkeypatch):
    calls = []
    monkeypatch.setattr(training.torch, "compile", lambda model, **k: calls.append(k) or model)
    model = build_model("fc")
    options = SpeedOptions("fp32", True, True, False, compile=False)
    assert training.compiled(model, options, "cuda") is model
    training.compiled(model, dataclasses.replace(options, compile=True), "cuda")
    assert calls == [{"mode": "reduce-overhead", "dynamic": False}]


def test_an_unknown_schedule_is_refused_not_read_as_constant():
    optimizer = torch.optim.Adam(build_model("fc").parameters())
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        training.make_scheduler(optimizer, "linear", 1e-3, 10)


@pytest.mark.parametrize("cores, workers, threads",
                         [(2, 0, 2), (2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 4, 4), (16, 3, 5)])
def test_default_threads_share_the_cores_between_queue_workers(cores, workers, threads):
    assert devices.default_threads(cores, workers) == threads


def test_queue_workers_counts_dvc_queue_worker_processes(tmp_path):
    def process(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(1, "/sbin/init")
    process(20, "/venv/bin/python", "/venv/bin/dvc", "exp", "queue-worker", "dvc-exp-3f2a1b-1@localhost", "--clean")
    process(21, "/venv/bin/python", "/venv/bin/dvc", "exp", "queue-worker", "dvc-exp-3f2a1b-2@localhost")
    process(30, "python", "-m", "stages.train", "queue-workers")  # an argument only resembling the name
    (tmp_path / "self").mkdir()
    assert devices.queue_workers(tmp_path) == 2
    assert devices.queue_workers(tmp_path / "missing") == 0


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_queue_workers_sees_a_real_process():
    before = devices.queue_workers()
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "exp", "queue-worker", "x@localhost"])
    try:
        time.sleep(0.2)
        assert devices.queue_workers() == before + 1
    finally:
        worker.kill()
        worker.wait()
