"""TreeSHAP contributions served from LightGBM's pred_contrib are the shap package's values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(600, 6)), columns=[f"f{i}" for i in range(6)])
    x.iloc[::7, 2] = np.nan  # missing values take LightGBM's default branch
    x["cat"] = rng.integers(0, 4, 600).astype(float)
    logit = 1.5 * x["f0"].fillna(0) - x["f1"] + 0.8 * (x["cat"] == 2)
    y = (rng.uniform(size=600) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbosity": -1, "seed": 0, "deterministic": True},
        lgb.Dataset(x, label=y, categorical_feature=["cat"]),
        num_boost_round=40,
    )
    return booster, x


def test_pred_contrib_equals_shap_tree_explainer(fitted):
    """pred_contrib and shap.TreeExplainer give the same per-feature values to 1e-6."""
    booster, x = fitted
    rows = x.iloc[:50]
    native = booster.predict(rows, pred_contrib=True)
    explainer = shap.TreeExplainer(booster)
    values = explainer.shap_values(rows)
    values = values[1] if isinstance(values, list) else values
    np.testing.assert_allclose(native[:, :-1], values, atol=1e-6)
    np.testing.assert_allclose(native[:, -1], np.broadcast_to(np.ravel(explainer.expected_value)[-1], 50), atol=1e-6)


def test_contributions_plus_base_value_reproduce_raw_score(fitted):
    """Contributions summed with the base value equal the raw (log-odds) score of each row."""
    booster, x = fitted
    native = booster.predict(x, pred_contrib=True)
    np.testing.assert_allclose(native.sum(axis=1), booster.predict(x, raw_score=True), atol=1e-9)
