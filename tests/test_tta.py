"""Test-time augmentation: the views each modality allows, averaging of probabilities, the report of its effect, and
the evaluate config's switch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.inferers import SimpleInferer

from _bundle_utils import copy_bundle, save_untrained_model, workflow
from medtl_monai.bundle import load_config
from medtl_monai.evaluation import TTAEffectWriter, TTAInferer, TTAView, tta_effect, tta_inferer, tta_views
from medtl_monai.transforms import air_values, ct_train_augmentation, xray_train_augmentation

CT_CARD = SimpleNamespace(preprocessing={"kind": "ct", "windows": ["lung", "mediastinum"], "normalize": "imagenet"})


def _names(views: list[TTAView]) -> list[str]:
    return [v.name for v in views]


def test_each_kind_gets_the_views_its_training_augmentation_makes():
    ct = tta_views(CT_CARD)  # no flip, no shift: only the axial rotation of training, at half its range, air-padded
    assert _names(ct) == ["identity", "rotate-5", "rotate+5"]
    assert ct[1].padding == "constant" and ct[1].fill == pytest.approx(air_values(["lung", "mediastinum"], "imagenet"))
    xray = tta_views({"preprocessing": {"kind": "xray"}})  # shifts of 5 of 10 pixels and +-5 degrees, edge repeated
    assert _names(xray) == ["identity", "shift0-5", "shift0+5", "shift1-5", "shift1+5", "rotate-5", "rotate+5"]
    assert {v.padding for v in xray[1:]} == {"border"}
    rgb = tta_views("rgb")  # flips both ways and quarter turns: the eight symmetries of the square, each once
    probe = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert len(rgb) == 8 and len({tuple(v(probe).reshape(-1).tolist()) for v in rgb}) == 8
    # a CT model trained with left-right flips (spatial axis 1) and shifts gets those views too, never an SI flip
    flipped = tta_views("ct", augmentation=ct_train_augmentation(flip_lr=True, translate=4.0, rotate_deg=0.0))
    assert _names(flipped) == ["identity", "flip1", *[f"shift{a}{s}" for a in range(3) for s in ("-2", "+2")]]
    with pytest.raises(ValueError, match="kind 'mri'"):
        tta_views("mri")


def test_shifts_repeat_the_edge_or_fill_with_air_never_wrap_around():
    x = torch.arange(2 * 6 * 5, dtype=torch.float32).reshape(1, 2, 6, 5)
    border = TTAView("down", shift=(2, 0))(x)
    assert torch.equal(border[:, :, 2:], x[:, :, :-2]) and torch.equal(border[:, :, :2], x[:, :, :1].expand(-1, -1, 2, -1))
    left = TTAView("left", shift=(0, -1), padding="constant", fill=(-7.0, 9.0))(x)
    assert torch.equal(left[..., :-1], x[..., 1:])
    assert left[0, 0, :, -1].eq(-7).all() and left[0, 1, :, -1].eq(9).all()
    air = torch.tensor([0.2, -1.0, 3.0]).reshape(1, 3, 1, 1, 1).expand(1, 3, 8, 8, 4)
    turned = TTAView("r", angle=10.0, padding="constant", fill=(0.2, -1.0, 3.0))(air.clone())
    assert torch.allclose(turned, air, atol=1e-5)  # air stays air, also where the rotation uncovers the corners


class _Pool(torch.nn.Module):
    """A classifier invariant to flips and quarter turns (global average pooling, then a linear layer)."""

    def __init__(self, channels: int = 3, classes: int = 3) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def test_a_network_invariant_to_the_views_gives_the_same_probabilities():
    torch.manual_seed(0)
    net, x = _Pool(), torch.rand(4, 3, 8, 8)
    inferer = TTAInferer(tta_views("rgb"))
    assert torch.allclose(torch.softmax(inferer(x, net), 1), torch.softmax(net(x), 1), atol=1e-6)


@pytest.mark.parametrize("multi_label", [False, True])
def test_probabilities_are_averaged_and_the_logits_give_back_their_mean(multi_label):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.rand(5, 1, 12, 12) * 4
    views = tta_views("xray", augmentation=xray_train_augmentation(translate=4.0, rotate_deg=0.0))
    inferer = TTAInferer(views[1:], multi_label=multi_label)  # the identity is added back, first
    out = inferer(x, net)
    act = torch.sigmoid if multi_label else (lambda z: torch.softmax(z, 1))
    expected = torch.stack([act(net(v(x))) for v in views]).mean(0)
    assert inferer.views[0].is_identity and len(inferer.views) == len(views) == 5
    assert torch.allclose(act(out), expected, atol=1e-5)
    assert not torch.allclose(act(torch.stack([net(v(x)) for v in views]).mean(0)), expected, atol=1e-4)  # not logits
    assert torch.equal(inferer.last_plain_logits, net(x).detach())


def test_the_factory_is_a_switch():
    assert isinstance(tta_inferer("false", CT_CARD), SimpleInferer)
    inferer = tta_inferer("true", CT_CARD)
    assert isinstance(inferer, TTAInferer) and _names(inferer.views) == _names(tta_views(CT_CARD))


def test_the_effect_writer_reports_delong_and_paired_bootstrap_intervals(tmp_path):
    torch.manual_seed(2)
    net, inferer = _Pool(3, 2), TTAInferer(tta_views("rgb")[:1] + [TTAView("shift", shift=(3, 0))])
    images, labels = torch.rand(24, 3, 6, 6), torch.tensor([0, 1] * 12)
    images[labels == 1, 0, :3] += 0.5  # the positive cases are brighter near the top: the shift changes scores

    def step(engine, batch):
        probs = torch.softmax(inferer(batch["image"], net), 1)
        engine.state.batch = [{"patient_id": p} for p in batch["patient_id"]]
        return [{"pred": p, "label": torch.nn.functional.one_hot(y, 2)} for p, y in zip(probs, batch["label"])]

    data = [{"image": images[i:i + 6], "label": labels[i:i + 6], "patient_id": [f"p{j // 2}" for j in range(i, i + 6)]}
            for i in range(0, 24, 6)]
    engine = Engine(step)
    writer = TTAEffectWriter(inferer, tmp_path / "eval" / "tta", class_names=["neg", "pos"], n_resamples=200)
    writer.attach(engine)
    engine.run(data)
    effect = json.loads((tmp_path / "eval" / "tta" / "tta_effect.json").read_text())
    assert effect["views"] == ["identity", "shift"] and effect["n_cases"] == 24 and effect["n_patients"] == 12
    assert effect["method"].startswith("cluster bootstrap over patients")
    assert set(effect["bootstrap"]) == {"auroc", "sensitivity", "specificity", "brier"}
    plain = torch.softmax(net(images), 1).detach().numpy()
    tta = np.mean([torch.softmax(net(v(images)), 1).detach().numpy() for v in inferer.views], axis=0)
    expected = tta_effect(labels.numpy(), plain, tta, [f"p{j // 2}" for j in range(24)], n_resamples=200)
    for metric, result in effect["bootstrap"].items():
        assert result["ci_low"] <= result["difference"] <= result["ci_high"]
        assert result["difference"] == pytest.approx(expected["bootstrap"][metric]["difference"], abs=1e-6)
    assert effect["delong"]["p_value"] == pytest.approx(expected["delong"]["p_value"], abs=1e-6)
    assert effect["auroc"]["without_tta"] == pytest.approx(effect["delong"]["auc_a"])
    with pytest.raises(TypeError, match="TTAInferer"):
        TTAEffectWriter(SimpleInferer(), tmp_path, enabled=True)
    TTAEffectWriter(SimpleInferer(), tmp_path, enabled="false").attach(Engine(step))  # off: nothing attached


def test_the_evaluate_config_switches_inferer_output_folder_and_report(tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    configs = ["train.json", "evaluate.json"]
    plain = load_config(bundle, configs, {"dataset_dir": str(tmp_path)})
    on = load_config(bundle, configs, {"dataset_dir": str(tmp_path), "tta": "true"})  # as the command line gives it
    assert isinstance(plain.get_parsed_content("validate#inferer"), SimpleInferer)
    assert isinstance(on.get_parsed_content("validate#inferer"), TTAInferer)
    assert plain.get_parsed_content("output_dir") == str(bundle / "eval")
    assert on.get_parsed_content("output_dir") == str(bundle / "eval" / "tta")
    assert any(isinstance(h, TTAEffectWriter) and h.enabled for h in on.get_parsed_content("validate#handlers"))
    infer = load_config(bundle, ["inference.json"], {"tta": True})
    assert isinstance(infer.get_parsed_content("inferer"), TTAInferer)


def test_evaluate_with_tta_writes_beside_the_plain_evaluation(tiny_demo, tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    small = {"image_size": [16, 16, 8], "val_batch_size": 4, "progress_bar": False}
    save_untrained_model(bundle, ["train.json"], dataset_dir=str(tiny_demo), **small)
    common = {"dataset_dir": str(tiny_demo), "evaluate_validation": False, "limit_cases": 8, **small}
    workflow(bundle, ["train.json", "evaluate.json"], "eval", tta=True, **common)
    effect = json.loads((bundle / "eval" / "tta" / "tta_effect.json").read_text())
    rows = (bundle / "eval" / "tta" / "predictions.csv").read_text().splitlines()[1:]
    assert effect["views"] == ["identity", "rotate-5", "rotate+5"] and effect["n_cases"] == len(rows) > 0
    assert not (bundle / "eval" / "predictions.csv").exists()  # the plain evaluation's files are not touched
