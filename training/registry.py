"""MLflow: the only module that writes runs, models, aliases and tags.

Store. Without ``MLFLOW_TRACKING_URI`` the store is embedded in the project directory (the
directory ``cartscout`` runs in): tracking and registry in ``mlflow.db`` (SQLite) and artifacts
in ``mlartifacts/`` -- both git-ignored. With ``MLFLOW_TRACKING_URI`` (for example
``http://127.0.0.1:5000``) everything goes to that server, which stores artifacts where it was
told to (``mlflow server --artifacts-destination ...``).

Versions. Each training run logs one ``cartscout-candidate`` version and points the
``challenger`` alias at it. ``champion`` -- the version service and batch load -- moves only
through ``promote_version``: the challenger and the current champion are scored on the
challenger's test set (saved with its run) and the promotion gate (``training.promotion``) must
pass, unless forced; who, why, when and the gate's verdict are recorded as version tags.
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from models.artifact import MODEL_NAME
from training.promotion import GateDecision, check_promotion_gate

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT_NAME = "cartscout-candidate"
DB_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
TEST_SET_ARTIFACT = "evaluation/test_set.parquet"


class RegistryError(RuntimeError):
    """A registry operation cannot proceed (unknown version, missing test set, gate failure)."""


class PromotionRefusedError(RegistryError):
    """The promotion gate failed and the promotion was not forced."""

    def __init__(self, version: str, decision: GateDecision):
        super().__init__(f"version {version} not promoted: {decision.render()} (use --force with --reason to override)")
        self.decision = decision


@dataclass(frozen=True)
class TrackingStore:
    """Where runs and models go; ``embedded`` when it is the project's own SQLite + folder."""

    tracking_uri: str
    artifact_location: str | None
    embedded: bool
    root: Path | None = None

    def ui_command(self) -> str:
        if self.embedded:
            return f"mlflow ui --backend-store-uri {self.tracking_uri} --default-artifact-root {self.artifact_location}"
        return f"open {self.tracking_uri} in a browser"


def resolve_store(project_dir: Path | None = None) -> TrackingStore:
    """``MLFLOW_TRACKING_URI`` when set, else SQLite + artifact folder under ``project_dir`` (cwd)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return TrackingStore(tracking_uri=uri, artifact_location=None, embedded=False)
    root = Path(project_dir or Path.cwd()).resolve()
    return TrackingStore(
        tracking_uri=f"sqlite:///{root / DB_FILE}",
        artifact_location=(root / ARTIFACT_DIR).as_uri(),
        embedded=True,
        root=root,
    )


def connect(store: TrackingStore):
    """An MlflowClient on ``store`` with the project's experiment present; returns (client, experiment_id)."""
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        experiment_id = client.create_experiment(EXPERIMENT_NAME, artifact_location=store.artifact_location)
    else:
        experiment_id = experiment.experiment_id
    return client, experiment_id


@dataclass(frozen=True)
class RegisteredRun:
    """What a training run produced in the registry."""

    run_id: str
    version: str
    model_uri: str
    store: TrackingStore


def _flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat_params(value, name + "."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return out


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def log_training_run(result, store: TrackingStore) -> RegisteredRun:
    """Log one training run (params, metrics, configs, fingerprints, figures, model card, test
    set, the pyfunc model) and register it as a new ``challenger`` version.

    ``result`` is a ``training.trainer.TrainingResult``.
    """
    import mlflow

    import models

    client, experiment_id = connect(store)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-h{result.spec.horizon_days}") as run:
        mlflow.log_params(_flat_params(result.config.model_dump(mode="json")))
        mlflow.log_params(
            {
                "feature_set_version": result.spec.feature_set_version,
                "codelists_version": result.spec.codelists_version,
                "rules_version": result.spec.rules_version,
                "training_fingerprint": result.spec.training_fingerprint,
                "best_iteration": str(result.best_iteration),
                "data_source": result.data_source,
            }
        )
        mlflow.set_tags(
            {
                "feature_set_version": result.spec.feature_set_version,
                "codelists_version": result.spec.codelists_version,
                "rules_version": result.spec.rules_version,
                "training_fingerprint": result.spec.training_fingerprint,
                "git_commit": result.spec.git_commit,
            }
        )
        mlflow.log_metrics(_finite({f"test_{k}": v for k, v in result.report.metrics.items()}))
        for name, metrics in result.report.baselines.items():
            mlflow.log_metrics(_finite({f"baseline_{name}_{k}": v for k, v in metrics.items()}))
        mlflow.log_metrics(_finite({f"truth_{k}": v for k, v in result.report.truth.items()}))
        for name, metrics in result.report.label_schedule.items():
            mlflow.log_metrics(_finite({f"label_schedule_{name}_{k}": v for k, v in metrics.items()}))
        mlflow.log_metrics(_finite({f"validation_{k}": v for k, v in result.validation_metrics.items()}))
        mlflow.log_metrics(_finite({f"examples_{k}": float(v) for k, v in result.split_counts.items()}))

        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            paths = result.write_model_files(tmp_path / "model")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(models.__file__).parent / "pyfunc_entry.py"),
                artifacts=paths,
                signature=result.signature,
                input_example=result.input_example,
                pip_requirements=result.pip_requirements,
                registered_model_name=MODEL_NAME,
                await_registration_for=60,
            )
            version = str(info.registered_model_version)
            result.write_run_files(tmp_path, run_id=run.info.run_id, model_version=version)
            mlflow.log_artifacts(str(tmp_path / "run"))
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
        tags = {
            "test_auprc": f"{result.report.metrics['auprc']:.6f}",
            "test_calibration_slope": f"{result.report.metrics['calibration_slope']:.6f}",
            "feature_set_version": result.spec.feature_set_version,
            "rules_version": result.spec.rules_version,
            "training_fingerprint": result.spec.training_fingerprint,
            "registered_by": _actor(),
        }
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, version, key, value)
    return RegisteredRun(run_id=run.info.run_id, version=version, model_uri=f"models:/{MODEL_NAME}/{version}", store=store)


def _actor() -> str:
    try:
        return os.environ.get("CARTSCOUT_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_version(client, reference: str) -> str:
    """A version number as text from a number or an alias name (``challenger``)."""
    from mlflow.exceptions import MlflowException

    try:
        if reference.isdigit():
            return str(client.get_model_version(MODEL_NAME, reference).version)
        return str(client.get_model_version_by_alias(MODEL_NAME, reference).version)
    except MlflowException as error:
        raise RegistryError(f"{MODEL_NAME}: no version or alias {reference!r} ({error.error_code})") from None


def current_champion(client) -> str | None:
    """The version the champion alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class PromotionOutcome:
    """The result of ``promote_version``: the version, the previous champion and the gate verdict."""

    version: str
    previous_champion: str | None
    decision: GateDecision
    forced: bool

    def render(self) -> str:
        before = f" (was {self.previous_champion})" if self.previous_champion else ""
        how = " FORCED" if self.forced else ""
        return f"{MODEL_NAME} version {self.version} is now {CHAMPION}{before}{how}. Gate {self.decision.render()}"


def _scoring_parts(client, version: str, workdir: Path):
    """Spec, booster and calibrator of a version (no feature-set check: the gate only needs the
    booster on an already-computed matrix and compares feature-set versions itself)."""
    import lightgbm as lgb
    import mlflow

    from models.artifact import BOOSTER_FILE, CALIBRATOR_FILE, SPEC_FILE, ModelSpec
    from models.calibration import load_calibrator

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=str(workdir / version)))
    artifacts = local / "artifacts"
    spec = ModelSpec.model_validate_json((artifacts / SPEC_FILE).read_text())
    booster = lgb.Booster(model_file=str(artifacts / BOOSTER_FILE))
    calibrator = load_calibrator((artifacts / CALIBRATOR_FILE).read_text())
    return spec, booster, calibrator


def evaluate_gate(client, version: str, champion: str | None, workdir: Path) -> GateDecision:
    """Score challenger and champion on the challenger's saved test set and apply the gate."""
    import mlflow

    from training.metrics import compute_auprc, compute_calibration

    run_id = client.get_model_version(MODEL_NAME, version).run_id
    try:
        test_path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TEST_SET_ARTIFACT, dst_path=str(workdir / "test"))
    except Exception as error:  # noqa: BLE001 - any storage error means the gate cannot be evaluated
        raise RegistryError(f"version {version}: its run {run_id} has no {TEST_SET_ARTIFACT} ({error})") from None
    test = pd.read_parquet(test_path)
    y = test["label"].to_numpy(dtype=float)
    spec, booster, calibrator = _scoring_parts(client, version, workdir)
    p = calibrator.transform(booster.predict(test[list(spec.feature_names)].to_numpy(dtype=float), raw_score=True))
    auprc = compute_auprc(y, p)
    _, slope = compute_calibration(y, p)
    champion_auprc = None
    if champion is not None and champion != version:
        c_spec, c_booster, c_calibrator = _scoring_parts(client, champion, workdir)
        if c_spec.feature_set_version != spec.feature_set_version or not set(c_spec.feature_names) <= set(test.columns):
            champion_auprc = float("nan")
            decision = check_promotion_gate(auprc, slope, champion_auprc)
            return GateDecision(
                passed=False,
                reasons=decision.reasons
                + (f"champion {champion} uses feature set {c_spec.feature_set_version}, challenger {spec.feature_set_version}: not comparable on the same test set",),
            )
        cp = c_calibrator.transform(c_booster.predict(test[list(c_spec.feature_names)].to_numpy(dtype=float), raw_score=True))
        champion_auprc = compute_auprc(y, cp)
    return check_promotion_gate(auprc, slope, champion_auprc)


def promote_version(reference: str, store: TrackingStore, *, reason: str = "", force: bool = False, actor: str | None = None) -> PromotionOutcome:
    """Move ``champion`` to a version (number or alias) if the gate passes or ``force`` is set,
    and record who, why, when and the gate verdict as version tags."""
    client, _ = connect(store)
    version = resolve_version(client, reference)
    champion = current_champion(client)
    with tempfile.TemporaryDirectory() as tmp:
        decision = evaluate_gate(client, version, champion, Path(tmp))
    if not decision.passed and not force:
        client.set_model_version_tag(MODEL_NAME, version, "last_gate_result", decision.render())
        raise PromotionRefusedError(version, decision)
    if force and not reason:
        raise RegistryError("a forced promotion needs --reason")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    tags = {
        "promoted_by": actor or _actor(),
        "promoted_at": now,
        "promotion_reason": reason or "passed the promotion gate",
        "promotion_forced": str(bool(force)).lower(),
        "promotion_gate": decision.render(),
        "previous_champion": champion or "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)
    if champion and champion != version:
        client.set_model_version_tag(MODEL_NAME, champion, "replaced_by", f"{version} at {now}")
    return PromotionOutcome(version=version, previous_champion=champion, decision=decision, forced=force and not decision.passed)
