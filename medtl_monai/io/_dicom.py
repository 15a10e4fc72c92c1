"""DICOM helpers shared by the readers: header reading, pixel decoding, rescale and geometry.

Every failure is turned into a :class:`~medtl_monai.io.BadCaseError` that names the file, so that no raw
pydicom traceback reaches the user.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom import uid as pydicom_uid
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, as_pixel_options, get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from .errors import BadCaseError

__all__ = [
    "DEFAULT_META_KEYWORDS",
    "DicomHeader",
    "NotDicomError",
    "affine_lps",
    "apply_modality",
    "decode_frames",
    "float_values",
    "is_image_sop_class",
    "lps_ras_flip",
    "meta_from_dataset",
    "monochrome1_bounds",
    "non_image_problem",
    "positive_spacing",
    "read_dataset",
    "read_header",
    "require",
    "rescale_parameters",
    "sop_class_uids",
    "stored_value_range",
]

#: DICOM elements copied (as strings) into the metadata dictionary of every DICOM reader.
DEFAULT_META_KEYWORDS: tuple[str, ...] = (
    "Modality",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "PhotometricInterpretation",
)

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UC", b"UR", b"UT"}


class NotDicomError(BadCaseError):
    """The file is not a DICOM file at all (no ``DICM`` marker), as opposed to a corrupt DICOM file."""


@dataclass
class DicomHeader:
    """The header of one DICOM file, read without its pixel data.

    Attributes:
        path: the file.
        ds: the dataset up to (not including) the pixel data.
        pixel_offset: file offset of the Pixel Data element, or None when it could not be located directly.
        has_pixels: whether a Pixel Data element follows the header.
        accepted_sop_classes: SOP classes read as images although their name has no ``"Image Storage"`` (e.g. RT
            Dose Storage for a dose grid).
    """

    path: Path
    ds: Dataset
    pixel_offset: int | None
    has_pixels: bool
    accepted_sop_classes: frozenset[UID] = frozenset()

    @property
    def transfer_syntax(self) -> UID:
        """The file's transfer syntax UID."""
        return UID(self.ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))

    @property
    def number_of_frames(self) -> int:
        """NumberOfFrames (1 when absent or invalid)."""
        try:
            return max(int(self.ds.get("NumberOfFrames", 1) or 1), 1)
        except (TypeError, ValueError):
            return 1

    @property
    def sop_class(self) -> UID | None:
        """The SOP class (SOPClassUID, else MediaStorageSOPClassUID); None when absent, invalid or contradictory."""
        uids = [self.ds.get("SOPClassUID"), self.ds.file_meta.get("MediaStorageSOPClassUID")]
        uids = [UID(str(u)) for u in uids if u]
        if not uids or not all(u.is_valid for u in uids) or len(set(uids)) > 1:
            return None
        return uids[0]

    @property
    def kind(self) -> str:
        """``"image"``, ``"other"`` (a well-formed object that is not an image to classify: segmentation, RT dose,
        structure set or plan, structured report, presentation state, raw data...) or ``"corrupt"`` (no valid SOP
        class and no image attributes, e.g. a header cut short or overwritten).

        A SOP class that pydicom knows decides: its name must contain ``"Image Storage"`` (CT, MR, CR, DX, secondary
        capture, enhanced and legacy-converted images...) unless it is one of :attr:`accepted_sop_classes`. A file
        without a known SOP class is an image when it has image attributes or pixel data.
        """
        sop = self.sop_class
        if sop is not None and sop.name != str(sop):  # pydicom knows it: the SOP class decides
            return "image" if is_image_sop_class(sop) or sop in self.accepted_sop_classes else "other"
        if "Rows" in self.ds or self.has_pixels:
            return "image"
        return "corrupt" if sop is None else "other"

    @property
    def is_image(self) -> bool:
        """Whether the file is an image object (as opposed to a report, a plan, a segmentation, a dose grid...)."""
        return self.kind == "image"

    def check_image(self) -> None:
        """Raise a :class:`BadCaseError` unless the file is an image whose header reaches its pixel data and whose
        rescale and pixel spacing are usable.

        Raises:
            BadCaseError: a corrupt or truncated file, an object that is not an image to classify (its SOP class
                named), a zero or non-finite RescaleSlope, or a PixelSpacing/ImagerPixelSpacing that is not positive.
        """
        kind = self.kind
        if kind == "corrupt":
            raise BadCaseError(
                self.path, "corrupt or truncated DICOM file: no valid SOP class, image attributes or pixel data"
            )
        if kind == "other":
            raise BadCaseError(self.path, non_image_problem(self.sop_class or self.ds.get("SOPClassUID")))
        if not self.has_pixels:
            raise BadCaseError(self.path, "truncated or corrupt DICOM image: the file ends before its Pixel Data element")
        rescale_parameters(self.ds, self.path)
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            positive_spacing(self.ds, keyword, self.path)


def is_image_sop_class(uid: str) -> bool:
    """Whether ``uid`` is a SOP class of images to classify (pydicom's name for it contains ``"Image Storage"``).

    Segmentations, RT dose, structure sets and plans, structured reports, presentation states, raw data,
    waveforms and encapsulated documents are not.
    """
    return "Image Storage" in UID(str(uid)).name


def non_image_problem(sop_class: str | None) -> str:
    """The problem of a DICOM object that is not an image to classify, naming its SOP class."""
    if not sop_class:
        return "DICOM file holds no image (no SOP class)"
    uid = UID(str(sop_class))
    name = uid.name if uid.name != str(uid) else "an unknown SOP class"
    return (
        f"DICOM file holds no image to classify: SOP class {name} ({uid}); only image SOP classes "
        "('... Image Storage') are read"
    )


def sop_class_uids(classes: Sequence[str]) -> frozenset[UID]:
    """SOP class UIDs from UIDs or pydicom keywords (e.g. ``"RTDoseStorage"``).

    Raises:
        ValueError: a name that is neither a valid UID nor a pydicom UID keyword.
    """
    uids = set()
    for name in classes:
        value = getattr(pydicom_uid, str(name), None) if not str(name)[:1].isdigit() else UID(str(name))
        if not isinstance(value, UID) or not value.is_valid:
            raise ValueError(f"{name!r} is neither a SOP class UID nor a pydicom UID keyword such as 'RTDoseStorage'")
        uids.add(value)
    return frozenset(uids)


def _wrap_read_error(path: Path, error: Exception) -> BadCaseError:
    if isinstance(error, BadCaseError):
        return error
    if isinstance(error, FileNotFoundError):
        return BadCaseError(path, "file does not exist")
    if isinstance(error, IsADirectoryError):
        return BadCaseError(path, "is a folder, expected a DICOM file")
    if isinstance(error, InvalidDicomError):
        return NotDicomError(path, "not a DICOM file (no 'DICM' marker; pass force=True for files without preamble)")
    return BadCaseError(path, f"corrupt or truncated DICOM file ({type(error).__name__}: {error})")


def _pixel_tags(ds: Dataset) -> tuple[bytes, ...]:
    """The encoded tags of Pixel Data / Float Pixel Data / Double Float Pixel Data in the dataset's byte order."""
    little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
    endian = "<" if little else ">"
    return tuple(struct.pack(f"{endian}HH", 0x7FE0, elem) for elem in (0x0010, 0x0008, 0x0009))


def read_header(
    path: str | os.PathLike, *, force: bool = False, accepted_sop_classes: Sequence[str] = ()
) -> DicomHeader:
    """Read a DICOM header up to the pixel data and remember where the pixel data starts.

    Args:
        path: the DICOM file.
        force: read files that lack the DICOM preamble/``DICM`` marker.
        accepted_sop_classes: SOP classes (UIDs or pydicom keywords) to read as images although they are not image
            SOP classes (see :attr:`DicomHeader.kind`).

    Returns:
        the header.

    Raises:
        NotDicomError: the file is not DICOM.
        BadCaseError: the file is missing, or its header is corrupt or truncated.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            ds = dcmread(fp, stop_before_pixels=True, force=force)
            offset = fp.tell()
            has_pixels = fp.read(4) in _pixel_tags(ds)
    except Exception as error:  # pydicom raises many types on corrupt input
        raise _wrap_read_error(path, error) from error
    if not isinstance(getattr(ds, "file_meta", None), Dataset):
        ds.file_meta = Dataset()
    if has_pixels and offset > os.path.getsize(path):  # pydicom seeked past the end while skipping a value
        has_pixels = False
    header = DicomHeader(path, ds, offset, has_pixels, sop_class_uids(accepted_sop_classes))
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        # offsets refer to the inflated stream: decode through a full read, which reports missing pixel data
        header.pixel_offset, header.has_pixels = None, "Rows" in ds
    return header


def read_dataset(path: str | os.PathLike, *, force: bool = False) -> Dataset:
    """Read a whole DICOM file (header and pixel data), turning every failure into a :class:`BadCaseError`.

    Args:
        path: the DICOM file.
        force: read files that lack the DICOM preamble/``DICM`` marker.

    Returns:
        the dataset.

    Raises:
        NotDicomError: the file is not DICOM.
        BadCaseError: the file is missing, corrupt or truncated.
    """
    try:
        return dcmread(path, force=force)
    except Exception as error:
        raise _wrap_read_error(Path(path), error) from error


def require(ds: Dataset, keywords: Sequence[str], path: str | os.PathLike) -> None:
    """Raise a :class:`BadCaseError` naming ``path`` if any of ``keywords`` is missing from ``ds``."""
    missing = [k for k in keywords if k not in ds or ds[k].value in (None, "")]
    if missing:
        raise BadCaseError(path, f"missing required DICOM element(s) {', '.join(missing)} (corrupt or truncated?)")


def float_values(ds: Dataset, keyword: str, count: int, path: str | os.PathLike) -> np.ndarray | None:
    """Return the ``count`` numeric values of ``keyword`` as float64, None when absent.

    Raises:
        BadCaseError: the element is present but does not hold ``count`` numbers.
    """
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        values = np.asarray([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        raise BadCaseError(path, f"invalid {keyword} value {value!r}") from None
    if values.size != count or not np.all(np.isfinite(values)):
        raise BadCaseError(path, f"invalid {keyword} value {value!r} (expected {count} finite numbers)")
    return values


def _read_pixel_element(fp, tsyntax: UID) -> tuple[int, bool] | None:
    """Read the Pixel Data element header at the current position: (value length, encapsulated), or None."""
    endian = "<" if tsyntax.is_little_endian else ">"
    head = fp.read(8)
    if len(head) < 8:
        return None
    if struct.unpack(f"{endian}HH", head[:4]) != _PIXEL_DATA_TAG:
        return None
    # decide explicit/implicit from the bytes, not the transfer syntax: some writers switch to implicit VR
    if head[4:6] in _LONG_LENGTH_VRS and head[6:8] == b"\x00\x00":
        extra = fp.read(4)
        if len(extra) < 4:
            return None
        (length,) = struct.unpack(f"{endian}L", extra)
    else:
        (length,) = struct.unpack(f"{endian}L", head[4:])
    return length, length == 0xFFFFFFFF


def decode_frames(header: DicomHeader, *, force: bool = False) -> np.ndarray:
    """Decode every frame of a file whose header was read with :func:`read_header`.

    The pixel data is read straight from its offset (no second header parse) and handed to pydicom's decoder for
    the file's transfer syntax (native, RLE, JPEG, JPEG-LS, JPEG 2000 via the installed pylibjpeg/pyjpegls plugins).
    Files where the offset is unknown (deflated, unusual layouts) are read again in full.

    Args:
        header: the header from :func:`read_header`.
        force: read files that lack the DICOM preamble (only used by the full-read fallback).

    Returns:
        the frames, shaped ``(frames, rows, columns)`` or ``(frames, rows, columns, samples)``; possibly a
        read-only view on the file's bytes.

    Raises:
        BadCaseError: the pixel data is missing, truncated or cannot be decoded.
    """
    path, ds, tsyntax = header.path, header.ds, header.transfer_syntax
    if not header.has_pixels:
        raise BadCaseError(path, "no pixel data: the file ends before its Pixel Data element (truncated?)")
    require(ds, ("Rows", "Columns", "BitsAllocated"), path)
    frames = header.number_of_frames
    try:
        array = None
        if header.pixel_offset is not None:
            with open(path, "rb") as fp:
                fp.seek(header.pixel_offset)
                element = _read_pixel_element(fp, tsyntax)
                if element is not None:
                    length, encapsulated = element
                    opts = as_pixel_options(ds, pixel_keyword="PixelData")
                    opts.setdefault("samples_per_pixel", 1)
                    opts.setdefault("pixel_representation", 0)
                    opts.setdefault("bits_stored", ds.BitsAllocated)
                    opts.setdefault("photometric_interpretation", "MONOCHROME2")
                    decoder = get_decoder(tsyntax)
                    if encapsulated:
                        array, _ = decoder.as_array(fp, **opts)
                    else:
                        buffer = fp.read(length)
                        if len(buffer) < length:
                            raise BadCaseError(
                                path, f"truncated pixel data: {len(buffer)} of {length} bytes present in the file"
                            )
                        # plain grey-level data: a read-only view on the buffer (the caller copies it anyway)
                        plain = (
                            opts["bits_stored"] == opts.get("bits_allocated")
                            and opts.get("bits_allocated") in (8, 16, 32, 64)
                            and opts["samples_per_pixel"] == 1
                        )
                        array, _ = decoder.as_array(buffer, view_only=plain, **opts)
        if array is None:  # unusual layout: let pydicom read the whole file
            array = read_dataset(path, force=force).pixel_array
    except BadCaseError:
        raise
    except Exception as error:
        raise BadCaseError(
            path, f"cannot decode pixel data ({tsyntax.name}): {type(error).__name__}: {error}"
        ) from error
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1 and array.ndim == (2 if samples == 1 else 3):
        array = array[None]
    return array


def rescale_parameters(item: Dataset | None, path: str | os.PathLike | None = None) -> tuple[float, float] | None:
    """Return (RescaleSlope, RescaleIntercept) from ``item`` when it holds both, else None.

    Args:
        item: a dataset or functional group item.
        path: the file named in errors.

    Raises:
        BadCaseError: the slope is zero or either value is not a finite number: every pixel would map to one value
            (or to NaN), and the image would reach the network as a blank.
    """
    if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
        return None
    where = path if path is not None else "<DICOM dataset>"
    try:
        slope, intercept = float(item.RescaleSlope), float(item.RescaleIntercept)
    except (TypeError, ValueError):
        raise BadCaseError(
            where, f"invalid rescale: RescaleSlope {item.RescaleSlope!r}, RescaleIntercept {item.RescaleIntercept!r}"
        ) from None
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise BadCaseError(
            where,
            f"invalid rescale: RescaleSlope {slope:g}, RescaleIntercept {intercept:g} (the slope must be a finite, "
            "non-zero number, or every pixel maps to one value)",
        )
    return slope, intercept


def positive_spacing(ds: Dataset | None, keyword: str, path: str | os.PathLike) -> np.ndarray | None:
    """The two values of a pixel spacing element (``PixelSpacing``, ``ImagerPixelSpacing``); None when absent.

    Raises:
        BadCaseError: the element does not hold two finite numbers, or one of them is not positive.
    """
    if ds is None:
        return None
    spacing = float_values(ds, keyword, 2, path)
    if spacing is not None and not np.all(spacing > 0):
        raise BadCaseError(path, f"invalid {keyword} {spacing.tolist()}: pixel sizes must be positive (mm)")
    return spacing


def stored_value_range(ds: Dataset) -> tuple[int, int]:
    """The smallest and largest storable value given BitsStored and PixelRepresentation."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def monochrome1_bounds(ds: Dataset, pipeline: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """Output range of ``pipeline`` (modality LUT, optionally VOI) over the storable values, for inversion.

    A MONOCHROME1 image is inverted to MONOCHROME2 as ``low + high - value``; with only a linear modality rescale
    this equals inverting the stored values within their bit depth before rescaling, which is what ITK/GDCM do.
    """
    low, high = stored_value_range(ds)
    ends = np.asarray(pipeline(np.asarray([low, high], dtype=np.float64)), dtype=np.float64)
    return float(ends.min()), float(ends.max())


def apply_modality(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """Apply the modality LUT/rescale of ``ds`` (pydicom's ``apply_modality_lut``) as float64."""
    out = apply_modality_lut(frame, ds)
    return out if out.dtype == np.float64 else out.astype(np.float64)


def affine_lps(
    row_cosines: np.ndarray,
    column_cosines: np.ndarray,
    normal: np.ndarray,
    spacing: Sequence[float],
    origin: np.ndarray,
) -> np.ndarray:
    """4x4 affine from ITK-layout voxel indices ``(column, row, slice)`` to LPS patient coordinates in mm."""
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(row_cosines, float) * spacing[0]
    affine[:3, 1] = np.asarray(column_cosines, float) * spacing[1]
    affine[:3, 2] = np.asarray(normal, float) * spacing[2]
    affine[:3, 3] = origin
    return affine


def lps_ras_flip(affine: np.ndarray) -> np.ndarray:
    """Convert an affine between LPS and RAS world coordinates (negate the first two world axes)."""
    flip = np.ones(affine.shape[0])
    flip[: min(2, affine.shape[0] - 1)] = -1.0
    return flip[:, None] * affine


def meta_from_dataset(ds: Dataset, keywords: Sequence[str]) -> dict[str, str]:
    """Copy ``keywords`` of ``ds`` as strings (empty when absent), so that batches of metadata collate."""
    meta: dict[str, str] = {}
    for keyword in keywords:
        value = ds.get(keyword)
        if value is None:
            meta[keyword] = ""
        elif isinstance(value, (list, tuple, MultiValue)):
            meta[keyword] = "\\".join(str(v) for v in value)
        else:
            meta[keyword] = str(value)
    return meta
