"""The batch run's files: exact schema, atomic writes, reproducible bytes, checkpoint safety."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.outputs import (
    SCORES_SCHEMA,
    RunDirectory,
    RunPlan,
    RunStateError,
    scores_table,
    write_parquet_atomic,
    write_text_atomic,
)
from tests.batch.factories import make_parts, make_row

SCORE_COLUMNS = [
    "person_id", "as_of", "in_cohort", "disease", "status", "score", "eligible_products", "eligibility",
    "lines_of_therapy", "reasons", "distance_to_center_miles", "model_name", "model_version", "rules_version",
]


def _members(ids: list[str], chunks: list[int]) -> pa.Table:
    return pa.table({"person_id": pa.array(ids, pa.string()), "chunk": pa.array(chunks, pa.int64())})


def test_scores_table_has_exactly_the_published_columns_in_order():
    """scores.parquet carries the issue's columns in its order, and none of the side columns."""
    table = scores_table(make_parts([make_row("p1", "eligible_now", products=("tisagenlecleucel",))]))
    assert table.column_names == SCORE_COLUMNS
    assert table.schema.field("eligibility").type.value_type.names == [
        "product", "eligible", "indication", "criteria_met", "criteria_missing", "criteria_unknown"]
    assert table.schema.field("reasons").type.value_type.names == ["feature", "label", "value", "value_text", "contribution", "direction"]


def test_same_table_written_twice_gives_identical_bytes(tmp_path):
    """Writing the same scores twice yields byte-identical files (no timestamps or pandas metadata)."""
    table = scores_table(make_parts([make_row(f"p{i}", "likely_soon", score=i / 10) for i in range(5)]))
    write_parquet_atomic(table, tmp_path / "a.parquet")
    write_parquet_atomic(table, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.read_table(tmp_path / "a.parquet").schema.equals(SCORES_SCHEMA)


def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """A writer that fails midway leaves the previous file untouched and no temporary file behind."""
    target = tmp_path / "report.html"
    write_text_atomic("old", target)

    def explode(temp):
        temp.write_text("half")
        raise RuntimeError("disk gone")

    from service.batch.outputs import write_atomic_bytes

    with pytest.raises(RuntimeError):
        write_atomic_bytes(target, explode)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_parts_assemble_in_person_order_and_must_match_the_plan(tmp_path):
    """Assembled parts are sorted by person_id and hold exactly the planned members."""
    run = RunDirectory(tmp_path)
    run.start(RunPlan({"input": "x"}, 2), _members(["b", "a", "c"], [0, 0, 1]), resume=False)
    run.write_part(1, make_parts([make_row("c")]))
    with pytest.raises(RunStateError, match="plan has 3"):
        run.read_parts()
    run.write_part(0, make_parts([make_row("b"), make_row("a")]))
    assert run.read_parts().column("person_id").to_pylist() == ["a", "b", "c"]


def test_member_in_two_parts_is_refused(tmp_path):
    """A member written by two chunks is an error, never a duplicated row."""
    run = RunDirectory(tmp_path)
    run.start(RunPlan({"input": "x"}, 2), _members(["a", "b"], [0, 1]), resume=False)
    run.write_part(0, make_parts([make_row("a"), make_row("b")]))
    run.write_part(1, make_parts([make_row("b")]))
    with pytest.raises(RunStateError, match="more than one part"):
        run.read_parts()


def test_resume_keeps_done_chunks_and_refuses_a_changed_plan(tmp_path):
    """Resuming the same plan reports finished chunks; a different input or model cannot be resumed."""
    members = _members(["a", "b"], [0, 1])
    run = RunDirectory(tmp_path)
    assert run.start(RunPlan({"input": "x", "model": "m/1"}, 2), members, resume=True) == set()
    run.write_stats(0, {"quarantined_rows": 4})
    run.write_part(0, make_parts([make_row("a")]))
    again = RunDirectory(tmp_path)
    assert again.start(RunPlan({"input": "x", "model": "m/1"}, 2), members, resume=True) == {0}
    assert again.total_stat("quarantined_rows") == 4
    with pytest.raises(RunStateError, match="model"):
        again.start(RunPlan({"input": "x", "model": "m/2"}, 2), members, resume=True)


def test_fresh_start_discards_an_earlier_run(tmp_path):
    """Without --resume the checkpoint area is cleared, so old parts never leak into a new run."""
    members = _members(["a"], [0])
    run = RunDirectory(tmp_path)
    run.start(RunPlan({"input": "x"}, 1), members, resume=False)
    run.write_part(0, make_parts([make_row("a")]))
    assert run.start(RunPlan({"input": "x"}, 1), members, resume=False) == set()
    assert run.completed_chunks() == set()
