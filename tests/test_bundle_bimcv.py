"""The bimcv_truncated bundle, checked the way the MONAI model zoo checks bundles, and run end to end on tiny data:
the mission command, evaluation and inference from the trained model's card, TorchScript export, resume after
kill -9, the X-ray variant and multi-process training."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from _bundle_utils import (
    SCHEMA,
    TINY_CT,
    copy_bundle,
    copy_trained,
    overrides,
    run_bundle,
    the_run,
    trained_bundle,
    workflow,
)
from medtl_monai.bundle import BundleModel, read_model_card, run_names
from medtl_monai.data import MissingDataError
from medtl_monai.evaluation import (
    choose_threshold,
    classification_summary,
    fit_temperature,
    logits_from_probabilities,
    read_prediction_table,
)
from medtl_monai.networks import TransferClassifier

NAME = "bimcv_truncated"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_demo) -> Path:
    return trained_bundle(tmp_path_factory, tiny_demo)


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_mission_command_trains_into_its_run_folder_and_publishes_the_model_with_its_card(trained):
    run = the_run(trained)
    models = run / "models"
    assert {p.name for p in models.iterdir()} >= {"model.pt", "checkpoint_last.pt", "model_final.pt", "model_card.json",
                                                  "metrics.json", "data_fingerprint.json"}
    last = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == 2 and set(last) >= {"network", "optimizer", "lr_scheduler", "best_metric"}
    assert torch.load(models / "model.pt", weights_only=True).keys() == last["network"].keys()
    assert list((run / "logs").glob("events.out.tfevents.*")), "no TensorBoard log"
    assert not list((trained.parent / "cwd").iterdir()), "training wrote into the current directory"
    assert {p.name for p in trained.iterdir()} == {"configs", "docs", "LICENSE", "models", "runs"}  # nothing else
    log = (trained.parent / "train.log").read_text()
    assert "RANDOM initialisation" in log and "val_auroc" in log and f"--run_name {run.name}" in log
    card = read_model_card(models)
    assert card.network == TransferClassifier("resnet50", 3, 3, 2, cut=10, weights="checkpoint").config
    assert card.preprocessing == {"kind": "ct", "spatial_size": [32, 32, 16], "pixdim": [3.5, 3.5, 10.0],
                                  "windows": ["lung", "mediastinum", "bone"], "crop": "body", "normalize": "none",
                                  "modalities": ["CT"]}  # the training override
    assert card.class_names == ["negative", "positive"]
    # published: the bundle's models/model.pt is the run's best model, and its card names the run
    published = json.loads((trained / "models" / "model_card.json").read_text())
    assert published["run"] == run.name and published["network"] == card.network
    assert (trained / "models" / "model.pt").read_bytes() == (models / "model.pt").read_bytes()
    # traceable: the resolved config and the provenance record of the run
    config = json.loads((run / "config.json").read_text())
    assert config["max_epochs"] == 2 and config["image_size"] == [32, 32, 16] and config["bundle_root"] == str(trained)
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["weights"]["kind"] == "random" and provenance["datalist"]["counts"]["training"] > 0
    assert provenance["config_hash"] == json.loads((models / "metrics.json").read_text())["config_hash"]


@pytest.mark.slow
def test_metadata_verifies_against_the_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip(f"offline schema copy missing: {SCHEMA}")
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_metadata", "--meta_file", str(bundle / "configs" / "metadata.json"), "--filepath", str(SCHEMA)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "metadata is verified with no error" in (proc.stdout + proc.stderr)


@pytest.mark.slow
def test_network_input_output_match_metadata_on_inference_json_alone(tmp_path):
    """The zoo's check on a fresh bundle (no trained model: the network of train.json's defaults)."""
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_net_in_out", "network_def", "--meta_file", str(bundle / "configs" / "metadata.json"),
                       "--config_file", str(bundle / "configs" / "inference.json")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "data shape of network is verified with no error" in (proc.stdout + proc.stderr)


def test_evaluation_takes_the_trained_settings_from_the_card_and_agrees_with_the_model(trained, tiny_demo, tmp_path):
    """evaluate.json with no --image_size: the card brings it. Every probability equals the trained model's own
    (BundleModel on the same file) and metrics.json equals the metrics of predictions.csv."""
    bundle = copy_trained(trained, tmp_path)
    workflow(bundle, ["train.json", "evaluate.json"], "eval", dataset_dir=str(tiny_demo), progress_bar=False)
    metrics = json.loads((bundle / "eval" / "metrics.json").read_text())
    test_items = json.loads((tiny_demo / "datalist.json").read_text())["test"]
    rows = {r["id"]: r for r in _rows(bundle / "eval" / "predictions.csv")}
    assert sorted(rows) == sorted(item["id"] for item in test_items) and metrics["n_cases"] == len(test_items)
    model = BundleModel(bundle)
    for item in test_items[:3]:
        expected = model(str(tiny_demo / item["image"]))["probabilities"]
        got = rows[item["id"]]
        assert abs(float(got["prob_positive"]) - expected["positive"]) < 1e-5
        assert abs(float(got["prob_negative"]) + float(got["prob_positive"]) - 1) < 1e-5
    probs = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows.values()])
    labels = [["negative", "positive"].index(r["label"]) for r in rows.values()]
    summary = classification_summary(probs, labels)
    for key in ("auroc", "auprc", "accuracy", "sensitivity", "specificity"):
        assert metrics[key] == pytest.approx(summary[key], nan_ok=True), key
    assert metrics["accuracy"] == pytest.approx(np.mean([r["label"] == r["prediction"] for r in rows.values()]))
    ci = metrics["ci"]  # every metric with its 95% CI, whole patients resampled
    assert ci["n_cases"] == len(test_items) and ci["n_patients"] == len({i["patient_id"] for i in test_items})
    for key in ("auroc", "auprc", "accuracy", "sensitivity", "specificity", "brier", "ece"):
        assert ci[key]["ci_low"] <= ci[key]["value"] <= ci[key]["ci_high"], key
        assert "cluster bootstrap" in ci[key]["method"] and ci[key]["confidence"] == 0.95
    assert ci["auroc"]["value"] == pytest.approx(metrics["auroc"], nan_ok=True)
    # the validation split is predicted first; the threshold and the temperature are chosen on it alone
    validation = read_prediction_table(bundle / "eval" / "validation" / "predictions.csv")
    val_items = json.loads((tiny_demo / "datalist.json").read_text())["validation"]
    assert sorted(validation.ids) == sorted(item["id"] for item in val_items)
    point = metrics["operating_point"]
    assert point["threshold"] == pytest.approx(choose_threshold(validation.labels, validation.probs[:, 1]).threshold)
    assert point["chosen_on_cases"] == len(val_items) and point["n_cases"] == len(test_items)
    assert metrics["calibration"]["temperature"] == pytest.approx(
        fit_temperature(logits_from_probabilities(validation.probs), validation.labels))


def test_inference_on_a_folder_of_dicom_series_needs_no_training_overrides(trained, tiny_demo, tmp_path):
    bundle = copy_trained(trained, tmp_path)
    workflow(bundle, ["inference.json"], "infer", input_dir=str(tiny_demo / "dicom"))
    rows = _rows(bundle / "eval" / "inference" / "predictions.csv")
    cases = sorted(p.name for p in (tiny_demo / "dicom").iterdir() if p.is_dir())
    assert sorted(r["id"] for r in rows) == sorted(f"{c}/CT" for c in cases)
    assert all(r["label"] == "" for r in rows)
    model = BundleModel(bundle)
    first = rows[0]
    expected = model(str(tiny_demo / "dicom" / first["id"]))["probabilities"]["positive"]
    assert abs(float(first["prob_positive"]) - expected) < 1e-5


@pytest.mark.slow
def test_ckpt_export_gives_the_checkpoint_outputs(trained, tmp_path):
    bundle = copy_trained(trained, tmp_path)
    configs = bundle / "configs"
    ts = bundle / "models" / "model.ts"
    proc = run_bundle(["ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(bundle / "models" / "model.pt"),
                       "--meta_file", str(configs / "metadata.json"), "--config_file", str(configs / "inference.json")])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] and json.loads(extra["inference.json"])["network_def"]
    eager = TransferClassifier("resnet50", 3, 3, 2, cut=10, weights="checkpoint")
    eager.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    x = torch.rand(2, 3, 32, 32, 16)
    with torch.no_grad():
        assert torch.allclose(scripted(x), eager.eval()(x), atol=1e-5)


@pytest.mark.parametrize("workflow_type", ["train", "eval", "infer"])
def test_config_workflow_properties_are_complete(workflow_type, trained, tiny_demo, tmp_path):
    bundle = copy_trained(trained, tmp_path) if workflow_type != "train" else copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    files = {"train": ["train.json"], "eval": ["train.json", "evaluate.json"], "infer": ["inference.json"]}[workflow_type]
    extra = {"input_dir": str(tiny_demo / "dicom")} if workflow_type == "infer" else {"dataset_dir": str(tiny_demo)}
    workflow_ = ConfigWorkflow(config_file=[str(configs / f) for f in files], meta_file=str(configs / "metadata.json"),
                               logging_file=False, workflow_type=workflow_type, bundle_root=str(bundle), **extra)
    workflow_.initialize()
    assert workflow_.check_properties() in (None, [])
    assert workflow_.bundle_root == str(bundle)


def test_missing_data_stops_with_a_how_to_message(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    with pytest.raises(RuntimeError) as info:  # MONAI wraps errors raised by config expressions
        workflow(bundle, ["train.json"], dataset_dir=str(tmp_path / "nowhere"))
    error = info.value
    while error is not None and not isinstance(error, MissingDataError):
        error = error.__cause__ or error.__context__
    assert error is not None and "nowhere/datalist.json' does not exist" in str(error)
    assert "scripts/make_demo_data.py --output_dir" in str(error)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_the_same_command_resumes_the_same_run_and_another_config_is_refused(tiny_demo, tmp_path):
    """A run killed with SIGKILL in the middle of epoch 2 resumes from the epoch-1 checkpoint when the same command
    (same --run_name) runs again; resuming it with other settings stops with a message naming both configs."""
    bundle = copy_bundle(NAME, tmp_path)
    train = str(bundle / "configs" / "train.json")
    args = ["run", "--config_file", train, *overrides(dataset_dir=tiny_demo, max_epochs=3, run_name="ttl", **TINY_CT)]
    items = len(json.loads((tiny_demo / "datalist.json").read_text())["training"])
    epoch_length = -(-items // 4)
    kill = (f"$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once={epoch_length + 2}), "
            "lambda engine: os.kill(os.getpid(), 9))")
    proc = run_bundle([*args, "--run", json.dumps([kill, "$@train#trainer.run()"])])
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = bundle / "runs" / "ttl" / "models" / "checkpoint_last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert not list(last.parent.glob(".*tmp*"))
    assert not (bundle / "models").exists(), "an unfinished run published a model"
    proc = run_bundle(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "epoch 1 done" in proc.stdout + proc.stderr
    assert "Epoch[1] Complete" not in proc.stdout.replace("SupervisedEvaluator - INFO - Epoch[1]", "")
    assert torch.load(last, weights_only=True)["epoch"] == 3
    assert [p.name for p in (bundle / "runs").iterdir()] == ["ttl"]  # one run, continued
    assert json.loads((bundle / "models" / "model_card.json").read_text())["run"] == "ttl"
    with pytest.raises(RuntimeError) as info:  # the same run name, another learning rate
        workflow(bundle, ["train.json"], "train", dataset_dir=str(tiny_demo), max_epochs=4, run_name="ttl",
                 learning_rate=0.001, **TINY_CT)
    message = str(info.value.__cause__ or info.value)
    assert str(bundle / "runs" / "ttl" / "config.json") in message and "learning_rate: 0.0001 -> 0.001" in message
    assert "another --run_name" in message and "--resume false" in message
    assert torch.load(last, weights_only=True)["epoch"] == 3  # nothing of the run was touched
    assert json.loads((last.parent.parent / "config.json").read_text())["learning_rate"] == 0.0001


def test_a_3d_run_then_the_xray_variant_in_the_same_bundle_are_two_complete_runs(tiny_demo, tmp_path):
    """The crash of the runs issue: after a 3D training, the X-ray variant in the same bundle used to "resume" the 3D
    checkpoint. Now each is a run of its own; the X-ray one is evaluated and served with its own settings, and its
    resolved config trains the same model again."""
    bundle = copy_bundle(NAME, tmp_path)
    common = {"dataset_dir": str(tiny_demo), "batch_size": 4, "val_batch_size": 4, "progress_bar": False}
    workflow(bundle, ["train.json"], "train", max_epochs=1, image_size=[32, 32, 16], **common)
    workflow(bundle, ["train.json", "xray.json"], "train", max_epochs=1, image_size=64, **common)
    ct_run, xray_run = (bundle / "runs" / name for name in run_names(bundle))
    assert "_xray_cut11_" in xray_run.name and "xray" not in ct_run.name
    for run in (ct_run, xray_run):  # both complete
        assert torch.load(run / "models" / "checkpoint_last.pt", weights_only=True)["epoch"] == 1
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)  # the X-ray run published last
    assert state["backbone.stem.conv.weight"].dim() == 4  # 2D
    assert max(int(k.split(".")[2]) for k in state if k.startswith("backbone.layer3.")) == 3  # 4 of 6 layer3 blocks
    card = read_model_card(bundle / "models")
    assert card.network["spatial_dims"] == 2 and card.network["cut"] == 11
    assert card.preprocessing == {"kind": "xray", "size": 64, "channels": 3, "normalize": "none",
                                  "modalities": ["CR", "DX"]}
    workflow(bundle, ["train.json", "xray.json", "evaluate.json"], "eval", **common)  # no --image_size: from the card
    test_ids = [i["id"] for i in json.loads((tiny_demo / "datalist_xray.json").read_text())["test"]]
    assert sorted(r["id"] for r in _rows(xray_run / "eval" / "predictions.csv")) == sorted(test_ids)
    workflow(bundle, ["inference.json"], "infer", input_dir=str(tiny_demo / "dicom"))  # a 2D model reads the CR files
    ids = [r["id"] for r in _rows(xray_run / "eval" / "inference" / "predictions.csv")]
    assert ids and all(i.endswith("/CR.dcm") for i in ids)
    # the run's resolved config is one file that trains the same model again (same seed), as a new run
    workflow(bundle, [str(xray_run / "config.json")], "train", progress_bar=False)
    again = bundle / "runs" / run_names(bundle)[-1]
    assert again.name not in (ct_run.name, xray_run.name)
    first, second = (torch.load(r / "models" / "model.pt", weights_only=True) for r in (xray_run, again))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_multi_gpu_config_runs_swft_under_torchrun_with_two_cpu_processes(tiny_demo, tv_weights, tmp_path):
    """SWFT under DDP (2 gloo processes): stages unfreeze on both ranks at the same epochs, the ranks' weights stay
    equal, the stages still frozen keep the pretrained weights bit for bit, and the unfrozen ones moved."""
    from medtl_monai.training import stage_groups

    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    weights = tv_weights("resnet50")
    dump = tmp_path / "rank"
    finalize = f"""['$torch.save(dict(@network.module.named_parameters()), "{dump}" + str(torch.distributed.get_rank()) + ".pt")', """ \
               "'$medtl_monai.training.close_distributed()']"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "monai.bundle", "run",
           "--config_file", f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']",
           *overrides(dataset_dir=tiny_demo, max_epochs=3, strategy="swft", swft_epochs=1, weights=weights, **TINY_CT),
           "--finalize", finalize]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    assert torch.load(the_run(bundle) / "models" / "checkpoint_last.pt", weights_only=True)["epoch"] == 3
    assert log.count("SWFT step 1 at epoch 2") == 2 and log.count("SWFT step 2 at epoch 3") == 2, log[-4000:]
    assert log.count("trainable head | frozen") == 1, "the stage logger ran on the other rank too"
    rank0, rank1 = (torch.load(f"{dump}{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    start = TransferClassifier(arch="resnet50", spatial_dims=3, cut=10, weights=weights).state_dict()
    groups = stage_groups(TransferClassifier(arch="resnet50", spatial_dims=3, cut=10))
    assert len(groups) >= 3
    for stage in groups[0]:  # never unfrozen in 3 epochs (head, then the top two stage groups)
        keys = [k for k in rank0 if k.startswith(f"backbone.{stage}.")]
        assert keys and all(torch.equal(rank0[k], start[k]) for k in keys), stage
    for group in groups[-2:]:  # unfrozen at epochs 2 and 3
        keys = [k for k in rank0 if k.split(".")[1] in group]
        assert any(not torch.equal(rank0[k], start[k]) for k in keys), group


def test_multi_gpu_config_refuses_freezing_without_find_unused_parameters(quiet_random_init):
    from medtl_monai.training import check_ddp_allows_freezing, configure

    class FakeDDP(torch.nn.parallel.DistributedDataParallel):  # the attribute the check reads, without a process group
        def __init__(self, module, find_unused_parameters):
            torch.nn.Module.__init__(self)
            self.module, self.find_unused_parameters = module, find_unused_parameters

    net = TransferClassifier(arch="resnet18", spatial_dims=2, cut="layer2")
    with pytest.raises(ValueError, match="find_unused_parameters=True"):
        configure(FakeDDP(net, False), "linear", 1e-3)
    check_ddp_allows_freezing(FakeDDP(net, True), "linear")
    groups = configure(FakeDDP(net, True), "linear", 1e-3)
    assert [g["name"] for g in groups] == ["head"]
    assert configure(FakeDDP(net, False), "full", 1e-3)[-1]["name"] == "head"  # nothing frozen: allowed
