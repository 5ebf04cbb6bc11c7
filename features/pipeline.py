"""THE feature pipeline: events in; cohort, lines, treatment summary, eligibility and features out.

``build_features`` is the only implementation. The real-time API calls it with one member, the
batch scorer with chunks of complete members, Spark inside ``applyInPandas``, and training with
landmark examples; none of them has a second copy. It computes for many members at once, each with
their own ``as_of`` date, and it sees only events on or before that date: events are clipped once,
here, and a death recorded after ``as_of`` is hidden too.

Keys. Every frame is keyed by ``person_id``, and ``as_of`` is a Series indexed by that key. The
key need not be a real person: training evaluates the same member at several landmark dates by
giving each (person, as_of) example its own key. :func:`key_landmarks` builds such inputs (events
repeated per example, already limited to that example's date) and returns the example -> person
map to join the outputs back.

Single-member cost is dominated by per-call pandas overhead, so the steps hand each other small
frames and the risk features run on NumPy arrays (see ``features/risk.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from features.catalog import FEATURE_SET_VERSION
from features.codelists import CodeLists
from features.cohort import CohortConfig, cohort_columns
from features.columns import FrameColumns, columns_of, frame_from_columns, n_rows, object_values, positions, to_numpy
from features.comorbidity import load_charlson_codes
from features.eligibility import EligibilityRules, eligibility_columns, load_rules
from features.events import clip_to_as_of
from features.geography import locate_centers, nearest_center_miles
from features.lines import line_columns
from features.lot_config import LotConfig
from features.relapse import treatment_columns
from features.risk import build_code_tagger, risk_feature_columns


@dataclass(frozen=True)
class FeatureSet:
    """Everything the pipeline derives for a batch of members, with the versions that produced it.

    ``cohort``, ``treatment`` and ``features``: one row per key of ``as_of``; ``lines``: one row
    per line of therapy; ``eligibility``: one row per key and CAR T product x indication evaluated.
    The steps' column arrays are kept and each DataFrame is built on first use: a real-time caller
    that never reads, say, the treatment summary does not pay for its frame.
    """

    cohort_columns: Mapping[str, object]
    lines_columns: Mapping[str, object]
    treatment_columns: Mapping[str, object]
    eligibility_columns: Mapping[str, object]
    features_columns: Mapping[str, object]
    feature_set_version: str
    rules_version: str
    codelists_version: str

    def feature_matrix(self, names: Sequence[str]) -> np.ndarray:
        """The named features as a float64 (members x features) matrix, straight from the arrays."""
        missing = [name for name in names if name not in self.features_columns]
        if missing:
            raise KeyError(f"features lack column(s): {', '.join(missing)}")
        matrix = np.empty((n_rows(self.features_columns), len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            matrix[:, j] = self.features_columns[name]
        return matrix

    @cached_property
    def features(self) -> pd.DataFrame:
        return frame_from_columns(self.features_columns, n_rows(self.features_columns))

    @cached_property
    def cohort(self) -> pd.DataFrame:
        return frame_from_columns(self.cohort_columns, n_rows(self.features_columns))

    @cached_property
    def lines(self) -> pd.DataFrame:
        return frame_from_columns(self.lines_columns, n_rows(self.lines_columns))

    @cached_property
    def treatment(self) -> pd.DataFrame:
        return frame_from_columns(self.treatment_columns, n_rows(self.features_columns))

    @cached_property
    def eligibility(self) -> pd.DataFrame:
        return frame_from_columns(self.eligibility_columns, n_rows(self.eligibility_columns))


@dataclass(frozen=True)
class LandmarkInputs:
    """Pipeline inputs keyed by example id; ``examples`` maps example_id -> person_id, as_of."""

    events: pd.DataFrame
    persons: pd.DataFrame
    as_of: pd.Series
    examples: pd.DataFrame


def build_features(
    events: pd.DataFrame | FrameColumns,
    persons: pd.DataFrame | FrameColumns,
    as_of: pd.Series,
    codes: CodeLists,
    *,
    centers: pd.DataFrame | np.ndarray | None = None,
    zip_centroids: pd.DataFrame | None = None,
    rules: EligibilityRules | None = None,
    lot_config: LotConfig | None = None,
    cohort_config: CohortConfig | None = None,
) -> FeatureSet:
    """Derive cohort, lines, treatment summary, label eligibility and risk features as of each member's date.

    ``events`` and ``persons`` are in the event model (``features.events``); either may also be
    column arrays (``features.columns.ArrayColumns``, as a request maps them); ``as_of`` is indexed
    by ``person_id`` (one date per member; members absent from it are ignored). ``centers`` is the
    operator's CAR T centre list (``name, zip, latitude, longitude``), or, for callers that score
    repeatedly, its coordinates prepared once with ``features.geography.locate_centers``;
    ``zip_centroids`` is the table from ``features.geography.load_zip_centroids``. Without either,
    distance is NaN.
    ``rules`` defaults to the packaged label rules.
    """
    as_of = _check_as_of(as_of)
    keys = as_of.index
    # each event column is read from the frame once, for clipping and every step after it
    source = columns_of(events)
    clipped = clip_to_as_of(source if len(as_of) else columns_of(source.frame.iloc[:0]), as_of)
    persons = _clip_persons(persons, as_of)  # read once for eligibility, distance and risk
    rules = rules if rules is not None else load_rules()

    # The steps hand each other column arrays; each output DataFrame is built once, at the end.
    cohort = cohort_columns(clipped, persons, as_of, codes, cohort_config)
    diseases = _cohort_diseases(cohort)
    lines = line_columns(clipped, diseases, as_of, codes, lot_config)
    treatment = treatment_columns(lines, clipped, diseases, as_of, codes, lot_config=lot_config)
    eligibility = eligibility_columns(persons, cohort, treatment, as_of, rules)

    distance = None
    if centers is not None and zip_centroids is not None:
        rows = positions(pd.Index(object_values(persons, "person_id"), dtype=object), keys.to_numpy(dtype=object), "persons")
        zips = object_values(persons, "zip_code", None)[np.maximum(rows, 0)]
        zips = np.where(rows >= 0, zips, None)
        coords = centers if isinstance(centers, np.ndarray) else locate_centers(centers, zip_centroids)
        distance = nearest_center_miles(zips, zip_centroids, coords)
    features = risk_feature_columns(
        clipped,
        persons,
        as_of,
        cohort=cohort,
        lines=lines,
        treatment=treatment,
        eligibility=eligibility,
        tagger=build_code_tagger(codes),
        charlson=load_charlson_codes(),
        center_distance_miles=distance,
    )
    return FeatureSet(
        cohort_columns=cohort,
        lines_columns=lines,
        treatment_columns=treatment,
        eligibility_columns=eligibility,
        features_columns=features,
        feature_set_version=FEATURE_SET_VERSION,
        rules_version=rules.version,
        codelists_version=codes.version,
    )


def key_landmarks(events: pd.DataFrame, persons: pd.DataFrame, landmarks: pd.DataFrame) -> LandmarkInputs:
    """Re-key inputs so that each (person_id, as_of) row of ``landmarks`` is its own pipeline member.

    The example id is ``"<person_id>@<YYYY-MM-DD>"``. Each example gets only the events on or
    before its own date, so repeating a member's history per landmark costs memory only for the
    part of the history each landmark can see.
    """
    missing = {"person_id", "as_of"} - set(landmarks.columns)
    if missing:
        raise ValueError(f"landmarks frame lacks column(s): {', '.join(sorted(missing))}")
    examples = landmarks[["person_id", "as_of"]].drop_duplicates().reset_index(drop=True)
    examples["person_id"] = examples["person_id"].astype("string")
    examples["as_of"] = pd.to_datetime(examples["as_of"]).astype("datetime64[s]")
    examples.insert(0, "example_id", examples["person_id"] + "@" + examples["as_of"].dt.strftime("%Y-%m-%d"))
    repeated = events.merge(examples, on="person_id", how="inner", suffixes=("", "_landmark"))
    repeated = repeated[repeated["date"].le(repeated["as_of"]).to_numpy(dtype=bool, na_value=False)]
    keyed_events = repeated.drop(columns=["person_id", "as_of"]).rename(columns={"example_id": "person_id"})[list(events.columns)]
    keyed_persons = persons.merge(examples[["example_id", "person_id"]], on="person_id", how="inner")
    keyed_persons = keyed_persons.drop(columns=["person_id"]).rename(columns={"example_id": "person_id"})[list(persons.columns)]
    as_of = pd.Series(examples["as_of"].to_numpy(), index=pd.Index(examples["example_id"], name="person_id"), name="as_of")
    return LandmarkInputs(keyed_events.reset_index(drop=True), keyed_persons.reset_index(drop=True), as_of, examples)


def _check_as_of(as_of: pd.Series) -> pd.Series:
    """``as_of`` as datetime64[s] at day resolution, indexed by unique string keys without gaps.

    The Series' own name and its index's name play no part in the steps: a caller whose dates are
    already in shape gets its Series back unchanged, whatever it is called, and pays nothing more.
    """
    if not isinstance(as_of, pd.Series):
        raise TypeError("as_of must be a pandas Series indexed by person_id")
    if len(as_of) > 1 and not as_of.index.is_unique:  # one key: skip building the index's hash table
        raise ValueError("as_of index (person_id) has duplicates: give each member one evaluation date, or key examples with key_landmarks")
    values = to_numpy(as_of.array) if as_of.dtype.kind == "M" else pd.to_datetime(as_of).to_numpy()
    days = values.astype("datetime64[D]")
    if np.isnat(days).any():
        raise ValueError(f"as_of is missing for {int(np.isnat(days).sum())} member(s)")
    seconds = days.astype("datetime64[s]")
    if as_of.index.dtype == "string" and values.dtype == seconds.dtype and (values == seconds).all():
        return as_of
    index = as_of.index if as_of.index.dtype == "string" else as_of.index.astype("string")
    return pd.Series(seconds, index=index.rename("person_id"), name="as_of")


def _clip_persons(persons: pd.DataFrame | FrameColumns, as_of: pd.Series) -> FrameColumns:
    """Persons of the batch only, as column arrays, with a death after a member's ``as_of`` hidden
    (it is future information). The person ids converted here serve every later step. ``persons``
    is a DataFrame or its column arrays (``columns_of``, as a request maps them)."""
    columns = columns_of(persons)
    rows = positions(as_of.index, object_values(columns, "person_id", None), "as_of")
    found = rows >= 0
    if "death_date" in columns:
        death = to_numpy(columns["death_date"], "datetime64[s]")[found]
        if (~np.isnat(death)).any():
            future = death > to_numpy(as_of.array, "datetime64[s]")[rows[found]]
            if future.any():
                keep = columns.frame[found].assign(death_date=np.where(future, np.datetime64("NaT"), death).astype("datetime64[s]"))
                return columns_of(keep.reset_index(drop=True))
    return columns if found.all() else columns.select_rows(found)


def _cohort_diseases(cohort: Mapping[str, object]) -> np.ndarray:
    """Each member's disease in ``as_of`` order (None outside the cohort): what the lines and relapse
    steps read. An array, not a Series: building a Series and its index for one member cost more
    than the lines step's arithmetic."""
    return np.where(to_numpy(cohort["in_cohort"], bool), to_numpy(cohort["disease"], object, None), None)
