"""Write small synthetic DICOM files with pydicom, for reader tests (this project's and a team's own), the data
benchmark (``scripts/bench_data.py``) and trials of unusual series (oblique, gaps, shuffled names, compressed).

Every writer returns what the file(s) should decode to, in the array convention of MONAI's ``ITKReader``
(``x`` = column index first, then row, then slice) together with the LPS geometry the header encodes, so that tests
compare a reader against independently known values instead of against another reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"

__all__ = ["SyntheticVolume", "write_ct_series", "write_enhanced_ct", "write_xray", "lps_to_ras"]


@dataclass
class SyntheticVolume:
    """What a synthetic series or multi-frame file holds.

    Attributes:
        files: the written files, in geometric (ascending position along the slice normal) order.
        series_uid: SeriesInstanceUID of the files.
        stored: stored pixel values, shape ``(slices, rows, columns)`` in geometric order.
        values: rescaled values (``stored * slope + intercept`` per slice), same shape, float64.
        affine_lps: 4x4 index-to-LPS affine for the ITK array layout ``(columns, rows, slices)``.
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
        return lps_to_ras(self.affine_lps)


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Flip the first two world axes of a 4x4 (or 3x3) affine (LPS <-> RAS)."""
    flip = np.diag([-1.0, -1.0] + [1.0] * (affine.shape[0] - 2))
    return flip @ affine


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _base_dataset(sop_class: str, sop_instance: str, transfer_syntax: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def _add_realistic_clutter(ds: Dataset, index: int) -> None:
    """Add the kind of descriptive and private elements a scanner writes, so header parsing costs what it would."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240101"
    ds.InstanceCreationTime = ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101010.000"
    ds.AccessionNumber = "A123456"
    ds.Manufacturer = "SYNTHETIC"
    ds.InstitutionName = "Test Hospital"
    ds.ReferringPhysicianName = "Doe^John"
    ds.StationName = "CT01"
    ds.StudyDescription = "CHEST W/O CONTRAST"
    ds.SeriesDescription = "AXIAL 2.5 STD"
    ds.ManufacturerModelName = "Model X"
    ds.PatientName = "Test^Patient"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientAge = "054Y"
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500.0"
    ds.SoftwareVersions = "1.0"
    ds.ReconstructionDiameter = "350.0"
    ds.DistanceSourceToDetector = "949.0"
    ds.DistanceSourceToPatient = "541.0"
    ds.GantryDetectorTilt = "0.0"
    ds.TableHeight = "150.0"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = "24000"
    ds.FocalSpots = "0.7"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyID = "1"
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = "0.0"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleType = "HU"
    ds.LossyImageCompression = "00"
    item = Dataset()
    item.CodeValue = "CTCHEST"
    item.CodingSchemeDesignator = "LOCAL"
    item.CodeMeaning = "CT chest"
    ds.ProcedureCodeSequence = DicomSequence([item])
    ds.add_new(0x00091010, "LO", "SYNTHETIC_PRIVATE")
    for k in range(20):
        ds.add_new(0x00091011 + k, "LO", f"private value {index} {k}")


def write_ct_series(
    folder: str | Path,
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
    shuffle: bool = True,
    seed: int = 0,
    name_prefix: str = "",
    transfer_syntax: str = ExplicitVRLittleEndian,
    realistic_header: bool = False,
    stored: np.ndarray | None = None,
) -> SyntheticVolume:
    """Write a single-frame CT series into ``folder`` (created if needed) and return what it encodes.

    Args:
        folder: output folder.
        n_slices: number of slices (ignored when ``offsets`` or ``stored`` is given).
        rows: image rows (ignored when ``stored`` is given).
        columns: image columns (ignored when ``stored`` is given).
        pixel_spacing: DICOM PixelSpacing: (spacing between rows, spacing between columns) in mm.
        slice_spacing: distance between consecutive slices along the normal, in mm.
        offsets: explicit slice positions along the normal (mm from ``origin``), e.g. with a gap.
        orientation: ImageOrientationPatient (row cosines then column cosines), any orthonormal pair.
        origin: ImagePositionPatient of the geometrically first slice.
        slope: RescaleSlope, one value or one per slice (geometric order).
        intercept: RescaleIntercept, one value or one per slice.
        series_uid: SeriesInstanceUID (derived from ``seed`` if None).
        series_number: SeriesNumber.
        shuffle: shuffle InstanceNumbers and file names so neither follows the geometry.
        seed: seed for pixel values, UIDs and the shuffle.
        name_prefix: prefix for the file names (to keep several series apart in one folder).
        transfer_syntax: transfer syntax; compressed ones are encoded with pydicom's encoders.
        realistic_header: add ~60 descriptive and private elements as a scanner would.
        stored: explicit stored values, shape (slices, rows, columns), int16.

    Returns:
        the written volume's description.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if stored is None:
        n = len(offsets) if offsets is not None else n_slices
        stored = rng.integers(0, 2000, size=(n, rows, columns), dtype=np.int16)
    n, rows, columns = stored.shape
    offsets = np.arange(n) * slice_spacing if offsets is None else np.asarray(offsets, dtype=float)
    slopes = np.broadcast_to(np.asarray(slope, dtype=float), (n,))
    intercepts = np.broadcast_to(np.asarray(intercept, dtype=float), (n,))
    row_cos, col_cos = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_cos, col_cos)
    positions = np.asarray(origin, float)[None] + offsets[:, None] * normal[None]
    series_uid = series_uid or _uid("series", seed)
    study_uid = _uid("study", seed)
    frame_uid = _uid("frame", seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    files: list[Path | None] = [None] * n
    for rank, k in enumerate(order):
        sop_uid = _uid("sop", seed, series_uid, k)
        ds = _base_dataset(CT_IMAGE_STORAGE, sop_uid, ExplicitVRLittleEndian)
        ds.Modality = "CT"
        ds.PatientID = f"P{seed}"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesNumber = series_number
        ds.InstanceNumber = rank + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
        ds.SliceThickness = f"{slice_spacing:.6f}"
        if realistic_header:
            _add_realistic_clutter(ds, k)
        ds.RescaleSlope = f"{slopes[k]:g}"
        ds.RescaleIntercept = f"{intercepts[k]:g}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(stored[k], dtype="<i2").tobytes()
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax)
        name = f"{name_prefix}{rng.integers(10**8):08d}.dcm" if shuffle else f"{name_prefix}{k:04d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        files[k] = path
    affine = np.eye(4)
    affine[:3, 0] = row_cos * pixel_spacing[1]
    affine[:3, 1] = col_cos * pixel_spacing[0]
    affine[:3, 2] = normal * (slice_spacing if n == 1 else (offsets[-1] - offsets[0]) / (n - 1))
    affine[:3, 3] = positions[0]
    values = stored.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
    return SyntheticVolume([f for f in files if f is not None], series_uid, stored, values, affine, positions)


def write_enhanced_ct(
    path: str | Path,
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
) -> SyntheticVolume:
    """Write an Enhanced CT (multi-frame) file with per-frame functional groups.

    Orientation, pixel measures and (when ``slopes`` is None) rescale sit in the shared functional groups;
    positions, and per-frame rescale when ``slopes`` is given, in the per-frame groups. With ``shuffle_frames``
    the frames are stored in an order that is not the geometric one.

    Args:
        path: output file.
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
        seed: seed for the pixel values and the frame order.

    Returns:
        the written volume's description (``files`` holds the single path).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 1500, size=(n_frames, rows, columns), dtype=np.int16)
    row_cos, col_cos = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_cos, col_cos)
    positions = np.asarray(origin, float)[None] + (np.arange(n_frames) * slice_spacing)[:, None] * normal[None]
    shared_rescale = slopes is None
    slopes_ = np.full(n_frames, 2.0) if slopes is None else np.asarray(slopes, float)
    intercepts_ = np.full(n_frames, -1024.0) if intercepts is None else np.asarray(intercepts, float)
    order = rng.permutation(n_frames) if shuffle_frames else np.arange(n_frames)

    sop_uid = _uid("enhanced", seed)
    ds = _base_dataset(ENHANCED_CT_IMAGE_STORAGE, sop_uid, ExplicitVRLittleEndian)
    ds.Modality = "CT"
    ds.PatientID = f"P{seed}"
    ds.StudyInstanceUID = _uid("study", seed)
    ds.SeriesInstanceUID = series_uid = _uid("enhanced-series", seed)
    ds.FrameOfReferenceUID = _uid("frame", seed)
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = n_frames

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    measures.SliceThickness = f"{slice_spacing:g}"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [f"{v:g}" for v in orientation]
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    if shared_rescale:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "2", "-1024", "HU"
        shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for k in order:
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        item.PlanePositionSequence = DicomSequence([position])
        content = Dataset()
        content.InStackPositionNumber = int(k) + 1
        item.FrameContentSequence = DicomSequence([content])
        if not shared_rescale:
            transform = Dataset()
            transform.RescaleSlope = f"{slopes_[k]:g}"
            transform.RescaleIntercept = f"{intercepts_[k]:g}"
            transform.RescaleType = "HU"
            item.PixelValueTransformationSequence = DicomSequence([transform])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.ascontiguousarray(stored[order], dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)

    affine = np.eye(4)
    affine[:3, 0] = row_cos * pixel_spacing[1]
    affine[:3, 1] = col_cos * pixel_spacing[0]
    affine[:3, 2] = normal * slice_spacing
    affine[:3, 3] = positions[0]
    values = stored.astype(np.float64) * slopes_[:, None, None] + intercepts_[:, None, None]
    return SyntheticVolume([path], series_uid, stored, values, affine, positions)


def write_xray(
    path: str | Path,
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
) -> np.ndarray:
    """Write a single-frame projection radiograph (CR or DX) and return its stored values (rows, columns).

    Args:
        path: output file.
        stored: stored values, unsigned, shape (rows, columns); random 12-bit values (12 x 10) if None.
        photometric: "MONOCHROME1" (white = low values) or "MONOCHROME2".
        modality: "CR" or "DX".
        bits_stored: BitsStored (BitsAllocated is 16).
        pixel_spacing: PixelSpacing, written when given.
        imager_pixel_spacing: ImagerPixelSpacing, written when given.
        window: (WindowCenter, WindowWidth), written when given.
        rescale: (RescaleSlope, RescaleIntercept), written when given.
        seed: seed for the random values.

    Returns:
        the stored values.
    """
    if stored is None:
        stored = np.random.default_rng(seed).integers(0, 2**bits_stored, size=(12, 10), dtype=np.uint16)
    sop_class = CR_IMAGE_STORAGE if modality == "CR" else DX_IMAGE_STORAGE
    ds = _base_dataset(sop_class, _uid("xray", seed, photometric), ExplicitVRLittleEndian)
    ds.Modality = modality
    ds.PatientID = f"P{seed}"
    ds.StudyInstanceUID = _uid("xray-study", seed)
    ds.SeriesInstanceUID = _uid("xray-series", seed, photometric)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [f"{v:g}" for v in imager_pixel_spacing]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = f"{rescale[0]:g}", f"{rescale[1]:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    ds.save_as(Path(path), enforce_file_format=True)
    return stored
