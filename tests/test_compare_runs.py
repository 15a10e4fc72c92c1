"""``scripts/compare_runs.py`` on two fake runs: DeLong and paired-bootstrap tables, the files it writes, and its
refusal of runs evaluated on other cases."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from medtl_monai.evaluation import delong_test

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_runs_script", REPO / "scripts" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(bundle: Path, name: str, ids: list[str], labels: np.ndarray, p: np.ndarray,
               skipped: tuple[str, ...] = ()) -> None:
    folder = bundle / "runs" / name / "eval"
    folder.mkdir(parents=True)
    with open(folder / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "prob_normal", "prob_covid", "prediction", "status", "error"])
        for case, label, prob in zip(ids, labels, p):
            names = ("normal", "covid")
            writer.writerow([case, names[label], f"{1 - prob:.6f}", f"{prob:.6f}", names[int(prob >= 0.5)], "ok", ""])
        for case in skipped:
            writer.writerow([case, "", "", "", "", "skipped", f"{case}: unreadable"])


@pytest.fixture()
def bundle(tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    ids = [f"case{i:03d}" for i in range(n)]
    labels = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    weak, strong = expit(shared + 0.5 * labels), expit(shared + 2.5 * labels + 0.5 * rng.normal(size=n))
    _write_run(tmp_path, "weak-run", ids, labels, weak)
    _write_run(tmp_path, "strong.lr1e-4", ids[::-1], labels[::-1], strong[::-1])  # other row order, a dotted name
    _write_run(tmp_path, "other-cases", ids[:-1], labels[:-1], strong[:-1], skipped=(ids[-1],))
    return tmp_path, labels, weak, strong


def test_compare_runs_writes_delong_and_paired_bootstrap_results(script, bundle, capsys):
    root, labels, weak, strong = bundle
    out = root / "report"
    assert script.main(["weak-run", "strong.lr1e-4", "--bundle", str(root), "--output", str(out),
                        "--n-resamples", "300"]) == 0
    printed = capsys.readouterr().out
    assert "DeLong's test" in printed and "| auroc |" in printed and "| ece |" in printed
    stem = out / "compare_weak-run_vs_strong.lr1e-4"
    report = json.loads(stem.with_name(stem.name + ".json").read_text())
    expected = delong_test(labels, np.round(weak, 6), np.round(strong, 6))
    assert report["delong"]["auc_a"] == pytest.approx(expected.auc_a, abs=1e-12)
    assert report["delong"]["p_value"] == pytest.approx(expected.p_value, abs=1e-12)
    assert report["delong"]["difference"] > 0 and report["n_cases"] == 80
    by_metric = {t["metric"]: t for t in report["paired_bootstrap"]}
    assert set(by_metric) >= {"auroc", "auprc", "sensitivity", "specificity", "brier", "ece"}
    auroc = by_metric["auroc"]
    assert auroc["difference"] == pytest.approx(expected.difference, abs=1e-12)
    assert auroc["ci_low"] <= auroc["difference"] <= auroc["ci_high"] and auroc["n_resamples"] == 300
    assert stem.with_name(stem.name + ".md").read_text().startswith("# weak-run (A) vs strong.lr1e-4 (B)")
    assert stem.with_name(stem.name + ".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_refuses_runs_evaluated_on_other_cases(script, bundle, capsys):
    root, *_ = bundle
    assert script.main(["weak-run", "other-cases", "--bundle", str(root), "--n_resamples", "50"]) == 2
    error = capsys.readouterr().err
    assert "not evaluated on the same cases" in error and "1 labelled case ids only in A" in error
    assert not (root / "runs" / "compare").exists()
    assert script.main(["weak-run", "no-such-run", "--bundle", str(root)]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
