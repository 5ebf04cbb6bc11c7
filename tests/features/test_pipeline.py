"""The single pipeline entry point: as-of discipline, member independence and input-order invariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalog import FEATURE_NAMES, FEATURE_SET_VERSION
from features.codelists import load_codelists
from features.events import conform_events, conform_persons
from features.pipeline import FeatureSet, build_features, key_landmarks
from tests.features.factories import dx, enrollment, fill, make_member, make_population, proc, regimen

AS_OF = pd.Timestamp("2024-06-30")
START = pd.Timestamp("2021-01-01")
# A palette of events that exercise every pipeline step: target diagnoses (LBCL, ALL, myeloma,
# relapse codes, PCNSL, Hodgkin), a comorbidity, chemoimmunotherapy, myeloma drugs, steroids,
# lymphodepletion and CAR T, transplant, and utilisation codes.
PALETTE = (
    ("diagnosis", "icd10cm", "C8330"),
    ("diagnosis", "icd10cm", "C8338"),
    ("diagnosis", "icd10cm", "C9100"),
    ("diagnosis", "icd10cm", "C9102"),
    ("diagnosis", "icd10cm", "C9000"),
    ("diagnosis", "icd10cm", "C9002"),
    ("diagnosis", "icd10cm", "C83390"),
    ("diagnosis", "icd10cm", "C8190"),
    ("diagnosis", "icd10cm", "E119"),
    ("drug_admin", "hcpcs", "J9312"),
    ("drug_admin", "hcpcs", "Q5115"),
    ("drug_admin", "hcpcs", "J9070"),
    ("drug_admin", "hcpcs", "J9000"),
    ("drug_admin", "hcpcs", "J9370"),
    ("drug_admin", "hcpcs", "J7512"),
    ("drug_admin", "hcpcs", "J9041"),
    ("drug_admin", "hcpcs", "J9145"),
    ("drug_admin", "hcpcs", "J9185"),
    ("drug_admin", "hcpcs", "J9286"),
    ("drug_admin", "hcpcs", "J9045"),
    ("drug_admin", "hcpcs", "Q2041"),
    ("procedure", "hcpcs", "38241"),
    ("procedure", "hcpcs", "38225"),
    ("procedure", "hcpcs", "78815"),
    ("procedure", "hcpcs", "38221"),
    ("procedure", "hcpcs", "99214"),
    ("procedure", "hcpcs", "99204"),
    ("inpatient_stay", "", ""),
)
SETTINGS = ("outpatient", "inpatient", "office", "ed")


@st.composite
def histories(draw, person: str = "p", min_events: int = 0, max_events: int = 40, days: int | None = None):
    """A random member history of palette events dated between START and AS_OF (or ``days`` after START)."""
    span = days if days is not None else (AS_OF - START).days
    n = draw(st.integers(min_events, max_events))
    rows = []
    for i in range(n):
        kind, system, code = draw(st.sampled_from(PALETTE))
        day = START + pd.Timedelta(days=draw(st.integers(0, span)))
        setting = "inpatient" if kind == "inpatient_stay" else draw(st.sampled_from(SETTINGS))
        rows.append(
            dict(
                person_id=person,
                kind=kind,
                date=day,
                end_date=day + pd.Timedelta(days=3) if kind == "inpatient_stay" else pd.NaT,
                code_system=system,
                code=code,
                setting=setting,
                claim_id=f"{person}-{i}",
            )
        )
    return rows


def persons_for(ids, birth="1958-03-01") -> pd.DataFrame:
    return conform_persons(
        pd.DataFrame({"person_id": list(ids), "birth_date": birth, "sex": "female", "zip_code": "10001", "payer_type": "medicare"})
    )


def events_from(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return conform_events(pd.DataFrame(columns=["person_id", "kind", "date", "code_system", "code"]))
    return conform_events(pd.DataFrame(rows))


def run(events: pd.DataFrame, persons: pd.DataFrame, ids, as_of=AS_OF) -> FeatureSet:
    return build_features(events, persons, pd.Series(as_of, index=list(ids)), load_codelists())


def member_view(result: FeatureSet, person: str) -> dict[str, pd.DataFrame]:
    """Each output frame restricted to one member, in a canonical row order."""
    keys = {"cohort": ["person_id"], "lines": ["person_id", "line_number"], "treatment": ["person_id"], "features": ["person_id"]}
    out = {}
    for name in ("cohort", "lines", "treatment", "eligibility", "features"):
        frame = getattr(result, name)
        frame = frame[frame["person_id"] == person]
        order = keys.get(name) or [c for c in ("person_id", "product", "indication") if c in frame.columns]
        out[name] = frame.sort_values(order, kind="stable").reset_index(drop=True) if len(frame) else frame.reset_index(drop=True)
    return out


def assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for name in left:
        if len(left[name]) == 0 and len(right[name]) == 0:
            continue
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=False, obj=name)


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@PROPERTY
@given(history=histories(), future=histories(min_events=1, max_events=15, days=0))
def test_events_after_as_of_never_change_a_members_outputs(history, future):
    """Adding any event dated after as_of leaves every output of that member unchanged."""
    for i, row in enumerate(future):
        row["date"] = AS_OF + pd.Timedelta(days=1 + 37 * i)
        row["claim_id"] = f"future-{i}"
        if row["kind"] == "inpatient_stay":
            row["end_date"] = row["date"] + pd.Timedelta(days=3)
    persons = persons_for(["p"])
    before = run(events_from(history), persons, ["p"])
    after = run(events_from(history + future), persons, ["p"])
    assert_same(member_view(before, "p"), member_view(after, "p"))


@pytest.mark.slow
@PROPERTY
@given(target=histories(person="p"), others=st.lists(histories(person="x", max_events=25), min_size=1, max_size=4))
def test_a_member_alone_equals_the_member_inside_the_population(target, others):
    """A member's outputs are identical computed alone or together with other members."""
    crowd = []
    ids = ["p"]
    for j, rows in enumerate(others):
        for row in rows:
            crowd.append({**row, "person_id": f"x{j}", "claim_id": f"x{j}-{row['claim_id']}"})
        ids.append(f"x{j}")
    alone = run(events_from(target), persons_for(["p"]), ["p"])
    together = run(events_from(target + crowd), persons_for(ids), ids)
    assert_same(member_view(alone, "p"), member_view(together, "p"))


@pytest.mark.slow
@PROPERTY
@given(rows=histories(max_events=40), seed=st.integers(0, 2**31 - 1))
def test_shuffling_input_rows_changes_nothing(rows, seed):
    """Permuting the rows of the events and persons frames leaves every output unchanged."""
    other = [{**r, "person_id": "q", "claim_id": "q" + r["claim_id"]} for r in rows[::2]]
    events = events_from(rows + other)
    persons = persons_for(["p", "q"])
    shuffled = events.sample(frac=1.0, random_state=np.random.RandomState(seed % (2**32))).reset_index(drop=True)
    first = run(events, persons, ["p", "q"])
    second = run(shuffled, persons.iloc[::-1].reset_index(drop=True), ["p", "q"])
    for person in ("p", "q"):
        assert_same(member_view(first, person), member_view(second, person))


def test_feature_frame_is_exactly_the_catalog():
    """The pipeline produces person_id, as_of and every catalog feature, and nothing else."""
    result = run(events_from([]), persons_for(["p"]), ["p"])
    assert list(result.features.columns) == ["person_id", "as_of", *FEATURE_NAMES]
    assert result.feature_set_version == FEATURE_SET_VERSION
    assert result.codelists_version == load_codelists().version
    assert result.rules_version


def test_each_member_gets_its_own_as_of():
    """Two members evaluated at different dates each see only their own past."""
    rows = [
        dict(person_id=p, kind="procedure", date=pd.Timestamp(d), code_system="hcpcs", code="78815", setting="outpatient")
        for p in ("early", "late")
        for d in ("2024-01-10", "2024-06-10")
    ]
    as_of = pd.Series([pd.Timestamp("2024-02-01"), pd.Timestamp("2024-07-01")], index=["early", "late"])
    result = build_features(events_from(rows), persons_for(["early", "late"]), as_of, load_codelists())
    features = result.features.set_index("person_id")
    assert features.loc["early", "pet_ct_count_365d"] == 1
    assert features.loc["late", "pet_ct_count_365d"] == 2
    assert list(result.features["as_of"]) == list(as_of.astype("datetime64[s]"))


def test_death_after_as_of_is_hidden():
    """A death date after as_of is future information and does not reach any step."""
    persons = persons_for(["p"])
    dead_later = persons.assign(death_date=pd.Timestamp("2025-01-01").as_unit("s"))
    before = run(events_from([]), persons, ["p"])
    after = run(events_from([]), dead_later, ["p"])
    assert_same(member_view(before, "p"), member_view(after, "p"))


def test_member_without_any_event_is_a_normal_row():
    """A member with no claims is out of the cohort with zero counts, not an error."""
    result = run(events_from([]), persons_for(["p"]), ["p"])
    assert not bool(result.cohort["in_cohort"].iloc[0])
    assert len(result.lines) == 0
    assert result.features["lot_count"].iloc[0] == 0


def test_duplicate_as_of_keys_are_rejected():
    """Two evaluation dates for one key is an error that points to key_landmarks."""
    as_of = pd.Series([AS_OF, AS_OF], index=["p", "p"])
    with pytest.raises(ValueError, match="key_landmarks"):
        build_features(events_from([]), persons_for(["p"]), as_of, load_codelists())


def test_landmarks_equal_separate_runs_at_each_date():
    """Keying (person, as_of) examples gives the same features as running each date separately."""
    rows = [
        dict(person_id="p", kind="procedure", date=pd.Timestamp(d), code_system="hcpcs", code=c, setting="outpatient")
        for d, c in (("2023-03-01", "78815"), ("2023-09-01", "38221"), ("2024-02-01", "78815"))
    ]
    events, persons = events_from(rows), persons_for(["p"])
    landmarks = pd.DataFrame({"person_id": ["p", "p"], "as_of": [pd.Timestamp("2023-06-30"), pd.Timestamp("2024-06-30")]})
    keyed = key_landmarks(events, persons, landmarks)
    together = build_features(keyed.events, keyed.persons, keyed.as_of, load_codelists()).features
    assert list(together["person_id"]) == ["p@2023-06-30", "p@2024-06-30"]
    for i, day in enumerate(landmarks["as_of"]):
        alone = run(events, persons, ["p"], as_of=day).features
        left = together.iloc[[i]].drop(columns="person_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(left, alone.drop(columns="person_id"))


def test_distance_from_centre_list_or_prepared_coordinates():
    """A centre frame and its coordinates prepared once give the same distance; no centres give NaN."""
    from features.geography import load_zip_centroids, locate_centers

    centroids = load_zip_centroids()
    centers = pd.DataFrame({"name": ["Boston"], "zip": ["02115"], "latitude": [None], "longitude": [None]})
    persons = persons_for(["p"]).assign(zip_code="02139")
    as_of = pd.Series(AS_OF, index=["p"])
    codes = load_codelists()
    from_frame = build_features(events_from([]), persons, as_of, codes, centers=centers, zip_centroids=centroids).features
    prepared = locate_centers(centers, centroids)
    from_coords = build_features(events_from([]), persons, as_of, codes, centers=prepared, zip_centroids=centroids).features
    none = build_features(events_from([]), persons, as_of, codes, zip_centroids=centroids).features
    miles = from_frame["geo_car_t_center_distance_miles"].iloc[0]
    assert 0 < miles < 5
    assert from_coords["geo_car_t_center_distance_miles"].iloc[0] == miles
    assert np.isnan(none["geo_car_t_center_distance_miles"].iloc[0])


def test_zero_members_give_empty_frames_with_their_columns():
    """An empty batch is a normal call: every output is empty but keeps its columns."""
    as_of = pd.Series([], index=pd.Index([], dtype="string"), dtype="datetime64[s]")
    result = build_features(events_from([]), persons_for([]), as_of, load_codelists())
    assert len(result.features) == 0 and list(result.features.columns) == ["person_id", "as_of", *FEATURE_NAMES]
    assert len(result.lines) == 0 and "line_number" in result.lines.columns


def _treated_member(person: str, death_date: str | None = None):
    """An LBCL member with two lines of therapy and progression, some claims dated after AS_OF."""
    return make_member(
        person,
        death_date=death_date,
        events=[
            enrollment("2020-01-01", "2026-12-31"),
            dx("2021-03-01", "C83.38"), dx("2021-04-15", "C83.38"), dx("2023-05-01", "C83.38"),
            regimen("2021-04-01", ["rituximab", "cyclophosphamide", "doxorubicin", "vincristine"], 6, 21),
            regimen("2023-06-01", ["rituximab", "gemcitabine", "oxaliplatin"], 4, 21),
            proc("2023-05-10", "78815"), proc("2024-05-20", "78815"),
            fill("2024-06-01", "lenalidomide"),
            dx("2024-08-01", "C83.38"), regimen("2024-09-01", ["polatuzumab vedotin", "bendamustine", "rituximab"], 3, 21),
        ],
    )


def _frames(result: FeatureSet) -> dict[str, pd.DataFrame]:
    return {name: getattr(result, name) for name in ("cohort", "lines", "treatment", "eligibility", "features")}


def test_clipping_in_place_gives_exactly_the_outputs_of_prefiltered_inputs():
    """Events after as_of, persons outside the batch and a later death, hidden by the pipeline, give exactly
    (values and dtypes) the outputs of inputs from which they were removed beforehand, alone and in a batch."""
    members = [_treated_member("p"), _treated_member("q", death_date="2025-02-01"), _treated_member("r")]
    persons, events = make_population([*members, make_member("stranger")])
    ids = ["p", "q", "r"]
    as_of = pd.Series(AS_OF, index=pd.Index(ids, dtype="string", name="person_id"), name="as_of").astype("datetime64[s]")
    codes = load_codelists()
    assert (events["date"] > AS_OF).any()

    kept_events = events[(events["date"] <= AS_OF) & events["person_id"].isin(ids)].reset_index(drop=True)
    kept_persons = persons[persons["person_id"].isin(ids)].reset_index(drop=True)
    kept_persons["death_date"] = pd.Series([pd.NaT] * len(kept_persons), dtype="datetime64[s]")
    for together, prefiltered in (
        (build_features(events, persons, as_of, codes), build_features(kept_events, kept_persons, as_of, codes)),
        (
            build_features(events[events["person_id"] == "q"].reset_index(drop=True), persons, as_of.iloc[1:2], codes),
            build_features(kept_events[kept_events["person_id"] == "q"].reset_index(drop=True), kept_persons.iloc[1:2].reset_index(drop=True), as_of.iloc[1:2], codes),
        ),
    ):
        for name, frame in _frames(together).items():
            pd.testing.assert_frame_equal(frame, _frames(prefiltered)[name], check_exact=True, obj=name)
    alone = _frames(build_features(events[events["person_id"] == "q"].reset_index(drop=True), persons, as_of.iloc[1:2], codes))
    crowd = _frames(build_features(events, persons, as_of, codes))
    for name in alone:
        mine = crowd[name][crowd[name]["person_id"] == "q"].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone[name], mine, check_exact=True, obj=name)
    assert len(alone["lines"]) == 2 and bool(alone["cohort"]["in_cohort"].iloc[0])


def test_as_of_names_play_no_part():
    """An as_of Series under any name, with any index name, gives the same outputs as one named as_of/person_id."""
    member = _treated_member("p")
    codes = load_codelists()
    named = pd.Series([AS_OF], index=pd.Index(["p"], dtype="string", name="person_id"), name="as_of").astype("datetime64[s]")
    unnamed = pd.Series([AS_OF], index=pd.Index(["p"], dtype="string"), dtype="datetime64[s]")
    other_unit = pd.Series([AS_OF], index=["p"], name="when")
    reference = _frames(build_features(member.events, member.persons, named, codes))
    for as_of in (unnamed, other_unit):
        for name, frame in _frames(build_features(member.events, member.persons, as_of, codes)).items():
            pd.testing.assert_frame_equal(frame, reference[name], check_exact=True, obj=name)
