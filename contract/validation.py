"""Validation of a contract directory: row-level checks, quarantine, and a readable report.

Each check runs over whole columns (pandas/numpy; code formats on distinct values only), so a
file of millions of lines is checked in seconds. A problem is either

- an **error**: the row is quarantined (written to the quarantine file with its raw contents) and
  does not enter the event model; or
- a **warning**: the row is kept (sometimes with the offending value set to missing or
  ``unknown``) and the problem is reported.

Nothing is dropped without an issue naming table, file, row number (1-based data row within the
file, header not counted), column, value and reason. A problem that stops a table from being read
at all (missing table, unreadable file, missing required column) is *fatal*.

Checks (``check`` name, severity, rule):

==================== ======== ==============================================================
check                severity rule
==================== ======== ==============================================================
missing_value        error    person_id, claim_id, claim_line_number, enrollment and claim
                              start/end dates, dispensing_date and ndc_code must be present
date_format          error    dates are YYYY-MM-DD calendar dates
date_range           error    dates lie in 1900-01-01..2100-12-31 (an enrollment end of
                              9999-12-31 means open-ended and is accepted); a birth date after
                              the latest service date in the data is in the future
end_before_start     error    enrollment, claim, claim line, admission/discharge end >= start;
                              death on or after birth
code_format          error    ICD-10-CM, ICD-10-PCS, HCPCS/CPT, NDC, revenue, bill type, place
                              of service, DRG shapes (see ``contract.code_formats``)
line_number          error    claim_line_number is a positive integer
header_inconsistent  error    header fields identical on every line of a claim; otherwise the
                              whole claim is quarantined (which line is right cannot be known)
duplicate_key        error    primary key seen before in the table (the first row is kept)
orphan_claim         error    claim for a person_id with no valid eligibility span
after_death          error    service date more than DEATH_GRACE_DAYS after the death date
vocabulary           warning  gender, payer_type, claim_type, death_flag outside Tuva's values
                              (gender becomes ``unknown``)
icd9                 warning  ICD-9 diagnosis/procedure codes are kept but not mapped
days_supply          warning  days_supply not a positive integer: set missing
death_flag_no_date   warning  death_flag set without death_date: no death event
unknown_column       warning  a column that is neither Tuva's nor ``x_``-prefixed (table-level)
==================== ======== ==============================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract import code_formats
from contract.reading import (
    FILE_COLUMN,
    ROW_COLUMN,
    ContractError,
    TableRead,
    locate_table,
    read_raw_rows,
    read_table,
)
from contract.schema import ELIGIBILITY, MEDICAL_CLAIM, PHARMACY_CLAIM, TABLES

ISSUE_COLUMNS = ("table", "file", "row_number", "column", "value", "reason", "check", "severity")
EARLIEST_DATE = pd.Timestamp("1900-01-01")
LATEST_DATE = pd.Timestamp("2100-12-31")
OPEN_END_DATE = pd.Timestamp("9999-12-31")
# Claims dated the day after death are common artefacts (death recorded at midnight, time-zone
# shifts, a late-night ED visit); anything later is another person's claim or a wrong death date.
DEATH_GRACE_DAYS = 1
GENDERS = ("male", "female", "unknown")
PAYER_TYPES = ("commercial", "medicare", "medicaid", "self-insured")
CLAIM_TYPES = ("professional", "institutional", "undetermined")
DEATH_FLAGS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "0": False, "false": False, "f": False, "no": False, "n": False}
_WIDE = range(1, 26)
MEDICAL_HEADER_COLUMNS = (
    "person_id", "claim_type", "claim_start_date", "claim_end_date", "admission_date", "discharge_date",
    "bill_type_code", "drg_code_type", "drg_code", "diagnosis_code_type", *(f"diagnosis_code_{i}" for i in _WIDE),
    "procedure_code_type", *(f"procedure_code_{i}" for i in _WIDE), *(f"procedure_date_{i}" for i in _WIDE),
)


@dataclass
class TableSummary:
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_valid: int = 0

    @property
    def rows_quarantined(self) -> int:
        return self.rows_read - self.rows_valid


@dataclass
class ValidationReport:
    """What validation found: per-table counts, every issue, fatal problems, the quarantine file."""

    data_dir: Path
    tables: dict[str, TableSummary]
    issues: pd.DataFrame
    fatal_messages: list[str]
    quarantine_path: Path | None = None

    @property
    def fatal(self) -> bool:
        return bool(self.fatal_messages)

    @property
    def error_count(self) -> int:
        return int((self.issues["severity"] == "error").sum()) + len(self.fatal_messages)

    @property
    def warning_count(self) -> int:
        return int((self.issues["severity"] == "warning").sum())

    def render(self) -> str:
        """A summary a data engineer can act on: counts per table, per check, and where to look."""
        lines = [f"cartscout validate: {self.data_dir}", ""]
        lines.append(f"{'table':<16}{'files':>6}{'rows read':>12}{'valid':>12}{'quarantined':>13}")
        for name, s in self.tables.items():
            lines.append(f"{name:<16}{len(s.files):>6}{s.rows_read:>12,}{s.rows_valid:>12,}{s.rows_quarantined:>13,}")
        for severity, title in (("error", "errors (rows quarantined)"), ("warning", "warnings (rows kept)")):
            subset = self.issues[self.issues["severity"] == severity]
            if subset.empty:
                continue
            lines += ["", f"{title}:"]
            counts = subset.groupby(["table", "check", "column"], sort=True).size()
            for (table, check, column), n in counts.items():
                example = subset[(subset["table"] == table) & (subset["check"] == check) & (subset["column"] == column)].iloc[0]
                lines.append(f"  {table:<15} {check:<20} {column:<24} {n:>8,}  e.g. {example['reason']}")
        if self.fatal_messages:
            lines += ["", "FATAL:"] + [f"  {m}" for m in self.fatal_messages]
        if self.quarantine_path is not None:
            lines += ["", f"issues written to {self.quarantine_path}"]
        status = "FATAL" if self.fatal else ("OK" if not self.error_count else "ERRORS")
        lines += ["", f"result: {status} ({self.error_count:,} error(s), {self.warning_count:,} warning(s))"]
        return "\n".join(lines)


@dataclass
class ValidatedTables:
    """The valid rows of each table (normalised), plus the report of what was set aside."""

    eligibility: pd.DataFrame
    medical_claim: pd.DataFrame
    pharmacy_claim: pd.DataFrame
    report: ValidationReport


def validate_directory(data_dir: Path, quarantine_dir: Path | None = None, ndc_crosswalk: Path | None = None) -> ValidationReport:
    """Read and check every table; write issues to ``quarantine_dir`` (default DATA/quarantine).

    ``ndc_crosswalk`` (default DATA/ndc_crosswalk.csv when present) is checked for its columns
    and NDC formats, since a crosswalk with malformed NDCs silently maps nothing.
    """
    data_dir = Path(data_dir)
    validated = validate_tables(data_dir)
    report = validated.report
    crosswalk = ndc_crosswalk or (data_dir / "ndc_crosswalk.csv")
    if crosswalk.is_file():
        _check_crosswalk(crosswalk, report)
    report.quarantine_path = write_quarantine(report, Path(quarantine_dir) if quarantine_dir else data_dir / "quarantine")
    return report


def validate_tables(data_dir: Path, *, person_ids: Iterable[str] | None = None) -> ValidatedTables:
    """Read the three tables and run every check; fatal problems leave empty tables in the result."""
    reads: dict[str, TableRead] = {}
    fatal: list[str] = []
    for name, spec in TABLES.items():
        try:
            reads[name] = read_table(data_dir, spec, person_ids=None if name == "eligibility" else person_ids)
        except ContractError as exc:
            fatal.append(str(exc))
    issues = _Issues()
    for read in reads.values():
        for column in read.unknown_columns:
            issues.table_warning(read.name, column, f"unknown column {column!r} (not Tuva, no x_ prefix): ignored")
    summaries = {name: TableSummary(files=[str(p) for p in _located(data_dir, name)]) for name in TABLES}
    if fatal:
        report = ValidationReport(data_dir, summaries, issues.frame(), fatal)
        empty = pd.DataFrame()
        return ValidatedTables(empty, empty, empty, report)
    elig = _check_eligibility(reads["eligibility"].frame, issues)
    med = _check_medical(reads["medical_claim"].frame, issues)
    rx = _check_pharmacy(reads["pharmacy_claim"].frame, issues)
    _check_birth_horizon(elig, med, rx, issues)
    persons = _valid(elig, issues, ELIGIBILITY.name)
    deaths = persons.groupby("person_id")["death_date"].max()
    _check_person_links(med, MEDICAL_CLAIM.name, "claim_start_date", persons, deaths, issues)
    _check_person_links(rx, PHARMACY_CLAIM.name, "dispensing_date", persons, deaths, issues)
    frames = {ELIGIBILITY.name: elig, MEDICAL_CLAIM.name: med, PHARMACY_CLAIM.name: rx}
    valid = {name: _valid(frame, issues, name) for name, frame in frames.items()}
    for name, frame in frames.items():
        summaries[name].rows_read = len(frame)
        summaries[name].rows_valid = len(valid[name])
    report = ValidationReport(data_dir, summaries, issues.frame(), [])
    return ValidatedTables(valid[ELIGIBILITY.name], valid[MEDICAL_CLAIM.name], valid[PHARMACY_CLAIM.name], report)


def _located(data_dir: Path, table: str) -> list[Path]:
    try:
        return locate_table(data_dir, table)
    except ContractError:
        return []


def write_quarantine(report: ValidationReport, quarantine_dir: Path) -> Path:
    """Write every issue, with the raw row it concerns (JSON of all its columns), to Parquet."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    path = quarantine_dir / "issues.parquet"
    issues = report.issues.copy()
    raw = pd.Series(pd.NA, index=issues.index, dtype="string")
    with_rows = issues[issues["row_number"].notna()]
    for file, group in with_rows.groupby("file"):
        rows = group["row_number"].astype("int64").to_numpy() - 1
        unique_rows = np.unique(rows)
        try:
            frame = read_raw_rows(Path(file), unique_rows)
        except ContractError:
            continue
        as_json = pd.Series(frame.to_json(orient="records", lines=True).splitlines(), index=unique_rows, dtype="string")
        raw.loc[group.index] = as_json.reindex(rows).to_numpy()
    issues["raw_row"] = raw
    issues.to_parquet(path, index=False)
    return path


class _Issues:
    """Collects issues as small frames and tracks which rows of each table are quarantined."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []
        self.bad: dict[str, np.ndarray] = {}

    def rows(self, table: str, frame: pd.DataFrame, mask, column: str, reason, check: str, severity: str = "error", values: pd.Series | None = None) -> None:
        mask = np.asarray(mask, dtype=bool)
        if severity == "error":
            bad = self.bad.setdefault(table, np.zeros(len(frame), dtype=bool))
            bad |= mask
        if not mask.any():
            return
        source = values if values is not None else frame[column]
        reasons = reason[mask] if isinstance(reason, pd.Series) else reason
        self._parts.append(
            pd.DataFrame(
                {
                    "table": table,
                    "file": frame[FILE_COLUMN].to_numpy()[mask],
                    "row_number": frame[ROW_COLUMN].to_numpy()[mask] + 1,
                    "column": column,
                    "value": source[mask].astype("str").to_numpy(),
                    "reason": reasons if isinstance(reasons, str) else np.asarray(reasons, dtype=object),
                    "check": check,
                    "severity": severity,
                }
            )
        )

    def table_warning(self, table: str, column: str, reason: str, check: str = "unknown_column") -> None:
        self._parts.append(pd.DataFrame([{"table": table, "file": pd.NA, "row_number": pd.NA, "column": column, "value": pd.NA, "reason": reason, "check": check, "severity": "warning"}]))

    def frame(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({c: pd.Series(dtype="Int64" if c == "row_number" else "string") for c in ISSUE_COLUMNS})
        out = pd.concat(self._parts, ignore_index=True)
        out["row_number"] = out["row_number"].astype("Int64")
        for c in ISSUE_COLUMNS:
            if c != "row_number":
                out[c] = out[c].astype("string")
        return out[list(ISSUE_COLUMNS)]


def _valid(frame: pd.DataFrame, issues: _Issues, table: str) -> pd.DataFrame:
    bad = issues.bad.get(table, np.zeros(len(frame), dtype=bool))
    return frame[~bad[: len(frame)]].reset_index(drop=True)


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as stripped text with empty strings as missing (all-missing when absent)."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="str")
    values = frame[column].astype("str").str.strip()
    return values.where(values.ne(""))


def _require(frame: pd.DataFrame, table: str, columns: Iterable[str], issues: _Issues) -> None:
    for column in columns:
        missing = _text(frame, column).isna()
        issues.rows(table, frame, missing, column, f"{column} is missing", "missing_value")


def _parse_dates(frame: pd.DataFrame, table: str, column: str, issues: _Issues, *, required: bool = False, open_end: bool = False) -> None:
    """Parse ``column`` in place to datetime64[s]; report unparseable and implausible dates."""
    if column not in frame.columns:
        if required:
            raise ValueError(f"{table}.{column} should have been read")  # reading enforces required columns
        return
    raw = frame[column]
    if not required and raw.isna().all():
        frame[column] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s]")
        return
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
        missing = raw.isna()
    else:
        text = _text(frame, column)
        parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        missing = text.isna()
        issues.rows(table, frame, ~missing & parsed.isna(), column, f"{column} is not a YYYY-MM-DD date", "date_format", values=raw)
    if required:
        issues.rows(table, frame, missing, column, f"{column} is missing", "missing_value", values=raw)
    too_early = parsed < EARLIEST_DATE
    too_late = parsed > LATEST_DATE
    if open_end:
        too_late &= parsed != OPEN_END_DATE
    issues.rows(table, frame, too_early, column, f"{column} before {EARLIEST_DATE.date()}", "date_range", values=raw)
    issues.rows(table, frame, too_late, column, f"{column} after {LATEST_DATE.date()}", "date_range", values=raw)
    frame[column] = parsed.astype("datetime64[s]")


def _check_order(frame: pd.DataFrame, table: str, start: str, end: str, issues: _Issues) -> None:
    if start not in frame.columns or end not in frame.columns:
        return
    before = (frame[end] < frame[start]).fillna(False).to_numpy(dtype=bool)
    issues.rows(table, frame, before, end, f"{end} before {start}", "end_before_start")


def _normalise_codes(frame: pd.DataFrame, table: str, column: str, normalise, label: str, issues: _Issues, skip=None) -> None:
    if column not in frame.columns:
        return
    raw = frame[column]
    values = raw.where(~skip) if skip is not None else raw
    normal, malformed = normalise(values)
    issues.rows(table, frame, malformed, column, f"{column} is not a valid {label} code", "code_format", values=raw)
    frame[column] = normal.where(~skip, _text(frame, column)) if skip is not None else normal


def _check_vocabulary(frame: pd.DataFrame, table: str, column: str, allowed: tuple[str, ...], issues: _Issues, *, replace_with: str | None = None) -> None:
    if column not in frame.columns:
        return
    raw = frame[column]
    values = _text(frame, column).str.lower()
    outside = values.notna() & ~values.isin(allowed)
    note = f"; set to {replace_with!r}" if replace_with else "; kept"
    issues.rows(table, frame, outside, column, f"{column} not one of {', '.join(allowed)}{note}", "vocabulary", "warning", values=raw)
    if replace_with is not None:
        values = values.where(~outside, replace_with).fillna(replace_with)
    frame[column] = values


def _check_duplicates(frame: pd.DataFrame, table: str, key: tuple[str, ...], issues: _Issues) -> None:
    columns = [c for c in key if c in frame.columns]
    duplicated = frame.duplicated(columns, keep="first").to_numpy()
    issues.rows(table, frame, duplicated, key[0], f"duplicate primary key ({', '.join(columns)}) seen on an earlier row", "duplicate_key")


def _check_eligibility(frame: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    t = ELIGIBILITY.name
    frame = frame.copy()
    frame["data_source"] = _text(frame, "data_source").fillna("")
    _require(frame, t, ("person_id",), issues)
    if "death_date" not in frame.columns:
        frame["death_date"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s]")
    for column in ("birth_date", "death_date"):
        _parse_dates(frame, t, column, issues)
    _parse_dates(frame, t, "enrollment_start_date", issues, required=True)
    _parse_dates(frame, t, "enrollment_end_date", issues, required=True, open_end=True)
    _check_order(frame, t, "enrollment_start_date", "enrollment_end_date", issues)
    _check_order(frame, t, "birth_date", "death_date", issues)
    _check_vocabulary(frame, t, "gender", GENDERS, issues, replace_with="unknown")
    _check_vocabulary(frame, t, "payer_type", PAYER_TYPES, issues)
    if "death_flag" in frame.columns:
        flag_text = _text(frame, "death_flag").str.lower()
        flag = flag_text.map(DEATH_FLAGS)
        issues.rows(t, frame, flag_text.notna() & flag.isna(), "death_flag", "death_flag not 0/1: ignored", "vocabulary", "warning")
        no_date = flag.eq(True).fillna(False).to_numpy(dtype=bool) & frame["death_date"].isna().to_numpy()
        issues.rows(t, frame, no_date, "death_flag", "death_flag set without death_date: no death event", "death_flag_no_date", "warning")
    _check_duplicates(frame, t, ELIGIBILITY.primary_key, issues)
    return frame


def _check_claim_keys(frame: pd.DataFrame, table: str, issues: _Issues) -> None:
    frame["data_source"] = _text(frame, "data_source").fillna("")
    _require(frame, table, ("claim_id", "person_id"), issues)
    raw = frame["claim_line_number"]
    number = pd.to_numeric(_text(frame, "claim_line_number"), errors="coerce")
    bad = ~(number.notna() & (number >= 1) & (number == np.floor(number))).to_numpy(dtype=bool)
    issues.rows(table, frame, bad, "claim_line_number", "claim_line_number is not a positive integer", "line_number", values=raw)
    frame["claim_line_number"] = number.where(~bad).astype("Int64")


def _check_medical(frame: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    t = MEDICAL_CLAIM.name
    frame = frame.copy()
    _check_claim_keys(frame, t, issues)
    _parse_dates(frame, t, "claim_start_date", issues, required=True)
    _parse_dates(frame, t, "claim_end_date", issues, required=True)
    for column in ("claim_line_start_date", "claim_line_end_date", "admission_date", "discharge_date", *(f"procedure_date_{i}" for i in _WIDE)):
        _parse_dates(frame, t, column, issues)
    _check_order(frame, t, "claim_start_date", "claim_end_date", issues)
    _check_order(frame, t, "claim_line_start_date", "claim_line_end_date", issues)
    _check_order(frame, t, "admission_date", "discharge_date", issues)
    _check_vocabulary(frame, t, "claim_type", CLAIM_TYPES, issues)
    for column in ("diagnosis_code_type", "procedure_code_type", "drg_code_type"):
        if column in frame.columns:
            frame[column] = _text(frame, column).str.lower()
    icd9_dx = _text(frame, "diagnosis_code_type").eq("icd-9-cm").fillna(False)
    icd9_px = _text(frame, "procedure_code_type").eq("icd-9-pcs").fillna(False)
    issues.rows(t, frame, icd9_dx, "diagnosis_code_type", "ICD-9-CM diagnoses are kept but not mapped to events", "icd9", "warning")
    issues.rows(t, frame, icd9_px, "procedure_code_type", "ICD-9-PCS procedures are kept but not mapped to events", "icd9", "warning")
    for i in _WIDE:
        _normalise_codes(frame, t, f"diagnosis_code_{i}", code_formats.normalise_icd10cm, "ICD-10-CM", issues, skip=icd9_dx)
        _normalise_codes(frame, t, f"procedure_code_{i}", code_formats.normalise_icd10pcs, "ICD-10-PCS", issues, skip=icd9_px)
    _normalise_codes(frame, t, "hcpcs_code", code_formats.normalise_hcpcs, "HCPCS/CPT", issues)
    _normalise_codes(frame, t, "revenue_center_code", code_formats.normalise_revenue, "revenue centre", issues)
    _normalise_codes(frame, t, "bill_type_code", code_formats.normalise_bill_type, "bill type", issues)
    _normalise_codes(frame, t, "place_of_service_code", code_formats.normalise_place_of_service, "place of service", issues)
    _normalise_codes(frame, t, "drg_code", code_formats.normalise_drg, "DRG", issues)
    _check_header_consistency(frame, issues)
    _check_duplicates(frame, t, MEDICAL_CLAIM.primary_key, issues)
    return frame


def _check_header_consistency(frame: pd.DataFrame, issues: _Issues) -> None:
    """Quarantine every line of a claim whose header fields differ between its lines.

    One hash per line over all header fields finds the inconsistent claims in a single group-by;
    only those few claims are then examined column by column to name the field.
    """
    t = MEDICAL_CLAIM.name
    keys = ["claim_id", "data_source"]
    columns = [c for c in MEDICAL_HEADER_COLUMNS if c in frame.columns]
    multi = frame.duplicated(keys, keep=False).to_numpy()
    if not multi.any():
        return
    lines = frame.loc[multi, keys + columns]
    digest = pd.util.hash_pandas_object(lines[columns], index=False)
    distinct = pd.DataFrame({"c": lines["claim_id"], "d": lines["data_source"], "h": digest}).groupby(["c", "d"], sort=False, dropna=False)["h"].transform("nunique")
    suspect = distinct.to_numpy() > 1
    if not suspect.any():
        return
    claims = lines[suspect]
    positions = np.flatnonzero(multi)[suspect]
    for column in columns:
        values = claims[column]
        values = pd.Series(values.to_numpy().view("int64"), index=values.index) if pd.api.types.is_datetime64_any_dtype(values) else values.astype("str").fillna("\x00")
        differs = pd.DataFrame({"c": claims["claim_id"], "d": claims["data_source"], "v": values}).groupby(["c", "d"], sort=False, dropna=False)["v"].transform("nunique").to_numpy() > 1
        inconsistent = np.zeros(len(frame), dtype=bool)
        inconsistent[positions[differs]] = True
        issues.rows(t, frame, inconsistent, column, f"header field {column} differs across the lines of the claim; whole claim quarantined", "header_inconsistent")


def _check_pharmacy(frame: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    t = PHARMACY_CLAIM.name
    frame = frame.copy()
    _check_claim_keys(frame, t, issues)
    _parse_dates(frame, t, "dispensing_date", issues, required=True)
    _require(frame, t, ("ndc_code",), issues)
    _normalise_codes(frame, t, "ndc_code", code_formats.normalise_ndc, "NDC (11 digits, or dashed 10-digit)", issues)
    if "days_supply" in frame.columns:
        raw = frame["days_supply"]
        text = _text(frame, "days_supply")
        number = pd.to_numeric(text, errors="coerce")
        bad = (text.notna() & ~(number.notna() & (number >= 1) & (number == np.floor(number)))).to_numpy(dtype=bool)
        issues.rows(t, frame, bad, "days_supply", "days_supply is not a positive integer: set missing", "days_supply", "warning", values=raw)
        frame["days_supply"] = number.where(~bad).astype("Int32")
    _check_duplicates(frame, t, PHARMACY_CLAIM.primary_key, issues)
    return frame


def _check_birth_horizon(elig: pd.DataFrame, med: pd.DataFrame, rx: pd.DataFrame, issues: _Issues) -> None:
    """A birth date after every service date in the delivery is in the future of the data."""
    candidates = [s.max() for s in (med["claim_end_date"], rx["dispensing_date"], elig["enrollment_start_date"]) if len(s)]
    candidates = [c for c in candidates if pd.notna(c) and c <= LATEST_DATE]
    if not candidates:
        return
    horizon = max(candidates)
    future = (elig["birth_date"] > horizon).fillna(False).to_numpy(dtype=bool)
    issues.rows(ELIGIBILITY.name, elig, future, "birth_date", f"birth_date after the latest service date in the data ({horizon.date()})", "date_range")


def _check_person_links(frame: pd.DataFrame, table: str, date_column: str, persons: pd.DataFrame, deaths: pd.Series, issues: _Issues) -> None:
    person = _text(frame, "person_id")
    orphan = (person.notna() & ~person.isin(persons["person_id"])).to_numpy(dtype=bool)
    issues.rows(table, frame, orphan, "person_id", "no valid eligibility span for this person_id", "orphan_claim")
    death = pd.Series(deaths.astype("datetime64[s]").reindex(person.to_numpy()).to_numpy(), index=frame.index)
    limit = death + pd.Timedelta(days=DEATH_GRACE_DAYS)
    after = (frame[date_column] > limit).fillna(False).to_numpy(dtype=bool)
    reason = "service date after the recorded death date " + death.astype("str").str[:10] + f" (grace {DEATH_GRACE_DAYS} day)"
    issues.rows(table, frame, after, date_column, reason, "after_death")


def _check_crosswalk(path: Path, report: ValidationReport) -> None:
    """Add issues for an NDC crosswalk that lacks its columns or holds malformed NDCs."""
    try:
        crosswalk = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        report.fatal_messages.append(f"cannot read NDC crosswalk {path}: {str(exc).splitlines()[0]}")
        return
    columns = {c.lower() for c in crosswalk.columns}
    if not {"ndc_code", "generic"} <= columns:
        report.fatal_messages.append(f"NDC crosswalk {path} lacks column(s) ndc_code and/or generic")
        return
    crosswalk = crosswalk.rename(columns=str.lower)
    _, malformed = code_formats.normalise_ndc(crosswalk["ndc_code"])
    if malformed.any():
        extra = pd.DataFrame(
            {
                "table": "ndc_crosswalk",
                "file": str(path),
                "row_number": np.flatnonzero(malformed.to_numpy()) + 1,
                "column": "ndc_code",
                "value": crosswalk.loc[malformed, "ndc_code"].to_numpy(),
                "reason": "ndc_code is not a valid NDC: crosswalk row ignored",
                "check": "code_format",
                "severity": "warning",
            }
        ).astype({"row_number": "Int64"})
        report.issues = pd.concat([report.issues, extra.astype({c: "string" for c in ISSUE_COLUMNS if c != "row_number"})], ignore_index=True)
