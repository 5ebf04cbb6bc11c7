"""The mapping's shortcuts for a request's few hundred rows give exactly what its batch path gives.

``contract.mapping`` takes cheaper routes below ``_SMALL`` rows (dict look-ups instead of pandas
hash tables, one NumPy sort instead of a factorize, dates read straight from ``datetime.date``
objects). Each test maps the same tables twice, once as they come and once with ``_SMALL``
moved so that every table takes the other route, and requires identical frames.
"""

from __future__ import annotations

import datetime as dt
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import mapping
from contract.mapping import claims_to_event_columns, claims_to_events
from features.columns import columns_of, object_values, to_numpy
from features.codelists import load_codelists

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = load_codelists()

# Pools of raw cells, messy on purpose: blanks, missing of every kind, case, dots and dashes.
PERSONS = ["P1", "P2", "P10", " P1 ", None]
TEXT_MISSING = [None, "", "  ", np.nan]
DAYS = [dt.date(2023, 1, 1) + dt.timedelta(days=d) for d in (0, 0, 3, 40, 200, 500)]
MEDICAL = {
    "person_id": PERSONS,
    "claim_id": ["C1", "C2", "C3", "c1", None],
    "data_source": ["a", "b"],
    "claim_type": ["professional", "institutional", "Institutional", None],
    "place_of_service_code": ["11", "21", "23", "2", None],
    "bill_type_code": ["0111", "111", "131", None],
    "revenue_center_code": ["450", "0450", "0250", None],
    "hcpcs_code": ["J9312", "j9312", "96413", "99213", "Q2041", None],
    "diagnosis_code_type": ["icd-10-cm", "icd-9-cm"],
    "procedure_code_type": ["icd-10-pcs", "icd-9-pcs"],
    "drg_code": ["18", "872", None],
    "drg_code_type": ["ms-drg", "apr-drg", None],
    "diagnosis_code_1": ["C83.38", "c8338", "D64.9", "I10", None],
    "diagnosis_code_2": ["C83.38", "C90.00", "E11.9", None],
    "diagnosis_code_7": ["C9100", None],
    "procedure_code_1": ["XW033H7", "xw033h7", "30233N1", None],
    "procedure_code_2": ["XW033H7", None],
}
MEDICAL_DATES = ["claim_start_date", "claim_end_date", "claim_line_start_date", "admission_date", "discharge_date", "procedure_date_1", "procedure_date_2"]
PHARMACY = {"person_id": PERSONS, "claim_id": ["R1", "R2", "R3", None], "ndc_code": ["00069-0101-01", "00069010101", "59572-0410-00"]}
ELIGIBILITY = {
    "person_id": PERSONS,
    "gender": ["female", "Male", None],
    "race": ["white", None],
    "zip_code": ["02139", "2139", "02139-1234", "abcde", None],
    "payer_type": ["commercial", "Medicare", None],
}
ELIGIBILITY_DATES = ["enrollment_start_date", "enrollment_end_date", "birth_date", "death_date"]


def _cells(pool: list, messy: bool):
    return st.sampled_from(pool + (TEXT_MISSING if messy else []))


def _dates(messy: bool):
    plain = st.sampled_from(DAYS + [None])
    if not messy:
        return plain
    return st.one_of(plain, st.sampled_from(["2023-02-01", "2023-13-45", "", dt.datetime(2023, 3, 1, 5, 30), pd.Timestamp("2023-04-01"), np.nan]))


@st.composite
def tables(draw, max_rows: int = 25) -> tuple[dict, dict, dict]:
    """Three claims tables as column name -> object array, as the API lays them out; ``messy``
    tables also hold what the API never sends (blank text, NaN, date text) to reach every route."""
    messy = draw(st.booleans())

    def table(spec: dict, dates: list, extra: dict, rows: int) -> dict:
        columns = draw(st.sets(st.sampled_from(sorted(spec) + dates + sorted(extra)))) | {"person_id"}
        out = {}
        for name in sorted(columns):
            strategy = _dates(messy) if name in dates else extra[name] if name in extra else _cells(spec[name], messy)
            cells = np.empty(rows, dtype=object)
            cells[:] = [draw(strategy) for _ in range(rows)]
            out[name] = cells
        return out

    supply = {"days_supply": st.sampled_from([30, 90, 0, None, 2.5] + (["30", " 7 ", "x", np.nan, True] if messy else []))}
    return (
        table(ELIGIBILITY, ELIGIBILITY_DATES, {}, draw(st.integers(0, 4))),
        table(MEDICAL, MEDICAL_DATES, {}, draw(st.integers(0, max_rows))),
        table(PHARMACY, ["dispensing_date"], supply, draw(st.integers(0, 6))),
    )


def _map_both_ways(eligibility: dict, medical: dict, pharmacy: dict, small: int) -> None:
    as_given = claims_to_events(eligibility, medical, pharmacy, CODES)
    with mock.patch.object(mapping, "_SMALL", small):
        other_route = claims_to_events(eligibility, medical, pharmacy, CODES)
    pd.testing.assert_frame_equal(other_route[0], as_given[0], check_exact=True)
    pd.testing.assert_frame_equal(other_route[1], as_given[1], check_exact=True)


@PROPERTY
@given(tables=tables())
def test_small_tables_map_as_the_batch_path_maps_them(tables):
    """Any request-sized tables give the same events and persons whether or not the small-input routes are taken."""
    _map_both_ways(*tables, small=0)


@PROPERTY
@given(tables=tables())
def test_event_columns_read_as_the_events_frame_reads(tables):
    """The request's event and person columns hold, column by column, what the batch's frames hold, and build those very frames."""
    frame, persons = claims_to_events(*tables, CODES)
    columns, columns_persons = claims_to_event_columns(*tables, CODES)
    assert list(columns) == list(frame.columns) and columns.n_rows == len(frame)
    seen = columns_of(frame)
    for name in ("person_id", "kind", "code_system", "code", "setting", "claim_id"):
        expected = object_values(seen, name, None)
        assert object_values(columns, name, None).tolist() == expected.tolist()
        assert all(type(a) is type(b) for a, b in zip(object_values(columns, name, None), expected))
    for name in ("date", "end_date"):
        np.testing.assert_array_equal(to_numpy(columns[name]), to_numpy(seen[name]))
        assert to_numpy(columns[name]).dtype == to_numpy(seen[name]).dtype
    pd.testing.assert_extension_array_equal(columns["days_supply"], seen["days_supply"])
    pd.testing.assert_frame_equal(columns.frame, frame, check_exact=True)
    pd.testing.assert_frame_equal(columns_persons.frame, persons, check_exact=True)
    assert list(columns_persons) == list(persons.columns) and columns_persons.n_rows == len(persons)
    seen_persons = columns_of(persons)
    for name in ("person_id", "sex", "race", "zip_code", "payer_type"):
        assert object_values(columns_persons, name, None).tolist() == object_values(seen_persons, name, None).tolist()
    for name in ("birth_date", "death_date"):
        np.testing.assert_array_equal(to_numpy(columns_persons[name]), to_numpy(seen_persons[name]))
        assert to_numpy(columns_persons[name]).dtype == to_numpy(seen_persons[name]).dtype


@pytest.mark.parametrize("frames", [False, True])
def test_a_table_over_the_small_limit_maps_as_if_it_were_small(frames):
    """A request of several thousand lines (the batch route by size) maps exactly as the small-input routes map it."""
    rng = np.random.default_rng(7)
    rows = 5000

    def column(pool: list) -> np.ndarray:
        cells = np.empty(rows, dtype=object)
        cells[:] = [pool[i] for i in rng.integers(0, len(pool), rows)]
        return cells

    medical = {name: column(pool) for name, pool in MEDICAL.items()}
    medical["claim_id"] = column([f"C{i}" for i in range(1500)] + [None])
    medical.update({name: column(DAYS + [None]) for name in MEDICAL_DATES})
    pharmacy = {"person_id": column(PERSONS), "claim_id": column([f"R{i}" for i in range(300)]), "ndc_code": column(PHARMACY["ndc_code"]), "dispensing_date": column(DAYS), "days_supply": column([30, 90, None])}
    eligibility = {name: np.array(values[:4] + [values[0]] * (4 - len(values[:4])), dtype=object) for name, values in ELIGIBILITY.items()}
    eligibility.update({name: np.array(DAYS[:4], dtype=object) for name in ELIGIBILITY_DATES})
    if frames:
        medical, pharmacy, eligibility = pd.DataFrame(medical), pd.DataFrame(pharmacy), pd.DataFrame(eligibility)
    _map_both_ways(eligibility, medical, pharmacy, small=10**9)


@PROPERTY
@given(keys=st.lists(st.tuples(st.integers(-2, 3), st.integers(0, 2), st.sampled_from([np.iinfo(np.int64).min, 0, 86_400, 2**40])), max_size=40))
def test_first_occurrence_marks_the_first_row_of_each_key_combination_on_both_routes(keys):
    """A row is marked iff no earlier row has the same combination of keys, on the small and the batch route alike."""
    columns = [np.array([k[i] for k in keys], dtype=np.int64) for i in range(3)]
    seen: set = set()
    expected = [k not in seen and not seen.add(k) for k in keys]
    assert mapping._first_occurrence(*columns).tolist() == expected
    with mock.patch.object(mapping, "_SMALL", -1):
        assert mapping._first_occurrence(*columns).tolist() == expected


@PROPERTY
@given(values=st.lists(st.integers(-3, 5), max_size=40))
def test_numbering_follows_first_appearance_on_both_routes(values):
    """Values are numbered 0, 1, ... in order of first appearance, with the rows where each first appears."""
    array = np.array(values, dtype=np.int64)
    order = list(dict.fromkeys(values))
    expected = ([order.index(v) for v in values], [values.index(v) for v in order])
    number, first = mapping._numbered(array)
    assert (number.tolist(), first.tolist()) == expected
    with mock.patch.object(mapping, "_SMALL", -1):
        number, first = mapping._numbered(array)
    assert (number.tolist(), first.tolist()) == expected
