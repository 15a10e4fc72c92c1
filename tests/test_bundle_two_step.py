"""The two_step_swft bundle: model-zoo checks, both steps on tiny data, the chain loading the intermediate backbone
exactly, SWFT training only what it has unfrozen, and evaluation / inference / explanation of the trained model."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from _bundle_utils import SCHEMA, copy_bundle, run_bundle, workflow
from medtl_monai.bundle import BundleModel, read_model_card, resolve_run, run_names
from medtl_monai.data import MissingDataError
from medtl_monai.synthetic.two_step import make_two_step_demo

NAME = "two_step_swft"
TINY = {"image_size": [32, 32], "batch_size": 4, "val_batch_size": 4, "progress_bar": False}


@pytest.fixture(scope="module")
def two_step_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_step") / "demo"
    make_two_step_demo(root, n_intermediate=16, n_target=16, size=32, seed=1)
    return root


@pytest.fixture(scope="module")
def chained(tmp_path_factory, two_step_demo):
    """Step 1 (intermediate, full finetuning, 1 epoch) then step 2 (target, SWFT: head for 1 epoch, then + layer4),
    run in this process as ``monai.bundle run`` would; returns the bundle and the log of each step."""
    bundle = copy_bundle(NAME, tmp_path_factory.mktemp("bundle"))
    logs = []
    for configs, epochs in ((["train.json", "intermediate.json"], 1), (["train.json"], 2)):
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record, out=records: out.append(record.getMessage())
        logger = logging.getLogger("medtl_monai")
        logger.addHandler(handler)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            workflow(bundle, configs, "train", dataset_dir=str(two_step_demo), max_epochs=epochs, swft_epochs=1, **TINY)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        logs.append("\n".join(records))
    return bundle, logs[0], logs[1]


@pytest.mark.slow
def test_metadata_verifies_against_the_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip(f"offline schema copy missing: {SCHEMA}")
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_metadata", "--meta_file", str(bundle / "configs" / "metadata.json"), "--filepath", str(SCHEMA)])
    assert proc.returncode == 0 and "metadata is verified with no error" in proc.stdout + proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
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
    step1, step2 = (resolve_run(bundle, name) for name in run_names(bundle))  # one run folder per step
    assert "_intermediate" in step1.name and resolve_run(bundle) == step2  # step 2 published the bundle's model
    intermediate = torch.load(bundle / "models" / "intermediate" / "model.pt", weights_only=True)  # what step 2 loads
    assert json.loads((bundle / "models" / "intermediate" / "model_card.json").read_text())["run"] == step1.name
    assert intermediate.keys() == torch.load(step1 / "models" / "model.pt", weights_only=True).keys()
    target = torch.load(step2 / "models" / "model_final.pt", weights_only=True)
    assert "(new head)" in log2 and "SWFT step 1 at epoch 2: unfroze layer4" in log2
    assert "epoch 1: trainable head | frozen stem, layer1, layer2, layer3, layer4" in log2
    assert "strategy full" in log1 and "SWFT" not in log1
    # stages SWFT never unfroze are the intermediate model's tensors, BatchNorm statistics included, bit for bit
    frozen = [k for k in target if k.startswith(("backbone.stem.", "backbone.layer1.", "backbone.layer2.", "backbone.layer3."))]
    assert frozen and all(torch.equal(target[k], intermediate[k]) for k in frozen)
    assert not all(torch.equal(target[k], intermediate[k]) for k in target if k.startswith("backbone.layer4."))
    assert not torch.equal(target["head.fc.weight"], intermediate["head.fc.weight"])
    assert json.loads((step2 / "models" / "swft_state.json").read_text())["unfrozen"] == [["layer4"]]
    assert read_model_card(bundle / "models" / "intermediate").class_names == ["healthy", "retinopathy"]
    assert read_model_card(bundle / "models").class_names == ["benign", "malignant"]


def test_evaluate_inference_and_explain_use_the_trained_model(chained, two_step_demo):
    bundle, _, _ = chained
    common = {"dataset_dir": str(two_step_demo), "progress_bar": False}  # the 32-pixel input comes from the card
    evaluate = workflow(bundle, ["train.json", "evaluate.json"], "eval", **common)
    assert evaluate.check_properties() in (None, [])
    run = resolve_run(bundle)  # the published run: evaluation, inference and explanation write into it
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["n_cases"] == len(json.loads((two_step_demo / "target" / "datalist.json").read_text())["test"])
    infer = workflow(bundle, ["inference.json"], "infer", input_dir=str(two_step_demo / "target" / "images"))
    assert infer.check_properties() in (None, [])
    with open(run / "eval" / "inference" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and {r["prediction"] for r in rows} <= {"benign", "malignant"}
    model = BundleModel(bundle)
    expected = model(str(two_step_demo / "target" / "images" / rows[0]["id"]))["probabilities"]["malignant"]
    assert abs(float(rows[0]["prob_malignant"]) - expected) < 1e-5
    workflow(bundle, ["train.json", "evaluate.json", "explain.json"], **common)
    with open(run / "eval" / "cam" / "cams.csv") as f:
        cams = list(csv.DictReader(f))
    assert len(cams) == metrics["n_cases"] and all((run / "eval" / "cam" / c["png"]).is_file() for c in cams)


def test_missing_data_stops_with_a_how_to_message(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    with pytest.raises(RuntimeError) as info:  # MONAI wraps errors raised by config expressions
        workflow(bundle, ["train.json"], "train", dataset_dir=str(tmp_path / "nowhere"))
    assert isinstance(info.value.__cause__, MissingDataError)
    assert "nowhere/target/datalist.json' does not exist" in str(info.value.__cause__)
    assert "python scripts/make_two_step_demo.py --output_dir" in str(info.value.__cause__)


@pytest.mark.parametrize("extra", [[], ["intermediate.json"]])
def test_train_workflow_properties_are_complete(extra, two_step_demo, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    workflow_ = ConfigWorkflow(config_file=[str(configs / f) for f in ["train.json", *extra]], meta_file=str(configs / "metadata.json"),
                               logging_file=False, workflow_type="train", bundle_root=str(bundle),
                               dataset_dir=str(two_step_demo), init_from=None, progress_bar=False)
    workflow_.initialize()
    assert workflow_.check_properties() in (None, [])
    assert workflow_.bundle_root == str(bundle)
