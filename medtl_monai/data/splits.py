"""Patient-level, stratified, seeded train/validation/test splits.

All items of a patient go to the same split, so no patient is seen in training and evaluated in validation or
test. Stratification works on patients: each patient gets one stratum, the label (or, for multi-label items, the
label combination) that is most common among its items. Strata smaller than ``min_stratum`` patients are pooled
into one "rare" stratum so that combinations seen once or twice do not all fall into training. Within a stratum the
patients are shuffled and assigned by systematic sampling with a random start: the ``i``-th of ``n`` patients
goes to the split whose cumulative fraction interval contains ``(i + u) / n`` with ``u ~ U[0, 1)``, so every
split gets its share of every stratum to within one patient. This is simple label-combination stratification, not
iterative stratification; it is exact for single-label tasks and good enough for a few labels.

The TruncatedTL paper repeats experiments over three random splits; :func:`make_splits` writes them as
``datalist_split0.json``, ``datalist_split1.json``, ``datalist_split2.json``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .datalist import SPLIT_KEYS, write_datalist

__all__ = ["check_no_leakage", "make_splits", "patient_split"]


def _stratum(label: Any) -> Hashable:
    if isinstance(label, (list, tuple)):
        return tuple(int(v) for v in label)
    return label


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def patient_split(
    items: Sequence[Mapping[str, Any]],
    *,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    stratify: bool = True,
    patient_key: str = "patient_id",
    label_key: str = "label",
    min_stratum: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Split items into training, validation and test sets by patient, stratified by label, reproducibly.

    Args:
        items: datalist items; an item without ``patient_key`` is its own patient (its ``id``).
        fractions: fractions of patients for training, validation, test (zeros allowed).
        seed: seed of the shuffle; the same seed gives the same split.
        stratify: stratify on the patients' labels (label combinations for multi-hot labels).
        label_key: key of the label in the items.
        patient_key: key of the patient id in the items.
        min_stratum: strata with fewer patients are pooled; default ``ceil(1 / smallest non-zero fraction)``.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}`` with items in their input order.

    Raises:
        ValueError: for bad fractions or an item without patient id and id.
    """
    fr = _check_fractions(fractions)
    bounds = np.cumsum(fr)
    bounds[-1] = 1.0 + 1e-9
    if min_stratum is None:
        min_stratum = math.ceil(1.0 / min(f for f in fr if f > 0))

    patients: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        pid = item.get(patient_key) or item.get("id")
        if pid is None:
            raise ValueError(f"item {i} has neither {patient_key!r} nor 'id': {dict(item)}")
        patients.setdefault(str(pid), []).append(i)

    strata: dict[Hashable, list[str]] = {}
    for pid, idx in patients.items():
        if stratify:
            counts = Counter(_stratum(items[i][label_key]) for i in idx)
            best = max(counts.values())
            key = min((k for k, c in counts.items() if c == best), key=repr)
        else:
            key = "all"
        strata.setdefault(key, []).append(pid)
    pooled: dict[Hashable, list[str]] = {}
    for key in sorted(strata, key=repr):
        target = key if len(strata[key]) >= min_stratum else ("__rare__",)
        pooled.setdefault(target, []).extend(strata[key])

    rng = np.random.default_rng(seed)
    which: dict[str, int] = {}
    for key in sorted(pooled, key=repr):
        members = sorted(pooled[key])
        order = rng.permutation(len(members))
        start = rng.random()
        for rank, j in enumerate(order):
            which[members[j]] = int(np.searchsorted(bounds, (rank + start) / len(members), side="right"))

    split_of = {i: which[pid] for pid, idx in patients.items() for i in idx}
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in SPLIT_KEYS}
    for i, item in enumerate(items):
        out[SPLIT_KEYS[split_of[i]]].append(dict(item))
    return out


def check_no_leakage(splits: Mapping[str, Sequence[Mapping[str, Any]]], *, patient_key: str = "patient_id") -> None:
    """Check that no patient appears in two splits.

    Args:
        splits: lists of items by split name.
        patient_key: key of the patient id (falls back on ``id``).

    Raises:
        ValueError: naming a patient found in two splits.
    """
    owner: dict[str, str] = {}
    for name, split_items in splits.items():
        for item in split_items:
            pid = str(item.get(patient_key) or item.get("id"))
            if owner.setdefault(pid, name) != name:
                raise ValueError(f"patient {pid!r} is in both {owner[pid]!r} and {name!r}")


def make_splits(
    items: Sequence[Mapping[str, Any]],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    output_dir: str | PathLike | None = None,
    class_names: Sequence[str] | None = None,
    prefix: str = "datalist_split",
    **write_kwargs: Any,
) -> list[dict[str, list[dict[str, Any]]]]:
    """Make one patient-level stratified split per seed and optionally write ``<prefix><k>.json`` for each.

    Args:
        items: datalist items.
        seeds: one seed per split.
        fractions: fractions of patients for training, validation, test.
        output_dir: folder for the JSON files; ``None`` writes nothing.
        class_names: classes in index order (required to write).
        prefix: file name prefix; the k-th split (k = 0, 1, ...) is ``<prefix><k>.json``.
        write_kwargs: passed to :func:`~medtl_monai.data.datalist.write_datalist` (``modality``, ``multi_label``...).

    Returns:
        the splits, in seed order.

    Raises:
        ValueError: if ``output_dir`` is given without ``class_names``, or if a split leaks a patient.
    """
    if output_dir is not None and class_names is None:
        raise ValueError("class_names are required to write datalists")
    extra = dict(write_kwargs.pop("extra", None) or {})
    results = []
    for k, seed in enumerate(seeds):
        split = patient_split(items, fractions=fractions, seed=seed)
        check_no_leakage(split)
        if output_dir is not None:
            meta = {"split_seed": int(seed), "split_fractions": list(fractions), **extra}
            names = list(class_names or ())
            write_datalist(Path(output_dir) / f"{prefix}{k}.json", split, class_names=names, extra=meta, **write_kwargs)
        results.append(split)
    return results
