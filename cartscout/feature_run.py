"""``cartscout features``: a contract directory in, cohort/lines/eligibility/features Parquet out.

Thin orchestration around ``features.pipeline.build_features``: narrow the population to cohort
candidates with a columnar DuckDB scan (a few percent of members), load only their claims, run the
pipeline over chunks of complete members with a progress bar, and write the four files atomically
(a temporary file renamed into place, so a reader never sees half a file).

Who appears where: ``cohort.parquet`` lists every enrolled member (non-candidates with
``in_cohort = False``); ``lines.parquet`` every line of therapy of the candidates;
``eligibility.parquet`` one row per cohort member and CAR T product; ``features.parquet`` one row
per candidate (members with no target diagnosis, drug or CAR T code have nothing to score).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import FEATURE_SET_VERSION
from features.eligibility import ELIGIBILITY_COLUMNS

CHUNK_MEMBERS = 20_000
COHORT_OUTPUT_COLUMNS = ("person_id", "disease", "subtype", "first_dx_date", "in_cohort", "exclusion")


@dataclass
class FeatureRunSummary:
    """What a feature run wrote, for the command's closing message."""

    out: Path
    as_of: date
    members: int
    candidates: int
    in_cohort: int
    lines: int
    eligible_members: int
    by_disease: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    feature_set_version: str = FEATURE_SET_VERSION
    rules_version: str = ""
    codelists_version: str = ""
    quarantined_rows: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        diseases = ", ".join(f"{d} {n:,}" for d, n in sorted(self.by_disease.items())) or "none"
        return "\n".join(
            [
                f"Features as of {self.as_of.isoformat()} written to {self.out}",
                f"  members {self.members:,}; cohort candidates {self.candidates:,}; in cohort {self.in_cohort:,} ({diseases})",
                f"  lines of therapy {self.lines:,}; members label-eligible for at least one CAR T product {self.eligible_members:,}",
                f"  quarantined rows {self.quarantined_rows:,}",
                f"  versions: feature set {self.feature_set_version}, rules {self.rules_version}, code lists {self.codelists_version}",
                f"  took {self.seconds:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items()) + ")",
            ]
        )


def write_feature_outputs(
    data_dir: Path,
    out: Path,
    as_of: date,
    ndc_crosswalk: Path | None = None,
    centers: Path | None = None,
    *,
    chunk_members: int = CHUNK_MEMBERS,
    progress: bool | None = None,
) -> FeatureRunSummary:
    """Compute and write cohort, lines, eligibility and features for every member as of ``as_of``.

    ``progress`` None shows a progress bar only when stderr is a terminal.
    """
    from contract.loading import load_codes, load_directory
    from contract.scan import find_cohort_candidates
    from features.eligibility import load_rules
    from features.geography import load_zip_centroids, locate_centers
    from features.pipeline import build_features

    started = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    stages: dict[str, float] = {}
    codes = load_codes(data_dir, ndc_crosswalk)
    candidates = find_cohort_candidates(data_dir, codes)
    stages["scan"] = time.perf_counter() - started
    data = load_directory(data_dir, ndc_crosswalk=ndc_crosswalk, centers=centers, person_ids=candidates)
    rules = load_rules()
    zip_centroids = load_zip_centroids() if data.centers is not None else None
    center_coords = locate_centers(data.centers, zip_centroids) if data.centers is not None else None
    stages["load"] = time.perf_counter() - started - sum(stages.values())
    day = pd.Timestamp(as_of).as_unit("s")

    members = pd.Index(data.persons["person_id"].astype("string").unique(), name="person_id")
    scored = members[members.isin(candidates)]
    chunks = _chunks(data.events, scored, chunk_members)
    results = []
    with _progress_bar(progress, len(scored)) as advance:
        for ids, events in chunks:
            as_of_series = pd.Series(day, index=ids, name="as_of")
            persons = data.persons[data.persons["person_id"].isin(ids)]
            results.append(
                build_features(events, persons, as_of_series, data.codes, centers=center_coords, zip_centroids=zip_centroids, rules=rules)
            )
            advance(len(ids))

    stages["pipeline"] = time.perf_counter() - started - sum(stages.values())
    cohort = _concat([r.cohort for r in results])
    lines = _concat([r.lines for r in results])
    eligibility = _concat([r.eligibility for r in results])
    features = _concat([r.features for r in results])
    cohort_out = _cohort_for_all(cohort, members)
    eligibility_out = _eligibility_for_cohort(eligibility, cohort_out)

    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(cohort_out, out / "cohort.parquet")
    _write_atomic(lines, out / "lines.parquet")
    _write_atomic(eligibility_out, out / "eligibility.parquet")
    _write_atomic(features, out / "features.parquet")

    stages["write"] = time.perf_counter() - started - sum(stages.values())
    in_cohort = cohort_out[cohort_out["in_cohort"]]
    return FeatureRunSummary(
        out=out,
        as_of=as_of,
        members=len(members),
        candidates=len(scored),
        in_cohort=len(in_cohort),
        lines=len(lines),
        eligible_members=int(eligibility_out.loc[eligibility_out["eligible"], "person_id"].nunique()) if len(eligibility_out) else 0,
        by_disease={str(k): int(v) for k, v in in_cohort["disease"].value_counts().items()},
        seconds=time.perf_counter() - started,
        rules_version=rules.version,
        codelists_version=data.codes.version,
        quarantined_rows=sum(t.rows_quarantined for t in data.report.tables.values()),
        stage_seconds=stages,
    )


def _chunks(events: pd.DataFrame, ids: pd.Index, size: int):
    """Yield (ids, their events) for consecutive blocks of ``size`` members: complete histories only.

    With no members it yields one empty block, so that the outputs still get their columns.
    """
    position = ids.get_indexer(events["person_id"])
    keep = position >= 0
    block = np.where(keep, position // max(size, 1), -1)
    order = np.argsort(block, kind="stable")
    block_sorted = block[order]
    for number, start in enumerate(range(0, max(len(ids), 1), max(size, 1))):
        lo, hi = np.searchsorted(block_sorted, [number, number + 1])
        yield ids[start : start + size], events.iloc[order[lo:hi]].reset_index(drop=True)


class _progress_bar:
    """A rich progress bar over members, shown only on a terminal unless forced."""

    def __init__(self, enabled: bool | None, total: int) -> None:
        import sys

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("members"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
        self._progress.start()
        task = self._progress.add_task("members", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame()
    non_empty = [f for f in frames if len(f)]
    return pd.concat(non_empty or frames[:1], ignore_index=True)


def _cohort_for_all(cohort: pd.DataFrame, members: pd.Index) -> pd.DataFrame:
    """Every member: pipeline rows for candidates, ``in_cohort = False`` for everyone else."""
    base = pd.DataFrame({"person_id": pd.array(members, dtype="string")})
    if len(cohort) == 0:
        cohort = pd.DataFrame({c: pd.Series(dtype="string") for c in COHORT_OUTPUT_COLUMNS})
    merged = base.merge(cohort[[c for c in COHORT_OUTPUT_COLUMNS if c in cohort.columns]], on="person_id", how="left")
    merged["in_cohort"] = merged["in_cohort"].astype("boolean").fillna(False).astype(bool)
    merged["first_dx_date"] = pd.to_datetime(merged["first_dx_date"]).astype("datetime64[s]")
    for column in ("disease", "subtype", "exclusion"):
        merged[column] = merged[column].astype("string")
    return merged[list(COHORT_OUTPUT_COLUMNS)]


def _eligibility_for_cohort(eligibility: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's one row per member and product, kept for cohort members only."""
    if len(eligibility) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ELIGIBILITY_COLUMNS})
    members = cohort.loc[cohort["in_cohort"], "person_id"]
    frame = eligibility[eligibility["person_id"].isin(members)]
    return frame[[c for c in ELIGIBILITY_COLUMNS if c in frame.columns]].reset_index(drop=True)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write Parquet to a temporary name in the same directory, then rename over ``path``."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
