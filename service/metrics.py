"""Prometheus metrics: traffic, latency and the score distribution, labelled by model version.

Each app gets its own registry (so tests and several apps in one process do not collide). The
endpoint label is the route template (``/v1/score``), never the raw path, to keep cardinality fixed.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    """The collectors of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cartscout_requests", "HTTP requests by endpoint, status and model version.", ["endpoint", "method", "status", "model_version"], registry=self.registry
        )
        self.latency = Histogram(
            "cartscout_request_duration_seconds", "Request latency by endpoint and status.", ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.scores = Histogram("cartscout_score", "Calibrated scores returned, by model version.", ["model_version"], buckets=SCORE_BUCKETS, registry=self.registry)
        self.statuses = Counter("cartscout_member_status", "Member results by status and model version.", ["status", "model_version"], registry=self.registry)
        self.coalesced = Histogram(
            "cartscout_coalesced_members",
            "Members per pipeline call of /v1/score (requests that queued behind a busy scorer are scored together).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "cartscout_model_info", "The model currently serving (value 1).", ["model_name", "model_version", "rules_version", "from_local_copy"], registry=self.registry
        )

    def observe_result(self, score: float | None, status: str, model_version: str) -> None:
        if score is not None and score == score:
            self.scores.labels(model_version).observe(score)
        self.statuses.labels(status, model_version).inc()

    def set_model(self, name: str, version: str, rules_version: str, from_local_copy: bool) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, rules_version, str(from_local_copy).lower()).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting and timing every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            code = str(status["code"])
            record = scope.get("state", {}).get("log")
            version = (record.model_version if record is not None else None) or "none"
            self.metrics.requests.labels(endpoint, scope.get("method", ""), code, version).inc()
            self.metrics.latency.labels(endpoint, scope.get("method", ""), code).observe(time.perf_counter() - started)
