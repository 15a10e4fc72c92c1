"""Batch inference finishes: unusable cases are skipped and listed with their reason, every good case is predicted,
and the predictions file is written fresh for the run."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _bundle_utils import copy_bundle, save_untrained_model, workflow
from ignite.engine import Engine
from monai.data import Dataset, MetaTensor
from monai.transforms import LoadImaged

from medtl_monai.data import SkipBadCasesDataset, SkippingDataLoader, build_fingerprint, case_summary
from medtl_monai.evaluation import PredictionWriter
from medtl_monai.io import MedicalImageReader
from medtl_monai.synthetic.dicom import write_ct_series
from medtl_monai.synthetic.nifti import write_ct_nifti


def _phantom(shape=(12, 24, 24)) -> np.ndarray:
    """A body of soft tissue with two air-filled lungs, in HU (z, y, x)."""
    _, y, x = np.indices(shape)
    body = ((y - shape[1] / 2) / (shape[1] * 0.4)) ** 2 + ((x - shape[2] / 2) / (shape[2] * 0.45)) ** 2 < 1
    lungs = body & (np.abs(x - shape[2] / 2) > 2) & (np.abs(y - shape[1] / 2) < shape[1] * 0.25)
    return np.where(body, np.where(lungs, -850.0, 40.0), -1000.0) + np.random.default_rng(0).normal(0, 5, shape)


@pytest.fixture()
def mixed_folder(tmp_path):
    """One good NIfTI volume, one truncated DICOM series, one text file named like a volume."""
    folder = tmp_path / "cases"
    write_ct_nifti(folder / "good.nii.gz", _phantom(), spacing=(5.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0))
    series = write_ct_series(folder / "truncated", n_slices=4)
    series.files[0].write_bytes(series.files[0].read_bytes()[:700])
    (folder / "notes.nii").write_text("not an image\n")
    return folder


def test_skipping_loader_yields_only_good_items_and_remembers_the_rest(mixed_folder):
    items = [{"id": name, "image": str(mixed_folder / name)} for name in ("notes.nii", "good.nii.gz", "truncated")]
    dataset = SkipBadCasesDataset(items, LoadImaged("image", reader=MedicalImageReader()))
    loader = SkippingDataLoader(dataset, batch_size=1)
    batches = list(loader)
    assert [b["id"] for b in batches] == [["good.nii.gz"]] and batches[0]["case_index"].tolist() == [1]
    assert [(r["index"], r["id"]) for r in loader.skipped] == [(0, "notes.nii"), (2, "truncated")]
    assert str(mixed_folder / "notes.nii") in loader.skipped[0]["error"]
    assert "truncated" in loader.skipped[1]["error"] and str(mixed_folder / "truncated") in loader.skipped[1]["error"]
    with pytest.raises(TypeError):
        len(loader)
    assert isinstance(dataset, Dataset)


def test_inference_skips_bad_cases_predicts_the_good_one_and_replaces_a_stale_csv(tmp_path, mixed_folder,
                                                                                 quiet_random_init):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    save_untrained_model(bundle, ["train.json"], image_size=[32, 32, 16])
    output = bundle / "eval" / "inference"
    output.mkdir(parents=True)
    (output / "predictions.csv").write_text("id,prob_negative\nstale_case,0.5\n")
    # the model's training data: the same anatomy at 1 mm voxels, so the 5 x 2 x 2 mm case is far from it
    fingerprint = build_fingerprint([case_summary(_phantom(), modality="CT")], modality="CT")
    (bundle / "models" / "data_fingerprint.json").write_text(json.dumps(fingerprint))
    workflow(bundle, ["inference.json"], "infer", input_dir=str(mixed_folder), batch_size=2)
    with open(output / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["good.nii.gz", "notes.nii", "truncated"]  # the folder's order
    good, text, series = rows
    assert good["status"] == "flagged" and "spacing" in good["flags"].split(";")  # predicted, with the warning
    assert "spacing" in good["error"] and text["flags"] == series["flags"] == ""
    assert abs(float(good["prob_negative"]) + float(good["prob_positive"]) - 1) < 1e-5
    assert good["prediction"] in ("negative", "positive")
    for row, path, word in ((text, mixed_folder / "notes.nii", "cannot be read"),
                            (series, mixed_folder / "truncated", "truncated")):
        assert row["status"] == "skipped" and row["prob_positive"] == "" and row["prediction"] == ""
        assert row["error"].startswith(str(path)) and word in row["error"], row["error"]
    assert not list(output.glob(".*.tmp"))  # the temporary file was moved into place


def test_prediction_writer_marks_flagged_rows_copies_extra_columns_and_keeps_the_data_order(tmp_path):
    batch = [
        {"id": "b", "case_index": torch.tensor(2), "modality_flag": "", "image": MetaTensor(torch.zeros(1, 2, 2),
                                                                                           meta={"Modality": "CT"})},
        {"id": "a", "case_index": torch.tensor(0), "modality_flag": "a.dcm: modality MR, but the model was trained on CT",
         "image": MetaTensor(torch.zeros(1, 2, 2), meta={"Modality": "MR"})},
    ]
    engine = Engine(lambda e, b: [{"pred": torch.tensor([0.2, 0.8])}, {"pred": torch.tensor([0.9, 0.1])}])
    engine.data_loader = SimpleNamespace(skipped=[{"index": 1, "id": "c", "image": "c", "error": "c: truncated"}])
    writer = PredictionWriter(tmp_path, ["negative", "positive"], metrics_name=None, extra_columns=["Modality"])
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["status"], r["prediction"], r["Modality"]) for r in rows] == [
        ("a", "flagged", "negative", "MR"), ("c", "skipped", "", ""), ("b", "ok", "positive", "CT")]
    assert rows[0]["error"].startswith("a.dcm: modality MR") and rows[1]["error"] == "c: truncated"
