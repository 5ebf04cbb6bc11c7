"""Laying requests out as contract tables: the same member maps the same in any company, and
remembering well-formed codes never hides a malformed one."""

from __future__ import annotations

import copy
from datetime import date
from unittest import mock

import pandas as pd
import pytest

from contract.mapping import claims_to_events
from features.codelists import load_codelists
from service import history
from service.errors import InvalidInput
from service.history import build_claim_tables
from service.schemas import ScoreRequest

from .factories import R_CHOP, make_claim, make_member, relapsed_dlbcl_member

CODES = load_codelists()


def _requests(*members: dict) -> list[ScoreRequest]:
    return [ScoreRequest.model_validate(m) for m in members]


def _map(requests: list[ScoreRequest]) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = build_claim_tables(requests)
    return claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, CODES)


def _busy_member(person_id: str) -> dict:
    """Relapsed DLBCL plus an inpatient stay with ICD-10-PCS procedures, lower-case and dotted codes, and fills."""
    member = relapsed_dlbcl_member(person_id)
    member["medical_claims"].append(
        make_claim(
            "ip1",
            date(2024, 3, 1),
            "j9312",
            ("c83.38", "D64.9", "I10"),
            claim_type="institutional",
            bill_type_code="0111",
            admission_date="2024-03-01",
            discharge_date="2024-03-05",
            drg_code="018",
            drg_code_type="ms-drg",
            revenue_center_code="0450",
            procedures=[{"code": "xw033h7", "date": "2024-03-02"}, {"code": "30233N1"}],
        )
    )
    member["pharmacy_claims"] = [{"claim_id": f"rx{i}", "dispensing_date": f"2024-0{i + 1}-01", "ndc_code": "00069-0101-01", "days_supply": 30} for i in range(3)]
    member["enrollment"].append({"enrollment_start_date": "2027-01-01", "enrollment_end_date": "2027-12-31", "payer_type": "medicare"})
    return member


def test_a_member_maps_the_same_alone_and_among_other_members():
    """A member's events and person row do not depend on who else is in the request (same claim ids included)."""
    target = _busy_member("m-target")
    others = [_busy_member("m-a"), make_member("m-b", lines=((date(2024, 2, 1), R_CHOP),)), _busy_member("zz")]
    alone_events, alone_persons = _map(_requests(target))
    events, persons = _map(_requests(others[0], others[1], target, others[2]))
    mine = events[events["person_id"] == "m-target"].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, alone_events, check_exact=True)
    pd.testing.assert_frame_equal(persons[persons["person_id"] == "m-target"].reset_index(drop=True), alone_persons, check_exact=True)
    assert set(events["person_id"]) == {"m-target", "m-a", "m-b", "zz"}


def _with_bad_codes(person_id: str = "member-1") -> dict:
    member = _busy_member(person_id)
    member["medical_claims"][0]["diagnosis_codes"] = ["C83.38", "12345"]
    member["medical_claims"][1]["diagnosis_codes"] = ["12345"]  # the same malformed code on another line
    member["medical_claims"][1]["hcpcs_code"] = "ZZZ"
    member["medical_claims"][-1]["procedures"] = [{"code": "xw033h7"}, {"code": "BAD"}]
    member["pharmacy_claims"][2]["ndc_code"] = "1234-567-8"
    return member


def _expected_fields(member: dict) -> list[str]:
    """HCPCS first, then diagnoses by position and line, then procedures, then NDCs."""
    stay = len(member["medical_claims"]) - 1
    return [
        "medical_claims[1].hcpcs_code",
        "medical_claims[1].diagnosis_codes[0]",
        "medical_claims[0].diagnosis_codes[1]",
        f"medical_claims[{stay}].procedures[1].code",
        "pharmacy_claims[2].ndc_code",
    ]


def test_malformed_codes_are_reported_on_every_call_with_their_field_paths():
    """Each malformed code is named where it occurs, on a first call and on later calls alike (only good codes are remembered)."""
    member = _with_bad_codes()
    requests = _requests(member)
    reports = []
    for _ in range(3):
        with pytest.raises(InvalidInput) as caught:
            build_claim_tables(requests)
        reports.append([e["field"] for e in caught.value.errors])
    assert reports == [_expected_fields(member)] * 3


def test_malformed_codes_of_a_batch_name_the_member():
    """In a batch, a malformed code's field path starts with its member's position."""
    member = _with_bad_codes("b")
    with pytest.raises(InvalidInput) as caught:
        build_claim_tables(_requests(_busy_member("a"), member), field_prefix=("members",))
    assert [e["field"] for e in caught.value.errors] == [f"members[1].{f}" for f in _expected_fields(member)]


def test_remembered_codes_give_the_tables_a_fresh_check_gives():
    """Tables built with the remembered normal forms equal those built with every code checked afresh, even when the memory overflows."""
    requests = _requests(_busy_member("m1"), _busy_member("m2"))
    warm = build_claim_tables(requests)
    with mock.patch.object(history, "_KNOWN", {system: {} for system in history._CHECKS}), mock.patch.object(history, "_KNOWN_LIMIT", 2):
        cold = build_claim_tables(requests)
    for name in ("eligibility", "medical_claim", "pharmacy_claim"):
        mine, fresh = getattr(warm, name), getattr(cold, name)
        assert list(mine) == list(fresh)
        assert all(mine[c].tolist() == fresh[c].tolist() for c in mine)
    assert warm.medical_claim["diagnosis_code_1"].tolist()[-1] == "C8338" and warm.medical_claim["hcpcs_code"].tolist()[-1] == "J9312"


def test_a_request_without_claims_has_no_claim_columns():
    """A member with demographics only lays out eligibility and leaves the claim tables without columns."""
    member = copy.deepcopy(relapsed_dlbcl_member())
    member["medical_claims"], member["pharmacy_claims"] = [], []
    tables = build_claim_tables(_requests(member))
    assert tables.medical_claim == {} and tables.pharmacy_claim == {}
    events, persons = claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, CODES)
    assert set(events["kind"]) == {"enrollment"} and len(persons) == 1


def test_table_columns_hold_the_request_values_as_they_are():
    """Each column is a 1-D object array of the request's own values (dates as datetime.date, numbers as int), None where a line leaves it out."""
    requests = _requests(_busy_member("m1"))
    tables = build_claim_tables(requests)
    lines, fills = requests[0].medical_claims, requests[0].pharmacy_claims
    medical = tables.medical_claim
    for name in ("claim_id", "claim_line_number", "claim_start_date", "admission_date", "drg_code"):
        column = medical[name]
        assert column.dtype == object and column.shape == (len(lines),)
        assert column.tolist() == [getattr(line, name) for line in lines]
        assert all(type(a) is type(b) for a, b in zip(column.tolist(), [getattr(line, name) for line in lines]))
    assert isinstance(medical["claim_start_date"][0], date) and medical["admission_date"].tolist()[:-1] == [None] * (len(lines) - 1)
    assert tables.pharmacy_claim["dispensing_date"].tolist() == [f.dispensing_date for f in fills]
    assert tables.eligibility["birth_date"].tolist() == [requests[0].demographics.birth_date] * len(requests[0].enrollment)
    assert "claim_line_end_date" not in medical and "quantity" not in tables.pharmacy_claim  # nobody filled them in
