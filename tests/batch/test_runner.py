"""The local engine end to end on a small population: reconciliation, determinism, resume safety."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.outputs import RunStateError
from service.batch.runner import ScoreOptions, not_in_cohort_part, part_from_scored, plan_chunks, score_directory
from tests.batch.factories import ModelIdentity
from tests.contract.factories import write_contract

pytestmark = pytest.mark.slow


def _run(data, out, model, **overrides):
    options = ScoreOptions(data_dir=data, out_dir=out, chunk_members=15, show_progress=False, **overrides)
    return score_directory(options, model=model)


@pytest.fixture(scope="module")
def first_run(small_population, test_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-a")
    return _run(small_population, out, test_model), out


def test_every_eligibility_member_appears_once_with_the_model_version(first_run, small_population):
    """scores.parquet has one row per eligibility person; counts reconcile; versions are echoed."""
    summary, out = first_run
    scores = pq.read_table(out / "scores.parquet").to_pandas()
    people = pd.read_parquet(small_population / "eligibility.parquet")["person_id"].unique()
    assert sorted(scores["person_id"]) == sorted(people)
    assert scores["person_id"].is_unique
    assert sum(summary.status_counts.values()) == len(people) == summary.members
    assert set(scores["model_version"]) == {"7"} and set(scores["model_name"]) == {"cartscout-candidate"}
    assert summary.status_counts["not_in_cohort"] > 0 and summary.status_counts["eligible_now"] > 0


def test_members_outside_the_cohort_are_never_explained(first_run):
    """Not-in-cohort and eligible-now members carry no score and no SHAP reasons; scored ones do."""
    _, out = first_run
    scores = pq.read_table(out / "scores.parquet").to_pandas()
    outside = scores[scores["status"] == "not_in_cohort"]
    assert outside["score"].isna().all() and outside["reasons"].map(len).eq(0).all() and (~outside["in_cohort"]).all()
    scored = scores[scores["status"].isin(["likely_soon", "watch", "unlikely"])]
    assert len(scored) and scored["score"].between(0, 1).all() and scored["reasons"].map(len).gt(0).all()


def test_outputs_are_written_and_checkpoints_removed(first_run):
    """A finished run leaves scores, worklist and report, and no checkpoint area."""
    _, out = first_run
    assert {p.name for p in out.iterdir()} >= {"scores.parquet", "worklist.csv", "report.html"}
    assert not (out / ".cartscout-run").exists()
    worklist = pd.read_csv(out / "worklist.csv")
    assert list(worklist["Priority"].unique())[0] == "Eligible now"


def test_same_input_and_model_give_byte_identical_scores(first_run, small_population, test_model, tmp_path):
    """A second run over the same files with the same model writes the same bytes."""
    _, out = first_run
    _run(small_population, tmp_path, test_model)
    assert (tmp_path / "scores.parquet").read_bytes() == (out / "scores.parquet").read_bytes()


def test_chunk_size_does_not_change_any_score(first_run, small_population, test_model, tmp_path):
    """Chunks hold complete members, so how the cohort is cut changes no member's row."""
    _, out = first_run
    score_directory(ScoreOptions(data_dir=small_population, out_dir=tmp_path, chunk_members=1000, show_progress=False), model=test_model)
    assert pq.read_table(tmp_path / "scores.parquet").equals(pq.read_table(out / "scores.parquet"))


def test_resume_reuses_finished_chunks_and_matches_a_clean_run(first_run, small_population, test_model, tmp_path):
    """A run stopped after two chunks and resumed scores only the rest and equals the clean run."""
    _, out = first_run

    class Stop(Exception):
        pass

    def stop_after_two(chunk):
        if chunk == 1:
            raise Stop

    options = ScoreOptions(data_dir=small_population, out_dir=tmp_path, chunk_members=15, show_progress=False)
    with pytest.raises(Stop):
        score_directory(options, model=test_model, on_chunk_scored=stop_after_two)
    options.resume = True
    summary = score_directory(options, model=test_model)
    assert summary.resumed_chunks >= 2
    assert (tmp_path / "scores.parquet").read_bytes() == (out / "scores.parquet").read_bytes()


def test_resume_with_another_as_of_is_refused(small_population, test_model, tmp_path):
    """Resuming with a different as-of date would mix two runs, so it is refused."""
    class Stop(Exception):
        pass

    def stop(chunk):
        raise Stop

    options = ScoreOptions(data_dir=small_population, out_dir=tmp_path, chunk_members=15, show_progress=False, as_of=date(2024, 6, 30))
    with pytest.raises(Stop):
        score_directory(options, model=test_model, on_chunk_scored=stop)
    options.resume, options.as_of = True, date(2024, 7, 31)
    with pytest.raises(RunStateError, match="as_of"):
        score_directory(options, model=test_model)


def test_population_without_cohort_members_scores_everyone_not_in_cohort(test_model, tmp_path):
    """Nobody with a target code: every member is not_in_cohort and the files are still written."""
    from tests.contract.factories import fill, medical_line, span

    data = write_contract(tmp_path / "data", {"eligibility": [span("A"), span("B")],
                                              "medical_claim": [medical_line("C1", person_id="A", diagnosis_code_1="I10")],
                                              "pharmacy_claim": [fill("R1", person_id="B")]})
    summary = _run(data, tmp_path / "out", test_model)
    assert summary.status_counts["not_in_cohort"] == 2 and summary.candidates == 0
    assert (tmp_path / "out" / "report.html").is_file()


def test_plan_puts_each_candidate_in_one_chunk_and_others_outside():
    """Candidates are cut into chunks in id order; non-candidates get chunk -1; unknown ids are dropped."""
    plan = plan_chunks(pa.array(["d", "a", "c", "b"]), pa.array(["a", "c", "d", "zz"]), 2).to_pydict()
    assert plan == {"person_id": ["a", "b", "c", "d"], "chunk": [0, -1, 0, 1]}


def test_not_in_cohort_rows_match_the_canonical_row_form():
    """Column-built outside rows equal the scorer's own not-in-cohort rows, field for field."""
    model = ModelIdentity()
    built = not_in_cohort_part(pa.array(["x"]), date(2025, 1, 1), model)
    persons = pd.DataFrame({"person_id": ["x"], "payer_type": ["medicare"]})
    converted = part_from_scored([{"person_id": "x", "status": "not_in_cohort", "in_cohort": False, "disease": None}], persons, date(2025, 1, 1), model)
    assert built.equals(converted)


def test_member_whose_eligibility_rows_are_all_quarantined_still_appears(test_model, tmp_path):
    """A cohort member with only invalid enrollment rows is quarantined, counted, and listed not_in_cohort."""
    from tests.contract.factories import fill, medical_line, span

    data = write_contract(tmp_path / "data", {
        "eligibility": [span("GOOD"), span("BAD", enrollment_start_date="2023-02-30")],
        "medical_claim": [medical_line("C1", person_id="GOOD", hcpcs_code="J9312"), medical_line("C2", person_id="BAD", hcpcs_code="J9312")],
        "pharmacy_claim": [fill("R1", person_id="GOOD")],
    }, fmt="parquet")
    summary = _run(data, tmp_path / "out", test_model)
    scores = pq.read_table(tmp_path / "out" / "scores.parquet").to_pandas().set_index("person_id")
    assert sorted(scores.index) == ["BAD", "GOOD"]
    assert scores.loc["BAD", "status"] == "not_in_cohort"
    assert summary.unassessed_members == 1 and summary.quarantined_rows >= 1
    assert "every eligibility row quarantined" in summary.render()
    assert list((tmp_path / "out" / "quarantine").glob("chunk-*/issues.parquet"))


def test_collector_is_settled_while_scoring_and_restored_even_when_a_run_fails(small_population, test_model, tmp_path):
    """Chunks are scored with the loaded model frozen out of the collector's view and the
    young-generation threshold raised; both are put back after the run, and after a failed one."""
    import gc

    from service.garbage_collector import YOUNG_GENERATION_THRESHOLD

    before = gc.get_threshold()
    seen = []

    class Stop(Exception):
        pass

    def record_then_stop(chunk):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        raise Stop

    options = ScoreOptions(data_dir=small_population, out_dir=tmp_path, chunk_members=15, show_progress=False)
    with pytest.raises(Stop):
        score_directory(options, model=test_model, on_chunk_scored=record_then_stop)
    assert seen and seen[0][0] == YOUNG_GENERATION_THRESHOLD and seen[0][1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
