"""Request and response bodies of the HTTP API (pydantic v2, unknown fields rejected).

The REST request is one member's history in the shape of the batch input contract (Tuva input
layer): demographics and enrollment spans from ``eligibility``, claim lines from
``medical_claim`` (the 25 numbered diagnosis columns become one list) and ``pharmacy_claim``.
The same mapping to the event model then serves one member here and millions in the batch job.

Dates must be real calendar days between 1900-01-01 and 2100-12-31. Events after ``as_of`` are
accepted and ignored (counted in ``events_after_as_of``), because claims systems routinely carry
future-dated lines (scheduled services, data-entry errors) and rejecting a whole history for one
of them would hide a candidate. A span that ends before it starts is an error naming the field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2100, 12, 31)
MAX_CODES_PER_CLAIM = 25  # Tuva's diagnosis_code_1..25 / procedure_code_1..25
MAX_DAYS_SUPPLY = 365  # a fill's supply in days; more is a data error (FHIR's daysSupply too)

MemberStatus = Literal["eligible_now", "likely_soon", "watch", "unlikely", "already_treated", "not_in_cohort"]


Day = Annotated[date, Field(ge=MIN_DAY, le=MAX_DAY)]
Code = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.\- ]+$")]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]


def _not_before(field: str):
    """A field validator that rejects a date earlier than ``field`` of the same object."""

    def check(value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get(field)
        if value is not None and start is not None and value < start:
            raise ValueError(f"must not be before {field}")
        return value

    return check


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- the member history (request) -------------------------------------------------------------


class Demographics(StrictModel):
    """From the member's most recent ``eligibility`` row."""

    birth_date: Day
    gender: Literal["male", "female", "unknown"] = "unknown"
    race: str | None = Field(None, max_length=64)
    zip_code: str | None = Field(None, pattern=r"^\d{5}(-?\d{4})?$")
    death_date: Day | None = None

    _death_after_birth = field_validator("death_date")(_not_before("birth_date"))


class EnrollmentSpan(StrictModel):
    """One ``eligibility`` row: a coverage span with its payer."""

    enrollment_start_date: Day
    enrollment_end_date: Day
    payer: str | None = Field(None, max_length=128)
    plan: str | None = Field(None, max_length=128)
    payer_type: Literal["commercial", "medicare", "medicaid", "self-insured"] | None = None

    _ordered = field_validator("enrollment_end_date")(_not_before("enrollment_start_date"))


class ProcedureCode(StrictModel):
    """An ICD-10-PCS procedure on an institutional claim (``procedure_code_n``/``procedure_date_n``)."""

    code: Code
    date: Day | None = None


class MedicalClaimLine(StrictModel):
    """One ``medical_claim`` line. Header fields repeat on every line of the claim, as in Tuva."""

    claim_id: Identifier
    claim_line_number: int = Field(ge=1, le=10_000)
    claim_type: Literal["professional", "institutional", "undetermined"]
    claim_start_date: Day
    claim_end_date: Day
    claim_line_start_date: Day | None = None
    claim_line_end_date: Day | None = None
    admission_date: Day | None = None
    discharge_date: Day | None = None
    place_of_service_code: str | None = Field(None, pattern=r"^\d{2}$")
    bill_type_code: str | None = Field(None, pattern=r"^\d{3,4}$")
    drg_code_type: Literal["ms-drg", "apr-drg"] | None = None
    drg_code: str | None = Field(None, pattern=r"^\d{3}$")
    revenue_center_code: str | None = Field(None, pattern=r"^\d{3,4}$")
    hcpcs_code: Code | None = None
    diagnosis_code_type: Literal["icd-10-cm", "icd-9-cm"] = "icd-10-cm"
    diagnosis_codes: list[Code] = Field(default_factory=list, max_length=MAX_CODES_PER_CLAIM, description="diagnosis_code_1..25 in order (dotted or dotless).")
    procedure_code_type: Literal["icd-10-pcs", "icd-9-pcs"] = "icd-10-pcs"
    procedures: list[ProcedureCode] = Field(default_factory=list, max_length=MAX_CODES_PER_CLAIM)

    _claim_ordered = field_validator("claim_end_date")(_not_before("claim_start_date"))
    _line_ordered = field_validator("claim_line_end_date")(_not_before("claim_line_start_date"))
    _stay_ordered = field_validator("discharge_date")(_not_before("admission_date"))


class PharmacyClaimLine(StrictModel):
    """One ``pharmacy_claim`` line: a dispensed fill identified by its NDC."""

    claim_id: Identifier
    claim_line_number: int = Field(1, ge=1, le=10_000)
    dispensing_date: Day
    ndc_code: str = Field(pattern=r"^(\d{11}|\d{4,5}-\d{3,4}-\d{1,2})$", description="11 digits, or the hyphenated 10-digit labeler-product-package form.")
    days_supply: int | None = Field(None, ge=0, le=MAX_DAYS_SUPPLY)
    quantity: float | None = Field(None, ge=0)


class ScoreRequest(StrictModel):
    """One member's claims history, as of a date (default: today)."""

    person_id: Identifier
    as_of: Day | None = None
    demographics: Demographics
    enrollment: list[EnrollmentSpan] = Field(default_factory=list, max_length=500)
    medical_claims: list[MedicalClaimLine] = Field(default_factory=list, max_length=20_000)
    pharmacy_claims: list[PharmacyClaimLine] = Field(default_factory=list, max_length=20_000)


class BatchScoreRequest(StrictModel):
    """Several members in one call; the count is limited by ``CARTSCOUT_MAX_BATCH_MEMBERS``."""

    members: list[ScoreRequest] = Field(min_length=1)


# --- the result (response) --------------------------------------------------------------------


class ProductEligibility(BaseModel):
    """CAR T label eligibility for one product: a clinical fact with its reasons."""

    product: str
    eligible: bool | None = Field(description="None when a required criterion cannot be judged from claims.")
    indication: str | None = None
    criteria_met: list[str] = Field(default_factory=list)
    criteria_missing: list[str] = Field(default_factory=list)
    criteria_unknown: list[str] = Field(default_factory=list)


class TherapyLine(BaseModel):
    number: int
    start: date
    end: date | None = None
    drugs: list[str] = Field(default_factory=list)
    regimen: str | None = None


class Reason(BaseModel):
    """One top contributing factor: SHAP contribution on the model's log-odds scale."""

    feature: str
    label: str
    value: float | int | str | bool | None = None
    contribution: float
    direction: str


class ScoreResponse(BaseModel):
    person_id: str
    as_of: date
    in_cohort: bool
    disease: str | None = None
    status: MemberStatus
    score: float | None = Field(None, description="Calibrated probability; absent for members outside the cohort.")
    eligibility: list[ProductEligibility] = Field(default_factory=list)
    eligible_products: list[str] = Field(default_factory=list)
    lines_of_therapy: list[TherapyLine] = Field(default_factory=list)
    reasons: list[Reason] = Field(default_factory=list)
    model_name: str
    model_version: str
    rules_version: str
    events_after_as_of: int = Field(0, description="Events dated after as_of, ignored for this result.")


class BatchScoreResponse(BaseModel):
    results: list[ScoreResponse]
    model_name: str
    model_version: str
    rules_version: str


class FhirScoreResponse(ScoreResponse):
    unmapped_codes: dict[str, int] = Field(default_factory=dict, description="Resources whose codes could not be mapped, counted by code system.")
    mapped_resources: dict[str, int] = Field(default_factory=dict, description="Resources that became events, by resource type.")
    skipped_resources: dict[str, int] = Field(default_factory=dict, description="Resources read but not used (refuted, not done, undated), by reason.")


class ReadinessResponse(BaseModel):
    status: Literal["ready"]
    model_name: str
    model_version: str
    rules_version: str
    feature_set_version: str | None = None
    from_local_copy: bool


class ReloadResponse(BaseModel):
    swapped: bool
    model_name: str
    model_version: str


# --- CDS Hooks 2.0 ----------------------------------------------------------------------------


class CdsCoding(StrictModel):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class FhirAuthorization(StrictModel):
    """Never logged or stored: the access token is a live credential to the EHR's FHIR server."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


class CdsRequest(StrictModel):
    hook: str = Field(min_length=1, max_length=64)
    hookInstance: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-_.:]+$")
    fhirServer: str | None = Field(None, max_length=2048)
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class CdsSource(StrictModel):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: CdsCoding | None = None


class CdsLink(StrictModel):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class CdsCard(StrictModel):
    uuid: str
    summary: str = Field(max_length=139, description="Strictly under 140 characters (CDS Hooks 2.0).")
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: CdsSource
    links: list[CdsLink] | None = None


class CdsResponse(StrictModel):
    cards: list[CdsCard]


class CdsService(StrictModel):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class CdsDiscovery(StrictModel):
    services: list[CdsService]


class AcceptedSuggestion(StrictModel):
    id: str


class OverrideReason(StrictModel):
    reason: CdsCoding | None = None
    userComment: str | None = Field(None, max_length=4000)


class CdsFeedbackItem(StrictModel):
    card: str = Field(min_length=1, max_length=128)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime


class CdsFeedbackRequest(StrictModel):
    feedback: list[CdsFeedbackItem] = Field(min_length=1, max_length=100)


class FeedbackReceipt(BaseModel):
    recorded: int


def strip_empty(value: Any) -> Any:
    """Drop ``None``, empty strings, lists and dicts recursively: CDS Hooks forbids null or empty
    JSON members ("SHALL NOT be null … SHALL NOT be empty")."""
    if isinstance(value, dict):
        cleaned = {k: strip_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v != "" and v != [] and v != {}}
    if isinstance(value, list):
        cleaned_list = [strip_empty(v) for v in value]
        return [v for v in cleaned_list if v is not None and v != "" and v != [] and v != {}]
    return value
