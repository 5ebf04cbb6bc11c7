"""The one scoring path: events in, one result per member out.

The FastAPI service (one member), the local batch scorer (chunks) and Spark (``applyInPandas``)
all call ``score_members``; the MLflow pyfunc wraps it too. It runs the feature pipeline with the
model's own code lists and eligibility rules, then decides a status per member:

=================== ===================================================================
``not_in_cohort``   no target blood cancer by the cohort algorithm (not scored)
``already_treated`` a CAR T infusion is on record (not scored)
``eligible_now``    label-eligible for at least one product today (the rules found them;
                    not scored: the model predicts who becomes a candidate *next*)
``likely_soon``     at risk, calibrated score >= the model's ``likely_soon`` threshold
``watch``           at risk, score >= the ``watch`` threshold
``unlikely``        at risk, below both
=================== ===================================================================

Only scored members get TreeSHAP explanations (LightGBM ``pred_contrib``), which cost ~25x a
prediction: explaining the whole population would dominate batch time for no reader.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.codelists import CodeLists
from models.artifact import LoadedModel

STATUSES = ("eligible_now", "likely_soon", "watch", "unlikely", "already_treated", "not_in_cohort")
_SCORED = ("likely_soon", "watch", "unlikely")


def _plain(value: Any) -> Any:
    """JSON-friendly scalar: NaN/NA become None, numpy scalars become Python, dates ISO strings."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _as_list(value: Any) -> list:
    """Criteria and drug cells arrive as lists, arrays, or ';'-joined strings; return a list."""
    if value is None or value is pd.NA:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return []
    text = str(value)
    return [part.strip() for part in text.split(";") if part.strip()] if text else []


def _group_records(frame: pd.DataFrame, build) -> dict[str, list]:
    if frame is None or frame.empty:
        return {}
    out: dict[str, list] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(str(row.person_id), []).append(build(row))
    return out


def _eligibility_record(row) -> dict:
    return {
        "product": _plain(getattr(row, "product", None)),
        "eligible": bool(getattr(row, "eligible", False)) if _plain(getattr(row, "eligible", None)) is not None else False,
        "indication": _plain(getattr(row, "indication", None)),
        "criteria_met": _as_list(getattr(row, "criteria_met", None)),
        "criteria_missing": _as_list(getattr(row, "criteria_missing", None)),
        "criteria_unknown": _as_list(getattr(row, "criteria_unknown", None)),
    }


def _line_record(row) -> dict:
    return {
        "number": _plain(getattr(row, "line_number", None)),
        "start": _plain(getattr(row, "start_date", None)),
        "end": _plain(getattr(row, "end_date", None)),
        "drugs": _as_list(getattr(row, "drugs", None)),
        "regimen": _plain(getattr(row, "regimen", None)),
    }


def assign_status(in_cohort: np.ndarray, car_t_received: np.ndarray, eligible_now: np.ndarray, score: np.ndarray, likely_soon: float, watch: float) -> np.ndarray:
    """Status per member from cohort membership, treatment, eligibility and the calibrated score."""
    scored = np.where(score >= likely_soon, "likely_soon", np.where(score >= watch, "watch", "unlikely"))
    status = np.where(eligible_now, "eligible_now", scored)
    status = np.where(car_t_received, "already_treated", status)
    return np.where(in_cohort, status, "not_in_cohort").astype(object)


def explain_rows(model: LoadedModel, matrix: np.ndarray, contributions: np.ndarray, top: int) -> list[list[dict]]:
    """Top ``top`` contributions per row (by absolute size), with catalog labels and the feature's
    value in its own terms (categorical levels by name)."""
    from features.catalog import CATALOG

    names = model.spec.feature_names
    labels = [CATALOG[n].label if n in CATALOG else n for n in names]
    levels = [CATALOG[n].levels if n in CATALOG else () for n in names]
    out = []
    for values, contrib in zip(matrix, contributions[:, :-1]):
        order = np.argsort(-np.abs(contrib), kind="mergesort")[:top]
        reasons = []
        for j in order:
            if contrib[j] == 0:
                break
            value = values[j]
            if levels[j] and not np.isnan(value) and 0 <= int(value) < len(levels[j]):
                shown: Any = levels[j][int(value)]
            else:
                shown = None if np.isnan(value) else float(value)
            reasons.append(
                {
                    "feature": names[j],
                    "label": labels[j],
                    "value": shown,
                    "contribution": float(contrib[j]),
                    "direction": "raises" if contrib[j] > 0 else "lowers",
                }
            )
        out.append(reasons)
    return out


def score_members(
    model: LoadedModel,
    events: pd.DataFrame,
    persons: pd.DataFrame,
    as_of: pd.Series,
    centers: pd.DataFrame | None = None,
    top_reasons: int = 5,
    *,
    zip_centroids: pd.DataFrame | None = None,
    num_threads: int = 0,
    codes: CodeLists | None = None,
) -> list[dict]:
    """One result per member of ``as_of`` (same order): status, calibrated score, eligibility per
    product with reasons, lines of therapy and the top contributing factors.

    ``events``/``persons`` are in the event model (``features.events``); ``as_of`` is indexed by
    person_id. ``centers`` (name, zip, latitude, longitude) enables the distance feature and
    defaults to the centre list the model was trained with; ZIP centroids default to the
    packaged table. ``codes`` defaults to the model's own code lists; a batch run passes the code
    lists of the delivery it reads, which carry that payer's NDC crosswalk, so oral drugs are
    recognised with the operator's mapping rather than the one the model was trained with.
    """
    from features.pipeline import build_features

    centers = centers if centers is not None else model.centers
    zip_centroids = zip_centroids if zip_centroids is not None else model.zip_centroids
    if centers is not None and zip_centroids is None:
        from features.geography import load_zip_centroids

        zip_centroids = model.zip_centroids = load_zip_centroids()
    fs = build_features(events, persons, as_of, codes if codes is not None else model.codes, centers=centers, zip_centroids=zip_centroids, rules=model.rules)
    keys = pd.Index(fs.features["person_id"].astype("string"))
    matrix = fs.features[list(model.spec.feature_names)].to_numpy(dtype=np.float64)

    cohort = fs.cohort.set_index(fs.cohort["person_id"].astype("string"))
    in_cohort = cohort["in_cohort"].reindex(keys).fillna(False).to_numpy(dtype=bool)
    disease = cohort["disease"].reindex(keys).to_numpy(dtype=object) if "disease" in cohort else np.full(len(keys), None, dtype=object)
    car_t = np.nan_to_num(fs.features["lot_car_t_received_flag"].to_numpy(dtype=float)) > 0 if "lot_car_t_received_flag" in fs.features else np.zeros(len(keys), bool)
    eligibility = fs.eligibility
    eligible_any = (
        eligibility.assign(person_id=eligibility["person_id"].astype("string")).groupby("person_id")["eligible"].any().reindex(keys).fillna(False).to_numpy(dtype=bool)
        if len(eligibility)
        else np.zeros(len(keys), dtype=bool)
    )

    score = np.full(len(keys), np.nan)
    to_score = in_cohort & ~car_t & ~eligible_any
    rows = np.flatnonzero(to_score)
    reasons: dict[int, list[dict]] = {}
    if rows.size:
        sub = matrix[rows]
        contributions = model.contributions(sub, num_threads=num_threads)
        score[rows] = model.calibrator.transform(contributions.sum(axis=1))
        for i, explained in zip(rows, explain_rows(model, sub, contributions, top_reasons)):
            reasons[int(i)] = explained
    thresholds = model.spec.thresholds
    status = assign_status(in_cohort, car_t, eligible_any, np.nan_to_num(score, nan=-1.0), thresholds.likely_soon, thresholds.watch)

    by_person_elig = _group_records(eligibility, _eligibility_record)
    lines = fs.lines.sort_values(["person_id", "line_number"]) if len(fs.lines) else fs.lines
    by_person_lines = _group_records(lines, _line_record)
    dates = fs.features["as_of"]
    results = []
    for i, key in enumerate(keys):
        person = str(key)
        products = by_person_elig.get(person, [])
        results.append(
            {
                "person_id": person,
                "as_of": _plain(dates.iloc[i]),
                "in_cohort": bool(in_cohort[i]),
                "disease": _plain(disease[i]),
                "status": str(status[i]),
                "score": None if np.isnan(score[i]) else float(score[i]),
                "eligibility": products,
                "eligible_products": sorted({p["product"] for p in products if p["eligible"] and p["product"]}),
                "lines_of_therapy": by_person_lines.get(person, []),
                "reasons": reasons.get(i, []),
                "model_name": model.name,
                "model_version": model.version,
                "rules_version": model.rules_version,
            }
        )
    return results
