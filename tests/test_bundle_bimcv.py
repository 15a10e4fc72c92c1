"""The bimcv_truncated bundle, checked the way the MONAI model zoo checks bundles, and run end to end on tiny data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from _bundle_utils import SCHEMA, TINY_CT, copy_bundle, overrides, run_bundle

NAME = "bimcv_truncated"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_demo):
    """A copy of the bundle trained for 2 epochs on the tiny demo data (through the real CLI)."""
    bundle = copy_bundle(NAME, tmp_path_factory.mktemp("bundle"))
    proc = run_bundle(["run", "--config_file", str(bundle / "configs" / "train.json"),
                       *overrides(dataset_dir=tiny_demo, max_epochs=2, **TINY_CT)], cwd=tmp_path_factory.mktemp("cwd"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return bundle, proc


def test_metadata_verifies_against_the_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip(f"offline schema copy missing: {SCHEMA}")
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_metadata", "--meta_file", str(bundle / "configs" / "metadata.json"), "--filepath", str(SCHEMA)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "metadata is verified with no error" in (proc.stdout + proc.stderr)


def test_network_input_output_match_metadata(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["verify_net_in_out", "network_def", "--meta_file", str(bundle / "configs" / "metadata.json"),
                       "--config_file", str(bundle / "configs" / "inference.json")])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "data shape of network is verified with no error" in (proc.stdout + proc.stderr)


def test_training_writes_checkpoints_logs_into_the_bundle_not_cwd(trained):
    bundle, proc = trained
    models = bundle / "models"
    assert (models / "model.pt").is_file() and (models / "checkpoint_last.pt").is_file() and (models / "model_final.pt").is_file()
    last = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert last["epoch"] == 2 and set(last) >= {"network", "optimizer", "lr_scheduler", "best_metric"}
    assert torch.load(models / "model.pt", weights_only=True).keys() == last["network"].keys()
    assert list((bundle / "logs").glob("events.out.tfevents.*")), "no TensorBoard log"
    assert "RANDOM initialisation" in proc.stdout + proc.stderr
    assert "val_auroc" in proc.stdout


def test_evaluate_writes_metrics_and_predictions(trained, tiny_demo, tmp_path):
    bundle, _ = trained
    configs = bundle / "configs"
    proc = run_bundle(["run", "--config_file", f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']",
                       *overrides(dataset_dir=tiny_demo, **TINY_CT)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((bundle / "eval" / "metrics.json").read_text())
    test_ids = [item["id"] for item in json.loads((tiny_demo / "datalist.json").read_text())["test"]]
    assert metrics["n_cases"] == len(test_ids)
    assert {"auroc", "auprc", "accuracy", "sensitivity", "specificity"} <= set(metrics)
    with open(bundle / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["id"] for r in rows) == sorted(test_ids)
    for r in rows:
        assert abs(float(r["prob_negative"]) + float(r["prob_positive"]) - 1) < 1e-5
    accuracy = sum(r["label"] == r["prediction"] for r in rows) / len(rows)
    assert abs(accuracy - metrics["accuracy"]) < 1e-9
    assert not list(tmp_path.iterdir()), "evaluation wrote into the current directory"


def test_inference_on_a_folder_of_dicom_series(trained, tiny_demo, tmp_path):
    bundle, _ = trained
    proc = run_bundle(["run", "--config_file", str(bundle / "configs" / "inference.json"),
                       *overrides(input_dir=tiny_demo / "dicom", image_size="[32,32,16]")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(bundle / "eval" / "inference" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    cases = sorted(p.name for p in (tiny_demo / "dicom").iterdir() if p.is_dir())
    assert sorted(r["id"] for r in rows) == sorted(f"{c}/CT" for c in cases)
    assert all(r["label"] == "" for r in rows)


def test_ckpt_export_gives_the_checkpoint_outputs(trained):
    bundle, _ = trained
    configs = bundle / "configs"
    ts = bundle / "models" / "model.ts"
    proc = run_bundle(["ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(bundle / "models" / "model.pt"),
                       "--meta_file", str(configs / "metadata.json"), "--config_file", str(configs / "inference.json")])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] and json.loads(extra["inference.json"])["network_def"]
    from medtl_monai.networks import TransferClassifier

    eager = TransferClassifier("resnet50", 3, 3, 2, cut=10)
    eager.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    x = torch.rand(2, 3, 32, 32, 16)
    with torch.no_grad():
        assert torch.allclose(scripted(x), eager.eval()(x), atol=1e-5)


@pytest.mark.parametrize("workflow_type", ["train", "eval", "infer"])
def test_config_workflow_properties_are_complete(workflow_type, tiny_demo, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    files = {"train": [configs / "train.json"], "eval": [configs / "train.json", configs / "evaluate.json"],
             "infer": [configs / "inference.json"]}[workflow_type]
    extra = {"input_dir": str(tiny_demo / "dicom")} if workflow_type == "infer" else {"dataset_dir": str(tiny_demo)}
    if workflow_type != "train":  # evaluation and inference start from a trained model
        from medtl_monai.networks import TransferClassifier

        (bundle / "models").mkdir()
        torch.save(TransferClassifier("resnet50", 3, 3, 2, cut=10).state_dict(), bundle / "models" / "model.pt")
    workflow = ConfigWorkflow(config_file=[str(f) for f in files], meta_file=str(configs / "metadata.json"),
                              logging_file=str(configs / "logging.conf"), workflow_type=workflow_type, **extra)
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    assert workflow.bundle_root == str(bundle)


def test_train_then_evaluate_with_config_workflow(tiny_demo, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    common = dict(meta_file=str(configs / "metadata.json"), logging_file=str(configs / "logging.conf"),
                  dataset_dir=str(tiny_demo), max_epochs=1, image_size=[32, 32, 16], progress_bar=False)
    train = ConfigWorkflow(config_file=str(configs / "train.json"), workflow_type="train", **common)
    train.initialize()
    train.run()
    train.finalize()
    evaluate = ConfigWorkflow(config_file=[str(configs / "train.json"), str(configs / "evaluate.json")], workflow_type="eval", **common)
    evaluate.initialize()
    evaluate.run()
    evaluate.finalize()
    assert json.loads((bundle / "eval" / "metrics.json").read_text())["n_cases"] > 0


def test_missing_data_stops_with_a_how_to_message(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    proc = run_bundle(["run", "--config_file", str(bundle / "configs" / "train.json"), *overrides(dataset_dir=tmp_path / "nowhere")])
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "nowhere/datalist.json' does not exist" in text and "scripts/make_demo_data.py" in text


def test_kill_9_mid_epoch_then_rerun_resumes(tiny_demo, tmp_path):
    """A run killed with SIGKILL in the middle of epoch 2 resumes from the epoch-1 checkpoint when run again."""
    bundle = copy_bundle(NAME, tmp_path)
    train = str(bundle / "configs" / "train.json")
    args = ["run", "--config_file", train, *overrides(dataset_dir=tiny_demo, max_epochs=3, **TINY_CT)]
    items = len(json.loads((tiny_demo / "datalist.json").read_text())["training"])
    epoch_length = -(-items // 4)
    kill = (f"$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once={epoch_length + 2}), "
            "lambda engine: os.kill(os.getpid(), 9))")
    proc = run_bundle([*args, "--run", json.dumps([kill, "$@train#trainer.run()"])])
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = bundle / "models" / "checkpoint_last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert not list((bundle / "models").glob(".*tmp*"))
    proc = run_bundle(args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "epoch 1 done" in proc.stdout + proc.stderr
    assert "Epoch[1] Complete" not in proc.stdout.replace("SupervisedEvaluator - INFO - Epoch[1]", "")
    assert torch.load(last, weights_only=True)["epoch"] == 3


def test_xray_override_trains_the_2d_ttl2_model(tiny_demo, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    proc = run_bundle(["run", "--config_file", f"['{configs / 'train.json'}','{configs / 'xray.json'}']",
                       *overrides(dataset_dir=tiny_demo, max_epochs=1, image_size=64, batch_size=4, progress_bar="false")])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert state["backbone.stem.conv.weight"].dim() == 4  # 2D
    assert max(int(k.split(".")[2]) for k in state if k.startswith("backbone.layer3.")) == 3  # 4 of 6 layer3 blocks


def test_multi_gpu_config_runs_swft_under_torchrun_with_two_cpu_processes(tiny_demo, weights_dir, tmp_path):
    """SWFT under DDP (2 gloo processes): stages unfreeze on both ranks at the same epochs, the ranks' weights stay
    equal, the stages still frozen keep the pretrained weights bit for bit, and the unfrozen ones moved."""
    from medtl_monai.networks import TransferClassifier
    from medtl_monai.strategies import stage_groups

    bundle = copy_bundle(NAME, tmp_path)
    configs = bundle / "configs"
    weights = weights_dir / "resnet50-0676ba61.pth"
    dump = tmp_path / "rank"
    finalize = f"""['$torch.save(dict(@network.module.named_parameters()), "{dump}" + str(@rank) + ".pt")', """ \
               "'$torch.distributed.is_initialized() and torch.distributed.destroy_process_group()']"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m", "monai.bundle", "run",
           "--config_file", f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']",
           *overrides(dataset_dir=tiny_demo, max_epochs=3, strategy="swft", swft_epochs=1, weights=weights, **TINY_CT),
           "--finalize", finalize]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    assert torch.load(bundle / "models" / "checkpoint_last.pt", weights_only=True)["epoch"] == 3
    assert log.count("SWFT step 1 at epoch 2") == 2 and log.count("SWFT step 2 at epoch 3") == 2, log[-4000:]
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
    from medtl_monai.networks import TransferClassifier
    from medtl_monai.strategies import check_ddp_allows_freezing, configure

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
