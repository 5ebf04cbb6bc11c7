"""A claim belongs to one member: a claim_id shared by two members is two claims."""

from __future__ import annotations

import pandas as pd

from contract.mapping import claims_to_events
from features.codelists import load_codelists
from tests.contract.factories import medical_line, span


def _map(medical: list[dict]) -> pd.DataFrame:
    eligibility = pd.DataFrame([span("P1"), span("P2")])
    return claims_to_events(eligibility, pd.DataFrame(medical), pd.DataFrame(), load_codelists())[0]


def test_the_same_claim_id_under_two_members_keeps_both_members_diagnoses():
    """Two members whose sources both number a claim C1 each keep their own header diagnoses and setting."""
    lines = [
        medical_line("C1", 1, "P1", diagnosis_code_1="C83.38"),
        medical_line("C1", 1, "P2", diagnosis_code_1="C90.00", place_of_service_code="21"),
    ]
    events = _map(lines)
    dx = events[events["kind"] == "diagnosis"].set_index("person_id")
    assert dx.loc["P1", "code"] == "C8338" and dx.loc["P2", "code"] == "C9000"
    assert dx.loc["P1", "setting"] == "office" and dx.loc["P2", "setting"] == "inpatient"


def test_lines_of_one_members_claim_still_share_one_header():
    """Within a member, lines of one claim still give its header diagnoses once."""
    lines = [medical_line("C1", n, "P1", diagnosis_code_1="C83.38") for n in (1, 2, 3)]
    events = _map(lines)
    assert (events["kind"] == "diagnosis").sum() == 1
