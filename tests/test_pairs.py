import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from sr4x.pairs import load_pairs, make_pairs, save_pairs, to_float


def test_pairs_match_the_tutorial_transforms():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6)
    pairs = make_pairs(images, labels)
    tutorial_low = transforms.Compose([transforms.Resize(8), transforms.ToTensor()])
    for i, image in enumerate(images):
        pil = Image.fromarray(image)
        assert torch.equal(to_float(pairs.low[i]), tutorial_low(pil))
        assert torch.equal(to_float(pairs.high[i]), transforms.ToTensor()(pil))
    assert pairs.low.dtype == pairs.high.dtype == torch.uint8
    assert pairs.labels.tolist() == labels.tolist()


def test_downscale_is_antialiased_not_subsampled():
    stripes = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    stripes[:, :, ::2] = 255  # one-pixel stripes average to mid-grey when antialiased
    low = make_pairs(stripes, np.zeros(1, dtype=np.int64)).low
    assert 100 < low.float().mean() < 155


def test_save_load_roundtrip(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    pairs = make_pairs(images, np.arange(3))
    save_pairs(tmp_path / "p.pt", pairs)
    loaded = load_pairs(tmp_path / "p.pt")
    assert torch.equal(loaded.low, pairs.low) and torch.equal(loaded.high, pairs.high)
    assert list(tmp_path.iterdir()) == [tmp_path / "p.pt"]  # no temporary file left behind


def test_load_rejects_wrong_dtype(tmp_path):
    torch.save({"low": torch.zeros(2, 3, 8, 8), "high": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
                "labels": torch.zeros(2, dtype=torch.int64)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="low must be uint8"):
        load_pairs(tmp_path / "bad.pt")


def test_make_pairs_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) with H and W multiples of 4, got uint8 \(2, 3, 32, 32\)"):
        make_pairs(np.zeros((2, 3, 32, 32), dtype=np.uint8), np.zeros(2))
    with pytest.raises(ValueError, match=r"multiples of 4, got uint8 \(2, 30, 32, 3\)"):
        make_pairs(np.zeros((2, 30, 32, 3), dtype=np.uint8), np.zeros(2))


def test_pairs_of_any_multiple_of_the_scale_are_the_per_image_resize():
    images = np.random.default_rng(0).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    pairs = make_pairs(images, np.zeros(2, dtype=np.int64))
    assert pairs.low.shape == (2, 3, 6, 10) and pairs.high.shape == (2, 3, 24, 40)
    expected = np.asarray(Image.fromarray(images[1]).resize((10, 6), Image.BILINEAR))  # PIL antialiases
    assert np.array_equal(pairs.low[1].permute(1, 2, 0).numpy(), expected)
