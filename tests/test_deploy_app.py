"""The MONAI Deploy application (deploy/), run for real in its own environment (.venv-deploy, built on first use):
DICOM files in, the bundle's own class probabilities out as JSON, with the argmax class name and a DICOM SR."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from _bundle_utils import REPO
from _integration_utils import bundle_probabilities, integration_python, python_env, trained_bundle

pytestmark = pytest.mark.integration  # builds and runs a separate environment

ATOL = 1e-4
CASE = "sub-S0003_ses-E0003"
APP_TIMEOUT = 300


@pytest.fixture(scope="session")
def deploy_python():
    return integration_python("deploy")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_demo):
    return trained_bundle(tmp_path_factory, tiny_demo)


@pytest.fixture(scope="module")
def expected(bundle, tiny_demo, tmp_path_factory):
    """The bundle's own inference (``monai.bundle run inference.json``) on the case's CT series."""
    return bundle_probabilities(bundle, tiny_demo / "dicom" / CASE, tmp_path_factory.mktemp("cwd"))["CT"]


def run_app(python: Path, input_dir: Path, output_dir: Path, bundle: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(python), str(REPO / "deploy" / "app.py"), "-i", str(input_dir), "-o", str(output_dir), "-m", str(bundle), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=APP_TIMEOUT, env=python_env(python), cwd=output_dir.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def anisotropic_study_with_a_distractor(source: Path, dest: Path) -> Path:
    """The case's CT series with non-square pixels (PixelSpacing 3.0 x 4.2 mm), and in the same study a second
    series (MR, inverted intensities) that the CT selection rule must leave out."""
    ct, mr = dest / "ct", dest / "mr"
    ct.mkdir(parents=True)
    mr.mkdir()
    series_ct, series_mr = generate_uid(), generate_uid()
    for path in sorted(source.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [3.0, 4.2]
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_ct, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(ct / path.name)
        ds.Modality, ds.SeriesInstanceUID, ds.SOPInstanceUID = "MR", series_mr, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PixelData = (ds.pixel_array.max() - ds.pixel_array).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(mr / path.name)
    return dest


def check_result(output_dir: Path, expected: list[float]) -> dict:
    result = json.loads((output_dir / "classification.json").read_text())
    probs = [result["probabilities"][c] for c in result["class_names"]]
    assert result["class_names"] == ["negative", "positive"]
    assert np.abs(np.subtract(probs, expected)).max() <= ATOL
    assert abs(sum(probs) - 1) < 1e-5
    assert result["label"] == result["class_names"][int(np.argmax(probs))] and result["label_index"] == int(np.argmax(probs))
    return result


def test_app_classifies_a_dicom_series_as_the_bundle_does_and_writes_json_and_sr(deploy_python, bundle, expected, tiny_demo,
                                                                                    tmp_path):
    series = tiny_demo / "dicom" / CASE / "CT"
    input_dir = tmp_path / "input" / CASE
    shutil.copytree(tiny_demo / "dicom" / CASE, input_dir)  # the CT series and the case's X-ray (CR) file
    output_dir = tmp_path / "output"
    run_app(deploy_python, input_dir, output_dir, bundle)
    result = check_result(output_dir, expected)
    source = pydicom.dcmread(next(series.glob("*.dcm")))
    assert result["series"]["SeriesInstanceUID"] == source.SeriesInstanceUID and result["series"]["Modality"] == "CT"
    (sr_file,) = output_dir.glob("*.dcm")
    sr = pydicom.dcmread(sr_file)
    assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    text = sr.ContentSequence[0].TextValue
    assert f"Predicted class: {result['label']}" in text and "negative: " in text and "positive: " in text


def test_app_selects_the_ct_series_and_handles_non_square_pixels(deploy_python, bundle, tiny_demo, tmp_path):
    study = anisotropic_study_with_a_distractor(tiny_demo / "dicom" / CASE / "CT", tmp_path / "study")
    reference = bundle_probabilities(bundle, study, tmp_path)
    assert np.abs(np.subtract(reference["ct"], reference["mr"])).max() > 10 * ATOL, "the distractor must change the result"
    output_dir = tmp_path / "output"
    run_app(deploy_python, study, output_dir, bundle)
    result = check_result(output_dir, reference["ct"])
    assert result["series"]["Modality"] == "CT"


def test_app_runs_a_torchscript_model_too(deploy_python, bundle, expected, tiny_demo, tmp_path):
    import torch

    from medtl_monai.bundle import BundleModel

    ts_path = tmp_path / "model.ts"
    torch.jit.script(BundleModel(bundle).network).save(str(ts_path))
    output_dir = tmp_path / "output"
    run_app(deploy_python, tiny_demo / "dicom" / CASE / "CT", output_dir, bundle, "--model-file", str(ts_path))
    assert json.loads((output_dir / "classification.json").read_text())["model_file"] == str(ts_path)
    check_result(output_dir, expected)
