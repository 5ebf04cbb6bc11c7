"""The FastAPI application. Until the scoring service lands it answers only ``/healthz``."""

from fastapi import FastAPI


def create_app() -> FastAPI:
    """Build the app; nothing happens at import time."""
    app = FastAPI(title="cartscout", version="0.1.0")

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Process liveness: answers while the process runs."""
        return {"status": "ok"}

    return app
