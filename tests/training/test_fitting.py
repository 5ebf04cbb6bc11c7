"""Fitting on small random matrices: early stopping, calibration, thresholds, baselines, Optuna."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.fitting import (
    TrainingDataError,
    fit_candidate_model,
    fit_logistic_baseline,
    score_rules_baseline,
    tune_hyperparameters,
)
from training.metrics import compute_auroc
from training.settings import ModelSettings


def _matrix(seed: int, n: int = 3000):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"lot_count": rng.integers(0, 4, n).astype(float), "noise": rng.normal(size=n), "dx_disease": rng.integers(0, 3, n).astype(float)})
    x.loc[rng.uniform(size=n) < 0.1, "noise"] = np.nan
    logit = -4 + 1.2 * x["lot_count"] + 0.5 * (x["dx_disease"] == 1)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return x, y


SETTINGS = ModelSettings(num_boost_round=100, early_stopping_rounds=20, num_threads=1)


def test_fitted_model_ranks_and_calibrates():
    """The booster learns the signal, calibrated probabilities are in (0, 1) and the likely-soon
    threshold is above the watch threshold."""
    (tx, ty), (vx, vy) = _matrix(0), _matrix(1)
    fitted = fit_candidate_model(tx, ty, vx, vy, SETTINGS, ("dx_disease",))
    p = fitted.calibrator.transform(fitted.booster.predict(vx, raw_score=True))
    assert compute_auroc(vy, p) > 0.75
    assert 0 < p.min() and p.max() < 1
    assert abs(p.mean() - vy.mean()) < 0.02
    assert fitted.thresholds.likely_soon >= fitted.thresholds.watch
    assert tuple(fitted.booster.feature_name()) == tuple(tx.columns)


def test_split_without_positives_is_an_error():
    """A validation split with one class cannot stop early or calibrate: error naming the split."""
    (tx, ty), (vx, _) = _matrix(0), _matrix(1)
    with pytest.raises(TrainingDataError, match="validation"):
        fit_candidate_model(tx, ty, vx, np.zeros(len(vx), dtype=int), SETTINGS)


def test_baselines_score_the_same_rows():
    """Both baselines return one score per row; the rules baseline refuses unknown features."""
    (tx, ty), (vx, vy) = _matrix(0), _matrix(2)
    logistic = fit_logistic_baseline(tx, ty, ("dx_disease",))
    assert logistic.predict_proba(vx).shape == (len(vx), 2)
    rules = score_rules_baseline(vx, {"lot_count": 1.0})
    assert compute_auroc(vy, rules) > 0.7
    with pytest.raises(ValueError, match="unknown_feature"):
        score_rules_baseline(vx, {"unknown_feature": 1.0})


def test_optuna_search_returns_settings_from_its_space():
    """A short Optuna search returns settings whose tuned values lie in the search space."""
    (tx, ty), (vx, vy) = _matrix(0, 1500), _matrix(1, 1500)
    tuned = tune_hyperparameters(tx, ty, vx, vy, SETTINGS.model_copy(update={"optuna_trials": 2, "num_boost_round": 30}))
    assert 0.01 <= tuned.learning_rate <= 0.2 and 4 <= tuned.num_leaves <= 63
    assert tuned.optuna_trials == 2
