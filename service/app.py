"""The FastAPI application: REST, FHIR R4 and CDS Hooks scoring, secure by default.

``create_app()`` builds everything; nothing happens at import time. The lifespan loads the model
once (resolving ``CARTSCOUT_MODEL_URI``'s alias to one version), starts the alias poller, and
logs loudly if authentication is off. Middleware, outermost first: request log line, metrics,
body size limit (and CORS when configured).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from service.auth import Authenticator
from service.body_limit import BodyLimitMiddleware
from service.cds import FeedbackLog
from service.coalescing import Coalescer
from service.errors import install_error_handlers
from service.garbage_collector import settled_garbage_collector
from service.logging import MemberHasher, RequestLogMiddleware, configure_logging, log_event
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.model_slot import Loader, ModelSlot, Resolver
from service.openapi import documented_openapi
from service.routes import cds_hooks, fhir, operations, score
from service.settings import Settings, get_settings
from service.state import ServiceState

def load_registered_model(uri: str, cache_dir: Path | None) -> Any:
    """The production loader: ``models.loading.load_model`` (MLflow registry + local copy)."""
    from models.loading import load_model

    return load_model(uri, cache_dir)


def resolve_registered_version(uri: str) -> str | None:
    """The production resolver: which version the registry's alias names now."""
    from models.loading import resolve_version

    return resolve_version(uri)


def create_app(settings: Settings | None = None, *, loader: Loader | None = None, resolver: Resolver | None = None) -> FastAPI:
    """Build the app from ``settings`` (default: the environment via ``get_settings()``).

    ``loader(uri, cache_dir) -> model`` defaults to the MLflow registry loader; tests pass a loader
    that reads a model directory, or one that fails to simulate an unreachable registry.
    ``resolver(uri) -> version`` (the registry's by default, none with a test loader unless given)
    lets a poll skip loading a version that is already serving.
    """
    settings = settings or get_settings()
    configure_logging()
    metrics = ServiceMetrics()
    slot = ModelSlot(
        loader or load_registered_model,
        settings.model_uri,
        settings.model_cache_dir,
        on_swap=lambda m: metrics.set_model(m.name, str(m.version), m.rules_version, bool(m.from_local_copy)),
        resolver=resolve_registered_version if loader is None else resolver,
    )
    key = settings.log_hash_key.get_secret_value().encode() if settings.log_hash_key else None
    state = ServiceState(
        settings=settings,
        authenticator=Authenticator(settings),
        metrics=metrics,
        hasher=MemberHasher(key),
        feedback=FeedbackLog(settings.feedback_path),
        slot=slot,
        scoring_gate=threading.BoundedSemaphore(settings.scoring_threads),
    )
    state.coalescer = Coalescer(
        functools.partial(score.score_waiting_members, state), max_items=settings.coalesce_max_members, threads=settings.scoring_threads
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth == "off":
            log_event(
                "authentication_disabled",
                logging.WARNING,
                message="AUTHENTICATION IS OFF (CARTSCOUT_AUTH=off): every endpoint is open to anyone who can reach this port. Use only for a local demo.",
            )
        if settings.log_hash_key is None:
            log_event("log_hash_key_random", logging.WARNING, message="CARTSCOUT_LOG_HASH_KEY is unset: member hashes in logs change at every restart.")
        if settings.mlflow_tracking_uri:
            import mlflow

            mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        await run_in_threadpool(_warm_up_fhir_models)
        await run_in_threadpool(slot.reload)
        with settled_garbage_collector():  # what start-up loaded stays out of every collection
            slot.start_polling(settings.model_poll_seconds)
            try:
                yield
            finally:
                slot.stop_polling()

    app = FastAPI(
        title="cartscout",
        version="0.1.0",
        summary="Finds members who are, or are about to become, CAR T-cell therapy candidates.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = state
    app.openapi = functools.partial(documented_openapi, app)  # served, behind auth, by /openapi.json
    install_error_handlers(app)
    for router in (operations.router, score.router, fhir.router, cds_hooks.router):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLogMiddleware)
    return app


def _warm_up_fhir_models() -> None:
    """Import the FHIR model classes now, not on the first clinician's request (~0.2 s)."""
    from fhir.resources.R4B import get_fhir_model_class

    from service.fhir import READ_TYPES

    for name in READ_TYPES:
        get_fhir_model_class(name)
