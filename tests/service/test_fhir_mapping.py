"""FHIR R4 Bundles map into the event model; what cannot be mapped is counted, never dropped silently."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.codelists import load_codelists
from service.errors import InvalidInput
from service.fhir import RxNormLookup, bundle_from_prefetch, read_bundle

from .conftest import FHIR_BUNDLES

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT = "http://www.ama-assn.org/go/cpt"
NDC = "http://hl7.org/fhir/sid/ndc"
SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def codes():
    return load_codelists()


def patient(pid: str = "p1", **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1958-03-14", "gender": "male", "address": [{"postalCode": "02139-4307"}], **extra}


def condition(code: str, day: str = "2023-12-01", system: str = ICD10CM, pid: str = "p1", **extra) -> dict:
    return {"resourceType": "Condition", "id": "c" + "".join(ch for ch in f"{code}{day}" if ch.isalnum())[:60], "subject": {"reference": f"Patient/{pid}"}, "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": day, **extra}


def administration(system: str, code: str, day: str, display: str | None = None, rid: str | None = None, **extra) -> dict:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {
        "resourceType": "MedicationAdministration",
        "id": rid or "ma" + "".join(ch for ch in f"{code}{day}" if ch.isalnum()),
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [coding]},
        "effectiveDateTime": day,
        **extra,
    }


def bundle(*resources: dict, kind: str = "searchset") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def read(b: dict, codes) -> "object":
    return read_bundle(b, codes, rxnorm=RxNormLookup(codes))


def test_dotted_and_dotless_icd10cm_give_the_same_event(codes):
    """C83.38 and C8338 both become a diagnosis event with the dotless code."""
    history = read(bundle(patient(), condition("C83.38", "2023-12-01"), condition("C8338", "2024-01-05")), codes)
    dx = history.events[history.events["kind"] == "diagnosis"]
    assert dx["code"].tolist() == ["C8338", "C8338"]
    assert dx["code_system"].unique().tolist() == ["icd10cm"]


def test_patient_becomes_the_person_row(codes):
    """Birth date (partial dates to the first day), sex, ZIP-5 and death date come from Patient."""
    history = read(bundle(patient(birthDate="1958-03", deceasedDateTime="2024-05-02T23:30:00-05:00")), codes)
    person = history.persons.iloc[0]
    assert person["birth_date"] == pd.Timestamp("1958-03-01")
    assert person["sex"] == "male" and person["zip_code"] == "02139"
    assert person["death_date"] == pd.Timestamp("2024-05-02")  # the local calendar day, not UTC's
    assert (history.events["kind"] == "death").sum() == 1


def test_medication_codings_map_by_rxnorm_ingredient_display_hcpcs_and_ndc(codes):
    """RxNorm ingredient CUIs, RxNorm clinical drugs (by their ingredient name), HCPCS and NDC codings all become drug events."""
    history = read(
        bundle(
            patient(),
            administration(RXNORM, "121191", "2024-01-10"),
            administration(RXNORM, "1657862", "2024-01-31", display="10 ML rituximab 10 MG/ML Injection"),
            administration(HCPCS, "J9000", "2024-01-10"),
            dispense(28),
        ),
        codes,
    )
    drugs = history.events[history.events["kind"].isin(["drug_admin", "drug_fill"])].sort_values(["date", "code"])
    assert list(zip(drugs["code_system"], drugs["code"])) == [("rxnorm", "121191"), ("hcpcs", "J9000"), ("rxnorm", "121191"), ("ndc", "00069010101")]
    fill = drugs[drugs["kind"] == "drug_fill"].iloc[0]
    assert fill["setting"] == "pharmacy" and fill["days_supply"] == 28 and fill["end_date"] == pd.Timestamp("2024-02-28")
    assert history.unmapped_codes == {}


def test_rxnorm_ingredients_are_known_drugs_in_the_code_lists(codes):
    """Every RxNorm row in the code lists belongs to a drug the line-of-therapy logic knows."""
    rx = codes.drugs[codes.drugs["code_system"] == "rxnorm"]
    assert len(rx) > 30
    assert set(rx["generic"]) <= set(codes.drug_catalog["generic"])
    assert rx.loc[rx["code"] == "121191", "generic"].item() == "rituximab"


def test_medication_reference_resolves_to_a_contained_or_bundled_medication(codes):
    """medicationReference to '#med' (contained) or 'Medication/x' (in the Bundle) is followed to its code."""
    med = {"resourceType": "Medication", "id": "x", "code": {"coding": [{"system": RXNORM, "code": "3002"}]}}
    contained = {"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": RXNORM, "code": "5657"}]}}
    by_ref = administration(RXNORM, "0", "2024-03-01", rid="a1")
    by_ref.pop("medicationCodeableConcept")
    by_ref["medicationReference"] = {"reference": "Medication/x"}
    inline = administration(RXNORM, "0", "2024-03-02", rid="a2", contained=[contained])
    inline.pop("medicationCodeableConcept")
    inline["medicationReference"] = {"reference": "#med"}
    history = read(bundle(patient(), med, by_ref, inline), codes)
    assert sorted(history.events.loc[history.events["kind"] == "drug_admin", "code"]) == ["3002", "5657"]


def test_procedures_map_cpt_hcpcs_and_icd10pcs(codes):
    """CPT and HCPCS procedure codings become hcpcs events; ICD-10-PCS codings icd10pcs events."""
    procs = [
        {"resourceType": "Procedure", "id": "pr1", "status": "completed", "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": CPT, "code": "96413"}]}, "performedDateTime": "2024-01-10"},
        {"resourceType": "Procedure", "id": "pr2", "status": "completed", "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "XW033C7"}]}, "performedPeriod": {"start": "2024-06-01"}},
        {"resourceType": "Procedure", "id": "pr3", "status": "not-done", "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": CPT, "code": "38241"}]}, "performedDateTime": "2024-06-02"},
    ]
    history = read(bundle(patient(), *procs), codes)
    events = history.events[history.events["kind"] == "procedure"]
    assert sorted(zip(events["code_system"], events["code"])) == [("hcpcs", "96413"), ("icd10pcs", "XW033C7")]
    assert history.skipped_resources.get("not_done") == 1


def test_unmapped_codes_are_counted_by_system(codes):
    """SNOMED-only Conditions and unknown RxNorm drugs are reported per code system, not dropped silently."""
    history = read(
        bundle(
            patient(),
            condition("162864005", system=SNOMED),
            condition("C83.38"),
            administration(RXNORM, "197378", "2024-01-01", display="Astemizole 10 MG Oral Tablet"),
            administration("http://example.org/local-drugs", "X1", "2024-01-02"),
        ),
        codes,
    )
    assert history.unmapped_codes == {"snomed": 1, "rxnorm": 1, "http://example.org/local-drugs": 1}
    assert history.mapped_resources == {"Condition": 1}


def test_refuted_and_undated_resources_are_skipped_with_a_reason(codes):
    """A refuted Condition and an undated one do not become events; both are counted."""
    refuted = condition("C83.38", verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]})
    undated = condition("C83.38", day=None)
    undated.pop("onsetDateTime")
    history = read(bundle(patient(), refuted, undated), codes)
    assert history.events.empty
    assert history.skipped_resources == {"refuted_or_entered_in_error": 1, "undated": 1}


def test_synthea_bundles_map_without_errors(codes):
    """The Synthea transaction bundles parse; their SNOMED conditions and RxNorm clinical drugs are reported as unmapped."""
    for path in sorted(FHIR_BUNDLES.glob("*.json")):
        history = read(json.loads(path.read_text()), codes)
        assert len(history.persons) == 1
        assert history.unmapped_codes.get("snomed", 0) > 0
        assert history.skipped_resources.get("not_read:Observation", 0) > 0


def test_invalid_resource_is_named_by_entry_index(codes):
    """An invalid element inside entry 2 is a 422 naming entry[2].resource.<element>, value not echoed."""
    bad = condition("C83.38", day="2024-02-30T10:00:00Z")
    with pytest.raises(InvalidInput) as caught:
        read(bundle(patient(), condition("C83.38"), bad), codes)
    assert [e["field"] for e in caught.value.errors] == ["entry[2].resource.onsetDateTime"]
    assert "2024-02-30" not in json.dumps(caught.value.to_body())


def test_bundle_must_hold_exactly_one_patient(codes):
    """No Patient, or two different Patients, is a 422; so is a resource about another patient."""
    with pytest.raises(InvalidInput, match="no Patient"):
        read(bundle(condition("C83.38")), codes)
    with pytest.raises(InvalidInput, match="more than one Patient"):
        read(bundle(patient("p1"), patient("p2")), codes)
    with pytest.raises(InvalidInput) as caught:
        read(bundle(patient("p1"), condition("C83.38", pid="p2")), codes)
    assert caught.value.errors[0]["field"] == "entry[1].resource.subject.reference"


@pytest.mark.parametrize("body, field", [([], "body"), ({"resourceType": "Patient"}, "resourceType"), ({"resourceType": "Bundle", "type": "history"}, "type")])
def test_non_bundles_are_refused(codes, body, field):
    """Only searchset, collection, transaction or batch Bundles are read."""
    with pytest.raises(InvalidInput) as caught:
        read(body, codes)
    assert caught.value.errors[0]["field"] == field


def test_prefetch_bundles_join_into_one_collection(codes):
    """CDS prefetch (Patient + searchset Bundles, some null) reads like one Bundle; search outcome entries are ignored."""
    outcome = {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}}
    conditions = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition("C83.38")}, outcome]}
    joined = bundle_from_prefetch(patient(), {"conditions": conditions, "medicationRequests": None})
    history = read(joined, codes)
    assert history.events["code"].tolist() == ["C8338"]


def dispense(days_supply) -> dict:
    return {
        "resourceType": "MedicationDispense",
        "id": "md1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": NDC, "code": "0069-0101-01"}]},
        "whenHandedOver": "2024-02-01",
        "daysSupply": {"value": days_supply},
    }


def test_prefetch_search_that_is_not_an_object_counts_as_absent(codes):
    """An entry whose search is null or a string is read like one without search (was a 500)."""
    entries = [{"resource": condition("C83.38", "2024-01-01"), "search": None}, {"resource": condition("C83.38", "2024-02-01"), "search": "match"}]
    joined = bundle_from_prefetch(patient(), {"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": entries}})
    assert len(read(joined, codes).events) == 2


@pytest.mark.parametrize("entry, events", [(None, 0), ([], 0), ([None, {"resource": None}], 0)])
def test_prefetch_null_or_empty_entries_are_no_data(codes, entry, events):
    """A searchset with a null or empty entry list, or null entries, holds no data: the Patient alone is read."""
    joined = bundle_from_prefetch(patient(), {"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": entry}})
    assert len(read(joined, codes).events) == events


@pytest.mark.parametrize("entry", [5, "abc", {"resource": {"resourceType": "Condition"}}])
def test_prefetch_entry_that_is_not_a_list_is_named(entry):
    """A prefetch Bundle whose entry is not a list is a 422 naming prefetch.<key>.entry (a number was a 500)."""
    with pytest.raises(InvalidInput) as caught:
        bundle_from_prefetch(patient(), {"conditions": {"resourceType": "Bundle", "type": "searchset", "entry": entry}})
    assert caught.value.errors == [{"field": "prefetch.conditions.entry", "rule": "type", "message": "expected a list"}]


def test_null_contained_is_no_contained_resources(codes):
    """"contained": null with a '#ref' medicationReference is an unresolved (unmapped) medication, not a 500."""
    order = {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "#m"}, "contained": None, "authoredOn": "2024-01-01"}
    history = read(bundle(patient(), order), codes)
    assert history.events.empty and history.unmapped_codes == {"none": 1}


@pytest.mark.parametrize("days", [366, 1e9, 10**30, -1])
def test_days_supply_outside_the_rest_bounds_is_named(codes, days):
    """daysSupply outside 0..365 (REST's days_supply bounds) is a 422 naming the element (1e9 was a 500)."""
    with pytest.raises(InvalidInput) as caught:
        read(bundle(patient(), dispense(days)), codes)
    assert caught.value.errors == [{"field": "entry[1].resource.daysSupply.value", "rule": "days_supply", "message": "must be 0..365 days"}]


@pytest.mark.parametrize("days, end", [(365, "2025-01-30"), (0, None)])
def test_days_supply_within_the_bounds_sets_the_fill_end(codes, days, end):
    """365 days is the longest fill; 0 means no supply given, as on a claim."""
    fill = read(bundle(patient(), dispense(days)), codes).events.iloc[0]
    assert (fill["end_date"] == pd.Timestamp(end)) if end else pd.isna(fill["end_date"])


def _with(resource: dict, path: str, value: str) -> dict:
    """``resource`` with the element at dotted ``path`` set to ``value`` (other date elements removed)."""
    out = {k: v for k, v in resource.items() if not k.startswith(("onset", "recorded", "performed", "effective", "authored", "whenHandedOver", "period"))}
    head, _, tail = path.partition(".")
    out[head] = {tail: value, **({"start": "2024-01-01"} if tail == "end" else {})} if tail else value
    return out


PROCEDURE = {"resourceType": "Procedure", "id": "pr1", "status": "completed", "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": CPT, "code": "96413"}]}}
ORDER = {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order", "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "121191"}]}}
COVERAGE = {"resourceType": "Coverage", "id": "cv1", "status": "active", "beneficiary": {"reference": "Patient/p1"}, "payor": [{"reference": "Organization/x"}]}
DATED = [
    (condition("C83.38"), "onsetDateTime"),
    (condition("C83.38"), "onsetPeriod.start"),
    (condition("C83.38"), "recordedDate"),
    (PROCEDURE, "performedDateTime"),
    (PROCEDURE, "performedPeriod.start"),
    (administration(RXNORM, "121191", "2024-01-01"), "effectiveDateTime"),
    (administration(RXNORM, "121191", "2024-01-01"), "effectivePeriod.end"),
    (dispense(28), "whenHandedOver"),
    (ORDER, "authoredOn"),
    (COVERAGE, "period.start"),
    (COVERAGE, "period.end"),
]
OUT_OF_RANGE = [
    pytest.param(resource, path, day, id=f"{resource['resourceType']}.{path}={day[:4]}")
    for resource, path in DATED
    for day in ("0001-01-01", "1899-12-31", "2101-01-01T00:00:00Z", "9999-12-31")
    if (path, day) != ("period.end", "9999-12-31")  # open-ended coverage, below
]


@pytest.mark.parametrize("resource, path, day", OUT_OF_RANGE)
def test_dates_outside_1900_to_2100_are_named(codes, resource, path, day):
    """A date REST would refuse (outside 1900-01-01..2100-12-31) is a 422 naming the element, value not
    echoed; before, year 1 or 9999 became a real event date."""
    with pytest.raises(InvalidInput) as caught:
        read(bundle(patient(), _with(resource, path, day)), codes)
    assert caught.value.errors == [{"field": f"entry[1].resource.{path}", "rule": "date_range", "message": "must lie in 1900-01-01..2100-12-31"}]
    assert day[:4] not in json.dumps(caught.value.to_body())


@pytest.mark.parametrize("element, day", [("birthDate", "0001-01-01"), ("birthDate", "1899"), ("deceasedDateTime", "9999-12-31T00:00:00Z")])
def test_patient_dates_outside_1900_to_2100_are_named(codes, element, day):
    """Birth and death dates follow the same bounds, named on the Patient's entry."""
    with pytest.raises(InvalidInput) as caught:
        read(bundle(condition("C83.38"), patient(**{element: day})), codes)
    assert [(e["field"], e["rule"]) for e in caught.value.errors] == [(f"entry[1].resource.{element}", "date_range")]


def test_every_out_of_range_date_is_named_at_once(codes):
    """All refused values come back in one 422, in entry order, so a caller fixes them together."""
    with pytest.raises(InvalidInput) as caught:
        read(bundle(patient(birthDate="1800-01-01"), condition("C83.38", "2024-01-01"), condition("C83.38", "2500-01-01"), dispense(400)), codes)
    assert [e["field"] for e in caught.value.errors] == ["entry[0].resource.birthDate", "entry[2].resource.onsetDateTime", "entry[3].resource.daysSupply.value"]


def test_the_date_bounds_themselves_are_accepted(codes):
    """1900-01-01 and 2100-12-31 are real days (a future event is kept; scoring ignores it after as_of)."""
    history = read(bundle(patient(birthDate="1900-01-01"), condition("C83.38", "2100-12-31")), codes)
    assert history.persons.iloc[0]["birth_date"] == pd.Timestamp("1900-01-01")
    assert history.events["date"].tolist() == [pd.Timestamp("2100-12-31")]


def test_coverage_ending_9999_12_31_is_open_ended(codes):
    """The batch contract's open-end convention: a Coverage period.end of 9999-12-31 means no end."""
    span = read(bundle(patient(), {**COVERAGE, "period": {"start": "2020-01-01", "end": "9999-12-31"}}), codes).events.iloc[0]
    assert span["kind"] == "enrollment" and span["date"] == pd.Timestamp("2020-01-01") and pd.isna(span["end_date"])


def test_birth_after_every_dated_event_is_named_on_the_patient(codes):
    """The REST door's rule on FHIR: a birthDate after every dated event is a 422 on the
    Patient's entry (coverage spans are not events), without echoing the date."""
    with pytest.raises(InvalidInput) as caught:
        read(bundle(condition("C83.38", "2024-01-05"), patient(birthDate="2090-01-01"), {**COVERAGE, "period": {"start": "2095-01-01"}}), codes)
    assert [(e["field"], e["rule"]) for e in caught.value.errors] == [("entry[1].resource.birthDate", "date_range")]
    assert "2090" not in json.dumps(caught.value.to_body())
    assert read(bundle(condition("C83.38", "2024-01-05"), patient(birthDate="2024-01-05")), codes).events["code"].tolist() == ["C8338"]


def test_events_after_death_are_named_by_entry(codes):
    """An event dated more than a day after deceasedDateTime is a 422 on its entry, once per
    resource; the day after death is within the contract's grace."""
    dead = patient(deceasedDateTime="2024-03-01T10:00:00Z")
    with pytest.raises(InvalidInput) as caught:
        read(bundle(dead, condition("C83.38", "2024-03-02"), administration(HCPCS, "J9312", "2024-03-03"), condition("C83.38", "2024-01-05")), codes)
    assert [(e["field"], e["rule"]) for e in caught.value.errors] == [("entry[2].resource", "after_death")]
    history = read(bundle(dead, condition("C83.38", "2024-03-02")), codes)
    assert history.events["kind"].tolist() == ["diagnosis", "death"]
