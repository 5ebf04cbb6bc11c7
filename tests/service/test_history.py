"""Request ingest: JSON member histories laid out as contract tables and mapped to events."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.codelists import load_codelists
from service.errors import InvalidInput
from service.history import load_member_history
from service.schemas import ScoreRequest

from .factories import make_claim, relapsed_dlbcl_member


def _history(*members):
    return load_member_history([ScoreRequest.model_validate(m) for m in members], load_codelists(), date(2024, 11, 1))


def test_icd10_procedures_on_some_lines_only_are_mapped():
    """An ICD-10-PCS procedure on one claim line (others have none) becomes an event dated by its own date."""
    member = relapsed_dlbcl_member()
    member["medical_claims"].append(
        make_claim("ip1", date(2024, 3, 1), None, claim_type="institutional", bill_type_code="0111", admission_date="2024-03-01", discharge_date="2024-03-05", procedures=[{"code": "xw033h7", "date": "2024-03-02"}, {"code": "30233N1"}])
    )
    events = _history(member).events
    px = events[events["code_system"] == "icd10pcs"].set_index("code")["date"]
    assert px.to_dict() == {"30233N1": pd.Timestamp("2024-03-01"), "XW033H7": pd.Timestamp("2024-03-02")}
    assert (events.loc[events["claim_id"] == "ip1", "setting"] == "inpatient").all()


def test_icd9_diagnoses_are_kept_unchecked_and_not_mapped():
    """A diagnosis on an ICD-9-CM line is neither a format error nor an ICD-10-CM event."""
    member = relapsed_dlbcl_member()
    member["medical_claims"].append(make_claim("old", date(2024, 3, 1), "99213", ("2024",), diagnosis_code_type="icd-9-cm"))
    events = _history(member).events
    assert "2024" not in set(events["code"].dropna())


def test_malformed_codes_are_listed_by_column_then_row():
    """Every malformed code is named, HCPCS first, then diagnoses by position, then NDCs."""
    member = relapsed_dlbcl_member()
    member["medical_claims"][2]["diagnosis_codes"] = ["C83.38", "12345"]
    member["medical_claims"][1]["diagnosis_codes"] = ["99999"]
    member["medical_claims"][0]["hcpcs_code"] = "ZZZ"
    member["pharmacy_claims"] = [{"claim_id": "rx1", "dispensing_date": "2024-03-01", "ndc_code": "1234-567-8"}]
    with pytest.raises(InvalidInput) as caught:
        _history(member)
    assert [e["field"] for e in caught.value.errors] == [
        "medical_claims[0].hcpcs_code",
        "medical_claims[1].diagnosis_codes[0]",
        "medical_claims[2].diagnosis_codes[1]",
        "pharmacy_claims[0].ndc_code",
    ]
