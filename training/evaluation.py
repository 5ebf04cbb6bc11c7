"""The evaluation every run reports, overall and per subgroup, on the test split.

Inputs are a test-example frame (one row per person and index date, with the label, the index
date, the first later candidate date and the subgroup attributes) and a probability per row.
Recall and PPV at top-k flag the top share of at-risk members per index date (an outreach round);
per subgroup they are read off the same global list, which is the question an equity review asks:
of this group's future candidates, how many does the outreach list reach?
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.metrics import (
    compute_auprc,
    compute_auroc,
    compute_bootstrap_ci,
    compute_brier,
    compute_calibration,
    compute_calibration_curve,
    compute_lead_times,
    compute_net_benefit,
    compute_net_benefit_treat_all,
    compute_top_k,
    flag_top_fraction,
)
from training.settings import EvaluationSettings

SUBGROUP_ATTRIBUTES = ("sex", "age_band", "race", "payer_type", "distance_band")
AGE_BANDS = ((0, 18, "<18"), (18, 40, "18-39"), (40, 65, "40-64"), (65, 75, "65-74"), (75, 200, "75+"))
DISTANCE_BANDS = ((0, 30, "<30 mi"), (30, 100, "30-100 mi"), (100, 1e9, ">100 mi"))
MIN_SUBGROUP_POSITIVES = 5


@dataclass
class EvaluationReport:
    """Headline metrics (flat, ready for MLflow), the subgroup table, curve data and lead times."""

    metrics: dict[str, float]
    subgroups: pd.DataFrame
    calibration_curve: pd.DataFrame
    lead_times: pd.Series
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)
    label_schedule: dict[str, dict[str, float]] = field(default_factory=dict)


def assign_age_band(age_years: pd.Series) -> pd.Series:
    """Age bands used in the fairness table (missing age is 'unknown')."""
    return _band(age_years, AGE_BANDS)


def assign_distance_band(miles: pd.Series) -> pd.Series:
    """Distance to the nearest CAR T centre: < 30, 30-100, > 100 miles, or 'unknown'."""
    return _band(miles, DISTANCE_BANDS)


def _band(values: pd.Series, bands) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce").astype("float64")
    out = pd.Series("unknown", index=values.index, dtype="string")
    for low, high, label in bands:
        out[(values >= low) & (values < high)] = label
    return out


def compute_headline_metrics(
    examples: pd.DataFrame,
    probability: np.ndarray,
    settings: EvaluationSettings,
    top_k_fraction: float,
) -> dict[str, float]:
    """Discrimination with a person-level bootstrap CI, calibration, top-k, net benefit, lead time."""
    y = examples["label"].to_numpy(dtype=float)
    p = np.asarray(probability, dtype=float)
    dates = examples["as_of"].to_numpy()
    low, high = compute_bootstrap_ci(
        compute_auroc, y, p, examples["person_id"].to_numpy(), settings.bootstrap_replicates, seed=settings.seed
    )
    intercept, slope = compute_calibration(y, p)
    top = compute_top_k(y, p, top_k_fraction, dates)
    metrics = {
        "n_examples": float(y.size),
        "n_persons": float(examples["person_id"].nunique()),
        "n_positives": float(y.sum()),
        "prevalence": float(y.mean()) if y.size else float("nan"),
        "auroc": compute_auroc(y, p),
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "auprc": compute_auprc(y, p),
        "brier": compute_brier(y, p),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "top_k_fraction": top_k_fraction,
        "top_k_flagged": float(top.flagged),
        "recall_at_top_k": top.recall,
        "ppv_at_top_k": top.ppv,
    }
    for threshold in settings.net_benefit_thresholds:
        metrics[f"net_benefit_{threshold:g}"] = compute_net_benefit(y, p, threshold)
        metrics[f"net_benefit_treat_all_{threshold:g}"] = compute_net_benefit_treat_all(y, threshold)
    lead = compute_lead_times(examples, flag_top_fraction(p, top_k_fraction, dates))
    candidates = examples.loc[examples["label"] == 1, "person_id"].nunique()
    metrics.update(
        {
            "lead_time_median_days": float(lead.median()) if lead.size else float("nan"),
            "lead_time_p25_days": float(lead.quantile(0.25)) if lead.size else float("nan"),
            "lead_time_p75_days": float(lead.quantile(0.75)) if lead.size else float("nan"),
            "lead_time_members": float(lead.size),
            "candidates_flagged_before_share": float(lead.size / candidates) if candidates else float("nan"),
        }
    )
    return metrics


def compute_rank_metrics(examples: pd.DataFrame, score: np.ndarray, top_k_fraction: float) -> dict[str, float]:
    """The ranking metrics a baseline is compared on (its scores need not be probabilities)."""
    y = examples["label"].to_numpy(dtype=float)
    top = compute_top_k(y, score, top_k_fraction, examples["as_of"].to_numpy())
    return {
        "auroc": compute_auroc(y, score),
        "auprc": compute_auprc(y, score),
        "recall_at_top_k": top.recall,
        "ppv_at_top_k": top.ppv,
    }


def compare_auprc(examples: pd.DataFrame, model_score: np.ndarray, baseline_score: np.ndarray, settings: EvaluationSettings) -> dict[str, float]:
    """AUPRC of the model minus the baseline's on the same rows, with a paired person-level
    bootstrap interval: whether "beats the baseline" is more than resampling noise."""
    y = examples["label"].to_numpy(dtype=float)
    a, b = np.asarray(model_score, dtype=float), np.asarray(baseline_score, dtype=float)

    def difference(y_rows: np.ndarray, rows: np.ndarray) -> float:
        rows = rows.astype(np.int64)
        return compute_auprc(y_rows, a[rows]) - compute_auprc(y_rows, b[rows])

    low, high = compute_bootstrap_ci(
        difference, y, np.arange(y.size, dtype=float), examples["person_id"].to_numpy(), settings.bootstrap_replicates, seed=settings.seed
    )
    return {"auprc_difference": difference(y, np.arange(y.size)), "auprc_difference_ci_low": low, "auprc_difference_ci_high": high}


def compute_subgroup_table(
    examples: pd.DataFrame, probability: np.ndarray, top_k_fraction: float
) -> pd.DataFrame:
    """One row per subgroup level: size, prevalence, AUROC, AUPRC, Brier, calibration slope,
    recall and PPV of the global top-k list within the group. Discrimination and calibration are
    left empty below ``MIN_SUBGROUP_POSITIVES`` positives, where they would be noise."""
    y = examples["label"].to_numpy(dtype=float)
    p = np.asarray(probability, dtype=float)
    flagged = flag_top_fraction(p, top_k_fraction, examples["as_of"].to_numpy())
    rows = []
    for attribute in SUBGROUP_ATTRIBUTES:
        if attribute not in examples.columns:
            continue
        levels = examples[attribute].astype("string").fillna("unknown")
        for level in sorted(levels.unique()):
            mask = (levels == level).to_numpy()
            yg, pg = y[mask], p[mask]
            enough = yg.sum() >= MIN_SUBGROUP_POSITIVES and (yg.size - yg.sum()) >= MIN_SUBGROUP_POSITIVES
            _, slope = compute_calibration(yg, pg) if enough else (np.nan, np.nan)
            rows.append(
                {
                    "attribute": attribute,
                    "level": level,
                    "n": int(mask.sum()),
                    "positives": int(yg.sum()),
                    "prevalence": float(yg.mean()) if yg.size else np.nan,
                    "mean_predicted": float(pg.mean()) if pg.size else np.nan,
                    "auroc": compute_auroc(yg, pg) if enough else np.nan,
                    "auprc": compute_auprc(yg, pg) if enough else np.nan,
                    "brier": compute_brier(yg, pg) if yg.size else np.nan,
                    "calibration_slope": slope,
                    "flagged": int(flagged[mask].sum()),
                    "recall_at_top_k": float((flagged[mask] & (yg == 1)).sum() / yg.sum()) if yg.sum() else np.nan,
                    "ppv_at_top_k": float((flagged[mask] & (yg == 1)).sum() / flagged[mask].sum()) if flagged[mask].sum() else np.nan,
                }
            )
    return pd.DataFrame(rows)


def compare_label_definitions(
    examples: pd.DataFrame, scores: dict[str, np.ndarray], top_k_fraction: float
) -> dict[str, dict[str, float]]:
    """The same test rows judged by the other outcome definition: eligibility by the label
    versions in force on each later date (``label_outcome_rules``), which adds members made
    eligible only by a new label version (``label_change_only``). Per scorer: AUROC and AUPRC
    against that label, and the share of label-change-only positives in the top-k list."""
    y = examples["label_outcome_rules"].to_numpy(dtype=float)
    change = examples["label_change_only"].to_numpy(dtype=bool)
    dates = examples["as_of"].to_numpy()
    out: dict[str, dict[str, float]] = {
        "counts": {
            "positives_index_rules": float(examples["label_index_rules"].sum()),
            "positives_outcome_rules": float(y.sum()),
            "label_change_only": float(change.sum()),
        }
    }
    for name, score in scores.items():
        flagged = flag_top_fraction(np.asarray(score, dtype=float), top_k_fraction, dates)
        out[name] = {
            "auroc_outcome_rules": compute_auroc(y, score),
            "auprc_outcome_rules": compute_auprc(y, score),
            "recall_at_top_k_outcome_rules": float((flagged & (y == 1)).sum() / y.sum()) if y.sum() else float("nan"),
            "recall_at_top_k_label_change_only": float((flagged & change).sum() / change.sum()) if change.sum() else float("nan"),
        }
    return out


def compare_with_truth(examples: pd.DataFrame, probability: np.ndarray) -> dict[str, float]:
    """How the claims-derived labels differ from the generator's truth, and the model's
    discrimination against the truth labels. Needs a ``truth_label`` column. The generator's truth
    judges each date by the labels in force on it, so the claims label compared is the same
    definition (``label_outcome_rules`` when present)."""
    column = "label_outcome_rules" if "label_outcome_rules" in examples.columns else "label"
    claims = examples[column].to_numpy(dtype=int)
    truth = examples["truth_label"].to_numpy(dtype=int)
    p = np.asarray(probability, dtype=float)
    both = int(((claims == 1) & (truth == 1)).sum())
    return {
        "truth_label_agreement": float((claims == truth).mean()) if claims.size else float("nan"),
        "truth_positives": float(truth.sum()),
        "claims_positives": float(claims.sum()),
        "claims_label_precision_vs_truth": both / claims.sum() if claims.sum() else float("nan"),
        "claims_label_recall_vs_truth": both / truth.sum() if truth.sum() else float("nan"),
        "truth_auroc": compute_auroc(truth, p),
        "truth_auprc": compute_auprc(truth, p),
    }


def evaluate_test_set(
    examples: pd.DataFrame,
    probability: np.ndarray,
    settings: EvaluationSettings,
    top_k_fraction: float,
    baselines: dict[str, np.ndarray] | None = None,
) -> EvaluationReport:
    """Everything the run reports about the test split."""
    p = np.asarray(probability, dtype=float)
    y = examples["label"].to_numpy(dtype=float)
    metrics = compute_headline_metrics(examples, p, settings, top_k_fraction)
    lead = compute_lead_times(examples, flag_top_fraction(p, top_k_fraction, examples["as_of"].to_numpy()))
    report = EvaluationReport(
        metrics=metrics,
        subgroups=compute_subgroup_table(examples, p, top_k_fraction),
        calibration_curve=compute_calibration_curve(y, p, settings.calibration_bins),
        lead_times=lead,
    )
    for name, score in (baselines or {}).items():
        report.baselines[name] = compute_rank_metrics(examples, score, top_k_fraction)
        report.baselines[name].update(compare_auprc(examples, p, score, settings))
    if {"label_outcome_rules", "label_index_rules", "label_change_only"} <= set(examples.columns):
        report.label_schedule = compare_label_definitions(examples, {"lightgbm": p, **(baselines or {})}, top_k_fraction)
    if "truth_label" in examples.columns and examples["truth_label"].notna().all():
        report.truth = compare_with_truth(examples, p)
    return report
