"""Risk features computed from clipped events and the outputs of the earlier pipeline steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import FEATURE_NAMES, PAYER_LEVELS, SEX_LEVELS
from features.codelists import load_codelists
from features.comorbidity import load_charlson_codes, score_charlson
from features.events import conform_events, conform_persons
from features.geography import load_zip_centroids, locate_centers, nearest_center_miles
from features.risk import build_code_tagger, compute_risk_features

AS_OF = pd.Timestamp("2024-06-30")


def event(person: str, days_before: int, kind: str = "procedure", system: str = "hcpcs", code: str = "", setting: str = "outpatient", claim: str | None = None) -> dict:
    """One event ``days_before`` the default evaluation date."""
    return dict(person_id=person, kind=kind, date=AS_OF - pd.Timedelta(days=days_before), code_system=system, code=code, setting=setting, claim_id=claim)


def dx(person: str, days_before: int, code: str, setting: str = "outpatient") -> dict:
    return event(person, days_before, "diagnosis", "icd10cm", code, setting)


def features_for(rows: list[dict], people=("a",), persons: pd.DataFrame | None = None, cohort=None, treatment=None, lines=None, eligibility=None, distance=None) -> pd.DataFrame:
    """Run compute_risk_features with empty upstream frames unless given."""
    codes = load_codelists()
    events = conform_events(pd.DataFrame(rows)) if rows else conform_events(pd.DataFrame(columns=["person_id", "kind", "date", "code_system", "code"]))
    if persons is None:
        persons = conform_persons(pd.DataFrame({"person_id": list(people)}))
    empty = pd.DataFrame({"person_id": pd.Series(dtype="string")})
    return compute_risk_features(
        events,
        persons,
        pd.Series(AS_OF, index=list(people)),
        cohort=cohort if cohort is not None else empty,
        lines=lines if lines is not None else empty,
        treatment=treatment if treatment is not None else empty,
        eligibility=eligibility if eligibility is not None else pd.DataFrame({"person_id": pd.Series(dtype="string"), "eligible": pd.Series(dtype=bool)}),
        tagger=build_code_tagger(codes),
        charlson=load_charlson_codes(),
        center_distance_miles=distance,
    )


def value(frame: pd.DataFrame, name: str, row: int = 0) -> float:
    return float(frame[name].iloc[row])


def test_columns_are_the_catalog_in_order_and_float32():
    """The frame is person_id, as_of, then exactly FEATURE_NAMES, every feature float32."""
    out = features_for([])
    assert list(out.columns) == ["person_id", "as_of", *FEATURE_NAMES]
    assert all(out[name].dtype == np.float32 for name in FEATURE_NAMES)


def test_rows_follow_as_of_order_and_ignore_other_members():
    """One row per as_of key in its order; events of members not asked for change nothing."""
    rows = [event("z", 5, code="78815"), event("b", 5, code="78815")]
    out = features_for(rows, people=("b", "a"))
    assert list(out["person_id"]) == ["b", "a"]
    assert list(out["pet_ct_count_30d"]) == [1.0, 0.0]


def test_window_includes_as_of_and_excludes_the_day_w_days_before():
    """A 30-day window counts events 0-29 days before as_of, not 30."""
    rows = [event("a", 0, code="78815"), event("a", 29, code="78816"), event("a", 30, code="78815")]
    out = features_for(rows)
    assert value(out, "pet_ct_count_30d") == 2
    assert value(out, "pet_ct_count_90d") == 3


def test_same_day_claims_count_once():
    """Two ED claims on one day are one ED visit; two PET codes on one day are one scan day."""
    rows = [
        event("a", 3, code="99284", setting="ed", claim="c1"),
        dx("a", 3, "R079", setting="ed"),
        event("a", 3, code="99285", setting="ed", claim="c2"),
        event("a", 10, code="78815"),
        event("a", 10, code="78816"),
    ]
    out = features_for(rows)
    assert value(out, "ed_visits_30d") == 1
    assert value(out, "pet_ct_count_30d") == 1


def test_inpatient_admissions_count_stays_by_admission_date():
    """Each inpatient_stay event is an admission in the window of its admission date."""
    rows = [event("a", 20, "inpatient_stay", "", "", "inpatient"), event("a", 100, "inpatient_stay", "", "", "inpatient")]
    out = features_for(rows)
    assert [value(out, f"ip_admits_{w}d") for w in (30, 90, 180, 365)] == [1, 1, 2, 2]


def test_procedure_families_map_to_their_features():
    """Marrow biopsy, radiation (CPT and ICD-10-PCS section D), E&M and referral codes land in their features."""
    rows = [
        event("a", 1, code="38221"),
        event("a", 2, code="77412"),
        event("a", 3, "procedure", "icd10pcs", "DW01ZZZ", "inpatient"),
        event("a", 4, code="99214"),
        event("a", 5, code="99204"),
        event("a", 40, code="38225"),
        event("a", 60, code="J2562"),
    ]
    out = features_for(rows)
    assert value(out, "marrow_biopsy_count_30d") == 1
    assert value(out, "radiation_days_30d") == 2
    assert value(out, "em_visits_30d") == 2
    assert value(out, "ref_new_patient_visits_90d") == 1
    assert value(out, "ref_car_t_workup_flag") == 1
    assert value(out, "ref_days_since_car_t_workup") == 40
    assert value(out, "ref_stem_cell_workup_flag") == 1


def test_lifileucel_code_is_not_car_t_workup():
    """XW033L7 (lifileucel, melanoma TIL therapy) never counts as CAR T work-up."""
    out = features_for([event("a", 5, "procedure", "icd10pcs", "XW033L7", "inpatient")])
    assert value(out, "ref_car_t_workup_flag") == 0
    assert np.isnan(value(out, "ref_days_since_car_t_workup"))


def test_relapse_and_remission_codes_are_told_apart():
    """C91.02 (ALL in relapse) counts as relapse coding, C91.01 as remission, C91.00 as neither."""
    rows = [dx("a", 10, "C9102"), dx("a", 20, "C9101"), dx("a", 30, "C9100"), dx("a", 200, "C9102")]
    out = features_for(rows)
    assert value(out, "dx_relapse_codes_180d") == 1
    assert value(out, "dx_remission_codes_180d") == 1


def test_toxicity_and_cellular_therapy_history_codes():
    """CRS codes count as treatment toxicity; Z92.850 flags a history of CAR T."""
    out = features_for([dx("a", 10, "D89832"), dx("a", 11, "Z92850")])
    assert value(out, "dx_toxicity_codes_365d") == 1
    assert value(out, "ref_cellular_therapy_history_flag") == 1


def test_charlson_hierarchy_and_lookback():
    """Metastatic cancer replaces 'any malignancy', complicated diabetes replaces uncomplicated, codes older than a year are ignored."""
    rows = [
        dx("a", 10, "C8330"),  # malignancy 2
        dx("a", 10, "C787"),  # metastatic 6 (replaces the 2)
        dx("a", 10, "E119"),  # diabetes 1
        dx("a", 10, "E1122"),  # diabetes with complication 2 (replaces the 1)
        dx("a", 400, "I509"),  # heart failure, too old
    ]
    assert value(features_for(rows), "cci_score_365d") == 8


def test_charlson_scores_members_independently():
    """score_charlson counts each category once per member and never mixes members."""
    charlson = load_charlson_codes()
    member = np.array([0, 0, 1, 1])
    codes = np.array(["I21", "I219", "N184", "ZZZ"], dtype=object)
    assert list(score_charlson(member, codes, 3, charlson)) == [1.0, 2.0, 0.0]


@pytest.mark.parametrize("n", [0, 1, 40, 6000])
def test_charlson_categories_of_each_code_as_looked_up_one_by_one(n):
    """Looking up each distinct code once gives every code its own category (-1 for unknown, empty, short or missing codes)."""
    charlson = load_charlson_codes()
    pool = ["I21", "I219", "N184", "C787", "E1122", "E119", "ZZZ", "", "C8", "I50", None, float("nan")]
    codes = np.array([pool[i] for i in np.random.default_rng(n).integers(0, len(pool), n)] if n else [], dtype=object)
    expected = [charlson._lookup(str(c)) for c in codes.tolist()]
    got = charlson.categorise(codes)
    assert got.dtype == np.int64 and got.tolist() == expected
    if n > 40:
        assert set(expected) - {-1}, "the sample holds known codes"


def test_code_tagger_tags_each_pair_as_its_own_lookup_on_every_call():
    """Tags remembered from earlier calls equal a fresh lookup, and a missing system or code is untagged (-1)."""
    tagger = build_code_tagger(load_codelists())
    pairs = [("hcpcs", "78815"), ("icd10cm", "C9102"), ("hcpcs", "99999"), (None, "78815"), ("hcpcs", None), ("ms_drg", "016"), ("hcpcs", "38221")]
    expected = [tagger.tag(*p) if p[0] is not None and p[1] is not None else -1 for p in pairs]
    assert sum(t >= 0 for t in expected) >= 2
    for _ in range(2):
        found = tagger.tag_pairs(pairs)
        assert found.dtype == np.int64 and found.tolist() == expected
    assert tagger.tag_pairs([]).tolist() == []


def test_demographic_levels_and_unknowns():
    """Sex and payer map to catalog level indices; unknown sex is NaN, an unlisted payer is 'other'."""
    persons = conform_persons(
        pd.DataFrame(
            {
                "person_id": ["a", "b", "c"],
                "birth_date": ["1964-06-30", None, "2010-01-01"],
                "sex": ["male", "unknown", None],
                "payer_type": ["Medicaid", "exchange", None],
            }
        )
    )
    out = features_for([], people=("a", "b", "c"), persons=persons)
    assert value(out, "demo_age_years", 0) == pytest.approx(60.0, abs=0.01)
    assert np.isnan(value(out, "demo_age_years", 1))
    assert value(out, "demo_sex", 0) == SEX_LEVELS.index("male")
    assert np.isnan(value(out, "demo_sex", 1)) and np.isnan(value(out, "demo_sex", 2))
    assert value(out, "demo_payer_type", 0) == PAYER_LEVELS.index("medicaid")
    assert value(out, "demo_payer_type", 1) == PAYER_LEVELS.index("other")
    assert np.isnan(value(out, "demo_payer_type", 2))


def test_payer_is_the_one_in_force_on_the_evaluation_date():
    """A plan switch after as_of is invisible: the latest span started on or before as_of names the payer, not the persons row."""
    persons = conform_persons(pd.DataFrame({"person_id": ["a", "b"], "payer_type": ["medicare", "medicaid"]}))
    rows = [
        event("a", 900, "enrollment", "payer_type", "commercial", "unknown"),
        event("a", 400, "enrollment", "payer_type", "Medicaid", "unknown"),
        event("a", -30, "enrollment", "payer_type", "medicare", "unknown"),  # after as_of: clipped away upstream
        event("b", 100, "enrollment", "", "", "unknown"),  # a span without a payer: fall back to the persons row
    ]
    clipped = [r for r in rows if r["date"] <= AS_OF]
    out = features_for(clipped, people=("a", "b"), persons=persons)
    assert value(out, "demo_payer_type", 0) == PAYER_LEVELS.index("medicaid")
    assert value(out, "demo_payer_type", 1) == PAYER_LEVELS.index("medicaid")
    switched = features_for(rows[:1], people=("a", "b"), persons=persons)
    assert value(switched, "demo_payer_type", 0) == PAYER_LEVELS.index("commercial")


def test_member_without_history_has_zero_counts_and_missing_durations():
    """No events: counts and flags are 0, durations and disease are NaN (unknown, not zero)."""
    out = features_for([])
    assert value(out, "lot_count") == 0 and value(out, "ip_admits_365d") == 0
    assert value(out, "lot_lenalidomide_refractory_flag") == 0
    assert np.isnan(value(out, "lot_days_since_last_start"))
    assert np.isnan(value(out, "dx_disease"))
    assert np.isnan(value(out, "geo_car_t_center_distance_miles"))


def test_upstream_frames_feed_their_features():
    """Cohort, treatment, lines and eligibility outputs become the matching features."""
    cohort = pd.DataFrame({"person_id": ["a"], "in_cohort": [True], "disease": ["MM"], "subtype": [None], "first_dx_date": [pd.Timestamp("2023-06-30")]})
    treatment = pd.DataFrame(
        {
            "person_id": ["a"],
            "prior_lines": [3],
            "days_since_last_line_start": [45],
            "days_since_last_treatment": [3],
            "days_line1_end_to_line2_start": [pd.NA],
            "triple_class_exposed": [True],
            "exposed_anti_cd38": [True],
            "lenalidomide_refractory": [pd.NA],
        }
    )
    lines = pd.DataFrame({"person_id": ["a", "a"], "line_number": [2, 1], "maintenance": [False, True]})
    eligibility = pd.DataFrame({"person_id": ["a", "a", "a"], "eligible": [True, False, True]})
    out = features_for([], cohort=cohort, treatment=treatment, lines=lines, eligibility=eligibility)
    assert value(out, "dx_disease") == 6  # MM is the 7th level
    assert value(out, "dx_days_since_first") == 366
    assert value(out, "lot_count") == 3 and value(out, "lot_days_since_last_start") == 45
    assert np.isnan(value(out, "lot_days_line1_end_to_line2_start"))
    assert value(out, "lot_triple_class_exposed_flag") == 1 and value(out, "rx_anti_cd38_exposed_flag") == 1
    assert np.isnan(value(out, "lot_lenalidomide_refractory_flag"))  # unknown stays unknown, not "not refractory"
    assert value(out, "lot_current_maintenance_flag") == 0  # the latest line (2) is not maintenance
    assert value(out, "elig_products_count") == 2


def test_excluded_member_has_no_disease_feature():
    """A member outside the cohort (e.g. PCNSL) gets no disease code or time since diagnosis."""
    cohort = pd.DataFrame({"person_id": ["a"], "in_cohort": [False], "disease": ["LBCL"], "first_dx_date": [pd.Timestamp("2023-01-01")]})
    out = features_for([], cohort=cohort)
    assert np.isnan(value(out, "dx_disease")) and np.isnan(value(out, "dx_days_since_first"))


def test_duplicated_upstream_rows_are_an_error():
    """A per-person frame with two rows for one member is a caller error that names the frame."""
    treatment = pd.DataFrame({"person_id": ["a", "a"], "prior_lines": [1, 2]})
    with pytest.raises(ValueError, match="treatment"):
        features_for([], treatment=treatment)


def test_distance_is_passed_through():
    """The precomputed distance lands in the geography feature."""
    out = features_for([], distance=np.array([12.5]))
    assert value(out, "geo_car_t_center_distance_miles") == 12.5


@pytest.fixture(scope="module")
def centroids() -> pd.DataFrame:
    return load_zip_centroids()


class TestGeography:
    """ZIP-centroid distances to the nearest CAR T centre."""

    def test_new_york_to_los_angeles_is_about_2450_miles(self, centroids):
        """Great-circle distance between Manhattan and downtown LA ZIP centroids is ~2,450 miles."""
        centers = locate_centers(pd.DataFrame({"name": ["LA"], "zip": ["90012"]}), centroids)
        miles = nearest_center_miles(pd.Series(["10001"]), centroids, centers)
        assert 2400 < miles[0] < 2500

    def test_nearest_of_several_centres_and_same_zip_is_zero(self, centroids):
        """The nearest centre wins; a member in the centre's ZIP is 0 miles away."""
        centers = locate_centers(pd.DataFrame({"name": ["LA", "NY"], "zip": ["90012", "10001"]}), centroids)
        assert nearest_center_miles(pd.Series(["10001"]), centroids, centers)[0] == pytest.approx(0.0, abs=1e-6)

    def test_unknown_zip_missing_zip_and_no_centres_give_nan(self, centroids):
        """Unknown or missing ZIPs and an empty centre list give NaN, never an error."""
        centers = locate_centers(pd.DataFrame({"name": ["NY"], "zip": ["10001"]}), centroids)
        miles = nearest_center_miles(pd.Series(["00000", None, "abc"], dtype="string"), centroids, centers)
        assert np.isnan(miles).all()
        assert np.isnan(nearest_center_miles(pd.Series(["10001"]), centroids, locate_centers(None, centroids))).all()
        assert np.isnan(nearest_center_miles(pd.Series(["10001"]), None, centers)).all()

    def test_centre_coordinates_win_over_zip_and_unplaceable_centres_drop(self, centroids):
        """Given latitude/longitude are used as is; a centre with neither coordinates nor a known ZIP is dropped."""
        centers = pd.DataFrame({"name": ["a", "b"], "zip": ["99999", "bad"], "latitude": [40.7484, None], "longitude": [-73.9967, None]})
        coords = locate_centers(centers, centroids)
        assert coords.shape == (1, 2)
        assert nearest_center_miles(pd.Series(["10001"]), centroids, coords)[0] == pytest.approx(0.0, abs=0.01)

    def test_four_digit_zip_recovers_its_leading_zero(self, centroids):
        """A ZIP stored as a number ("2115" for 02115) is padded before lookup."""
        centers = locate_centers(pd.DataFrame({"name": ["Boston"], "zip": ["02115"]}), centroids)
        assert nearest_center_miles(pd.Series(["2115"]), centroids, centers)[0] == pytest.approx(0.0, abs=1e-6)

    def test_one_member_at_a_time_gives_the_population_figures(self, centroids):
        """The real-time shortcut (few ZIPs) and the population path (factorised ZIPs) give the same miles, unknowns included."""
        centers = locate_centers(pd.DataFrame({"name": ["LA", "NY"], "zip": ["90012", "10001"]}), centroids)
        zips = (["02115", "2115", "10001", "94305", None, "abc", "00000", "60614"] * 12)[:90]
        together = nearest_center_miles(pd.Series(zips, dtype="string"), centroids, centers)
        alone = np.array([nearest_center_miles(pd.Series([z], dtype="string"), centroids, centers)[0] for z in zips])
        np.testing.assert_array_equal(together, alone)
        assert np.isnan(together).sum() == sum(z in (None, "abc", "00000") for z in zips)


def test_code_memos_stay_bounded_however_many_distinct_codes_arrive(monkeypatch):
    """The per-process memos of (system, code) pairs are emptied once full, and still answer correctly."""
    import features.memo
    from features.codelists import load_codelists
    from features.lines import encode_codes
    from features.risk import build_code_tagger

    monkeypatch.setattr(features.memo, "PAIR_MEMO_LIMIT", 50)
    tagger = build_code_tagger(load_codelists())
    expected = tagger.tag("icd10cm", "C8338")
    for batch in range(10):
        pairs = [("icd10cm", f"Z{batch}{i:03d}") for i in range(30)] + [("icd10cm", "C8338")]
        tags = tagger.tag_pairs(pairs)
        assert tags[-1] == expected
        assert len(tagger.known) <= 50 + len(pairs)

    memo: dict = {}
    for batch in range(10):
        events = pd.DataFrame({"code_system": ["icd10cm"] * 30, "code": [f"Y{batch}{i:03d}" for i in range(30)]})
        encode_codes(events, lambda system, code: (1, 2), memo)
        assert len(memo) <= 50 + 30
