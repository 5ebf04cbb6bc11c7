"""Fixtures for batch tests: a small but real model artifact and a small contract population."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from tests.batch.population import write_population


def build_test_model(directory: Path):
    """A real artifact (booster, calibrator, spec, rules, code lists) with a tiny booster fitted on
    random features: enough to exercise the batch path, not a clinical model."""
    from features.catalog import FEATURE_NAMES, FEATURE_SET_VERSION, categorical_feature_names
    from features.codelists import CODELIST_DIR, load_codelists
    from features.eligibility import RULES_PATH, load_rules
    from models.artifact import ModelSpec, StatusThresholds, artifact_paths, describe_rules_version, load_model_files, write_model_directory
    from models.calibration import make_calibrator

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    x[:, [FEATURE_NAMES.index(c) for c in categorical_feature_names()]] = rng.integers(0, 3, size=(400, len(categorical_feature_names())))
    lot = FEATURE_NAMES.index("lot_count")
    y = (x[:, lot] + rng.normal(scale=0.5, size=400) > 0.3).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1, "deterministic": True, "num_threads": 1},
                        lgb.Dataset(pd.DataFrame(x, columns=list(FEATURE_NAMES)), y), num_boost_round=20)
    calibrator = make_calibrator("platt").fit(booster.predict(x, raw_score=True), y)
    rules = load_rules(RULES_PATH)
    spec = ModelSpec(feature_names=tuple(FEATURE_NAMES), categorical_features=tuple(categorical_feature_names()),
                     feature_set_version=FEATURE_SET_VERSION, codelists_version=load_codelists().version,
                     rules_version=describe_rules_version(rules), rules_file=RULES_PATH.name, horizon_days=180,
                     thresholds=StatusThresholds(likely_soon=0.6, watch=0.3), calibration="platt")
    write_model_directory(directory, booster, calibrator, spec, RULES_PATH, CODELIST_DIR)
    return load_model_files(artifact_paths(directory), version="7", source=str(directory))


@pytest.fixture(scope="session")
def test_model(tmp_path_factory):
    return build_test_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def small_population(tmp_path_factory) -> Path:
    return write_population(tmp_path_factory.mktemp("population"), members=60, seed=3)
