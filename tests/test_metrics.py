import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sr4x.evaluation import interpolate, mse, per_class_psnr, protocol_scores, psnr, quality
from sr4x.inference import downscale_matrix, predict, project_consistent, self_ensemble
from sr4x.models import SRResNet
from sr4x.pairs import to_float


def uint8_images(n, size, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_psnr_definition():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(1e-3) == pytest.approx(30.0)


def test_quality_of_a_perfect_and_a_constant_prediction():
    high = uint8_images(4, 32)
    perfect = quality(to_float(high), high, batch_size=3)
    assert perfect["mse"] == 0 and perfect["ssim"] == pytest.approx(1.0)
    grey = quality(torch.full((4, 3, 32, 32), 0.5), high, batch_size=3)
    expected = (to_float(high) - 0.5).pow(2).mean().item()
    assert grey["mse"] == pytest.approx(expected, rel=1e-6)
    assert grey["psnr"] == pytest.approx(10 * math.log10(1 / expected), rel=1e-6)
    assert grey["psnr_per_image"] >= grey["psnr"] - 1e-9  # Jensen
    assert grey["ssim"] < 0.5
    assert mse(torch.full((4, 3, 32, 32), 0.5), high) == grey["mse"] and mse(to_float(high), high) == 0


def test_baselines_are_clamped_interpolations():
    low = uint8_images(3, 8)
    for mode in ("bilinear", "bicubic"):
        out = interpolate(low, mode)
        ref = F.interpolate(to_float(low), size=32, mode=mode, align_corners=False).clamp(0, 1)
        assert torch.equal(out, ref) and out.shape == (3, 3, 32, 32)
    assert torch.equal(interpolate(low, "nearest"), to_float(low).repeat_interleave(4, 2).repeat_interleave(4, 3))
    with pytest.raises(ValueError, match="unknown interpolation 'area'"):
        interpolate(low, "area")


def test_per_class_psnr_uses_only_that_class():
    high = uint8_images(4, 32)
    pred = to_float(high).clone()
    pred[0] = 0.5  # only image 0 (class 1) is wrong
    scores = per_class_psnr(pred, high, torch.tensor([1, 0, 0, 2]), classes=4)
    assert scores[0] == math.inf and scores[2] == math.inf and math.isnan(scores[3])
    assert scores[1] == pytest.approx(psnr((to_float(high[0]) - 0.5).pow(2).mean().item()), rel=1e-6)


def test_self_ensemble_of_an_equivariant_model_is_the_model():
    model = SRResNet(width=8, depth=1).eval()  # bicubic at init: commutes with flips and rotations
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(self_ensemble(model, x), model(x), atol=1e-6)


def test_predict_is_batched_clamped_and_independent_of_the_batch_size():
    torch.manual_seed(0)
    model, low = SRResNet(width=8, depth=1), uint8_images(10, 8)
    whole = predict(model, low, 10)
    assert whole.shape == (10, 3, 32, 32) and whole.dtype == torch.float32
    assert whole.min() >= 0 and whole.max() <= 1
    torch.testing.assert_close(predict(model, low, 3, desc="batches of 3"), whole)  # last batch of 1 included
    torch.testing.assert_close(predict(model, low, 4, self_ensemble), self_ensemble(model, to_float(low)).clamp(0, 1))


def test_consistency_projection_reproduces_the_input():
    a = downscale_matrix(8, 32)
    assert torch.allclose(a.sum(1), torch.ones(8), atol=1e-6)
    truth = torch.rand(2, 3, 32, 32) * 0.5 + 0.25
    low = a @ truth @ a.T
    pred = truth + 0.05 * torch.randn(2, 3, 32, 32)  # a blurry guess, inconsistent with low
    out = project_consistent(pred, low)
    assert torch.allclose(a @ out @ a.T, low, atol=1e-4)
    # projecting onto a set that holds the truth brings the guess closer to it
    assert (out - truth).pow(2).mean() < (pred - truth).pow(2).mean()


def _basicsr_scores(pred: np.ndarray, high: np.ndarray, border: int) -> dict[str, float]:
    """PSNR and SSIM as BasicSR's psnr_ssim.py computes them (HWC uint8 RGB), in float64 NumPy: independent."""
    def y_channel(img):
        return 16 + img.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255

    def ssim_2d(a, b):
        g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
        window = np.outer(g, g) / np.outer(g, g).sum()
        filt = lambda x: (np.lib.stride_tricks.sliding_window_view(x, (11, 11)) * window).sum((-1, -2))  # noqa: E731
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        mu1, mu2 = filt(a), filt(b)
        s11, s22, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
        return (((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))).mean()

    pred, high = (x[border:-border, border:-border] for x in (pred, high))
    scores = {}
    for name, (a, b) in {"y": (y_channel(pred), y_channel(high)),
                         "rgb": (pred.astype(np.float64), high.astype(np.float64))}.items():
        scores[f"psnr_{name}"] = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
        pairs = [(a, b)] if a.ndim == 2 else [(a[..., c], b[..., c]) for c in range(3)]
        scores[f"ssim_{name}"] = np.mean([ssim_2d(x, y) for x, y in pairs])
    return scores


def test_protocol_scores_match_an_independent_basicsr_style_computation():
    generator = torch.Generator().manual_seed(0)
    high = torch.randint(0, 256, (3, 40, 52), generator=generator, dtype=torch.uint8)
    noise = torch.randint(-20, 21, high.shape, generator=generator)
    pred = (high.int() + noise).clamp(0, 255).to(torch.uint8)
    ours = protocol_scores(pred, high)
    theirs = _basicsr_scores(pred.permute(1, 2, 0).numpy(), high.permute(1, 2, 0).numpy(), border=4)
    assert ours.keys() == theirs.keys()
    for key in ("psnr_y", "psnr_rgb"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9)
    for key in ("ssim_y", "ssim_rgb"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-5)
    assert ours["psnr_y"] > ours["psnr_rgb"]  # luma averages the channels' independent noise


def test_protocol_scores_crop_the_border():
    high = torch.full((3, 24, 24), 100, dtype=torch.uint8)
    pred = high.clone()
    pred[:, :4] = 0  # wrong only inside the 4-pixel border
    assert protocol_scores(pred, high)["psnr_y"] == math.inf
    pred[:, 4, 4] = 0
    assert protocol_scores(pred, high)["psnr_y"] < 60
