"""Behavioural tests of the trained model (Made-With-ML): direction and invariance.

They run on the small model trained once per worker (``conftest.trained``) and check properties a
clinician would take for granted, whatever the data taught the trees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.artifact import load_model_files
from models.scoring import score_members

pytestmark = pytest.mark.slow


def _probability(trained, matrix: pd.DataFrame) -> np.ndarray:
    return trained.calibrator.transform(trained.booster.predict(matrix[list(trained.spec.feature_names)], raw_score=True))


def test_another_line_of_therapy_never_lowers_the_score(trained):
    """Adding one line of therapy (all else equal) never lowers any at-risk member's score."""
    rows = trained.test_features
    before = _probability(trained, rows)
    after = _probability(trained, rows.assign(lot_count=rows["lot_count"].fillna(0) + 1))
    assert np.all(after >= before - 1e-12)
    assert np.any(after > before), "the number of lines should matter to some member"


@pytest.mark.parametrize(
    "flag", ["lot_early_relapse_flag", "lot_primary_refractory_flag", "lot_progressed_after_last_flag", "lot_triple_class_exposed_flag"]
)
def test_signs_of_failure_never_lower_the_score(trained, flag):
    """Setting an early-failure or exposure flag from 0 (or unknown) to 1 never lowers the score."""
    rows = trained.test_features
    before = _probability(trained, rows.assign(**{flag: 0.0}))
    after = _probability(trained, rows.assign(**{flag: 1.0}))
    assert np.all(after >= before - 1e-12)


def test_scores_are_a_monotone_map_of_the_margin(trained):
    """The calibrator keeps the booster's order: a higher margin never gets a lower probability."""
    margin = np.linspace(-8, 8, 401)
    probability = trained.calibrator.transform(margin)
    assert np.all(np.diff(probability) >= -1e-12)


@pytest.fixture(scope="module")
def scoring_case(trained, contract_data, tmp_path_factory):
    """The released artifact and a handful of at-risk test members with their index dates."""
    model = load_model_files(trained.write_model_files(tmp_path_factory.mktemp("behaviour") / "m"))
    first = trained.test_examples.drop_duplicates("person_id").iloc[:25]
    persons = contract_data.persons[contract_data.persons["person_id"].isin(first["person_id"])].reset_index(drop=True)
    events = contract_data.events[contract_data.events["person_id"].isin(first["person_id"])].reset_index(drop=True)
    as_of = pd.Series(first["as_of"].to_numpy(), index=pd.Index(first["person_id"], name="person_id"))
    return model, events, persons, as_of


def _scores(results) -> dict[str, float | None]:
    return {r["person_id"]: r["score"] for r in results}


def test_recorded_race_does_not_move_the_score(scoring_case):
    """Race is not a model input: changing every member's recorded race leaves every score unchanged."""
    model, events, persons, as_of = scoring_case
    baseline = _scores(score_members(model, events, persons, as_of))
    assert any(v is not None for v in baseline.values())
    changed = persons.assign(race=np.where(persons["race"].astype("string").fillna("") == "white", "asian", "white"))
    assert _scores(score_members(model, events, changed, as_of)) == baseline


def test_member_id_row_order_and_later_claims_do_not_move_the_score(scoring_case):
    """Renaming members, shuffling claim rows and adding claims after the evaluation date leave
    every score unchanged."""
    model, events, persons, as_of = scoring_case
    baseline = _scores(score_members(model, events, persons, as_of))
    rename = {pid: f"renamed-{i}" for i, pid in enumerate(as_of.index)}
    renamed_events = events.assign(person_id=events["person_id"].map(rename).astype("string"))
    renamed_persons = persons.assign(person_id=persons["person_id"].map(rename).astype("string"))
    renamed_as_of = pd.Series(as_of.to_numpy(), index=pd.Index([rename[p] for p in as_of.index], name="person_id"))
    renamed = _scores(score_members(model, renamed_events, renamed_persons, renamed_as_of))
    assert {pid: renamed[rename[pid]] for pid in baseline} == baseline

    shuffled = events.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert _scores(score_members(model, shuffled, persons, as_of)) == baseline

    later = events[events["kind"] != "enrollment"].copy()
    later["date"] = later["person_id"].map(as_of) + pd.Timedelta(days=10)
    later["end_date"] = pd.NaT
    with_future = pd.concat([events, later.astype(events.dtypes.to_dict())], ignore_index=True)
    assert _scores(score_members(model, with_future, persons, as_of)) == baseline
