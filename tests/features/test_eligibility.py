"""CAR T label eligibility: every rule, every trap, with the reasons the engine gives."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from features.eligibility import ELIGIBILITY_COLUMNS, assess_eligibility, load_rules

TREATMENT_DEFAULTS = {
    "prior_lines": 0,
    "line1_start": pd.NaT,
    "line1_end": pd.NaT,
    "line2_start": pd.NaT,
    "days_line1_end_to_line2_start": np.nan,
    "early_relapse": pd.NA,
    "primary_refractory": pd.NA,
    "progressed_after_last_line": False,
    "progression_evidence": "",
    "exposed_anti_cd20": False,
    "exposed_anthracycline": False,
    "exposed_btki": False,
    "exposed_bcl2i": False,
    "exposed_imid": False,
    "exposed_pi": False,
    "exposed_anti_cd38": False,
    "exposed_bispecific": False,
    "exposed_alkylator": False,
    **{f"failed_{c}": False for c in ("anti_cd20", "anthracycline", "btki", "bcl2i", "imid", "pi", "anti_cd38", "bispecific", "alkylator")},
    "triple_class_exposed": False,
    "lenalidomide_refractory": pd.NA,
    "prior_asct": False,
    "car_t_received": False,
    "car_t_date": pd.NaT,
    "line1_regimen": "",
    "days_since_last_line_start": np.nan,
    "days_since_last_treatment": np.nan,
}


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def assess(rules, members: list[dict]) -> pd.DataFrame:
    """Build persons/cohort/treatment/as_of frames from compact member dicts and assess them."""
    persons = pd.DataFrame(
        {
            "person_id": [m["id"] for m in members],
            "birth_date": pd.to_datetime([m.get("born", "1960-01-01") for m in members]),
            "death_date": pd.to_datetime([m.get("died") for m in members]),
        }
    )
    cohort = pd.DataFrame(
        {
            "person_id": [m["id"] for m in members],
            "in_cohort": [m.get("in_cohort", True) for m in members],
            "disease": pd.array([m.get("disease") for m in members], dtype="string"),
            "subtype": pd.array([m.get("subtype") for m in members], dtype="string"),
            "first_dx_date": pd.to_datetime(["2020-01-01"] * len(members)),
            "exclusion": pd.array([m.get("exclusion") for m in members], dtype="string"),
            "evidence": pd.array([m.get("evidence", "2 outpatient claims with LBCL 45 days apart") for m in members], dtype="string"),
            "lineage_known": pd.array([m.get("lineage_known") for m in members], dtype="boolean"),
        }
    )
    rows = []
    for m in members:
        row = dict(TREATMENT_DEFAULTS, person_id=m["id"])
        given = m.get("treatment", {})
        # a class given in these compact histories was received in a failed line unless stated otherwise
        row.update({k.replace("exposed_", "failed_", 1): v for k, v in given.items() if k.startswith("exposed_")})
        row.update(given)
        rows.append(row)
    treatment = pd.DataFrame(rows)
    as_of = pd.Series(pd.to_datetime([m.get("as_of", "2025-06-01") for m in members]), index=[m["id"] for m in members])
    return assess_eligibility(persons, cohort, treatment, as_of, rules)


def row(out: pd.DataFrame, person: str, product: str) -> pd.Series:
    hit = out[(out["person_id"] == person) & (out["product"] == product)]
    assert len(hit) == 1
    return hit.iloc[0]


def text(reasons) -> str:
    return " | ".join(reasons)


LBCL_3L = {"prior_lines": 2, "progressed_after_last_line": True, "progression_evidence": "C83.38 after line 2",
           "line1_regimen": "R-CHOP", "exposed_anti_cd20": True, "exposed_anthracycline": True}
AXI, LISO, TISA = "axicabtagene ciloleucel", "lisocabtagene maraleucel", "tisagenlecleucel"
BREXU, OBE, IDE, CILTA = "brexucabtagene autoleucel", "obecabtagene autoleucel", "idecabtagene vicleucel", "ciltacabtagene autoleucel"


def test_rule_file_has_one_rule_per_product_row(rules):
    """The rule file mirrors car_t_products.csv: 20 product x indication rows, 7 products, a version."""
    from features.codelists import load_codelists

    products = load_codelists().products
    assert len(rules.rules) == len(products) == 20
    assert len(rules.products) == 7
    pairs = sorted((r.product_generic, r.disease, r.min_prior_lines, str(r.in_force_from)) for r in rules.rules)
    expected = sorted(zip(products["product_generic"], products["disease"], products["min_prior_lines"].astype(int),
                          products["approval_date"].dt.strftime("%Y-%m-%d")))
    assert pairs == expected
    assert rules.full_version.startswith(rules.version + "+")


def test_output_shape_columns_and_version(rules):
    """One row per member x product with exactly the documented columns and the rules version."""
    out = assess(rules, [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L}, {"id": "b", "in_cohort": False}])
    assert tuple(out.columns) == ELIGIBILITY_COLUMNS
    assert len(out) == 14
    assert set(out["rules_version"]) == {rules.full_version}
    assert list(out["person_id"][:7]) == ["a"] * 7


def test_third_line_lbcl_is_eligible_for_all_three_lbcl_products(rules):
    """DLBCL after 2 lines with progression, age 65: Kymriah, Yescarta and Breyanzi 3L labels apply."""
    out = assess(rules, [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L}])
    for product in (TISA, AXI, LISO):
        r = row(out, "a", product)
        assert r.eligible, (product, r.criteria_missing)
        assert "2 prior lines of systemic therapy" in text(r.criteria_met)
    assert not row(out, "a", IDE).eligible
    assert "multiple myeloma" in text(row(out, "a", IDE).criteria_missing)


def test_seventeen_year_old_with_dlbcl_is_not_eligible(rules):
    """Age below 18 fails every LBCL label and the reason names the limit."""
    out = assess(rules, [{"id": "kid", "born": "2008-03-01", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L}])
    for product in (TISA, AXI, LISO):
        r = row(out, "kid", product)
        assert not r.eligible
        assert "age 17 is below the label minimum of 18" in text(r.criteria_missing)


def test_thirty_year_old_with_b_all(rules):
    """Age 30 exceeds Kymriah's limit of 25, while the adult B-ALL labels (Tecartus, Aucatzyl) apply with lineage unknown."""
    member = {"id": "all30", "born": "1995-01-15", "disease": "B_ALL", "lineage_known": False,
              "treatment": {"prior_lines": 2, "progressed_after_last_line": True}}
    out = assess(rules, [member])
    kymriah = row(out, "all30", TISA)
    assert not kymriah.eligible
    assert "age 30 exceeds the label limit of 25" in text(kymriah.criteria_missing)
    for product in (BREXU, OBE):
        r = row(out, "all30", product)
        assert r.eligible, r.criteria_missing
        assert "B- versus T-lineage" in text(r.criteria_unknown)


def test_b_all_lineage_known_clears_the_unknown(rules):
    """A B-lineage drug in the history turns the lineage criterion into a met one."""
    out = assess(rules, [{"id": "a", "born": "1990-01-01", "disease": "B_ALL", "lineage_known": True,
                          "treatment": {"prior_lines": 1, "progressed_after_last_line": True}}])
    r = row(out, "a", BREXU)
    assert r.eligible and list(r.criteria_unknown) == []
    assert "B-lineage shown" in text(r.criteria_met)


def test_kymriah_b_all_first_relapse_is_not_enough(rules):
    """Kymriah B-ALL needs refractory disease or a second relapse; a first relapse after non-refractory line 1 is missing."""
    out = assess(rules, [{"id": "y", "born": "2010-01-01", "disease": "B_ALL", "lineage_known": True,
                          "treatment": {"prior_lines": 1, "progressed_after_last_line": True, "primary_refractory": False}}])
    r = row(out, "y", TISA)
    assert not r.eligible
    assert "first relapse only" in text(r.criteria_missing)
    out2 = assess(rules, [{"id": "y", "born": "2010-01-01", "disease": "B_ALL", "lineage_known": True,
                           "treatment": {"prior_lines": 2, "progressed_after_last_line": True, "primary_refractory": False}}])
    assert row(out2, "y", TISA).eligible


def test_primary_cns_lymphoma_is_excluded(rules):
    """A member the cohort excluded for PCNSL is not eligible for any LBCL label and the reason says so."""
    out = assess(rules, [{"id": "cns", "in_cohort": False, "disease": "LBCL", "subtype": "PCNSL",
                          "exclusion": "primary CNS lymphoma", "treatment": LBCL_3L}])
    for product in (TISA, AXI, LISO):
        r = row(out, "cns", product)
        assert not r.eligible
        assert "primary CNS lymphoma: excluded from the label" in text(r.criteria_missing)


def test_pcnsl_hidden_in_c8339_is_unknown_not_missing(rules):
    """C83.39 before FY2025 may hide PCNSL: the engine lists it as unknown and still flags eligibility."""
    from features.cohort import PCNSL_UNSEPARABLE

    out = assess(rules, [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L,
                          "evidence": f"inpatient claim with LBCL on 2023-01-01; {PCNSL_UNSEPARABLE}"}])
    r = row(out, "a", AXI)
    assert r.eligible
    assert "primary CNS lymphoma cannot be ruled out" in text(r.criteria_unknown)


def test_second_line_lbcl_early_relapse(rules):
    """Relapse 7 months after first-line R-CHOP satisfies the axi-cel and liso-cel 2L labels."""
    t = {"prior_lines": 2, "progressed_after_last_line": False, "early_relapse": True, "primary_refractory": False,
         "days_line1_end_to_line2_start": 213, "line1_regimen": "R-CHOP"}
    out = assess(rules, [{"id": "e", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": t}])
    axi = row(out, "e", AXI)
    assert axi.eligible
    assert "ZUMA-7" in axi.indication
    assert "relapsed 7 months after first-line R-CHOP" in text(axi.criteria_met)
    liso = row(out, "e", LISO)
    assert liso.eligible and "TRANSFORM" in liso.indication and list(liso.criteria_unknown) == []
    kym = row(out, "e", TISA)
    assert not kym.eligible
    assert "no evidence of progression after line 2" in text(kym.criteria_missing)


def test_second_line_lbcl_late_relapse_needs_two_lines(rules):
    """Relapse 20 months after R-CHOP misses the 12-month 2L labels; liso-cel's PILOT indication applies with transplant ineligibility unknown."""
    t = {"prior_lines": 1, "progressed_after_last_line": True, "progression_evidence": "C83.38 relapse code",
         "early_relapse": False, "primary_refractory": False, "days_line1_end_to_line2_start": np.nan, "line1_regimen": "R-CHOP"}
    out = assess(rules, [{"id": "late", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": t}])
    axi = row(out, "late", AXI)
    assert not axi.eligible
    assert "the label requires relapse within 12 months" in text(axi.criteria_missing) or "at least 2" in text(axi.criteria_missing)
    assert not row(out, "late", TISA).eligible
    liso = row(out, "late", LISO)
    assert liso.eligible
    assert "PILOT" in liso.indication
    assert "transplant ineligibility" in text(liso.criteria_unknown)


def test_exactly_n_lines_without_progression_is_not_eligible(rules):
    """Two lines started but no progression after line 2: not eligible for 3L labels, and the reason says why; the hint says what would change it."""
    t = dict(LBCL_3L, progressed_after_last_line=False, early_relapse=False, primary_refractory=False)
    out = assess(rules, [{"id": "n", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": t}])
    r = row(out, "n", TISA)
    assert not r.eligible
    assert "2 prior lines of systemic therapy but no evidence of progression after line 2" in text(r.criteria_missing)
    assert r.first_eligible_hint == "on progression after line 2"


def test_follicular_lymphoma_after_two_lines(rules):
    """FL after 2 lines with progression: Kymriah and Yescarta FL labels apply (and Breyanzi FL from 2024-05-15)."""
    t = {"prior_lines": 3}
    out = assess(rules, [{"id": "fl", "disease": "FL", "subtype": "FL", "treatment": t, "as_of": "2023-06-01"}])
    assert row(out, "fl", TISA).eligible
    assert row(out, "fl", AXI).eligible
    liso = row(out, "fl", LISO)
    assert not liso.eligible
    assert "label approved 2024-05-15, after the evaluation date 2023-06-01" in text(liso.criteria_missing)
    assert liso.first_eligible_hint == "from 2024-05-15 when this label took effect"


def test_fl_grade_3b_only_fits_breyanzi_lbcl(rules):
    """FL grade 3B is named only in the Breyanzi LBCL label."""
    out = assess(rules, [{"id": "b3", "disease": "LBCL", "subtype": "FL_3B", "treatment": LBCL_3L}])
    assert row(out, "b3", LISO).eligible
    for product in (TISA, AXI):
        r = row(out, "b3", product)
        assert not r.eligible
        assert "FL_3B is not among the histologies this label names" in text(r.criteria_missing)


def test_transformed_fl_fits_lbcl_labels(rules):
    """DLBCL arising from FL is named in all three LBCL labels."""
    out = assess(rules, [{"id": "t", "disease": "LBCL", "subtype": "transformed_FL", "treatment": LBCL_3L}])
    assert all(row(out, "t", p).eligible for p in (TISA, AXI, LISO))


def test_mcl_with_and_without_btk_inhibitor(rules):
    """Breyanzi MCL requires a prior BTKi; Tecartus's label does not, so a missing BTKi is only unknown there."""
    base = {"prior_lines": 2, "progressed_after_last_line": True}
    out = assess(rules, [
        {"id": "with", "disease": "MCL", "subtype": "MCL", "treatment": dict(base, exposed_btki=True)},
        {"id": "without", "disease": "MCL", "subtype": "MCL", "treatment": base},
    ])
    assert row(out, "with", LISO).eligible and row(out, "with", BREXU).eligible
    assert list(row(out, "with", BREXU).criteria_unknown) == []
    no = row(out, "without", LISO)
    assert not no.eligible and "no prior BTK inhibitor" in text(no.criteria_missing)
    tec = row(out, "without", BREXU)
    assert tec.eligible and "no prior BTK inhibitor seen" in text(tec.criteria_unknown)


def test_cll_needs_btki_and_bcl2i(rules):
    """Breyanzi CLL/SLL needs both a BTK inhibitor and a BCL-2 inhibitor after 2 lines."""
    base = {"prior_lines": 2, "progressed_after_last_line": True, "exposed_btki": True}
    out = assess(rules, [
        {"id": "both", "disease": "CLL_SLL", "subtype": "CLL", "treatment": dict(base, exposed_bcl2i=True)},
        {"id": "btk", "disease": "CLL_SLL", "subtype": "CLL", "treatment": base},
    ])
    assert row(out, "both", LISO).eligible
    r = row(out, "btk", LISO)
    assert not r.eligible and "no prior BCL-2 inhibitor" in text(r.criteria_missing)


def test_a_required_class_only_in_the_current_line_is_not_a_prior_class(rules):
    """CLL after 2 failed lines who has just started venetoclax: BCL-2i is not yet prior, so Breyanzi is not met."""
    current = {"prior_lines": 3, "failed_lines": 2, "exposed_btki": True, "exposed_bcl2i": True, "failed_bcl2i": False}
    failed = dict(current, progressed_after_last_line=True, failed_lines=3, failed_bcl2i=True)
    out = assess(rules, [
        {"id": "current", "disease": "CLL_SLL", "subtype": "CLL", "treatment": current},
        {"id": "failed", "disease": "CLL_SLL", "subtype": "CLL", "treatment": failed},
    ])
    now = row(out, "current", LISO)
    assert not now.eligible
    assert "BCL-2 inhibitor only in the current line" in text(now.criteria_missing)
    assert row(out, "failed", LISO).eligible


def test_btki_just_started_is_not_prior_btki_for_mcl(rules):
    """MCL: BR failed, ibrutinib just started: Breyanzi's required prior BTKi is missing, Tecartus's expected one unknown."""
    t = {"prior_lines": 2, "failed_lines": 1, "exposed_btki": True, "failed_btki": False,
         "exposed_anti_cd20": True, "exposed_alkylator": True}
    out = assess(rules, [{"id": "m", "disease": "MCL", "subtype": "MCL", "treatment": t}])
    assert "prior BTK inhibitor" not in text(row(out, "m", BREXU).criteria_met)
    assert "BTK inhibitor only in the current line" in text(row(out, "m", BREXU).criteria_unknown)
    assert not row(out, "m", LISO).eligible


def test_myeloma_before_and_after_2024_label_changes(rules):
    """Triple-class-exposed MM after 2 lines: not eligible under the 2023 (>=4 lines) labels, eligible for Abecma in 2025."""
    t = {"prior_lines": 2, "progressed_after_last_line": True, "exposed_imid": True, "exposed_pi": True,
         "exposed_anti_cd38": True, "lenalidomide_refractory": False}
    out = assess(rules, [{"id": "mm23", "disease": "MM", "treatment": t, "as_of": "2023-06-01"},
                         {"id": "mm25", "disease": "MM", "treatment": t, "as_of": "2025-06-01"}])
    old = row(out, "mm23", IDE)
    assert not old.eligible
    assert "the label requires at least 4" in text(old.criteria_missing)
    new = row(out, "mm25", IDE)
    assert new.eligible and "KarMMa-3" in new.indication
    cilta = row(out, "mm25", CILTA)
    assert not cilta.eligible
    assert "not lenalidomide-refractory" in text(cilta.criteria_missing)


def test_carvykti_2024_one_line_lenalidomide_refractory(rules):
    """One line with PI + IMiD and lenalidomide-refractory meets the 2024 Carvykti label but not the 2023 one."""
    t = {"prior_lines": 1, "progressed_after_last_line": True, "exposed_imid": True, "exposed_pi": True,
         "lenalidomide_refractory": True}
    out = assess(rules, [{"id": "a", "disease": "MM", "treatment": t, "as_of": "2024-06-01"},
                         {"id": "b", "disease": "MM", "treatment": t, "as_of": "2024-03-01"}])
    assert row(out, "a", CILTA).eligible
    assert "lenalidomide-refractory" in text(row(out, "a", CILTA).criteria_met)
    before = row(out, "b", CILTA)
    assert not before.eligible and "at least 4" in text(before.criteria_missing)


def test_superseded_label_is_out_of_force_after_the_change(rules):
    """A >=4-line MM member in 2025 is judged on the current label, never the superseded one."""
    t = {"prior_lines": 5, "exposed_imid": True, "exposed_pi": True, "exposed_anti_cd38": True}
    out = assess(rules, [{"id": "a", "disease": "MM", "treatment": t, "as_of": "2025-01-01"}])
    r = row(out, "a", IDE)
    assert r.eligible and "superseded" not in r.indication


def test_dates_outside_label_window(rules):
    """A 3L LBCL member evaluated in 2016 is before every LBCL label."""
    out = assess(rules, [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "as_of": "2016-06-01"}])
    for product in (TISA, AXI, LISO):
        r = row(out, "a", product)
        assert not r.eligible
        assert "after the evaluation date 2016-06-01" in text(r.criteria_missing)


def test_mzl_from_c830_is_eligible_with_histology_unknown(rules):
    """Breyanzi MZL (Dec 2025) applies after 2 lines; C83.0 leaves MZL vs SLL unknown."""
    t = {"prior_lines": 3}
    out = assess(rules, [{"id": "a", "disease": "MZL", "subtype": "MZL_or_SLL", "treatment": t, "as_of": "2026-01-01"},
                         {"id": "b", "disease": "MZL", "subtype": "MALT", "treatment": t, "as_of": "2025-11-01"}])
    r = row(out, "a", LISO)
    assert r.eligible and "does not separate" in text(r.criteria_unknown)
    assert not row(out, "b", LISO).eligible


def test_not_in_cohort_and_hodgkin_reasons(rules):
    """Members outside the cohort are never eligible and say why."""
    out = assess(rules, [{"id": "none", "in_cohort": False},
                         {"id": "hl", "in_cohort": False, "exclusion": "Hodgkin lymphoma"}])
    assert not out["eligible"].any()
    assert "no qualifying target" in text(row(out, "none", AXI).criteria_missing)
    assert "Hodgkin lymphoma" in text(row(out, "hl", AXI).criteria_missing)


def test_unknown_birth_date_is_unknown_age(rules):
    """No birth date: age is reported unknown, not guessed."""
    out = assess(rules, [{"id": "a", "born": None, "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L}])
    r = row(out, "a", AXI)
    assert r.eligible and "age unknown" in text(r.criteria_unknown)


def test_member_without_treatment_row_has_zero_lines(rules):
    """A cohort member missing from the treatment frame is treated as untreated."""
    persons = pd.DataFrame({"person_id": ["a"], "birth_date": pd.to_datetime(["1960-01-01"])})
    cohort = pd.DataFrame({"person_id": ["a"], "in_cohort": [True], "disease": ["LBCL"], "subtype": ["DLBCL NOS"],
                           "first_dx_date": pd.to_datetime(["2020-01-01"]), "exclusion": [None], "evidence": ["x"],
                           "lineage_known": pd.array([pd.NA], dtype="boolean")})
    treatment = pd.DataFrame([dict(TREATMENT_DEFAULTS, person_id="z")])
    out = assess_eligibility(persons, cohort, treatment, pd.Series(pd.to_datetime(["2025-01-01"]), index=["a"]), rules)
    assert "0 prior lines" in text(row(out, "a", AXI).criteria_missing)


def test_member_alone_equals_member_in_population(rules):
    """Eligibility of a member is identical computed alone or with others."""
    members = [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L},
               {"id": "b", "disease": "MM", "treatment": {"prior_lines": 3}},
               {"id": "c", "in_cohort": False}]
    together = assess(rules, members)
    alone = assess(rules, [members[0]])
    pd.testing.assert_frame_equal(together[together.person_id == "a"].reset_index(drop=True), alone)


def test_prior_car_t_is_reported_unknown(rules):
    """A member who already received CAR T keeps the flag but the re-treatment question is listed as unknown."""
    t = dict(LBCL_3L, car_t_received=True, car_t_date=pd.Timestamp("2024-01-10"))
    out = assess(rules, [{"id": "a", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": t}])
    assert "CAR T already given on 2024-01-10" in text(row(out, "a", AXI).criteria_unknown)


def test_bad_rule_files_are_rejected(tmp_path):
    """Unknown fields, duplicated ids and inverted in-force windows are errors naming the file."""
    good = textwrap.dedent("""
        version: "t"
        rules:
          - {id: a, product_generic: x, brand: X, disease: LBCL, indication: i, min_age: 18, min_prior_lines: 2,
             in_force_from: 2020-01-01, label_status: current, source: s}
    """)
    (tmp_path / "good.yaml").write_text(good)
    assert load_rules(tmp_path / "good.yaml").rules[0].id == "a"
    (tmp_path / "extra.yaml").write_text(good.replace("source: s}", "source: s, surprise: 1}"))
    with pytest.raises(ValueError, match="extra.yaml"):
        load_rules(tmp_path / "extra.yaml")
    (tmp_path / "dup.yaml").write_text(good + good.split("rules:\n")[1])
    with pytest.raises(ValueError, match="duplicated rule id"):
        load_rules(tmp_path / "dup.yaml")
    (tmp_path / "window.yaml").write_text(good.replace("source: s}", "source: s, in_force_to: 2019-01-01}"))
    with pytest.raises(ValueError, match="in_force_to"):
        load_rules(tmp_path / "window.yaml")
    (tmp_path / "disease.yaml").write_text(good.replace("disease: LBCL", "disease: AML"))
    with pytest.raises(ValueError):
        load_rules(tmp_path / "disease.yaml")


def test_one_line_progression_timing_is_bounded_by_as_of(rules):
    """One line plus progression evidence and no line 2: as_of within 12 months of line-1 end proves early relapse; later stays unknown."""
    base = {"prior_lines": 1, "progressed_after_last_line": True, "progression_evidence": "relapse-coded diagnosis",
            "line1_regimen": "R-CHOP", "line1_end": pd.Timestamp("2025-01-01")}
    out = assess(rules, [{"id": "soon", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": base, "as_of": "2025-08-01"},
                         {"id": "later", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": base, "as_of": "2026-06-01"}])
    soon = row(out, "soon", AXI)
    assert soon.eligible and list(soon.criteria_unknown) == []
    assert "relapsed within 12 months of first-line R-CHOP" in text(soon.criteria_met)
    later = row(out, "later", AXI)
    assert later.eligible and "cannot be judged" in text(later.criteria_unknown)


def test_a_member_who_died_before_the_evaluation_date_is_not_eligible(rules):
    """Death on or before as_of makes every product ineligible and says so; a later death does not count."""
    out = assess(rules, [
        {"id": "dead", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "died": "2025-03-01"},
        {"id": "alive", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "died": "2025-09-01"},
    ])
    dead = row(out, "dead", AXI)
    assert not dead.eligible
    assert "died on 2025-03-01" in text(dead.criteria_missing)
    assert not out.loc[out["person_id"] == "dead", "eligible"].any()
    assert row(out, "alive", AXI).eligible


def test_carvykti_with_lenalidomide_refractoriness_unknown_is_flagged_with_the_unknown_named(rules):
    """Lenalidomide refractoriness NA (claims cannot tell) is reported unknown, never silently missing or met."""
    t = {"prior_lines": 1, "progressed_after_last_line": True, "exposed_imid": True, "exposed_pi": True,
         "lenalidomide_refractory": pd.NA}
    cilta = row(assess(rules, [{"id": "a", "disease": "MM", "treatment": t, "as_of": "2024-06-01"}]), "a", CILTA)
    assert cilta.eligible
    assert "lenalidomide refractoriness cannot be judged" in text(cilta.criteria_unknown)
    assert "lenalidomide" not in text(cilta.criteria_missing) + text(cilta.criteria_met)


def test_every_member_alone_equals_itself_in_a_mixed_population(rules):
    """Rule choice, texts and hints do not depend on who else is in the call (diseases, dates and label versions mixed)."""
    mm = {"prior_lines": 1, "progressed_after_last_line": True, "exposed_imid": True, "exposed_pi": True, "lenalidomide_refractory": pd.NA}
    members = [
        {"id": "lbcl21", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "as_of": "2021-06-01"},
        {"id": "lbcl25", "disease": "LBCL", "subtype": "PMBCL", "treatment": LBCL_3L, "as_of": "2025-06-01"},
        {"id": "mm23", "disease": "MM", "treatment": mm, "as_of": "2023-06-01"},
        {"id": "mm25", "disease": "MM", "treatment": mm, "as_of": "2025-06-01"},
        {"id": "all", "disease": "B_ALL", "born": "2010-01-01", "treatment": {"prior_lines": 1, "progressed_after_last_line": True}},
        {"id": "dead", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "died": "2025-01-01"},
        {"id": "pcnsl", "disease": "LBCL", "exclusion": "primary CNS lymphoma", "in_cohort": False},
        {"id": "none", "in_cohort": False},
    ]
    together = assess(rules, members)
    for member in members:
        alone = assess(rules, [member])
        mine = together[together.person_id == member["id"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)


def test_reported_rule_is_in_force_then_fewest_missing_then_fewest_unknown_then_first_listed(tmp_path):
    """Among one product's rules the reported one is in force on the member's date, then has the fewest missing, then the fewest unknown criteria, ties going to the rule listed first."""
    rule = ("  - {{id: {id}, product_generic: x, brand: X, disease: LBCL, indication: {id}, min_age: 18, min_prior_lines: {lines},"
            " in_force_from: {start}, label_status: current, source: s{extra}}}\n")
    text_ = 'version: "t"\nrules:\n' + "".join(
        rule.format(id=i, lines=n, start=start, extra=extra)
        for i, n, start, extra in (
            ("future", 0, "2030-01-01", ""),
            ("unseen", 2, "2020-01-01", ", unobservable: [transplant ineligibility]"),
            ("plain", 2, "2020-01-01", ""),
            ("twin", 2, "2020-01-01", ""),
        )
    )
    (tmp_path / "rules.yaml").write_text(text_)
    custom = load_rules(tmp_path / "rules.yaml")
    members = [
        {"id": "now", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "as_of": "2025-06-01"},
        {"id": "before", "disease": "LBCL", "subtype": "DLBCL NOS", "treatment": LBCL_3L, "as_of": "2019-06-01"},
        {"id": "untreated", "disease": "LBCL", "subtype": "DLBCL NOS", "as_of": "2025-06-01"},
    ]
    together = assess(custom, members)
    assert together["indication"].tolist() == ["plain", "future", "plain"]
    assert together["eligible"].tolist() == [True, False, False]
    for member in members:
        alone = assess(custom, [member])
        pd.testing.assert_frame_equal(together[together.person_id == member["id"]].reset_index(drop=True), alone)
