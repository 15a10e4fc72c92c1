"""Weight loading: torchvision files from a path, the hub cache or a (local) download; strictness and bad input."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from medtl_monai.networks import FAMILIES, TransferClassifier, get_family

from _tv_weights import torchvision_state_dict


def test_weights_load_exactly_from_a_torchvision_file(tv_weights):
    path = tv_weights("resnet50")
    state = torch.load(path)
    model = TransferClassifier("resnet50", 2, 3, 2, cut="layer3", weights=path)
    assert torch.equal(model.backbone.stem.conv.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.stem.norm.running_mean, state["bn1.running_mean"])
    assert torch.equal(model.backbone.layer3[5].bn3.running_var, state["layer3.5.bn3.running_var"])
    assert model.weights_source == str(path)


def test_densenet_old_style_keys_are_remapped(tv_weights):
    path = tv_weights("densenet121")
    state = torch.load(path)
    assert "features.denseblock2.denselayer3.norm.2.weight" in state
    model = TransferClassifier("densenet121", 2, 3, 2, weights=path)
    layer = model.backbone.denseblock2.denselayer3.layers
    assert torch.equal(layer.norm2.weight, state["features.denseblock2.denselayer3.norm.2.weight"])
    assert torch.equal(layer.conv1.weight, state["features.denseblock2.denselayer3.conv.1.weight"])


def test_imagenet_weights_come_from_the_torch_hub_cache(tv_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet18-f37072fd.pth").write_bytes((tv_weights("resnet18")).read_bytes())
    model = TransferClassifier("resnet18", 2, 3, 2, weights="imagenet")
    assert model.weights_source == str(checkpoints / "resnet18-f37072fd.pth")


def test_imagenet_download_checks_the_hash(tv_weights, tmp_path, monkeypatch):
    """The real download path (torch.hub with the file name's SHA-256 prefix), fed from a local file:// URL."""
    source = tv_weights("resnet18")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    spec = get_family("resnet18")
    monkeypatch.setitem(FAMILIES, "resnet18", dataclasses.replace(spec, weights_file=f"resnet18-{digest}.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    model = TransferClassifier("resnet18", 2, 3, 2, weights="imagenet", weights_url=source.as_uri())
    assert (tmp_path / "home" / "hub" / "checkpoints" / f"resnet18-{digest}.pth").is_file()
    assert torch.equal(model.backbone.stem.conv.weight, torch.load(source)["conv1.weight"])
    # a file whose hash does not match the official prefix is refused and nothing is left in the cache
    monkeypatch.setitem(FAMILIES, "resnet18", dataclasses.replace(spec, weights_file="resnet18-00000000.pth"))
    with pytest.raises(ValueError, match="could not obtain ImageNet weights"):
        TransferClassifier("resnet18", 2, 3, 2, weights="imagenet", weights_url=source.as_uri())
    assert not list((tmp_path / "home" / "hub" / "checkpoints").glob("resnet18-00000000*"))


def test_offline_imagenet_request_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="resnet34-b627a593.pth"):
        TransferClassifier("resnet34", 2, 3, 2, weights="imagenet", weights_url=(tmp_path / "absent.pth").as_uri())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "resnet51"}, "arch='resnet51' is not a supported architecture"),
        ({"arch": "resnet50", "cut": "layer5"}, "cut='layer5' does not exist in resnet50"),
        ({"arch": "resnet50", "cut": 17}, "cut=17 is out of range for resnet50"),
        ({"arch": "densenet121", "cut": "layer3"}, "cut='layer3' does not exist in densenet121"),
        ({"arch": "resnet50", "inflation": "nearest"}, "inflation='nearest'"),
        ({"arch": "resnet50", "spatial_dims": 4}, "spatial_dims=4"),
        ({"arch": "resnet50", "weights": "/no/such/resnet50.pth"}, "weights file '/no/such/resnet50.pth' does not exist"),
    ],
)
def test_bad_arguments_raise_clear_value_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        TransferClassifier(**kwargs)
    assert message in str(err.value)


def _save(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_weights_of_another_architecture_are_refused(tv_weights):
    path = tv_weights("resnet18")
    with pytest.raises(ValueError) as err:
        TransferClassifier("resnet50", 2, 3, 2, weights=path)
    text = str(err.value)
    assert "resnet18-f37072fd.pth" in text and "does not match resnet50" in text and "layer1.0.conv3.weight" in text


def test_missing_keys_are_listed(tmp_path):
    state = torchvision_state_dict("resnet18")
    del state["layer2.1.bn2.running_var"], state["layer4.0.downsample.0.weight"]
    path = _save(tmp_path, "partial.pth", state)
    with pytest.raises(ValueError) as err:
        TransferClassifier("resnet18", 2, 3, 2, cut="layer2", weights=path)
    text = str(err.value)
    assert "partial.pth" in text and "2 backbone keys not in the file" in text
    assert "layer2.1.bn2.running_var" in text and "layer4.0.downsample.0.weight" in text


def test_wrong_shapes_are_listed(tmp_path):
    state = torchvision_state_dict("resnet18")
    state["layer3.0.conv1.weight"] = torch.zeros(256, 128, 5, 5)
    path = _save(tmp_path, "shape.pth", state)
    with pytest.raises(ValueError, match=r"shape.pth.*wrong shape: layer3.0.conv1.weight \(file \(256, 128, 5, 5\)"):
        TransferClassifier("resnet18", 2, 3, 2, weights=path)


def test_wrong_channel_count_is_refused(tmp_path):
    state = torchvision_state_dict("resnet18")
    state["conv1.weight"] = torch.randn(64, 2, 7, 7)
    path = _save(tmp_path, "twochannel.pth", state)
    with pytest.raises(ValueError, match="twochannel.pth.*takes 2 input channels.*in_channels=1"):
        TransferClassifier("resnet18", 2, 1, 2, weights=path)


def test_non_finite_weights_are_refused(tmp_path):
    state = torchvision_state_dict("resnet18")
    state["layer1.1.conv2.weight"][0, 0, 0, 0] = float("nan")
    path = _save(tmp_path, "nan.pth", state)
    with pytest.raises(ValueError, match="nan.pth contain non-finite values.*layer1.1.conv2.weight"):
        TransferClassifier("resnet18", 2, 3, 2, weights=path)


def test_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth' could not be read as a PyTorch state dict"):
        TransferClassifier("resnet18", 2, 3, 2, weights=path)


def test_wrapped_state_dict_and_module_prefix_are_accepted(tmp_path):
    state = {f"module.{k}": v for k, v in torchvision_state_dict("resnet18").items()}
    path = _save(tmp_path, "wrapped.pth", {"state_dict": state, "epoch": 3})
    model = TransferClassifier("resnet18", 2, 3, 2, weights=path)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, state["module.layer4.1.conv2.weight"])
