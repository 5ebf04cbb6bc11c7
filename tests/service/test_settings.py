"""Settings read from a clean environment: the defaults docs/service.md documents, and MLflow's own
variable. (That the default is not open, auth=jwt, is test_auth.py's.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from service.settings import Settings

SERVICE_DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


@pytest.fixture
def clean_environment(monkeypatch) -> None:
    """No CARTSCOUT_* or MLFLOW_* variable from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(("CARTSCOUT_", "MLFLOW_")):
            monkeypatch.delenv(name)


def documented_default(variable: str) -> str:
    """The default column of ``variable``'s row in docs/service.md's settings table."""
    match = re.search(rf"^\| `{variable}` \| `([^`]*)` \|", SERVICE_DOC.read_text(), re.MULTILINE)
    assert match, f"{variable} is not in the settings table of {SERVICE_DOC.name}"
    return match.group(1)


def test_defaults(clean_environment):
    """The model alias, the poll interval, a 5 MiB body limit and 1,000 members per batch."""
    settings = Settings()
    assert settings.model_uri == "models:/cartscout-candidate@champion"
    assert settings.model_poll_seconds == 300
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.max_batch_members == 1000
    assert settings.mlflow_tracking_uri is None


@pytest.mark.parametrize(
    "variable, field",
    [
        ("CARTSCOUT_MODEL_URI", "model_uri"),
        ("CARTSCOUT_MODEL_POLL_SECONDS", "model_poll_seconds"),
        ("CARTSCOUT_MAX_BODY_BYTES", "max_body_bytes"),
        ("CARTSCOUT_MAX_BATCH_MEMBERS", "max_batch_members"),
        ("CARTSCOUT_AUTH", "auth"),
    ],
)
def test_documented_defaults_are_the_code_defaults(clean_environment, variable, field):
    """docs/service.md's settings table states each default as the code has it."""
    default = getattr(Settings(), field)
    assert type(default)(documented_default(variable)) == default


def test_mlflow_tracking_uri_is_read(clean_environment, monkeypatch):
    """MLflow's own variable reaches the settings (the service sets it on mlflow at start-up)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow/registry.db")
    assert Settings().mlflow_tracking_uri == "sqlite:////srv/mlflow/registry.db"
