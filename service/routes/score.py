"""REST scoring: one member (``POST /v1/score``) or a batch (``POST /v1/score/batch``) in the
contract's JSON shape. Mapping and scoring are CPU-bound and run in scoring threads, keeping the
event loop free to read and answer other requests; ``state.scoring_gate`` lets
``CARTSCOUT_SCORING_THREADS`` of them (default 1) compute at a time, as threads scoring side by
side only contend for the GIL.

Single-member requests go through ``state.coalescer``: those that arrive while another is being
scored are mapped and scored together in one pipeline call (``score_waiting_members``), which
is what lets one worker keep up with many clients; alone, a request is scored at once, as before.

What a route built for one request (the validated body, the member's frames, the result) is
released after the answer has been handed over, not before: tearing down a few thousand objects
took ~0.25 ms of every request's latency in the worker thread."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError
from starlette.background import BackgroundTask

from service.coalescing import Deliver
from service.deps import ScoringRequest, current_model, parse_body
from service.errors import BodyTooLarge, InvalidInput, ModelUnavailable, Unauthenticated
from service.history import load_member_history
from service.logging import RequestRecord
from service.openapi import json_body, problem_responses
from service.schemas import BatchScoreRequest, BatchScoreResponse, ScoreRequest, ScoreResponse
from service.scoring import score_histories
from service.state import ServiceState

router = APIRouter(prefix="/v1/score", tags=["scoring"])

ERRORS = problem_responses(Unauthenticated, BodyTooLarge, InvalidInput, ModelUnavailable)


@router.post("", response_model=ScoreResponse, summary="Score one member's claims history", responses=ERRORS, openapi_extra=json_body(ScoreRequest))
async def score_member(call: ScoringRequest) -> Response:
    """Status, calibrated score, label eligibility per CAR T product, lines of therapy and the
    top contributing factors for one member, as of ``as_of`` (default: today, UTC). The body is a
    ``ScoreRequest``."""
    answer = await call.state.coalescer.submit((call.raw, call.record))
    return Response(answer, media_type="application/json")


def score_waiting_members(state: ServiceState, requests: Sequence[tuple[bytes, RequestRecord]], deliver: Deliver) -> None:
    """Answer single-member requests (raw body, log record) with their JSON: bodies that do not
    validate get their own 422 and the rest are scored in one pipeline call, each member's
    history keyed by its position, since two requests may name the same member."""
    with state.scoring_gate:
        bodies, records, positions = [], [], []
        for position, (raw, record) in enumerate(requests):
            try:
                bodies.append(parse_body(ScoreRequest, raw))
            except RequestValidationError as error:
                deliver(position, error)
                continue
            records.append(record)
            positions.append(position)
        if not bodies:
            return
        model = current_model(state)
        state.metrics.coalesced.observe(len(bodies))
        keyed = bodies if len(bodies) == 1 else [body.model_copy(update={"person_id": str(i)}) for i, body in enumerate(bodies)]
        history = load_member_history(keyed, model.codes, today=datetime.now(timezone.utc).date())
        results = score_histories(
            model, history.event_columns, history.persons, history.as_of, history.events_after_as_of,
            records=records, metrics=state.metrics, hasher=state.hasher, person_ids=[body.person_id for body in bodies],
        )
        for position, result in zip(positions, results):
            deliver(position, result.model_dump_json().encode())


@router.post("/batch", response_model=BatchScoreResponse, summary="Score several members in one call", responses=ERRORS, openapi_extra=json_body(BatchScoreRequest))
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
        results = score_histories(model, history.event_columns, history.persons, history.as_of, history.events_after_as_of, records=[record] * len(body.members), metrics=state.metrics, hasher=state.hasher)
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
