"""``cartscout score`` as a real process: killed with SIGKILL mid-run, resumed, and compared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.batch.outputs import PARTS_DIR, RUN_DIR
from service.batch.runner import ScoreOptions, score_directory
from tests.batch.registry import register_test_model

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CLI = [sys.executable, "-m", "cartscout.cli", "score"]


def _wait_for_parts(parts: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if parts.is_dir() and len(list(parts.glob("chunk-*.parquet"))) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"scoring finished before it could be interrupted: {process.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no chunk was checkpointed in time")


def test_run_killed_midway_resumes_without_duplicates_or_gaps(small_population, tmp_path):
    """SIGKILL after the first cohort chunk, then --resume: the scores equal an uninterrupted run's, byte for byte."""
    env = register_test_model(tmp_path / "registry")
    out = tmp_path / "killed"
    args = [*CLI, "--data", str(small_population), "--out", str(out), "--chunk-members", "10", "--no-progress"]
    process = subprocess.Popen(args, env=env, cwd=tmp_path / "registry", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the not-in-cohort slab is checkpointed first, then cohort chunks: wait for slab + one chunk
        _wait_for_parts(out / RUN_DIR / PARTS_DIR, 2, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "scores.parquet").exists()

    # Meanwhile-equivalent clean run in this process, from the very artifact that was registered.
    from models.artifact import artifact_paths, load_model_files

    model = load_model_files(artifact_paths(tmp_path / "registry" / "artifact"), version="1", source="registry artifact")
    clean = tmp_path / "clean"
    score_directory(ScoreOptions(data_dir=small_population, out_dir=clean, chunk_members=10, show_progress=False), model=model)

    resumed = subprocess.run([*args, "--resume"], env=env, cwd=tmp_path / "registry", capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "chunks reused from the interrupted run" in resumed.stdout
    assert (out / "scores.parquet").read_bytes() == (clean / "scores.parquet").read_bytes()
