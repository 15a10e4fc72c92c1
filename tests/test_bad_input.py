"""Bad input fails with a ValueError naming the file and the problem, or is skipped and reported on request."""

from __future__ import annotations

import csv
import json
import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from monai.data import Dataset
from monai.transforms import Compose, LoadImage, LoadImaged
from PIL import Image

from medtl_monai.data import validate_datalist
from medtl_monai.io import (
    BadCaseError,
    CheckImage,
    CheckImaged,
    DicomSeriesError,
    DicomSeriesReader,
    DicomXrayReader,
    MedicalImageReader,
    SliceSpacingError,
    find_bad_case_error,
)
from medtl_monai.io.checks import MODALITY_FLAG_KEY
from medtl_monai.synthetic.dicom import write_ct_series, write_enhanced_ct, write_xray
from medtl_monai.transforms import Preprocessing

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # never get_testdata_file: it goes online
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"


def load(path, reader=None):
    return LoadImage(reader=reader or MedicalImageReader(), image_only=True)(str(path))


def assert_names(error: pytest.ExceptionInfo, path: Path | str, *words: str) -> None:
    """The error is a ValueError whose message names ``path`` and contains one of ``words``."""
    assert isinstance(error.value, ValueError)
    message = str(error.value)
    assert str(path) in message, message
    assert any(word in message for word in words), message


def write_nifti(path: Path, data: np.ndarray) -> Path:
    nibabel.Nifti1Image(data.astype(np.float32), np.diag([1.5, 1.5, 2.0, 1.0])).to_filename(str(path))
    return path


# ---------------------------------------------------------------- DICOM files and folders


@pytest.mark.parametrize(
    ("cut", "words"),
    [(150, ("corrupt", "truncated")), (700, ("truncated",)), (-50, ("truncated pixel data",))],
    ids=["file-meta", "header", "pixel-data"],
)
def test_truncated_slice_in_a_series_names_the_file(tmp_path, cut, words):
    series = write_ct_series(tmp_path, n_slices=5)
    victim = series.files[0]  # the first slice: its loss would not show as a gap
    victim.write_bytes(victim.read_bytes()[:cut])
    with pytest.raises(BadCaseError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, victim, *words)


def test_garbage_after_the_dicom_marker_is_reported_as_corrupt(tmp_path):
    series = write_ct_series(tmp_path, n_slices=3)
    victim = series.files[-1]
    victim.write_bytes(victim.read_bytes()[:132] + np.random.default_rng(0).bytes(2000))
    with pytest.raises(BadCaseError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, victim, "corrupt")


def test_real_truncated_file_from_pydicom():
    path = PYDICOM_FILES / "MR_truncated.dcm"
    for reader in (DicomSeriesReader(), DicomXrayReader(), MedicalImageReader()):
        with pytest.raises(BadCaseError) as error:
            load(path, reader)
        assert_names(error, path, "truncated")


def test_undecodable_compressed_pixel_data_is_reported(tmp_path):
    path = PYDICOM_FILES / "JPEG2000-embedded-sequence-delimiter.dcm"
    with pytest.raises(BadCaseError) as error:
        load(path)
    assert_names(error, path, "cannot decode")


def test_empty_folder(tmp_path):
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, tmp_path, "empty")


def test_folder_without_dicom_images(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "report.dcm").write_bytes((PYDICOM_FILES / "test-SR.dcm").read_bytes())
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, tmp_path, "no DICOM image")


def test_folder_mixing_series_in_strict_mode(tmp_path):
    a = write_ct_series(tmp_path, n_slices=4, seed=1, name_prefix="a")
    b = write_ct_series(tmp_path, n_slices=3, seed=2, name_prefix="b")
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader(strict=True))
    assert_names(error, tmp_path, "mixes 2 series")
    assert a.series_uid in str(error.value) and b.series_uid in str(error.value)


def test_requested_series_uid_not_in_folder(tmp_path):
    series = write_ct_series(tmp_path, n_slices=4)
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader(series_uid="1.2.3.4"))
    assert_names(error, tmp_path, "not found")
    assert "1.2.3.4" in str(error.value) and series.series_uid in str(error.value)


def test_slices_of_different_sizes_in_one_series(tmp_path):
    write_ct_series(tmp_path, n_slices=3, rows=10, series_uid="1.2.826.0.1.3680043.99.1", name_prefix="a")
    write_ct_series(
        tmp_path, n_slices=2, rows=12, series_uid="1.2.826.0.1.3680043.99.1", name_prefix="b", origin=(-20, 10, 20)
    )
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, tmp_path, "differ in size")


def test_two_volumes_at_the_same_positions_in_one_series(tmp_path):
    for prefix, seed in (("echo1_", 1), ("echo2_", 2)):
        write_ct_series(tmp_path, n_slices=3, seed=seed, series_uid="1.2.826.0.1.3680043.99.2", name_prefix=prefix)
    with pytest.raises(DicomSeriesError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, tmp_path, "share a position")


def test_gap_error_is_a_value_error_with_positions(tmp_path):
    write_ct_series(tmp_path, offsets=[0.0, 3.0, 6.0, 12.0])
    with pytest.raises(SliceSpacingError) as error:
        load(tmp_path, DicomSeriesReader())
    assert_names(error, tmp_path, "gap")
    assert len(error.value.positions) == 4


def test_non_parallel_slices_in_a_real_series():
    folder = PYDICOM_FILES / "dicomdirtests" / "98892003" / "MR700"
    with pytest.raises(DicomSeriesError) as error:
        load(folder, DicomSeriesReader())
    assert_names(error, folder, "not parallel")


def test_non_image_dicom_file(tmp_path):
    path = PYDICOM_FILES / "test-SR.dcm"
    for reader in (DicomSeriesReader(), DicomXrayReader(), MedicalImageReader()):
        with pytest.raises(BadCaseError) as error:
            load(path, reader)
        assert_names(error, path, "holds no image")


@pytest.mark.parametrize("content", [b"just some text\n", bytes(range(256)) * 4], ids=["text", "binary"])
def test_non_image_file(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(BadCaseError) as error:
        load(path)
    assert_names(error, path, "not a supported image file")


def test_missing_path_raises_bad_case_error_not_monai_runtime_error(tmp_path):
    for reader in (DicomSeriesReader(), DicomXrayReader(), MedicalImageReader()):
        with pytest.raises(BadCaseError) as error:
            LoadImaged(keys="image", reader=reader)({"image": str(tmp_path / "nowhere")})
        assert_names(error, tmp_path / "nowhere", "does not exist")


def test_xray_reader_refuses_folders_and_multiframe_files(tmp_path):
    write_ct_series(tmp_path / "series", n_slices=2)
    enhanced = write_enhanced_ct(tmp_path / "enhanced.dcm")
    with pytest.raises(BadCaseError) as error:
        load(tmp_path / "series", DicomXrayReader())
    assert_names(error, tmp_path / "series", "is a folder")
    with pytest.raises(BadCaseError) as error:
        load(enhanced.files[0], DicomXrayReader())
    assert_names(error, enhanced.files[0], "multi-frame")


def test_multiframe_file_without_geometry():
    path = PYDICOM_FILES / "SC_rgb_rle_2frame.dcm"
    with pytest.raises(DicomSeriesError) as error:
        load(path, DicomSeriesReader())
    assert_names(error, path, "without plane geometry")


def test_truncated_nifti(tmp_path):
    path = write_nifti(tmp_path / "cut.nii.gz", np.random.default_rng(0).random((8, 8, 8)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadCaseError) as error:
        load(path)
    assert_names(error, path, "cannot be read by NibabelReader")


def test_bad_case_errors_pickle():
    error = SliceSpacingError("/data/ct1", "uneven slice spacing", positions=[0.0, 1.0, 3.0])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is SliceSpacingError and str(copy) == str(error) and copy.positions == (0.0, 1.0, 3.0)
    assert pickle.loads(pickle.dumps(BadCaseError("x.dcm", "bad"))).path == "x.dcm"


# ---------------------------------------------------------------- image checks


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.full((6, 6, 6), np.nan), ("NaN",)),
        (np.where(np.arange(216).reshape(6, 6, 6) == 5, np.inf, 1.0), ("infinite",)),
        (np.full((6, 6, 6), 3.0), ("constant",)),
    ],
    ids=["nan", "inf", "constant"],
)
def test_check_image_rejects_unusable_volumes(tmp_path, data, words):
    path = write_nifti(tmp_path / "bad.nii.gz", data)
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    with pytest.raises(BadCaseError) as error:
        CheckImage()(image)
    assert_names(error, path, *words)


def test_check_image_rejects_a_4d_file_where_3d_is_expected():
    path = NIBABEL_FILES / "example4d.nii.gz"
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    with pytest.raises(BadCaseError) as error:
        CheckImage(expected_spatial_dims=3)(image)
    assert_names(error, path, "4D", "wrong dimensionality")
    with pytest.raises(BadCaseError) as error:
        CheckImage(expected_spatial_dims=3, channel_first=False)(image)
    assert_names(error, path, "wrong dimensionality")


def test_check_imaged_in_a_chain(tmp_path):
    write_ct_series(tmp_path / "good", n_slices=3)
    path = write_nifti(tmp_path / "flat.nii.gz", np.zeros((5, 5, 5)))
    chain = Compose([LoadImaged("image", reader=MedicalImageReader(), ensure_channel_first=True), CheckImaged("image")])
    assert chain({"image": str(tmp_path / "good")})["image"].shape == (1, 8, 10, 3)
    with pytest.raises(BadCaseError) as error:  # called directly: the error itself
        CheckImaged("image")(LoadImaged("image", ensure_channel_first=True)({"image": str(path)}))
    assert_names(error, path, "constant")
    with pytest.raises(RuntimeError) as wrapped:  # inside MONAI's Dataset: chained to a RuntimeError
        Dataset([{"image": str(path)}], chain)[0]
    found = find_bad_case_error(wrapped.value)
    assert isinstance(found, BadCaseError) and str(path) in str(found) and "constant" in str(found)


# ---------------------------------------------------------------- datalists


@pytest.fixture()
def cases(tmp_path) -> dict[str, dict]:
    """One good case of each kind and one bad case per problem."""
    rng = np.random.default_rng(0)
    write_ct_series(tmp_path / "ct_good", n_slices=4)
    gap = tmp_path / "ct_gap"
    write_ct_series(gap, offsets=[0.0, 2.0, 6.0])
    corrupt = write_ct_series(tmp_path / "ct_corrupt", n_slices=3)
    corrupt.files[1].write_bytes(corrupt.files[1].read_bytes()[:400])
    (tmp_path / "notes.txt").write_text("not an image")
    return {
        "good_dicom": {"id": "g1", "image": str(tmp_path / "ct_good"), "label": "covid"},
        "good_nifti": {
            "id": "g2",
            "image": str(write_nifti(tmp_path / "ok.nii.gz", rng.random((6, 7, 8)))),
            "label": 0,
        },
        "good_nifti_2": {"id": "g3", "image": str(NIBABEL_FILES / "anatomical.nii"), "label": "normal"},
        "missing_file": {"id": "b1", "image": str(tmp_path / "missing.nii.gz"), "label": "covid"},
        "unknown_label": {"id": "b2", "image": str(tmp_path / "ok.nii.gz"), "label": "flu"},
        "label_index_out_of_range": {"id": "b3", "image": str(tmp_path / "ok.nii.gz"), "label": 7},
        "no_label": {"id": "b4", "image": str(tmp_path / "ok.nii.gz")},
        "non_image": {"id": "b5", "image": str(tmp_path / "notes.txt"), "label": "covid"},
        "nan": {"id": "b6", "image": str(write_nifti(tmp_path / "nan.nii.gz", np.full((4, 4, 4), np.nan))), "label": 1},
        "constant": {"id": "b7", "image": str(write_nifti(tmp_path / "flat.nii.gz", np.ones((4, 4, 4)))), "label": 1},
        "four_d": {"id": "b8", "image": str(NIBABEL_FILES / "example4d.nii.gz"), "label": 1},
        "gap": {"id": "b9", "image": str(gap), "label": 1},
        "corrupt_dicom": {"id": "b10", "image": str(tmp_path / "ct_corrupt"), "label": 1},
    }


CLASSES = ["normal", "covid"]
EXPECTED_WORDS = {
    "missing_file": "does not exist",
    "unknown_label": "not in the class list",
    "label_index_out_of_range": "not in the class list",
    "no_label": "no 'label'",
    "non_image": "not a supported image file",
    "nan": "NaN",
    "constant": "constant",
    "four_d": "wrong dimensionality",
    "gap": "uneven slice spacing",
    "corrupt_dicom": "corrupt",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_WORDS))
def test_validate_datalist_raises_on_a_bad_case(cases, kind):
    datalist = [cases["good_dicom"], cases[kind]]
    with pytest.raises(BadCaseError) as error:
        validate_datalist(datalist, class_names=CLASSES)
    path = cases["corrupt_dicom"]["image"] if kind == "corrupt_dicom" else cases[kind]["image"]
    assert_names(error, path, EXPECTED_WORDS[kind])


@pytest.mark.parametrize(
    ("label", "words"),
    [([0, 1, 1], "has 3 values, expected 2"), ([0, 2], "only 0/1"), ([1, 0], None)],
    ids=["wrong-length", "not-binary", "good"],
)
def test_validate_datalist_checks_multi_label_vectors(cases, label, words):
    case = dict(cases["good_nifti"], label=label)
    if words is None:
        assert validate_datalist([case], class_names=CLASSES) == [case]
        return
    with pytest.raises(BadCaseError) as error:
        validate_datalist([case], class_names=CLASSES)
    assert_names(error, case["image"], words)


def test_validate_datalist_checks_dimensionality_of_2d_lists(tmp_path):
    write_xray(tmp_path / "cr.dcm")
    good = [{"image": str(tmp_path / "cr.dcm"), "label": "covid"}]
    assert validate_datalist(good, class_names=CLASSES, expected_spatial_dims=2) == good
    with pytest.raises(BadCaseError) as error:
        validate_datalist(good, class_names=CLASSES, expected_spatial_dims=3)
    assert_names(error, tmp_path / "cr.dcm", "wrong dimensionality")


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_skip_bad_returns_exactly_the_good_cases_and_writes_a_report(cases, tmp_path, caplog, suffix):
    order = list(cases)  # good and bad interleaved by dict order
    datalist = [cases[k] for k in order]
    report = tmp_path / "reports" / f"bad_cases{suffix}"
    with caplog.at_level(logging.WARNING, logger="medtl_monai.data"):
        good = validate_datalist(datalist, class_names=CLASSES, skip_bad=True, report_path=report)
    assert good == [cases[k] for k in order if k.startswith("good")]
    bad_ids = [cases[k]["id"] for k in order if not k.startswith("good")]
    if suffix == ".json":
        content = json.loads(report.read_text())
        rows = content["bad_cases"]
        assert (content["n_cases"], content["n_good"], content["n_bad"]) == (len(datalist), 3, len(bad_ids))
    else:
        with open(report, newline="") as f:
            rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == bad_ids
    assert [int(row["index"]) for row in rows] == [order.index(k) for k in order if not k.startswith("good")]
    for row, kind in zip(rows, [k for k in order if not k.startswith("good")], strict=True):
        assert EXPECTED_WORDS[kind] in f"{row['image']}: {row['problem']}"
    assert caplog.text.count("skipping bad case") == len(bad_ids)


def test_skip_bad_keeps_everything_when_all_cases_are_good(cases, tmp_path):
    datalist = [cases["good_dicom"], cases["good_nifti"], cases["good_nifti_2"]]
    report = tmp_path / "report.json"
    assert validate_datalist(datalist, class_names=CLASSES, skip_bad=True, report_path=report) == datalist
    assert json.loads(report.read_text())["n_bad"] == 0


# ---------------------------------------------------------------- the bundle's default preprocessing


def _zero_voxel_nifti(path: Path) -> Path:
    image = nibabel.Nifti1Image(np.random.default_rng(0).random((8, 8, 8)).astype(np.float32), None)
    image.header["pixdim"][1:4] = 0
    image.header.set_sform(np.diag([0.0, 0.0, 0.0, 1.0]), code=1)  # nibabel mends pixdim, not the sform
    image.to_filename(str(path))
    return path


def _picture(path: Path, channels: int) -> Path:
    shape = (16, 16) if channels == 1 else (16, 16, channels)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def _segmentation(path: Path) -> Path:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.SegmentationStorage
    ds.Modality = "SEG"
    ds.save_as(path)
    return path


def _copy(name: str) -> Callable[[Path], Path]:
    return lambda path: Path(shutil.copy(PYDICOM_FILES / name, path))


#: every kind of bad input of issue 12, how to make it in a folder, and a word its error must hold
BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "constant_volume": (lambda p: write_nifti(p / "flat.nii.gz", np.full((8, 8, 8), -1000.0)), "constant"),
    "2d_image": (lambda p: _picture(p / "slice.png", 1), "2D image"),
    "zero_voxel_sizes": (lambda p: _zero_voxel_nifti(p / "zero.nii.gz"), "voxel sizes"),
    "one_voxel": (lambda p: write_nifti(p / "one.nii.gz", np.ones((1, 1, 1))), "too small"),
    "mr_slice": (lambda p: _copy("MR_small.dcm")(p / "mr.dcm"), "modality MR"),
    "dicom_seg": (lambda p: _segmentation(p / "seg.dcm"), "Segmentation Storage"),
    "rt_dose": (lambda p: _copy("rtdose.dcm")(p / "dose.dcm"), "RT Dose Storage"),
    "all_nan": (lambda p: write_nifti(p / "nan.nii.gz", np.full((8, 8, 8), np.nan)), "NaN"),
    "rescale_slope_0": (lambda p: write_ct_series(p / "slope0", n_slices=3, slope=0.0).files[0].parent, "RescaleSlope 0"),
    "4d_nifti": (lambda p: write_nifti(p / "time.nii.gz", np.random.default_rng(0).random((8, 8, 8, 3))), "4D file"),
    "rgb_png": (lambda p: _picture(p / "photo.png", 3), "2D image"),
    "pixel_spacing_0": (lambda p: write_ct_series(p / "ps0", n_slices=3, pixel_spacing=(0.0, 0.0)).files[0].parent,
                        "PixelSpacing [0.0, 0.0]"),
}


@pytest.fixture(scope="module")
def ct_preprocessing_of_train_json() -> Compose:
    """The CT bundle's ``preprocessing_transforms`` as train.json builds them (a smaller output size: faster)."""
    return Compose(Preprocessing("ct", spatial_size=[16, 16, 8], pixdim=[3.5, 3.5, 10.0],
                                 windows=["lung", "mediastinum", "bone"], crop="body"))


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_every_bad_input_is_refused_by_the_bundle_preprocessing_naming_the_file(
    tmp_path, ct_preprocessing_of_train_json, kind
):
    make, words = BAD_INPUTS[kind]
    path = make(tmp_path)
    with pytest.raises(RuntimeError) as wrapped:  # MONAI's Compose wraps the BadCaseError
        ct_preprocessing_of_train_json({"image": str(path)})
    error = find_bad_case_error(wrapped.value)
    assert isinstance(error, BadCaseError), wrapped.value
    assert error.path.startswith(str(path)) and str(path) in str(error), error  # the case, or a file inside it
    assert words in error.problem, error


def test_good_ct_passes_and_a_wrong_modality_is_flagged_in_inference_mode(tmp_path, ct_preprocessing_of_train_json):
    good = write_ct_series(tmp_path / "ct", n_slices=4).files[0].parent
    assert ct_preprocessing_of_train_json({"image": str(good)})["image"].shape == (3, 16, 16, 8)
    mr = _copy("MR_small.dcm")(tmp_path / "mr.dcm")
    flagging = Preprocessing("xray", size=16, modalities=["CR", "DX"]).with_settings(on_modality_mismatch="flag")
    out = Compose(flagging)({"image": str(mr)})
    assert out["image"].shape == (3, 16, 16)
    assert out[MODALITY_FLAG_KEY] == f"{mr}: modality MR, but the model was trained on CR/DX images"
    assert flagging.config == {"kind": "xray", "size": 16, "modalities": ["CR", "DX"], "on_modality_mismatch": "flag"}
    write_xray(tmp_path / "cr.dcm")
    assert Compose(flagging)({"image": str(tmp_path / "cr.dcm")})[MODALITY_FLAG_KEY] == ""
