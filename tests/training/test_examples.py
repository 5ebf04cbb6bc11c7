"""Examples and labels: the population at risk, outcome windows, censoring and no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.events import conform_events
from features.pipeline import build_features
from training.examples import (
    find_pathway_claims,
    lay_out_grid,
    lay_out_landmarks,
    locate_spans,
    merge_enrollment_spans,
)
from training.settings import OutcomeSettings, PopulationSettings

pytestmark = pytest.mark.slow


def _enrollment(rows):
    return conform_events(
        pd.DataFrame(
            [{"person_id": p, "kind": "enrollment", "date": s, "end_date": e, "code_system": "", "code": ""} for p, s, e in rows]
        )
    )


def test_enrollment_spans_merge_across_small_gaps_only():
    """Monthly rows and a gap within the tolerance make one span; a longer gap starts a new one."""
    events = _enrollment(
        [
            ("a", "2021-01-01", "2021-01-31"),
            ("a", "2021-02-01", "2021-06-30"),
            ("a", "2021-07-20", "2021-12-31"),  # 19-day gap: same span with 31-day tolerance
            ("a", "2022-03-01", "2022-12-31"),  # 59-day gap: new span
            ("b", "2020-01-01", "2020-12-31"),
        ]
    )
    spans = merge_enrollment_spans(events, gap_days=31).sort_values(["person_id", "span_start"])
    assert spans[["person_id", "span_start", "span_end"]].astype(str).values.tolist() == [
        ["a", "2021-01-01", "2021-12-31"],
        ["a", "2022-03-01", "2022-12-31"],
        ["b", "2020-01-01", "2020-12-31"],
    ]
    keys = pd.DataFrame({"person_id": ["a", "a", "b"], "as_of": pd.to_datetime(["2021-08-01", "2022-01-15", "2020-06-01"])})
    found = locate_spans(keys, spans)
    assert found["span_start"].isna().tolist() == [False, True, False]
    assert found["span_start"].dropna().dt.strftime("%Y-%m-%d").tolist() == ["2021-01-01", "2020-01-01"]


def test_pathway_claims_exclude_drg_018_alone(contract_data):
    """A CAR T product code is a pathway claim; MS-DRG 018 on its own is not (it also covers
    other immunotherapies)."""
    events = conform_events(
        pd.DataFrame(
            [
                {"person_id": "x", "kind": "procedure", "date": "2024-03-01", "code_system": "ms_drg", "code": "018"},
                {"person_id": "y", "kind": "drug_admin", "date": "2024-03-02", "code_system": "hcpcs", "code": "Q2041"},
            ]
        )
    )
    claims = find_pathway_claims(events, contract_data.codes)
    assert claims["person_id"].tolist() == ["y"]


def test_landmarks_leave_a_full_horizon_and_grid_covers_each_window():
    """The last index date is at least H days before the end of data; the grid includes every
    window's last day."""
    outcome, population = OutcomeSettings(horizon_days=180), PopulationSettings(landmark_interval_days=90)
    start, end = pd.Timestamp("2020-01-01"), pd.Timestamp("2022-12-31")
    landmarks = lay_out_landmarks(start, end, outcome, population)
    assert landmarks[0] == start + pd.Timedelta(days=180)
    assert landmarks[-1] + pd.Timedelta(days=180) <= end
    grid = lay_out_grid(landmarks, outcome, end)
    for landmark in landmarks:
        assert landmark + pd.Timedelta(days=180) in grid
        assert landmark in grid


def test_examples_match_features_computed_with_only_earlier_events(example_set, contract_data):
    """Each sampled example's features equal those computed from the member's events on or
    before its index date alone (events after it are removed first)."""
    from features.geography import load_zip_centroids

    centroids = load_zip_centroids() if contract_data.centers is not None else None
    sample = example_set.examples.sample(n=12, random_state=0)
    for row_index, row in sample.iterrows():
        events = contract_data.events
        own = events[(events["person_id"] == row["person_id"]) & (events["date"] <= row["as_of"])]
        person = contract_data.persons[contract_data.persons["person_id"] == row["person_id"]]
        fs = build_features(
            own,
            person,
            pd.Series([row["as_of"]], index=pd.Index([row["person_id"]], name="person_id")),
            contract_data.codes,
            centers=contract_data.centers,
            zip_centroids=centroids,
        )
        expected = fs.features[list(example_set.features.columns)].astype("float32").iloc[0]
        got = example_set.features.loc[row_index]
        pd.testing.assert_series_equal(got, expected, check_names=False)


def test_population_at_risk_rules(example_set, contract_data):
    """No example is label-eligible, dead, already in the CAR T pathway, short of history, or
    without a full horizon of data at its index date."""
    examples = example_set.examples
    assert (examples["as_of"] + pd.Timedelta(days=180) <= example_set.data_end).all()
    deaths = examples["person_id"].map(contract_data.persons.set_index("person_id")["death_date"])
    assert not (deaths <= examples["as_of"]).any()
    pathway = find_pathway_claims(contract_data.events, contract_data.codes).groupby("person_id")["date"].min()
    assert not (examples["person_id"].map(pathway) <= examples["as_of"]).any()
    spans = merge_enrollment_spans(contract_data.events, 31)
    located = locate_spans(examples, spans)
    assert ((examples["as_of"] - located["span_start"]).dt.days >= 180).all()
    assert (example_set.features["elig_products_count"].fillna(0) == 0).all()
    steps = example_set.attrition["examples"].to_numpy()
    assert np.all(np.diff(steps) <= 0)


def test_labels_fall_inside_the_window_and_lead_to_candidacy(example_set):
    """A positive's outcome date lies in (as_of, as_of + H]; the candidate date (first candidacy
    by the labels in force on each date) is after the index date, inside the window exactly for
    positives by those labels."""
    examples = example_set.examples
    horizon = pd.Timedelta(days=180)
    positives = examples[examples["label"] == 1]
    assert len(positives) > 20
    assert (positives["outcome_date"] > positives["as_of"]).all()
    assert (positives["outcome_date"] <= positives["as_of"] + horizon).all()
    assert examples["outcome_date"].isna().eq(examples["label"] == 0).all()
    assert not (examples["candidate_date"] <= examples["as_of"]).any()
    later_rules = examples["label_outcome_rules"] == 1
    assert (examples.loc[later_rules, "candidate_date"] <= examples.loc[later_rules, "as_of"] + horizon).all()
    assert not (examples.loc[~later_rules, "candidate_date"] <= examples.loc[~later_rules, "as_of"] + horizon).any()


def test_default_label_uses_the_labels_in_force_at_the_index_date(example_set):
    """By default the label is eligibility by the label versions known at the index date; the
    label-change-only positives are exactly those positive by later labels but not by those."""
    examples = example_set.examples
    assert (examples["label"] == examples["label_index_rules"]).all()
    change = examples["label_change_only"].to_numpy(dtype=bool)
    assert (change == ((examples["label_outcome_rules"] == 1) & (examples["label_index_rules"] == 0)).to_numpy()).all()


def test_labels_differ_only_when_a_label_version_changes_in_the_window(example_set):
    """The two outcome definitions can disagree only for windows in which some label version took
    effect or was superseded."""
    from features.eligibility import load_rules

    changes = sorted({pd.Timestamp(r.in_force_from) for r in load_rules().rules} | {pd.Timestamp(r.in_force_to) for r in load_rules().rules if r.in_force_to})
    examples = example_set.examples
    start = examples["as_of"].to_numpy()
    end = (examples["as_of"] + pd.Timedelta(days=180)).to_numpy()
    spans_change = np.zeros(len(examples), dtype=bool)
    for day in changes:
        spans_change |= (start < np.datetime64(day)) & (np.datetime64(day) <= end)
    differs = (examples["label_index_rules"] != examples["label_outcome_rules"]).to_numpy()
    assert not (differs & ~spans_change).any()


def test_frozen_label_regimes_judge_later_dates_by_earlier_labels():
    """A regime frozen before a label's approval does not contain that label, and older regimes
    are re-evaluated only on grid dates whose own regime differs from their landmark's."""
    from features.eligibility import load_rules
    from training.examples import LabelRegimes, plan_frozen_evaluations

    rules = load_rules()
    # 2023-06-01's window has no label change; 2023-12-01's spans the 2024 myeloma and lymphoma labels.
    landmarks = pd.DatetimeIndex(pd.to_datetime(["2023-06-01", "2023-12-01"])).astype("datetime64[s]")
    grid = lay_out_grid(landmarks, OutcomeSettings(horizon_days=180, eligibility_grid_days=30), pd.Timestamp("2025-06-30"))
    regimes = LabelRegimes.from_rules(rules, grid)
    december = int(regimes.code_of(landmarks[1:])[0])
    ids = {r.id for r in regimes.frozen[december].rules}
    assert "ide-cel_mm_5l_2021" in ids and "ide-cel_mm_3l_2024" not in ids
    assert all(r.in_force_to is None for r in regimes.frozen[december].rules)
    plan = plan_frozen_evaluations(landmarks, grid, regimes, 180)
    assert set(plan["regime"]) == {december}
    assert plan["as_of"].min() > landmarks[1] and plan["as_of"].max() <= landmarks[1] + pd.Timedelta(days=180)


def test_censored_members_are_dropped(example_set, contract_data):
    """No kept example leaves the plan inside its window without having had the outcome first."""
    examples = example_set.examples
    spans = merge_enrollment_spans(contract_data.events, 31)
    located = locate_spans(examples, spans)
    window_end = examples["as_of"] + pd.Timedelta(days=180)
    left = (located["span_end"] < window_end) & ~(examples["outcome_date"] <= located["span_end"]).fillna(False)
    assert not (left & ~examples["died_in_window"]).any()
    assert any(step.startswith("left the plan") for step in example_set.attrition["step"])
