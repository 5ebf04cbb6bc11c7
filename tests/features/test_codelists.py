"""The packaged code lists parse into exact codes, patterns and generic names that match claims."""

import pandas as pd
import pytest

from features.codelists import load_codelists, normalise_code


@pytest.fixture(scope="module")
def codes():
    return load_codelists()


def test_normalise_code_strips_dots_dashes_and_case():
    """Dotted, lower-case and dashed forms normalise to the dotless upper-case claims form."""
    assert normalise_code("c83.38") == "C8338"
    assert normalise_code(" 0002-8215-01 ") == "0002821501"


def test_version_is_stable_and_changes_with_content(tmp_path, codes):
    """The version is a content hash: same files give the same version, an edit changes it."""
    from features.codelists import CODELIST_DIR, CODELIST_FILES

    for name in CODELIST_FILES:
        (tmp_path / name).write_bytes((CODELIST_DIR / name).read_bytes())
    assert load_codelists(tmp_path).version == codes.version
    with open(tmp_path / "regimens.csv", "a") as handle:
        handle.write("LBCL,TEST,rituximab,1L,21,1,test,no,\n")
    assert load_codelists(tmp_path).version != codes.version


def test_procedure_ranges_and_slash_lists_expand(codes):
    """Ranges (77261-77263, G6003-G6016) and slash lists (78811/78812/78813) become exact codes."""
    proc = codes.procedures.set_index("code")
    for code in ("77261", "77262", "77263", "G6003", "G6016", "78812", "38228", "0540T", "30233U3"):
        assert code in proc.index, code
    assert proc.loc["77262", "event"] == "radiation"
    assert "G6017" not in proc.index


def test_combination_and_unknown_cells_are_not_codes(codes):
    """'J9185 + J9070' is a rule and '(unknown)' is no code: neither becomes a procedure code."""
    assert not codes.procedures["code"].fillna("").str.contains(r"\+|\(").any()
    assert not ((codes.procedures["code"] == "J9185") & (codes.procedures["event"] == "car_t_lymphodepletion")).any()


def test_lifileucel_is_listed_as_not_car_t(codes):
    """XW033L7 is lifileucel (TIL therapy), flagged exclude_not_car_t, never car_t_infusion."""
    row = codes.procedures[codes.procedures["code"] == "XW033L7"]
    assert list(row["event"]) == ["exclude_not_car_t"]


def test_wildcard_pcs_codes_become_patterns(codes):
    """'3023xx1' is kept as a regex that matches any two characters in the wildcard positions."""
    patterns = codes.procedures["pattern"].dropna()
    assert any(pd.Series(["30233C1"]).str.match(p).iloc[0] for p in patterns)


def test_biosimilars_and_sc_forms_map_to_the_originator(codes):
    """Rituximab biosimilars and the SC form are one generic for lines of therapy."""
    drugs = codes.drugs.set_index("code")
    for code in ("J9312", "Q5115", "Q5119", "Q5123", "J9311"):
        assert drugs.loc[code, "generic"] == "rituximab"
    assert drugs.loc["J9144", "generic"] == drugs.loc["J9145", "generic"] == "daratumumab"


def test_unclassified_codes_never_identify_a_specific_drug(codes):
    """J3590/C9399 mentioned as launch codes stay unclassified (noc), not a named drug."""
    drugs = codes.drugs.set_index("code")
    assert drugs.loc["J3590", "drug_class"] == "noc"
    assert drugs.loc["C9399", "drug_class"] == "noc"


def test_paired_generics_keep_their_own_codes(codes):
    """'filgrastim / pegfilgrastim: J1442; J2505' pairs each code with its own generic."""
    drugs = codes.drugs.set_index("code")
    assert drugs.loc["J1442", "generic"] == "filgrastim"
    assert drugs.loc["J2505", "generic"] == "pegfilgrastim"


def test_diagnosis_longest_prefix_wins(codes):
    """C83.390 (PCNSL) is an exclusion even though C83.3 (DLBCL) is a shorter matching prefix."""
    out = codes.diagnosis_groups(pd.Series(["C83390", "C8338", "C820A", "I10", None]))
    assert list(out["disease_group"].iloc[:3]) == ["PCNSL", "LBCL", "FL"]
    assert list(out["role"].iloc[:3]) == ["exclusion", "index_dx", "remission_marker"]
    assert out["disease_group"].iloc[3:].isna().all()


@pytest.mark.parametrize("code", ["C83.0A", "C83.1A", "C83.3A", "C83.8A", "C83.9A", "C82.0A", "C82.9A", "C85.1A", "C85.2A", "C85.8A", "C85.9A"])
def test_fy2025_lymphoma_remission_codes_are_remission_not_active_disease(codes, code):
    """A FY2025 'in remission' code of a target-lymphoma subcategory must not fall back to its parent's active-disease prefix."""
    found = codes.diagnosis_groups(pd.Series([normalise_code(code)]))
    assert found["role"].tolist() == ["remission_marker"]


def test_ndc_crosswalk_adds_oral_drugs_and_keeps_leading_zeros(codes):
    """An operator crosswalk maps 11-digit NDCs (leading zeros kept) to catalog generics."""
    xw = pd.DataFrame({"ndc_code": ["00059-1234-01", "12345678901"], "generic": ["Lenalidomide", "metformin"]})
    merged = codes.with_ndc_crosswalk(xw)
    ndc = merged.drugs[merged.drugs["code_system"] == "ndc"].set_index("code")
    assert ndc.loc["00059123401", "drug_class"] == "imid"
    assert ndc.loc["12345678901", "drug_class"] == "other"
    assert ndc.loc["12345678901", "counts_as_line"] == "no"
    assert merged.version != codes.version


def test_ndc_crosswalk_without_required_columns_names_them(codes):
    """A crosswalk missing a column is rejected with the column's name."""
    with pytest.raises(ValueError, match="generic"):
        codes.with_ndc_crosswalk(pd.DataFrame({"ndc_code": ["00000000000"]}))


def test_dashed_ten_digit_ndcs_are_padded_per_segment(codes):
    """5-3-2 and 4-4-2 dashed NDCs pad within their segment, not on the left of the whole code."""
    xw = pd.DataFrame({"ndc_code": ["12345-678-90", "1234-5678-90", "12345-6789-1"], "generic": ["lenalidomide"] * 3})
    ndc = set(codes.with_ndc_crosswalk(xw).drugs.query("code_system == 'ndc'")["code"])
    assert ndc == {"12345067890", "01234567890", "12345678901"}


def test_ambiguous_undashed_ten_digit_ndc_is_rejected_by_value(codes):
    """An undashed 10-digit NDC could be any of three 11-digit codes, so it is refused by name."""
    with pytest.raises(ValueError, match="1234567890"):
        codes.with_ndc_crosswalk(pd.DataFrame({"ndc_code": ["1234567890"], "generic": ["ibrutinib"]}))
