"""Reading the contract tables from a data directory, as strings, without losing leading zeros.

A table arrives as one file (``medical_claim.csv``, ``medical_claim.parquet``) or as a folder of
part files (``medical_claim/part-0001.parquet`` ...). Every ``varchar`` column is read as text so
that NDCs, revenue codes, bill types, DRGs and places of service keep their leading zeros; date
columns stay as typed Parquet dates when they are, and as text otherwise (validation parses them).
Each row keeps where it came from (``_file``, ``_row``) so that every problem can be reported with
its file and row number. Other files in the directory are ignored.

Errors::

    ContractError                  anything that stops a table from being read at all
    ├── TableMissingError          no file or part folder for a required table
    ├── AmbiguousTableError        the table is present in two forms (CSV and Parquet)
    ├── UnreadableFileError        corrupt, truncated or empty file; names the file
    ├── MissingColumnError         a column cartscout requires is absent; names file and column
    └── ContractInvalidError       loading refused because validation found a fatal problem
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from contract.schema import EXTENSION_PREFIX, TableSpec

FILE_COLUMN = "_file"
ROW_COLUMN = "_row"
_BATCH_ROWS = 262_144
_FORMATS = (".parquet", ".csv")


class ContractError(Exception):
    """Base class: a contract directory or file cannot be used as given."""


class TableMissingError(ContractError):
    def __init__(self, table: str, data_dir: Path):
        self.table, self.data_dir = table, data_dir
        super().__init__(f"table {table!r} not found in {data_dir}: expected {table}.csv, {table}.parquet or a {table}/ folder of part files")


class AmbiguousTableError(ContractError):
    def __init__(self, table: str, paths: list[Path]):
        self.table, self.paths = table, paths
        super().__init__(f"table {table!r} is present more than once ({', '.join(p.name for p in paths)}); keep one form")


class UnreadableFileError(ContractError):
    def __init__(self, path: Path, detail: str):
        self.path, self.detail = path, detail
        super().__init__(f"cannot read {path}: {detail}")


class MissingColumnError(ContractError):
    def __init__(self, table: str, path: Path, columns: list[str]):
        self.table, self.path, self.columns = table, path, columns
        super().__init__(f"{path}: table {table!r} lacks required column(s): {', '.join(columns)}")


class ContractInvalidError(ContractError):
    def __init__(self, report):
        self.report = report
        super().__init__("the contract directory has fatal problems:\n" + "\n".join(report.fatal_messages))


@dataclass
class TableRead:
    """One table as read: the frame (``_file``/``_row`` added), the files and their column layout."""

    name: str
    frame: pd.DataFrame
    files: list[Path]
    unknown_columns: list[str] = field(default_factory=list)
    extension_columns: list[str] = field(default_factory=list)


def locate_table(data_dir: Path, table: str) -> list[Path]:
    """The file(s) holding ``table``: one file, or the sorted part files of a folder."""
    candidates = [data_dir / f"{table}{suffix}" for suffix in _FORMATS if (data_dir / f"{table}{suffix}").is_file()]
    folder = data_dir / table
    if folder.is_dir():
        candidates.append(folder)
    if not candidates:
        raise TableMissingError(table, data_dir)
    if len(candidates) > 1:
        raise AmbiguousTableError(table, candidates)
    if candidates[0].is_file():
        return candidates
    parts = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _FORMATS and not p.name.startswith((".", "_")))
    if not parts:
        raise TableMissingError(table, data_dir)
    if len({p.suffix for p in parts}) > 1:
        raise AmbiguousTableError(table, parts)
    return parts


def read_columns(path: Path) -> list[str]:
    """Column names of one file, read from the Parquet footer or the CSV header line."""
    try:
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, pa.ArrowException, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFileError(path, _describe(exc)) from None
    if not header:
        raise UnreadableFileError(path, "empty file (no header line)")
    return [c.strip() for c in header]


def read_table(data_dir: Path, spec: TableSpec, *, person_ids: Iterable[str] | None = None) -> TableRead:
    """Read the columns cartscout uses (plus ``x_`` extensions) of every file of one table.

    Columns outside Tuva's list and without the ``x_`` prefix are not read; they are returned as
    ``unknown_columns`` for a warning. A required column missing from any file is a
    :class:`MissingColumnError`. With ``person_ids`` only those persons' rows are kept, filtering
    batch by batch so memory follows the rows kept, not the file.
    """
    files = locate_table(data_dir, spec.name)
    wanted_ids = None if person_ids is None else pa.array(sorted({str(p) for p in person_ids}), pa.string())
    frames, unknown, extensions = [], [], []
    for path in files:
        names = read_columns(path)
        missing = [c for c in spec.required if c not in names]
        if missing:
            raise MissingColumnError(spec.name, path, missing)
        ext = [c for c in names if c.startswith(EXTENSION_PREFIX)]
        unknown += [c for c in names if c not in spec.columns and c not in ext and c not in unknown]
        extensions += [c for c in ext if c not in extensions]
        columns = [c for c in names if c in spec.used or c in ext]
        table = _read_file(path, columns, spec, wanted_ids)
        frames.append(_to_pandas(table, spec, path))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return TableRead(spec.name, frame, files, unknown, extensions)


def read_raw_rows(path: Path, rows: np.ndarray) -> pd.DataFrame:
    """All columns, as text, of the given 0-based data rows of one file (for the quarantine file)."""
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:
            table = _read_csv(path, read_columns(path))
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableFileError(path, _describe(exc)) from None
    taken = table.take(pa.array(np.asarray(rows, dtype=np.int64)))
    return pd.DataFrame({name: taken.column(name).cast(pa.string()).to_pandas() for name in taken.column_names})


def _read_file(path: Path, columns: list[str], spec: TableSpec, wanted_ids: pa.Array | None) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            batches = pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS, columns=columns)
        else:
            batches = _csv_batches(path, columns)
        kept, offset = [], 0
        for batch in batches:
            index = pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64))
            offset += batch.num_rows
            batch = pa.Table.from_batches([batch]).append_column(ROW_COLUMN, index)
            if wanted_ids is not None:
                batch = batch.filter(pc.is_in(batch.column("person_id").cast(pa.string()), value_set=wanted_ids))
            kept.append(batch)
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise UnreadableFileError(path, _describe(exc)) from None
    if not kept:
        return _empty_arrow(columns)
    return pa.concat_tables(kept, promote_options="permissive")


def _csv_batches(path: Path, columns: list[str]):
    names = read_columns(path)
    options = _csv_convert_options(names, columns)
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24), convert_options=options)
    yield from reader


def _read_csv(path: Path, columns: list[str]) -> pa.Table:
    return pacsv.read_csv(path, convert_options=_csv_convert_options(read_columns(path), columns))


def _csv_convert_options(names: list[str], columns: list[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={c: pa.string() for c in names},
        include_columns=columns,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _empty_arrow(columns: list[str]) -> pa.Table:
    arrays = {c: pa.array([], pa.string()) for c in columns}
    arrays[ROW_COLUMN] = pa.array([], pa.int64())
    return pa.table(arrays)


def _to_pandas(table: pa.Table, spec: TableSpec, path: Path) -> pd.DataFrame:
    """Text for codes and identifiers, day timestamps for typed dates, text for everything else."""
    out: dict[str, pd.Series] = {}
    for name in table.column_names:
        column = table.column(name)
        if name == ROW_COLUMN:
            out[name] = pd.Series(column.to_numpy(), dtype="int64")
        elif spec.columns.get(name) == "date" and (pa.types.is_date(column.type) or pa.types.is_timestamp(column.type)):
            out[name] = pd.Series(column.cast(pa.timestamp("s")).to_pandas(), dtype="datetime64[s]")
        else:
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            out[name] = pd.Series(column.cast(pa.string()).to_pandas(), dtype="str")
    frame = pd.DataFrame(out)
    frame[FILE_COLUMN] = str(path)
    return frame


def _describe(exc: BaseException) -> str:
    """The library's message without row contents (which may hold member data)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1 (truncated or malformed row)", text)
    if "Parquet magic bytes" in text or "magic" in text.lower():
        return "not a valid Parquet file (corrupt or truncated): " + text
    return text
