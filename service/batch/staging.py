"""Columnar narrowing of the input to the cohort's rows, staged once, handed out chunk by chunk.

Most members of a health plan have no blood-cancer code, and at scale the time goes into reading
claim lines. So the run reads the contract tables once with DuckDB (only the rows of cohort
candidates survive the scan), writes those rows to one Parquet file per table ordered by chunk, and
then hands each chunk to the contract loader as a small contract directory of its own. The loader,
validation and the feature code see exactly the files a payer sent, only fewer rows; nothing here
interprets a claim.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contract.reading import locate_table
from contract.schema import TABLES

CHUNK_COLUMN = "_chunk"
STAGE_ROW_GROUP = 20_000


def connect(memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a memory ceiling (it spills beyond it)."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'").fetchall()
    con.execute("SET preserve_insertion_order = true").fetchall()
    return con


def table_source(data_dir: Path, table: str) -> str:
    """DuckDB table function reading every file of ``table``; CSV is read as text, like the loader does."""
    files = locate_table(Path(data_dir), table)
    listed = "[" + ", ".join(_quote(str(p)) for p in files) + "]"
    if files[0].suffix == ".parquet":
        return f"read_parquet({listed}, union_by_name = true)"
    return f"read_csv({listed}, header = true, all_varchar = true, union_by_name = true)"


def list_members(con: duckdb.DuckDBPyConnection, data_dir: Path) -> pa.Array:
    """Every distinct person_id in the eligibility table, sorted: the population a run must account for."""
    source = table_source(data_dir, "eligibility")
    table = con.sql(
        f"SELECT DISTINCT CAST(person_id AS VARCHAR) AS person_id FROM {source} WHERE person_id IS NOT NULL ORDER BY 1"
    ).to_arrow_table()
    return _column(table, "person_id").cast(pa.string())


def latest_service_date(con: duckdb.DuckDBPyConnection, data_dir: Path) -> date | None:
    """The last service or dispensing date in the claims: the default as-of date of a run.

    Using the data's own horizon (not today's date) keeps a rerun on the same files identical.
    """
    medical = table_source(data_dir, "medical_claim")
    pharmacy = table_source(data_dir, "pharmacy_claim")
    rows = con.execute(
        f"""SELECT greatest(
                (SELECT max(TRY_CAST(claim_end_date AS DATE)) FROM {medical}),
                (SELECT max(TRY_CAST(dispensing_date AS DATE)) FROM {pharmacy}))"""
    ).fetchall()
    return rows[0][0] if rows and rows[0][0] is not None else None


def stage_cohort(con: duckdb.DuckDBPyConnection, data_dir: Path, plan: pa.Table, stage_dir: Path) -> dict[str, int]:
    """Write the rows of planned members (``plan``: person_id, chunk) to ``stage_dir/<table>.parquet``.

    Rows are ordered by chunk, then by every column, so the staged bytes and therefore the
    scores do not depend on thread scheduling. Returns rows staged per table.
    """
    stage_dir.mkdir(parents=True, exist_ok=True)
    con.register("cartscout_plan", plan.select(["person_id", "chunk"]))
    counts = {}
    try:
        for table in TABLES:
            target = stage_dir / f"{table}.parquet"
            temp = stage_dir / f".{table}.parquet.tmp"
            con.execute(
                f"""COPY (
                        SELECT t.*, p.chunk AS {CHUNK_COLUMN}
                        FROM {table_source(data_dir, table)} AS t
                        JOIN cartscout_plan AS p ON CAST(t.person_id AS VARCHAR) = p.person_id
                        ORDER BY ALL
                    ) TO {_quote(str(temp))} (FORMAT parquet, ROW_GROUP_SIZE {STAGE_ROW_GROUP})"""
            ).fetchall()
            temp.replace(target)
            counts[table] = pq.ParquetFile(target).metadata.num_rows
    finally:
        con.unregister("cartscout_plan")
    return counts


def materialise_chunk(stage_dir: Path, chunk: int, target_dir: Path) -> None:
    """Write one chunk's rows as a contract directory (``<table>.parquet`` per table) for the loader."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        rows = pq.read_table(stage_dir / f"{table}.parquet", filters=[(CHUNK_COLUMN, "=", chunk)])
        pq.write_table(rows.drop_columns([CHUNK_COLUMN]), target_dir / f"{table}.parquet")


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if column.num_chunks else pa.array([], pa.string())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def chunk_sizes(plan: pa.Table) -> dict[int, int]:
    """Members per chunk number."""
    counts = pc.value_counts(plan.column("chunk")).to_pylist()
    return {int(c["values"]): int(c["counts"]) for c in counts}
