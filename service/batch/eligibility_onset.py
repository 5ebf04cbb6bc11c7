"""How long has a member been label-eligible? Needed to rank the worklist's "eligible now" block.

The scorer says who is eligible today, not since when. The onset is found by asking the same
feature pipeline the same question at earlier dates: each eligible member is re-evaluated at
monthly landmarks going back ``LOOKBACK_MONTHS`` (``features.pipeline.key_landmarks``), and the
onset is the earliest landmark of the unbroken run of eligible landmarks that ends today. So the
answer has monthly resolution and is capped at the lookback ("at least two years"); it costs one
pipeline call over (eligible members x landmarks), a small set even at payer scale.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

LOOKBACK_MONTHS = 24
STEP_DAYS = 30


def estimate_eligible_since(events: pd.DataFrame, persons: pd.DataFrame, person_ids: list[str], as_of: date, model) -> dict[str, date]:
    """Onset of current label eligibility per member of ``person_ids`` (all eligible on ``as_of``)."""
    if not person_ids:
        return {}
    from features.pipeline import build_features, key_landmarks

    dates = [as_of - timedelta(days=STEP_DAYS * k) for k in range(1, LOOKBACK_MONTHS + 1)]
    landmarks = pd.DataFrame(
        {"person_id": np.repeat(np.asarray(person_ids, dtype=object), len(dates)), "as_of": np.tile(np.asarray(dates, dtype="datetime64[D]"), len(person_ids))}
    )
    wanted = events[events["person_id"].isin(person_ids)]
    inputs = key_landmarks(wanted, persons[persons["person_id"].isin(person_ids)], landmarks)
    features = build_features(inputs.events, inputs.persons, inputs.as_of, model.codes, rules=model.rules)
    eligibility = features.eligibility
    eligible_keys = set(eligibility.loc[eligibility["eligible"].fillna(False).astype(bool), "person_id"].astype(str))
    examples = inputs.examples.assign(eligible=inputs.examples["example_id"].astype(str).isin(eligible_keys))
    onset: dict[str, date] = {}
    for person, group in examples.sort_values("as_of", ascending=False).groupby("person_id", sort=False):
        since = as_of
        for day, eligible in zip(group["as_of"], group["eligible"]):
            if not eligible:
                break
            since = pd.Timestamp(day).date()
        onset[str(person)] = since
    return onset
