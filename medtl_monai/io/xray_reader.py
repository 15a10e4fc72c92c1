"""Read a single-frame DICOM image (CR/DX radiograph, or one slice) as a 2D image (a MONAI image reader), and tell
the display polarity of a radiograph, from its DICOM header or from the JSON sidecar of a picture file.

Polarity: a radiograph is fed to a network as MONOCHROME2 (low values dark, air black). DICOM says how stored values
are displayed in two places: ``PhotometricInterpretation`` (MONOCHROME1: the minimum is white) and the Presentation
LUT Shape (``INVERSE``: the output of the VOI stage is inverted for display). The DX, MG and IO image modules tie them
(``INVERSE`` shall be used with MONOCHROME1, ``IDENTITY`` with MONOCHROME2; DICOM PS3.3 C.8.11.6), so they describe one
and the same inversion: :func:`display_inverted` inverts once when either says so, never twice. Data sets exported to
pictures (BIMCV-COVID19+ ships PNG radiographs) keep those attributes in a sidecar ``<stem>.json`` beside the picture,
either as keywords (BIDS style, ``"PhotometricInterpretation": "MONOCHROME1"``) or in the DICOM JSON model
(``"00280004": {"vr": "CS", "Value": ["MONOCHROME1"]}``); :func:`sidecar_display_inverted` reads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut

from ._dicom import (
    DEFAULT_META_KEYWORDS,
    apply_modality,
    decode_frames,
    float_values,
    meta_from_dataset,
    monochrome1_bounds,
    read_header,
)
from ._reader_base import DeferredReader, as_paths
from .dicom_series import DICOM_SUFFIXES
from .errors import BadCaseError

__all__ = [
    "PICTURE_SUFFIXES",
    "QUANTITATIVE_MODALITIES",
    "DicomXrayReader",
    "display_inverted",
    "sidecar_display_inverted",
    "sidecar_path",
]

#: Modalities whose rescaled values carry physical meaning (HU, SUV...): no VOI window by default.
QUANTITATIVE_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "RTDOSE", "SEG"})

_SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")

#: Picture files that may come with a JSON sidecar holding the DICOM polarity attributes.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: The polarity attributes: DICOM keyword -> tag as the DICOM JSON model writes it.
_POLARITY_TAGS = {"PhotometricInterpretation": "00280004", "PresentationLUTShape": "20500020"}


def display_inverted(photometric: str | None, presentation_lut_shape: str | None = None) -> bool:
    """Whether stored grey values must be inverted to be shown (and fed) as MONOCHROME2.

    ``MONOCHROME1`` and a Presentation LUT Shape of ``INVERSE`` state the same single inversion (the image modules
    require them together), so the values are inverted once when either is given; ``MONOCHROME2`` with ``INVERSE``
    is inverted too, ``MONOCHROME1`` with ``IDENTITY`` (a contradictory header) follows the photometric
    interpretation, which describes the stored pixels.

    Args:
        photometric: PhotometricInterpretation (None when unknown).
        presentation_lut_shape: PresentationLUTShape (``"IDENTITY"``, ``"INVERSE"`` or None).

    Returns:
        True when the values are to be inverted.
    """
    monochrome1 = str(photometric or "").strip().upper() == "MONOCHROME1"
    inverse = str(presentation_lut_shape or "").strip().upper() == "INVERSE"
    return monochrome1 or inverse


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a file: ``<stem>.json`` in the same folder (``a/b_cr.png`` -> ``a/b_cr.json``)."""
    file = Path(path)
    return file.with_name(file.name[: -len(file.suffix)] + ".json" if file.suffix else file.name + ".json")


def _sidecar_value(doc: dict, keyword: str) -> str | None:
    """A polarity attribute of a sidecar, given by keyword (BIDS style) or by tag (DICOM JSON model)."""
    value = doc.get(keyword)
    if value is None:
        element = doc.get(_POLARITY_TAGS[keyword]) or doc.get(_POLARITY_TAGS[keyword].upper())
        value = element.get("Value") if isinstance(element, dict) else element
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def sidecar_display_inverted(path: str | os.PathLike) -> bool | None:
    """Whether a picture's JSON sidecar says its grey values are stored inverted (see :func:`display_inverted`).

    Args:
        path: the picture file (PNG, JPEG, ...).

    Returns:
        True (MONOCHROME1 or ``INVERSE``), False (the sidecar gives the polarity and it is MONOCHROME2), or None
        (no sidecar, or a sidecar without either attribute).

    Raises:
        BadCaseError: a sidecar that exists but is not a JSON object (the message names it).
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadCaseError(sidecar, f"JSON sidecar cannot be read: {type(error).__name__}: {error}") from error
    if not isinstance(doc, dict):
        raise BadCaseError(sidecar, "JSON sidecar is not an object of attributes")
    photometric = _sidecar_value(doc, "PhotometricInterpretation")
    shape = _sidecar_value(doc, "PresentationLUTShape")
    if photometric is None and shape is None:
        return None
    return display_inverted(photometric, shape)


class DicomXrayReader(DeferredReader):
    """Read a single-frame DICOM image, typically a CR/DX radiograph, as a 2D array in display convention.

    The DICOM grey-scale pipeline is applied with pydicom: the modality LUT/rescale (``apply_modality_lut``), then
    the VOI LUT or window (``apply_voi_lut``), then data displayed inverted (MONOCHROME1, or a Presentation LUT Shape
    of ``INVERSE``; once for both, see :func:`display_inverted`) is turned into MONOCHROME2 as
    ``low + high - value``, where ``[low, high]`` is the range the preceding steps give the storable values. With
    no VOI this equals ITK/GDCM's inversion of the stored values. Colour images are returned as RGB.

    The array is indexed ``(column, row)`` (``(column, row, sample)`` for colour), as MONAI's ITK and PIL readers
    do; the 3x3 affine carries the pixel spacing from PixelSpacing, else ImagerPixelSpacing, else
    NominalScannedPixelSpacing (the one used is recorded in ``meta["spacing_source"]``; 1 mm when none is given),
    with ITK's identity direction converted to RAS (``diag(-sx, -sy, 1)``).

    Args:
        apply_voi: apply the VOI LUT/window; None applies it except for quantitative modalities (CT, MR, PT, NM).
        voi_index: which of several windows / VOI LUTs to use.
        prefer_voi_lut: when both a VOI LUT Sequence and a window are present, use the LUT.
        invert_monochrome1: turn data displayed inverted (MONOCHROME1, PresentationLUTShape ``INVERSE``) into
            MONOCHROME2.
        force: read files without the DICOM preamble/``DICM`` marker.
        meta_keywords: DICOM keywords copied (as strings) into the metadata.
        channel_dim: as in ``ITKReader`` (None: ``nan`` for grey-level, ``-1`` for colour data).
        affine_lps_to_ras: return a RAS affine (MONAI's default); False keeps LPS.
        dtype: dtype of the returned array.

    Raises (from ``get_data``):
        BadCaseError: a missing, non-DICOM, corrupt or truncated file, a file without image, or a multi-frame file
            (read those with :class:`~medtl_monai.io.DicomSeriesReader`).
    """

    def __init__(
        self,
        *,
        apply_voi: bool | None = None,
        voi_index: int = 0,
        prefer_voi_lut: bool = True,
        invert_monochrome1: bool = True,
        force: bool = False,
        meta_keywords: Sequence[str] = DEFAULT_META_KEYWORDS,
        channel_dim: str | int | None = None,
        affine_lps_to_ras: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(channel_dim=channel_dim, affine_lps_to_ras=affine_lps_to_ras, dtype=dtype)
        self.apply_voi = apply_voi
        self.voi_index = voi_index
        self.prefer_voi_lut = prefer_voi_lut
        self.invert_monochrome1 = invert_monochrome1
        self.force = force
        self.meta_keywords = tuple(meta_keywords)

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """Whether every path is a file with a DICOM suffix (or none)."""
        paths = as_paths(filename)
        return all(not p.is_dir() and (p.suffix.lower() in DICOM_SUFFIXES or p.suffix == "") for p in paths)

    def _load(self, path: str, **options: Any) -> tuple[np.ndarray, dict]:
        unknown = set(options) - {"apply_voi", "voi_index", "force"}
        if unknown:
            raise TypeError(f"{type(self).__name__}.read() got unexpected options {sorted(unknown)}")
        file = Path(path)
        if file.is_dir():
            raise BadCaseError(file, "is a folder; DicomXrayReader reads one single-frame file (see DicomSeriesReader)")
        header = read_header(file, force=options.get("force", self.force))
        ds = header.ds
        header.check_image()
        if header.number_of_frames > 1:
            raise BadCaseError(
                file, f"is a multi-frame file ({header.number_of_frames} frames); read it with DicomSeriesReader"
            )
        frame = decode_frames(header)[0]
        if frame.ndim == 3:  # colour: pydicom already converted YBR to RGB
            image = frame.astype(np.float64)
        else:
            image = self._grey_pipeline(frame, ds, file, options)
        spacing, source = np.ones(2), "none"
        for keyword in _SPACING_KEYWORDS:
            value = float_values(ds, keyword, 2, file)
            if value is not None:
                spacing, source = value, keyword
                break
        affine = np.diag([spacing[1], spacing[0], 1.0])  # (column, row) index -> LPS, identity direction as ITK
        meta = meta_from_dataset(ds, self.meta_keywords)
        meta["spacing_source"] = source
        array = image.transpose((1, 0, 2) if image.ndim == 3 else (1, 0))
        return self._finish_meta(array, meta, affine, os.fspath(path), spatial_dims=2)

    def _grey_pipeline(self, frame: np.ndarray, ds: Dataset, file: Path, options: dict) -> np.ndarray:
        """Modality LUT, VOI LUT/window, inversion of data displayed inverted (MONOCHROME1 / ``INVERSE``)."""
        apply_voi = options.get("apply_voi", self.apply_voi)
        if apply_voi is None:
            apply_voi = str(ds.get("Modality", "")).upper() not in QUANTITATIVE_MODALITIES
        has_voi = "VOILUTSequence" in ds or "WindowCenter" in ds
        index = options.get("voi_index", self.voi_index)

        def pipeline(values: np.ndarray) -> np.ndarray:
            out = apply_modality(values, ds)
            if apply_voi and has_voi:
                out = apply_voi_lut(out, ds, index=index, prefer_lut=self.prefer_voi_lut)
            return np.asarray(out, dtype=np.float64)

        try:
            image = pipeline(frame)
            inverted = display_inverted(ds.get("PhotometricInterpretation"), ds.get("PresentationLUTShape"))
            if self.invert_monochrome1 and inverted:
                low, high = monochrome1_bounds(ds, pipeline)
                image = (low + high) - image
        except BadCaseError:
            raise
        except Exception as error:  # invalid LUT descriptors, window width < 1...
            raise BadCaseError(file, f"invalid modality/VOI LUT: {type(error).__name__}: {error}") from error
        return image
