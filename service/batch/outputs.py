"""The batch run's files: the scores table's fixed schema, atomic writes and resumable chunk parts.

A run scores the cohort in chunks of complete members. Each finished chunk is written as one
Parquet part under ``OUT/.cartscout-run/parts/`` by writing a temporary file and renaming it, so a
part either exists whole or not at all, whatever moment the process dies. The run plan (which
members belong to which chunk, and the input/model/as-of fingerprint they were planned for) is
written the same way before the first chunk. ``--resume`` re-reads the plan, skips chunks whose
part exists and scores the rest; the final ``scores.parquet`` is assembled from the parts sorted by
``person_id`` and checked so that every planned member appears exactly once.

Byte-identical output for the same input and model: rows are sorted, the Arrow schema is fixed
(no pandas metadata), row groups have a fixed size and nothing time-dependent is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCORES_FILE = "scores.parquet"
RUN_DIR = ".cartscout-run"
PLAN_FILE = "plan.json"
MEMBERS_FILE = "members.parquet"
PARTS_DIR = "parts"
ROW_GROUP_ROWS = 65_536

CRITERION = pa.struct([("product", pa.string()), ("eligible", pa.bool_()), ("indication", pa.string()),
                       ("criteria_met", pa.list_(pa.string())), ("criteria_missing", pa.list_(pa.string())),
                       ("criteria_unknown", pa.list_(pa.string()))])
REASON = pa.struct([("feature", pa.string()), ("label", pa.string()), ("value", pa.float64()), ("value_text", pa.string()),
                    ("contribution", pa.float64()), ("direction", pa.string())])

SCORES_SCHEMA = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("in_cohort", pa.bool_(), nullable=False),
        pa.field("disease", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("eligible_products", pa.list_(pa.string())),
        pa.field("eligibility", pa.list_(CRITERION)),
        pa.field("lines_of_therapy", pa.int32()),
        pa.field("reasons", pa.list_(REASON)),
        pa.field("distance_to_center_miles", pa.float64()),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("rules_version", pa.string(), nullable=False),
    ]
)
# Columns the parts carry beyond scores.parquet, for the worklist and the report only.
SIDE_SCHEMA = pa.schema([pa.field("payer_type", pa.string()), pa.field("eligible_since", pa.date32())])
PART_SCHEMA = pa.schema(list(SCORES_SCHEMA) + list(SIDE_SCHEMA))


class RunStateError(Exception):
    """The run directory cannot be resumed or assembled as it stands; the message says why."""


@dataclass(frozen=True)
class RunPlan:
    """What a run was planned for: resuming is only allowed when all of this is unchanged."""

    fingerprint: dict
    chunks: int

    def to_json(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint, "chunks": self.chunks}, sort_keys=True, indent=2)


def write_atomic_bytes(path: Path, write) -> None:
    """Call ``write(temp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temp))
        with open(temp, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it): temp files are created 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically with settings that make the bytes reproducible."""
    write_atomic_bytes(
        path,
        lambda temp: pq.write_table(table, temp, row_group_size=ROW_GROUP_ROWS, compression="zstd",
                                    write_statistics=True, store_schema=False),
    )


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file atomically (UTF-8)."""
    write_atomic_bytes(path, lambda temp: temp.write_text(text, encoding="utf-8"))


class RunDirectory:
    """The checkpoint area of one output directory: the plan, the member list and chunk parts."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / RUN_DIR
        self.parts = self.root / PARTS_DIR

    def start(self, plan: RunPlan, members: pa.Table, *, resume: bool) -> set[int]:
        """Begin or resume a run; returns the chunk numbers already done.

        ``members`` has ``person_id`` and ``chunk`` (-1 for members outside the cohort scan).
        Resuming a run planned for another input, model or date is refused rather than mixing
        two runs' members in one file.
        """
        if resume and (self.root / PLAN_FILE).is_file():
            stored = json.loads((self.root / PLAN_FILE).read_text(encoding="utf-8"))
            if stored != json.loads(plan.to_json()):
                changed = sorted(k for k in plan.fingerprint if stored.get("fingerprint", {}).get(k) != plan.fingerprint[k])
                raise RunStateError(
                    f"cannot resume {self.root}: the run there was planned for a different "
                    f"{', '.join(changed) or 'chunking'}; run without --resume to start again"
                )
            return self.completed_chunks()
        if self.root.exists():
            shutil.rmtree(self.root)
        self.parts.mkdir(parents=True)
        write_parquet_atomic(members, self.root / MEMBERS_FILE)
        write_text_atomic(plan.to_json(), self.root / PLAN_FILE)
        return set()

    def members(self) -> pa.Table:
        """The planned member list (person_id, chunk)."""
        return pq.read_table(self.root / MEMBERS_FILE)

    def part_path(self, chunk: int) -> Path:
        return self.parts / f"chunk-{chunk:06d}.parquet"

    def completed_chunks(self) -> set[int]:
        """Chunks whose part file exists (a part exists only once fully written)."""
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("chunk-*.parquet")}

    def write_part(self, chunk: int, table: pa.Table) -> None:
        """Checkpoint one scored chunk."""
        write_parquet_atomic(table.cast(PART_SCHEMA), self.part_path(chunk))

    def write_stats(self, chunk: int, stats: dict) -> None:
        """Record a chunk's counts (quarantined rows) before its part: a part never lacks its stats."""
        write_text_atomic(json.dumps(stats, sort_keys=True), self.parts / f"chunk-{chunk:06d}.json")

    def total_stat(self, key: str) -> int:
        """Sum of one count over the chunks that finished."""
        done = self.completed_chunks()
        total = 0
        for path in self.parts.glob("chunk-*.json"):
            if int(path.stem.split("-")[1]) in done:
                total += int(json.loads(path.read_text(encoding="utf-8")).get(key, 0))
        return total

    def read_parts(self) -> pa.Table:
        """All parts as one table in ``person_id`` order, checked against the plan.

        A member missing from the parts, or present twice, is a :class:`RunStateError`: a resumed
        run must never silently drop or duplicate anyone.
        """
        paths = sorted(self.parts.glob("chunk-*.parquet"))
        table = pa.concat_tables([pq.read_table(p, schema=PART_SCHEMA) for p in paths]) if paths else PART_SCHEMA.empty_table()
        table = table.sort_by("person_id")
        planned = self.members().column("person_id")
        ids = table.column("person_id")
        if len(ids) != len(pc.unique(ids)):
            raise RunStateError(f"{self.parts}: {len(ids) - len(pc.unique(ids))} member(s) appear in more than one part")
        if len(ids) != len(planned) or not pc.all(pc.equal(ids, planned.take(pc.sort_indices(planned)))).as_py():
            raise RunStateError(f"{self.parts}: parts hold {len(ids)} member(s) but the plan has {len(planned)}")
        return table

    def finish(self) -> None:
        """Remove the checkpoint area once the final files are in place."""
        shutil.rmtree(self.root, ignore_errors=True)


def scores_table(parts: pa.Table) -> pa.Table:
    """The published scores: exactly the ``SCORES_SCHEMA`` columns, in order."""
    return parts.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)
