"""Status rules and explanation formatting of the scoring path."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from models.scoring import assign_status
from tests.service.conftest import model_dir  # noqa: F401  (the real small artifact, as a fixture)


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


def test_a_member_dead_by_as_of_is_unlikely_and_never_scored():
    """Death on or before as_of makes a member unlikely whatever the score; already treated and
    outside the cohort still win."""
    in_cohort = np.array([True, True, True, False])
    treated = np.array([False, False, True, False])
    dead = np.array([True, False, True, True])
    status = assign_status(in_cohort, treated, np.zeros(4, bool), np.array([0.9, 0.9, 0.9, 0.9]), 0.4, 0.1, dead)
    assert status.tolist() == ["unlikely", "likely_soon", "already_treated", "not_in_cohort"]


def test_deceased_members_get_no_score_on_either_door(model_dir):
    """A member the model would score is left unscored and unexplained once dead by as_of (the
    model was trained on living members only), in a request's columns and in the batch's frames
    alike; a death after as_of changes nothing (the pipeline cannot see it yet)."""
    from models.artifact import artifact_paths, load_model_files
    from models.scoring import score_members
    from service.history import load_member_history
    from service.schemas import ScoreRequest
    from tests.service.factories import R_CHOP, make_member

    model = load_model_files(artifact_paths(model_dir), version="1")
    members = []
    for person, death in (("alive", None), ("died-before", "2024-10-20"), ("died-on", "2024-11-01"), ("died-after", "2025-02-01")):
        member = make_member(person, lines=((date(2024, 2, 1), R_CHOP),), as_of=date(2024, 11, 1))
        member["demographics"]["death_date"] = death
        members.append(member)
    history = load_member_history([ScoreRequest.model_validate(m) for m in members], model.codes, date(2024, 11, 1))
    for events, persons in ((history.event_columns, history.persons), (history.events, history.persons.frame)):
        results = {r["person_id"]: r for r in score_members(model, events, persons, history.as_of, num_threads=1)}
        assert results["alive"]["score"] is not None and results["alive"]["reasons"]
        assert results["died-after"]["score"] == results["alive"]["score"]
        for person in ("died-before", "died-on"):
            assert results[person]["status"] == "unlikely" and results[person]["score"] is None and results[person]["reasons"] == []
            assert results[person]["in_cohort"]


def _population(size: int) -> list[dict]:
    """Members of every kind the scorer distinguishes, with dates and ages varied per member:
    outside the cohort, diagnosed only, on first-line R-CHOP (with fills), relapsed onto R-ICE,
    and without enrollment spans."""
    from tests.service.factories import R_CHOP, R_ICE, make_claim, make_member

    members = []
    for i in range(size):
        shift = timedelta(days=(i * 7) % 200)
        birth = f"{1940 + i % 45}-0{1 + i % 9}-1{i % 10}"
        start = date(2023, 11, 1) + shift
        kind = i % 5
        if kind == 0:
            member = make_member(f"m{i:04d}", birth_date=birth, diagnoses_on=())
            member["medical_claims"] = [make_claim(f"m{i}-bg{k}", start + timedelta(days=30 * k), "99213", ("I10", "E11.9")) for k in range(4)]
        elif kind == 1:
            member = make_member(f"m{i:04d}", birth_date=birth, diagnoses_on=(start, start + timedelta(days=40)))
        elif kind in (2, 4):
            member = make_member(f"m{i:04d}", birth_date=birth, diagnoses_on=(start,), lines=((start + timedelta(days=20), R_CHOP),))
            member["pharmacy_claims"] = [{"claim_id": f"m{i}-rx{k}", "dispensing_date": (start + timedelta(days=30 * k)).isoformat(), "ndc_code": "00069-0101-01", "days_supply": 30} for k in range(3)]
            if kind == 4:
                member["enrollment"] = []
        else:
            member = make_member(f"m{i:04d}", birth_date=birth, diagnoses_on=(start,), lines=((start + timedelta(days=10), R_CHOP), (start + timedelta(days=250), R_ICE)))
        member["as_of"] = (date(2024, 11, 1) + shift).isoformat()
        members.append(member)
    return members


def test_one_member_scores_the_same_alone_as_inside_a_thousand(model_dir):
    """score_members gives each member the same result (status, score, eligibility, lines,
    reasons) whether it is scored alone, as the API does, or inside a 1,000-member chunk."""
    from features.codelists import load_codelists
    from models.artifact import artifact_paths, load_model_files
    from models.scoring import score_members
    from service.history import load_member_history
    from service.schemas import ScoreRequest

    model = load_model_files(artifact_paths(model_dir), version="1")
    codes = load_codelists()
    requests = [ScoreRequest.model_validate(m) for m in _population(1000)]
    together = load_member_history(requests, codes, date(2025, 1, 1))
    chunk = score_members(model, together.events, together.persons, together.as_of, num_threads=1)
    assert [r["person_id"] for r in chunk] == [r.person_id for r in requests]
    assert {r["status"] for r in chunk} >= {"not_in_cohort", "eligible_now"}
    assert any(r["reasons"] for r in chunk) and any(r["lines_of_therapy"] for r in chunk)
    for i in list(range(0, 1000, 53)) + [1, 2, 3, 4, 999]:
        alone = load_member_history([requests[i]], codes, date(2025, 1, 1))
        assert score_members(model, alone.events, alone.persons, alone.as_of, num_threads=1) == [chunk[i]]


def test_explanations_rank_by_size_name_levels_and_stop_at_zero():
    """Reasons are the largest contributions by absolute size (ties in feature order), stop at the first zero, name categorical levels, give NaN as None and plain Python numbers."""
    from types import SimpleNamespace

    from features.catalog import CATALOG, DISEASE_LEVELS
    from models.scoring import explain_rows

    names = ("dx_disease", "demo_age_years", "lot_count", "not_in_catalog")
    model = SimpleNamespace(spec=SimpleNamespace(feature_names=names))
    matrix = np.array([[2.0, np.nan, 3.0, 7.5], [np.nan, 61.0, 0.0, 1.0], [99.0, 50.0, 1.0, 0.0]])
    contributions = np.array([[0.5, -0.5, 0.1, 0.0, 9.0], [0.0, 0.2, -0.3, 0.0, 9.0], [-1.0, 0.0, 0.0, 0.0, 9.0]])  # last column: base value
    rows = explain_rows(model, matrix, contributions, top=3)
    assert [[r["feature"] for r in row] for row in rows] == [["dx_disease", "demo_age_years", "lot_count"], ["lot_count", "demo_age_years"], ["dx_disease"]]
    first = rows[0]
    assert first[0] == {"feature": "dx_disease", "label": CATALOG["dx_disease"].label, "value": DISEASE_LEVELS[2], "contribution": 0.5, "direction": "raises"}
    assert first[1]["value"] is None and first[1]["direction"] == "lowers"
    assert rows[2][0]["value"] == 99.0  # a level index outside the levels is shown as the number
    assert all(type(r["contribution"]) is float and type(r["value"]) in (float, str, type(None)) for row in rows for r in row)
    assert explain_rows(model, matrix, contributions, top=0) == [[], [], []]
    fewer = SimpleNamespace(spec=SimpleNamespace(feature_names=names[:3] + ("not_in_catalog",)))
    assert explain_rows(fewer, matrix[:1], np.array([[0.0, 0.0, 0.0, 2.0, 1.0]]), top=5)[0][0]["label"] == "not_in_catalog"
