"""The strategy study: every transfer strategy over three seeded splits, in the TruncatedTL paper's table format.

For each strategy and each split the *bundle itself* is run in-process (:func:`~medtl_monai.bundle.run_workflow`: its
``train.json`` plus override files, then its ``evaluate.json``) with config overrides (``strategy``, ``datalist``,
``seed`` and the output folders), so the study measures exactly what a user of the bundle gets. Each network is
profiled once per strategy (parameters and MACs via :func:`~medtl_monai.networks.profile_model`; CPU latency as
the fastest of N batch-1 forward passes, robust to other jobs on a shared machine). The table reports test AUROC and
AUPRC as mean ± sample standard deviation over the splits, as in Peng et al., "Rethinking Transfer Learning for
Medical Image Classification" (BMVC 2023), and a PNG plots AUROC against parameters.

Every figure has its uncertainty beside it. Per strategy the table counts the splits behind the row and how many of
them gave NaN (e.g. a test split with one class): those are shown, not dropped, and left out of the means. Means over
splits come with their 95% t-interval (Student's t with ``n - 1`` degrees of freedom; none with one split). Against a
reference strategy (``full`` by default) each row gets the mean difference of test AUROC, paired by split, with its
95% t-interval, and per split DeLong's test of the two AUROCs on the same test cases (DeLong et al., Biometrics 1988,
read from the two runs' ``eval/predictions.csv``): the interval says how much the strategy's AUROC moves with the
split, the p-values how sure each split's difference is given its test cases.

Choices are made on validation, test is reported once: within a run the only choice is the checkpoint (the epoch),
which the bundle makes by validation AUROC (``model.pt``); the test split is then evaluated once, on that checkpoint,
and nothing is selected on it (the table shows the validation AUROC that made the choice beside the test figures).
Settings such as the cut are chosen before the study, on the training split (``scripts/find_cut.py``), and passed
as overrides. Each row is named by its strategy and by the registry's one-line description of it
(:attr:`~medtl_monai.training.Strategy.description`: which network, what is frozen, which rates), so that e.g.
``lwft`` (this project's truncated variant) and ``lwft_full`` (the paper's LWFT) cannot be confused.

The splits pool the datalist's training, validation and test items and re-split them by patient with
:func:`~medtl_monai.data.make_splits` (seeds 0, 1, 2 by default). What each strategy means comes from the strategy
registry (:data:`~medtl_monai.training.STRATEGIES`); the bundle is opened through :mod:`medtl_monai.bundle`.

Scaling out: the study is a list of independent runs (:func:`plan_study`: strategy x split, each into its own folder
:func:`run_folder`). :func:`run_study` trains the unfinished ones one after another or side by side in worker
processes (``workers``: CPU processes sharing the cores; ``devices``: one process per GPU), then
:func:`collect_study` builds the table from the run folders. A finished run leaves a complete ``run.json`` (written
atomically) and is not repeated when the study is run again with the same output folder; a run killed mid-training
resumes from its last checkpoint. Each run seeds itself, so the table does not depend on which process trained which
run. On a cluster, ``scripts/compare_strategies.py --write_slurm`` writes one command per run (:func:`run_planned`
through ``--only INDEX``) and a SLURM job array over them; ``--collect`` then builds the table (docs/scaling.md).

With ``tracking="mlflow"`` every training is tracked as ``monai.bundle run --tracking mlflow`` tracks it (MONAI's
``MLFlowHandler`` plus the bundle's :class:`~medtl_monai.training.MLflowRunRecord`): one MLflow run per training,
named ``<strategy>_split<k>``, in one experiment named after the study folder, in the bundle's tracking store
(``<bundle>/mlruns.db``); the test AUROC and AUPRC are added to that run as ``test_auroc`` and ``test_auprc``.

Liftings and weight sources are compared like strategies (:mod:`.study_variants`): with ``liftings`` (``inflate``,
``slices``, ``acs``) and ``weights`` lists a row is a strategy x lifting x weights variant, named by what varies
(``truncated · acs · random``), trained into ``runs/<variant folder>/split<k>`` with ``lifting`` / ``weights``
overrides and profiled with them (the MACs of a 2.5D network count every slab). ``reference`` names a row or a
strategy; a strategy stands for its first row, i.e. the first of the given liftings and weights, so listing
``inflate`` first compares the other liftings with inflation.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import load_config, run_workflow
from ..data import SPLIT_KEYS, load_split, make_splits, read_class_names
from ..evaluation import delong_test
from ..explain import read_predictions
from ..networks import profile_model, read_checkpoint
from ..training import atomic_write_text, find_mlflow_run, get_strategy, strategy_names
from .parallel import parse_devices, run_tasks
from .study_variants import Variant, study_variants

__all__ = [
    "PlannedRun", "ReferenceComparison", "StrategyRow", "StudyResult", "StudyRun", "collect_study", "compare_to_reference",
    "plan_study", "profile_strategy", "read_run_record", "reference_row", "run_folder", "run_once", "run_planned",
    "run_study",
    "seeded_splits", "split_delong", "study_split_files", "study_table", "t_interval",
]

logger = logging.getLogger("medtl_monai.experiments")


@dataclass
class StudyRun:
    """One training + test evaluation.

    Attributes:
        strategy: the strategy.
        split: split index (0, 1, 2).
        auroc, auprc: test metrics of the checkpoint chosen on validation (best validation AUROC), evaluated once.
        best_epoch: epoch of that checkpoint; epochs: epochs trained.
        train_s: wall time of training; eval_s: of the test evaluation.
        val_auroc: the validation AUROC that chose the checkpoint (NaN in records written before it was kept).
        lifting, weights: the run's variant settings when the study varies them (``None`` otherwise).
    """

    strategy: str
    split: int
    auroc: float
    auprc: float
    best_epoch: int
    epochs: int
    train_s: float
    eval_s: float
    val_auroc: float = float("nan")
    lifting: str | None = None
    weights: str | None = None


def row_name(strategy: str, variant: Variant | None) -> str:
    """A study row's name: its variant's label (``truncated · acs``) when lifting or weights vary, else the strategy."""
    return variant.label if variant is not None else strategy


@dataclass
class StrategyRow:
    """One row of the study table: a strategy's runs and its network's cost.

    Attributes:
        strategy: the strategy's name.
        network: the network trained, in a few words (``resnet50, cut 11``).
        runs: one :class:`StudyRun` per split.
        params, macs, latency_ms: the network's cost.
        pretrained: whether pretrained weights were loaded.
        description: what the row is (:attr:`~medtl_monai.training.Strategy.description`).
        variant: the strategy x lifting x weights the row trains (``None``: the strategy alone).
    """

    strategy: str
    network: str
    runs: list[StudyRun]
    params: int
    macs: int
    latency_ms: float
    pretrained: bool = True
    description: str = ""
    variant: Variant | None = None

    @property
    def name(self) -> str:
        """The row's name in the table: the variant's label (``truncated · acs``), else the strategy."""
        return row_name(self.strategy, self.variant)

    @property
    def folder(self) -> str:
        """Its runs' folder name under ``runs/`` (:func:`run_folder`)."""
        return self.variant.folder if self.variant is not None else self.strategy

    @staticmethod
    def _mean_std(values: list[float]) -> tuple[float, float]:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return float("nan"), float("nan")
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def auroc(self) -> tuple[float, float]:
        """Mean and sample standard deviation of test AUROC over the splits."""
        return self._mean_std([r.auroc for r in self.runs])

    @property
    def val_auroc(self) -> tuple[float, float]:
        """Mean and sample standard deviation of the validation AUROC that chose each run's checkpoint."""
        return self._mean_std([r.val_auroc for r in self.runs])

    @property
    def auprc(self) -> tuple[float, float]:
        """Mean and sample standard deviation of test AUPRC over the splits."""
        return self._mean_std([r.auprc for r in self.runs])

    @property
    def train_s(self) -> float:
        """Mean training wall time per split."""
        return statistics.fmean(r.train_s for r in self.runs) if self.runs else float("nan")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of values over splits and its Student's t interval (``n - 1`` degrees of freedom).

    Args:
        values: one value per split; NaN values are left out (count them with :func:`math.isnan`).
        confidence: the interval's coverage.

    Returns:
        ``(mean, low, high, n)`` with ``n`` the non-NaN values; ``low``/``high`` are NaN when ``n < 2`` (one split
        gives no interval), everything NaN when ``n == 0``.
    """
    from scipy.stats import t

    kept = [float(v) for v in values if not math.isnan(v)]
    if not kept:
        return float("nan"), float("nan"), float("nan"), 0
    mean = statistics.fmean(kept)
    if len(kept) < 2:
        return mean, float("nan"), float("nan"), 1
    half = float(t.ppf(0.5 + confidence / 2, len(kept) - 1)) * statistics.stdev(kept) / math.sqrt(len(kept))
    return mean, mean - half, mean + half, len(kept)


def run_folder(output_dir: str | os.PathLike, strategy: str, split: int) -> Path:
    """The folder of one study run: ``<output_dir>/runs/<strategy>/split<k>`` (its test predictions are
    ``eval/predictions.csv`` there); ``strategy`` is a strategy or a variant's folder name
    (:attr:`~medtl_monai.experiments.study_variants.Variant.folder`)."""
    return Path(output_dir) / "runs" / strategy / f"split{int(split)}"


def split_delong(reference_csv: str | os.PathLike, other_csv: str | os.PathLike) -> tuple[float, str]:
    """DeLong's p-value of two runs' test AUROCs on the cases both scored (paired by case id).

    Args:
        reference_csv: the reference run's ``predictions.csv`` (model A of :func:`~medtl_monai.evaluation.delong_test`).
        other_csv: the other run's (model B).

    Returns:
        ``(p_value, "")``, or ``(NaN, why)`` when no test can be made: a missing or unreadable file, other classes,
        more than two classes, too few positive or negative cases.
    """
    try:
        ref_rows, ref_names = read_predictions(reference_csv)
        other_rows, other_names = read_predictions(other_csv)
    except (OSError, ValueError) as e:
        return float("nan"), str(e)
    if ref_names != other_names:
        return float("nan"), f"{other_csv}: classes {other_names} differ from the reference's {ref_names}"
    if len(ref_names) != 2:
        return float("nan"), f"{other_csv}: DeLong's test here compares two-class AUROCs, not {len(ref_names)} classes"
    other = {r.id: r for r in other_rows}
    pairs = [(r, other[r.id]) for r in ref_rows if r.id in other and other[r.id].label == r.label]
    try:
        result = delong_test([a.label for a, _ in pairs], [a.probs[1] for a, _ in pairs], [b.probs[1] for _, b in pairs])
    except ValueError as e:
        return float("nan"), f"{other_csv}: {e}"
    return result.p_value, ""


@dataclass
class ReferenceComparison:
    """A row's test AUROC against the reference row's, split by split.

    Attributes:
        strategy: the row compared (its name: a strategy, or a variant's label).
        reference: the reference row's name.
        differences: per split, test AUROC of ``strategy`` minus that of ``reference`` (NaN when either is NaN).
        p_values: per split, DeLong's two-sided p-value on that split's test cases (NaN when no test could be made).
        notes: per split, why there is no p-value ("" when there is one).
        confidence: coverage of :attr:`interval`.
    """

    strategy: str
    reference: str
    differences: list[float]
    p_values: list[float]
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95

    @property
    def interval(self) -> tuple[float, float, float, int]:
        """Mean difference over the splits where both runs gave a number, its t-interval, and that number of splits."""
        return t_interval(self.differences, self.confidence)


def reference_row(rows: Sequence[StrategyRow], reference: str) -> StrategyRow | None:
    """The row named ``reference`` (:attr:`StrategyRow.name`), else the first row of the strategy ``reference``
    (with varied liftings / weights: the first of those given), else ``None``."""
    for row in rows:
        if row.name == reference:
            return row
    return next((row for row in rows if row.strategy == reference), None)


def compare_to_reference(rows: Sequence[StrategyRow], reference: str, output_dir: str | os.PathLike,
                         confidence: float = 0.95) -> dict[str, ReferenceComparison]:
    """Pair every row's runs with the reference row's by split: AUROC differences and DeLong p-values.

    Args:
        rows: the study rows; one of them is ``reference``.
        reference: the reference row's name, or a strategy (its first row: :func:`reference_row`).
        output_dir: the study folder; split ``k`` of a row has its predictions in
            ``run_folder(output_dir, row.folder, k) / "eval" / "predictions.csv"``.
        confidence: coverage of the intervals.

    Returns:
        One :class:`ReferenceComparison` per row other than the reference, by row name.

    Raises:
        ValueError: ``reference`` names no row.
    """
    ref_row = reference_row(rows, reference)
    if ref_row is None:
        raise ValueError(f"reference {reference!r} is not in the study ({', '.join(r.name for r in rows)}).")
    reference = ref_row.name
    ref_runs = {run.split: run for run in ref_row.runs}
    comparisons = {}
    for row in rows:
        if row is ref_row:
            continue
        differences, p_values, notes = [], [], []
        for run in row.runs:
            ref = ref_runs.get(run.split)
            if ref is None:
                differences.append(float("nan"))
                p_values.append(float("nan"))
                notes.append(f"split {run.split}: no {reference} run")
                continue
            differences.append(run.auroc - ref.auroc)
            p, why = split_delong(run_folder(output_dir, ref_row.folder, run.split) / "eval" / "predictions.csv",
                                  run_folder(output_dir, row.folder, run.split) / "eval" / "predictions.csv")
            p_values.append(p)
            notes.append(why)
        comparisons[row.name] = ReferenceComparison(row.name, reference, differences, p_values, notes, confidence)
    return comparisons


def _mean_std_ci(values: list[float], confidence: float) -> str:
    """``mean ± std [t-interval]`` in percent."""
    mean, low, high, n = t_interval(values, confidence)
    if n == 0:
        return "NaN"
    std = statistics.stdev([v for v in values if not math.isnan(v)]) if n > 1 else 0.0
    interval = "n/a: one split" if n < 2 else f"{100 * low:.1f}, {100 * high:.1f}"
    return f"{100 * mean:.1f} ± {100 * std:.1f} [{interval}]"


def _signed_pct(mean: float, low: float, high: float) -> str:
    """``+1.2 [-0.4, +2.8]`` in percentage points."""
    if math.isnan(mean):
        return "NaN"
    interval = "n/a: one split" if math.isnan(low) else f"{100 * low:+.1f}, {100 * high:+.1f}"
    return f"{100 * mean:+.1f} [{interval}]"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


@dataclass
class StudyResult:
    """All rows plus how they were obtained.

    Attributes:
        rows: one :class:`StrategyRow` per strategy (or strategy x lifting x weights variant).
        settings: seeds, input shape, strategies, overrides ...
        wall_s: wall time of the invocation.
        reference: the name of the row the others are compared with (``None``: no comparison).
        comparisons: per other row (by name), its :class:`ReferenceComparison` with ``reference``.
        reference_note: a line for the table when the reference is not the one asked for.
        confidence: coverage of every interval.
    """

    rows: list[StrategyRow]
    settings: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    reference: str | None = None
    comparisons: dict[str, ReferenceComparison] = field(default_factory=dict)
    reference_note: str = ""
    confidence: float = 0.95

    def _splits(self) -> list[int]:
        return sorted({run.split for r in self.rows for run in r.runs})

    def _varied(self) -> list[str]:
        """The settings besides the strategy that differ between the rows (``lifting``, ``weights``)."""
        found = {d for r in self.rows if r.variant is not None for d in r.variant.varied}
        return [d for d in ("lifting", "weights") if d in found]

    def _n(self, row: StrategyRow) -> str:
        nan = sum(math.isnan(run.auroc) for run in row.runs)
        return f"{len(row.runs)} ({nan} NaN)" if nan else str(len(row.runs))

    def _versus(self, row: StrategyRow) -> tuple[str, list[str]]:
        """The difference cell and the per-split p-value cells of a row."""
        splits = self._splits()
        if row.name == self.reference:
            return "reference", ["reference"] * len(splits)
        comparison = self.comparisons.get(row.name)
        if comparison is None:
            return "–", ["–"] * len(splits)
        p_by_split = {run.split: p for run, p in zip(row.runs, comparison.p_values)}
        return _signed_pct(*comparison.interval[:3]), [_p(p_by_split.get(k, float("nan"))) for k in splits]

    def markdown(self) -> str:
        """The paper-style table in Markdown, with intervals, the comparison with the reference, settings and cost."""
        pct = f"{100 * self.confidence:g}%"
        splits = self._splits()
        varied = self._varied()
        first = " · ".join(["strategy", *varied])
        versus = (f" | test AUROC − {self.reference} (pp) [{pct} CI] | DeLong p vs {self.reference} (split "
                  f"{', '.join(map(str, splits))})") if self.reference else ""
        lines = [
            (f"| {first} | what it is | network | splits | val AUROC (%) | test AUROC (%) [{pct} CI] | test AUPRC (%) "
             f"[{pct} CI]{versus} | params (M) | MACs (G) | CPU latency (ms) | train time / split (s) |"),
            "|---|---|---|---:|---:|---:|---:|" + ("---:|---|" if self.reference else "") + "---:|---:|---:|---:|",
        ]
        for r in self.rows:
            cells = [r.name, r.description, r.network, self._n(r),
                     *(_mean_std_ci(v, self.confidence) for v in ([x.val_auroc for x in r.runs], [x.auroc for x in r.runs],
                                                                 [x.auprc for x in r.runs]))]
            if self.reference:
                diff, ps = self._versus(r)
                cells += [diff, "reference" if diff == "reference" else ", ".join(ps)]
            cells += [f"{r.params / 1e6:.2f}", f"{r.macs / 1e9:.3f}", f"{r.latency_ms:.1f}", f"{r.train_s:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        s = self.settings
        runs_s = sum(run.train_s + run.eval_s for r in self.rows for run in r.runs)
        lines += ["", ("Each run's checkpoint (its epoch) was chosen by validation AUROC (the val AUROC column); the test "
                      "split was evaluated once per run, on that checkpoint, and nothing was chosen on it.")]
        lines += ["", (f"Mean ± sample standard deviation over {len(s.get('seeds', []))} patient-level splits "
                      f"(seeds {s.get('seeds')}), with the {pct} t-interval of the mean in brackets (Student's t, n − 1 "
                      "degrees of freedom; none with one split). The splits column counts the runs behind each row; "
                      "runs that gave NaN (e.g. one class in a test split) are counted there and left out of the means. "
                      f"latency: fastest of {s.get('repeats')} batch-1 forward passes at input {s.get('input_shape')}. "
                      f"Training + test evaluation summed over the {sum(len(r.runs) for r in self.rows)} runs: "
                      f"{runs_s / 60:.1f} min; this invocation: {self.wall_s / 60:.1f} min (finished runs are reused). "
                      "Wall times depend on the other jobs running on the machine.")]
        if varied:
            lines += ["", (f"Rows are strategy · {' · '.join(varied)} variants: each row's runs override "
                          f"{' and '.join(f'`{d}`' for d in varied)} with the row's value"
                          + (" (weights `random`: random initialisation)" if "weights" in varied else "")
                          + ("; the `slices` options (`slab`, `slice_stride`, `aggregator`, `chunk_slices`) apply "
                             "to the `slices` rows, the others run with their defaults" if "lifting" in varied else "")
                          + ". Parameters, MACs and latency are each row's network at the input above; the MACs of "
                          "`slices` count the 2D network over every slab (docs/lifting.md).")]
        if self.reference:
            whose = "row's" if varied else "strategy's"
            lines += ["", (f"Against `{self.reference}`: the mean over splits of the {whose} test AUROC minus "
                          f"`{self.reference}`'s on the same split (percentage points), with its {pct} t-interval over "
                          "the splits (it says how much the gap moves with the split); and per split DeLong's test of "
                          "the two AUROCs on that split's test cases (DeLong et al., Biometrics 1988; two-sided p, "
                          "– where no test could be made).")]
            missing = [f"{name} {note}" for name, c in self.comparisons.items() for note in c.notes if note]
            if missing:
                lines += ["", "No DeLong test for: " + "; ".join(missing) + "."]
        if self.reference_note:
            lines += ["", self.reference_note]
        random = [r.name for r in self.rows if not r.pretrained]
        if random and random != ["scratch"] and "weights" not in varied:
            same = " `truncated` and `scratch` are then the same run." if {"truncated", "scratch"} <= set(random) else ""
            lines += ["", (f"**No pretrained weights** were given to {', '.join(random)} (`weights` null): those backbones "
                          "started from random initialisation, so these rows compare training regimes (what trains, at "
                          f"which rate, on which architecture), not transfer from pretrained weights.{same}")]
        return "\n".join(lines)

    def write(self, output_dir: str | os.PathLike, stem: str = "study") -> dict[str, Path]:
        """Write ``<stem>.md``, ``<stem>.csv`` (one row per strategy or variant; with variants also the columns
        ``label``, ``lifting``, ``weights``), ``<stem>_runs.csv`` and ``<stem>.png``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "runs": out / f"{stem}_runs.csv", "png": out / f"{stem}.png"}
        paths["md"].write_text(self.markdown() + "\n")
        splits = self._splits()
        varied = bool(self._varied())
        with open(paths["csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["strategy", "description", "network", "val_auroc_mean", "val_auroc_std", "val_auroc_ci_low",
                        "val_auroc_ci_high", "auroc_mean", "auroc_std", "auroc_ci_low", "auroc_ci_high", "auprc_mean",
                        "auprc_std", "auprc_ci_low", "auprc_ci_high", "params", "macs", "latency_ms", "train_s",
                        "n_splits", "n_nan", "reference", "auroc_diff_mean", "auroc_diff_ci_low", "auroc_diff_ci_high",
                        "auroc_diff_n", *(f"delong_p_split{k}" for k in splits),
                        *(("label", "lifting", "weights") if varied else ())])
            for r in self.rows:
                stats = []
                for values, (mean, std) in (([x.val_auroc for x in r.runs], r.val_auroc), ([x.auroc for x in r.runs], r.auroc),
                                            ([x.auprc for x in r.runs], r.auprc)):
                    _, low, high, _ = t_interval(values, self.confidence)
                    stats += [mean, std, low, high]
                comparison = self.comparisons.get(r.name)
                if comparison is not None:
                    mean, low, high, n = comparison.interval
                    p_by_split = {run.split: p for run, p in zip(r.runs, comparison.p_values)}
                    versus = [f"{mean:.6f}", f"{low:.6f}", f"{high:.6f}", n,
                              *(f"{p_by_split.get(k, float('nan')):.6g}" for k in splits)]
                else:
                    versus = [""] * (4 + len(splits))
                w.writerow([r.strategy, r.description, r.network, *(f"{v:.6f}" for v in stats), r.params, r.macs,
                            f"{r.latency_ms:.3f}", f"{r.train_s:.1f}", len(r.runs),
                            sum(math.isnan(run.auroc) for run in r.runs), self.reference or "", *versus,
                            *(_variant_cells(r) if varied else ())])
        runs = [asdict(run) for r in self.rows for run in r.runs]
        columns = [k for k in StudyRun.__dataclass_fields__
                   if k not in ("lifting", "weights") or any(run[k] is not None for run in runs)]
        with open(paths["runs"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for run in runs:
                w.writerow([run[k] for k in columns])
        plot_auroc_vs_params(self.rows, paths["png"])
        return paths


def _variant_cells(row: StrategyRow) -> tuple[str, str, str]:
    """A row's ``label``, ``lifting`` and ``weights`` CSV cells (empty for a setting the bundle chose)."""
    variant = row.variant or Variant(row.strategy)
    return row.name, variant.lifting or "", variant.weights or ""


def study_table(rows: Sequence[StrategyRow], output_dir: str | os.PathLike, *, reference: str | None = "full",
                settings: Mapping[str, Any] | None = None, wall_s: float = 0.0, confidence: float = 0.95) -> StudyResult:
    """Assemble the study table from its rows and compare every row with the reference.

    Args:
        rows: one :class:`StrategyRow` per strategy (or variant), in table order.
        output_dir: the study folder holding ``runs/<row folder>/split<k>/eval/predictions.csv`` (read for DeLong).
        reference: the row the others are compared with: a row's name, or a strategy (its first row:
            :func:`reference_row`); when no row matches, the first row is used and the table says so; ``None``: no
            comparison.
        settings: how the rows were obtained (``seeds``, ``input_shape``, ``repeats`` ...).
        wall_s: wall time of the invocation.
        confidence: coverage of every interval.

    Returns:
        The :class:`StudyResult` (not yet written: call :meth:`StudyResult.write`).
    """
    rows = list(rows)
    note = ""
    if reference is not None and rows and reference_row(rows, reference) is None:
        first = "row" if rows[0].variant is not None and rows[0].variant.varied else "strategy"
        note = (f"The reference strategy `{reference}` was not part of this study; the differences and DeLong tests "
                f"are against the first {first}, `{rows[0].name}`.")
        reference = rows[0].name
    if not rows:
        reference = None
    if reference is not None:
        reference = reference_row(rows, reference).name
    comparisons = compare_to_reference(rows, reference, output_dir, confidence) if reference else {}
    return StudyResult(rows, dict(settings or {}), wall_s, reference, comparisons, note, confidence)


def plot_auroc_vs_params(rows: Sequence[StrategyRow], path: str | os.PathLike) -> Path:
    """Scatter plot of test AUROC (mean ± std) against parameters, one labelled point per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    points: dict[tuple[float, float], list[str]] = {}
    for r in rows:
        mean, std = r.auroc
        ax.errorbar(r.params / 1e6, 100 * mean, yerr=100 * std, fmt="o", capsize=3)
        points.setdefault((round(r.params / 1e6, 3), round(100 * mean, 2)), []).append(r.name)
    seen_x: dict[float, int] = {}
    for (x, y), names in sorted(points.items()):
        k = seen_x[x] = seen_x.get(x, -1) + 1  # alternate sides for labels of points at the same size
        ax.annotate(" = ".join(names), (x, y), textcoords="offset points", xytext=(6, 2) if k % 2 == 0 else (-6, 2),
                    ha="left" if k % 2 == 0 else "right", fontsize=8)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("test AUROC (%)")
    ax.set_title("Transfer strategies: AUROC against model size")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def seeded_splits(datalist: str | os.PathLike, output_dir: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                  fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> list[Path]:
    """Pool a datalist's items and write one patient-level stratified split per seed.

    Args:
        datalist: a datalist JSON with ``training``/``validation``/``test`` items (paths relative to it).
        output_dir: folder for ``datalist_split<k>.json``.
        seeds: one seed per split.
        fractions: training / validation / test fractions of patients.

    Returns:
        The written datalist paths (image paths made absolute).
    """
    items = []
    for split in SPLIT_KEYS:
        try:
            items += load_split(datalist, split)
        except ValueError:
            continue
    make_splits(items, seeds=seeds, fractions=fractions, output_dir=output_dir, class_names=read_class_names(datalist))
    return [Path(output_dir) / f"datalist_split{k}.json" for k in range(len(seeds))]


def run_once(config_files: Sequence[str | os.PathLike], evaluate_file: str | os.PathLike, overrides: Mapping[str, Any],
             run_dir: str | os.PathLike, *, strategy: str, split: int, tracking: str | None = None,
             experiment_name: str | None = None, variant: Variant | None = None) -> StudyRun:
    """Train a bundle with overrides into ``run_dir``, then evaluate, once, the checkpoint chosen on validation on the
    test split.

    Args:
        config_files: ``train.json`` and override files (e.g. ``xray.json``).
        evaluate_file: the bundle's ``evaluate.json``.
        overrides: config overrides (``strategy``, ``datalist``, ``max_epochs`` ...).
        run_dir: gets ``models/``, ``eval/``, ``logs/`` and ``run.json``.
        strategy, split: recorded in the result.
        tracking: ``"mlflow"`` tracks the training as one MLflow run named ``<strategy>_split<k>`` (see the module
            docstring; a variant's folder name instead of the strategy); ``None``: no tracking.
        experiment_name: the MLflow experiment (default: the bundle's ``experiment_name``).
        variant: the study row the run belongs to: its varied ``lifting`` / ``weights`` are recorded in the result
            (the overrides must already carry them).

    Returns:
        The :class:`StudyRun` (read back from ``run.json`` when the run was done before).
    """
    run_dir = Path(run_dir)
    record = run_dir / "run.json"
    finished = read_run_record(record)
    if finished is not None:
        return finished
    # the run's own folder; nothing is published into the bundle's models/ (bundles that publish runs read these keys)
    dirs = {"run_dir": str(run_dir), "ckpt_dir": str(run_dir / "models"), "output_dir": str(run_dir / "eval"),
            "log_dir": str(run_dir / "logs"), "publish": False}
    settings = {**dict(overrides), **dirs, "progress_bar": False}
    if tracking is not None:
        settings["run_name"] = f"{variant.folder if variant is not None else strategy}_split{split}"
        if experiment_name is not None:
            settings["experiment_name"] = experiment_name
    files = [str(f) for f in config_files]
    start = time.perf_counter()
    trained = run_workflow(None, files, settings, workflow_type="train", tracking=tracking)
    train_s = time.perf_counter() - start
    last = read_checkpoint(run_dir / "models" / "checkpoint_last.pt")
    start = time.perf_counter()
    run_workflow(None, [*files, str(evaluate_file)], settings, workflow_type="eval")
    eval_s = time.perf_counter() - start
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    result = StudyRun(strategy=strategy, split=int(split), auroc=float(metrics["auroc"]), auprc=float(metrics["auprc"]),
                      best_epoch=int(last.get("best_epoch", 0)), epochs=int(last["epoch"]), train_s=train_s, eval_s=eval_s,
                      val_auroc=float("nan") if last.get("best_metric") is None else float(last["best_metric"]))
    if variant is not None:
        result.lifting = variant.lifting if "lifting" in variant.varied else None
        result.weights = variant.weights if "weights" in variant.varied else None
    if tracking is not None:
        _track_test_metrics(trained.parser, result)
    atomic_write_text(json.dumps(asdict(result), indent=1) + "\n", record)  # complete or absent, never half
    return result


def read_run_record(path: str | os.PathLike) -> StudyRun | None:
    """The :class:`StudyRun` of a finished run's ``run.json``; ``None`` when the file is missing or incomplete (the
    run is then trained, or resumed from its checkpoint, again)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    fields = StudyRun.__dataclass_fields__
    required = {name for name, f in fields.items() if f.default is MISSING}
    if not isinstance(doc, dict) or not required <= set(doc):
        return None
    return StudyRun(**{k: v for k, v in doc.items() if k in fields})


def _track_test_metrics(parser: Any, result: StudyRun) -> None:
    """Add the test AUROC / AUPRC to the training's MLflow run (found by name; nothing when it is not there)."""
    get = parser.get_parsed_content
    found = find_mlflow_run(get("tracking_uri"), get("experiment_name"), get("run_name"))
    if found is None:
        logger.warning("run %s: no MLflow run %r to add the test metrics to.", get("run_dir"), get("run_name"))
        return
    client, run = found
    for key, value in (("test_auroc", result.auroc), ("test_auprc", result.auprc)):
        client.log_metric(run.info.run_id, key, value)


def _min_latency_ms(net: Any, input_shape: tuple[int, ...], repeats: int) -> float:
    """Fastest of ``repeats`` batch-1 forward passes in eval mode (the minimum is robust to other jobs on a shared CPU,
    the median is not)."""
    import torch

    net.eval()
    x = torch.randn(*input_shape)
    best = math.inf
    with torch.inference_mode():
        net(x)
        for _ in range(max(1, int(repeats))):
            start = time.perf_counter()
            net(x)
            best = min(best, time.perf_counter() - start)
    return 1000.0 * best


def _describe(config: Mapping[str, Any]) -> str:
    """The network of a ``TransferClassifier.config`` in a few words: ``resnet50, cut 11``; a 2.5D or ACS network
    says so (``resnet50, cut 11, slices: slab 3, stride 1, attention``); inflation, the 3D default, is not named."""
    if config.get("slim_after"):
        text = f"{config['arch']}, slim after {config['slim_after']}"
    elif config.get("cut") is not None:
        text = f"{config['arch']}, cut {config['cut']}"
    else:
        text = f"{config['arch']}, full"
    if config.get("lifting") == "slices":
        text += (f", slices: slab {config.get('slab', 1)}, stride {config.get('slice_stride', 1)}, "
                 f"{config.get('aggregator', 'mean')}")
    elif config.get("lifting") == "acs":
        text += ", ACS"
    return text


def profile_strategy(config_files: Sequence[str | os.PathLike], overrides: Mapping[str, Any],
                     input_shape: Sequence[int] | None = None, repeats: int = 5) -> tuple[Any, tuple[int, ...], str, bool]:
    """Build a strategy's network from the bundle config and profile it on the CPU (parameters, MACs, and the
    fastest of ``repeats`` batch-1 forward passes as latency).

    Args:
        config_files: the bundle's training config files.
        overrides: config overrides, ``strategy`` included.
        input_shape: the input, batch included; default ``(1, in_channels, *image_size)`` from the config.
        repeats: timed forward passes.

    Returns:
        ``(ModelProfile, input shape, network description, whether pretrained weights were loaded)``.
    """
    parser = load_config(None, [str(f) for f in config_files], overrides)
    get = parser.get_parsed_content
    net = get("network_def", instantiate=True)
    if input_shape is None:
        size = get("image_size")
        spatial = [int(size)] * int(get("spatial_dims")) if isinstance(size, (int, float)) else [int(s) for s in size]
        input_shape = (1, int(get("in_channels")), *spatial)
    prof = profile_model(net, tuple(input_shape), repeats=1, warmup=1, memory=False)
    prof.latency_ms = _min_latency_ms(net, tuple(input_shape), repeats)
    return prof, tuple(input_shape), _describe(net.config), bool(getattr(net, "weights_source", None))


@dataclass(frozen=True)
class PlannedRun:
    """One training of a study: a strategy (variant) on a seeded split, trained and evaluated into its own folder.

    Attributes:
        index: its place in the study's run list (variant by variant, split by split): ``--only INDEX``.
        strategy, split, seed: what it trains on which split (the seed also seeds the training).
        datalist: the split's datalist file.
        run_dir: its folder (:func:`run_folder`); ``run.json`` there marks it finished.
        variant: its row of the table (strategy, lifting, weights); ``None``: the strategy alone.
    """

    index: int
    strategy: str
    split: int
    seed: int
    datalist: str
    run_dir: str
    variant: Variant | None = None

    @property
    def name(self) -> str:
        """Its row's name (:attr:`StrategyRow.name`)."""
        return row_name(self.strategy, self.variant)

    @property
    def finished(self) -> bool:
        """Whether its ``run.json`` is there and complete."""
        return read_run_record(Path(self.run_dir) / "run.json") is not None


def study_split_files(datalist: str | os.PathLike, output_dir: str | os.PathLike, seeds: Sequence[int],
                      *, reuse: bool = False) -> list[Path]:
    """The study's split files ``<output_dir>/splits/datalist_split<k>.json``: written by :func:`seeded_splits`, or,
    with ``reuse``, taken as they are when all exist (one run of a job array must not rewrite files other runs are
    reading)."""
    folder = Path(output_dir) / "splits"
    paths = [folder / f"datalist_split{k}.json" for k in range(len(seeds))]
    if reuse and all(p.is_file() for p in paths):
        return paths
    return seeded_splits(datalist, folder, seeds)


def plan_study(output_dir: str | os.PathLike, strategies: Sequence[str] | None, seeds: Sequence[int],
               split_files: Sequence[str | os.PathLike], *, liftings: Sequence[str] | None = None,
               weights: Sequence[str | None] | None = None) -> list[PlannedRun]:
    """The study's runs, variant by variant (the table's order: strategy, then lifting, then weights), split by split.

    Args:
        output_dir: the study folder.
        strategies: strategy names (default: all, in the registry's order).
        seeds: one seed per split.
        split_files: the split datalists, one per seed (:func:`study_split_files`).
        liftings, weights: the liftings and weights settings to compare
            (:func:`~medtl_monai.experiments.study_variants.study_variants`; one value: an override of every run).

    Returns:
        One :class:`PlannedRun` per variant and split.

    Raises:
        ValueError: an unknown strategy or lifting, a repeated value, or not one split file per seed.
    """
    if len(split_files) != len(seeds):
        raise ValueError(f"{len(split_files)} split files for {len(seeds)} seeds.")
    runs = []
    for variant in study_variants(strategies, liftings, weights):
        for k, (seed, split_file) in enumerate(zip(seeds, split_files)):
            runs.append(PlannedRun(len(runs), variant.strategy, k, int(seed), str(split_file),
                                   str(run_folder(output_dir, variant.folder, k)), variant))
    return runs


@dataclass(frozen=True)
class _StudyTask:
    """Everything a worker process needs to train one planned run (picklable)."""

    run: PlannedRun
    config_files: tuple[str, ...]
    evaluate_file: str
    overrides: dict
    tracking: str | None = None
    experiment_name: str | None = None

    def __str__(self) -> str:
        return f"{self.run.name} split {self.run.split} ({self.run.run_dir})"


def run_planned(config_files: Sequence[str | os.PathLike], evaluate_file: str | os.PathLike, run: PlannedRun,
                overrides: Mapping[str, Any] | None = None, *, tracking: str | None = None,
                experiment_name: str | None = None, device: str | None = None) -> StudyRun:
    """Train and evaluate one planned run into its folder (:func:`run_once`), unless it is finished.

    Args:
        config_files, evaluate_file: the bundle's configs.
        run: the run (:func:`plan_study`).
        overrides: the study's overrides for every run.
        tracking, experiment_name: as :func:`run_study`.
        device: the device to train on (default: the bundle's ``device``).

    Returns:
        The run's :class:`StudyRun`.
    """
    variant = run.variant or Variant(run.strategy)
    settings = {**dict(overrides or {}), **variant.overrides(), "datalist": run.datalist, "seed": int(run.seed)}
    if device is not None:
        settings["device"] = str(device)
    return run_once(config_files, evaluate_file, settings, run.run_dir, strategy=run.strategy, split=run.split,
                    tracking=tracking, experiment_name=experiment_name, variant=run.variant)


def _run_task(task: _StudyTask, device: str | None) -> StudyRun:
    """A worker's entry point (module level, so that spawned processes import it by name)."""
    return run_planned(task.config_files, task.evaluate_file, task.run, task.overrides, tracking=task.tracking,
                       experiment_name=task.experiment_name, device=device)


def collect_study(
    config_files: Sequence[str | os.PathLike],
    *,
    output_dir: str | os.PathLike,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    overrides: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    repeats: int = 5,
    reference: str | None = "full",
    settings: Mapping[str, Any] | None = None,
    wall_s: float = 0.0,
    liftings: Sequence[str] | None = None,
    weights: Sequence[str | None] | None = None,
) -> StudyResult:
    """Build the study table from the run folders (each run's ``run.json`` and ``eval/predictions.csv``), profile
    each strategy's network here, and write the table files into ``output_dir``.

    The runs may have been trained by this process, by worker processes or by the tasks of a job array on other
    machines: the table depends only on what the run folders hold.

    Args:
        config_files: the bundle's training configs (to build each row's network for its cost).
        output_dir: the study folder.
        strategies, seeds, overrides, input_shape, repeats, reference, liftings, weights: as :func:`run_study`.
        settings: more settings to record.
        wall_s: wall time to record.

    Returns:
        The written :class:`StudyResult`.

    Raises:
        FileNotFoundError: a run is not finished (every missing run is named, with its ``--only`` index).
    """
    out = Path(output_dir)
    split_files = [out / "splits" / f"datalist_split{k}.json" for k in range(len(seeds))]
    plan = plan_study(out, strategies, seeds, split_files, liftings=liftings, weights=weights)
    records = {run.index: read_run_record(Path(run.run_dir) / "run.json") for run in plan}
    missing = [run for run in plan if records[run.index] is None]
    if missing:
        raise FileNotFoundError(
            f"{out}: {len(missing)} of {len(plan)} runs are not finished: "
            + "; ".join(f"--only {r.index} ({r.name} split {r.split}: no complete {r.run_dir}/run.json)"
                        for r in missing))
    rows = []
    for variant in study_variants(strategies, liftings, weights):
        base = {**dict(overrides or {}), **variant.overrides(), "datalist": str(split_files[0])}
        prof, shape, desc, pretrained = profile_strategy(config_files, base, input_shape, repeats)
        runs = [records[r.index] for r in plan if r.variant == variant]
        rows.append(StrategyRow(variant.strategy, desc, runs, prof.params, prof.macs, prof.latency_ms, pretrained,
                                get_strategy(variant.strategy).description, variant if variant.varied else None))
        input_shape = shape
    recorded = {"seeds": list(seeds), "input_shape": list(input_shape or []), "strategies": strategy_names(strategies),
                "repeats": repeats, "overrides": {k: v for k, v in (overrides or {}).items()}, **dict(settings or {})}
    recorded.update({k: list(v) for k, v in (("liftings", liftings), ("weights", weights)) if v})
    result = study_table(rows, out, reference=reference, settings=recorded, wall_s=wall_s)
    result.write(out)
    return result


def run_study(
    config_files: Sequence[str | os.PathLike],
    evaluate_file: str | os.PathLike,
    *,
    datalist: str | os.PathLike,
    output_dir: str | os.PathLike,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    overrides: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    repeats: int = 5,
    progress: Callable[[str], None] | None = None,
    tracking: str | None = None,
    experiment_name: str | None = None,
    reference: str | None = "full",
    workers: int = 1,
    devices: str | Sequence[str] | None = None,
    liftings: Sequence[str] | None = None,
    weights: Sequence[str | None] | None = None,
) -> StudyResult:
    """Run every strategy (or strategy x lifting x weights variant) on every seeded split through the bundle and
    collect the table.

    The runs are independent: with ``workers`` or ``devices`` they train side by side in worker processes
    (:func:`~medtl_monai.experiments.parallel.run_tasks`). Each run seeds itself (the bundle's ``set_determinism``
    with the split's seed), so the table is the same whichever process trains which run; finished runs (a complete
    ``run.json``) are not trained again, and a run killed mid-training resumes from its last checkpoint.

    Args:
        config_files: the bundle's ``train.json`` and override files.
        evaluate_file: its ``evaluate.json``.
        datalist: the data to re-split (all its items are pooled).
        output_dir: gets ``splits/``, ``runs/<strategy>/split<k>/`` and the table files.
        strategies: names from :data:`~medtl_monai.training.STRATEGIES` (default: all, in table order).
        seeds: one seed per split (also the training seed of that split).
        overrides: more config overrides for every run (``max_epochs``, ``image_size``, ``arch`` ...).
        input_shape: profiling input (default from the config).
        repeats: timed forward passes when profiling.
        progress: called with one line per finished run (default: the module logger).
        tracking: ``"mlflow"``: each training is one MLflow run ``<strategy>_split<k>`` of one experiment in the
            bundle's tracking store (needs the ``mlflow`` package: ``pip install 'medtl-monai[tracking]'``).
        experiment_name: that experiment (default: an ``experiment_name`` override, else the study folder's name).
        reference: the row every other is compared with (AUROC difference with its t-interval over splits, DeLong
            p per split): a row's name (``truncated · acs``) or a strategy, which stands for its first row (the first
            of ``liftings`` and of ``weights``); the first row when none matches; ``None``: no comparison.
        workers: CPU worker processes training runs side by side (each with ``cores // workers`` torch threads);
            1 trains them one after another in this process.
        devices: one worker per device (``"cuda:0,cuda:1"`` or a list); overrides ``workers``.
        liftings: ``inflate`` / ``slices`` / ``acs`` to compare (docs/lifting.md): each strategy is trained with each
            (a ``lifting`` override); the ``slices`` options (``slab`` ...) then apply to the ``slices`` rows only.
        weights: weights settings to compare (docs/weights.md; ``none`` / ``random``: random initialisation): each
            strategy x lifting is trained from each (a ``weights`` override). One value in either list is an override
            of every run and does not name the rows (:mod:`~medtl_monai.experiments.study_variants`).

    Returns:
        The :class:`StudyResult` (also written to ``output_dir``).

    Raises:
        ValueError: an unknown strategy, lifting or device, or a repeated value.
        RuntimeError: some runs failed (the others are finished and kept; run the study again to retry them).
    """
    start = time.perf_counter()
    say = progress or logger.info
    out = Path(output_dir)
    device_list = parse_devices(devices)
    split_files = study_split_files(datalist, out, seeds)
    plan = plan_study(out, strategies, seeds, split_files, liftings=liftings, weights=weights)
    if tracking is not None and experiment_name is None:
        experiment_name = str((overrides or {}).get("experiment_name") or out.resolve().name)
    pending = [run for run in plan if not run.finished]
    if len(pending) < len(plan):
        say(f"{len(plan) - len(pending)} of {len(plan)} runs are finished (their run.json is kept); "
            f"{len(pending)} to train")
    tasks = [_StudyTask(run, tuple(str(f) for f in config_files), str(evaluate_file), dict(overrides or {}), tracking,
                        experiment_name) for run in pending]

    def done(task: _StudyTask, run: StudyRun) -> None:
        say(f"{task.run.name} split {run.split}: epoch {run.best_epoch}/{run.epochs} chosen on validation (AUROC "
            f"{run.val_auroc:.3f}); test AUROC {run.auroc:.3f}, AUPRC {run.auprc:.3f}; train {run.train_s:.0f} s")

    run_tasks(_run_task, tasks, workers=workers, devices=device_list, on_done=done)
    settings: dict[str, Any] = {"workers": len(device_list) or int(workers)}
    if device_list:
        settings["devices"] = device_list
    if tracking is not None:
        settings.update(tracking=tracking, experiment_name=experiment_name)
    return collect_study(config_files, output_dir=out, strategies=strategies, seeds=seeds, overrides=overrides,
                         input_shape=input_shape, repeats=repeats, reference=reference, settings=settings,
                         wall_s=time.perf_counter() - start, liftings=liftings, weights=weights)
