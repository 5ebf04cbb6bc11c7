"""Relapse/refractory status and treatment history (lot_rules.md section 3) on hand-built histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.events import clip_to_as_of
from features.lines import derive_lines
from features.relapse import summarise_treatment
from tests.features.factories import (
    as_of_series,
    codes_with_crosswalk,
    drug,
    dx,
    every,
    fill,
    make_member,
    make_population,
    proc,
    regimen,
)
from tests.features.factories import events_frame as frame
from tests.features.factories import histories

CODES = codes_with_crosswalk()
R_CHOP = ["rituximab", "cyclophosphamide", "doxorubicin", "vincristine"]
R_ICE = ["rituximab", "ifosfamide", "carboplatin", "etoposide"]


def summary_for(events: list, disease: str | None = "LBCL", as_of: str = "2026-01-01") -> pd.Series:
    member = make_member("P1", events=events)
    as_of_s = as_of_series(member, as_of)
    diseases = pd.Series([disease], index=as_of_s.index, dtype=object)
    clipped = clip_to_as_of(member.events, as_of_s)
    lines = derive_lines(clipped, diseases, as_of_s, CODES)
    out = summarise_treatment(lines, clipped, diseases, as_of_s, CODES)
    assert len(out) == 1
    return out.iloc[0]


def monthly(start: str, generic: str, months: int, supply: int = 28) -> list:
    return [fill(d, generic, supply) for d in every(start, months, 28)]


def test_one_row_per_as_of_member_in_as_of_order_even_without_events():
    """Every member of as_of gets a row, in as_of order; no therapy means 0 lines and missing dates."""
    members = [make_member("P2", events=regimen("2024-01-01", R_CHOP, 6, 21)), make_member("P1")]
    _, events = make_population(members)
    as_of = as_of_series(members, "2025-01-01")
    diseases = pd.Series(["LBCL", "LBCL"], index=as_of.index)
    lines = derive_lines(events, diseases, as_of, CODES)
    out = summarise_treatment(lines, events, diseases, as_of, CODES)
    assert out["person_id"].tolist() == ["P2", "P1"]
    assert out["prior_lines"].tolist() == [1, 0]
    none = out.iloc[1]
    assert pd.isna(none["line1_start"]) and pd.isna(none["early_relapse"]) and pd.isna(none["days_since_last_treatment"])
    assert not none["progressed_after_last_line"] and none["progression_evidence"] == ""


def test_relapse_within_twelve_months_of_the_end_of_first_line_is_early():
    """2L started 200 days after the LAST dose of R-CHOP is an early relapse; the clock is documented."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2024-11-01", R_ICE, 2, 21))
    assert s["line1_end"] == pd.Timestamp("2024-04-15")
    assert s["days_line1_end_to_line2_start"] == (pd.Timestamp("2024-11-01") - pd.Timestamp("2024-04-15")).days
    assert s["early_relapse"] is True or s["early_relapse"] == True  # noqa: E712
    assert s["primary_refractory"] == False  # noqa: E712
    assert s["line1_regimen"] == "R-CHOP"
    assert s["prior_lines"] == 2


def test_relapse_after_twelve_months_is_not_early():
    """2L started 400 days after the end of line 1 is a late relapse."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2025-05-25", R_ICE, 2, 21))
    assert s["days_line1_end_to_line2_start"] == 405
    assert s["early_relapse"] == False  # noqa: E712


def test_second_line_soon_after_first_is_primary_refractory():
    """2L within 90 days of the end of 1L is the primary-refractory proxy."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2024-06-15", R_ICE, 2, 21))
    assert s["primary_refractory"] == True  # noqa: E712


def test_first_line_stopped_before_four_cycles_then_another_line_is_refractory():
    """R-CHOP stopped after 2 cycles and followed (even months later) by 2L counts as refractory."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 2, 21) + regimen("2024-08-01", R_ICE, 2, 21))
    assert s["primary_refractory"] == True  # noqa: E712
    s = summary_for(regimen("2024-01-01", R_CHOP, 4, 21) + regimen("2024-08-01", R_ICE, 2, 21))
    assert s["primary_refractory"] == False  # noqa: E712


def test_no_second_line_leaves_relapse_timing_unknown():
    """Without line 2 early relapse and refractoriness are missing, not False."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 6, 21))
    assert pd.isna(s["early_relapse"]) and pd.isna(s["primary_refractory"]) and pd.isna(s["line2_start"])


def test_car_t_second_line_uses_apheresis_as_its_start():
    """When line 2 is CAR T, relapse therapy began at apheresis, so the clock stops there."""
    events = regimen("2024-01-01", R_CHOP, 6, 21) + [proc("2024-10-01", "38225"), drug("2024-11-15", "Q2041")]
    s = summary_for(events)
    assert s["line2_start"] == pd.Timestamp("2024-10-01")
    assert s["prior_lines"] == 1 and s["car_t_received"] and s["car_t_date"] == pd.Timestamp("2024-11-15")
    assert s["progressed_after_last_line"] and "CAR T infusion 2024-11-15" in s["progression_evidence"]


def test_relapse_coded_diagnosis_after_the_last_line_is_progression():
    """C91.02 (ALL in relapse) after the start of the last line is evidence of progression."""
    events = regimen("2024-01-01", ["blinatumomab"], 2, 42) + [dx("2024-09-01", "C91.02")]
    s = summary_for(events, disease="B_ALL")
    assert s["progressed_after_last_line"]
    assert s["progression_evidence"] == "relapse-coded diagnosis 2024-09-01"


def test_relapse_code_before_the_last_line_or_of_another_disease_is_not_progression():
    """A relapse code dated before the last line started, or for a different disease, is ignored."""
    s = summary_for([dx("2023-12-01", "C91.02")] + regimen("2024-01-01", ["blinatumomab"], 2, 42), disease="B_ALL")
    assert not s["progressed_after_last_line"]
    s = summary_for(regimen("2024-01-01", ["bortezomib"], 4, 21) + [dx("2024-09-01", "C91.02")], disease="MM")
    assert not s["progressed_after_last_line"]


def test_return_to_active_code_after_remission_code_is_progression():
    """CLL coded in remission (C91.11) and later not in remission (C91.10) after the line started."""
    events = monthly("2024-01-01", "venetoclax", 12) + [dx("2024-06-01", "C91.11"), dx("2025-02-01", "C91.10")]
    s = summary_for(events, disease="CLL_SLL")
    assert s["progressed_after_last_line"]
    assert "active-disease code after a remission code 2025-02-01" in s["progression_evidence"]
    s = summary_for(monthly("2024-01-01", "venetoclax", 12) + [dx("2024-06-01", "C91.10")], disease="CLL_SLL")
    assert not s["progressed_after_last_line"]


def test_car_t_workup_after_the_last_line_is_progression():
    """Apheresis for CAR T (CPT 38225) after the last line started shows progression."""
    s = summary_for(regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2024-09-01", R_ICE, 2, 21) + [proc("2025-01-10", "38225")], as_of="2025-01-20")
    assert s["prior_lines"] == 2 and s["progressed_after_last_line"]
    assert s["progression_evidence"] == "CAR T apheresis/work-up 2025-01-10"


def test_class_exposure_and_triple_class_exposed():
    """PI + IMiD + anti-CD38 make a myeloma member triple-class exposed."""
    events = regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21) + monthly("2024-01-01", "lenalidomide", 4) + regimen("2024-08-01", ["daratumumab"], 4, 28)
    s = summary_for(events, disease="MM")
    assert s["exposed_pi"] and s["exposed_imid"] and s["exposed_anti_cd38"] and s["triple_class_exposed"]
    assert not s["exposed_btki"] and not s["exposed_anti_cd20"]
    s = summary_for(regimen("2024-01-01", ["bortezomib"], 4, 21) + monthly("2024-01-01", "lenalidomide", 4), disease="MM")
    assert not s["triple_class_exposed"]


def test_lenalidomide_refractory_when_next_line_starts_on_lenalidomide():
    """A new line starting while lenalidomide supply is active marks lenalidomide-refractory."""
    events = monthly("2024-01-01", "lenalidomide", 10) + regimen("2024-10-01", ["daratumumab", "bortezomib"], 4, 21)
    s = summary_for(events, disease="MM")
    assert s["lenalidomide_refractory"]


@pytest.mark.parametrize(("days_after_supply", "refractory"), [(60, True), (61, False)])
def test_lenalidomide_refractory_boundary_is_sixty_days(days_after_supply, refractory):
    """The next line must start on or within 60 days after the last lenalidomide supply ends."""
    supply_end = pd.Timestamp("2024-01-01") + pd.Timedelta(days=27)
    start = (supply_end + pd.Timedelta(days=days_after_supply)).strftime("%Y-%m-%d")
    events = [fill("2024-01-01", "lenalidomide", 28)] + regimen(start, ["daratumumab", "bortezomib"], 2, 21)
    s = summary_for(events, disease="MM")
    assert bool(s["lenalidomide_refractory"]) is refractory


def test_lenalidomide_long_before_the_next_line_is_not_refractory():
    """Lenalidomide stopped a year before the next line is exposure, not refractoriness."""
    events = monthly("2024-01-01", "lenalidomide", 4) + regimen("2025-06-01", ["daratumumab", "bortezomib"], 4, 21)
    s = summary_for(events, disease="MM")
    assert s["exposed_imid"] and not s["lenalidomide_refractory"]


def test_prior_asct_and_days_since():
    """ASCT in a line sets prior_asct; days since the last line start and last treatment count to as_of."""
    events = regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21) + [drug("2024-04-08", "melphalan"), proc("2024-04-10", "38241")]
    s = summary_for(events, disease="MM", as_of="2024-05-10")
    assert s["prior_asct"]
    assert s["days_since_last_line_start"] == (pd.Timestamp("2024-05-10") - pd.Timestamp("2024-01-01")).days
    assert s["days_since_last_treatment"] == 30


def test_prior_lines_exclude_car_t_lines():
    """The CAR T line is not a prior line of systemic therapy."""
    events = regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2024-08-01", R_ICE, 2, 21) + [drug("2025-01-10", "Q2041")]
    s = summary_for(events)
    assert s["prior_lines"] == 2 and s["car_t_received"]


def test_output_column_types():
    """Flags are booleans, optional flags nullable booleans, day counts nullable integers."""
    member = make_member("P1", events=regimen("2024-01-01", R_CHOP, 6, 21))
    as_of = as_of_series(member, "2025-01-01")
    dis = pd.Series(["LBCL"], index=as_of.index)
    out = summarise_treatment(derive_lines(member.events, dis, as_of, CODES), member.events, dis, as_of, CODES)
    assert str(out["early_relapse"].dtype) == "boolean" and str(out["days_line1_end_to_line2_start"].dtype) == "Int64"
    assert out["exposed_anti_cd20"].dtype == bool and out["progressed_after_last_line"].dtype == bool
    for column in ("prior_lines", "line1_start", "line1_end", "line2_start", "triple_class_exposed", "lenalidomide_refractory", "prior_asct", "car_t_received", "car_t_date", "days_since_last_line_start", "days_since_last_treatment", "line1_regimen"):
        assert column in out.columns


def test_duplicated_as_of_is_an_error():
    """Two as_of dates for one member are refused."""
    as_of = pd.Series(pd.to_datetime(["2025-01-01", "2025-02-01"]), index=["P1", "P1"])
    with pytest.raises(ValueError, match="duplicated"):
        summarise_treatment(derive_lines(frame([]), pd.Series(dtype=object), as_of.iloc[:1], CODES), frame([]), pd.Series(dtype=object), as_of, CODES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=histories("P1"), b=histories("P2"), seed=st.integers(0, 2**31), disease=st.sampled_from([None, "LBCL", "MM", "B_ALL", "CLL_SLL"]))
def test_property_summary_alone_equals_in_population_and_ignores_row_order(a, b, seed, disease):
    """A member's summary is the same alone, inside a population, and with shuffled rows."""
    as_of = pd.Series(pd.to_datetime(["2025-06-30", "2024-06-30"]), index=["P1", "P2"]).astype("datetime64[s]")
    dis = pd.Series([disease, "MM"], index=["P1", "P2"], dtype=object)
    everyone = clip_to_as_of(frame(a + b), as_of).sample(frac=1.0, random_state=seed % (2**32)).reset_index(drop=True)
    together = summarise_treatment(derive_lines(everyone, dis, as_of, CODES), everyone, dis, as_of, CODES)
    mine = clip_to_as_of(frame(a), as_of.iloc[:1])
    alone = summarise_treatment(derive_lines(mine, dis.iloc[:1], as_of.iloc[:1], CODES), mine, dis.iloc[:1], as_of.iloc[:1], CODES)
    pd.testing.assert_frame_equal(alone, together.iloc[:1].reset_index(drop=True))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=histories("P1"), later=histories("P1"), cut=st.integers(0, 900))
def test_property_summary_ignores_events_after_as_of(rows, later, cut):
    """Events after as_of, once clipped, never change the summary."""
    as_of_day = np.datetime64("2023-01-01") + np.timedelta64(cut, "D")
    as_of = pd.Series([as_of_day], index=["P1"]).astype("datetime64[s]")
    dis = pd.Series(["MM"], index=["P1"], dtype=object)
    shifted = [{**r, "date": as_of_day + np.timedelta64(1 + int((r["date"] - np.datetime64("2023-01-01")) // np.timedelta64(1, "D")), "D")} for r in later]

    def run(rs):
        ev = clip_to_as_of(frame(rs), as_of)
        return summarise_treatment(derive_lines(ev, dis, as_of, CODES), ev, dis, as_of, CODES)

    pd.testing.assert_frame_equal(run(rows), run(rows + shifted))



def test_batch_summary_equals_single_member_summary():
    """Above the small-input thresholds the summary equals the one computed member by member."""
    members = []
    for i in range(80):
        start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=3 * i)
        s, later = start.strftime("%Y-%m-%d"), (start + pd.Timedelta(days=150 + 5 * i)).strftime("%Y-%m-%d")
        events = monthly(s, "lenalidomide", 4) + regimen(later, ["daratumumab", "bortezomib"], 3, 21) + [dx(s, "C90.00")] * 50
        members.append(make_member(f"M{i:03d}", events=events))
    _, everyone = make_population(members)
    assert len(everyone) > 4096
    as_of = as_of_series(members, "2025-06-01")
    diseases = pd.Series("MM", index=as_of.index, dtype=object)
    together = summarise_treatment(derive_lines(everyone, diseases, as_of, CODES), everyone, diseases, as_of, CODES)
    assert together["lenalidomide_refractory"].any() and not together["lenalidomide_refractory"].all()
    for k in (0, 40, 79):
        m = members[k]
        one = as_of.iloc[[k]]
        alone = summarise_treatment(derive_lines(m.events, diseases.iloc[[k]], one, CODES), m.events, diseases.iloc[[k]], one, CODES)
        pd.testing.assert_frame_equal(alone, together.iloc[[k]].reset_index(drop=True))


BR = ["rituximab", "bendamustine"]


def test_a_class_only_in_the_current_line_is_exposure_but_not_a_failed_prior_class():
    """MCL: BR, relapse, ibrutinib just started: BTKi exposure yes, prior (failed) BTKi no, 1 failed line."""
    history = regimen("2022-01-03", BR, 6, 28) + monthly("2023-06-01", "ibrutinib", 3)
    s = summary_for(history, disease="MCL", as_of="2023-08-20")
    assert s["prior_lines"] == 2 and s["failed_lines"] == 1
    assert s["exposed_btki"] and not s["failed_btki"]
    assert s["failed_anti_cd20"] and s["failed_alkylator"]


def test_a_class_becomes_a_failed_prior_class_once_a_later_line_starts():
    """MCL: BR, then ibrutinib, then pirtobrutinib (a new line): ibrutinib's line has failed, 2 failed lines."""
    history = regimen("2022-01-03", BR, 6, 28) + monthly("2023-06-01", "ibrutinib", 6) + monthly("2024-03-01", "pirtobrutinib", 2)
    s = summary_for(history, disease="MCL", as_of="2024-04-20")
    assert s["prior_lines"] == 3 and s["failed_lines"] == 2
    assert s["failed_btki"]


def test_progression_evidence_after_the_last_line_makes_its_classes_prior():
    """MM: DRd then a relapse-coded myeloma claim: lenalidomide/daratumumab line has failed."""
    history = [fill(d, "lenalidomide", 21) for d in every("2023-01-02", 8, 28)]
    history += [drug(d, "daratumumab") for d in every("2023-01-02", 8, 28)]
    before = summary_for(history, disease="MM", as_of="2023-09-01")
    assert before["failed_lines"] == 0 and not before["failed_imid"] and before["exposed_imid"]
    after = summary_for(history + [dx("2023-09-15", "C9002")], disease="MM", as_of="2023-10-01")
    assert after["progressed_after_last_line"] and after["failed_lines"] == 1
    assert after["failed_imid"] and after["failed_anti_cd38"]


def test_remission_code_before_a_new_line_does_not_make_its_active_codes_a_progression():
    """Myeloma in remission (C90.01) before line 2, then C90.00 on line 2's claims: no progression after line 2."""
    events = (
        regimen("2023-01-01", ["bortezomib", "dexamethasone"], 6, 21)
        + [dx("2023-09-01", "C90.01"), dx("2023-12-01", "C90.01"), dx("2024-03-01", "C90.02")]
        + regimen("2024-03-20", ["daratumumab", "carfilzomib"], 6, 28)
        + [dx(d, "C90.00") for d in every("2024-03-20", 6, 28)]
    )
    s = summary_for(events, disease="MM", as_of="2024-10-01")
    assert s["prior_lines"] == 2
    assert not s["progressed_after_last_line"] and s["progression_evidence"] == ""


def test_remission_reached_on_the_last_line_then_active_code_is_progression():
    """Lymphoma coded in remission (C83.3A) after line 2 started, then C83.38 again: progression after line 2."""
    events = (
        regimen("2024-01-01", R_CHOP, 6, 21) + [dx("2024-08-01", "C83.3A")]
        + regimen("2024-10-01", R_ICE, 3, 21) + [dx(d, "C83.38") for d in every("2024-10-01", 3, 21)]
        + [dx("2025-03-01", "C83.3A"), dx("2025-06-01", "C83.38")]
    )
    s = summary_for(events, disease="LBCL", as_of="2025-07-01")
    assert s["prior_lines"] == 2 and s["progressed_after_last_line"]
    assert s["progression_evidence"] == "active-disease code after a remission code 2025-06-01"


def test_myeloma_relapse_coded_on_lenalidomide_maintenance_is_refractory_before_line_two():
    """A relapse code (C90.02) while lenalidomide supply runs makes the one line lenalidomide-refractory."""
    events = (
        regimen("2023-01-01", ["bortezomib", "dexamethasone"], 4, 21) + monthly("2023-01-01", "lenalidomide", 4)
        + monthly("2023-06-01", "lenalidomide", 12) + [dx("2024-04-01", "C90.02")]
    )
    s = summary_for(events, disease="MM", as_of="2024-04-15")
    assert s["prior_lines"] == 1 and s["progressed_after_last_line"]
    assert s["lenalidomide_refractory"] == True  # noqa: E712


def test_lenalidomide_refractory_is_unknown_when_progression_shows_long_after_the_last_supply():
    """Lenalidomide stopped, relapse coded 100 days after its supply ended, no next line: NA, not False."""
    events = regimen("2023-01-01", ["bortezomib", "dexamethasone"], 4, 21) + monthly("2023-01-01", "lenalidomide", 4)
    events += [dx("2023-07-24", "C90.02")]  # last supply ends 2023-04-21
    s = summary_for(events, disease="MM", as_of="2023-08-01")
    assert s["progressed_after_last_line"]
    assert pd.isna(s["lenalidomide_refractory"])


def test_lenalidomide_refractory_is_false_without_lenalidomide_or_without_progression_on_it():
    """No lenalidomide at all, or lenalidomide in a line not (yet) progressed: known False."""
    s = summary_for(regimen("2023-01-01", ["bortezomib", "dexamethasone"], 4, 21) + [dx("2023-07-01", "C90.02")], disease="MM")
    assert s["lenalidomide_refractory"] == False  # noqa: E712
    s = summary_for(monthly("2023-01-01", "lenalidomide", 6), disease="MM", as_of="2023-05-01")
    assert s["lenalidomide_refractory"] == False  # noqa: E712


def test_relapse_on_all_maintenance_is_not_primary_refractory():
    """B-ALL induction, two years of POMP maintenance, relapse and blinatumomab 3 weeks after the last fill: early, not refractory."""
    induction = regimen("2022-01-03", ["vincristine", "daunorubicin", "pegaspargase"], 4, 7)
    maintenance = [fill(d, g, 28) for d in every("2022-03-01", 26, 28) for g in ("mercaptopurine", "methotrexate")]
    events = induction + maintenance + regimen("2024-03-20", ["blinatumomab"], 2, 42)
    member = make_member("P1", events=events)
    as_of = as_of_series(member, "2024-06-01")
    lines = derive_lines(member.events, pd.Series(["B_ALL"], index=as_of.index, dtype=object), as_of, CODES)
    assert lines["line_number"].tolist() == [1, 2] and bool(lines["maintenance"].iloc[0])
    s = summary_for(events, disease="B_ALL", as_of="2024-06-01")
    assert s["days_line1_end_to_line2_start"] <= 90
    assert s["primary_refractory"] == False  # noqa: E712
    assert s["early_relapse"] == True  # noqa: E712


def test_shared_event_columns_give_the_same_summary_as_separate_frames():
    """Lines and summary computed on one columns_of(events), as the pipeline does, equal those from the DataFrame itself."""
    from features.columns import columns_of

    members = [
        make_member("P2", events=monthly("2023-01-01", "lenalidomide", 6) + regimen("2023-09-01", ["daratumumab", "bortezomib"], 3, 21) + [dx("2023-01-01", "C90.00")]),
        make_member("P1", events=regimen("2022-01-03", BR, 6, 28) + monthly("2023-06-01", "ibrutinib", 3)),
    ]
    _, everyone = make_population(members)
    as_of = as_of_series(members, "2024-06-01")
    diseases = pd.Series(["MM", "MCL"], index=as_of.index, dtype=object)
    shared = columns_of(everyone)
    together = summarise_treatment(derive_lines(shared, diseases, as_of, CODES), shared, diseases, as_of, CODES)
    apart = summarise_treatment(derive_lines(everyone, diseases, as_of, CODES), everyone, diseases, as_of, CODES)
    pd.testing.assert_frame_equal(together, apart)
    assert list(together["person_id"]) == ["P2", "P1"] and list(together["prior_lines"]) == [2, 2]
