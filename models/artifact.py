"""The released model's contents, and how to read them back from a directory.

One artifact carries everything service and batch need, so nothing is re-derived at load time:

========================= ==============================================================
``booster.txt``           LightGBM booster in its text format
``calibrator.json``       learned state of the Platt or isotonic calibrator
``spec.json``             ``ModelSpec``: feature order, versions, status thresholds, name
``eligibility_rules.*``   the eligibility rule file the model was trained with
``codelists/``            the code-list CSV files the features were computed with
``car_t_centers.csv``     (optional) the CAR T centre list used for the distance feature
``ndc_crosswalk.csv``     (optional) the operator's NDC -> generic crosswalk added to the code lists
========================= ==============================================================

The feature code itself is the installed ``features`` package; ``load_model_directory`` compares
its ``FEATURE_SET_VERSION`` with the one recorded at training and refuses to load on mismatch,
because a model scoring features whose meaning changed returns confident nonsense.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from models.calibration import Calibrator, load_calibrator

MODEL_NAME = "cartscout-candidate"
BOOSTER_FILE = "booster.txt"
CALIBRATOR_FILE = "calibrator.json"
SPEC_FILE = "spec.json"
CODELISTS_DIR = "codelists"
CENTERS_FILE = "car_t_centers.csv"
CROSSWALK_FILE = "ndc_crosswalk.csv"


class ModelArtifactError(RuntimeError):
    """The artifact is incomplete or inconsistent."""


class FeatureSetMismatchError(ModelArtifactError):
    """The installed feature code computes a different feature set than the model was trained on."""


class StatusThresholds(BaseModel):
    """Calibrated-probability cut-offs for the statuses of at-risk members.

    Set at training from the validation split's score distribution: ``likely_soon`` flags the
    outreach capacity (top-k share), ``watch`` the wider share worth monitoring.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    likely_soon: float
    watch: float


class ModelSpec(BaseModel):
    """What the booster expects and what it was trained with; saved as ``spec.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = MODEL_NAME
    feature_names: tuple[str, ...]
    categorical_features: tuple[str, ...] = ()
    feature_set_version: str
    codelists_version: str
    rules_version: str
    rules_file: str
    horizon_days: int
    thresholds: StatusThresholds
    calibration: str
    training_fingerprint: str = ""
    git_commit: str = ""
    trained_at: str = ""


@dataclass
class LoadedModel:
    """A ready-to-score model: the booster, calibrator, spec, code lists and eligibility rules.

    ``version`` is the registry version number (None for a model loaded from a plain directory);
    ``from_local_copy`` is True when the registry was unreachable and the last cached copy was used.
    """

    spec: ModelSpec
    booster: lgb.Booster
    calibrator: Calibrator
    codes: Any
    rules: Any
    version: str | None = None
    source: str = ""
    from_local_copy: bool = False
    centers: Any = field(default=None, repr=False)
    zip_centroids: Any = field(default=None, repr=False)
    directory: Path | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.model_name

    @property
    def rules_version(self) -> str:
        return self.spec.rules_version

    @property
    def feature_set_version(self) -> str:
        return self.spec.feature_set_version

    def predict_raw(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """LightGBM margin (log-odds before calibration) for a float matrix in spec order."""
        return self.booster.predict(matrix, raw_score=True, num_threads=num_threads)

    def predict_probability(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """Calibrated probability of becoming a candidate within the horizon."""
        return self.calibrator.transform(self.predict_raw(matrix, num_threads))

    def contributions(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """TreeSHAP contributions (n x (features + 1)); the last column is the base value, and
        each row sums to the raw margin."""
        return self.booster.predict(matrix, pred_contrib=True, num_threads=num_threads)


def write_model_directory(
    directory: Path,
    booster: lgb.Booster,
    calibrator: Calibrator,
    spec: ModelSpec,
    rules_path: Path,
    codelists_dir: Path,
    centers: "pd.DataFrame | None" = None,
    ndc_crosswalk: "pd.DataFrame | None" = None,
) -> dict[str, str]:
    """Write the artifact files; returns the name -> path map MLflow's ``artifacts=`` expects."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / BOOSTER_FILE))
    (directory / CALIBRATOR_FILE).write_text(calibrator.to_json())
    (directory / SPEC_FILE).write_text(spec.model_dump_json(indent=2))
    shutil.copyfile(rules_path, directory / spec.rules_file)
    target = directory / CODELISTS_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(codelists_dir, target, ignore=shutil.ignore_patterns("*.md", "__pycache__"))
    if centers is not None:
        centers.to_csv(directory / CENTERS_FILE, index=False)
    if ndc_crosswalk is not None:
        ndc_crosswalk.to_csv(directory / CROSSWALK_FILE, index=False)
    return artifact_paths(directory)


def load_model_files(paths: dict[str, str], version: str | None = None, source: str = "") -> LoadedModel:
    """Build a ``LoadedModel`` from the artifact paths (as MLflow's ``context.artifacts`` gives them).

    Raises ``FeatureSetMismatchError`` when the installed feature code differs from training.
    """
    from features.catalog import FEATURE_SET_VERSION
    from features.codelists import load_codelists
    from features.eligibility import load_rules

    missing = [k for k in ("booster", "calibrator", "spec", "rules", "codelists") if k not in paths or not Path(paths[k]).exists()]
    if missing:
        raise ModelArtifactError(f"model artifact {source or ''} lacks: {', '.join(missing)}")
    spec = ModelSpec.model_validate_json(Path(paths["spec"]).read_text())
    if spec.feature_set_version != FEATURE_SET_VERSION:
        raise FeatureSetMismatchError(
            f"model {spec.model_name} {('version ' + version) if version else source} was trained on feature set "
            f"{spec.feature_set_version}, but the installed features package computes {FEATURE_SET_VERSION}; "
            "install the cartscout release the model was trained with, or retrain"
        )
    booster = lgb.Booster(model_file=paths["booster"])
    if tuple(booster.feature_name()) != spec.feature_names:
        raise ModelArtifactError("booster feature order differs from spec.json feature_names")
    calibrator = load_calibrator(Path(paths["calibrator"]).read_text())
    codes = load_codelists(Path(paths["codelists"]))
    if paths.get("ndc_crosswalk"):
        codes = codes.with_ndc_crosswalk(pd.read_csv(paths["ndc_crosswalk"], dtype=str, keep_default_na=False))
    if codes.version != spec.codelists_version:
        raise ModelArtifactError(f"code lists in the artifact have version {codes.version}, spec says {spec.codelists_version}")
    rules = load_rules(Path(paths["rules"]))
    centers = pd.read_csv(paths["centers"], dtype={"zip": "string"}) if paths.get("centers") and Path(paths["centers"]).exists() else None
    loaded_rules_version = describe_rules_version(rules)
    if loaded_rules_version != spec.rules_version:
        raise ModelArtifactError(f"eligibility rules in the artifact have version {loaded_rules_version}, spec says {spec.rules_version}")
    zip_centroids = None
    if centers is not None:
        from features.geography import load_zip_centroids

        zip_centroids = load_zip_centroids()
    return LoadedModel(
        spec=spec,
        booster=booster,
        calibrator=calibrator,
        codes=codes,
        rules=rules,
        version=version,
        source=source,
        centers=centers,
        zip_centroids=zip_centroids,
    )


def describe_rules_version(rules) -> str:
    """The rule set's version including its content digest (what eligibility rows carry)."""
    return getattr(rules, "full_version", None) or rules.version


def artifact_paths(directory: Path) -> dict[str, str]:
    """The name -> path map for an artifact directory written by ``write_model_directory``."""
    directory = Path(directory)
    spec = json.loads((directory / SPEC_FILE).read_text())
    paths = {
        "booster": str(directory / BOOSTER_FILE),
        "calibrator": str(directory / CALIBRATOR_FILE),
        "spec": str(directory / SPEC_FILE),
        "rules": str(directory / spec["rules_file"]),
        "codelists": str(directory / CODELISTS_DIR),
    }
    if (directory / CENTERS_FILE).exists():
        paths["centers"] = str(directory / CENTERS_FILE)
    if (directory / CROSSWALK_FILE).exists():
        paths["ndc_crosswalk"] = str(directory / CROSSWALK_FILE)
    return paths
