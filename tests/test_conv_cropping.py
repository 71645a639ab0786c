import copy

import pytest
import torch

from sr4x.conv_cropping import axis_geometry, crop_dead_taps, live_taps, live_transposed_taps
from sr4x.devices import SpeedOptions
from sr4x.models import build_model
from sr4x.training import prepare_model


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
    grad_x, grad_w, grad_b = torch.autograd.grad(expected.square().sum(), [x, full.weight, full.bias])
    cropped = copy.deepcopy(full)
    live = crop_dead_taps(cropped, x[:1].detach())
    assert list(live) == [cropped.weight]
    out = cropped(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    rows, cols = (axis_geometry(full, axis, n)[0] for axis, n in enumerate(size))
    dead = torch.ones_like(grad_w, dtype=torch.bool)
    dead[:, :, rows, cols] = False
    assert dead.any() and grad_w[dead].abs().max() == 0  # what the crop leaves out never gets a gradient
    grads = torch.autograd.grad(out.square().sum(), [x, live[cropped.weight], cropped.bias])
    for got, want in zip(grads, [grad_x, grad_w[:, :, rows, cols], grad_b], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_state_dict_carries_the_trained_live_taps_and_loading_sets_them():
    layer = torch.nn.Conv2d(4, 5, 3, padding=1)
    initial = layer.weight.detach().clone()
    taps = crop_dead_taps(layer, torch.rand(1, 4, 1, 1))[layer.weight]
    with torch.no_grad():
        taps.add_(1.0)  # an optimizer step on the live (centre) taps
    saved = layer.state_dict()["weight"]
    torch.testing.assert_close(saved[:, :, 1, 1], initial[:, :, 1, 1] + 1.0)
    saved[:, :, 1, 1] = 0  # the dead taps keep their initial values
    initial[:, :, 1, 1] = 0
    assert torch.equal(saved, initial)
    other = torch.nn.Conv2d(4, 5, 3, padding=1)
    layer.load_state_dict(other.state_dict())  # resuming from a checkpoint
    assert torch.equal(taps.detach(), other.weight.detach()[:, :, 1:2, 1:2])
    x = torch.rand(2, 4, 1, 1)
    torch.testing.assert_close(layer(x), other(x))


def test_cropped_resnet_trains_exactly_like_the_full_one():
    # float64, so that the comparison sees the maths and not float32 rounding, which the
    # BatchNorms over 1x1 maps amplify to ~0.3 % in the first layer's gradient
    torch.manual_seed(0)
    full = build_model("resnet").double()
    cropped = copy.deepcopy(full)
    initial = {k: v.clone() for k, v in full.state_dict().items()}
    options = dict(precision="fp32", channels_last=False, fused_adam=False, compile=False)
    full_adam = prepare_model(full, SpeedOptions(**options, crop_dead_taps=False), 1e-3, torch.rand(1, 3, 8, 8))
    cropped_adam = prepare_model(cropped, SpeedOptions(**options, crop_dead_taps=True), 1e-3,
                                 torch.rand(1, 3, 8, 8, dtype=torch.float64))
    # BN stats untouched too
    assert torch.equal(cropped.state_dict()["encoder.7.0.conv2.weight"], initial["encoder.7.0.conv2.weight"])
    trained = sum(p.numel() for p in cropped_adam.param_groups[0]["params"])
    assert trained < 0.35 * sum(p.numel() for p in cropped.parameters())  # 9 layers train their live taps only
    x, y = torch.rand(16, 3, 8, 8, dtype=torch.float64), torch.rand(16, 3, 32, 32, dtype=torch.float64)
    for _ in range(2):
        for model, adam in ((full, full_adam), (cropped, cropped_adam)):
            adam.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            adam.step()
    torch.testing.assert_close(cropped(x), full(x), rtol=1e-9, atol=1e-12)
    got, want = cropped.state_dict(), full.state_dict()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-12, msg=name)
    layer4 = want["encoder.7.0.conv2.weight"]
    assert torch.equal(layer4[:, :, 0], initial["encoder.7.0.conv2.weight"][:, :, 0])  # dead taps never move
    assert not torch.equal(layer4[:, :, 1, 1], initial["encoder.7.0.conv2.weight"][:, :, 1, 1])


@pytest.mark.parametrize("arch", ["fc", "conv", "sr"])
def test_models_without_dead_taps_are_left_alone(arch):
    assert crop_dead_taps(build_model(arch), torch.rand(1, 3, 8, 8)) == {}


def test_prepare_model_trains_contiguous_live_taps_in_place_of_nine_full_weights():
    model = build_model("resnet")
    options = SpeedOptions("fp32", channels_last=True, fused_adam=True, crop_dead_taps=True, compile=False)
    adam = prepare_model(model, options, 1e-3, torch.rand(1, 3, 8, 8))
    trained, registered = adam.param_groups[0]["params"], list(model.parameters())
    replaced = [p for p in registered if not any(p is q for q in trained)]
    live = [p for p in trained if not any(p is q for q in registered)]
    assert len(replaced) == len(live) == 9 and len(trained) == len(registered)
    assert {id(m.weight) for m in model.modules() if "forward" in vars(m)} == {id(p) for p in replaced}
    assert all(p.is_contiguous() for p in live)  # as a matrix product's gradient is: no per-step layout copy
