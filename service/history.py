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
from service.schemas import MedicalClaimLine, PharmacyClaimLine, ScoreRequest

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

    Columns are gathered as lists and each table is made in one step as an object-dtype frame
    (dates as ``datetime.date``, which the mapping reads directly): per-column dtype inference
    and per-column frame surgery would cost more than the whole mapping for a one-member request.
    Columns nobody filled in are left out, as the mapping treats a missing column as empty.
    """
    elig: dict[str, list] = {c: [] for c in _ELIGIBILITY_COLUMNS}
    med: dict[str, list] = {c: [] for c in ("person_id", "member_id", "data_source", *_LINE_FIELDS)}
    rx: dict[str, list] = {c: [] for c in ("person_id", "member_id", "data_source", *_FILL_FIELDS)}
    codes = _CodesToCheck()
    for mi, m in enumerate(members):
        d = m.demographics
        for span in m.enrollment or [None]:
            for column, value in zip(
                _ELIGIBILITY_COLUMNS,
                (m.person_id, m.person_id, d.gender, d.race, d.birth_date, d.death_date, d.zip_code, DATA_SOURCE)
                + ((span.enrollment_start_date, span.enrollment_end_date, span.payer, span.plan, span.payer_type) if span else (None,) * 5),
            ):
                elig[column].append(value)
        for li, line in enumerate(m.medical_claims):
            row = len(med["person_id"])
            for column, value in (("person_id", m.person_id), ("member_id", m.person_id), ("data_source", DATA_SOURCE)):
                med[column].append(value)
            for column in _LINE_FIELDS:
                med[column].append(getattr(line, column))
            icd9_dx = line.diagnosis_code_type == "icd-9-cm"
            for ci, code in enumerate(line.diagnosis_codes):
                codes.add("icd10cm", row, f"diagnosis_code_{ci + 1}", code, (mi, "medical_claims", li, f"diagnosis_codes[{ci}]"), check=not icd9_dx)
            icd9_px = line.procedure_code_type == "icd-9-pcs"
            for pi, proc in enumerate(line.procedures):
                codes.add("icd10pcs", row, f"procedure_code_{pi + 1}", proc.code, (mi, "medical_claims", li, f"procedures[{pi}].code"), check=not icd9_px)
                codes.set(row, f"procedure_date_{pi + 1}", proc.date)
            if line.hcpcs_code is not None:
                codes.add("hcpcs", row, "hcpcs_code", line.hcpcs_code, (mi, "medical_claims", li, "hcpcs_code"))
        for fi, fill in enumerate(m.pharmacy_claims):
            for column, value in (("person_id", m.person_id), ("member_id", m.person_id), ("data_source", DATA_SOURCE)):
                rx[column].append(value)
            for column in _FILL_FIELDS:
                rx[column].append(getattr(fill, column))
            codes.add("ndc", len(rx["person_id"]) - 1, "ndc_code", fill.ndc_code, (mi, "pharmacy_claims", fi, "ndc_code"))
    normal = codes.normalise(list(field_prefix))
    medical = _frame(med, len(med["person_id"]), normal["medical"])
    pharmacy = _frame(rx, len(rx["person_id"]), normal["pharmacy"])
    return ClaimTables(_frame(elig, len(elig["person_id"]), {}), medical, pharmacy)


def load_member_history(members: Sequence[ScoreRequest], codes: CodeLists, today: date, field_prefix: Sequence[str] = ()) -> MemberHistory:
    """Map requests to events and persons; ``as_of`` defaults to ``today`` (the service's clock)."""
    person_ids = [m.person_id for m in members]
    if len(set(person_ids)) < len(person_ids):
        first = int(np.flatnonzero(pd.Index(person_ids).duplicated())[0])
        loc = "".join(f"{p}" for p in field_prefix)
        raise InvalidInput("person_id appears more than once", errors=[{"field": f"{loc}[{first}].person_id", "rule": "unique", "message": "person_id must be unique within a batch"}])
    tables = build_claim_tables(members, field_prefix)
    events, persons = claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, codes)
    dates = events["date"].to_numpy()
    undated = np.isnat(dates)
    if undated.any():  # only the placeholder span of a member sent without enrollment
        events = events[~(undated & events["kind"].eq("enrollment").to_numpy(dtype=bool))].reset_index(drop=True)
        dates = events["date"].to_numpy()
    limits = np.array([m.as_of or today for m in members], dtype="datetime64[D]").astype("datetime64[s]")
    as_of = pd.Series(limits, index=pd.Index(person_ids, name="person_id", dtype="string"), copy=False)
    member = as_of.index.get_indexer(events["person_id"].array)
    late = np.bincount(member[dates > limits[member]], minlength=len(members))
    return MemberHistory(events=events, persons=persons, as_of=as_of, events_after_as_of={person_ids[i]: int(late[i]) for i in np.flatnonzero(late)})


_ELIGIBILITY_COLUMNS = (
    "person_id",
    "member_id",
    "gender",
    "race",
    "birth_date",
    "death_date",
    "zip_code",
    "data_source",
    "enrollment_start_date",
    "enrollment_end_date",
    "payer",
    "plan",
    "payer_type",
)
_LINE_FIELDS = tuple(f for f in MedicalClaimLine.model_fields if f not in ("diagnosis_codes", "procedures"))
_FILL_FIELDS = tuple(PharmacyClaimLine.model_fields)
_CHECKS = {
    "icd10cm": (code_formats.normalise_icd10cm, "not an ICD-10-CM code", "medical"),
    "icd10pcs": (code_formats.normalise_icd10pcs, "not an ICD-10-PCS code", "medical"),
    "hcpcs": (code_formats.normalise_hcpcs, "not a HCPCS/CPT code", "medical"),
    "ndc": (code_formats.normalise_ndc, "not an 11-digit or dashed 10-digit NDC", "pharmacy"),
}
# order in which malformed codes are listed: by table column, then by row
_COLUMN_ORDER = {"hcpcs_code": 0, **{f"diagnosis_code_{i}": i for i in range(1, 26)}, **{f"procedure_code_{i}": 25 + i for i in range(1, 26)}, "ndc_code": 51}


class _CodesToCheck:
    """Codes of a request gathered per code system, so each format check runs once per request."""

    def __init__(self) -> None:
        self.raw: dict[str, list[str]] = {s: [] for s in _CHECKS}
        self.cells: dict[str, list[tuple[int, str]]] = {s: [] for s in _CHECKS}
        self.where: dict[str, list[tuple]] = {s: [] for s in _CHECKS}
        self.kept: dict[tuple[int, str], object] = {}

    def add(self, system: str, row: int, column: str, code: str, where: tuple, check: bool = True) -> None:
        """A code for ``column`` of table row ``row``; unchecked codes (ICD-9) are kept as sent."""
        if not check:
            self.kept[(row, column)] = code
            return
        self.raw[system].append(code)
        self.cells[system].append((row, column))
        self.where[system].append(where)

    def set(self, row: int, column: str, value: object) -> None:
        self.kept[(row, column)] = value

    def normalise(self, prefix: list[str]) -> dict[str, dict[tuple[int, str], object]]:
        """Per table, (row, column) -> value; raise one InvalidInput listing every malformed code's field."""
        cells: dict[str, dict[tuple[int, str], object]] = {"medical": {}, "pharmacy": {}}
        cells["medical"].update(self.kept)
        errors = []
        for system, (normalise, message, table) in _CHECKS.items():
            if not self.raw[system]:
                continue
            normal, malformed = normalise(pd.Series(self.raw[system], dtype=object))
            normal = normal.to_numpy(dtype=object, na_value=None).tolist()
            cells[table].update(zip(self.cells[system], normal))
            for i in np.flatnonzero(malformed.to_numpy()):
                row, column = self.cells[system][i]
                errors.append(((_COLUMN_ORDER[column], row), self._field(prefix, self.where[system][i]), message))
        if errors:
            errors.sort(key=lambda e: e[0])
            raise InvalidInput(f"{len(errors)} malformed code(s)", errors=[{"field": f, "rule": "code_format", "message": m} for _, f, m in errors[:100]])
        return cells

    @staticmethod
    def _field(prefix: list[str], where: tuple) -> str:
        member, table, index, field = where
        head = "".join(prefix)
        return f"{head}[{member}].{table}[{index}].{field}" if head else f"{table}[{index}].{field}"


def _frame(columns: dict[str, list], rows: int, cells: dict[tuple[int, str], object]) -> pd.DataFrame:
    """One object-dtype frame: the listed columns plus the wide cells; all-empty columns left out."""
    wide: dict[str, list] = {}
    for (row, column), value in cells.items():
        if column not in columns:
            wide.setdefault(column, [None] * rows)[row] = value
    kept = {c: v for c, v in columns.items() if any(x is not None for x in v)}
    kept.update((c, wide[c]) for c in sorted(wide, key=_wide_order))
    for (row, column), value in cells.items():
        if column in columns:
            kept[column][row] = value
    data = np.empty((rows, len(kept)), dtype=object)
    for j, values in enumerate(kept.values()):
        data[:, j] = values
    return pd.DataFrame(data, columns=list(kept), dtype=object, copy=False)


def _wide_order(column: str) -> tuple[str, int]:
    stem, _, number = column.rpartition("_")
    return stem, int(number)
