#!/usr/bin/env python
"""Compare two runs evaluated on the same test cases: DeLong's test of their AUROCs and paired-bootstrap differences
of every metric with confidence intervals, as a Markdown table, a JSON file and a ROC plot.

    python scripts/compare_runs.py RUN_A RUN_B [--bundle bundles/bimcv_truncated] [--output DIR]
        [--n_resamples 2000] [--confidence 0.95] [--threshold 0.5] [--seed 0]

RUN_A and RUN_B are run names under ``<bundle>/runs/`` or run folders; each must hold ``eval/predictions.csv``
(``configs/evaluate.json`` run with ``--run_name``). The runs must have been evaluated on the same case ids with the
same labels, else the script refuses. It prints the tables and writes ``compare_<a>_vs_<b>.md``, ``.json`` and
``.png`` (both ROC curves, AUROCs and DeLong's p) into ``--output`` (default ``<bundle>/runs/compare/``).
Differences are B minus A. DeLong's test needs two classes; with more, only the paired bootstrap is reported.
Hyphenated spellings of the options (``--n-resamples``) are accepted too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medtl_monai.bundle import resolve_run
from medtl_monai.evaluation import delong_test, paired_bootstrap_test, roc_curve
from medtl_monai.evaluation.bootstrap import SUMMARY_METRICS
from medtl_monai.explain import read_predictions

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "bimcv_truncated"
PREDICTIONS = Path("eval") / "predictions.csv"


class RunsMismatchError(ValueError):
    """Two runs that were not evaluated on the same cases (or disagree on their labels or classes)."""


def read_run(bundle: Path, run: str) -> tuple[str, Path, list, list[str]]:
    """A run's name, predictions file, labelled rows and class names.

    Raises:
        FileNotFoundError: no such run, or a run without an evaluation.
    """
    run_path = resolve_run(bundle, run)
    csv_path = run_path / PREDICTIONS
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no predictions; evaluate the run first "
                                f"(configs/evaluate.json with --run_name {run_path.name}).")
    rows, names = read_predictions(csv_path)
    return run_path.name, csv_path, rows, names


def paired_cases(a: tuple, b: tuple) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The common cases in A's order: ``(ids, labels, probabilities of A, probabilities of B)``.

    Raises:
        RunsMismatchError: other case ids, labels or classes.
    """
    (_, path_a, rows_a, names_a), (_, path_b, rows_b, names_b) = a, b
    if names_a != names_b:
        raise RunsMismatchError(f"{path_b}: classes {names_b} differ from {names_a} of {path_a}.")
    by_id_a, by_id_b = {r.id: r for r in rows_a}, {r.id: r for r in rows_b}
    for path, rows, by_id in ((path_a, rows_a, by_id_a), (path_b, rows_b, by_id_b)):
        if len(by_id) != len(rows):
            raise RunsMismatchError(f"{path}: case ids are not unique ({len(rows) - len(by_id)} repeated).")
    only_a, only_b = sorted(set(by_id_a) - set(by_id_b)), sorted(set(by_id_b) - set(by_id_a))
    if only_a or only_b:
        raise RunsMismatchError(
            f"{path_b}: not evaluated on the same cases as {path_a}: {len(only_a)} labelled case ids only in A "
            f"(e.g. {only_a[:3]}), {len(only_b)} only in B (e.g. {only_b[:3]}); evaluate both runs on the same "
            "datalist split (a case skipped by one run counts as missing).")
    ids = [r.id for r in rows_a]
    relabelled = [i for i in ids if by_id_a[i].label != by_id_b[i].label]
    if relabelled:
        raise RunsMismatchError(f"{path_b}: {len(relabelled)} cases have other labels than in {path_a} "
                                f"(e.g. {relabelled[:3]}).")
    labels = np.array([by_id_a[i].label for i in ids])
    return ids, labels, np.array([by_id_a[i].probs for i in ids]), np.array([by_id_b[i].probs for i in ids])


def compare(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, n_resamples: int, confidence: float,
            threshold: float, seed: int) -> dict:
    """DeLong's test (two classes) and a paired bootstrap test of every metric of ``SUMMARY_METRICS``."""
    delong = asdict(delong_test(labels, probs_a, probs_b)) if probs_a.shape[1] == 2 else None
    tests = [asdict(paired_bootstrap_test(labels, probs_a, probs_b, metric, n_resamples, confidence, seed=seed,
                                          threshold=threshold)) for metric in SUMMARY_METRICS]
    return {"delong": delong, "paired_bootstrap": tests}


def _number(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "n/a" if not np.isfinite(value) else ("< 0.0001" if value < 1e-4 else f"{value:.4f}")


def markdown(report: dict) -> str:
    """The comparison as Markdown tables."""
    names, d, tests = report["class_names"], report["delong"], report["paired_bootstrap"]
    decision = (f"{names[1]} when p({names[1]}) >= {report['threshold']:g}" if len(names) == 2
                else "the class of highest probability; macro one-vs-rest averages")
    lines = [f"# {report['run_a']} (A) vs {report['run_b']} (B)", "",
             f"{report['n_cases']} cases, classes {names}; differences are B − A; predicted: {decision}.", ""]
    if d is None:
        lines += ["DeLong's test: not applicable (more than two classes).", ""]
    else:
        row = (f"| {_number(d['auc_a'])} | {_number(d['auc_b'])} | {_number(d['difference'])} | {_number(d['z'], 3)} "
               f"| {_p(d['p_value'])} |")
        lines += ["## DeLong's test of the AUROCs", "", "| AUROC A | AUROC B | B − A | z | p |",
                  "|---|---|---|---|---|", row, ""]
    lines += [f"## Paired bootstrap ({tests[0]['method']})", "",
              f"| metric | A | B | B − A | {100 * tests[0]['confidence']:g}% CI | p |", "|---|---|---|---|---|---|"]
    for t in tests:
        lines.append(f"| {t['metric']} | {_number(t['value_a'])} | {_number(t['value_b'])} | "
                     f"{_number(t['difference'])} | [{_number(t['ci_low'])}, {_number(t['ci_high'])}] | "
                     f"{_p(t['p_value'])} |")
    return "\n".join(lines) + "\n"


def roc_figure(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, report: dict) -> Figure:
    """Both ROC curves on one axes, with the AUROCs in the legend and DeLong's p in the title."""
    fig = Figure(figsize=(5.0, 5.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    d = report["delong"]
    p = _p(d["p_value"])
    for probs, name, auc in ((probs_a, report["run_a"], d["auc_a"]), (probs_b, report["run_b"], d["auc_b"])):
        fpr, tpr, _ = roc_curve(labels, probs[:, 1])
        ax.plot(fpr, tpr, label=f"{name}: AUROC {auc:.3f}")  # straight segments: ties are diagonal
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01), aspect="equal",
           title=f"AUROC B − A {d['difference']:+.3f}, DeLong p {p if p.startswith('<') else '= ' + p}")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, compare the runs, print and write the results; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="run A: a name under <bundle>/runs/ or a run folder")
    parser.add_argument("run_b", help="run B, evaluated on the same cases")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"bundle folder (default {DEFAULT_BUNDLE})")
    parser.add_argument("--output", "--report_dir", "--report-dir", dest="output", type=Path, default=None,
                        help="folder of the results (default <bundle>/runs/compare)")
    parser.add_argument("--n_resamples", "--n-resamples", dest="n_resamples", type=int, default=2000,
                        help="bootstrap resamples (default 2000)")
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of the intervals (default 0.95)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold on p(class 1), two classes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    args = parser.parse_args(argv)
    try:
        run_a, run_b = read_run(args.bundle, args.run_a), read_run(args.bundle, args.run_b)
        ids, labels, probs_a, probs_b = paired_cases(run_a, run_b)
        report = {"run_a": run_a[0], "run_b": run_b[0], "predictions_a": str(run_a[1]),
                  "predictions_b": str(run_b[1]), "class_names": run_a[3], "n_cases": len(ids),
                  "threshold": args.threshold,
                  **compare(labels, probs_a, probs_b, args.n_resamples, args.confidence, args.threshold, args.seed)}
    except (FileNotFoundError, ValueError) as err:  # no run or evaluation, other cases, bad predictions file
        print(f"error: {err}", file=sys.stderr)
        return 2
    output = args.output or Path(args.bundle) / "runs" / "compare"
    output.mkdir(parents=True, exist_ok=True)
    stem = f"compare_{report['run_a']}_vs_{report['run_b']}"  # run names may hold dots: no with_suffix
    text = markdown(report)
    if report["delong"] is not None:
        roc_figure(labels, probs_a, probs_b, report).savefig(output / f"{stem}.png")
        report["figure"] = str(output / f"{stem}.png")
    (output / f"{stem}.md").write_text(text)
    (output / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text, end="")
    print(f"written: {output / stem}.md, .json{', .png' if report['delong'] is not None else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
