"""Provenance of a training run: which code, packages, device, command, weights and data produced it.

:func:`provenance_record` gathers, and :func:`write_provenance` writes into a run folder, the answers a reader needs
months later to say exactly what produced a number: package versions, the git commit (and whether the working tree
had uncommitted changes) of the repository the package lives in, the device, the command line, the pretrained
weights (path, SHA-256 and what they are), the datalist (path, SHA-256, cases per split) and the data fingerprint a
data check left in the run folder. Nothing here fails a training: facts that cannot be found are ``None``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..data import SPLIT_KEYS
from ..networks import CHECKPOINT_WEIGHTS, FAMILIES
from ..networks.sources import describe_weights, parse_weights_spec
from ..training import atomic_write_text

__all__ = [
    "FINGERPRINT_NAME",
    "PACKAGES",
    "PROVENANCE_NAME",
    "datalist_record",
    "device_record",
    "file_sha256",
    "fingerprint_record",
    "git_state",
    "package_versions",
    "provenance_record",
    "weights_kind",
    "weights_record",
    "write_provenance",
]

#: file name of the provenance record in a run folder
PROVENANCE_NAME = "provenance.json"
#: file name of the data fingerprint a data check writes into a run folder
FINGERPRINT_NAME = "data_fingerprint.json"
#: distributions whose versions are recorded
PACKAGES = ("medtl-monai", "monai", "torch", "pytorch-ignite", "numpy", "pydicom", "itk", "nibabel")

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks; cached by resolved path, modification time and size.

    Args:
        path: the file.
        chunk_size: bytes read at a time.

    Returns:
        The hex digest.

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                digest.update(chunk)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the given distributions (``None`` for one that is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], check=False, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(package_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The git commit of the repository a package folder is checked out in, and whether its tree is dirty.

    An installed copy of the package (in ``site-packages``) is not a checkout even when a repository encloses the
    environment: the repository's top level must be the package folder's parent.

    Args:
        package_dir: the package folder; default: this package's.

    Returns:
        ``{"commit": hex or None, "dirty": bool or None, "repository": path or None}`` (all ``None`` outside a git
        checkout, or without git).
    """
    folder = Path(package_dir).resolve() if package_dir is not None else _PACKAGE_DIR
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != folder.parent:
        return {"commit": None, "dirty": None, "repository": None}
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": _git(folder, "rev-parse", "HEAD"), "dirty": None if status is None else bool(status),
            "repository": top}


def device_record(device: str | torch.device | None = None) -> dict[str, Any]:
    """The device a run trains on: torch device, CUDA device name (if any), CPU count, torch threads."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    cuda_name = None
    if device.type == "cuda" and torch.cuda.is_available():
        cuda_name = torch.cuda.get_device_name(device.index or 0)
    return {"device": str(device), "cuda_name": cuda_name, "cuda_version": torch.version.cuda,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def _official_weight_files() -> set[str]:
    return {spec.weights_file for spec in FAMILIES.values()}


def weights_kind(weights: str | os.PathLike | None, init_from: str | os.PathLike | None = None) -> str:
    """What a run's starting weights are.

    Args:
        weights: the ``weights`` setting: ``None`` (random), ``"imagenet"``, ``"checkpoint"`` or a file path.
        init_from: the ``init_from`` setting (a previous run's ``model.pt``), which overrides ``weights``.

    Returns:
        ``"previous_run"`` (``init_from`` given), ``"random"`` (no weights), ``"imagenet"`` (``"imagenet"`` or a
        file with torchvision's official name), ``"proxy"`` (a file with a proxy-pretraining sidecar
        ``<file>.json``, or "proxy" in its name), ``"checkpoint"`` (trained weights loaded afterwards), ``"hub"``
        (a named source or hub name of the ``weights=`` grammar, found by the network: ``"medicalnet"``,
        ``"timm/..."``) or ``"file"`` (any other weights file).
    """
    if init_from not in (None, ""):
        return "previous_run"
    if weights is None or str(weights) == "":
        return "random"
    text = str(weights).strip()
    if text.lower() == "imagenet" or Path(text).name in _official_weight_files():
        return "imagenet"
    if text.lower() == CHECKPOINT_WEIGHTS:
        return "checkpoint"
    try:
        if parse_weights_spec(text).kind != "file":
            return "hub"
    except ValueError:
        pass
    sidecar = Path(text).with_name(Path(text).name + ".json")
    if "proxy" in Path(text).name.lower() or (sidecar.is_file() and "proxy" in sidecar.read_text().lower()):
        return "proxy"
    return "file"


def _weights_file(setting: str) -> Path | None:
    """The local file a ``weights`` setting names directly (a path, or ``<layout>:<path>``), if it exists."""
    try:
        source = parse_weights_spec(setting)
    except ValueError:
        return None
    path = source.path if source.kind == "file" else None
    return path.expanduser().resolve() if path is not None and path.is_file() else None


def weights_record(weights: str | os.PathLike | None, init_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Path, SHA-256, kind (:func:`weights_kind`) and source of a run's starting weights.

    The path is ``init_from`` when given, else the file ``weights`` names when it names one (a path, or
    ``<layout>:<path>``; ``"imagenet"`` and hub names are looked up by the network, which records the path it read);
    the SHA-256 is ``None`` when there is no file. ``source_layout``, ``source_domain`` and ``source_licence`` say
    what the pretrained weights are (:func:`~medtl_monai.networks.sources.describe_weights`; ``None`` for random
    initialisation and for ``init_from``, whose own run records them).
    """
    kind = weights_kind(weights, init_from)
    source = init_from if kind == "previous_run" else weights
    path: Path | None = None
    if kind == "previous_run" and Path(str(source)).expanduser().is_file():
        path = Path(str(source)).expanduser().resolve()
    elif source not in (None, "") and kind not in ("checkpoint", "previous_run"):
        path = _weights_file(str(source))
    described = describe_weights(None if kind in ("previous_run", "random") else weights)
    if kind == "proxy":
        described.update(source_domain="proxy-domain pretraining of this project (see the file's .json sidecar)",
                         source_licence="this project's own weights")
    return {"setting": None if source is None else str(source), "kind": kind,
            "path": None if path is None else str(path),
            "sha256": None if path is None else file_sha256(path), **described}


def datalist_record(datalist: str | os.PathLike | None) -> dict[str, Any] | None:
    """Path, SHA-256 and number of cases per split of a datalist JSON (``None`` for no datalist).

    A datalist that cannot be read gives its path and an ``error`` instead of failing.
    """
    if datalist in (None, ""):
        return None
    path = Path(datalist).expanduser().resolve()
    try:
        doc = json.loads(path.read_text())
        counts = {key: len(doc.get(key) or []) for key in SPLIT_KEYS}
        return {"path": str(path), "sha256": file_sha256(path), "counts": counts}
    except (OSError, ValueError, AttributeError) as err:
        return {"path": str(path), "sha256": None, "counts": None, "error": f"{type(err).__name__}: {err}"}


def fingerprint_record(run_path: str | os.PathLike | None,
                       fingerprint: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """Path, SHA-256 and content of the data fingerprint of a run (``None`` when there is none).

    Args:
        run_path: the run folder, searched for ``data_fingerprint.json`` at its top and in ``models/`` (beside
            ``model.pt``, where the data check writes it).
        fingerprint: an explicit fingerprint file, used instead of the search.
    """
    if fingerprint is not None:
        candidates = [Path(fingerprint)]
    elif run_path is not None:
        candidates = [Path(run_path) / FINGERPRINT_NAME, Path(run_path) / "models" / FINGERPRINT_NAME]
    else:
        candidates = []
    for path in candidates:
        if path.is_file():
            try:
                content = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                content = {"error": f"{path}: {err}"}
            return {"path": str(path.resolve()), "sha256": file_sha256(path), "content": content}
    return None


def provenance_record(
    *,
    weights: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    datalist: str | os.PathLike | None = None,
    run_path: str | os.PathLike | None = None,
    fingerprint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    config_hash: str | None = None,
    argv: Sequence[str] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Everything needed to say what produced a run, as a JSON-ready dict.

    Args:
        weights: the ``weights`` setting of the run.
        init_from: the ``init_from`` setting (a previous run's model).
        datalist: the datalist JSON.
        run_path: the run folder; its ``data_fingerprint.json`` (when present) is included.
        fingerprint: the data fingerprint file, when it is elsewhere (see :func:`fingerprint_record`).
        device: the training device (default: CUDA when available, else CPU).
        config_hash: :func:`~medtl_monai.bundle.config_hash` of the resolved config.
        argv: the command line (default ``sys.argv``).
        started: start time as seconds since the epoch (default: now).

    Returns:
        ``{"run", "started", "started_unix", "command", "config_hash", "packages", "git", "device", "python",
        "weights", "datalist", "data_fingerprint"}``.
    """
    started = time.time() if started is None else float(started)
    return {
        "run": None if run_path is None else Path(run_path).name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "started_unix": started,
        "command": list(sys.argv if argv is None else argv),
        "config_hash": config_hash,
        "packages": package_versions(),
        "git": git_state(),
        "device": device_record(device),
        "python": sys.version.split()[0],
        "weights": weights_record(weights, init_from),
        "datalist": datalist_record(datalist),
        "data_fingerprint": fingerprint_record(run_path, fingerprint),
    }


def write_provenance(path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`provenance_record` as JSON, atomically.

    Args:
        path: the file, or a run folder (a path not ending in ``.json``: then ``<folder>/provenance.json``, and the
            folder is the ``run_path``).
        kwargs: :func:`provenance_record` arguments.

    Returns:
        The written file.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".json":
        kwargs.setdefault("run_path", path)
        path = path / PROVENANCE_NAME
    return atomic_write_text(json.dumps(provenance_record(**kwargs), indent=2) + "\n", path)
