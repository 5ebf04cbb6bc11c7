"""Route dependencies as ``Annotated`` aliases (the shared state, the log record, the caller) and
``current_model``. Failures are ``service.errors`` problems; that module alone owns status codes.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from service.auth import Principal
from service.errors import Forbidden, ModelUnavailable
from service.logging import RequestRecord
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_record(request: Request) -> RequestRecord:
    """The request's log record (the logging middleware puts it in the ASGI scope state)."""
    record = request.scope.get("state", {}).get("log")
    return record if record is not None else RequestRecord(request_id="unlogged")


State = Annotated[ServiceState, Depends(get_state)]
Record = Annotated[RequestRecord, Depends(get_record)]
AuthorizationHeader = Annotated[str | None, Header(include_in_schema=False)]


def require_rest_caller(request: Request, state: State, record: Record, authorization: AuthorizationHeader = None) -> Principal:
    """REST endpoints: a JWT from a trusted issuer or an API key."""
    principal = state.authenticator.authenticate(authorization, request.url.path, accept_api_key=True)
    record.auth = principal.kind
    return principal


def require_cds_client(request: Request, state: State, record: Record, authorization: AuthorizationHeader = None) -> Principal:
    """CDS Hooks endpoints: the EHR's JWT (API keys only when the service runs in apikey mode)."""
    principal = state.authenticator.authenticate(authorization, request.url.path, accept_api_key=False)
    record.auth = principal.kind
    return principal


def require_admin(request: Request, state: State, record: Record, authorization: AuthorizationHeader = None) -> Principal:
    """Admin endpoints: an API key whose hash is in ``CARTSCOUT_ADMIN_KEY_HASHES``."""
    if state.settings.auth == "off":
        record.auth = "anonymous"
        return Principal(kind="anonymous")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        if any(hmac.compare_digest(digest, known) for known in state.settings.admin_key_hashes):
            record.auth = "admin"
            return Principal(kind="apikey", key_hash=digest[:12])
    principal = state.authenticator.authenticate(authorization, request.url.path, accept_api_key=True)
    record.auth = principal.kind
    raise Forbidden("this endpoint needs an admin API key")


def current_model(state: ServiceState) -> Any:
    """The serving model, read once so the whole request uses one version.

    Called inside routes (not as a dependency) so that a malformed body is a 422 even while no
    model is loaded: FastAPI resolves dependencies before it reports body validation errors.
    """
    model = state.slot.current
    if model is None:
        raise ModelUnavailable("no model is loaded yet; see /readyz")
    return model


RestCaller = Annotated[Principal, Depends(require_rest_caller)]
CdsClient = Annotated[Principal, Depends(require_cds_client)]
Admin = Annotated[Principal, Depends(require_admin)]
