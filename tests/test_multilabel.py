"""Multi-label (CheXpert-style) training: the uncertain-label policies of the loss, per-class pos_weight, the
CheXpert table reader, the per-class summary with CIs, per-class CAMs, the demo set, and the switch
(configs/multi_label.json) trained and evaluated end to end."""

from __future__ import annotations

import csv
import dataclasses
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _bundle_utils import REPO, copy_bundle, workflow
from medtl_monai.bundle import BundleModel
from medtl_monai.data.builders import chexpert_items
from medtl_monai.evaluation import multilabel_summary, per_class_metric
from medtl_monai.evaluation._auc import weighted_auroc
from medtl_monai.explain import CAMWriter, LayerCAM
from medtl_monai.networks import TransferClassifier
from medtl_monai.synthetic.multilabel import MULTILABEL_CLASSES, enlarge_heart, make_multilabel_demo
from medtl_monai.synthetic.phantom import render_xray, sample_anatomy, sample_findings
from medtl_monai.training import MaskedBCEWithLogitsLoss, apply_uncertain_policy, class_weights, pos_weights

TARGETS = torch.tensor([[1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


@pytest.mark.parametrize("policy, filled, mask", [
    ("ones", [[1, 0, 1], [1, 1, 0]], [[1, 1, 1], [1, 1, 1]]),
    ("zeros", [[1, 0, 0], [0, 1, 0]], [[1, 1, 1], [1, 1, 1]]),
    ("ignore", [[1, 0, 0], [0, 1, 0]], [[1, 1, 0], [0, 1, 1]]),
])
def test_each_uncertain_policy_sets_the_targets_and_the_loss_mask_as_documented(policy, filled, mask):
    targets, weights = apply_uncertain_policy(TARGETS, policy)
    assert targets.tolist() == filled and weights.tolist() == mask
    logits = torch.tensor([[0.3, -1.2, 2.0], [0.7, 0.1, -0.4]], requires_grad=True)
    loss = MaskedBCEWithLogitsLoss(pos_weight=[2.0, 1.0, 0.5], uncertain=policy)(logits, TARGETS)
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor([2.0, 1.0, 0.5]),
                                                   reduction="none")
    assert loss.item() == pytest.approx(float((per_entry * weights).sum().detach() / weights.sum()))
    loss.backward()
    uncertain = TARGETS == -1
    assert (logits.grad[uncertain] == 0).all() == (policy == "ignore")  # masked out of the loss only under ignore


def test_policies_refuse_unknown_names_and_targets():
    with pytest.raises(ValueError, match="policy must be one of"):
        MaskedBCEWithLogitsLoss(uncertain="half")
    with pytest.raises(ValueError, match="must be 1, 0 or -1"):
        apply_uncertain_policy(torch.tensor([[0.5, 1.0]]), "ones")


def test_pos_weight_is_negatives_over_positives_counted_by_the_policy():
    items = [{"label": [1, 0, -1]}, {"label": [0, 1, 1]}, {"label": [0, -1, 0]}, {"label": [1, 0, 0]}]
    assert pos_weights(items, 3, "ones").tolist() == pytest.approx([2 / 2, 2 / 2, 2 / 2])
    assert pos_weights(items, 3, "zeros").tolist() == pytest.approx([2 / 2, 3 / 1, 3 / 1])
    assert pos_weights(items, 3, "ignore").tolist() == pytest.approx([2 / 2, 2 / 1, 2 / 1])
    with pytest.raises(ValueError, match=r"classes \[2\] have no positive"):
        pos_weights(items[2:], 3, "ones")
    with pytest.raises(ValueError, match="multi-label switch"):
        class_weights(items, 3)  # the single-label weights say where to go
    assert class_weights([{"label": 0}, {"label": 1}, {"label": 1}], 2).tolist() == pytest.approx([1.5, 0.75])


def _table(tmp_path: Path, rows: list[str]) -> Path:
    for row in rows:
        image = tmp_path / row.split(",")[0]
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"")
    path = tmp_path / "train.csv"
    path.write_text("Path,Sex,Age,Frontal/Lateral,AP/PA,Edema,Pleural Effusion\n" + "\n".join(rows) + "\n")
    return path


def test_chexpert_table_blank_is_zero_uncertain_is_kept_and_patients_come_from_the_path(tmp_path):
    table = _table(tmp_path, ["x/train/patient00007/study1/view1_frontal.jpg,F,60,Frontal,PA,1.0,",
                              "x/train/patient00007/study2/view1_frontal.jpg,F,61,Frontal,AP,-1.0,0.0",
                              "x/train/patient00012/study1/view1_frontal.jpg,M,40,Frontal,PA,,1"])
    items, classes = chexpert_items(tmp_path, table)
    assert classes == ["Edema", "Pleural Effusion"]  # the metadata columns are not observations
    assert [i["label"] for i in items] == [[1, 0], [-1, 0], [0, 1]]
    assert [i["patient_id"] for i in items] == ["patient00007", "patient00007", "patient00012"]
    assert items[0]["id"] == "x/train/patient00007/study1/view1_frontal"
    assert chexpert_items(tmp_path, table, classes=["Pleural Effusion"])[0][0]["label"] == [0]
    table.write_text(table.read_text().replace(",1.0,\n", ",2,\n", 1))
    with pytest.raises(ValueError, match=r"line 2, column 'Edema': '2' is not a CheXpert label"):
        chexpert_items(tmp_path, table)


def test_make_datalist_chexpert_csv_writes_a_multi_label_xray_datalist(tmp_path, monkeypatch):
    rows = [f"x/train/patient{p:05d}/study1/view1_frontal.jpg,F,60,Frontal,PA,{p % 2},{-1 if p % 3 == 0 else ''}"
            for p in range(1, 11)]
    table = _table(tmp_path, rows)
    monkeypatch.setattr(sys, "argv", ["make_datalist.py", "--chexpert_csv", str(table), "--root", str(tmp_path),
                                      "--datalist", str(tmp_path / "dl.json"), "--classes", "Pleural Effusion", "Edema"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "make_datalist.py"), run_name="__main__")
    assert exit_info.value.code == 0
    doc = json.loads((tmp_path / "dl.json").read_text())
    assert doc["multi_label"] is True and doc["class_names"] == ["Pleural Effusion", "Edema"]
    assert doc["modality"] == {"0": "CR"}
    labels = {i["patient_id"]: i["label"] for split in ("training", "validation", "test") for i in doc[split]}
    assert labels["patient00003"] == [-1, 1] and labels["patient00004"] == [0, 0] and len(labels) == 10


def test_summary_leaves_uncertain_entries_out_of_their_class_and_gives_cis():
    rng = np.random.default_rng(0)
    labels = rng.choice([1, 0, 0, -1], size=(80, 3))
    probs = np.clip(rng.random((80, 3)) + 0.3 * (labels == 1), 0, 1)
    patients = [f"p{i // 2}" for i in range(80)]
    summary = multilabel_summary(probs, labels, ["a", "b", "c"], summary_classes=["a", "c"], groups=patients,
                                 n_resamples=300)
    for k, name in enumerate("abc"):
        certain = labels[:, k] >= 0
        expected = weighted_auroc(labels[certain, k] == 1, probs[certain, k], np.ones((1, certain.sum())))[0]
        entry = summary["per_class"][name]
        assert entry["auroc"]["value"] == pytest.approx(expected)
        assert entry["n_uncertain"] == int((labels[:, k] == -1).sum())
        for metric in ("auroc", "auprc", "sensitivity", "specificity"):
            assert entry[metric]["ci_low"] <= entry[metric]["value"] <= entry[metric]["ci_high"]
    per_class = [summary["per_class"][n]["auroc"]["value"] for n in "abc"]
    assert summary["auroc"] == summary["mean_auroc"]["value"] == pytest.approx(np.mean(per_class))
    assert summary["summary_auroc"]["value"] == pytest.approx((per_class[0] + per_class[2]) / 2)
    assert summary["n_patients"] == 40 and "cluster" in summary["method"]
    moved = probs.copy()
    moved[labels == -1] = rng.random(int((labels == -1).sum()))  # uncertain entries do not count
    assert np.allclose(per_class_metric(moved, labels), per_class_metric(probs, labels))
    with pytest.raises(ValueError, match="summary_classes"):
        multilabel_summary(probs, labels, ["a", "b", "c"], summary_classes=["Edema"], n_resamples=0)


def test_cam_writer_writes_one_map_per_class_at_the_threshold(tmp_path):
    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 2, 1, 3, cut="layer1").eval()
    writer = CAMWriter(LayerCAM(net, "layer1"), tmp_path, class_names=list(MULTILABEL_CLASSES), multi_label=True,
                       nifti=False)
    assert writer.explained_classes(torch.tensor([0.7, 0.2, 0.5])) == [0, 2]
    assert writer.explained_classes(torch.tensor([0.1, 0.3, 0.2])) == [1]  # none present: the most probable one
    image = torch.rand(1, 32, 32)
    row = writer.write_case("patient00001/study1", image, torch.rand(32, 32), 2, torch.tensor([0.7, 0.2, 0.5]))
    assert row["png"] == "patient00001_study1_cam_Cardiomegaly.png" and (tmp_path / row["png"]).is_file()
    assert row["prediction"] == "Opacity;Cardiomegaly" and row["explained_class"] == "Cardiomegaly"


def test_demo_findings_show_on_the_radiograph_and_the_set_is_reproducible(tmp_path):
    anat = sample_anatomy(np.random.default_rng([0, 5, 0]))
    findings = sample_findings(np.random.default_rng(1), anat, positive=False)
    plain = render_xray(anat, findings, size=64)
    fluid = render_xray(anat, dataclasses.replace(findings, effusions=[(1.0, 50.0)]), size=64)
    wide = render_xray(enlarge_heart(anat, 1.45), findings, size=64)
    assert (fluid - plain)[:, 32:].sum() > 0 and np.abs(fluid - plain)[:, :32].max() < 1  # the left base only
    assert (wide - plain).sum() > 0  # less aerated lung beside the heart
    a = make_multilabel_demo(tmp_path / "a", n_images=12, seed=4)
    b = make_multilabel_demo(tmp_path / "b", n_images=12, seed=4)
    assert a["labels"].read_bytes() == b["labels"].read_bytes()
    first = sorted((tmp_path / "a" / "images").rglob("*.png"))
    assert len(first) == 12 and first[0].read_bytes() == (tmp_path / "b" / first[0].relative_to(tmp_path / "a")).read_bytes()
    doc = json.loads(a["datalist"].read_text())
    assert doc["multi_label"] is True and doc["class_names"] == list(MULTILABEL_CLASSES)
    with pytest.raises(FileExistsError):
        make_multilabel_demo(tmp_path / "a", n_images=12)


@pytest.fixture(scope="module")
def multilabel_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multilabel") / "demo"
    summary = make_multilabel_demo(root / "multilabel", n_images=48, seed=1, fractions=(0.5, 0.25, 0.25))
    assert all(c["uncertain"] > 0 for c in summary["counts"].values())
    return root


#: a small network and input for the end-to-end run
TINY = {"arch": "resnet18", "cut": "layer2", "image_size": 32, "batch_size": 12, "val_batch_size": 12,
        "progress_bar": False}


def test_the_switch_trains_then_evaluates_and_explains_with_per_class_metrics_cis_and_cams(multilabel_demo, tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    configs = ["train.json", "xray.json", "multi_label.json"]
    workflow(bundle, configs, "train", dataset_dir=str(multilabel_demo), max_epochs=1, uncertain_policy="ignore",
             **TINY)
    run = next((bundle / "runs").iterdir())
    best = json.loads((run / "models" / "metrics.json").read_text())
    assert best["key_metric"] == "val_auroc" and 0 <= best["best_metric"] <= 1
    workflow(bundle, [*configs, "evaluate.json"], "eval", dataset_dir=str(multilabel_demo),
             summary_classes=["Opacity", "Effusion"], **TINY)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    validation = json.loads((run / "eval" / "validation" / "metrics.json").read_text())
    assert validation["multi_label"] and "operating_point" not in metrics  # per-class thresholds: not chosen here
    test = json.loads((multilabel_demo / "multilabel" / "datalist_multilabel.json").read_text())["test"]
    labels = np.array([item["label"] for item in test])
    assert metrics["multi_label"] and metrics["class_names"] == list(MULTILABEL_CLASSES)
    for k, name in enumerate(MULTILABEL_CLASSES):
        entry = metrics["per_class"][name]
        assert entry["n_uncertain"] == int((labels[:, k] == -1).sum())
        assert entry["auroc"]["ci_low"] <= entry["auroc"]["value"] <= entry["auroc"]["ci_high"]
    assert metrics["summary_auroc"]["value"] == pytest.approx(np.nanmean(
        [metrics["per_class"][n]["auroc"]["value"] for n in ("Opacity", "Effusion")]))
    with open(run / "eval" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [item["id"] for item in test]
    assert [[int(r[f"label_{n}"]) for n in MULTILABEL_CLASSES] for r in rows] == labels.tolist()
    probs = np.array([[float(r[f"prob_{n}"]) for n in MULTILABEL_CLASSES] for r in rows])
    assert ((probs > 0) & (probs < 1)).all() and not np.allclose(probs.sum(1), 1)  # sigmoids, not a softmax
    # the card says multi-label, so inference, MONAI Deploy and MONAI Label (BundleModel) apply the sigmoid too
    card = json.loads((run / "models" / "model_card.json").read_text())
    assert card["multi_label"] is True and card["output"] == "sigmoid"
    model = BundleModel(bundle, run=run)
    served = model(str(multilabel_demo / "multilabel" / test[0]["image"]))
    assert [served["probabilities"][n] for n in MULTILABEL_CLASSES] == pytest.approx(probs[0].tolist(), abs=1e-5)
    assert served["labels"] == [n for n, p in zip(MULTILABEL_CLASSES, probs[0]) if p >= 0.5]
    workflow(bundle, [*configs, "evaluate.json", "explain.json"], dataset_dir=str(multilabel_demo), limit_cases=2,
             **TINY)
    with open(run / "eval" / "cam" / "cams.csv") as f:
        cams = list(csv.DictReader(f))
    assert {r["id"] for r in cams} == {item["id"] for item in test[:2]}
    for r in cams:
        assert r["png"].endswith(f"_cam_{r['explained_class']}.png") and (run / "eval" / "cam" / r["nifti"]).is_file()
