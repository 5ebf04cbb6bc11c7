"""The promotion gate: AUPRC not worse than the champion's by more than 0.01, slope in 0.8-1.2."""

from __future__ import annotations

import math

import pytest

from training.promotion import check_promotion_gate


@pytest.mark.parametrize(
    ("challenger", "slope", "champion", "passed"),
    [
        (0.30, 1.0, 0.30, True),
        (0.295, 1.0, 0.30, True),  # within the allowed drop
        (0.2899, 1.0, 0.30, False),  # drop just over 0.01
        (0.40, 0.79, 0.30, False),  # better AUPRC but over-confident
        (0.40, 1.21, 0.30, False),
        (0.40, 0.8, 0.30, True),  # bounds are inclusive
        (0.40, 1.2, None, True),  # first model: calibration check only
        (0.40, 1.5, None, False),
        (math.nan, 1.0, None, False),
        (0.40, math.nan, 0.30, False),
        (0.40, 1.0, math.nan, False),  # champion could not be scored on the same rows
    ],
)
def test_gate_cases(challenger, slope, champion, passed):
    """Each case passes or fails the gate as the rule says."""
    decision = check_promotion_gate(challenger, slope, champion)
    assert decision.passed is passed
    assert len(decision.reasons) == 2


def test_gate_reasons_name_the_failing_check():
    """A failed gate says which check failed, with the numbers."""
    decision = check_promotion_gate(0.2, 1.5, 0.3)
    text = decision.render()
    assert text.startswith("FAILED")
    assert "0.2000" in text and "0.3000" in text and "1.500" in text
