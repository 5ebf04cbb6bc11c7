"""Reading tables from CSV, Parquet or part folders, and failing clearly on files that cannot be read."""

import pandas as pd
import pytest

from contract.loading import load_directory
from contract.reading import AmbiguousTableError, MissingColumnError, TableMissingError, UnreadableFileError, read_table
from contract.schema import MEDICAL_CLAIM, PHARMACY_CLAIM
from contract.validation import validate_directory
from tests.contract.factories import good_tables, medical_line, write_contract


@pytest.mark.slow
def test_csv_parquet_and_part_folders_give_identical_events(tmp_path):
    """The same tables as CSV, as Parquet, and as folders of part files map to identical events and persons."""
    loaded = [
        load_directory(write_contract(tmp_path / "csv", fmt="csv")),
        load_directory(write_contract(tmp_path / "parquet", fmt="parquet")),
        load_directory(write_contract(tmp_path / "parts_csv", fmt="csv", parts=2)),
        load_directory(write_contract(tmp_path / "parts_parquet", fmt="parquet", parts=3)),
    ]
    for other in loaded[1:]:
        pd.testing.assert_frame_equal(loaded[0].events, other.events)
        pd.testing.assert_frame_equal(loaded[0].persons, other.persons)
    assert len(loaded[0].events) > 10


def test_leading_zeros_survive_csv_reading(tmp_path):
    """Codes are read as text, so an NDC, revenue code or bill type keeps its leading zeros."""
    directory = write_contract(tmp_path / "data")
    rx = read_table(directory, PHARMACY_CLAIM).frame
    med = read_table(directory, MEDICAL_CLAIM).frame
    assert rx.loc[0, "ndc_code"] == "00002321530"
    assert "0111" in set(med["bill_type_code"].dropna()) and "0120" in set(med["revenue_center_code"].dropna())


def test_missing_table_is_fatal(tmp_path):
    """A directory without pharmacy_claim is a fatal problem naming the table."""
    tables = good_tables()
    del tables["pharmacy_claim"]
    report = validate_directory(write_contract(tmp_path / "data", tables))
    assert report.fatal and "pharmacy_claim" in report.fatal_messages[0]
    with pytest.raises(TableMissingError):
        read_table(tmp_path / "data", PHARMACY_CLAIM)


def test_missing_required_column_is_fatal_and_named(tmp_path):
    """A medical_claim file without claim_start_date cannot be used; the error names file and column."""
    tables = good_tables()
    tables["medical_claim"] = [{k: v for k, v in row.items() if k != "claim_start_date"} for row in tables["medical_claim"]]
    directory = write_contract(tmp_path / "data", tables)
    report = validate_directory(directory)
    assert report.fatal and "claim_start_date" in report.fatal_messages[0] and "medical_claim.csv" in report.fatal_messages[0]
    with pytest.raises(MissingColumnError):
        read_table(directory, MEDICAL_CLAIM)


def test_corrupt_parquet_is_an_unreadable_file_error(tmp_path):
    """A Parquet file with garbage bytes raises a ContractError naming the file, not a library traceback."""
    directory = write_contract(tmp_path / "data", fmt="parquet")
    path = directory / "medical_claim.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all" * 10)
    with pytest.raises(UnreadableFileError) as caught:
        read_table(directory, MEDICAL_CLAIM)
    assert str(path) in str(caught.value)


def test_truncated_parquet_is_an_unreadable_file_error(tmp_path):
    """A Parquet file cut short (footer lost in transfer) is reported as unreadable."""
    directory = write_contract(tmp_path / "data", fmt="parquet")
    path = directory / "pharmacy_claim.parquet"
    path.write_bytes(path.read_bytes()[:-40])
    report = validate_directory(directory)
    assert report.fatal and "pharmacy_claim.parquet" in report.fatal_messages[0]


def test_truncated_csv_is_an_unreadable_file_error_without_row_contents(tmp_path):
    """A CSV whose last row was cut mid-line is unreadable; the message names the file but does not echo member data."""
    directory = write_contract(tmp_path / "data")
    path = directory / "medical_claim.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1] + "C9,1,professional,P1,SECRETNAME")
    with pytest.raises(UnreadableFileError) as caught:
        read_table(directory, MEDICAL_CLAIM)
    assert "medical_claim.csv" in str(caught.value) and "SECRETNAME" not in str(caught.value)


def test_empty_file_is_unreadable(tmp_path):
    """A zero-byte table file has no header and is reported as unreadable."""
    directory = write_contract(tmp_path / "data")
    (directory / "pharmacy_claim.csv").write_text("")
    with pytest.raises(UnreadableFileError):
        read_table(directory, PHARMACY_CLAIM)


def test_two_forms_of_one_table_are_ambiguous(tmp_path):
    """medical_claim.csv next to medical_claim.parquet is refused rather than guessing which is current."""
    directory = write_contract(tmp_path / "data")
    write_contract(tmp_path / "pq", fmt="parquet")
    (directory / "medical_claim.parquet").write_bytes((tmp_path / "pq" / "medical_claim.parquet").read_bytes())
    with pytest.raises(AmbiguousTableError):
        read_table(directory, MEDICAL_CLAIM)


def test_unknown_columns_warn_and_extension_columns_pass_through(tmp_path):
    """A column neither Tuva's nor x_-prefixed is a warning; an x_ column is read without comment; Tuva columns are silent."""
    tables = good_tables()
    tables["medical_claim"] = [{**row, "weird_col": "1", "x_ndc_code": "00002321530", "paid_amount": "10"} for row in tables["medical_claim"]]
    directory = write_contract(tmp_path / "data", tables)
    report = validate_directory(directory)
    warnings = report.issues[report.issues["severity"] == "warning"]
    assert warnings["column"].tolist() == ["weird_col"] and warnings["check"].tolist() == ["unknown_column"]
    assert report.error_count == 0
    read = read_table(directory, MEDICAL_CLAIM)
    assert read.extension_columns == ["x_ndc_code"] and "x_ndc_code" in read.frame.columns


def test_other_files_in_the_directory_are_ignored(tmp_path):
    """Files that are not contract tables (notes, truth/, quarantine/) do not disturb reading."""
    directory = write_contract(tmp_path / "data")
    (directory / "README.txt").write_text("hello")
    (directory / "truth").mkdir()
    (directory / "truth" / "persons.csv").write_text("person_id\nP1\n")
    assert validate_directory(directory).error_count == 0


def test_person_filter_reads_only_those_claims(tmp_path):
    """With person_ids, only those persons' claim lines are read, keeping their original row numbers."""
    tables = good_tables()
    tables["medical_claim"].append(medical_line("C9", 1, person_id="P2", hcpcs_code="BAD"))
    directory = write_contract(tmp_path / "data", tables, fmt="parquet")
    read = read_table(directory, MEDICAL_CLAIM, person_ids=["P2"])
    assert set(read.frame["person_id"]) == {"P2"}
    assert read.frame["_row"].tolist() == [5, 6]


def test_csv_with_byte_order_mark_is_read(tmp_path):
    """A CSV saved by a spreadsheet with a UTF-8 byte-order mark still has its first column found."""
    directory = write_contract(tmp_path / "data")
    path = directory / "eligibility.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = validate_directory(directory)
    assert not report.fatal and report.error_count == 0
