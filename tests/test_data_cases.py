"""Reading datalist splits for a workflow and finding the cases of a folder for inference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medtl_monai.data import MissingDataError, default_input_kinds, folder_cases, load_split, read_class_names


def test_load_split_and_missing_data(tiny_demo, tmp_path):
    items = load_split(tiny_demo / "datalist.json", "training")
    assert items and all(Path(i["image"]).is_absolute() and Path(i["image"]).exists() for i in items)
    assert len(load_split(tiny_demo / "datalist.json", "training", limit=3)) == 3
    with pytest.raises(MissingDataError, match="make_demo_data.py"):
        load_split(tmp_path / "none" / "datalist.json", "training")
    assert read_class_names(tiny_demo / "datalist.json") == ["negative", "positive"]
    assert read_class_names(tmp_path / "none.json", default=["a", "b"]) == ["a", "b"]
    with pytest.raises(MissingDataError):
        read_class_names(tmp_path / "none.json")


def test_folder_cases_finds_series_files_nifti_and_pictures(tiny_demo, tmp_path):
    series = folder_cases(tiny_demo / "dicom", kinds=("series",))
    assert series and all(item["id"].endswith("/CT") and os.path.isdir(item["image"]) for item in series)
    xrays = folder_cases(tiny_demo / "dicom", kinds=("file",))
    assert {Path(i["image"]).name for i in xrays} == {"CR.dcm"} and len(xrays) == len(series)
    nifti = folder_cases(tiny_demo, kinds=("nifti",))
    assert nifti and all(i["image"].endswith(".nii.gz") for i in nifti)
    (tmp_path / "a").mkdir()
    for name in ("a/x.png", "b.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [i["id"] for i in folder_cases(tmp_path, kinds=("picture",))] == ["a/x.png", "b.JPG"]
    with pytest.raises(ValueError, match="holds no case"):
        folder_cases(tiny_demo / "dicom", kinds=())
    with pytest.raises(ValueError, match="unknown input kinds"):
        folder_cases(tmp_path, kinds=("movies",))


def test_a_model_reads_volumes_in_3d_and_images_in_2d():
    assert default_input_kinds(3) == ("series", "nifti")
    assert default_input_kinds(2) == ("file", "nifti", "picture")
