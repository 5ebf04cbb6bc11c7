"""Risk features: one row per member, the columns of ``features.catalog.FEATURE_NAMES``.

Everything here runs on NumPy arrays indexed by *member position* (the order of ``as_of``), with
codes looked up once per distinct (code system, code) pair. That keeps one implementation cheap in
both regimes that matter: a single member in a real-time request (where pandas per-call overhead,
not arithmetic, dominates) and chunks of many thousands of members in batch. The inputs are the
clipped events and the outputs of the cohort, lines, treatment and eligibility steps, so a feature
never re-derives a clinical fact those steps own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.catalog import DISEASE_LEVELS, FEATURE_NAMES, PAYER_LEVELS, SEX_LEVELS, UTILISATION_WINDOWS_DAYS
from features.codelists import CodeLists
from features.columns import STRING, FrameColumns, TextColumn, code_pair_index, columns_of, frame_from_columns, n_rows, object_values, positions, row_members, to_numpy
from features.comorbidity import CharlsonCodes, score_categories
from features.memo import bounded
from features.events import PAYER_TYPE_SYSTEM, event_days

# Event tags: what an event means for utilisation and referral features.
_TAGS = (
    "pet_ct",
    "marrow_biopsy",
    "radiation",
    "em_new",
    "em_established",
    "car_t_workup",
    "stem_cell_workup",
    "relapse_code",
    "remission_code",
    "toxicity_code",
    "cellular_therapy_history",
)
_TAG = {t: i for i, t in enumerate(_TAGS)}
# procedure_codes.csv ``event`` -> tag. CAR T collection, cell preparation and generic leukapheresis
# all mean the member is already in a cellular-therapy work-up.
_PROCEDURE_TAGS = {
    "pet_ct": "pet_ct",
    "marrow_biopsy": "marrow_biopsy",
    "radiation": "radiation",
    "em_new_patient": "em_new",
    "em_consult": "em_new",
    "em_established": "em_established",
    "car_t_collection": "car_t_workup",
    "car_t_preparation": "car_t_workup",
    "apheresis": "car_t_workup",
    "stem_cell_collection": "stem_cell_workup",
    "stem_cell_mobilization": "stem_cell_workup",
}
_DIAGNOSIS_ROLE_TAGS = {
    "relapse_marker": "relapse_code",
    "remission_marker": "remission_code",
    "toxicity": "toxicity_code",
    "car_t_history": "cellular_therapy_history",
}
_EXPOSURE_COLUMNS = ("anti_cd20", "anthracycline", "btki", "bcl2i", "imid", "pi", "anti_cd38", "bispecific", "alkylator")
_CHARLSON_LOOKBACK_DAYS = 365
_MAX_AGE = 1 << 16  # days; older events (> 179 years) cannot be real and are ignored


@dataclass(frozen=True)
class CodeTagger:
    """(code system, code) -> event tag, built once per code-list version."""

    version: str
    exact: dict[tuple[str, str], int]
    patterns: tuple[tuple[str, object, int], ...]
    diagnosis_prefixes: dict[str, int]
    max_prefix: int
    # (system, code) -> tag of every pair looked up so far: a request repeats the codes of the last one
    known: dict[tuple[str, str], int] = field(default_factory=dict, compare=False, repr=False)

    def tag_pairs(self, pairs: list[tuple]) -> np.ndarray:
        """Tag of each (system, code) pair; -1 when the system or code is missing."""
        known = bounded(self.known)
        found = []
        for pair in pairs:
            hit = known.get(pair)
            if hit is None:
                hit = known[pair] = self.tag(*pair) if pair[0] is not None and pair[1] is not None else -1
            found.append(hit)
        return np.array(found, dtype=np.int64)

    def tag(self, system: str, code: str) -> int:
        if system == "icd10cm":
            for length in range(min(len(code), self.max_prefix), 2, -1):
                hit = self.diagnosis_prefixes.get(code[:length])
                if hit is not None:
                    return hit
            return -1
        hit = self.exact.get((system, code))
        if hit is not None:
            return hit
        for pattern_system, pattern, tag in self.patterns:
            if pattern_system == system and pattern.match(code):
                return tag
        return -1


_TAGGERS: dict[str, CodeTagger] = {}


def build_code_tagger(codes: CodeLists) -> CodeTagger:
    """The tag lookup for a code-list version (memoised: code lists are immutable per version)."""
    cached = _TAGGERS.get(codes.version)
    if cached is not None:
        return cached
    procedures = codes.procedures[codes.procedures["event"].isin(list(_PROCEDURE_TAGS))]
    exact, patterns = {}, []
    for system, code, pattern, event in procedures[["code_system", "code", "pattern", "event"]].itertuples(index=False):
        tag = _TAG[_PROCEDURE_TAGS[event]]
        if pd.notna(code):
            exact[(system, code)] = tag
        elif pd.notna(pattern):
            patterns.append((system, re.compile(pattern), tag))
    diagnoses = codes.diagnoses[codes.diagnoses["role"].isin(list(_DIAGNOSIS_ROLE_TAGS))]
    # The diagnosis list mixes roles under shared prefixes (C91.0 index vs C91.02 relapse); keep the
    # longest prefix of every role so that only the specific code carries the tag.
    prefixes = {p: _TAG[_DIAGNOSIS_ROLE_TAGS[r]] for p, r in zip(diagnoses["prefix"], diagnoses["role"])}
    all_prefixes = dict(zip(codes.diagnoses["prefix"], codes.diagnoses["role"]))
    for prefix, role in all_prefixes.items():
        if role not in _DIAGNOSIS_ROLE_TAGS:
            prefixes.setdefault(prefix, -1)
    tagger = CodeTagger(
        codes.version, exact, tuple(patterns), prefixes, max((len(p) for p in prefixes), default=3)
    )
    _TAGGERS[codes.version] = tagger
    return tagger


def compute_risk_features(
    events: pd.DataFrame,
    persons: pd.DataFrame,
    as_of: pd.Series,
    **upstream,
) -> pd.DataFrame:
    """One row per entry of ``as_of`` (same order): ``person_id``, ``as_of``, then every catalog
    feature as float32. ``upstream`` as for :func:`risk_feature_columns`."""
    return frame_from_columns(risk_feature_columns(events, persons, as_of, **upstream), len(as_of))


def risk_feature_columns(
    events: pd.DataFrame | FrameColumns,
    persons: pd.DataFrame | FrameColumns,
    as_of: pd.Series,
    *,
    cohort: pd.DataFrame | dict,
    lines: pd.DataFrame | dict,
    treatment: pd.DataFrame | dict,
    eligibility: pd.DataFrame | dict,
    tagger: CodeTagger,
    charlson: CharlsonCodes,
    center_distance_miles: np.ndarray | None = None,
) -> dict:
    """:func:`compute_risk_features` as column arrays: ``person_id``, ``as_of``, then every catalog feature.

    ``events`` must already be clipped to each member's ``as_of``; the windows count events in
    the ``w`` days up to and including it. The upstream steps may be frames or their column dicts
    (``build_features`` hands over the dicts). ``center_distance_miles`` is aligned with ``as_of``.
    """
    key_index = as_of.index
    keys = key_index.to_numpy(dtype=object)
    n = len(keys)
    as_of_day = to_numpy(as_of.array, "datetime64[D]").astype(np.int64)
    columns: dict[str, np.ndarray] = {}

    events = columns_of(events)
    _add_demographics(columns, persons, keys, as_of_day, _payer_in_force(events, key_index))
    _add_cohort(columns, cohort, keys, as_of_day)
    _add_treatment(columns, treatment, lines, keys, key_index)
    eligibility = columns_of(eligibility)
    if n_rows(eligibility):
        member = positions(key_index, to_numpy(eligibility["person_id"], object), "eligibility")
        eligible = to_numpy(eligibility["eligible"], bool, False) & (member >= 0)
        columns["elig_products_count"] = np.bincount(member[eligible], minlength=n).astype(np.float64)
    else:
        columns["elig_products_count"] = np.zeros(n)
    _add_event_counts(columns, events, key_index, as_of_day, tagger, charlson)
    columns["geo_car_t_center_distance_miles"] = (
        np.full(n, np.nan) if center_distance_miles is None else np.asarray(center_distance_miles, dtype=np.float64)
    )

    out = {"person_id": TextColumn(keys, STRING), "as_of": to_numpy(as_of.array, "datetime64[s]").copy()}
    # one float32 conversion for every feature (features x members); its rows are the columns
    out.update(zip(FEATURE_NAMES, np.array([columns[name] for name in FEATURE_NAMES], dtype=np.float32)))
    return out


class _Aligned:
    """A one-row-per-person frame read column by column in the order of the keys.

    Reading single columns (never row-wise or block-wise pandas operations) keeps the per-call
    overhead at a few microseconds per column, which is what decides the single-member cost.
    """

    def __init__(self, frame, keys: np.ndarray, what: str) -> None:
        self.columns, self.n = columns_of(frame), len(keys)
        self.aligned = False  # one row per key, in key order: columns are read as they are
        self.length = n_rows(self.columns)
        if self.length == 0:
            self.rows, self.found = np.zeros(self.n, dtype=np.int64), np.zeros(self.n, dtype=bool)
            return
        ids = object_values(self.columns, "person_id", None)  # the persons' ids are converted once per call
        if len(ids) == self.n and (ids == keys).all():  # already in key order (the pipeline's own frames)
            self.rows, self.found = np.arange(self.n), np.ones(self.n, dtype=bool)
            self.aligned = True
            return
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"{what} frame must have one row per person_id; found duplicates")
        rows = positions(pd.Index(ids, dtype=object), keys, what)
        self.rows, self.found = np.maximum(rows, 0), rows >= 0

    def has(self, name: str) -> bool:
        return self.length > 0 and name in self.columns

    def floats(self, name: str, default: float = np.nan) -> np.ndarray:
        """Column as float64; members without a row, and missing values, become ``default``."""
        if self.aligned and self.has(name):
            column = self.columns[name]
            values = _as_floats(column, np.nan)
            if default != default or _holds_no_missing(column):  # a NaN default, or nothing to replace
                return values
            missing = np.isnan(values)
            return np.where(missing, default, values) if missing.any() else values
        out = np.full(self.n, default, dtype=np.float64)
        if self.has(name):
            values = _as_floats(self.columns[name], np.nan)[self.rows]
            out[self.found] = np.where(np.isnan(values), default, values)[self.found]
        return out

    def days_before(self, name: str, as_of_day: np.ndarray) -> np.ndarray:
        """Days from the date in column ``name`` to each key's as_of (NaN when missing)."""
        out = np.full(self.n, np.nan)
        if self.has(name):
            dates = to_numpy(self.columns[name], "datetime64[D]")[self.rows]
            known = self.found & ~np.isnat(dates)
            out[known] = as_of_day[known] - dates[known].astype(np.int64)
        return out

    def strings(self, name: str) -> np.ndarray:
        """Lower-cased strings (None where missing)."""
        if not self.has(name):
            return np.full(self.n, None, dtype=object)
        values = object_values(self.columns, name, None)[self.rows]  # a request's text columns never become a frame
        return np.array([v.lower() if isinstance(v, str) and f else None for v, f in zip(values, self.found)], dtype=object)


def _as_floats(column, missing: float) -> np.ndarray:
    """A column array as float64 with missing values as ``missing``; plain NumPy columns skip pandas' NA path."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return to_numpy(column).astype(np.float64)
    return to_numpy(column, np.float64, missing)


def _holds_no_missing(column) -> bool:
    """Whether a column's dtype cannot mark a value missing (plain NumPy booleans and integers)."""
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in "biu"


def _levels(values: np.ndarray, levels: tuple[str, ...], other: str | None = None) -> np.ndarray:
    """Level index for each (lower-case) value; unknown strings map to ``other`` when given, else NaN."""
    lookup = {level.lower(): float(i) for i, level in enumerate(levels)}
    fallback = lookup[other] if other else np.nan
    return np.array([lookup.get(v, fallback) if isinstance(v, str) and v else np.nan for v in values], dtype=np.float64)


def _add_demographics(columns: dict, persons: pd.DataFrame | FrameColumns, keys: np.ndarray, as_of_day: np.ndarray, payer: np.ndarray) -> None:
    """Age, sex and payer type; ``payer`` (from enrollment events) wins over the persons row, which
    holds the latest span's payer and may postdate ``as_of``."""
    frame = _Aligned(persons, keys, "persons")
    columns["demo_age_years"] = frame.days_before("birth_date", as_of_day) / 365.25
    columns["demo_sex"] = _levels(frame.strings("sex"), SEX_LEVELS)
    columns["demo_payer_type"] = _levels(np.where(payer != None, payer, frame.strings("payer_type")), PAYER_LEVELS, other="other")  # noqa: E711


def _payer_in_force(events, keys: pd.Index) -> np.ndarray:
    """Lower-case payer type of each member's latest enrollment span started on or before as_of
    (events are clipped), or None when no enrollment event carries one.

    A member who turns 65 moves from a commercial plan to Medicare: a landmark before the switch
    must see the commercial plan, not the payer on file today.
    """
    out = np.full(len(keys), None, dtype=object)
    if n_rows(events) == 0:
        return out
    member = row_members(events, keys)
    # payer-type codes found through the distinct (system, code) pairs: no pass over every row's text
    pair_rows, pairs = code_pair_index(events)
    payer_pair = np.array([system == PAYER_TYPE_SYSTEM and bool(code) for system, code in pairs], dtype=bool)
    rows = np.flatnonzero(payer_pair[pair_rows] & (member >= 0))
    rows = rows[object_values(events, "kind", "")[rows] == "enrollment"]
    if len(rows):
        rows = rows[np.lexsort((event_days(events)[rows], member[rows]))]
        latest = rows[np.append(member[rows][1:] != member[rows][:-1], True)]
        out[member[latest]] = [pairs[p][1].lower() for p in pair_rows[latest].tolist()]
    return out


def _add_cohort(columns: dict, cohort: pd.DataFrame, keys: np.ndarray, as_of_day: np.ndarray) -> None:
    frame = _Aligned(cohort, keys, "cohort")
    in_cohort = frame.floats("in_cohort", 0.0) > 0
    columns["dx_disease"] = np.where(in_cohort, _levels(frame.strings("disease"), DISEASE_LEVELS), np.nan)
    subtype = frame.strings("subtype")
    columns["dx_subtype_known_flag"] = (np.array([bool(s) for s in subtype], dtype=bool) & in_cohort).astype(np.float64)
    columns["dx_days_since_first"] = np.where(in_cohort, frame.days_before("first_dx_date", as_of_day), np.nan)


def _add_treatment(columns: dict, treatment: pd.DataFrame, lines: pd.DataFrame, keys: np.ndarray, key_index: pd.Index) -> None:
    frame = _Aligned(treatment, keys, "treatment")
    columns["lot_count"] = frame.floats("prior_lines", 0.0)
    columns["lot_days_since_last_start"] = frame.floats("days_since_last_line_start")
    columns["lot_days_since_last_treatment"] = frame.floats("days_since_last_treatment")
    columns["lot_days_line1_end_to_line2_start"] = frame.floats("days_line1_end_to_line2_start")
    # Early relapse and primary refractoriness are unknowable until a second line starts: NaN, not 0.
    columns["lot_early_relapse_flag"] = frame.floats("early_relapse")
    columns["lot_primary_refractory_flag"] = frame.floats("primary_refractory")
    for feature, source in (
        ("lot_progressed_after_last_flag", "progressed_after_last_line"),
        ("lot_prior_asct_flag", "prior_asct"),
        ("lot_car_t_received_flag", "car_t_received"),
        ("lot_triple_class_exposed_flag", "triple_class_exposed"),
    ):
        columns[feature] = frame.floats(source, 0.0)
    # unknown (progression seen long after the last supply) stays NaN, apart from "not refractory"
    known = frame.floats("prior_lines", 0.0) > 0
    columns["lot_lenalidomide_refractory_flag"] = np.where(known, frame.floats("lenalidomide_refractory"), 0.0)
    for drug_class in _EXPOSURE_COLUMNS:
        columns[f"rx_{drug_class}_exposed_flag"] = frame.floats(f"exposed_{drug_class}", 0.0)
    maintenance = np.zeros(len(keys))
    lines = columns_of(lines)
    if n_rows(lines) and "maintenance" in lines:
        member = positions(key_index, to_numpy(lines["person_id"], object), "lines")
        number = to_numpy(lines["line_number"], np.int64)
        order = np.lexsort((number, member))
        member, flag = member[order], _as_floats(lines["maintenance"], 0.0)[order]
        last = np.append(member[1:] != member[:-1], True) & (member >= 0)
        maintenance[member[last]] = flag[last]
    columns["lot_current_maintenance_flag"] = maintenance


def _add_event_counts(
    columns: dict, events: pd.DataFrame, keys: pd.Index, as_of_day: np.ndarray, tagger: CodeTagger, charlson: CharlsonCodes
) -> None:
    n = len(keys)
    events = columns_of(events)
    member = row_members(events, keys)
    inside = member >= 0
    day = event_days(events)
    age = np.where(inside, as_of_day[np.maximum(member, 0)] - day, -1)
    inside &= (age >= 0) & (age < _MAX_AGE)
    # each distinct (system, code) pair is tagged and categorised once (pairs shared with the other steps)
    pair_rows, pairs = code_pair_index(events)
    tag = tagger.tag_pairs(pairs)[pair_rows]

    kind = object_values(events, "kind", "")
    setting = object_values(events, "setting", "")
    counted = (
        ("ip_admits", kind == "inpatient_stay", UTILISATION_WINDOWS_DAYS),
        ("ed_visits", (setting == "ed") & (kind != "enrollment"), UTILISATION_WINDOWS_DAYS),
        ("pet_ct_count", tag == _TAG["pet_ct"], UTILISATION_WINDOWS_DAYS),
        ("marrow_biopsy_count", tag == _TAG["marrow_biopsy"], UTILISATION_WINDOWS_DAYS),
        ("radiation_days", tag == _TAG["radiation"], UTILISATION_WINDOWS_DAYS),
        ("em_visits", (tag == _TAG["em_new"]) | (tag == _TAG["em_established"]), UTILISATION_WINDOWS_DAYS),
        ("dx_relapse_codes", tag == _TAG["relapse_code"], (180,)),
        ("dx_remission_codes", tag == _TAG["remission_code"], (180,)),
        ("dx_toxicity_codes", tag == _TAG["toxicity_code"], (365,)),
        ("ref_new_patient_visits", tag == _TAG["em_new"], (90,)),
    )
    # One sort for every count: (category, member, day) keys, deduplicated so that each member-day
    # counts once per category, then one bincount per window over category x member.
    picked = [np.flatnonzero(inside & selected) for _, selected, _ in counted]
    category = np.concatenate([np.full(len(rows), c, dtype=np.int64) for c, rows in enumerate(picked)])
    rows = np.concatenate(picked)
    key = np.unique((category * n + member[rows]) * _MAX_AGE + age[rows])
    cell, key_age = key // _MAX_AGE, key % _MAX_AGE
    for w in UTILISATION_WINDOWS_DAYS:
        counts = np.bincount(cell[key_age < w], minlength=len(counted) * n).reshape(len(counted), n).astype(np.float64)
        for c, (prefix, _, windows) in enumerate(counted):
            if w in windows:
                columns[f"{prefix}_{w}d"] = counts[c]

    workup = inside & (tag == _TAG["car_t_workup"])
    latest = np.full(n, np.inf)
    np.minimum.at(latest, member[workup], age[workup].astype(np.float64))
    columns["ref_car_t_workup_flag"] = np.isfinite(latest).astype(np.float64)
    columns["ref_days_since_car_t_workup"] = np.where(np.isfinite(latest), latest, np.nan)
    columns["ref_stem_cell_workup_flag"] = _any(member, inside & (tag == _TAG["stem_cell_workup"]), n)
    columns["ref_cellular_therapy_history_flag"] = _any(member, inside & (tag == _TAG["cellular_therapy_history"]), n)

    recent_dx = inside & (kind == "diagnosis") & (age < _CHARLSON_LOOKBACK_DAYS)
    category = charlson.categorise_distinct([code for _, code in pairs])[pair_rows[recent_dx]]
    columns["cci_score_365d"] = score_categories(member[recent_dx], category, n, charlson)


def _any(member: np.ndarray, selected: np.ndarray, n: int) -> np.ndarray:
    return (np.bincount(member[selected], minlength=n) > 0).astype(np.float64)
