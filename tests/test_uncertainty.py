"""Numbers with their uncertainty: DeLong's test against the pairwise formulas, bootstrap coverage and the cluster
bootstrap, operating points chosen on validation only, and calibration (temperature scaling, prior correction)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from monai.metrics import compute_average_precision, compute_roc_auc
from scipy.special import expit
from scipy.stats import norm

from medtl_monai.evaluation import (
    METRICS,
    apply_temperature,
    apply_threshold,
    bootstrap_ci,
    brier_score,
    choose_threshold,
    classification_summary,
    delong_test,
    delong_variance,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    paired_bootstrap_test,
    prior_correction,
    reliability_curve,
    roc_curve,
    summary_with_ci,
)
from medtl_monai.evaluation.bootstrap import resample_weights


def _tied_scores(rng: np.random.Generator, n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0/1 labels and two correlated models' scores rounded to one decimal: many ties, within and across classes."""
    y = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    a = np.round(expit(shared + 1.0 * y + 0.5 * rng.normal(size=n)), 1)
    b = np.round(expit(shared + 1.4 * y + 0.8 * rng.normal(size=n)), 1)
    return y, a, b


def _pairwise_components(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) structural components from the O(n1 n0) kernel psi = 1 / 0.5 / 0."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    psi = (pos > neg) + 0.5 * (pos == neg)
    return psi.mean(axis=1), psi.mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_equals_the_pairwise_structural_components_with_ties(seed):
    y, a, b = _tied_scores(np.random.default_rng(seed))
    (v10a, v01a), (v10b, v01b) = _pairwise_components(y, a), _pairwise_components(y, b)
    n1, n0 = len(v10a), len(v01a)
    var_a = np.var(v10a, ddof=1) / n1 + np.var(v01a, ddof=1) / n0
    var_b = np.var(v10b, ddof=1) / n1 + np.var(v01b, ddof=1) / n0
    cov = np.cov(v10a, v10b)[0, 1] / n1 + np.cov(v01a, v01b)[0, 1] / n0
    z = (v10b.mean() - v10a.mean()) / np.sqrt(var_a + var_b - 2 * cov)
    result = delong_test(y, a, b)
    expected = {"auc_a": v10a.mean(), "auc_b": v10b.mean(), "difference": v10b.mean() - v10a.mean(), "var_a": var_a,
                "var_b": var_b, "covariance": cov, "z": z, "p_value": 2 * norm.sf(abs(z))}
    for name, value in expected.items():
        assert getattr(result, name) == pytest.approx(value, abs=1e-8), name
    assert len(np.unique(a)) < len(a) / 4  # the data really has ties
    one = delong_variance(y, a)
    assert one.variance == pytest.approx(var_a, abs=1e-12) and one.ci_low < one.auc < one.ci_high
    assert result.auc_a == pytest.approx(float(compute_roc_auc(torch.as_tensor(a), torch.as_tensor(y))), abs=1e-12)


def test_delong_of_a_model_with_itself_is_no_difference():
    y, a, _ = _tied_scores(np.random.default_rng(3))
    result = delong_test(y, a, a)
    assert (result.difference, result.z, result.p_value) == (0.0, 0.0, 1.0)


def test_vectorised_auroc_and_auprc_equal_monai_and_weights_equal_repeated_cases():
    rng = np.random.default_rng(4)
    y, a, _ = _tied_scores(rng, 120)
    ones = np.ones((1, len(y)))
    probs = np.c_[1 - a, a]
    auroc = METRICS["auroc"](y, probs, ones, 0.5)[0]
    auprc = METRICS["auprc"](y, probs, ones, 0.5)[0]
    assert auroc == pytest.approx(float(compute_roc_auc(torch.as_tensor(a), torch.as_tensor(y))), abs=1e-12)
    assert auprc == pytest.approx(float(compute_average_precision(torch.as_tensor(a), torch.as_tensor(y))), abs=1e-12)
    counts = rng.integers(0, 3, len(y))  # a resample as draw counts = the cases repeated that many times
    repeated = np.repeat(np.arange(len(y)), counts)
    for name in METRICS:
        weighted = METRICS[name](y, probs, counts[None].astype(float), 0.5)[0]
        direct = METRICS[name](y[repeated], probs[repeated], np.ones((1, len(repeated))), 0.5)[0]
        assert weighted == pytest.approx(direct, abs=1e-12), name


@pytest.mark.parametrize("n_classes", [2, 3])
def test_summary_with_ci_agrees_with_classification_summary(n_classes):
    rng = np.random.default_rng(5)
    y = rng.integers(0, n_classes, 150)
    logits = rng.normal(size=(150, n_classes)) + 1.5 * np.eye(n_classes)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    summary = summary_with_ci(probs, y, n_resamples=300, groups=[f"p{i // 2}" for i in range(150)])
    plain = classification_summary(probs, y)
    for name in ("auroc", "auprc", "accuracy", "sensitivity", "specificity"):
        entry = summary[name]
        assert entry["value"] == pytest.approx(plain[name], abs=1e-12), name
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["method"].startswith("cluster bootstrap over patients") and entry["confidence"] == 0.95
    assert summary["brier"]["value"] == pytest.approx(brier_score(y, probs))
    assert summary["ece"]["value"] == pytest.approx(expected_calibration_error(y, probs))
    assert (summary["n_cases"], summary["n_patients"]) == (150, 75)
    plain_method = summary_with_ci(probs, y, n_resamples=10)["auroc"]["method"]
    assert plain_method == "stratified percentile bootstrap, 10 resamples"


def test_bootstrap_is_stratified_seeded_and_fast():
    rng = np.random.default_rng(6)
    y = (rng.random(500) < 0.3).astype(int)
    scores = rng.random(500) + 0.5 * y
    weights = np.concatenate(list(resample_weights(y, 50, seed=1)))
    assert np.all(weights[:, y == 1].sum(axis=1) == y.sum())  # each resample keeps the class counts
    first = bootstrap_ci(y, scores, n_resamples=2000, seed=7)  # also warms up
    start = time.perf_counter()
    assert first == bootstrap_ci(y, scores, n_resamples=2000, seed=7)
    elapsed = time.perf_counter() - start
    assert first != bootstrap_ci(y, scores, n_resamples=2000, seed=8)
    assert elapsed < 1.0, f"2000 resamples of 500 cases took {elapsed:.2f} s"


def test_bootstrap_ci_covers_the_true_auroc_at_about_the_nominal_rate():
    # 200 simulated data sets of 60 cases (30 + 30, binormal, true AUROC = Phi(d / sqrt 2)); 500 resamples each
    # instead of 2000 to keep the test fast: enough for the 2.5% / 97.5% percentiles of a coverage check.
    rng = np.random.default_rng(8)
    d = 1.0
    truth = norm.cdf(d / np.sqrt(2))
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    covered = 0
    for i in range(200):
        scores = rng.normal(size=60) + d * y
        _, low, high = bootstrap_ci(y, scores, n_resamples=500, seed=i)
        covered += low <= truth <= high
    assert covered >= 180, f"the 95% interval covered the true AUROC in {covered} of 200 data sets"


def test_cluster_bootstrap_is_wider_when_a_patients_images_are_correlated():
    rng = np.random.default_rng(9)
    patients, images = 40, 6
    y_patient = np.r_[np.zeros(20, int), np.ones(20, int)]
    effect = rng.normal(scale=1.5, size=patients)  # what a patient's images share
    groups = np.repeat(np.arange(patients), images)
    y = y_patient[groups]
    scores = 1.0 * y + effect[groups] + 0.3 * rng.normal(size=len(y))
    estimate, low, high = bootstrap_ci(y, scores, n_resamples=1000)
    estimate_c, low_c, high_c = bootstrap_ci(y, scores, n_resamples=1000, groups=[f"pt{g}" for g in groups])
    assert estimate_c == estimate
    assert (high_c - low_c) > 1.5 * (high - low)


def test_operating_point_is_chosen_on_validation_and_applied_to_unseen_test_cases():
    rng = np.random.default_rng(10)
    y_val, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 150)
    s_val, s_test = rng.random(200) + 0.6 * y_val, rng.random(150) + 0.6 * y_test
    val_ids, test_ids = [f"val{i}" for i in range(200)], [f"test{i}" for i in range(150)]
    point = choose_threshold(y_val, s_val, ids=val_ids)
    assert point.case_ids == tuple(val_ids) and point.n_cases == 200  # the only cases it saw
    # Youden's J equals the best J over every threshold, computed by brute force on the validation cases
    j = [np.mean(s_val[y_val == 1] >= t) + np.mean(s_val[y_val == 0] < t) - 1 for t in np.unique(s_val)]
    assert point.sensitivity + point.specificity - 1 == pytest.approx(max(j), abs=1e-12)
    result = apply_threshold(point, y_test, s_test, ids=test_ids, n_resamples=300)
    assert result["threshold"] == point.threshold and result["chosen_on_cases"] == 200
    assert result["sensitivity"]["value"] == pytest.approx(np.mean(s_test[y_test == 1] >= point.threshold))
    assert result["specificity"]["ci_low"] <= result["specificity"]["value"] <= result["specificity"]["ci_high"]
    shuffled = apply_threshold(point, rng.permutation(y_test), s_test, ids=test_ids, n_resamples=300)
    assert shuffled["threshold"] == point.threshold  # the test labels cannot move the threshold
    with pytest.raises(ValueError, match="chosen on 10 of these test cases"):
        apply_threshold(point, y_val[:10], s_val[:10], ids=val_ids[:10])
    sensitive = choose_threshold(y_val, s_val, rule="sensitivity", target=0.9)
    specific = choose_threshold(y_val, s_val, rule="specificity", target=0.9)
    assert sensitive.sensitivity >= 0.9 and specific.specificity >= 0.9
    fpr, tpr, thresholds = roc_curve(y_val, s_val)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(thresholds) < 0)


def test_temperature_scaling_reduces_validation_ece_of_an_overconfident_model():
    rng = np.random.default_rng(11)
    true_logits = rng.normal(scale=1.5, size=(2000, 3))
    y = np.array([rng.choice(3, p=p) for p in apply_temperature(true_logits, 1.0)])
    overconfident = 4.0 * true_logits
    temperature = fit_temperature(overconfident, y)
    before = expected_calibration_error(y, apply_temperature(overconfident, 1.0))
    after = expected_calibration_error(y, apply_temperature(overconfident, temperature))
    assert 3.0 < temperature < 5.0 and after < 0.5 * before
    # the binary form, from the probabilities a predictions.csv holds
    p = expit(4.0 * true_logits[:, 0])
    y2 = (rng.random(2000) < expit(true_logits[:, 0])).astype(int)
    t2 = fit_temperature(logits_from_probabilities(p), y2)
    assert expected_calibration_error(y2, apply_temperature(logits_from_probabilities(p), t2)) < \
        0.5 * expected_calibration_error(y2, p)
    curve = reliability_curve(y2, p)
    assert curve.counts.sum() == 2000 and len(curve.bin_edges) == 11


def test_prior_correction_turns_balanced_prior_probabilities_into_the_data_prevalence():
    rng = np.random.default_rng(12)
    p_true = rng.random(50)  # posteriors at a prevalence of 0.2
    prevalence = 0.2
    balanced = p_true * 0.5 / prevalence / (p_true * 0.5 / prevalence + (1 - p_true) * 0.5 / (1 - prevalence))
    assert np.allclose(prior_correction(balanced, prevalence), p_true, atol=1e-12)
    two_columns = prior_correction(np.c_[1 - balanced, balanced], [0.8, 0.2])
    assert np.allclose(two_columns[:, 1], p_true, atol=1e-12)
    assert np.allclose(prior_correction(p_true, prevalence, balanced=False, target_prevalence=0.5), balanced)
    with pytest.raises(ValueError, match="target_prevalence"):
        prior_correction(p_true, prevalence, balanced=False)


def test_paired_bootstrap_test_finds_a_clear_difference_and_none_between_equal_models():
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, 200)
    weak, strong = expit(rng.normal(size=200) + 0.3 * y), expit(rng.normal(size=200) + 2.5 * y)
    result = paired_bootstrap_test(y, weak, strong, "auroc", n_resamples=500)
    assert result.difference == pytest.approx(result.value_b - result.value_a)
    assert 0 < result.ci_low < result.difference < result.ci_high and result.p_value < 0.01
    same = paired_bootstrap_test(y, weak, weak, "brier", n_resamples=200)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, weak, "f1")
