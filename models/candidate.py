"""``CandidatePyfunc``: the MLflow pyfunc that is the released unit of cartscout.

``load_context`` reads the artifact once (booster, calibrator, spec, code lists, eligibility rules,
optional centre list; see ``models.artifact``) and checks the feature-set version; ``predict``
turns the contract's event data into one result per member through ``models.scoring.score_members``.

Input (``model_input``): the event model in *long* form, one row per event, with the member's
person columns repeated on each row and the evaluation date:

``person_id, kind, date, end_date, code_system, code, setting, claim_id, days_supply`` (see
``features.events``) + ``birth_date, sex, race, zip_code, payer_type, death_date`` + ``as_of``.

A member with no events is sent as one row with ``kind`` empty (a person-only row). Person columns
and ``as_of`` are taken from the member's first row.

Output: a DataFrame with one row per member: ``person_id, as_of, in_cohort, disease, status,
score, eligible_products, model_name, model_version, rules_version`` and the nested fields as
JSON text (``eligibility_json``, ``lines_of_therapy_json``, ``reasons_json``) so the output has a
stable tabular schema. Inside the service, call ``score_members`` on the loaded model directly: the
pyfunc's schema enforcement costs far more than the prediction (see performance notes).
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

from features.events import EVENT_COLUMNS, PERSON_COLUMNS

INPUT_COLUMNS = (*EVENT_COLUMNS, *[c for c in PERSON_COLUMNS if c != "person_id"], "as_of")
OUTPUT_COLUMNS = (
    "person_id",
    "as_of",
    "in_cohort",
    "disease",
    "status",
    "score",
    "eligible_products",
    "eligibility_json",
    "lines_of_therapy_json",
    "reasons_json",
    "model_name",
    "model_version",
    "rules_version",
)


class InputShapeError(ValueError):
    """The pyfunc input lacks columns or an evaluation date."""


def split_long_input(model_input: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Long events-with-person-columns input -> (events, persons, as_of) in the event model."""
    from features.events import conform_events, conform_persons

    missing = [c for c in ("person_id", "kind", "date", "code_system", "code", "as_of") if c not in model_input.columns]
    if missing:
        raise InputShapeError(f"model input lacks column(s): {', '.join(missing)}")
    frame = model_input.copy()
    frame["person_id"] = frame["person_id"].astype("string")
    if frame["as_of"].isna().any():
        rows = frame.index[frame["as_of"].isna()][:5].tolist()
        raise InputShapeError(f"model input has rows without as_of (rows {rows})")
    first = frame.drop_duplicates("person_id", keep="first")
    persons = conform_persons(first[[c for c in PERSON_COLUMNS if c in first.columns]])
    as_of = pd.Series(pd.to_datetime(first["as_of"]).to_numpy(), index=pd.Index(first["person_id"], name="person_id"), name="as_of")
    event_rows = frame[frame["kind"].notna() & (frame["kind"].astype("string") != "")]
    events = conform_events(event_rows[[c for c in EVENT_COLUMNS if c in event_rows.columns]])
    return events, persons, as_of


def results_to_frame(results: list[dict]) -> pd.DataFrame:
    """Score results as a flat DataFrame (nested fields as JSON text)."""
    rows = []
    for r in results:
        rows.append(
            {
                "person_id": r["person_id"],
                "as_of": r["as_of"],
                "in_cohort": r["in_cohort"],
                "disease": r["disease"],
                "status": r["status"],
                "score": r["score"],
                "eligible_products": ";".join(r["eligible_products"]),
                "eligibility_json": json.dumps(r["eligibility"]),
                "lines_of_therapy_json": json.dumps(r["lines_of_therapy"]),
                "reasons_json": json.dumps(r["reasons"]),
                "model_name": r["model_name"],
                "model_version": r["model_version"] or "",
                "rules_version": r["rules_version"],
            }
        )
    frame = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    frame["score"] = frame["score"].astype("float64")
    return frame


class CandidatePyfunc(mlflow.pyfunc.PythonModel):
    """Stateless wrapper: all state is read from the artifact in ``load_context``."""

    def load_context(self, context) -> None:
        from models.artifact import load_model_files

        self.model = load_model_files(dict(context.artifacts), source="pyfunc")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from models.scoring import score_members

        events, persons, as_of = split_long_input(model_input)
        top = int((params or {}).get("top_reasons", 5))
        return results_to_frame(score_members(self.model, events, persons, as_of, top_reasons=top))
