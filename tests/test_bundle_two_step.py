"""The two_step_swft bundle: model-zoo checks, both steps from the documented commands on tiny data, the chain loading
the intermediate backbone exactly, and SWFT training only what it has unfrozen."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from _bundle_utils import SCHEMA, copy_bundle, overrides, run_bundle
from medtl_monai.bundle import MissingDataError
from medtl_monai.data.two_step_demo import make_two_step_demo

NAME = "two_step_swft"
TINY = {"image_size": 32, "batch_size": 4, "val_batch_size": 4, "progress_bar": "false"}


@pytest.fixture(scope="module")
def two_step_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_step") / "demo"
    make_two_step_demo(root, n_intermediate=16, n_target=16, size=32, seed=1)
    return root


@pytest.fixture(scope="module")
def chained(tmp_path_factory, two_step_demo):
    """Step 1 (intermediate, full finetuning, 1 epoch) then step 2 (target, SWFT: head for 1 epoch, then + layer4)."""
    bundle = copy_bundle(NAME, tmp_path_factory.mktemp("bundle"))
    configs = bundle / "configs"
    cwd = tmp_path_factory.mktemp("cwd")
    step1 = run_bundle(["run", "--config_file", f"['{configs / 'train.json'}','{configs / 'intermediate.json'}']",
                        *overrides(dataset_dir=two_step_demo, max_epochs=1, **TINY)], cwd=cwd)
    assert step1.returncode == 0, step1.stdout[-3000:] + step1.stderr[-3000:]
    step2 = run_bundle(["run", "--config_file", str(configs / "train.json"),
                        *overrides(dataset_dir=two_step_demo, max_epochs=2, swft_epochs=1, **TINY)], cwd=cwd)
    assert step2.returncode == 0, step2.stdout[-3000:] + step2.stderr[-3000:]
    assert not list(cwd.iterdir()), "the bundle wrote into the current directory"
    return bundle, step1.stdout + step1.stderr, step2.stdout + step2.stderr


def test_metadata_verifies_against_the_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip(f"offline schema copy missing: {SCHEMA}")
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_metadata", "--meta_file", str(bundle / "configs" / "metadata.json"), "--filepath", str(SCHEMA)])
    assert proc.returncode == 0 and "metadata is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_network_input_output_match_metadata(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_net_in_out", "network_def", "--meta_file", str(bundle / "configs" / "metadata.json"),
                       "--config_file", str(bundle / "configs" / "inference.json")])
    assert proc.returncode == 0 and "data shape of network is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_demo_data_has_two_balanced_domains(two_step_demo):
    for domain, classes in (("intermediate", ["healthy", "retinopathy"]), ("target", ["benign", "malignant"])):
        doc = json.loads((two_step_demo / domain / "datalist.json").read_text())
        assert doc["class_names"] == classes
        for split in ("training", "validation", "test"):
            assert {item["label"] for item in doc[split]} == {0, 1}
            assert all((two_step_demo / domain / item["image"]).is_file() for item in doc[split])


def test_both_steps_run_and_the_chain_loads_the_intermediate_backbone_exactly(chained):
    bundle, log1, log2 = chained
    intermediate = torch.load(bundle / "models" / "intermediate" / "model.pt", weights_only=True)  # what step 2 loads
    target = torch.load(bundle / "models" / "model_final.pt", weights_only=True)
    assert "new head" in log2 and "SWFT step 1 at epoch 2: unfroze layer4" in log2
    assert "epoch 1: trainable head | frozen stem, layer1, layer2, layer3, layer4" in log2
    # stages SWFT never unfroze are the intermediate model's tensors, BatchNorm statistics included, bit for bit
    frozen = [k for k in target if k.startswith(("backbone.stem.", "backbone.layer1.", "backbone.layer2.", "backbone.layer3."))]
    assert frozen and all(torch.equal(target[k], intermediate[k]) for k in frozen)
    assert not all(torch.equal(target[k], intermediate[k]) for k in target if k.startswith("backbone.layer4."))
    assert not torch.equal(target["head.fc.weight"], intermediate["head.fc.weight"])
    assert json.loads((bundle / "models" / "swft_state.json").read_text())["unfrozen"] == [["layer4"]]


def test_evaluate_and_inference_write_predictions_into_the_bundle(chained, two_step_demo, tmp_path):
    bundle, _, _ = chained
    configs = bundle / "configs"
    common = dict(meta_file=str(configs / "metadata.json"), logging_file=str(configs / "logging.conf"))
    evaluate = ConfigWorkflow(config_file=[str(configs / "train.json"), str(configs / "evaluate.json")], workflow_type="eval",
                              dataset_dir=str(two_step_demo), image_size=32, progress_bar=False, **common)
    evaluate.initialize()
    assert evaluate.check_properties() in (None, [])
    evaluate.run()
    metrics = json.loads((bundle / "eval" / "metrics.json").read_text())
    assert metrics["n_cases"] == len(json.loads((two_step_demo / "target" / "datalist.json").read_text())["test"])
    infer = ConfigWorkflow(config_file=str(configs / "inference.json"), workflow_type="infer",
                           input_dir=str(two_step_demo / "target" / "images"), image_size=32, **common)
    infer.initialize()
    assert infer.check_properties() in (None, [])
    infer.run()
    with open(bundle / "eval" / "inference" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {r["prediction"] for r in rows} <= {"benign", "malignant"}


def test_missing_data_stops_with_a_how_to_message(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    workflow = ConfigWorkflow(config_file=str(configs / "train.json"), meta_file=str(configs / "metadata.json"),
                              logging_file=str(configs / "logging.conf"), workflow_type="train",
                              dataset_dir=str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError) as info:  # MONAI wraps errors raised by config expressions
        workflow.initialize()
    assert isinstance(info.value.__cause__, MissingDataError)
    assert "nowhere/target/datalist.json' does not exist" in str(info.value.__cause__)
    assert "python scripts/make_two_step_demo.py --out" in str(info.value.__cause__)


@pytest.mark.parametrize("extra", [[], ["intermediate.json"]])
def test_train_workflow_properties_are_complete(extra, two_step_demo, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    workflow = ConfigWorkflow(config_file=[str(configs / f) for f in ["train.json", *extra]], meta_file=str(configs / "metadata.json"),
                              logging_file=str(configs / "logging.conf"), workflow_type="train",
                              dataset_dir=str(two_step_demo), init_from=None, progress_bar=False)
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    assert workflow.bundle_root == str(bundle)
