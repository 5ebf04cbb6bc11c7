"""The batch input contract: the Tuva Project input layer's claims tables, as cartscout reads them.

Column names and types are Tuva's own (input layer v0.18.0, ``models/input_layer/*.yml``). Each
table states its grain, its primary key, which columns cartscout requires and which it reads when
present. Every other Tuva column is allowed and ignored; ``x_``-prefixed extension columns pass
through; any other column draws a warning, never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

# Tuva's generic type names: varchar, date, timestamp, integer, number, float, boolean.
_WIDE = 25


@dataclass(frozen=True)
class TableSpec:
    """One input table: its Tuva columns with types, primary key, and what cartscout needs."""

    name: str
    grain: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]
    required: tuple[str, ...]
    used: tuple[str, ...]

    @property
    def optional(self) -> tuple[str, ...]:
        """Tuva columns cartscout reads when present but does not require."""
        return tuple(c for c in self.used if c not in self.required)


def _numbered(prefix: str, kind: str) -> dict[str, str]:
    return {f"{prefix}_{i}": kind for i in range(1, _WIDE + 1)}


_META = {"data_source": "varchar", "file_name": "varchar", "file_date": "date", "ingest_datetime": "timestamp"}
_MONEY = {c: "float" for c in ("paid_amount", "allowed_amount", "charge_amount", "coinsurance_amount", "copayment_amount", "deductible_amount")}

ELIGIBILITY = TableSpec(
    name="eligibility",
    grain="One row per person, member, enrollment span, payer, plan and data source.",
    columns={
        "person_id": "varchar", "member_id": "varchar", "subscriber_id": "varchar", "gender": "varchar",
        "race": "varchar", "birth_date": "date", "death_date": "date", "death_flag": "boolean",
        "enrollment_start_date": "date", "enrollment_end_date": "date", "payer": "varchar",
        "payer_type": "varchar", "plan": "varchar", "original_reason_entitlement_code": "varchar",
        "dual_status_code": "varchar", "medicare_status_code": "varchar", "enrollment_status": "varchar",
        "hospice_flag": "integer", "institutional_snp_flag": "integer", "long_term_institutional_flag": "integer",
        "group_id": "varchar", "group_name": "varchar", "name_suffix": "varchar", "first_name": "varchar",
        "middle_name": "varchar", "last_name": "varchar", "social_security_number": "varchar",
        "subscriber_relation": "varchar", "address": "varchar", "city": "varchar", "state": "varchar",
        "zip_code": "varchar", "phone": "varchar", "email": "varchar", "ethnicity": "varchar",
        **{k: v for k, v in _META.items()},
    },
    primary_key=("person_id", "member_id", "enrollment_start_date", "enrollment_end_date", "plan", "payer", "data_source"),
    required=("person_id", "member_id", "gender", "birth_date", "enrollment_start_date", "enrollment_end_date", "payer", "plan", "data_source"),
    used=(
        "person_id", "member_id", "gender", "birth_date", "enrollment_start_date", "enrollment_end_date",
        "payer", "plan", "data_source", "payer_type", "race", "death_date", "death_flag", "zip_code",
    ),
)

MEDICAL_CLAIM = TableSpec(
    name="medical_claim",
    grain="One row per claim line per data source.",
    columns={
        "claim_id": "varchar", "claim_line_number": "integer", "claim_type": "varchar", "person_id": "varchar",
        "member_id": "varchar", "payer": "varchar", "plan": "varchar", "claim_start_date": "date",
        "claim_end_date": "date", "claim_line_start_date": "date", "claim_line_end_date": "date",
        "admission_date": "date", "discharge_date": "date", "admit_source_code": "varchar",
        "admit_type_code": "varchar", "discharge_disposition_code": "varchar", "place_of_service_code": "varchar",
        "bill_type_code": "varchar", "drg_code_type": "varchar", "drg_code": "varchar",
        "revenue_center_code": "varchar", "service_unit_quantity": "number", "hcpcs_code": "varchar",
        **{f"hcpcs_modifier_{i}": "varchar" for i in range(1, 6)},
        "rendering_npi": "varchar", "rendering_tin": "varchar", "billing_npi": "varchar", "billing_tin": "varchar",
        "facility_npi": "varchar", "paid_date": "date", **_MONEY, "total_cost_amount": "float",
        "diagnosis_code_type": "varchar", **_numbered("diagnosis_code", "varchar"), **_numbered("diagnosis_poa", "varchar"),
        "procedure_code_type": "varchar", **_numbered("procedure_code", "varchar"), **_numbered("procedure_date", "date"),
        "in_network_flag": "boolean", **_META,
    },
    primary_key=("claim_id", "claim_line_number", "data_source"),
    required=("claim_id", "claim_line_number", "claim_type", "person_id", "claim_start_date", "claim_end_date", "data_source"),
    used=(
        "claim_id", "claim_line_number", "claim_type", "person_id", "member_id", "claim_start_date", "claim_end_date",
        "claim_line_start_date", "claim_line_end_date", "admission_date", "discharge_date", "place_of_service_code",
        "bill_type_code", "drg_code_type", "drg_code", "revenue_center_code", "hcpcs_code", "diagnosis_code_type",
        *_numbered("diagnosis_code", "varchar"), "procedure_code_type", *_numbered("procedure_code", "varchar"),
        *_numbered("procedure_date", "date"), "data_source",
    ),
)

PHARMACY_CLAIM = TableSpec(
    name="pharmacy_claim",
    grain="One row per claim line per data source.",
    columns={
        "claim_id": "varchar", "claim_line_number": "integer", "person_id": "varchar", "member_id": "varchar",
        "payer": "varchar", "plan": "varchar", "prescribing_provider_npi": "varchar",
        "dispensing_provider_npi": "varchar", "dispensing_date": "date", "ndc_code": "varchar",
        "quantity": "integer", "days_supply": "integer", "refills": "integer", "paid_date": "date", **_MONEY,
        "in_network_flag": "boolean", **_META,
    },
    primary_key=("claim_id", "claim_line_number", "data_source"),
    required=("claim_id", "claim_line_number", "person_id", "dispensing_date", "ndc_code", "data_source"),
    used=("claim_id", "claim_line_number", "person_id", "member_id", "dispensing_date", "ndc_code", "days_supply", "quantity", "data_source"),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (ELIGIBILITY, MEDICAL_CLAIM, PHARMACY_CLAIM)}
EXTENSION_PREFIX = "x_"
NDC_CROSSWALK_FILE = "ndc_crosswalk.csv"
CENTERS_FILE = "car_t_centers.csv"
CENTER_COLUMNS = ("name", "zip", "latitude", "longitude")
