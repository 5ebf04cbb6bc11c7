"""FHIR R4 scoring: ``POST /v1/fhir/score`` with a Bundle of one patient's records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from service.deps import Record, RestCaller, State, current_model
from service.fhir import read_bundle
from service.schemas import Day, FhirScoreResponse
from service.scoring import score_fhir_history

router = APIRouter(prefix="/v1/fhir", tags=["fhir"])

BUNDLE_EXAMPLE = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "example", "birthDate": "1958-03-01", "gender": "male"}}]}


@router.post(
    "/score",
    response_model=FhirScoreResponse,
    summary="Score one patient from a FHIR R4 Bundle",
    openapi_extra={"requestBody": {"content": {"application/fhir+json": {"schema": {"type": "object"}}}}},
)
def score_bundle(
    bundle: Annotated[dict[str, Any], Body(examples=[BUNDLE_EXAMPLE], media_type="application/json")],
    state: State,
    record: Record,
    _caller: RestCaller,
    as_of: Annotated[Day | None, Query(description="Evaluation date YYYY-MM-DD; default today (UTC).")] = None,
) -> FhirScoreResponse:
    """A searchset, collection or transaction Bundle with Patient, Condition, Procedure,
    Medication* and Coverage resources (``application/json`` or ``application/fhir+json``).
    Codes that cannot be mapped are counted in ``unmapped_codes``."""
    model = current_model(state)
    with state.scoring_gate:
        history = read_bundle(bundle, model.codes, rxnorm=state.rxnorm_lookup(model))
        return score_fhir_history(model, history, as_of or datetime.now(timezone.utc).date(), record=record, metrics=state.metrics, hasher=state.hasher)
