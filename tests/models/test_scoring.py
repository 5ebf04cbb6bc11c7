"""Status rules and explanation formatting of the scoring path."""

from __future__ import annotations

import numpy as np

from models.scoring import assign_status


def test_status_precedence():
    """Not in cohort beats everything; CAR T received beats eligibility; eligibility beats the score;
    the score picks likely_soon / watch / unlikely at the model's thresholds."""
    in_cohort = np.array([False, True, True, True, True, True])
    treated = np.array([True, True, False, False, False, False])
    eligible = np.array([True, True, True, False, False, False])
    score = np.array([0.9, 0.9, 0.9, 0.5, 0.2, 0.01])
    status = assign_status(in_cohort, treated, eligible, score, likely_soon=0.4, watch=0.1)
    assert status.tolist() == ["not_in_cohort", "already_treated", "eligible_now", "likely_soon", "watch", "unlikely"]


def test_thresholds_are_inclusive():
    """A score exactly at a threshold gets the higher status."""
    status = assign_status(np.ones(2, bool), np.zeros(2, bool), np.zeros(2, bool), np.array([0.4, 0.1]), 0.4, 0.1)
    assert status.tolist() == ["likely_soon", "watch"]
