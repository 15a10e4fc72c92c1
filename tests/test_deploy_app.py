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


def head_ct_cases(source: Path, dest: Path, mr_folder: Path) -> dict[str, str]:
    """Cases made from the case's 12-slice CT series, all with non-square pixels (PixelSpacing 3.0 x 4.2 mm).

    ``dest/ct`` is a folder like a real head-CT export: the 12-slice axial series (``IM-0002-*``), a 6-slice second
    series (6 adjacent slices) of the same study whose files sort first (``IM-0001-*``), and a 12-image localizer series
    (``ImageType`` LOCALIZER, inverted intensities, the smallest SeriesInstanceUID: slice count and tie-break alone
    would choose it; ``IM-0000-*``). ``dest/long``, ``dest/short`` and ``dest/localizer`` hold each CT series alone,
    and ``mr_folder`` an MR series of the same study (inverted intensities) that the app's CT rule leaves out.

    Returns:
        SeriesInstanceUID by series name (``long``, ``short``, ``localizer``, ``mr``).
    """
    uids = {"localizer": generate_uid(prefix="1.2.3.")} | {name: generate_uid() for name in ("short", "long", "mr")}
    assert uids["localizer"] < min(uids["short"], uids["long"])
    files = sorted(source.glob("*.dcm"), key=lambda f: int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber))
    places = {"localizer": [dest / "ct", dest / "localizer"], "short": [dest / "ct", dest / "short"],
              "long": [dest / "ct", dest / "long"], "mr": [mr_folder]}
    for number, (name, folders) in enumerate(places.items()):
        for k, path in enumerate(files[:6] if name == "short" else files):  # short: 6 adjacent slices
            ds = pydicom.dcmread(path)
            ds.PixelSpacing = [3.0, 4.2]
            ds.SeriesInstanceUID, ds.SeriesNumber, ds.SOPInstanceUID = uids[name], number + 1, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if name == "localizer" else "AXIAL"]
            if name == "mr":
                ds.Modality = "MR"
            if name in ("localizer", "mr"):
                ds.PixelData = (ds.pixel_array.max() - ds.pixel_array).astype(ds.pixel_array.dtype).tobytes()
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                ds.save_as(folder / f"IM-{number:04d}-{k:04d}.dcm")
    return uids


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


def test_app_reads_the_series_the_bundle_reads_and_handles_non_square_pixels(deploy_python, bundle, tiny_demo,
                                                                              tmp_path):
    """A head-CT folder whose short second series sorts first, beside a localizer (and, in the study, an MR series):
    the app and the bundle both read the 12-slice axial series and agree within 1e-4."""
    cases, study = tmp_path / "cases", tmp_path / "study"
    uids = head_ct_cases(tiny_demo / "dicom" / CASE / "CT", cases, study / "mr")
    reference = bundle_probabilities(bundle, cases, tmp_path)
    np.testing.assert_allclose(reference["ct"], reference["long"], atol=1e-6)  # the bundle reads the long series
    for distractor in ("short", "localizer"):
        assert np.abs(np.subtract(reference["long"], reference[distractor])).max() > 10 * ATOL, distractor
    shutil.copytree(cases / "ct", study / "ct")
    output_dir = tmp_path / "output"
    log = run_app(deploy_python, study, output_dir, bundle)
    result = check_result(output_dir, reference["ct"])
    assert result["series"]["SeriesInstanceUID"] == uids["long"] and result["series"]["Modality"] == "CT"
    said = log.stdout + log.stderr
    assert f"reading {uids['long']} (12 slices, CT" in said and "because it has the most slices" in said
    assert f"skipped localizer series by ImageType: {uids['localizer']}" in said and uids["short"] in said


def test_app_runs_a_torchscript_model_too(deploy_python, bundle, expected, tiny_demo, tmp_path):
    import torch

    from medtl_monai.bundle import BundleModel

    ts_path = tmp_path / "model.ts"
    torch.jit.script(BundleModel(bundle).network).save(str(ts_path))
    output_dir = tmp_path / "output"
    run_app(deploy_python, tiny_demo / "dicom" / CASE / "CT", output_dir, bundle, "--model-file", str(ts_path))
    assert json.loads((output_dir / "classification.json").read_text())["model_file"] == str(ts_path)
    check_result(output_dir, expected)
