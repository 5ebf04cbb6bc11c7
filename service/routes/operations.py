"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document, model reload."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import Admin, RestCaller, State
from service.errors import Forbidden, ModelUnavailable, Unauthenticated, problem_response
from service.openapi import problem_responses
from service.schemas import ReadinessResponse, ReloadResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Process liveness: answers while the process runs (open, no authentication)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadinessResponse, responses=problem_responses(ModelUnavailable))
def readyz(request: Request, state: State):
    """Ready when a model is loaded: its name, version, rules version and whether it came from
    the local copy because the registry was unreachable (open, no authentication)."""
    model = state.slot.current
    if model is None:
        detail = "no model loaded" + (f" (last attempt failed: {state.slot.last_error})" if state.slot.last_error else "")
        return problem_response(ModelUnavailable(detail), request)
    return ReadinessResponse(
        status="ready",
        model_name=model.name,
        model_version=str(model.version),
        rules_version=model.rules_version,
        feature_set_version=model.feature_set_version,
        from_local_copy=bool(model.from_local_copy),
    )


@router.get("/metrics", response_class=Response, responses=problem_responses(Unauthenticated))
def metrics(state: State, _caller: RestCaller) -> Response:
    """Prometheus exposition: request counts and latency by endpoint and status, scores by model version."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _caller: RestCaller) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.post("/admin/model/reload", response_model=ReloadResponse, responses=problem_responses(Unauthenticated, Forbidden, ModelUnavailable))
def reload_model(state: State, _admin: Admin):
    """Re-resolve the model alias now; swap atomically if it moved (in-flight requests finish on the old model)."""
    swapped = state.slot.reload()
    model = state.slot.current
    if model is None:
        raise ModelUnavailable("no model could be loaded")
    return ReloadResponse(swapped=swapped, model_name=model.name, model_version=str(model.version))
