"""Member data ingest for the REST API: JSON member histories -> the event model.

The request body is the batch contract in JSON form, so this module only lays the members out as
the three Tuva tables (``eligibility``, ``medical_claim``, ``pharmacy_claim``) and hands them to
``contract.mapping.claims_to_events``: one implementation of claims -> events serves the batch job
and the API, and a member scores the same whichever door it came through.

Code shapes are checked with the contract's own format rules (``contract.code_formats``); a
malformed code is an error naming its field (``medical_claims[2].diagnosis_codes[0]``), never a
silently dropped event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from contract import code_formats
from contract.mapping import claims_to_events
from features.codelists import CodeLists
from service.errors import InvalidInput
from service.schemas import ScoreRequest

DATA_SOURCE = "api"


@dataclass(frozen=True)
class ClaimTables:
    """Tuva-shaped frames for a set of members (column names as in ``contract.schema``)."""

    eligibility: pd.DataFrame
    medical_claim: pd.DataFrame
    pharmacy_claim: pd.DataFrame


@dataclass(frozen=True)
class MemberHistory:
    """What scoring needs: events, persons and each member's as-of date (indexed by person_id)."""

    events: pd.DataFrame
    persons: pd.DataFrame
    as_of: pd.Series
    events_after_as_of: dict[str, int]


def build_claim_tables(members: Sequence[ScoreRequest], field_prefix: Sequence[str] = ()) -> ClaimTables:
    """Lay out requests as the three contract tables, with codes normalised by the contract's rules.

    A member without enrollment spans still gets one eligibility row (dates empty) so that its
    demographics reach the persons frame; the empty span itself never becomes an event.
    """
    elig_rows, med_rows, rx_rows = [], [], []
    for m in members:
        d = m.demographics
        person = {"person_id": m.person_id, "member_id": m.person_id, "gender": d.gender, "race": d.race, "birth_date": d.birth_date, "death_date": d.death_date, "zip_code": d.zip_code, "data_source": DATA_SOURCE}
        spans = m.enrollment or [None]
        for span in spans:
            elig_rows.append(
                {
                    **person,
                    "enrollment_start_date": span.enrollment_start_date if span else None,
                    "enrollment_end_date": span.enrollment_end_date if span else None,
                    "payer": span.payer if span else None,
                    "plan": span.plan if span else None,
                    "payer_type": span.payer_type if span else None,
                }
            )
        for line in m.medical_claims:
            row = line.model_dump(exclude={"diagnosis_codes", "procedures"})
            row.update(person_id=m.person_id, member_id=m.person_id, data_source=DATA_SOURCE)
            row.update({f"diagnosis_code_{i}": code for i, code in enumerate(line.diagnosis_codes, start=1)})
            for i, proc in enumerate(line.procedures, start=1):
                row[f"procedure_code_{i}"] = proc.code
                row[f"procedure_date_{i}"] = proc.date
            med_rows.append(row)
        for fill in m.pharmacy_claims:
            rx_rows.append({**fill.model_dump(), "person_id": m.person_id, "member_id": m.person_id, "data_source": DATA_SOURCE})
    eligibility = _frame(elig_rows, ("enrollment_start_date", "enrollment_end_date", "birth_date", "death_date"))
    medical = _frame(med_rows, ("claim_start_date", "claim_end_date", "claim_line_start_date", "claim_line_end_date", "admission_date", "discharge_date", *(f"procedure_date_{i}" for i in range(1, 26))))
    pharmacy = _frame(rx_rows, ("dispensing_date",))
    _normalise_codes(members, medical, pharmacy, list(field_prefix))
    return ClaimTables(eligibility, medical, pharmacy)


def load_member_history(members: Sequence[ScoreRequest], codes: CodeLists, today: date, field_prefix: Sequence[str] = ()) -> MemberHistory:
    """Map requests to events and persons; ``as_of`` defaults to ``today`` (the service's clock)."""
    duplicated = pd.Index([m.person_id for m in members]).duplicated()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated)[0])
        loc = "".join(f"{p}" for p in field_prefix)
        raise InvalidInput("person_id appears more than once", errors=[{"field": f"{loc}[{first}].person_id", "rule": "unique", "message": "person_id must be unique within a batch"}])
    tables = build_claim_tables(members, field_prefix)
    events, persons = claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, codes)
    events = events[~(events["kind"].eq("enrollment") & events["date"].isna())].reset_index(drop=True)
    as_of = pd.Series(
        [pd.Timestamp(m.as_of or today) for m in members],
        index=pd.Index([m.person_id for m in members], name="person_id", dtype="string"),
        dtype="datetime64[s]",
    )
    limit = events["person_id"].map(as_of)
    late = events.loc[events["date"].gt(limit).fillna(False).to_numpy(dtype=bool), "person_id"].value_counts()
    return MemberHistory(events=events, persons=persons, as_of=as_of, events_after_as_of={str(k): int(v) for k, v in late.items()})


def _frame(rows: list[dict], date_columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in date_columns:
        if column in frame.columns:
            # numpy parses date objects and None (-> NaT) directly, far faster than pd.to_datetime on objects
            frame[column] = np.array(frame[column].to_list(), dtype="datetime64[D]").astype("datetime64[s]")
    return frame


def _normalise_codes(members: Sequence[ScoreRequest], medical: pd.DataFrame, pharmacy: pd.DataFrame, prefix: list[str]) -> None:
    """Normalise code columns in place; raise one InvalidInput listing every malformed code's field."""
    located = _code_locations(members, prefix)
    errors: list[dict[str, str]] = []
    checks = [(medical, "hcpcs_code", code_formats.normalise_hcpcs, "not a HCPCS/CPT code")]
    checks += [(medical, f"diagnosis_code_{i}", code_formats.normalise_icd10cm, "not an ICD-10-CM code") for i in range(1, 26)]
    checks += [(medical, f"procedure_code_{i}", code_formats.normalise_icd10pcs, "not an ICD-10-PCS code") for i in range(1, 26)]
    checks += [(pharmacy, "ndc_code", code_formats.normalise_ndc, "not an 11-digit or dashed 10-digit NDC")]
    for frame, column, normalise, message in checks:
        if column not in frame.columns:
            continue
        if column.startswith("diagnosis_code_") and "diagnosis_code_type" in frame.columns:
            icd9 = frame["diagnosis_code_type"].eq("icd-9-cm").to_numpy()
        elif column.startswith("procedure_code_") and "procedure_code_type" in frame.columns:
            icd9 = frame["procedure_code_type"].eq("icd-9-pcs").to_numpy()
        else:
            icd9 = np.zeros(len(frame), dtype=bool)
        normalised, malformed = normalise(frame[column])
        malformed = malformed.to_numpy(dtype=bool) & ~icd9
        for row in np.flatnonzero(malformed):
            errors.append({"field": located[(column, int(row))], "rule": "code_format", "message": message})
        frame[column] = normalised.where(~pd.Series(icd9, index=frame.index), frame[column])
    if errors:
        raise InvalidInput(f"{len(errors)} malformed code(s)", errors=errors[:100])


def _code_locations(members: Sequence[ScoreRequest], prefix: list[str]) -> dict[tuple[str, int], str]:
    """(table column, row number) -> the request field that produced it."""
    where: dict[tuple[str, int], str] = {}
    head = "".join(prefix)
    med_row = rx_row = 0
    for mi, m in enumerate(members):
        base = f"{head}[{mi}]." if head else ""
        for li, line in enumerate(m.medical_claims):
            where[("hcpcs_code", med_row)] = f"{base}medical_claims[{li}].hcpcs_code"
            for ci in range(len(line.diagnosis_codes)):
                where[(f"diagnosis_code_{ci + 1}", med_row)] = f"{base}medical_claims[{li}].diagnosis_codes[{ci}]"
            for pi in range(len(line.procedures)):
                where[(f"procedure_code_{pi + 1}", med_row)] = f"{base}medical_claims[{li}].procedures[{pi}].code"
            med_row += 1
        for fi in range(len(m.pharmacy_claims)):
            where[("ndc_code", rx_row)] = f"{base}pharmacy_claims[{fi}].ndc_code"
            rx_row += 1
    return where
