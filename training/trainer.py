"""From labelled examples to a trained, calibrated, evaluated candidate model (no MLflow here).

``train_candidate`` splits the examples (temporal, person-grouped), optionally tunes, fits
LightGBM and its calibrator, fits both baselines, evaluates everything on the test split, and
returns a ``TrainingResult`` that knows how to write its run files (configs, figures, tables,
model card, test set) and its model files. ``training.registry`` logs both.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import CATALOG, FEATURE_NAMES, categorical_feature_names
from models.artifact import MODEL_NAME, ModelSpec, write_model_directory
from models.calibration import Calibrator
from training.evaluation import SUBGROUP_ATTRIBUTES, EvaluationReport, compute_headline_metrics, compute_rank_metrics, evaluate_test_set
from training.examples import ExampleSet
from training.fitting import (
    fit_candidate_model,
    fit_logistic_baseline,
    score_rules_baseline,
    tune_hyperparameters,
)
from training.settings import TrainingConfig
from training.splits import SPLITS, plan_split

RULES_FILE_NAME = "eligibility_rules.yaml"
_REQUIREMENTS = ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "scipy", "pyarrow", "pydantic", "pyyaml", "zipcodes")


@dataclass
class TrainingResult:
    """Everything a run produced; ``training.registry.log_training_run`` persists it."""

    config: TrainingConfig
    spec: ModelSpec
    booster: object
    calibrator: Calibrator
    report: EvaluationReport
    validation_metrics: dict[str, float]
    split_counts: dict[str, int]
    best_iteration: int
    data_source: str
    attrition: pd.DataFrame
    test_examples: pd.DataFrame
    test_features: pd.DataFrame
    test_scores: dict[str, np.ndarray]
    train_demographics: pd.DataFrame
    periods: dict[str, str]
    rules_path: Path
    codelists_dir: Path
    centers: pd.DataFrame | None = None
    ndc_crosswalk: pd.DataFrame | None = None
    input_example: pd.DataFrame | None = None
    signature: object = None
    pip_requirements: list[str] = field(default_factory=list)
    data_kind: str = "synthetic"
    censored_examples: int = 0

    def write_model_files(self, directory: Path) -> dict[str, str]:
        """The pyfunc artifact files (booster, calibrator, spec, rules, code lists, centres)."""
        return write_model_directory(
            directory, self.booster, self.calibrator, self.spec, self.rules_path, self.codelists_dir, self.centers, self.ndc_crosswalk
        )

    def write_run_files(self, directory: Path, run_id: str = "", model_version: str = "pending") -> Path:
        """Configs, tables, figures, model card and the test set, under ``directory/run``."""
        from training import figures
        from training.model_card import markdown_table

        root = Path(directory) / "run"
        for sub in ("config", "evaluation", "figures"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "config" / "config.yaml").write_text(self.config.to_yaml())
        for name in ("outcome", "population", "features", "model", "split", "evaluation"):
            (root / "config" / f"{name}_settings.json").write_text(getattr(self.config, name).model_dump_json(indent=2))
        (root / "config" / "model_spec.json").write_text(self.spec.model_dump_json(indent=2))

        evaluation = root / "evaluation"
        (evaluation / "metrics.json").write_text(
            json.dumps(
                {"test": self.report.metrics, "baselines": self.report.baselines, "truth": self.report.truth, "label_schedule": self.report.label_schedule, "validation": self.validation_metrics},
                indent=2,
                default=float,
            )
        )
        self.report.subgroups.to_csv(evaluation / "subgroups.csv", index=False)
        (evaluation / "subgroups.md").write_text(markdown_table(self.report.subgroups))
        self.report.calibration_curve.to_csv(evaluation / "calibration_curve.csv", index=False)
        if len(self.report.lead_times):
            self.report.lead_times.describe().to_frame().to_csv(evaluation / "lead_time_summary.csv")
        self.attrition.to_csv(evaluation / "attrition.csv", index=False)
        test = self.test_features.copy()
        test["label"] = self.test_examples["label"].to_numpy()
        test["as_of"] = self.test_examples["as_of"].to_numpy()
        test.to_parquet(evaluation / "test_set.parquet", index=False)

        y = self.test_examples["label"].to_numpy(dtype=float)
        figs = root / "figures"
        figures.plot_roc(figs / "roc.png", y, self.test_scores)
        figures.plot_precision_recall(figs / "precision_recall.png", y, self.test_scores)
        figures.plot_calibration(
            figs / "calibration.png", self.report.calibration_curve, self.report.metrics["calibration_intercept"], self.report.metrics["calibration_slope"]
        )
        figures.plot_lead_times(figs / "lead_time.png", self.report.lead_times)
        sample = self.test_features.sample(n=min(len(self.test_features), self.config.evaluation.shap_sample_rows), random_state=0)
        figures.plot_shap_beeswarm(figs / "shap_beeswarm.png", self.booster, sample)

        (root / "model_card.md").write_text(self.render_model_card(run_id, model_version))
        return root

    def render_model_card(self, run_id: str, model_version: str) -> str:
        from training.model_card import markdown_table, performance_rows, render_model_card

        m = self.report.metrics
        lgbm_auprc = m.get("auprc", float("nan"))
        beaten = [name for name, b in self.report.baselines.items() if lgbm_auprc > b.get("auprc", float("nan"))]
        not_beaten = [name for name in self.report.baselines if name not in beaten]
        verdict = (
            f"LightGBM beats {' and '.join(beaten)} on AUPRC."
            if not not_beaten
            else f"**LightGBM does not beat {' and '.join(not_beaten)} on AUPRC on this test set**; see the run's metrics before relying on it."
        )
        intervals = [
            f"{name.replace('_', ' ')} {b['auprc_difference']:+.3f} (95% CI {b['auprc_difference_ci_low']:+.3f} to {b['auprc_difference_ci_high']:+.3f})"
            for name, b in self.report.baselines.items()
            if "auprc_difference" in b
        ]
        if intervals:
            noise = [name for name, b in self.report.baselines.items() if "auprc_difference" in b and not b["auprc_difference_ci_low"] > 0]
            verdict += " AUPRC difference, LightGBM minus baseline, with a paired person-level bootstrap interval: " + "; ".join(intervals) + "."
            if noise:
                verdict += f" Against {' and '.join(n.replace('_', ' ') for n in noise)} the interval includes zero: the advantage is not distinguishable from resampling noise."
        baseline_rows = [
            f"| LightGBM (calibrated) | {m['auroc']:.3f} | {m['auprc']:.3f} | {m['recall_at_top_k']:.3f} | {m['ppv_at_top_k']:.3f} |"
        ]
        for name, b in self.report.baselines.items():
            baseline_rows.append(f"| {name} | {b['auroc']:.3f} | {b['auprc']:.3f} | {b['recall_at_top_k']:.3f} | {b['ppv_at_top_k']:.3f} |")
        truth = self.report.truth
        if truth:
            truth_section = (
                "Against the synthetic generator's truth (true first eligibility or CAR T date): claims-derived labels agree with "
                f"truth on {truth['truth_label_agreement']:.1%} of test examples (label precision {truth['claims_label_precision_vs_truth']:.3f}, "
                f"recall {truth['claims_label_recall_vs_truth']:.3f}); model AUROC against truth labels {truth['truth_auroc']:.3f}, AUPRC {truth['truth_auprc']:.3f}."
            )
            truth_limitation = f"On synthetic data the claims-derived labels agree with the generator's truth on {truth['truth_label_agreement']:.1%} of test examples."
        else:
            truth_section = "No ground truth was available for this training data."
            truth_limitation = ""
        label_rules_sentence, label_schedule_section = self._label_schedule_text()
        features = pd.DataFrame(
            [{"feature": n, "label": CATALOG[n].label, "group": CATALOG[n].group} for n in self.spec.feature_names if n in CATALOG]
        )
        subgroups = self.report.subgroups[["attribute", "level", "n", "positives", "auroc", "auprc", "calibration_slope", "recall_at_top_k", "ppv_at_top_k"]] if len(self.report.subgroups) else self.report.subgroups
        values = {
            "model_name": self.spec.model_name,
            "model_version": model_version,
            "trained_at": self.spec.trained_at,
            "run_id": run_id or "(not logged)",
            "horizon_days": str(self.config.outcome.horizon_days),
            "min_history_days": str(self.config.population.min_history_days),
            "threshold_likely_soon": f"{self.spec.thresholds.likely_soon:.3f}",
            "threshold_watch": f"{self.spec.thresholds.watch:.3f}",
            "feature_set_version": self.spec.feature_set_version,
            "n_features": str(len(self.spec.feature_names)),
            "codelists_version": self.spec.codelists_version,
            "rules_version": self.spec.rules_version,
            "feature_table": markdown_table(features),
            "data_source": self.data_source,
            "fingerprint": self.spec.training_fingerprint,
            "landmark_interval_days": str(self.config.population.landmark_interval_days),
            "train_period": self.periods.get("train", "n/a"),
            "validation_period": self.periods.get("validation", "n/a"),
            "test_period": self.periods.get("test", "n/a"),
            "split_counts": ", ".join(f"{k} {v}" for k, v in self.split_counts.items()),
            "death_handling": "a negative (competing event)" if self.config.outcome.death_without_outcome == "negative" else "excluded",
            "disenrollment_handling": "censored and excluded" if self.config.outcome.disenrollment_without_outcome == "exclude" else "a negative",
            "censored_count": str(self.censored_examples),
            "demographics_table": markdown_table(self.train_demographics),
            "performance_table": performance_rows(m),
            "baseline_table": "\n".join(baseline_rows),
            "baseline_verdict": verdict,
            "truth_section": truth_section,
            "subgroup_table": markdown_table(subgroups),
            "truth_limitation": truth_limitation,
            "label_rules_sentence": label_rules_sentence,
            "label_schedule_section": label_schedule_section,
            "data_kind": self.data_kind,
            "git_commit": self.spec.git_commit or "unknown",
        }
        return render_model_card(values)


    def _label_schedule_text(self) -> tuple[str, str]:
        """The outcome definition in one sentence, and the test rows judged by the other one."""
        if self.config.outcome.label_rules == "in_force_at_index":
            sentence = (
                "Eligibility in the window is judged by the label versions in force on the index date (what is known when "
                "the prediction is made); members made eligible only by a label version approved later are not positives."
            )
        else:
            sentence = "Eligibility in the window is judged by the label versions in force on each later date, new approvals included."
        schedule = self.report.label_schedule
        if not schedule:
            return sentence, ""
        counts = schedule["counts"]
        rows = [
            f"| {name.replace('_', ' ')} | {v['auroc_outcome_rules']:.3f} | {v['auprc_outcome_rules']:.3f} | {v['recall_at_top_k_label_change_only']:.3f} |"
            for name, v in schedule.items()
            if name != "counts"
        ]
        section = "\n".join(
            [
                "Label schedule: the same test rows judged by the label versions in force on each later date "
                f"({counts['positives_outcome_rules']:.0f} positives, of which {counts['label_change_only']:.0f} became eligible only "
                f"because a new label version took effect; {counts['positives_index_rules']:.0f} positives by the labels in force at the index date).",
                "",
                "| model | AUROC (later labels) | AUPRC (later labels) | recall at top-k of label-change-only positives |",
                "|---|---|---|---|",
                *rows,
            ]
        )
        return sentence, section


def fingerprint_examples(examples: pd.DataFrame, features: pd.DataFrame) -> str:
    """SHA-256 (16 hex) of the example keys, labels and feature values: identifies the training data."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(examples[["person_id", "as_of", "label"]], index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _period(dates: pd.Series) -> str:
    if dates.empty:
        return "n/a"
    return f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d} ({dates.nunique()} index dates)"


def _demographics(examples: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for attribute in SUBGROUP_ATTRIBUTES:
        shares = examples[attribute].astype("string").fillna("unknown").value_counts(normalize=True).sort_index()
        rows.extend({"attribute": attribute, "level": level, "share": float(share)} for level, share in shares.items())
    return pd.DataFrame(rows)


def train_candidate(
    example_set: ExampleSet,
    config: TrainingConfig,
    *,
    rules_path: Path,
    codelists_dir: Path,
    data_source: str = "",
    centers: pd.DataFrame | None = None,
    ndc_crosswalk: pd.DataFrame | None = None,
    input_example: pd.DataFrame | None = None,
    data_kind: str = "synthetic",
) -> TrainingResult:
    """Split, fit, calibrate, compare with baselines and evaluate; see module doc."""
    examples, matrix = example_set.examples, example_set.features
    names = [n for n in FEATURE_NAMES if n not in set(config.features.exclude_features)]
    unknown = sorted(set(config.features.exclude_features) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"exclude_features names unknown feature(s): {', '.join(unknown)}")
    unknown = sorted(set(config.model.monotone_increasing) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"monotone_increasing names unknown feature(s): {', '.join(unknown)}")
    matrix = matrix[names]
    categorical = tuple(c for c in categorical_feature_names() if c in names)
    plan = plan_split(examples, config.split, config.outcome.horizon_days)
    parts = {s: (examples[plan.rows(s)].reset_index(drop=True), matrix[plan.rows(s)].reset_index(drop=True)) for s in SPLITS}
    split_counts = {s: int(len(parts[s][0])) for s in SPLITS} | {f"{s}_positives": int(parts[s][0]["label"].sum()) for s in SPLITS}
    (train_ex, train_x), (valid_ex, valid_x), (test_ex, test_x) = parts["train"], parts["validation"], parts["test"]
    train_y, valid_y = train_ex["label"].to_numpy(), valid_ex["label"].to_numpy()

    model_settings = config.model
    if model_settings.optuna_trials:
        model_settings = tune_hyperparameters(train_x, train_y, valid_x, valid_y, model_settings, categorical)
        config = config.model_copy(update={"model": model_settings})
    fitted = fit_candidate_model(train_x, train_y, valid_x, valid_y, model_settings, categorical)

    test_probability = fitted.calibrator.transform(fitted.booster.predict(test_x, raw_score=True))
    logistic = fit_logistic_baseline(train_x, train_y, categorical)
    baselines = {
        "rules_only": score_rules_baseline(test_x, config.features.rules_baseline or None),
        "logistic_regression": logistic.predict_proba(test_x)[:, 1],
    }
    report = evaluate_test_set(test_ex, test_probability, config.evaluation, model_settings.top_k_fraction, baselines)
    valid_probability = fitted.calibrator.transform(fitted.booster.predict(valid_x, raw_score=True))
    validation_metrics = compute_headline_metrics(
        valid_ex, valid_probability, config.evaluation.model_copy(update={"bootstrap_replicates": 0}), model_settings.top_k_fraction
    )
    # Baselines on validation too: model choices are compared there, never on the test split.
    valid_baselines = {
        "rules_only": score_rules_baseline(valid_x, config.features.rules_baseline or None),
        "logistic_regression": logistic.predict_proba(valid_x)[:, 1],
    }
    for name, score in valid_baselines.items():
        validation_metrics.update({f"{name}_{k}": v for k, v in compute_rank_metrics(valid_ex, score, model_settings.top_k_fraction).items()})

    spec = ModelSpec(
        model_name=MODEL_NAME,
        feature_names=tuple(names),
        categorical_features=categorical,
        feature_set_version=example_set.feature_set_version,
        codelists_version=example_set.codelists_version,
        rules_version=example_set.rules_version,
        rules_file=RULES_FILE_NAME,
        horizon_days=config.outcome.horizon_days,
        thresholds=fitted.thresholds,
        calibration=model_settings.calibration,
        training_fingerprint=fingerprint_examples(examples, matrix),
        git_commit=_git_commit(),
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    censored = example_set.attrition
    censored_count = 0
    if len(censored) and censored["step"].str.startswith("left the plan").any():
        position = int(np.flatnonzero(censored["step"].str.startswith("left the plan").to_numpy())[0])
        censored_count = int(censored["examples"].iloc[position - 1] - censored["examples"].iloc[position])
    return TrainingResult(
        config=config,
        spec=spec,
        booster=fitted.booster,
        calibrator=fitted.calibrator,
        report=report,
        validation_metrics=validation_metrics,
        split_counts=split_counts,
        best_iteration=fitted.best_iteration,
        data_source=data_source,
        attrition=example_set.attrition,
        test_examples=test_ex,
        test_features=test_x,
        test_scores={"LightGBM": test_probability, "rules only": baselines["rules_only"], "logistic regression": baselines["logistic_regression"]},
        train_demographics=_demographics(train_ex),
        periods={s: _period(parts[s][0]["as_of"]) for s in SPLITS},
        rules_path=Path(rules_path),
        codelists_dir=Path(codelists_dir),
        centers=centers,
        ndc_crosswalk=ndc_crosswalk,
        input_example=input_example,
        pip_requirements=_requirements(),
        data_kind=data_kind,
        censored_examples=censored_count,
    )
