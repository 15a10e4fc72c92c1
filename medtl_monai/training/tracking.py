"""Experiment tracking with MLflow beside MONAI's own ``--tracking mlflow``.

``python -m monai.bundle run --config_file .../train.json --tracking mlflow`` adds MONAI's ``MLFlowHandler`` to the
trainer and the validator (``monai.bundle.utils.DEFAULT_MLFLOW_SETTINGS``; the bundles set its ``tracking_uri``,
``experiment_name`` and ``run_name``): it creates the MLflow run and logs the losses and validation metrics of every
epoch, ``max_epochs`` and ``epoch_length``. What it cannot log from the command line, the run's settings and the
files that say how the run was made, :class:`MLflowRunRecord` adds to that same MLflow run: the settings as params,
the config hash and provenance highlights as tags, ``config.json`` and ``provenance.json`` (and at the end
``models/metrics.json``) as artifacts. It never creates a database, an experiment or a run: without
``--tracking mlflow`` (or without the ``mlflow`` package, ``pip install medtl-monai[tracking]``) it does nothing.

:func:`log_mlflow_run` records a finished piece of work that no engine ran (a cut-search candidate) as an MLflow run
of its own; :func:`find_mlflow_run` finds a tracked run by name (the study adds the test metrics to it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from monai.utils import optional_import, path_to_uri

from .checkpointer import is_writer

__all__ = ["MLflowRunRecord", "find_mlflow_run", "flatten_params", "log_mlflow_run", "sqlite_store_path"]

logger = logging.getLogger("medtl_monai.training")

Events, _ = optional_import("ignite.engine", name="Events")

#: longest param or tag value written (longer ones are cut, ending in "...")
MAX_VALUE_CHARS = 500
#: provenance fields (dotted, as :func:`flatten_params` writes them) copied into tags, prefixed ``provenance.``
PROVENANCE_TAGS: tuple[str, ...] = (
    "started", "config_hash", "git.commit", "git.dirty", "packages", "python", "device.device", "device.cuda_name",
    "weights.kind", "weights.path", "weights.sha256", "datalist.path", "datalist.sha256", "datalist.counts",
)
_SQLITE = "sqlite:///"
_MLFLOW_HINT = "the mlflow package is needed for experiment tracking: pip install 'medtl-monai[tracking]'"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as flat MLflow params: dotted keys, values as text of at most :data:`MAX_VALUE_CHARS`.

    An object that keeps its own arguments as a ``config`` mapping (``Preprocessing``, ``TransferClassifier``) is
    written as that mapping; lists, ``None`` and numbers as JSON.

    Args:
        values: the settings.
        prefix: prepended to every key (with a dot).

    Returns:
        ``{"arch": "resnet50", "image_size": "[32, 32, 16]", "preprocessing.kind": "ct", ...}``.
    """
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(value, Mapping) and isinstance(getattr(value, "config", None), Mapping):
            value = value.config
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
        else:
            flat[name] = _text(value)
    return flat


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (``monai.utils.path_to_sqlite_uri``), else ``None``."""
    return Path(unquote(tracking_uri[len(_SQLITE):])) if tracking_uri.startswith(_SQLITE) else None


def _effective_uri(tracking_uri: str | None) -> str | None:
    """The URI MONAI's ``MLFlowHandler`` uses: ``MLFLOW_TRACKING_URI`` when set, else the config's."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri or None


def find_mlflow_run(tracking_uri: str | None, experiment_name: str, run_name: str, *,
                    started_after: float | None = None) -> tuple[Any, Any] | None:
    """The MLflow run named ``run_name`` of an experiment, when tracking has created one; creates nothing.

    Args:
        tracking_uri: the tracking URI (``MLFLOW_TRACKING_URI`` takes priority, as in MONAI's handler).
        experiment_name: the experiment.
        run_name: the run's name.
        started_after: accept only a run still running or started at or after this time (seconds since the epoch),
            so that an older, finished run of the same name is left alone; ``None``: the latest run of that name.

    Returns:
        ``(mlflow.MlflowClient, mlflow.entities.Run)``, or ``None``: no ``mlflow`` package, no SQLite database file,
        no such experiment or no such run.
    """
    uri = _effective_uri(tracking_uri)
    store = sqlite_store_path(uri) if uri else None
    if uri is None or (store is not None and not store.is_file()):
        return None
    mlflow, has_mlflow = optional_import("mlflow")
    if not has_mlflow:
        return None
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = [r for r in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                          max_results=5000) if r.info.run_name == run_name]
    if started_after is not None:
        runs = [r for r in runs if r.info.status == "RUNNING" or r.info.start_time >= 1000 * started_after]
        runs.sort(key=lambda r: r.info.status != "RUNNING")  # a running one first, then the latest
    return (client, runs[0]) if runs else None


def _log_params_and_tags(client: Any, run_id: str, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
    """Log params (skipping those the run already has; MLflow params cannot change) and tags, 100 at a time."""
    from mlflow.entities import Param, RunTag

    logged = client.get_run(run_id).data.params
    changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
    if changed:
        logger.warning("MLflow run %s already has other values for %s; kept them.", run_id, ", ".join(changed))
    todo = [Param(k, v) for k, v in params.items() if k not in logged]
    tag_list = [RunTag(k, _text(v)) for k, v in tags.items()]
    for i in range(0, max(len(todo), len(tag_list)), 100):
        client.log_batch(run_id, params=todo[i:i + 100], tags=tag_list[i:i + 100])


def _provenance_tags(path: Path) -> dict[str, str]:
    """The :data:`PROVENANCE_TAGS` fields of a run's ``provenance.json`` (empty when it is missing)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    flat = flatten_params(record) if isinstance(record, Mapping) else {}
    return {f"provenance.{k}": v for k, v in flat.items()
            if any(k == field or k.startswith(field + ".") for field in PROVENANCE_TAGS)}


class MLflowRunRecord:
    """Record a training run's settings, config hash, provenance and files in the MLflow run that MONAI's
    ``--tracking mlflow`` made for it; a no-op when the run is not tracked.

    It finds the MLflow run by name (:func:`find_mlflow_run`: the ``mlflow`` package, the SQLite file of
    ``tracking_uri`` and a run ``run_name`` of ``experiment_name`` that is running or started with this training
    must all exist) and never creates one. MONAI's ``MLFlowHandler`` creates the run when the trainer starts, after
    this handler's place in ``train#handlers``, so the record is written at the end of the first epoch (or at the
    end of a training that ran no epoch); ``models/metrics.json`` (the best validation metrics) is added at the end.
    Only the writing process of a distributed training records. Tracking never fails a training: an error is
    logged as a warning.

    Args:
        tracking_uri: the MLflow tracking URI (the bundles' ``tracking_uri``: ``<bundle>/mlruns.db``).
        experiment_name: the MLflow experiment (the bundles' ``experiment_name``).
        run_name: the run's name (the bundles' ``run_name``, also the run folder's name).
        run_dir: the run folder, whose files are recorded.
        settings: the settings logged as params (nested mappings are flattened with dots).
        artifacts: files of ``run_dir`` recorded with the params (missing ones are skipped).
        final_artifacts: files of ``run_dir`` recorded when the training completes.
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment_name: str,
        run_name: str,
        run_dir: str | os.PathLike,
        settings: Mapping[str, Any] | None = None,
        artifacts: Sequence[str] = ("config.json", "provenance.json"),
        final_artifacts: Sequence[str] = ("models/metrics.json",),
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = str(experiment_name)
        self.run_name = str(run_name)
        self.run_dir = Path(run_dir)
        self.settings = dict(settings or {})
        self.artifacts = tuple(artifacts)
        self.final_artifacts = tuple(final_artifacts)
        self.started: float | None = None
        self.recorded_run_id: str | None = None
        self._looked = False

    def attach(self, engine: Any) -> None:
        """Record at the first epoch ``engine`` (a trainer) completes, or at its end when it runs no epoch (a resumed
        training already done), and add the final files at its end."""
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.EPOCH_COMPLETED | Events.COMPLETED, self.record)
        engine.add_event_handler(Events.COMPLETED, self.finish)

    def start(self, engine: Any = None) -> None:
        """Remember when the training started (an older finished run of the same name is not this training's)."""
        self.started = time.time() - 1.0
        self.recorded_run_id, self._looked = None, False

    def _run(self) -> tuple[Any, Any] | None:
        return find_mlflow_run(self.tracking_uri, self.experiment_name, self.run_name, started_after=self.started)

    def record(self, engine: Any = None) -> str | None:
        """Log the params, tags and :attr:`artifacts` into the tracked run; only the first call of a training looks
        for the run (MONAI's handler creates it when the trainer starts, or never).

        Returns:
            The MLflow run id, or ``None`` when the run is not tracked (or this process does not write).
        """
        if self._looked or not is_writer():
            return self.recorded_run_id
        self._looked = True
        try:
            found = self._run()
            if found is None:
                return None
            client, run = found
            run_id = run.info.run_id
            tags = {"run_dir": str(self.run_dir), **_provenance_tags(self.run_dir / "provenance.json")}
            if "provenance.config_hash" in tags:
                tags["config_hash"] = tags["provenance.config_hash"]
            _log_params_and_tags(client, run_id, flatten_params(self.settings), tags)
            for name in self.artifacts:
                if (self.run_dir / name).is_file():
                    client.log_artifact(run_id, str(self.run_dir / name), artifact_path=_folder(name))
            self.recorded_run_id = run_id
            return run_id
        except Exception as err:  # tracking never stops a training
            logger.warning("MLflow run %r: could not record the run's settings and files: %s: %s", self.run_name,
                           type(err).__name__, err)
            return None

    def finish(self, engine: Any = None) -> None:
        """Log the :attr:`final_artifacts` (the best validation metrics) into the tracked run."""
        if self.recorded_run_id is None or not is_writer():
            return
        try:
            found = self._run()
            client = found[0] if found else None
            for name in self.final_artifacts:
                if client is not None and (self.run_dir / name).is_file():
                    client.log_artifact(self.recorded_run_id, str(self.run_dir / name), artifact_path=_folder(name))
        except Exception as err:  # tracking never stops a training
            logger.warning("MLflow run %r: could not record the final files: %s: %s", self.run_name,
                           type(err).__name__, err)


def _folder(name: str) -> str | None:
    """The artifact folder of a file given relative to the run folder (``models/metrics.json`` -> ``models``)."""
    parent = Path(name).parent.as_posix()
    return None if parent in ("", ".") else parent


def log_mlflow_run(
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float | Sequence[float]] | None = None,
    tags: Mapping[str, Any] | None = None,
    artifacts: Sequence[str | os.PathLike] = (),
) -> str:
    """Record a finished piece of work as a new MLflow run (creating the experiment, and the SQLite database, when
    missing; artifacts of a SQLite store go to ``mlruns/`` beside the database, as with MONAI's handler).

    Args:
        tracking_uri: the tracking URI (``MLFLOW_TRACKING_URI`` takes priority).
        experiment_name: the experiment (created when missing).
        run_name: the new run's name.
        params: logged with :func:`flatten_params`.
        metrics: a value, or a sequence of values logged as steps 0, 1, ... (e.g. one per fold).
        tags: run tags.
        artifacts: files to attach.

    Returns:
        The new run's id.

    Raises:
        ImportError: the ``mlflow`` package is not installed.
    """
    mlflow, has_mlflow = optional_import("mlflow")
    if not has_mlflow:
        raise ImportError(_MLFLOW_HINT)
    from mlflow.entities import Metric

    uri = _effective_uri(tracking_uri)
    store = sqlite_store_path(uri)
    if store is not None:
        store.parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = path_to_uri(store.parent / "mlruns") if store is not None else None
        experiment_id = client.create_experiment(experiment_name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    now = int(time.time() * 1000)
    values = [Metric(key, float(v), now, step) for key, series in (metrics or {}).items()
              for step, v in enumerate(series if isinstance(series, Sequence) else [series])]
    for i in range(0, len(values), 1000):
        client.log_batch(run_id, metrics=values[i:i + 1000])
    _log_params_and_tags(client, run_id, flatten_params(params or {}), {k: str(v) for k, v in (tags or {}).items()})
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id
