"""A trained run: baselines and metrics on the same test rows, run files, model card, artifact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.artifact import FeatureSetMismatchError, ModelArtifactError, artifact_paths, load_model_files
from models.candidate import OUTPUT_COLUMNS, CandidatePyfunc, results_to_frame, split_long_input
from models.scoring import STATUSES, score_members
from training.model_card import REQUIRED_SECTIONS

pytestmark = pytest.mark.slow


def test_metrics_and_baselines_cover_the_same_test_rows(trained):
    """Headline metrics, both baselines and every subgroup attribute are reported on the test set."""
    m = trained.report.metrics
    for key in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "calibration_slope", "calibration_intercept", "recall_at_top_k", "ppv_at_top_k", "lead_time_median_days", "net_benefit_0.1"):
        assert key in m
    assert m["auroc_ci_low"] <= m["auroc"] <= m["auroc_ci_high"]
    assert set(trained.report.baselines) == {"rules_only", "logistic_regression"}
    assert m["n_examples"] == len(trained.test_examples) == len(trained.test_features)
    assert set(trained.report.subgroups["attribute"]) == {"sex", "age_band", "race", "payer_type", "distance_band"}
    assert trained.report.truth and 0 <= trained.report.truth["truth_label_agreement"] <= 1


def test_no_person_in_two_splits_of_the_run(trained, example_set):
    """Test persons never appear among the training rows of the run, and test dates come later."""
    from training.splits import plan_split

    plan = plan_split(example_set.examples, trained.config.split, trained.config.outcome.horizon_days)
    train_persons = set(example_set.examples.loc[plan.rows("train"), "person_id"])
    assert not train_persons & set(trained.test_examples["person_id"])
    assert example_set.examples.loc[plan.rows("train"), "as_of"].max() < trained.test_examples["as_of"].min()


def test_run_files_and_model_card(trained, tmp_path):
    """The run writes configs, tables, every figure, the test set and a model card with every
    required section."""
    root = trained.write_run_files(tmp_path, run_id="run-x", model_version="7")
    for name in ("roc.png", "precision_recall.png", "calibration.png", "lead_time.png", "shap_beeswarm.png"):
        assert (root / "figures" / name).stat().st_size > 1000
    assert (root / "config" / "config.yaml").read_text().startswith("outcome:")
    assert json.loads((root / "evaluation" / "metrics.json").read_text())["test"]["auprc"] == pytest.approx(trained.report.metrics["auprc"])
    test_set = pd.read_parquet(root / "evaluation" / "test_set.parquet")
    assert "person_id" not in test_set.columns and len(test_set) == len(trained.test_examples)
    card = (root / "model_card.md").read_text()
    for section in REQUIRED_SECTIONS:
        assert section in card
    assert "version 7" in card and "run-x" in card and "$" not in card


def test_artifact_round_trip_scores_members(trained, contract_data, tmp_path):
    """The written artifact loads back and gives one result per member with a valid status,
    scores only for living at-risk members and reasons in catalog labels."""
    model = load_model_files(trained.write_model_files(tmp_path / "m"))
    persons = contract_data.persons.iloc[:600]
    events = contract_data.events[contract_data.events["person_id"].isin(persons["person_id"])]
    as_of = pd.Series(pd.Timestamp("2025-06-30"), index=pd.Index(persons["person_id"], name="person_id"))
    results = score_members(model, events, persons, as_of)
    assert [r["person_id"] for r in results] == persons["person_id"].tolist()
    assert {r["status"] for r in results} <= set(STATUSES)
    dead = set(persons.loc[persons["death_date"].le(pd.Timestamp("2025-06-30")).fillna(False).to_numpy(dtype=bool), "person_id"])
    assert dead, "the synthetic population should hold deaths"
    for r in results:
        scored = r["status"] in ("likely_soon", "watch", "unlikely") and r["person_id"] not in dead
        assert (r["score"] is not None) == scored
        if r["person_id"] in dead:
            assert r["status"] in ("unlikely", "already_treated", "not_in_cohort")
        assert bool(r["reasons"]) <= scored
        if r["status"] == "eligible_now":
            assert r["eligible_products"]
    explained = [r for r in results if r["reasons"]]
    assert explained and all(reason["label"] and reason["direction"] in ("raises", "lowers") for r in explained for reason in r["reasons"])


def test_scores_match_booster_and_calibrator(trained, contract_data, tmp_path):
    """score_members' probability is the calibrator applied to the booster's margin, and the
    reasons' contributions sum (with the base value) to that margin."""
    trained.write_model_files(tmp_path / "m")
    model = load_model_files(artifact_paths(tmp_path / "m"))
    test = trained.test_examples.iloc[:40]
    persons = contract_data.persons[contract_data.persons["person_id"].isin(test["person_id"])]
    first = test.drop_duplicates("person_id")
    as_of = pd.Series(first["as_of"].to_numpy(), index=pd.Index(first["person_id"], name="person_id"))
    from features.pipeline import build_features

    fs = build_features(contract_data.events, persons, as_of, model.codes, centers=model.centers, zip_centroids=model.zip_centroids, rules=model.rules)
    matrix = fs.features[list(model.spec.feature_names)].to_numpy(dtype=float)
    contributions = model.contributions(matrix)
    np.testing.assert_allclose(contributions.sum(axis=1), model.predict_raw(matrix), atol=1e-9)
    results = {r["person_id"]: r for r in score_members(model, contract_data.events, persons, as_of, top_reasons=len(model.spec.feature_names))}
    expected = model.calibrator.transform(model.predict_raw(matrix))
    for key, value in zip(fs.features["person_id"], expected):
        if results[key]["score"] is not None:
            assert results[key]["score"] == pytest.approx(value, abs=1e-12)


def test_feature_set_mismatch_fails_loudly(trained, tmp_path):
    """An artifact whose feature-set version differs from the installed features refuses to load."""
    paths = trained.write_model_files(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "spec.json").read_text())
    spec["feature_set_version"] = "0000000000000000"
    (tmp_path / "m" / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(FeatureSetMismatchError, match="0000000000000000"):
        load_model_files(paths)


def test_incomplete_artifact_names_what_is_missing(trained, tmp_path):
    """A missing booster file is reported by name."""
    paths = trained.write_model_files(tmp_path / "m")
    (tmp_path / "m" / "booster.txt").unlink()
    with pytest.raises(ModelArtifactError, match="booster"):
        load_model_files(paths)


def test_pyfunc_predict_on_the_input_example(trained, tmp_path):
    """The pyfunc saved with its artifacts predicts one flat row per member from long input."""
    import mlflow.pyfunc

    paths = trained.write_model_files(tmp_path / "files")
    mlflow.pyfunc.save_model(str(tmp_path / "pyfunc"), python_model=CandidatePyfunc(), artifacts=paths, input_example=trained.input_example)
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert loaded.metadata.get_input_schema() is not None
    out = loaded.predict(trained.input_example)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["person_id"].tolist() == ["example-0001"]
    assert out["status"].iloc[0] in STATUSES
    assert isinstance(json.loads(out["eligibility_json"].iloc[0]), list)


def test_long_input_without_as_of_is_rejected(trained):
    """Input rows without an evaluation date are an error naming the rows."""
    bad = trained.input_example.copy()
    bad.loc[2, "as_of"] = pd.NaT
    from models.candidate import InputShapeError

    with pytest.raises(InputShapeError, match="rows"):
        split_long_input(bad)
    assert results_to_frame([]).columns.tolist() == list(OUTPUT_COLUMNS)


def test_label_schedule_is_reported_on_the_test_rows(trained, tmp_path):
    """The run judges its test rows by the later label versions too, counts the label-change-only
    positives, and the model card states which definition the label uses."""
    schedule = trained.report.label_schedule
    test = trained.test_examples
    assert schedule["counts"]["label_change_only"] == test["label_change_only"].sum()
    assert schedule["counts"]["positives_outcome_rules"] == test["label_outcome_rules"].sum()
    assert set(schedule) == {"counts", "lightgbm", "rules_only", "logistic_regression"}
    card = trained.render_model_card("run-y", "3")
    assert "label versions in force on the index date" in card and "Label schedule" in card
