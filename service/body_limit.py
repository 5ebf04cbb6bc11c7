"""Request body size limit, enforced on the raw byte stream.

A ``Content-Length`` over the limit is refused before any byte is read; a chunked body (no length
announced) is counted as it arrives and refused the moment it crosses the limit, so a client
cannot make the service buffer an arbitrarily large body by leaving the length out.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTooLarge, problem_response


class BodyLimitMiddleware:
    """Pure ASGI middleware answering 413 for bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = BodyTooLarge(f"request body exceeds the limit of {self.max_bytes} bytes")
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False
            if too_large:
                await problem_response(error)(scope, receive, send)
                return

        received = 0
        exceeded = False
        forwarded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Whatever the framework makes of the failed read (FastAPI turns any read error
                    # into a 400), the answer is replaced by the 413 below.
                    exceeded = True
                    raise error
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal forwarded
            if exceeded and not forwarded:
                return
            forwarded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or forwarded:
                raise
        if exceeded and not forwarded:
            await problem_response(error)(scope, receive, send)
