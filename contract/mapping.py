"""Mapping validated Tuva claims tables to the internal event model (``features.events``).

Pure: frames in, frames out, no I/O and no clock. The frames are the valid rows that
``contract.validation`` returns (dates parsed, codes normalised); hand-built frames work too, as
codes are normalised again here (upper case, no dots or dashes) and dates parsed if they are text.

How a claim becomes events (``docs/event_model.md`` has the column-by-column table):

- Header fields repeat on every line of a claim, so diagnoses, ICD-10-PCS procedures, the MS-DRG
  and the inpatient stay are taken once per claim (``person_id`` + ``claim_id`` + ``data_source``).
- Line fields (``hcpcs_code``, ``revenue_center_code``) give one event per distinct code and day.
- Setting is decided per claim, most specific first: ``inpatient`` (bill type 11x/12x, an
  institutional claim with an admission date, or a line at place of service 21), ``ed`` (a line at
  place of service 23 or revenue centre 045x), ``office`` (place of service 11), ``outpatient``
  (any other institutional claim or place of service), else ``unknown``. Every event of the claim
  carries it, so the lab line of an ED visit counts as ED care.
- A pharmacy line is a ``drug_fill`` whether or not its NDC maps to a drug: an unmapped fill is
  still a fill (the loader counts them), never silently dropped.

One implementation serves the real-time API (one member, a few hundred rows) and the batch job
(millions of rows), so per-call overhead matters as much as per-row cost. The work is therefore
done on NumPy arrays, text columns are handled as distinct values plus one integer per row (a code
is cleaned, tested or normalised once however often it repeats) and stay so up to the frame
(sorting ranks the distinct values, never re-hashing rows), and the pandas frames are built once
at the end, already in the event model's dtypes and vocabulary (``conform_events`` leaves them
unchanged; a test holds that). Below ``_SMALL`` rows some steps take cheaper routes (dict look-ups,
one NumPy sort) that give exactly what the batch route gives; ``tests/contract/test_mapping_paths.py``
holds each route to the other.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
import datetime as dt
from itertools import accumulate

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks

from features.codelists import CodeLists
from features.columns import ArrayColumns
from features.events import CODE_SYSTEMS, EVENT_COLUMNS, EVENT_KINDS, PAYER_TYPE_SYSTEM, PERSON_COLUMNS, PERSON_DTYPES, SETTINGS

_WIDE = range(1, 26)
_WIDE_COLUMNS = {prefix: tuple((i, f"{prefix}{i}") for i in _WIDE) for prefix in ("diagnosis_code_", "procedure_code_")}
_INPATIENT_POS = ("21",)
_ED_POS = ("23",)
_OFFICE_POS = ("11",)
_NAT = np.datetime64("NaT", "s")
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_NAT_DAY = np.iinfo(np.int64).min  # NaT as an int64 day count
_SMALL = 4096
_SEPARATORS = re.compile(r"[.\-\s]")
_ZIP = re.compile(r"^\s*(\d{3,5})\s*(?:-.*)?$")
_KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
_SYSTEM = {s: i for i, s in enumerate(CODE_SYSTEMS)}
_SETTING = {s: i for i, s in enumerate(SETTINGS)}
# Sort ranks of the vocabularies: events sort by kind and code system as text.
_KIND_RANK = np.argsort(np.argsort(np.array(EVENT_KINDS)))
_SYSTEM_RANK = np.argsort(np.argsort(np.array(CODE_SYSTEMS)))


ClaimTable = pd.DataFrame | Mapping[str, np.ndarray]


def claims_to_events(eligibility: ClaimTable, medical: ClaimTable, pharmacy: ClaimTable, codes: CodeLists) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(events, persons)`` conformed to the event model, events sorted by person and date.

    Each table is a DataFrame (the batch loader's validated frames) or a mapping of column name ->
    1-D array with one entry per row (how the API lays out a request: a DataFrame would cost more
    to build than the whole mapping of one member). Absent columns count as empty.
    """
    events, persons = claims_to_event_columns(eligibility, medical, pharmacy, codes)
    return events.frame, persons.frame


def claims_to_event_columns(eligibility: ClaimTable, medical: ClaimTable, pharmacy: ClaimTable, codes: CodeLists) -> tuple[ArrayColumns, ArrayColumns]:
    """:func:`claims_to_events` with events and persons as column arrays (each ``.frame`` is the
    very DataFrame ``claims_to_events`` returns, built on first use): a request's pipeline reads
    the text columns as Python objects, so building them as Arrow strings first would be paid for
    nothing."""
    eligibility, medical, pharmacy = _Table(eligibility), _Table(medical), _Table(pharmacy)
    spans = _Spans.of(eligibility)
    persons = _derive_persons(eligibility, spans)
    parts = [
        _enrollment_events(spans),
        _death_events(persons),
        *_medical_events(medical, codes),
        _pharmacy_events(pharmacy),
    ]
    return _event_columns(_Events.concat([p for p in parts if p is not None])), _person_columns(persons)


def derive_persons(eligibility: ClaimTable) -> pd.DataFrame:
    """One row per person: demographics of the most recent span, the latest recorded death date."""
    eligibility = _Table(eligibility)
    return _persons_frame(_derive_persons(eligibility, _Spans.of(eligibility)))


class _Table:
    """A claims table read one column at a time, whichever form it came in.

    ``table[column]`` is the column's array (pandas' own array for a DataFrame, so Arrow-backed
    text stays in Arrow), ``column in table.columns`` tests presence, ``len(table)`` counts rows.
    """

    __slots__ = ("_source", "_frame", "columns", "_rows")

    def __init__(self, source: ClaimTable):
        self._source = source
        self._frame = isinstance(source, pd.DataFrame)
        self.columns = source.columns if self._frame else source.keys()
        if self._frame:
            self._rows = len(source)
        else:
            lengths = {len(v) for v in source.values()}
            if len(lengths) > 1:
                raise ValueError(f"claims table columns differ in length: {sorted(lengths)}")
            self._rows = lengths.pop() if lengths else 0

    def __len__(self) -> int:
        return self._rows

    @property
    def empty(self) -> bool:
        return self._rows == 0

    def __getitem__(self, column: str):
        if self._frame:
            return self._source[column].array
        values = self._source[column]
        return values if isinstance(values, np.ndarray) else _object_array(values)


def _clean_position(value, transform: Callable[[str], str] | None, position: dict[str, int]) -> int:
    """The index of ``value`` stripped and transformed among the distinct values in ``position``
    (added when new); -1 when it is blank."""
    text = str(value).strip()
    if text and transform is not None:
        text = transform(text)
    return position.setdefault(text, len(position)) if text else -1


def _object_array(values) -> np.ndarray:
    """A 1-D object array of ``values`` as they are (never a 2-D array of nested sequences)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


@dataclass(frozen=True)
class _Text:
    """A text column as its distinct values and one index per row (-1 = missing or blank).

    Claims repeat a few thousand codes millions of times: cleaning, normalising and testing a
    value once per distinct value keeps both a one-member request and a batch cheap.
    """

    index: np.ndarray
    values: np.ndarray  # object, each value once

    @classmethod
    def of(cls, frame: _Table, column: str, transform: Callable[[str], str] | None = None) -> _Text:
        """Stripped text, blank as missing, ``transform`` applied to each distinct value."""
        if column not in frame.columns:
            return cls.repeated(None, len(frame))
        values = frame[column]
        if isinstance(values, np.ndarray) and values.dtype == object and len(values) <= _SMALL:
            return cls._of_small(values.tolist(), transform)
        return cls(*_factorize(values)).cleaned(transform)

    @classmethod
    def _of_small(cls, values: list, transform: Callable[[str], str] | None) -> _Text:
        """``of`` for a request's few hundred cells: the raw -> cleaned look-up is built in one dict
        (what ``_factorize_small`` and ``cleaned`` do in two passes), the same values in the same order."""
        position: dict[str, int] = {}
        remap = dict.fromkeys(values)
        for value in remap:
            missing = value is None or value is pd.NA or value != value
            remap[value] = -1 if missing else _clean_position(value, transform, position)
        distinct = np.empty(len(position), dtype=object)
        distinct[:] = list(position)
        if len(remap) == 1:  # one value on every row (a request's person, source, claim type): no look-ups
            return cls(_filled(len(values), next(iter(remap.values())), np.intp), distinct)
        return cls(np.fromiter(map(remap.__getitem__, values), dtype=np.intp, count=len(values)), distinct)

    def cleaned(self, transform: Callable[[str], str] | None) -> _Text:
        """Strip, blank -> missing, transform; values that become equal are merged."""
        position: dict[str, int] = {}
        remap = []
        for value in self.values.tolist():
            remap.append(_clean_position(value, transform, position))
        remap.append(-1)
        return _Text(np.array(remap, dtype=np.intp)[self.index], np.array(list(position), dtype=object))

    def rows(self) -> np.ndarray:
        """Object array of the value per row, ``None`` where missing."""
        return np.append(self.values, None)[self.index]

    def converted(self, convert: Callable[[str], str | None]) -> np.ndarray:
        """Object array of ``convert(value)`` per row (once per distinct value), ``None`` where missing."""
        converted = [convert(v) for v in self.values.tolist()]
        converted.append(None)
        return np.array(converted, dtype=object)[self.index]

    def present(self) -> np.ndarray:
        return self.index >= 0

    def test(self, predicate: Callable[[str], bool]) -> np.ndarray:
        """``predicate`` per row, evaluated once per distinct value; False where missing."""
        hits = [bool(predicate(v)) for v in self.values.tolist()]
        hits.append(False)
        return np.array(hits, dtype=bool)[self.index]

    def flags(self, flag: Callable[[str], int]) -> np.ndarray:
        """``flag`` (bits of a byte) per row, evaluated once per distinct value; 0 where missing."""
        bits = [flag(v) for v in self.values.tolist()]
        bits.append(0)
        return np.array(bits, dtype=np.uint8)[self.index]

    def take(self, rows: np.ndarray) -> _Text:
        return _Text(self.index[rows], self.values)

    @classmethod
    def concat(cls, texts: list[_Text]) -> _Text:
        """Rows of all ``texts`` one after another, over one set of distinct values.

        Texts taken from one column share its distinct values (the claim ids of every kind of
        medical event): those are looked up once, however many parts they come in."""
        position: dict[str, int] = {}
        remaps: dict[int, np.ndarray | None] = {}  # id of a values array (alive in ``texts``) -> its remap, None: as it is
        index = []
        for text in texts:
            key = id(text.values)
            if key not in remaps:
                values = text.values.tolist()
                if not position:  # the first values keep their numbers (they are distinct)
                    position.update(zip(values, range(len(values))))
                    remaps[key] = None
                else:
                    looked_up = [position.setdefault(v, len(position)) for v in values]
                    looked_up.append(-1)
                    remaps[key] = np.array(looked_up, dtype=np.intp)
            remap = remaps[key]
            index.append(text.index if remap is None else remap[text.index])
        return cls(np.concatenate(index) if index else np.empty(0, dtype=np.intp), np.array(list(position), dtype=object))

    @classmethod
    def repeated(cls, value: str | None, n: int) -> _Text:
        """``value`` on each of ``n`` rows (``None``: missing on each)."""
        if value is None:
            return cls(_filled(n, -1, np.intp), _NO_VALUES)
        values = _ONE_VALUE.get(value)
        if values is None:
            values = _ONE_VALUE[value] = np.array([value], dtype=object)
        return cls(np.zeros(n, dtype=np.intp), values)

    def ranks(self) -> np.ndarray:
        """Sort rank of each row's value as text (Python's str order, as pandas sorts), missing last."""
        values = self.values.tolist()
        rank = np.empty(len(values) + 1, dtype=np.intp)
        rank[np.array(sorted(range(len(values)), key=values.__getitem__), dtype=np.intp)] = np.arange(len(values))
        rank[-1] = len(values)
        return rank[self.index]


# Shared (never written) values of repeated texts: ``_Text.concat`` looks each array up once.
_NO_VALUES = np.empty(0, dtype=object)
_ONE_VALUE: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class _Events:
    """Columns of a group of events; kind, code system and setting as indices into their vocabulary,
    text as ``_Text`` (the frame is sorted and built from distinct values, never re-hashing rows)."""

    person_id: _Text
    kind: np.ndarray  # int8 into EVENT_KINDS
    date: np.ndarray  # datetime64[s]
    end_date: np.ndarray  # datetime64[s]
    code_system: np.ndarray  # int8 into CODE_SYSTEMS
    code: _Text
    setting: np.ndarray  # int8 into SETTINGS
    claim_id: _Text  # missing where not a claim's event
    days_supply: np.ndarray  # float64, NaN = missing

    @classmethod
    def build(cls, person_id: _Text, kind, date, code_system, code, setting, claim_id=None, end_date=None, days_supply=None) -> _Events:
        """Scalars are broadcast to the length of ``person_id`` (a ``None`` claim id: missing)."""
        n = len(person_id.index)

        def full(value, dtype):
            return value if isinstance(value, np.ndarray) else _filled(n, value, dtype)

        return cls(
            person_id=person_id,
            kind=full(np.int8(_KIND[kind]) if isinstance(kind, str) else kind, np.int8),
            date=date,
            end_date=full(_NAT if end_date is None else end_date, "datetime64[s]"),
            code_system=full(np.int8(_SYSTEM[code_system]) if isinstance(code_system, str) else code_system, np.int8),
            code=code if isinstance(code, _Text) else _Text.repeated(code, n),
            setting=full(np.int8(_SETTING[setting]) if isinstance(setting, str) else setting, np.int8),
            claim_id=claim_id if isinstance(claim_id, _Text) else _Text.repeated(claim_id, n),
            days_supply=full(np.nan if days_supply is None else days_supply, np.float64),
        )

    @classmethod
    def concat(cls, parts: list[_Events]) -> _Events:
        columns = {}
        for name in _EVENT_FIELDS:
            column = [getattr(p, name) for p in parts]
            columns[name] = _Text.concat(column) if name in _TEXT_FIELDS else np.concatenate(column)
        return cls(**columns)

    def take(self, rows: np.ndarray) -> _Events:
        columns = {name: getattr(self, name) for name in _EVENT_FIELDS}
        return _Events(**{name: column.take(rows) if name in _TEXT_FIELDS else column[rows] for name, column in columns.items()})


_EVENT_FIELDS = tuple(f.name for f in fields(_Events))
_TEXT_FIELDS = frozenset(("person_id", "code", "claim_id"))


@dataclass(frozen=True)
class _Persons:
    """Columns of the persons frame as arrays (text as object arrays with ``None``)."""

    person_id: np.ndarray
    birth_date: np.ndarray
    sex: np.ndarray
    race: np.ndarray
    zip_code: np.ndarray
    payer_type: np.ndarray
    death_date: np.ndarray


def _dates(frame: _Table, column: str) -> np.ndarray:
    """Day-resolution datetime64[s]; text (YYYY-MM-DD) and date objects are read once per distinct value."""
    if column not in frame.columns:
        return _filled(len(frame), _NAT, "datetime64[s]")
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = values.astype("datetime64[D]") if isinstance(values, np.ndarray) else values.to_numpy(dtype="datetime64[D]")
        return days.astype("datetime64[s]")
    if isinstance(values, np.ndarray) and values.dtype == object and len(values) <= _SMALL:
        cells = values.tolist()
        kinds = set(map(type, cells))
        if kinds == {dt.date}:  # the API's tables: plain dates, one ordinal each
            days = np.fromiter(map(dt.date.toordinal, cells), dtype=np.int64, count=len(cells)) - _EPOCH_ORDINAL
            return days.view("datetime64[D]").astype("datetime64[s]")
        if kinds <= {dt.date, type(None)}:
            days = np.fromiter((_NAT_DAY if v is None else v.toordinal() - _EPOCH_ORDINAL for v in cells), dtype=np.int64, count=len(cells))
            return days.view("datetime64[D]").astype("datetime64[s]")
    index, distinct = _factorize(values)
    distinct = distinct.tolist()
    if all(isinstance(v, dt.date) for v in distinct):  # date, datetime and Timestamp objects: their day
        days = (np.array([v.toordinal() for v in distinct], dtype=np.int64) - _EPOCH_ORDINAL).astype("datetime64[D]").astype("datetime64[s]")
    else:
        text = _Text(np.arange(len(distinct)), np.array(distinct, dtype=object)).cleaned(None)
        parsed = pd.to_datetime(text.values, format="%Y-%m-%d", errors="coerce").to_numpy(dtype="datetime64[s]")
        days = np.append(parsed, _NAT)[text.index]
    return np.append(days, _NAT)[index]


def _factorize(array) -> tuple[np.ndarray, np.ndarray]:
    """(index per row, -1 = missing; distinct values as an object array). Arrow-backed text is
    encoded in Arrow; object columns (the API's one-member tables) by pandas' hash table."""
    if isinstance(array, pd.arrays.NumpyExtensionArray):
        array = array.to_numpy()
    if isinstance(array, np.ndarray) and array.dtype == object:
        if len(array) <= _SMALL:
            # a request's few hundred rows: a dict beats pandas' fixed cost of setting up a hash table
            return _factorize_small(array.tolist())
    index, distinct = pd.factorize(array)
    return index, np.asarray(distinct, dtype=object)


def _factorize_small(values: list) -> tuple[np.ndarray, np.ndarray]:
    """``_factorize`` for a request's few hundred values: dict look-ups beat pandas' fixed cost of
    setting up a hash table. Missing (None, NA, NaN) gets -1."""
    position = dict.fromkeys(values)
    missing = [v for v in position if v is None or v is pd.NA or v != v]
    for v in missing:
        del position[v]
    distinct = np.empty(len(position), dtype=object)
    distinct[:] = list(position)
    position.update((v, i) for i, v in enumerate(distinct.tolist()))
    position.update((v, -1) for v in missing)
    return np.fromiter(map(position.__getitem__, values), dtype=np.intp, count=len(values)), distinct


def _numbers(frame: _Table, column: str) -> np.ndarray:
    """float64 with NaN for missing or not a number; text is read once per distinct value."""
    if column not in frame.columns:
        return _filled(len(frame), np.nan, np.float64)
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.float64) if isinstance(values, np.ndarray) else values.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(values, np.ndarray) and values.dtype == object and len(values) <= _SMALL:
        cells = values.tolist()
        if set(map(type, cells)) <= {int, float, type(None)}:  # the API's tables: Python numbers, None where missing
            return np.fromiter((np.nan if v is None else v for v in cells), dtype=np.float64, count=len(cells))
    index, distinct = _factorize(values)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in distinct.tolist()):
        numbers = distinct.astype(np.float64)
    else:
        text = _Text(np.arange(len(distinct)), distinct).cleaned(None)
        parsed = pd.to_numeric(pd.Series(text.values, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        numbers = np.append(parsed, np.nan)[text.index]
    return np.append(numbers, np.nan)[index]


def _normal_code(code: str) -> str:
    """Upper case without dots, dashes or spaces (validated frames already are; hand-built may not be)."""
    return _SEPARATORS.sub("", code).upper()


def _bill_type(code: str) -> str:
    """Three-character bill type: the four-character form carries a leading zero."""
    code = _normal_code(code)
    return code[1:] if len(code) == 4 else code


def _zip5(value: str) -> str | None:
    match = _ZIP.match(value)
    return match.group(1).zfill(5) if match else None


def _fill(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.where(np.isnat(values), fallback, values)


def _filled(n: int, value, dtype) -> np.ndarray:
    """``np.full`` without its dtype inference and copy checks (a third of the cost on a request's arrays)."""
    out = np.empty(n, dtype=dtype)
    out.fill(value)
    return out


def _numbered(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's value numbered in order of first appearance, the rows where each value first appears)."""
    if len(values) <= _SMALL:
        # a request's few hundred rows: one NumPy sort beats setting up a pandas hash table
        distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        number = np.empty(len(distinct), dtype=np.intp)
        number[np.argsort(first)] = np.arange(len(distinct))
        return number[inverse], np.sort(first)
    number, _ = pd.factorize(values)
    # a row is the first of its value iff its number exceeds every number before it
    return number, np.flatnonzero(number > np.maximum.accumulate(np.concatenate(([-1], number[:-1]))))


def _first_occurrence(*keys: np.ndarray) -> np.ndarray:
    """Mask of rows whose combination of integer keys has not been seen in an earlier row."""
    if len(keys[0]) <= _SMALL:
        # a request's few hundred rows: one stable sort beats a pandas hash table per key. Equal
        # key combinations end up side by side with their rows in original order, so a row is a
        # first occurrence iff it differs from its predecessor in the sorted order.
        order = np.lexsort(keys)
        first = np.zeros(len(order), dtype=bool)
        first[:1] = True
        for key in keys:
            ranked = key[order]
            first[1:] |= ranked[1:] != ranked[:-1]
        mask = np.empty(len(order), dtype=bool)
        mask[order] = first
        return mask
    group = np.zeros(len(keys[0]), dtype=np.int64)
    for key in keys:
        number, distinct = pd.factorize(key)
        group, _ = pd.factorize(group * len(distinct) + number)
    # factorize numbers groups in order of first appearance: a row starts a group iff its number
    # exceeds every number before it.
    seen = np.maximum.accumulate(np.concatenate(([-1], group[:-1])))
    return group > seen


@dataclass(frozen=True)
class _Spans:
    """Eligibility rows: whose span, from when to when."""

    person: _Text
    start: np.ndarray
    end: np.ndarray
    payer_type: _Text  # lower case

    @classmethod
    def of(cls, eligibility: _Table) -> _Spans:
        payer_type = _Text.of(eligibility, "payer_type", str.lower)
        return cls(_Text.of(eligibility, "person_id"), _dates(eligibility, "enrollment_start_date"), _dates(eligibility, "enrollment_end_date"), payer_type)


def _derive_persons(eligibility: _Table, spans: _Spans) -> _Persons:
    person = spans.person
    # spans in order of person_id as text (missing last), then start and end (NaT last)
    person_rank = person.ranks()
    order = np.lexsort((*_nat_last(spans.end), *_nat_last(spans.start), person_rank))
    ranked = person_rank[order]
    starts = np.flatnonzero(np.append(True, ranked[1:] != ranked[:-1])) if len(order) else order
    latest = order[np.append(starts[1:] - 1, len(order) - 1)] if len(order) else order
    # the latest death date of each person (NaT, the smallest int64, only when none is recorded)
    death = _dates(eligibility, "death_date")
    death = np.maximum.reduceat(death[order].view(np.int64), starts).view("datetime64[s]") if len(order) else death
    death[person.index[latest] < 0] = _NAT
    return _Persons(
        person_id=person.rows()[latest],
        birth_date=_dates(eligibility, "birth_date")[latest],
        sex=np.array([v or "unknown" for v in _Text.of(eligibility, "gender", str.lower).take(latest).rows().tolist()], dtype=object),
        race=_Text.of(eligibility, "race").take(latest).rows(),
        zip_code=_Text.of(eligibility, "zip_code").take(latest).converted(_zip5),
        payer_type=spans.payer_type.take(latest).rows(),
        death_date=death,
    )


def _nat_last(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two ``np.lexsort`` keys (minor first) ordering dates with NaT last."""
    return dates.view(np.int64), np.isnat(dates)


def _enrollment_events(spans: _Spans) -> _Events:
    """One event per span, carrying the span's payer type: a member's plan can change (commercial to
    Medicare at 65), and features must see the plan in force on their ``as_of``, not the latest."""
    payer = spans.payer_type
    stated = payer.present()
    system = np.where(stated, _SYSTEM[PAYER_TYPE_SYSTEM], _SYSTEM[""]).astype(np.int8)
    code = _Text(np.where(stated, payer.index, len(payer.values)), np.append(payer.values, ""))  # not stated: code ""
    return _Events.build(person_id=spans.person, kind="enrollment", date=spans.start, end_date=spans.end, code_system=system, code=code, setting="unknown")


def _death_events(persons: _Persons) -> _Events | None:
    dead = ~np.isnat(persons.death_date)
    if not dead.any():
        return None
    person = _Text(*_factorize(persons.person_id[dead]))
    return _Events.build(person_id=person, kind="death", date=persons.death_date[dead], code_system="", code="", setting="unknown")


@dataclass(frozen=True)
class _Claims:
    """Medical claim lines as arrays, with each line's claim (``key``) and the claim's setting."""

    person_id: _Text
    claim_id: _Text
    key: np.ndarray  # claim number per line (person_id + claim_id + data_source), in order of first appearance
    start: np.ndarray
    end: np.ndarray
    line_start: np.ndarray
    admission: np.ndarray
    discharge: np.ndarray
    hcpcs: _Text
    revenue: _Text
    setting: np.ndarray  # int8 into SETTINGS, per line (the claim's)
    stay: np.ndarray  # bool per line: the claim is an institutional inpatient stay
    header: np.ndarray  # row numbers of each claim's first line


def _medical_events(medical: _Table, codes: CodeLists) -> list[_Events | None]:
    if medical.empty:
        return []
    claims = _read_claims(medical)
    header = claims.header
    return [
        _diagnosis_events(claims, medical),
        _icd_procedure_events(claims, medical),
        _line_events(claims, codes),
        _drg_events(claims, _Text.of(medical, "drg_code", lambda c: _normal_code(c).zfill(3)).take(header), _Text.of(medical, "drg_code_type", str.lower).take(header)),
        _stay_events(claims),
    ]


def _read_claims(medical: _Table) -> _Claims:
    person = _Text.of(medical, "person_id")
    claim = _Text.of(medical, "claim_id")
    source = _Text.of(medical, "data_source")
    # a claim belongs to one member: the same claim_id under two members is two claims (requests
    # scored together, or sources numbering claims per member, must not merge members' claims).
    # A member's lines without claim_id belong to no claim: one shared header, setting unknown.
    member_claim = (person.index.astype(np.int64) + 1) * (len(claim.values) + 1) + claim.index + 1
    key, header = _numbered(member_claim * (len(source.values) + 1) + source.index + 1)
    admission = _dates(medical, "admission_date")
    claim_type = _Text.of(medical, "claim_type", str.lower)
    bill_type = _Text.of(medical, "bill_type_code", _bill_type)
    pos = _Text.of(medical, "place_of_service_code", lambda c: _normal_code(c).zfill(2))
    revenue = _Text.of(medical, "revenue_center_code", lambda c: _normal_code(c).zfill(4))
    institutional = claim_type.test(lambda t: t == "institutional")
    # what each line says about its claim (decided once per distinct code); a stay is inpatient
    flags = (
        bill_type.flags(lambda b: (_STAY | _INPATIENT if b[:2] in ("11", "12") else 0) | _OUTPATIENT)
        | pos.flags(lambda p: _PLACE_FLAGS.get(p, 0) | _OUTPATIENT)
        | revenue.flags(lambda r: _ED if r.startswith("045") else 0)
        | np.where(institutional, np.where(np.isnat(admission), _OUTPATIENT, _STAY | _INPATIENT | _OUTPATIENT), 0).astype(np.uint8)
    )
    setting, stay = _claim_settings(key, claim.present(), flags)
    return _Claims(
        person_id=person,
        claim_id=claim,
        key=key,
        start=_dates(medical, "claim_start_date"),
        end=_dates(medical, "claim_end_date"),
        line_start=_dates(medical, "claim_line_start_date"),
        admission=admission,
        discharge=_dates(medical, "discharge_date"),
        hcpcs=_Text.of(medical, "hcpcs_code", _normal_code),
        revenue=revenue,
        setting=setting,
        stay=stay,
        header=header,
    )


# What a line says about its claim, as bits of one flag byte per line: a claim has a flag if any
# of its lines has it, so the claim's flags are its lines' bytes OR-ed together (one pass).
_STAY, _INPATIENT, _ED, _OFFICE, _OUTPATIENT = 1, 2, 4, 8, 16
_PLACE_FLAGS = {**{p: _INPATIENT for p in _INPATIENT_POS}, **{p: _ED for p in _ED_POS}, **{p: _OFFICE for p in _OFFICE_POS}}
_FLAG_SETTINGS = ((_INPATIENT, "inpatient"), (_ED, "ed"), (_OFFICE, "office"), (_OUTPATIENT, "outpatient"))  # most specific first
_SETTING_OF_FLAGS = np.array(
    [next((_SETTING[setting] for flag, setting in _FLAG_SETTINGS if bits & flag), _SETTING["unknown"]) for bits in range(32)], dtype=np.int8
)


def _claim_settings(key: np.ndarray, has_claim: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per claim, broadcast to its lines: setting (most specific first), and whether it is a stay."""
    claim_flags = np.zeros(int(key.max(initial=-1)) + 1, dtype=np.uint8)
    np.bitwise_or.at(claim_flags, key, flags)
    line_flags = claim_flags[key] * has_claim
    return _SETTING_OF_FLAGS[line_flags], (line_flags & _STAY).astype(bool)


def _header_events(claims: _Claims, rows: np.ndarray, kind: str, code_system: str, code: _Text | str, date: np.ndarray, end_date=None) -> _Events:
    return _Events.build(
        person_id=claims.person_id.take(rows),
        kind=kind,
        date=date,
        end_date=end_date,
        code_system=code_system,
        code=code,
        setting=claims.setting[rows],
        claim_id=claims.claim_id.take(rows),
    )


_NO_ROWS = np.empty(0, dtype=np.intp)
_NO_ROWS.setflags(write=False)


def _wide_codes(claims: _Claims, medical: _Table, prefix: str, type_column: str, icd9: str) -> tuple[np.ndarray, _Text, np.ndarray]:
    """The 25 wide code columns of the claim headers in long form: (row, code, column number),
    leaving out the codes of claims whose ``type_column`` says ``icd9``.

    Column-major, as the columns are numbered: every claim's first code, then every second, ...
    """
    present = [(i, column) for i, column in _WIDE_COLUMNS[prefix] if column in medical.columns]
    if not present:  # no claim has such codes (a request without procedures): nothing to read
        return _NO_ROWS, _Text.repeated(None, 0), _NO_ROWS
    header = claims.header
    usable = ~_Text.of(medical, type_column, str.lower).take(header).test(icd9.__eq__)
    code = _Text.concat([_Text.of(medical, column, _normal_code).take(header) for _, column in present])
    keep = code.present() & np.concatenate([usable] * len(present))
    rows = np.concatenate([header] * len(present))[keep]
    column = np.repeat(np.array([i for i, _ in present], dtype=np.intp), len(header))[keep]
    return rows, code.take(keep), column


def _diagnosis_events(claims: _Claims, medical: _Table) -> _Events | None:
    rows, code, _ = _wide_codes(claims, medical, "diagnosis_code_", "diagnosis_code_type", "icd-9-cm")
    once = _first_occurrence(claims.key[rows], code.index)
    if not once.any():
        return None
    rows = rows[once]
    return _header_events(claims, rows, "diagnosis", "icd10cm", code.take(once), claims.start[rows])


def _icd_procedure_events(claims: _Claims, medical: _Table) -> _Events | None:
    rows, code, column = _wide_codes(claims, medical, "procedure_code_", "procedure_code_type", "icd-9-pcs")
    if not len(rows):
        return None
    date = claims.start[rows]
    for i in np.unique(column):
        mine = column == i
        date[mine] = _fill(_dates(medical, f"procedure_date_{i}")[rows[mine]], date[mine])
    once = _first_occurrence(claims.key[rows], code.index, date.view(np.int64))
    rows = rows[once]
    return _header_events(claims, rows, "procedure", "icd10pcs", code.take(once), date[once])


def _line_events(claims: _Claims, codes: CodeLists) -> _Events | None:
    """HCPCS lines (drug administrations or procedures) and revenue-centre lines, once per claim, code and day."""
    hcpcs, revenue = claims.hcpcs, claims.revenue
    is_drug = hcpcs.test(_hcpcs_drug_codes(codes).__contains__)
    groups = [
        (np.flatnonzero(is_drug), "drug_admin", "hcpcs", hcpcs),
        (np.flatnonzero(hcpcs.present() & ~is_drug), "procedure", "hcpcs", hcpcs),
        (np.flatnonzero(revenue.present()), "procedure", "revenue", revenue),
    ]
    groups = [g for g in groups if len(g[0])]
    if not groups:
        return None
    rows = np.concatenate([g[0] for g in groups])
    lengths = [len(g[0]) for g in groups]
    kind = np.repeat(np.array([_KIND[kind] for _, kind, _, _ in groups], dtype=np.int8), lengths)
    system = np.repeat(np.array([_SYSTEM[system] for _, _, system, _ in groups], dtype=np.int8), lengths)
    code = _Text.concat([text.take(g) for g, _, _, text in groups])
    date = _fill(claims.line_start[rows], claims.start[rows])
    once = _first_occurrence(claims.key[rows], system, code.index, date.view(np.int64))
    rows = rows[once]
    return _Events.build(
        person_id=claims.person_id.take(rows),
        kind=kind[once],
        date=date[once],
        code_system=system[once],
        code=code.take(once),
        setting=claims.setting[rows],
        claim_id=claims.claim_id.take(rows),
    )


_DRUG_CODES: dict[int, tuple[weakref.ref, frozenset[str]]] = {}


def _hcpcs_drug_codes(codes: CodeLists) -> frozenset[str]:
    """HCPCS codes of the drug list, derived once per code-list table rather than once per call
    (a request would otherwise pay for reading the whole drug table to map a few lines)."""
    drugs = codes.drugs
    hit = _DRUG_CODES.get(id(drugs))
    if hit is not None and hit[0]() is drugs:
        return hit[1]
    found = frozenset(drugs["code"].to_numpy()[drugs["code_system"].to_numpy() == "hcpcs"].tolist())
    if len(_DRUG_CODES) > 16:
        _DRUG_CODES.clear()
    _DRUG_CODES[id(drugs)] = (weakref.ref(drugs), found)
    return found


def _drg_events(claims: _Claims, drg: _Text, drg_type: _Text) -> _Events | None:
    ms = drg.present() & (drg_type.test(lambda t: t == "ms-drg") | ~drg_type.present())
    rows = claims.header[ms]
    if not len(rows):
        return None
    return _header_events(claims, rows, "procedure", "ms_drg", drg.take(ms), _fill(claims.admission[rows], claims.start[rows]))


def _stay_events(claims: _Claims) -> _Events | None:
    rows = claims.header[claims.stay[claims.header]]
    if not len(rows):
        return None
    return _header_events(
        claims, rows, "inpatient_stay", "", "", _fill(claims.admission[rows], claims.start[rows]), end_date=_fill(claims.discharge[rows], claims.end[rows])
    )


def _pharmacy_events(pharmacy: _Table) -> _Events | None:
    if pharmacy.empty:
        return None
    date = _dates(pharmacy, "dispensing_date")
    supply = _numbers(pharmacy, "days_supply")
    supply[~(supply >= 1) | (supply != np.floor(supply))] = np.nan  # as validation does: not a positive integer -> missing
    span = np.where(np.isnan(supply), 0, supply - 1).astype(np.int64) * 86_400
    end = np.where(np.isnan(supply), _NAT, date + span.astype("timedelta64[s]"))
    return _Events.build(
        person_id=_Text.of(pharmacy, "person_id"),
        kind="drug_fill",
        date=date,
        end_date=end,
        code_system="ndc",
        code=_Text.of(pharmacy, "ndc_code", _normal_code),
        setting="pharmacy",
        claim_id=_Text.of(pharmacy, "claim_id"),
        days_supply=supply,
    )


def _arrow_strings(texts: list[tuple[np.ndarray, np.ndarray]], rows: int) -> list[pd.arrays.ArrowStringArray]:
    """``string`` columns of ``rows`` rows from (index per row, -1 = missing; distinct values) pairs.

    One dictionary and one ``take`` in Arrow serve all the columns, each column a slice of the
    result: a call into Arrow has a fixed cost which, paid per column, came to a tenth of mapping
    one member."""
    dictionary = pa.array(np.concatenate([values for _, values in texts]), type=pa.large_string())
    index = np.concatenate([index for index, _ in texts])
    starts = np.array([0, *accumulate(len(values) for _, values in texts[:-1])], dtype=np.intp)
    shifted = (index.reshape(len(texts), rows) + starts[:, None]).ravel()  # column i's values start at starts[i]
    return _slices(dictionary.take(pa.array(shifted, mask=index < 0)), [rows] * len(texts))


def _object_strings(columns: list[np.ndarray]) -> list[pd.arrays.ArrowStringArray]:
    """``string`` columns from object arrays (``None`` = missing), converted to Arrow in one call."""
    return _slices(pa.array(np.concatenate(columns), type=pa.large_string(), from_pandas=True), [len(c) for c in columns])


def _slices(strings: pa.Array, lengths: list[int]) -> list[pd.arrays.ArrowStringArray]:
    out, start = [], 0
    for n in lengths:
        out.append(pd.arrays.ArrowStringArray(strings.slice(start, n), dtype=_STRING))
        start += n
    return out


_STRING = pd.StringDtype("pyarrow")


# The event model's vocabularies as distinct values for ``_arrow_strings``.
_VOCABULARY_VALUES = {vocabulary: np.array(vocabulary, dtype=object) for vocabulary in (EVENT_KINDS, CODE_SYSTEMS, SETTINGS)}


_COLUMN_INDEXES: dict[tuple[str, ...], pd.Index] = {}


def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The columns Index of a frame with ``names`` (the event and person columns: a fixed few).

    Built once per set of names and handed out as views (a new Index object over the same data,
    so setting one frame's ``columns.name`` never touches another): building a ``str`` Index
    from a list cost ~0.1 ms per frame, a tenth of mapping one member."""
    index = _COLUMN_INDEXES.get(names)
    if index is None:
        index = _COLUMN_INDEXES[names] = pd.Index(list(names))
    return index.view()


def _frame(columns: dict[str, object], rows: int) -> pd.DataFrame:
    """A DataFrame from finished column arrays, one block per column and one for each group of
    numpy columns sharing a dtype: ``pd.DataFrame(dict)`` re-inspects every column, which costs
    more than building them for a one-member request."""
    blocks = []
    numpy: dict[np.dtype, list[int]] = {}
    names = list(columns)
    for i, values in enumerate(columns.values()):
        if isinstance(values, np.ndarray):
            numpy.setdefault(values.dtype, []).append(i)
        else:
            blocks.append((values, np.array([i], dtype=np.intp)))
    for dtype, at in numpy.items():
        stacked = np.empty((len(at), rows), dtype=dtype)
        for row, i in enumerate(at):
            stacked[row] = columns[names[i]]
        blocks.append((stacked, np.array(at, dtype=np.intp)))
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(rows), columns=_column_index(tuple(names)))


def _event_columns(events: _Events) -> ArrayColumns:
    """The events in EVENT_DTYPES, sorted by person, date, kind, code system, code, claim, end date,
    as column arrays; their DataFrame (Arrow-backed text) is built from the same arrays on demand."""
    person, code, claim = events.person_id, events.code, events.claim_id
    order = np.lexsort(
        (*_nat_last(events.end_date), claim.ranks(), code.ranks(), _SYSTEM_RANK[events.code_system], _KIND_RANK[events.kind], *_nat_last(events.date), person.ranks())
    )
    supply = events.days_supply[order]
    missing = np.isnan(supply)
    texts = {
        "person_id": (person.index[order], person.values),
        "kind": (events.kind[order], _VOCABULARY_VALUES[EVENT_KINDS]),
        "code_system": (events.code_system[order], _VOCABULARY_VALUES[CODE_SYSTEMS]),
        "code": (code.index[order], code.values),
        "setting": (events.setting[order], _VOCABULARY_VALUES[SETTINGS]),
        "claim_id": (claim.index[order], claim.values),
    }
    arrays = {
        "date": events.date[order],
        "end_date": events.end_date[order],
        "days_supply": pd.arrays.IntegerArray(np.where(missing, 0, supply).astype(np.int32), missing),
    }
    rows = len(order)

    def build_frame() -> pd.DataFrame:
        text = dict(zip(texts, _arrow_strings(list(texts.values()), rows)))
        return _frame({name: text[name] if name in text else arrays[name] for name in EVENT_COLUMNS}, rows)

    return ArrayColumns(arrays, texts, EVENT_COLUMNS, rows, build_frame)


def _person_columns(persons: _Persons) -> ArrayColumns:
    """The persons as column arrays; their DataFrame (:func:`_persons_frame`) is built on demand.

    A request's pipeline reads every person column as arrays or Python objects: building the
    DataFrame's Arrow strings and converting them back cost ~0.2 ms of a one-member request."""
    rows = len(persons.person_id)
    every = np.arange(rows)  # text is already one object per row (None = missing)
    texts = {c: (every, getattr(persons, c)) for c in PERSON_COLUMNS if PERSON_DTYPES[c] == "string"}
    arrays = {c: getattr(persons, c) for c in PERSON_COLUMNS if c not in texts}
    return ArrayColumns(arrays, texts, PERSON_COLUMNS, rows, lambda: _persons_frame(persons))


def _persons_frame(persons: _Persons) -> pd.DataFrame:
    """The persons frame in PERSON_DTYPES, one row per person in person_id order."""

    columns = {c: getattr(persons, c) for c in PERSON_COLUMNS}
    text = [c for c in PERSON_COLUMNS if PERSON_DTYPES[c] == "string"]
    columns.update(zip(text, _object_strings([columns[c] for c in text])))
    return _frame(columns, len(persons.person_id))
