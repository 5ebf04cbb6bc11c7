"""`cartscout validate`: exit codes, --strict, and a clean message for a corrupt file."""

from typer.testing import CliRunner

from cartscout.cli import app
from tests.contract.factories import good_tables, medical_line, write_contract

runner = CliRunner()


def test_clean_directory_exits_zero(tmp_path):
    """A clean directory validates with exit code 0 even under --strict."""
    directory = write_contract(tmp_path / "data")
    result = runner.invoke(app, ["validate", "--data", str(directory), "--strict"])
    assert result.exit_code == 0, result.output
    assert "result: OK" in result.output


def test_row_errors_fail_only_with_strict(tmp_path):
    """Row-level errors are reported with exit 0 by default and exit 1 under --strict."""
    tables = good_tables()
    tables["medical_claim"].append(medical_line("BAD", 1, hcpcs_code="J93"))
    directory = write_contract(tmp_path / "data", tables)
    lenient = runner.invoke(app, ["validate", "--data", str(directory), "--quarantine", str(tmp_path / "q")])
    assert lenient.exit_code == 0 and "code_format" in lenient.output
    assert (tmp_path / "q" / "issues.parquet").is_file()
    strict = runner.invoke(app, ["validate", "--data", str(directory), "--strict"])
    assert strict.exit_code == 1


def test_corrupt_file_gives_a_clean_error_not_a_traceback(tmp_path):
    """A corrupt Parquet file is reported as FATAL naming the file, with exit 1 and no traceback."""
    directory = write_contract(tmp_path / "data", fmt="parquet")
    (directory / "eligibility.parquet").write_bytes(b"not parquet")
    result = runner.invoke(app, ["validate", "--data", str(directory)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "FATAL" in result.output and "eligibility.parquet" in result.output
    assert "Traceback" not in result.output
