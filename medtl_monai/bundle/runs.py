"""Run folders: every training of a bundle writes into its own ``<bundle>/runs/<run_name>/``.

A run folder holds the resolved config (``config.json``, :mod:`~medtl_monai.bundle.run_config`), the provenance
record (``provenance.json``, :mod:`~medtl_monai.bundle.provenance`), the checkpoints with the model card and the best
validation metrics (``models/``), the logs and TensorBoard events (``logs/``) and the evaluation (``eval/``). The
tools here also accept the checkpoints at the top of the run folder. Training writes nothing outside its run folder
except when it *publishes* its best model (:func:`publish_run`) to the bundle's ``models/model.pt``, the file the
model zoo, MONAI Label and MONAI Deploy read, with ``models/model_card.json`` saying which run it came from.

Names: :func:`default_run_name` is the start time and the few settings that differ from the bundle's defaults
(``20261201-2130_xray_cut11_swft``); :func:`resolve_run` turns ``--run <name|path>`` (or nothing: the published
run, else the latest) into a folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..data import MissingDataError
from ..training import atomic_write_text
from .card import CARD_NAME
from .provenance import PROVENANCE_NAME, weights_kind

__all__ = [
    "RUNS_DIR",
    "default_run_name",
    "delete_run",
    "find_run_file",
    "new_run_name",
    "publish_run",
    "published_run",
    "read_json",
    "resolve_run",
    "run_dir",
    "run_names",
]

#: the data fingerprint a training writes beside its model (``medtl_monai.data.check_before_training``)
FINGERPRINT_NAME = "data_fingerprint.json"
#: folders under ``runs/`` that are not runs (``scripts/compare_runs.py`` writes its comparisons there)
NOT_RUNS: tuple[str, ...] = ("compare",)
#: folder of a bundle that holds its runs
RUNS_DIR = "runs"
_MAX_NAME = 80


def _token_kind(value: Any) -> str | None:
    return str(value.get("kind")) if isinstance(value, Mapping) and value.get("kind") is not None else None


def _token_cut(value: Any) -> str:
    return "full" if value is None else f"cut{value}"


#: the settings a default run name shows when they differ from the defaults, in order, and how each is written
_NAME_TOKENS: tuple[tuple[str, Any], ...] = (
    ("step", str),
    ("preprocessing_transforms", _token_kind),
    ("arch", str),
    ("cut", _token_cut),
    ("strategy", str),
    ("slim_after", lambda v: f"slim-{v}"),
    ("weights", lambda v: weights_kind(v)),
    ("init_from", lambda v: "from-run" if v else None),
    ("learning_rate", lambda v: f"lr{v:g}" if isinstance(v, (int, float)) else None),
    ("max_epochs", lambda v: f"e{v}"),
    ("seed", lambda v: f"seed{v}"),
)


def _literal(value: Any) -> bool:
    """Whether a raw config value is a plain setting (not an expression, a reference or a macro)."""
    return not (isinstance(value, str) and value.startswith(("$", "@", "%")))


def default_run_name(config_values: Mapping[str, Any], defaults: Mapping[str, Any], now: datetime | None = None) -> str:
    """A run name from the start time and the short settings that differ from the defaults.

    Args:
        config_values: the run's raw config values (top-level ids: merged configs and overrides).
        defaults: the bundle's ``train.json`` raw values.
        now: the start time (default: now).

    Returns:
        ``YYYYMMDD-HHMM`` followed by ``_<token>`` for each differing setting among the preprocessing kind, arch,
        cut, strategy, slim stage, weights kind, ``init_from``, learning rate, epochs and seed (e.g.
        ``20261201-2130_xray_cut11_swft``); only letters, digits, ``.``, ``-`` and ``_``, at most 80 characters.
    """
    now = now or datetime.now()
    tokens = []
    for key, write in _NAME_TOKENS:
        if key not in config_values or not _literal(config_values[key]):
            continue
        value, default = config_values[key], defaults.get(key)
        if key == "preprocessing_transforms":
            value, default = _token_kind(value), _token_kind(default)
        if value == default:
            continue
        token = write(value) if key != "preprocessing_transforms" else value
        if token:
            tokens.append(re.sub(r"[^A-Za-z0-9.-]+", "-", str(token)).strip("-"))
    return "_".join([now.strftime("%Y%m%d-%H%M"), *filter(None, tokens)])[:_MAX_NAME]


def run_dir(bundle_root: str | os.PathLike, run_name: str) -> Path:
    """``<bundle>/runs/<run_name>`` (absolute; not created).

    Raises:
        ValueError: a name that is not one plain folder name.
    """
    if not run_name or run_name in (".", "..", *NOT_RUNS) or re.search(r"[/\\\x00]", run_name):
        raise ValueError(f"run name {run_name!r} must be a plain folder name (no '/', not '.', '..' or "
                         f"{', '.join(repr(n) for n in NOT_RUNS)}).")
    return Path(bundle_root).resolve() / RUNS_DIR / run_name


def new_run_name(bundle_root: str | os.PathLike, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... when a run of that name exists, so a new run never reuses a folder."""
    candidate, n = name, 1
    while run_dir(bundle_root, candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON object file, or ``None`` when it is missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def find_run_file(run_path: str | os.PathLike, name: str, folder: str = "models") -> Path | None:
    """A file of a run: ``<run>/<folder>/<name>``, else ``<run>/<name>``; ``None`` when neither exists."""
    for candidate in (Path(run_path) / folder / name, Path(run_path) / name):
        if candidate.is_file():
            return candidate
    return None


def run_names(bundle_root: str | os.PathLike) -> list[str]:
    """The runs of a bundle, oldest first (by the start time in their provenance, else the folder's time)."""
    folder = Path(bundle_root) / RUNS_DIR
    if not folder.is_dir():
        return []
    runs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_RUNS]
    return [p.name for p in sorted(runs, key=lambda p: (_started(p), p.name))]


def _started(run_path: Path) -> float:
    record = read_json(run_path / PROVENANCE_NAME) or {}
    value = record.get("started_unix")
    return float(value) if isinstance(value, (int, float)) else run_path.stat().st_mtime


def published_run(bundle_root: str | os.PathLike) -> str | None:
    """The name of the run whose model is the bundle's ``models/model.pt`` (from ``models/model_card.json``)."""
    card = read_json(Path(bundle_root) / "models" / CARD_NAME) or {}
    return str(card["run"]) if card.get("run") else None


def resolve_run(bundle_root: str | os.PathLike, run: str | os.PathLike | None = None) -> Path:
    """The folder of a run given by name (under ``<bundle>/runs/``) or path; by default the published run, else the
    latest one, else (no run at all) the bundle folder itself, whose ``models/`` may hold a model from elsewhere (the
    model zoo); its ``models/`` and ``eval/`` then play the run's, and a missing model is reported by the tool that
    needs it.

    Args:
        bundle_root: the bundle folder.
        run: a run name, a run folder, or ``None``.

    Returns:
        The absolute run folder.

    Raises:
        MissingDataError: no run of that name or path; the message lists the bundle's runs.
    """
    root = Path(bundle_root).resolve()
    names = run_names(root)
    available = f"available runs: {', '.join(names)}" if names else "it has no runs yet: train one first"
    if run is None:
        published = published_run(root)
        if published and (root / RUNS_DIR / published).is_dir():
            return root / RUNS_DIR / published
        if names:
            return root / RUNS_DIR / names[-1]
        return root  # no run: the bundle's own models/ (a model from the model zoo, or nothing trained yet)
    by_name = root / RUNS_DIR / str(run)
    if not re.search(r"[/\\]", str(run)) and by_name.is_dir():
        return by_name
    as_path = Path(run).expanduser()
    if as_path.is_dir():
        return as_path.resolve()
    raise MissingDataError(f"{root / RUNS_DIR}: no run {str(run)!r} ({available}).")


def publish_run(run_path: str | os.PathLike, bundle_root: str | os.PathLike | None = None,
                models_dir: str | os.PathLike | None = None) -> Path:
    """Make a run's best model the bundle's model: copy it to ``<bundle>/models/model.pt`` (atomically) and write
    ``<bundle>/models/model_card.json`` = the run's card + ``{"run", "run_path", "published_at"}``.

    Args:
        run_path: the run folder.
        bundle_root: the bundle (default: the folder above ``runs/``).
        models_dir: the folder to publish into instead of ``<bundle>/models`` (the two-step bundle publishes its
            intermediate step to ``models/intermediate``).

    Returns:
        The published ``model.pt``.

    Raises:
        MissingDataError: the run has no ``model.pt``.
    """
    run_path = Path(run_path).resolve()
    root = Path(bundle_root).resolve() if bundle_root is not None else run_path.parent.parent
    model = find_run_file(run_path, "model.pt")
    if model is None:
        raise MissingDataError(f"{run_path}: no model.pt to publish (has this run finished an epoch?).")
    card = read_json(model.parent / CARD_NAME) or {}
    target = (Path(models_dir) if models_dir is not None else root / "models") / "model.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        shutil.copyfile(model, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fingerprint = find_run_file(run_path, FINGERPRINT_NAME)
    if fingerprint is not None:  # so that inference from the published model flags cases far from its training data
        atomic_write_text(fingerprint.read_text(), target.parent / FINGERPRINT_NAME)
    published_at = datetime.now().astimezone().isoformat(timespec="seconds")
    card.update(run=run_path.name, run_path=str(run_path), published_at=published_at)
    atomic_write_text(json.dumps(card, indent=2) + "\n", target.parent / CARD_NAME)
    return target


def delete_run(run_path: str | os.PathLike, allow_published: bool = False) -> None:
    """Delete a run folder.

    Args:
        run_path: the run folder (it must be inside a ``runs/`` folder).
        allow_published: delete it even when its model is the bundle's published model.

    Raises:
        ValueError: not a run folder, or the published run without ``allow_published``.
    """
    run_path = Path(run_path).resolve()
    if run_path.parent.name != RUNS_DIR or not run_path.is_dir():
        raise ValueError(f"{run_path}: not a run folder (runs live in <bundle>/{RUNS_DIR}/<name>).")
    if not allow_published and published_run(run_path.parent.parent) == run_path.name:
        raise ValueError(f"{run_path}: this run's model is the bundle's published models/model.pt; publish another "
                         "run first, or delete it anyway (--yes / allow_published=True).")
    shutil.rmtree(run_path)
