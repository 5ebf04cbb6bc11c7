"""Lines of therapy: every rule of lot_rules.md and the claims traps, on hand-built histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.columns import columns_of
from features.events import clip_to_as_of, conform_events
from features.lines import LINE_COLUMNS, derive_lines
from features.lot_config import LotConfig
from tests.features.factories import (
    as_of_series,
    codes_with_crosswalk,
    death,
    drug,
    dx,
    enrollment,
    every,
    fill,
    make_member,
    make_population,
    proc,
    radiation,
    regimen,
    stay,
)
from tests.features.factories import events_frame as frame
from tests.features.factories import histories

CODES = codes_with_crosswalk()
R_CHOP = ["rituximab", "cyclophosphamide", "doxorubicin", "vincristine"]
R_ICE = ["rituximab", "ifosfamide", "carboplatin", "etoposide"]


def lines_for(events: list, disease: str | None = "LBCL", as_of: str = "2026-01-01", config: LotConfig = LotConfig()) -> pd.DataFrame:
    member = make_member("P1", events=events)
    as_of_s = as_of_series(member, as_of)
    diseases = pd.Series([disease], index=as_of_s.index, dtype=object)
    return derive_lines(clip_to_as_of(member.events, as_of_s), diseases, as_of_s, CODES, config)


def monthly(start: str, generic: str, months: int, supply: int = 28, every_days: int = 28) -> list:
    return [fill(d, generic, supply) for d in every(start, months, every_days)]


def beam_asct(day0: str) -> list:
    d = pd.Timestamp(day0)
    at = lambda k: (d + pd.Timedelta(days=k)).strftime("%Y-%m-%d")  # noqa: E731
    return [drug(at(0), "carmustine"), drug(at(1), "etoposide"), drug(at(2), "cytarabine"), drug(at(5), "melphalan"), proc(at(7), "38241")]


# --- shape -------------------------------------------------------------------------------------


def test_output_has_exactly_the_documented_columns_and_types():
    """The frame has the agreed columns in order, with dates, lists and booleans typed as such."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 6, 21))
    assert tuple(out.columns) == LINE_COLUMNS
    assert str(out["start_date"].dtype) == "datetime64[s]"
    assert out["drugs"].iloc[0] == sorted(out["drugs"].iloc[0])
    assert out["includes_sct"].dtype == bool and out["is_car_t"].dtype == bool
    assert set(out["end_reason"]) <= {"next_line", "gap", "death", "end_of_data", "car_t"}


def test_empty_history_gives_empty_frame_with_columns():
    """A member without events has no lines, and the empty frame still has every column."""
    out = lines_for([])
    assert out.empty and tuple(out.columns) == LINE_COLUMNS


def test_r_chop_is_one_line_named_r_chop():
    """Six cycles of R-CHOP are one line, named from regimens.csv, ending at the last dose."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 6, 21) + [fill("2024-01-01", "prednisone", 5)])
    assert len(out) == 1
    row = out.iloc[0]
    assert row["regimen"] == "R-CHOP"
    assert row["drugs"] == ["cyclophosphamide", "doxorubicin", "prednisone", "rituximab", "vincristine"]
    assert row["start_date"] == pd.Timestamp("2024-01-01")
    assert row["last_admin_date"] == pd.Timestamp("2024-04-15")
    assert row["end_reason"] == "gap"
    assert set(row["drug_classes"]) >= {"anti_cd20", "anthracycline", "alkylator"}


def test_line_still_open_at_as_of_ends_with_end_of_data():
    """A line whose last dose is within the gap of as_of is reported as end_of_data."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 3, 21), as_of="2024-03-01")
    assert out["end_reason"].tolist() == ["end_of_data"]


# --- the regimen window, the gap, new drugs ------------------------------------------------------


def test_delayed_cycle_stays_in_the_line():
    """A cycle delayed by two weeks (35 days between doses) is not a new line."""
    days = ["2024-01-01", "2024-01-22", "2024-02-12", "2024-03-18", "2024-04-08"]
    out = lines_for([drug(d, g) for d in days for g in R_CHOP])
    assert len(out) == 1


def test_restart_after_more_than_the_gap_is_a_new_line():
    """The same regimen restarted after more than 90 days without treatment starts line 2."""
    out = lines_for(regimen("2024-01-01", ["bendamustine", "rituximab"], 3, 28) + regimen("2024-08-01", ["bendamustine", "rituximab"], 3, 28), disease="MZL")
    assert out["line_number"].tolist() == [1, 2]
    assert out["end_reason"].tolist()[0] == "gap"


def test_gap_of_exactly_ninety_days_keeps_the_line():
    """The gap closes a line only when MORE than 90 days pass after the last covered day."""
    out = lines_for([drug("2024-01-01", "bendamustine"), drug("2024-03-31", "bendamustine")], disease="MZL")
    assert len(out) == 1
    out = lines_for([drug("2024-01-01", "bendamustine"), drug("2024-04-01", "bendamustine")], disease="MZL")
    assert len(out) == 2


def test_new_drug_after_the_window_starts_a_new_line():
    """A drug not in the regimen, first given after the 28-day window, starts the next line."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 3, 21) + regimen("2024-03-10", ["gemcitabine", "oxaliplatin", "rituximab"], 2, 14))
    assert out["line_number"].tolist() == [1, 2]
    assert out["end_reason"].iloc[0] == "next_line"
    assert out["regimen"].iloc[1] == "R-GemOx"
    assert out["end_date"].iloc[0] == pd.Timestamp("2024-02-12")


def test_drug_added_inside_the_window_joins_the_regimen():
    """Drugs started within 28 days of the first drug are one regimen (obinutuzumab 7 days before glofitamab)."""
    out = lines_for([drug("2024-01-01", "obinutuzumab")] + regimen("2024-01-08", ["glofitamab"], 6, 21))
    assert len(out) == 1
    assert out["regimen"].iloc[0] == "Glofitamab"


def test_drug_dropped_from_the_combination_stays_in_the_line():
    """Stopping vincristine after cycle 3 (R-CHP for cycles 4-6) does not start a line."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 3, 21) + regimen("2024-03-04", ["rituximab", "cyclophosphamide", "doxorubicin"], 3, 21))
    assert len(out) == 1


def test_biosimilar_switch_mid_regimen_is_the_same_drug():
    """Rituximab-abbs (Q5115) from cycle 4 is rituximab for lines: one line, one rituximab."""
    chop = ["cyclophosphamide", "doxorubicin", "vincristine"]
    out = lines_for(regimen("2024-01-01", ["J9312", *chop], 3, 21) + regimen("2024-03-04", ["Q5115", *chop], 3, 21))
    assert len(out) == 1
    assert out["drugs"].iloc[0].count("rituximab") == 1
    assert out["regimen"].iloc[0] == "R-CHOP"


def test_cisplatin_to_carboplatin_switch_is_a_substitution():
    """R-DHAP switched to carboplatin after the window (R-DHAC) stays one line."""
    dhap = regimen("2024-01-01", ["rituximab", "dexamethasone", "cytarabine", "cisplatin"], 1, 21)
    dhac = regimen("2024-02-12", ["rituximab", "dexamethasone", "cytarabine", "carboplatin"], 2, 21)
    out = lines_for(dhap + dhac)
    assert len(out) == 1
    assert out["regimen"].iloc[0] == "R-DHAP"


def test_exact_regimen_names_beat_substitutions():
    """Gemcitabine + oxaliplatin + rituximab is R-GemOx, not R-GDP with a platinum substitution."""
    out = lines_for(regimen("2024-01-01", ["rituximab", "gemcitabine", "oxaliplatin"], 4, 14))
    assert out["regimen"].iloc[0] == "R-GemOx"


def test_unmatched_drug_set_has_no_regimen_name():
    """A combination no regimen explains keeps its drugs but gets a missing regimen name."""
    out = lines_for(regimen("2024-01-01", ["rituximab", "bortezomib"], 3, 21))
    assert pd.isna(out["regimen"].iloc[0])


def test_unknown_disease_uses_default_parameters_and_no_regimen_name():
    """Without a disease the default parameters apply and no regimen is named."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 6, 21), disease=None)
    assert len(out) == 1 and pd.isna(out["regimen"].iloc[0])


# --- what never starts a line -------------------------------------------------------------------


def test_steroids_alone_never_start_a_line():
    """Dexamethasone and prednisone without an anticancer drug are not a line."""
    out = lines_for([drug(d, "dexamethasone") for d in every("2024-01-01", 10, 7)] + [fill("2024-03-01", "prednisone", 30)])
    assert out.empty


def test_pre_phase_steroids_are_part_of_line_one():
    """Prednisone given days before R-CHOP is in line 1's drugs; the line still starts with R-CHOP."""
    out = lines_for([fill("2023-12-26", "prednisone", 7)] + regimen("2024-01-01", R_CHOP, 6, 21))
    assert len(out) == 1
    assert "prednisone" in out["drugs"].iloc[0]
    assert out["start_date"].iloc[0] == pd.Timestamp("2024-01-01")


def test_supportive_drugs_and_unknown_ndcs_never_start_a_line():
    """G-CSF, mesna, tocilizumab and a non-catalog NDC (ondansetron) are not therapy."""
    out = lines_for([drug("2024-01-01", "pegfilgrastim"), drug("2024-01-02", "mesna"), drug("2024-01-03", "tocilizumab"), fill("2024-01-04", "ondansetron", 10)])
    assert out.empty


def test_radiation_alone_is_not_a_systemic_line():
    """Radiation treatment codes never make a line of systemic therapy."""
    out = lines_for([radiation(d) for d in every("2024-01-01", 20, 1)] + [proc("2024-01-01", "DW0Z3ZZ", "icd10pcs")])
    assert out.empty


def test_noc_code_alone_never_starts_a_line_but_keeps_one_open():
    """J9999 names no drug: alone it is no line; inside a line it counts as treatment for the gap."""
    assert lines_for([drug("2024-01-01", "J9999")]).empty
    out = lines_for([drug("2024-01-01", "bendamustine"), drug("2024-03-20", "J9999"), drug("2024-06-10", "bendamustine")], disease="MZL")
    assert len(out) == 1 and out["drugs"].iloc[0] == ["bendamustine"]


def test_conditioning_agent_without_transplant_never_starts_a_line():
    """Melphalan (counts_as_line no) alone is not a line."""
    assert lines_for([drug("2024-01-01", "melphalan")], disease="MM").empty


# --- continuous oral therapy ---------------------------------------------------------------------


def test_treatment_holiday_on_continuous_oral_therapy_keeps_the_line():
    """Ibrutinib held 106 days after the last supply ran out (< CLL gap of 120) is one line."""
    events = monthly("2024-01-01", "ibrutinib", 6) + monthly("2024-09-30", "ibrutinib", 6)
    out = lines_for(events, disease="CLL_SLL")
    assert len(out) == 1
    assert out["end_date"].iloc[0] == pd.Timestamp("2024-09-30") + pd.Timedelta(days=5 * 28 + 27)
    assert len(lines_for(events, disease="CLL_SLL", config=LotConfig(overrides={}))) == 2


def test_long_holiday_on_oral_therapy_is_a_new_line():
    """A restart more than the gap after the supply ran out is a new line."""
    events = monthly("2024-01-01", "ibrutinib", 6) + monthly("2025-01-01", "ibrutinib", 3)
    out = lines_for(events, disease="CLL_SLL")
    assert out["line_number"].tolist() == [1, 2]
    assert out["end_reason"].iloc[0] == "gap"


def test_enrollment_break_during_continuous_oral_therapy_does_not_split_the_line():
    """Acalabrutinib with a 4-month plan switch in between: the unseen months are not a treatment gap."""
    treated = monthly("2022-01-03", "acalabrutinib", 6) + monthly("2022-11-07", "acalabrutinib", 4)
    spans = [enrollment("2021-01-01", "2022-06-30"), enrollment("2022-11-01", "2025-12-31")]
    out = lines_for(treated + spans, disease="MCL")
    assert out["line_number"].tolist() == [1]
    assert out["drugs"].iloc[0] == ["acalabrutinib"]
    # the same history with continuous enrollment: 4 months without a fill is a > 90-day gap
    continuous = lines_for(treated + [enrollment("2021-01-01", "2025-12-31")], disease="MCL")
    assert continuous["line_number"].tolist() == [1, 2]
    assert continuous["end_reason"].iloc[0] == "gap"


def test_a_gap_while_enrolled_still_closes_the_line_around_an_enrollment_break():
    """Only the unenrolled days are discounted: a long enrolled gap plus a short break is still a new line."""
    treated = monthly("2022-01-03", "acalabrutinib", 3) + monthly("2022-12-05", "acalabrutinib", 3)
    spans = [enrollment("2021-01-01", "2022-09-30"), enrollment("2022-11-01", "2025-12-31")]
    assert lines_for(treated + spans, disease="MCL")["line_number"].tolist() == [1, 2]


def test_days_supply_covers_the_line():
    """A 90-day fill keeps the line open for 90 days: a refill 150 days later is the same line."""
    out = lines_for([fill("2024-01-01", "venetoclax", 90), fill("2024-05-30", "venetoclax", 30)], disease="CLL_SLL")
    assert len(out) == 1


def test_ibrutinib_then_venetoclax_is_two_lines():
    """Switching from a BTK inhibitor to a BCL-2 inhibitor starts line 2."""
    out = lines_for(monthly("2024-01-01", "ibrutinib", 12) + monthly("2025-01-01", "venetoclax", 6), disease="CLL_SLL")
    assert out["line_number"].tolist() == [1, 2]
    assert out["end_reason"].iloc[0] == "next_line"
    assert out["drugs"].tolist() == [["ibrutinib"], ["venetoclax"]]


def test_ibrutinib_to_acalabrutinib_is_an_intolerance_switch():
    """A switch among covalent BTK inhibitors stays in the line (documented choice)."""
    out = lines_for(monthly("2024-01-01", "ibrutinib", 3) + monthly("2024-03-25", "acalabrutinib", 6), disease="CLL_SLL")
    assert len(out) == 1
    assert out["drugs"].iloc[0] == ["acalabrutinib", "ibrutinib"]


def test_covalent_btki_to_pirtobrutinib_is_a_new_line():
    """A switch to pirtobrutinib is read as progression: a new line."""
    out = lines_for(monthly("2024-01-01", "ibrutinib", 3) + monthly("2024-03-25", "pirtobrutinib", 6), disease="MCL")
    assert len(out) == 2


# --- maintenance ---------------------------------------------------------------------------------


def test_rituximab_maintenance_stays_in_the_induction_line():
    """Rituximab every 8 weeks after BR induction in FL is maintenance of line 1."""
    events = regimen("2024-01-01", ["bendamustine", "rituximab"], 6, 28) + regimen("2024-07-15", ["rituximab"], 8, 56)
    out = lines_for(events, disease="FL")
    assert len(out) == 1
    assert bool(out["maintenance"].iloc[0])
    assert out["regimen"].iloc[0] == "BR"


def test_myeloma_lenalidomide_maintenance_after_asct_is_line_one():
    """VRd induction, melphalan + ASCT and lenalidomide maintenance are one line (Rajkumar 2015)."""
    events = (
        regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21)
        + monthly("2024-01-01", "lenalidomide", 4, supply=21)
        + [drug("2024-05-20", "melphalan"), proc("2024-05-22", "38241")]
        + monthly("2024-08-01", "lenalidomide", 12, supply=21)
    )
    out = lines_for(events, disease="MM")
    assert len(out) == 1
    row = out.iloc[0]
    assert row["includes_sct"] and row["includes_auto_sct"] and row["maintenance"]
    assert row["regimen"] == "VRd (RVd)"


def test_unplanned_lenalidomide_six_months_after_asct_is_a_new_line():
    """Lenalidomide first started six months after ASCT is an unplanned start: line 2 (Rajkumar 2015)."""
    events = regimen("2024-01-01", ["bortezomib", "cyclophosphamide", "dexamethasone"], 4, 21) + [
        drug("2024-04-20", "melphalan"),
        proc("2024-04-22", "38241"),
    ] + monthly("2024-10-22", "lenalidomide", 6, supply=21)
    out = lines_for(events, disease="MM")
    assert out["line_number"].tolist() == [1, 2]


@pytest.mark.parametrize("days_after_asct", [95, 110, 120])
def test_myeloma_lenalidomide_maintenance_around_day_100_after_asct_stays_in_line_one(days_after_asct):
    """VRd, ASCT, then lenalidomide maintenance from day +95..+120 (recovery from ASCT) is still one line."""
    start = (pd.Timestamp("2024-05-22") + pd.Timedelta(days=days_after_asct)).strftime("%Y-%m-%d")
    events = (
        regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21)
        + monthly("2024-01-01", "lenalidomide", 4, supply=21)
        + [drug("2024-05-20", "melphalan"), proc("2024-05-22", "38241")]
        + monthly(start, "lenalidomide", 6, supply=21)
    )
    out = lines_for(events, disease="MM")
    assert out["line_number"].tolist() == [1]
    assert bool(out["maintenance"].iloc[0])


def test_late_restart_of_a_regimen_maintenance_drug_is_a_new_line():
    """Lenalidomide of the induction regimen restarted 130 days after ASCT is not maintenance (MM limit 120)."""
    events = (
        regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21)
        + monthly("2024-01-01", "lenalidomide", 4, supply=21)
        + [proc("2024-05-22", "38241")]
        + monthly("2024-09-29", "lenalidomide", 6, supply=21)
    )
    out = lines_for(events, disease="MM")
    assert out["line_number"].tolist() == [1, 2]


@pytest.mark.parametrize(("limit", "lines"), [(200, [1]), (150, [1, 2])])
def test_maintenance_limit_after_a_transplant_is_a_per_disease_parameter(limit, lines):
    """Maintenance 180 days after ASCT stays in line 1 only when the disease's post-SCT limit allows it."""
    config = LotConfig(overrides={"MM": {"gap_days": 400, "maintenance_after_sct_max_gap_days": limit}})
    events = (
        regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21)
        + monthly("2024-01-01", "lenalidomide", 4, supply=21)
        + [proc("2024-05-22", "38241")]
        + monthly("2024-11-18", "lenalidomide", 6, supply=21)
    )
    assert lines_for(events, disease="MM", config=config)["line_number"].tolist() == lines
    # the post-induction limit (no transplant) is a separate parameter and stays at 90 days
    no_sct = regimen("2024-01-01", ["bortezomib", "cyclophosphamide", "dexamethasone"], 4, 21)
    no_sct += monthly("2024-06-12", "lenalidomide", 6, supply=21)  # 100 days after the last induction dose
    assert lines_for(no_sct, disease="MM", config=config)["line_number"].tolist() == [1, 2]


def test_frontline_all_phases_are_one_line_and_blinatumomab_after_is_line_two():
    """Drugs added between planned ALL phases stay in line 1; relapse blinatumomab starts line 2."""
    events = (
        regimen("2024-01-01", ["vincristine", "daunorubicin", "pegaspargase", "dexamethasone"], 4, 7)
        + regimen("2024-02-12", ["cyclophosphamide", "cytarabine"], 2, 14)
        + regimen("2024-03-25", ["methotrexate"], 2, 14)
        + monthly("2024-04-22", "mercaptopurine", 10)
        + regimen("2025-06-01", ["blinatumomab"], 3, 42)
    )
    out = lines_for(events, disease="B_ALL")
    assert out["line_number"].tolist() == [1, 2]
    assert out["drugs"].iloc[1] == ["blinatumomab"]


def test_blinatumomab_planned_breaks_do_not_break_the_line():
    """Blinatumomab continuation (28 days on, 56 off) is one line because each dose covers 28 days."""
    events = regimen("2024-01-01", ["blinatumomab"], 2, 42) + regimen("2024-03-25", ["blinatumomab"], 3, 84)
    assert len(lines_for(events, disease="B_ALL")) == 1
    strict = LotConfig(infusion_cover_days={}, overrides={"B_ALL": {"gap_days": 60}})
    assert len(lines_for(events, disease="B_ALL", config=strict)) > 1


# --- transplant ----------------------------------------------------------------------------------


def test_salvage_beam_and_asct_are_one_line():
    """R-ICE, BEAM conditioning and ASCT form one salvage line named R-ICE (BEAM drugs listed)."""
    events = regimen("2024-01-01", R_CHOP, 6, 21) + regimen("2024-09-01", R_ICE, 2, 21) + beam_asct("2024-10-15")
    out = lines_for(events)
    assert out["line_number"].tolist() == [1, 2]
    line2 = out.iloc[1]
    assert line2["includes_sct"] and line2["includes_auto_sct"] and not line2["includes_allo_sct"]
    assert line2["regimen"] == "R-ICE"
    assert {"carmustine", "melphalan", "cytarabine"} <= set(line2["drugs"])


def test_asct_coded_by_pcs_or_drg_is_recognised():
    """ICD-10-PCS 30243G0 and MS-DRG 016 both mark the autologous transplant."""
    base = regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21)
    for sct in ([proc("2024-04-10", "30243G0", "icd10pcs")], stay("2024-04-09", "2024-04-30", drg="016")):
        out = lines_for(base + sct, disease="MM")
        assert len(out) == 1 and out["includes_auto_sct"].iloc[0]


def test_transplant_long_after_induction_is_its_own_line():
    """A second ASCT a year after the first (not a planned tandem) is a new line."""
    events = regimen("2024-01-01", ["bortezomib", "dexamethasone"], 4, 21) + [proc("2024-04-10", "38241"), proc("2025-06-01", "38241")]
    out = lines_for(events, disease="MM")
    assert out["line_number"].tolist() == [1, 2]
    assert out["includes_sct"].tolist() == [True, True]


def test_allogeneic_transplant_is_flagged_separately():
    """Allogeneic SCT (CPT 38240) soon after induction joins the line and is flagged allo."""
    out = lines_for(regimen("2024-01-01", ["blinatumomab"], 2, 42) + [proc("2024-04-01", "38240")], disease="B_ALL")
    assert len(out) == 1 and out["includes_allo_sct"].iloc[0] and not out["includes_auto_sct"].iloc[0]


# --- CAR T ---------------------------------------------------------------------------------------


def car_t_history() -> list:
    return (
        regimen("2024-01-01", R_CHOP, 6, 21)
        + regimen("2024-08-01", R_ICE, 3, 21)
        + [proc("2024-11-01", "38225")]
        + regimen("2024-11-10", ["polatuzumab vedotin", "bendamustine", "rituximab"], 1, 21)
        + [drug("2024-11-27", "fludarabine"), drug("2024-11-27", "cyclophosphamide"), drug("2024-11-29", "fludarabine")]
        + [drug("2024-12-02", "Q2041"), proc("2024-12-02", "XW033C3", "icd10pcs"), stay("2024-12-02", "2024-12-12", drg="018")]
    )


def test_car_t_is_one_line_dated_from_infusion_with_bridging_and_flu_cy_folded_in():
    """Apheresis, bridging pola-BR and Flu/Cy belong to the CAR T line dated from the infusion."""
    out = lines_for(car_t_history())
    assert out["line_number"].tolist() == [1, 2, 3]
    cart = out.iloc[2]
    assert cart["is_car_t"] and cart["start_date"] == pd.Timestamp("2024-12-02")
    assert cart["apheresis_date"] == pd.Timestamp("2024-11-01")
    assert {"axicabtagene ciloleucel", "polatuzumab vedotin", "fludarabine", "cyclophosphamide"} <= set(cart["drugs"])
    assert cart["regimen"] == "CAR-T 3L+ (axi-cel, tisa-cel, liso-cel)"
    assert out["end_reason"].iloc[1] == "car_t"
    assert not cart["includes_sct"]  # DRG 016/018 next to the infusion is not a transplant


def test_flu_cy_before_car_t_without_apheresis_is_lymphodepletion():
    """Flu/Cy in the 14 days before an infusion is not a line even without an apheresis code."""
    events = regimen("2024-01-01", R_CHOP, 6, 21) + [drug("2024-09-01", "fludarabine"), drug("2024-09-01", "cyclophosphamide"), drug("2024-09-06", "Q2054")]
    out = lines_for(events)
    assert out["line_number"].tolist() == [1, 2]
    assert out["is_car_t"].tolist() == [False, True]
    assert out["drugs"].iloc[1] == ["cyclophosphamide", "fludarabine", "lisocabtagene maraleucel"]
    assert out["regimen"].iloc[1] == "CAR-T 2L (axi-cel or liso-cel)"


def test_drg_018_alone_is_not_car_t():
    """MS-DRG 018 also groups other immunotherapies: without a CAR T code it makes no line."""
    assert lines_for(stay("2024-03-01", "2024-03-10", drg="018")).empty


def test_lifileucel_pcs_code_is_not_car_t():
    """XW033L7 (lifileucel) is not a CAR T infusion."""
    assert lines_for([proc("2024-03-01", "XW033L7", "icd10pcs")]).empty


def test_pcs_only_infusion_is_a_car_t_line_without_product():
    """An ICD-10-PCS CAR T code alone dates a CAR T line; the product (and regimen) stay unknown."""
    out = lines_for([proc("2024-03-01", "XW033C3", "icd10pcs")])
    assert out["is_car_t"].tolist() == [True] and pd.isna(out["regimen"].iloc[0])
    assert "car_t" in out["drug_classes"].iloc[0]


def test_bridging_after_apheresis_before_infusion_adds_no_line():
    """As of a date between apheresis and infusion, bridging therapy is not counted as a line."""
    out = lines_for(car_t_history(), as_of="2024-11-20")
    assert out["line_number"].tolist() == [1, 2]
    assert not out["is_car_t"].any()


def test_drugs_after_car_t_start_a_new_line():
    """Therapy after a CAR T infusion (post-CAR T relapse) is the next line."""
    out = lines_for([drug("2024-03-01", "Q2041")] + regimen("2024-05-01", ["glofitamab"], 3, 21))
    assert out["line_number"].tolist() == [1, 2]
    assert out["end_reason"].iloc[0] == "next_line"


# --- as-of discipline and death ------------------------------------------------------------------


def test_events_after_as_of_do_not_matter_once_clipped():
    """Clipped to as_of, a history with later salvage therapy gives the same lines as without it."""
    base = regimen("2024-01-01", R_CHOP, 6, 21)
    later = base + regimen("2024-06-01", R_ICE, 2, 21) + [death("2024-09-01")]
    a = lines_for(base, as_of="2024-05-15")
    b = lines_for(later, as_of="2024-05-15")
    pd.testing.assert_frame_equal(a, b)
    assert a["end_reason"].iloc[0] == "end_of_data"


def test_death_before_as_of_ends_the_line_with_death():
    """A member who dies while on a line has end_reason death and the line ends by the death date."""
    events = monthly("2024-01-01", "lenalidomide", 6) + [death("2024-06-20")]
    out = lines_for(events, disease="MM")
    assert out["end_reason"].tolist() == ["death"]
    assert out["end_date"].iloc[0] <= pd.Timestamp("2024-06-20")


def test_claims_after_death_are_ignored():
    """Drug claims dated after a recorded death never start a line."""
    out = lines_for(regimen("2024-01-01", R_CHOP, 2, 21) + [death("2024-02-01")] + regimen("2024-05-01", R_ICE, 1, 21))
    assert out["line_number"].tolist() == [1]


def test_end_date_is_capped_at_as_of():
    """A fill whose supply runs past as_of ends the line at as_of."""
    out = lines_for([fill("2024-01-01", "ibrutinib", 90)], disease="CLL_SLL", as_of="2024-02-01")
    assert out["end_date"].iloc[0] == pd.Timestamp("2024-02-01")


# --- bad input -----------------------------------------------------------------------------------


def test_member_without_as_of_is_an_error():
    """Events of a member missing from as_of are refused, naming as_of."""
    member = make_member("P1", events=regimen("2024-01-01", R_CHOP, 1, 21))
    with pytest.raises(ValueError, match="as_of"):
        derive_lines(member.events, pd.Series(dtype=object), as_of_series(make_member("P2"), "2025-01-01"), CODES)


def test_duplicated_as_of_index_is_an_error():
    """A person with two as_of dates is ambiguous and refused."""
    member = make_member("P1", events=regimen("2024-01-01", R_CHOP, 1, 21))
    as_of = pd.Series(pd.to_datetime(["2025-01-01", "2025-02-01"]), index=["P1", "P1"])
    with pytest.raises(ValueError, match="duplicated"):
        derive_lines(member.events, pd.Series(dtype=object), as_of, CODES)


def test_config_rejects_unknown_override_and_drug_names():
    """Misspelt parameter or drug names in the configuration fail loudly instead of being ignored."""
    with pytest.raises(ValueError, match="gap_dayz"):
        LotConfig(overrides={"MM": {"gap_dayz": 10}})
    with pytest.raises(ValueError, match="ibrutinob"):
        lines_for([], config=LotConfig(substitution_groups=(frozenset({"ibrutinob", "acalabrutinib"}),)))
    with pytest.raises(ValueError, match="XX"):
        lines_for([], config=LotConfig(maintenance_drugs={"XX": frozenset({"rituximab"})}))


def test_config_is_hashable_and_equal_by_value():
    """Two configurations with the same parameters are equal and hash alike (they key caches)."""
    assert LotConfig(overrides={"MM": {"gap_days": 100}}) == LotConfig(overrides={"MM": {"gap_days": 100}})
    assert hash(LotConfig()) == hash(LotConfig())
    assert LotConfig().for_disease("MM", "gap_days") == 120 and LotConfig().for_disease(None, "gap_days") == 90


# --- properties ----------------------------------------------------------------------------------

DISEASE_CHOICES = [None, "LBCL", "FL", "MCL", "CLL_SLL", "B_ALL", "MM"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=histories("P1"), seed=st.integers(0, 2**31), disease=st.sampled_from(DISEASE_CHOICES))
def test_property_shuffling_rows_changes_nothing(rows, seed, disease):
    """Lines depend on the events, not on their row order."""
    as_of = pd.Series([pd.Timestamp("2025-06-30")], index=["P1"]).astype("datetime64[s]")
    dis = pd.Series([disease], index=["P1"], dtype=object)
    events = frame(rows)
    shuffled = events.sample(frac=1.0, random_state=seed % (2**32)).reset_index(drop=True)
    pd.testing.assert_frame_equal(derive_lines(events, dis, as_of, CODES), derive_lines(shuffled, dis, as_of, CODES))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=histories("P1"), b=histories("P2"), c=histories("P3"), disease=st.sampled_from(DISEASE_CHOICES))
def test_property_member_alone_equals_member_in_population(a, b, c, disease):
    """A member's lines are identical computed alone or inside a population of other members."""
    as_of = pd.Series(pd.to_datetime(["2025-06-30", "2024-06-30", "2024-01-01"]), index=["P1", "P2", "P3"]).astype("datetime64[s]")
    dis = pd.Series([disease, "MM", None], index=["P1", "P2", "P3"], dtype=object)
    everyone = clip_to_as_of(frame(a + b + c), as_of)
    together = derive_lines(everyone, dis, as_of, CODES)
    alone = derive_lines(clip_to_as_of(frame(a), as_of.iloc[:1]), dis.iloc[:1], as_of.iloc[:1], CODES)
    mine = together[together["person_id"] == "P1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, mine, check_index_type=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=histories("P1"), later=histories("P1"), cut=st.integers(0, 900), disease=st.sampled_from(DISEASE_CHOICES))
def test_property_events_after_as_of_change_nothing_once_clipped(rows, later, cut, disease):
    """Adding any events dated after as_of, then clipping, leaves the lines unchanged."""
    as_of_day = np.datetime64("2023-01-01") + np.timedelta64(cut, "D")
    as_of = pd.Series([as_of_day], index=["P1"]).astype("datetime64[s]")
    dis = pd.Series([disease], index=["P1"], dtype=object)
    shifted = [{**r, "date": as_of_day + np.timedelta64(1 + int((r["date"] - np.datetime64("2023-01-01")) // np.timedelta64(1, "D")), "D")} for r in later]
    base = derive_lines(clip_to_as_of(frame(rows), as_of), dis, as_of, CODES)
    more = derive_lines(clip_to_as_of(frame(rows + shifted), as_of), dis, as_of, CODES)
    pd.testing.assert_frame_equal(base, more)


def test_batch_path_equals_single_member_path():
    """Above the small-input threshold (many members, >4096 rows) the lines equal those computed member by member."""
    rng = np.random.default_rng(3)
    members = []
    for i in range(120):
        start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        s = start.strftime("%Y-%m-%d")
        later = (start + pd.Timedelta(days=int(rng.integers(100, 400)))).strftime("%Y-%m-%d")
        kind = i % 4
        if kind == 0:
            events = regimen(s, R_CHOP, int(rng.integers(2, 7)), 21) + regimen(later, R_ICE, 2, 21) + [dx(s, "C83.38")] * 3
        elif kind == 1:
            events = monthly(s, "ibrutinib", int(rng.integers(3, 12))) + monthly(later, "venetoclax", 4) + [dx(s, "C91.10")] * 3
        elif kind == 2:
            events = regimen(s, ["bortezomib", "dexamethasone"], 4, 21) + [proc(later, "38241")] + monthly(later, "lenalidomide", 5)
        else:
            events = regimen(s, ["bendamustine", "rituximab"], 6, 28) + [proc(later, "38225"), drug(later, "fludarabine")]
        members.append(make_member(f"M{i:03d}", events=events + [dx(s, "I10")] * 20))
    _, everyone = make_population(members)
    assert len(everyone) > 4096
    as_of = as_of_series(members, "2025-01-01")
    diseases = pd.Series(["LBCL", "CLL_SLL", "MM", "FL"] * 30, index=as_of.index, dtype=object)
    together = derive_lines(everyone, diseases, as_of, CODES)
    for m in members[:12]:
        alone = derive_lines(m.events, diseases.loc[[m.person_id]], as_of.loc[[m.person_id]], CODES)
        mine = together[together["person_id"] == m.person_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, mine)
    assert together.groupby("person_id").size().min() >= 1


def test_unknown_codes_and_rows_without_person_or_date_are_ignored():
    """Unknown codes, a missing person_id or a missing date never create or change a line."""
    member = make_member("P1", events=regimen("2024-01-01", R_CHOP, 6, 21))
    junk = conform_events(
        pd.DataFrame(
            {
                "person_id": ["P1", None, "P1", "P1"],
                "kind": ["drug_admin", "drug_admin", "drug_admin", "procedure"],
                "date": [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-08-01"), pd.NaT, pd.Timestamp("2024-09-01")],
                "code_system": ["hcpcs", "hcpcs", "hcpcs", "hcpcs"],
                "code": ["ZZZZZ", "J9045", "J9045", None],
            }
        )
    )
    as_of = as_of_series(member, "2025-01-01")
    dis = pd.Series(["LBCL"], index=as_of.index)
    clean = derive_lines(member.events, dis, as_of, CODES)
    dirty = derive_lines(pd.concat([member.events, junk], ignore_index=True), dis, as_of, CODES)
    pd.testing.assert_frame_equal(clean, dirty)


def test_apheresis_without_infusion_releases_bridging_after_the_lookback():
    """If no infusion follows apheresis within 180 days, the drugs given after it are ordinary lines again."""
    events = regimen("2024-01-01", R_CHOP, 6, 21) + [proc("2024-08-01", "38225")] + regimen("2024-08-10", ["glofitamab"], 14, 21)
    assert lines_for(events, as_of="2024-10-01")["line_number"].tolist() == [1]
    late = lines_for(events, as_of="2025-03-01")
    assert late["line_number"].tolist() == [1, 2]
    assert late["start_date"].iloc[1] == pd.Timestamp("2024-08-10") and late["drugs"].iloc[1] == ["glofitamab"]


def test_maintenance_regimens_never_name_a_line():
    """Lenalidomide + dexamethasone is not named "Lenalidomide maintenance": maintenance is a phase, not a line."""
    out = lines_for(monthly("2024-01-01", "lenalidomide", 6) + [fill("2024-01-01", "dexamethasone", 28)], disease="MM")
    assert len(out) == 1 and pd.isna(out["regimen"].iloc[0])


def test_members_come_out_sorted_by_person_id_whatever_the_as_of_order():
    """Lines are ordered by person_id then line number, not by the order of the as_of index."""
    members = [make_member(pid, events=regimen("2024-01-01", R_CHOP, 2, 21)) for pid in ("P3", "P1", "P2")]
    _, everyone = make_population(members)
    as_of = as_of_series(members, "2025-01-01")
    assert list(as_of.index) == ["P3", "P1", "P2"]
    diseases = pd.Series(["LBCL"] * 3, index=as_of.index, dtype=object)
    out = derive_lines(everyone, diseases, as_of, CODES)
    assert list(out["person_id"]) == ["P1", "P2", "P3"]


def test_column_caches_follow_a_new_diseases_series_on_the_same_events():
    """Reusing one columns_of(events) with another diseases Series gives that Series' answer, not a cached one."""
    member = make_member("P1", events=monthly("2024-01-01", "lenalidomide", 4) + regimen("2024-03-01", ["bortezomib", "dexamethasone"], 2, 21))
    as_of = as_of_series(member, "2025-01-01")
    events = columns_of(member.events)
    for disease in ("MM", None, "LBCL", "MM"):
        dis = pd.Series([disease], index=as_of.index, dtype=object)
        pd.testing.assert_frame_equal(derive_lines(events, dis, as_of, CODES), derive_lines(member.events, dis, as_of, CODES))
