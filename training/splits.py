"""Temporal, person-grouped splits.

Persons are assigned to train, validation or test by a seeded hash of their id (so the assignment
is stable when the population grows). Index dates are cut at one date: training keeps its
persons' earlier landmarks, validation and test keep their persons' later landmarks (the last
``holdout_time_fraction`` of examples). A person therefore never appears in two splits, and the
test set looks like deployment: new members, later dates. Validation shares the test period (with
other persons) on purpose: the calibrator fitted on it then reflects the period the model is
judged -- and used -- in, not the training years. With ``purge_overlap`` a training example is
kept only if its whole outcome window ends before the cut, so no training label is read from the
evaluation period.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.settings import SplitSettings

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitPlan:
    """Which split each example belongs to (or ``dropped``) and where the later period starts."""

    assignment: pd.Series
    holdout_start: pd.Timestamp

    def rows(self, split: str) -> np.ndarray:
        return (self.assignment == split).to_numpy()


def assign_person_groups(person_ids: pd.Series, settings: SplitSettings) -> pd.Series:
    """Seeded, hash-based person -> split assignment; the same person always lands in the same split."""
    unique = pd.Series(pd.unique(person_ids.astype("string")))
    digits = unique.map(lambda pid: int(hashlib.sha256(f"{settings.seed}:{pid}".encode()).hexdigest()[:12], 16) / 16**12)
    group = np.where(
        digits < settings.test_person_fraction,
        "test",
        np.where(digits < settings.test_person_fraction + settings.validation_person_fraction, "validation", "train"),
    )
    return pd.Series(group, index=pd.Index(unique, name="person_id"), name="split")


def plan_split(examples: pd.DataFrame, settings: SplitSettings, horizon_days: int) -> SplitPlan:
    """Assign each example to its person's split if its index date lies in that split's period."""
    dates = pd.DatetimeIndex(sorted(examples["as_of"].unique()))
    if len(dates) < 3:
        raise ValueError(f"need at least 3 distinct landmark dates for a temporal split, found {len(dates)}")
    # The later period holds the requested share of *examples* (the cohort grows over time, so a
    # share of dates would leave training with a sliver of the data).
    counts = examples["as_of"].value_counts().reindex(dates).to_numpy()
    share_from = (counts[::-1].cumsum() / counts.sum())[::-1]
    cut = int(np.clip(np.flatnonzero(share_from >= settings.holdout_time_fraction).max(), 1, len(dates) - 1))
    holdout_start = dates[cut]
    group = examples["person_id"].astype("string").map(assign_person_groups(examples["person_id"], settings)).to_numpy()
    as_of = examples["as_of"]
    later = (as_of >= holdout_start).to_numpy()
    assignment = np.where(later & (group != "train"), group, np.where(~later & (group == "train"), "train", "dropped"))
    if settings.purge_overlap:
        reaches = (as_of + pd.Timedelta(days=horizon_days) >= holdout_start).to_numpy()
        assignment = np.where((assignment == "train") & reaches, "dropped", assignment)
    return SplitPlan(pd.Series(assignment, index=examples.index, name="split"), holdout_start)
