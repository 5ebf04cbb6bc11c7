"""Row-level checks: each bad row is reported with its table, file, row, column, value and reason,
quarantined (errors) or kept (warnings), and the good rows of a partly bad file survive."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from contract.validation import validate_directory, validate_tables
from tests.contract.factories import fill, good_tables, medical_line, span, write_contract


def _validate(tmp_path: Path, change=None, fmt: str = "csv"):
    tables = good_tables()
    if change:
        change(tables)
    directory = write_contract(tmp_path / "data", tables, fmt)
    return validate_directory(directory)


def _errors(report, check: str) -> pd.DataFrame:
    issues = report.issues
    return issues[(issues["check"] == check) & (issues["severity"] == "error")]


def test_good_directory_has_no_issues(tmp_path):
    """The factory's good tables validate with zero errors and zero warnings."""
    report = _validate(tmp_path)
    assert report.error_count == 0 and report.warning_count == 0 and not report.fatal
    assert report.tables["medical_claim"].rows_valid == 6


def test_bad_dates_are_reported_with_row_and_value(tmp_path):
    """An unparseable date and an implausible year are errors naming the file row, column and raw value."""
    def change(t):
        t["medical_claim"].append(medical_line("C9", 1, claim_start_date="2023-02-30", claim_end_date="2023-03-01"))
        t["pharmacy_claim"].append(fill("R9", dispensing_date="1850-01-01"))
    report = _validate(tmp_path, change)
    bad = _errors(report, "date_format").iloc[0]
    assert (bad["table"], bad["column"], bad["value"], int(bad["row_number"])) == ("medical_claim", "claim_start_date", "2023-02-30", 7)
    assert bad["file"].endswith("medical_claim.csv")
    old = _errors(report, "date_range").iloc[0]
    assert (old["table"], old["column"], old["value"]) == ("pharmacy_claim", "dispensing_date", "1850-01-01")


def test_birth_in_the_future_of_the_data_is_an_error(tmp_path):
    """A birth date after the latest service date in the delivery cannot be right."""
    report = _validate(tmp_path, lambda t: t["eligibility"].append(span("P3", birth_date="2030-01-01")))
    assert _errors(report, "date_range")["column"].tolist() == ["birth_date"]


def test_open_ended_enrollment_is_accepted(tmp_path):
    """An enrollment end of 9999-12-31 is the usual open-span convention, not an implausible date."""
    report = _validate(tmp_path, lambda t: t["eligibility"].append(span("P3", enrollment_end_date="9999-12-31")))
    assert report.error_count == 0


@pytest.mark.parametrize(
    ("table", "row", "column"),
    [
        ("eligibility", span("P3", enrollment_start_date="2023-01-01", enrollment_end_date="2022-01-01"), "enrollment_end_date"),
        ("medical_claim", medical_line("C9", 1, claim_start_date="2023-05-03", claim_end_date="2023-05-01"), "claim_end_date"),
        ("medical_claim", medical_line("C9", 1, claim_line_start_date="2023-05-03", claim_line_end_date="2023-05-01"), "claim_line_end_date"),
        ("medical_claim", medical_line("C9", 1, claim_type="institutional", admission_date="2023-05-05", discharge_date="2023-05-01"), "discharge_date"),
    ],
)
def test_end_before_start_is_an_error(tmp_path, table, row, column):
    """Enrollment, claim, claim line and admission/discharge periods must not end before they start."""
    report = _validate(tmp_path, lambda t: t[table].append(row))
    assert _errors(report, "end_before_start")["column"].tolist() == [column]


@pytest.mark.parametrize(
    ("table", "row", "column", "value"),
    [
        ("medical_claim", medical_line("C9", 1, diagnosis_code_3="83.38"), "diagnosis_code_3", "83.38"),
        ("medical_claim", medical_line("C9", 1, hcpcs_code="J931"), "hcpcs_code", "J931"),
        ("medical_claim", medical_line("C9", 1, procedure_code_type="icd-10-pcs", procedure_code_1="XW033H"), "procedure_code_1", "XW033H"),
        ("pharmacy_claim", fill("R9", ndc_code="0002321530"), "ndc_code", "0002321530"),
        ("medical_claim", medical_line("C9", 1, revenue_center_code="45X"), "revenue_center_code", "45X"),
    ],
)
def test_malformed_codes_of_each_system_are_quarantined(tmp_path, table, row, column, value):
    """A malformed ICD-10-CM, HCPCS, ICD-10-PCS, NDC or revenue code is an error naming column and value."""
    report = _validate(tmp_path, lambda t: t[table].append(row))
    bad = _errors(report, "code_format")
    assert bad[["table", "column", "value"]].values.tolist() == [[table, column, value]]
    assert report.tables[table].rows_quarantined == 1


def test_dotted_icd_and_dashed_ndc_are_normalised_not_errors(tmp_path):
    """Dotted ICD-10-CM codes become dotless and a dashed 10-digit NDC is padded; neither is an error."""
    result = validate_tables(write_contract(tmp_path / "data"))
    assert result.report.error_count == 0
    assert "C8338" in set(result.medical_claim["diagnosis_code_1"])
    assert set(result.pharmacy_claim["ndc_code"]) == {"00002321530", "12345067890"}


def test_inconsistent_header_quarantines_the_whole_claim(tmp_path):
    """Lines of one claim that disagree on a header field are all quarantined: which line is right is unknown."""
    def change(t):
        t["medical_claim"] += [medical_line("C9", 1), medical_line("C9", 2, diagnosis_code_1="C82.00"), medical_line("C9", 3)]
    report = _validate(tmp_path, change)
    bad = _errors(report, "header_inconsistent")
    assert set(bad["column"]) == {"diagnosis_code_1"}
    assert sorted(bad["row_number"].astype(int)) == [7, 8, 9]
    assert report.tables["medical_claim"].rows_valid == 6


def test_header_comparison_uses_normalised_codes(tmp_path):
    """A dotted code on one line and the same dotless code on another are consistent."""
    report = _validate(tmp_path, lambda t: t["medical_claim"].extend([medical_line("C9", 1, diagnosis_code_1="C83.38"), medical_line("C9", 2, diagnosis_code_1="C8338")]))
    assert report.error_count == 0


def test_duplicate_primary_key_keeps_first_row(tmp_path):
    """A repeated (claim_id, claim_line_number, data_source) is an error on the repeat; the first row stays."""
    report = _validate(tmp_path, lambda t: t["pharmacy_claim"].append(fill("R1", days_supply="60")))
    bad = _errors(report, "duplicate_key")
    assert bad["row_number"].astype(int).tolist() == [3]
    assert report.tables["pharmacy_claim"].rows_valid == 2


def test_orphan_claims_are_quarantined(tmp_path):
    """A claim for a person with no eligibility span cannot be attributed and is quarantined."""
    report = _validate(tmp_path, lambda t: (t["medical_claim"].append(medical_line("C9", 1, person_id="GHOST")), t["pharmacy_claim"].append(fill("R9", person_id="GHOST"))))
    bad = _errors(report, "orphan_claim")
    assert sorted(bad["table"]) == ["medical_claim", "pharmacy_claim"]
    assert set(bad["value"]) == {"GHOST"}


def test_claims_after_death_beyond_the_grace_day_are_errors(tmp_path):
    """Service the day of death or the day after is kept; two days after death is quarantined."""
    def change(t):
        t["eligibility"][2] = span("P2", gender="male", birth_date="1950-07-15", death_date="2023-09-01", death_flag="1")
        t["medical_claim"] += [
            medical_line("C7", 1, person_id="P2", claim_start_date="2023-09-01", claim_end_date="2023-09-01"),
            medical_line("C8", 1, person_id="P2", claim_start_date="2023-09-02", claim_end_date="2023-09-02"),
            medical_line("C9", 1, person_id="P2", claim_start_date="2023-09-03", claim_end_date="2023-09-03"),
        ]
    report = _validate(tmp_path, change)
    bad = _errors(report, "after_death")
    assert bad["value"].str[:10].tolist() == ["2023-09-03"]


def test_death_before_birth_is_an_error(tmp_path):
    """A death date before the birth date is impossible."""
    report = _validate(tmp_path, lambda t: t["eligibility"].append(span("P3", death_date="1950-01-01", death_flag="1")))
    assert _errors(report, "end_before_start")["column"].tolist() == ["death_date"]


def test_vocabulary_problems_are_warnings_and_rows_kept(tmp_path):
    """Gender outside male/female/unknown is a warning; the row is kept with gender 'unknown'."""
    directory = write_contract(tmp_path / "data", {**good_tables(), "eligibility": good_tables()["eligibility"] + [span("P3", gender="F", payer_type="tricare")]})
    result = validate_tables(directory)
    warnings = result.report.issues[result.report.issues["severity"] == "warning"]
    assert set(warnings["column"]) == {"gender", "payer_type"}
    assert result.eligibility.loc[result.eligibility["person_id"] == "P3", "gender"].item() == "unknown"
    assert result.report.error_count == 0


def test_bad_days_supply_is_a_warning_and_set_missing(tmp_path):
    """A zero or fractional days_supply is reported and set missing; the fill itself is kept."""
    directory = write_contract(tmp_path / "data", {**good_tables(), "pharmacy_claim": [fill("R1", days_supply="0")]})
    result = validate_tables(directory)
    assert result.report.issues["check"].tolist() == ["days_supply"]
    assert len(result.pharmacy_claim) == 1 and result.pharmacy_claim["days_supply"].isna().all()


def test_missing_required_values_are_errors(tmp_path):
    """A row without person_id or claim_start_date cannot be placed on a timeline and is quarantined."""
    report = _validate(tmp_path, lambda t: (t["medical_claim"].append(medical_line("C9", 1, person_id="")), t["medical_claim"].append(medical_line("C10", 1, claim_start_date=""))))
    assert sorted(_errors(report, "missing_value")["column"]) == ["claim_start_date", "person_id"]


def test_good_rows_of_a_partly_bad_file_survive(tmp_path):
    """In a file with a few bad rows of different kinds, every good row comes through and every bad row is reported."""
    def change(t):
        t["medical_claim"] += [
            medical_line("B1", 1, hcpcs_code="XX"),
            medical_line("B2", 1, claim_start_date="not a date"),
            medical_line("B3", 1, person_id="GHOST"),
        ]
    directory = write_contract(tmp_path / "data", _changed(change), "parquet")
    result = validate_tables(directory)
    assert len(result.medical_claim) == 6
    assert set(result.medical_claim["claim_id"]) == {"C1", "C2", "C3", "C4"}
    assert sorted(result.report.issues["row_number"].astype(int)) == [7, 8, 9]


def test_quarantine_file_holds_issues_and_raw_rows(tmp_path):
    """The quarantine file lists each issue with the full raw row, including columns cartscout does not read."""
    def change(t):
        t["medical_claim"].append(medical_line("B1", 1, hcpcs_code="XX", paid_amount="12.50", x_source_system="legacy"))
    report = _validate(tmp_path, change)
    quarantined = pq.read_table(report.quarantine_path).to_pandas()
    assert quarantined["check"].tolist() == ["code_format"]
    raw = quarantined["raw_row"].iloc[0]
    assert '"paid_amount":"12.50"' in raw and '"x_source_system":"legacy"' in raw and '"hcpcs_code":"XX"' in raw
    assert report.quarantine_path.parent == tmp_path / "data" / "quarantine"


def test_render_names_tables_checks_and_counts(tmp_path):
    """The summary shows rows read/valid/quarantined per table and a count per check."""
    report = _validate(tmp_path, lambda t: t["medical_claim"].append(medical_line("B1", 1, hcpcs_code="XX")))
    text = report.render()
    assert "medical_claim" in text and "code_format" in text and "hcpcs_code" in text
    assert "result: ERRORS (1 error(s), 0 warning(s))" in text


def test_crosswalk_with_malformed_ndc_is_reported(tmp_path):
    """An NDC crosswalk row whose NDC is malformed would map nothing, so validate reports it."""
    directory = write_contract(tmp_path / "data")
    (directory / "ndc_crosswalk.csv").write_text("ndc_code,generic\n00002321530,ibrutinib\n2321530,ibrutinib\n")
    report = validate_directory(directory)
    assert report.issues[["table", "value"]].values.tolist() == [["ndc_crosswalk", "2321530"]]


def _changed(change) -> dict:
    tables = good_tables()
    change(tables)
    return tables
