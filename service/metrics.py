"""Prometheus metrics: traffic, latency and the score distribution, labelled by model version.

Each app gets its own registry (so tests and several apps in one process do not collide). The
endpoint label is the route template (``/v1/score``), never the raw path, to keep cardinality fixed.

Under ``cartscout serve --workers N`` each worker is its own process and a scrape reaches whichever
worker accepts it, so the workers write their samples to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode, which the command switches on) and ``/metrics`` reports
all workers together: request counts are sums, ``cartscout_model_info`` the versions serving in
any live worker.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
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
            "cartscout_model_info",
            "The model serving (1) or replaced (0), by version.",
            ["model_name", "model_version", "rules_version", "from_local_copy"],
            registry=self.registry,
            multiprocess_mode="livemax",  # 1 while any live worker serves it
        )
        self._model_labels: tuple[str, ...] | None = None

    def observe_result(self, score: float | None, status: str, model_version: str) -> None:
        if score is not None and score == score:
            self.scores.labels(model_version).observe(score)
        self.statuses.labels(status, model_version).inc()

    def set_model(self, name: str, version: str, rules_version: str, from_local_copy: bool) -> None:
        """Mark the new model serving and the one it replaces not (set to 0, not removed: another
        worker may still serve it, and the multiprocess files cannot forget a series)."""
        if self._model_labels is not None:
            self.model_info.labels(*self._model_labels).set(0)
        self._model_labels = (name, version, rules_version, str(from_local_copy).lower())
        self.model_info.labels(*self._model_labels).set(1)

    def render(self) -> bytes:
        """The exposition text: this process's registry, or every worker's samples in multiprocess mode."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)


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
