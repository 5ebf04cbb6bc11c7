"""Temporal, person-grouped splits.

Persons are assigned to train, validation or test by a seeded hash of their id (so the assignment
is stable when the population grows), and each split keeps only its own period of index dates:
train the earliest landmarks, validation the middle, test the latest. A person therefore never
appears in two splits, and the test set looks like deployment: new members, later dates. With
``purge_overlap`` a training example is kept only if its whole outcome window ends before the
first validation index date, so no training label is read from the evaluation period.
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
    """Where each split's period starts and which split each example belongs to (or ``dropped``)."""

    assignment: pd.Series
    validation_start: pd.Timestamp
    test_start: pd.Timestamp

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
    n = len(dates)
    n_test = max(1, int(round(n * settings.test_time_fraction)))
    n_validation = max(1, int(round(n * settings.validation_time_fraction)))
    if n_test + n_validation >= n:
        n_test, n_validation = 1, 1
    test_start = dates[n - n_test]
    validation_start = dates[n - n_test - n_validation]
    group = examples["person_id"].astype("string").map(assign_person_groups(examples["person_id"], settings))
    as_of = examples["as_of"]
    period = np.where(as_of >= test_start, "test", np.where(as_of >= validation_start, "validation", "train"))
    assignment = np.where(group.to_numpy() == period, period, "dropped")
    if settings.purge_overlap:
        reaches = (as_of + pd.Timedelta(days=horizon_days) >= validation_start).to_numpy()
        assignment = np.where((assignment == "train") & reaches, "dropped", assignment)
    return SplitPlan(pd.Series(assignment, index=examples.index, name="split"), validation_start, test_start)
