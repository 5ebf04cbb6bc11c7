"""Temporal, person-grouped splits: no person in two splits, test dates after training dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.settings import SplitSettings
from training.splits import assign_person_groups, plan_split


def _examples(persons: int = 300, landmarks: int = 10) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=landmarks, freq="90D")
    frame = pd.DataFrame([(f"p{i}", d) for i in range(persons) for d in dates], columns=["person_id", "as_of"])
    frame["label"] = np.random.default_rng(0).integers(0, 2, len(frame))
    return frame


def test_no_person_in_two_splits():
    """Every person's kept examples belong to a single split."""
    examples = _examples()
    plan = plan_split(examples, SplitSettings(), horizon_days=180)
    kept = examples.assign(split=plan.assignment)[plan.assignment != "dropped"]
    assert kept.groupby("person_id")["split"].nunique().max() == 1
    assert set(kept["split"]) == {"train", "validation", "test"}


def test_test_dates_later_than_train_and_labels_purged():
    """Validation and test index dates all follow every training index date; with purging no
    training outcome window reaches the later period."""
    examples = _examples()
    plan = plan_split(examples, SplitSettings(), horizon_days=180)
    by = {s: examples.loc[plan.rows(s), "as_of"] for s in ("train", "validation", "test")}
    assert by["train"].max() < by["validation"].min()
    assert by["train"].max() < by["test"].min()
    assert (by["train"] + pd.Timedelta(days=180)).max() < plan.holdout_start


def test_later_period_holds_the_requested_share_of_examples():
    """The cut is placed by example counts: a growing cohort still leaves training most rows."""
    examples = _examples()
    growing = pd.concat([examples, examples[examples["as_of"] >= examples["as_of"].max()]] * 1, ignore_index=True)
    plan = plan_split(growing, SplitSettings(holdout_time_fraction=0.35), horizon_days=180)
    later_share = (growing["as_of"] >= plan.holdout_start).mean()
    assert 0.35 <= later_share < 0.35 + 0.2


def test_person_assignment_is_stable_when_population_grows():
    """A person's split depends on their id and the seed only, not on who else is present."""
    small = assign_person_groups(pd.Series([f"p{i}" for i in range(50)]), SplitSettings())
    large = assign_person_groups(pd.Series([f"p{i}" for i in range(500)]), SplitSettings())
    assert (large.loc[small.index] == small).all()
    other_seed = assign_person_groups(pd.Series([f"p{i}" for i in range(500)]), SplitSettings(seed=1))
    assert (other_seed != large).any()


def test_too_few_landmarks_is_an_error():
    """A temporal split needs at least three distinct index dates."""
    with pytest.raises(ValueError, match="3 distinct"):
        plan_split(_examples(landmarks=2), SplitSettings(), horizon_days=180)
