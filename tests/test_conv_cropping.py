import copy

import pytest
import torch

from src.config import TrainParams
from src.conv_cropping import crop_dead_taps, live_taps, live_transposed_taps
from src.models import build_model
from src.training import prepare_model


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


@pytest.mark.parametrize("size, kernel, stride, padding, output_padding, taps", [
    (1, 4, 2, 1, 0, (1, 2)),  # ResNet's decoder from 1x1: 2x2 output from the middle taps
    (2, 4, 2, 1, 0, (0, 3)),
    (1, 3, 2, 1, 1, (1, 2)),  # output padding makes the last tap land in the output
    (1, 3, 2, 1, 0, (1, 1)),
    (2, 2, 2, 0, 0, (0, 1)),
])
def test_live_transposed_taps(size, kernel, stride, padding, output_padding, taps):
    assert live_transposed_taps(size, kernel, stride, padding, output_padding) == taps


@pytest.mark.parametrize("layer, size", [
    (torch.nn.Conv2d(4, 5, 3, stride=2, padding=1), (2, 1)),
    (torch.nn.Conv2d(4, 6, (3, 5), padding=(1, 2), groups=2), (1, 2)),
    (torch.nn.ConvTranspose2d(4, 5, 4, stride=2, padding=1), (1, 1)),
    (torch.nn.ConvTranspose2d(4, 5, 3, stride=2, padding=1, output_padding=1), (1, 3)),
    (torch.nn.ConvTranspose2d(4, 6, (3, 4), stride=(2, 3), padding=1, groups=2), (1, 1)),
])
def test_cropped_layers_compute_the_same_outputs_and_gradients(layer, size):
    full = layer.double()
    x = torch.rand(3, 4, *size, dtype=torch.float64, requires_grad=True)
    expected = full(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, full.weight, full.bias])
    cropped = copy.deepcopy(full)
    assert crop_dead_taps(cropped, x[:1].detach()) == 1
    out = cropped(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), [x, cropped.weight, cropped.bias])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_cropped_resnet_computes_the_same_outputs_and_gradients():
    # float64, so that the comparison sees the maths and not float32 rounding, which the
    # BatchNorms over 1x1 maps amplify to ~0.3 % in the first layer's gradient
    torch.manual_seed(0)
    full = build_model("resnet").double()
    cropped = copy.deepcopy(full)
    stats = {k: v.clone() for k, v in cropped.state_dict().items()}
    assert crop_dead_taps(cropped, torch.rand(1, 3, 8, 8, dtype=torch.float64)) == 9  # layer3: 4 of 5 convs, layer4: 4 of 5, decoder: 1
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


def test_prepare_model_keeps_cropped_weights_contiguous_and_the_rest_channels_last():
    # a channels_last weight would make autograd copy each cropped gradient into its layout
    model = build_model("resnet")
    prepare_model(model, TrainParams(channels_last=True, crop_dead_taps=True), torch.rand(1, 3, 8, 8))
    cropped = {name for name, m in model.named_modules() if "forward" in vars(m)}
    assert len(cropped) == 9
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            layout = torch.contiguous_format if name in cropped else torch.channels_last
            assert m.weight.is_contiguous(memory_format=layout), name
