"""Member data ingest for the REST API: JSON member histories -> the event model.

The request body is the batch contract in JSON form, so this module only lays the members out as
the three Tuva tables (``eligibility``, ``medical_claim``, ``pharmacy_claim``) and hands them to
``contract.mapping.claims_to_events``: one implementation of claims -> events serves the batch job
and the API, and a member scores the same whichever door it came through.

Code shapes are checked with the contract's own format rules (``contract.code_formats``); a
malformed code is an error naming its field (``medical_claims[2].diagnosis_codes[0]``), never a
silently dropped event. So are two person-level date rules (:func:`life_date_faults`, which the
FHIR door applies too): a birth date after every service date of the member (the contract's
``date_range`` rule compares it with the delivery's latest date; a request is one member's
history), and a service date more than ``DEATH_GRACE_DAYS`` after the recorded death (the
contract's ``after_death``; the batch job quarantines such rows, a request is refused naming them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from operator import itemgetter

import numpy as np
import pandas as pd

from contract import code_formats
from contract.mapping import claims_to_event_columns
from contract.validation import DEATH_GRACE_DAYS
from features.codelists import CodeLists
from features.columns import FrameColumns, n_rows, object_values, string_array, to_numpy
from service.errors import InvalidInput
from service.schemas import MAX_CODES_PER_CLAIM, MedicalClaimLine, PharmacyClaimLine, ScoreRequest

DATA_SOURCE = "api"


@dataclass(frozen=True)
class ClaimTables:
    """The three contract tables for a set of members, each as column name -> object array (one
    entry per row; column names as in ``contract.schema``), the form ``claims_to_events`` reads
    without a DataFrame in between."""

    eligibility: dict[str, np.ndarray]
    medical_claim: dict[str, np.ndarray]
    pharmacy_claim: dict[str, np.ndarray]


@dataclass(frozen=True)
class MemberHistory:
    """What scoring needs: events, persons and each member's as-of date (indexed by person_id).

    ``event_columns`` and ``persons`` are column arrays, what scoring reads (the pipeline takes the
    arrays as they are); ``events`` and ``persons.frame`` are the same as DataFrames, built on first use."""

    event_columns: FrameColumns
    persons: FrameColumns
    as_of: pd.Series
    events_after_as_of: dict[str, int]

    @property
    def events(self) -> pd.DataFrame:
        return self.event_columns.frame


def build_claim_tables(members: Sequence[ScoreRequest], field_prefix: Sequence[str] = ()) -> ClaimTables:
    """Lay out requests as the three contract tables, with codes normalised by the contract's rules.

    A member without enrollment spans still gets one eligibility row (dates empty) so that its
    demographics reach the persons frame; the empty span itself never becomes an event.

    Each column is gathered in one pass over the validated lines and kept as an object array
    (dates as ``datetime.date``, which the mapping reads directly); no DataFrame is built, as
    pandas' per-column set-up would cost more than the whole mapping of a one-member request.
    Codes go through the contract's own per-code rules (``contract.code_formats``, memoised per
    distinct code). Columns nobody filled in are left out: the mapping treats them as empty.
    """
    elig: dict[str, list] = {c: [] for c in _ELIGIBILITY_COLUMNS}
    med_lines: list = []
    med_where: list[tuple[int, int]] = []
    med_person: list[str] = []
    fills: list = []
    fill_where: list[tuple[int, int]] = []
    fill_person: list[str] = []
    for mi, m in enumerate(members):
        d = m.demographics
        person = (m.person_id, m.person_id, d.gender, d.race, d.birth_date, d.death_date, d.zip_code, DATA_SOURCE)
        for span in m.enrollment or [None]:
            values = person + ((span.enrollment_start_date, span.enrollment_end_date, span.payer, span.plan, span.payer_type) if span else _NO_SPAN)
            for column, value in zip(_ELIGIBILITY_COLUMNS, values):
                elig[column].append(value)
        med_lines += m.medical_claims
        med_where += [(mi, li) for li in range(len(m.medical_claims))]
        med_person += [m.person_id] * len(m.medical_claims)
        fills += m.pharmacy_claims
        fill_where += [(mi, fi) for fi in range(len(m.pharmacy_claims))]
        fill_person += [m.person_id] * len(m.pharmacy_claims)

    errors: list[tuple[tuple[int, int], tuple, str, str]] = []  # (sort key, location, message, the contract's check)
    lines = [line.__dict__ for line in med_lines]
    med = {"person_id": med_person, "member_id": med_person, "data_source": [DATA_SOURCE] * len(lines)}
    if lines:  # one pass over the lines gathers every field (no lines: the columns are left out)
        med.update(zip(_LINE_FIELDS, map(list, zip(*map(_LINE_VALUES, lines)))))
        hcpcs = _KNOWN["hcpcs"]
        med["hcpcs_code"] = [
            None if code is None else hcpcs.get(code) or _checked("hcpcs", code, row, "hcpcs_code", (*med_where[row], "hcpcs_code"), errors)
            for row, code in enumerate(med["hcpcs_code"])
        ]
    wide: dict[str, list] = {}
    icd10cm, icd10pcs = _KNOWN["icd10cm"], _KNOWN["icd10pcs"]
    for row, line in enumerate(lines):
        icd9_dx = line["diagnosis_code_type"] == "icd-9-cm"
        for ci, code in enumerate(line["diagnosis_codes"]):
            column = _DIAGNOSIS_COLUMNS[ci]
            cells = wide.get(column) or wide.setdefault(column, [None] * len(lines))
            cells[row] = code if icd9_dx else icd10cm.get(code) or _checked("icd10cm", code, row, column, (*med_where[row], f"diagnosis_codes[{ci}]"), errors)
        icd9_px = line["procedure_code_type"] == "icd-9-pcs"
        for pi, proc in enumerate(line["procedures"]):
            column = _PROCEDURE_COLUMNS[pi]
            cells = wide.get(column) or wide.setdefault(column, [None] * len(lines))
            cells[row] = proc.code if icd9_px else icd10pcs.get(proc.code) or _checked("icd10pcs", proc.code, row, column, (*med_where[row], f"procedures[{pi}].code"), errors)
            dates = wide.get(_PROCEDURE_DATE_COLUMNS[pi]) or wide.setdefault(_PROCEDURE_DATE_COLUMNS[pi], [None] * len(lines))
            dates[row] = proc.date
    med.update(wide)

    rx_rows = [fill.__dict__ for fill in fills]
    rx = {"person_id": fill_person, "member_id": fill_person, "data_source": [DATA_SOURCE] * len(rx_rows)}
    if rx_rows:
        rx.update(zip(_FILL_FIELDS, map(list, zip(*map(_FILL_VALUES, rx_rows)))))
        ndc = _KNOWN["ndc"]
        rx["ndc_code"] = [ndc.get(code) or _checked("ndc", code, row, "ndc_code", (*fill_where[row], "ndc_code"), errors) for row, code in enumerate(rx["ndc_code"])]

    _check_life_dates(members, med.get("claim_start_date", []), med_where, rx.get("dispensing_date", []), fill_where, errors)
    if errors:
        errors.sort(key=lambda e: e[0])
        head = "".join(field_prefix)
        raise InvalidInput(f"{len(errors)} malformed code(s) or impossible date(s)", errors=[{"field": _field(head, where), "rule": rule, "message": message} for _, where, message, rule in errors[:100]])
    return ClaimTables(_columns(elig), _columns(med), _columns(rx))


def load_member_history(members: Sequence[ScoreRequest], codes: CodeLists, today: date, field_prefix: Sequence[str] = ()) -> MemberHistory:
    """Map requests to events and persons; ``as_of`` defaults to ``today`` (the service's clock)."""
    person_ids = [m.person_id for m in members]
    if len(set(person_ids)) < len(person_ids):
        first = int(np.flatnonzero(pd.Index(person_ids).duplicated())[0])
        loc = "".join(f"{p}" for p in field_prefix)
        raise InvalidInput("person_id appears more than once", errors=[{"field": f"{loc}[{first}].person_id", "rule": "unique", "message": "person_id must be unique within a batch"}])
    tables = build_claim_tables(members, field_prefix)
    events, persons = claims_to_event_columns(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, codes)
    dates = to_numpy(events["date"])
    undated = np.isnat(dates)
    if undated.any():  # only the placeholder span of a member sent without enrollment
        events = events.select_rows(~(undated & (object_values(events, "kind") == "enrollment")))
        dates = to_numpy(events["date"])
    limits = np.array([m.as_of or today for m in members], dtype="datetime64[D]").astype("datetime64[s]")
    # the index built from an Arrow array: ``pd.Index(ids, dtype="string")`` infers and checks each id (~3x the cost)
    as_of = pd.Series(limits, index=pd.Index(string_array(person_ids), name="person_id", copy=False), copy=False)
    # every event belongs to a member of the request; with one member no look-up is needed
    member = np.zeros(n_rows(events), dtype=np.intp) if len(members) == 1 else as_of.index.get_indexer(object_values(events, "person_id"))
    late = np.bincount(member[dates > limits[member]], minlength=len(members))
    return MemberHistory(event_columns=events, persons=persons, as_of=as_of, events_after_as_of={person_ids[i]: int(late[i]) for i in np.flatnonzero(late)})


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
_LINE_VALUES = itemgetter(*_LINE_FIELDS)
_FILL_VALUES = itemgetter(*_FILL_FIELDS)
_DIAGNOSIS_COLUMNS = tuple(f"diagnosis_code_{i}" for i in range(1, MAX_CODES_PER_CLAIM + 1))
_PROCEDURE_COLUMNS = tuple(f"procedure_code_{i}" for i in range(1, MAX_CODES_PER_CLAIM + 1))
_PROCEDURE_DATE_COLUMNS = tuple(f"procedure_date_{i}" for i in range(1, MAX_CODES_PER_CLAIM + 1))
_NO_SPAN = (None,) * 5
_CHECKS = {
    "icd10cm": (code_formats.clean_icd10cm, "not an ICD-10-CM code", "medical_claims"),
    "icd10pcs": (code_formats.clean_icd10pcs, "not an ICD-10-PCS code", "medical_claims"),
    "hcpcs": (code_formats.clean_hcpcs, "not a HCPCS/CPT code", "medical_claims"),
    "ndc": (code_formats.clean_ndc, "not an 11-digit or dashed 10-digit NDC", "pharmacy_claims"),
}
# Well-formed codes seen before, per code system: raw -> normal form. A request repeats a few
# dozen codes across hundreds of lines, so most codes are one dict look-up rather than a call of
# ``_checked``. Malformed codes are never remembered (each must be reported where it occurs).
_KNOWN: dict[str, dict[str, str]] = {system: {} for system in _CHECKS}
_KNOWN_LIMIT = 1 << 16
# order in which malformed codes are listed: by table column, then by row
_COLUMN_ORDER = {"hcpcs_code": 0, **{f"diagnosis_code_{i}": i for i in range(1, 26)}, **{f"procedure_code_{i}": 25 + i for i in range(1, 26)}, "ndc_code": 51}


def _checked(system: str, code: str, row: int, column: str, where: tuple, errors: list) -> str | None:
    """The code in its normal form by the contract's rule for ``system``; a malformed one is added
    to ``errors`` (sort key, location, message, check). Blank counts as missing, as in the batch checks."""
    clean, message, table = _CHECKS[system]
    text = code.strip()
    if not text:
        return None
    normal = clean(text)
    if normal is None:
        errors.append(((_COLUMN_ORDER[column], row), (where[0], table, *where[1:]), message, "code_format"))
    else:
        known = _KNOWN[system]
        if len(known) >= _KNOWN_LIMIT:
            known.clear()
        known[code] = normal
    return normal


def life_date_faults(days: Sequence[date], birth: date | None, death: date | None) -> tuple[bool, list[int]]:
    """One member's service dates against the person-level date rules both doors apply: whether
    the birth date is after every one of them (``date_range``), and the positions of those more
    than ``DEATH_GRACE_DAYS`` after the recorded death (``after_death``, the contract's rule)."""
    born_after = bool(days) and birth is not None and birth > max(days)
    if death is None:
        return born_after, []
    limit = death + timedelta(days=DEATH_GRACE_DAYS)
    return born_after, [k for k, day in enumerate(days) if day > limit]


def _check_life_dates(members: Sequence[ScoreRequest], claim_days: list, claim_where: list, fill_days: list, fill_where: list, errors: list) -> None:
    """:func:`life_date_faults` for each member of a request, added to ``errors`` without the dates."""
    days, wheres, claims = claim_days + fill_days, claim_where + fill_where, len(claim_days)
    by_member: dict[int, list[int] | None] = {0: None}  # one member: all rows, no grouping
    if len(members) > 1:
        by_member = {}
        for k, (mi, _) in enumerate(wheres):
            by_member.setdefault(mi, []).append(k)
    for mi, ks in by_member.items():
        demographics = members[mi].demographics
        born_after, late = life_date_faults(days if ks is None else [days[k] for k in ks], demographics.birth_date, demographics.death_date)
        if born_after:
            errors.append(((-1, mi), (mi, "demographics", None, "birth_date"), "after every service date in the history", "date_range"))
        for position in late:
            k = position if ks is None else ks[position]
            table, field, order, row = ("medical_claims", "claim_start_date", 52, k) if k < claims else ("pharmacy_claims", "dispensing_date", 53, k - claims)
            errors.append(((order, row), (mi, table, wheres[k][1], field), f"more than {DEATH_GRACE_DAYS} day after demographics.death_date", "after_death"))


def _field(head: str, where: tuple) -> str:
    member, table, index, field = where
    path = f"{table}.{field}" if index is None else f"{table}[{index}].{field}"
    return f"{head}[{member}].{path}" if head else path


def _columns(columns: dict[str, list]) -> dict[str, np.ndarray]:
    """Object arrays of the columns holding at least one value.

    ``np.fromiter`` stores each value as it is; assigning the list to an array (``a[:] = values``)
    inspects every value first, which for ``datetime.date`` costs three times as much."""
    return {name: np.fromiter(values, dtype=object, count=len(values)) for name, values in columns.items() if values.count(None) < len(values)}
