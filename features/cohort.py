"""The cancer cohort: which target blood cancer a member has, by a documented claims algorithm.

A billing code on one claim is not a diagnosis: a single "rule-out" claim (say a lymph-node biopsy
billed with C83.30 before pathology came back) must never make a member a cancer patient. The
algorithm below is the usual claims-based case definition, applied separately to every disease
group of ``diagnosis_codes.csv`` so that a stray code of one disease never borrows support from
another:

A disease group *qualifies* for a member when its diagnosis claims (on or before ``as_of``) show

1. at least one inpatient claim with the diagnosis, or
2. outpatient/professional claims (any non-inpatient setting) on different days at least
   ``outpatient_min_days_apart`` (30) days apart, or
3. one diagnosis claim plus disease-directed therapy: a systemic anticancer drug (a drug that can
   count as a line of therapy; steroids and supportive drugs never do) within
   ``therapy_window_days`` (90) days before or after it.

Index, relapse and remission codes of a disease all count (a remission code still says the disease
was diagnosed); history (Z85.x) codes do not. Codes are matched dotless by longest prefix.

Disease assignment when several groups qualify (first match wins):

====== ========================================================================================
order  rule
====== ========================================================================================
1      LBCL (C83.3, C85.2): subtype ``transformed_FL`` when FL (C82) qualified earlier (there is
       no ICD-10-CM code for DLBCL arising from FL; this proxy is the domain README's), else the
       subtype of the most recent LBCL claim (``PMBCL`` for C85.2, ``DLBCL NOS`` otherwise)
2      FL grade 3B (C82.4) -> LBCL, subtype ``FL_3B``: only the Breyanzi LBCL label names it, so
       the eligibility rules decide per label (it is not in any FL label row)
3      MCL, 4 B_ALL, 5 MM, 6 CLL_SLL (C91.1), 7 MZL (C88.4 MALT)
8      C83.0 (small B-cell lymphoma: nodal/splenic MZL *or* SLL): CLL_SLL subtype ``SLL`` when the
       member also has any C91.1 claim or BCL-2 inhibitor exposure (CLL-directed), else MZL with
       subtype ``MZL_or_SLL`` (the ambiguity travels to the eligibility reasons)
9      FL (grades 1-3A, unspecified, diffuse/cutaneous follicle centre)
10     LBCL_possible (C83.8 other non-follicular, C83.9 non-follicular unspecified) -> LBCL
       (subtype ``HGBL proxy`` / ``non-follicular NOS``) only with anti-CD20 *and* anthracycline
       exposure (R-CHOP-like chemoimmunotherapy), because alone these codes also cover Burkitt-like
       and T-cell-like entities; NHL_unspecified (C85.1/8/9) never assigns a disease
====== ========================================================================================

Exclusions (``in_cohort`` is False, ``exclusion`` names the reason):

* ``primary CNS lymphoma``: C83.390 qualifies. All LBCL labels exclude PCNSL. Before FY2025 PCNSL
  was coded inside C83.39 and cannot be separated; members with a C83.39 claim carry
  :data:`PCNSL_UNSEPARABLE` in ``evidence`` so the eligibility engine reports it as unknown.
* ``Hodgkin lymphoma``: C81 or Z85.71 qualifies and no specific target disease does (a history
  of Hodgkin next to a qualifying DLBCL is a second lymphoma, not an exclusion).
* ``T-lineage``: C84/C86/C91.5/C91.6 qualifies and the member has no specific B-cell target, or
  has ALL without a B-lineage drug. C91.0 itself cannot tell B- from T-lineage ALL, so
  ``lineage_known`` is True for B_ALL only when a B-lineage-targeted drug was given
  (``CohortConfig.b_lineage_drugs``: blinatumomab, inotuzumab, rituximab).

Everything is array work over all members at once, so one member and a million members run the
same code: diagnosis codes are matched once per distinct (code_system, code) pair, one compiled
pass aggregates the segments of a (person, group, day) sort, and the hierarchy is one matrix of
its rules' conditions (first rule that fires wins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit
from pydantic import BaseModel, ConfigDict

from features.codelists import CodeLists, normalise_code
from features.columns import STR, TextColumn, code_pair_index, columns_of, frame_from_columns, object_values, row_members
from features.events import event_days
from features.memo import IdentityMemo, bounded

COHORT_COLUMNS = (
    "person_id",
    "in_cohort",
    "disease",
    "subtype",
    "first_dx_date",
    "exclusion",
    "evidence",
    "lineage_known",
)
DISEASES = ("LBCL", "FL", "MCL", "MZL", "CLL_SLL", "B_ALL", "MM")
PCNSL_UNSEPARABLE = "PCNSL not separable (C83.39 coded; C83.390 exists only from FY2025)"
EXCLUSION_PCNSL = "primary CNS lymphoma"
EXCLUSION_HODGKIN = "Hodgkin lymphoma"
EXCLUSION_T_LINEAGE = "T-lineage"

# Code-list disease groups this module reads; order is the column order of the internal matrices.
_GROUPS = (
    "LBCL",
    "FL_3B_LBCL",
    "MCL",
    "B_ALL",
    "MM",
    "CLL_SLL",
    "MZL",
    "MZL_or_SLL",
    "FL",
    "LBCL_possible",
    "NHL_unspecified",
    "PCNSL",
    "Hodgkin",
    "T_lineage",
)
_G = {g: i for i, g in enumerate(_GROUPS)}
_SPECIFIC = ("LBCL", "FL_3B_LBCL", "MCL", "B_ALL", "MM", "CLL_SLL", "MZL", "MZL_or_SLL", "FL")
# True at a specific group's index; the extra last entry is where "no group" (-1) lands
_IS_SPECIFIC = np.array([g in _SPECIFIC for g in _GROUPS] + [False])
# The disease hierarchy, first match wins: (disease assigned, group whose claims decide it).
_RULES = (
    ("LBCL", "LBCL"),
    ("LBCL", "FL_3B_LBCL"),
    ("MCL", "MCL"),
    ("B_ALL", "B_ALL"),
    ("MM", "MM"),
    ("CLL_SLL", "CLL_SLL"),
    ("MZL", "MZL"),
    ("CLL_SLL", "MZL_or_SLL"),  # only with a CLL signal: subtype SLL
    ("MZL", "MZL_or_SLL"),
    ("FL", "FL"),
    ("LBCL", "LBCL_possible"),  # only with anti-CD20 and anthracycline exposure and no Hodgkin
    ("LBCL", "PCNSL"),  # PCNSL alone: an LBCL-type patient whom every LBCL label excludes
)
_RULE_SLL, _RULE_LBCL_POSSIBLE = 7, 10
_SUBTYPE_TRANSFORMED_FL, _SUBTYPE_SLL = 1, 2
_FL_THEN_LBCL = np.array([_G["FL"], _G["FL_3B_LBCL"], _G["LBCL"]])
# per rule, and a last entry for "no rule fired"
_RULE_GROUP = np.array([_G[g] for _, g in _RULES] + [-1])
_RULE_DISEASE = np.array([d for d, _ in _RULES] + [""])
_COUNTED_ROLES = frozenset({"index_dx", "relapse_marker", "remission_marker", "exclusion"})
_NOT_ANTICANCER = frozenset({"steroid", "supportive", "noc", "other"})
_NONE = -(2**31)  # missing day
_BIG = np.iinfo(np.int64).max



class CohortConfig(BaseModel):
    """Parameters of the claims case definition; codes themselves stay in the code lists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outpatient_min_days_apart: int = 30
    therapy_window_days: int = 90
    # Subtype names for code-list prefixes (dotted as in diagnosis_codes.csv); every prefix must be
    # a row of the code list. Claims under other prefixes get the group's default subtype.
    subtype_by_prefix: tuple[tuple[str, str], ...] = (
        ("C85.2", "PMBCL"),
        ("C85.2A", "PMBCL"),
        ("C83.8", "HGBL proxy"),
        ("C83.9", "non-follicular NOS"),
        ("C88.4", "MALT"),
        ("C88.40", "MALT"),
        ("C88.41", "MALT"),
        ("C83.390", "PCNSL"),
    )
    default_subtype: tuple[tuple[str, str], ...] = (
        ("LBCL", "DLBCL NOS"),
        ("FL_3B_LBCL", "FL_3B"),
        ("MCL", "MCL"),
        ("CLL_SLL", "CLL"),
        ("MZL", "MZL"),
        ("MZL_or_SLL", "MZL_or_SLL"),
        ("FL", "FL"),
        ("PCNSL", "PCNSL"),
    )
    b_lineage_drugs: tuple[str, ...] = ("blinatumomab", "inotuzumab ozogamicin", "rituximab")
    possible_lbcl_requires_classes: tuple[str, ...] = ("anti_cd20", "anthracycline")
    cll_directed_classes: tuple[str, ...] = ("bcl2_inhibitor",)


@dataclass(frozen=True)
class _Lookup:
    """Code-list lookups compiled once per (code-list version, config)."""

    dx: dict[str, tuple[int, int]]  # prefix -> (group index or -1, subtype index)
    dx_prefix_lengths: tuple[int, ...]
    exclusion_prefixes: tuple[str, ...]
    subtypes: np.ndarray  # subtype names (str), by index
    drugs: dict[tuple[str, str], tuple[bool, bool, bool, bool, bool]]  # (system, code) -> drug flags
    matches: dict[str | None, tuple[int, int, bool]]  # memo: code -> (group, subtype, hides) of _match


_LOOKUPS = IdentityMemo()
DEFAULT_CONFIG = CohortConfig()


def assign_cohort(
    events: pd.DataFrame,
    persons: pd.DataFrame,
    as_of: pd.Series,
    codes: CodeLists,
    config: CohortConfig | None = None,
) -> pd.DataFrame:
    """One row per member of ``as_of.index``: target disease, subtype, first diagnosis, exclusion.

    ``events`` must already be clipped to each member's ``as_of`` (``clip_to_as_of``); ``persons``
    is accepted for the shared signature (demographics play no part in the case definition).
    Returns columns ``COHORT_COLUMNS``; ``evidence`` is a short sentence a clinician can check.
    """
    return frame_from_columns(cohort_columns(events, persons, as_of, codes, config), len(as_of))


def cohort_columns(events, persons, as_of: pd.Series, codes: CodeLists, config: CohortConfig | None = None) -> dict:
    """:func:`assign_cohort` as column arrays (what the pipeline hands to the next steps)."""
    del persons  # the case definition uses claims only
    events = columns_of(events)
    ids = as_of.index
    if len(ids) > 1 and not ids.is_unique:  # one key: skip building the index's hash table
        raise ValueError("as_of index (person_id) has duplicated values")
    n = len(ids)
    config = config if config is not None else DEFAULT_CONFIG
    lookup = _compile(codes, config)
    pidx = row_members(events, ids)
    kind = object_values(events, "kind", "")
    day = event_days(events)

    is_drug = ((kind == "drug_admin") | (kind == "drug_fill")) & (pidx >= 0)
    flags = _drug_flags(events, is_drug, lookup)
    therapy_keys, lineage, cd20, anthra, cll_drug = _person_drug_facts(flags, pidx, day, n)

    is_dx = (kind == "diagnosis") & (pidx >= 0)
    group, subtype, hides = _map_diagnoses(events, is_dx, lookup)
    keep = group >= 0
    dxp = pidx[is_dx][keep]
    dxd = day[is_dx][keep]
    inpatient = (object_values(events, "setting", "") == "inpatient")[is_dx][keep]
    near = _near_therapy(dxp, dxd, therapy_keys, config.therapy_window_days)
    seg = _segments(dxp, group[keep], dxd, subtype[keep], hides[keep], inpatient, near, config)

    shape = (n, len(_GROUPS))
    qualifies = np.zeros(shape, dtype=bool)
    seg_of = np.full(shape, -1, dtype=np.int64)
    qualifies[seg["person"], seg["group"]] = seg["qualifies"]
    seg_of[seg["person"], seg["group"]] = np.arange(len(seg["person"]))

    cll_signal = cll_drug | (seg_of[:, _G["CLL_SLL"]] >= 0)
    disease, sub, chosen, chosen_seg = _assign(qualifies, seg_of, seg, lookup, cd20 & anthra, cll_signal)
    exclusion = _exclusions(qualifies, disease, chosen, lineage)
    first_day = _pick(seg["first"], chosen_seg, _NONE)
    evidence = _describe(qualifies, seg_of, seg, chosen, exclusion, config)

    in_cohort = (disease != "") & (exclusion == "")
    is_all = disease == "B_ALL"
    first = first_day.astype("datetime64[D]").astype("datetime64[s]")
    first[first_day == _NONE] = np.datetime64("NaT")
    return {
        "person_id": TextColumn(ids.to_numpy(dtype=object), STR),
        "in_cohort": in_cohort,
        "disease": _strings(disease),
        "subtype": _strings(sub),
        "first_dx_date": first,
        "exclusion": _strings(exclusion),
        "evidence": TextColumn(evidence, STR),
        "lineage_known": pd.arrays.BooleanArray(lineage & is_all, ~is_all),
    }


def _strings(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Empty string marks missing in the internal arrays."""
    return TextColumn(np.where(values == "", None, values).astype(object), STR)


def _pick(values: np.ndarray, at: np.ndarray, missing: int) -> np.ndarray:
    """``values[at]`` with ``missing`` where ``at`` is -1 (and for empty ``values``)."""
    if len(values) == 0:
        return np.full(len(at), missing, dtype=np.int64)
    return np.where(at >= 0, values[np.maximum(at, 0)], missing)


def _compile(codes: CodeLists, config: CohortConfig) -> _Lookup:
    return _LOOKUPS.get((codes, config), lambda: (codes.version, config), lambda: _build_lookup(codes, config))


def _build_lookup(codes: CodeLists, config: CohortConfig) -> _Lookup:
    dx = codes.diagnoses
    known = set(dx["prefix"])
    subtypes = ["", "transformed_FL", "SLL"]  # indices 0, _SUBTYPE_TRANSFORMED_FL, _SUBTYPE_SLL
    by_prefix: dict[str, int] = {}
    for prefix, name in config.subtype_by_prefix:
        p = normalise_code(prefix)
        if p not in known:
            raise ValueError(f"CohortConfig.subtype_by_prefix: {prefix!r} is not a prefix in diagnosis_codes.csv")
        if name not in subtypes:
            subtypes.append(name)
        by_prefix[p] = subtypes.index(name)
    default: dict[str, int] = {}
    for group, name in config.default_subtype:
        if name not in subtypes:
            subtypes.append(name)
        default[group] = subtypes.index(name)
    table: dict[str, tuple[int, int]] = {}
    for prefix, group, role in zip(dx["prefix"], dx["disease_group"], dx["role"]):
        counted = group in _G and role in _COUNTED_ROLES
        # prefixes of other roles (e.g. Z85.72 history) still shadow shorter counted prefixes
        table[prefix] = (_G[group], by_prefix.get(prefix, default.get(group, 0))) if counted else (-1, 0)
    exclusion_prefixes = tuple(p for p, r in zip(dx["prefix"], dx["role"]) if r == "exclusion")

    catalog = set(codes.drug_catalog["generic"])
    for generic in config.b_lineage_drugs:
        if generic not in catalog:
            raise ValueError(f"CohortConfig.b_lineage_drugs: {generic!r} is not a generic in drug_codes.csv")
    drug_rows = codes.drugs
    drugs: dict[str, tuple[bool, bool, bool, bool, bool]] = {}
    for system, c, generic, cls, counts in zip(
        drug_rows["code_system"], drug_rows["code"], drug_rows["generic"], drug_rows["drug_class"], drug_rows["counts_as_line"]
    ):
        drugs[(system, c)] = (
            counts != "no" and cls not in _NOT_ANTICANCER,
            generic in config.b_lineage_drugs,
            cls == config.possible_lbcl_requires_classes[0],
            cls in config.possible_lbcl_requires_classes[1:],
            cls in config.cll_directed_classes,
        )
    return _Lookup(
        dx=table,
        dx_prefix_lengths=tuple(sorted({len(p) for p in table}, reverse=True)),
        exclusion_prefixes=exclusion_prefixes,
        subtypes=np.array(subtypes),
        drugs=drugs,
        matches={},
    )


def _map_diagnoses(events, is_dx: np.ndarray, lookup: _Lookup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group, subtype and ``hides`` of each diagnosis row: a longest-prefix match per distinct
    (code_system, code) pair (the pairs every step shares), remembered across calls.

    ``hides`` marks a code that is a proper ancestor of an exclusion code (C83.39 before the
    FY2025 split holds PCNSL without saying so).
    """
    if not is_dx.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    rows, pairs = code_pair_index(events)
    dx_rows = rows[is_dx]
    used = np.zeros(len(pairs), dtype=bool)
    used[dx_rows] = True  # the pairs of drug and procedure rows are never matched
    memo = bounded(lookup.matches)
    found = []
    for (_, code), wanted in zip(pairs, used.tolist()):
        hit = memo.get(code) if wanted else _NO_MATCH
        if hit is None:
            hit = memo[code] = _match(code, lookup) if code is not None else _NO_MATCH
        found.append(hit)
    table = np.array(found, dtype=np.int64)[dx_rows]
    return table[:, 0], table[:, 1], table[:, 2].astype(bool)


_NO_MATCH = (-1, 0, False)


def _match(code: str, lookup: _Lookup) -> tuple[int, int, bool]:
    for length in lookup.dx_prefix_lengths:
        if len(code) >= length:
            hit = lookup.dx.get(code[:length])
            if hit is not None:
                hides = hit[0] >= 0 and any(e != code and e.startswith(code) for e in lookup.exclusion_prefixes)
                return hit[0], hit[1], hides
    return -1, 0, False


def _drug_flags(events, is_drug: np.ndarray, lookup: _Lookup) -> np.ndarray:
    """Per event: (anticancer, B-lineage, anti-CD20, anthracycline, CLL-directed) drug flags."""
    if not is_drug.any():
        return np.zeros((len(is_drug), 5), dtype=bool)
    rows, pairs = code_pair_index(events)  # shared with the other steps: one walk per call
    none = (False, False, False, False, False)
    table = np.array([lookup.drugs.get(pair, none) for pair in pairs], dtype=bool).reshape(-1, 5)
    return table[rows] & is_drug[:, None]


def _person_drug_facts(flags: np.ndarray, pidx: np.ndarray, day: np.ndarray, n: int):
    """Sorted (person, day) keys of anticancer drug events plus per-person exposure flags."""
    anticancer = flags[:, 0]
    keys = np.sort(pidx[anticancer].astype(np.int64) * (1 << 20) + day[anticancer] + (1 << 19))
    per_person = []
    for column in (1, 2, 3, 4):
        hit = np.zeros(n, dtype=bool)
        hit[pidx[flags[:, column]]] = True
        per_person.append(hit)
    return keys, *per_person


def _near_therapy(person: np.ndarray, day: np.ndarray, therapy_keys: np.ndarray, window: int) -> np.ndarray:
    """True where an anticancer drug falls within ``window`` days of the diagnosis claim."""
    if len(therapy_keys) == 0 or len(person) == 0:
        return np.zeros(len(person), dtype=bool)
    key = person.astype(np.int64) * (1 << 20) + day + (1 << 19)
    at = np.searchsorted(therapy_keys, key - window)
    at_clipped = np.minimum(at, len(therapy_keys) - 1)
    return (at < len(therapy_keys)) & (therapy_keys[at_clipped] <= key + window)


def _segments(person, group, day, subtype, hides, inpatient, near, config: CohortConfig) -> dict[str, np.ndarray]:
    """Aggregate diagnosis rows per (person, group): the claims-algorithm statistics.

    The rows are sorted by (person, group, day) and one compiled pass walks them: for one member
    a dozen NumPy reductions over a few dozen rows cost more in per-call overhead than the walk.
    """
    names = ("person", "group", "first", "n_inpatient_days", "first_inpatient", "n_out_days", "out_first",
             "out_last", "near", "subtype", "hides", "qualifies", "n_claims")
    if len(person) == 0:
        return {k: np.zeros(0, dtype=np.int64) for k in names}
    key = person.astype(np.int64) * len(_GROUPS) + group
    order = np.lexsort((day, key))
    stats = _segment_stats(key, day.astype(np.int64, copy=False), subtype, hides, inpatient, near, order, config.outpatient_min_days_apart)
    seg = dict(zip(names[2:], stats[1:]))
    return {"person": stats[0] // len(_GROUPS), "group": stats[0] % len(_GROUPS), **seg}


@njit(cache=True)
def _segment_stats(key, day, subtype, hides, inpatient, near, order, min_days_apart):
    """Per run of equal ``key`` in ``order`` (days ascending within a run): the key, first day,
    distinct inpatient days, first inpatient day, distinct outpatient days, first and last
    outpatient day, any near therapy, the last row's subtype, any ``hides``, whether the group
    qualifies, and the number of rows. A day claimed twice counts once."""
    n_seg = 0
    for k in range(len(order)):
        n_seg += k == 0 or key[order[k]] != key[order[k - 1]]
    seg_key = np.empty(n_seg, np.int64)
    first = np.empty(n_seg, np.int64)
    n_inp = np.zeros(n_seg, np.int64)
    first_inp = np.full(n_seg, _BIG, np.int64)
    n_out = np.zeros(n_seg, np.int64)
    out_first = np.full(n_seg, _BIG, np.int64)
    out_last = np.full(n_seg, -_BIG, np.int64)
    near_any = np.zeros(n_seg, np.bool_)
    last_subtype = np.empty(n_seg, np.int64)
    hides_any = np.zeros(n_seg, np.bool_)
    qualifies = np.zeros(n_seg, np.bool_)
    n_claims = np.zeros(n_seg, np.int64)
    s = -1
    last_inp = 0
    last_out = 0
    for k in range(len(order)):
        i = order[k]
        d = day[i]
        if k == 0 or key[i] != key[order[k - 1]]:
            s += 1
            seg_key[s] = key[i]
            first[s] = d
        n_claims[s] += 1
        last_subtype[s] = subtype[i]
        hides_any[s] |= hides[i]
        near_any[s] |= near[i]
        if inpatient[i]:
            if n_inp[s] == 0 or d != last_inp:
                n_inp[s] += 1
                last_inp = d
            first_inp[s] = min(first_inp[s], d)
        else:
            if n_out[s] == 0 or d != last_out:
                n_out[s] += 1
                last_out = d
            out_first[s] = min(out_first[s], d)
            out_last[s] = max(out_last[s], d)
    for s in range(n_seg):
        span = out_last[s] - out_first[s] if n_out[s] >= 2 else 0
        qualifies[s] = n_inp[s] > 0 or span >= min_days_apart or near_any[s]
    return (seg_key, first, n_inp, first_inp, n_out, out_first, out_last, near_any, last_subtype, hides_any, qualifies, n_claims)


def _assign(qualifies, seg_of, seg, lookup: _Lookup, chemoimmuno: np.ndarray, cll_signal: np.ndarray):
    """Apply the disease hierarchy; returns disease, subtype, the group whose claims decided it and
    that group's segment (-1: none).

    Each member takes the first rule of ``_RULES`` that fires (one matrix of the rules' conditions,
    whatever the number of members); the subtype is that group's latest, but for the two rules
    that name their own.
    """
    n = qualifies.shape[0]
    fires = qualifies[:, _RULE_GROUP[:-1]]
    fires[:, _RULE_SLL] &= cll_signal
    fires[:, _RULE_LBCL_POSSIBLE] &= chemoimmuno & ~qualifies[:, _G["Hodgkin"]]
    rule = np.where(fires.any(axis=1), fires.argmax(axis=1), len(_RULES))
    chosen = _RULE_GROUP[rule]
    chosen_seg = np.where(chosen >= 0, seg_of[np.arange(n), np.maximum(chosen, 0)], -1)
    subtype_idx = _pick(seg["subtype"], chosen_seg, 0)
    subtype_idx[rule == _RULE_SLL] = _SUBTYPE_SLL
    lbcl = rule == 0
    if lbcl.any():  # transformed FL: FL or FL grade 3B qualified before LBCL did
        first = np.where(qualifies[:, _FL_THEN_LBCL], seg["first"][np.maximum(seg_of[:, _FL_THEN_LBCL], 0)], _BIG)
        subtype_idx[lbcl & (first[:, :2].min(axis=1) < first[:, 2])] = _SUBTYPE_TRANSFORMED_FL
    return _RULE_DISEASE[rule], lookup.subtypes[subtype_idx], chosen, chosen_seg


def _exclusions(qualifies, disease: np.ndarray, chosen: np.ndarray, lineage: np.ndarray) -> np.ndarray:
    """PCNSL always excludes; Hodgkin and T-lineage only when no specific B-cell target explains the claims."""
    specific = _IS_SPECIFIC[chosen]
    exclusion = np.full(len(disease), "", dtype=object)
    exclusion[qualifies[:, _G["T_lineage"]] & (~specific | ((disease == "B_ALL") & ~lineage))] = EXCLUSION_T_LINEAGE
    exclusion[qualifies[:, _G["Hodgkin"]] & ~specific] = EXCLUSION_HODGKIN
    exclusion[qualifies[:, _G["PCNSL"]]] = EXCLUSION_PCNSL
    return exclusion.astype(str)


_LABEL = {
    "LBCL": "LBCL",
    "FL_3B_LBCL": "FL grade 3B",
    "MCL": "MCL",
    "B_ALL": "ALL",
    "MM": "myeloma",
    "CLL_SLL": "CLL",
    "MZL": "MZL",
    "MZL_or_SLL": "C83.0 small B-cell lymphoma",
    "FL": "FL",
    "LBCL_possible": "non-follicular lymphoma (C83.8/C83.9)",
    "NHL_unspecified": "unspecified NHL",
    "PCNSL": "primary CNS lymphoma",
    "Hodgkin": "Hodgkin lymphoma",
    "T_lineage": "T-cell lymphoma/leukaemia",
}
_EXCLUDING_GROUP = {EXCLUSION_PCNSL: "PCNSL", EXCLUSION_HODGKIN: "Hodgkin", EXCLUSION_T_LINEAGE: "T_lineage"}


def _describe(qualifies, seg_of, seg, chosen, exclusion, config: CohortConfig) -> list[str]:
    """One short sentence per member saying which claims decided the assignment (or why none did).

    The sentence describes the excluding group for excluded members, the assigned group for cohort
    members, and otherwise the group with the most claims (to show why it fell short).
    """
    n = qualifies.shape[0]
    describe = chosen.copy()
    if (exclusion != "").any():
        for reason, group in _EXCLUDING_GROUP.items():
            describe[(exclusion == reason) & ((describe < 0) | (reason == EXCLUSION_PCNSL))] = _G[group]
    if len(seg["person"]) and (describe < 0).any():
        claims = np.zeros(qualifies.shape, dtype=np.int64)
        claims[seg["person"], seg["group"]] = seg["n_claims"]
        describe = np.where((describe < 0) & (claims.sum(axis=1) > 0), claims.argmax(axis=1), describe)
    text = np.full(n, "no target-disease diagnosis claim", dtype=object)
    rows = np.flatnonzero(describe >= 0)
    fl_before = qualifies[:, _G["FL"]] | qualifies[:, _G["FL_3B_LBCL"]]
    hodgkin_too = qualifies[:, _G["Hodgkin"]]
    t_too = qualifies[:, _G["T_lineage"]]
    minimum, window = config.outpatient_min_days_apart, config.therapy_window_days
    for r, si in zip(rows, seg_of[rows, describe[rows]]):
        name = _LABEL[_GROUPS[describe[r]]]
        out = int(seg["n_out_days"][si])
        span = int(seg["out_last"][si] - seg["out_first"][si]) if out >= 2 else 0
        if seg["n_inpatient_days"][si]:
            sentence = f"inpatient claim with {name} on {np.datetime64(int(seg['first_inpatient'][si]), 'D')}"
        elif span >= minimum:
            sentence = f"{out} outpatient claims with {name} {span} days apart"
        elif seg["near"][si]:
            sentence = f"{name} claim plus anticancer therapy within {window} days"
        elif out <= 1:
            sentence = f"1 outpatient claim with {name} only; a single claim does not qualify"
        else:
            sentence = f"{out} outpatient claims with {name} only {span} days apart; fewer than {minimum} days does not qualify"
        if chosen[r] == _G["LBCL"] and fl_before[r]:
            sentence += "; FL coded earlier"
        if chosen[r] >= 0 and exclusion[r] == "" and hodgkin_too[r]:
            sentence += "; Hodgkin codes also present"
        if chosen[r] == _G["B_ALL"] and t_too[r]:
            sentence += "; T-cell lymphoma/leukaemia codes also present"
        if seg["hides"][si]:
            sentence += f"; {PCNSL_UNSEPARABLE}"
        text[r] = sentence
    return text
