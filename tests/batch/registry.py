"""A throw-away MLflow registry holding the batch tests' model as ``cartscout-candidate@champion``,
so CLI runs in a subprocess load it exactly as production does (alias -> version -> artifact)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register_test_model(root: Path) -> dict[str, str]:
    """Register the test model under ``root`` (in a subprocess, so this process's MLflow globals stay
    untouched); returns the environment a ``cartscout score`` subprocess needs to find it."""
    root.mkdir(parents=True, exist_ok=True)
    env = scoring_env(root)
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.batch.registry import _register; _register(Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", script, str(REPO), str(root)], env=env, cwd=root, check=True, capture_output=True, timeout=240)
    return env


def scoring_env(root: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "CARTSCOUT_MODEL_CACHE_DIR": str(root / "cache"),
            "PYTHONPATH": str(REPO)}


def _register(root: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    from models.artifact import MODEL_NAME, artifact_paths
    from models.candidate import CandidatePyfunc
    from tests.batch.conftest import build_test_model

    build_test_model(root / "artifact")
    client = MlflowClient()
    experiment = client.create_experiment("batch-tests", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(name="model", python_model=CandidatePyfunc(), artifacts=artifact_paths(root / "artifact"),
                                       registered_model_name=MODEL_NAME, pip_requirements=[])
    client.set_registered_model_alias(MODEL_NAME, "champion", str(info.registered_model_version))
