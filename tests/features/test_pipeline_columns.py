"""Column-array inputs of the pipeline: persons as column arrays, diseases handed on as an array in
``as_of`` order, and a one-member ``as_of`` give exactly the DataFrame/Series path's outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.codelists import load_codelists
from features.columns import columns_of
from features.events import clip_to_as_of
from features.lines import derive_lines
from features.pipeline import build_features
from features.relapse import summarise_treatment
from tests.features.factories import as_of_series, codes_with_crosswalk, dx, every, fill, make_member, make_population, regimen

CODES = codes_with_crosswalk()
R_CHOP = ["rituximab", "cyclophosphamide", "doxorubicin", "vincristine"]


def monthly(start: str, generic: str, months: int) -> list:
    return [fill(d, generic, 28) for d in every(start, months, 28)]


def population():
    """Members with lines in several diseases, one without events, and deaths before and after as_of."""
    members = [
        make_member("A", events=regimen("2023-01-01", R_CHOP, 6, 21) + regimen("2024-01-01", ["rituximab", "ifosfamide"], 2, 21)
                    + [dx("2023-01-01", "C83.38")] * 3, death_date="2025-06-01"),
        make_member("B", events=monthly("2023-03-01", "ibrutinib", 6) + [dx("2023-03-01", "C91.10", "inpatient")], death_date="2024-03-01"),
        make_member("C", events=regimen("2023-05-01", ["bortezomib", "dexamethasone"], 4, 21) + [dx("2023-05-01", "C90.00", "inpatient")]),
        make_member("D", events=regimen("2023-05-01", R_CHOP, 3, 21)),  # lines without a cohort disease
        make_member("E"),
    ]
    persons, events = make_population(members)
    return members, persons, events


def frames(result) -> dict[str, pd.DataFrame]:
    return {name: getattr(result, name) for name in ("cohort", "lines", "treatment", "eligibility", "features")}


def assert_frames_equal(left: dict, right: dict) -> None:
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], check_exact=True, obj=name)


def test_persons_as_column_arrays_equal_the_dataframe_path():
    """Persons given as column arrays give the DataFrame path's outputs, A's death after as_of hidden
    and B's before it kept in both."""
    members, persons, events = population()
    as_of = as_of_series(members, "2024-12-31")
    by_frame = build_features(events, persons, as_of, CODES)
    by_columns = build_features(events, columns_of(persons), as_of, CODES)
    assert_frames_equal(frames(by_frame), frames(by_columns))
    assert by_frame.cohort["person_id"].tolist() == list("ABCDE")


def test_persons_as_column_arrays_for_one_member_with_a_later_death():
    """A single member whose death lies after as_of: column arrays and DataFrame give the same outputs."""
    member = make_member("A", events=regimen("2023-01-01", R_CHOP, 6, 21) + [dx("2023-01-01", "C83.38")] * 3, death_date="2025-06-01")
    as_of = as_of_series(member, "2024-06-30")
    alive = make_member("A", events=regimen("2023-01-01", R_CHOP, 6, 21) + [dx("2023-01-01", "C83.38")] * 3)
    assert_frames_equal(frames(build_features(member.events, columns_of(member.persons), as_of, CODES)),
                        frames(build_features(alive.events, alive.persons, as_of, CODES)))


@pytest.mark.parametrize("as_of_date", ["2023-02-01", "2024-12-31"])
def test_diseases_array_in_as_of_order_equals_a_person_indexed_series(as_of_date):
    """Lines and the treatment summary read an array of diseases in as_of order exactly as the
    Series indexed by person_id that it stands for (None and non-target diseases alike)."""
    members, persons, events = population()
    as_of = as_of_series(members, as_of_date)
    names = np.array(["LBCL", "CLL_SLL", "MM", None, "Hodgkin"], dtype=object)
    series = pd.Series(names[::-1], index=as_of.index[::-1], dtype=object)  # same mapping, another order
    clipped = clip_to_as_of(events, as_of)
    by_series = derive_lines(clipped, series, as_of, CODES)
    by_array = derive_lines(clipped, names, as_of, CODES)
    pd.testing.assert_frame_equal(by_series, by_array, check_exact=True)
    pd.testing.assert_frame_equal(
        summarise_treatment(by_series, clipped, series, as_of, CODES), summarise_treatment(by_array, clipped, names, as_of, CODES), check_exact=True
    )


def test_diseases_array_of_the_wrong_length_is_an_error():
    """An array that is not one disease per as_of member cannot be aligned and is rejected."""
    members, persons, events = population()
    as_of = as_of_series(members, "2024-12-31")
    with pytest.raises(ValueError, match="one disease per as_of member"):
        derive_lines(clip_to_as_of(events, as_of), np.array(["LBCL"], dtype=object), as_of, CODES)


def test_pipeline_lines_use_the_cohort_disease_and_none_outside_it():
    """The pipeline's lines equal derive_lines given the cohort's disease per member (missing when
    the member is not in the cohort), for the whole population and for each member alone."""
    members, persons, events = population()
    as_of = as_of_series(members, "2024-12-31")
    result = build_features(events, persons, as_of, CODES)
    cohort = result.cohort.set_index("person_id")
    diseases = cohort["disease"].where(cohort["in_cohort"].astype(bool)).astype(object)
    expected = derive_lines(clip_to_as_of(events, as_of), diseases, as_of, CODES)
    pd.testing.assert_frame_equal(result.lines, expected, check_exact=True)
    for m in members:
        alone = build_features(m.events, m.persons, as_of.loc[[m.person_id]], CODES)
        mine = result.lines[result.lines["person_id"] == m.person_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone.lines, mine, check_exact=True)


def test_duplicate_keys_are_rejected_for_two_rows_and_one_key_passes():
    """The uniqueness check skipped for a single key still rejects two rows with the same key."""
    member = make_member("P", events=[dx("2024-01-01", "C83.38")])
    with pytest.raises(ValueError, match="duplicates"):
        build_features(member.events, member.persons, pd.Series(pd.Timestamp("2024-06-30"), index=["P", "P"]), load_codelists())
    one = build_features(member.events, member.persons, pd.Series(pd.Timestamp("2024-06-30"), index=["P"]), load_codelists())
    assert one.cohort["person_id"].tolist() == ["P"]
