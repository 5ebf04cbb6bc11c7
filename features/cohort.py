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

Everything is array work over all members at once (segments of a (person, group) sort), so one
member and a million members run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from features.codelists import CodeLists, normalise_code
from features.columns import STR, TextColumn, code_pair_index, columns_of, frame_from_columns, object_values, row_members
from features.events import event_days
from features.memo import IdentityMemo

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
    subtypes: tuple[str, ...]
    drugs: dict[tuple[str, str], tuple[bool, bool, bool, bool, bool]]  # (system, code) -> drug flags


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
    if not ids.is_unique:
        raise ValueError("as_of index (person_id) has duplicated values")
    n = len(ids)
    config = config if config is not None else DEFAULT_CONFIG
    lookup = _compile(codes, config)
    pidx = row_members(events, ids)
    kind = object_values(events, "kind", "")
    code = object_values(events, "code", "")
    day = event_days(events)

    is_drug = ((kind == "drug_admin") | (kind == "drug_fill")) & (pidx >= 0)
    flags = _drug_flags(events, is_drug, lookup)
    therapy_keys, lineage, cd20, anthra, cll_drug = _person_drug_facts(flags, pidx, day, n)

    is_dx = (kind == "diagnosis") & (pidx >= 0)
    group, subtype, hides = _map_diagnoses(code[is_dx], lookup)
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
    disease, sub, chosen = _assign(qualifies, seg_of, seg, lookup, cd20 & anthra, cll_signal)
    exclusion = _exclusions(qualifies, disease, chosen, lineage)
    chosen_seg = np.where(chosen >= 0, seg_of[np.arange(n), np.maximum(chosen, 0)], -1)
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
    subtypes = ["", "transformed_FL", "SLL"]
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
        subtypes=tuple(subtypes),
        drugs=drugs,
    )


def _map_diagnoses(dx_code: np.ndarray, lookup: _Lookup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longest-prefix match on the unique codes only, then broadcast back.

    ``hides`` marks a code that is a proper ancestor of an exclusion code (C83.39 before the
    FY2025 split holds PCNSL without saying so).
    """
    index, uniques = pd.factorize(dx_code)
    # the trailing "no match" entry is where a missing code (index -1) lands
    found = [_match(c, lookup) for c in uniques.tolist()] + [(-1, 0, False)]
    group = np.array([f[0] for f in found], dtype=np.int64)[index]
    subtype = np.array([f[1] for f in found], dtype=np.int64)[index]
    hides = np.array([f[2] for f in found], dtype=bool)[index]
    return group, subtype, hides


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
    """Aggregate diagnosis rows per (person, group): the claims-algorithm statistics."""
    names = ("person", "group", "first", "n_inpatient_days", "first_inpatient", "n_out_days", "out_first",
             "out_last", "near", "subtype", "hides", "qualifies", "n_claims")
    if len(person) == 0:
        return {k: np.zeros(0, dtype=np.int64) for k in names}
    key = person.astype(np.int64) * len(_GROUPS) + group
    order = np.lexsort((day, key))
    key, day, subtype, hides, inpatient, near = (a[order] for a in (key, day, subtype, hides, inpatient, near))
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ends = np.append(starts[1:], len(key))
    big = _BIG
    out_days = np.add.reduceat(_one_row_per_day(key, day, ~inpatient).astype(np.int64), starts)
    inp_days = np.add.reduceat(_one_row_per_day(key, day, inpatient).astype(np.int64), starts)
    out_first = np.minimum.reduceat(np.where(inpatient, big, day), starts)
    out_last = np.maximum.reduceat(np.where(inpatient, -big, day), starts)
    near_any = np.maximum.reduceat(near.astype(np.int8), starts).astype(bool)
    span = np.where(out_days >= 2, out_last - out_first, 0)
    return {
        "person": key[starts] // len(_GROUPS),
        "group": key[starts] % len(_GROUPS),
        "first": day[starts],
        "n_inpatient_days": inp_days,
        "first_inpatient": np.minimum.reduceat(np.where(inpatient, day, big), starts),
        "n_out_days": out_days,
        "out_first": out_first,
        "out_last": out_last,
        "near": near_any,
        "subtype": subtype[ends - 1],
        "hides": np.maximum.reduceat(hides.astype(np.int8), starts).astype(bool),
        "qualifies": (inp_days > 0) | (span >= config.outpatient_min_days_apart) | near_any,
        "n_claims": ends - starts,
    }


def _one_row_per_day(key: np.ndarray, day: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mark one ``mask`` row per (segment, day): claims on the same day count once."""
    idx = np.flatnonzero(mask)
    mark = np.zeros(len(key), dtype=bool)
    if len(idx):
        k, d = key[idx], day[idx]
        mark[idx[np.concatenate(([True], (k[1:] != k[:-1]) | (d[1:] != d[:-1])))]] = True
    return mark


def _assign(qualifies, seg_of, seg, lookup: _Lookup, chemoimmuno: np.ndarray, cll_signal: np.ndarray):
    """Apply the disease hierarchy; returns disease, subtype and the group whose claims decided it."""
    n = qualifies.shape[0]
    q = {g: qualifies[:, _G[g]] for g in _GROUPS}
    disease = np.full(n, "", dtype=object)
    chosen = np.full(n, -1, dtype=np.int64)
    subtype_idx = np.zeros(n, dtype=np.int64)
    undecided = np.ones(n, dtype=bool)
    never = _BIG

    def latest_subtype(group: str) -> np.ndarray:
        return _pick(seg["subtype"], seg_of[:, _G[group]], 0)

    def first_day(group: str) -> np.ndarray:
        return np.where(q[group], _pick(seg["first"], seg_of[:, _G[group]], never), never)

    def take(mask: np.ndarray, name: str, group: str, sub=None) -> None:
        """Assign ``name`` to the undecided members of ``mask``; ``sub()`` gives their subtypes
        (default: the group's latest), computed only when the step takes anyone."""
        m = mask & undecided
        if not m.any():
            return
        disease[m] = name
        chosen[m] = _G[group]
        subtype_idx[m] = (sub() if sub is not None else latest_subtype(group))[m]
        undecided[m] = False

    def lbcl_subtype() -> np.ndarray:
        transformed = np.minimum(first_day("FL"), first_day("FL_3B_LBCL")) < first_day("LBCL")
        return np.where(transformed, lookup.subtypes.index("transformed_FL"), latest_subtype("LBCL"))

    take(q["LBCL"], "LBCL", "LBCL", lbcl_subtype)
    take(q["FL_3B_LBCL"], "LBCL", "FL_3B_LBCL")
    for g in ("MCL", "B_ALL", "MM", "CLL_SLL", "MZL"):
        take(q[g], g, g)
    take(q["MZL_or_SLL"] & cll_signal, "CLL_SLL", "MZL_or_SLL", lambda: np.full(n, lookup.subtypes.index("SLL")))
    take(q["MZL_or_SLL"], "MZL", "MZL_or_SLL")
    take(q["FL"], "FL", "FL")
    take(q["LBCL_possible"] & chemoimmuno & ~q["Hodgkin"], "LBCL", "LBCL_possible")
    # PCNSL alone: an LBCL-type patient whom every LBCL label excludes.
    take(q["PCNSL"], "LBCL", "PCNSL")
    subtypes = np.array(lookup.subtypes, dtype=object)
    return disease.astype(str), subtypes[subtype_idx].astype(str), chosen


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
    for reason, group in _EXCLUDING_GROUP.items():
        describe[(exclusion == reason) & ((describe < 0) | (reason == EXCLUSION_PCNSL))] = _G[group]
    if len(seg["person"]):
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
