"""``cartscout features``: a contract directory in, four Parquet files out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cartscout.cli import app
from features.catalog import FEATURE_NAMES
from tests.contract.factories import fill, medical_line, span, write_contract

AS_OF = "2024-12-31"


def chemo_day(person: str, claim: str, day: str, codes: tuple[str, ...], dx: str = "C83.38") -> list[dict]:
    """One outpatient infusion visit: a claim line per drug, all on ``day``."""
    return [
        medical_line(claim, i + 1, person_id=person, claim_start_date=day, claim_end_date=day, claim_line_start_date=day, claim_line_end_date=day, place_of_service_code="22", hcpcs_code=code, diagnosis_code_1=dx)
        for i, code in enumerate(codes)
    ]


def tables() -> dict[str, list[dict]]:
    """P1: DLBCL, six R-CHOP cycles then R-ICE after relapse; P2: hypertension only; P3: primary CNS lymphoma."""
    rchop = ("J9312", "J9070", "J9000", "J9370")
    rice = ("J9312", "J9208", "J9045", "J9181")
    medical = []
    start = pd.Timestamp("2023-01-10")
    for cycle in range(6):
        medical += chemo_day("P1", f"A{cycle}", (start + pd.Timedelta(days=21 * cycle)).strftime("%Y-%m-%d"), rchop)
    for cycle in range(2):
        medical += chemo_day("P1", f"B{cycle}", (pd.Timestamp("2024-03-01") + pd.Timedelta(days=21 * cycle)).strftime("%Y-%m-%d"), rice)
    medical += [
        medical_line("D1", 1, person_id="P1", claim_start_date="2024-09-01", claim_end_date="2024-09-01", claim_line_start_date="2024-09-01", claim_line_end_date="2024-09-01", hcpcs_code="78815", diagnosis_code_1="C83.38"),
        medical_line("E1", 1, person_id="P2", diagnosis_code_1="I10", hcpcs_code="99214"),
        medical_line("F1", 1, person_id="P3", diagnosis_code_1="C83.390", claim_start_date="2024-02-01", claim_end_date="2024-02-01", claim_line_start_date="2024-02-01", claim_line_end_date="2024-02-01"),
        medical_line("F2", 1, person_id="P3", diagnosis_code_1="C83.390", claim_start_date="2024-04-01", claim_end_date="2024-04-01", claim_line_start_date="2024-04-01", claim_line_end_date="2024-04-01"),
    ]
    return {
        "eligibility": [span("P1", enrollment_start_date="2022-01-01"), span("P2", gender="male"), span("P3", birth_date="1955-01-01")],
        "medical_claim": medical,
        "pharmacy_claim": [fill("R1", person_id="P2", ndc_code="12345-678-90")],
    }


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_contract(tmp_path_factory.mktemp("contract") / "data", tables())
    (directory / "car_t_centers.csv").write_text("name,zip,latitude,longitude\nBoston centre,02115,42.3429,-71.0949\n")
    return directory


@pytest.fixture(scope="module")
def written(contract: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One run of the command as of AS_OF, shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("out")
    result = run("--data", str(contract), "--as-of", AS_OF, "--out", str(out))
    return out, result.output


def run(*args: str):
    return CliRunner().invoke(app, ["features", *args], catch_exceptions=False)


def test_features_command_writes_the_four_files(written):
    """The command writes cohort, lines, eligibility and features Parquet with the documented columns."""
    out, output = written
    assert "in cohort" in output
    cohort = pd.read_parquet(out / "cohort.parquet")
    lines = pd.read_parquet(out / "lines.parquet")
    eligibility = pd.read_parquet(out / "eligibility.parquet")
    features = pd.read_parquet(out / "features.parquet")
    assert list(cohort.columns[:1]) == ["person_id"] and {"disease", "first_dx_date", "in_cohort", "exclusion"} <= set(cohort.columns)
    assert {"person_id", "line_number", "start_date", "end_date", "drugs", "regimen", "includes_sct", "end_reason"} <= set(lines.columns)
    assert {"person_id", "product", "indication", "eligible", "criteria_met", "criteria_missing", "rules_version"} <= set(eligibility.columns)
    assert list(features.columns) == ["person_id", "as_of", *FEATURE_NAMES]
    assert not list(out.glob(".*.tmp")), "temporary files must be renamed away"


def test_every_member_is_in_cohort_file_and_only_cohort_members_have_eligibility(written):
    """cohort.parquet lists all members; eligibility has one row per cohort member and product."""
    out, _ = written
    cohort = pd.read_parquet(out / "cohort.parquet").set_index("person_id")
    assert sorted(cohort.index) == ["P1", "P2", "P3"]
    assert bool(cohort.loc["P1", "in_cohort"]) and cohort.loc["P1", "disease"] == "LBCL"
    assert not bool(cohort.loc["P2", "in_cohort"]) and pd.isna(cohort.loc["P2", "disease"])
    assert not bool(cohort.loc["P3", "in_cohort"]) and cohort.loc["P3", "exclusion"] == "primary CNS lymphoma"
    eligibility = pd.read_parquet(out / "eligibility.parquet")
    assert set(eligibility["person_id"]) == {"P1"}
    assert not eligibility.duplicated(["person_id", "product"]).any()


def test_lines_and_features_reflect_the_history(written):
    """P1's two lines (R-CHOP, then R-ICE) and the distance to the Boston centre reach the outputs."""
    out, _ = written
    lines = pd.read_parquet(out / "lines.parquet")
    p1 = lines[lines["person_id"] == "P1"].sort_values("line_number")
    assert list(p1["line_number"]) == [1, 2]
    assert p1["start_date"].iloc[0] == pd.Timestamp("2023-01-10")
    features = pd.read_parquet(out / "features.parquet").set_index("person_id")
    assert features.loc["P1", "lot_count"] == 2
    assert features.loc["P1", "pet_ct_count_180d"] == 1
    assert features.loc["P1", "geo_car_t_center_distance_miles"] < 10  # 02139 Cambridge to 02115 Boston
    assert (features["as_of"] == pd.Timestamp(AS_OF)).all()


def test_as_of_hides_later_claims(contract: Path, tmp_path: Path):
    """Run before the second line started, P1 has one line and no PET-CT yet."""
    out = tmp_path / "early"
    run("--data", str(contract), "--as-of", "2024-01-31", "--out", str(out))
    lines = pd.read_parquet(out / "lines.parquet")
    assert list(lines.loc[lines["person_id"] == "P1", "line_number"]) == [1]
    features = pd.read_parquet(out / "features.parquet").set_index("person_id")
    assert features.loc["P1", "pet_ct_count_365d"] == 0


def test_malformed_as_of_is_a_usage_error(contract: Path, tmp_path: Path):
    """--as-of must be YYYY-MM-DD; anything else exits with a usage error naming the option."""
    result = CliRunner().invoke(app, ["features", "--data", str(contract), "--as-of", "31/12/2024", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--as-of" in result.output


def test_missing_data_directory_is_a_usage_error(tmp_path: Path):
    """A --data directory that does not exist is rejected before any work starts."""
    result = CliRunner().invoke(app, ["features", "--data", str(tmp_path / "nope"), "--as-of", AS_OF, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2


def test_rerun_replaces_outputs_atomically(contract: Path, written, tmp_path: Path):
    """Running again into a directory holding earlier outputs replaces every file and leaves no temporary files."""
    out = tmp_path / "out"
    shutil.copytree(written[0], out)
    run("--data", str(contract), "--as-of", "2024-01-31", "--out", str(out))
    features = pd.read_parquet(out / "features.parquet")
    assert (features["as_of"] == pd.Timestamp("2024-01-31")).all()
    assert sorted(p.name for p in out.iterdir()) == ["cohort.parquet", "eligibility.parquet", "features.parquet", "lines.parquet"]


def test_population_without_candidates_writes_empty_outputs(tmp_path: Path):
    """A delivery with no cancer codes at all still writes every file, with columns and no cohort members."""
    data = write_contract(tmp_path / "data", {"eligibility": [span("P2", gender="male")], "medical_claim": [medical_line("E1", 1, person_id="P2", diagnosis_code_1="I10", hcpcs_code="99214")], "pharmacy_claim": [fill("R1", person_id="P2", ndc_code="12345-678-90")]})
    out = tmp_path / "out"
    result = run("--data", str(data), "--as-of", AS_OF, "--out", str(out))
    assert result.exit_code == 0, result.output
    cohort = pd.read_parquet(out / "cohort.parquet")
    assert list(cohort["person_id"]) == ["P2"] and not cohort["in_cohort"].any()
    assert list(pd.read_parquet(out / "features.parquet").columns) == ["person_id", "as_of", *FEATURE_NAMES]
    assert len(pd.read_parquet(out / "eligibility.parquet")) == 0


def test_features_on_a_corrupt_table_ends_with_a_message_not_a_traceback(tmp_path):
    """A truncated Parquet file stops `cartscout features` with exit 1 and a message naming the file."""
    from typer.testing import CliRunner

    from cartscout.cli import app

    data = tmp_path / "data"
    data.mkdir()
    for table in ("eligibility", "medical_claim", "pharmacy_claim"):
        (data / f"{table}.parquet").write_bytes(b"PAR1 truncated")
    result = CliRunner().invoke(app, ["features", "--data", str(data), "--out", str(tmp_path / "out"), "--as-of", "2025-01-01"])
    assert result.exit_code == 1
    assert "eligibility.parquet" in result.output or "medical_claim.parquet" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
