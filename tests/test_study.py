"""The strategy study at tiny scale: strategies x three seeded splits through the bundle, the paper-style table."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from medtl_monai.experiments.study import run_study, seeded_splits
from medtl_monai.networks import TransferClassifier, read_checkpoint
from medtl_monai.training import get_strategy

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "bimcv_truncated" / "configs"
TINY = {"arch": "resnet18", "cut": "layer2", "max_epochs": 1, "image_size": 32, "batch_size": 8, "val_batch_size": 8,
        "check_data": False}  # the tiny splits may leave a class out of validation; the study test does not need it


@pytest.fixture(scope="module")
def study(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_study([CONFIGS / "train.json", CONFIGS / "xray.json"], CONFIGS / "evaluate.json",
                       datalist=tiny_demo / "datalist_xray.json", output_dir=out, strategies=["linear", "truncated"],
                       seeds=(0, 1, 2), overrides=TINY, repeats=1)
    return result, out


def test_seeded_splits_are_patient_level_and_differ_by_seed(tiny_demo, tmp_path):
    paths = seeded_splits(tiny_demo / "datalist_xray.json", tmp_path, seeds=(0, 1, 2))
    docs = [json.loads(p.read_text()) for p in paths]
    total = sum(len(json.loads((tiny_demo / "datalist_xray.json").read_text())[k]) for k in ("training", "validation", "test"))
    tests = []
    for doc in docs:
        patients = {k: {i.get("patient_id") or i["id"] for i in doc[k]} for k in ("training", "validation", "test")}
        assert not (patients["training"] & patients["test"]) and not (patients["validation"] & patients["test"])
        assert sum(len(doc[k]) for k in ("training", "validation", "test")) == total
        tests.append(sorted(i["id"] for i in doc["test"]))
    assert len({tuple(t) for t in tests}) > 1


def test_study_trains_each_strategy_on_three_splits_and_writes_the_paper_table(study):
    result, out = study
    assert [r.strategy for r in result.rows] == ["linear", "truncated"]
    assert all(len(r.runs) == 3 and [run.split for run in r.runs] == [0, 1, 2] for r in result.rows)
    linear, truncated = result.rows
    assert linear.params == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2).parameters())
    assert truncated.params == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2, cut="layer2").parameters())
    assert truncated.macs < linear.macs and linear.network == "resnet18, full" and truncated.network == "resnet18, cut layer2"
    table = (out / "study.md").read_text()
    described = f"| linear | {get_strategy('linear').description} | resnet18, full |"
    assert described in table and "full network; frozen: the whole backbone" in described
    assert "±" in table and "params (M)" in table and "MACs (G)" in table and "val AUROC (%)" in table
    assert "chosen by validation AUROC" in table and "evaluated once per run" in table
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == ["linear", "truncated"] and all(r["n_splits"] == "3" for r in rows)
    assert rows[1]["description"] == get_strategy("truncated").description
    with open(out / "study_runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for k, run_dir in enumerate(sorted((out / "runs" / "truncated").iterdir())):  # each run: its own bundle outputs
        assert (run_dir / "models" / "model.pt").is_file() and (run_dir / "eval" / "metrics.json").is_file()
        last = read_checkpoint(run_dir / "models" / "checkpoint_last.pt")  # the epoch was chosen on validation
        run = truncated.runs[k]
        chosen_by = float("nan") if last["best_metric"] is None else last["best_metric"]  # NaN: one class in validation
        assert run.best_epoch == last["best_epoch"] and run.val_auroc == pytest.approx(chosen_by, nan_ok=True)


def test_cli_reuses_finished_runs_and_writes_its_benchmark_section(study, tiny_demo, tmp_path, capsys):
    _, out = study
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")}
    spec = importlib.util.spec_from_file_location("compare_strategies", REPO / "scripts" / "compare_strategies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bench = tmp_path / "benchmarks.md"
    bench.write_text("# Benchmarks\n\n<!-- begin other -->\nkept\n<!-- end other -->\n")
    args = ["--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'xray.json'}']", "--datalist", str(tiny_demo / "datalist_xray.json"),
            "--study_dir", str(out), "--strategies", "linear", "truncated", "--repeats", "1", "--benchmarks", str(bench),
            *(a for k, v in TINY.items() for a in (f"--{k}", str(v)))]
    assert module.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")} == stamps  # nothing retrained
    text = bench.read_text()
    assert "<!-- begin compare_strategies -->" in text and "kept" in text and f"| truncated | {get_strategy('truncated').description} | resnet18, cut layer2 |" in text
    assert "python scripts/compare_strategies.py" in text
    assert "test AUROC" in capsys.readouterr().out
