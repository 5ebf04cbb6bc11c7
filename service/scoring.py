"""Score mapped member histories with the serving model and record what the log and metrics need.

The service adds nothing to the model's answer: ``models.scoring.score_members`` is the one
scoring path for the API, the batch scorer and Spark. This module only calls it with one thread
per request (LightGBM's default threading makes single-row p99 several times worse) and turns its
records into response models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd

from features.columns import FrameColumns
from service.logging import MemberHasher, RequestRecord
from service.metrics import ServiceMetrics
from service.fhir import FhirHistory
from service.schemas import FhirScoreResponse, ScoreResponse

TOP_REASONS = 5


def score_histories(
    model: Any,
    events: pd.DataFrame | FrameColumns,
    persons: pd.DataFrame | FrameColumns,
    as_of: pd.Series,
    events_after_as_of: dict[str, int],
    *,
    records: Sequence[RequestRecord],
    metrics: ServiceMetrics,
    hasher: MemberHasher,
    response_model: type[ScoreResponse] = ScoreResponse,
    extra: dict[str, Any] | None = None,
    person_ids: Sequence[str] | None = None,
) -> list[ScoreResponse]:
    """One response per member of ``as_of``, in its order. ``records[i]`` is the log record of the
    request member ``i`` came in; ``person_ids[i]``, when given, is the identifier to report for a
    member whose history was keyed by its position (requests scored together may name the same
    member)."""
    from models.scoring import score_members

    for record in records:
        record.model_version = str(model.version)
    results = score_members(model, events, persons, as_of, top_reasons=TOP_REASONS, num_threads=1)
    out = []
    for i, (result, record) in enumerate(zip(results, records, strict=True)):
        late = events_after_as_of.get(result["person_id"], 0)
        reported = result["person_id"] if person_ids is None else person_ids[i]
        response = response_model.model_validate({**result, "person_id": reported, "model_version": str(result["model_version"]), "events_after_as_of": late, **(extra or {})})
        record.add_member(hasher(response.person_id))
        record.add_result(response.score, response.status)
        metrics.observe_result(response.score, response.status, record.model_version)
        out.append(response)
    return out


def score_fhir_history(model: Any, history: FhirHistory, as_of: date, *, record: RequestRecord, metrics: ServiceMetrics, hasher: MemberHasher) -> FhirScoreResponse:
    """Score one patient read from FHIR, reporting what could not be mapped alongside the result."""
    day = pd.Timestamp(as_of)
    as_of_series = pd.Series([day], index=pd.Index([history.person_id], dtype="string", name="person_id"), dtype="datetime64[s]")
    late = int(history.events["date"].gt(day).sum())
    extra = {"unmapped_codes": history.unmapped_codes, "mapped_resources": history.mapped_resources, "skipped_resources": history.skipped_resources}
    return score_histories(
        model, history.events, history.persons, as_of_series, {history.person_id: late}, records=[record], metrics=metrics, hasher=hasher, response_model=FhirScoreResponse, extra=extra
    )[0]  # type: ignore[return-value]
