"""The embedded registry: a run becomes challenger; champion moves only through the gate or a
recorded forced promotion; the loader resolves the alias once and falls back to its local copy."""

from __future__ import annotations

import socket

import mlflow
import pytest

from models.artifact import MODEL_NAME
from models.loading import RegistryUnavailableError, load_model, resolve_version
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PromotionRefusedError,
    RegistryError,
    connect,
    current_champion,
    log_training_run,
    promote_version,
    resolve_store,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CARTSCOUT_USER", "pytest-user")
    previous = mlflow.get_tracking_uri()
    store = resolve_store(tmp_path)
    yield store
    mlflow.set_tracking_uri(previous)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_store_defaults_to_project_sqlite_and_env_selects_a_server(tmp_path, monkeypatch):
    """Without MLFLOW_TRACKING_URI the store is mlflow.db + mlartifacts/ in the project directory."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = resolve_store(tmp_path)
    assert store.embedded and store.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert store.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert "mlflow ui --backend-store-uri sqlite:///" in store.ui_command()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert not resolve_store(tmp_path).embedded


def test_register_gate_promote_and_load(trained, embedded_store, tmp_path):
    """A run registers as challenger; the gate decides (same test set, identical model scores the
    same AUPRC); forced promotion needs a reason and records who and why; the loader resolves
    the champion to its version and uses its local copy when the registry is unreachable."""
    first = log_training_run(trained, embedded_store)
    client, _ = connect(embedded_store)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == first.version
    assert current_champion(client) is None
    run = client.get_run(first.run_id)
    assert run.data.params["feature_set_version"] == trained.spec.feature_set_version
    assert run.data.tags["training_fingerprint"] == trained.spec.training_fingerprint
    assert "test_auprc" in run.data.metrics and "baseline_rules_only_auprc" in run.data.metrics
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/{first.version}")
    assert info.signature is not None and "as_of" in info.signature.inputs.input_names()
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model_card.md", "figures", "evaluation", "config"} <= artifacts

    with pytest.raises(RegistryError, match="needs --reason"):
        promote_version(first.version, embedded_store, force=True)
    outcome = promote_version(first.version, embedded_store, force=True, reason="first model")
    tags = client.get_model_version(MODEL_NAME, first.version).tags
    assert tags["promoted_by"] == "pytest-user" and tags["promotion_reason"] == "first model"
    assert current_champion(client) == first.version and outcome.previous_champion is None

    second = log_training_run(trained, embedded_store)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == second.version
    slope_ok = 0.8 <= trained.report.metrics["calibration_slope"] <= 1.2
    if slope_ok:
        outcome = promote_version(CHALLENGER, embedded_store, reason="same model, gate passes")
        assert outcome.decision.passed and current_champion(client) == second.version
    else:
        with pytest.raises(PromotionRefusedError) as refused:
            promote_version(CHALLENGER, embedded_store)
        assert current_champion(client) == first.version
        assert "calibration slope" in refused.value.decision.render()
    auprc = f"{trained.report.metrics['auprc']:.4f}"
    gate_text = client.get_model_version(MODEL_NAME, second.version).tags.get("promotion_gate") or client.get_model_version(
        MODEL_NAME, second.version
    ).tags["last_gate_result"]
    assert f"AUPRC {auprc} vs champion {auprc}" in gate_text

    cache = tmp_path / "cache"
    loaded = load_model(f"models:/{MODEL_NAME}@{CHAMPION}", cache_dir=cache)
    assert loaded.version == current_champion(client) and not loaded.from_local_copy
    assert loaded.feature_set_version == trained.spec.feature_set_version

    assert resolve_version(f"models:/{MODEL_NAME}@{CHAMPION}") == loaded.version
    assert resolve_version(f"models:/{MODEL_NAME}@{CHALLENGER}") == second.version
    assert resolve_version(f"models:/{MODEL_NAME}@no-such-alias") is None
    assert resolve_version(f"models:/{MODEL_NAME}/7") == "7"  # a pinned version names itself

    mlflow.set_tracking_uri(f"http://127.0.0.1:{_closed_port()}")
    assert resolve_version(f"models:/{MODEL_NAME}@{CHAMPION}") is None  # unreachable: the caller loads (local copy)
    offline = load_model(f"models:/{MODEL_NAME}@{CHAMPION}", cache_dir=cache)
    assert offline.from_local_copy and offline.version == loaded.version
    with pytest.raises(RegistryUnavailableError):
        load_model(f"models:/{MODEL_NAME}@{CHAMPION}", cache_dir=tmp_path / "empty-cache")


def test_unknown_version_is_a_clear_error(embedded_store):
    """Promoting a version that does not exist names it."""
    with pytest.raises(RegistryError, match="'42'"):
        promote_version("42", embedded_store, reason="x", force=True)


def test_local_copy_serves_only_the_registry_record_it_was_made_from(trained, tmp_path, monkeypatch):
    """Two registries sharing one cache directory each have a version 1: each load gets its own
    registry's version 1 (a copy made from the other registry is replaced), and loading the same
    record again reuses the copy instead of downloading it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    cache = tmp_path / "cache"
    copy = cache / MODEL_NAME / "1"
    uri = f"models:/{MODEL_NAME}/1"
    try:
        stores = []
        for name in ("development", "production"):
            (tmp_path / name).mkdir()
            stores.append(resolve_store(tmp_path / name))
        runs = [log_training_run(trained, store) for store in stores]
        assert [run.version for run in runs] == ["1", "1"] and runs[0].run_id != runs[1].run_id

        connect(stores[0])
        load_model(uri, cache_dir=cache)
        (copy / "marker").write_text("made from the development registry")
        again = load_model(uri, cache_dir=cache)
        assert (copy / "marker").exists() and again.version == "1" and not again.from_local_copy

        connect(stores[1])
        production = load_model(uri, cache_dir=cache)
        assert not (copy / "marker").exists()
        assert production.version == "1" and not production.from_local_copy
        mlflow.set_tracking_uri(f"http://127.0.0.1:{_closed_port()}")
        assert load_model(uri, cache_dir=cache).from_local_copy
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)
