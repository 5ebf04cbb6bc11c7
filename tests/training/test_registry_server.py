"""Against a real ``mlflow server`` process: train, register, move aliases, load the champion
back through the server and score with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from models.artifact import MODEL_NAME
from models.loading import load_model
from models.scoring import score_members
from training.registry import CHALLENGER, CHAMPION, connect, current_champion, log_training_run, promote_version, resolve_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real tracking server on loopback with its own SQLite store and artifact folder; always
    terminated (its whole process group: the server forks workers)."""
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(mlflow_bin), "server",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "server-artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}: {(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not become healthy within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_train_register_promote_load_and_score_through_a_server(trained, contract_data, mlflow_server, tmp_path, monkeypatch):
    """The whole registry path works against a real server, and the loaded champion scores."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("CARTSCOUT_USER", "integration-test")
    previous = mlflow.get_tracking_uri()
    try:
        store = resolve_store(tmp_path)
        assert not store.embedded
        registered = log_training_run(trained, store)
        client, _ = connect(store)
        assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == registered.version

        outcome = promote_version(CHALLENGER, store, reason="integration test", force=True)
        assert current_champion(client) == registered.version == outcome.version
        assert client.get_model_version(MODEL_NAME, registered.version).tags["promoted_by"] == "integration-test"

        model = load_model(f"models:/{MODEL_NAME}@{CHAMPION}", cache_dir=tmp_path / "cache")
        assert model.version == registered.version and not model.from_local_copy

        persons = contract_data.persons.iloc[:400]
        events = contract_data.events[contract_data.events["person_id"].isin(persons["person_id"])]
        as_of = pd.Series(pd.Timestamp("2025-06-30"), index=pd.Index(persons["person_id"], name="person_id"))
        results = score_members(model, events, persons, as_of)
        assert len(results) == len(persons)
        assert all(r["model_version"] == registered.version for r in results)
        assert any(r["score"] is not None for r in results)
    finally:
        mlflow.set_tracking_uri(previous)
