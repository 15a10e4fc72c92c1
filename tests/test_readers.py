"""Readers give the volume the DICOM header describes, in MONAI's ITKReader conventions, fast and for every codec."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from monai.data import DataLoader, Dataset
from monai.data.image_reader import NibabelReader
from monai.transforms import Compose, EnsureChannelFirstd, LoadImage, LoadImaged, Orientationd
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from medtl_monai.io import DicomSeriesReader, DicomXrayReader, MedicalImageReader, SliceSpacingError, lps_ras_flip
from medtl_monai.synthetic.dicom import write_ct_series, write_enhanced_ct, write_xray

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # never get_testdata_file: it goes online
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"
CT5N = PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N"
CR_MONOCHROME1 = PYDICOM_FILES / "dicomdirtests" / "77654033" / "CR1" / "6154"

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
_c, _s = np.cos(0.4), np.sin(0.4)
OBLIQUE = (_c, _s, 0.0, -_s * np.cos(0.3), _c * np.cos(0.3), -np.sin(0.3))  # rotated about z, then tilted


def load_series(path, **kwargs) -> torch.Tensor:
    return LoadImage(reader=DicomSeriesReader(**kwargs), image_only=True)(str(path))


@pytest.fixture(scope="module")
def itk_load():
    return LoadImage(reader="ITKReader", image_only=True)


def sitk_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK's ImageSeriesReader: (array in (x, y, z) order, 4x4 LPS affine)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0), affine


def itk_layout(stack: np.ndarray) -> np.ndarray:
    """A ``(slices, rows, columns)`` stack in the reader's ``(columns, rows, slices)`` layout."""
    return stack.transpose(2, 1, 0)


# ---------------------------------------------------------------- series geometry and values


def test_real_ct_series_equals_itkreader(itk_load):
    ours, theirs = load_series(CT5N), itk_load(str(CT5N))
    assert ours.shape == theirs.shape == (16, 16, 5)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(ours.meta["affine"].numpy(), theirs.meta["affine"].numpy(), atol=1e-5)
    assert ours.meta["space"] == "RAS"
    assert np.isnan(ours.meta["original_channel_dim"])
    np.testing.assert_array_equal(ours.meta["spatial_shape"], (16, 16, 5))
    assert ours.meta["filename_or_obj"] == str(CT5N)


def test_real_ct_series_is_ordered_by_position_not_instance_number():
    volume = load_series(CT5N).numpy()
    headers = [pydicom.dcmread(f) for f in CT5N.iterdir()]
    lowest = min(headers, key=lambda ds: float(ds.ImagePositionPatient[2]))
    highest_instance = max(headers, key=lambda ds: int(ds.InstanceNumber))
    assert lowest is highest_instance  # InstanceNumber runs against the geometry in this series
    np.testing.assert_array_equal(volume[..., 0], apply_modality_lut(lowest.pixel_array, lowest).T)


@pytest.mark.parametrize(
    "orientation", [AXIAL, SAGITTAL, CORONAL, OBLIQUE], ids=["axial", "sagittal", "coronal", "oblique"]
)
def test_synthetic_series_matches_simpleitk_and_header(tmp_path, orientation):
    series = write_ct_series(tmp_path, n_slices=7, orientation=orientation, slope=2.0, intercept=-1000.0)
    ours = load_series(tmp_path, affine_lps_to_ras=False)
    array, affine = sitk_series(tmp_path)
    np.testing.assert_allclose(ours.numpy(), array, atol=1e-3)
    np.testing.assert_allclose(ours.meta["affine"].numpy(), affine, atol=1e-4)
    np.testing.assert_allclose(ours.numpy(), series.itk_array, atol=1e-3)
    np.testing.assert_allclose(ours.meta["affine"].numpy(), series.affine_lps, atol=1e-4)
    assert ours.meta["space"] == "LPS"
    np.testing.assert_allclose(load_series(tmp_path).meta["affine"].numpy(), lps_ras_flip(affine), atol=1e-4)


@pytest.mark.parametrize("orientation", [SAGITTAL, OBLIQUE], ids=["sagittal", "oblique"])
def test_orientation_ras_gives_same_result_as_itkreader(tmp_path, orientation):
    write_ct_series(tmp_path, n_slices=5, orientation=orientation)

    def pipeline(reader):
        return Compose(
            [LoadImaged("image", reader=reader), EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS")]
        )

    ours = pipeline(DicomSeriesReader())({"image": str(tmp_path)})["image"]
    theirs = pipeline("ITKReader")({"image": str(tmp_path)})["image"]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-3)
    np.testing.assert_allclose(ours.affine.numpy(), theirs.affine.numpy(), atol=1e-4)


def test_shuffled_file_names_and_instance_numbers_give_the_same_volume(tmp_path):
    stored = np.random.default_rng(5).integers(0, 3000, size=(6, 9, 7), dtype=np.int16)
    ordered = write_ct_series(tmp_path / "ordered", stored=stored, shuffle=False, orientation=OBLIQUE)
    write_ct_series(tmp_path / "shuffled", stored=stored, shuffle=True, seed=11, orientation=OBLIQUE)
    a, b = load_series(tmp_path / "ordered"), load_series(tmp_path / "shuffled")
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.meta["affine"].numpy(), b.meta["affine"].numpy(), atol=1e-6)
    np.testing.assert_allclose(a.numpy(), ordered.itk_array)


def test_per_slice_rescale_is_applied_slice_by_slice(tmp_path):
    series = write_ct_series(tmp_path, n_slices=4, slope=[1.0, 0.5, 2.0, 1.5], intercept=[-1024, 10, -3.5, 0])
    np.testing.assert_allclose(load_series(tmp_path).numpy(), series.itk_array, rtol=1e-6)


def test_values_are_the_stored_values_times_slope_plus_intercept(tmp_path):
    stored = np.random.default_rng(3).integers(-200, 3000, size=(4, 10, 8), dtype=np.int16)
    slopes, intercepts = [1.0, 0.5, 2.0, 1.5], [-1024.0, 10.0, -3.5, 0.0]
    write_ct_series(tmp_path, stored=stored, slope=slopes, intercept=intercepts, shuffle=True, seed=8)
    expected = np.stack([stored[k] * slopes[k] + intercepts[k] for k in range(4)])  # geometric order
    np.testing.assert_allclose(load_series(tmp_path).numpy(), itk_layout(expected), rtol=1e-6)


def test_returned_volume_is_c_contiguous_float32(tmp_path):
    stored = np.random.default_rng(4).integers(0, 3000, size=(11, 10, 8), dtype=np.int16)
    write_ct_series(tmp_path, stored=stored)  # slope 1, intercept -1024
    reader = DicomSeriesReader()
    array, meta = reader.get_data(reader.read(tmp_path))
    assert array.dtype == np.float32 and array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(meta["spacing"], (0.6, 0.8, 2.0), rtol=1e-6)
    np.testing.assert_array_equal(array, itk_layout(stored - 1024.0))


def test_a_marker_voxel_lies_at_its_dicom_patient_position(tmp_path):
    stored = np.zeros((5, 10, 8), dtype=np.int16)
    k, r, c = 3, 7, 2  # slice, row, column of the marker
    stored[k, r, c] = 1000
    series = write_ct_series(tmp_path, stored=stored, orientation=OBLIQUE, pixel_spacing=(0.8, 0.6), intercept=0)
    image = load_series(tmp_path, affine_lps_to_ras=False)
    index = np.unravel_index(int(image.argmax()), image.shape)
    assert index == (c, r, k)  # ITK layout: (column, row, slice)
    # DICOM PS3.3 C.7.6.2.1.1: P = IPP + column * column spacing * row cosines + row * row spacing * column cosines
    row_cosines, column_cosines = np.array(OBLIQUE[:3]), np.array(OBLIQUE[3:])
    origin = np.array(pydicom.dcmread(series.files[k]).ImagePositionPatient, dtype=float)  # files: geometric order
    position = origin + c * 0.6 * row_cosines + r * 0.8 * column_cosines
    np.testing.assert_allclose(image.meta["affine"].numpy() @ np.array([c, r, k, 1.0]), [*position, 1.0], atol=1e-4)


# ---------------------------------------------------------------- several series, gaps


def test_folder_with_two_series_reads_the_largest_and_logs_why(tmp_path, caplog):
    big = write_ct_series(tmp_path, n_slices=7, seed=1, name_prefix="a")
    small = write_ct_series(tmp_path, n_slices=4, seed=2, name_prefix="b", origin=(0, 0, -50))
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        volume = load_series(tmp_path)
    np.testing.assert_allclose(volume.numpy(), big.itk_array)
    assert big.series_uid in caplog.text and "most slices" in caplog.text and small.series_uid in caplog.text
    assert volume.meta["SeriesInstanceUID"] == big.series_uid


def test_folder_with_two_series_honours_series_uid(tmp_path, caplog):
    write_ct_series(tmp_path, n_slices=7, seed=1, name_prefix="a")
    small = write_ct_series(tmp_path, n_slices=4, seed=2, name_prefix="b", orientation=SAGITTAL)
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        volume = load_series(tmp_path, series_uid=small.series_uid)
    np.testing.assert_allclose(volume.numpy(), small.itk_array)
    np.testing.assert_allclose(volume.meta["affine"].numpy(), small.affine_ras, atol=1e-5)
    assert "series_uid was given" in caplog.text
    reader = DicomSeriesReader()  # per-call override through read(**kwargs)
    array, _ = reader.get_data(reader.read(tmp_path, series_uid=small.series_uid))
    assert array.shape[2] == 4
    np.testing.assert_allclose(array, small.itk_array)


def test_non_dicom_and_non_image_files_in_a_series_folder_are_ignored(tmp_path):
    series = write_ct_series(tmp_path, n_slices=3)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "report.dcm").write_bytes((PYDICOM_FILES / "test-SR.dcm").read_bytes())
    np.testing.assert_allclose(load_series(tmp_path).numpy(), series.itk_array)


def test_uneven_spacing_is_an_error_naming_the_folder_and_positions(tmp_path):
    write_ct_series(tmp_path, offsets=[0.0, 2.0, 4.0, 8.0, 10.0])
    with pytest.raises(SliceSpacingError) as info:
        load_series(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "gap" in message and "from 2 to 4 mm" in message
    assert info.value.positions == pytest.approx([5.0, 7.0, 9.0, 13.0, 15.0], abs=1e-5)  # origin z = 5


def test_gap_tolerance_is_a_parameter(tmp_path):
    gapped = write_ct_series(tmp_path, offsets=[0.0, 2.0, 4.0, 8.0, 10.0])
    tolerated = load_series(tmp_path, gap_tolerance=1.5)
    assert tolerated.shape[2] == 5
    np.testing.assert_allclose(tolerated.numpy(), gapped.itk_array)  # every slice, in position order
    assert float(tolerated.meta["affine"][2, 2]) == pytest.approx(10.0 / 4)  # the mean step spans the stack
    jitter = tmp_path / "jitter"
    jittered = write_ct_series(jitter, offsets=[0.0, 2.004, 3.998, 6.0, 8.003])
    image = load_series(jitter)
    assert image.shape[2] == 5  # within 1% + 0.01 mm
    np.testing.assert_allclose(image.numpy(), jittered.itk_array)
    assert float(image.meta["affine"][2, 2]) == pytest.approx(8.003 / 4)
    with pytest.raises(SliceSpacingError):
        load_series(jitter, gap_tolerance=0.0, gap_tolerance_mm=0.001)


def test_real_series_with_missing_slices_is_reported():
    folder = PYDICOM_FILES / "dicomdirtests" / "77654033" / "CT2"
    with pytest.raises(SliceSpacingError, match="uneven slice spacing"):
        load_series(folder)


# ---------------------------------------------------------------- codecs


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_padded.dcm",
    ],
)
def test_lossless_wheel_files_decode_to_the_uncompressed_pixels(name):
    reference = load_series(PYDICOM_FILES / "MR_small.dcm")
    decoded = load_series(PYDICOM_FILES / name)
    np.testing.assert_array_equal(decoded.numpy(), reference.numpy())
    np.testing.assert_allclose(decoded.meta["affine"].numpy(), reference.meta["affine"].numpy())


@pytest.mark.parametrize(
    ("name", "reference", "max_mean_error"),
    [
        ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm", 0.0),  # JPEG lossless
        ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm", 0.0),  # JPEG 2000
        ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", 2.0),  # JPEG baseline (lossy, YBR)
        ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", 2.0),  # JPEG-LS near-lossless
    ],
)
def test_colour_wheel_files_decode_close_to_the_rle_reference(name, reference, max_mean_error):
    load = LoadImage(reader=DicomXrayReader(), image_only=True)
    decoded, expected = load(str(PYDICOM_FILES / name)), load(str(PYDICOM_FILES / reference))
    assert decoded.shape == expected.shape == (100, 100, 3)
    assert decoded.meta["original_channel_dim"] == -1
    assert float((decoded - expected).abs().mean()) <= max_mean_error
    rgb = pydicom.dcmread(PYDICOM_FILES / reference).pixel_array  # (rows, columns, RGB)
    np.testing.assert_array_equal(expected.numpy(), rgb.transpose(1, 0, 2))  # the reference itself is exact


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "693_J2KI.dcm"])
def test_lossy_grey_wheel_files_decode_like_pydicom(name):
    ds = pydicom.dcmread(PYDICOM_FILES / name)
    expected = apply_modality_lut(ds.pixel_array, ds)
    image = LoadImage(reader=DicomXrayReader(apply_voi=False), image_only=True)(str(PYDICOM_FILES / name))
    np.testing.assert_allclose(image.numpy(), expected.T, rtol=1e-6)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpeg-ls", "j2k"])
def test_compressed_series_decodes_exactly(tmp_path, syntax):
    series = write_ct_series(tmp_path, n_slices=3, rows=40, columns=36, transfer_syntax=syntax, orientation=OBLIQUE)
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.numpy(), series.itk_array.astype(np.float32))
    np.testing.assert_allclose(volume.meta["affine"].numpy(), series.affine_ras, atol=1e-5)


# ---------------------------------------------------------------- multi-frame


def test_enhanced_ct_with_shared_rescale_and_shuffled_frames(tmp_path):
    volume = write_enhanced_ct(tmp_path / "enhanced.dcm")
    image = load_series(volume.files[0])
    np.testing.assert_allclose(image.numpy(), volume.itk_array)
    np.testing.assert_allclose(image.meta["affine"].numpy(), volume.affine_ras, atol=1e-5)


def test_enhanced_ct_with_per_frame_rescale(tmp_path):
    volume = write_enhanced_ct(tmp_path / "enhanced.dcm", slopes=[1, 2, 0.5, 1, 3], intercepts=[0, -10, 5, -1024, 7])
    np.testing.assert_allclose(load_series(volume.files[0]).numpy(), volume.itk_array, rtol=1e-6)
    slopes, intercepts = [1, 2, 0.5, 1, 3], [0, -10, 5, -1024, 7]  # geometric frame order, frames stored shuffled
    expected = np.stack([volume.stored[k] * slopes[k] + intercepts[k] for k in range(5)])
    np.testing.assert_allclose(load_series(volume.files[0]).numpy(), itk_layout(expected), rtol=1e-6)


def test_rt_dose_grid_matches_itkreader_when_rt_dose_is_accepted(itk_load):
    path = PYDICOM_FILES / "rtdose.dcm"
    ours, theirs = load_series(path, accepted_sop_classes=["RTDoseStorage"]), itk_load(str(path))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(ours.meta["affine"].numpy(), theirs.meta["affine"].numpy(), atol=1e-4)


def test_single_slice_file_is_a_one_slice_volume_like_itkreader(itk_load):
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ours, theirs = load_series(PYDICOM_FILES / name), itk_load(str(PYDICOM_FILES / name))
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        np.testing.assert_allclose(ours.meta["affine"].numpy(), theirs.meta["affine"].numpy(), atol=1e-4)


# ---------------------------------------------------------------- radiographs


def load_xray(path, **kwargs) -> torch.Tensor:
    return LoadImage(reader=DicomXrayReader(**kwargs), image_only=True)(str(path))


def test_monochrome1_is_inverted_to_monochrome2(tmp_path, caplog):
    stored = write_xray(tmp_path / "m2.dcm", photometric="MONOCHROME2")
    write_xray(tmp_path / "m1.dcm", photometric="MONOCHROME1", stored=stored)
    with caplog.at_level(logging.WARNING):
        m2, m1 = load_xray(tmp_path / "m2.dcm"), load_xray(tmp_path / "m1.dcm")
    assert "Unable to return" not in caplog.text  # 12 bits stored in 16: no pydicom decoder warning
    np.testing.assert_array_equal(m2.numpy(), stored.T)  # (column, row) layout, values untouched
    np.testing.assert_array_equal(m1.numpy(), 4095 - m2.numpy())  # 12-bit: max minus value
    np.testing.assert_array_equal(m1.meta["affine"], m2.meta["affine"])  # orientation kept
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "m1.dcm")))[0]
    np.testing.assert_array_equal(m1.numpy(), itk.T)  # same inversion as ITK/GDCM


def test_voi_window_is_applied_before_inversion(tmp_path):
    stored = write_xray(tmp_path / "m2.dcm", window=(1500, 1000))
    write_xray(tmp_path / "m1.dcm", photometric="MONOCHROME1", stored=stored, window=(1500, 1000))
    m2, m1 = load_xray(tmp_path / "m2.dcm"), load_xray(tmp_path / "m1.dcm")
    ds = pydicom.dcmread(tmp_path / "m2.dcm")
    np.testing.assert_allclose(m2.numpy(), apply_voi_lut(stored, ds).T, rtol=1e-6)
    assert float(m2.min()) == 0 and float(m2.max()) == 4095  # the window saturates both ends of a 0..4095 range
    np.testing.assert_allclose(m1.numpy(), 4095 - m2.numpy(), atol=1e-3)
    np.testing.assert_array_equal(load_xray(tmp_path / "m2.dcm", apply_voi=False).numpy(), stored.T)


def test_real_monochrome1_radiograph_matches_itkreader_without_voi(itk_load):
    ours = load_xray(CR_MONOCHROME1, apply_voi=False)
    theirs = itk_load(str(CR_MONOCHROME1))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy()[..., 0], atol=1e-3)
    np.testing.assert_allclose(ours.meta["affine"].numpy(), np.diag([-0.1, -0.1, 1.0]))
    windowed = load_xray(CR_MONOCHROME1)  # CR: window applied by default
    assert not np.allclose(windowed.numpy(), ours.numpy())
    ds = pydicom.dcmread(CR_MONOCHROME1)  # 12 bits, slope 0.684, intercept 200, window 1600/2800
    voi = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    low, high = 200.0, 4095 * 0.684 + 200.0  # the rescaled range of 12-bit values: the window's output range
    np.testing.assert_allclose(windowed.numpy(), (low + high - voi).T, rtol=1e-6)  # windowed, then inverted


@pytest.mark.parametrize(
    ("pixel_spacing", "imager_spacing", "source", "expected"),
    [((0.3, 0.25), (0.15, 0.2), "PixelSpacing", (0.25, 0.3)), (None, (0.15, 0.2), "ImagerPixelSpacing", (0.2, 0.15))],
)
def test_xray_spacing_is_kept(tmp_path, pixel_spacing, imager_spacing, source, expected):
    stored = write_xray(
        tmp_path / "x.dcm", modality="DX", pixel_spacing=pixel_spacing, imager_pixel_spacing=imager_spacing
    )
    image = load_xray(tmp_path / "x.dcm")
    assert image.meta["spacing_source"] == source
    np.testing.assert_allclose(image.meta["spacing"], expected)
    np.testing.assert_allclose(image.meta["affine"].numpy(), np.diag([-expected[0], -expected[1], 1.0]))
    assert image.shape == (10, 12)
    np.testing.assert_array_equal(image.numpy(), stored.T)


def test_xray_values_are_the_stored_values_times_slope_plus_intercept(tmp_path):
    stored = write_xray(tmp_path / "x.dcm", modality="DX", rescale=(2.5, -100.0))
    image = load_xray(tmp_path / "x.dcm", apply_voi=False)
    np.testing.assert_allclose(image.numpy(), stored.T * 2.5 - 100.0, rtol=1e-6)


# ---------------------------------------------------------------- dispatch, NIfTI, MONAI integration


@pytest.mark.parametrize("name", ["anatomical.nii", "standard.nii.gz", "example_nifti2.nii.gz"])
def test_nifti_is_delegated_to_nibabel(name):
    path = str(NIBABEL_FILES / name)
    ours = LoadImage(reader=MedicalImageReader(), image_only=True)(path)
    theirs = LoadImage(reader=NibabelReader(), image_only=True)(path)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_allclose(ours.meta["affine"].numpy(), theirs.meta["affine"].numpy())


def test_medical_image_reader_dispatches_on_the_path(tmp_path):
    series = write_ct_series(tmp_path / "series", n_slices=3)
    enhanced = write_enhanced_ct(tmp_path / "enhanced.dcm")
    radiograph = write_xray(tmp_path / "cr")  # no suffix: recognised by its DICOM header
    reader = MedicalImageReader()
    assert isinstance(reader.reader_for(tmp_path / "series"), DicomSeriesReader)
    assert isinstance(reader.reader_for(enhanced.files[0]), DicomSeriesReader)
    assert isinstance(reader.reader_for(tmp_path / "cr"), DicomXrayReader)
    assert isinstance(reader.reader_for(NIBABEL_FILES / "anatomical.nii"), NibabelReader)
    load = LoadImage(reader=reader, image_only=True)
    assert load(str(tmp_path / "series")).shape == (8, 10, 3)
    assert load(str(enhanced.files[0])).shape == (7, 9, 5)
    assert load(str(tmp_path / "cr")).shape == (10, 12)
    np.testing.assert_allclose(load(str(tmp_path / "series")).numpy(), series.itk_array)
    np.testing.assert_allclose(load(str(enhanced.files[0])).numpy(), enhanced.itk_array)
    np.testing.assert_array_equal(load(str(tmp_path / "cr")).numpy(), radiograph.T)


def test_reader_can_be_named_by_dotted_path_as_in_bundle_configs():
    image = LoadImage(reader="medtl_monai.io.DicomSeriesReader", image_only=True)(str(CT5N))
    assert image.shape == (16, 16, 5)
    np.testing.assert_array_equal(image.numpy(), load_series(CT5N).numpy())


def test_loadimaged_batches_through_a_dataloader(tmp_path):
    data, volumes = [], []
    for k in range(2):
        volumes.append(write_ct_series(tmp_path / f"s{k}", n_slices=4, seed=k))
        data.append({"image": str(tmp_path / f"s{k}")})
    transform = Compose(
        [LoadImaged("image", reader=DicomSeriesReader()), EnsureChannelFirstd("image"), Orientationd("image", "RAS")]
    )
    batch = next(iter(DataLoader(Dataset(data, transform), batch_size=2)))
    assert batch["image"].shape == (2, 1, 8, 10, 4)
    assert list(batch["image"].meta["filename_or_obj"]) == [d["image"] for d in data]
    for k, volume in enumerate(volumes):  # axial LPS storage: RAS reverses the column and row axes
        np.testing.assert_allclose(batch["image"][k, 0].numpy(), volume.itk_array[::-1, ::-1, :])


def test_several_paths_stack_as_channels(tmp_path):
    write_ct_series(tmp_path, n_slices=3)
    image = LoadImage(reader=DicomSeriesReader(), image_only=True)([str(tmp_path), str(tmp_path)])
    assert image.shape == (2, 8, 10, 3)
    first = write_ct_series(tmp_path / "a", n_slices=3, seed=1)
    second = write_ct_series(tmp_path / "b", n_slices=3, seed=2)
    image = LoadImage(reader=DicomSeriesReader(), image_only=True)([str(tmp_path / "a"), str(tmp_path / "b")])
    np.testing.assert_allclose(image.numpy(), np.stack([first.itk_array, second.itk_array]))  # in path order
