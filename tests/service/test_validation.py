"""Bad input: RFC 9457 problem details naming the field and index, never echoing the values sent."""

from __future__ import annotations

import json

import pytest

from .factories import make_claim, make_member, relapsed_dlbcl_member


def problem(response) -> dict:
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code
    return body


def fields(body: dict) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def test_impossible_date_names_the_nested_field_and_index(client, api_headers):
    """February 30th on the fourth claim line is a 422 naming medical_claims[3].claim_start_date."""
    member = relapsed_dlbcl_member()
    member["medical_claims"][3]["claim_start_date"] = "2024-02-30"
    body = problem(client.post("/v1/score", json=member, headers=api_headers))
    assert "medical_claims[3].claim_start_date" in fields(body)


@pytest.mark.parametrize("where, value", [("birth_date", "1850-06-01"), ("claim_start_date", "2101-01-01")])
def test_dates_outside_1900_to_2100_are_422_naming_the_field(client, api_headers, where, value):
    """A real calendar day outside 1900-01-01..2100-12-31 is refused, naming the field and never echoing the value."""
    member = relapsed_dlbcl_member()
    if where == "birth_date":
        member["demographics"]["birth_date"] = value
        field = "demographics.birth_date"
    else:
        member["medical_claims"][2]["claim_start_date"] = value
        member["medical_claims"][2]["claim_end_date"] = value
        field = "medical_claims[2].claim_start_date"
    body = problem(client.post("/v1/score", json=member, headers=api_headers))
    assert field in fields(body)
    assert value not in json.dumps(body)


def test_batch_errors_carry_the_member_index(client, api_headers):
    """In a batch the field path starts with members[i]."""
    bad = relapsed_dlbcl_member("m2")
    bad["medical_claims"][0]["claim_start_date"] = "2024-13-01"
    body = problem(client.post("/v1/score/batch", json={"members": [relapsed_dlbcl_member("m1"), bad]}, headers=api_headers))
    assert "members[1].medical_claims[0].claim_start_date" in fields(body)


def test_error_bodies_never_echo_patient_data(client, api_headers):
    """Identifiers, birth dates, codes and ZIPs in a rejected body do not appear in the error."""
    member = make_member("PATIENT-SECRET-42", birth_date="1951-02-30")
    member["demographics"]["zip_code"] = "9999X"
    member["medical_claims"].append(make_claim("CLAIM-SECRET-7", __import__("datetime").date(2024, 1, 1), hcpcs="ZZZZZZZZZ", diagnoses=("Q99.X99X",)))
    member["medical_claims"][-1]["claim_end_date"] = "2023-01-01"
    response = client.post("/v1/score", json=member, headers=api_headers)
    body = problem(response)
    text = response.text
    for secret in ("PATIENT-SECRET-42", "1951-02-30", "9999X", "CLAIM-SECRET-7", "ZZZZZZZZZ", "Q99.X99X", "2023-01-01"):
        assert secret not in text
    assert {"demographics.birth_date", "demographics.zip_code"} <= set(fields(body))


def test_unknown_fields_are_rejected(client, api_headers):
    """Extra members anywhere in the body are 422 naming them (extra='forbid')."""
    member = relapsed_dlbcl_member()
    member["ssn"] = "000-00-0000"
    member["medical_claims"][0]["paid_amount"] = 12.5
    body = problem(client.post("/v1/score", json=member, headers=api_headers))
    assert {"ssn", "medical_claims[0].paid_amount"} <= set(fields(body))
    assert "000-00-0000" not in json.dumps(body)


def test_end_before_start_names_the_end_field(client, api_headers):
    """A claim or enrollment span that ends before it starts is an error on the end field."""
    member = relapsed_dlbcl_member()
    member["enrollment"][0]["enrollment_end_date"] = "2019-01-01"
    member["medical_claims"][2]["claim_end_date"] = "2023-01-01"
    body = problem(client.post("/v1/score", json=member, headers=api_headers))
    assert {"enrollment[0].enrollment_end_date", "medical_claims[2].claim_end_date"} <= set(fields(body))


def test_malformed_codes_name_their_list_index(scoring_client, api_headers):
    """A diagnosis that is not ICD-10-CM and an NDC whose segments do not add up are named by position."""
    member = relapsed_dlbcl_member()
    member["medical_claims"][1]["diagnosis_codes"] = ["C83.38", "12345"]
    member["pharmacy_claims"] = [{"claim_id": "rx1", "dispensing_date": "2024-03-01", "ndc_code": "1234-567-8"}]
    body = problem(scoring_client.post("/v1/score", json=member, headers=api_headers))
    assert set(fields(body)) == {"medical_claims[1].diagnosis_codes[1]", "pharmacy_claims[0].ndc_code"}
    assert "12345" not in json.dumps(body) and "1234-567-8" not in json.dumps(body)


def test_too_many_diagnosis_codes_on_one_claim(client, api_headers):
    """More than Tuva's 25 diagnosis columns on one claim is a 422 on that list."""
    member = relapsed_dlbcl_member()
    member["medical_claims"][0]["diagnosis_codes"] = ["C83.38"] * 26
    assert "medical_claims[0].diagnosis_codes" in fields(problem(client.post("/v1/score", json=member, headers=api_headers)))


def test_batch_over_the_limit_is_refused(client, api_headers):
    """More members than CARTSCOUT_MAX_BATCH_MEMBERS (3 in tests) is a 422 on members."""
    members = [make_member(f"m{i}") for i in range(4)]
    body = problem(client.post("/v1/score/batch", json={"members": members}, headers=api_headers))
    assert fields(body) == ["members"]


def test_invalid_json_is_a_422_not_a_500(client, api_headers):
    """A body that is not JSON is a clear 422."""
    response = client.post("/v1/score", content=b'{"person_id": ', headers={**api_headers, "content-type": "application/json"})
    assert problem(response)["status"] == 422


def test_body_over_the_limit_by_content_length(client, api_headers):
    """A declared Content-Length over the limit is refused with 413 before reading it."""
    response = client.post("/v1/score", content=b" " * (65 * 1024), headers={**api_headers, "content-type": "application/json"})
    assert problem(response)["status"] == 413


def test_chunked_body_over_the_limit(client, api_headers):
    """A chunked body (no Content-Length) is counted as it streams and refused with 413."""

    def chunks():
        for _ in range(20):
            yield b" " * 8192

    response = client.post("/v1/score", content=chunks(), headers={**api_headers, "content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert problem(response)["status"] == 413


def test_fhir_as_of_must_be_a_real_date(client, api_headers):
    """?as_of=2024-02-30 is a 422 naming as_of."""
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": []}
    assert fields(problem(client.post("/v1/fhir/score?as_of=2024-02-30", json=bundle, headers=api_headers))) == ["as_of"]


@pytest.mark.parametrize("path", ["/v1/score", "/v1/fhir/score"])
def test_valid_input_without_a_model_is_503(client, api_headers, path):
    """A well-formed request while no model is loaded is 503 problem+json, not 500."""
    body = relapsed_dlbcl_member() if path == "/v1/score" else {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]}
    assert problem(client.post(path, json=body, headers=api_headers))["status"] == 503


def test_oversized_body_is_a_413_even_without_credentials(client):
    """The scoring routes read the body before checking the caller, so an anonymous oversized
    chunked body is refused as too large, not as unauthenticated."""

    def chunks():
        for _ in range(20):
            yield b" " * 8192

    response = client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert problem(response)["status"] == 413


def test_birth_after_every_service_date_is_422_on_the_birth_date(scoring_client, api_headers):
    """The contract's rule (a birth date in the future of the member's own data) holds for a
    request too: refused naming demographics.birth_date, without echoing the date."""
    member = relapsed_dlbcl_member()
    member["demographics"]["birth_date"] = "2090-01-01"
    body = problem(scoring_client.post("/v1/score", json=member, headers=api_headers))
    assert fields(body) == ["demographics.birth_date"] and body["errors"][0]["rule"] == "date_range"
    assert "2090-01-01" not in json.dumps(body)


def test_service_dates_after_death_are_422_naming_each_line(scoring_client, api_headers):
    """A claim or fill more than a day after the recorded death (another person's claim, or a wrong
    death date) is refused naming the line; the day after death is accepted (contract's grace)."""
    member = relapsed_dlbcl_member()
    last = max(c["claim_start_date"] for c in member["medical_claims"])
    member["demographics"]["death_date"] = last
    member["pharmacy_claims"] = [{"claim_id": "rx1", "dispensing_date": "2099-01-01", "ndc_code": "00069-0101-01"}]
    body = problem(scoring_client.post("/v1/score", json=member, headers=api_headers))
    assert fields(body) == ["pharmacy_claims[0].dispensing_date"] and body["errors"][0]["rule"] == "after_death"
    member["pharmacy_claims"] = []
    member["demographics"]["death_date"] = "2000-01-01"
    body = problem(scoring_client.post("/v1/score/batch", json={"members": [relapsed_dlbcl_member("m1"), member]}, headers=api_headers))
    assert len(fields(body)) == len(member["medical_claims"])
    assert all(f.startswith("members[1].medical_claims[") and f.endswith("].claim_start_date") for f in fields(body))
