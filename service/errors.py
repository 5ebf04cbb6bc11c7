"""HTTP errors as RFC 9457 problem details (``application/problem+json``); the one module that
knows status codes.

::

    ProblemError                  any answer that is not a result; carries status, title, detail
    ├── InvalidInput          422 the body parsed but broke a rule (field named, value never echoed)
    ├── Unauthenticated       401 no credentials, or credentials that do not verify
    ├── Forbidden             403 verified credentials that may not call this endpoint
    ├── BodyTooLarge          413 the request body is over the configured limit
    ├── PrefetchMissing       412 CDS Hooks prefetch we need is absent and we cannot fetch it
    └── ModelUnavailable      503 no model is loaded (yet)

Every error body names the offending field (``members[3].medical_claims[0].claim_start_date``)
and what rule it broke, but never the value that was sent: request bodies carry patient data,
and error bodies end up in logs, browser consoles and support tickets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from typing_extensions import NotRequired, TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:cartscout:problem:"


class FieldError(TypedDict):
    """One rule a request broke: where and which, never the value that was sent."""

    field: Annotated[str, Field(description="Path of the field at fault, e.g. members[3].medical_claims[0].claim_start_date.")]
    rule: Annotated[str, Field(description="The check it failed, e.g. missing, date_range, max_length.")]
    message: str


# What ProblemError.to_body builds; its JSON schema is the one problem schema of the OpenAPI
# document, so its docstring and descriptions are what API readers see.
class Problem(TypedDict):
    """The body of every error answer: RFC 9457 problem details, plus the fields at fault when a
    request broke rules."""

    type: Annotated[str, Field(description=f"{PROBLEM_TYPE_BASE}<kind>, e.g. {PROBLEM_TYPE_BASE}invalid-input.")]
    title: str
    status: int
    detail: str
    instance: NotRequired[Annotated[str, Field(description="The request path; absent when the body was refused before routing (413).")]]
    errors: NotRequired[list[FieldError]]


class ProblemError(Exception):
    """An answer that is not a result: rendered as ``application/problem+json``."""

    status = 500
    title = "Internal error"
    slug = "internal"

    def __init__(self, detail: str, *, errors: Sequence[FieldError] = (), headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}

    def to_body(self, instance: str | None = None) -> Problem:
        body: Problem = {"type": PROBLEM_TYPE_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body


class InvalidInput(ProblemError):
    status, title, slug = 422, "Invalid input", "invalid-input"


class Unauthenticated(ProblemError):
    status, title, slug = 401, "Authentication required", "unauthenticated"

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="cartscout"'})


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class BodyTooLarge(ProblemError):
    status, title, slug = 413, "Request body too large", "body-too-large"


class PrefetchMissing(ProblemError):
    status, title, slug = 412, "Prefetch data missing", "prefetch-missing"


class ModelUnavailable(ProblemError):
    status, title, slug = 503, "No model loaded", "model-unavailable"


def format_location(loc: Iterable[str | int]) -> str:
    """``("body", "members", 3, "claims", 0, "date")`` -> ``members[3].claims[0].date``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("body", "query", "path", "header") and not parts:
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def describe_validation_errors(raw_errors: Sequence[dict[str, Any]], prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Pydantic errors -> ``[{"field", "rule", "message"}]`` without the offending input values.

    Pydantic's ``msg`` for a ``value_error`` is our own validator's text (which never quotes the
    value); for built-in checks it describes the expected type or range, not the input. ``input``
    and ``ctx`` are dropped on purpose.
    """
    out = []
    for err in raw_errors:
        loc = [*prefix, *err.get("loc", ())]
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            message = "body is not valid JSON"
            loc = list(prefix) or ["body"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append({"field": format_location(loc), "rule": str(err.get("type", "invalid")), "message": message})
    return out


def problem_response(error: ProblemError, request: Request | None = None) -> JSONResponse:
    """Render ``error`` with the problem media type and its headers."""
    instance = request.url.path if request is not None else None
    return JSONResponse(error.to_body(instance), status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through :func:`problem_response`."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = describe_validation_errors(exc.errors())
        fields = ", ".join(e["field"] for e in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        return problem_response(InvalidInput(f"{len(errors)} invalid field(s): {fields}{more}", errors=errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ProblemError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status, error.title, error.slug = exc.status_code, _reason(exc.status_code), "http-" + str(exc.status_code)
        return problem_response(error, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server log via the request log line's status; the body says nothing.
        return problem_response(ProblemError("The service failed to process this request."), request)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
