"""Training settings: one validated object per stage, in the manner of OHDSI PatientLevelPrediction.

A model is only interpretable next to the answers to five questions, so each answer is its own
object and every run saves all five next to the model:

* ``OutcomeSettings``   what is predicted, and over which time-at-risk window;
* ``PopulationSettings`` who is at risk at an index date (and how index dates are laid out);
* ``FeatureSettings``   what the model sees (the feature set, with features dropped on purpose);
* ``ModelSettings``     the learner, its hyperparameters, imbalance handling and calibration;
* ``SplitSettings``     how examples are divided between train, validation and test.

``TrainingConfig`` bundles them; ``load_config`` reads it from YAML. Unknown keys are errors
(``extra="forbid"``) because a misspelt hyperparameter silently ignored is a different model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeSettings(_Settings):
    """Becoming a CAR T candidate within ``horizon_days`` after the index date.

    The outcome date is the first day the eligibility engine reports label eligibility for any
    product (checked on a grid every ``eligibility_grid_days`` inside the window, by the label
    versions ``label_rules`` names) or the first CAR T-pathway claim (collection, preparation,
    product or infusion), whichever is earlier.
    Death in the window without the outcome is a negative (a competing event: the member did not
    become a candidate, and dropping them would remove the hardest negatives); leaving the plan
    in the window without the outcome is censoring and the example is dropped and counted.
    """

    horizon_days: int = Field(180, ge=30, le=730)
    # Which label versions judge eligibility inside the window: those in force on the index date
    # (what is knowable when the prediction is made; default) or those in force on each later date
    # (the literal reading, which also counts members made eligible only by a new label version).
    # Both labels are kept on every example; label-change-only positives are reported separately.
    label_rules: Literal["in_force_at_index", "in_force_at_outcome"] = "in_force_at_index"
    eligibility_grid_days: int = Field(30, ge=1, le=180)
    count_car_t_claims: bool = True
    death_without_outcome: Literal["negative", "exclude"] = "negative"
    disenrollment_without_outcome: Literal["exclude", "negative"] = "exclude"


class PopulationSettings(_Settings):
    """Who is at risk at an index date: in the cohort, alive, enrolled, with enough history,
    not eligible today and not already treated with CAR T. Index dates are landmarks every
    ``landmark_interval_days`` from ``first_landmark`` (default: the first day with
    ``min_history_days`` of data) up to the last date that still leaves a full horizon."""

    # Every 30 days (the eligibility grid step): the pipeline already evaluates every member on that
    # grid for the labels, so three times the examples of a 90-day spacing cost only their rows.
    landmark_interval_days: int = Field(30, ge=7, le=365)
    min_history_days: int = Field(180, ge=0, le=3650)
    enrollment_gap_days: int = Field(31, ge=0, le=365)
    first_landmark: str | None = Field(None, description="YYYY-MM-DD; default derived from the data")
    last_landmark: str | None = Field(None, description="YYYY-MM-DD; default data end minus the horizon")


class FeatureSettings(_Settings):
    """What the model sees: the catalog's features minus any excluded on purpose."""

    exclude_features: tuple[str, ...] = ()
    rules_baseline: dict[str, float] = Field(
        default_factory=dict,
        description="feature name -> weight for the rules-only baseline; empty means the default set",
    )


class ModelSettings(_Settings):
    """LightGBM hyperparameters plus the two deliberate choices: class weighting and calibration.

    ``imbalance="sqrt_balanced"`` weights positives by sqrt(negatives/positives): enough to let
    rare positives shape the trees without the variance of full re-weighting; the calibrator then
    maps scores back to probabilities, so weighting never leaks into the reported probability.
    """

    # Small trees and large leaves by default: positives number in the hundreds, and the score is
    # also explained per member (TreeSHAP cost grows with leaves and depth).
    learning_rate: float = Field(0.03, gt=0, le=1)
    num_leaves: int = Field(7, ge=2, le=1024)
    max_depth: int = Field(-1, ge=-1)
    min_child_samples: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(5.0, ge=0)
    num_boost_round: int = Field(800, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    # Validation AUPRC over ~100 positives is noisy; a few lucky early trees must not end training.
    min_boost_rounds: int = Field(100, ge=1, description="early stopping never picks fewer rounds than this (capped at num_boost_round)")
    # Features whose clinical direction is certain: more of them never lowers the score (STYLE.md:
    # "another line of therapy never lowers it"). Enforced with LightGBM monotone constraints.
    monotone_increasing: tuple[str, ...] = (
        "lot_count",
        "lot_early_relapse_flag",
        "lot_primary_refractory_flag",
        "lot_progressed_after_last_flag",
        "lot_triple_class_exposed_flag",
        "lot_lenalidomide_refractory_flag",
    )
    imbalance: Literal["none", "balanced", "sqrt_balanced"] = "sqrt_balanced"
    calibration: Literal["platt", "isotonic"] = "platt"
    num_threads: int = Field(2, ge=1)
    seed: int = 0
    optuna_trials: int = Field(0, ge=0, description="0 disables the Optuna search")
    top_k_fraction: float = Field(0.01, gt=0, lt=1, description="outreach capacity: share of at-risk members flagged")
    watch_fraction: float = Field(0.05, gt=0, lt=1, description="share of at-risk members shown as 'watch'")

    @model_validator(mode="after")
    def _capacity_order(self) -> "ModelSettings":
        if self.watch_fraction < self.top_k_fraction:
            raise ValueError("watch_fraction must be at least top_k_fraction")
        return self


class SplitSettings(_Settings):
    """Temporal and grouped: each person is in exactly one split; training keeps the earlier
    index dates, validation and test (different persons) the later ones -- the last
    ``holdout_time_fraction`` of examples. With ``purge_overlap`` training examples whose outcome
    window reaches the later period are dropped, so no training label is observed after the cut."""

    validation_person_fraction: float = Field(0.2, gt=0, lt=1)
    test_person_fraction: float = Field(0.3, gt=0, lt=1)
    holdout_time_fraction: float = Field(0.35, gt=0, lt=1)
    purge_overlap: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _fractions(self) -> "SplitSettings":
        if self.validation_person_fraction + self.test_person_fraction >= 1:
            raise ValueError("validation_person_fraction + test_person_fraction must be below 1")
        return self


class EvaluationSettings(_Settings):
    """How the evaluation is computed (bootstrap size, thresholds for net benefit)."""

    bootstrap_replicates: int = Field(500, ge=0)
    net_benefit_thresholds: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    calibration_bins: int = Field(10, ge=2)
    shap_sample_rows: int = Field(2000, ge=10)
    seed: int = 0


class TrainingConfig(_Settings):
    """Everything that defines a training run; saved as ``config.yaml`` with every run."""

    outcome: OutcomeSettings = OutcomeSettings()
    population: PopulationSettings = PopulationSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    split: SplitSettings = SplitSettings()
    evaluation: EvaluationSettings = EvaluationSettings()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def with_horizon(self, horizon_days: int) -> "TrainingConfig":
        return self.model_copy(update={"outcome": self.outcome.model_copy(update={"horizon_days": horizon_days})})


def load_config(path: Path | None) -> TrainingConfig:
    """Read a YAML training configuration; ``None`` gives the defaults. Errors name the file."""
    if path is None:
        return TrainingConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        return TrainingConfig.model_validate(raw)
    except Exception as error:
        raise ValueError(f"{path}: invalid training configuration:\n{error}") from error
