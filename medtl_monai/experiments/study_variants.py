"""The rows of the strategy study: a strategy, and optionally the lifting and the pretrained weights it is trained with.

A study compares *variants*: by default one per strategy; with ``liftings`` (``inflate``, ``slices``, ``acs``:
docs/lifting.md) and ``weights`` (the ``weights=`` grammar of docs/weights.md; ``none`` / ``random`` mean random
initialisation) one per strategy x lifting x weights. A dimension given with **one** value is an override of every run
(as ``--lifting acs`` or ``--weights FILE`` would be) and names nothing; a dimension with two or more values names the
rows (``truncated · slices · resnet50-proxy``) and their run folders (``truncated__lifting-slices__weights-random``),
so a study that varies nothing has the strategy names and ``runs/<strategy>/`` folders it always had, and a study is
resumed as long as it is run again with the same options.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..networks import LIFTINGS
from ..training import strategy_names

__all__ = ["RANDOM_WEIGHTS", "SLICE_ONLY_DEFAULTS", "Variant", "study_variants", "weights_label"]

#: The canonical name of "no pretrained weights" (``none``, ``null`` and ``random`` are read as it).
RANDOM_WEIGHTS = "random"
_RANDOM_SPELLINGS = {"none", "null", "random"}
_WEIGHTS_FILES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
#: The bundle keys only ``lifting="slices"`` reads, at the values every lifting accepts: when the lifting varies,
#: the ``inflate`` and ``acs`` rows get these, so that ``--slab 3 --aggregator attention`` configures the slices rows.
SLICE_ONLY_DEFAULTS: dict[str, Any] = {"slab": 1, "slice_stride": 1, "aggregator": "mean", "chunk_slices": None}
_VARIED = ("lifting", "weights")


def _canonical_weights(spec: str | None) -> str:
    """``random`` for the spellings of no weights (``None`` included), else the setting as given."""
    if spec is None or str(spec).strip().lower() in _RANDOM_SPELLINGS:
        return RANDOM_WEIGHTS
    return str(spec)


def weights_label(spec: str | None) -> str:
    """A weights setting in a few characters: a file becomes its name without suffix (a layout prefix is kept:
    ``medicalnet:resnet_50``), ``none`` / ``random`` becomes ``random``, a named or hub source stays as it is."""
    spec = _canonical_weights(spec)
    head, sep, rest = spec.partition(":")
    prefix, path = (head + sep, rest) if sep and len(head) > 1 and "/" not in head and "\\" not in head else ("", spec)
    if path.lower().endswith(_WEIGHTS_FILES):
        return prefix + PurePath(path).stem
    return spec


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


@dataclass(frozen=True)
class Variant:
    """One row of the study: what its runs train.

    Attributes:
        strategy: the strategy's registry name.
        lifting: the ``lifting`` override of its runs (``None``: the bundle's).
        weights: its ``weights`` setting (``random`` for random initialisation; ``None``: the bundle's).
        varied: which of ``"lifting"``, ``"weights"`` take several values in the study: those name the row and its
            run folder.
    """

    strategy: str
    lifting: str | None = None
    weights: str | None = None
    varied: tuple[str, ...] = ()

    def _part(self, dim: str) -> str:
        return str(self.lifting) if dim == "lifting" else weights_label(self.weights)

    @property
    def label(self) -> str:
        """The row's name: the strategy, then each varied setting (``truncated · slices · resnet50-proxy``)."""
        return " · ".join([self.strategy, *(self._part(d) for d in _VARIED if d in self.varied)])

    @property
    def folder(self) -> str:
        """The folder name of its runs under ``runs/``: the strategy, then ``__<setting>-<value>`` per varied setting.
        A weights file is named by its stem and the first 8 hex digits of the SHA-1 of the setting, so two files of
        one name in different folders get different run folders."""
        parts = [self.strategy]
        for dim in _VARIED:
            if dim not in self.varied:
                continue
            value = _slug(self._part(dim))
            if dim == "weights" and value != self.weights:
                value += "-" + hashlib.sha1(str(self.weights).encode()).hexdigest()[:8]
            parts.append(f"{dim}-{value}")
        return "__".join(parts)

    def overrides(self) -> dict[str, Any]:
        """The config overrides of its runs, ``strategy`` included (``weights`` ``None`` for ``random``)."""
        out: dict[str, Any] = {}
        if self.lifting is not None:
            out["lifting"] = self.lifting
            if "lifting" in self.varied and self.lifting != "slices":
                out.update(SLICE_ONLY_DEFAULTS)
        if self.weights is not None:
            out["weights"] = None if self.weights == RANDOM_WEIGHTS else self.weights
        out["strategy"] = self.strategy
        return out


def study_variants(strategies: Sequence[str] | None = None, liftings: Sequence[str] | None = None,
                   weights: Sequence[str | None] | None = None) -> list[Variant]:
    """The study's rows in table order: strategy by strategy, then lifting by lifting, then weights by weights.

    Args:
        strategies: strategy names (default: all, in the registry's order).
        liftings: ``inflate`` / ``slices`` / ``acs`` (default: the bundle's lifting).
        weights: weights settings (docs/weights.md; ``none`` / ``random``: random initialisation; default: the
            bundle's).

    Returns:
        One :class:`Variant` per combination; a dimension with one value is carried by every variant but names none.

    Raises:
        ValueError: an unknown strategy or lifting, a value given twice (``none`` and ``random`` are the same), or two
            weights settings with the same short name (two files called alike: rename one).
    """
    names = strategy_names(strategies)
    lifts = list(liftings or [])
    for lifting in lifts:
        if lifting not in LIFTINGS:
            raise ValueError(f"lifting {lifting!r} is not one of {list(LIFTINGS)} (docs/lifting.md).")
    sources = [_canonical_weights(w) for w in (weights or [])]
    if any(not source.strip() for source in sources):
        raise ValueError(f"weights {list(weights or [])}: an empty setting (a shell variable that was not set?).")
    for dim, values in (("strategies", names), ("liftings", lifts), ("weights", sources)):
        if len(set(values)) != len(values):
            raise ValueError(f"{dim} {values}: a value is given twice (none, null and random are the same weights).")
    labels: dict[str, str] = {}
    for source in sources:
        other = labels.setdefault(weights_label(source), source)
        if other != source:
            raise ValueError(f"weights {other!r} and {source!r} would both be called {weights_label(source)!r} in the "
                             "table; give the files different names.")
    varied = tuple(dim for dim, values in (("lifting", lifts), ("weights", sources)) if len(values) > 1)
    return [Variant(name, lifting, source, varied) for name in names for lifting in (lifts or [None])
            for source in (sources or [None])]
