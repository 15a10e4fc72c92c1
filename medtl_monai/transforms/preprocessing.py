"""A model's deterministic preprocessing, chosen by kind, that checks its input and remembers how it was built.

:class:`Preprocessing` is the list of MONAI dictionary transforms that one of the factories returns
(:func:`~medtl_monai.transforms.ct_preprocessing`, :func:`~medtl_monai.transforms.xray_preprocessing`,
:func:`~medtl_monai.transforms.rgb_preprocessing`), with the input checks of the kind right after loading, plus
:attr:`Preprocessing.config`, the factory's kind and settings as plain JSON. A trained model's card keeps that record
beside the weights (as timm and Hugging Face keep a config beside theirs), so that evaluation, inference and the
applications rebuild exactly the preprocessing the model was trained with. In a bundle config::

    "preprocessing_transforms": {"_target_": "medtl_monai.transforms.Preprocessing", "kind": "ct",
                                 "spatial_size": "@image_size", "pixdim": "@pixdim", "windows": "@windows"}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monai.data import ImageReader
from monai.transforms import LoadImaged
from monai.utils import instantiate

from ..io import DicomSeriesReader, DicomXrayReader, MedicalImageReader
from ..io.checks import CheckImaged, CheckModalityd
from .ct import ct_preprocessing
from .rgb import rgb_preprocessing
from .xray import xray_preprocessing

__all__ = ["DEFAULT_MODALITIES", "INPUT_CHECKS", "PREPROCESSING_KINDS", "Preprocessing"]

#: Preprocessing factories by kind.
PREPROCESSING_KINDS: dict[str, Callable[..., list]] = {
    "ct": ct_preprocessing,
    "xray": xray_preprocessing,
    "rgb": rgb_preprocessing,
}

#: What each kind expects of a loaded, channel-first image (:class:`~medtl_monai.io.CheckImage` arguments): a CT is
#: a 3D grey-level volume of at least 2 voxels along each axis; a radiograph a 2D image (a one-slice volume is
#: accepted, as :class:`~medtl_monai.transforms.To2D` squeezes it), grey or RGB (an RGB-encoded PNG/JPEG radiograph
#: is accepted with a logged note: the X-ray chain averages it to grey); a photograph a 2D RGB picture.
INPUT_CHECKS: dict[str, dict[str, Any]] = {
    "ct": {"expected_spatial_dims": 3, "expected_channels": 1, "min_spatial_size": 2},
    "xray": {"expected_spatial_dims": 2, "expected_channels": (1, 3), "allow_singleton_dims": True,
             "min_spatial_size": 2},
    "rgb": {"expected_spatial_dims": 2, "expected_channels": 3, "min_spatial_size": 2},
}

#: The DICOM modalities each kind accepts when none are given (a bundle's metadata may say otherwise): images of
#: another modality are an error in training and a flagged row in batch inference. Photographs carry none.
DEFAULT_MODALITIES: dict[str, tuple[str, ...]] = {"ct": ("CT",), "xray": ("CR", "DX"), "rgb": ()}

#: The reader each kind loads its files with unless one is given: this package's reader (DICOM series and files,
#: NIfTI, pictures through MONAI's readers, every failure a ``BadCaseError`` naming the file).
_DEFAULT_READERS: dict[str, str] = {"ct": "MedicalImageReader", "xray": "MedicalImageReader",
                                    "rgb": "MedicalImageReader"}

#: This package's readers, by the names a config or a card may give.
_READERS: dict[str, type[ImageReader]] = {
    "MedicalImageReader": MedicalImageReader,
    "DicomSeriesReader": DicomSeriesReader,
    "DicomXrayReader": DicomXrayReader,
}


def _reader(kind: str, reader: str | ImageReader | None) -> str | ImageReader:
    """The reader instance (or MONAI reader name) for ``LoadImaged``: the kind's default unless one is given."""
    reader = _DEFAULT_READERS[kind] if reader is None else reader
    if isinstance(reader, str) and reader in _READERS:
        return _READERS[reader]()
    return reader


def _transform(item: Any) -> Callable:
    """A transform from ``after_load``: a callable as is, or a JSON spec ``{"_target_": "dotted.Name", **kwargs}``."""
    if isinstance(item, Mapping) and "_target_" in item:
        kwargs = {k: v for k, v in item.items() if k != "_target_"}
        return instantiate(str(item["_target_"]), "default", **kwargs)
    if not callable(item):
        raise TypeError(f"after_load items must be transforms or {{'_target_': ...}} specs, got {item!r}")
    return item


def _json_or_none(value: Any) -> Any:
    """``value`` when it is plain JSON (it can be recorded in a model card), else None."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


class Preprocessing(list):
    """The preprocessing transforms of one kind of input, as a list, with the settings that made them.

    Right after loading (at the start when ``load=False``, for applications that load images themselves and pass
    channel-first ``MetaTensor`` images) come the input checks: :class:`~medtl_monai.io.checks.CheckModalityd`
    (the DICOM modality is one the model was trained on) and :class:`~medtl_monai.io.CheckImaged` with the
    expectations of the kind (:data:`INPUT_CHECKS`: dimensionality, channels, size, voxel sizes, finite and
    non-constant values), then the ``after_load`` transforms. Every failure is a
    :class:`~medtl_monai.io.BadCaseError` that reads ``<file>: <problem>``.

    Args:
        kind: ``"ct"``, ``"xray"`` or ``"rgb"`` (see :data:`PREPROCESSING_KINDS`).
        keys: keys of the images.
        load: start with ``LoadImaged`` (items hold file or folder paths); applications that load images
            themselves drop it.
        reader: the image reader: a name (this package's ``MedicalImageReader``, ``DicomSeriesReader``,
            ``DicomXrayReader``, or a MONAI reader name such as ``"PILReader"``), an instance, or ``None`` for the
            default of the kind.
        check: add the input checks.
        modalities: the DICOM modalities the model accepts (e.g. a bundle metadata's list); None: the kind's
            default (:data:`DEFAULT_MODALITIES`); empty: any.
        on_modality_mismatch: ``"error"`` (training, evaluation) or ``"flag"`` (batch inference: each item gets
            ``modality_flag``, the problem or ``""``).
        after_load: transforms inserted right after the checks (callables, or JSON specs
            ``{"_target_": "dotted.Name", ...}``); recorded in :attr:`config` only when the list is plain JSON.
        settings: the factory's keyword arguments (``spatial_size``, ``pixdim``, ``windows``, ``crop``,
            ``normalize`` for CT; ``size``, ``channels``, ``normalize`` for X-ray; ``size``, ``normalize`` for RGB).
            ``normalize`` is ``"imagenet"`` or ``"none"``; a bundle passes
            ``default_normalization(@weights, @init_from)``. Outputs are rows first, in the order ImageNet weights
            were trained on: CT ``(C, AP, LR, SI)`` (``Orientationd("PLS")``, ``spatial_size``/``pixdim`` in that
            order), X-ray and RGB ``(C, H, W)``.

    Raises:
        ValueError: an unknown kind or ``on_modality_mismatch``, or settings the factory rejects.
    """

    def __init__(
        self,
        kind: str,
        *,
        keys: Any = "image",
        load: bool = True,
        reader: str | ImageReader | None = None,
        check: bool = True,
        modalities: Sequence[str] | None = None,
        on_modality_mismatch: str = "error",
        after_load: Sequence[Any] | None = None,
        **settings: Any,
    ) -> None:
        if kind not in PREPROCESSING_KINDS:
            raise ValueError(f"preprocessing kind {kind!r} is unknown; choose one of {sorted(PREPROCESSING_KINDS)}.")
        chain = PREPROCESSING_KINDS[kind](keys, load=load, reader=_reader(kind, reader), **settings)
        accepted = DEFAULT_MODALITIES[kind] if modalities is None else tuple(modalities)
        inserted: list[Callable] = []
        if check:
            inserted += [
                CheckModalityd(keys, accepted, on_mismatch=on_modality_mismatch),
                CheckImaged(keys, **INPUT_CHECKS[kind]),
            ]
        inserted += [_transform(item) for item in after_load or ()]
        after = next((i + 1 for i, t in enumerate(chain) if isinstance(t, LoadImaged)), 0)
        super().__init__([*chain[:after], *inserted, *chain[after:]])
        self.kind = kind
        self.settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
        self.reader_name = reader if isinstance(reader, str) else None
        self.check = check
        self.modalities = None if modalities is None else [str(m) for m in modalities]
        self.on_modality_mismatch = on_modality_mismatch
        self.after_load = list(after_load) if after_load is not None else None
        self._arguments = {"kind": kind, "keys": keys, "load": load, "reader": reader, "check": check,
                           "modalities": modalities, "on_modality_mismatch": on_modality_mismatch,
                           "after_load": after_load, **settings}

    @property
    def config(self) -> dict[str, Any]:
        """``{"kind": ..., **settings}`` (and ``reader`` when it was given by name, ``modalities`` when given,
        ``check`` and ``on_modality_mismatch`` when not the default, ``after_load`` when plain JSON): what
        :class:`Preprocessing` takes to build the same transforms again."""
        config: dict[str, Any] = {"kind": self.kind, **self.settings}
        if self.reader_name is not None:
            config["reader"] = self.reader_name
        if not self.check:
            config["check"] = False
        if self.modalities is not None:
            config["modalities"] = list(self.modalities)
        if self.on_modality_mismatch != "error":
            config["on_modality_mismatch"] = self.on_modality_mismatch
        if self.after_load and _json_or_none(self.after_load) is not None:
            config["after_load"] = self.after_load
        return config

    def with_settings(self, **changes: Any) -> Preprocessing:
        """The same preprocessing built again with some arguments changed, e.g. for batch inference::

            "transforms": "$@preprocessing_transforms.with_settings(on_modality_mismatch='flag')"

        Args:
            changes: any argument of :class:`Preprocessing` (``load``, ``on_modality_mismatch``, a setting...).

        Returns:
            a new :class:`Preprocessing`.
        """
        return Preprocessing(**{**self._arguments, **changes})

    def __reduce__(self):  # rebuild from the arguments (a list subclass with attributes pickles only its items)
        return (_rebuild, (self._arguments,))


def _rebuild(arguments: dict[str, Any]) -> Preprocessing:
    return Preprocessing(**arguments)
