"""The data check's report and the files it is written to: ``data_check.md`` (the report), ``data_check.png``
(intensity histograms per split), ``data_fingerprint.json`` and ``data_check.json`` (the report, keyed for the cache
of :func:`~medtl_monai.data.check_before_training`). The checking itself is :mod:`medtl_monai.data.check`.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHECK_FILES", "CHECK_VERSION", "DataCheckError", "DataCheckReport", "write_check"]

logger = logging.getLogger("medtl_monai.data")

#: Version of the check; a saved report of another version is not reused.
CHECK_VERSION = 1

#: The files a check writes into its output folder (the last one is the saved report the cache reads).
CHECK_FILES: tuple[str, ...] = ("data_check.md", "data_check.png", "data_fingerprint.json", "data_check.json")

class DataCheckError(ValueError):
    """The data check of a datalist found errors; the message lists them all and says where the report is."""


@dataclass
class DataCheckReport:
    """What :func:`check_datalist` found.

    Attributes:
        datalist: the datalist checked.
        class_names: the classes, in index order.
        errors: problems that make training or evaluation meaningless (each ``<path>: <problem>``, with a fix).
        warnings: problems worth a look (duplicates, no test split).
        splits: per split, ``n_cases``, ``n_patients``, ``class_counts`` (one number per class) and ``summary``
            (the table row: modality, dims, spacing, field of view, slices, orientation, intensity, HU bins).
        fingerprint: the training split's fingerprint (see :func:`~medtl_monai.data.fingerprint.build_fingerprint`),
            None when no training image could be read.
        seconds: how long the check took.
        from_cache: the report was read back from a previous check of the same data.
    """

    datalist: str
    class_names: list[str]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprint: dict[str, Any] | None = None
    seconds: float = 0.0
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        """True when the check found no error (warnings allowed)."""
        return not self.errors

    def to_markdown(self) -> str:
        """The report as Markdown: counts of errors and warnings, their lists, and the table of splits."""
        lines = [f"# Data check: {self.datalist}", "",
                 f"{len(self.errors)} error(s), {len(self.warnings)} warning(s); classes {self.class_names}.", ""]
        for title, entries in (("Errors", self.errors), ("Warnings", self.warnings)):
            if entries:
                lines += [f"## {title}", "", *(f"- {e}" for e in entries), ""]
        header = ["split", "cases", "patients", "classes", "modality", "dims", "spacing mm", "field of view mm",
                  "slices", "orientation", "intensity p1 / p50 / p99", "HU body fractions lung/fat/soft/bone"]
        lines += ["## Splits", "", "Medians over the cases (spacing and field of view sorted ascending).", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for split, info in self.splits.items():
            counts = ", ".join(f"{n}: {c}" for n, c in zip(self.class_names, info["class_counts"]))
            row = [split, str(info["n_cases"]), str(info["n_patients"]), counts,
                   *(str(info["summary"].get(k, "")) for k in ("modality", "dims", "spacing", "fov", "slices",
                                                               "orientation", "intensity", "hu_bins"))]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON (``from_cache`` left out)."""
        out = asdict(self)
        out.pop("from_cache")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, from_cache: bool = False) -> DataCheckReport:
        """Rebuild a report saved with :meth:`to_dict`."""
        names = ("datalist", "class_names", "errors", "warnings", "splits", "fingerprint", "seconds")
        return cls(**{k: data[k] for k in names if k in data}, from_cache=from_cache)


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_bytes(data)
    os.replace(part, path)


def _histogram_png(samples: Mapping[str, Sequence[np.ndarray]], ct: bool) -> bytes | None:
    """Intensity histograms, one per split (log10 of the fraction of values per bin, so that the tails show), as
    PNG bytes; None without samples or matplotlib."""
    values = {k: np.concatenate(v) for k, v in samples.items() if v}
    if not values:
        return None
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency; the report is still written
        logger.warning("matplotlib is not installed; data_check.png is not written")
        return None
    everything = np.concatenate(list(values.values()))
    low, high = (-1100.0, 1600.0) if ct else tuple(float(v) for v in np.percentile(everything, [0.5, 99.5]))
    bins = np.linspace(low, high if high > low else low + 1.0, 101)
    fig = Figure(figsize=(7, 3.5), dpi=80)
    ax = fig.add_axes((0.1, 0.15, 0.85, 0.75))
    for split, data in values.items():
        counts, _ = np.histogram(np.clip(data, bins[0], bins[-1]), bins=bins)
        fraction = counts / max(1, counts.sum())
        ax.stairs(np.log10(np.maximum(fraction, 1e-5)), bins, baseline=None, label=split)
    ax.set_xlabel("intensity (HU)" if ct else "intensity")
    ax.set_ylabel("log10 fraction of values")
    ax.legend(title="intensity per split", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_check(report: DataCheckReport, output_dir: str | os.PathLike,
                samples: Mapping[str, Sequence[np.ndarray]] | None = None,
                cache_key: str | None = None) -> dict[str, Path]:
    """Write a report's files (see :data:`CHECK_FILES`), each atomically.

    Args:
        report: the report.
        output_dir: the folder (created).
        samples: intensity samples per split for ``data_check.png`` (none: no picture).
        cache_key: stored in ``data_check.json`` for :func:`check_before_training`.

    Returns:
        the written files by name.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    groups = (report.fingerprint or {}).get("modalities", {})
    png = _histogram_png(samples or {}, ct=list(groups) == ["CT"])
    contents = {"data_check.md": report.to_markdown().encode(), "data_check.png": png,
                "data_fingerprint.json": None if report.fingerprint is None
                else (json.dumps(report.fingerprint, indent=1) + "\n").encode(),
                "data_check.json": (json.dumps({"cache_key": cache_key, "version": CHECK_VERSION,
                                                **report.to_dict()}, indent=1) + "\n").encode()}
    for name in CHECK_FILES:
        if contents[name] is not None:
            _write_atomic(out / name, contents[name])
            written[name] = out / name
    return written
