"""FHIR R4 member data ingest: a Bundle (or CDS Hooks prefetch) -> the event model.

Only the resources that carry diagnosis and treatment history are read, each validated with the
``fhir.resources`` R4B model of its type (R4B element names equal R4's for these resources);
validating only these, instead of the whole Bundle, keeps a 500-entry Synthea bundle at a few
milliseconds instead of a third of a second:

================================= ==================================================================
Patient                           person: birthDate (partial dates -> first day), gender, postalCode,
                                  deceasedDateTime
Condition                         ``diagnosis`` events from ICD-10-CM codings (dotted ``C83.38`` or
                                  dotless); refuted / entered-in-error conditions are skipped
Procedure                         ``procedure`` events from CPT/HCPCS (``hcpcs``) or ICD-10-PCS codings;
                                  a HCPCS drug code becomes ``drug_admin`` as on a claim
MedicationAdministration          ``drug_admin``
MedicationDispense                ``drug_fill`` (pharmacy, with daysSupply)
MedicationRequest / Statement     ``drug_fill``: evidence the drug was given, without a claim
Coverage                          ``enrollment`` spans from ``period``
================================= ==================================================================

Medication codings: RxNorm ingredient CUIs map through ``features/codelists/rxnorm_ingredients.csv``;
other RxNorm concepts (clinical drugs such as "rituximab 10 MG/ML Injection") map by the
ingredient names in their RxNorm display, which RxNorm builds from ingredient + strength + form.
NDC and HCPCS codings map as on claims. A resource none of whose codings maps is counted in
``unmapped_codes`` by code system (never dropped silently); undated or not-done resources are
counted in ``skipped``.

Values the REST API would refuse are refused here too, naming ``entry[i].resource.<element>``
(422): a date read outside 1900-01-01..2100-12-31 (``date_range``; a Coverage ``period.end`` of
9999-12-31 means open-ended, as in the batch contract) and a MedicationDispense ``daysSupply``
outside 0..365 (``days_supply``); a birthDate after every dated event (``date_range``) and an event
dated more than a day after deceasedDateTime (``after_death``), as ``service.history`` checks REST.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from contract.code_formats import clean_hcpcs, clean_icd10cm, clean_icd10pcs, clean_ndc
from contract.validation import DEATH_GRACE_DAYS, OPEN_END_DATE
from features.codelists import CodeLists, normalise_code
from features.events import conform_events, conform_persons
from service.errors import InvalidInput, describe_validation_errors
from service.history import life_date_faults
from service.schemas import MAX_DAY, MAX_DAYS_SUPPLY, MIN_DAY

ICD10CM = ("http://hl7.org/fhir/sid/icd-10-cm",)
ICD10PCS = ("http://www.cms.gov/Medicare/Coding/ICD10",)
CPT = ("http://www.ama-assn.org/go/cpt",)
HCPCS = ("https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets")
RXNORM = ("http://www.nlm.nih.gov/research/umls/rxnorm",)
NDC = ("http://hl7.org/fhir/sid/ndc",)
SYSTEM_NAMES = {
    **{s: "icd10cm" for s in ICD10CM},
    **{s: "icd10pcs" for s in ICD10PCS},
    **{s: "cpt" for s in CPT},
    **{s: "hcpcs" for s in HCPCS},
    **{s: "rxnorm" for s in RXNORM},
    **{s: "ndc" for s in NDC},
    "http://snomed.info/sct": "snomed",
    "http://loinc.org": "loinc",
    "http://hl7.org/fhir/sid/icd-10": "icd10-who",
}
BUNDLE_TYPES = ("searchset", "collection", "transaction", "batch")
READ_TYPES = (
    "Patient",
    "Condition",
    "Procedure",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationRequest",
    "MedicationStatement",
    "Coverage",
    "Medication",
)
MEDICATION_KIND = {
    "MedicationAdministration": ("drug_admin", "unknown"),
    "MedicationDispense": ("drug_fill", "pharmacy"),
    "MedicationRequest": ("drug_fill", "unknown"),
    "MedicationStatement": ("drug_fill", "unknown"),
}
_MAX_ERRORS = 50


@dataclass
class FhirHistory:
    """One patient's events and person row, plus what could not be used and why."""

    person_id: str
    events: pd.DataFrame
    persons: pd.DataFrame
    unmapped_codes: dict[str, int] = field(default_factory=dict)
    mapped_resources: dict[str, int] = field(default_factory=dict)
    skipped_resources: dict[str, int] = field(default_factory=dict)


class OutOfRange(ValueError):
    """A value FHIR allows but the REST API refuses, raised where it is read; the caller names its
    entry, so the 422 says ``entry[i].resource.<path>`` without echoing the value."""

    def __init__(self, path: str, rule: str, message: str):
        super().__init__(message)
        self.path, self.rule, self.message = path, rule, message

    def field_error(self, index: int) -> dict[str, str]:
        return {"field": f"entry[{index}].resource.{self.path}", "rule": self.rule, "message": self.message}


class RxNormLookup:
    """RxNorm codings -> ingredient CUIs of the drugs cartscout knows (by CUI, else by display)."""

    def __init__(self, codes: CodeLists):
        rx = codes.drugs[codes.drugs["code_system"] == "rxnorm"]
        self.by_cui = {str(c): str(c) for c in rx["code"]}
        first_cui = rx.drop_duplicates("generic").set_index("generic")["code"]
        names = {str(p).lower(): str(c) for p, c in zip(rx["product"], rx["code"])}
        names.update({str(g).lower(): str(c) for g, c in first_cui.items()})
        # Longest names first so "rituximab-abbs" wins over "rituximab".
        self._names = sorted(names.items(), key=lambda kv: -len(kv[0]))
        self._pattern = re.compile(r"(?<![a-z0-9-])(" + "|".join(re.escape(n) for n, _ in self._names) + r")(?![a-z0-9-])") if self._names else None
        self._cui_by_name = dict(self._names)

    def ingredients(self, code: str, display: str | None) -> list[str]:
        if code in self.by_cui:
            return [code]
        if not display or self._pattern is None:
            return []
        found = self._pattern.findall(display.lower())
        return sorted({self._cui_by_name[name] for name in found})


def read_bundle(bundle: Any, codes: CodeLists, *, person_id: str | None = None, rxnorm: RxNormLookup | None = None) -> FhirHistory:
    """Map a FHIR R4 Bundle holding one patient's records to events and persons.

    Raises :class:`InvalidInput` naming ``entry[i].resource.<element>`` for invalid resources or
    values out of the REST API's range, a missing or second Patient, or a resource about another patient.
    """
    entries = _bundle_entries(bundle)
    return _read_resources(entries, codes, person_id=person_id, rxnorm=rxnorm or RxNormLookup(codes))


def bundle_from_prefetch(patient: Any, bundles: Mapping[str, Any]) -> dict[str, Any]:
    """Join CDS Hooks prefetch (a Patient plus searchset Bundles) into one collection Bundle."""
    entries: list[dict[str, Any]] = [{"resource": patient}]
    for key, bundle in bundles.items():
        found = bundle.get("entry") if isinstance(bundle, dict) else None
        if found is None:
            continue
        if not isinstance(found, list):
            raise InvalidInput("a prefetch Bundle's entry is not a list", errors=[{"field": f"prefetch.{key}.entry", "rule": "type", "message": "expected a list"}])
        entries += [entry for entry in found if isinstance(entry, dict) and _search_mode(entry) != "outcome"]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _search_mode(entry: dict[str, Any]) -> Any:
    """``entry.search.mode``; a search that is not an object counts as absent, like other malformed
    members of an entry (fullUrl, resource) that the mapping does not need."""
    search = entry.get("search")
    return search.get("mode") if isinstance(search, dict) else None


def _bundle_entries(bundle: Any) -> list[tuple[int, str | None, dict[str, Any]]]:
    if not isinstance(bundle, dict):
        raise InvalidInput("body must be a FHIR Bundle object", errors=[{"field": "body", "rule": "type", "message": "expected a JSON object"}])
    if bundle.get("resourceType") != "Bundle":
        raise InvalidInput("body must be a FHIR Bundle", errors=[{"field": "resourceType", "rule": "literal", "message": "must be 'Bundle'"}])
    if bundle.get("type") not in BUNDLE_TYPES:
        raise InvalidInput("unsupported Bundle type", errors=[{"field": "type", "rule": "literal", "message": f"must be one of {', '.join(BUNDLE_TYPES)}"}])
    raw_entries = bundle.get("entry", [])
    if not isinstance(raw_entries, list):
        raise InvalidInput("Bundle.entry must be a list", errors=[{"field": "entry", "rule": "type", "message": "expected a list"}])
    out = []
    for i, entry in enumerate(raw_entries):
        if not isinstance(entry, dict):
            raise InvalidInput("Bundle entry is not an object", errors=[{"field": f"entry[{i}]", "rule": "type", "message": "expected an object"}])
        resource = entry.get("resource")
        if isinstance(resource, dict):
            out.append((i, entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None, resource))
    return out


def _read_resources(entries: list[tuple[int, str | None, dict[str, Any]]], codes: CodeLists, *, person_id: str | None, rxnorm: RxNormLookup) -> FhirHistory:
    errors: list[dict[str, str]] = []
    kept: list[tuple[int, str | None, dict[str, Any]]] = []
    ignored: Counter = Counter()
    for i, full_url, resource in entries:
        rtype = resource.get("resourceType")
        if rtype not in READ_TYPES:
            ignored[f"not_read:{str(rtype)[:40]}"] += 1
            continue
        try:
            get_fhir_model_class(rtype).model_validate(resource)
        except (ValidationError, ValueError, TypeError) as exc:
            raw = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": "invalid resource", "type": "value_error"}]
            errors.extend(describe_validation_errors(raw, prefix=("entry", i, "resource")))
            continue
        kept.append((i, full_url, resource))
    if errors:
        raise InvalidInput(f"{len(errors)} invalid FHIR element(s)", errors=errors[:_MAX_ERRORS])

    patients = [(i, url, r) for i, url, r in kept if r["resourceType"] == "Patient"]
    if not patients:
        raise InvalidInput("the Bundle holds no Patient", errors=[{"field": "entry", "rule": "required", "message": "one Patient resource is required"}])
    if len({r.get("id") for _, _, r in patients}) > 1:
        raise InvalidInput("the Bundle holds more than one Patient", errors=[{"field": f"entry[{patients[1][0]}]", "rule": "single_patient", "message": "only one patient per Bundle"}])
    p_index, p_url, patient = patients[0]
    pid = person_id or patient.get("id") or "patient"
    own_refs = {f"Patient/{patient.get('id')}", f"urn:uuid:{patient.get('id')}"} | ({p_url} if p_url else set())
    medications = {ref: r for i, url, r in kept if r["resourceType"] == "Medication" for ref in ({f"Medication/{r.get('id')}"} | ({url} if url else set()))}

    rows: list[dict[str, Any]] = []
    unmapped: Counter = Counter()
    mapped: Counter = Counter()
    skipped: Counter = Counter(ignored)
    drug_hcpcs = set(codes.drugs.loc[codes.drugs["code_system"] == "hcpcs", "code"])
    refused: list[dict[str, str]] = []
    row_entry: list[int] = []  # the entry each row of ``rows`` came from
    birth = death = None
    try:
        birth = _first_day(patient, ("birthDate",))
        death = _first_day(patient, ("deceasedDateTime",))
    except OutOfRange as exc:
        refused.append(exc.field_error(p_index))
    for i, _, resource in kept:
        rtype = resource["resourceType"]
        if rtype in ("Patient", "Medication"):
            continue
        ref_field = "beneficiary" if rtype == "Coverage" else "subject"
        reference = (resource.get(ref_field) or {}).get("reference")
        if reference and not _same_patient(reference, own_refs, patient.get("id")):
            raise InvalidInput("a resource refers to another patient", errors=[{"field": f"entry[{i}].resource.{ref_field}.reference", "rule": "same_patient", "message": "refers to a different patient than the Bundle's Patient"}])
        before = len(rows)
        try:
            reason = _map_resource(resource, pid, rows, unmapped, drug_hcpcs, rxnorm, medications)
        except OutOfRange as exc:
            refused.append(exc.field_error(i))
            continue
        row_entry += [i] * (len(rows) - before)
        if reason:
            skipped[reason] += 1
        elif len(rows) > before:
            mapped[rtype] += 1
    refused += _life_date_refusals(rows, row_entry, birth, death, p_index)
    if refused:
        raise InvalidInput(f"{len(refused)} FHIR value(s) out of range", errors=refused[:_MAX_ERRORS])

    if death is not None:
        rows.append({"person_id": pid, "kind": "death", "date": death, "code_system": "", "code": "", "setting": "unknown", "claim_id": patient.get("id")})
    persons = conform_persons(
        pd.DataFrame(
            {
                "person_id": [pid],
                "birth_date": [birth],
                "sex": [patient.get("gender") if patient.get("gender") in ("male", "female") else "unknown"],
                "race": [None],
                "zip_code": [_zip5(patient.get("address"))],
                "payer_type": [None],
                "death_date": [death],
            }
        )
    )
    events = conform_events(pd.DataFrame(rows)) if rows else conform_events(pd.DataFrame({c: [] for c in ("person_id", "kind", "date", "code_system", "code")}))
    return FhirHistory(pid, events, persons, dict(unmapped), dict(mapped), dict(skipped))


def _life_date_refusals(rows: list[dict[str, Any]], row_entry: list[int], birth, death, p_index: int) -> list[dict[str, str]]:
    """The REST door's person-level date rules (``service.history.life_date_faults``) on the
    Bundle's dated events (coverage spans are not service dates), naming entries, not dates."""
    service = [k for k, row in enumerate(rows) if row["kind"] != "enrollment"]
    born_after, late = life_date_faults([rows[k]["date"] for k in service], birth, death)
    refusals = [{"field": f"entry[{p_index}].resource.birthDate", "rule": "date_range", "message": "after every dated event in the Bundle"}] if born_after else []
    for entry in dict.fromkeys(row_entry[service[position]] for position in late):
        refusals.append({"field": f"entry[{entry}].resource", "rule": "after_death", "message": f"dated more than {DEATH_GRACE_DAYS} day after the Patient's deceasedDateTime"})
    return refusals


def _same_patient(reference: str, own: set[str], patient_id: str | None) -> bool:
    if reference in own:
        return True
    return bool(patient_id) and reference.rstrip("/").endswith(f"/Patient/{patient_id}")


def _map_resource(resource: dict[str, Any], pid: str, rows: list[dict], unmapped: Counter, drug_hcpcs: set[str], rxnorm: RxNormLookup, medications: dict) -> str | None:
    """Append the resource's events to ``rows``; return a skip reason, or None."""
    rtype = resource["resourceType"]
    rid = resource.get("id")
    status = resource.get("status")
    if rtype == "Condition":
        verification = _codes_of(resource.get("verificationStatus"))
        if {"refuted", "entered-in-error"} & {c for _, c, _ in verification}:
            return "refuted_or_entered_in_error"
        day = _first_day(resource, ("onsetDateTime", "onsetPeriod.start", "recordedDate"))
        if day is None:
            return "undated"
        found = [clean_icd10cm(normalise_code(c)) for s, c, _ in _codes_of(resource.get("code")) if s in ICD10CM]
        found = [c for c in found if c is not None]
        _emit(rows, unmapped, resource.get("code"), [("diagnosis", "icd10cm", c) for c in found], pid, day, None, "unknown", rid)
        return None
    if rtype == "Procedure":
        if status in ("not-done", "entered-in-error", "preparation"):
            return "not_done"
        day = _first_day(resource, ("performedDateTime", "performedPeriod.start"))
        if day is None:
            return "undated"
        found = []
        for s, c, _ in _codes_of(resource.get("code")):
            if s in CPT + HCPCS and (code := clean_hcpcs(normalise_code(c))):
                found.append(("drug_admin" if code in drug_hcpcs else "procedure", "hcpcs", code))
            elif s in ICD10PCS and (code := clean_icd10pcs(normalise_code(c))):
                found.append(("procedure", "icd10pcs", code))
        _emit(rows, unmapped, resource.get("code"), found, pid, day, None, "unknown", rid)
        return None
    if rtype in MEDICATION_KIND:
        if status in ("not-done", "entered-in-error", "cancelled", "draft", "not-taken", "intended", "on-hold"):
            return "not_given"
        if rtype == "MedicationRequest" and resource.get("intent") in ("proposal", "plan", "option"):
            return "not_ordered"
        paths = {
            "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
            "MedicationDispense": ("whenHandedOver", "whenPrepared"),
            "MedicationRequest": ("authoredOn",),
            "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
        }[rtype]
        day = _first_day(resource, paths)
        if day is None:
            return "undated"
        concept = resource.get("medicationCodeableConcept")
        reference = (resource.get("medicationReference") or {}).get("reference")
        if concept is None and reference:
            contained = {f"#{c.get('id')}": c for c in resource.get("contained") or [] if isinstance(c, dict)}
            concept = (contained.get(reference) or medications.get(reference) or {}).get("code")
        kind, setting = MEDICATION_KIND[rtype]
        found = []
        for s, c, display in _codes_of(concept):
            if s in RXNORM:
                found += [(kind, "rxnorm", cui) for cui in rxnorm.ingredients(c.strip(), display)]
            elif s in NDC:
                if ndc := clean_ndc(c):
                    found.append((kind, "ndc", ndc))
            elif s in HCPCS + CPT and (code := clean_hcpcs(normalise_code(c))):
                found.append((kind, "hcpcs", code))
        supply = _days_supply(resource) if rtype == "MedicationDispense" else None
        end = _first_day(resource, ("effectivePeriod.end",)) if rtype != "MedicationDispense" else None
        _emit(rows, unmapped, concept, found, pid, day, end, setting, rid, days_supply=supply)
        return None
    if rtype == "Coverage":
        if status in ("cancelled", "entered-in-error", "draft"):
            return "not_active"
        start = _first_day(resource, ("period.start",))
        if start is None:
            return "undated"
        rows.append({"person_id": pid, "kind": "enrollment", "date": start, "end_date": _first_day(resource, ("period.end",), open_end=True), "code_system": "", "code": "", "setting": "unknown", "claim_id": rid})
        return None
    return None


def _emit(rows: list[dict], unmapped: Counter, concept: Any, found: list[tuple[str, str, str]], pid: str, day, end, setting: str, rid: str | None, days_supply: Any = None) -> None:
    if not found:
        systems = {SYSTEM_NAMES.get(s, s[:100] or "none") for s, _, _ in _codes_of(concept)} or {"none"}
        for system in systems:
            unmapped[system] += 1
        return
    supply = int(days_supply) if isinstance(days_supply, (int, float)) and days_supply >= 1 else None
    if supply and end is None:
        end = day + pd.Timedelta(days=supply - 1)
    for kind, system, code in dict.fromkeys(found):
        rows.append({"person_id": pid, "kind": kind, "date": day, "end_date": end, "code_system": system, "code": code, "setting": setting, "claim_id": rid, "days_supply": supply})


def _codes_of(concept: Any) -> Iterable[tuple[str, str, str | None]]:
    if not isinstance(concept, dict):
        return []
    return [(c.get("system") or "", c.get("code") or "", c.get("display")) for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]


def _days_supply(dispense: dict[str, Any]) -> Any:
    """``daysSupply.value``, refused outside the REST bounds: a fill's end date is start + supply,
    and a supply of years is a data error (a billion days overflows the date type)."""
    value = (dispense.get("daysSupply") or {}).get("value")
    if isinstance(value, (int, float)) and not 0 <= value <= MAX_DAYS_SUPPLY:
        raise OutOfRange("daysSupply.value", "days_supply", f"must be 0..{MAX_DAYS_SUPPLY} days")
    return value


def _first_day(resource: dict[str, Any], paths: Iterable[str], *, open_end: bool = False) -> pd.Timestamp | None:
    """The first of ``paths`` holding a date. A date outside MIN_DAY..MAX_DAY raises
    :class:`OutOfRange`, as REST refuses it; with ``open_end``, 9999-12-31 means no end."""
    for path in paths:
        value: Any = resource
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        day = _fhir_day(value)
        if day is None:
            continue
        if open_end and day == OPEN_END_DATE.date():
            return None
        if not MIN_DAY <= day <= MAX_DAY:
            raise OutOfRange(path, "date_range", f"must lie in {MIN_DAY}..{MAX_DAY}")
        return pd.Timestamp(day)
    return None


def _fhir_day(value: Any) -> date | None:
    """FHIR date/dateTime text -> the calendar day as written (partial dates -> first day).

    The local date is kept (``2012-06-16T23:30:00-05:00`` is the 16th): a clinician's day, not UTC's.
    """
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value[:10]
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:  # strptime, not pd.to_datetime: ~40x cheaper per scalar, and a bundle has hundreds of dates
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None


def _zip5(addresses: Any) -> str | None:
    for address in addresses or []:
        code = (address or {}).get("postalCode") if isinstance(address, dict) else None
        if isinstance(code, str) and re.match(r"^\d{5}", code.strip()):
            return code.strip()[:5]
    return None
