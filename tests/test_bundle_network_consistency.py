"""Every bundle's inference.json builds the same architecture as its train.json, for every strategy, so that the
checkpoint a strategy trains loads strictly for inference (``--strategy`` is the one switch for both)."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

from _bundle_utils import REPO
from medtl_monai.strategies import STRATEGIES


def _network(bundle: str, config: str, strategy: str) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_meta(REPO / "bundles" / bundle / "configs" / "metadata.json")
    parser.read_config(REPO / "bundles" / bundle / "configs" / config)
    parser["strategy"] = strategy
    if "weights" in parser.config:
        parser["weights"] = None
    if config == "train.json":
        parser["num_classes"] = 2  # the train config reads class names from its (absent) datalist
    return parser.get_parsed_content("network_def")


@pytest.mark.parametrize("bundle", ["bimcv_truncated", "two_step_swft"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_inference_builds_the_trained_architecture(bundle, strategy, quiet_random_init):
    trained = _network(bundle, "train.json", strategy).state_dict()
    served = _network(bundle, "inference.json", strategy)
    served.load_state_dict(trained, strict=True)  # raises on a missing, unexpected or mis-shaped key
    assert {k: v.shape for k, v in served.state_dict().items()} == {k: v.shape for k, v in trained.items()}


def test_transfusion_and_full_differ_from_the_default_cut(quiet_random_init):
    default = _network("bimcv_truncated", "inference.json", "truncated").state_dict()
    for strategy in ("full", "transfusion"):
        other = _network("bimcv_truncated", "inference.json", strategy).state_dict()
        assert any(k.startswith("backbone.layer4.") for k in other) and not any(k.startswith("backbone.layer4.") for k in default)
    slim = _network("bimcv_truncated", "inference.json", "transfusion").state_dict()
    full = _network("bimcv_truncated", "inference.json", "full").state_dict()
    assert slim["backbone.layer4.0.conv1.weight"].shape[0] == full["backbone.layer4.0.conv1.weight"].shape[0] // 2
