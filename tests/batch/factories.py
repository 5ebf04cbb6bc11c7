"""Small builders for batch-scoring tests: part rows as the scorer writes them, and a model stand-in
carrying only the identity fields the output files echo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from service.batch.outputs import PART_SCHEMA

AS_OF = date(2025, 6, 30)


@dataclass(frozen=True)
class ModelIdentity:
    """What outputs need from a loaded model: its name, registry version and rules version."""

    name: str = "cartscout-candidate"
    version: str = "3"
    rules_version: str = "rules-test"


def make_reason(feature: str = "lot_count", label: str = "Lines of therapy", value: float | None = 2.0, contribution: float = 0.8) -> dict:
    from service.batch.worklist import describe_value

    return {"feature": feature, "label": label, "value": value, "value_text": describe_value(feature, value), "contribution": contribution,
            "direction": "raises" if contribution >= 0 else "lowers"}


def make_criterion(product: str = "axicabtagene ciloleucel", eligible: bool = True, missing: tuple[str, ...] = ()) -> dict:
    return {"product": product, "eligible": eligible, "indication": "LBCL", "criteria_met": ["age >= 18"],
            "criteria_missing": list(missing), "criteria_unknown": []}


def make_row(person_id: str, status: str = "likely_soon", *, score: float | None = 0.4, disease: str | None = "LBCL",
             products: tuple[str, ...] = (), eligibility: list[dict] | None = None, reasons: list[dict] | None = None,
             lines: int = 2, miles: float | None = 30.0, payer: str | None = "commercial", eligible_since: date | None = None,
             model: ModelIdentity = ModelIdentity()) -> dict:
    """One part row; not_in_cohort rows come out in the scorer's canonical empty form, and only
    scored statuses get SHAP reasons by default (as the scorer does)."""
    outside = status == "not_in_cohort"
    return {
        "person_id": person_id, "as_of": AS_OF, "in_cohort": not outside, "disease": None if outside else disease,
        "status": status, "score": None if outside or status == "already_treated" else score,
        "eligible_products": [] if outside else list(products),
        "eligibility": [] if outside else (eligibility if eligibility is not None else [make_criterion(p) for p in products]),
        "lines_of_therapy": 0 if outside else lines,
        "reasons": reasons if reasons is not None else ([make_reason()] if status in ("likely_soon", "watch", "unlikely") else []),
        "distance_to_center_miles": None if outside else miles, "model_name": model.name,
        "model_version": model.version, "rules_version": model.rules_version,
        "payer_type": None if outside else payer, "eligible_since": eligible_since,
    }


def make_parts(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PART_SCHEMA)
