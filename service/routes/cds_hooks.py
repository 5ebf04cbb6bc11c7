"""CDS Hooks 2.0 endpoints: discovery, the ``cartscout-candidate`` patient-view service, feedback."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import cds
from service.deps import CdsClient, Record, State, current_model
from service.errors import InvalidInput
from service.fhir import bundle_from_prefetch, read_bundle
from service.scoring import score_fhir_history
from service.schemas import CdsDiscovery, CdsFeedbackRequest, CdsRequest, CdsResponse, FeedbackReceipt

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])


@router.get("", response_model=CdsDiscovery, summary="CDS Hooks discovery")
def discover(_client: CdsClient) -> JSONResponse:
    return JSONResponse(cds.render(cds.discovery()))


@router.post(f"/{cds.SERVICE_ID}", response_model=CdsResponse, summary="patient-view: CAR T candidacy card")
def patient_view(body: CdsRequest, state: State, record: Record, _client: CdsClient) -> JSONResponse:
    """At most one card (``warning``: eligible now; ``info``: likely soon); ``{"cards": []}`` otherwise."""
    record.request_id = body.hookInstance
    if body.hook != cds.HOOK:
        raise InvalidInput("this service answers the patient-view hook", errors=[{"field": "hook", "rule": "literal", "message": f"must be {cds.HOOK!r}"}])
    patient_id = body.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise InvalidInput("context.patientId is required", errors=[{"field": "context.patientId", "rule": "required", "message": "a FHIR Patient id is required"}])
    patient, bundles = cds.split_prefetch(body.prefetch, patient_id)
    model = current_model(state)
    with state.scoring_gate:
        history = read_bundle(bundle_from_prefetch(patient, bundles), model.codes, person_id=patient_id, rxnorm=state.rxnorm_lookup(model))
        result = score_fhir_history(model, history, datetime.now(timezone.utc).date(), record=record, metrics=state.metrics, hasher=state.hasher)
    cards = cds.build_cards(result, info_url=state.settings.info_url)
    record.card_ids = [c.uuid for c in cards]
    return JSONResponse(cds.render(CdsResponse(cards=cards)))


@router.post(f"/{cds.SERVICE_ID}/feedback", response_model=FeedbackReceipt, summary="Record card outcomes (accepted/overridden)")
def feedback(body: CdsFeedbackRequest, state: State, record: Record, _client: CdsClient) -> FeedbackReceipt:
    """Stored without PHI or free text, for later evaluation of acceptance and override rates."""
    recorded = state.feedback.append(body, cds.SERVICE_ID)
    record.card_ids = [item.card for item in body.feedback]
    return FeedbackReceipt(recorded=recorded)
