"""The care managers' worklist: who to call first, and why, in words a nurse navigator reads.

Ranking: members who meet a CAR T label now come first, the longest-waiting first (a member
eligible for months and still untreated is the access gap the outreach exists to close); then
members likely to become eligible soon, highest model score first. Members are identified by the
plan's own ``person_id``; headers are plain language, never internal column names.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from service.batch.outputs import write_text_atomic

STATUS_LABELS = {
    "eligible_now": "Eligible now",
    "likely_soon": "Likely soon",
    "watch": "Watch",
    "unlikely": "Unlikely",
    "already_treated": "Already treated with CAR T",
    "not_in_cohort": "No target blood cancer",
}
DISEASE_LABELS = {
    "LBCL": "Large B-cell lymphoma",
    "FL": "Follicular lymphoma",
    "MCL": "Mantle cell lymphoma",
    "MZL": "Marginal zone lymphoma",
    "CLL_SLL": "CLL / small lymphocytic lymphoma",
    "B_ALL": "B-cell acute lymphoblastic leukaemia",
    "MM": "Multiple myeloma",
}
HEADERS = (
    "Rank",
    "Member ID",
    "Priority",
    "Disease",
    "Eligible CAR T products",
    "Eligible since",
    "Days since eligible",
    "Likelihood score (%)",
    "Lines of therapy so far",
    "Miles to nearest CAR T centre",
    "Payer type",
    "Why this member was flagged",
    "Still needed to meet a label",
)
WORKLIST_STATUSES = ("eligible_now", "likely_soon")


def rank_worklist(parts: pa.Table | pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
    """The members to contact, ranked, as the part/score columns (``top_k`` caps the length)."""
    if isinstance(parts, pa.Table):
        parts = parts.filter(pc.is_in(parts.column("status"), value_set=pa.array(WORKLIST_STATUSES))).to_pandas()
    frame = parts[parts["status"].isin(WORKLIST_STATUSES)].copy()
    as_of = pd.to_datetime(frame["as_of"])
    since = pd.to_datetime(frame["eligible_since"]) if "eligible_since" in frame else pd.Series(pd.NaT, index=frame.index)
    frame["_group"] = frame["status"].map({"eligible_now": 0, "likely_soon": 1})
    frame["_waiting"] = (as_of - since).dt.days
    # Eligible now: longest waiting first (unknown waiting time after known); likely soon: score.
    frame["_key1"] = (-frame["_waiting"]).where(frame["_group"].eq(0), 0).fillna(math.inf)
    frame["_key2"] = -frame["score"].fillna(-1.0)
    frame = frame.sort_values(["_group", "_key1", "_key2", "person_id"], kind="stable")
    if top_k is not None:
        frame = frame.head(top_k)
    return frame.drop(columns=["_group", "_key1", "_key2"]).reset_index(drop=True)


def build_worklist(parts: pa.Table | pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
    """The worklist as care managers see it: human headers, plain-language reasons."""
    ranked = rank_worklist(parts, top_k)
    rows = []
    for rank, rec in enumerate(ranked.to_dict("records"), start=1):
        waiting = rec.get("_waiting")
        since = rec.get("eligible_since")
        rows.append(
            (
                rank,
                rec["person_id"],
                STATUS_LABELS[rec["status"]],
                describe_disease(rec.get("disease")),
                "; ".join(describe_product(p) for p in _items(rec.get("eligible_products"))),
                since.isoformat() if isinstance(since, date) else "",
                describe_waiting(waiting),
                "" if rec.get("score") is None or pd.isna(rec["score"]) else round(100 * float(rec["score"]), 1),
                int(rec.get("lines_of_therapy") or 0),
                "" if rec.get("distance_to_center_miles") is None or pd.isna(rec["distance_to_center_miles"]) else round(float(rec["distance_to_center_miles"])),
                (rec.get("payer_type") or "").capitalize() if isinstance(rec.get("payer_type"), str) else "",
                describe_reasons(_items(rec.get("reasons"))),
                describe_missing(_items(rec.get("eligibility"))) if rec["status"] != "eligible_now" else "",
            )
        )
    return pd.DataFrame(rows, columns=list(HEADERS))


def write_worklist(parts: pa.Table | pd.DataFrame, path: Path, top_k: int | None = None) -> int:
    """Write the worklist CSV atomically; returns the number of members on it."""
    worklist = build_worklist(parts, top_k)
    buffer = io.StringIO()
    worklist.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    write_text_atomic(buffer.getvalue(), Path(path))
    return len(worklist)


def describe_waiting(days) -> str:
    """Days since eligibility; at the lookback limit it reads '720+' (onset is at least that old)."""
    from service.batch.eligibility_onset import LOOKBACK_MONTHS, STEP_DAYS

    if days is None or pd.isna(days):
        return ""
    return f"{int(days)}+" if int(days) >= LOOKBACK_MONTHS * STEP_DAYS else str(int(days))


def describe_disease(code) -> str:
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return ""
    return DISEASE_LABELS.get(str(code), str(code))


def describe_product(name: str) -> str:
    """Product as written in the label table (generic name), capitalised for reading."""
    return str(name)[:1].upper() + str(name)[1:]


def describe_reasons(reasons: list[dict], limit: int = 3) -> str:
    """The strongest factors that raised the score, as 'label (value)'; lowering factors follow if
    nothing raised it. Example: 'Lines of therapy (3); Days since current line started (45 days)'."""
    raising = [r for r in reasons if (r.get("contribution") or 0) > 0]
    chosen = (raising or list(reasons))[:limit]
    return "; ".join(f"{r.get('label') or r.get('feature')} ({r.get('value_text') or describe_value(r.get('feature'), r.get('value'))})" for r in chosen)


def describe_value(feature: str | None, value) -> str:
    """A feature value in words, using the catalog's kind, unit and category levels."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, str):
        return value
    from features.catalog import CATALOG

    spec = CATALOG.get(feature or "")
    if spec is None:
        return _plain_number(value)
    if spec.kind == "flag":
        return "yes" if float(value) >= 0.5 else "no"
    if spec.kind == "categorical" and spec.levels:
        index = int(value)
        return spec.levels[index] if 0 <= index < len(spec.levels) else "unknown"
    text = _plain_number(value)
    return text if spec.kind == "count" or spec.unit in ("", "category") else f"{text} {spec.unit}"


def describe_missing(eligibility: list[dict]) -> str:
    """What stands between the member and the closest label (fewest missing criteria)."""
    candidates = [e for e in eligibility if not e.get("eligible") and _items(e.get("criteria_missing"))]
    if not candidates:
        return ""
    closest = min(candidates, key=lambda e: (len(_items(e.get("criteria_missing"))), str(e.get("product"))))
    return f"{describe_product(closest.get('product'))}: " + "; ".join(str(c) for c in _items(closest.get("criteria_missing")))


def _plain_number(value) -> str:
    number = float(value)
    return f"{number:,.0f}" if number.is_integer() or abs(number) >= 100 else f"{number:,.1f}"


def _items(value) -> list:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)
