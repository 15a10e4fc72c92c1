"""The error-analysis report: exactly the misclassified cases, curves that agree with the evaluation's metrics, no
patient identity from DICOM headers, a relabelling CSV, a page that renders in headless Chromium, predictions of
another datalist refused, and the CLI on a run's evaluation."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Compose

from _bundle_utils import REPO, copy_bundle, save_untrained_model
from medtl_monai.data import load_split
from medtl_monai.evaluation import bootstrap_ci, classification_summary, patient_groups, post_hoc_metrics
from medtl_monai.explain._plots import roc_points
from medtl_monai.explain.report import PredictionsMismatchError, error_report, read_predictions
from medtl_monai.io import MedicalImageReader
from medtl_monai.networks import TransferClassifier
from medtl_monai.transforms import xray_preprocessing

CHROMIUM = Path("/usr/bin/chromium")
SECRETS = ("Zzyzx^Secretname", "Zzyzx", "Secretname", "PID-8841-SECRET")
CLASSES = ("negative", "positive")
#: per case: (misclassified?, probability of the predicted class); the last case is the DICOM with a patient name
PLAN = [(True, 0.93), (False, 0.97), (False, 0.60), (True, 0.71), (False, 0.88), (True, 0.55), (False, 0.99),
        (False, 0.80), (True, 0.97)]


pytestmark = pytest.mark.usefixtures("quiet_random_init")


def _write_predictions(path: Path, items: list[dict], plan: list[tuple[bool, float]]) -> None:
    """A predictions.csv as ``PredictionWriter`` writes it, with chosen mistakes and confidences."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "prob_negative", "prob_positive", "prediction"])
        for item, (wrong, confidence) in zip(items, plan):
            p = confidence if (item["label"] == 1) != wrong else 1 - confidence
            writer.writerow([item["id"], CLASSES[item["label"]], f"{1 - p:.6f}", f"{p:.6f}", CLASSES[int(p >= 0.5)]])


@pytest.fixture(scope="module")
def report(tiny_demo, tmp_path_factory):
    """A report of 9 hand-made X-ray predictions (4 wrong), one case being a DICOM whose header names a patient."""
    folder = tmp_path_factory.mktemp("report")
    items = load_split(tiny_demo / "datalist_xray.json", "training")[: len(PLAN) - 1]
    dicom = pydicom.dcmread(next((tiny_demo / "dicom").glob("*/CR.dcm")))
    dicom.PatientName, dicom.PatientID = SECRETS[0], SECRETS[3]
    dicom.save_as(folder / "Zzyzx_scan.dcm")  # the file name leaks too: the report must not show paths
    items.append({"id": "case-dicom-01", "image": str(folder / "Zzyzx_scan.dcm"), "label": 0})
    _write_predictions(folder / "predictions.csv", items, PLAN)
    torch.manual_seed(0)
    network = TransferClassifier("resnet18", 2, 3, 2, cut="layer2").eval()
    transform = Compose(xray_preprocessing("image", size=64, load=True, reader=MedicalImageReader()))
    html = error_report(folder / "predictions.csv", folder / "out", items=items, network=network, transform=transform,
                        n_correct=3, cam_layers=["layer1", "layer2"])
    wrong = [(item["id"], conf) for item, (bad, conf) in zip(items, PLAN) if bad]
    right = [(item["id"], conf) for item, (bad, conf) in zip(items, PLAN) if not bad]
    return {"html": html, "dir": folder / "out", "items": items, "wrong": wrong, "right": right,
            "predictions": folder / "predictions.csv"}


class _Cases(HTMLParser):
    """Collects ``data-case-id`` of case cards per ``<section id=...>``."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.cases: dict[str, list[str]] = {}
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id")
            self.cases.setdefault(self.section, [])
        if "data-case-id" in attrs:
            self.cases[self.section].append(attrs["data-case-id"])
        if tag == "img" and str(attrs.get("src", "")).startswith("data:image/png;base64,"):
            self.images += 1


def _cases_of(html: str) -> _Cases:
    parser = _Cases()
    parser.feed(html)
    return parser


def _by_confidence(cases: list[tuple[str, float]]) -> list[str]:
    return [case_id for case_id, _ in sorted(cases, key=lambda c: (-c[1], c[0]))]


def test_report_lists_every_misclassified_case_most_confident_first(report):
    parsed = _cases_of(report["html"].read_text())
    assert parsed.cases["misclassified"] == _by_confidence(report["wrong"])
    assert parsed.cases["correct"] == _by_confidence(report["right"])[:3]
    shown = len(report["wrong"]) + 3
    assert parsed.images == 4 + 2 * shown  # 4 figures, and image + CAM overlay per shown case
    for name in ("roc", "pr", "confusion", "calibration"):
        assert (report["dir"] / f"{name}.png").stat().st_size > 5000
    assert len(list((report["dir"] / "cases").glob("*_cam.png"))) == shown


def test_report_metrics_match_the_evaluation_summary(report):
    rows, names = read_predictions(report["predictions"])
    probs, labels = np.array([r.probs for r in rows]), np.array([r.label for r in rows])
    summary = classification_summary(probs, labels)
    html = report["html"].read_text()
    groups = patient_groups([r.id for r in rows], report["items"])  # None: the DICOM case names no patient
    for key in ("auroc", "auprc", "sensitivity"):  # each metric with its 95% CI
        value, low, high = bootstrap_ci(labels, probs, key, n_resamples=1000, groups=groups)
        assert value == pytest.approx(summary[key])
        assert f"<td>{value:.3f} [{low:.3f}, {high:.3f}]</td>" in html, key
    fpr, tpr = roc_points(probs[:, 1], labels == 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(summary["auroc"])
    assert names == list(CLASSES)

    strict = {r.id: r for r in read_predictions(report["predictions"], threshold=0.95)[0]}
    assert all(strict[r.id].prediction == int(r.probs[1] >= 0.95) for r in rows)  # the threshold decides, not the CSV
    assert {i for i, r in strict.items() if not r.correct} != {i for i, _ in report["wrong"]}


def test_report_shows_the_operating_point_and_temperature_chosen_on_validation(tmp_path):
    """With the validation split's predictions beside the test ones, the page shows the threshold and temperature
    chosen there (the same numbers as post_hoc_metrics) and the calibration plot gains the scaled curve."""
    rng = np.random.default_rng(0)

    def write(path, prefix, n):
        labels = rng.integers(0, 2, n)
        p = 1 / (1 + np.exp(-4 * (labels - 0.5 + rng.normal(0, 0.8, n))))  # over-confident
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label", "prob_negative", "prob_positive", "prediction"])
            for i in range(n):
                writer.writerow([f"{prefix}{i}", CLASSES[labels[i]], f"{1 - p[i]:.6f}", f"{p[i]:.6f}", ""])

    write(tmp_path / "val.csv", "v", 60)
    write(tmp_path / "test.csv", "t", 40)
    html = error_report(tmp_path / "test.csv", tmp_path / "out", validation_predictions=tmp_path / "val.csv",
                        n_resamples=200).read_text()
    expected = post_hoc_metrics(tmp_path / "val.csv", tmp_path / "test.csv", n_resamples=200)
    point, calibration = expected["operating_point"], expected["calibration"]
    assert 'id="validation"' in html and f"<td>{point['threshold']:.4f}</td>" in html
    sensitivity = point["sensitivity"]
    assert f"<td>{sensitivity['value']:.3f} [{sensitivity['ci_low']:.3f}, {sensitivity['ci_high']:.3f}]</td>" in html
    assert f"<td>{calibration['temperature']:.3f}</td>" in html and calibration["temperature"] > 1
    without = error_report(tmp_path / "test.csv", tmp_path / "plain", n_resamples=200).read_text()
    assert 'id="validation"' not in without


def test_no_patient_identity_from_dicom_headers_in_any_report_file(report):
    header = pydicom.dcmread(report["items"][-1]["image"])
    assert (str(header.PatientName), header.PatientID) == (SECRETS[0], SECRETS[3])  # the input really names them
    for path in report["dir"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret!r} leaked into {path.name}"
    assert "case-dicom-01" in report["html"].read_text()


def test_relabel_csv_lists_every_case_misclassified_first_with_an_empty_note(report):
    with open(report["dir"] / "relabel.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "label", "prediction", "probability", "misclassified", "note"]
    assert [r["id"] for r in rows[: len(report["wrong"])]] == _by_confidence(report["wrong"])
    assert sorted(r["id"] for r in rows) == sorted(item["id"] for item in report["items"])
    assert all(r["note"] == "" for r in rows)
    assert all((r["label"] != r["prediction"]) == (r["misclassified"] == "yes") for r in rows)


def _chromium() -> Path:
    """``/usr/bin/chromium``, installed by ``scripts/ensure_chromium.sh`` when missing (root + apt-get)."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 and shutil.which("sudo") is None:
            pytest.skip("chromium is missing and cannot be installed here; run scripts/ensure_chromium.sh as root")
        proc = subprocess.run(["bash", str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0 and CHROMIUM.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return CHROMIUM


def _headless(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([str(_chromium()), *flags, *args], capture_output=True, text=True, timeout=180)


def test_report_renders_in_headless_chromium(report, tmp_path):
    url = report["html"].resolve().as_uri()
    shot = tmp_path / "report.png"
    proc = _headless(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a blank page is a few kB
    dom = _headless(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _cases_of(dom.stdout)
    assert parsed.cases["misclassified"] == _by_confidence(report["wrong"])
    assert not set(parsed.cases["correct"]) & {case_id for case_id, _ in report["wrong"]}
    if os.environ.get("MEDTL_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["MEDTL_KEEP_SCREENSHOT"])


def test_cli_writes_the_report_of_a_run_evaluation_into_the_run(tiny_demo, tmp_path):
    """scripts/error_report.py on the default (3D CT) bundle: a run holding a model and a hand-made evaluation of the
    test split; with no --run the latest run is explained, and the report goes into that run's eval/report."""
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    torch.manual_seed(0)
    save_untrained_model(bundle, ["train.json"], image_size=[32, 32, 16])
    run = bundle / "runs" / "20261201-0900_e2"
    run.mkdir(parents=True)
    (bundle / "models").rename(run / "models")  # a run that was not published
    (run / "eval").mkdir()
    items = load_split(tiny_demo / "datalist.json", "test")
    plan = [(i % 2 == 0, 0.6 + 0.1 * i) for i in range(len(items))]
    _write_predictions(run / "eval" / "predictions.csv", items, plan)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "error_report.py"), "--bundle", str(bundle),
                           "--n_correct", "1", "--dataset_dir", str(tiny_demo)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = run / "eval" / "report" / "report.html"
    assert proc.stdout.strip().endswith(str(html))
    assert not (bundle / "eval").exists()
    parsed = _cases_of(html.read_text())
    wrong = [(item["id"], conf) for item, (bad, conf) in zip(items, plan) if bad]
    assert parsed.cases["misclassified"] == _by_confidence(wrong)
    assert parsed.images == 4 + 2 * (len(wrong) + 1)
    if os.environ.get("MEDTL_KEEP_REPORT"):
        shutil.copytree(html.parent, os.environ["MEDTL_KEEP_REPORT"], dirs_exist_ok=True)


def test_report_refuses_predictions_whose_ids_are_not_the_datalist_cases(report, tmp_path):
    """Predictions of another data set (the 3D demo's evaluation explained with an X-ray datalist) stop the report
    with an error naming the predictions file, the datalist and the counts; a subset of the datalist is fine."""
    others = [{**item, "id": f"other-{i}"} for i, item in enumerate(report["items"])]
    with pytest.raises(PredictionsMismatchError) as info:
        error_report(report["predictions"], tmp_path / "none", items=others, items_source="my_cxr.json (split 'test')")
    message = str(info.value)
    assert message.startswith(f"{report['predictions']}: 9 of its 9 prediction ids are not in my_cxr.json")
    assert "case-dicom-01" in message and not (tmp_path / "none").exists()
    with pytest.raises(PredictionsMismatchError, match=r": 6 of its 9 prediction ids are not in the 3 datalist"):
        error_report(report["predictions"], tmp_path / "some", items=report["items"][:3])
    html = error_report(report["predictions"], tmp_path / "more", items=[*report["items"], *others])  # limit_cases
    assert len(_cases_of(html.read_text()).cases["misclassified"]) == len(report["wrong"])


def test_cli_refuses_output_dir_and_names_report_dir(capsys):
    spec = importlib.util.spec_from_file_location("error_report_script", REPO / "scripts" / "error_report.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as info:
        script.main(["--bundle", str(REPO / "bundles" / "bimcv_truncated"), "--output_dir", "/tmp/somewhere"])
    assert info.value.code == 2 and "use --report_dir" in capsys.readouterr().err


def test_three_classes_use_arg_max_one_vs_rest_curves_and_a_3x3_confusion(tmp_path):
    probs = {"a": (0.7, 0.2, 0.1), "b": (0.1, 0.8, 0.1), "c": (0.3, 0.3, 0.4), "d": (0.5, 0.4, 0.1), "e": (0.2, 0.2, 0.6)}
    labels = {"a": "cat", "b": "dog", "c": "cow", "d": "dog", "e": "cat"}
    with open(tmp_path / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "prob_cat", "prob_dog", "prob_cow", "prediction"])
        writer.writerows([[k, labels[k], *p, ""] for k, p in probs.items()])
        writer.writerow(["unlabelled", "", 0.2, 0.3, 0.5, "cow"])  # an inference row is skipped
    html = error_report(tmp_path / "predictions.csv", tmp_path / "out", threshold=0.99)  # no network: no pictures
    parsed = _cases_of(html.read_text())
    assert parsed.cases["misclassified"] == ["e", "d"]  # arg-max, whatever the threshold; most confident first
    assert "unlabelled" not in html.read_text()
    with pytest.raises(ValueError, match="not one of the classes"):
        (tmp_path / "bad.csv").write_text("id,label,prob_cat,prob_dog\nx,bird,0.5,0.5\n")
        read_predictions(tmp_path / "bad.csv")
