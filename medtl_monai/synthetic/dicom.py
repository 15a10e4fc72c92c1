"""Write synthetic DICOM files with pydicom: CT series, Enhanced CT (multi-frame) files and radiographs (CR / DX).

The one place this project writes DICOM: the reader tests, the data benchmark (``scripts/bench_data.py``), trials
of unusual series (oblique, gaps, shuffled names, compressed) and the demo data set (:mod:`.demo`, which adds its
patient and study attributes through ``header``) all use these writers.

Every writer returns what its file(s) decode to, so that tests compare a reader against independently known values
rather than against another reader: volumes in the array convention of MONAI's ``ITKReader`` (``x`` = column index
first, then row, then slice) with the LPS geometry the header encodes (:class:`SyntheticVolume`), radiographs as
their stored values. UIDs are derived from seeded entropy (:func:`uid`) and decimal strings are the shortest that
round-trip, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from ..io import lps_ras_flip

__all__ = [
    "CR_IMAGE_STORAGE",
    "CT_IMAGE_STORAGE",
    "DX_IMAGE_STORAGE",
    "ENHANCED_CT_IMAGE_STORAGE",
    "SyntheticVolume",
    "uid",
    "write_ct_series",
    "write_enhanced_ct",
    "write_xray",
]

#: SOP class UIDs of the objects written here.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"

_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
_XRAY_SOP_CLASSES = {"CR": CR_IMAGE_STORAGE, "DX": DX_IMAGE_STORAGE}
_PRIVATE_CREATOR = 0x00091010
_PRIVATE_VALUES = tuple(0x00091011 + j for j in range(20))  # per-slice private elements of a realistic header


@dataclass
class SyntheticVolume:
    """What a synthetic series or multi-frame file holds.

    Attributes:
        files: the written files, in geometric (ascending position along the slice normal) order.
        series_uid: SeriesInstanceUID of the files.
        stored: stored pixel values, shape ``(slices, rows, columns)`` in geometric order.
        values: rescaled values (``stored * slope + intercept`` per slice), same shape, float64.
        affine_lps: 4x4 index-to-LPS affine for the ITK array layout ``(columns, rows, slices)``.
        positions: ImagePositionPatient of each slice (geometric order), shape ``(slices, 3)``.
    """

    files: list[Path]
    series_uid: str
    stored: np.ndarray
    values: np.ndarray
    affine_lps: np.ndarray
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def itk_array(self) -> np.ndarray:
        """The rescaled values in the MONAI/ITK array layout ``(columns, rows, slices)``."""
        return self.values.transpose(2, 1, 0)

    @property
    def affine_ras(self) -> np.ndarray:
        """The affine in MONAI's default RAS convention."""
        return lps_ras_flip(self.affine_lps)


def uid(*parts: object) -> str:
    """A reproducible DICOM UID: pydicom's prefix and a hash of the string forms of ``parts``.

    Args:
        parts: values that identify the object (a role such as ``"series"``, a seed, a parent UID, an index ...).

    Returns:
        the UID; the same parts give the same UID.
    """
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _ds(value: float) -> str:
    """A DS (decimal string) value: the shortest decimal that reads back as ``value``, or 16 characters at most."""
    value = float(value) + 0.0  # no "-0"
    text = np.format_float_positional(value, trim="-")
    return text if len(text) <= 16 else format_number_as_ds(value)


def _new_dataset(sop_class: str, sop_uid: str, *, seed: int, header: Mapping[str, Any] | None) -> Dataset:
    """A dataset with its file meta, SOP identity, a synthetic patient and study (``P<seed>``) and ``header``.

    Raises:
        ValueError: a ``header`` key that is not a DICOM keyword.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    _set_header(ds, {"PatientID": f"P{seed}", "StudyInstanceUID": uid("study", seed), **(header or {})})
    return ds


def _set_header(ds: Dataset, attributes: Mapping[str, Any]) -> None:
    for keyword, value in attributes.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"header key {keyword!r} is not a DICOM keyword.")
        setattr(ds, keyword, value)


def _set_pixel_module(ds: Dataset, rows: int, columns: int, *, photometric: str, bits_stored: int,
                      signed: bool) -> None:
    """Image pixel module of a single-sample, 16-bit allocated image."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)


def _scanner_header() -> dict[str, Any]:
    """The descriptive elements a CT scanner writes, so that header parsing costs what it would on real files."""
    procedure = Dataset()
    procedure.CodeValue, procedure.CodingSchemeDesignator, procedure.CodeMeaning = "CTCHEST", "LOCAL", "CT chest"
    return {
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        **dict.fromkeys(("InstanceCreationDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"),
                        "20240101"),
        **dict.fromkeys(("InstanceCreationTime", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"),
                        "101010.000"),
        "AccessionNumber": "A123456",
        "Manufacturer": "SYNTHETIC",
        "InstitutionName": "Test Hospital",
        "ReferringPhysicianName": "Doe^John",
        "StationName": "CT01",
        "StudyDescription": "CHEST W/O CONTRAST",
        "SeriesDescription": "AXIAL 2.5 STD",
        "ManufacturerModelName": "Model X",
        "PatientName": "Test^Patient",
        "PatientBirthDate": "19700101",
        "PatientSex": "O",
        "PatientAge": "054Y",
        "BodyPartExamined": "CHEST",
        "ScanOptions": "HELICAL MODE",
        "KVP": "120",
        "DataCollectionDiameter": "500.0",
        "SoftwareVersions": "1.0",
        "ReconstructionDiameter": "350.0",
        "DistanceSourceToDetector": "949.0",
        "DistanceSourceToPatient": "541.0",
        "GantryDetectorTilt": "0.0",
        "TableHeight": "150.0",
        "RotationDirection": "CW",
        "ExposureTime": "500",
        "XRayTubeCurrent": "200",
        "Exposure": "100",
        "FilterType": "BODY FILTER",
        "GeneratorPower": "24000",
        "FocalSpots": "0.7",
        "ConvolutionKernel": "STANDARD",
        "PatientPosition": "HFS",
        "StudyID": "1",
        "AcquisitionNumber": 1,
        "PositionReferenceIndicator": "",
        "WindowCenter": "40",
        "WindowWidth": "400",
        "RescaleType": "HU",
        "LossyImageCompression": "00",
        "ProcedureCodeSequence": DicomSequence([procedure]),
    }


def _lps_affine(orientation: Sequence[float], pixel_spacing: Sequence[float], step: float,
                origin: Sequence[float]) -> np.ndarray:
    """Index-to-LPS affine of the ITK array layout ``(columns, rows, slices)``."""
    row_cos, col_cos = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    affine = np.eye(4)
    affine[:3, 0] = row_cos * pixel_spacing[1]
    affine[:3, 1] = col_cos * pixel_spacing[0]
    affine[:3, 2] = np.cross(row_cos, col_cos) * step
    affine[:3, 3] = origin
    return affine


def _encode(ds: Dataset) -> bytes:
    """Explicit VR little endian encoding of a dataset's elements (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


class _SliceEncoder:
    """Write the files of a series fast: the elements shared by all slices are encoded once.

    pydicom's ``save_as`` re-encodes every element of every file, which dominates writing thousands of small
    slices. The template's elements are encoded in tag order as constant byte runs, with the ``varying`` elements
    encoded in between for each file; the result is byte-identical to ``save_as`` (explicit VR little endian).

    Args:
        template: a dataset with its file meta and every element, the varying ones with placeholder values.
        varying: the tags whose values change from file to file (SOPInstanceUID among them).
    """

    def __init__(self, template: Dataset, varying: Iterable[BaseTag]) -> None:
        varying = set(varying)
        self.file_meta = template.file_meta
        self.parts: list[bytes | tuple[BaseTag, str]] = []
        run = Dataset()
        for elem in template:  # iterates in tag order
            if elem.tag in varying:
                if len(run):
                    self.parts.append(_encode(run))
                    run = Dataset()
                vr = "OW" if elem.keyword == "PixelData" else elem.VR  # 16-bit pixels: OW, as save_as decides
                self.parts.append((elem.tag, vr))
            else:
                run.add(elem)
        if len(run):
            self.parts.append(_encode(run))

    def write(self, path: Path, values: Mapping[BaseTag, Any]) -> None:
        """Write one file with the template's elements and ``values`` (tag -> value) for the varying ones."""
        meta = FileMetaDataset(self.file_meta)
        meta.MediaStorageSOPInstanceUID = values[Tag("SOPInstanceUID")]
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        fp.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fp, meta, enforce_standard=True)
        chunks = [fp.getvalue()]
        for part in self.parts:
            if isinstance(part, bytes):
                chunks.append(part)
            else:
                one = Dataset()
                one.add_new(part[0], part[1], values[part[0]])
                chunks.append(_encode(one))
        path.write_bytes(b"".join(chunks))


def _save_compressed(template: Dataset, values: Mapping[BaseTag, Any], path: Path, transfer_syntax: str) -> None:
    """Write one file of a series with pydicom's encoder for ``transfer_syntax``."""
    ds = copy.deepcopy(template)
    for tag, value in values.items():
        ds[tag].value = value
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)


def write_ct_series(
    folder: str | PathLike,
    *,
    n_slices: int = 6,
    rows: int = 10,
    columns: int = 8,
    pixel_spacing: tuple[float, float] = (0.8, 0.6),
    slice_spacing: float = 2.0,
    offsets: Sequence[float] | None = None,
    orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin: Sequence[float] = (-20.0, 10.0, 5.0),
    slope: float | Sequence[float] = 1.0,
    intercept: float | Sequence[float] = -1024.0,
    series_uid: str | None = None,
    series_number: int = 1,
    frame_uid: str | None = None,
    shuffle: bool = True,
    instance_numbers: Sequence[int] | None = None,
    file_order: Sequence[int] | None = None,
    seed: int = 0,
    name_prefix: str = "",
    transfer_syntax: str = ExplicitVRLittleEndian,
    realistic_header: bool = False,
    header: Mapping[str, Any] | None = None,
    stored: np.ndarray | None = None,
) -> SyntheticVolume:
    """Write a single-frame CT series, one file per slice, into ``folder`` (created if needed).

    Slice ``k`` (geometric order) lies at ``origin + offsets[k] * normal``, with ``normal`` the cross product of
    the row and column cosines; its ImagePositionPatient and SliceLocation (``position . normal``) say so. Elements
    come in four layers, each overriding the one before: ``realistic_header``'s scanner elements, a synthetic
    identity (PatientID ``P<seed>`` and a StudyInstanceUID derived from ``seed``), ``header``, then what this
    function encodes (SOP and series identity, geometry, rescale, pixels).

    Args:
        folder: output folder.
        n_slices: number of slices (ignored when ``offsets`` or ``stored`` is given).
        rows: image rows (ignored when ``stored`` is given).
        columns: image columns (ignored when ``stored`` is given).
        pixel_spacing: DICOM PixelSpacing: (spacing between rows, spacing between columns) in mm.
        slice_spacing: distance between consecutive slices along the normal, in mm (and SliceThickness).
        offsets: explicit slice positions along the normal (mm from ``origin``, ascending), e.g. with a gap.
        orientation: ImageOrientationPatient (row cosines then column cosines), any orthonormal pair.
        origin: ImagePositionPatient of the geometrically first slice (LPS, mm).
        slope: RescaleSlope, one value or one per slice (geometric order).
        intercept: RescaleIntercept, one value or one per slice.
        series_uid: SeriesInstanceUID (derived from ``seed`` if None).
        series_number: SeriesNumber.
        frame_uid: FrameOfReferenceUID (derived from ``seed`` if None).
        shuffle: draw InstanceNumbers and file names at random (from ``seed``) so that neither follows the
            geometry; otherwise InstanceNumber ``k + 1`` and name ``<name_prefix>NNNN.dcm`` with ``NNNN = k``.
        instance_numbers: the InstanceNumber of each slice (geometric order), replacing ``shuffle``'s; e.g.
            descending for a head-first acquisition.
        file_order: a permutation of the slices: slice ``k`` is written to ``<name_prefix>NNNN.dcm`` with
            ``NNNN = file_order[k]``, replacing ``shuffle``'s names.
        seed: seed for the pixel values, the UIDs and the shuffle.
        name_prefix: prefix for the file names (to keep several series apart in one folder).
        transfer_syntax: transfer syntax; compressed ones are encoded with pydicom's encoders.
        realistic_header: add ~60 descriptive and private elements, as a scanner would.
        header: further elements (DICOM keyword -> value) for every file: patient and study identity,
            descriptions, acquisition parameters, window.
        stored: explicit stored values, shape ``(slices, rows, columns)``, int16 (random 0..1999 if None).

    Returns:
        the written volume's description.

    Raises:
        ValueError: ``stored`` not 3D, per-slice arguments of the wrong length, file names that collide, or a
            ``header`` key that is not a DICOM keyword.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    if stored is None:
        n = len(offsets) if offsets is not None else n_slices
        stored = rng.integers(0, 2000, size=(n, rows, columns), dtype=np.int16)
    stored = np.asarray(stored)
    if stored.ndim != 3:
        raise ValueError(f"stored must be (slices, rows, columns), got shape {stored.shape}.")
    n, rows, columns = stored.shape
    offsets = np.arange(n) * slice_spacing if offsets is None else np.asarray(offsets, dtype=float)
    per_slice = {"offsets": offsets, "instance_numbers": instance_numbers, "file_order": file_order}
    for name, value in per_slice.items():
        if value is not None and len(value) != n:
            raise ValueError(f"{name} has {len(value)} values for {n} slices.")
    slopes = np.broadcast_to(np.asarray(slope, dtype=float), (n,))
    intercepts = np.broadcast_to(np.asarray(intercept, dtype=float), (n,))
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    positions = np.asarray(origin, float)[None] + offsets[:, None] * normal[None]

    order = rng.permutation(n) if shuffle else np.arange(n)  # order[rank]: the slice with InstanceNumber rank + 1
    numbers = np.empty(n, dtype=int)
    numbers[order] = np.arange(1, n + 1)
    if instance_numbers is not None:
        numbers = np.asarray(instance_numbers, dtype=int)
    if file_order is not None:
        names = [f"{name_prefix}{int(i):04d}.dcm" for i in file_order]
    elif shuffle:
        names = [""] * n
        for k in order:
            names[k] = f"{name_prefix}{rng.integers(10**8):08d}.dcm"
    else:
        names = [f"{name_prefix}{k:04d}.dcm" for k in range(n)]
    if len(set(names)) != n:
        raise ValueError("file names collide; give a file_order that is a permutation of the slices.")

    series_uid = series_uid or uid("series", seed)
    ds = _new_dataset(CT_IMAGE_STORAGE, uid("sop", seed, series_uid, 0), seed=seed,
                      header={**(_scanner_header() if realistic_header else {}), **(header or {})})
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = frame_uid or uid("frame", seed)
    ds.ImageOrientationPatient = [_ds(v) for v in orientation]
    ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    ds.SliceThickness = _ds(slice_spacing)
    _set_pixel_module(ds, rows, columns, photometric="MONOCHROME2", bits_stored=16, signed=True)
    varying = {"InstanceNumber": 0, "ImagePositionPatient": ["0", "0", "0"], "SliceLocation": "0",
               "RescaleSlope": "1", "RescaleIntercept": "0", "PixelData": b""}
    _set_header(ds, varying)
    if realistic_header:
        ds.add_new(_PRIVATE_CREATOR, "LO", "SYNTHETIC_PRIVATE")
        for tag in _PRIVATE_VALUES:
            ds.add_new(tag, "LO", "")
    varying_tags = [Tag(k) for k in ("SOPInstanceUID", *varying)] + [Tag(t) for t in _PRIVATE_VALUES]
    encoder = _SliceEncoder(ds, varying_tags) if transfer_syntax == ExplicitVRLittleEndian else None

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        values: dict[BaseTag, Any] = {
            Tag("SOPInstanceUID"): uid("sop", seed, series_uid, k),
            Tag("InstanceNumber"): int(numbers[k]),
            Tag("ImagePositionPatient"): [_ds(v) for v in positions[k]],
            Tag("SliceLocation"): _ds(positions[k] @ normal),
            Tag("RescaleSlope"): _ds(slopes[k]),
            Tag("RescaleIntercept"): _ds(intercepts[k]),
            Tag("PixelData"): np.ascontiguousarray(stored[k], dtype="<i2").tobytes(),
        }
        if realistic_header:
            values.update({Tag(t): f"private value {k} {j}" for j, t in enumerate(_PRIVATE_VALUES)})
        path = folder / names[k]
        if encoder is not None:
            encoder.write(path, values)
        else:
            _save_compressed(ds, values, path, transfer_syntax)
        files.append(path)
    step = slice_spacing if n == 1 else (offsets[-1] - offsets[0]) / (n - 1)
    affine = _lps_affine(orientation, pixel_spacing, step, positions[0])
    values_ = stored.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
    return SyntheticVolume(files, series_uid, stored, values_, affine, positions)


def write_enhanced_ct(
    path: str | PathLike,
    *,
    n_frames: int = 5,
    rows: int = 9,
    columns: int = 7,
    pixel_spacing: tuple[float, float] = (0.7, 0.9),
    slice_spacing: float = 3.0,
    orientation: Sequence[float] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    origin: Sequence[float] = (12.0, -30.0, 40.0),
    slopes: Sequence[float] | None = None,
    intercepts: Sequence[float] | None = None,
    shuffle_frames: bool = True,
    seed: int = 1,
    header: Mapping[str, Any] | None = None,
) -> SyntheticVolume:
    """Write an Enhanced CT (multi-frame) file with per-frame functional groups.

    Orientation, pixel measures and (when ``slopes`` is None) rescale sit in the shared functional groups;
    positions, and per-frame rescale when ``slopes`` is given, in the per-frame groups. With ``shuffle_frames``
    the frames are stored in an order that is not the geometric one.

    Args:
        path: output file (its folder is created if needed).
        n_frames: number of frames.
        rows: frame rows.
        columns: frame columns.
        pixel_spacing: PixelSpacing (between rows, between columns).
        slice_spacing: distance between frames along the normal.
        orientation: ImageOrientationPatient (sagittal by default).
        origin: position of the geometrically first frame.
        slopes: per-frame RescaleSlope (geometric order); None for one shared rescale (2, -1024).
        intercepts: per-frame RescaleIntercept (geometric order).
        shuffle_frames: store frames out of geometric order.
        seed: seed for the pixel values, the UIDs and the frame order.
        header: further elements (DICOM keyword -> value), as for :func:`write_ct_series`.

    Returns:
        the written volume's description (``files`` holds the single path).

    Raises:
        ValueError: a ``header`` key that is not a DICOM keyword.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 1500, size=(n_frames, rows, columns), dtype=np.int16)
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    positions = np.asarray(origin, float)[None] + (np.arange(n_frames) * slice_spacing)[:, None] * normal[None]
    shared_rescale = slopes is None
    slopes_ = np.full(n_frames, 2.0) if slopes is None else np.asarray(slopes, float)
    intercepts_ = np.full(n_frames, -1024.0) if intercepts is None else np.asarray(intercepts, float)
    order = rng.permutation(n_frames) if shuffle_frames else np.arange(n_frames)

    ds = _new_dataset(ENHANCED_CT_IMAGE_STORAGE, uid("enhanced", seed), seed=seed, header=header)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid = uid("enhanced-series", seed)
    ds.FrameOfReferenceUID = uid("frame", seed)
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = n_frames

    def rescale(slope: float, intercept: float) -> DicomSequence:
        item = Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = _ds(slope), _ds(intercept), "HU"
        return DicomSequence([item])

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds(v) for v in pixel_spacing]
    measures.SliceThickness = _ds(slice_spacing)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [_ds(v) for v in orientation]
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    if shared_rescale:
        shared.PixelValueTransformationSequence = rescale(2.0, -1024.0)
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for k in order:
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [_ds(v) for v in positions[k]]
        item.PlanePositionSequence = DicomSequence([position])
        content = Dataset()
        content.InStackPositionNumber = int(k) + 1
        item.FrameContentSequence = DicomSequence([content])
        if not shared_rescale:
            item.PixelValueTransformationSequence = rescale(slopes_[k], intercepts_[k])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)

    _set_pixel_module(ds, rows, columns, photometric="MONOCHROME2", bits_stored=16, signed=True)
    ds.PixelData = np.ascontiguousarray(stored[order], dtype="<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)

    affine = _lps_affine(orientation, pixel_spacing, slice_spacing, positions[0])
    values = stored.astype(np.float64) * slopes_[:, None, None] + intercepts_[:, None, None]
    return SyntheticVolume([path], series_uid, stored, values, affine, positions)


def write_xray(
    path: str | PathLike,
    *,
    stored: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    modality: str = "CR",
    bits_stored: int = 12,
    pixel_spacing: tuple[float, float] | None = None,
    imager_pixel_spacing: tuple[float, float] | None = (0.15, 0.2),
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    seed: int = 2,
    series_uid: str | None = None,
    header: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Write a single-frame projection radiograph (CR or DX) and return its stored values.

    The values are written as given: for ``"MONOCHROME1"`` (white = low values) a caller that has a MONOCHROME2
    image stores ``2**bits_stored - 1 - image``, and a reader must invert them back to show air dark. The image
    lies in a coronal plane (PatientOrientation ``L\\F``: rows towards the patient's left, columns towards the feet).

    Args:
        path: output file (its folder is created if needed).
        stored: stored values, unsigned, shape ``(rows, columns)``; random ``bits_stored`` values (12 x 10) if None.
        photometric: ``"MONOCHROME1"`` or ``"MONOCHROME2"``.
        modality: ``"CR"`` or ``"DX"`` (which also picks the SOP class).
        bits_stored: BitsStored (BitsAllocated is 16).
        pixel_spacing: PixelSpacing, written when given.
        imager_pixel_spacing: ImagerPixelSpacing, written when given.
        window: (WindowCenter, WindowWidth), written when given.
        rescale: (RescaleSlope, RescaleIntercept), written when given.
        seed: seed for the random values and the UIDs.
        series_uid: SeriesInstanceUID (derived from ``seed`` and ``photometric`` if None).
        header: further elements (DICOM keyword -> value), as for :func:`write_ct_series`.

    Returns:
        the stored values, ``(rows, columns)``.

    Raises:
        ValueError: another photometric interpretation or modality, ``stored`` not 2D or outside
            ``0 .. 2**bits_stored - 1``, or a ``header`` key that is not a DICOM keyword.
    """
    if photometric not in _PHOTOMETRIC:
        raise ValueError(f"photometric must be one of {_PHOTOMETRIC}, got {photometric!r}.")
    if modality not in _XRAY_SOP_CLASSES:
        raise ValueError(f"modality must be one of {tuple(_XRAY_SOP_CLASSES)}, got {modality!r}.")
    if stored is None:
        stored = np.random.default_rng(seed).integers(0, 2**bits_stored, size=(12, 10), dtype=np.uint16)
    stored = np.asarray(stored)
    if stored.ndim != 2 or stored.min() < 0 or stored.max() >= 2**bits_stored:
        raise ValueError(f"stored must be 2D with values in 0..{2**bits_stored - 1} (bits_stored={bits_stored}).")
    series_uid = series_uid or uid("xray-series", seed, photometric)
    ds = _new_dataset(_XRAY_SOP_CLASSES[modality], uid("sop", seed, series_uid, 0), seed=seed, header=header)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    if pixel_spacing is not None:
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [_ds(v) for v in imager_pixel_spacing]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = _ds(window[0]), _ds(window[1])
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(rescale[0]), _ds(rescale[1])
    _set_pixel_module(ds, *stored.shape, photometric=photometric, bits_stored=bits_stored, signed=False)
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return stored
