"""Cohort assignment on many members at once: the compiled per-segment statistics and the disease
hierarchy give each member exactly what it gets alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.codelists import load_codelists
from features.cohort import CohortConfig, _segment_stats, assign_cohort
from features.events import clip_to_as_of, conform_events, empty_persons


@pytest.fixture(scope="module")
def codes():
    return load_codelists()


def dx(person: str, day: str, code: str | None, setting: str = "office", system: str | None = "icd10cm") -> tuple:
    return (person, "diagnosis", day, system, code, setting)


def drug(person: str, day: str, code: str) -> tuple:
    return (person, "drug_admin", day, "hcpcs", code, "outpatient")


def cohort_of(codes, rows: list[tuple], people: list[str], as_of: str = "2026-01-01") -> pd.DataFrame:
    events = conform_events(pd.DataFrame(rows, columns=["person_id", "kind", "date", "code_system", "code", "setting"]))
    as_of_s = pd.Series(pd.Timestamp(as_of), index=people)
    return assign_cohort(clip_to_as_of(events, as_of_s), empty_persons(), as_of_s, codes)


# One member per rule of the hierarchy (and its tie-breaks), with the disease and subtype expected.
HIERARCHY = {
    "lbcl": ([dx("lbcl", "2024-01-01", "C8330", "inpatient")], ("LBCL", "DLBCL NOS")),
    "pmbcl_latest": ([dx("pmbcl_latest", "2024-01-01", "C8330", "inpatient"), dx("pmbcl_latest", "2024-02-01", "C8520")], ("LBCL", "PMBCL")),
    "transformed": ([dx("transformed", "2023-01-01", "C8210", "inpatient"), dx("transformed", "2024-01-01", "C8330", "inpatient")],
                    ("LBCL", "transformed_FL")),
    "lbcl_before_fl": ([dx("lbcl_before_fl", "2023-01-01", "C8330", "inpatient"), dx("lbcl_before_fl", "2024-01-01", "C8210", "inpatient")],
                       ("LBCL", "DLBCL NOS")),
    "fl3b": ([dx("fl3b", "2024-01-01", "C8240", "inpatient")], ("LBCL", "FL_3B")),
    "mcl_over_fl": ([dx("mcl_over_fl", "2024-01-01", "C8310", "inpatient"), dx("mcl_over_fl", "2024-01-01", "C8210", "inpatient")],
                    ("MCL", "MCL")),
    "mm": ([dx("mm", "2024-01-01", "C9000", "inpatient")], ("MM", None)),
    "cll": ([dx("cll", "2024-01-01", "C9110", "inpatient")], ("CLL_SLL", "CLL")),
    "sll": ([dx("sll", "2024-01-01", "C8300", "inpatient"), dx("sll", "2024-03-01", "C9110")], ("CLL_SLL", "SLL")),
    "mzl_or_sll": ([dx("mzl_or_sll", "2024-01-01", "C8300", "inpatient")], ("MZL", "MZL_or_SLL")),
    "fl": ([dx("fl", "2024-01-01", "C8210", "inpatient")], ("FL", "FL")),
    "hgbl": ([dx("hgbl", "2024-01-01", "C8380", "inpatient"), drug("hgbl", "2024-01-10", "J9312"), drug("hgbl", "2024-01-10", "J9000")],
             ("LBCL", "HGBL proxy")),
    "possible_alone": ([dx("possible_alone", "2024-01-01", "C8380", "inpatient")], (None, None)),
    "pcnsl": ([dx("pcnsl", "2024-01-01", "C83390", "inpatient")], ("LBCL", "PCNSL")),
    "single_claim": ([dx("single_claim", "2024-01-01", "C8330")], (None, None)),
    "no_code": ([dx("no_code", "2024-01-01", None, "inpatient"), dx("no_code", "2024-01-02", "C8330", "inpatient", system=None)],
                ("LBCL", "DLBCL NOS")),
}


def test_each_hierarchy_rule_in_one_batch_equals_the_member_alone(codes):
    """Members hitting every rule of the hierarchy, assigned together, get the expected disease and
    subtype, and exactly the row each gets alone."""
    people = list(HIERARCHY)
    rows = [row for person in people for row in HIERARCHY[person][0]]
    together = cohort_of(codes, rows, people)
    assert together["person_id"].tolist() == people
    for k, person in enumerate(people):
        disease, subtype = HIERARCHY[person][1]
        got = together.iloc[k]
        assert (None if pd.isna(got["disease"]) else got["disease"]) == disease, person
        assert (None if pd.isna(got["subtype"]) else got["subtype"]) == subtype, person
        alone = cohort_of(codes, HIERARCHY[person][0], [person])
        pd.testing.assert_frame_equal(alone, together.iloc[[k]].reset_index(drop=True))


def test_members_without_events_and_empty_inputs(codes):
    """A member without claims, and an empty as_of, give the no-claim row and an empty frame."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8330", "inpatient")], ["a", "nobody"])
    assert out["in_cohort"].tolist() == [True, False]
    assert out["evidence"].iloc[1] == "no target-disease diagnosis claim"
    empty = cohort_of(codes, [dx("a", "2024-01-01", "C8330", "inpatient")], [])
    assert len(empty) == 0


def reference_segments(key, day, subtype, hides, inpatient, near, min_days):
    """The per-(person, group) statistics written the plain way, one dict per key."""
    out = {}
    for i in sorted(range(len(key)), key=lambda i: (key[i], day[i])):
        s = out.setdefault(key[i], {"first": day[i], "inp": set(), "out": set(), "near": False, "hides": False, "n": 0})
        s["n"] += 1
        s["subtype"] = subtype[i]
        s["near"] |= bool(near[i])
        s["hides"] |= bool(hides[i])
        (s["inp"] if inpatient[i] else s["out"]).add(day[i])
    rows = []
    big = np.iinfo(np.int64).max
    for k in sorted(out):
        s = out[k]
        span = max(s["out"]) - min(s["out"]) if len(s["out"]) >= 2 else 0
        rows.append((k, s["first"], len(s["inp"]), min(s["inp"], default=big), len(s["out"]), min(s["out"], default=big),
                     max(s["out"], default=-big), s["near"], s["subtype"], s["hides"],
                     bool(s["inp"]) or span >= min_days or s["near"], s["n"]))
    return rows


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40), st.integers(0, 3), st.booleans(), st.booleans(), st.booleans()), max_size=60),
    st.sampled_from([0, 1, 30]),
)
def test_segment_statistics_match_the_plain_definition(rows, min_days):
    """Distinct claim days, first/last days, latest subtype, flags and qualification per segment
    equal a plain per-key computation (days claimed twice count once; equal days keep row order)."""
    key = np.array([r[0] for r in rows], dtype=np.int64)
    day = np.array([r[1] for r in rows], dtype=np.int64)
    subtype = np.array([r[2] for r in rows], dtype=np.int64)
    hides, inpatient, near = (np.array([r[k] for r in rows], dtype=bool) for k in (3, 4, 5))
    order = np.lexsort((day, key))
    got = list(zip(*(a.tolist() for a in _segment_stats(key, day, subtype, hides, inpatient, near, order, min_days))))
    assert got == reference_segments(key.tolist(), day.tolist(), subtype.tolist(), hides, inpatient, near, min_days)


def test_zero_day_minimum_lets_one_outpatient_claim_qualify(codes):
    """With outpatient_min_days_apart=0 a single outpatient claim qualifies (span 0 >= 0), as the rule reads."""
    events = conform_events(pd.DataFrame([dx("a", "2024-01-01", "C8330")], columns=["person_id", "kind", "date", "code_system", "code", "setting"]))
    as_of = pd.Series(pd.Timestamp("2026-01-01"), index=["a"])
    out = assign_cohort(events, empty_persons(), as_of, codes, CohortConfig(outpatient_min_days_apart=0))
    assert out["in_cohort"].tolist() == [True]
