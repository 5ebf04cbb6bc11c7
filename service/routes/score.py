"""REST scoring: one member (``POST /v1/score``) or a batch (``POST /v1/score/batch``) in the
contract's JSON shape. Plain ``def`` endpoints: mapping and scoring are CPU-bound and run in the
threadpool, keeping the event loop free to read and answer other requests; ``state.scoring_gate``
lets ``CARTSCOUT_SCORING_THREADS`` of them (default 1) compute at a time, as threads scoring side
by side only contend for the GIL.

What the route built for one request (the validated body, the member's frames, the result) is
released after the answer has been sent, not when the route returns: tearing down a few thousand
objects took ~0.25 ms of every request's latency in the worker thread."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Response
from starlette.background import BackgroundTask

from service.deps import ScoringRequest, current_model, parse_body
from service.errors import InvalidInput
from service.history import load_member_history
from service.schemas import BatchScoreRequest, BatchScoreResponse, ScoreRequest, ScoreResponse
from service.scoring import score_histories

router = APIRouter(prefix="/v1/score", tags=["scoring"])


@router.post("", response_model=ScoreResponse, summary="Score one member's claims history")
def score_member(call: ScoringRequest) -> Response:
    """Status, calibrated score, label eligibility per CAR T product, lines of therapy and the
    top contributing factors for one member, as of ``as_of`` (default: today, UTC). The body is a
    ``ScoreRequest``."""
    state, record = call.state, call.record
    with state.scoring_gate:
        body = parse_body(ScoreRequest, call.raw)
        model = current_model(state)
        history = load_member_history([body], model.codes, today=datetime.now(timezone.utc).date())
        result = score_histories(model, history.events, history.persons, history.as_of, history.events_after_as_of, record=record, metrics=state.metrics, hasher=state.hasher)[0]
    return json_response(result, keep=(body, history))


@router.post("/batch", response_model=BatchScoreResponse, summary="Score several members in one call")
def score_batch(call: ScoringRequest) -> Response:
    """The same result per member as ``/v1/score``, in request order; at most
    ``CARTSCOUT_MAX_BATCH_MEMBERS`` members per call (default 1,000). The body is a
    ``BatchScoreRequest``."""
    state, record = call.state, call.record
    with state.scoring_gate:
        body = parse_body(BatchScoreRequest, call.raw)
        limit = state.settings.max_batch_members
        if len(body.members) > limit:
            raise InvalidInput(f"at most {limit} members per batch", errors=[{"field": "members", "rule": "max_length", "message": f"at most {limit} members per call"}])
        model = current_model(state)
        history = load_member_history(body.members, model.codes, today=datetime.now(timezone.utc).date(), field_prefix=("members",))
        results = score_histories(model, history.events, history.persons, history.as_of, history.events_after_as_of, record=record, metrics=state.metrics, hasher=state.hasher)
    response = BatchScoreResponse(results=results, model_name=model.name, model_version=str(model.version), rules_version=model.rules_version)
    return json_response(response, keep=(body, history))


def json_response(body: ScoreResponse | BatchScoreResponse, keep: tuple = ()) -> Response:
    """The response, serialised here in the worker thread. Returned as a model, FastAPI would
    validate it against ``response_model`` again in a second threadpool hop before dumping it;
    the model was built by validation already, so its JSON is final. ``keep`` (and ``body``) stay
    referenced until the answer is sent, so their teardown happens after it."""
    return Response(body.model_dump_json(), media_type="application/json", background=BackgroundTask(_release, body, *keep))


async def _release(*_objects: object) -> None:
    """A no-op background task (run on the event loop after the body is sent) whose arguments are
    the objects to free once the task is dropped."""
