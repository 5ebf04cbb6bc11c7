"""Cancer cohort: the claims case definition, disease hierarchy and exclusions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.codelists import load_codelists
from features.cohort import COHORT_COLUMNS, PCNSL_UNSEPARABLE, CohortConfig, assign_cohort
from features.events import clip_to_as_of, conform_events, empty_events, empty_persons


@pytest.fixture(scope="module")
def codes():
    return load_codelists()


def dx(person: str, day: str, code: str, setting: str = "office") -> tuple:
    return (person, "diagnosis", day, "icd10cm", code, setting)


def drug(person: str, day: str, code: str) -> tuple:
    return (person, "drug_admin", day, "hcpcs", code, "outpatient")


def cohort_of(codes, rows: list[tuple], people: list[str] | None = None, as_of: str = "2026-01-01", config=CohortConfig()):
    events = conform_events(pd.DataFrame(rows, columns=["person_id", "kind", "date", "code_system", "code", "setting"]))
    people = people or sorted({r[0] for r in rows})
    as_of_s = pd.Series(pd.Timestamp(as_of), index=people)
    return assign_cohort(clip_to_as_of(events, as_of_s), empty_persons(), as_of_s, codes, config).set_index("person_id")


def test_columns_and_one_row_per_member(codes):
    """Output has exactly the documented columns and one row per as_of member, including members without events."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8330", "inpatient")], people=["a", "nobody"])
    assert tuple(out.reset_index().columns) == COHORT_COLUMNS
    assert list(out.index) == ["a", "nobody"]
    assert out.loc["nobody", "evidence"] == "no target-disease diagnosis claim"
    assert not out.loc["nobody", "in_cohort"]


def test_single_rule_out_claim_does_not_qualify(codes):
    """One outpatient DLBCL claim alone never makes a member a cancer patient."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8330")])
    assert not out.loc["a", "in_cohort"]
    assert pd.isna(out.loc["a", "disease"])
    assert "a single claim does not qualify" in out.loc["a", "evidence"]


def test_two_outpatient_claims_need_thirty_days(codes):
    """Two outpatient claims qualify at 30+ days apart, not at 29."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8330"), dx("a", "2024-02-15", "C8338"),
                            dx("b", "2024-01-01", "C8330"), dx("b", "2024-01-30", "C8330")])
    assert out.loc["a", "in_cohort"] and out.loc["a", "disease"] == "LBCL"
    assert out.loc["a", "evidence"] == "2 outpatient claims with LBCL 45 days apart"
    assert out.loc["a", "first_dx_date"] == pd.Timestamp("2024-01-01")
    assert not out.loc["b", "in_cohort"]
    assert "29 days apart" in out.loc["b", "evidence"]


def test_one_inpatient_claim_qualifies(codes):
    """A single inpatient claim with the diagnosis qualifies."""
    out = cohort_of(codes, [dx("a", "2024-03-03", "C9000", "inpatient")])
    assert out.loc["a", "disease"] == "MM" and out.loc["a", "in_cohort"]
    assert "inpatient claim" in out.loc["a", "evidence"]


def test_diagnosis_plus_therapy_qualifies_but_steroid_does_not(codes):
    """One claim plus an anticancer drug within 90 days qualifies; dexamethasone alone does not."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8310"), drug("a", "2024-02-01", "J9033"),
                            dx("b", "2024-01-01", "C8310"), drug("b", "2024-02-01", "J1100"),
                            dx("c", "2024-01-01", "C8310"), drug("c", "2024-06-01", "J9033")])
    assert out.loc["a", "disease"] == "MCL" and out.loc["a", "in_cohort"]
    assert "anticancer therapy within 90 days" in out.loc["a", "evidence"]
    assert not out.loc["b", "in_cohort"]
    assert not out.loc["c", "in_cohort"]


def test_transformed_fl_becomes_lbcl(codes):
    """FL that qualified before a qualifying DLBCL is LBCL with subtype transformed_FL and the LBCL first date."""
    out = cohort_of(codes, [dx("a", "2020-01-01", "C8210"), dx("a", "2020-03-01", "C8210"),
                            dx("a", "2023-05-01", "C8338", "inpatient")])
    assert out.loc["a", "disease"] == "LBCL"
    assert out.loc["a", "subtype"] == "transformed_FL"
    assert out.loc["a", "first_dx_date"] == pd.Timestamp("2023-05-01")
    assert "FL coded earlier" in out.loc["a", "evidence"]


def test_fl_alone_and_fl_3b(codes):
    """FL grades 1-2 stay FL; FL grade 3B (C82.4) is LBCL-like with subtype FL_3B."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8200", "inpatient"), dx("b", "2024-01-01", "C8240", "inpatient")])
    assert (out.loc["a", "disease"], out.loc["a", "subtype"]) == ("FL", "FL")
    assert (out.loc["b", "disease"], out.loc["b", "subtype"]) == ("LBCL", "FL_3B")


def test_pmbcl_subtype(codes):
    """C85.2 claims give LBCL with subtype PMBCL."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8522", "inpatient")])
    assert (out.loc["a", "disease"], out.loc["a", "subtype"]) == ("LBCL", "PMBCL")


def test_primary_cns_lymphoma_excluded(codes):
    """C83.390 (FY2025+) excludes the member even when DLBCL codes also qualify."""
    out = cohort_of(codes, [dx("a", "2025-01-01", "C83390", "inpatient"),
                            dx("b", "2025-01-01", "C83390", "inpatient"), dx("b", "2025-02-01", "C8330", "inpatient")])
    for person in ("a", "b"):
        assert not out.loc[person, "in_cohort"]
        assert out.loc[person, "exclusion"] == "primary CNS lymphoma"
        assert out.loc[person, "disease"] == "LBCL"


def test_c8339_before_fy2025_flags_pcnsl_unseparable(codes):
    """C83.39 may hide PCNSL before the FY2025 split: the member stays in but evidence says so."""
    out = cohort_of(codes, [dx("a", "2023-01-01", "C8339", "inpatient"), dx("b", "2023-01-01", "C8338", "inpatient")])
    assert out.loc["a", "in_cohort"] and PCNSL_UNSEPARABLE in out.loc["a", "evidence"]
    assert PCNSL_UNSEPARABLE not in out.loc["b", "evidence"]


def test_hodgkin_excluded_but_not_next_to_dlbcl(codes):
    """Hodgkin-only members are excluded; a Hodgkin history next to qualifying DLBCL is a second lymphoma."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8190", "inpatient"),
                            dx("b", "2024-01-01", "C8190", "inpatient"), dx("b", "2024-02-01", "C8590", "inpatient"),
                            dx("c", "2019-01-01", "Z8571", "inpatient"), dx("c", "2024-02-01", "C8330", "inpatient")])
    assert out.loc["a", "exclusion"] == "Hodgkin lymphoma" and not out.loc["a", "in_cohort"]
    assert out.loc["b", "exclusion"] == "Hodgkin lymphoma"
    assert out.loc["c", "in_cohort"] and pd.isna(out.loc["c", "exclusion"])
    assert "Hodgkin codes also present" in out.loc["c", "evidence"]


def test_t_lineage_excluded(codes):
    """A qualifying T-cell lymphoma code excludes a member without a specific B-cell target."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8440", "inpatient")])
    assert out.loc["a", "exclusion"] == "T-lineage" and not out.loc["a", "in_cohort"]


def test_b_all_lineage_known_only_with_b_lineage_drug(codes):
    """C91.0 alone leaves lineage unknown; blinatumomab shows B-lineage; lineage is NA for other diseases."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C9100", "inpatient"),
                            dx("b", "2024-01-01", "C9100", "inpatient"), drug("b", "2024-02-01", "J9039"),
                            dx("c", "2024-01-01", "C9000", "inpatient")])
    assert out.loc["a", "disease"] == "B_ALL" and out.loc["a", "lineage_known"] == False  # noqa: E712
    assert out.loc["b", "lineage_known"] == True  # noqa: E712
    assert pd.isna(out.loc["c", "lineage_known"])


def test_c830_is_mzl_unless_cll_signals(codes):
    """C83.0 is MZL (ambiguous) unless CLL codes or a BCL-2 inhibitor point to SLL."""
    out = cohort_of(codes, [dx("a", "2024-01-01", "C8300", "inpatient"),
                            dx("b", "2024-01-01", "C8300", "inpatient"), dx("b", "2024-03-01", "C9110")])
    assert (out.loc["a", "disease"], out.loc["a", "subtype"]) == ("MZL", "MZL_or_SLL")
    assert (out.loc["b", "disease"], out.loc["b", "subtype"]) == ("CLL_SLL", "SLL")


def test_low_specificity_codes_need_chemoimmunotherapy(codes):
    """C83.8 counts as LBCL (HGBL proxy) only with anti-CD20 plus anthracycline; C85.9 never assigns a disease."""
    rows = [dx("a", "2024-01-01", "C8380", "inpatient"),
            dx("b", "2024-01-01", "C8380", "inpatient"), drug("b", "2024-01-10", "J9312"), drug("b", "2024-01-10", "J9000"),
            dx("c", "2024-01-01", "C8590", "inpatient"), drug("c", "2024-01-10", "J9312"), drug("c", "2024-01-10", "J9000")]
    out = cohort_of(codes, rows)
    assert not out.loc["a", "in_cohort"]
    assert (out.loc["b", "disease"], out.loc["b", "subtype"]) == ("LBCL", "HGBL proxy")
    assert not out.loc["c", "in_cohort"]


def test_plan_switch_claims_combine_under_one_person(codes):
    """Claims billed under two plans (member ids) of one person_id combine: one claim each, 60 days apart, qualifies."""
    rows = [("p", "enrollment", "2023-01-01", "", "", "unknown"), ("p", "enrollment", "2024-01-01", "", "", "unknown"),
            dx("p", "2023-12-01", "C8330"), dx("p", "2024-01-30", "C8330")]
    out = cohort_of(codes, rows)
    assert out.loc["p", "in_cohort"]


def test_events_after_as_of_never_count(codes):
    """The second claim after as_of cannot complete the case definition."""
    rows = [dx("a", "2024-01-01", "C8330"), dx("a", "2024-03-01", "C8330")]
    assert not cohort_of(codes, rows, as_of="2024-02-01").loc["a", "in_cohort"]
    assert cohort_of(codes, rows, as_of="2024-03-01").loc["a", "in_cohort"]


def test_member_alone_equals_member_in_population_and_order_free(codes):
    """A member's row is the same alone, inside a population, and with shuffled input rows."""
    rows = [dx("a", "2020-01-01", "C8210"), dx("a", "2020-03-01", "C8210"), dx("a", "2023-05-01", "C8338", "inpatient"),
            dx("b", "2024-01-01", "C9100", "inpatient"), drug("b", "2024-02-01", "J9039"),
            dx("c", "2024-01-01", "C8190", "inpatient")]
    together = cohort_of(codes, rows)
    alone = cohort_of(codes, [r for r in rows if r[0] == "a"])
    pd.testing.assert_series_equal(together.loc["a"], alone.loc["a"])
    shuffled = cohort_of(codes, [rows[i] for i in np.random.default_rng(1).permutation(len(rows))])
    pd.testing.assert_frame_equal(together, shuffled)


def test_empty_inputs(codes):
    """No events and no members give empty or all-negative results, not errors."""
    none = assign_cohort(empty_events(), empty_persons(), pd.Series([], dtype="datetime64[s]"), codes)
    assert len(none) == 0 and tuple(none.columns) == COHORT_COLUMNS
    one = assign_cohort(empty_events(), empty_persons(), pd.Series([pd.Timestamp("2024-01-01")], index=["x"]), codes)
    assert not one.loc[0, "in_cohort"]


def test_config_rejects_unknown_prefix(codes):
    """A subtype prefix that is not in the code list is an error naming it."""
    with pytest.raises(ValueError, match="C99.9"):
        cohort_of(codes, [dx("a", "2024-01-01", "C8330")], config=CohortConfig(subtype_by_prefix=(("C99.9", "x"),)))


def test_duplicated_members_in_as_of_are_an_error(codes):
    """Two as_of dates for one person_id is a caller error that names the field."""
    as_of = pd.Series(pd.Timestamp("2024-01-01"), index=["a", "a"])
    with pytest.raises(ValueError, match="as_of index"):
        assign_cohort(empty_events(), empty_persons(), as_of, codes)


def test_missing_codes_and_unknown_codes_are_ignored(codes):
    """Rows with a missing or unknown code neither crash nor count."""
    rows = [dx("a", "2024-01-01", None, "inpatient"), dx("a", "2024-01-01", "ZZZ99", "inpatient"),
            drug("a", "2024-01-02", None), dx("b", "2024-01-01", "C8330", "inpatient")]
    out = cohort_of(codes, rows)
    assert not out.loc["a", "in_cohort"] and out.loc["b", "in_cohort"]


CODE_POOL = ["C8330", "C8339", "C83390", "C8210", "C8240", "C8310", "C9100", "C9000", "C8300", "C9110", "C8190", "C8440", "C8380", "I10"]
DRUG_POOL = ["J9312", "J9000", "J9039", "J1100", "J9033"]


@pytest.mark.slow
def test_property_alone_equals_population_and_future_events_are_invisible(codes):
    """Random histories: a member's row is the same alone or in the population, and events after as_of change nothing."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    event = st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 900),
        st.one_of(st.tuples(st.just("diagnosis"), st.sampled_from(CODE_POOL)), st.tuples(st.just("drug_admin"), st.sampled_from(DRUG_POOL))),
        st.sampled_from(["office", "inpatient", "outpatient"]),
    )

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(event, min_size=1, max_size=25), st.lists(event, max_size=5))
    def check(history, future):
        start = pd.Timestamp("2023-01-01")
        def rows(items, offset=0):
            return [(p, k, str((start + pd.Timedelta(days=d + offset)).date()), "icd10cm" if k == "diagnosis" else "hcpcs", c, s)
                    for p, d, (k, c), s in items]
        base = rows(history)
        together = cohort_of(codes, base, people=["a", "b", "c"], as_of="2025-12-31")
        later = cohort_of(codes, base + rows(future, offset=1100), people=["a", "b", "c"], as_of="2025-12-31")
        pd.testing.assert_frame_equal(together, later)
        for person in ("a", "b", "c"):
            alone = cohort_of(codes, [r for r in base if r[0] == person], people=[person], as_of="2025-12-31")
            pd.testing.assert_series_equal(together.loc[person], alone.loc[person])

    check()
