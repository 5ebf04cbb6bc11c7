"""Metric functions against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from training.metrics import (
    compute_auprc,
    compute_auroc,
    compute_bootstrap_ci,
    compute_brier,
    compute_calibration,
    compute_calibration_curve,
    compute_lead_times,
    compute_net_benefit,
    compute_net_benefit_treat_all,
    compute_top_k,
    flag_top_fraction,
)

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.6, 0.6, 0.05])


def _random(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, np.round(p, 2)  # rounding creates ties


def test_auroc_hand_computed():
    """AUROC is the share of positive-negative pairs ranked correctly, ties counting one half."""
    # positives 0.35, 0.8, 0.6; negatives 0.1, 0.4, 0.2, 0.6, 0.05
    # 0.35 beats 3 of 5; 0.8 beats 5; 0.6 beats 4 and ties 1 -> (3 + 5 + 4.5) / 15
    assert compute_auroc(Y, P) == pytest.approx(12.5 / 15)


def test_auprc_hand_computed():
    """Average precision sums precision at each new positive over recall steps (ties grouped)."""
    # sorted: 0.8(+) -> P=1, R=1/3; {0.6+,0.6-} -> P=2/4... tie group: TP=2, flagged=3 -> 2/3, R=2/3
    # 0.4(-), 0.35(+) -> TP=3, flagged=5 -> 3/5, R=1
    expected = 1 / 3 * 1 + 1 / 3 * (2 / 3) + 1 / 3 * (3 / 5)
    assert compute_auprc(Y, P) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_metrics_match_sklearn(seed):
    """AUROC, AUPRC and Brier agree with scikit-learn on tied random data."""
    y, p = _random(seed)
    assert compute_auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert compute_auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert compute_brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_rank_metrics_undefined_with_one_class():
    """With no positives the AUROC and AUPRC are NaN, not a misleading number."""
    assert np.isnan(compute_auroc([0, 0], [0.1, 0.2]))
    assert np.isnan(compute_auprc([0, 0], [0.1, 0.2]))


def test_metrics_reject_mismatched_lengths():
    """Labels and scores of different lengths are an error naming both sizes."""
    with pytest.raises(ValueError, match="3.*2"):
        compute_auroc([0, 1, 0], [0.1, 0.2])


def test_calibration_slope_matches_unpenalised_logistic_regression():
    """The calibration slope is the coefficient of logit(p) in a logistic regression of y."""
    y, p = _random(3, 2000)
    p = np.clip(p, 0.01, 0.99)
    lp = np.log(p / (1 - p))
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10000).fit(lp.reshape(-1, 1), y)
    _, slope = compute_calibration(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-4)


def test_calibration_detects_overconfident_scores():
    """Scores twice as extreme on the logit scale as the truth give slope near 0.5; a perfect
    model gives slope near 1 and intercept near 0."""
    rng = np.random.default_rng(5)
    lp = rng.normal(-1, 1.5, 40000)
    true_p = 1 / (1 + np.exp(-lp))
    y = (rng.uniform(size=lp.size) < true_p).astype(int)
    intercept, slope = compute_calibration(y, true_p)
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    _, slope_extreme = compute_calibration(y, 1 / (1 + np.exp(-2 * lp)))
    assert slope_extreme == pytest.approx(0.5, abs=0.03)


def test_calibration_in_the_large_sign():
    """Underestimated risk (scores shifted down on the logit scale) gives a positive intercept."""
    rng = np.random.default_rng(6)
    lp = rng.normal(-1, 1, 20000)
    y = (rng.uniform(size=lp.size) < 1 / (1 + np.exp(-lp))).astype(int)
    intercept, _ = compute_calibration(y, 1 / (1 + np.exp(-(lp - 0.7))))
    assert intercept == pytest.approx(0.7, abs=0.06)


def test_calibration_curve_equal_count_bins():
    """Each bin reports its size, mean prediction and observed rate."""
    curve = compute_calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    assert curve["n"].tolist() == [2, 2]
    assert curve["mean_predicted"].tolist() == pytest.approx([0.15, 0.8])
    assert curve["observed_rate"].tolist() == [0.0, 1.0]


def test_top_k_per_index_date():
    """Capacity is applied per index date: each date flags its own top ceil(fraction * n)."""
    y = np.array([1, 0, 0, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.95, 0.2])
    dates = np.array(["a"] * 4 + ["b"] * 4)
    mask = flag_top_fraction(p, 0.25, dates)
    assert mask.tolist() == [True, False, False, False, False, False, True, False]
    result = compute_top_k(y, p, 0.25, dates)
    assert (result.flagged, result.true_positives, result.positives) == (2, 1, 2)
    assert result.recall == 0.5 and result.ppv == 0.5


def test_net_benefit_hand_computed():
    """Net benefit = TP/n - FP/n * t/(1-t); treat-all uses prevalence."""
    # threshold 0.5: act on 0.8(+), 0.6(+), 0.6(-) -> TP 2, FP 1, n 8
    assert compute_net_benefit(Y, P, 0.5) == pytest.approx(2 / 8 - 1 / 8 * 1.0)
    assert compute_net_benefit_treat_all(Y, 0.25) == pytest.approx(3 / 8 - 5 / 8 * (0.25 / 0.75))
    with pytest.raises(ValueError):
        compute_net_benefit(Y, P, 1.0)


def test_bootstrap_ci_brackets_estimate_and_resamples_persons():
    """The interval contains the point estimate; duplicating every row of each person (same
    clusters) leaves the cluster bootstrap interval unchanged."""
    y, p = _random(7, 300)
    persons = np.arange(300)
    low, high = compute_bootstrap_ci(compute_auroc, y, p, persons, replicates=200, seed=1)
    assert low < compute_auroc(y, p) < high
    low2, high2 = compute_bootstrap_ci(
        compute_auroc, np.repeat(y, 2), np.repeat(p, 2), np.repeat(persons, 2), replicates=200, seed=1
    )
    assert (low2, high2) == pytest.approx((low, high), abs=1e-12)


def test_lead_time_from_first_flag_before_candidacy():
    """Lead time counts from the first flagged index date before the candidate date; flags after
    it and members never flagged do not count."""
    examples = pd.DataFrame(
        {
            "person_id": ["a", "a", "a", "b", "c"],
            "as_of": pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-01-01", "2024-01-01"]),
            "candidate_date": pd.to_datetime(["2024-06-01", "2024-06-01", "2024-06-01", "2024-03-01", None]),
        }
    )
    flagged = np.array([False, True, True, False, True])
    lead = compute_lead_times(examples, flagged)
    assert lead.to_dict() == {"a": 61.0}


def test_paired_auprc_difference_is_zero_for_the_same_scores_and_signed_otherwise():
    """Model-minus-baseline AUPRC is exactly 0 (interval included) for identical scores, and
    positive with a positive interval when the baseline ranks at random."""
    from training.evaluation import compare_auprc
    from training.settings import EvaluationSettings

    rng = np.random.default_rng(5)
    y = (rng.uniform(size=600) < 0.1).astype(int)
    examples = pd.DataFrame({"label": y, "person_id": [f"p{i // 3}" for i in range(600)]})
    good = y + rng.normal(0, 0.5, size=600)
    settings = EvaluationSettings(bootstrap_replicates=60)
    same = compare_auprc(examples, good, good, settings)
    assert same["auprc_difference"] == 0 and same["auprc_difference_ci_low"] == 0 and same["auprc_difference_ci_high"] == 0
    better = compare_auprc(examples, good, rng.uniform(size=600), settings)
    assert better["auprc_difference"] > 0 and better["auprc_difference_ci_low"] > 0
