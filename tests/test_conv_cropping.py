import copy

import pytest
import torch

from src.conv_cropping import crop_dead_taps, live_taps
from src.models import build_model


@pytest.mark.parametrize("size, kernel, stride, padding, taps", [
    (1, 3, 1, 1, (1, 1)),  # a 1x1 map: only the centre tap reads data
    (1, 3, 2, 1, (1, 1)),
    (2, 3, 2, 1, (1, 2)),  # ResNet's stride-2 conv from 2x2 to 1x1
    (2, 3, 1, 1, (0, 2)),
    (4, 3, 2, 1, (0, 2)),
    (8, 1, 2, 0, (0, 0)),
])
def test_live_taps(size, kernel, stride, padding, taps):
    assert live_taps(size, kernel, stride, padding) == taps


def test_cropped_resnet_computes_the_same_outputs_and_gradients():
    # float64, so that the comparison sees the maths and not float32 rounding, which the
    # BatchNorms over 1x1 maps amplify to ~0.3 % in the first layer's gradient
    torch.manual_seed(0)
    full = build_model("resnet").double()
    cropped = copy.deepcopy(full)
    stats = {k: v.clone() for k, v in cropped.state_dict().items()}
    assert crop_dead_taps(cropped, torch.rand(1, 3, 8, 8, dtype=torch.float64)) == 8  # layer3: 4 of 5, layer4: 4 of 5
    assert all(torch.equal(stats[k], v) for k, v in cropped.state_dict().items())  # BatchNorm stats untouched
    x, y = torch.rand(16, 3, 8, 8, dtype=torch.float64), torch.rand(16, 3, 32, 32, dtype=torch.float64)
    for model in (full, cropped):
        torch.nn.functional.mse_loss(model(x), y).backward()
    torch.testing.assert_close(cropped(x), full(x), rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(full.named_parameters(), cropped.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12, msg=name)
    layer4_conv = full.encoder[7][0].conv2.weight.grad
    assert layer4_conv[:, :, 0].abs().max() == 0 and layer4_conv[:, :, 1, 1].abs().max() > 0  # dead taps get no gradient


@pytest.mark.parametrize("arch", ["fc", "conv", "sr"])
def test_models_without_dead_taps_are_left_alone(arch):
    assert crop_dead_taps(build_model(arch), torch.rand(1, 3, 8, 8)) == 0
