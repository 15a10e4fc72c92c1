"""Writers for the demo data set: NIfTI volumes and radiographs, BIDS JSON sidecars, DICOM CT series and CR files.

Arrays come from :mod:`medtl_monai.data.phantom`: CT as ``[z, y, x]`` in HU on an LPS grid (``x`` left, ``y``
posterior, ``z`` superior), radiographs as ``[row, column]`` with row 0 superior and column 0 at the patient's
right. DICOM files are written with pydicom (explicit VR little endian, file meta, UIDs derived from seeded
entropy so that a data set is reproducible); identities are synthetic (``DEMO^PATIENT0001``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

__all__ = [
    "CT_IMAGE_STORAGE",
    "CR_IMAGE_STORAGE",
    "demo_uid",
    "ct_affine",
    "xray_affine",
    "to_stored_hu",
    "write_ct_nifti",
    "write_xray_nifti",
    "write_sidecar",
    "write_ct_series",
    "write_cr",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
_CT_INTERCEPT = -1024


def demo_uid(*parts: object) -> str:
    """A reproducible DICOM UID from the given parts (seed, case id, role, index ...).

    Args:
        parts: values whose string forms seed the UID.

    Returns:
        the UID (pydicom's prefix + a hash of ``parts``).
    """
    return str(generate_uid(entropy_srcs=["medtl_monai-demo", *(str(p) for p in parts)]))


def to_stored_hu(hu: np.ndarray) -> np.ndarray:
    """Round HU values to int16 within the range a CT with intercept -1024 can store (-1024 .. 3071).

    Args:
        hu: HU values.

    Returns:
        int16 array.
    """
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def ct_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """NIfTI (RAS) affine of a volume stored ``[x, y, z]`` on an LPS grid.

    Args:
        spacing: ``(dz, dy, dx)`` in mm.
        origin: LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]`` (the DICOM ImagePositionPatient of the first
            slice).

    Returns:
        the 4x4 affine (axes L->R flipped to RAS: columns ``(-dx, 0, 0)``, ``(0, -dy, 0)``, ``(0, 0, dz)``).
    """
    dz, dy, dx = spacing
    affine = np.diag([-dx, -dy, dz, 1.0])
    affine[:3, 3] = (-origin[0], -origin[1], origin[2])
    return affine


def xray_affine(pixel_spacing: float, shape: Sequence[int]) -> np.ndarray:
    """NIfTI (RAS) affine of a radiograph stored ``[column, row]`` (columns towards the patient's left, rows down).

    Args:
        pixel_spacing: pixel size in mm (square pixels).
        shape: ``(rows, columns)`` of the image.

    Returns:
        the 4x4 affine; the image lies in a coronal plane centred on the origin.
    """
    rows, cols = shape
    s = pixel_spacing
    affine = np.array([[-s, 0, 0, (cols - 1) / 2 * s], [0, 0, 1.0, 0], [0, -s, 0, (rows - 1) / 2 * s], [0, 0, 0, 1]])
    return affine


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def write_ct_nifti(path: str | PathLike, hu: np.ndarray, *, spacing: Sequence[float],
                   origin: Sequence[float]) -> Path:
    """Write a CT volume ``[z, y, x]`` (int16 HU) as NIfTI stored ``[x, y, z]`` with an RAS affine.

    Args:
        path: the ``.nii.gz`` file.
        hu: int16 HU volume indexed ``[z, y, x]``.
        spacing: ``(dz, dy, dx)`` in mm.
        origin: LPS position of the first voxel.

    Returns:
        the path.
    """
    data = np.ascontiguousarray(hu.transpose(2, 1, 0)).astype(np.int16)
    return _save_nifti(Path(path), data, ct_affine(spacing, origin))


def write_xray_nifti(path: str | PathLike, image: np.ndarray, *, pixel_spacing: float) -> Path:
    """Write a radiograph ``[row, column]`` (MONOCHROME2 values) as a 2D NIfTI stored ``[column, row]``.

    Args:
        path: the ``.nii.gz`` file.
        image: 12-bit image, row 0 superior, column 0 at the patient's right.
        pixel_spacing: pixel size in mm.

    Returns:
        the path.
    """
    data = np.ascontiguousarray(image.T).astype(np.int16)
    return _save_nifti(Path(path), data, xray_affine(pixel_spacing, image.shape))


def write_sidecar(path: str | PathLike, fields: Mapping[str, Any]) -> Path:
    """Write a BIDS JSON sidecar.

    Args:
        path: the ``.json`` file.
        fields: the content.

    Returns:
        the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(fields), indent=2, sort_keys=True) + "\n")
    return path


def _file_dataset(path: Path, sop_class: str, sop_instance: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def _set_common(ds: Dataset, patient: Mapping[str, Any]) -> None:
    """Patient and study attributes shared by every file of a case."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient["PatientName"]
    ds.PatientID = patient["PatientID"]
    ds.PatientSex = patient.get("PatientSex", "O")
    ds.PatientAge = patient.get("PatientAge", "")
    ds.PatientBirthDate = ""
    ds.StudyInstanceUID = patient["StudyInstanceUID"]
    ds.StudyID = patient.get("StudyID", "1")
    ds.StudyDate = patient.get("StudyDate", "20200101")
    ds.StudyTime = patient.get("StudyTime", "120000")
    ds.AccessionNumber = patient.get("AccessionNumber", "")
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "DEMO CHEST"
    ds.Manufacturer = "medtl_monai demo phantom"
    ds.InstitutionName = "SYNTHETIC"
    ds.BodyPartExamined = "CHEST"
    ds.BurnedInAnnotation = "NO"


def write_ct_series(folder: str | PathLike, hu: np.ndarray, *, spacing: Sequence[float], origin: Sequence[float],
                    patient: Mapping[str, Any], series_uid: str, frame_uid: str, uid_parts: Sequence[object],
                    file_order: np.ndarray | None = None) -> list[Path]:
    """Write a CT volume as one DICOM file per slice.

    Slices are stored as int16 ``HU + 1024`` with RescaleSlope 1 and RescaleIntercept -1024, with
    ImagePositionPatient ``origin + (0, 0, k * dz)``, ImageOrientationPatient ``[1, 0, 0, 0, 1, 0]``, PixelSpacing
    ``[dy, dx]``, SliceThickness ``dz``. InstanceNumber 1 is the most superior slice (head-first acquisition), so
    the instance order is the reverse of the geometric one; ``file_order`` gives each slice's file name index, to
    write names that carry no order at all.

    Args:
        folder: the series folder (created).
        hu: int16 HU volume indexed ``[z, y, x]``, ``z`` ascending (inferior to superior).
        spacing: ``(dz, dy, dx)`` in mm.
        origin: LPS position ``(x, y, z)`` of voxel ``[0, 0, 0]``.
        patient: patient and study attributes (``PatientName``, ``PatientID``, ``StudyInstanceUID``, ...).
        series_uid: SeriesInstanceUID.
        frame_uid: FrameOfReferenceUID.
        uid_parts: seed parts for the per-slice SOPInstanceUIDs.
        file_order: a permutation of ``range(nz)``; slice ``k`` is written to ``f"{file_order[k]:04d}.dcm"``.

    Returns:
        the written paths, in slice (``z``) order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = (float(s) for s in spacing)
    order = np.arange(nz) if file_order is None else np.asarray(file_order)
    stored = (hu.astype(np.int32) - _CT_INTERCEPT).astype("<i2")
    # one dataset, updated per slice: building ~50 elements per file would dominate the writing time
    ds = _file_dataset(folder / "0.dcm", CT_IMAGE_STORAGE, demo_uid(*uid_parts, "ct-slice", 0))
    _set_common(ds, patient)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 2
    ds.SeriesDescription = "CHEST DEMO"
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = dz
    ds.PixelSpacing = [dy, dx]
    ds.KVP = 120
    ds.ConvolutionKernel = "STANDARD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _CT_INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = -600, 1500
    ds.InstanceNumber, ds.ImagePositionPatient, ds.SliceLocation, ds.PixelData = 0, [0, 0, 0], 0, b""
    encoder = _SliceEncoder(ds)
    paths = []
    for k in range(nz):
        path = folder / f"{int(order[k]):04d}.dcm"
        z = round(float(origin[2]) + k * dz, 4)
        encoder.write(path, SOPInstanceUID=demo_uid(*uid_parts, "ct-slice", k), InstanceNumber=nz - k,
                      ImagePositionPatient=[round(float(origin[0]), 4), round(float(origin[1]), 4), z],
                      SliceLocation=z, PixelData=stored[k].tobytes())
        paths.append(path)
    return paths


def _encode(ds: Dataset) -> bytes:
    """Explicit VR little endian encoding of a dataset's elements (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


class _SliceEncoder:
    """Write the files of a series fast: the elements shared by all slices are encoded once.

    pydicom's ``save_as`` re-encodes ~50 elements per file, which dominates writing thousands of small slices. The
    template's elements are encoded in tag order as constant byte runs, with the per-slice elements
    (:attr:`VARYING`) encoded in between for each file; the result is byte-identical to ``save_as``.
    """

    VARYING = ("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation", "PixelData")

    def __init__(self, template: FileDataset) -> None:
        varying = {Tag(name) for name in self.VARYING}
        self.template = template
        self.parts: list[bytes | str] = []
        run = Dataset()
        for elem in template:  # iterates in tag order
            if elem.tag in varying:
                if len(run):
                    self.parts.append(_encode(run))
                    run = Dataset()
                self.parts.append(elem.keyword)
            else:
                run.add(elem)
        if len(run):
            self.parts.append(_encode(run))

    def write(self, path: Path, **values: Any) -> None:
        """Write one file with the template's elements and ``values`` for the varying ones."""
        meta = FileMetaDataset(self.template.file_meta)
        meta.MediaStorageSOPInstanceUID = values["SOPInstanceUID"]
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
                vr = "OW" if part == "PixelData" else dictionary_VR(part)  # 16-bit pixels: OW, as save_as decides
                one.add_new(part, vr, values[part])
                chunks.append(_encode(one))
        path.write_bytes(b"".join(chunks))


def write_cr(path: str | PathLike, image: np.ndarray, *, pixel_spacing: float, patient: Mapping[str, Any],
             series_uid: str, sop_uid: str, photometric: str = "MONOCHROME2", view: str = "PA") -> Path:
    """Write a radiograph as a DICOM CR file (12-bit unsigned).

    With ``photometric="MONOCHROME1"`` the stored values are inverted (``4095 - value``): a reader must invert
    them back to show air dark.

    Args:
        path: the ``.dcm`` file.
        image: 12-bit MONOCHROME2 image ``[row, column]``, row 0 superior, column 0 at the patient's right.
        pixel_spacing: pixel size in mm (PixelSpacing and ImagerPixelSpacing; no magnification).
        patient: patient and study attributes.
        series_uid: SeriesInstanceUID.
        sop_uid: SOPInstanceUID.
        photometric: ``"MONOCHROME2"`` or ``"MONOCHROME1"``.
        view: ViewPosition, ``"PA"`` or ``"AP"``.

    Returns:
        the path.

    Raises:
        ValueError: for another photometric interpretation.
    """
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.clip(np.rint(image), 0, 4095).astype(np.uint16)
    if photometric == "MONOCHROME1":
        values = (4095 - values).astype(np.uint16)
    ds = _file_dataset(path, CR_IMAGE_STORAGE, sop_uid)
    _set_common(ds, patient)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = "CR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ViewPosition = view
    ds.PatientOrientation = ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = values.shape
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.ImagerPixelSpacing = [pixel_spacing, pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = values.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
