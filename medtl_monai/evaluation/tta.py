"""Test-time augmentation (TTA) for classification: the views a model saw in training, averaged probabilities, and
the effect on the test metrics with its uncertainty.

**Which views.** A view is a deterministic geometric transform of the preprocessed input. :func:`tta_views` derives
them from the *training augmentation* of the model's preprocessing kind (by default the factory the bundles use:
:func:`~medtl_monai.transforms.ct_train_augmentation`, :func:`~medtl_monai.transforms.xray_train_augmentation`,
:func:`~medtl_monai.transforms.rgb_train_augmentation`), so that every view is one the model was trained on and one
the anatomy allows:

- **flips and quarter turns**: every element of the group that the training's ``RandFlipd`` axes and
  ``RandRotate90d`` turns generate (all eight symmetries of the square for photographs, which flip both ways and
  turn); none for CT and radiographs, whose training never flips (a left-right flip shows a situs inversus; see
  :mod:`medtl_monai.transforms.augment`) unless it was built with ``flip_lr=True``;
- **integer shifts** of ``fraction`` (default half) of the training's translate range along each axis it translates,
  both ways (radiographs: ±5 pixels along rows and along columns), filled as training pads (radiographs repeat their
  edge; CT is filled with air), never wrapped around;
- **in-plane rotations** of ``fraction`` of the training's main rotation, both ways: about the cranio-caudal axis for
  CT (the axial plane, spatial axes 0 and 1 of ``(B, C, AP, LR, SI)``; ±5° for the default ±10°), in the image plane
  for radiographs. CT is otherwise left unchanged by TTA: its training neither flips nor translates. The small tilts
  of CT training (±3°) and the scalings are left out: they move a voxel by less than the in-plane rotation does,
  and each view costs a full forward pass.

The default views are: CT ``identity, rotate-5, rotate+5``; X-ray ``identity``, four 5-pixel shifts,
``rotate-5, rotate+5``; RGB the identity and the seven other symmetries of the square. Intensity jitter and noise
are not views (their mean effect is the identity).

**How they are combined.** :class:`TTAInferer` runs the network on every view (the identity first), averages the
*probabilities* (softmax, or sigmoid for multi-label outputs), and returns logits whose softmax (sigmoid) is that
mean, ``log(mean p)`` (``logit(mean p)``), so a bundle's postprocessing is the same with and without TTA
(Shanmugam et al., "Better Aggregation in Test-Time Augmentation", ICCV 2021, on averaging probabilities; Wang et al.,
"Aleatoric uncertainty estimation with test-time augmentation for medical image segmentation", Neurocomputing 2019,
on TTA in medical imaging). :func:`tta_inferer` is the factory a bundle config calls (``SimpleInferer`` when off).

**Its effect.** :class:`TTAEffectWriter` pairs every case's probabilities without TTA (the identity view, which the
inferer keeps) and with it, and writes ``tta_effect.json``: AUROC of both with DeLong's test (DeLong et al. 1988),
and the paired bootstrap difference of AUROC, sensitivity, specificity and Brier score with 95% intervals (whole
patients resampled when the items carry patient ids).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Affine, RandAffined, RandFlipd, RandRotate90d
from monai.utils import ensure_tuple

from ..transforms import (
    AirPaddedRandAffined,
    air_values,
    ct_train_augmentation,
    rgb_train_augmentation,
    xray_train_augmentation,
)
from ..utils import as_bool
from .bootstrap import paired_bootstrap_test, resampling_method
from .delong import delong_test
from .predictions import _write_atomically

__all__ = ["TTA_EFFECT_METRICS", "TTAEffectWriter", "TTAInferer", "TTAView", "tta_effect", "tta_inferer", "tta_views"]

logger = logging.getLogger("medtl_monai.evaluation")

#: The training augmentation of each preprocessing kind, as the bundles build it, and its spatial dimensions.
_AUGMENTATIONS: dict[str, tuple[Callable[[], list], int]] = {
    "ct": (ct_train_augmentation, 3),
    "xray": (xray_train_augmentation, 2),
    "rgb": (rgb_train_augmentation, 2),
}

#: The metrics whose paired bootstrap difference :func:`tta_effect` reports.
TTA_EFFECT_METRICS: tuple[str, ...] = ("auroc", "sensitivity", "specificity", "brier")

#: Views that move a voxel by less than this (degrees, voxels) are not worth a forward pass.
_MIN_ANGLE_DEG, _MIN_SHIFT = 1.0, 1


@dataclass(frozen=True)
class TTAView:
    """One deterministic view of a batch ``(B, C, *spatial)``: flips, then quarter turns, then an integer shift,
    then an in-plane rotation.

    Attributes:
        name: what the view is (``identity``, ``flip0``, ``rot90``, ``shift0+5``, ``rotate-5``...).
        flip: spatial axes to flip.
        turns: quarter turns in the plane of spatial axes 0 and 1 (``torch.rot90``).
        shift: voxels to shift along each spatial axis (positive: towards higher indices), or ``()``.
        angle: rotation in degrees in the plane of spatial axes 0 and 1 (about the third axis for 3D), with MONAI's
            ``Affine`` (bilinear, about the centre), the convention of the training's ``RandAffined``.
        padding: how the area a shift or rotation uncovers is filled: ``"border"`` (repeat the edge),
            ``"reflection"`` or ``"constant"`` (``fill``).
        fill: the value per channel (one value for all) of ``"constant"`` padding.
    """

    name: str
    flip: tuple[int, ...] = ()
    turns: int = 0
    shift: tuple[int, ...] = ()
    angle: float = 0.0
    padding: str = "border"
    fill: tuple[float, ...] = (0.0,)

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.turns % 4 == 0 and not any(self.shift) and self.angle == 0.0

    def _fill(self, x: torch.Tensor) -> torch.Tensor:
        fill = torch.as_tensor(self.fill, dtype=x.dtype, device=x.device)
        if fill.numel() not in (1, x.shape[1]):
            raise ValueError(f"view {self.name!r}: {fill.numel()} fill values for {x.shape[1]} channels.")
        return fill.reshape(1, -1, *([1] * (x.ndim - 2)))

    def _shifted(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self.shift):
            if s == 0:
                continue
            dim, n = axis + 2, x.shape[axis + 2]
            if abs(s) >= n:
                raise ValueError(f"view {self.name!r}: a shift of {s} along an axis of {n} voxels.")
            pads = [0, 0] * (x.ndim - 2)
            pads[2 * (x.ndim - 1 - dim) + (0 if s > 0 else 1)] = abs(s)  # F.pad lists the last axis first
            mode = {"border": "replicate", "reflection": "reflect"}.get(self.padding, "constant")
            padded = F.pad(x, pads, mode=mode) if mode != "constant" else F.pad(x - self._fill(x), pads) + self._fill(x)
            x = padded.narrow(dim, 0 if s > 0 else abs(s), n)
        return x

    def _rotated(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.ndim - 2
        radians = math.radians(self.angle)
        params = radians if spatial == 2 else (0.0, 0.0, radians)
        mode = "zeros" if self.padding == "constant" else self.padding
        affine = Affine(rotate_params=params, mode="bilinear", padding_mode=mode, image_only=True)
        fill = self._fill(x) if self.padding == "constant" else torch.zeros((), dtype=x.dtype, device=x.device)
        flat = (x - fill).reshape(-1, *x.shape[2:])  # every channel of every case is turned alike: one call
        out = affine(flat)
        out = out.as_tensor() if hasattr(out, "as_tensor") else out
        return out.reshape(x.shape).to(x.dtype) + fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The view of a batch ``(B, C, *spatial)``, a new tensor of the same shape (quarter turns of a
        non-square plane swap its sides)."""
        if self.flip:
            x = torch.flip(x, [a + 2 for a in self.flip])
        if self.turns % 4:
            x = torch.rot90(x, self.turns % 4, dims=(2, 3))
        if any(self.shift):
            x = self._shifted(x)
        if self.angle:
            x = self._rotated(x)
        return x


def _kind(source: Any) -> tuple[str, Mapping[str, Any]]:
    """The preprocessing kind and settings of a model card, a card's dict, a preprocessing config or a kind."""
    if isinstance(source, str):
        return source, {}
    preprocessing = getattr(source, "preprocessing", None)
    if preprocessing is None and isinstance(source, Mapping):
        preprocessing = source.get("preprocessing", source)
    if not isinstance(preprocessing, Mapping) or "kind" not in preprocessing:
        raise TypeError(f"tta_views needs a model card, its preprocessing config or a kind, got {source!r}.")
    return str(preprocessing["kind"]), preprocessing


def _magnitude(value: Any) -> float:
    """The largest absolute value of a MONAI range entry (a number, ``(low, high)``, or None)."""
    values = [abs(float(v)) for v in ensure_tuple(value) if v is not None]
    return max(values, default=0.0)


def _per_axis(ranges: Any, spatial_dims: int) -> list[float]:
    values = [_magnitude(v) for v in ensure_tuple(ranges)] if ranges is not None else []
    return (values + [0.0] * spatial_dims)[:spatial_dims]


def _air(transform: AirPaddedRandAffined, settings: Mapping[str, Any]) -> tuple[float, ...]:
    """The value of air per channel that a CT training pads with: its own, else that of the card's windows."""
    if transform.air is not None:
        return tuple(float(v) for v in transform.air)
    windows = settings.get("windows", ("lung", "mediastinum", "bone"))  # ct_preprocessing's defaults
    return tuple(air_values(windows, settings.get("normalize", "none")))


def _symmetries(flip_axes: set[int], max_turns: int, spatial_dims: int) -> list[TTAView]:
    """The distinct elements of the group generated by flips along ``flip_axes`` and ``max_turns`` quarter turns,
    told apart by their effect on a probe with distinct values (e.g. flipping rows and columns is the half turn)."""
    probe = torch.arange(3 ** spatial_dims, dtype=torch.float32).reshape(1, 1, *([3] * spatial_dims))
    views, seen = [], set()
    turn_choices = range(4) if max_turns else [0]
    for turns in turn_choices:
        for n in range(len(flip_axes) + 1):
            for flip in itertools.combinations(sorted(flip_axes), n):
                names = [f"flip{a}" for a in flip] + ([f"rot{90 * turns}"] if turns else [])
                view = TTAView("+".join(names) or "identity", flip=flip, turns=turns)
                key = tuple(view(probe).reshape(-1).tolist())
                if key not in seen:
                    seen.add(key)
                    views.append(view)
    return views


def tta_views(source: Any, *, augmentation: Sequence[Any] | None = None, fraction: float = 0.5) -> list[TTAView]:
    """The test-time views a model's training augmentation allows (see the module notes), the identity first.

    Args:
        source: the model card (:class:`~medtl_monai.bundle.ModelCard`), its dict, its ``preprocessing`` config
            (``{"kind": "ct", ...}``), or a kind (``"ct"``, ``"xray"``, ``"rgb"``).
        augmentation: the training's random transforms (a bundle's ``augmentation_transforms``); default: the
            kind's factory with its defaults, which is what both bundles train with.
        fraction: the share of the training's translate and rotate ranges that a view shifts or rotates by.

    Returns:
        The views, the identity first, then flips and turns, shifts, rotations.

    Raises:
        ValueError: an unknown kind, or a fraction outside (0, 1].
        TypeError: a source that is neither a card, a preprocessing config nor a kind.
    """
    kind, settings = _kind(source)
    if kind not in _AUGMENTATIONS:
        raise ValueError(f"no test-time views for preprocessing kind {kind!r}; known: {sorted(_AUGMENTATIONS)}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    factory, spatial_dims = _AUGMENTATIONS[kind]
    transforms = list(factory() if augmentation is None else augmentation)
    flip_axes: set[int] = set()
    max_turns, shifts, angle, padding, fill = 0, [0.0] * spatial_dims, 0.0, "border", (0.0,)
    for t in transforms:
        if isinstance(t, RandFlipd):
            axes = t.flipper.spatial_axis
            flip_axes |= set(range(spatial_dims)) if axes is None else {int(a) for a in ensure_tuple(axes)}
        elif isinstance(t, RandRotate90d):
            if tuple(t.spatial_axes) != (0, 1):
                raise ValueError(f"RandRotate90d turns in plane {t.spatial_axes}; test-time views turn in (0, 1).")
            max_turns = max(max_turns, int(t.max_k))
        elif isinstance(t, (RandAffined, AirPaddedRandAffined)):
            affine = t.affine if isinstance(t, AirPaddedRandAffined) else t
            grid = affine.rand_affine.rand_affine_grid
            shifts = [max(a, b) for a, b in zip(shifts, _per_axis(grid.translate_range, spatial_dims))]
            rotations = _per_axis(grid.rotate_range, 1 if spatial_dims == 2 else 3)
            angle = max(angle, math.degrees(rotations[-1]))  # 2D: the one angle; 3D: about the third axis
            if isinstance(t, AirPaddedRandAffined):
                padding, fill = "constant", _air(t, settings)
            else:
                mode = str(ensure_tuple(t.padding_mode)[0])
                padding = "constant" if mode == "zeros" else mode
    views = _symmetries(flip_axes, max_turns, spatial_dims)
    for axis, limit in enumerate(shifts):
        step = round(fraction * limit)
        if step >= _MIN_SHIFT:
            for s in (-step, step):
                shift = tuple(s if a == axis else 0 for a in range(spatial_dims))
                views.append(TTAView(f"shift{axis}{s:+d}", shift=shift, padding=padding, fill=fill))
    degrees = round(fraction * angle, 2)
    if degrees >= _MIN_ANGLE_DEG:
        views += [TTAView(f"rotate{a:+g}", angle=a, padding=padding, fill=fill) for a in (-degrees, degrees)]
    return views


class TTAInferer(Inferer):
    """Run a classifier on every view of its input and return logits of the averaged probabilities.

    For single-label outputs (softmax) it returns ``log(mean_v softmax(f(v(x))))``, for multi-label outputs
    (``multi_label=True``, sigmoid) ``logit(mean_v sigmoid(f(v(x))))``, clamped to ``[eps, 1 - eps]``: the softmax
    (sigmoid) of the result is the mean probability, so postprocessing and losses take it as they take logits. The
    identity view runs first and its logits stay in :attr:`last_plain_logits` (detached) until the next call, so that
    :class:`TTAEffectWriter` can compare the two; :attr:`last_logits` holds the returned ones.

    Args:
        views: the views (:func:`tta_views`); the identity is moved first, or added when absent.
        multi_label: average sigmoid probabilities instead of softmax ones.
        eps: the clamp of the averaged probabilities.
    """

    def __init__(self, views: Sequence[TTAView], multi_label: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        views = list(views)
        identity = [v for v in views if v.is_identity][:1] or [TTAView("identity")]
        self.views = identity + [v for v in views if not v.is_identity]
        self.multi_label, self.eps = bool(multi_label), float(eps)
        self.last_plain_logits: torch.Tensor | None = None
        self.last_logits: torch.Tensor | None = None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (sigmoid with ``multi_label``) probabilities of ``(B, K)`` logits, in float32."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        """Average the probabilities of the network over the views.

        Args:
            inputs: the batch ``(B, C, *spatial)``.
            network: the classifier, giving ``(B, K)`` logits.
            args, kwargs: further arguments of the network.

        Returns:
            ``(B, K)`` float32 logits of the averaged probabilities.
        """
        x = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs
        total: torch.Tensor | None = None
        for view in self.views:
            logits = network(x if view.is_identity else view(x), *args, **kwargs)
            logits = logits.as_tensor() if hasattr(logits, "as_tensor") else logits
            if view.is_identity:
                self.last_plain_logits = logits.detach()
            probs = self.probabilities(logits)
            total = probs if total is None else total + probs
        mean = total / len(self.views)
        if self.multi_label:
            mean = mean.clamp(self.eps, 1.0 - self.eps)
            out = torch.log(mean) - torch.log1p(-mean)
        else:
            out = torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))
        self.last_logits = out.detach()
        return out


def tta_inferer(enabled: bool | str, card: Any, multi_label: bool = False, augmentation: Sequence[Any] | None = None,
                fraction: float = 0.5) -> Inferer:
    """The inferer of an evaluation or inference config: ``SimpleInferer`` without TTA, :class:`TTAInferer` with
    the views of the model's card (:func:`tta_views`) with it.

    Args:
        enabled: the ``tta`` switch (a boolean, or a word such as ``"true"`` from the command line).
        card: the model card of the model evaluated.
        multi_label: average sigmoid (not softmax) probabilities.
        augmentation: the training's random transforms; default: the kind's factory defaults.
        fraction: share of the training's shift and rotation ranges used by the views.

    Returns:
        The inferer.
    """
    if not as_bool(enabled, "tta"):
        return SimpleInferer()
    views = tta_views(card, augmentation=augmentation, fraction=fraction)
    logger.info("test-time augmentation with %d views: %s", len(views), ", ".join(v.name for v in views))
    return TTAInferer(views, multi_label=multi_label)


def _delong(labels: np.ndarray, plain: np.ndarray, tta: np.ndarray) -> dict[str, Any]:
    try:
        return asdict(delong_test(labels, plain, tta))
    except ValueError as err:  # too few positives or negatives
        return {"error": str(err)}


def tta_effect(labels: Sequence[int] | np.ndarray, plain: np.ndarray, tta: np.ndarray, groups: Sequence | None = None,
               n_resamples: int = 2000, threshold: float = 0.5, seed: int = 0,
               metrics: Sequence[str] = TTA_EFFECT_METRICS) -> dict[str, Any]:
    """The effect of TTA on the same cases: AUROC without and with it, DeLong's test, and the paired bootstrap
    difference (with TTA minus without) of each metric with its 95% interval.

    DeLong is that of the positive class for two classes, one-vs-rest per class for more (under ``delong`` by class
    index); the bootstrap metrics are those of :func:`~medtl_monai.evaluation.paired_bootstrap_test` (macro averages
    for more than two classes).

    Args:
        labels: (N,) class indices.
        plain: (N, K) probabilities without TTA.
        tta: (N, K) probabilities with TTA.
        groups: (N,) patient ids for a cluster bootstrap, or None.
        n_resamples: bootstrap resamples.
        threshold: decision threshold of the positive class (two classes).
        seed: seed of the resampling.
        metrics: names of :data:`~medtl_monai.evaluation.METRICS`.

    Returns:
        A JSON-ready dict: ``n_cases``, ``n_patients``, ``method``, ``auroc`` (``without_tta``, ``with_tta``),
        ``delong`` and ``bootstrap`` (by metric: ``value_a`` without, ``value_b`` with TTA, ``difference``,
        ``ci_low``, ``ci_high``, ``p_value``...).
    """
    y = np.asarray(labels).astype(int).ravel()
    plain, tta = np.asarray(plain, dtype=np.float64), np.asarray(tta, dtype=np.float64)
    if plain.shape != tta.shape or plain.ndim != 2 or len(y) != len(plain):
        raise ValueError(f"{len(y)} labels, probabilities without TTA {plain.shape} and with TTA {tta.shape}: "
                         "expected (N,) and two (N, K) arrays.")
    bootstrap = {m: asdict(paired_bootstrap_test(y, plain, tta, m, n_resamples, groups=groups, seed=seed,
                                                 threshold=threshold)) for m in metrics}
    if plain.shape[1] == 2:
        delong: dict[str, Any] = _delong(y, plain[:, 1], tta[:, 1])
    else:
        delong = {str(k): _delong((y == k).astype(int), plain[:, k], tta[:, k]) for k in range(plain.shape[1])}
    auroc = bootstrap.get("auroc")
    return {
        "n_cases": len(y),
        "n_patients": None if groups is None else len({str(g) for g in groups}),
        "method": resampling_method(groups, n_resamples),
        "threshold": float(threshold),
        "auroc": {"without_tta": auroc["value_a"], "with_tta": auroc["value_b"]} if auroc else None,
        "delong": delong,
        "bootstrap": bootstrap,
    }


class TTAEffectWriter:
    """Write the effect of test-time augmentation on an evaluation: ``<output_dir>/tta_effect.json``
    (:func:`tta_effect`), and one summary line in the log.

    At every iteration it takes the probabilities without TTA (the identity view's logits, which the
    :class:`TTAInferer` keeps) and with TTA (the logits it returned), both through the same activation, so that the
    bundle's postprocessing does not enter the comparison; labels come from the decollated engine output (class
    indices or one-hot) and patient ids from the batch items, as for
    :class:`~medtl_monai.evaluation.PredictionWriter`.

    Args:
        inferer: the evaluator's inferer (a :class:`TTAInferer` when enabled).
        output_dir: folder of the file.
        enabled: the ``tta`` switch: when off, :meth:`attach` does nothing.
        class_names: names of the classes, recorded in the file.
        file_name: name of the file.
        label_key: key of the labels in the decollated output.
        patient_key: key of the patient ids in the batch items.
        n_resamples: bootstrap resamples.
        threshold: decision threshold of the positive class (two classes).

    Raises:
        TypeError: enabled with an inferer that is not a :class:`TTAInferer`.
    """

    def __init__(self, inferer: Inferer, output_dir: str | os.PathLike, enabled: bool | str = True,
                 class_names: Sequence[str] | None = None, file_name: str = "tta_effect.json", label_key: str = "label",
                 patient_key: str = "patient_id", n_resamples: int = 2000, threshold: float = 0.5) -> None:
        self.enabled = as_bool(enabled, "tta")
        if self.enabled and not isinstance(inferer, TTAInferer):
            raise TypeError(f"TTAEffectWriter needs the evaluator's TTAInferer, got {type(inferer).__name__}.")
        self.inferer, self.output_dir, self.file_name = inferer, Path(output_dir), file_name
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.label_key, self.patient_key = label_key, patient_key
        self.n_resamples, self.threshold = int(n_resamples), float(threshold)
        self._reset()

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self._remove_stale_file)
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    @property
    def path(self) -> Path:
        return self.output_dir / self.file_name

    def _remove_stale_file(self, engine: Engine | None = None) -> None:
        self.path.unlink(missing_ok=True)

    def _reset(self, engine: Engine | None = None) -> None:
        self.plain: list[np.ndarray] = []
        self.tta: list[np.ndarray] = []
        self.labels: list[Any] = []
        self.patients: list[Any] = []

    def _probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return self.inferer.probabilities(logits).detach().cpu().numpy()

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [{}] * len(outputs)
        plain, tta = self.inferer.last_plain_logits, self.inferer.last_logits
        if plain is None or tta is None or len(plain) != len(outputs):
            raise RuntimeError(f"TTAEffectWriter: the inferer's last batch ({None if plain is None else len(plain)} "
                               f"cases) does not match the engine's output ({len(outputs)} cases).")
        self.plain.extend(self._probabilities(plain))
        self.tta.extend(self._probabilities(tta))
        for item, out in zip(batch, outputs):
            label = torch.as_tensor(out[self.label_key]).detach().cpu().reshape(-1)
            self.labels.append(label.numpy() if self.inferer.multi_label else
                               int(label.argmax()) if label.numel() > 1 else int(label[0]))
            patient = item.get(self.patient_key) if isinstance(item, Mapping) else None
            self.patients.append(None if patient is None else str(patient))

    def effect(self) -> dict[str, Any]:
        """The contents of the file, from the cases collected so far."""
        plain, tta = np.stack(self.plain), np.stack(self.tta)
        groups = self.patients if all(p not in (None, "") for p in self.patients) else None
        names = self.class_names or [str(k) for k in range(plain.shape[1])]
        common = {"views": [v.name for v in self.inferer.views], "class_names": names}
        if not self.inferer.multi_label:
            return {**common, **tta_effect(self.labels, plain, tta, groups, self.n_resamples, self.threshold)}
        labels = np.stack(self.labels).astype(int)
        per_label = {name: tta_effect(labels[:, k], np.stack([1 - plain[:, k], plain[:, k]], 1),
                                      np.stack([1 - tta[:, k], tta[:, k]], 1), groups, self.n_resamples, self.threshold)
                     for k, name in enumerate(names)}
        return {**common, "per_label": per_label}

    def _write(self, engine: Engine) -> None:
        if not self.plain:
            logger.warning("TTAEffectWriter: no cases, %s not written", self.path)
            return
        effect = self.effect()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.path, lambda f: f.write(json.dumps(effect, indent=2)))
        for name, part in effect.get("per_label", {"": effect}).items():
            auroc, delong = part["bootstrap"]["auroc"], part["delong"]
            p = delong.get("p_value")  # None for more than two classes (one test per class) or too few cases
            logger.info("TTA (%d views)%s on %d cases: AUROC %.3f -> %.3f (difference %+.3f, 95%% CI %+.3f to %+.3f%s);"
                        " written to %s", len(effect["views"]), f" [{name}]" if name else "", part["n_cases"],
                        auroc["value_a"], auroc["value_b"], auroc["difference"], auroc["ci_low"], auroc["ci_high"],
                        "" if p is None else f", DeLong p = {p:.3g}", self.path)
