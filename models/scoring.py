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
``unlikely``        at risk, below both; also, not scored, a member who died on or before
                    ``as_of`` (training keeps only members alive at each landmark, so the
                    model has never seen one; the eligibility reasons say "died on ...")
=================== ===================================================================

Only scored members get TreeSHAP explanations (LightGBM ``pred_contrib``), which cost ~25x a
prediction: explaining the whole population would dominate batch time for no reader.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from features.codelists import CodeLists
from features.columns import FrameColumns, TextColumn, columns_of, n_rows, object_values, to_numpy
from models.artifact import LoadedModel

STATUSES = ("eligible_now", "likely_soon", "watch", "unlikely", "already_treated", "not_in_cohort")
_SCORED = ("likely_soon", "watch", "unlikely")
_FEW_ROWS = 64


def _as_list(value: Any) -> list:
    """Criteria and drug cells arrive as lists, arrays, or ';'-joined strings; return a list of text."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return []
    text = str(value)
    return [part.strip() for part in text.split(";") if part.strip()] if text else []


def _values(table, name: str) -> list:
    """Column ``name`` of a DataFrame or column mapping as Python values (None for NaN/NA/NaT,
    dates as ISO day strings); all None when the column is absent. One conversion per column, by
    the cheapest route for its array type: per-row pandas access, or even
    ``to_numpy(na_value=...)`` on Arrow text, costs more than the model for a one-member request."""
    columns = columns_of(table)
    if name not in columns:
        return [None] * n_rows(columns)
    column = columns[name]
    if isinstance(column, TextColumn):
        return column.values.tolist()  # None already marks missing
    if isinstance(column, (np.ndarray, pd.arrays.NumpyExtensionArray, pd.arrays.DatetimeArray)):
        values = to_numpy(column)
        kind = values.dtype.kind
        if kind == "M":
            days = values.astype("datetime64[D]")
            text = np.datetime_as_string(days).astype(object)
            text[np.isnat(days)] = None
            return text.tolist()
        if kind in "biu":
            return values.tolist()
        if kind == "f":
            return [None if v != v else v for v in values.tolist()]
        return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in values.tolist()]
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        return column.__arrow_array__().to_pylist()  # Arrow nulls (NaN or NA in pandas) come out as None
    return column.to_numpy(dtype=object, na_value=None).tolist()


def _flags(table, name: str) -> np.ndarray:
    """Boolean column with missing as False (all False when the column is absent)."""
    columns = columns_of(table)
    if name not in columns:
        return np.zeros(n_rows(columns), dtype=bool)
    return to_numpy(columns[name], bool, False)


def _member_rows(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position in ``keys`` of each id (-1 when absent): the member each row of a side table belongs to."""
    if len(ids) == len(keys) and np.array_equal(ids, keys):
        return np.arange(len(keys))
    if len(keys) <= _FEW_ROWS:
        at = {key: i for i, key in enumerate(keys.tolist())}
        return np.array([at.get(i, -1) for i in ids.tolist()], dtype=np.intp)
    return pd.Index(keys).get_indexer(ids)


def _died_by(persons, keys: np.ndarray, as_of: pd.Series) -> np.ndarray:
    """Members (in ``keys`` order, which is ``as_of``'s) whose recorded death is on or before their as_of."""
    columns = columns_of(persons)
    if "death_date" not in columns or not n_rows(columns):
        return np.zeros(len(keys), dtype=bool)
    row = _member_rows(object_values(columns, "person_id", None), keys)  # a request's text columns never become a frame
    death = to_numpy(columns["death_date"], "datetime64[D]")[np.maximum(row, 0)]
    return (row >= 0) & ~np.isnat(death) & (death <= to_numpy(as_of.array, "datetime64[D]"))


def _person_ids(table) -> np.ndarray:
    """The person_id column as an object array of str (None where missing)."""
    ids = np.empty(n_rows(columns_of(table)), dtype=object)
    ids[:] = _values(table, "person_id")
    return ids


def _group_by_member(member: np.ndarray, n: int, records: list, *sort_keys: np.ndarray) -> list[list]:
    """Records per member (``member`` = -1 rows dropped), in the order of ``sort_keys`` then rows."""
    out: list[list] = [[] for _ in range(n)]
    order = np.lexsort((*reversed(sort_keys), member)) if sort_keys else np.argsort(member, kind="stable")
    for i, row in zip(member[order].tolist(), order.tolist()):
        if i >= 0:
            out[i].append(records[row])
    return out


def _eligibility_by_member(eligibility, keys: np.ndarray) -> tuple[list[list[dict]], np.ndarray]:
    """Per member: one record per product x indication evaluated (in the pipeline's order), and
    whether any is label-eligible."""
    n = len(keys)
    if eligibility is None or not n_rows(columns_of(eligibility)):
        return [[] for _ in range(n)], np.zeros(n, dtype=bool)
    member = _member_rows(keys, _person_ids(eligibility))
    eligible = _flags(eligibility, "eligible")
    records = [
        {"product": product, "eligible": flag, "indication": indication, "criteria_met": _as_list(met), "criteria_missing": _as_list(missing), "criteria_unknown": _as_list(unknown)}
        for product, flag, indication, met, missing, unknown in zip(
            _values(eligibility, "product"),
            eligible.tolist(),
            _values(eligibility, "indication"),
            _values(eligibility, "criteria_met"),
            _values(eligibility, "criteria_missing"),
            _values(eligibility, "criteria_unknown"),
        )
    ]
    eligible_any = np.zeros(n, dtype=bool)
    eligible_any[member[eligible & (member >= 0)]] = True
    return _group_by_member(member, n, records), eligible_any


def _lines_by_member(lines, keys: np.ndarray) -> list[list[dict]]:
    """Per member: lines of therapy in line-number order."""
    n = len(keys)
    if lines is None or not n_rows(columns_of(lines)):
        return [[] for _ in range(n)]
    member = _member_rows(keys, _person_ids(lines))
    numbers = _values(lines, "line_number")
    records = [
        {"number": number, "start": start, "end": end, "drugs": _as_list(drugs), "regimen": regimen}
        for number, start, end, drugs, regimen in zip(numbers, _values(lines, "start_date"), _values(lines, "end_date"), _values(lines, "drugs"), _values(lines, "regimen"))
    ]
    order = np.array([np.inf if number is None else number for number in numbers], dtype=np.float64)
    return _group_by_member(member, n, records, order)


def assign_status(
    in_cohort: np.ndarray, car_t_received: np.ndarray, eligible_now: np.ndarray, score: np.ndarray, likely_soon: float, watch: float, deceased: np.ndarray | None = None
) -> np.ndarray:
    """Status per member from cohort membership, treatment, eligibility, death and the calibrated score."""
    scored = np.where(score >= likely_soon, "likely_soon", np.where(score >= watch, "watch", "unlikely"))
    if deceased is not None:
        scored = np.where(deceased, "unlikely", scored)
    status = np.where(eligible_now, "eligible_now", scored)
    status = np.where(car_t_received, "already_treated", status)
    return np.where(in_cohort, status, "not_in_cohort").astype(object)


def explain_rows(model: LoadedModel, matrix: np.ndarray, contributions: np.ndarray, top: int) -> list[list[dict]]:
    """Top ``top`` contributions per row (by absolute size), with catalog labels and the feature's
    value in its own terms (categorical levels by name)."""
    names = model.spec.feature_names
    labels, levels = _catalog_terms(tuple(names))
    contributions = contributions[:, :-1]
    orders = np.argsort(-np.abs(contributions), axis=1, kind="mergesort")[:, :top].tolist()
    out = []
    # Python floats from here on: a handful of values per row, each read once
    for values, contrib, order in zip(matrix.tolist(), contributions.tolist(), orders):
        reasons = []
        for j in order:
            if contrib[j] == 0:
                break
            value = values[j]
            if levels[j] and value == value and 0 <= int(value) < len(levels[j]):
                shown: Any = levels[j][int(value)]
            else:
                shown = None if value != value else value
            reasons.append(
                {
                    "feature": names[j],
                    "label": labels[j],
                    "value": shown,
                    "contribution": contrib[j],
                    "direction": "raises" if contrib[j] > 0 else "lowers",
                }
            )
        out.append(reasons)
    return out


@cache
def _catalog_terms(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple, ...]]:
    """Catalog label and category levels of each feature of a model (once per feature list)."""
    from features.catalog import CATALOG

    return tuple(CATALOG[n].label if n in CATALOG else n for n in names), tuple(CATALOG[n].levels if n in CATALOG else () for n in names)


def score_members(
    model: LoadedModel,
    events: pd.DataFrame | FrameColumns,
    persons: pd.DataFrame | FrameColumns,
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

    ``events``/``persons`` are in the event model (``features.events``), ``events`` as a DataFrame
    or as a request's column arrays (``MemberHistory.event_columns``); ``as_of`` is indexed by
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
    # the steps' column arrays, not their DataFrames: building those would cost more than the model
    features = fs.features_columns
    keys = _person_ids(features)
    n = len(keys)
    matrix = fs.feature_matrix(model.spec.feature_names)

    cohort = fs.cohort_columns
    cohort_row = _member_rows(_person_ids(cohort), keys)
    present = cohort_row >= 0
    in_cohort = _flags(cohort, "in_cohort")[np.maximum(cohort_row, 0)] & present if n_rows(cohort) else np.zeros(n, dtype=bool)
    disease = np.array(_values(cohort, "disease") + [None], dtype=object)[cohort_row].tolist()
    car_t = to_numpy(features["lot_car_t_received_flag"], np.float64) > 0 if "lot_car_t_received_flag" in features else np.zeros(n, bool)  # NaN: False
    products, eligible_any = _eligibility_by_member(fs.eligibility_columns, keys)
    deceased = _died_by(persons, keys, as_of)

    score = np.full(n, np.nan)
    rows = np.flatnonzero(in_cohort & ~car_t & ~eligible_any & ~deceased)
    reasons: list[list[dict]] = [[] for _ in range(n)]
    if rows.size:
        sub = matrix[rows]
        contributions = model.contributions(sub, num_threads=num_threads)
        score[rows] = model.calibrator.transform(contributions.sum(axis=1))
        for i, explained in zip(rows.tolist(), explain_rows(model, sub, contributions, top_reasons)):
            reasons[i] = explained
    thresholds = model.spec.thresholds
    status = assign_status(in_cohort, car_t, eligible_any, np.where(score == score, score, -1.0), thresholds.likely_soon, thresholds.watch, deceased).tolist()

    lines = _lines_by_member(fs.lines_columns, keys)
    dates = _values(features, "as_of")
    scores = [None if s != s else s for s in score.tolist()]
    name, version, rules_version = model.name, model.version, model.rules_version
    return [
        {
            "person_id": str(keys[i]),
            "as_of": dates[i],
            "in_cohort": bool(in_cohort[i]),
            "disease": disease[i],
            "status": status[i],
            "score": scores[i],
            "eligibility": products[i],
            "eligible_products": sorted({p["product"] for p in products[i] if p["eligible"] and p["product"]}),
            "lines_of_therapy": lines[i],
            "reasons": reasons[i],
            "model_name": name,
            "model_version": version,
            "rules_version": rules_version,
        }
        for i in range(n)
    ]
