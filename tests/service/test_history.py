"""Request ingest: JSON member histories laid out as contract tables and mapped to events."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
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


def _frame_history(members, codes, today):
    """The request's events as the batch maps them: a DataFrame, undated placeholder spans dropped, late events counted."""
    from contract.mapping import claims_to_events
    from service.history import build_claim_tables

    tables = build_claim_tables(members)
    events, persons = claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, codes)
    events = events[~(events["date"].isna() & events["kind"].eq("enrollment")).to_numpy(dtype=bool)].reset_index(drop=True)
    limits = {m.person_id: pd.Timestamp(m.as_of or today) for m in members}
    late = events[events["date"] > events["person_id"].map(limits)].groupby("person_id").size()
    return events, persons, {str(k): int(v) for k, v in late.items()}


@pytest.mark.parametrize(
    "case",
    ["relapsed", "no_enrollment", "events_after_as_of", "two_members", "empty", "death_before_as_of", "death_after_as_of"],
)
def test_event_columns_score_exactly_as_the_events_frame(case, model_dir):
    """A request scored from the mapped event and person column arrays gives the very results the DataFrames give."""
    from models.artifact import artifact_paths, load_model_files
    from models.scoring import score_members

    from .factories import R_CHOP, make_member

    member = relapsed_dlbcl_member()
    members = [member]
    if case == "no_enrollment":
        member.pop("enrollment")
    elif case == "events_after_as_of":
        member["medical_claims"].append({**member["medical_claims"][-1], "claim_id": "future", "claim_start_date": "2031-01-01", "claim_end_date": "2031-01-01"})
    elif case == "two_members":
        members.append(make_member("member-2", lines=((date(2024, 2, 1), R_CHOP),), as_of=date(2024, 12, 1)))
    elif case in ("death_before_as_of", "death_after_as_of"):  # a later death is hidden by the pipeline
        death = "2024-10-20" if case == "death_before_as_of" else "2025-02-01"
        member["demographics"]["death_date"] = death
        member["medical_claims"] = [c for c in member["medical_claims"] if c["claim_start_date"] <= death]  # later ones: another person's
    elif case == "empty":
        members = [{"person_id": "empty", "demographics": {"birth_date": "1970-01-01"}}]
    requests = [ScoreRequest.model_validate(m) for m in members]
    model = load_model_files(artifact_paths(model_dir), version="1", source="test artifact")
    history = load_member_history(requests, model.codes, date(2024, 11, 1))
    events, persons, late = _frame_history(requests, model.codes, date(2024, 11, 1))
    pd.testing.assert_frame_equal(history.events, events, check_exact=True)
    pd.testing.assert_frame_equal(history.persons.frame, persons, check_exact=True)
    assert history.events_after_as_of == late
    ids = [r.person_id for r in requests]
    as_of = pd.Series([pd.Timestamp(r.as_of or date(2024, 11, 1)) for r in requests], index=pd.Index(ids, name="person_id", dtype="string"), dtype="datetime64[s]")
    pd.testing.assert_series_equal(history.as_of, as_of, check_exact=True)
    assert pa.array(history.as_of.index.array).type == pa.array(as_of.index.array).type
    from_columns = score_members(model, history.event_columns, history.persons, history.as_of, num_threads=1)
    from_frame = score_members(model, events, persons, history.as_of, num_threads=1)
    assert from_columns == from_frame


@pytest.mark.parametrize("case", ["relapsed", "events_after_as_of", "two_members", "no_enrollment"])
def test_scoring_a_request_never_builds_its_events_or_persons_frame(case, model_dir):
    """The request path stays columnar: building the DataFrame of a request's events or persons
    (which reading one text column through ``columns[name]`` would do) costs more than mapping it."""
    from models.artifact import artifact_paths, load_model_files
    from models.scoring import score_members

    from .factories import R_CHOP, make_member

    member = relapsed_dlbcl_member()
    members = [member]
    if case == "events_after_as_of":
        member["medical_claims"].append({**member["medical_claims"][-1], "claim_id": "future", "claim_start_date": "2031-01-01", "claim_end_date": "2031-01-01"})
    elif case == "two_members":
        members.append(make_member("member-2", lines=((date(2024, 2, 1), R_CHOP),), as_of=date(2024, 12, 1)))
    elif case == "no_enrollment":
        member.pop("enrollment")
    model = load_model_files(artifact_paths(model_dir), version="1", source="test artifact")
    history = load_member_history([ScoreRequest.model_validate(m) for m in members], model.codes, date(2024, 11, 1))
    results = score_members(model, history.event_columns, history.persons, history.as_of, num_threads=1)
    assert [r["person_id"] for r in results] == [m["person_id"] for m in members]
    assert not history.event_columns.has_frame
    assert not history.persons.has_frame
