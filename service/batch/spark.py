"""The Spark engine: the same run as the local engine, with the scan and the fan-out on a cluster.

What runs where:

* **Spark SQL** reads the contract tables, finds cohort candidates column-wise (the code sets come
  from ``contract.scan.target_codes``, the same ones the DuckDB scan uses), and gathers the
  candidates' rows of all three tables into one long frame tagged with their chunk number.
* **Executors** receive each chunk of complete members through ``groupBy(chunk).applyInPandas``,
  write the rows back out as a tiny contract directory in local scratch space and run the one
  scoring path (``service.batch.runner.score_contract_directory``: contract loader, features,
  LightGBM, SHAP, eligibility). The model is loaded on the executor from the same reference the
  driver resolved (registry version or artifact directory), once per Python worker.
* **The driver** collects each chunk's part (Arrow IPC bytes: cohort members only, a few percent
  of the membership), adds the not-in-cohort rows and writes the same files as the local engine.

Rows travel as text, exactly as a CSV delivery would arrive, so the loader's own parsing applies.
The session comes from ``SparkSession.builder.getOrCreate()`` so the command runs unchanged under
``spark-submit``; ``--spark-master`` is only for local testing.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from contract.reading import locate_table
from contract.schema import CENTERS_FILE, NDC_CROSSWALK_FILE, TABLES
from service.batch.outputs import PART_SCHEMA

TABLE_COLUMN = "_table"
CHUNK_COLUMN = "_chunk"
RESULT_SCHEMA = "chunk long, part binary, quarantined long"
_WIDE = range(1, 26)
_EXECUTOR_MODELS: dict[str, object] = {}


def start_session(master: str | None = None):
    """The active Spark session (``spark-submit`` provides one on a cluster), or a new one."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RuntimeError("--engine spark needs PySpark 4.x: pip install 'cartscout[spark]'") from None

    builder = SparkSession.builder.appName("cartscout-score")
    if master:
        builder = builder.master(master)
        if master.startswith("local"):
            # Local workers must run this interpreter (the project's venv), not whatever is on PATH.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    session = builder.getOrCreate()
    if master and master.startswith("local"):
        session.sparkContext.setLogLevel("ERROR")
    return session


def score_on_spark(options, model, timings: dict[str, float]):
    """Score ``options.data_dir`` on Spark; returns an ``EngineResult`` (no checkpoint run directory)."""
    from contract.loading import load_codes
    from contract.scan import target_codes

    from service.batch.runner import EngineResult, candidate_ids, complete_part, not_in_cohort_part, plan_chunks

    spark = start_session(options.spark_master)
    from pyspark.sql import functions as F
    data_dir = Path(options.data_dir)
    tick = time.perf_counter()
    frames = {table: read_table(spark, data_dir, table) for table in TABLES}
    as_of = options.as_of or latest_service_date(frames)
    if as_of is None:
        raise ValueError(f"{data_dir}: no claim has a usable date; pass --as-of")
    ids = frames["eligibility"].select(F.col("person_id").cast("string").alias("person_id")).where("person_id IS NOT NULL").distinct()
    members = ids.toArrow().column("person_id").combine_chunks().cast(pa.string()).sort()
    codes = load_codes(data_dir, options.ndc_crosswalk)
    found = find_candidates(frames, target_codes(codes))
    timings["scan"] = time.perf_counter() - tick
    plan = plan_chunks(members, candidate_ids(found), options.chunk_members)
    cohort = plan.filter(pc.greater_equal(plan.column("chunk"), 0))

    tick = time.perf_counter()
    parts = [not_in_cohort_part(pc.filter(plan.column("person_id"), pc.less(plan.column("chunk"), 0)), as_of, model)]
    quarantined = 0
    if cohort.num_rows:
        long = gather_rows(spark, frames, cohort)
        scorer = make_group_scorer(
            model_reference(model),
            as_of,
            {t: list(frames[t].columns) for t in TABLES},
            _operator_bytes(options, "ndc_crosswalk", NDC_CROSSWALK_FILE),
            _operator_bytes(options, "centers", CENTERS_FILE),
            version=None if model.version is None else str(model.version),
        )
        results = long.groupBy(CHUNK_COLUMN).applyInPandas(scorer, schema=RESULT_SCHEMA).collect()
        for row in sorted(results, key=lambda r: r["chunk"]):
            parts.append(pa.ipc.open_stream(io.BytesIO(row["part"])).read_all().cast(PART_SCHEMA))
            quarantined += int(row["quarantined"])
    timings["score"] = time.perf_counter() - tick
    table, unassessed = complete_part(pa.concat_tables(parts), plan.column("person_id").combine_chunks(), as_of, model)
    table = table.sort_by("person_id")
    if table.num_rows != len(members) or len(pc.unique(table.column("person_id"))) != table.num_rows:
        raise RuntimeError(f"spark run produced {table.num_rows} rows for {len(members)} members")
    return EngineResult(table, as_of, cohort.num_rows, quarantined, unassessed)


def read_table(spark, data_dir: Path, table: str):
    """One contract table as a Spark DataFrame (CSV as text, Parquet with its own types)."""
    files = [str(p) for p in locate_table(data_dir, table)]
    if files[0].endswith(".parquet"):
        return spark.read.option("mergeSchema", "true").parquet(*files)
    return spark.read.option("header", "true").option("inferSchema", "false").csv(files)


def latest_service_date(frames) -> date | None:
    """The last claim or dispensing date: the default as-of (same rule as the local engine)."""
    from pyspark.sql import functions as F

    medical = frames["medical_claim"].select(F.max(F.to_date(F.col("claim_end_date").cast("string"))).alias("d")).first()["d"]
    pharmacy = frames["pharmacy_claim"].select(F.max(F.to_date(F.col("dispensing_date").cast("string"))).alias("d")).first()["d"]
    dates = [d for d in (medical, pharmacy) if d is not None]
    return max(dates) if dates else None


def find_candidates(frames, wanted: dict[str, list[str]]) -> list[str]:
    """Spark SQL version of the cohort scan over the same code sets as ``contract.scan``.

    One job: persons with an exact drug/procedure/NDC hit (code left empty), plus distinct
    (person, diagnosis code) pairs whose first three characters are a target category; those
    few pairs are then checked against the full dotless prefixes on the driver.
    """
    from pyspark.sql import functions as F

    medical = frames["medical_claim"]
    columns = set(medical.columns)
    dx = [f"diagnosis_code_{i}" for i in _WIDE if f"diagnosis_code_{i}" in columns]
    px = [f"procedure_code_{i}" for i in _WIDE if f"procedure_code_{i}" in columns]
    categories = sorted({p[:3] for p in wanted["diagnosis_prefix"]})
    person = F.col("person_id").cast("string").alias("person_id")
    exact = F.lit(False)
    if "hcpcs_code" in columns and wanted["hcpcs"]:
        exact = exact | F.col("hcpcs_code").cast("string").isin(wanted["hcpcs"])
    for c in px if wanted["icd10pcs"] else []:
        exact = exact | F.col(c).cast("string").isin(wanted["icd10pcs"])
    hits = [medical.where(exact).select(person, F.lit(None).cast("string").alias("code"))]
    if dx:
        codes = medical.select(person, F.explode(F.array(*[F.col(c).cast("string") for c in dx])).alias("code"))
        hits.append(codes.where(F.substring("code", 1, 3).isin(categories)))
    if wanted["ndc"]:
        pharmacy = frames["pharmacy_claim"]
        ndc = F.regexp_replace(F.col("ndc_code").cast("string"), "-", "")
        hits.append(pharmacy.where(ndc.isin(wanted["ndc"])).select(person, F.lit(None).cast("string").alias("code")))
    union = hits[0]
    for frame in hits[1:]:
        union = union.unionByName(frame)
    prefixes = tuple(wanted["diagnosis_prefix"])
    found = set()
    for row in union.distinct().collect():
        code = row["code"]
        if code is None or code.replace(".", "").upper().startswith(prefixes):
            found.add(row["person_id"])
    return sorted(found)


def gather_rows(spark, frames, cohort: pa.Table):
    """The cohort's rows of all three tables as one long text frame tagged with table and chunk."""
    from pyspark.sql import functions as F

    plan = spark.createDataFrame(cohort.select(["person_id", "chunk"]).to_pandas()).withColumnRenamed("chunk", CHUNK_COLUMN)
    tagged = []
    for table, frame in frames.items():
        text = frame.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in frame.columns])
        joined = text.join(F.broadcast(plan), on="person_id", how="inner").withColumn(TABLE_COLUMN, F.lit(table))
        tagged.append(joined)
    long = tagged[0]
    for frame in tagged[1:]:
        long = long.unionByName(frame, allowMissingColumns=True)
    return long


def model_reference(model) -> str:
    """How an executor loads the model the driver resolved: its exact registry version when it
    came from the registry, else its artifact directory."""
    if str(model.source or "").startswith(("models:/", "local copy of models:/")):
        return f"models:/{model.name}/{model.version}"
    return str(model.source or model.directory)


def load_executor_model(reference: str, version: str | None):
    """Load (once per Python worker) the model an executor scores with."""
    if reference not in _EXECUTOR_MODELS:
        if reference.startswith("models:/"):
            from models.loading import load_model

            _EXECUTOR_MODELS[reference] = load_model(reference)
        else:
            from models.artifact import artifact_paths, load_model_files

            _EXECUTOR_MODELS[reference] = load_model_files(artifact_paths(Path(reference)), version=version, source=reference)
    return _EXECUTOR_MODELS[reference]


def make_group_scorer(reference: str, as_of: date, columns: dict[str, list[str]], crosswalk: bytes | None, centers: bytes | None,
                      version: str | None = None):
    """The ``applyInPandas`` function: one chunk of complete members in, one Arrow part out."""
    def score_group(rows):
        import pandas as pd
        import pyarrow.parquet as pq

        from service.batch.runner import score_contract_directory

        model = load_executor_model(reference, version)
        chunk = int(rows[CHUNK_COLUMN].iloc[0])
        with tempfile.TemporaryDirectory(prefix=f"cartscout-spark-{chunk}-") as temp:
            directory = Path(temp)
            for table, names in columns.items():
                subset = rows[rows[TABLE_COLUMN] == table]
                arrays = {c: pa.array(subset[c].astype(object).where(subset[c].notna(), None).tolist() if c in subset else [None] * len(subset), pa.string())
                          for c in names}
                pq.write_table(pa.table(arrays), directory / f"{table}.parquet")
            crosswalk_path = _write_optional(directory / NDC_CROSSWALK_FILE, crosswalk)
            centers_path = _write_optional(directory / CENTERS_FILE, centers)
            part, quarantined = score_contract_directory(directory, model, as_of, ndc_crosswalk=crosswalk_path,
                                                         centers=centers_path, quarantine_dir=None)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, PART_SCHEMA) as writer:
            writer.write_table(part.cast(PART_SCHEMA))
        return pd.DataFrame({"chunk": [chunk], "part": [sink.getvalue()], "quarantined": [quarantined]})

    return score_group


def _write_optional(path: Path, content: bytes | None) -> Path | None:
    if content is None:
        return None
    path.write_bytes(content)
    return path


def _operator_bytes(options, which: str, default_name: str) -> bytes | None:
    explicit = getattr(options, which)
    path = Path(explicit) if explicit else Path(options.data_dir) / default_name
    return path.read_bytes() if path.is_file() else None
