"""One JSON log line per request, with no protected health information in it.

The line carries what operations and model monitoring need (request id, endpoint, status, model
version, latency, score band, CDS card ids for joining feedback) and identifies members only by a
keyed hash (HMAC-SHA256 with a secret from settings): the same member hashes the same way within a
deployment, so an operator can follow one member's requests, but the hash cannot be reversed or
recomputed from a list of member ids without the key. Names, birth dates, codes, request bodies
and tokens never reach the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_LOGGER = "cartscout.service.requests"
SERVICE_LOGGER = "cartscout.service"


class MemberHasher:
    """Keyed, truncated HMAC of member identifiers for logs."""

    def __init__(self, key: bytes | None):
        self._key = key if key else secrets.token_bytes(32)

    def __call__(self, member_id: str) -> str:
        return hmac.new(self._key, member_id.encode(), hashlib.sha256).hexdigest()[:16]


def score_band(score: float | None) -> str | None:
    """Tenths of the calibrated score (``0.7-0.8``): enough to monitor drift, too coarse to identify."""
    if score is None or score != score:
        return None
    lower = min(int(score * 10), 9) / 10
    return f"{lower:.1f}-{lower + 0.1:.1f}"


@dataclass
class RequestRecord:
    """What one request contributes to its log line; routes fill it through ``request.state.log``."""

    request_id: str
    member_hashes: list[str] = field(default_factory=list)
    model_version: str | None = None
    bands: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    card_ids: list[str] = field(default_factory=list)
    auth: str | None = None
    note: str | None = None

    def add_member(self, hashed_id: str) -> None:
        self.member_hashes.append(hashed_id)

    def add_result(self, score: float | None, status: str) -> None:
        band = score_band(score)
        if band:
            self.bands[band] += 1
        self.statuses[status] += 1


class JsonLineFormatter(logging.Formatter):
    """Render the ``fields`` dict attached to a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {"ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"), "level": record.levelname.lower()}
        payload.update(getattr(record, "fields", {"message": record.getMessage()}))
        return json.dumps(payload, separators=(",", ":"), default=str)


def configure_logging() -> None:
    """Send the service's loggers to stderr as JSON lines (idempotent; called by create_app)."""
    for name in (REQUEST_LOGGER, SERVICE_LOGGER):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not any(getattr(h, "_cartscout", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonLineFormatter())
            handler._cartscout = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """A service-level (non-request) JSON log line, e.g. model loaded or auth disabled."""
    logging.getLogger(SERVICE_LOGGER).log(level, event, extra={"fields": {"event": event, **fields}})


class RequestLogMiddleware:
    """Pure ASGI middleware: times the request, captures the status, writes the line."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.logger = logging.getLogger(REQUEST_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(request_id=secrets.token_hex(8))
        scope.setdefault("state", {})["log"] = record
        status = {"code": 500}
        response = {"started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["started"] = True
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", record.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Starlette has already answered 500 and re-raised; uvicorn would print the traceback
            # with the exception's message, which can quote input values. Log where, not what.
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            record.note = f"unhandled {type(exc).__name__}" + (f" at {Path(frame.filename).name}:{frame.lineno}" if frame else "")
            if not response["started"]:
                await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/problem+json")]})
                await send({"type": "http.response.body", "body": b'{"title":"Internal error","status":500}'})
                status["code"] = 500
        finally:
            route = scope.get("route")
            fields: dict[str, Any] = {
                "event": "request",
                "request_id": record.request_id,
                "method": scope.get("method"),
                "endpoint": getattr(route, "path", None) or scope.get("path", "unmatched"),
                "status": status["code"],
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            optional = {
                "model_version": record.model_version,
                "auth": record.auth,
                "members": record.member_hashes or None,
                "score_band": next(iter(record.bands)) if sum(record.bands.values()) == 1 else None,
                "score_bands": dict(record.bands) if sum(record.bands.values()) > 1 else None,
                "result_status": dict(record.statuses) or None,
                "card_ids": record.card_ids or None,
                "note": record.note,
            }
            fields.update({k: v for k, v in optional.items() if v is not None})
            self.logger.log(logging.ERROR if status["code"] >= 500 else logging.INFO, "request", extra={"fields": fields})
