"""Calibrators map margins to probabilities and survive a JSON round trip with their learned state."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import IsotonicCalibrator, NotFittedError, PlattCalibrator, load_calibrator, make_calibrator


def _data(seed: int = 0, n: int = 4000):
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 2, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.5 * margin - 1)))).astype(int)
    return margin, y


def test_platt_recovers_the_true_logistic_link():
    """Platt scaling on data generated as sigmoid(0.5 m - 1) learns slope 0.5 and intercept -1."""
    margin, y = _data(n=40000)
    calibrator = PlattCalibrator().fit(margin, y)
    assert calibrator.slope_ == pytest.approx(0.5, abs=0.03)
    assert calibrator.intercept_ == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize("kind", ["platt", "isotonic"])
def test_round_trip_preserves_predictions(kind):
    """A calibrator rebuilt from its JSON gives identical probabilities."""
    margin, y = _data()
    calibrator = make_calibrator(kind).fit(margin, y)
    rebuilt = load_calibrator(calibrator.to_json())
    probe = np.linspace(-8, 8, 101)
    np.testing.assert_array_equal(rebuilt.transform(probe), calibrator.transform(probe))


def test_isotonic_is_monotone_and_bounded():
    """Isotonic output never decreases with the margin and stays within [0, 1] beyond the data."""
    margin, y = _data(1)
    p = IsotonicCalibrator().fit(margin, y).transform(np.linspace(-20, 20, 400))
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1


def test_unfitted_and_unknown_kinds_fail_loudly():
    """Using an unfitted calibrator or loading an unknown kind raises a clear error."""
    with pytest.raises(NotFittedError):
        PlattCalibrator().transform(np.zeros(2))
    with pytest.raises(ValueError, match="unknown"):
        load_calibrator('{"kind": "beta"}')
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        make_calibrator("beta")
