"""The Spark engine scores every member exactly as the local engine does."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from service.batch.runner import ScoreOptions, score_directory

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_spark_and_local_engines_give_identical_scores(small_population, test_model, tmp_path):
    """Same population, same model: every member's row (status, score, reasons, eligibility) is identical."""
    common = {"data_dir": small_population, "chunk_members": 30, "show_progress": False}
    local = score_directory(ScoreOptions(out_dir=tmp_path / "local", **common), model=test_model)
    spark = score_directory(ScoreOptions(out_dir=tmp_path / "spark", engine="spark", spark_master="local[2]", **common), model=test_model)
    assert spark.status_counts == local.status_counts and spark.candidates == local.candidates
    a, b = pq.read_table(tmp_path / "local" / "scores.parquet"), pq.read_table(tmp_path / "spark" / "scores.parquet")
    assert a.column("person_id").equals(b.column("person_id"))
    assert a.column("status").equals(b.column("status")) and a.column("score").equals(b.column("score"))
    assert a.equals(b)
