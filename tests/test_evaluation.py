"""Evaluation metrics: MONAI's average precision for the positive class, and the summary metrics.json holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.handlers import AveragePrecision
from ignite.engine import Engine

from medtl_monai.evaluation import average_precision, classification_summary, positive_class_scores


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
    # per class (class 0 against class 1): two classes report class 1's, as before
    assert s["sensitivity_per_class"] == pytest.approx([1 / 3, 1 / 2]) and s["specificity_per_class"] == pytest.approx([1 / 2, 1 / 3])
    # AUROC: positive scores 0.9, 0.4 against negatives 0.7, 0.2, 0.55 -> pairs won 3 + 1 of 6
    assert s["auroc"] == pytest.approx(4 / 6)
    # AUPRC of class 1: ranking 0.9(+), 0.7(-), 0.55(-), 0.4(+), 0.2(-) -> 1/2 * 1 + 1/2 * 2/4
    assert s["auprc"] == pytest.approx(0.75)


def test_monai_average_precision_handler_scores_the_positive_class_of_two():
    """val_auprc in the bundles: MONAI's AveragePrecision with positive_class_scores equals the positive class's AP
    (MONAI alone would average the AP of both columns)."""
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
    onehot = torch.nn.functional.one_hot(torch.tensor([1, 1, 0, 0, 0]), 2).float()
    output = [{"pred": p, "label": y} for p, y in zip(probs, onehot)]
    engine = Engine(lambda e, b: output)
    AveragePrecision(output_transform=positive_class_scores).attach(engine, "auprc")
    engine.run([0], max_epochs=1)
    assert engine.state.metrics["auprc"] == pytest.approx(0.75)
    both = AveragePrecision(output_transform=lambda out: ([o["pred"] for o in out], [o["label"] for o in out]))
    engine2 = Engine(lambda e, b: output)
    both.attach(engine2, "auprc")
    engine2.run([0], max_epochs=1)
    assert engine2.state.metrics["auprc"] != pytest.approx(0.75)  # what the output transform is there for
    three = [{"pred": torch.tensor([0.2, 0.3, 0.5]), "label": torch.tensor([0.0, 0.0, 1.0])}]
    preds, labels = positive_class_scores(three)
    assert preds[0].numel() == 3 and labels[0].numel() == 3  # more classes: every column, macro-averaged by MONAI
