"""The judge, the perceptual scores (FID and KID through torchmetrics) and sr_gan's adversarial fine-tune."""
import json
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from interruption import killed_at_call

import sr4x.gan as gan
import sr4x.judge_training as judge_training
from sr4x.config import GanParams, JudgeParams
from sr4x.devices import SpeedOptions
from sr4x.judge import Classifier, judge_outputs, load_judge, save_judge
from sr4x.models import build_model, interpolate_weights, read_weights, save_weights
from sr4x.net_interp import main as net_interp
from sr4x.pairs import make_pairs, save_pairs, to_float
from sr4x.perception import FeatureDistances

ROOT = Path(__file__).resolve().parents[1]
FP32 = SpeedOptions(precision="fp32", channels_last=False, fused_adam=False, crop_dead_taps=False, compile=False)
GAN = GanParams(epochs=3, epoch_images=32, batch_size=16, discriminator_width=8)
JUDGE = JudgeParams(epochs=3, batch_size=32, widths=(8, 16, 16))


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(80, 32, 32, 3), dtype=np.uint8)
    data = make_pairs(images, rng.integers(0, 10, 80))
    return data.head(64), make_pairs(images[64:], rng.integers(0, 10, 16))


def small_sr():
    torch.manual_seed(1)
    return build_model("sr", width=8, depth=1)


def states(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# FID and KID: torchmetrics' own, fed the judge's features through its custom-extractor interface

def gaussian(n, mean, std, seed):
    return torch.from_numpy(np.random.default_rng(seed).normal(mean, std, size=(n, len(std))))


def test_fid_equals_the_frechet_distance_of_the_two_samples():
    real, fake = gaussian(600, [0, 0, 0], [1, 2, 0.5], 0), gaussian(600, [1, 0, -1], [1.5, 1, 0.5], 1)
    mu1, mu2 = real.mean(0).numpy(), fake.mean(0).numpy()
    s1, s2 = np.cov(real.numpy(), rowvar=False), np.cov(fake.numpy(), rowvar=False)
    # Tr sqrt(S1 S2) as Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric matrix: eigh, not torchmetrics' general eigvals
    values, vectors = np.linalg.eigh(s1)
    root = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum()
    independent = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert FeatureDistances(real)(fake)["fid"] == pytest.approx(independent, rel=1e-4)
    # and near the closed form of the two Gaussians: |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2 for diagonal ones
    assert independent == pytest.approx(2 + (0.5**2 + 1**2 + 0), abs=0.5)


def test_kid_equals_the_unbiased_polynomial_mmd_of_the_two_samples():
    real, fake = gaussian(300, [0, 0], [1, 1], 2), gaussian(300, [0.5, 0], [1, 2], 3)

    def kernel(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    def mean_off_diagonal(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    x, y = real.numpy(), fake.numpy()
    independent = mean_off_diagonal(kernel(x, x)) + mean_off_diagonal(kernel(y, y)) - 2 * kernel(x, y).mean()
    distances = FeatureDistances(real)  # 300 < 1000 images: every subset is the whole set, in some order
    assert distances(fake)["kid"] == pytest.approx(independent, rel=1e-6)
    assert distances(real)["fid"] == pytest.approx(0, abs=1e-6)
    assert distances(fake) == distances(fake)  # the real features survive each reset; KID's subsets are seeded


def test_the_judges_logits_sum_the_image_and_its_mirror_and_its_file_rebuilds_it(pairs, tmp_path):
    torch.manual_seed(0)
    judge = Classifier((8, 16, 16)).eval()
    images = pairs[1].high
    logits, features = judge_outputs(judge, images, bf16=False, batch_size=5)
    x = to_float(images)
    with torch.no_grad():
        expected = judge(x) * 9 + judge(x.flip(-1)) * 9  # without airbench's logit scale
        assert torch.allclose(logits, expected, atol=1e-4)
        assert torch.allclose(features.float(), judge.features(x), atol=1e-5)
    save_judge(tmp_path / "judge.pt", judge)
    assert same(load_judge(tmp_path / "judge.pt").state_dict(), judge.state_dict())


def test_judge_training_is_deterministic_and_resumes_to_the_same_weights(pairs, tmp_path):
    train = pairs[0]
    a, log = judge_training.train_judge(train, JUDGE, False, tmp_path / "a.pt", "run")
    b, _ = judge_training.train_judge(train, JUDGE, False, tmp_path / "b.pt", "run")
    assert len(log) == 3 and same(a.state_dict(), b.state_dict())
    with killed_at_call(judge_training, "augment", 2 * 2 + 1):  # 2 batches an epoch: killed in epoch 3
        judge_training.train_judge(train, JUDGE, False, tmp_path / "c.pt", "run")
    resumed, resumed_log = judge_training.train_judge(train, JUDGE, False, tmp_path / "c.pt", "run")
    assert same(resumed.state_dict(), a.state_dict()) and resumed_log == log


def test_one_gan_step_changes_both_networks_and_the_ema(pairs):
    low, high = pairs[0].batch(torch.arange(16))
    training = gan.GanTraining(small_sr(), GAN, bf16=False, channels_last=False, fused_adam=False)
    before = {name: states(net) for name, net in training.stateful().items() if isinstance(net, torch.nn.Module)}
    losses = training.step(low, high)
    assert set(losses) == {"l1", "adversarial", "discriminator", "d_real", "d_fake"}
    for name, net in training.stateful().items():
        if isinstance(net, torch.nn.Module):
            changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[name][k])]
            assert changed, f"{name} did not change"
    # the EMA moves by (1 - decay) of the way to the generator
    ema, g = training.ema.state_dict(), training.generator.state_dict()
    k = "tail.weight"
    assert torch.allclose(ema[k], before["net_g"][k] + 0.001 * (g[k] - before["net_g"][k]), atol=1e-7)


def test_a_resumed_gan_run_equals_an_uninterrupted_one(pairs, tmp_path):
    train, test = pairs
    ema, log = gan.train_gan(small_sr(), train, test, GAN, FP32, tmp_path / "a.pt", "run")
    assert [row["epoch"] for row in log] == [1, 2, 3] and all(row["discriminator"] > 0 for row in log)
    with killed_at_call(gan.GanTraining, "step", 2 * 2 + 1):  # 2 steps an epoch (32 of 64 pairs): in epoch 3
        gan.train_gan(small_sr(), train, test, GAN, FP32, tmp_path / "b.pt", "run")
    resumed, resumed_log = gan.train_gan(small_sr(), train, test, GAN, FP32, tmp_path / "b.pt", "run")
    assert resumed_log == log and same(resumed.state_dict(), ema.state_dict())
    full, again = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in "ab")
    for key in ("net_g", "net_d", "net_g_ema"):  # both networks and the EMA, as checkpointed
        assert same(full[key], again[key]), key
    assert full["optimizer_d"]["state"] and full["optimizer_g"]["state"]


def test_network_interpolation_is_a_weighted_mean_of_every_tensor():
    a, b = states(small_sr()), {k: v + 1 for k, v in states(small_sr()).items()}
    mid = interpolate_weights(a, b, 0.25)
    assert all(torch.allclose(mid[k], a[k] + 0.25) for k in a)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_weights(a, {"x": torch.zeros(1)}, 0.5)


# Offline: no code path may fetch weights

@pytest.fixture
def no_network(monkeypatch):
    def refused(*args, **kwargs):
        raise OSError("network refused in this test")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(socket, "getaddrinfo", refused)


def test_the_network_is_refused_under_the_fixture(no_network):
    with pytest.raises(OSError, match="network refused"):
        urllib.request.urlopen("http://example.com", timeout=5)


def test_judge_gan_and_perception_stages_run_with_the_network_refused(pairs, tmp_path, monkeypatch, no_network):
    """The three stages in-process in a tiny project, with every connection refused: nothing downloads."""
    import stages.judge
    import stages.perception
    import stages.train_gan

    train, test = pairs
    monkeypatch.chdir(tmp_path)
    for split, data in (("train", train), ("test", test)):
        save_pairs(tmp_path / f"data/prepared/{split}.pt", data)
    info = {"train": len(train), "test": len(test), "classes": list("abcdefghij")}
    (tmp_path / "data/prepared/info.json").write_text(json.dumps(info))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(device="cpu", threads=1, precision="fp32")
    params["models"]["sr"].update(width=8, depth=1)
    params["judge"].update(epochs=2, batch_size=32, widths=[8, 16, 16])
    params["gan"].update(epochs=1, batch_size=16, discriminator_width=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for arch in ("fc", "conv", "resnet"):
        save_weights(tmp_path / f"models/{arch}.pt", arch, {}, build_model(arch))
    save_weights(tmp_path / "models/sr.pt", "sr", {"width": 8, "depth": 1}, small_sr())
    assert "judge: 2 epochs" in stages.judge.main()
    assert "train_gan: 1 epochs" in stages.train_gan.main()
    assert "perception: 12 points" in stages.perception.main()
    points = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "metrics/perception").iterdir()}
    assert set(points) == {"original", "nearest", "bilinear", "bicubic", "fc", "conv", "resnet", "sr", "sr_gan",
                           "interp_0.25", "interp_0.5", "interp_0.75"}
    assert set(points["sr"]) == {"psnr", "accuracy", "fid", "kid"} and "psnr" not in points["original"]
    assert points["original"]["fid"] == pytest.approx(0, abs=1e-6)


def test_net_interp_writes_the_interpolated_weights_and_refuses_two_architectures(tmp_path, capsys):
    a, b = small_sr(), small_sr()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1)
    save_weights(tmp_path / "a.pt", "sr", {"width": 8, "depth": 1}, a)
    save_weights(tmp_path / "b.pt", "sr", {"width": 8, "depth": 1}, b)
    assert net_interp(["0.5", "--out", str(tmp_path / "mid.pt"), "--a", str(tmp_path / "a.pt"),
                 "--b", str(tmp_path / "b.pt")]) == 0
    arch, options, mid = read_weights(tmp_path / "mid.pt")
    assert (arch, options) == ("sr", {"width": 8, "depth": 1})
    assert torch.allclose(mid["head.weight"], a.state_dict()["head.weight"] + 0.5)
    save_weights(tmp_path / "c.pt", "conv", {}, build_model("conv"))
    assert net_interp(["0.5", "--out", str(tmp_path / "x.pt"), "--a", str(tmp_path / "a.pt"),
                 "--b", str(tmp_path / "c.pt")]) == 2
    assert "holds conv" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
