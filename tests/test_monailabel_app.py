"""The MONAI Label app (monailabel_app/): its datastore-to-datalist rules, and the real ``monailabel`` server run
offline on 127.0.0.1 in its own environment (.venv-label, built on first use): /info, /infer (class probabilities
equal to the bundle's own inference) and /train (datastore classes -> the bundle's train.json)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from _bundle_utils import REPO
from _integration_utils import (
    bundle_probabilities,
    copy_trained,
    free_port,
    integration_python,
    python_env,
    trained_bundle,
)

ATOL = 1e-4
START_TIMEOUT = 180  # seconds for the server to answer /info/
REQUEST_TIMEOUT = 120
TRAIN_TIMEOUT = 600
N_IMAGES = 6


def _load_labels_module():
    spec = importlib.util.spec_from_file_location("medtl_label_labels", REPO / "monailabel_app" / "lib" / "labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


labels = _load_labels_module()


class FakeDatastore:
    """The datastore methods the train task reads, over plain dicts."""

    def __init__(self, images: dict[str, dict]) -> None:
        self.images = images

    def get_labeled_images(self):
        return [k for k, v in self.images.items() if v.get("labelled", True)]

    def get_image_uri(self, image_id):
        return f"/data/{image_id}.nii.gz"

    def get_image_info(self, image_id):
        return self.images[image_id].get("image_info", {})

    def get_label_uri(self, label_id, label_tag):
        return self.images[label_id].get("label_file", "")

    def get_label_info(self, label_id, label_tag):
        return self.images[label_id].get("label_info", {})


def test_datastore_classes_come_from_label_info_label_files_or_image_info(tmp_path):
    (tmp_path / "b.txt").write_text("Positive\n")
    (tmp_path / "c.json").write_text(json.dumps({"label": 0}))
    (tmp_path / "mask.nii.gz").write_bytes(b"")
    store = FakeDatastore({
        "a": {"label_info": {"label": "negative"}},
        "b": {"label_file": str(tmp_path / "b.txt")},
        "c": {"label_file": str(tmp_path / "c.json")},
        "d": {"image_info": {"class": "1"}},
        "e": {"label_file": str(tmp_path / "mask.nii.gz")},  # a segmentation label: not a class, skipped
        "f": {"labelled": False, "image_info": {"label": "positive"}},  # no final label: skipped
    })
    items = labels.classification_items(store, ["negative", "positive"])
    assert [(i["id"], i["label"]) for i in items] == [("a", 0), ("b", 1), ("c", 0), ("d", 1)]
    assert items[0]["image"] == "/data/a.nii.gz"


def test_an_unknown_class_names_the_image_and_the_classes():
    store = FakeDatastore({"x": {"label_info": {"label": "maybe"}}})
    with pytest.raises(labels.ClassificationLabelError, match=r"image 'x'.*'maybe'.*\['negative', 'positive'\]"):
        labels.classification_items(store, ["negative", "positive"])


def test_split_keeps_every_class_in_both_splits_and_is_seeded():
    items = [{"id": str(i), "image": f"{i}.nii", "label": i % 2} for i in range(10)]
    split = labels.split_items(items, val_fraction=0.2, seed=1)
    assert len(split["training"]) == 8 and len(split["validation"]) == 2
    assert {i["label"] for i in split["validation"]} == {0, 1} == {i["label"] for i in split["training"]}
    assert split == labels.split_items(items, val_fraction=0.2, seed=1)
    with pytest.raises(ValueError, match="at least 2"):
        labels.split_items(items[:1])


# ----------------------------------------------------------------------------------------------- the real server
@pytest.fixture(scope="session")
def label_python():
    return integration_python("label")


@pytest.fixture(scope="module")
def served(label_python, tmp_path_factory, tiny_demo):
    """The monailabel server on a free 127.0.0.1 port with the app (a copy: the server writes model/, logs/, bin/
    into the app folder), a copy of the tiny trained bundle and a datastore of tiny CT volumes; stopped at the end."""
    root = tmp_path_factory.mktemp("monailabel")
    bundle = copy_trained(trained_bundle(tmp_path_factory, tiny_demo), root)
    app = root / "app"
    shutil.copytree(REPO / "monailabel_app", app, ignore=shutil.ignore_patterns("__pycache__", "model", "logs", "bin"))
    studies = root / "studies"
    studies.mkdir()
    doc = json.loads((tiny_demo / "datalist.json").read_text())
    cases = sorted(doc["training"] + doc["validation"] + doc["test"], key=lambda c: c["id"])[:N_IMAGES]
    for case in cases:
        shutil.copy(tiny_demo / case["image"], studies / Path(case["image"]).name)
    port = free_port()
    log = open(root / "server.log", "w")
    cmd = [str(label_python), "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
           "--host", "127.0.0.1", "--port", str(port), "--conf", "zoo_source", "github",
           "--conf", "bundles", str(bundle), "--conf", "device", "cpu"]
    env = python_env(label_python)
    env.update(MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", MONAI_LABEL_AUTH_ENABLE="false")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"monailabel exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-4000:]}")
            try:
                info = json.loads(urllib.request.urlopen(f"{url}/info/", timeout=5).read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.time() > deadline:
                    log_tail = (root / "server.log").read_text()[-4000:]
                    pytest.fail(f"monailabel did not answer within {START_TIMEOUT} s:\n{log_tail}")
                time.sleep(1)
        yield {"url": url, "info": info, "bundle": bundle, "studies": studies, "cases": cases, "root": root}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


def _multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, method: str = "GET", fields: dict | None = None, files: dict | None = None, json_body: dict | None = None,
            timeout: float = REQUEST_TIMEOUT) -> dict:
    headers, data = {}, None
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif fields is not None or files is not None:
        data, headers["Content-Type"] = _multipart(fields or {}, files or {})
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        return json.loads(urllib.request.urlopen(req, timeout=timeout).read())
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {url}: HTTP {err.code}: {err.read()[:2000]!r}") from None


def _probs(result: dict) -> list[float]:
    assert result["class_names"] == ["negative", "positive"]
    assert [p["label"] for p in result["prediction"]] == result["class_names"]
    probs = [result["probabilities"][c] for c in result["class_names"]]
    assert [p["score"] for p in result["prediction"]] == probs
    assert result["label"] == result["class_names"][int(np.argmax(probs))]
    return probs


@pytest.mark.integration  # the real server in .venv-label
def test_info_lists_a_classification_model_and_a_trainer_per_bundle(served):
    info = served["info"]
    name = served["bundle"].name
    assert info["models"][name]["type"] == "classification"
    assert info["models"][name]["labels"] == ["negative", "positive"]
    assert info["models"][name]["dimension"] == 3
    assert name in info["trainers"]
    assert info["datastore"]["total"] == N_IMAGES


@pytest.mark.integration  # the real server in .venv-label
def test_infer_on_an_uploaded_volume_and_on_a_datastore_image_gives_the_bundle_probabilities(served, tmp_path):
    volumes = sorted(served["studies"].glob("*.nii.gz"))[:2]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for v in volumes:
        shutil.copy(v, inputs / v.name)
    reference = bundle_probabilities(served["bundle"], inputs, tmp_path)
    model_url = f"{served['url']}/infer/{served['bundle'].name}"
    uploaded = request(f"{model_url}?output=json", "POST", fields={"params": "{}"}, files={"file": volumes[0]})
    assert np.abs(np.subtract(_probs(uploaded), reference[volumes[0].name])).max() <= ATOL
    image_id = volumes[1].name[: -len(".nii.gz")]
    stored = request(f"{model_url}?image={image_id}&output=json", "POST", fields={"params": "{}"})
    assert np.abs(np.subtract(_probs(stored), reference[volumes[1].name])).max() <= ATOL


@pytest.mark.integration  # the real server in .venv-label
def test_train_turns_datastore_classes_into_the_bundle_datalist_and_infer_uses_the_new_model(served, tmp_path):
    url, bundle = served["url"], served["bundle"]
    for case in served["cases"]:
        image_id = Path(case["image"]).name[: -len(".nii.gz")]
        label_file = tmp_path / f"{image_id}.txt"
        label_file.write_text(["negative", "positive"][case["label"]])
        # half the labels as text files, half as the label info MONAI Label stores with the label
        params = {"label": ["negative", "positive"][case["label"]]} if case["label"] else {}
        request(f"{url}/datastore/label?image={image_id}&tag=final", "PUT", fields={"params": json.dumps(params)},
                files={"label": label_file})
    model = bundle / "models" / "model.pt"
    before = model.stat().st_mtime
    stats = request(f"{url}/train/{bundle.name}?run_sync=true", "POST", timeout=TRAIN_TIMEOUT,
                    json_body={"max_epochs": 1, "val_split": 0.34, "overrides": {"batch_size": 2, "val_batch_size": 2}})
    assert stats["returncode"] == 0 and stats["n_training"] + stats["n_validation"] == N_IMAGES and stats["n_validation"] >= 2
    datalist = json.loads(Path(stats["datalist"]).read_text())
    assert datalist["class_names"] == ["negative", "positive"]
    expected = {Path(c["image"]).name: c["label"] for c in served["cases"]}
    assert {Path(i["image"]).name: i["label"] for i in datalist["training"] + datalist["validation"]} == expected
    assert {i["label"] for i in datalist["validation"]} == {0, 1}
    assert model.stat().st_mtime > before, "training did not write a new models/model.pt"
    # the infer task reloads the new weights: its answer equals the bundle classifier on the new model.pt
    from medtl_monai.bundle import BundleModel

    volume = sorted(served["studies"].glob("*.nii.gz"))[0]
    result = request(f"{url}/infer/{bundle.name}?output=json", "POST", fields={"params": "{}"}, files={"file": volume})
    now = BundleModel(bundle)(volume)
    assert np.abs(np.subtract(_probs(result), [now["probabilities"][c] for c in now["class_names"]])).max() <= ATOL
