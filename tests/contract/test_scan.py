"""The DuckDB cohort pre-scan finds exactly the persons with target codes."""

import pytest

from contract.scan import find_cohort_candidates, target_codes
from features.codelists import load_codelists
from tests.contract.factories import good_tables, medical_line, write_contract


def _tables():
    tables = good_tables()
    tables["eligibility"] = []
    tables["medical_claim"] = [
        medical_line("C1", 1, person_id="DOTTED", diagnosis_code_1="C83.38"),
        medical_line("C2", 1, person_id="DOTLESS", diagnosis_code_1="I10", diagnosis_code_7="C9000"),
        medical_line("C3", 1, person_id="DRUG", diagnosis_code_1="I10", hcpcs_code="J9312"),
        medical_line("C4", 1, person_id="CART", diagnosis_code_1="I10", hcpcs_code="99213", procedure_code_1="XW033H7"),
        medical_line("C5", 1, person_id="TCELL", diagnosis_code_1="C84.00"),
        medical_line("C6", 1, person_id="HTN", diagnosis_code_1="I10", hcpcs_code="99213"),
        medical_line("C7", 1, person_id="HODGKIN", diagnosis_code_1="C81.90"),
    ]
    return tables


@pytest.mark.parametrize(("fmt", "parts"), [("parquet", 1), ("csv", 1), ("parquet", 2)])
def test_scan_finds_diagnosis_drug_and_car_t_persons_only(tmp_path, fmt, parts):
    """Target diagnoses (dotted or dotless, any position), anticancer HCPCS and CAR T PCS codes are found; T-cell lymphoma, Hodgkin and hypertension are not."""
    directory = write_contract(tmp_path / "data", _tables(), fmt, parts)
    found = find_cohort_candidates(directory, load_codelists())
    assert sorted(found) == ["CART", "DOTLESS", "DOTTED", "DRUG"]


def test_scan_includes_oral_anticancer_fills_when_a_crosswalk_maps_them(tmp_path):
    """With an operator crosswalk, a fill of an oral anticancer drug makes the person a candidate."""
    codes = load_codelists()
    import pandas as pd

    codes = codes.with_ndc_crosswalk(pd.DataFrame({"ndc_code": ["00002321530"], "generic": ["lenalidomide"]}))
    assert "00002321530" in target_codes(codes)["ndc"]
    directory = write_contract(tmp_path / "data", _tables())
    assert "P1" in set(find_cohort_candidates(directory, codes))
