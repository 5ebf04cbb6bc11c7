"""The OpenAPI document as the service really behaves.

Two things FastAPI cannot see from the routes are added once, when the document is first built:
the bodies the REST scoring routes read themselves (``deps.parse_body`` validates the raw bytes
off the event loop, so FastAPI declares no body parameter), and the error body every failure
really has (``errors.install_error_handlers``: RFC 9457 problem+json, not FastAPI's
``HTTPValidationError``). ``create_app`` installs :func:`documented_openapi` as ``app.openapi``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from service.errors import PROBLEM_JSON, InvalidInput, Problem, ProblemError
from service.schemas import BatchScoreRequest, ScoreRequest

COMPONENT_REF = "#/components/schemas/{model}"
# Schemas the document refers to that FastAPI cannot collect from the routes: the problem body of
# every error, and the bodies the REST scoring routes read themselves (``json_body``).
HAND_DOCUMENTED = ((Problem, "serialization"), (ScoreRequest, "validation"), (BatchScoreRequest, "validation"))
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def problem_responses(*errors: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` documenting ``errors`` as problem+json bodies (the ``Problem`` schema)."""
    return {error.status: problem_response_doc(error) for error in errors}


def problem_response_doc(error: type[ProblemError]) -> dict[str, Any]:
    """One OpenAPI response object for ``error``."""
    return {"description": error.title, "content": {PROBLEM_JSON: {"schema": {"$ref": COMPONENT_REF.format(model=Problem.__name__)}}}}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route reads itself: a reference to ``model``,
    whose schema :func:`documented_openapi` adds (it must be listed in ``HAND_DOCUMENTED``)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": COMPONENT_REF.format(model=model.__name__)}}}}}


def documented_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app``, built and finished on first use, then cached on the app."""
    if app.openapi_schema is None:
        _finish(FastAPI.openapi(app))
    return app.openapi_schema


def _finish(document: dict[str, Any]) -> None:
    """Add the hand-documented schemas to components/schemas and document FastAPI's default 422
    responses as what the service answers: problem+json."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = TypeAdapter.json_schemas([(kind, mode, TypeAdapter(kind)) for kind, mode in HAND_DOCUMENTED], ref_template=COMPONENT_REF)
    for name, schema in definitions["$defs"].items():
        if schemas.get(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name} in the OpenAPI document")
        schemas[name] = schema
    default_422 = {"$ref": COMPONENT_REF.format(model="HTTPValidationError")}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema") == default_422:
                responses["422"] = problem_response_doc(InvalidInput)
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
