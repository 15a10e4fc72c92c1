"""What a bundle's runs are and how they did: one :class:`RunSummary` per run folder, two runs compared, tables.

Everything is read from the files a run leaves (``config.json``, ``provenance.json``, ``models/model_card.json``,
``models/metrics.json`` written by :class:`~medtl_monai.training.TrainingCheckpointer` with each new best model,
``eval/metrics.json`` written by the evaluation); a file that is missing leaves its fields empty.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .card import CARD_NAME
from .provenance import PROVENANCE_NAME, weights_kind
from .run_config import CONFIG_NAME, flatten_config
from .runs import RUNS_DIR, find_run_file, published_run, read_json, run_names

__all__ = ["RunSummary", "compare_runs", "format_table", "list_runs", "summarize_run"]

#: the checkpointer's file of best validation metrics
METRICS_NAME = "metrics.json"
#: config ids never shown as differences between runs (where the files are)
_NOT_SETTINGS = ("bundle_root", "ckpt_dir", "output_dir", "log_dir", "run_name", "run_dir", "_meta_")


@dataclass
class RunSummary:
    """One run of a bundle, as the runs table shows it.

    Attributes:
        name: the run folder's name.
        path: the run folder.
        started: start time (ISO 8601) from the provenance record.
        arch, cut, strategy: the model (from the run's model card, else its config).
        weights: the kind of starting weights (``imagenet``, ``proxy``, ``random``, ``previous_run``, ...).
        data: the datalist's file name and cases per split (``datalist.json (40/10/10)``).
        best_val_auroc: the best validation AUROC, with its epoch in ``best_epoch``.
        test_auroc: the AUROC of the run's evaluation (``eval/metrics.json``), if evaluated.
        published: whether its model is the bundle's ``models/model.pt``.
    """

    name: str
    path: str
    started: str | None = None
    arch: str | None = None
    cut: Any = None
    strategy: str | None = None
    weights: str | None = None
    data: str | None = None
    best_val_auroc: float | None = None
    best_epoch: int | None = None
    test_auroc: float | None = None
    published: bool = False


def _metrics(run_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(best validation metrics, test metrics)`` of a run."""
    best = read_json(find_run_file(run_path, METRICS_NAME) or run_path / "models" / METRICS_NAME) or {}
    test = read_json(run_path / "eval" / METRICS_NAME) or {}
    return best, test


def _best_val_auroc(best: Mapping[str, Any]) -> float | None:
    metrics = best.get("metrics") or {}
    if "val_auroc" in metrics:
        return float(metrics["val_auroc"])
    if best.get("key_metric") == "val_auroc" and best.get("best_metric") is not None:
        return float(best["best_metric"])
    return None


def summarize_run(run_path: str | os.PathLike, published: str | None = None) -> RunSummary:
    """The :class:`RunSummary` of one run folder.

    Args:
        run_path: the run folder.
        published: the bundle's published run name (default: read from the bundle above ``runs/``).
    """
    run_path = Path(run_path).resolve()
    config = read_json(run_path / CONFIG_NAME) or {}
    record = read_json(run_path / PROVENANCE_NAME) or {}
    card_path = find_run_file(run_path, CARD_NAME)
    network = ((read_json(card_path) if card_path else None) or {}).get("network") or {}
    best, test = _metrics(run_path)
    weights = (record.get("weights") or {}).get("kind")
    if weights is None and config:
        weights = weights_kind(config.get("weights"), config.get("init_from"))
    datalist = record.get("datalist") or {}
    data = None
    if datalist.get("path"):
        counts = datalist.get("counts") or {}
        data = Path(datalist["path"]).name + (f" ({'/'.join(str(v) for v in counts.values())})" if counts else "")
    if published is None and run_path.parent.name == RUNS_DIR:
        published = published_run(run_path.parent.parent)
    return RunSummary(
        name=run_path.name, path=str(run_path), started=record.get("started"),
        arch=network.get("arch", config.get("arch")), cut=network.get("cut", config.get("cut")),
        strategy=config.get("strategy"), weights=weights, data=data,
        best_val_auroc=_best_val_auroc(best), best_epoch=best.get("best_epoch"),
        test_auroc=float(test["auroc"]) if test.get("auroc") is not None else None,
        published=published == run_path.name,
    )


def list_runs(bundle_root: str | os.PathLike) -> list[RunSummary]:
    """The summaries of a bundle's runs, oldest first."""
    root = Path(bundle_root).resolve()
    published = published_run(root)
    return [summarize_run(root / RUNS_DIR / name, published) for name in run_names(root)]


def compare_runs(a: str | os.PathLike, b: str | os.PathLike) -> dict[str, Any]:
    """The settings that differ between two runs' resolved configs, and their metrics side by side.

    Args:
        a, b: run folders.

    Returns:
        ``{"runs": [name_a, name_b], "settings": {id: [value_a, value_b]}, "metrics": {name: [value_a, value_b]}}``;
        a setting one run lacks is ``None`` on that side; metrics are the best validation metrics and the test
        metrics (prefixed ``test_``).
    """
    paths = [Path(a).resolve(), Path(b).resolve()]
    configs = [flatten_config({k: v for k, v in (read_json(p / CONFIG_NAME) or {}).items() if k not in _NOT_SETTINGS})
               for p in paths]
    settings = {key: [configs[0].get(key), configs[1].get(key)] for key in sorted(configs[0].keys() | configs[1].keys())
                if configs[0].get(key) != configs[1].get(key)}
    tables = []
    for path in paths:
        best, test = _metrics(path)
        row = dict(best.get("metrics") or {})
        if best.get("best_epoch") is not None:
            row["best_epoch"] = best["best_epoch"]
        row.update({f"test_{k}": v for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        tables.append(row)
    metrics = {key: [tables[0].get(key), tables[1].get(key)] for key in sorted(tables[0].keys() | tables[1].keys())}
    return {"runs": [p.name for p in paths], "settings": settings, "metrics": metrics}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]] | Sequence[RunSummary], fmt: str = "markdown",
                 columns: Sequence[str] | None = None) -> str:
    """Rows as a Markdown or CSV table.

    Args:
        rows: dicts, or :class:`RunSummary` items.
        fmt: ``"markdown"`` or ``"csv"``.
        columns: the columns in order (default: the keys of the first row).

    Returns:
        The table text (ending with a newline; only the header when there are no rows).

    Raises:
        ValueError: an unknown format.
    """
    dicts = [asdict(r) if isinstance(r, RunSummary) else dict(r) for r in rows]
    columns = list(columns or (dicts[0].keys() if dicts else [f.name for f in fields(RunSummary)]))
    cells = [[_cell(d.get(c)) for c in columns] for d in dicts]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return out.getvalue()
    if fmt != "markdown":
        raise ValueError(f"format {fmt!r} must be 'markdown' or 'csv'.")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"
