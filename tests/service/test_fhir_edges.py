"""FHIR and CDS Hooks end to end: public Synthea bundles through both doors, as_of defaults, and
impossible values refused over HTTP (a named 422, never a 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.cds import SERVICE_ID
from service.schemas import FhirScoreResponse

from .conftest import FHIR_BUNDLES, make_loader
from .test_cds_hooks import assert_no_null_or_empty, hook_request
from .test_fhir_mapping import bundle, condition, dispense, patient

SERVICE = f"/cds-services/{SERVICE_ID}"
SYNTHEA = sorted(FHIR_BUNDLES.glob("*.json"))
PREFETCH_TYPES = {"conditions": "Condition", "procedures": "Procedure", "medicationAdministrations": "MedicationAdministration", "medicationRequests": "MedicationRequest"}


@pytest.fixture
def large_client(settings, model_dir) -> Iterator[TestClient]:
    """The scoring app with a body limit that fits a whole Synthea bundle (~860 KB)."""
    with TestClient(create_app(settings.model_copy(update={"max_body_bytes": 2 * 1024 * 1024}), loader=make_loader(model_dir))) as test_client:
        yield test_client


def synthea_resources(path: Path) -> tuple[dict, list[dict]]:
    """(the Patient, every resource) of a Synthea bundle."""
    resources = [e["resource"] for e in json.loads(path.read_text())["entry"]]
    (person,) = [r for r in resources if r["resourceType"] == "Patient"]
    return person, resources


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


@pytest.mark.parametrize("path", SYNTHEA, ids=lambda p: p.name[:20])
def test_synthea_bundle_scores_over_http(large_client, api_headers, path):
    """A whole Synthea transaction Bundle posted to /v1/fhir/score: a valid result with its unmapped codes counted by system."""
    response = large_client.post("/v1/fhir/score", content=path.read_bytes(), headers={**api_headers, "content-type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:300]
    result = FhirScoreResponse.model_validate(response.json())
    assert result.person_id == synthea_resources(path)[0]["id"]
    assert result.unmapped_codes.get("snomed", 0) > 0 and all(isinstance(n, int) and n > 0 for n in result.unmapped_codes.values())
    assert result.skipped_resources.get("not_read:Observation", 0) > 0 and result.eligibility


@pytest.mark.parametrize("path", SYNTHEA, ids=lambda p: p.name[:20])
def test_synthea_patient_as_cds_prefetch(large_client, sign, path):
    """The same patients as patient-view prefetch: 200, a cards list, no null or empty member anywhere."""
    person, resources = synthea_resources(path)
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources if r["resourceType"] == rtype]} for key, rtype in PREFETCH_TYPES.items()}
    response = large_client.post(SERVICE, json=hook_request({"patient": person, **prefetch}, pid=person["id"]), headers={"Authorization": f"Bearer {sign(SERVICE)}"})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert isinstance(body["cards"], list)
    assert_no_null_or_empty(body)


def test_fhir_score_is_as_of_today_by_default(scoring_client, api_headers):
    """Without ?as_of the FHIR result is as of today (UTC)."""
    before = today()
    body = scoring_client.post("/v1/fhir/score", json=bundle(patient(), condition("C83.38")), headers=api_headers).json()
    assert body["as_of"] in {before, today()}  # either side of a midnight during the call


@pytest.mark.parametrize(
    "resources, field, rule",
    [
        ((patient(), condition("C83.38", "9999-12-31")), "entry[1].resource.onsetDateTime", "date_range"),
        ((patient(birthDate="0001-01-01"),), "entry[0].resource.birthDate", "date_range"),
        ((patient(), dispense(1e9)), "entry[1].resource.daysSupply.value", "days_supply"),
    ],
)
def test_impossible_values_are_a_named_422(scoring_client, api_headers, resources, field, rule):
    """Year 1/9999 dates and a billion-day supply are a problem+json 422 naming the element, not a 500 or a result."""
    response = scoring_client.post("/v1/fhir/score", json=bundle(*resources), headers=api_headers)
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["rule"]) for e in response.json()["errors"]] == [(field, rule)]
    assert "9999" not in response.text and "0001" not in response.text and "1000000000" not in response.text
