"""The default configuration reproduces the calibration figures in docs/synthetic.md within tolerance."""

import numpy as np
import pytest

from synthetic.calibration import lbcl_calibration, simulate_cohort
from synthetic.incidence import AGE_BAND_EDGES, AGE_BAND_LABELS, DISEASES, RATES_PER_100K, draw_diagnoses

TOLERANCE = {
    "rr_after_1l_share": (0.30, 0.40),
    "primary_refractory_share": (0.10, 0.16),
    "treated_among_eligible": (0.16, 0.24),
    "lost_before_infusion": (0.085, 0.165),
    "referral_to_infusion_median_days": (128, 158),
}


@pytest.mark.slow
def test_lbcl_course_and_car_t_access_match_published_figures():
    """LBCL: 30-40 % R/R after 1L, ~2 in 10 eligible treated, ~143 d referral-to-infusion, ~1 in 8 lost before infusion."""
    figures = lbcl_calibration(simulate_cohort("LBCL", 4000, seed=2024))
    assert figures["eligible_n"] > 600
    for name, (lo, hi) in TOLERANCE.items():
        assert lo <= figures[name] <= hi, (name, figures[name])


def test_incidence_by_age_band_matches_the_table():
    """Drawn diagnoses per person-year in each age band are within 15 % (or 3 cases) of the band rates, for men and women together."""
    rng = np.random.default_rng(7)
    n = 400_000
    age = rng.uniform(0, 95, n)
    female = rng.random(n) < 0.5
    enrichment = 50.0
    disease, _, weight = draw_diagnoses(age, female, np.zeros(n, bool), np.ones(n), enrichment, rng)
    band = np.searchsorted(AGE_BAND_EDGES, age, side="right") - 1
    for j, name in enumerate(DISEASES):
        for b, label in enumerate(AGE_BAND_LABELS):
            in_band = band == b
            expected = RATES_PER_100K[name][b] / 1e5 * in_band.sum() * enrichment
            if name == "B_ALL" and b == 0:
                continue  # ages 1-4 carry their own peak rate
            observed = ((disease == j) & in_band).sum()
            assert abs(observed - expected) <= max(0.15 * expected, 3 + 3 * np.sqrt(expected)), (name, label, observed, expected)


def test_sampling_weights_undo_enrichment():
    """Weighted case counts under enrichment estimate the unenriched number of cases."""
    rng = np.random.default_rng(3)
    n = 300_000
    age = rng.uniform(40, 90, n)
    disease, _, weight = draw_diagnoses(age, rng.random(n) < 0.5, np.zeros(n, bool), np.full(n, 3.0), 20.0, rng)
    plain, _, _ = draw_diagnoses(age, rng.random(n) < 0.5, np.zeros(n, bool), np.full(n, 3.0), 1.0, rng)
    assert abs(weight[disease >= 0].sum() - (plain >= 0).sum()) < 0.15 * (plain >= 0).sum()
