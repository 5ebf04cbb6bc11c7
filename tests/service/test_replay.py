"""The JWT replay store shared by workers: a (iss, jti) pair is accepted once while its token is valid."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fastapi.testclient import TestClient

from service.app import create_app
from service.replay import SqliteReplayCache

from .conftest import no_registry


def test_shared_store_accepts_a_pair_once_until_its_token_expires(tmp_path):
    """New pair: accepted; replay: refused; the same jti after its token expired: accepted again."""
    store = SqliteReplayCache(tmp_path / "jti.sqlite3", max_entries=100)
    assert store.check_and_add("iss", "j1", expires_at=1060.0, now=1000.0)
    assert not store.check_and_add("iss", "j1", expires_at=1060.0, now=1001.0)
    assert store.check_and_add("other-iss", "j1", expires_at=1060.0, now=1001.0)
    assert store.check_and_add("iss", "j1", expires_at=1200.0, now=1100.0)
    assert not store.check_and_add("iss", "j1", expires_at=1200.0, now=1150.0)


def test_shared_store_stays_bounded(tmp_path, monkeypatch):
    """Expired pairs are dropped and, over the bound, the soonest to expire go first."""
    monkeypatch.setattr(SqliteReplayCache, "PRUNE_EVERY", 10)
    store = SqliteReplayCache(tmp_path / "jti.sqlite3", max_entries=25)
    for i in range(100):
        assert store.check_and_add("iss", f"j{i}", expires_at=2000.0 + i, now=1000.0)
    assert len(store) <= 25 + 10
    assert not store.check_and_add("iss", "j99", expires_at=2099.0, now=1000.0)  # the latest are kept
    for i in range(10):
        store.check_and_add("iss", f"late{i}", expires_at=5000.0, now=3000.0)  # everything earlier has expired
    assert len(store) == 10


def test_two_processes_racing_on_the_same_tokens_accept_each_exactly_once(tmp_path):
    """Two processes offering the same 300 jti values at the same time accept each value once in total."""
    path = tmp_path / "jti.sqlite3"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from service.replay import SqliteReplayCache
        store = SqliteReplayCache(Path({str(path)!r}), max_entries=10_000)
        print(sum(store.check_and_add("iss", f"j{{i}}", expires_at=9e9, now=1.0) for i in range(300)))
        """
    )
    racers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    accepted = [int(r.communicate(timeout=60)[0]) for r in racers]
    assert all(r.returncode == 0 for r in racers)
    assert sum(accepted) == 300


def test_a_token_used_at_one_app_is_refused_by_another_sharing_the_store(settings, tmp_path, sign):
    """Two apps (as two workers) configured with the same CARTSCOUT_JTI_STORE share the replay check."""
    shared = settings.model_copy(update={"jti_store": tmp_path / "jti.sqlite3"})
    token = sign("/cds-services")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(shared, loader=no_registry)) as first, TestClient(create_app(shared, loader=no_registry)) as second:
        assert first.get("/cds-services", headers=headers).status_code == 200
        replay = second.get("/cds-services", headers=headers)
    assert replay.status_code == 401 and "jti" in replay.json()["detail"]


def test_without_a_store_each_app_remembers_its_own_tokens(settings, sign):
    """The default (one worker): the replay check is the process's own memory."""
    token = sign("/cds-services")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, loader=no_registry)) as first, TestClient(create_app(settings, loader=no_registry)) as second:
        assert first.get("/cds-services", headers=headers).status_code == 200
        assert first.get("/cds-services", headers=headers).status_code == 401
        assert second.get("/cds-services", headers=headers).status_code == 200
