"""Column-array helpers: the small-input shortcuts must give exactly what the vectorised paths give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.columns import _SMALL_KEYS, ArrayColumns, _column_array, code_pair_index, columns_of, object_values, positions, row_members
from features.events import as_of_mask, clip_to_as_of, conform_persons, event_days
from features.lines import event_seconds, event_supply



def _pairs_by_row(system, code):
    events = pd.DataFrame({"code_system": pd.array(list(system), dtype="string"), "code": pd.array(list(code), dtype="string")})
    index, pairs = code_pair_index(columns_of(events))
    return [pairs[i] for i in index], pairs


@pytest.mark.parametrize("n", [0, 1, 5, 4096, 4097, 20_000])
def test_code_pair_index_maps_every_row_to_its_own_distinct_pair(n):
    """Each row's index points at its own (system, code) pair and pairs are distinct, on both sides of the small-input cut-off."""
    rng = np.random.default_rng(n)
    system = rng.choice(["hcpcs", "ndc", ""], n).astype(object)
    code = rng.choice(["J9312", "00000000000", "", "Q2041"], n).astype(object)
    by_row, pairs = _pairs_by_row(system, code)
    assert by_row == list(zip(system.tolist(), code.tolist()))
    assert len(set(pairs)) == len(pairs)


def test_code_pair_index_keeps_the_same_code_in_two_systems_apart():
    """The same code text under two systems is two pairs (an NDC and a HCPCS code can share digits)."""
    by_row, pairs = _pairs_by_row(["hcpcs", "ndc", "hcpcs"], ["123", "123", "123"])
    assert sorted(pairs) == [("hcpcs", "123"), ("ndc", "123")]
    assert by_row[0] == by_row[2] == ("hcpcs", "123")


@pytest.mark.parametrize("members", [3, 5000])
def test_row_members_finds_each_row_and_marks_strangers_and_missing_ids(members):
    """Rows of members absent from the ids, and rows without a person_id, get -1; the rest their member's position."""
    ids = pd.Index([f"p{i}" for i in range(members)], dtype="string", name="person_id")
    people = [f"p{i % members}" for i in range(3 * members)] + ["stranger", None]
    frame = pd.DataFrame({"person_id": pd.array(people, dtype="string")})
    found = row_members(columns_of(frame), ids)
    expected = [i % members for i in range(3 * members)] + [-1, -1]
    assert found.tolist() == expected


def test_positions_rejects_duplicated_ids():
    """Duplicated keys would make a member's position ambiguous: a ValueError naming the frame."""
    with pytest.raises(ValueError, match="as_of has duplicated"):
        positions(pd.Index(["a", "a"], dtype="string"), np.array(["a"], dtype=object), "as_of")


def test_clip_keeps_the_form_it_was_given_and_drops_undated_events():
    """A DataFrame in gives a DataFrame out, column arrays give column arrays; an event without a date is never 'before' as_of."""
    events = pd.DataFrame(
        {
            "person_id": pd.array(["a", "a", "a", "b"], dtype="string"),
            "date": pd.to_datetime(["2024-01-01", "2024-06-01", None, "2024-01-01"]).astype("datetime64[s]"),
        }
    )
    as_of = pd.Series(pd.to_datetime(["2024-03-01"]).astype("datetime64[s]"), index=pd.Index(["a"], name="person_id"))
    assert as_of_mask(events, as_of).tolist() == [True, False, False, False]
    frame = clip_to_as_of(events, as_of)
    assert isinstance(frame, pd.DataFrame) and frame["date"].tolist() == [pd.Timestamp("2024-01-01")]
    columns = clip_to_as_of(columns_of(events), as_of)
    assert not isinstance(columns, pd.DataFrame) and columns.frame.equals(frame)


def _events_with_gaps(n: int, seed: int) -> pd.DataFrame:
    """Events of a few members with missing values in every column the steps read."""
    rng = np.random.default_rng(seed)
    def pick(values):
        return [values[i] for i in rng.integers(0, len(values), n)]
    dates = pd.to_datetime(pick(["2023-01-05", "2024-02-01", "2024-07-15", "2025-03-01", None])).astype("datetime64[s]")
    return pd.DataFrame(
        {
            "person_id": pd.array(pick(["a", "b", "c", "stranger", None]), dtype="string"),
            "kind": pd.array(pick(["diagnosis", "drug_fill", "enrollment", None]), dtype="string"),
            "date": dates,
            "end_date": pd.to_datetime(pick(["2024-03-01", None])).astype("datetime64[s]"),
            "code_system": pd.array(pick(["icd10cm", "ndc", None]), dtype="string"),
            "code": pd.array(pick(["C8330", "00000000000", "", None]), dtype="string"),
            "setting": pd.array(pick(["inpatient", "ed", None]), dtype="string"),
            "days_supply": pd.array(pick([28, 90, None]), dtype="Int32"),
        }
    )


@pytest.mark.parametrize("n", [0, 7, 300, 5000])
def test_row_selection_reads_exactly_what_the_clipped_frame_holds(n):
    """Clipped column arrays (taken from the parent on first use) equal those read from a copied, clipped frame."""
    events = _events_with_gaps(n, seed=n)
    ids = pd.Index(["a", "b", "c"], dtype="string", name="person_id")
    as_of = pd.Series(pd.to_datetime(["2024-06-30", "2025-12-31", "2023-01-05"]).astype("datetime64[s]"), index=ids)
    parent = columns_of(events)
    row_members(parent, ids)  # the parent's positions are cached first, as clipping does
    selection = clip_to_as_of(parent, as_of)
    copied = columns_of(events[as_of_mask(events, as_of)].reset_index(drop=True))
    assert selection.n_rows == copied.n_rows and list(selection) == list(events.columns) and "code" in selection
    for name in events.columns:
        pd.testing.assert_extension_array_equal(selection[name], copied[name])
        for na in (None, ""):
            got, expected = object_values(selection, name, na), object_values(copied, name, na)
            assert got.dtype == expected.dtype == object and got.tolist() == expected.tolist()
    np.testing.assert_array_equal(row_members(selection, ids), row_members(copied, ids))
    np.testing.assert_array_equal(event_days(selection), event_days(copied))
    np.testing.assert_array_equal(event_seconds(selection), event_seconds(copied))
    np.testing.assert_array_equal(event_seconds(selection, "end_date"), event_seconds(copied, "end_date"))
    np.testing.assert_array_equal(event_supply(selection), event_supply(copied))
    assert code_pair_index(selection)[1] == code_pair_index(copied)[1]
    pd.testing.assert_frame_equal(selection.frame, copied.frame)


def _array_columns(events: pd.DataFrame) -> tuple[ArrayColumns, list]:
    """``events`` as ArrayColumns (text as index/distinct-value pairs) and a log of frame builds."""
    texts = {}
    for name in ("person_id", "kind", "code_system", "code", "setting"):
        index, values = pd.factorize(events[name])
        texts[name] = (index, np.asarray(values, dtype=object))
    arrays = {name: events[name].to_numpy() for name in ("date", "end_date")} | {"days_supply": events["days_supply"].array}
    builds = []
    return ArrayColumns(arrays, texts, tuple(events.columns), len(events), lambda: builds.append(1) or events), builds


@pytest.mark.parametrize("n", [0, 7, 300, 5000])
def test_array_columns_read_as_the_frame_they_stand_for(n):
    """Column arrays read (whole and clipped) exactly as a DataFrame of the same events does, without building it."""
    events = _events_with_gaps(n, seed=n)
    ids = pd.Index(["a", "b", "c"], dtype="string", name="person_id")
    as_of = pd.Series(pd.to_datetime(["2024-06-30", "2025-12-31", "2023-01-05"]).astype("datetime64[s]"), index=ids)
    arrays, builds = _array_columns(events)
    assert list(arrays) == list(events.columns) and arrays.n_rows == n and len(arrays) == 8 and "code" in arrays and "as_of" not in arrays
    pairs = [(arrays, columns_of(events)), (clip_to_as_of(arrays, as_of), columns_of(events[as_of_mask(events, as_of)].reset_index(drop=True)))]
    for got, expected in pairs:
        for name in ("person_id", "kind", "code_system", "code", "setting"):
            for na in (None, ""):
                values, wanted = object_values(got, name, na), object_values(expected, name, na)
                assert values.dtype == object and values.tolist() == wanted.tolist()
        np.testing.assert_array_equal(row_members(got, ids), row_members(expected, ids))
        np.testing.assert_array_equal(event_days(got), event_days(expected))
        np.testing.assert_array_equal(event_seconds(got, "end_date"), event_seconds(expected, "end_date"))
        np.testing.assert_array_equal(event_supply(got), event_supply(expected))
        assert code_pair_index(got)[1] == code_pair_index(expected)[1]
    # a request's few hundred rows never need the DataFrame; large inputs factorise pandas arrays
    assert len(builds) == (0 if n <= _SMALL_KEYS else 1)
    for got, expected in pairs:  # any other column read as objects is the DataFrame's (dates as Timestamps)
        for name in events.columns:
            values, wanted = object_values(got, name, None), object_values(expected, name, None)
            assert values.tolist() == wanted.tolist() and [type(v) for v in values] == [type(v) for v in wanted]
    pd.testing.assert_extension_array_equal(arrays["code"], columns_of(events)["code"])  # a pandas text array needs it
    pd.testing.assert_frame_equal(clip_to_as_of(arrays, as_of).frame, events[as_of_mask(events, as_of)].reset_index(drop=True))
    assert builds == [1]  # built once, then kept
    with pytest.raises(KeyError):
        arrays["as_of"]


def test_row_selection_of_a_selection_is_the_rows_of_both():
    """Clipping twice keeps the rows both masks keep, with every per-row value taken through both."""
    events = _events_with_gaps(200, seed=3)
    ids = pd.Index(["a", "b"], dtype="string")
    first = np.arange(200) % 3 != 0
    second = np.arange(int(first.sum())) % 2 == 0
    twice = columns_of(events).select_rows(first).select_rows(second)
    once = columns_of(events[first].reset_index(drop=True)[second].reset_index(drop=True))
    np.testing.assert_array_equal(row_members(twice, ids), row_members(once, ids))
    assert object_values(twice, "code", "").tolist() == object_values(once, "code", "").tolist()
    pd.testing.assert_extension_array_equal(twice["days_supply"], once["days_supply"])


def test_row_selection_rejects_a_mask_of_the_wrong_shape():
    """A mask that is not one boolean per row is an error, not a silent misalignment."""
    columns = columns_of(_events_with_gaps(5, seed=1))
    with pytest.raises(ValueError, match="boolean of length 5"):
        columns.select_rows(np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="boolean of length 5"):
        columns.select_rows(np.arange(5))


def test_shared_event_days_are_read_only():
    """The day numbers every step shares cannot be changed by one of them."""
    columns = columns_of(_events_with_gaps(10, seed=2))
    for days in (event_days(columns), event_days(columns.select_rows(np.arange(10) % 2 == 0))):
        with pytest.raises(ValueError):
            days[0] = 0


def test_column_arrays_are_what_frame_columns_hold():
    """Each column read through columns_of is the array frame[name].array gives, for every dtype the event model uses."""
    events = _events_with_gaps(20, seed=4).assign(
        flag=np.arange(20) % 2 == 0,
        value=np.linspace(0, 1, 20),
        count=np.arange(20),
        note=np.array([None, "x"] * 10, dtype=object),
        stamp=pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC"),
        level=pd.Categorical(["a", "b"] * 10),
    )
    persons = conform_persons(pd.DataFrame({"person_id": ["a", "b"], "birth_date": ["1950-01-01", None], "sex": ["female", None]}))
    for frame in (events, persons, events.iloc[5:]):
        columns = columns_of(frame)
        for name in frame.columns:
            expected = frame[name].array
            got = columns[name]
            assert type(got) is type(expected) and got.dtype == expected.dtype
            pd.testing.assert_extension_array_equal(got, expected)
            if isinstance(expected, pd.arrays.DatetimeArray):
                assert np.shares_memory(got.asi8, expected.asi8)
            else:
                assert got is expected or np.shares_memory(np.asarray(got), np.asarray(expected))
    with pytest.raises(KeyError):
        columns_of(events)["no_such_column"]
    twice = pd.DataFrame([[1, 2]], columns=["x", "x"])
    with pytest.raises(AttributeError):
        _column_array(twice, "x")
