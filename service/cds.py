"""CDS Hooks 2.0: the ``patient-view`` service definition, prefetch handling, cards and feedback.

A chart opens, the EHR posts the prefetched Patient, Conditions, Procedures and medication
records; we map them to events (``service.fhir``), score, and answer with at most one card:
``warning`` when the member is label-eligible for a CAR T product now, ``info`` when the model
expects eligibility soon, nothing (``{"cards": []}``) otherwise. CDS Hooks forbids null or empty
JSON members, so every card goes through ``strip_empty``.

Prefetch semantics (spec section "Prefetch"): a key that is absent means the EHR did not or could
not fetch it; ``null`` means there is no such data. We do not call the EHR's FHIR server
ourselves, so an absent key (or an OperationOutcome in its place) is ``412 Precondition Failed``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from service.errors import InvalidInput, PrefetchMissing
from service.schemas import CdsCard, CdsDiscovery, CdsFeedbackRequest, CdsLink, CdsService, CdsSource, CdsCoding, ScoreResponse, strip_empty

SERVICE_ID = "cartscout-candidate"
HOOK = "patient-view"
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
}
SUMMARY_LIMIT = 139  # "<140-character summary"
TOPIC = CdsCoding(system="urn:cartscout:cds-topic", code="car-t-candidate", display="CAR T-cell therapy candidacy")
STATUS_TEXT = {
    "eligible_now": "Label-eligible for CAR T now",
    "likely_soon": "Likely to become a CAR T candidate soon",
    "watch": "Worth watching",
    "unlikely": "Unlikely to become a CAR T candidate soon",
    "already_treated": "Already received CAR T",
    "not_in_cohort": "No target blood cancer found",
}


def discovery() -> CdsDiscovery:
    """The discovery document: one patient-view service with its prefetch templates."""
    return CdsDiscovery(
        services=[
            CdsService(
                hook=HOOK,
                id=SERVICE_ID,
                title="CAR T-cell therapy candidate",
                description=(
                    "Flags patients with a blood cancer who are label-eligible for a CAR T-cell product now, "
                    "or likely to become candidates soon, with the lines of therapy and reasons behind it."
                ),
                prefetch=dict(PREFETCH),
                usageRequirements="Needs the patient's Conditions (ICD-10-CM), Procedures and medication administrations/orders.",
            )
        ]
    )


def render(model: Any) -> dict[str, Any]:
    """JSON for a CDS Hooks body with no null or empty members (``{"cards": []}`` is the one allowed empty)."""
    data = model.model_dump(mode="json", exclude_none=True)
    if "cards" in data:
        return {"cards": strip_empty(data["cards"]), **strip_empty({k: v for k, v in data.items() if k != "cards"})}
    return strip_empty(data)


def split_prefetch(prefetch: dict[str, Any] | None, patient_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the prefetch we asked for is there; return (patient, {key: searchset Bundle or None})."""
    prefetch = prefetch or {}
    missing = [key for key in PREFETCH if key not in prefetch]
    if missing:
        raise PrefetchMissing(
            f"prefetch lacks {', '.join(missing)}; this service does not query the FHIR server itself",
            errors=[{"field": f"prefetch.{key}", "rule": "required", "message": f"prefetch template {PREFETCH[key]!r} was not fulfilled"} for key in missing],
        )
    failed = [key for key in PREFETCH if isinstance(prefetch[key], dict) and prefetch[key].get("resourceType") == "OperationOutcome"]
    if failed:
        raise PrefetchMissing(
            f"the EHR could not fetch {', '.join(failed)}",
            errors=[{"field": f"prefetch.{key}", "rule": "operation_outcome", "message": "an OperationOutcome came instead of data"} for key in failed],
        )
    patient = prefetch["patient"]
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise PrefetchMissing("prefetch.patient holds no Patient", errors=[{"field": "prefetch.patient", "rule": "required", "message": "a Patient resource is required"}])
    if patient.get("id") != patient_id:
        raise InvalidInput("prefetch.patient is not the patient in context", errors=[{"field": "prefetch.patient.id", "rule": "same_patient", "message": "must equal context.patientId"}])
    bundles = {}
    for key in PREFETCH:
        if key == "patient":
            continue
        value = prefetch[key]
        if value is not None and not (isinstance(value, dict) and value.get("resourceType") == "Bundle"):
            raise InvalidInput("prefetch entry is not a Bundle", errors=[{"field": f"prefetch.{key}", "rule": "type", "message": "expected a searchset Bundle or null"}])
        bundles[key] = value
    return patient, bundles


def build_cards(result: ScoreResponse, *, info_url: str) -> list[CdsCard]:
    """At most one card: warning for eligible now, info for likely soon, none otherwise."""
    indicator = {"eligible_now": "warning", "likely_soon": "info"}.get(result.status)
    if indicator is None:
        return []
    source = CdsSource(label=f"cartscout {result.model_name} v{result.model_version} (rules {result.rules_version})", topic=TOPIC)
    links = [CdsLink(label="About the cartscout CAR T candidate model", url=info_url, type="absolute")]
    return [CdsCard(uuid=str(uuid.uuid4()), summary=card_summary(result), detail=card_detail(result), indicator=indicator, source=source, links=links)]


def card_summary(result: ScoreResponse) -> str:
    """One sentence under 140 characters, e.g. "Likely CAR T candidate: relapsed 7 months after first-line
    R-CHOP; eligible for axicabtagene ciloleucel and lisocabtagene maraleucel (2nd-line LBCL)"."""
    history = _history_phrase(result)
    if result.status == "eligible_now":
        eligible = [e for e in result.eligibility if e.eligible]
        products = [e.product for e in eligible]
        indication = next((e.indication for e in eligible if e.indication), None)
        candidates = []
        for hist in ((f"{history}; ",) if history else ()) + ("",):
            for shown in range(len(products), 0, -1):
                names = " and ".join(products[:shown]) if shown <= 2 else ", ".join(products[: shown - 1]) + " and " + products[shown - 1]
                if shown < len(products):
                    names += f" (+{len(products) - shown} more)"
                for ind in ((f" ({indication})",) if indication else ()) + ("",):
                    candidates.append(f"Likely CAR T candidate: {hist}eligible for {names}{ind}")
        return _first_fitting(candidates)
    score = f"score {result.score:.2f}" if result.score is not None else "scored"
    disease = f" ({result.disease})" if result.disease else ""
    candidates = [f"Possible CAR T candidate soon{disease}: {history}; {score}" if history else f"Possible CAR T candidate soon{disease}; {score}", f"Possible CAR T candidate soon; {score}"]
    return _first_fitting(candidates)


def _first_fitting(candidates: list[str]) -> str:
    for text in candidates:
        if len(text) <= SUMMARY_LIMIT:
            return text
    return candidates[-1][: SUMMARY_LIMIT - 1] + "…"


def _history_phrase(result: ScoreResponse) -> str | None:
    """"relapsed 7 months after first-line R-CHOP" from the first two lines of therapy."""
    lines = sorted(result.lines_of_therapy, key=lambda line: line.number)
    if not lines:
        return None
    first = lines[0]
    first_name = first.regimen or "+".join(first.drugs[:3]) or "therapy"
    if len(lines) == 1:
        return f"on first-line {first_name}"
    second = lines[1]
    months = _months_between(first.end or first.start, second.start)
    if months is None or months < 0:
        return f"{len(lines)} lines of therapy since first-line {first_name}"
    return f"relapsed {months} month{'s' if months != 1 else ''} after first-line {first_name}"


def _months_between(start: date, end: date) -> int | None:
    if start is None or end is None:
        return None
    return (end.year - start.year) * 12 + end.month - start.month - (1 if end.day < start.day else 0)


def card_detail(result: ScoreResponse) -> str:
    """GitHub-flavoured Markdown: status, lines of therapy, eligibility per product, top factors."""
    out = [f"**{STATUS_TEXT.get(result.status, result.status)}** (as of {result.as_of.isoformat()})"]
    facts = []
    if result.disease:
        facts.append(f"disease: {result.disease}")
    if result.score is not None:
        facts.append(f"calibrated score: {result.score:.2f}")
    if facts:
        out.append("; ".join(facts))
    if result.lines_of_therapy:
        out += ["", "**Lines of therapy**", "", "| line | start | end | regimen / drugs |", "|---|---|---|---|"]
        for line in sorted(result.lines_of_therapy, key=lambda line: line.number):
            what = line.regimen or ", ".join(line.drugs) or "-"
            out.append(f"| {line.number} | {line.start.isoformat()} | {line.end.isoformat() if line.end else 'ongoing'} | {_cell(what)} |")
    if result.eligibility:
        out += ["", "**Label eligibility**", ""]
        for e in result.eligibility:
            verdict = "eligible" if e.eligible else ("not assessable" if e.eligible is None else "not eligible")
            line = f"- {e.product}" + (f" ({e.indication})" if e.indication else "") + f": {verdict}"
            parts = [f"met: {', '.join(e.criteria_met)}" if e.criteria_met else "", f"missing: {', '.join(e.criteria_missing)}" if e.criteria_missing else "", f"unknown from claims: {', '.join(e.criteria_unknown)}" if e.criteria_unknown else ""]
            parts = [p for p in parts if p]
            out.append(line + (f" ({'; '.join(parts)})" if parts else ""))
    if result.reasons:
        out += ["", "**Top contributing factors**", ""]
        for r in result.reasons:
            value = "" if r.value is None else f": {r.value:.3g}" if isinstance(r.value, float) else f": {r.value}"
            out.append(f"- {r.label}{value} ({r.direction} the score, SHAP {r.contribution:+.2f})")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "/")


class FeedbackLog:
    """Append-only JSONL of card outcomes for later evaluation: card id, outcome, time, override
    reason code. No free text (``userComment`` may name the patient) and nothing about the patient."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, request: CdsFeedbackRequest, service_id: str) -> int:
        received = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lines = []
        for item in request.feedback:
            reason = item.overrideReason.reason if item.overrideReason and item.overrideReason.reason else None
            lines.append(
                json.dumps(
                    strip_empty(
                        {
                            "received_at": received,
                            "service_id": service_id,
                            "card": item.card,
                            "outcome": item.outcome,
                            "outcome_timestamp": item.outcomeTimestamp.astimezone(timezone.utc).isoformat() if item.outcomeTimestamp.tzinfo else item.outcomeTimestamp.isoformat(),
                            "accepted_suggestions": [s.id for s in item.acceptedSuggestions or []],
                            "override_reason": {"system": reason.system, "code": reason.code} if reason else None,
                            "override_comment_given": bool(item.overrideReason and item.overrideReason.userComment),
                        }
                    ),
                    separators=(",", ":"),
                )
            )
        payload = ("\n".join(lines) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(lines)
