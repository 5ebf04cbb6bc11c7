"""Fitting: the LightGBM candidate model, its calibrator, and the two baselines it must beat.

* LightGBM stops early on the validation split's AUPRC (average precision); positives are up-weighted as the
  ``ModelSettings.imbalance`` choice says (the calibrator, fitted on validation scores, maps the
  weighted margin back to a probability).
* The rules-only baseline is what a care team could do without a model: rank by prior lines and
  signs of early failure (a weighted sum of catalog features).
* The logistic regression sees exactly the same features (median-imputed, missing indicators,
  standardised, categoricals one-hot), so any gain of LightGBM is from the learner, not the inputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.artifact import StatusThresholds
from models.calibration import Calibrator, make_calibrator
from training.settings import ModelSettings

DEFAULT_RULES_BASELINE = {
    "lot_count": 1.0,
    "lot_early_relapse_flag": 1.0,
    "lot_primary_refractory_flag": 1.0,
    "lot_progressed_after_last_flag": 1.0,
}


class TrainingDataError(ValueError):
    """The examples cannot train a model (for example no positives in a split)."""


@dataclass
class FittedModel:
    """The booster, its validation-fitted calibrator and the status thresholds derived from it."""

    booster: lgb.Booster
    calibrator: Calibrator
    thresholds: StatusThresholds
    params: dict
    best_iteration: int


def _lgb_params(settings: ModelSettings, y_train: np.ndarray, feature_names: list[str] | None = None) -> dict:
    positives = float(y_train.sum())
    negatives = float(y_train.size - positives)
    weight = {"none": 1.0, "balanced": negatives / positives, "sqrt_balanced": np.sqrt(negatives / positives)}[settings.imbalance]
    return {
        "objective": "binary",
        # Early stopping on AUPRC, not log-loss: with positive weighting the unweighted validation
        # log-loss worsens as soon as the margin shifts, stopping after a handful of trees.
        "metric": "average_precision",
        "first_metric_only": True,
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "max_depth": settings.max_depth,
        "min_child_samples": settings.min_child_samples,
        "feature_fraction": settings.feature_fraction,
        "bagging_fraction": settings.bagging_fraction,
        "bagging_freq": settings.bagging_freq,
        "lambda_l2": settings.lambda_l2,
        "scale_pos_weight": float(weight),
        **_monotone(settings, feature_names),
        "num_threads": settings.num_threads,
        "seed": settings.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def _monotone(settings: ModelSettings, feature_names: list[str] | None) -> dict:
    """LightGBM monotone constraints for the features whose direction is clinically certain (those
    in the matrix: a feature excluded on purpose is simply not constrained)."""
    wanted = set(settings.monotone_increasing) & set(feature_names or ())
    if not wanted:
        return {}
    # "advanced" keeps constrained trees nearly as expressive as unconstrained ones.
    return {"monotone_constraints": [1 if name in wanted else 0 for name in feature_names], "monotone_constraints_method": "advanced"}


def _stop_early_after(min_rounds: int, patience: int):
    """Early stopping on the first validation metric (higher is better) that only considers
    rounds from ``min_rounds`` on: a noisy early peak cannot end training after a few trees."""
    best = {"score": -np.inf, "iteration": min_rounds - 1, "results": None}

    def callback(env) -> None:
        _, _, score, higher_better = env.evaluation_result_list[0]
        score = score if higher_better else -score
        if env.iteration + 1 >= min_rounds and score > best["score"]:
            best.update(score=score, iteration=env.iteration, results=env.evaluation_result_list)
        stalled = env.iteration + 1 >= min_rounds and env.iteration - best["iteration"] >= patience
        if stalled or env.iteration == env.end_iteration - 1:
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"] or env.evaluation_result_list)

    callback.order = 30
    return callback


def _check_labels(y: np.ndarray, split: str) -> None:
    positives = int(np.sum(y))
    if positives == 0 or positives == len(y):
        raise TrainingDataError(f"the {split} split has {positives} positive(s) out of {len(y)} examples; need both classes")


def train_booster(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    settings: ModelSettings,
    categorical: tuple[str, ...] = (),
) -> tuple[lgb.Booster, dict]:
    """LightGBM with early stopping on the validation split; returns the booster and its params."""
    _check_labels(train_y, "train")
    _check_labels(valid_y, "validation")
    params = _lgb_params(settings, np.asarray(train_y), list(train_x.columns))
    categorical = [c for c in categorical if c in train_x.columns]
    train_set = lgb.Dataset(train_x, label=train_y, categorical_feature=categorical, free_raw_data=True)
    valid_set = lgb.Dataset(valid_x, label=valid_y, categorical_feature=categorical, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=settings.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[_stop_early_after(min(settings.min_boost_rounds, settings.num_boost_round), settings.early_stopping_rounds)],
    )
    if booster.best_iteration > 0:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return booster, params


def fit_candidate_model(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    settings: ModelSettings,
    categorical: tuple[str, ...] = (),
) -> FittedModel:
    """Booster, calibrator fitted on validation margins, and capacity-based status thresholds."""
    booster, params = train_booster(train_x, train_y, valid_x, valid_y, settings, categorical)
    margin = booster.predict(valid_x, raw_score=True)
    calibrator = make_calibrator(settings.calibration).fit(margin, np.asarray(valid_y))
    probability = calibrator.transform(margin)
    thresholds = StatusThresholds(
        likely_soon=float(np.quantile(probability, 1 - settings.top_k_fraction)),
        watch=float(np.quantile(probability, 1 - settings.watch_fraction)),
    )
    return FittedModel(booster=booster, calibrator=calibrator, thresholds=thresholds, params=params, best_iteration=booster.current_iteration())


def tune_hyperparameters(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame,
    valid_y: np.ndarray,
    settings: ModelSettings,
    categorical: tuple[str, ...] = (),
) -> ModelSettings:
    """Optuna search (``settings.optuna_trials`` trials) maximising validation AUPRC; returns the
    settings with the best trial's learning rate, leaves, child size, fractions and L2."""
    import optuna

    from training.metrics import compute_auprc

    def objective(trial: "optuna.Trial") -> float:
        candidate = settings.model_copy(
            update={
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
                "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
                "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
                "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
                "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
            }
        )
        booster, _ = train_booster(train_x, train_y, valid_x, valid_y, candidate, categorical)
        return compute_auprc(valid_y, booster.predict(valid_x, raw_score=True))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.seed))
    study.optimize(objective, n_trials=settings.optuna_trials)
    return settings.model_copy(update=study.best_params)


def fit_logistic_baseline(train_x: pd.DataFrame, train_y: np.ndarray, categorical: tuple[str, ...] = ()) -> Pipeline:
    """L2 logistic regression on the same features (class-balanced, like the booster's weighting)."""
    categorical = [c for c in categorical if c in train_x.columns]
    numeric = [c for c in train_x.columns if c not in categorical]
    transform = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()), numeric),
            ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0), OneHotEncoder(handle_unknown="ignore")), categorical),
        ]
    )
    model = make_pipeline(transform, LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))
    with warnings.catch_warnings():
        # A feature missing for every training row (e.g. no centre list) has no median; it is
        # kept as an all-zero column plus its missing indicator, which is the intended encoding.
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        return model.fit(train_x, np.asarray(train_y, dtype=int))


def score_rules_baseline(matrix: pd.DataFrame, weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted sum of catalog features (missing counts as 0): more prior lines and signs of early
    failure rank a member higher."""
    weights = weights or DEFAULT_RULES_BASELINE
    unknown = [name for name in weights if name not in matrix.columns]
    if unknown:
        raise ValueError(f"rules baseline names feature(s) not in the feature matrix: {', '.join(unknown)}")
    score = np.zeros(len(matrix))
    for name, weight in weights.items():
        score += weight * np.nan_to_num(matrix[name].to_numpy(dtype=float), nan=0.0)
    return score
