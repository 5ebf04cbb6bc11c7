"""The event model rejects malformed frames by name and enforces the as-of discipline in one place."""

import pandas as pd
import pytest

from features.events import EVENT_COLUMNS, clip_to_as_of, conform_events, conform_persons, day_numbers, empty_events


def _events(**overrides):
    base = {
        "person_id": ["p1", "p1", "p2"],
        "kind": ["diagnosis", "drug_admin", "diagnosis"],
        "date": ["2024-01-05", "2024-03-01", "2024-02-10"],
        "code_system": ["icd10cm", "hcpcs", "icd10cm"],
        "code": ["C8338", "J9312", "I10"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_conform_events_adds_optional_columns_in_canonical_order():
    """Optional columns are added empty and every column comes out in EVENT_COLUMNS order."""
    events = conform_events(_events())
    assert tuple(events.columns) == EVENT_COLUMNS
    assert events["setting"].eq("unknown").all()
    assert str(events["date"].dtype) == "datetime64[s]"


def test_conform_events_names_missing_required_column():
    """A frame without 'code' is rejected with the column's name."""
    with pytest.raises(ValueError, match="code"):
        conform_events(_events().drop(columns=["code"]))


def test_conform_events_rejects_unknown_kind_by_value():
    """An unknown event kind is named in the error rather than silently kept."""
    with pytest.raises(ValueError, match="kind.*teleport"):
        conform_events(_events(kind=["diagnosis", "teleport", "diagnosis"]))


def test_conform_persons_rejects_duplicate_person_ids():
    """Two rows for one person would make demographics ambiguous, so they are an error."""
    with pytest.raises(ValueError, match="duplicated person_id"):
        conform_persons(pd.DataFrame({"person_id": ["a", "a"]}))


def test_clip_keeps_events_on_or_before_each_members_own_date():
    """Each member is clipped at their own as_of; the as_of day itself is included."""
    events = conform_events(_events())
    as_of = pd.Series(pd.to_datetime(["2024-03-01", "2024-02-01"]), index=["p1", "p2"])
    clipped = clip_to_as_of(events, as_of)
    assert list(zip(clipped["person_id"], clipped["code"])) == [("p1", "C8338"), ("p1", "J9312")]


def test_clip_drops_members_without_an_as_of():
    """A member absent from as_of contributes no events at all."""
    events = conform_events(_events())
    clipped = clip_to_as_of(events, pd.Series(pd.to_datetime(["2030-01-01"]), index=["p2"]))
    assert set(clipped["person_id"]) == {"p2"}


def test_clip_of_empty_history_is_empty():
    """An empty history stays empty, with the canonical columns."""
    clipped = clip_to_as_of(empty_events(), pd.Series(pd.to_datetime(["2024-01-01"]), index=["p1"]))
    assert clipped.empty and tuple(clipped.columns) == EVENT_COLUMNS


def test_day_numbers_count_days_since_epoch():
    """1970-01-02 is day 1, the unit the array kernels use."""
    assert list(day_numbers(pd.Series(pd.to_datetime(["1970-01-02", "2000-01-01"])))) == [1, 10957]
