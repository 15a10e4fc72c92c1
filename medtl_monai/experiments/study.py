"""The strategy study: every transfer strategy over three seeded splits, in the TruncatedTL paper's table format.

For each strategy and each split the *bundle itself* is run in-process (:func:`~medtl_monai.bundle.run_workflow`: its
``train.json`` plus override files, then its ``evaluate.json``) with config overrides (``strategy``, ``datalist``,
``seed`` and the output folders), so the study measures exactly what a user of the bundle gets. Each network is
profiled once per strategy (parameters and MACs via :func:`~medtl_monai.networks.profile_model`; CPU latency as
the fastest of N batch-1 forward passes, robust to other jobs on a shared machine). The table reports test AUROC and
AUPRC as mean ± sample standard deviation over the splits, as in Peng et al., "Rethinking Transfer Learning for
Medical Image Classification" (BMVC 2023), and a PNG plots AUROC against parameters.

Choices are made on validation, test is reported once: within a run the only choice is the checkpoint (the epoch),
which the bundle makes by validation AUROC (``model.pt``); the test split is then evaluated once, on that checkpoint,
and nothing is selected on it (the table shows the validation AUROC that made the choice beside the test figures).
Settings such as the cut are chosen before the study, on the training split (``scripts/find_cut.py``), and passed
as overrides. Each row is named by its strategy and by the registry's one-line description of it
(:attr:`~medtl_monai.training.Strategy.description`: which network, what is frozen, which rates), so that e.g.
``lwft`` (this project's truncated variant) and ``lwft_full`` (the paper's LWFT) cannot be confused.

The splits pool the datalist's training, validation and test items and re-split them by patient with
:func:`~medtl_monai.data.make_splits` (seeds 0, 1, 2 by default). A finished run leaves ``run.json`` in its folder
and is not repeated when the study is run again with the same output folder. What each strategy means comes from
the strategy registry (:data:`~medtl_monai.training.STRATEGIES`); the bundle is opened through
:mod:`medtl_monai.bundle`.

With ``tracking="mlflow"`` every training is tracked as ``monai.bundle run --tracking mlflow`` tracks it (MONAI's
``MLFlowHandler`` plus the bundle's :class:`~medtl_monai.training.MLflowRunRecord`): one MLflow run per training,
named ``<strategy>_split<k>``, in one experiment named after the study folder, in the bundle's tracking store
(``<bundle>/mlruns.db``); the test AUROC and AUPRC are added to that run as ``test_auroc`` and ``test_auprc``.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..bundle import load_config, run_workflow
from ..data import SPLIT_KEYS, load_split, make_splits, read_class_names
from ..networks import profile_model, read_checkpoint
from ..training import find_mlflow_run, get_strategy, strategy_names

__all__ = ["StrategyRow", "StudyResult", "StudyRun", "profile_strategy", "run_once", "run_study", "seeded_splits"]

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
    """

    strategy: str
    network: str
    runs: list[StudyRun]
    params: int
    macs: int
    latency_ms: float
    pretrained: bool = True
    description: str = ""

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


@dataclass
class StudyResult:
    """All rows plus how they were obtained."""

    rows: list[StrategyRow]
    settings: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def markdown(self) -> str:
        """The paper-style table in Markdown, with the settings and the cost."""
        lines = [
            ("| strategy | what it is | network | val AUROC (%) | test AUROC (%) | test AUPRC (%) | params (M) | MACs (G) "
            "| CPU latency (ms) | train time / split (s) |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            (vm, vsd), (am, asd), (pm, psd) = r.val_auroc, r.auroc, r.auprc
            lines.append(f"| {r.strategy} | {r.description} | {r.network} | {100 * vm:.1f} ± {100 * vsd:.1f} | "
                         f"{100 * am:.1f} ± {100 * asd:.1f} | {100 * pm:.1f} ± {100 * psd:.1f} | "
                         f"{r.params / 1e6:.2f} | {r.macs / 1e9:.3f} | {r.latency_ms:.1f} | {r.train_s:.0f} |")
        s = self.settings
        runs_s = sum(run.train_s + run.eval_s for r in self.rows for run in r.runs)
        lines += ["", ("Each run's checkpoint (its epoch) was chosen by validation AUROC (the val AUROC column); the test "
                      "split was evaluated once per run, on that checkpoint, and nothing was chosen on it.")]
        lines += ["", (f"Mean ± sample standard deviation over {len(s.get('seeds', []))} patient-level splits "
                      f"(seeds {s.get('seeds')}); latency: fastest of {s.get('repeats')} batch-1 forward passes at input {s.get('input_shape')}. "
                      f"Training + test evaluation summed over the {sum(len(r.runs) for r in self.rows)} runs: "
                      f"{runs_s / 60:.1f} min; this invocation: {self.wall_s / 60:.1f} min (finished runs are reused). "
                      "Wall times depend on the other jobs running on the machine.")]
        random = [r.strategy for r in self.rows if not r.pretrained]
        if random and random != ["scratch"]:
            same = " `truncated` and `scratch` are then the same run." if {"truncated", "scratch"} <= set(random) else ""
            lines += ["", (f"**No pretrained weights** were given to {', '.join(random)} (`weights` null): those backbones "
                          "started from random initialisation, so these rows compare training regimes (what trains, at "
                          f"which rate, on which architecture), not transfer from pretrained weights.{same}")]
        return "\n".join(lines)

    def write(self, output_dir: str | os.PathLike, stem: str = "study") -> dict[str, Path]:
        """Write ``<stem>.md``, ``<stem>.csv`` (one row per strategy), ``<stem>_runs.csv`` and ``<stem>.png``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / f"{stem}.md", "csv": out / f"{stem}.csv", "runs": out / f"{stem}_runs.csv", "png": out / f"{stem}.png"}
        paths["md"].write_text(self.markdown() + "\n")
        with open(paths["csv"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["strategy", "description", "network", "val_auroc_mean", "val_auroc_std", "auroc_mean",
                        "auroc_std", "auprc_mean", "auprc_std", "params", "macs", "latency_ms", "train_s", "n_splits"])
            for r in self.rows:
                w.writerow([r.strategy, r.description, r.network,
                            *(f"{v:.6f}" for v in (*r.val_auroc, *r.auroc, *r.auprc)), r.params, r.macs,
                            f"{r.latency_ms:.3f}", f"{r.train_s:.1f}", len(r.runs)])
        with open(paths["runs"], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(StudyRun.__dataclass_fields__))
            for r in self.rows:
                for run in r.runs:
                    w.writerow(list(asdict(run).values()))
        plot_auroc_vs_params(self.rows, paths["png"])
        return paths


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
        points.setdefault((round(r.params / 1e6, 3), round(100 * mean, 2)), []).append(r.strategy)
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
             experiment_name: str | None = None) -> StudyRun:
    """Train a bundle with overrides into ``run_dir``, then evaluate, once, the checkpoint chosen on validation on the
    test split.

    Args:
        config_files: ``train.json`` and override files (e.g. ``xray.json``).
        evaluate_file: the bundle's ``evaluate.json``.
        overrides: config overrides (``strategy``, ``datalist``, ``max_epochs`` ...).
        run_dir: gets ``models/``, ``eval/``, ``logs/`` and ``run.json``.
        strategy, split: recorded in the result.
        tracking: ``"mlflow"`` tracks the training as one MLflow run named ``<strategy>_split<k>`` (see the module
            docstring); ``None``: no tracking.
        experiment_name: the MLflow experiment (default: the bundle's ``experiment_name``).

    Returns:
        The :class:`StudyRun` (read back from ``run.json`` when the run was done before).
    """
    run_dir = Path(run_dir)
    record = run_dir / "run.json"
    if record.is_file():
        return StudyRun(**json.loads(record.read_text()))
    # the run's own folder; nothing is published into the bundle's models/ (bundles that publish runs read these keys)
    dirs = {"run_dir": str(run_dir), "ckpt_dir": str(run_dir / "models"), "output_dir": str(run_dir / "eval"),
            "log_dir": str(run_dir / "logs"), "publish": False}
    settings = {**dict(overrides), **dirs, "progress_bar": False}
    if tracking is not None:
        settings["run_name"] = f"{strategy}_split{split}"
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
    if tracking is not None:
        _track_test_metrics(trained.parser, result)
    record.write_text(json.dumps(asdict(result), indent=1))
    return result


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
    """The network of a ``TransferClassifier.config`` in a few words: ``resnet50, cut 11``."""
    if config.get("slim_after"):
        return f"{config['arch']}, slim after {config['slim_after']}"
    if config.get("cut") is not None:
        return f"{config['arch']}, cut {config['cut']}"
    return f"{config['arch']}, full"


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
) -> StudyResult:
    """Run every strategy on every seeded split through the bundle and collect the table.

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

    Returns:
        The :class:`StudyResult` (also written to ``output_dir``).

    Raises:
        ValueError: an unknown strategy.
    """
    start = time.perf_counter()
    names = strategy_names(strategies)
    say = progress or logger.info
    out = Path(output_dir)
    split_files = seeded_splits(datalist, out / "splits", seeds)
    if tracking is not None and experiment_name is None:
        experiment_name = str((overrides or {}).get("experiment_name") or out.resolve().name)
    rows = []
    for name in names:
        base = {**dict(overrides or {}), "strategy": name}
        prof, shape, desc, pretrained = profile_strategy(config_files, {**base, "datalist": str(split_files[0])}, input_shape, repeats)
        runs = []
        for k, (seed, split_file) in enumerate(zip(seeds, split_files)):
            run = run_once(config_files, evaluate_file, {**base, "datalist": str(split_file), "seed": int(seed)},
                           out / "runs" / name / f"split{k}", strategy=name, split=k, tracking=tracking,
                           experiment_name=experiment_name)
            runs.append(run)
            say(f"{name} split {k}: epoch {run.best_epoch}/{run.epochs} chosen on validation (AUROC {run.val_auroc:.3f}); "
                f"test AUROC {run.auroc:.3f}, AUPRC {run.auprc:.3f}; train {run.train_s:.0f} s")
        rows.append(StrategyRow(name, desc, runs, prof.params, prof.macs, prof.latency_ms, pretrained,
                                get_strategy(name).description))
        input_shape = shape
    settings = {"seeds": list(seeds), "input_shape": list(input_shape or []), "strategies": names, "repeats": repeats,
                "overrides": {k: v for k, v in (overrides or {}).items()}}
    if tracking is not None:
        settings.update(tracking=tracking, experiment_name=experiment_name)
    result = StudyResult(rows, settings, time.perf_counter() - start)
    result.write(out)
    return result
