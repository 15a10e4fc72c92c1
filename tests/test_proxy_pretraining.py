"""The synthetic proxy source (an offline stand-in for ImageNet) and the torchvision-format weights it produces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medtl_monai.experiments.proxy_pretraining import pretrain_proxy_backbone
from medtl_monai.networks import (
    FAMILIES,
    TransferClassifier,
    backbone_to_torchvision_keys,
    build_backbone,
    get_family,
    torchvision_to_backbone_keys,
)
from medtl_monai.synthetic.proxy_source import PROXY_CLASSES, make_proxy_source, render_proxy_image


def test_proxy_source_is_deterministic_balanced_and_visible():
    images, labels = make_proxy_source(53, size=32, seed=4)
    again, labels_again = make_proxy_source(53, size=32, seed=4)
    other, _ = make_proxy_source(53, size=32, seed=5)
    assert images.shape == (53, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(images, again) and np.array_equal(labels, labels_again) and not np.array_equal(images, other)
    assert sorted(np.bincount(labels, minlength=len(PROXY_CLASSES)).tolist()) == [5] * 7 + [6] * 3
    for label in range(len(PROXY_CLASSES)):  # the object stands out from the smooth background
        image = render_proxy_image(np.random.default_rng(label), label, 48).astype(float)
        assert image.std(axis=(1, 2)).max() > 20, PROXY_CLASSES[label]


@pytest.mark.parametrize("bad", [{"label": 10}, {"label": -1}, {"label": 0, "size": 8}])
def test_proxy_source_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        render_proxy_image(np.random.default_rng(0), bad["label"], bad.get("size", 32))


def test_backbone_keys_round_trip_to_torchvision(quiet_random_init):
    spec = get_family("resnet18")
    backbone = TransferClassifier(arch="resnet18").backbone.state_dict()
    tv = backbone_to_torchvision_keys(backbone, spec)
    assert "conv1.weight" in tv and "bn1.running_mean" in tv and not any(k.startswith("stem.") for k in tv)
    assert torchvision_to_backbone_keys(tv, spec).keys() == backbone.keys()
    with pytest.raises(ValueError, match="head.weight"):
        backbone_to_torchvision_keys({"head.weight": torch.zeros(1)}, spec)


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_every_family_round_trips_through_torchvision_keys(arch):
    spec = get_family(arch)
    state = build_backbone(arch).state_dict()
    tv = backbone_to_torchvision_keys(state, spec)
    assert not any(k.startswith("stem.") for k in tv)
    back = torchvision_to_backbone_keys(tv, spec)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(ValueError):
        backbone_to_torchvision_keys({**state, "head.weight": torch.zeros(1)}, spec)


@pytest.mark.slow
def test_proxy_pretraining_learns_and_writes_loadable_torchvision_weights(tmp_path, quiet_random_init):
    out = tmp_path / "resnet18-proxy.pth"
    summary = pretrain_proxy_backbone(out, arch="resnet18", n_images=600, n_val=200, size=48, epochs=3,
                                      batch_size=32, learning_rate=1e-3, seed=0, progress=False)
    sidecar = json.loads((tmp_path / "resnet18-proxy.pth.json").read_text())
    assert sidecar == summary and "NOT ImageNet" in sidecar["note"] and sidecar["classes"] == list(PROXY_CLASSES)
    assert summary["val_accuracy"] > 2 * summary["chance_accuracy"], summary  # the task is learnt, not guessed
    saved = torch.load(out, weights_only=True)
    assert "conv1.weight" in saved and "fc.weight" not in saved
    net = TransferClassifier(arch="resnet18", weights=out, num_classes=3)  # strict loading, ImageNet's code path
    loaded = backbone_to_torchvision_keys(net.backbone.state_dict(), get_family("resnet18"))
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_densenet_proxy_weights_load_like_torchvision_weights(tmp_path, quiet_random_init):
    weights_path = tmp_path / "densenet121-proxy.pth"
    summary = pretrain_proxy_backbone(weights_path, arch="densenet121", n_images=16, n_val=10, size=32, epochs=1,
                                      batch_size=8, seed=0, progress=False)
    assert summary["arch"] == "densenet121" and (tmp_path / "densenet121-proxy.pth.json").is_file()
    saved = torch.load(weights_path, weights_only=True)
    assert "features.conv0.weight" in saved and "features.norm5.weight" in saved
    assert not any(k.startswith("classifier.") for k in saved)
    net = TransferClassifier("densenet121", weights=weights_path, num_classes=2)  # strict loading
    loaded = backbone_to_torchvision_keys(net.backbone.state_dict(), get_family("densenet121"))
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
