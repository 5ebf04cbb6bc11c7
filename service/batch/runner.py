"""``cartscout score``: the whole membership in, a scores table, a worklist and a report out.

The run, in the order it happens:

1. load the model once (a registry alias resolves to one version, echoed in every output row);
2. list every member of the eligibility table (so counts reconcile with the input) and narrow to
   cohort candidates with the columnar scan (``contract.scan``);
3. plan chunks of complete members and stage their rows (``service.batch.staging``);
4. score each chunk through the one scoring path, ``models.scoring.score_members`` (contract
   loader -> features -> LightGBM -> SHAP -> eligibility), checkpointing each chunk's part file;
5. assemble ``scores.parquet``, then ``worklist.csv`` and ``report.html`` from it.

Members the scan does not reach are written with ``status = not_in_cohort`` and are never passed to
the model, so SHAP (the expensive step) runs only for the cohort. The Spark engine
(``service.batch.spark``) replaces steps 2-4 and shares everything else.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.reading import locate_table
from contract.schema import CENTERS_FILE, NDC_CROSSWALK_FILE, TABLES
from service.batch import staging
from service.batch.eligibility_onset import estimate_eligible_since
from service.batch.outputs import (
    PART_SCHEMA,
    SCORES_FILE,
    RunDirectory,
    RunPlan,
    scores_table,
    write_parquet_atomic,
)
from service.garbage_collector import settled_garbage_collector

DEFAULT_MODEL_URI = "models:/cartscout-candidate@champion"
DEFAULT_CHUNK_MEMBERS = 2_000
OUTSIDE_SLAB_MEMBERS = 500_000
NOT_IN_COHORT = "not_in_cohort"
STATUSES = ("eligible_now", "likely_soon", "watch", "unlikely", "already_treated", NOT_IN_COHORT)
TOP_REASONS = 5


@dataclass
class ScoreOptions:
    """What a scoring run is asked to do (the CLI's options, resolved)."""

    data_dir: Path
    out_dir: Path
    as_of: date | None = None
    model_uri: str = DEFAULT_MODEL_URI
    engine: str = "local"
    top_k: int | None = None
    resume: bool = False
    spark_master: str | None = None
    chunk_members: int = DEFAULT_CHUNK_MEMBERS
    ndc_crosswalk: Path | None = None
    centers: Path | None = None
    show_progress: bool = True


@dataclass
class ScoreSummary:
    """What a run did: counts that reconcile with the input, quarantine, versions and wall time."""

    out_dir: Path
    members: int
    candidates: int
    status_counts: dict[str, int]
    quarantined_rows: int
    model_name: str
    model_version: str
    rules_version: str
    as_of: date
    engine: str
    wall_seconds: float
    resumed_chunks: int = 0
    unassessed_members: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        """The end-of-run summary printed by the CLI."""
        rate = self.members / self.wall_seconds if self.wall_seconds else float("nan")
        lines = [
            f"cartscout score: {self.members:,} members as of {self.as_of.isoformat()} "
            f"({self.engine} engine, model {self.model_name} v{self.model_version}, rules {self.rules_version})",
            f"  cohort candidates from the scan: {self.candidates:,}",
        ]
        lines += [f"  {status:<16}{self.status_counts.get(status, 0):>12,}" for status in STATUSES]
        lines.append(f"  {'total':<16}{sum(self.status_counts.values()):>12,}")
        lines.append(f"  rows quarantined by validation (cohort members' rows): {self.quarantined_rows:,}")
        if self.unassessed_members:
            lines.append(f"  members with every eligibility row quarantined (listed as not_in_cohort): {self.unassessed_members:,}")
        if self.resumed_chunks:
            lines.append(f"  chunks reused from the interrupted run: {self.resumed_chunks:,}")
        if self.stage_seconds:
            lines.append("  stage seconds: " + ", ".join(f"{k} {v:,.1f}" for k, v in self.stage_seconds.items()))
        lines.append(f"  wall time {self.wall_seconds:,.1f} s ({rate:,.0f} members/s)")
        lines.append(f"  wrote {self.out_dir / SCORES_FILE}, worklist.csv, report.html")
        return "\n".join(lines)


@dataclass
class EngineResult:
    """What an engine hands back: all members' part rows and the run's counts."""

    parts: pa.Table
    as_of: date
    candidates: int
    quarantined_rows: int
    unassessed_members: int
    resumed_chunks: int = 0
    run: RunDirectory | None = None


def score_directory(options: ScoreOptions, *, model=None, on_chunk_scored: Callable[[int], None] | None = None) -> ScoreSummary:
    """Run ``cartscout score`` with the local (DuckDB + in-process) or the Spark engine.

    ``model`` is normally resolved from ``options.model_uri`` here, once; tests may pass a
    ``LoadedModel`` they built.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is None:
        from models.loading import load_model

        model = load_model(options.model_uri)
        timings["model"] = time.perf_counter() - started
    if options.engine not in ("local", "spark"):
        raise ValueError(f"--engine must be 'local' or 'spark', not {options.engine!r}")
    with settled_garbage_collector():  # the loaded model stays out of the collections scoring triggers
        if options.engine == "spark":
            from service.batch.spark import score_on_spark

            result = score_on_spark(options, model, timings)
        else:
            result = _score_local(options, model, timings, on_chunk_scored)
    tick = time.perf_counter()
    parts = result.parts
    write_parquet_atomic(scores_table(parts), out_dir / SCORES_FILE)
    from service.batch.report import write_report
    from service.batch.worklist import write_worklist

    write_worklist(parts, out_dir / "worklist.csv", top_k=options.top_k)
    summary = ScoreSummary(
        out_dir=out_dir,
        members=parts.num_rows,
        candidates=result.candidates,
        status_counts=count_statuses(parts),
        quarantined_rows=result.quarantined_rows,
        model_name=model.name,
        model_version=str(model.version),
        rules_version=model.rules_version,
        as_of=result.as_of,
        engine=options.engine,
        wall_seconds=0.0,
        resumed_chunks=result.resumed_chunks,
        unassessed_members=result.unassessed_members,
        stage_seconds=timings,
    )
    write_report(parts, out_dir / "report.html", summary=summary, top_members=min(options.top_k or 25, 25))
    timings["write"] = time.perf_counter() - tick
    if result.run is not None:
        result.run.finish()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def count_statuses(parts: pa.Table) -> dict[str, int]:
    """Members per status, every status present (zero when absent)."""
    counts = {s: 0 for s in STATUSES}
    for item in pc.value_counts(parts.column("status")).to_pylist():
        counts[item["values"]] = int(item["counts"])
    return counts


def input_fingerprint(options: ScoreOptions) -> dict:
    """Names, sizes and modification times of every input file, hashed: what a resume must match."""
    digest = hashlib.sha256()
    files = [p for table in TABLES for p in locate_table(Path(options.data_dir), table)]
    for extra in (options.ndc_crosswalk or Path(options.data_dir) / NDC_CROSSWALK_FILE, options.centers or Path(options.data_dir) / CENTERS_FILE):
        if Path(extra).is_file():
            files.append(Path(extra))
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return {"input": digest.hexdigest()[:16]}


def _score_local(options: ScoreOptions, model, timings: dict[str, float], on_chunk_scored):
    from contract.loading import load_codes
    from contract.scan import find_cohort_candidates

    con = staging.connect()
    tick = time.perf_counter()
    as_of = options.as_of or staging.latest_service_date(con, options.data_dir)
    if as_of is None:
        raise ValueError(f"{options.data_dir}: no claim has a usable date; pass --as-of")
    members = staging.list_members(con, options.data_dir)
    codes = load_codes(Path(options.data_dir), options.ndc_crosswalk)
    found = find_cohort_candidates(Path(options.data_dir), codes)
    timings["scan"] = time.perf_counter() - tick
    plan_table = plan_chunks(members, candidate_ids(found), options.chunk_members)
    highest = pc.max(plan_table.column("chunk")).as_py() if plan_table.num_rows else None
    cohort_chunks = 0 if highest is None else int(highest) + 1
    candidates = int(pc.sum(pc.greater_equal(plan_table.column("chunk"), 0)).as_py() or 0)
    outside = pc.filter(plan_table.column("person_id"), pc.less(plan_table.column("chunk"), 0))
    slabs = math.ceil(len(outside) / OUTSIDE_SLAB_MEMBERS)
    plan = RunPlan(
        fingerprint={**input_fingerprint(options), "model": f"{model.name}/{model.version}", "as_of": as_of.isoformat(),
                     "chunk_members": options.chunk_members},
        chunks=cohort_chunks + slabs,
    )
    run = RunDirectory(options.out_dir)
    done = run.start(plan, plan_table, resume=options.resume)
    resumed = len(done)
    stage_dir = run.root / "stage"
    tick = time.perf_counter()
    if cohort_chunks and (set(range(cohort_chunks)) - done) and not (stage_dir / ".complete").is_file():
        staging.stage_cohort(con, options.data_dir, plan_table.filter(pc.greater_equal(plan_table.column("chunk"), 0)), stage_dir)
        (stage_dir / ".complete").write_text(json.dumps(plan.fingerprint))
    timings["stage"] = time.perf_counter() - tick
    con.close()

    sizes = staging.chunk_sizes(plan_table)
    for slab in range(slabs):
        chunk = cohort_chunks + slab
        if chunk not in done:
            ids = outside[slab * OUTSIDE_SLAB_MEMBERS:(slab + 1) * OUTSIDE_SLAB_MEMBERS]
            run.write_part(chunk, not_in_cohort_part(ids, as_of, model))
    quarantine_root = Path(options.out_dir) / "quarantine"
    pending = [c for c in range(cohort_chunks) if c not in done]
    with _progress(options.show_progress, candidates, sum(sizes[c] for c in done if c in sizes)) as advance:
        for chunk in pending:
            part, quarantined = score_chunk_directory_from_stage(stage_dir, chunk, options, model, as_of, quarantine_root, timings)
            part, unassessed = complete_part(part, pc.filter(plan_table.column("person_id"), pc.equal(plan_table.column("chunk"), chunk)), as_of, model)
            run.write_stats(chunk, {"quarantined_rows": quarantined, "unassessed_members": unassessed})
            run.write_part(chunk, part)
            advance(sizes[chunk])
            if on_chunk_scored is not None:
                on_chunk_scored(chunk)
    parts = run.read_parts()
    return EngineResult(parts, as_of, candidates, run.total_stat("quarantined_rows"), run.total_stat("unassessed_members"), resumed, run)


def complete_part(part: pa.Table, planned: pa.Array, as_of: date, model) -> tuple[pa.Table, int]:
    """Add a not-in-cohort row for every planned member the scorer did not return.

    That happens when validation quarantined all of a member's eligibility rows: the member is
    in the payer's file, so they must appear in the output (counts reconcile), but nothing valid
    is known about them. Returns the completed part and how many members were added.
    """
    missing = pc.filter(planned, pc.invert(pc.is_in(planned, value_set=part.column("person_id"))))
    if len(missing) == 0:
        return part, 0
    return pa.concat_tables([part, not_in_cohort_part(missing, as_of, model)]).sort_by("person_id"), len(missing)


def candidate_ids(found) -> pa.Array:
    """The scan's result as a sorted, distinct string array (it may return a frame, series or set)."""
    if isinstance(found, pd.DataFrame):
        found = found["person_id"]
    values = sorted({str(v) for v in (found.tolist() if hasattr(found, "tolist") else found)})
    return pa.array(values, pa.string())


def plan_chunks(members: pa.Array, candidates: pa.Array, chunk_members: int) -> pa.Table:
    """Assign each member a chunk: candidates in person_id order, ``chunk_members`` per chunk;
    everyone else ``-1``. Candidates absent from eligibility are not members and are left out
    (validation reports their claims as orphans)."""
    members = members.sort()
    is_candidate = pc.is_in(members, value_set=candidates)
    rank = np.cumsum(is_candidate.to_numpy(zero_copy_only=False)) - 1
    chunk = np.where(is_candidate.to_numpy(zero_copy_only=False), rank // max(chunk_members, 1), -1)
    return pa.table({"person_id": members, "chunk": pa.array(chunk, pa.int64())})


def score_chunk_directory_from_stage(stage_dir: Path, chunk: int, options: ScoreOptions, model, as_of: date,
                                     quarantine_root: Path, timings: dict[str, float]) -> tuple[pa.Table, int]:
    """Materialise one staged chunk as a contract directory and score it."""
    with tempfile.TemporaryDirectory(prefix=f"cartscout-chunk-{chunk}-") as temp:
        staging.materialise_chunk(stage_dir, chunk, Path(temp))
        return score_contract_directory(Path(temp), model, as_of, ndc_crosswalk=_operator_file(options, "ndc_crosswalk"),
                                        centers=_operator_file(options, "centers"),
                                        quarantine_dir=quarantine_root / f"chunk-{chunk:06d}", timings=timings)


def score_contract_directory(data_dir: Path, model, as_of: date, *, ndc_crosswalk: Path | None, centers: Path | None,
                             quarantine_dir: Path | None, timings: dict[str, float] | None = None) -> tuple[pa.Table, int]:
    """Load a (small) contract directory and score all its members: the one path both engines call.

    Returns the part table (``PART_SCHEMA``) and the number of rows validation quarantined.
    """
    from contract.loading import load_directory
    from contract.validation import write_quarantine
    from models.scoring import score_members

    timings = timings if timings is not None else {}
    tick = time.perf_counter()
    contract = load_directory(data_dir, ndc_crosswalk=ndc_crosswalk, centers=centers)
    quarantined = sum(t.rows_quarantined for t in contract.report.tables.values())
    if quarantine_dir is not None and len(contract.report.issues):
        contract.report.quarantine_path = write_quarantine(contract.report, quarantine_dir)
    timings["load"] = timings.get("load", 0.0) + time.perf_counter() - tick
    persons = contract.persons
    if persons.empty:
        return PART_SCHEMA.empty_table(), quarantined
    as_of_series = pd.Series(pd.Timestamp(as_of), index=pd.Index(persons["person_id"], name="person_id")).astype("datetime64[s]")
    tick = time.perf_counter()
    scored = score_members(model, contract.events, persons, as_of_series, centers=contract.centers, top_reasons=TOP_REASONS,
                           codes=contract.codes)
    timings["score"] = timings.get("score", 0.0) + time.perf_counter() - tick
    tick = time.perf_counter()
    eligible = [r["person_id"] for r in scored if r["status"] == "eligible_now"]
    onset = estimate_eligible_since(contract.events, persons, eligible, as_of, model)
    timings["onset"] = timings.get("onset", 0.0) + time.perf_counter() - tick
    distance = member_distances(persons, contract.centers if contract.centers is not None else model.centers, model)
    return part_from_scored(scored, persons, as_of, model, distance=distance, eligible_since=onset), quarantined


def member_distances(persons: pd.DataFrame, centers: pd.DataFrame | None, model) -> dict[str, float]:
    """Miles from each member's home ZIP to the nearest CAR T centre, by the features' own function
    (the same number the model's distance feature sees); empty without a centre list."""
    if centers is None or persons.empty:
        return {}
    from features.geography import load_zip_centroids, locate_centers, nearest_center_miles

    centroids = model.zip_centroids if model.zip_centroids is not None else load_zip_centroids()
    miles = nearest_center_miles(persons["zip_code"], centroids, locate_centers(centers, centroids))
    return {pid: float(m) for pid, m in zip(persons["person_id"].astype(str), miles) if not math.isnan(m)}


def part_from_scored(scored, persons: pd.DataFrame, as_of: date, model, *, distance: dict[str, float] | None = None,
                     eligible_since: dict[str, date] | None = None) -> pa.Table:
    """Turn ``score_members`` output into part rows; every not-in-cohort row takes one canonical form
    so the engines agree whether the scan or the model decided a member is outside the cohort."""
    frame = scored if isinstance(scored, pd.DataFrame) else pd.DataFrame(list(scored))
    payer = dict(zip(persons["person_id"].astype(str), persons["payer_type"].astype(object).where(persons["payer_type"].notna(), None)))
    rows = []
    for rec in frame.to_dict("records"):
        pid = str(rec["person_id"])
        status = str(rec["status"])
        if status == NOT_IN_COHORT:
            rows.append(_outside_row(pid, as_of, model))
            continue
        eligibility = [_criterion(e) for e in _as_list(rec.get("eligibility"))]
        rows.append(
            {
                "person_id": pid,
                "as_of": as_of,
                "in_cohort": bool(rec.get("in_cohort", True)),
                "disease": _text(rec.get("disease")),
                "status": status,
                "score": _number(rec.get("score")),
                "eligible_products": sorted({str(p) for p in _as_list(rec.get("eligible_products"))}),
                "eligibility": eligibility,
                "lines_of_therapy": _line_count(rec.get("lines_of_therapy")),
                "reasons": [_reason(r) for r in _as_list(rec.get("reasons"))],
                "distance_to_center_miles": (distance or {}).get(pid),
                "model_name": model.name,
                "model_version": str(model.version),
                "rules_version": model.rules_version,
                "payer_type": payer.get(pid),
                "eligible_since": (eligible_since or {}).get(pid),
            }
        )
    rows.sort(key=lambda r: r["person_id"])
    return pa.Table.from_pylist(rows, schema=PART_SCHEMA)


def not_in_cohort_part(person_ids: pa.Array, as_of: date, model) -> pa.Table:
    """Rows for members the scan found no cohort code for, built column-wise (millions of them)."""
    n = len(person_ids)
    columns = {
        "person_id": person_ids.cast(pa.string()),
        "as_of": pa.array(np.full(n, np.datetime64(as_of, "D")), pa.date32()),
        "in_cohort": pa.array(np.zeros(n, dtype=bool)),
        "disease": pa.nulls(n, pa.string()),
        "status": pa.repeat(pa.scalar(NOT_IN_COHORT), n),
        "score": pa.nulls(n, pa.float64()),
        "eligible_products": _empty_lists(n, PART_SCHEMA.field("eligible_products").type),
        "eligibility": _empty_lists(n, PART_SCHEMA.field("eligibility").type),
        "lines_of_therapy": pa.array(np.zeros(n, dtype=np.int32)),
        "reasons": _empty_lists(n, PART_SCHEMA.field("reasons").type),
        "distance_to_center_miles": pa.nulls(n, pa.float64()),
        "model_name": pa.repeat(pa.scalar(model.name), n),
        "model_version": pa.repeat(pa.scalar(str(model.version)), n),
        "rules_version": pa.repeat(pa.scalar(model.rules_version), n),
        "payer_type": pa.nulls(n, pa.string()),
        "eligible_since": pa.nulls(n, pa.date32()),
    }
    return pa.table(columns).cast(PART_SCHEMA)


def _outside_row(pid: str, as_of: date, model) -> dict:
    return {"person_id": pid, "as_of": as_of, "in_cohort": False, "disease": None, "status": NOT_IN_COHORT, "score": None,
            "eligible_products": [], "eligibility": [], "lines_of_therapy": 0, "reasons": [], "distance_to_center_miles": None,
            "model_name": model.name, "model_version": str(model.version), "rules_version": model.rules_version,
            "payer_type": None, "eligible_since": None}


def _empty_lists(n: int, list_type: pa.ListType) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], list_type.value_type))


def _operator_file(options: ScoreOptions, which: str) -> Path | None:
    """The operator file explicitly given, else the one in the data directory (staged chunks lack it)."""
    explicit = getattr(options, which)
    if explicit:
        return Path(explicit)
    default = Path(options.data_dir) / (NDC_CROSSWALK_FILE if which == "ndc_crosswalk" else CENTERS_FILE)
    return default if default.is_file() else None


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    return list(value)


def _text(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _number(value) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _line_count(value) -> int:
    if value is None:
        return 0
    if isinstance(value, (int, np.integer)):
        return int(value)
    return len(_as_list(value))


def _criterion(item: dict) -> dict:
    return {
        "product": _text(item.get("product")),
        "eligible": bool(item.get("eligible")),
        "indication": _text(item.get("indication")),
        "criteria_met": [str(c) for c in _as_list(item.get("criteria_met"))],
        "criteria_missing": [str(c) for c in _as_list(item.get("criteria_missing"))],
        "criteria_unknown": [str(c) for c in _as_list(item.get("criteria_unknown"))],
    }


def _reason(item: dict) -> dict:
    """A category value (payer type 'medicare') has no number; every value gets its words."""
    from service.batch.worklist import describe_value

    value = item.get("value")
    number = None if isinstance(value, str) else _number(value)
    return {
        "feature": _text(item.get("feature")),
        "label": _text(item.get("label")),
        "value": number,
        "value_text": describe_value(item.get("feature"), value),
        "contribution": _number(item.get("contribution")),
        "direction": _text(item.get("direction")),
    }


class _progress:
    """A rich progress bar with members per second; silent when not wanted."""

    def __init__(self, show: bool, total: int, already: int):
        self.show, self.total, self.already = show, total, already
        self._progress = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("scoring cohort"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} members/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self._progress.start()
        task = self._progress.add_task("score", total=self.total, completed=self.already, rate="-")
        started, done = time.perf_counter(), [0]

        def advance(n: int) -> None:
            done[0] += n
            rate = done[0] / max(time.perf_counter() - started, 1e-9)
            self._progress.update(task, advance=n, rate=f"{rate:,.0f}")

        return advance

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
