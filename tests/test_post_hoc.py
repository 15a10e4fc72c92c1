"""Choices made on validation and reported on test (operating point, temperature, prior correction), and ROC / PR
curves with bootstrap bands."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medtl_monai.evaluation import (
    add_post_hoc_metrics,
    apply_temperature,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    post_hoc_metrics,
    pr_band,
    read_prediction_table,
    roc_band,
    roc_curve,
)

NAMES = ("negative", "positive")


def _write_predictions(path, ids, labels, probs, names=NAMES, skipped=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", *[f"prob_{n}" for n in names], "prediction", "status", "error"])
        for i, y, p in zip(ids, labels, probs):
            writer.writerow([i, names[y], *[f"{v:.6f}" for v in p], names[int(np.argmax(p))], "ok", ""])
        for i in skipped:
            writer.writerow([i, "", *[""] * len(names), "", "skipped", f"{i}: unreadable"])
    return path


def _overconfident(n, seed):
    """Labels and two-class probabilities of an over-confident model: logits 4x too large."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = 4.0 * (1.2 * (y - 0.5) + rng.normal(0, 1.0, n))
    p1 = 1 / (1 + np.exp(-z))
    return y, np.stack([1 - p1, p1], axis=1)


def test_read_prediction_table_keeps_labelled_predicted_rows(tmp_path):
    path = _write_predictions(tmp_path / "p.csv", ["a", "b"], [0, 1], [[0.8, 0.2], [0.3, 0.7]], skipped=["c"])
    table = read_prediction_table(path)
    assert table.ids == ("a", "b") and table.labels.tolist() == [0, 1] and table.class_names == NAMES
    np.testing.assert_allclose(table.probs, [[0.8, 0.2], [0.3, 0.7]])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label,prob_a,prob_b\nx,c,0.5,0.5\n")
    with pytest.raises(ValueError, match="bad.csv: label 'c' of case 'x'"):
        read_prediction_table(bad)


def test_operating_point_and_temperature_come_from_validation_only(tmp_path):
    yv, pv = _overconfident(200, 1)
    yt, pt = _overconfident(150, 2)
    val = _write_predictions(tmp_path / "val.csv", [f"v{i}" for i in range(200)], yv, pv)
    test = _write_predictions(tmp_path / "test.csv", [f"t{i}" for i in range(150)], yt, pt)
    items = [{"id": f"t{i}", "patient_id": f"P{i // 3}"} for i in range(150)]
    result = post_hoc_metrics(val, test, items=items, training_labels=[0] * 30 + [1] * 10, n_resamples=300)

    point = result["operating_point"]
    vt = read_prediction_table(val)  # the threshold is Youden's on the rounded validation file, nothing else
    assert point["threshold"] == pytest.approx(choose_threshold(vt.labels, vt.probs[:, 1]).threshold)
    tt = read_prediction_table(test)
    called = tt.probs[:, 1] >= point["threshold"]
    assert point["sensitivity"]["value"] == pytest.approx(called[tt.labels == 1].mean())
    assert point["specificity"]["value"] == pytest.approx((~called[tt.labels == 0]).mean())
    assert point["chosen_on"] == "validation" and point["chosen_on_cases"] == 200
    assert "cluster bootstrap" in point["sensitivity"]["method"]  # 50 patients of 3 images each
    assert point["sensitivity"]["ci_low"] <= point["sensitivity"]["value"] <= point["sensitivity"]["ci_high"]

    calibration = result["calibration"]
    assert calibration["temperature"] == pytest.approx(
        fit_temperature(logits_from_probabilities(vt.probs), vt.labels))
    assert calibration["temperature"] > 2  # the logits were 4x too large
    val_ece = calibration["validation"]
    assert val_ece["temperature_scaled"]["ece"]["value"] < val_ece["raw"]["ece"]["value"]
    scaled = apply_temperature(logits_from_probabilities(tt.probs), calibration["temperature"])
    assert calibration["test"]["temperature_scaled"]["ece"]["value"] == pytest.approx(
        expected_calibration_error(tt.labels, scaled))
    assert calibration["training_prevalence"] == pytest.approx([0.75, 0.25])
    assert set(calibration["test"]) == {"raw", "temperature_scaled", "prior_corrected"}


def test_post_hoc_refuses_shared_cases_and_skips_what_it_cannot_choose(tmp_path):
    y, p = _overconfident(40, 3)
    val = _write_predictions(tmp_path / "val.csv", [f"c{i}" for i in range(40)], y, p)
    test = _write_predictions(tmp_path / "test.csv", [f"c{i}" for i in range(30, 60)], y[:30], p[:30])
    with pytest.raises(ValueError, match="share 10 cases"):
        post_hoc_metrics(val, test)
    one_class = _write_predictions(tmp_path / "one.csv", ["v0", "v1"], [1, 1], [[0.2, 0.8], [0.4, 0.6]])
    test = _write_predictions(tmp_path / "t.csv", [f"t{i}" for i in range(40)], y, p)
    result = post_hoc_metrics(one_class, test, n_resamples=50)
    assert "lacks a class" in result["operating_point"]["skipped"]
    assert "lacks a class" in result["calibration"]["skipped"]
    three = ("a", "b", "c")
    rng = np.random.default_rng(0)
    p3 = rng.dirichlet(np.ones(3), 30)
    val3 = _write_predictions(tmp_path / "v3.csv", [f"v{i}" for i in range(30)], np.arange(30) % 3, p3, three)
    test3 = _write_predictions(tmp_path / "t3.csv", [f"t{i}" for i in range(30)], np.arange(30) % 3, p3, three)
    result = post_hoc_metrics(val3, test3, n_resamples=50)
    assert "two classes" in result["operating_point"]["skipped"] and result["calibration"]["temperature"] > 0


def test_add_post_hoc_metrics_extends_metrics_json(tmp_path):
    yv, pv = _overconfident(60, 4)
    yt, pt = _overconfident(50, 5)
    _write_predictions(tmp_path / "eval" / "validation" / "predictions.csv", [f"v{i}" for i in range(60)], yv, pv)
    _write_predictions(tmp_path / "eval" / "predictions.csv", [f"t{i}" for i in range(50)], yt, pt)
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"auroc": 0.9}))
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"id": "x", "label": 0}, {"id": "y", "label": 1}],
                                    "test": [{"id": f"t{i}", "label": int(yt[i]), "patient_id": f"P{i}"}
                                             for i in range(50)]}))
    added = add_post_hoc_metrics(tmp_path / "eval", datalist, n_resamples=100)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["auroc"] == 0.9 and metrics["operating_point"] == added["operating_point"]
    assert metrics["calibration"]["training_prevalence"] == [0.5, 0.5]
    assert add_post_hoc_metrics(tmp_path / "nothing") is None


def test_roc_band_holds_the_curve_and_narrows_with_more_cases():
    rng = np.random.default_rng(0)

    def data(n):
        y = rng.integers(0, 2, n)
        return y, y + rng.normal(0, 1.2, n)

    y, s = data(80)
    band = roc_band(y, s, n_resamples=400)
    fpr, tpr, _ = roc_curve(y, s)
    expected = [tpr[np.searchsorted(fpr, x, side="right") - 1] for x in band.x]  # best TPR not beyond each FPR
    np.testing.assert_allclose(band.y, expected)
    inside = (band.low <= band.y + 1e-12) & (band.y <= band.high + 1e-12)
    assert inside.mean() > 0.95 and band.y[0] >= 0 and band.y[-1] == 1.0
    y_big, s_big = data(1600)
    wide = np.nanmean(band.high - band.low)
    narrow = np.nanmean((b := roc_band(y_big, s_big, n_resamples=400)).high - b.low)
    assert narrow < 0.5 * wide  # ~1/sqrt(20) of the width


def test_pr_band_is_the_interpolated_precision_and_clusters_widen_it():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = y + rng.normal(0, 1.0, 60)
    band = pr_band(y, s, n_resamples=200, points=11)
    order = np.argsort(-s)
    tp = np.cumsum(y[order] == 1)
    precision, recall = tp / np.arange(1, 61), tp / y.sum()
    expected = [precision[recall >= r].max() for r in band.x]
    np.testing.assert_allclose(band.y, expected)
    # every case repeated 5 times: as 5 images of one patient the band is wider than as 300 independent cases
    yy, ss, groups = np.repeat(y, 5), np.repeat(s, 5), np.repeat(np.arange(60), 5)
    plain = roc_band(yy, ss, n_resamples=300)
    clustered = roc_band(yy, ss, groups=groups, n_resamples=300)
    assert np.nanmean(clustered.high - clustered.low) > 1.5 * np.nanmean(plain.high - plain.low)
    with pytest.raises(ValueError, match="0/1 labels"):
        roc_band([0, 1, 2], [0.1, 0.2, 0.3])
