"""Run folders: default names, finding a run, the resolved config and its hash, provenance, publishing, the runs
table and comparison, the checkpointer's refusal to resume another config's training, and ``scripts/runs.py``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser

from _bundle_utils import REPO
from medtl_monai.bundle import (
    compare_runs,
    config_hash,
    default_run_name,
    delete_run,
    list_runs,
    load_config,
    new_run_name,
    publish_run,
    resolve_run,
    run_dir,
    weights_kind,
    write_provenance,
    write_resolved_config,
)
from medtl_monai.bundle.provenance import git_state
from medtl_monai.data import MissingDataError
from medtl_monai.training import TrainingCheckpointer

BUNDLE = REPO / "bundles" / "bimcv_truncated"
NOW = datetime(2026, 12, 1, 21, 30)


def _train_defaults() -> dict:
    return json.loads((BUNDLE / "configs" / "train.json").read_text())


def _fake_run(bundle: Path, name: str, cut: int, val_auroc: float, started: float,
              test_auroc: float | None = None) -> Path:
    """A run folder as training leaves it: resolved config, provenance, best model, card, best metrics."""
    run = run_dir(bundle, name)
    (run / "models").mkdir(parents=True)
    config = {"arch": "resnet18", "cut": cut, "strategy": "truncated", "weights": None, "bundle_root": str(bundle),
              "ckpt_dir": str(run / "models"), "learning_rate": 1e-4}
    (run / "config.json").write_text(json.dumps(config))
    write_provenance(run, weights=None, started=started, argv=["train"])
    torch.save({"w": torch.full((2,), float(cut))}, run / "models" / "model.pt")
    card = {"format": "medtl-monai model card", "version": 1, "network": {"arch": "resnet18", "cut": cut},
            "preprocessing": {"kind": "ct"}, "class_names": ["negative", "positive"]}
    (run / "models" / "model_card.json").write_text(json.dumps(card))
    best = {"key_metric": "val_auroc", "best_metric": val_auroc, "best_epoch": 3,
            "metrics": {"val_auroc": val_auroc, "val_loss": 0.5}}
    (run / "models" / "metrics.json").write_text(json.dumps(best))
    if test_auroc is not None:
        (run / "eval").mkdir()
        (run / "eval" / "metrics.json").write_text(json.dumps({"auroc": test_auroc, "n_cases": 10}))
    return run


def test_default_names_show_the_time_and_the_settings_that_differ():
    defaults = _train_defaults()
    xray = {**defaults, **json.loads((BUNDLE / "configs" / "xray.json").read_text()), "strategy": "swft"}
    assert default_run_name(xray, defaults, now=NOW) == "20261201-2130_xray_cut11_swft"
    assert default_run_name(defaults, defaults, now=NOW) == "20261201-2130"
    odd = {**defaults, "weights": "/w/resnet50-proxy.pth", "cut": None, "learning_rate": 0.001, "arch": "a/b c"}
    assert default_run_name(odd, defaults, now=NOW) == "20261201-2130_a-b-c_full_proxy_lr0.001"


def test_run_folders_resolve_to_the_published_run_else_the_latest(tmp_path):
    bundle = tmp_path / "bundle"
    assert resolve_run(bundle) == bundle.resolve()  # no run yet: the bundle's own models/ (e.g. from the model zoo)
    with pytest.raises(MissingDataError, match="no runs yet"):
        resolve_run(bundle, "absent")
    older = _fake_run(bundle, "older", 10, 0.7, started=1000.0)
    newer = _fake_run(bundle, "newer", 7, 0.8, started=2000.0)
    assert resolve_run(bundle) == newer  # the latest by start time, whatever the names
    publish_run(older)
    assert resolve_run(bundle) == older  # the published run wins
    assert resolve_run(bundle, "newer") == newer and resolve_run(bundle, str(newer)) == newer
    with pytest.raises(MissingDataError, match="no run 'absent' \\(available runs: older, newer\\)"):
        resolve_run(bundle, "absent")
    assert new_run_name(bundle, "older") == "older-2" and new_run_name(bundle, "fresh") == "fresh"
    with pytest.raises(ValueError, match="plain folder name"):
        run_dir(bundle, "../x")


def test_the_resolved_config_reads_back_to_the_same_values(tmp_path):
    parser = load_config(BUNDLE, ["train.json", "xray.json"], {"cut": 7, "max_epochs": 2})
    path = write_resolved_config(parser, tmp_path / "config.json")
    again = ConfigParser()
    again.read_config(str(path))  # one file, no metadata file: the run folder's config stands alone
    assert again.get() == {**parser.get(), "bundle_root": str(BUNDLE.resolve())}
    assert again.get_parsed_content("bundle_root") == str(BUNDLE.resolve())
    ckpt_dir = Path(again.get_parsed_content("ckpt_dir"))  # a new run of the bundle, named after what differs
    assert ckpt_dir.name == "models" and ckpt_dir.parent.parent == BUNDLE.resolve() / "runs"
    assert ckpt_dir.parent.name.endswith("_xray_cut7_e2")
    assert [again.get_parsed_content(k) for k in ("cut", "max_epochs", "spatial_dims")] == [7, 2, 2]
    assert again.get_parsed_content("in_channels") == parser.get_parsed_content("in_channels")  # _meta_ travels along
    preprocessing = again.get_parsed_content("preprocessing_transforms")
    assert preprocessing.config == parser.get_parsed_content("preprocessing_transforms").config
    with pytest.raises(ValueError, match="pass bundle_root"):
        write_resolved_config({"bundle_root": "$medtl_monai.bundle.bundle_root()"}, tmp_path / "x.json")


def test_the_config_hash_ignores_bookkeeping_and_follows_the_model(tmp_path):
    raw = load_config(BUNDLE, "train.json").get()
    reference = config_hash(raw)
    bookkeeping = {"progress_bar": False, "num_workers": 4, "run_name": "x", "publish": False, "resume": False,
                   "device": "cuda:1", "bundle_root": "/elsewhere", "ckpt_dir": "/elsewhere/runs/x", "max_epochs": 99}
    assert config_hash({**raw, **bookkeeping}) == reference
    tracked = json.loads(json.dumps(raw))
    tracked["train"]["handlers"].append({"_target_": "MLFlowHandler", "tracking_uri": "@tracking_uri"})
    assert config_hash({**tracked, "tracking_uri": "sqlite:///x.db"}) == reference
    assert config_hash({**raw, "cut": 7}) != reference
    assert config_hash({**raw, "learning_rate": 1e-3}) != reference
    path = write_resolved_config(raw, tmp_path / "config.json")
    assert config_hash(path) == reference and len(reference) == 64


def test_provenance_records_the_weights_hash_the_data_counts_and_the_fingerprint(tmp_path):
    weights = tmp_path / "resnet50-proxy.pth"
    torch.save({"conv1.weight": torch.arange(6.0)}, weights)
    datalist = tmp_path / "datalist.json"
    splits = {"training": [{}] * 3, "validation": [{}] * 2, "test": [{}], "class_names": ["a", "b"]}
    datalist.write_text(json.dumps(splits))
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "models").mkdir()
    (run / "models" / "data_fingerprint.json").write_text(json.dumps({"n_cases": 6, "digest": "abc"}))
    path = write_provenance(run, weights=str(weights), datalist=datalist, config_hash="f" * 64,
                            argv=["train", "--cut", "7"], started=1_800_000_000.0)
    record = json.loads(path.read_text())
    assert path == run / "provenance.json" and record["run"] == "r1"
    assert {k: record["weights"][k] for k in ("setting", "kind", "path", "sha256")} == {
        "setting": str(weights), "kind": "proxy", "path": str(weights.resolve()),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert record["weights"]["source_layout"] == "torchvision" and "proxy" in record["weights"]["source_domain"]
    assert record["datalist"]["sha256"] == hashlib.sha256(datalist.read_bytes()).hexdigest()
    assert record["datalist"]["counts"] == {"training": 3, "validation": 2, "test": 1}
    fingerprint = run / "models" / "data_fingerprint.json"  # where the data check writes it, beside model.pt
    assert record["data_fingerprint"] == {"path": str(fingerprint.resolve()),
                                          "sha256": hashlib.sha256(fingerprint.read_bytes()).hexdigest(),
                                          "content": {"n_cases": 6, "digest": "abc"}}
    assert record["command"] == ["train", "--cut", "7"] and record["config_hash"] == "f" * 64
    assert record["packages"]["monai"] and record["packages"]["torch"] == torch.__version__
    assert record["device"]["cpu_count"] >= 1 and record["started_unix"] == 1_800_000_000.0
    commit = record["git"]["commit"]
    assert commit is None or (len(commit) == 40 and isinstance(record["git"]["dirty"], bool))
    assert git_state(tmp_path / "pkg") == {"commit": None, "dirty": None, "repository": None}  # not a checkout
    kinds = [weights_kind(None), weights_kind("imagenet"), weights_kind("/c/resnet50-0676ba61.pth"),
             weights_kind("/x/w.pth"), weights_kind("/x/w.pth", init_from="/runs/a/model.pt")]
    assert kinds == ["random", "imagenet", "imagenet", "file", "previous_run"]


def test_publishing_copies_the_best_model_and_names_the_run_in_the_card(tmp_path):
    bundle = tmp_path / "bundle"
    run = _fake_run(bundle, "r1", 10, 0.75, started=1.0)
    target = publish_run(run)
    assert target == bundle / "models" / "model.pt"
    assert target.read_bytes() == (run / "models" / "model.pt").read_bytes()
    card = json.loads((bundle / "models" / "model_card.json").read_text())
    assert card["run"] == "r1" and card["run_path"] == str(run) and card["network"] == {"arch": "resnet18", "cut": 10}
    assert datetime.fromisoformat(card["published_at"]).year >= 2024
    with pytest.raises(ValueError, match="published models/model.pt"):
        delete_run(run)
    empty = run_dir(bundle, "empty")
    empty.mkdir()
    with pytest.raises(MissingDataError, match="no model.pt to publish"):
        publish_run(empty)
    delete_run(empty)
    assert not empty.exists()


def test_the_runs_table_and_the_comparison_read_the_run_folders(tmp_path):
    bundle = tmp_path / "bundle"
    a = _fake_run(bundle, "a", 10, 0.71, started=1000.0, test_auroc=0.69)
    b = _fake_run(bundle, "b", 7, 0.82, started=2000.0)
    publish_run(b)
    rows = list_runs(bundle)
    assert [r.name for r in rows] == ["a", "b"]
    assert [(r.cut, r.best_val_auroc, r.test_auroc, r.published, r.weights) for r in rows] == [
        (10, 0.71, 0.69, False, "random"), (7, 0.82, None, True, "random")]
    result = compare_runs(a, b)
    assert result["runs"] == ["a", "b"]
    assert result["settings"] == {"cut": [10, 7]}  # paths (ckpt_dir) are not settings
    assert result["metrics"]["val_auroc"] == [0.71, 0.82] and result["metrics"]["test_auroc"] == [0.69, None]


class _Validation:
    """The evaluator's side the checkpointer reads: ``state.metrics``."""

    def __init__(self) -> None:
        metrics = {"val_auroc": 0.7, "val_loss": torch.tensor(0.4), "val_auprc": np.array(0.75), "curve": [0.1, 0.2]}
        self.state = type("State", (), {"metrics": metrics})()


def _train(tmp_path: Path, config_hash: str | None, epochs: int, resume: bool = True) -> Engine:
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    engine = Engine(lambda e, b: None)
    TrainingCheckpointer(tmp_path, net, optimizer, evaluator=_Validation(), resume=resume, config_hash=config_hash,
                         card={"format": "medtl-monai model card"}).attach(engine)
    engine.run([0], max_epochs=epochs)
    return engine


def test_the_checkpointer_refuses_to_resume_a_training_of_another_config(tmp_path):
    first, other = "a" * 64, "b" * 64
    _train(tmp_path, first, epochs=2)
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["config_hash"] == first
    assert json.loads((tmp_path / "model_card.json").read_text())["config_hash"] == first
    best = json.loads((tmp_path / "metrics.json").read_text())
    assert best == {"key_metric": "val_auroc", "best_metric": 0.7, "best_epoch": 1,
                    "metrics": {"val_auroc": 0.7, "val_loss": pytest.approx(0.4), "val_auprc": 0.75},
                    "config_hash": first}  # numbers of any kind; values that are not one number are left out
    with pytest.raises(ValueError, match=f"checkpoint_last.pt: .*hash {first}, but the current config has hash {other}"
                                         ".*another --run_name.*--resume false"):
        _train(tmp_path, other, epochs=3)
    assert _train(tmp_path, first, epochs=3).state.epoch == 3  # the same config resumes at epoch 3
    assert _train(tmp_path, other, epochs=1, resume=False).state.epoch == 1  # starting over is allowed


def test_the_runs_script_lists_a_bundle_as_a_table(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    _fake_run(bundle, "20261201-2130_cut10", 10, 0.71, started=time.time() - 60)
    _fake_run(bundle, "20261201-2135_cut7", 7, 0.8123, started=time.time())
    spec = importlib.util.spec_from_file_location("runs_script", REPO / "scripts" / "runs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["list", "--bundle", str(bundle)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| name | started | arch | cut | strategy | weights | data | best_val_auroc")
    assert lines[2].startswith("| 20261201-2130_cut10 |") and "| 0.8123 |" in lines[3] and len(lines) == 4
    assert script.main(["list", "--bundle", str(bundle), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("20261201-2130_cut10,")
    assert script.main(["compare", "20261201-2130_cut10", "20261201-2135_cut7", "--bundle", str(bundle)]) == 0
    assert "| cut | 10 | 7 |" in capsys.readouterr().out
    assert script.main(["show", "absent", "--bundle", str(bundle)]) == 2
    assert "no run 'absent'" in capsys.readouterr().err
