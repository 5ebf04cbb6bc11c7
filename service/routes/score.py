"""REST scoring: one member (``POST /v1/score``) or a batch (``POST /v1/score/batch``) in the
contract's JSON shape. Plain ``def`` endpoints: scoring is CPU-bound and runs in the threadpool,
where LightGBM releases the GIL and the second core gets used."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter

from service.deps import Record, RestCaller, State, current_model
from service.errors import InvalidInput
from service.history import load_member_history
from service.schemas import BatchScoreRequest, BatchScoreResponse, ScoreRequest, ScoreResponse
from service.scoring import score_histories

router = APIRouter(prefix="/v1/score", tags=["scoring"])


@router.post("", response_model=ScoreResponse, summary="Score one member's claims history")
def score_member(body: ScoreRequest, state: State, record: Record, _caller: RestCaller) -> ScoreResponse:
    """Status, calibrated score, label eligibility per CAR T product, lines of therapy and the
    top contributing factors for one member, as of ``as_of`` (default: today, UTC)."""
    model = current_model(state)
    history = load_member_history([body], model.codes, today=datetime.now(timezone.utc).date())
    return score_histories(model, history.events, history.persons, history.as_of, history.events_after_as_of, record=record, metrics=state.metrics, hasher=state.hasher)[0]


@router.post("/batch", response_model=BatchScoreResponse, summary="Score several members in one call")
def score_batch(body: BatchScoreRequest, state: State, record: Record, _caller: RestCaller) -> BatchScoreResponse:
    """The same result per member as ``/v1/score``, in request order; at most
    ``CARTSCOUT_MAX_BATCH_MEMBERS`` members per call (default 1,000)."""
    limit = state.settings.max_batch_members
    if len(body.members) > limit:
        raise InvalidInput(f"at most {limit} members per batch", errors=[{"field": "members", "rule": "max_length", "message": f"at most {limit} members per call"}])
    model = current_model(state)
    history = load_member_history(body.members, model.codes, today=datetime.now(timezone.utc).date(), field_prefix=("members",))
    results = score_histories(model, history.events, history.persons, history.as_of, history.events_after_as_of, record=record, metrics=state.metrics, hasher=state.hasher)
    return BatchScoreResponse(results=results, model_name=model.name, model_version=str(model.version), rules_version=model.rules_version)
