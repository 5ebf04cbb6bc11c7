"""Evaluation metrics on arrays: discrimination, calibration, capacity-limited outreach, clinical
utility and lead time.

Written out (not delegated to a library) where the definition is a choice a reader should see:
AUPRC is average precision (sklearn's step-wise definition, no interpolation); calibration
intercept and slope are the logistic recalibration of Cox (1958) -- slope from regressing the
outcome on logit(score), intercept with logit(score) as an offset ("calibration-in-the-large");
confidence intervals come from a bootstrap over persons, because one person contributes several
index dates and rows of one person are not independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

_EPS = 1e-12


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and scores ({p.size}) differ in length")
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    return y, p


def compute_auroc(y, p) -> float:
    """Area under the ROC curve as the Mann-Whitney probability (ties count one half); NaN when
    only one class is present."""
    y, p = _arrays(y, p)
    positives = y.sum()
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def compute_auprc(y, p) -> float:
    """Average precision: sum over distinct thresholds of (recall step) x precision."""
    y, p = _arrays(y, p)
    positives = y.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    y_sorted, p_sorted = y[order], p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), y.size - 1]
    true_pos = np.cumsum(y_sorted)[last_of_tie]
    flagged = last_of_tie + 1
    precision = true_pos / flagged
    recall = true_pos / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def compute_brier(y, p) -> float:
    """Mean squared difference between the probability and the 0/1 outcome."""
    y, p = _arrays(y, p)
    return float(np.mean((p - y) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_logistic(design: np.ndarray, y: np.ndarray, offset: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Unpenalised logistic regression by Newton-Raphson (IRLS)."""
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        eta = design @ beta + offset
        mu = 1 / (1 + np.exp(-eta))
        weight = np.maximum(mu * (1 - mu), _EPS)
        gradient = design.T @ (y - mu)
        hessian = design.T @ (design * weight[:, None])
        step = np.linalg.solve(hessian + 1e-10 * np.eye(design.shape[1]), gradient)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def compute_calibration(y, p) -> tuple[float, float]:
    """(intercept, slope) of logistic recalibration; slope 1 and intercept 0 are perfect.

    Slope < 1 means predictions are too extreme (overfitting); intercept > 0 means risk is
    underestimated on average.
    """
    y, p = _arrays(y, p)
    if y.sum() == 0 or y.sum() == y.size:
        return float("nan"), float("nan")
    lp = _logit(p)
    slope = _fit_logistic(np.column_stack([np.ones_like(lp), lp]), y, np.zeros_like(lp))[1]
    intercept = _fit_logistic(np.ones((lp.size, 1)), y, lp)[0]
    return float(intercept), float(slope)


def compute_calibration_curve(y, p, bins: int = 10) -> pd.DataFrame:
    """Observed event rate against mean predicted probability in equal-count bins of the score."""
    y, p = _arrays(y, p)
    order = np.argsort(p, kind="mergesort")
    groups = np.array_split(order, min(bins, max(y.size, 1)))
    rows = [
        {"bin": i, "n": g.size, "mean_predicted": float(p[g].mean()), "observed_rate": float(y[g].mean())}
        for i, g in enumerate(groups)
        if g.size
    ]
    return pd.DataFrame(rows, columns=["bin", "n", "mean_predicted", "observed_rate"])


@dataclass(frozen=True)
class TopKResult:
    """Outreach at a fixed capacity: ``flagged`` members, ``true_positives`` among them."""

    flagged: int
    true_positives: int
    positives: int

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else float("nan")

    @property
    def ppv(self) -> float:
        return self.true_positives / self.flagged if self.flagged else float("nan")


def flag_top_fraction(p, fraction: float, index_dates=None) -> np.ndarray:
    """Boolean mask of the top ``ceil(fraction * n)`` scores, per index date when given.

    Capacity is set per outreach round (an index date), so each date flags its own top share.
    Ties at the cut are broken by row order, which keeps the number flagged exactly at capacity.
    """
    p = np.asarray(p, dtype=np.float64)
    if index_dates is None:
        index_dates = np.zeros(p.size)
    dates = pd.Series(np.asarray(index_dates))
    mask = np.zeros(p.size, dtype=bool)
    for _, rows in dates.groupby(dates, sort=False).indices.items():
        k = int(np.ceil(fraction * rows.size))
        if k:
            top = rows[np.argsort(-p[rows], kind="mergesort")[:k]]
            mask[top] = True
    return mask


def compute_top_k(y, p, fraction: float, index_dates=None) -> TopKResult:
    """Recall and PPV when the top ``fraction`` of at-risk members (per index date) are flagged."""
    y, p = _arrays(y, p)
    mask = flag_top_fraction(p, fraction, index_dates)
    return TopKResult(flagged=int(mask.sum()), true_positives=int(y[mask].sum()), positives=int(y.sum()))


def compute_net_benefit(y, p, threshold: float) -> float:
    """Decision-curve net benefit of acting on everyone with score >= threshold:
    TP/n - FP/n * t/(1-t) (Vickers and Elkin 2006)."""
    y, p = _arrays(y, p)
    if not 0 < threshold < 1:
        raise ValueError("threshold must be strictly between 0 and 1")
    act = p >= threshold
    n = y.size
    true_pos = np.sum(act & (y == 1))
    false_pos = np.sum(act & (y == 0))
    return float(true_pos / n - false_pos / n * threshold / (1 - threshold))


def compute_net_benefit_treat_all(y, threshold: float) -> float:
    """Net benefit of contacting everyone: the reference line of the decision curve."""
    y = np.asarray(y, dtype=np.float64)
    prevalence = y.mean()
    return float(prevalence - (1 - prevalence) * threshold / (1 - threshold))


def compute_bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y,
    p,
    clusters=None,
    replicates: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``metric`` over bootstrap resamples of clusters (persons).

    Resamples where the metric is undefined (one class only) are skipped.
    """
    y, p = _arrays(y, p)
    if replicates == 0 or y.size == 0:
        return float("nan"), float("nan")
    if clusters is None:
        clusters = np.arange(y.size)
    codes, _ = pd.factorize(pd.Series(np.asarray(clusters)), sort=False)
    order = np.argsort(codes, kind="mergesort")
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    sizes = np.diff(np.r_[starts, codes.size])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        chosen = rng.integers(0, starts.size, starts.size)
        rows = order[np.repeat(starts[chosen], sizes[chosen]) + _ranges(sizes[chosen])]
        value = metric(y[rows], p[rows])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(size)`` for each size, vectorised."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total) - offsets


def compute_lead_times(examples: pd.DataFrame, flagged: np.ndarray) -> pd.Series:
    """Days from the first index date at which a member was flagged to the date they became a
    candidate, one value per member who became a candidate after being flagged.

    ``examples`` needs ``person_id``, ``as_of`` and ``candidate_date`` (the first date after the
    index date on which the member became a candidate, whether or not inside the horizon; NaT
    when never). Only flags raised before the candidate date count.
    """
    frame = examples.loc[np.asarray(flagged, dtype=bool), ["person_id", "as_of", "candidate_date"]]
    frame = frame[frame["candidate_date"].notna() & (frame["as_of"] < frame["candidate_date"])]
    if frame.empty:
        return pd.Series(dtype="float64", name="lead_time_days")
    first = frame.groupby("person_id").agg(first_flag=("as_of", "min"), candidate_date=("candidate_date", "min"))
    days = (first["candidate_date"] - first["first_flag"]).dt.days.astype("float64")
    return days.rename("lead_time_days")
