"""Training examples: landmark index dates, the population at risk, and labels without leakage.

An example is one member at one landmark index date (``as_of``). Its features come from the
feature pipeline run with that example's own ``as_of`` (``features.pipeline.key_landmarks`` gives
each (person, date) its own key), so an example never sees an event after its index date. Labels
look forward from ``as_of`` and are built only here, never handed to the feature code.

Population at risk at ``as_of`` (``PopulationSettings``): in the cancer cohort, alive, inside a
continuous enrollment span that started at least ``min_history_days`` earlier, not label-eligible
for any product today, not treated with CAR T and with no CAR T-pathway claim yet (a member
already in work-up is not a member to find), and with a full horizon of data after ``as_of``.

Outcome (``OutcomeSettings``): the member becomes a candidate in ``(as_of, as_of + H]``: the
eligibility engine, run on a grid of dates every ``eligibility_grid_days``, first reports
eligibility for any product on a grid date in the window, or a CAR T-pathway claim (collection,
preparation, product, infusion; never MS-DRG 018 alone, which also covers other immunotherapies)
appears in it. The outcome date is the earlier of the two; ``candidate_date`` is the same without
the horizon limit (for lead time).

Censoring: death in the window before any outcome is a negative by default (a competing event:
dropping these members would remove exactly the sickest negatives and inflate AUPRC); leaving the
plan before the window ends without the outcome is censoring, and those examples are dropped and
counted in the attrition table. The end of data is handled by never placing an index date less
than H days before it.

Cost control: the pipeline runs only for members in the cohort at the end of the data (a member
outside it then was outside it at every earlier date), at grid dates from their first diagnosis
on, in chunks of members so repeated histories stay bounded in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from features.catalog import FEATURE_NAMES, FEATURE_SET_VERSION
from features.codelists import CodeLists
from features.events import day_numbers
from features.eligibility import EligibilityRules, assess_eligibility, load_rules
from features.pipeline import build_features, key_landmarks
from models.artifact import describe_rules_version
from training.evaluation import assign_age_band, assign_distance_band
from training.settings import OutcomeSettings, PopulationSettings

CAR_T_PATHWAY_EVENTS = ("car_t_collection", "car_t_preparation", "car_t_infusion")
# MS-DRG 018 also groups other immunotherapies; value code 86 is an amount, not a code on events.
_NOT_PATHWAY_ON_ITS_OWN = {("ms_drg", "018")}
_TARGET_REPEATED_ROWS = 4_000_000
_DAY = np.timedelta64(1, "D")


@dataclass
class ExampleSet:
    """At-risk examples with labels, their feature matrix (same row order), and how they were found.

    ``examples`` columns: person_id, as_of, label, outcome_date, candidate_date, died_in_window,
    sex, race, payer_type, age_band, distance_band (and truth_label / truth_candidate_date when
    the generator's truth was supplied). ``attrition`` counts landmark examples left after each
    population rule, so a reader can see who was excluded and why.
    """

    examples: pd.DataFrame
    features: pd.DataFrame
    attrition: pd.DataFrame
    landmark_dates: tuple[pd.Timestamp, ...]
    data_end: pd.Timestamp
    feature_set_version: str = FEATURE_SET_VERSION
    rules_version: str = ""
    codelists_version: str = ""
    cohort_persons: int = 0
    extra: dict = field(default_factory=dict)


def find_pathway_claims(events: pd.DataFrame, codes: CodeLists) -> pd.DataFrame:
    """Dated CAR T-pathway claims (person_id, date): collection, preparation, product, infusion."""
    procedures = codes.procedures
    pathway = procedures[procedures["event"].isin(CAR_T_PATHWAY_EVENTS) & procedures["code"].notna()]
    keys = {(s, c) for s, c in zip(pathway["code_system"], pathway["code"])} - _NOT_PATHWAY_ON_ITS_OWN
    drugs = codes.drugs[codes.drugs["drug_class"] == "car_t"]
    keys |= {(s, c) for s, c in zip(drugs["code_system"], drugs["code"])}
    key_frame = pd.DataFrame(sorted(keys), columns=["code_system", "code"]).astype("string")
    hits = events[["person_id", "date", "code_system", "code"]].merge(key_frame, on=["code_system", "code"], how="inner")
    patterns = pathway_patterns(codes)
    if patterns:
        for system, pattern in patterns:
            subset = events[(events["code_system"] == system) & events["code"].str.match(pattern).fillna(False)]
            hits = pd.concat([hits, subset[["person_id", "date", "code_system", "code"]]])
    return hits[["person_id", "date"]].drop_duplicates().reset_index(drop=True)


def pathway_patterns(codes: CodeLists) -> list[tuple[str, str]]:
    """Regex-defined CAR T-pathway procedure codes (none today; kept general for new code lists)."""
    procedures = codes.procedures
    rows = procedures[procedures["event"].isin(CAR_T_PATHWAY_EVENTS) & procedures["pattern"].notna()]
    return list(zip(rows["code_system"], rows["pattern"]))


def merge_enrollment_spans(events: pd.DataFrame, gap_days: int) -> pd.DataFrame:
    """Continuous coverage spans (person_id, span_start, span_end): enrollment rows merged when the
    next starts at most ``gap_days`` after the previous coverage ends."""
    enr = events.loc[events["kind"] == "enrollment", ["person_id", "date", "end_date"]].copy()
    if enr.empty:
        return pd.DataFrame({"person_id": pd.Series(dtype="string"), "span_start": pd.Series(dtype="datetime64[s]"), "span_end": pd.Series(dtype="datetime64[s]")})
    enr["end_date"] = enr["end_date"].fillna(enr["date"])
    enr = enr.sort_values(["person_id", "date"], kind="mergesort").reset_index(drop=True)
    start = day_numbers(enr["date"])
    end = day_numbers(enr["end_date"])
    person_codes, _ = pd.factorize(enr["person_id"])
    running_end = pd.Series(end).groupby(person_codes).cummax().to_numpy()
    previous_end = np.r_[np.iinfo(np.int64).min // 2, running_end[:-1]]
    new_person = np.r_[True, person_codes[1:] != person_codes[:-1]]
    new_span = new_person | (start > previous_end + gap_days + 1)
    span_id = np.cumsum(new_span)
    spans = enr.assign(span=span_id).groupby("span", sort=False).agg(
        person_id=("person_id", "first"), span_start=("date", "min"), span_end=("end_date", "max")
    )
    return spans.reset_index(drop=True)


def locate_spans(keys: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """For each (person_id, as_of) row, the coverage span containing ``as_of`` (NaT when none)."""
    left = keys[["person_id", "as_of"]].reset_index(names="_row")
    left = left.astype({"person_id": "string", "as_of": "datetime64[s]"}).sort_values("as_of", kind="mergesort")
    right = spans.astype({"person_id": "string", "span_start": "datetime64[s]", "span_end": "datetime64[s]"}).sort_values("span_start", kind="mergesort")
    found = pd.merge_asof(left, right, left_on="as_of", right_on="span_start", by="person_id", direction="backward")
    outside = found["span_end"].isna() | (found["span_end"] < found["as_of"])
    found["span_start"] = found["span_start"].where(~outside)
    found["span_end"] = found["span_end"].where(~outside)
    return found.sort_values("_row").set_index("_row")[["span_start", "span_end"]]


def lay_out_landmarks(data_start: pd.Timestamp, data_end: pd.Timestamp, outcome: OutcomeSettings, population: PopulationSettings) -> pd.DatetimeIndex:
    """Index dates every ``landmark_interval_days``, from ``min_history_days`` after the start of the
    data (or ``first_landmark``) to the last date leaving a full horizon before ``data_end``."""
    first = pd.Timestamp(population.first_landmark) if population.first_landmark else data_start + pd.Timedelta(days=population.min_history_days)
    last = data_end - pd.Timedelta(days=outcome.horizon_days)
    if population.last_landmark:
        last = min(last, pd.Timestamp(population.last_landmark))
    if last < first:
        return pd.DatetimeIndex([], dtype="datetime64[s]")
    return pd.date_range(first, last, freq=f"{population.landmark_interval_days}D").astype("datetime64[s]")


def lay_out_grid(landmarks: pd.DatetimeIndex, outcome: OutcomeSettings, data_end: pd.Timestamp) -> pd.DatetimeIndex:
    """Eligibility grid: every landmark plus every ``eligibility_grid_days`` after it, through
    the end of its horizon, so each window (as_of, as_of + H] is sampled up to its last day."""
    if len(landmarks) == 0:
        return landmarks
    step = outcome.eligibility_grid_days
    offsets = np.r_[np.arange(0, outcome.horizon_days, step), outcome.horizon_days]
    grid = (landmarks.values[:, None] + offsets[None, :] * _DAY).ravel()
    grid = pd.DatetimeIndex(np.unique(grid)).astype("datetime64[s]")
    return grid[grid <= data_end]


def _chunks(person_ids: np.ndarray, weights: np.ndarray, target: int):
    """Consecutive person groups whose summed weight (repeated event rows) stays near ``target``."""
    start, total = 0, 0
    for i, w in enumerate(weights):
        total += int(w)
        if total >= target:
            yield person_ids[start : i + 1]
            start, total = i + 1, 0
    if start < len(person_ids):
        yield person_ids[start:]


_EARLIEST = date(1900, 1, 1)


@dataclass(frozen=True)
class LabelRegimes:
    """The label versions in force on each date, numbered, and each set frozen in time.

    A *regime* is the set of label versions in force on a date; it changes only when a label is
    approved or superseded. ``code_of(dates)`` numbers the regime of each date; ``frozen[code]``
    is that set with its in-force windows removed, so the eligibility engine judges any later date
    by the rules known on the earlier one ("would this member meet the labels we know today?").
    """

    codes: dict[tuple[str, ...], int]
    frozen: tuple[EligibilityRules, ...]
    rules: EligibilityRules

    @classmethod
    def from_rules(cls, rules: EligibilityRules, dates: pd.DatetimeIndex) -> "LabelRegimes":
        codes: dict[tuple[str, ...], int] = {}
        frozen: list[EligibilityRules] = []
        for day in pd.DatetimeIndex(dates).unique().sort_values():
            ids = _in_force_ids(rules, day.date())
            if ids in codes:
                continue
            codes[ids] = len(frozen)
            kept = tuple(r.model_copy(update={"in_force_from": _EARLIEST, "in_force_to": None}) for r in rules.rules if r.id in ids)
            frozen.append(rules.model_copy(update={"rules": kept, "version": f"{rules.version}@{day:%Y-%m-%d}"}) if kept else None)
        return cls(codes, tuple(frozen), rules)

    def code_of(self, dates) -> np.ndarray:
        """Regime code per date (dates must lie in the range the regimes were built from)."""
        index = pd.DatetimeIndex(dates)
        unique = index.unique()
        lookup = {day: self.codes[_in_force_ids(self.rules, day.date())] for day in unique}
        return np.array([lookup[day] for day in index], dtype=np.int64)


def _in_force_ids(rules: EligibilityRules, day: date) -> tuple[str, ...]:
    return tuple(r.id for r in rules.rules if r.in_force_from <= day and (r.in_force_to is None or day < r.in_force_to))


def plan_frozen_evaluations(landmarks: pd.DatetimeIndex, grid: pd.DatetimeIndex, regimes: LabelRegimes, horizon_days: int) -> pd.DataFrame:
    """(as_of, regime) pairs at which eligibility must also be judged by an older regime: grid
    dates inside some landmark's window whose own regime differs from that landmark's."""
    if len(landmarks) == 0 or len(grid) == 0:
        return pd.DataFrame({"as_of": pd.Series(dtype="datetime64[s]"), "regime": pd.Series(dtype="int64")})
    landmark_code = regimes.code_of(landmarks)
    grid_code = regimes.code_of(grid)
    lm = landmarks.values.astype("datetime64[D]")
    gd = grid.values.astype("datetime64[D]")
    inside = (gd[None, :] > lm[:, None]) & (gd[None, :] <= lm[:, None] + np.timedelta64(horizon_days, "D"))
    differs = landmark_code[:, None] != grid_code[None, :]
    rows, cols = np.nonzero(inside & differs)
    plan = pd.DataFrame({"as_of": grid.values[cols], "regime": landmark_code[rows]}).drop_duplicates()
    return plan.astype({"as_of": "datetime64[s]"}).reset_index(drop=True)


def build_examples(
    events: pd.DataFrame,
    persons: pd.DataFrame,
    codes: CodeLists,
    outcome: OutcomeSettings,
    population: PopulationSettings,
    *,
    centers: pd.DataFrame | None = None,
    zip_centroids: pd.DataFrame | None = None,
    rules=None,
    truth: pd.DataFrame | None = None,
    progress: Callable[[int, int], None] | None = None,
    target_rows: int = _TARGET_REPEATED_ROWS,
) -> ExampleSet:
    """Landmark examples of the population at risk, labelled, with features as of each index date.

    ``truth`` (optional) has one row per person with ``truth_candidate_date``: the generator's
    first true eligibility or CAR T date, used only to compare labels, never to train.
    """
    pipeline_kwargs = {"centers": centers, "zip_centroids": zip_centroids, "rules": rules}
    data_end = pd.Timestamp(events["date"].max())
    data_start = pd.Timestamp(events["date"].min())
    landmarks = lay_out_landmarks(data_start, data_end, outcome, population)
    grid = lay_out_grid(landmarks, outcome, data_end)

    rules = rules if rules is not None else load_rules()
    pipeline_kwargs["rules"] = rules
    regimes = LabelRegimes.from_rules(rules, grid)
    frozen_plan = plan_frozen_evaluations(landmarks, grid, regimes, outcome.horizon_days)
    final = build_features(events, persons, pd.Series(data_end, index=pd.Index(persons["person_id"], name="person_id")), codes, **pipeline_kwargs)
    cohort = final.cohort[final.cohort["in_cohort"].fillna(False).astype(bool)][["person_id", "first_dx_date"]]
    death = persons.set_index("person_id")["death_date"]

    # (person, grid date) pairs from the first diagnosis on, before death.
    pairs = cohort.merge(pd.DataFrame({"as_of": grid}), how="cross")
    pairs = pairs[pairs["as_of"] >= pairs["first_dx_date"].dt.floor("D")]
    pairs = pairs[~(pairs["person_id"].map(death) <= pairs["as_of"]).fillna(False).to_numpy(dtype=bool)]
    pairs = pairs[["person_id", "as_of"]].reset_index(drop=True)
    is_landmark = pairs["as_of"].isin(landmarks).to_numpy()

    member_events = events[events["person_id"].isin(cohort["person_id"])]
    member_persons = persons[persons["person_id"].isin(cohort["person_id"])]
    per_person_events = member_events.groupby("person_id").size()
    per_person_pairs = pairs.groupby("person_id").size()
    order = per_person_pairs.index.to_numpy()
    weights = (per_person_events.reindex(order).fillna(0).to_numpy() + 1) * per_person_pairs.to_numpy()

    grid_status, frozen_status, landmark_features = [], [], []
    chunks = list(_chunks(order, weights, target_rows))
    for done, ids in enumerate(chunks):
        chunk_pairs = pairs[pairs["person_id"].isin(ids)]
        inputs = key_landmarks(
            member_events[member_events["person_id"].isin(ids)], member_persons[member_persons["person_id"].isin(ids)], chunk_pairs
        )
        result = build_features(inputs.events, inputs.persons, inputs.as_of, codes, **pipeline_kwargs)
        keyed = inputs.examples.set_index("example_id")
        eligible_any = result.eligibility.groupby("person_id")["eligible"].any() if len(result.eligibility) else pd.Series(dtype=bool)
        in_cohort = result.cohort.set_index("person_id")["in_cohort"].fillna(False).astype(bool)
        status = pd.DataFrame(
            {
                "person_id": keyed["person_id"],
                "as_of": keyed["as_of"],
                "in_cohort": in_cohort.reindex(keyed.index).fillna(False).to_numpy(dtype=bool),
                "eligible": eligible_any.reindex(keyed.index).fillna(False).to_numpy(dtype=bool),
            },
            index=keyed.index,
        )
        grid_status.append(status)
        frozen_status.append(_judge_by_older_labels(inputs, result, frozen_plan, regimes))
        feats = result.features.set_index("person_id").reindex(keyed.index)
        landmark_rows = keyed["as_of"].isin(landmarks).to_numpy()
        landmark_features.append(feats[landmark_rows])
        if progress:
            progress(done + 1, len(chunks))

    status = pd.concat(grid_status) if grid_status else pd.DataFrame(columns=["person_id", "as_of", "in_cohort", "eligible"])
    features = pd.concat(landmark_features) if landmark_features else pd.DataFrame(columns=list(FEATURE_NAMES))
    frozen = pd.concat(frozen_status, ignore_index=True) if frozen_status else _empty_frozen()
    example_set = _label_examples(
        status, frozen, features, events, persons, codes, outcome, population, landmarks, regimes, data_end, truth
    )
    example_set.rules_version = describe_rules_version(rules)
    example_set.codelists_version = final.codelists_version
    example_set.cohort_persons = int(len(cohort))
    example_set.extra["grid_evaluations"] = int(len(status))
    example_set.extra["landmark_candidates"] = int(is_landmark.sum())
    example_set.extra["older_label_evaluations"] = int(len(frozen))
    return example_set


def _regime_key(person_id: pd.Series, regime) -> pd.Series:
    """One merge key per (person, label regime)."""
    return person_id.astype("string").reset_index(drop=True) + "|" + pd.Series(np.asarray(regime), dtype="int64").astype("string")


def _empty_frozen() -> pd.DataFrame:
    return pd.DataFrame({"person_id": pd.Series(dtype="string"), "as_of": pd.Series(dtype="datetime64[s]"), "regime": pd.Series(dtype="int64"), "eligible": pd.Series(dtype=bool)})


def _judge_by_older_labels(inputs, result, frozen_plan: pd.DataFrame, regimes: LabelRegimes) -> pd.DataFrame:
    """Eligibility of this chunk's grid rows under the older label regimes ``frozen_plan`` asks
    for, reusing the pipeline's cohort and treatment summary (only the rules differ)."""
    out = []
    keyed = inputs.examples
    in_cohort = result.cohort.set_index("person_id")["in_cohort"].reindex(keyed["example_id"]).fillna(False).to_numpy(dtype=bool)
    for code, dates in frozen_plan.groupby("regime")["as_of"]:
        rules = regimes.frozen[int(code)]
        rows = keyed[keyed["as_of"].isin(dates).to_numpy() & in_cohort]
        if rules is None or rows.empty:
            continue
        as_of = pd.Series(rows["as_of"].to_numpy(), index=pd.Index(rows["example_id"], name="person_id"))
        judged = assess_eligibility(inputs.persons, result.cohort, result.treatment, as_of, rules)
        eligible = judged.groupby("person_id")["eligible"].any().reindex(as_of.index).fillna(False)
        out.append(
            pd.DataFrame(
                {"person_id": rows["person_id"].to_numpy(), "as_of": rows["as_of"].to_numpy(), "regime": int(code), "eligible": eligible.to_numpy(dtype=bool)}
            )
        )
    return pd.concat(out, ignore_index=True) if out else _empty_frozen()


def _first_after(events_by_person: pd.DataFrame, keys: pd.DataFrame, limit_days: int | None) -> pd.Series:
    """Per (person_id, as_of) row: the first ``date`` of that person strictly after ``as_of`` (and
    at most ``limit_days`` after it when given), else NaT."""
    left = keys[["person_id", "as_of"]].reset_index(names="_row")
    right = events_by_person[["person_id", "date"]].astype({"person_id": "string", "date": "datetime64[s]"}).sort_values("date", kind="mergesort")
    left = left.assign(person_id=left["person_id"].astype("string"), _after=(left["as_of"] + pd.Timedelta(seconds=1)).astype("datetime64[s]"))
    left = left.sort_values("_after", kind="mergesort")
    found = pd.merge_asof(left, right, left_on="_after", right_on="date", by="person_id", direction="forward")
    found = found.set_index("_row").sort_index()["date"]
    if limit_days is not None:
        found = found.where(found <= keys["as_of"].reset_index(drop=True) + pd.Timedelta(days=limit_days))
    return found.reset_index(drop=True)


def _label_examples(
    status: pd.DataFrame,
    frozen: pd.DataFrame,
    features: pd.DataFrame,
    events: pd.DataFrame,
    persons: pd.DataFrame,
    codes: CodeLists,
    outcome: OutcomeSettings,
    population: PopulationSettings,
    landmarks: pd.DatetimeIndex,
    regimes: LabelRegimes,
    data_end: pd.Timestamp,
    truth: pd.DataFrame | None,
) -> ExampleSet:
    horizon = outcome.horizon_days
    person_frame = persons.set_index("person_id")
    spans = merge_enrollment_spans(events[events["person_id"].isin(status["person_id"].unique())], population.enrollment_gap_days)
    pathway = find_pathway_claims(events[events["person_id"].isin(status["person_id"].unique())], codes)

    # Eligibility dates only count while the member is alive and covered.
    grid = status.reset_index(drop=True)
    grid_spans = locate_spans(grid, spans)
    covered = grid_spans["span_start"].notna().to_numpy()
    eligible_dates = grid.loc[grid["eligible"].to_numpy() & covered, ["person_id", "as_of"]]
    eligible_dates = eligible_dates.rename(columns={"as_of": "date"})
    signals = pd.concat([eligible_dates, pathway], ignore_index=True)
    # The same signals judged by the labels in force at each index date: a grid date counts for a
    # landmark of regime r when the engine found the member eligible under r (the date's own regime
    # when it equals r, else the frozen re-evaluation); pathway claims count under every regime.
    own = eligible_dates.assign(regime=regimes.code_of(eligible_dates["date"]) if len(eligible_dates) else np.zeros(0, dtype=np.int64))
    frozen_rows = frozen.reset_index(drop=True)
    frozen_covered = locate_spans(frozen_rows, spans)["span_start"].notna().to_numpy() if len(frozen_rows) else np.zeros(0, dtype=bool)
    older = frozen_rows.loc[frozen_rows["eligible"].to_numpy(dtype=bool) & frozen_covered, ["person_id", "as_of", "regime"]].rename(columns={"as_of": "date"})
    all_codes = np.arange(len(regimes.frozen))
    every_regime = pathway.merge(pd.DataFrame({"regime": all_codes}), how="cross")
    index_signals = pd.concat([own, older, every_regime], ignore_index=True)
    index_signals = index_signals.assign(person_id=_regime_key(index_signals["person_id"], index_signals["regime"]))[["person_id", "date"]]

    candidates = status[status["as_of"].isin(landmarks)]
    keys = candidates[["person_id", "as_of"]].reset_index(drop=True)
    feats = features.reindex(candidates.index).reset_index(drop=True)
    attrition = [("landmark examples in the end-of-data cohort", len(keys))]
    masks = {}
    masks["in the cohort at the index date"] = candidates["in_cohort"].to_numpy(dtype=bool)
    death = keys["person_id"].map(person_frame["death_date"])
    masks["alive at the index date"] = ~(death <= keys["as_of"]).fillna(False).to_numpy(dtype=bool)
    located = locate_spans(keys, spans).reset_index(drop=True)
    masks["enrolled at the index date"] = located["span_start"].notna().to_numpy()
    history = (keys["as_of"] - located["span_start"]).dt.days
    masks[f">= {population.min_history_days} days of continuous history"] = (history >= population.min_history_days).fillna(False).to_numpy(dtype=bool)
    masks["not label-eligible today"] = ~candidates["eligible"].to_numpy(dtype=bool)
    first_pathway = pathway.groupby("person_id")["date"].min()
    prior_pathway = (keys["person_id"].map(first_pathway) <= keys["as_of"]).fillna(False).to_numpy(dtype=bool)
    treated = feats.get("lot_car_t_received_flag", pd.Series(0.0, index=feats.index)).fillna(0).to_numpy() > 0
    masks["not treated with CAR T and no CAR T-pathway claim yet"] = ~(prior_pathway | treated)

    keep = np.ones(len(keys), dtype=bool)
    for name, mask in masks.items():
        keep &= mask
        attrition.append((name, int(keep.sum())))

    keys, feats, located, death = keys[keep].reset_index(drop=True), feats[keep].reset_index(drop=True), located[keep].reset_index(drop=True), death[keep].reset_index(drop=True)
    outcome_at_outcome_rules = _first_after(signals, keys, horizon)
    regime_keys = keys.assign(person_id=_regime_key(keys["person_id"], regimes.code_of(keys["as_of"]) if len(keys) else np.zeros(0, dtype=np.int64)))
    outcome_at_index_rules = _first_after(index_signals, regime_keys, horizon)
    outcome_date = outcome_at_index_rules if outcome.label_rules == "in_force_at_index" else outcome_at_outcome_rules
    candidate_date = _first_after(signals, keys, None)
    window_end = keys["as_of"] + pd.Timedelta(days=horizon)
    died = (death > keys["as_of"]) & (death <= window_end) & ~(outcome_date <= death).fillna(False)
    left_plan = (located["span_end"] < window_end) & ~(outcome_date <= located["span_end"]).fillna(False) & ~died
    drop = np.zeros(len(keys), dtype=bool)
    if outcome.disenrollment_without_outcome == "exclude":
        drop |= left_plan.fillna(False).to_numpy(dtype=bool)
        attrition.append(("left the plan in the window without the outcome (censored)", int((~drop).sum())))
    if outcome.death_without_outcome == "exclude":
        drop |= died.fillna(False).to_numpy(dtype=bool)
        attrition.append(("died in the window without the outcome (excluded)", int((~drop).sum())))

    examples = keys.assign(
        label=outcome_date.notna().astype("int8").to_numpy(),
        outcome_date=outcome_date.to_numpy(),
        candidate_date=candidate_date.to_numpy(),
        label_index_rules=outcome_at_index_rules.notna().astype("int8").to_numpy(),
        label_outcome_rules=outcome_at_outcome_rules.notna().astype("int8").to_numpy(),
        label_change_only=(outcome_at_outcome_rules.notna() & outcome_at_index_rules.isna()).to_numpy(),
        died_in_window=died.fillna(False).to_numpy(dtype=bool),
        sex=keys["person_id"].map(person_frame["sex"]).astype("string").fillna("unknown").to_numpy(),
        race=keys["person_id"].map(person_frame["race"]).astype("string").fillna("unknown").to_numpy(),
        payer_type=keys["person_id"].map(person_frame["payer_type"]).astype("string").fillna("unknown").to_numpy(),
        age_band=assign_age_band(feats.get("demo_age_years", pd.Series(np.nan, index=feats.index))).to_numpy(),
        distance_band=assign_distance_band(feats.get("geo_car_t_center_distance_miles", pd.Series(np.nan, index=feats.index))).to_numpy(),
    )
    if truth is not None:
        truth_date = examples["person_id"].map(truth.set_index("person_id")["truth_candidate_date"])
        examples["truth_candidate_date"] = truth_date.to_numpy()
        examples["truth_label"] = ((truth_date > examples["as_of"]) & (truth_date <= examples["as_of"] + pd.Timedelta(days=horizon))).fillna(False).astype("int8").to_numpy()
        examples["truth_already_candidate"] = (truth_date <= examples["as_of"]).fillna(False).to_numpy(dtype=bool)
    examples = examples[~drop].reset_index(drop=True)
    feats = feats[~drop].reset_index(drop=True)
    feats = feats[list(FEATURE_NAMES)].astype("float32")
    return ExampleSet(
        examples=examples,
        features=feats,
        attrition=pd.DataFrame(attrition, columns=["step", "examples"]),
        landmark_dates=tuple(landmarks),
        data_end=data_end,
    )
