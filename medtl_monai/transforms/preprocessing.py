"""A model's deterministic preprocessing, chosen by kind, that remembers how it was built.

:class:`Preprocessing` is the list of MONAI dictionary transforms that one of the factories returns
(:func:`~medtl_monai.transforms.ct_preprocessing`, :func:`~medtl_monai.transforms.xray_preprocessing`,
:func:`~medtl_monai.transforms.rgb_preprocessing`), plus :attr:`Preprocessing.config`, the factory's kind and
settings as plain JSON. A trained model's card keeps that record beside the weights (as timm and Hugging Face keep a
config beside theirs), so that evaluation, inference and the applications rebuild exactly the preprocessing the
model was trained with. In a bundle config::

    "preprocessing_transforms": {"_target_": "medtl_monai.transforms.Preprocessing", "kind": "ct",
                                 "spatial_size": "@image_size", "pixdim": "@pixdim", "windows": "@windows"}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monai.data import ImageReader

from ..io import DicomSeriesReader, DicomXrayReader, MedicalImageReader
from .ct import ct_preprocessing
from .rgb import rgb_preprocessing
from .xray import xray_preprocessing

__all__ = ["PREPROCESSING_KINDS", "Preprocessing"]

#: Preprocessing factories by kind.
PREPROCESSING_KINDS: dict[str, Callable[..., list]] = {
    "ct": ct_preprocessing,
    "xray": xray_preprocessing,
    "rgb": rgb_preprocessing,
}

#: The reader each kind loads its files with unless one is given: this package's DICOM-aware reader for CT and X-ray
#: (series folders, DICOM files, NIfTI, pictures), MONAI's ``PILReader`` for photographs.
_DEFAULT_READERS: dict[str, str] = {"ct": "MedicalImageReader", "xray": "MedicalImageReader", "rgb": "PILReader"}

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


class Preprocessing(list):
    """The preprocessing transforms of one kind of input, as a list, with the settings that made them.

    Args:
        kind: ``"ct"``, ``"xray"`` or ``"rgb"`` (see :data:`PREPROCESSING_KINDS`).
        keys: keys of the images.
        load: start with ``LoadImaged`` (items hold file or folder paths); applications that load images
            themselves drop it.
        reader: the image reader: a name (this package's ``MedicalImageReader``, ``DicomSeriesReader``,
            ``DicomXrayReader``, or a MONAI reader name such as ``"PILReader"``), an instance, or ``None`` for the
            default of the kind.
        settings: the factory's keyword arguments (``spatial_size``, ``pixdim``, ``windows``, ``crop`` for CT;
            ``size``, ``channels`` for X-ray; ``size`` for RGB ...).

    Raises:
        ValueError: an unknown kind, or settings the factory rejects.
    """

    def __init__(self, kind: str, *, keys: Any = "image", load: bool = True, reader: str | ImageReader | None = None,
                 **settings: Any) -> None:
        if kind not in PREPROCESSING_KINDS:
            raise ValueError(f"preprocessing kind {kind!r} is unknown; choose one of {sorted(PREPROCESSING_KINDS)}.")
        super().__init__(PREPROCESSING_KINDS[kind](keys, load=load, reader=_reader(kind, reader), **settings))
        self.kind = kind
        self.settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
        self.reader_name = reader if isinstance(reader, str) else None

    @property
    def config(self) -> dict[str, Any]:
        """``{"kind": ..., **settings}`` (and ``reader`` when it was given by name): what :class:`Preprocessing`
        takes to build the same transforms again."""
        config: dict[str, Any] = {"kind": self.kind, **self.settings}
        if self.reader_name is not None:
            config["reader"] = self.reader_name
        return config

    def __reduce__(self):  # rebuild from the record (a list subclass with attributes pickles only its items)
        return (_rebuild, (self.config,))


def _rebuild(config: dict[str, Any]) -> Preprocessing:
    return Preprocessing(**config)
