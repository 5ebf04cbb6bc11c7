"""The risk step gives one member the same features alone as inside a large batch (whose events take the
vectorised code-pair and member paths), and its Charlson, payer and treatment readings keep their rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.codelists import load_codelists
from features.comorbidity import load_charlson_codes, score_categories, score_charlson
from features.events import conform_events, conform_persons
from features.risk import build_code_tagger, compute_risk_features

AS_OF = pd.Timestamp("2024-06-30")
# codes the features read (Charlson categories, PET, marrow biopsy, E&M, ED, CAR T work-up, relapse), and noise
CODES = [
    ("diagnosis", "icd10cm", "I219"), ("diagnosis", "icd10cm", "C787"), ("diagnosis", "icd10cm", "E1122"),
    ("diagnosis", "icd10cm", "E119"), ("diagnosis", "icd10cm", "N184"), ("diagnosis", "icd10cm", "C8338"),
    ("diagnosis", "icd10cm", "R079"), ("diagnosis", "icd10cm", None), ("procedure", "hcpcs", "78815"),
    ("procedure", "hcpcs", "38221"), ("procedure", "hcpcs", "99205"), ("procedure", "hcpcs", "99284"),
    ("procedure", "hcpcs", "0537T"), ("procedure", "hcpcs", "ZZZZZ"), ("enrollment", "payer_type", "Medicare"),
    ("enrollment", "payer_type", "commercial"), ("enrollment", "payer_type", ""), ("enrollment", None, "medicaid"),
    ("enrollment", "hcpcs", "medicaid"), ("inpatient_stay", "ms_drg", "840"),
]


def random_population(n_members: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, dict]:
    """Events, persons, as_of and upstream frames for ``n_members`` members with mixed codes, missing values and dates."""
    rng = np.random.default_rng(seed)
    ids = [f"m{i:04d}" for i in range(n_members)]
    rows = []
    for person in ids:
        for _ in range(int(rng.integers(0, 40))):
            kind, system, code = CODES[int(rng.integers(0, len(CODES)))]
            setting = ["outpatient", "ed", "inpatient", "office", None][int(rng.integers(0, 5))]
            rows.append(dict(person_id=person, kind=kind, date=AS_OF - pd.Timedelta(days=int(rng.integers(0, 800))), code_system=system, code=code, setting=setting))
    events = conform_events(pd.DataFrame(rows, columns=["person_id", "kind", "date", "code_system", "code", "setting"]))
    persons = conform_persons(pd.DataFrame({
        "person_id": ids,
        "sex": rng.choice(["female", "male", None], n_members),
        "payer_type": rng.choice(["medicare", "commercial", None], n_members),
        "birth_date": pd.to_datetime(rng.choice(["1950-03-01", "1980-12-31", None], n_members)),
    }))
    as_of = pd.Series(AS_OF, index=pd.Index(ids, dtype="str"))
    missing = rng.uniform(size=n_members) < 0.3
    upstream = dict(
        cohort=pd.DataFrame({"person_id": ids, "in_cohort": rng.uniform(size=n_members) < 0.5,
                             "disease": pd.array(rng.choice(["LBCL", "MM", None], n_members), dtype="string"),
                             "subtype": pd.array(rng.choice(["DLBCL NOS", None], n_members), dtype="string"),
                             "first_dx_date": pd.to_datetime(rng.choice(["2022-01-05", None], n_members))}),
        treatment=pd.DataFrame({
            "person_id": ids,
            "prior_lines": rng.integers(0, 4, n_members),
            "days_since_last_line_start": pd.array(np.where(missing, None, rng.integers(0, 900, n_members)), dtype="Int64"),
            "days_since_last_treatment": np.where(missing, np.nan, rng.integers(0, 90, n_members).astype(float)),
            "days_line1_end_to_line2_start": pd.array(np.where(missing, None, rng.integers(0, 400, n_members)), dtype="Int64"),
            "early_relapse": pd.array(np.where(missing, None, rng.uniform(size=n_members) < 0.5), dtype="boolean"),
            "primary_refractory": pd.array(np.where(missing, None, rng.uniform(size=n_members) < 0.5), dtype="boolean"),
            "progressed_after_last_line": pd.array(np.where(missing, None, rng.uniform(size=n_members) < 0.5), dtype="boolean"),
            "prior_asct": rng.uniform(size=n_members) < 0.2,
            "triple_class_exposed": np.where(missing, np.nan, 1.0),
            "lenalidomide_refractory": pd.array(np.where(missing, None, rng.uniform(size=n_members) < 0.5), dtype="boolean"),
            "exposed_imid": rng.uniform(size=n_members) < 0.5,
        }),
        lines=pd.DataFrame({"person_id": ids, "line_number": np.ones(n_members, dtype=np.int64), "maintenance": rng.uniform(size=n_members) < 0.3}),
        eligibility=pd.DataFrame({"person_id": ids, "eligible": rng.uniform(size=n_members) < 0.2}),
    )
    return events, persons, as_of, upstream


def risk(events, persons, as_of, upstream) -> pd.DataFrame:
    codes = load_codelists()
    return compute_risk_features(events, persons, as_of, **upstream, tagger=build_code_tagger(codes), charlson=load_charlson_codes())


def one(frame: pd.DataFrame, person: str) -> pd.DataFrame:
    return frame[frame["person_id"] == person].reset_index(drop=True)


@pytest.mark.parametrize("n_members", [1, 12, 260])
def test_member_alone_equals_its_row_in_a_batch(n_members):
    """Every member's features computed alone equal its row of a batch (values, NaN placement, dtypes), small and above the vectorised-path size."""
    events, persons, as_of, upstream = random_population(n_members, seed=n_members)
    together = risk(events, persons, as_of, upstream)
    assert len(together) == n_members
    if n_members > 100:
        assert len(events) > 4096, "the batch takes the large-input paths"
        assert together["cci_score_365d"].gt(0).any() and together["demo_payer_type"].notna().any()
    for person in as_of.index[:: max(1, n_members // 25)]:
        alone = risk(one(events, person), one(persons, person), as_of.loc[[person]], {k: one(v, person) for k, v in upstream.items()})
        pd.testing.assert_frame_equal(alone, one(together, person), check_exact=True)


def test_treatment_flags_default_to_zero_and_unknown_durations_stay_missing():
    """Missing flags in a member's treatment row become 0, missing durations and relapse timing stay NaN, whatever the column's dtype."""
    events, persons, as_of, upstream = random_population(40, seed=3)
    out = risk(events, persons, as_of, upstream)
    treatment = upstream["treatment"]
    gone = treatment["progressed_after_last_line"].isna().to_numpy()
    assert gone.any() and (~gone).any()
    assert (out["lot_progressed_after_last_flag"].to_numpy()[gone] == 0).all()
    assert (out["lot_triple_class_exposed_flag"].to_numpy()[gone] == 0).all()
    assert np.isnan(out["lot_early_relapse_flag"].to_numpy()[gone]).all()
    assert np.isnan(out["lot_days_since_last_start"].to_numpy()[gone]).all()
    assert np.isnan(out["lot_days_since_last_treatment"].to_numpy()[gone]).all()
    np.testing.assert_array_equal(out["lot_prior_asct_flag"].to_numpy(), treatment["prior_asct"].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(out["lot_count"].to_numpy(), treatment["prior_lines"].to_numpy(dtype=np.float32))


def test_payer_comes_from_payer_type_enrollment_codes_only():
    """Only enrollment events of the payer-type system with a code name the payer; others fall back to the persons row."""
    persons = conform_persons(pd.DataFrame({"person_id": ["a", "b", "c"], "payer_type": ["medicaid", "medicaid", "medicaid"]}))
    rows = [
        dict(person_id="a", kind="enrollment", date=AS_OF - pd.Timedelta(days=10), code_system="payer_type", code="Medicare"),
        dict(person_id="b", kind="enrollment", date=AS_OF - pd.Timedelta(days=10), code_system="hcpcs", code="medicare"),
        dict(person_id="b", kind="enrollment", date=AS_OF - pd.Timedelta(days=5), code_system="payer_type", code=None),
        dict(person_id="c", kind="diagnosis", date=AS_OF - pd.Timedelta(days=5), code_system="payer_type", code="medicare"),
    ]
    events = conform_events(pd.DataFrame(rows))
    empty = {"cohort": pd.DataFrame({"person_id": pd.Series(dtype="string")}), "lines": pd.DataFrame({"person_id": pd.Series(dtype="string")}),
             "treatment": pd.DataFrame({"person_id": pd.Series(dtype="string")}),
             "eligibility": pd.DataFrame({"person_id": pd.Series(dtype="string"), "eligible": pd.Series(dtype=bool)})}
    out = risk(events, persons, pd.Series(AS_OF, index=["a", "b", "c"]), empty)
    from features.catalog import PAYER_LEVELS

    assert out["demo_payer_type"].tolist() == [PAYER_LEVELS.index("medicare"), PAYER_LEVELS.index("medicaid"), PAYER_LEVELS.index("medicaid")]


def test_distinct_code_categories_equal_row_categories_on_every_call():
    """Categorising distinct codes (remembered across calls) gives each code the category the row-wise lookup gives, and None none."""
    charlson = load_charlson_codes()
    pool = ["I21", "I219", "N184", "C787", "E1122", "E119", "ZZZ", "", "C8", "I50", None]
    for _ in range(2):
        got = charlson.categorise_distinct(pool)
        assert got.dtype == np.int64
        assert got.tolist() == charlson.categorise(np.array(pool, dtype=object)).tolist()
    member = np.array([0, 0, 1, 2, 2], dtype=np.int64)
    codes = np.array(["C787", "C8330", "E119", "E1122", "ZZZ"], dtype=object)
    expected = score_charlson(member, codes, 4, charlson)
    np.testing.assert_array_equal(score_categories(member, charlson.categorise(codes), 4, charlson), expected)
    assert expected.tolist() == [6.0, 1.0, 2.0, 0.0]


def test_charlson_code_memo_stays_bounded_and_answers_correctly(monkeypatch):
    """The per-process memo of categorised codes is emptied once full and still gives each code its own category."""
    import features.memo
    from features.comorbidity import CharlsonCodes

    monkeypatch.setattr(features.memo, "PAIR_MEMO_LIMIT", 50)
    packaged = load_charlson_codes()
    charlson = CharlsonCodes(packaged.digest, packaged.categories, packaged.weights, packaged.prefix_category)
    expected = charlson._lookup("C787")
    for batch in range(10):
        codes = [f"Z{batch}{i:03d}" for i in range(30)] + ["C787"]
        assert charlson.categorise_distinct(codes)[-1] == expected
        assert len(charlson.known) <= 50 + len(codes)
