"""The bundle room: finding a bundle's root, parsing its configs with overrides, the model card, the command-line
helpers the scripts share."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from _bundle_utils import REPO, copy_bundle

from medtl_monai.bundle import (
    ModelCard,
    bundle_root,
    card_network,
    card_preprocessing,
    load_config,
    make_model_card,
    metadata_class_names,
    parse_config_files,
    parse_overrides,
    read_model_card,
)
from medtl_monai.data import MissingDataError
from medtl_monai.networks import TransferClassifier
from medtl_monai.training import STRATEGIES
from medtl_monai.transforms import Preprocessing


def test_bundle_root_comes_from_the_command_line_config_or_the_default(tmp_path, monkeypatch):
    configs = tmp_path / "mybundle" / "configs"
    configs.mkdir(parents=True)
    (configs / "train.json").write_text("{}")
    (configs / "evaluate.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "--config_file", str(configs / "train.json")])
    assert bundle_root() == str(tmp_path / "mybundle")
    listed = f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']"
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", f"--config_file={listed}"])
    assert bundle_root() == str(tmp_path / "mybundle")
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert bundle_root(default=tmp_path) == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--bundle_root"):
        bundle_root()
    monkeypatch.chdir(tmp_path / "mybundle")
    (configs / "metadata.json").write_text("{}")
    assert bundle_root() == str(tmp_path / "mybundle")  # the model zoo's habit: run inside the bundle


def test_load_config_sets_the_bundle_root_reads_the_metadata_and_applies_overrides(tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    parser = load_config(bundle, ["train.json", "xray.json"], {"cut": 7, "max_epochs": 2})
    assert parser.get_parsed_content("bundle_root") == str(bundle)
    assert Path(parser.get_parsed_content("ckpt_dir")).parent.parent == bundle / "runs"  # a run folder of its own
    assert parser.get_parsed_content("cut") == 7 and parser.get_parsed_content("spatial_dims") == 2
    assert parser.get_parsed_content("in_channels") == 3  # from the metadata's network_data_format
    with pytest.raises(MissingDataError, match="nothing.json"):
        load_config(bundle, "nothing.json")
    quiet = load_config(bundle, "train.json", {"progress_bar": "false"})  # as `--progress_bar false` arrives
    assert quiet.get_parsed_content("train#dataset#progress") is False
    assert quiet.get_parsed_content("validate#dataset#progress") is False


def test_metadata_names_the_classes(tmp_path):
    assert metadata_class_names(REPO / "bundles" / "bimcv_truncated") == ["negative", "positive"]
    assert metadata_class_names(REPO / "bundles" / "two_step_swft") == ["benign", "malignant"]
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {"1": "b", "0": "a", "2": "c"}}}}}
    assert metadata_class_names(meta) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="0..1"):
        metadata_class_names({"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "a", "2": "c"}}}}})
    with pytest.raises(ValueError, match="channel_def"):
        metadata_class_names({"network_data_format": {"outputs": {"pred": {}}}})


def test_the_card_rebuilds_the_trained_network_and_preprocessing(tmp_path, quiet_random_init):
    net = TransferClassifier("densenet121", 3, 1, 3, cut=7, inflation="mean", dropout=0.2, stem_depth_kernel=5)
    pre = Preprocessing("ct", spatial_size=[24, 24, 8], windows=["lung"], crop=None)
    card = make_model_card(net, pre, ["a", "b", "c"])
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    read = read_model_card(tmp_path)
    rebuilt = card_network(read)
    assert rebuilt.config == net.config and rebuilt.weights_source == "checkpoint"
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    again = card_preprocessing(read)
    assert again.config == pre.config == {"kind": "ct", "spatial_size": [24, 24, 8], "windows": ["lung"], "crop": None}
    assert [type(t).__name__ for t in again] == [type(t).__name__ for t in pre]
    assert read.class_names == ["a", "b", "c"]
    with pytest.raises(ValueError, match="4 class names .* 3 outputs"):
        make_model_card(net, pre, ["a", "b", "c", "d"])
    (tmp_path / "model_card.json").write_text('{"network": {}}')
    with pytest.raises(ValueError, match="is not a medtl-monai model card"):
        read_model_card(tmp_path)


def test_a_bundle_without_a_trained_model_gets_the_card_of_its_training_defaults(tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    card = read_model_card(bundle / "models", bundle)
    assert card.source == "defaults of train.json"
    assert card.network["arch"] == "resnet50" and card.network["cut"] == 10 and card.network["spatial_dims"] == 3
    assert card.preprocessing == {"kind": "ct", "spatial_size": [96, 96, 32], "pixdim": [3.5, 3.5, 10.0],
                                  "windows": ["lung", "mediastinum", "bone"], "crop": "body", "normalize": "none",
                                  "modalities": ["CT"]}
    assert card.class_names == ["negative", "positive"]
    two_step = read_model_card(copy_bundle("two_step_swft", tmp_path) / "models")
    assert two_step.network["arch"] == "resnet18" and two_step.preprocessing == {"kind": "rgb", "size": [64, 64], "normalize": "none",
                                                                                  "modalities": ["ES", "XC"]}
    assert isinstance(two_step, ModelCard)


def test_scripts_read_config_lists_and_overrides_as_monai_bundle_does():
    assert parse_config_files("a.json") == ["a.json"]
    assert parse_config_files("['a.json','b.json']") == ["a.json", "b.json"]
    assert parse_overrides(["--max_epochs", "2", "--image_size", "[32,32,16]", "--progress_bar=false",
                            "--weights", "null", "--dataset_dir", "/data/x"]) == {
        "max_epochs": 2, "image_size": [32, 32, 16], "progress_bar": False, "weights": None, "dataset_dir": "/data/x"}
    with pytest.raises(ValueError, match="--key value"):
        parse_overrides(["max_epochs", "2"])
    with pytest.raises(ValueError, match="has no value"):
        parse_overrides(["--max_epochs"])


def test_inference_takes_the_network_and_preprocessing_of_the_model_it_loads(tmp_path, quiet_random_init):
    """The single source of truth: a model trained with other settings (here a 2D X-ray TTL-2 network at 64 px)
    is served by the unchanged inference.json with those settings, because they come from its card."""
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    train = load_config(bundle, ["train.json", "xray.json"], {"image_size": 64, "weights": None})
    net = train.get_parsed_content("network_def")
    card = make_model_card(net, train.get_parsed_content("preprocessing_transforms"), ["negative", "positive"])
    (bundle / "models").mkdir()
    (bundle / "models" / "model_card.json").write_text(json.dumps(card))
    served = load_config(bundle, "inference.json")
    model = served.get_parsed_content("network_def")
    assert model.config == net.config and model.spatial_dims == 2 and model.cut == 11
    model.load_state_dict(net.state_dict(), strict=True)
    assert served.get_parsed_content("preprocessing_transforms").config == {
        "kind": "xray", "size": 64, "channels": 3, "normalize": "none", "modalities": ["CR", "DX"]}
    assert served.get_parsed_content("input_kinds") == ("file", "nifti", "picture")
    inference_keys = set(json.loads((bundle / "configs" / "inference.json").read_text()))
    model_settings = {"arch", "spatial_dims", "in_channels", "cut", "strategy", "slim_after", "inflation", "image_size",
                      "pixdim", "windows", "crop", "weights", "reader", "dropout"}
    assert not inference_keys & model_settings  # declared once, in train.json
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 2)


@pytest.mark.parametrize("bundle_name", ["bimcv_truncated", "two_step_swft"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategys_trained_network_is_rebuilt_from_its_card(bundle_name, strategy, tmp_path, quiet_random_init):
    """What train.json builds for a strategy (full network, cut, slim top...) is what the card rebuilds for serving:
    the trained state dict loads strictly into it."""
    bundle = copy_bundle(bundle_name, tmp_path)
    train = load_config(bundle, "train.json", {"strategy": strategy, "weights": None, "init_from": None})
    net = train.get_parsed_content("network_def")
    card = make_model_card(net, train.get_parsed_content("preprocessing_transforms"), metadata_class_names(bundle))
    (bundle / "models").mkdir()
    (bundle / "models" / "model_card.json").write_text(json.dumps(card))
    served = load_config(bundle, "inference.json").get_parsed_content("network_def")
    served.load_state_dict(net.state_dict(), strict=True)
    assert {k: v.shape for k, v in served.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
