import pytest
import torch
import torch.nn.functional as F

from sr4x.architectures import ARCHITECTURES
from sr4x.models import SRResNet, build_model, count_parameters


def linear(i, o):
    return i * o + o


def conv(i, o, k, bias=True):
    return i * o * k * k + (o if bias else 0)


def resnet18_encoder():
    bn = lambda c: 2 * c  # noqa: E731 - BatchNorm weight + bias
    block = lambda i, o, down: conv(i, o, 3, False) + bn(o) + conv(o, o, 3, False) + bn(o) + (  # noqa: E731
        conv(i, o, 1, False) + bn(o) if down else 0)
    total = conv(3, 64, 3) + bn(64)  # the tutorial's 3x3 stem (default bias)
    for i, o in [(64, 64), (64, 128), (128, 256), (256, 512)]:
        total += block(i, o, i != o) + block(o, o, False)
    return total


EXPECTED_PARAMETERS = {
    "fc": sum(linear(i, o) for i, o in zip([192, 512, 256, 128, 64, 128, 256, 512],
                                            [512, 256, 128, 64, 128, 256, 512, 3072], strict=True)),
    "conv": conv(3, 64, 3) + conv(64, 128, 3) + conv(128, 64, 2) + conv(64, 32, 2) + conv(32, 3, 3) + conv(3, 3, 3),
    "resnet": resnet18_encoder()
    + sum(conv(i, o, 4) + 2 * o for i, o in [(512, 256), (256, 128), (128, 64), (64, 32)]) + conv(32, 3, 4),
    "sr": conv(3, 64, 3) + 8 * 2 * conv(64, 64, 3) + conv(64, 64, 3) + conv(64, 48, 3),
}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_output_shape_and_range(arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    out = model(torch.rand(5, 3, 8, 8))
    assert out.shape == (5, 3, 32, 32)
    if arch != "sr":  # the tutorial's models end in a sigmoid
        assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_count(arch):
    assert count_parameters(build_model(arch)) == EXPECTED_PARAMETERS[arch]


def test_tutorial_counts_are_the_known_ones():
    # Independent anchors: 2,020,160 (FC) and 117,655 (Conv) as computed by hand above.
    assert EXPECTED_PARAMETERS["fc"] == 2_020_160
    assert EXPECTED_PARAMETERS["conv"] == 117_655


def test_sr_starts_exactly_at_bicubic():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    bicubic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    out = SRResNet(width=16, depth=2)(x)
    assert torch.equal(out, bicubic)  # tolerance 0: the zero-initialised tail adds exactly 0


def test_sr_learns_away_from_bicubic():
    torch.manual_seed(0)
    model = SRResNet(width=8, depth=1)
    x, y = torch.rand(8, 3, 8, 8), torch.rand(8, 3, 32, 32)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
    assert not torch.equal(model(x), F.interpolate(x, scale_factor=4, mode="bicubic"))


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'; allowed: fc, conv, resnet, sr"):
        build_model("vgg")
