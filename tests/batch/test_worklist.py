"""The care managers' worklist: ranking, plain-language content, human headers."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from service.batch.outputs import PART_SCHEMA
from service.batch.worklist import HEADERS, build_worklist, describe_value, rank_worklist, write_worklist
from tests.batch.factories import make_criterion, make_parts, make_reason, make_row


def _population():
    return make_parts([
        make_row("late", "eligible_now", products=("tisagenlecleucel",), eligible_since=date(2025, 5, 1), score=0.9),
        make_row("early", "eligible_now", products=("axicabtagene ciloleucel",), eligible_since=date(2024, 11, 1), score=0.2),
        make_row("soon-high", "likely_soon", score=0.8),
        make_row("soon-low", "likely_soon", score=0.5),
        make_row("watching", "watch", score=0.3),
        make_row("treated", "already_treated"),
        make_row("outside", "not_in_cohort"),
    ])


def test_eligible_now_first_longest_waiting_then_likely_soon_by_score():
    """Eligible-now members lead, longest-waiting first; likely-soon members follow by score."""
    assert rank_worklist(_population())["person_id"].tolist() == ["early", "late", "soon-high", "soon-low"]


def test_top_k_caps_the_list_after_ranking():
    """--top-k keeps the best-ranked members, not an arbitrary subset."""
    assert rank_worklist(_population(), top_k=3)["person_id"].tolist() == ["early", "late", "soon-high"]


def test_headers_are_plain_language_not_column_names():
    """No header is an internal snake_case column name."""
    worklist = build_worklist(_population())
    assert list(worklist.columns) == list(HEADERS)
    internal = set(PART_SCHEMA.names)
    assert not any(h in internal or re.fullmatch(r"[a-z_]+", h) for h in worklist.columns)


def test_reasons_and_missing_criteria_read_as_words():
    """Reasons show labels with units and categories spelled out; likely-soon rows say what is missing."""
    rows = make_parts([
        make_row("a", "likely_soon", reasons=[
            make_reason("lot_days_since_last_start", "Days since current line started", 45.0, 0.6),
            make_reason("demo_payer_type", "Payer type", 1.0, 0.3),
            make_reason("lot_prior_asct_flag", "Prior autologous transplant", 1.0, -0.2)],
            eligibility=[make_criterion(eligible=False, missing=("a second line of therapy",))]),
    ])
    line = build_worklist(rows).iloc[0]
    assert line["Why this member was flagged"] == "Days since current line started (45 days); Payer type (medicare)"
    assert line["Still needed to meet a label"] == "Axicabtagene ciloleucel: a second line of therapy"
    assert line["Priority"] == "Likely soon" and line["Disease"] == "Large B-cell lymphoma"


def test_flag_and_missing_values_are_described():
    """Flags read yes/no and a missing value reads 'unknown', never NaN."""
    assert describe_value("lot_prior_asct_flag", 0.0) == "no"
    assert describe_value("lot_count", float("nan")) == "unknown"


def test_worklist_csv_round_trips_with_days_waiting(tmp_path):
    """The CSV holds one line per listed member with the days since eligibility computed from as-of."""
    n = write_worklist(_population(), tmp_path / "worklist.csv")
    frame = pd.read_csv(tmp_path / "worklist.csv", dtype=str, keep_default_na=False)
    assert n == 4 and len(frame) == 4
    assert frame.loc[0, "Days since eligible"] == str((date(2025, 6, 30) - date(2024, 11, 1)).days)
    assert frame.loc[2, "Days since eligible"] == ""


def test_empty_population_gives_a_header_only_worklist(tmp_path):
    """A run where nobody is eligible or likely soon still writes a valid, empty worklist."""
    assert write_worklist(make_parts([make_row("x", "not_in_cohort")]), tmp_path / "w.csv") == 0
    assert (tmp_path / "w.csv").read_text().splitlines() == [",".join(HEADERS)]
