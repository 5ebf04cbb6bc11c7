"""The internal event model: one long table, one row per dated clinical event per person.

Every front door (the Tuva claims contract, the JSON API, FHIR bundles, CDS Hooks prefetch) maps
into these two frames, and every feature is computed from them alone. Keeping one model is what
lets a single feature implementation serve one member in real time and millions in a batch.

``events`` columns (see ``EVENT_COLUMNS``):

========== ============== ===================================================================
column     dtype          meaning
========== ============== ===================================================================
person_id  string         cross-source person key (Tuva ``person_id``)
kind       string         one of ``EVENT_KINDS``
date       datetime64[s]  the day the event happened (service, fill, admission, span start)
end_date   datetime64[s]  last day for spans (stay, enrollment, fill + days supply - 1), else NaT
code_system string        one of ``CODE_SYSTEMS`` (``""`` for death; ``payer_type`` or ``""``
                          for enrollment)
code       string         normalised code: upper case, no dots, no dashes, NDC as 11 digits
setting    string         one of ``SETTINGS``: where the event was billed or recorded
claim_id   string         source claim (or FHIR resource id); groups lines into encounters
days_supply Int32         pharmacy days supply, else <NA>
========== ============== ===================================================================

``persons`` columns (see ``PERSON_COLUMNS``): one row per person with the demographics the
features need, taken from the most recent enrollment span: ``birth_date``, ``sex`` (male/female/
unknown), ``race``, ``zip_code`` (5 digits), ``payer_type`` (commercial/medicare/medicaid/...),
``death_date``. Because that span may start after a member's ``as_of``, each enrollment event also
carries its own span's payer type (``code_system == "payer_type"``, ``code`` the payer type), and
the features read the payer of the span in force on ``as_of`` from there; ``persons.payer_type``
is the fallback for sources without spans (a FHIR bundle without Coverage).

Diagnoses become one event per code on the claim (header diagnoses repeat on every claim line, so
they are taken once per claim). An institutional inpatient claim also yields one ``inpatient_stay``
event spanning admission to discharge; an emergency-department claim has ``setting == "ed"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.columns import FrameColumns, cached_rows, columns_of, n_rows, row_members, to_numpy

EVENT_KINDS = (
    "diagnosis",
    "procedure",
    "drug_admin",
    "drug_fill",
    "inpatient_stay",
    "enrollment",
    "death",
)
PAYER_TYPE_SYSTEM = "payer_type"  # the code system of an enrollment event that names its plan's payer type
CODE_SYSTEMS = ("icd10cm", "icd10pcs", "hcpcs", "ndc", "rxnorm", "ms_drg", "revenue", PAYER_TYPE_SYSTEM, "")
SETTINGS = ("inpatient", "outpatient", "ed", "office", "pharmacy", "unknown")

EVENT_COLUMNS = (
    "person_id",
    "kind",
    "date",
    "end_date",
    "code_system",
    "code",
    "setting",
    "claim_id",
    "days_supply",
)
PERSON_COLUMNS = ("person_id", "birth_date", "sex", "race", "zip_code", "payer_type", "death_date")

_DATE = "datetime64[s]"
EVENT_DTYPES = {
    "person_id": "string",
    "kind": "string",
    "date": _DATE,
    "end_date": _DATE,
    "code_system": "string",
    "code": "string",
    "setting": "string",
    "claim_id": "string",
    "days_supply": "Int32",
}
PERSON_DTYPES = {
    "person_id": "string",
    "birth_date": _DATE,
    "sex": "string",
    "race": "string",
    "zip_code": "string",
    "payer_type": "string",
    "death_date": _DATE,
}


def empty_events() -> pd.DataFrame:
    """An events frame with no rows and the canonical dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_DTYPES.items()})


def empty_persons() -> pd.DataFrame:
    """A persons frame with no rows and the canonical dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PERSON_DTYPES.items()})


def conform_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the event columns, in order, cast to the canonical dtypes.

    Missing optional columns (``end_date``, ``setting``, ``claim_id``, ``days_supply``) are added
    empty; a missing required column or an unknown ``kind``/``code_system`` is a ``ValueError``
    naming it, because a silently wrong event table corrupts every feature downstream.
    """
    required = ("person_id", "kind", "date", "code_system", "code")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"events frame lacks required column(s): {', '.join(missing)}")
    out = {}
    for column, dtype in EVENT_DTYPES.items():
        if column in frame.columns:
            out[column] = frame[column].astype(dtype) if column not in ("date", "end_date") else _as_day(frame[column])
        else:
            out[column] = pd.Series(pd.NA if dtype != _DATE else pd.NaT, index=frame.index, dtype=dtype)
    events = pd.DataFrame(out, index=frame.index)
    _check_vocabulary(events, "kind", EVENT_KINDS)
    _check_vocabulary(events, "code_system", CODE_SYSTEMS)
    events["setting"] = events["setting"].fillna("unknown")
    _check_vocabulary(events, "setting", SETTINGS)
    return events.reset_index(drop=True)


def conform_persons(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the person columns, cast; ``person_id`` must be present and unique."""
    if "person_id" not in frame.columns:
        raise ValueError("persons frame lacks required column: person_id")
    out = {}
    for column, dtype in PERSON_DTYPES.items():
        if column in frame.columns:
            out[column] = _as_day(frame[column]) if dtype == _DATE else frame[column].astype(dtype)
        else:
            out[column] = pd.Series(pd.NaT if dtype == _DATE else pd.NA, index=frame.index, dtype=dtype)
    persons = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    duplicated = persons["person_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"persons frame has {int(duplicated.sum())} duplicated person_id value(s)")
    return persons


def _as_day(values: pd.Series) -> pd.Series:
    """Cast to day-resolution datetimes (second unit, time of day dropped)."""
    return pd.to_datetime(values).dt.floor("D").astype(_DATE)


def _check_vocabulary(events: pd.DataFrame, column: str, allowed: tuple[str, ...]) -> None:
    present = events[column].dropna().unique()
    unknown = sorted(set(present) - set(allowed))
    if unknown:
        raise ValueError(f"events column {column!r} has unknown value(s): {', '.join(map(str, unknown[:5]))}")


_NO_DAY = np.iinfo(np.int64).min  # what NaT becomes in day numbers


def day_numbers(dates) -> np.ndarray:
    """Days since 1970-01-01 as int64 (NaT becomes the minimum int64): the unit array kernels use.

    ``dates`` is a Series, a datetime array or a numpy datetime64 array. The datetime64[s] values
    are read as they are and cast by numpy: ``to_numpy(dtype=...)`` on a pandas array costs ~10x
    more, which matters for one member.
    """
    values = dates.array if isinstance(dates, pd.Series) else dates
    if not isinstance(values, np.ndarray):
        values = values.to_numpy()
    return values.astype("datetime64[D]").astype(np.int64)


def event_days(events) -> np.ndarray:
    """:func:`day_numbers` of the events' ``date`` column, converted once per pipeline call for
    every step that reads it (read-only: the steps share it)."""

    def build(columns) -> np.ndarray:
        days = day_numbers(columns["date"])
        days.setflags(write=False)
        return days

    return cached_rows(columns_of(events), ("event_days",), None, build)


def clip_to_as_of(events, as_of: pd.Series):
    """Keep only events on or before each member's own ``as_of`` date.

    ``as_of`` is indexed by person_id (one date per member, so a batch can mix evaluation dates).
    Members absent from ``as_of`` lose all their events. This is the single place where the as-of
    discipline is enforced; every feature function downstream receives clipped events. When no
    event is dropped the input is returned as it is (no copy: pandas is copy-on-write).

    ``events`` is a DataFrame (a DataFrame is returned) or a DataFrame seen through
    ``features.columns.columns_of`` (a column mapping is returned): the pipeline passes the
    latter, so the person and date columns read here are read once for every later step.
    """
    columns = columns_of(events)
    if not isinstance(columns, FrameColumns):
        raise TypeError("clip_to_as_of takes a DataFrame or columns_of(DataFrame)")
    keep = as_of_mask(columns, as_of)
    if isinstance(events, pd.DataFrame):
        index = events.index
        if keep.all() and isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
            return events
        return events[keep].reset_index(drop=True)
    # column arrays carry no index: only the columns the steps read are filtered, on first use
    return events if keep.all() else columns.select_rows(keep)


def as_of_mask(events, as_of: pd.Series) -> np.ndarray:
    """True for each event on or before its member's ``as_of`` (False for members without one,
    and for events without a date)."""
    columns = columns_of(events)
    if n_rows(columns) == 0:
        return np.zeros(0, dtype=bool)
    member = row_members(columns, as_of.index)
    limit = np.append(to_numpy(as_of.array, "datetime64[D]").astype(np.int64), _NO_DAY)
    day = event_days(columns)
    # a member absent from as_of (position -1) lands on the appended "no day" limit
    return (day != _NO_DAY) & (day <= limit[member]) & (member >= 0)
