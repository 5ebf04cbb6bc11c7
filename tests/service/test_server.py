"""A real ``cartscout serve`` process on a loopback port, with a real MLflow registry behind it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.auth import hash_api_key

from .conftest import API_KEY, ISSUER
from .factories import relapsed_dlbcl_member

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CLI = Path(sys.executable).with_name("cartscout")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, model_dir) -> str:
    """A file-backed MLflow registry holding the test artifact as version 1 with alias @champion."""
    import mlflow
    from mlflow import MlflowClient

    from models.artifact import MODEL_NAME, artifact_paths
    from models.candidate import CandidatePyfunc

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("service-tests", artifact_location=(root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(name="model", python_model=CandidatePyfunc(), artifacts=artifact_paths(model_dir), registered_model_name=MODEL_NAME)
        MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", str(info.registered_model_version))
    finally:
        mlflow.set_tracking_uri(previous)
    return uri


class Server:
    def __init__(self, env: dict[str, str], tmp: Path, workers: int = 1):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / f"server-{self.port}.log").open("w+")
        command = [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def server_env(tmp_path: Path, tracking_uri: str, cache: Path, jwks_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARTSCOUT_", "MLFLOW_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        CARTSCOUT_MODEL_CACHE_DIR=str(cache),
        CARTSCOUT_MODEL_POLL_SECONDS="0",
        CARTSCOUT_API_KEY_HASHES=json.dumps([hash_api_key(API_KEY)]),
        CARTSCOUT_JWT_ISSUERS=json.dumps({ISSUER: str(jwks_file)}),
        CARTSCOUT_SERVICE_URL="https://cartscout.test",
        CARTSCOUT_LOG_HASH_KEY="server-test-key",
        CARTSCOUT_FEEDBACK_PATH=str(tmp_path / "feedback.jsonl"),
    )
    return env


def test_served_over_http_from_the_registry_and_from_the_local_copy(tmp_path, registry, jwks_file):
    """The server resolves @champion, scores over HTTP, refuses anonymous calls, and restarts from its
    local copy when the registry is unreachable (saying so in /readyz)."""
    cache = tmp_path / "model-cache"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    server = Server(server_env(tmp_path, registry, cache, jwks_file), tmp_path)
    try:
        ready = httpx.get(server.base + "/readyz", timeout=5)
        assert ready.status_code == 200, server.output()
        assert ready.json()["model_version"] == "1" and ready.json()["from_local_copy"] is False
        assert httpx.post(server.base + "/v1/score", json=relapsed_dlbcl_member(), timeout=10).status_code == 401
        assert httpx.get(server.base + "/cds-services", headers=headers, timeout=5).status_code == 401
        scored = httpx.post(server.base + "/v1/score", json=relapsed_dlbcl_member(), headers=headers, timeout=30)
        assert scored.status_code == 200
        assert scored.json()["status"] == "eligible_now" and scored.json()["model_version"] == "1"
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("endpoint") == "/v1/score" and line.get("status") == 200 for line in lines)
    assert "member-1" not in server.output()
    assert "Downloading artifacts" not in server.output()  # no progress bars in the log stream
    server.log.close()

    closed = f"http://127.0.0.1:{free_port()}"
    server = Server(server_env(tmp_path, closed, cache, jwks_file), tmp_path)
    try:
        ready = httpx.get(server.base + "/readyz", timeout=5).json()
        assert ready["model_version"] == "1" and ready["from_local_copy"] is True
        assert httpx.post(server.base + "/v1/score", json=relapsed_dlbcl_member(), headers=headers, timeout=30).status_code == 200
    finally:
        server.stop()
        server.log.close()



def test_a_jwt_replayed_to_another_worker_is_refused(tmp_path, registry, jwks_file, sign):
    """With two workers, one CDS Hooks token is accepted once, whichever worker each replay reaches
    (each call opens a new connection, so the kernel spreads them over both workers)."""
    server = Server(server_env(tmp_path, registry, tmp_path / "model-cache", jwks_file), tmp_path, workers=2)
    try:
        token = sign("/cds-services")
        statuses = [httpx.get(server.base + "/cds-services", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code for _ in range(12)]
        fresh = httpx.get(server.base + "/cds-services", headers={"Authorization": f"Bearer {sign('/cds-services')}"}, timeout=10)
    finally:
        server.stop()
        server.log.close()
    assert statuses == [200] + [401] * 11
    assert fresh.status_code == 200


def _scored_requests(exposition: str) -> float:
    """The cartscout_requests count of successful /v1/score calls in one scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "cartscout_requests_total" and sample.labels.get("endpoint") == "/v1/score" and sample.labels.get("status") == "200"
    )


def test_metrics_and_member_hashes_agree_across_workers(tmp_path, registry, jwks_file):
    """With two workers, every scrape of /metrics reports all requests served (each call on a new
    connection, so the kernel spreads calls and scrapes over both workers) and one serving model;
    without a configured log hash key, one member still hashes alike in every worker's log lines."""
    env = {k: v for k, v in server_env(tmp_path, registry, tmp_path / "model-cache", jwks_file).items() if k != "CARTSCOUT_LOG_HASH_KEY"}
    server = Server(env, tmp_path, workers=2)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        for _ in range(12):
            assert httpx.post(server.base + "/v1/score", json=relapsed_dlbcl_member(), headers=headers, timeout=30).status_code == 200
        scrapes = [httpx.get(server.base + "/metrics", headers=headers, timeout=10).text for _ in range(6)]
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    server.log.close()
    hashes = {tuple(line["members"]) for line in lines if line.get("event") == "request" and line.get("endpoint") == "/v1/score"}
    assert len(hashes) == 1
    assert [_scored_requests(text) for text in scrapes] == [12.0] * 6
    serving = [line for line in scrapes[0].splitlines() if line.startswith("cartscout_model_info{") and line.endswith(" 1.0")]
    assert len(serving) == 1 and 'model_version="1"' in serving[0]
