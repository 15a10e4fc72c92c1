"""Metrics for any number of classes: accuracy over all classes, per-class and macro sensitivity / specificity, macro
AUROC, the same offline (metrics.json) and in the bundles' validation metrics; two classes keep class 1 as positive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from medtl_monai.bundle import load_config
from medtl_monai.evaluation import ClassAveragedConfusionMetric, classification_summary, per_class_rates

REPO = Path(__file__).resolve().parents[1]
METRICS = ("val_auroc", "val_auprc", "val_accuracy", "val_sensitivity", "val_specificity")

#: six cases, three classes; arg-max predictions 0, 1, 1, 1, 2, 0
PROBS3 = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1],
                   [0.3, 0.4, 0.3], [0.1, 0.2, 0.7], [0.6, 0.1, 0.3]])
LABELS3 = [0, 0, 1, 1, 2, 2]
#: by hand: class 0 finds 1 of its 2 cases, class 1 both, class 2 one; false positives: class 0 one of 4
#: negatives (case 5), class 1 one of 4 (case 1), class 2 none
SENSITIVITY3, SPECIFICITY3 = [1 / 2, 1.0, 1 / 2], [3 / 4, 3 / 4, 1.0]
#: one-vs-rest AUROC: class 0 wins 6 of 8 pairs, class 1 7 of 8, class 2 7 of 8 (one tie of two counts 1/2 each)
AUROC3 = (6 / 8 + 7 / 8 + 7 / 8) / 3


def test_three_class_summary_matches_hand_computation():
    s = classification_summary(PROBS3, LABELS3)
    assert s["accuracy"] == pytest.approx(4 / 6)  # cases 0, 2, 3, 4 right
    assert s["sensitivity_per_class"] == pytest.approx(SENSITIVITY3)
    assert s["specificity_per_class"] == pytest.approx(SPECIFICITY3)
    assert s["sensitivity"] == pytest.approx(2 / 3) and s["specificity"] == pytest.approx(5 / 6)
    assert s["auroc"] == pytest.approx(AUROC3)


@pytest.mark.filterwarnings("ignore:y values can not be all")  # MONAI: no AUROC for the absent class
def test_per_class_rates_leave_an_absent_class_out_of_the_macro_average():
    np.testing.assert_allclose(per_class_rates([0, 1, 1], [0, 1, 0], 3, "sensitivity"), [1 / 2, 1.0, np.nan])
    s = classification_summary(np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]]), [0, 1, 0])
    assert np.isnan(s["sensitivity_per_class"][2]) and s["sensitivity"] == pytest.approx((1 / 2 + 1) / 2)
    with pytest.raises(ValueError, match="not the accuracy"):
        ClassAveragedConfusionMetric("accuracy")


def _validation_metrics(bundle: str, probs: np.ndarray, labels: list[int]) -> dict[str, float]:
    """The bundle's validation metrics (built from its train.json) on one batch shaped as its postprocessing leaves
    it: logits and class index copied, softmax probabilities, one-hot predicted and true labels."""
    parser = load_config(REPO / "bundles" / bundle, "train.json")
    k = probs.shape[1]
    eye = torch.eye(k)
    output = [{"logits": torch.log(torch.as_tensor(p, dtype=torch.float32)), "label_index": torch.tensor([y]),
               "pred": torch.as_tensor(p, dtype=torch.float32), "pred_label": eye[int(np.argmax(p))], "label": eye[y]}
              for p, y in zip(probs, labels)]
    engine = Engine(lambda e, b: output)
    for name in METRICS:
        section = "key_metric" if name == "val_auroc" else "additional_metrics"
        parser.get_parsed_content(f"validate#{section}#{name}").attach(engine, name)
    engine.run([0], max_epochs=1)
    return {name: float(engine.state.metrics[name]) for name in METRICS}


@pytest.mark.parametrize("bundle", ["bimcv_truncated", "two_step_swft"])
def test_bundle_validation_metrics_for_three_classes_match_the_summary(bundle):
    engine = _validation_metrics(bundle, PROBS3, LABELS3)
    s = classification_summary(PROBS3, LABELS3)
    assert engine["val_accuracy"] == pytest.approx(4 / 6)  # MONAI's ConfusionMatrix without class 0 said 5/6
    assert engine["val_sensitivity"] == pytest.approx(2 / 3)  # ... and 3/4 (counts of classes 1 and 2 pooled)
    assert engine["val_specificity"] == pytest.approx(5 / 6)
    assert engine["val_auroc"] == pytest.approx(AUROC3)
    assert engine["val_auprc"] == pytest.approx(s["auprc"])


def test_bundle_validation_metrics_for_two_classes_keep_class_1_as_positive():
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
    labels = [1, 1, 0, 0, 0]
    engine = _validation_metrics("bimcv_truncated", probs, labels)
    # predictions 1, 0, 1, 0, 1: TP 1, FN 1, TN 1, FP 2 (as in test_evaluation's summary)
    assert engine == pytest.approx({"val_auroc": 4 / 6, "val_auprc": 0.75, "val_accuracy": 2 / 5,
                                    "val_sensitivity": 1 / 2, "val_specificity": 1 / 3})
