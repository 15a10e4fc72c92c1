"""Engine pieces (metrics, class weights, early stop, checkpoint files) and the bundle glue (root, data, init)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from medtl_monai.bundle import MissingDataError, find_bundle_root, folder_cases, initialize_from_checkpoint, load_split
from medtl_monai.bundle.paths import _from_argv
from medtl_monai.engine import StopOnLowLR, atomic_torch_save, average_precision, class_weights, classification_summary
from medtl_monai.networks import TransferClassifier


def test_average_precision_matches_hand_computation():
    # ranking: 0.9(+), 0.8(-), 0.7(+), 0.1(-): AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)  # ties count once
    assert np.isnan(average_precision(np.array([0.2, 0.4]), np.array([0, 0])))


def test_classification_summary_numbers():
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
    labels = [1, 1, 0, 0, 0]
    s = classification_summary(probs, labels)
    # predictions at 0.5: 1, 0, 1, 0, 1 -> TP 1, FN 1, TN 1, FP 2
    assert s["accuracy"] == pytest.approx(2 / 5)
    assert s["sensitivity"] == pytest.approx(1 / 2) and s["specificity"] == pytest.approx(1 / 3)
    # AUROC: positive scores 0.9, 0.4 against negatives 0.7, 0.2, 0.55 -> pairs won 3 + 1 of 6
    assert s["auroc"] == pytest.approx(4 / 6)


def test_class_weights_are_inverse_frequency():
    items = [{"label": 0}] * 6 + [{"label": 1}] * 2
    assert torch.allclose(class_weights(items, 2), torch.tensor([8 / 12, 8 / 4]))
    with pytest.raises(ValueError, match="classes \\[1\\] have no training case"):
        class_weights([{"label": 0}], 2)
    with pytest.raises(ValueError, match="outside 0..1"):
        class_weights([{"label": 2}], 2)


def test_stop_on_low_lr_terminates():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1e-3)
    engine = Engine(lambda e, b: optimizer.param_groups[0].update(lr=optimizer.param_groups[0]["lr"] * 0.1))
    StopOnLowLR(optimizer, min_lr=1e-6).attach(engine)
    engine.run([0], max_epochs=50)
    assert engine.state.epoch == 4  # 1e-4, 1e-5, 1e-6, 1e-7 < 1e-6


def test_atomic_save_leaves_no_partial_file(tmp_path):
    path = atomic_torch_save({"a": torch.ones(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_bundle_root_from_command_line_forms(tmp_path):
    configs = tmp_path / "mybundle" / "configs"
    configs.mkdir(parents=True)
    (configs / "train.json").write_text("{}")
    (configs / "evaluate.json").write_text("{}")
    assert _from_argv(["run", "--config_file", str(configs / "train.json")]) == tmp_path / "mybundle"
    listed = f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']"
    assert _from_argv(["run", f"--config_file={listed}"]) == tmp_path / "mybundle"
    assert find_bundle_root(default=tmp_path) == str(tmp_path)


def test_load_split_and_missing_data(tiny_demo, tmp_path):
    items = load_split(tiny_demo / "datalist.json", "training")
    assert items and all(Path(i["image"]).is_absolute() and Path(i["image"]).exists() for i in items)
    assert len(load_split(tiny_demo / "datalist.json", "training", limit=3)) == 3
    with pytest.raises(MissingDataError, match="make_demo_data.py"):
        load_split(tmp_path / "none" / "datalist.json", "training")


def test_folder_cases_finds_series_files_and_nifti(tiny_demo):
    series = folder_cases(tiny_demo / "dicom", kinds=("series",))
    assert series and all(item["id"].endswith("/CT") and os.path.isdir(item["image"]) for item in series)
    xrays = folder_cases(tiny_demo / "dicom", kinds=("file",))
    assert {Path(i["image"]).name for i in xrays} == {"CR.dcm"} and len(xrays) == len(series)
    nifti = folder_cases(tiny_demo, kinds=("nifti",))
    assert all(i["image"].endswith(".nii.gz") for i in nifti)
    with pytest.raises(ValueError, match="holds no case"):
        folder_cases(tiny_demo / "dicom", kinds=())


def test_two_step_initialisation_replaces_the_head_only(tmp_path):
    torch.manual_seed(0)
    source = TransferClassifier("resnet18", 2, 3, 5, cut="layer3")
    torch.save(source.state_dict(), tmp_path / "model.pt")
    target = TransferClassifier("resnet18", 2, 3, 2, cut="layer2")
    head_before = target.head.fc.weight.clone()
    initialize_from_checkpoint(target, tmp_path / "model.pt")
    for key, value in target.backbone.state_dict().items():
        assert torch.equal(value, source.backbone.state_dict()[key]), key
    assert torch.equal(target.head.fc.weight, head_before)
    deeper = TransferClassifier("resnet18", 2, 3, 2, cut="layer4")
    with pytest.raises(ValueError, match="backbone keys missing.*layer4"):
        initialize_from_checkpoint(deeper, tmp_path / "model.pt")
