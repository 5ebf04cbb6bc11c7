"""The OpenAPI document: the bodies the scoring routes read themselves, problem+json errors, and
references that all resolve."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def document(client, api_headers) -> dict[str, Any]:
    """The document as a caller gets it (authenticated)."""
    response = client.get("/openapi.json", headers=api_headers)
    assert response.status_code == 200
    return response.json()


def follow(document: dict[str, Any], ref: str) -> Any:
    """The value a local ``$ref`` (a JSON pointer) names; KeyError when it names nothing."""
    assert ref.startswith("#/"), ref
    value: Any = document
    for part in ref[2:].split("/"):
        value = value[part.replace("~1", "/").replace("~0", "~")]
    return value


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its chain of ``$ref`` followed."""
    while "$ref" in schema:
        schema = follow(document, schema["$ref"])
    return schema


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    return resolve(document, body["content"]["application/json"]["schema"])


def test_single_member_body_is_documented(document):
    """/v1/score reads its body itself, yet documents it: a ScoreRequest, with its nested schemas."""
    schema = body_schema(document, "/v1/score")
    assert schema["type"] == "object" and {"person_id", "demographics"} <= set(schema["required"])
    demographics = resolve(document, schema["properties"]["demographics"])
    assert "birth_date" in demographics["required"]
    claim = resolve(document, schema["properties"]["medical_claims"]["items"])
    assert {"claim_id", "claim_start_date"} <= set(claim["required"])


def test_batch_body_is_documented(document):
    """/v1/score/batch documents {"members": [ScoreRequest, ...]}."""
    schema = body_schema(document, "/v1/score/batch")
    assert schema["type"] == "object" and schema["required"] == ["members"]
    member = resolve(document, schema["properties"]["members"]["items"])
    assert {"person_id", "demographics"} <= set(member["required"])


def test_every_reference_resolves(document):
    """No $ref points at a missing schema and no $defs is left inside a path."""
    refs = [value for key, value in walk(document) if key == "$ref"]
    assert refs
    for ref in refs:
        follow(document, ref)
    assert not [key for key, _ in walk(document) if key == "$defs"]


def test_errors_are_documented_as_problem_json(document):
    """Every 422 (and the scoring routes' 401, 413 and 503) is problem+json with the one Problem
    schema; FastAPI's HTTPValidationError is gone."""
    responses = {(path, method): operation["responses"] for path, item in document["paths"].items() for method, operation in item.items()}
    unprocessable = {key: codes["422"] for key, codes in responses.items() if "422" in codes}
    assert ("/v1/score", "post") in unprocessable and ("/v1/fhir/score", "post") in unprocessable
    for response in unprocessable.values():
        assert list(response["content"]) == [PROBLEM_JSON]
        assert response["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    for path in ("/v1/score", "/v1/score/batch"):
        assert {"401", "413", "422", "503"} <= set(responses[(path, "post")])
        assert all(list(responses[(path, "post")][code]["content"]) == [PROBLEM_JSON] for code in ("401", "413", "503"))
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_problem_schema_describes_real_error_bodies(client, api_headers, document):
    """Bodies the service sends (a 422 with field errors, a 401) have exactly the documented members."""
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    field_error = resolve(document, problem["properties"]["errors"]["items"])
    invalid = client.post("/v1/score", json={"person_id": "p"}, headers=api_headers)
    unauthenticated = client.post("/v1/score", json={})
    for response in (invalid, unauthenticated):
        body = response.json()
        assert response.headers["content-type"] == PROBLEM_JSON
        assert set(problem["required"]) <= set(body) <= set(problem["properties"])
    assert invalid.status_code == 422 and invalid.json()["errors"]
    for error in invalid.json()["errors"]:
        assert set(error) == set(field_error["required"]) == set(field_error["properties"])


def test_fhir_route_documents_fhir_json(document):
    """The FHIR route accepts application/fhir+json as well as application/json."""
    content = document["paths"]["/v1/fhir/score"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/fhir+json"} <= set(content)


def test_document_is_built_once(client, api_headers, document):
    """Serving the document again neither rebuilds nor changes it: it is FastAPI's cached one, finished in place."""
    app = client.app
    assert app.openapi() is app.openapi() is app.openapi_schema
    assert client.get("/openapi.json", headers=api_headers).json() == document
