"""The data check before training (class counts, patient overlap, duplicates, cache), the data fingerprint and its
out-of-distribution flags."""

from __future__ import annotations

import json
import logging
import runpy
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import MetaTensor

from medtl_monai.data import (
    DataCheckError,
    build_fingerprint,
    case_flags,
    case_summary,
    check_before_training,
    check_datalist,
    write_datalist,
)
from medtl_monai.io import MedicalImageReader
from medtl_monai.transforms import FingerprintFlagsd

SCRIPT = Path(__file__).parents[1] / "scripts" / "check_data.py"
CLASSES = ["negative", "positive"]


def _volume(path: Path, seed: int) -> Path:
    """A small NIfTI volume with pixel data of its own (seeded)."""
    data = np.random.default_rng(seed).normal(0, 100, (8, 8, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 5.0, 1.0])), str(path))
    return path


def _datalist(root: Path, layout: dict[str, list[tuple[str, int, str]]], name: str = "datalist.json") -> Path:
    """A datalist of ``{split: [(case id, label, patient id), ...]}``; each case gets its own volume (seeded by id)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    splits = {split: [{"id": case, "label": label, "patient_id": patient,
                       "image": str(_volume(root / "img" / f"{case}.nii.gz", sum(map(ord, case))))}
                      for case, label, patient in cases]
              for split, cases in layout.items()}
    return write_datalist(root / name, splits, class_names=CLASSES, modality="CT")


GOOD = {"training": [("a", 0, "p1"), ("b", 1, "p2"), ("c", 0, "p3"), ("d", 1, "p4")],
        "validation": [("e", 0, "p5"), ("f", 1, "p6")], "test": [("g", 0, "p7"), ("h", 1, "p8")]}


class CountingReader(MedicalImageReader):
    """The package's reader, counting the images it reads."""

    reads = 0

    def get_data(self, img):
        CountingReader.reads += 1
        return super().get_data(img)


def test_a_clean_datalist_passes_and_writes_the_report_table_picture_and_fingerprint(tmp_path):
    report = check_datalist(_datalist(tmp_path, GOOD), output_dir=tmp_path / "check")
    assert report.ok and report.errors == [] and report.warnings == []
    assert [report.splits[s]["class_counts"] for s in ("training", "validation", "test")] == [[2, 2], [1, 1], [1, 1]]
    assert report.splits["training"]["n_patients"] == 4 and report.splits["training"]["summary"]["spacing"] == [2, 2, 5]
    table = (tmp_path / "check" / "data_check.md").read_text()
    assert "| training | 4 | 4 | negative: 2, positive: 2 | CT | 3D | [2.0, 2.0, 5.0] | [16.0, 16.0, 20.0] | 4-4 |" in table
    assert (tmp_path / "check" / "data_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fingerprint = json.loads((tmp_path / "check" / "data_fingerprint.json").read_text())
    assert fingerprint["n_cases"] == 4 and list(fingerprint["modalities"]) == ["CT"]
    assert fingerprint["modalities"]["CT"]["spacing"]["max"] == [2.0, 2.0, 5.0]


def test_a_validation_split_without_a_class_is_an_error_that_says_how_to_fix_it(tmp_path):
    layout = {**GOOD, "validation": [("e", 0, "p5"), ("f", 0, "p6")]}
    report = check_datalist(_datalist(tmp_path, layout))
    assert len(report.errors) == 1 and not report.ok
    error = report.errors[0]
    assert error.startswith(f"{tmp_path / 'datalist.json'}: the validation split has no case of class 'positive'")
    assert "AUROC is undefined" in error and "Fix: add cases of 'positive'" in error and "--fractions" in error


def test_a_patient_in_two_splits_is_an_error_naming_the_patient_and_splits(tmp_path):
    layout = {**GOOD, "test": [("g", 0, "p1"), ("h", 1, "p8")]}
    (error,) = check_datalist(_datalist(tmp_path, layout)).errors
    assert "1 patient(s) are in more than one split: p1 (training/test)" in error


def test_identical_pixel_data_in_two_splits_is_a_warning_listing_the_pair(tmp_path):
    path = _datalist(tmp_path, GOOD)
    doc = json.loads(path.read_text())
    _volume(tmp_path / "img" / "copy.nii.gz", sum(map(ord, "b")))  # the pixels of training case "b"
    doc["test"][1]["image"] = "img/copy.nii.gz"
    path.write_text(json.dumps(doc))
    report = check_datalist(path)
    assert report.ok
    (warning,) = report.warnings
    assert warning.startswith("1 pair(s) of cases with identical pixel data across splits")
    assert f"training {tmp_path / 'img' / 'b.nii.gz'} = test {tmp_path / 'img' / 'copy.nii.gz'}" in warning


def test_training_start_check_is_cached_and_a_changed_datalist_runs_it_again(tmp_path):
    path, out = _datalist(tmp_path, GOOD), tmp_path / "models"
    CountingReader.reads = 0
    first = check_before_training(path, out, CLASSES, reader=CountingReader())
    assert CountingReader.reads == 8 and not first.from_cache
    second = check_before_training(path, out, CLASSES, reader=CountingReader())
    assert CountingReader.reads == 8 and second.from_cache and second.splits == first.splits
    assert second.fingerprint == json.loads((out / "data_fingerprint.json").read_text())
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "validation": doc["validation"][:1]}))  # now without a positive case
    with pytest.raises(DataCheckError, match=r"(?s)validation split has no case of class 'positive'.*--check_data false"):
        check_before_training(path, out, CLASSES, reader=CountingReader())
    assert CountingReader.reads == 15
    assert check_before_training(tmp_path / "missing.json", out) is None


def test_the_script_exits_with_1_on_an_error_and_0_on_warnings_only(tmp_path, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    bad = _datalist(tmp_path / "bad", {**GOOD, "test": [("g", 0, "p7")]})
    assert main(["--datalist", str(bad), "--output-dir", str(tmp_path / "out")]) == 1
    assert "the test split has no case of class 'positive'" in capsys.readouterr().out
    good = _datalist(tmp_path / "good", {**GOOD, "test": []})
    assert main(["--datalist", str(good)]) == 0
    assert "the test split is empty" in capsys.readouterr().out
    assert (tmp_path / "good" / "data_check" / "data_check.md").is_file()


# --- the fingerprint and its flags -------------------------------------------------------------------------------

def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    return np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing)], indexing="ij")


def _chest(seed: int, spacing=(3.0, 3.0, 8.0), shape=(120, 100, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A chest-like CT in HU: air, an elliptic body (fat rim, soft tissue), two lungs, a spine; and its affine."""
    rng = np.random.default_rng(seed)
    x, y, _ = _grid(shape, spacing)
    a, b = 160 + rng.uniform(-10, 10), 115 + rng.uniform(-8, 8)
    hu = np.full(shape, -1000.0)
    hu[(x / a) ** 2 + (y / b) ** 2 < 1] = -100.0
    hu[(x / (a - 12)) ** 2 + (y / (b - 12)) ** 2 < 1] = 40.0
    for side in (-1, 1):
        hu[((x - side * 70) / 55) ** 2 + ((y + 5) / 80) ** 2 < 1] = -850.0
    hu[x**2 + (y + 85) ** 2 < 20**2] = 600.0
    return hu + rng.normal(0, 10, shape), np.diag([*spacing, 1.0])


def _head(spacing=(3.0, 3.0, 8.0), shape=(64, 64, 24)) -> tuple[np.ndarray, np.ndarray]:
    """A head-like CT in HU: a skull (bone) around the brain (soft tissue) in air, a small field of view."""
    x, y, z = _grid(shape, spacing)
    r = np.sqrt(x**2 + y**2 + (z * 0.8) ** 2)
    hu = np.where(r < 85, 1000.0, -1000.0)
    hu[r < 78] = 35.0
    return hu, np.diag([*spacing, 1.0])


@pytest.fixture(scope="module")
def chest_fingerprint() -> dict:
    summaries = [case_summary(hu, affine=affine) for hu, affine in (_chest(seed) for seed in range(4))]
    return build_fingerprint(summaries, modality="CT")


def test_a_chest_case_is_inside_a_chest_fingerprint(chest_fingerprint):
    hu, affine = _chest(seed=10)
    summary = case_summary(hu, affine=affine, modality="CT")
    assert summary["slices"] == 40 and summary["spacing"] == [3.0, 3.0, 8.0] and summary["orientation"] == "RAS"
    assert 0.2 < summary["hu_bins"]["lung"] < 0.5
    assert case_flags(summary, chest_fingerprint) == []


def test_a_head_ct_is_flagged_by_its_hu_histogram_and_field_of_view(chest_fingerprint):
    hu, affine = _head()
    summary = case_summary(hu, affine=affine, modality="CT")
    assert summary["hu_bins"]["lung"] == 0.0 and summary["hu_bins"]["bone"] > 0.15
    assert case_flags(summary, chest_fingerprint) == ["size", "intensity"]


def test_another_spacing_or_modality_is_flagged(chest_fingerprint):
    hu, affine = _chest(seed=11)
    fine = np.diag([0.7, 0.7, 1.25, 1.0])  # same voxels, a quarter of the spacing
    assert case_flags(case_summary(hu, affine=fine), chest_fingerprint) == ["spacing", "size"]
    assert case_flags(case_summary(hu, affine=affine, modality="MR"), chest_fingerprint) == ["modality"]
    assert case_flags(case_summary(hu[..., 0], affine=np.diag([3.0, 3.0, 1.0])), chest_fingerprint)[0] == "dims"


def test_the_transform_flags_a_loaded_case_and_logs_its_file(chest_fingerprint, tmp_path, caplog):
    path = tmp_path / "data_fingerprint.json"
    path.write_text(json.dumps(chest_fingerprint))
    flagger = FingerprintFlagsd("image", fingerprint=path)
    head_hu, head_affine = _head()
    head = MetaTensor(head_hu[None].astype(np.float32), affine=head_affine, meta={"filename_or_obj": "/in/head.nii.gz"})
    chest_hu, chest_affine = _chest(seed=12)
    chest = MetaTensor(chest_hu[None].astype(np.float32), affine=chest_affine, meta={"Modality": "CT"})
    with caplog.at_level(logging.WARNING, logger="medtl_monai.transforms"):
        assert flagger({"image": head})["flags"] == "size;intensity"
        assert flagger({"image": chest})["flags"] == ""
    assert [r.getMessage() for r in caplog.records] == [
        "/in/head.nii.gz: far outside the training data (size, intensity); treat its prediction with caution"]
    assert FingerprintFlagsd("image", fingerprint=tmp_path / "none.json")({"image": head})["flags"] == ""
