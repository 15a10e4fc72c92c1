"""Gather what the error report needs from a bundle: its trained network, its evaluation preprocessing, its
datalist and its predictions, by parsing the bundle's own configs (so ``--dataset_dir``, ``--image_size``, an
``xray.json`` override... mean the same as for ``monai.bundle run``).

The configs are read, not run: the keys used are ``network_def``, ``validate#preprocessing``, ``class_names``,
``datalist``, ``ckpt_dir`` and ``output_dir`` of ``train.json`` (and of any override files given).
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from medtl_monai.bundle import load_split, require_file

from .report import error_report

__all__ = ["BundleParts", "parse_override", "load_bundle_parts", "bundle_error_report"]

logger = logging.getLogger("medtl_monai.visualize")

SPLITS = ("test", "validation", "training")


@dataclass
class BundleParts:
    """What :func:`load_bundle_parts` returns.

    Attributes:
        network: the ``network_def`` with the trained weights loaded, in eval mode.
        transform: the evaluation preprocessing (``validate#preprocessing``).
        items: items of every split of the datalist (ids are unique across splits).
        class_names: class names.
        output_dir: the bundle's evaluation folder (``output_dir``).
        checkpoint: the weights file loaded.
    """

    network: nn.Module
    transform: Any
    items: list[dict]
    class_names: list[str]
    output_dir: Path
    checkpoint: Path


def parse_override(value: str) -> Any:
    """A command-line value as the bundle runner would take it: JSON / Python literal, else the string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(value)
        except (ValueError, SyntaxError):
            continue
    return value


def _config_paths(bundle: Path, config_files: Sequence[str | os.PathLike]) -> list[str]:
    paths = [bundle / "configs" / "train.json"]
    for name in config_files:
        path = Path(name)
        paths.append(path if path.is_file() else bundle / "configs" / path)
    for path in paths:
        require_file(path, "is this a bundle folder (with configs/train.json)?")
    return [str(p) for p in paths]


def _state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("network", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            return state[key]
    return state


def load_bundle_parts(
    bundle: str | os.PathLike,
    config_files: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> BundleParts:
    """Parse a bundle's ``train.json`` (+ override files) and build what the report needs.

    Args:
        bundle: the bundle folder (holding ``configs/``).
        config_files: override files applied after ``train.json`` (a name in ``configs/`` or a path), e.g.
            ``["xray.json"]``.
        overrides: config keys to set, e.g. ``{"dataset_dir": "/data", "image_size": [32, 32, 16]}``.
        checkpoint: weights to load (default ``<ckpt_dir>/model.pt``).

    Returns:
        A :class:`BundleParts`.

    Raises:
        MissingDataError: a config, the checkpoint or the datalist does not exist.
    """
    from monai.bundle import ConfigParser

    root = Path(bundle).resolve()
    parser = ConfigParser()
    parser.read_config(_config_paths(root, config_files))
    parser["bundle_root"] = str(root)
    if "weights" in parser.get() and "weights" not in (overrides or {}):
        parser["weights"] = None  # the checkpoint replaces them: no need to read (or download) ImageNet weights
    for key, value in (overrides or {}).items():
        parser[key] = value
    parser.parse()
    ckpt = Path(checkpoint) if checkpoint else Path(parser.get_parsed_content("ckpt_dir")) / "model.pt"
    require_file(ckpt, "train the bundle first (configs/train.json)")
    quiet = logging.getLogger("medtl_monai.networks")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the "random initialisation" warning is moot: trained weights follow
    try:
        network = parser.get_parsed_content("network_def")
    finally:
        quiet.setLevel(level)
    network.load_state_dict(_state_dict(ckpt), strict=True)
    network = network.to(parser.get_parsed_content("device")).eval()
    datalist = parser.get_parsed_content("datalist")
    doc = json.loads(Path(require_file(datalist, "pass --dataset_dir or --datalist")).read_text())
    items = [item for split in SPLITS if doc.get(split) for item in load_split(datalist, split)]
    return BundleParts(
        network=network,
        transform=parser.get_parsed_content("validate#preprocessing"),
        items=items,
        class_names=list(parser.get_parsed_content("class_names")),
        output_dir=Path(parser.get_parsed_content("output_dir")),
        checkpoint=ckpt,
    )


def bundle_error_report(
    bundle: str | os.PathLike,
    config_files: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
    *,
    predictions: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    **report_options: Any,
) -> Path:
    """Write the error report of a bundle's evaluation (``scripts/error_report.py``).

    Args:
        bundle: the bundle folder.
        config_files: override files after ``train.json`` (e.g. ``["xray.json"]`` for the X-ray model).
        overrides: config keys to set (``dataset_dir``, ``image_size``...).
        predictions: the evaluation's CSV (default ``<output_dir>/predictions.csv``).
        output_dir: report folder (default ``<output_dir>/report``).
        report_options: passed to :func:`medtl_monai.visualize.report.error_report` (``threshold``, ``n_correct``,
            ``max_cases``, ``cam_method``, ``cam_layers``, ``channel``).

    Returns:
        The path of ``report.html``.
    """
    parts = load_bundle_parts(bundle, config_files, overrides)
    csv_path = Path(predictions) if predictions else parts.output_dir / "predictions.csv"
    require_file(csv_path, "evaluate the bundle first (configs/evaluate.json)")
    return error_report(
        csv_path,
        Path(output_dir) if output_dir else parts.output_dir / "report",
        items=parts.items,
        network=parts.network,
        transform=parts.transform,
        title=f"Error analysis: {Path(bundle).resolve().name}",
        **report_options,
    )
