"""Mapping Tuva frames to the event model: one rule per test, on hand-built frames."""

import pandas as pd
import pytest

from contract.mapping import claims_to_events, derive_persons
from features.codelists import load_codelists
from features.events import EVENT_COLUMNS
from tests.contract.factories import fill, medical_line, span


def _map(medical=(), pharmacy=(), eligibility=None):
    eligibility = [span("P1")] if eligibility is None else eligibility
    frame = lambda rows: pd.DataFrame(list(rows)) if rows else pd.DataFrame()  # noqa: E731
    return claims_to_events(frame(eligibility), frame(medical), frame(pharmacy), load_codelists())


def _kind(events, kind, system=None):
    out = events[events["kind"] == kind]
    return out if system is None else out[out["code_system"] == system]


def test_events_have_the_canonical_columns():
    """The mapping returns exactly the event model's columns."""
    events, _ = _map([medical_line()])
    assert tuple(events.columns) == EVENT_COLUMNS


def test_diagnoses_taken_once_per_claim_and_dotless():
    """Header diagnoses repeated on three lines give one event per code, dotless, dated at claim start."""
    lines = [medical_line("C1", n, diagnosis_code_1="C83.38", diagnosis_code_2="D70.1") for n in (1, 2, 3)]
    dx = _kind(_map(lines)[0], "diagnosis")
    assert sorted(dx["code"]) == ["C8338", "D701"]
    assert (dx["date"] == pd.Timestamp("2023-05-02")).all() and (dx["code_system"] == "icd10cm").all()


def test_icd_procedure_uses_its_own_date_else_claim_start():
    """ICD-10-PCS procedure_code_n is dated by procedure_date_n, falling back to claim_start_date."""
    line = medical_line(claim_type="institutional", procedure_code_type="icd-10-pcs", procedure_code_1="XW033H7", procedure_date_1="2023-05-04", procedure_code_2="30233N1")
    px = _kind(_map([line])[0], "procedure", "icd10pcs").set_index("code")["date"]
    assert px["XW033H7"] == pd.Timestamp("2023-05-04") and px["30233N1"] == pd.Timestamp("2023-05-02")


def test_hcpcs_drug_codes_are_administrations_and_others_procedures():
    """A HCPCS code listed as a drug is drug_admin; an E/M code is a procedure."""
    events, _ = _map([medical_line("C1", 1, hcpcs_code="J9312"), medical_line("C1", 2, hcpcs_code="99213")])
    assert _kind(events, "drug_admin")["code"].tolist() == ["J9312"]
    assert _kind(events, "procedure", "hcpcs")["code"].tolist() == ["99213"]


def test_inpatient_claim_yields_one_stay_drg_and_revenue_events():
    """Bill type 11x gives one inpatient_stay from admission to discharge, an MS-DRG and revenue events, all inpatient."""
    common = dict(claim_type="institutional", place_of_service_code="", hcpcs_code="", bill_type_code="111", claim_start_date="2023-07-01", claim_end_date="2023-07-05", admission_date="2023-07-01", discharge_date="2023-07-05", drg_code="018", drg_code_type="ms-drg")
    lines = [medical_line("C1", 1, revenue_center_code="0120", **common), medical_line("C1", 2, revenue_center_code="0891", claim_line_start_date="2023-07-02", **common)]
    events, _ = _map(lines)
    stay = _kind(events, "inpatient_stay")
    assert len(stay) == 1 and stay["end_date"].item() == pd.Timestamp("2023-07-05")
    assert _kind(events, "procedure", "ms_drg")["code"].tolist() == ["018"]
    assert sorted(_kind(events, "procedure", "revenue")["code"]) == ["0120", "0891"]
    assert set(events.loc[events["claim_id"] == "C1", "setting"]) == {"inpatient"}


def test_institutional_claim_with_admission_date_is_a_stay_even_without_bill_type():
    """An institutional claim carrying an admission date is an inpatient stay."""
    events, _ = _map([medical_line(claim_type="institutional", place_of_service_code="", admission_date="2023-05-02", discharge_date="2023-05-04", claim_end_date="2023-05-04")])
    assert len(_kind(events, "inpatient_stay")) == 1


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"place_of_service_code": "23"}, "ed"),
        ({"place_of_service_code": "", "claim_type": "institutional", "bill_type_code": "131", "revenue_center_code": "0450"}, "ed"),
        ({"place_of_service_code": "11"}, "office"),
        ({"place_of_service_code": "22"}, "outpatient"),
        ({"place_of_service_code": "", "claim_type": "institutional", "bill_type_code": "131", "revenue_center_code": "0300"}, "outpatient"),
        ({"place_of_service_code": ""}, "unknown"),
    ],
)
def test_setting_from_place_of_service_and_revenue(overrides, setting):
    """POS 23 or revenue 045x is ED, POS 11 office, other institutional or POS outpatient, nothing known is unknown."""
    events, _ = _map([medical_line(**overrides)])
    assert set(events.loc[events["claim_id"].notna(), "setting"]) == {setting}


def test_ed_line_makes_every_event_of_the_claim_ed():
    """The lab line of an ED visit belongs to the ED visit."""
    common = dict(place_of_service_code="", claim_type="institutional", bill_type_code="131")
    events, _ = _map([medical_line("C1", 1, revenue_center_code="0450", **common), medical_line("C1", 2, revenue_center_code="0300", hcpcs_code="85025", **common)])
    assert set(events.loc[events["claim_id"] == "C1", "setting"]) == {"ed"}


def test_pharmacy_fill_spans_days_supply():
    """A fill is a drug_fill with an 11-digit NDC, days_supply, and end_date = date + days_supply - 1."""
    fills = _kind(_map(pharmacy=[fill(days_supply="30")])[0], "drug_fill")
    row = fills.iloc[0]
    assert (row["code_system"], row["code"], row["days_supply"], row["setting"]) == ("ndc", "00002321530", 30, "pharmacy")
    assert row["end_date"] == pd.Timestamp("2023-06-30")


def test_unmapped_ndc_fill_is_kept():
    """A fill whose NDC is in no crosswalk is still an event, never dropped."""
    fills = _kind(_map(pharmacy=[fill(ndc_code="99999999999")])[0], "drug_fill")
    assert fills["code"].tolist() == ["99999999999"]


def test_enrollment_spans_and_death_become_events():
    """Each enrollment span is an enrollment event start..end; a death date gives one death event."""
    spans = [span("P1"), span("P1", enrollment_start_date="2025-01-01", enrollment_end_date="2025-03-31", death_date="2025-03-15")]
    events, persons = _map(eligibility=spans)
    enrol = _kind(events, "enrollment")
    assert enrol["date"].tolist() == [pd.Timestamp("2022-01-01"), pd.Timestamp("2025-01-01")]
    assert enrol["end_date"].tolist() == [pd.Timestamp("2024-12-31"), pd.Timestamp("2025-03-31")]
    assert _kind(events, "death")["date"].tolist() == [pd.Timestamp("2025-03-15")]
    assert persons["death_date"].item() == pd.Timestamp("2025-03-15")


def test_each_enrollment_event_names_its_own_spans_payer_type():
    """A plan switch stays visible over time: each span's payer type rides on its enrollment event; a span without one has none."""
    spans = [
        span("P1", payer_type="Commercial"),
        span("P1", enrollment_start_date="2025-01-01", enrollment_end_date="2025-12-31", payer_type="medicare"),
        span("P1", enrollment_start_date="2026-01-01", enrollment_end_date="2026-06-30", payer_type=""),
    ]
    events, persons = _map(eligibility=spans)
    enrol = _kind(events, "enrollment")
    assert enrol["code_system"].tolist() == ["payer_type", "payer_type", ""]
    assert enrol["code"].tolist() == ["commercial", "medicare", ""]
    assert persons["payer_type"].isna().item()  # the latest span states none


def test_persons_take_demographics_from_the_most_recent_span():
    """Payer type and ZIP come from the latest span; ZIP+4 is cut to five digits and lost leading zeros restored."""
    persons = derive_persons(pd.DataFrame([span("P1", payer_type="commercial", zip_code="02139"), span("P1", enrollment_start_date="2025-01-01", enrollment_end_date="2025-12-31", payer_type="Medicare", zip_code="2140-1234")]))
    row = persons.iloc[0]
    assert (row["payer_type"], row["zip_code"], row["sex"]) == ("medicare", "02140", "female")
    assert len(persons) == 1


def test_persons_come_in_person_id_order_as_python_sorts_text():
    """Persons are ordered by person_id as Python (and pandas) order text, also ids NumPy's fixed-width strings would tie ("a" before "a\\x00")."""
    persons = derive_persons(pd.DataFrame([span("b"), span("a\x00", gender="female"), span("a", gender="male"), span("B")]))
    assert persons["person_id"].tolist() == ["B", "a", "a\x00", "b"]
    assert persons.set_index("person_id").loc[["a", "a\x00"], "sex"].tolist() == ["male", "female"]


def test_icd9_claims_do_not_yield_diagnosis_events():
    """ICD-9-CM codes are not interpreted as ICD-10-CM."""
    events, _ = _map([medical_line(diagnosis_code_type="icd-9-cm", diagnosis_code_1="2024")])
    assert _kind(events, "diagnosis").empty


def test_no_claims_gives_enrollment_only():
    """A member with eligibility and no claims has only enrollment events."""
    events, persons = _map()
    assert events["kind"].tolist() == ["enrollment"] and len(persons) == 1


def test_mapping_output_is_already_conformed():
    """The frames come out in the event model's dtypes and vocabulary: conform_events and conform_persons change nothing."""
    from features.events import conform_events, conform_persons

    common = dict(claim_type="institutional", place_of_service_code="", bill_type_code="0111", admission_date="2023-07-01", discharge_date="2023-07-05", drg_code="18", drg_code_type="ms-drg")
    lines = [medical_line("C1", 1, revenue_center_code="450", procedure_code_1="xw033h7", **common), medical_line("C1", 2, hcpcs_code="j9312", **common), medical_line("C2", 1, person_id="P2")]
    events, persons = _map(lines, [fill(days_supply="30"), fill(claim_id="R2", days_supply="0")], [span("P1"), span("P2", death_date="2024-06-01")])
    pd.testing.assert_frame_equal(conform_events(events), events)
    pd.testing.assert_frame_equal(conform_persons(persons), persons)


def test_object_columns_and_date_objects_map_like_text():
    """Object-dtype frames holding date objects (how the API lays out a request) give the same events as text frames."""
    import datetime

    lines = [medical_line("C1", 1, diagnosis_code_2="D70.1"), medical_line("C2", 1, hcpcs_code="J9312", claim_start_date="2023-06-01", claim_end_date="2023-06-01")]
    text = _map(lines, [fill(days_supply="30")])
    as_objects = [{k: (datetime.date.fromisoformat(v) if k.endswith("_date") and v else v) for k, v in row.items()} for row in lines]
    elig = pd.DataFrame([span("P1")]).astype(object)
    mapped = claims_to_events(elig, pd.DataFrame(as_objects).astype(object), pd.DataFrame([fill(days_supply=30)]).astype(object), load_codelists())
    pd.testing.assert_frame_equal(mapped[0], text[0])
    pd.testing.assert_frame_equal(mapped[1], text[1])


def test_column_mappings_map_like_frames():
    """Tables given as column name -> array mappings (how the API lays out a request, dates as
    date objects, absent columns left out) give the same events and persons as DataFrames."""
    import datetime

    import numpy as np

    common = dict(claim_type="institutional", place_of_service_code="", bill_type_code="0111", admission_date="2023-07-01", discharge_date="2023-07-05", drg_code="18", drg_code_type="ms-drg")
    lines = [medical_line("C1", 1, revenue_center_code="450", procedure_code_1="xw033h7", **common), medical_line("C1", 2, hcpcs_code="j9312", **common), medical_line("C2", 1, person_id="P2")]
    fills = [fill(days_supply="30"), fill(claim_id="R2", days_supply="0")]
    spans = [span("P1"), span("P2", death_date="2024-06-01")]
    frames = _map(lines, fills, spans)

    def columns(rows):
        names = dict.fromkeys(k for row in rows for k in row)
        values = {n: [row.get(n) or None for row in rows] for n in names}
        values = {n: [datetime.date.fromisoformat(v) if n.endswith("_date") and v else v for v in vs] for n, vs in values.items()}
        return {n: np.array(vs, dtype=object) for n, vs in values.items() if any(v is not None for v in vs)}

    mapped = claims_to_events(columns(spans), columns(lines), columns(fills), load_codelists())
    pd.testing.assert_frame_equal(mapped[0], frames[0])
    pd.testing.assert_frame_equal(mapped[1], frames[1])


def test_column_mappings_of_unequal_length_are_refused():
    """A mapping whose columns differ in length is an error, not a silently misaligned table."""
    import numpy as np

    with pytest.raises(ValueError, match="differ in length"):
        claims_to_events({"person_id": np.array(["P1"], dtype=object), "enrollment_start_date": np.array([None, None], dtype=object)}, {}, {}, load_codelists())


def test_frames_of_different_calls_do_not_share_a_mutable_columns_index():
    """Renaming one result's columns axis leaves every other mapping's frames as they were."""
    first, first_persons = _map(medical=[medical_line()], eligibility=[span()])
    second, second_persons = _map(medical=[medical_line()], eligibility=[span()])
    first.columns.name = "renamed"
    first_persons.columns.name = "renamed"
    assert second.columns.name is None and second_persons.columns.name is None
    assert list(second.columns) == list(EVENT_COLUMNS)
