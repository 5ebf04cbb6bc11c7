"""Column-array helpers: the small-input shortcuts must give exactly what the vectorised paths give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.columns import code_pair_index, columns_of, positions, row_members
from features.events import as_of_mask, clip_to_as_of



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
