"""Code shapes and their normal forms."""

import pandas as pd
import pytest

from contract import code_formats


def _one(function, value):
    normal, malformed = function(pd.Series([value], dtype="str"))
    return (None if bool(malformed.iloc[0]) else normal.iloc[0])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("00002321530", "00002321530"), ("0002-3215-30", "00002321530"), ("12345-678-90", "12345067890"), ("12345-6789-0", "12345678900"), ("12345-6789-01", "12345678901")],
)
def test_ndc_eleven_digits_and_dashed_ten_digit_forms_normalise(raw, expected):
    """An 11-digit NDC keeps its leading zeros; dashed 4-4-2, 5-3-2 and 5-4-1 forms are padded to 5-4-2."""
    assert _one(code_formats.normalise_ndc, raw) == expected


@pytest.mark.parametrize("raw", ["0002321530", "2321530", "ABCDE-1234-12", "123456789012", "1234-123-1"])
def test_ndc_ambiguous_or_malformed_is_rejected(raw):
    """An undashed 10-digit NDC is ambiguous (where the pad goes is unknown), so it is malformed, as is anything not NDC-shaped."""
    assert _one(code_formats.normalise_ndc, raw) is None


@pytest.mark.parametrize(("raw", "expected"), [("C83.38", "C8338"), ("c8338", "C8338"), ("I10", "I10"), ("C83.3A", "C833A"), ("U07.1", "U071")])
def test_icd10cm_dotted_and_dotless_normalise_to_dotless(raw, expected):
    """Dotted and dotless ICD-10-CM codes are the same code, stored dotless in upper case."""
    assert _one(code_formats.normalise_icd10cm, raw) == expected


@pytest.mark.parametrize("raw", ["8338", "C8", "CC3.38", "C83.38999", "C83..38", "C83-38"])
def test_icd10cm_malformed_is_rejected(raw):
    """A value that is not letter-digit-alphanumeric plus up to four characters is not ICD-10-CM."""
    assert _one(code_formats.normalise_icd10cm, raw) is None


@pytest.mark.parametrize(("raw", "ok"), [("J9312", True), ("99213", True), ("0537T", True), ("q2041", True), ("J931", False), ("J93122", False), ("9921A3", False)])
def test_hcpcs_cpt_shapes(raw, ok):
    """HCPCS Level II is a letter and four digits; CPT is five digits or four digits and a letter."""
    assert (_one(code_formats.normalise_hcpcs, raw) is not None) is ok


@pytest.mark.parametrize(("raw", "ok"), [("XW033H7", True), ("30233N1", True), ("XW033H", False), ("XW033I7", False), ("XW033O7", False)])
def test_icd10pcs_is_seven_characters_without_i_or_o(raw, ok):
    """ICD-10-PCS codes are exactly seven characters and never use the letters I or O."""
    assert (_one(code_formats.normalise_icd10pcs, raw) is not None) is ok


def test_institutional_codes_get_their_leading_zeros_back():
    """Revenue 450 is 0450, bill type 0111 is 111, place of service 1 is 01, DRG 18 is 018."""
    assert _one(code_formats.normalise_revenue, "450") == "0450"
    assert _one(code_formats.normalise_bill_type, "0111") == "111"
    assert _one(code_formats.normalise_place_of_service, "1") == "01"
    assert _one(code_formats.normalise_drg, "18") == "018"
    assert _one(code_formats.normalise_revenue, "45A") is None


def test_missing_values_are_not_malformed():
    """Empty cells are missing, not format errors."""
    normal, malformed = code_formats.normalise_icd10cm(pd.Series([None, "", "  "], dtype="str"))
    assert not malformed.any()
    assert normal.isna().all()
