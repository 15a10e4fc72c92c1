"""Network guards: a network says the smallest input it accepts (exactly), a bundle's input size is checked against it
at start-up with a message that says what to change, even depth kernels are refused, and mean inflation warns where
it cannot equal the 2D network."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from medtl_monai.networks import TransferClassifier, inflate_kernel
from medtl_monai.training import prepare_network

REPO = Path(__file__).resolve().parents[1]


def _runs(net: TransferClassifier, size: tuple[int, ...]) -> bool:
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, net.in_channels, *size))
    except RuntimeError:
        return False
    return True


def test_a_full_3d_densenet121_on_32_slices_stops_at_start_with_what_to_change(quiet_random_init):
    net = TransferClassifier("densenet121", spatial_dims=3, in_channels=1, num_classes=2)
    with pytest.raises(ValueError) as err:
        prepare_network(net, image_size=[96, 96, 32])
    message = str(err.value)
    assert message.startswith("densenet121 cut=None needs an input of at least [29, 29, 57]; image_size [96, 96, 32] "
                              "is too small along depth: ")
    assert "raise image_size[2] to >= 57" in message and "cut at 'denseblock3' or earlier" in message
    assert "set pool_depth_stride/stem_depth_stride to 1 (now 4/2)" in message
    assert prepare_network(net, image_size=[96, 96, 64]) is net  # deep enough: no error
    assert prepare_network(net) is net  # no image_size: no check


@pytest.mark.parametrize("arch, dims, cut, minimum", [
    ("densenet121", 3, 7, (5, 5, 9)),
    ("densenet121", 2, "transition2", (13, 13)),
    ("resnet18", 3, "layer2", (1, 1, 1)),  # every ResNet window is padded: one voxel goes through
])
def test_the_reported_minimum_input_is_exact(arch, dims, cut, minimum, quiet_random_init):
    net = TransferClassifier(arch, spatial_dims=dims, in_channels=1, num_classes=2, cut=cut)
    assert net.min_input_size() == minimum
    assert _runs(net, minimum)
    for axis in range(dims):
        if minimum[axis] > 1:
            smaller = tuple(n - (i == axis) for i, n in enumerate(minimum))
            assert not _runs(net, smaller), f"{arch} cut={cut} runs at {smaller}, below its reported minimum"
            with pytest.raises(ValueError, match=f"image_size\\[{axis}\\] to >= {minimum[axis]}"):
                net.check_input_size(smaller)
    assert net.check_input_size(minimum) == minimum


def test_a_single_int_image_size_means_every_axis():
    net = TransferClassifier("densenet121", spatial_dims=2, in_channels=3, num_classes=2, cut="transition2",
                             weights="checkpoint")
    assert net.check_input_size(224) == (224, 224)
    with pytest.raises(ValueError, match="along x and y: raise image_size\\[0\\] to >= 13, image_size\\[1\\] to >= 13"):
        net.check_input_size(12)
    with pytest.raises(ValueError, match="2 positive ints"):
        net.check_input_size([64, 64, 8])


def test_even_depth_kernels_are_refused():
    with pytest.raises(ValueError, match="stem_depth_kernel=4 must be odd"):
        TransferClassifier("resnet18", spatial_dims=3, in_channels=1, num_classes=2, cut="layer1", stem_depth_kernel=4)
    with pytest.raises(ValueError, match="pool_depth_stride=0 must be a positive integer"):
        TransferClassifier("resnet18", spatial_dims=3, in_channels=1, num_classes=2, cut="layer1", pool_depth_stride=0)
    with pytest.raises(ValueError, match="positive odd number"):
        inflate_kernel(torch.ones(2, 2, 3, 3), 4, "center")


def test_mean_inflation_warns_at_the_default_geometry_and_not_at_a_deep_one(tv_weights, caplog):
    mean = TransferClassifier("resnet18", spatial_dims=3, in_channels=1, num_classes=2, cut="layer3", inflation="mean",
                              weights=tv_weights("resnet18"))
    with caplog.at_level(logging.WARNING, logger="medtl_monai.networks"):
        caplog.clear()
        prepare_network(mean, image_size=[96, 96, 32])  # depth 32 -> 4 after the stem -> 2 in layer2 -> 1 in layer3
    warnings = [r.getMessage() for r in caplog.records if r.name == "medtl_monai.networks"]
    assert len(warnings) == 1
    assert "layer2 (depth extent 2, depth kernel 3), layer3 (depth extent 1, depth kernel 3)" in warnings[0]
    assert "inflation='center'" in warnings[0] and "input depth of at least 97" in warnings[0]
    assert "layer1" not in warnings[0]  # layer1 sees a depth of 4 > 3
    with caplog.at_level(logging.WARNING, logger="medtl_monai.networks"):
        caplog.clear()
        mean.check_input_size([96, 96, 96])  # layer3 sees a depth of 3: still warns
        assert "layer3 (depth extent 3, depth kernel 3)" in caplog.records[-1].getMessage()
        caplog.clear()
        mean.check_input_size([96, 96, 97])  # the depth the warning asked for: 97 -> 13 after the stem -> 4 in layer3
    assert not [r for r in caplog.records if r.name == "medtl_monai.networks"]


def test_both_bundles_check_their_image_size_when_the_network_is_prepared():
    for bundle in ("bimcv_truncated", "two_step_swft"):
        config = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())
        assert config["network"]["_target_"] == "medtl_monai.training.prepare_network"
        assert config["network"]["image_size"] == "@image_size"
