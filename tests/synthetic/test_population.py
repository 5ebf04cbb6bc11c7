"""Contract shape, determinism and internal consistency of the generated population."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contract.schema import CENTERS_FILE, NDC_CROSSWALK_FILE, TABLES
from features.codelists import load_codelists
from synthetic.coding import SYNTHETIC_NDC_LABELER
from synthetic.population import SynthConfig, generate_to_directory

HEADER_FIELDS = ["claim_type", "claim_start_date", "claim_end_date", "bill_type_code", "drg_code", "person_id", "member_id",
                 "diagnosis_code_1", "diagnosis_code_2", "diagnosis_code_3", "diagnosis_code_4", "procedure_code_1", "data_source"]


def read(out: Path, table: str) -> pd.DataFrame:
    return pq.read_table(out / table).to_pandas(date_as_object=False)


def digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    """The same configuration twice writes byte-identical files (tables, crosswalk, centres, truth)."""
    config = SynthConfig(members=1500, seed=5, cancer_enrichment=30, noise="medium")
    generate_to_directory(config, tmp_path / "a")
    generate_to_directory(config, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_different_seed_gives_different_claims(tmp_path):
    """Another seed gives another population."""
    generate_to_directory(SynthConfig(members=800, seed=1), tmp_path / "a")
    generate_to_directory(SynthConfig(members=800, seed=2), tmp_path / "b")
    assert digest(tmp_path / "a")["medical_claim/part-00000.parquet"] != digest(tmp_path / "b")["medical_claim/part-00000.parquet"]


def test_tables_have_required_and_used_columns_as_strings_and_dates(clean_population):
    """Every required and used Tuva column is written; codes are strings and dates are dates."""
    for name, spec in TABLES.items():
        schema = pq.read_schema(next((clean_population / name).glob("part-*.parquet")))
        assert set(spec.required) | set(spec.used) <= set(schema.names), name
        for column, kind in spec.columns.items():
            if column in schema.names and kind == "date":
                assert schema.field(column).type == pa.date32(), (name, column)
            if column in schema.names and kind == "varchar":
                assert schema.field(column).type == pa.string(), (name, column)


def test_primary_keys_unique_and_header_fields_identical(clean_population):
    """(claim_id, claim_line_number, data_source) is unique and header fields agree across lines of a claim."""
    medical = read(clean_population, "medical_claim")
    assert not medical.duplicated(["claim_id", "claim_line_number", "data_source"]).any()
    per_claim = medical[["claim_id", *HEADER_FIELDS]].astype("string").fillna("<NA>").drop_duplicates()
    assert per_claim["claim_id"].is_unique
    pharmacy = read(clean_population, "pharmacy_claim")
    assert not pharmacy.duplicated(["claim_id", "claim_line_number", "data_source"]).any()


def test_codes_are_dotless_and_well_formed_without_noise(clean_population):
    """Without noise, diagnoses are dotless ICD-10-CM and NDCs are 11 digits with leading zeros kept as text."""
    medical = read(clean_population, "medical_claim")
    dx = pd.concat([medical[f"diagnosis_code_{i}"] for i in range(1, 5)]).dropna()
    assert dx.str.fullmatch(r"[A-Z][0-9][0-9A-Z]{1,5}").all()
    assert not dx.str.contains(".", regex=False).any()
    ndc = read(clean_population, "pharmacy_claim")["ndc_code"]
    assert ndc.str.fullmatch(r"\d{11}").all()


def test_claims_fall_inside_enrollment_and_before_death(clean_population):
    """Every claim starts inside one of the member's enrollment spans and never after death."""
    elig = read(clean_population, "eligibility")
    medical = read(clean_population, "medical_claim")[["person_id", "claim_start_date", "claim_end_date"]].drop_duplicates()
    merged = medical.merge(elig[["person_id", "enrollment_start_date", "enrollment_end_date", "death_date"]], on="person_id")
    inside = (merged["claim_start_date"] >= merged["enrollment_start_date"]) & (merged["claim_end_date"] <= merged["enrollment_end_date"])
    assert inside.groupby([merged["person_id"], merged["claim_start_date"], merged["claim_end_date"]]).any().all()
    assert not (merged["claim_end_date"] > merged["death_date"]).any()


def test_generated_output_validates_with_zero_errors(clean_population, tmp_path):
    """With noise off, contract validation reports zero errors."""
    from contract.validation import validate_directory

    report = validate_directory(clean_population, quarantine_dir=tmp_path / "q")
    assert report.error_count == 0, report.render()


def test_every_injected_invalid_row_is_caught_by_validation(noisy_population, tmp_path):
    """Each invalid kind in truth/noise.parquet is quarantined by validation (at least one row of each kind)."""
    from contract.validation import validate_directory

    report = validate_directory(noisy_population, quarantine_dir=tmp_path / "q")
    issues = pd.read_parquet(tmp_path / "q" / "issues.parquet")
    noise = pd.read_parquet(noisy_population / "truth" / "noise.parquet")
    invalid = noise[noise["invalid"]]
    assert set(invalid["kind"]) == {"malformed_icd", "end_before_start", "malformed_hcpcs", "header_mismatch", "duplicate_primary_key",
                                    "malformed_ndc", "implausible_date", "after_death", "unknown_person"}
    assert report.error_count >= len(invalid)
    errors = issues[issues["severity"] == "error"]
    for table in ("medical_claim", "pharmacy_claim"):
        expected = set(invalid.loc[invalid["table"] == table, "claim_id"])
        raw = errors[errors["table"] == table]["raw_row"].astype(str)
        caught = {c for c in expected if raw.str.contains(re.escape(c)).any()}
        assert caught == expected, sorted(expected - caught)[:5]


def test_noise_adds_dotted_codes_biosimilars_and_plan_switches(noisy_population):
    """High noise yields dotted ICD codes, rituximab biosimilar Q-codes and persons with two member_ids."""
    medical = read(noisy_population, "medical_claim")
    assert medical["diagnosis_code_1"].dropna().str.contains(".", regex=False).any()
    assert medical["hcpcs_code"].isin(["Q5115", "Q5119", "Q5123"]).any()
    members = read(noisy_population, "eligibility").groupby("person_id")["member_id"].nunique()
    assert (members > 1).any()


def test_csv_format_writes_one_file_per_table_keeping_leading_zeros(tmp_path):
    """--format csv writes OUT/<table>.csv and codes with leading zeros survive as text."""
    generate_to_directory(SynthConfig(members=600, seed=3, cancer_enrichment=50, file_format="csv"), tmp_path)
    for name in TABLES:
        assert (tmp_path / f"{name}.csv").is_file()
    medical = pd.read_csv(tmp_path / "medical_claim.csv", dtype=str)
    assert medical["bill_type_code"].dropna().str.startswith("0").all()
    assert medical["revenue_center_code"].dropna().str.len().eq(4).all()


def test_crosswalk_covers_oral_drugs_with_synthetic_ndcs(clean_population):
    """The NDC crosswalk maps synthetic 11-digit NDCs to every oral drug of the code lists plus background drugs."""
    xw = pd.read_csv(clean_population / NDC_CROSSWALK_FILE, dtype=str)
    assert list(xw.columns) == ["ndc_code", "generic"]
    assert xw["ndc_code"].str.fullmatch(SYNTHETIC_NDC_LABELER + r"\d{6}").all() and xw["ndc_code"].is_unique
    catalog = load_codelists().drug_catalog
    oral = set(catalog.loc[catalog["route"].str.contains("oral"), "generic"]) - {"dasatinib / imatinib / ponatinib"}
    assert oral <= set(xw["generic"])
    assert {"metformin", "atorvastatin", "lisinopril"} <= set(xw["generic"])
    fills = read(clean_population, "pharmacy_claim")["ndc_code"]
    assert fills.isin(xw["ndc_code"]).all()


def test_centre_file_has_about_100_synthetic_centres_on_real_zips(clean_population):
    """car_t_centers.csv lists ~100 clearly synthetic centres at real 5-digit ZIPs with coordinates."""
    import zipcodes

    centres = pd.read_csv(clean_population / CENTERS_FILE, dtype={"zip": str})
    assert list(centres.columns) == ["name", "zip", "latitude", "longitude"]
    assert 90 <= len(centres) <= 110
    assert centres["name"].str.contains("SYNTHETIC").all()
    assert all(zipcodes.matching(z) for z in centres["zip"].head(10))


def test_truth_is_consistent_with_claims(clean_population):
    """Truth lists each person once; CAR T recipients have a Q-code claim and DRG 018 appears only with a Q-code or PCS code."""
    persons = pd.read_parquet(clean_population / "truth" / "persons.parquet")
    assert persons["person_id"].is_unique and len(persons) == 4000
    cancer = persons[persons["disease"].notna()]
    assert len(cancer) > 20 and cancer["diagnosis_date"].notna().all()
    assert (cancer["sampling_weight"] < 1).all() and (persons["cancer_enrichment"] == 40).all()
    lines = pd.read_parquet(clean_population / "truth" / "lines.parquet")
    assert lines["drugs"].map(lambda d: list(d) == sorted(d)).all()
    assert (lines["end_date"] >= lines["start_date"]).all()
    medical = read(clean_population, "medical_claim")
    q_claims = set(medical.loc[medical["hcpcs_code"].fillna("").str.fullmatch(r"Q20\d\d"), "claim_id"])
    drg18 = set(medical.loc[medical["drg_code"] == "018", "claim_id"])
    pcs = set(medical.loc[medical["procedure_code_1"].fillna("").str.startswith("XW"), "claim_id"])
    assert drg18 <= q_claims | pcs
    elig = read(clean_population, "eligibility")
    treated = cancer[cancer["car_t_date"].notna()].merge(elig[["person_id", "enrollment_start_date", "enrollment_end_date"]], on="person_id")
    covered = treated[(treated["enrollment_start_date"] <= treated["car_t_date"] - pd.Timedelta(days=2))
                      & (treated["enrollment_end_date"] >= treated["car_t_date"] + pd.Timedelta(days=45))]
    with_q = set(medical.loc[medical["claim_id"].isin(q_claims), "person_id"])
    assert covered["person_id"].isin(with_q).all()


def test_invalid_configuration_is_rejected(tmp_path):
    """An unknown noise level or format is a ValueError naming the option."""
    with pytest.raises(ValueError, match="noise"):
        generate_to_directory(SynthConfig(members=10, noise="loud"), tmp_path)
    with pytest.raises(ValueError, match="file_format"):
        generate_to_directory(SynthConfig(members=10, file_format="xlsx"), tmp_path)


def test_end_date_moves_the_window(tmp_path):
    """--end-date bounds every claim date and the history spans about six years before it."""
    generate_to_directory(SynthConfig(members=500, seed=4, end_date=date(2024, 6, 30)), tmp_path)
    medical = read(tmp_path, "medical_claim")
    assert medical["claim_end_date"].max() <= pd.Timestamp("2024-06-30")
    assert medical["claim_start_date"].min() >= pd.Timestamp("2018-07-01")
    assert np.isfinite(len(medical))


def test_chunked_generation_is_deterministic_with_unique_ids(tmp_path, monkeypatch):
    """Several chunks write several part files; ids stay unique across chunks and reruns are byte-identical."""
    import synthetic.population as population

    monkeypatch.setattr(population, "CHUNK_MEMBERS", 400)
    config = SynthConfig(members=1000, seed=9, cancer_enrichment=50)
    generate_to_directory(config, tmp_path / "a")
    generate_to_directory(config, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert len(list((tmp_path / "a" / "medical_claim").glob("part-*.parquet"))) == 3
    medical = read(tmp_path / "a", "medical_claim")
    assert not medical.duplicated(["claim_id", "claim_line_number"]).any()
    persons = pd.read_parquet(tmp_path / "a" / "truth" / "persons.parquet")
    assert persons["person_id"].is_unique and len(persons) == 1000


def test_truth_flags_dates_claims_can_see(clean_population):
    """Truth lines and eligibility carry ``enrolled``: True exactly when the date lies inside an enrollment span."""
    spans = read(clean_population, "eligibility")[["person_id", "enrollment_start_date", "enrollment_end_date"]]
    lines = pd.read_parquet(clean_population / "truth" / "lines.parquet")
    elig = pd.read_parquet(clean_population / "truth" / "eligibility.parquet")
    assert {"first_eligible_date", "claims_first_eligible_date", "enrolled", "claims_enrolled"} <= set(elig.columns)
    assert elig["claims_first_eligible_date"].notna().all()
    assert (elig["first_eligible_date"].isna() | (elig["claims_first_eligible_date"] <= elig["first_eligible_date"])).all()
    for frame, date_col, flag in ((lines, "start_date", "enrolled"), (elig, "claims_first_eligible_date", "claims_enrolled")):
        joined = frame.reset_index().merge(spans, on="person_id")
        inside = joined[(joined[date_col] >= joined["enrollment_start_date"]) & (joined[date_col] <= joined["enrollment_end_date"])]["index"]
        assert (frame.index.isin(inside) == frame[flag].to_numpy()).all()
    assert lines["enrolled"].any() and not lines["enrolled"].all()
    assert (lines["observed"] | ~lines["enrolled"]).all()  # a line that starts while enrolled is observed
