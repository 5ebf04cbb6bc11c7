"""Evaluation figures written as PNG files (matplotlib's Agg backend: no display needed).

ROC and precision-recall curves carry both baselines so the gain over them is visible; the
calibration plot shows the equal-count bins against the diagonal; the SHAP beeswarm is drawn by
the ``shap`` package from ``shap.TreeExplainer`` values (identical to LightGBM's ``pred_contrib``,
which serving uses), with clinician-facing labels as row names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    return fpr, tpr


def _pr_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, score)
    return recall, precision


def plot_roc(path: Path, y: np.ndarray, scores: dict[str, np.ndarray]) -> Path:
    """ROC curves of the model and baselines on the test split."""
    plt = _pyplot()
    from training.metrics import compute_auroc

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        fpr, tpr = _roc_points(y, score)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {compute_auroc(y, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="False-positive rate", ylabel="True-positive rate (recall)", title="ROC, test split")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_precision_recall(path: Path, y: np.ndarray, scores: dict[str, np.ndarray]) -> Path:
    """Precision-recall curves of the model and baselines; the dotted line is prevalence."""
    plt = _pyplot()
    from training.metrics import compute_auprc

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, score in scores.items():
        recall, precision = _pr_points(y, score)
        ax.step(recall, precision, where="post", label=f"{name} (AUPRC {compute_auprc(y, score):.3f})")
    ax.axhline(float(np.mean(y)), linestyle=":", color="grey", label=f"prevalence {np.mean(y):.3f}")
    ax.set(xlabel="Recall", ylabel="Precision (PPV)", title="Precision-recall, test split", ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_calibration(path: Path, curve: pd.DataFrame, intercept: float, slope: float) -> Path:
    """Observed rate against mean predicted probability per bin, with the ideal diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = max(float(curve["mean_predicted"].max()), float(curve["observed_rate"].max()), 0.05) * 1.1
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="ideal")
    ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label="model (equal-count bins)")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed share becoming a candidate",
        title=f"Calibration, test split (intercept {intercept:.2f}, slope {slope:.2f})",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_lead_times(path: Path, lead_days: pd.Series) -> Path:
    """Distribution of lead time (first flag to candidacy) among members flagged before it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if len(lead_days):
        ax.hist(lead_days, bins=min(20, max(5, len(lead_days) // 3)), color="tab:blue")
        ax.axvline(float(lead_days.median()), color="black", linestyle="--", label=f"median {lead_days.median():.0f} days")
        ax.legend(fontsize=8)
    ax.set(xlabel="Days from first flag to becoming a candidate", ylabel="Members", title="Lead time, test split")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_shap_beeswarm(path: Path, booster, matrix: pd.DataFrame, max_display: int = 20) -> Path:
    """SHAP summary (beeswarm) from ``shap.TreeExplainer`` on a sample of test rows."""
    plt = _pyplot()
    import shap

    from features.catalog import CATALOG

    explainer = shap.TreeExplainer(booster)
    explanation = explainer(matrix)
    explanation.feature_names = [CATALOG[n].label if n in CATALOG else n for n in matrix.columns]
    shap.plots.beeswarm(explanation, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.set_size_inches(9, 0.35 * max_display + 2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
