"""Lines of therapy from dated drug and procedure events (lot_rules.md sections 2 and 4).

CAR T labels are written in line-of-therapy terms ("after two or more lines of systemic therapy"),
so this module decides who is counted as a candidate. The rules, in the order they are applied:

* Drugs are identified by (code_system, code) through ``codes.drugs``: HCPCS J/Q codes and, after
  ``CodeLists.with_ndc_crosswalk``, pharmacy NDCs. Biosimilars, SC/IV forms and product codes are
  already one generic there. Supportive drugs and unknown NDCs are ignored.
* A line starts with the first systemic anticancer drug; every drug within ``window_days`` of it
  joins the regimen. Steroids never start a line; steroids inside the window, or up to
  ``prephase_days`` before it (pre-phase prednisone before R-CHOP), are part of it.
* A line stays open while qualifying drugs keep coming: an oral fill covers its days supply and a
  continuous infusion (blinatumomab) its infusion days, so a treatment holiday shorter than
  ``gap_days`` after the covered period does not break the line. A longer gap closes it; a restart,
  even of the same regimen, is a new line.
* After the window a drug not in the regimen starts a new line, unless it substitutes for a regimen
  drug (``substitution_groups``), is that disease's maintenance drug started within
  ``maintenance_max_gap_days`` of the last induction dose (``maintenance_after_sct_max_gap_days``
  when the line's last induction event is a transplant: myeloma maintenance waits for recovery
  from ASCT), or is a planned addition (CNS prophylaxis; frontline ALL phases). A drug dropped
  from the combination changes nothing. Maintenance of a regimen drug that starts later than
  those limits is an unplanned start: a new line (Rajkumar 2015).
* Autologous or allogeneic SCT within ``sct_after_salvage_days`` of the line's last induction dose,
  together with conditioning drugs in the ``conditioning_days`` before it (BEAM, melphalan), belongs
  to that line; otherwise it starts one. Conditioning agents alone never start a line. MS-DRG-only
  ASCT evidence next to a CAR T infusion is ignored (CAR T grouped to DRG 016 in FY2019-2020).
* CAR T is one line dated from the infusion. Apheresis up to ``car_t_collection_lookback_days``
  before it is kept as ``apheresis_date``; drugs between apheresis and infusion (bridging) and
  Flu/Cy in the ``ld_window_days`` before it (lymphodepletion) are folded into the CAR T line and
  never start or extend another. Until the infusion happens (apheresis seen, infusion not yet, as_of
  within ``car_t_collection_lookback_days`` of the apheresis), the bridging drugs are held back the
  same way, so a member in the CAR T pathway does not gain a line; once that time has passed without
  an infusion, the drugs count as ordinary therapy.
* NOC drug codes (J9999 etc.) never name a drug or start a line; they keep an open line active.
  Radiation is never a systemic line. Events after a recorded death are ignored.

``end_reason``: ``car_t`` when the next line is a CAR T infusion; ``gap`` when the line lapsed
(more than the gap without a qualifying drug) before the next line or as_of; ``next_line`` when a
new line started while it was still open; ``death`` when the member died within the gap of its
last covered day; ``end_of_data`` when it is still open at as_of. ``end_date`` is the last covered
day (last administration, or fill date + days supply - 1), capped at the day before the next line,
the death date and as_of. ``last_admin_date`` is the last administration or fill date of the line
(the clock relapse proxies use).

Speed: codes are resolved once per unique (code_system, code); events are sorted by (member, day)
and a compiled kernel walks every member's segment, so one member and a million share one path.
For one member the cost is per-call pandas and NumPy overhead, so the row preparation (filter,
sort, segments, covered days, enrollment spans) is one compiled pass too, and what this step and
the treatment summary (``features.relapse``) both read from the events (code pairs, dates, days
supply, as_of days, diseases) is converted once per pipeline call on ``columns_of(events)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from features.codelists import CodeLists
from features.columns import (
    TextColumn,
    cached,
    cached_rows,
    code_pair_index,
    columns_of,
    frame_from_columns,
    n_rows,
    object_column,
    object_values,
    positions,
    row_members,
    to_numpy,
)
from features.events import event_days
from features.lot_config import DISEASES, LotConfig
from features.memo import IdentityMemo, bounded

LINE_COLUMNS = (
    "person_id",
    "line_number",
    "start_date",
    "end_date",
    "drugs",
    "regimen",
    "includes_sct",
    "end_reason",
    "is_car_t",
    "drug_classes",
    "last_admin_date",
    "maintenance",
    "apheresis_date",
    "includes_auto_sct",
    "includes_allo_sct",
)
END_REASONS = ("next_line", "gap", "death", "end_of_data", "car_t")

# Drug roles.
ROLE_IGNORE, ROLE_LINE, ROLE_STEROID, ROLE_CONDITIONING, ROLE_NOC, ROLE_CAR_T = 0, 1, 2, 3, 4, 5
# Event types seen by the kernel (-1: irrelevant row).
E_DRUG, E_AUTO, E_ALLO, E_SCT, E_AUTO_DRG, E_INF, E_COLL, E_DEATH = 0, 1, 2, 3, 4, 5, 6, 7
# Fold markers (>= 0: index of the CAR T infusion episode the event belongs to).
F_NONE, F_COND, F_PENDING, F_SKIP = -1, -2, -3, -4
R_NEXT, R_GAP, R_DEATH, R_EOD, R_CAR_T = 0, 1, 2, 3, 4

_NEG = -(1 << 40)
_BIG = 1 << 40
_NAT = np.iinfo(np.int64).min  # the int64 value of NaT
_SECONDS = np.dtype("datetime64[s]")
_SCT_EVENTS = {"auto_sct": E_AUTO, "allo_sct": E_ALLO, "auto_or_allo_sct": E_SCT}
# Per-disease integer parameters handed to the kernel, in its column order.
_PARAMS = ("window_days", "gap_days", "ld_window_days", "maintenance_max_gap_days", "sct_after_salvage_days",
           "maintenance_after_sct_max_gap_days")  # fmt: skip


@dataclass
class _Tables:
    """Lookups derived once per (code lists, config): slots, roles, per-disease parameter arrays."""

    slot_names: list[str]
    slot_class: list[str]
    slot_index: dict[str, int]
    role: np.ndarray
    role64: np.ndarray
    group: np.ndarray
    ld: np.ndarray
    cover: np.ndarray
    params: np.ndarray  # (n_disease + 1, 6): window, gap, ld, maintenance gap, sct gap, maintenance gap after SCT
    maint: np.ndarray
    add_any: np.ndarray
    add_front: np.ndarray
    n_words: int
    drug_by_code: dict[tuple[str, str], tuple[int, int]]  # (system, code) -> (slot, role)
    proc_exact: dict[tuple[str, str], str]
    proc_patterns: list[tuple[str, re.Pattern, str]]
    car_t_systems: frozenset[str]
    regimens: dict[str, list[tuple[str, str, list[tuple[frozenset[str], bool]]]]]
    steroids: frozenset[str]
    group_rep: dict[str, str]
    resolved: dict[tuple[str, str], tuple[int, int]]  # memo: (system, code) -> (etype, slot)
    mask_cache: dict[tuple[int, ...], tuple[list[str], list[str]]]
    regimen_cache: dict[tuple[int, int, tuple[int, ...]], object]


_TABLES = IdentityMemo()
DEFAULT_CONFIG = LotConfig()


_LAST_TABLES: tuple = (None, None, None)  # the last (codes, config, tables): a service asks with the same objects every call


def lot_tables(codes: CodeLists, config: LotConfig) -> _Tables:
    """Build (or fetch) the lookups for these code lists and parameters."""
    global _LAST_TABLES
    last = _LAST_TABLES
    if last[0] is codes and last[1] is config:
        return last[2]
    tables = _TABLES.get((codes, config), lambda: (codes.version, config), lambda: _build_tables(codes, config))
    _LAST_TABLES = (codes, config, tables)
    return tables


def _role(drug_class: str, counts: str) -> int:
    if drug_class in ("supportive", "other"):
        return ROLE_IGNORE
    if drug_class == "steroid":
        return ROLE_STEROID
    if drug_class == "noc":
        return ROLE_NOC
    if drug_class == "car_t":
        return ROLE_CAR_T
    return ROLE_CONDITIONING if counts == "no" else ROLE_LINE


def _build_tables(codes: CodeLists, config: LotConfig) -> _Tables:
    drugs = codes.drugs.assign(generic=codes.drugs["generic"].str.lower())
    catalog = codes.drug_catalog.assign(generic=codes.drug_catalog["generic"].str.lower())
    generics = pd.concat([catalog[["generic", "drug_class", "counts_as_line"]], drugs[["generic", "drug_class", "counts_as_line"]]])
    generics = generics.drop_duplicates("generic")
    generics = generics[[_role(c, n) != ROLE_IGNORE for c, n in zip(generics["drug_class"], generics["counts_as_line"])]]
    names = sorted(generics["generic"])
    index = {g: i for i, g in enumerate(names)}
    cls = dict(zip(generics["generic"], generics["drug_class"]))
    counts = dict(zip(generics["generic"], generics["counts_as_line"]))
    n = len(names)

    known = set(catalog["generic"])
    named = set(config.lymphodepletion_drugs) | set(config.infusion_cover_days)
    for group in config.substitution_groups:
        named |= group
    for mapping in (config.maintenance_drugs, config.additions_same_line, config.frontline_additions):
        for values in mapping.values():
            named |= set(values)
    unknown = sorted(named - known)
    if unknown:
        raise ValueError(f"LotConfig names drug(s) absent from the code lists: {', '.join(unknown)}")
    bad_disease = sorted(
        (set(config.overrides) | set(config.maintenance_drugs) | set(config.additions_same_line) | set(config.frontline_additions))
        - set(DISEASES)
    )
    if bad_disease:
        raise ValueError(f"LotConfig names unknown disease(s): {', '.join(bad_disease)}")

    role = np.array([_role(cls[g], counts[g]) for g in names], dtype=np.int8)
    group = np.arange(n, dtype=np.int64)
    group_rep: dict[str, str] = {g: g for g in names}
    for members in config.substitution_groups:
        present = sorted(m for m in members if m in index)
        for m in present:
            group[index[m]] = index[present[0]]
            group_rep[m] = present[0]
    ld = np.array([g in config.lymphodepletion_drugs for g in names], dtype=np.bool_)
    cover = np.array([int(config.infusion_cover_days.get(g, 1)) for g in names], dtype=np.int64)

    n_dis = len(DISEASES) + 1  # last row: disease unknown
    params = np.zeros((n_dis, len(_PARAMS)), dtype=np.int64)
    maint = np.zeros((n_dis, max(n, 1)), dtype=np.bool_)
    add_any = np.zeros_like(maint)
    add_front = np.zeros_like(maint)
    for d_i, disease in enumerate([*DISEASES, None]):
        params[d_i] = [config.for_disease(disease, p) for p in _PARAMS]
        for table, mapping in ((maint, config.maintenance_drugs), (add_any, config.additions_same_line), (add_front, config.frontline_additions)):
            for g in mapping.get(disease or "", ()):
                if g in index:
                    table[d_i, index[g]] = True

    drug_by_code = {}
    for system, code, generic in zip(drugs["code_system"], drugs["code"], drugs["generic"]):
        if generic in index:
            drug_by_code[(system, code)] = (index[generic], int(role[index[generic]]))
    procs = codes.procedures
    wanted = {"auto_sct", "allo_sct", "auto_or_allo_sct", "car_t_infusion", "car_t_collection"}
    procs = procs[procs["event"].isin(wanted)]
    proc_exact = {(s, c): e for s, c, e in zip(procs["code_system"], procs["code"], procs["event"]) if not pd.isna(c)}
    proc_patterns = [(s, re.compile(p), e) for s, p, e in zip(procs["code_system"], procs["pattern"], procs["event"]) if not pd.isna(p)]

    return _Tables(
        slot_names=names,
        slot_class=[cls[g] for g in names],
        slot_index=index,
        role=role,
        role64=role.astype(np.int64),
        group=group,
        ld=ld,
        cover=cover,
        params=params,
        maint=maint,
        add_any=add_any,
        add_front=add_front,
        n_words=max(1, (n + 63) // 64),
        drug_by_code=drug_by_code,
        proc_exact=proc_exact,
        proc_patterns=proc_patterns,
        car_t_systems=frozenset(config.car_t_code_systems),
        regimens=_parse_regimens(codes.regimens, set(known)),
        steroids=frozenset(g for g in names if cls[g] == "steroid"),
        group_rep=group_rep,
        resolved={},
        mask_cache={},
        regimen_cache={},
    )


def _resolve(tables: _Tables, system: str, code: str) -> tuple[int, int]:
    """(event type, slot) for one (code_system, code); -1 event type when irrelevant to lines."""
    slot, role = tables.drug_by_code.get((system, code), (-1, ROLE_IGNORE))
    event = tables.proc_exact.get((system, code))
    if event is None and system == "icd10pcs":
        event = next((e for s, p, e in tables.proc_patterns if s == system and p.match(code)), None)
    if role == ROLE_CAR_T:
        return E_INF, slot  # a CAR T product code is itself infusion evidence
    if event in _SCT_EVENTS:
        return (E_AUTO_DRG if system == "ms_drg" and event == "auto_sct" else _SCT_EVENTS[event]), -1
    if event in ("car_t_infusion", "car_t_collection") and system in tables.car_t_systems:
        return (E_INF if event == "car_t_infusion" else E_COLL), -1
    if role != ROLE_IGNORE:
        return E_DRUG, slot
    return -1, -1


# Below this many rows a Python dict walk beats pandas' per-call factorize overhead.
_SMALL = 4096
_DISEASE_INDEX = {d: i for i, d in enumerate(DISEASES)}


def encode_codes(events: pd.DataFrame, resolve, memo: dict) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``resolve(system, code) -> (a, b)`` to every row, calling it once per unique pair.

    Rows with a missing system or code get (-1, -1). ``memo`` keeps answers across calls, so a
    real-time request pays only for codes never seen before.
    """
    events = columns_of(events)
    if n_rows(events) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows, pairs = code_pair_index(events)
    get = bounded(memo).get
    answers = []
    for pair in pairs:
        hit = get(pair)
        if hit is None:
            hit = memo[pair] = (-1, -1) if pair[0] is None or pair[1] is None else resolve(*pair)
        answers.append(hit)
    table = np.array(answers, dtype=np.int64)
    return table[:, 0][rows], table[:, 1][rows]


def is_kind(events: pd.DataFrame, kind: str) -> np.ndarray:
    """Boolean mask of rows of one event kind (missing kinds are False)."""
    events = columns_of(events)
    if n_rows(events) <= _SMALL:
        return object_values(events, "kind", "") == kind
    return (events["kind"] == kind).to_numpy(dtype=bool, na_value=False)


def event_seconds(events, name: str = "date") -> np.ndarray:
    """A date column as int64 seconds since the epoch (NaT: the smallest int64), read once per
    frame and without a copy; the compiled passes take day numbers from it for the rows they use."""

    def build(columns) -> np.ndarray:
        return to_numpy(columns[name], "datetime64[s]").view(np.int64)

    return cached_rows(events, ("lines.seconds", name), None, build)


@njit(cache=True)
def _day_of(seconds):
    """The day number (``features.events.day_numbers``) of a datetime64[s] value."""
    return seconds if seconds == _NAT else seconds // 86400


def event_supply(events) -> np.ndarray:
    """``days_supply`` as float64 with NaN for missing, converted once per frame."""
    return cached_rows(events, ("lines.supply",), None, lambda columns: columns["days_supply"].to_numpy(dtype=np.float64, na_value=np.nan))


def member_ids(events, ids: pd.Index) -> np.ndarray:
    """The as_of index as an object array, converted once per frame and index."""
    return cached(events, ("lines.ids", id(ids)), ids, lambda: np.asarray(ids, dtype=object))


def member_as_of_days(events, as_of: pd.Series) -> np.ndarray:
    """Each as_of member's date as a day number, in as_of order."""
    return cached(events, ("lines.as_of", id(as_of)), as_of, lambda: to_numpy(as_of.array, "datetime64[D]").astype(np.int64))


def member_diseases(events, diseases: pd.Series | np.ndarray, ids: pd.Index) -> np.ndarray:
    """Position in ``DISEASES`` of each as_of member's disease (-1: missing or not a target disease).

    ``diseases`` is a Series indexed by person_id, or an array of disease names (None: none) already
    in ``ids`` order, as the pipeline hands over the cohort's: aligning it costs nothing then.
    """

    def build() -> tuple[pd.Index, np.ndarray]:
        if isinstance(diseases, np.ndarray):
            if diseases.shape != (len(ids),):
                raise ValueError(f"diseases array has shape {diseases.shape}; expected one disease per as_of member ({len(ids)})")
            names = diseases.tolist()
        else:
            names = align_to_persons(diseases, member_ids(events, ids), "diseases")
        return ids, np.array([_DISEASE_INDEX.get(d, -1) if isinstance(d, str) else -1 for d in names], dtype=np.int64)

    hit = cached(events, ("lines.diseases", id(diseases), id(ids)), diseases, build)
    return hit[1] if hit[0] is ids else build()[1]


def align_to_persons(series: pd.Series, persons: np.ndarray, name: str) -> np.ndarray:
    """Values of a person-indexed series in ``persons`` order (missing persons give None)."""
    where = positions(series.index, persons, name)
    values = series.to_numpy(dtype=object, na_value=None)
    out = np.full(len(persons), None, dtype=object)
    found = where >= 0
    out[found] = values[where[found]]
    return out


def sort_ids(values: np.ndarray) -> np.ndarray:
    """Positions that put these (unique) person ids in sorted order: the member order of outputs."""
    if len(values) <= _SMALL:
        return np.array(sorted(range(len(values)), key=values.tolist().__getitem__), dtype=np.int64)
    return np.argsort(values, kind="stable")


def derive_lines(
    events: pd.DataFrame,
    diseases: pd.Series | np.ndarray,
    as_of: pd.Series,
    codes: CodeLists,
    config: LotConfig | None = None,
) -> pd.DataFrame:
    """One row per line of therapy per member (columns ``LINE_COLUMNS``), sorted by member and line.

    ``events`` must already be clipped to each member's ``as_of`` (``clip_to_as_of``); ``diseases``
    (LBCL, FL, MCL, MZL, CLL_SLL, B_ALL, MM or missing; a Series indexed by person_id or an array in
    ``as_of`` order) selects per-disease parameters and regimen names; ``as_of`` caps end dates and
    decides ``end_of_data`` versus ``gap``.
    """
    columns = line_columns(events, diseases, as_of, codes, config)
    return frame_from_columns(columns, n_rows(columns))


def line_columns(events: pd.DataFrame, diseases: pd.Series | np.ndarray, as_of: pd.Series, codes: CodeLists, config: LotConfig | None = None) -> dict:
    """:func:`derive_lines` as column arrays (what the pipeline hands to the next steps)."""
    config = config if config is not None else DEFAULT_CONFIG
    tables = lot_tables(codes, config)
    events = columns_of(events)
    if n_rows(events) == 0:
        return _empty_lines()
    etype, slot = encode_codes(events, lambda s, c: _resolve(tables, s, c), tables.resolved)
    etype[is_kind(events, "death")] = E_DEATH
    ids = as_of.index
    member, seconds = row_members(events, ids), event_seconds(events)
    person_pos, first_row, unknown = _members_used(member, etype, seconds, len(ids))
    # their ids: one member's from the object column other steps already hold, a batch's from as_of
    persons = object_values(events, "person_id", None)[first_row] if n_rows(events) <= _SMALL else member_ids(events, ids)[person_pos]
    if len(person_pos) > 1:
        order = sort_ids(persons)
        person_pos, persons = person_pos[order], persons[order]
    if len(person_pos) == 0:
        if unknown:
            _check_dated(events, etype, member, np.zeros(0, np.int64))
        return _empty_lines()
    supply = event_supply(events)
    enrollment = is_kind(events, "enrollment")
    end_seconds = event_seconds(events, "end_date")
    asof_day = member_as_of_days(events, as_of)
    disease = member_diseases(events, diseases, ids)
    out = _derive(
        member, person_pos, etype, slot, seconds, supply, enrollment, end_seconds, asof_day, disease, tables.cover, len(DISEASES),
        tables.role64, tables.group, tables.ld, tables.params, tables.maint, tables.add_any, tables.add_front,
        config.conditioning_days, config.prephase_days, config.car_t_collection_lookback_days, config.car_t_episode_days, tables.n_words,
    )  # fmt: skip
    p_asof, p_dis, undated, out = out[0], out[1], out[2], out[3:]
    if unknown or undated:
        _check_dated(events, etype, member, p_asof)
    return _assemble(out, persons, p_dis, tables)


def _check_dated(events, etype: np.ndarray, member: np.ndarray, asof_days: np.ndarray) -> None:
    """Every member with events the lines use needs an as_of date (rows without a person_id are skipped)."""
    undated_rows = (etype >= 0) & (event_days(events) > _NEG) & (member < 0)
    ids = object_values(events, "person_id", None)[undated_rows].tolist()
    missing = len({v for v in ids if v is not None and v == v}) + int((asof_days <= _NEG).sum())
    if missing:
        raise ValueError(f"as_of has no date for {missing} person_id value(s) present in events")


@njit(cache=True)
def _derive(
    member, person_pos, etype, slot, seconds, supply, is_enrollment, end_seconds, asof_day, disease, slot_cover, n_diseases,
    s_role, s_group, s_ld, params, maint, add_any, add_front, cond_days, prephase_days, aph_lookback, ep_days, n_words,
):  # fmt: skip
    """:func:`_line_rows` then :func:`_lines_kernel` in one compiled call; the members' as_of days and
    disease rows and whether an as_of is missing come first in the result."""
    rows = _line_rows(member, person_pos, etype, slot, seconds, supply, is_enrollment, end_seconds, asof_day, disease, slot_cover, len(s_role), n_diseases)
    seg, s_day, s_etype, s_slot, s_cover, en_seg, en_start, en_end, p_asof, p_dis, undated = rows
    out = _lines_kernel(
        seg, s_day, s_etype, s_slot, s_cover, p_dis, p_asof, s_role, s_group, s_ld, params, maint, add_any, add_front,
        cond_days, prephase_days, aph_lookback, ep_days, n_words, en_seg, en_start, en_end,
    )  # fmt: skip
    return (p_asof, p_dis, undated) + out


@njit(cache=True)
def _members_used(member, etype, seconds, n_members):
    """The members (as_of positions, ascending) with rows the lines walk uses, the first such row
    of each, and whether such a row has no member."""
    first = np.full(n_members, -1, np.int64)
    unknown = False
    n_used = 0
    for i in range(len(member)):
        if etype[i] >= 0 and _day_of(seconds[i]) > _NEG:
            m = member[i]
            if m < 0:
                unknown = True
            elif first[m] < 0:
                first[m] = i
                n_used += 1
    used = np.empty(n_used, np.int64)
    k = 0
    for m in range(n_members):
        if first[m] >= 0:
            used[k] = m
            k += 1
    return used, first[used], unknown


@njit(cache=True)
def member_order(member, day, tie, n_members):
    """Rows with a member (code >= 0) ordered by (member, day, tie), equal keys in row order, and
    the offsets of each member's segment: a counting sort by member, then a sort within each
    member's few hundred rows (skipped when they already come in order, as claims usually do)."""
    seg = np.zeros(n_members + 1, np.int64)
    for i in range(len(member)):
        if member[i] >= 0:
            seg[member[i] + 1] += 1
    for m in range(n_members):
        seg[m + 1] += seg[m]
    fill = seg[:-1].copy()
    order = np.empty(seg[n_members], np.int64)
    for i in range(len(member)):
        m = member[i]
        if m >= 0:
            order[fill[m]] = i
            fill[m] += 1
    for m in range(n_members):
        a = seg[m]
        b = seg[m + 1]
        in_order = True
        for k in range(a + 1, b):
            i = order[k - 1]
            j = order[k]
            if day[j] < day[i] or (day[j] == day[i] and tie[j] < tie[i]):
                in_order = False
                break
        if in_order:
            continue
        d_min = day[order[a]]
        t_min = tie[order[a]]
        t_max = t_min
        for k in range(a, b):
            i = order[k]
            d_min = min(d_min, day[i])
            t_min = min(t_min, tie[i])
            t_max = max(t_max, tie[i])
        span = t_max - t_min + 1
        key = np.empty(b - a, np.int64)
        for k in range(a, b):
            i = order[k]
            key[k - a] = (day[i] - d_min) * span + (tie[i] - t_min)
        order[a:b] = order[a:b][np.argsort(key, kind="mergesort")]
    return order, seg


@njit(cache=True)
def _line_rows(member, person_pos, etype, slot, seconds, supply, is_enrollment, end_seconds, asof_day, disease, slot_cover, n_slots, n_diseases):
    """What the lines walk reads, for the members at ``person_pos`` (as_of positions) in that order.

    Their rows by (day, event type, drug), each with the days it covers (days supply, else the
    drug's infusion days, else 1); their enrollment spans by start day (an open end runs forever);
    their as_of day and disease row (``n_diseases`` when unknown), and whether an as_of is missing.
    """
    n_persons = len(person_pos)
    code_of = np.full(len(asof_day), -1, np.int64)
    p_asof = np.empty(n_persons, np.int64)
    p_dis = np.empty(n_persons, np.int64)
    undated = False
    for k in range(n_persons):
        p = person_pos[k]
        code_of[p] = k
        p_asof[k] = asof_day[p]
        undated = undated or asof_day[p] <= _NEG
        p_dis[k] = disease[p] if disease[p] >= 0 else n_diseases
    # the rows used and the enrollment rows, gathered first: a batch uses a small share of its rows
    n_used = 0
    n_enrolled = 0
    for i in range(len(member)):
        if member[i] >= 0 and code_of[member[i]] >= 0 and _day_of(seconds[i]) > _NEG:
            n_used += etype[i] >= 0
            n_enrolled += is_enrollment[i]
    used = np.empty(n_used, np.int64)
    enrolled = np.empty(n_enrolled, np.int64)
    n_used = 0
    n_enrolled = 0
    for i in range(len(member)):
        if member[i] >= 0 and code_of[member[i]] >= 0 and _day_of(seconds[i]) > _NEG:
            if etype[i] >= 0:
                used[n_used] = i
                n_used += 1
            if is_enrollment[i]:
                enrolled[n_enrolled] = i
                n_enrolled += 1
    person = np.empty(n_used, np.int64)
    u_day = np.empty(n_used, np.int64)
    tie = np.empty(n_used, np.int64)
    for k in range(n_used):
        i = used[k]
        person[k] = code_of[member[i]]
        u_day[k] = _day_of(seconds[i])
        tie[k] = etype[i] * (n_slots + 1) + slot[i] + 1
    order, seg = member_order(person, u_day, tie, n_persons)
    s_day = np.empty(n_used, np.int64)
    s_etype = np.empty(n_used, np.int64)
    s_slot = np.empty(n_used, np.int64)
    s_cover = np.empty(n_used, np.int64)
    for k in range(n_used):
        j = order[k]
        i = used[j]
        s_day[k] = u_day[j]
        s_etype[k] = etype[i]
        s_slot[k] = slot[i]
        if supply[i] > 0:
            s_cover[k] = np.int64(supply[i])
        elif slot[i] >= 0:
            s_cover[k] = slot_cover[slot[i]]
        else:
            s_cover[k] = 1
    en_person = np.empty(n_enrolled, np.int64)
    en_day = np.empty(n_enrolled, np.int64)
    for k in range(n_enrolled):
        en_person[k] = code_of[member[enrolled[k]]]
        en_day[k] = _day_of(seconds[enrolled[k]])
    en_order, en_seg = member_order(en_person, en_day, en_day, n_persons)
    en_start = np.empty(n_enrolled, np.int64)
    en_end = np.empty(n_enrolled, np.int64)
    for k in range(n_enrolled):
        i = enrolled[en_order[k]]
        en_start[k] = en_day[en_order[k]]
        end = _day_of(end_seconds[i])
        en_end[k] = end if end > _NEG else _BIG
    return seg, s_day, s_etype, s_slot, s_cover, en_seg, en_start, en_end, p_asof, p_dis, undated


def _empty_lines() -> dict:
    """No lines, with the same columns and dtypes as a non-empty result."""
    empty = np.zeros(0, dtype=np.int64)
    mask = np.zeros((0, 1), dtype=np.uint64)
    no = np.zeros(0, dtype=bool)
    out = (empty, empty, np.zeros((4, 0), dtype=np.int64), empty, no, no, no, no, no, mask, mask)
    return _assemble(out, np.zeros(0, dtype=object), empty, None)


def _days_to_dates(days: np.ndarray) -> np.ndarray:
    """datetime64[s] from day numbers, NaT for the no-day markers (one compiled pass, any shape)."""
    days = np.ascontiguousarray(days, dtype=np.int64)
    return _days_seconds(days.reshape(-1)).reshape(days.shape).view(_SECONDS)


@njit(cache=True)
def _day_seconds(day):
    """Seconds since the epoch of a day number; NaT's value for the no-day markers."""
    return _NAT if day <= _NEG or day >= _BIG else day * 86400


@njit(cache=True)
def _days_seconds(days):
    out = np.empty(len(days), np.int64)
    for i in range(len(days)):
        out[i] = _day_seconds(days[i])
    return out


_END_REASON_TEXT = np.array(END_REASONS, dtype=object)


def _assemble(out: tuple, persons: np.ndarray, p_dis: np.ndarray, tables: _Tables) -> dict:
    (l_person, l_number, l_dates, l_reason, l_cart, l_auto, l_allo, l_sct, l_maint, out_mask, name_mask) = out
    if len(l_person) == 0:
        drugs, classes, regimen = [], [], np.zeros(0, dtype=object)
    else:
        drugs, classes = _mask_lists(out_mask, tables)
        regimen = _regimen_names(name_mask, p_dis[l_person], l_number, tables)
    if l_cart.any():
        for i in np.flatnonzero(l_cart):
            if "car_t" not in classes[i]:
                classes[i] = sorted([*classes[i], "car_t"])
    start, end, last, apheresis = l_dates.view(_SECONDS)
    return {
        "person_id": TextColumn(persons[l_person]),
        "line_number": l_number,
        "start_date": start,
        "end_date": end,
        "drugs": object_column(drugs),
        "regimen": TextColumn(regimen),
        "includes_sct": l_sct,
        "end_reason": TextColumn(_END_REASON_TEXT[l_reason]),
        "is_car_t": l_cart,
        "drug_classes": object_column(classes),
        "last_admin_date": last,
        "maintenance": l_maint,
        "apheresis_date": apheresis,
        "includes_auto_sct": l_auto,
        "includes_allo_sct": l_allo,
    }


def _unique_rows(matrix: np.ndarray) -> tuple[list[tuple[int, ...]], list[int] | np.ndarray]:
    """Unique rows of a small-int matrix (as tuples) and each row's index into them.

    One member's few lines skip the de-duplication (their lookups are cached anyway): every row is
    its own key.
    """
    if len(matrix) <= _SMALL_ROWS:
        return [tuple(row) for row in matrix.tolist()], range(len(matrix))
    view = np.ascontiguousarray(matrix).view(np.dtype((np.void, matrix.dtype.itemsize * matrix.shape[1]))).ravel()
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    return [tuple(matrix[i].tolist()) for i in first], inverse.ravel()


_SMALL_ROWS = 64


def _mask_names(mask: tuple[int, ...], tables: _Tables) -> list[str]:
    names = []
    for w, word in enumerate(mask):
        while word:
            low = word & -word
            names.append(tables.slot_names[w * 64 + low.bit_length() - 1])
            word ^= low
    return sorted(names)


def _mask_lists(masks: np.ndarray, tables: _Tables) -> tuple[list[list[str]], list[list[str]]]:
    uniques, inverse = _unique_rows(masks.astype(np.int64))
    built = []
    for mask in uniques:
        hit = tables.mask_cache.get(mask)
        if hit is None:
            names = _mask_names(tuple(int(w) & 0xFFFFFFFFFFFFFFFF for w in mask), tables)
            classes = sorted({tables.slot_class[tables.slot_index[g]] for g in names})
            hit = tables.mask_cache[mask] = (names, classes)
        built.append(hit)
    return [list(built[i][0]) for i in inverse], [list(built[i][1]) for i in inverse]


def _regimen_names(masks: np.ndarray, dis: np.ndarray, numbers: np.ndarray, tables: _Tables) -> np.ndarray:
    keys = np.empty((len(masks), 2 + masks.shape[1]), dtype=np.int64)
    keys[:, 0] = dis
    keys[:, 1] = np.minimum(numbers, 9)
    keys[:, 2:] = masks  # the same bits, read as int64
    uniques, inverse = _unique_rows(keys)
    found = []
    for key in uniques:
        hit = tables.regimen_cache.get(key)
        if hit is None:
            disease = DISEASES[key[0]] if 0 <= key[0] < len(DISEASES) else None
            drugs = _mask_names(tuple(int(w) & 0xFFFFFFFFFFFFFFFF for w in key[2:]), tables)
            hit = match_regimen(disease, drugs, key[1], tables) if disease else None
            tables.regimen_cache[key] = hit
        found.append(hit)
    return np.array([found[i] for i in inverse], dtype=object)


def _parse_regimens(regimens: pd.DataFrame, known: set[str]) -> dict[str, list]:
    """Regimen components as slots of alternatives, each required or optional.

    The source notation: ``;`` separates components, ``OR``/``or`` separates alternatives,
    ``(+/- x)`` and ``(+ x)`` are optional additions, other parentheses are comments, and
    "alternating with" joins two courses. Names not in the drug catalog are comments and dropped.
    """
    parsed: dict[str, list] = {}

    def names_in(text: str) -> list[str]:
        text = text.strip().lower()
        if text in known:
            return [text]
        starts = [k for k in known if text.startswith(k + " ")]
        return [max(starts, key=len)] if starts else []

    for row in regimens.itertuples(index=False):
        raw = row.components if isinstance(row.components, str) else ";".join(row.components)
        optional_text = re.findall(r"\(\+/?-?\s*([^)]*)\)", raw)
        body = re.sub(r"\([^)]*\)", " ", raw).replace(" alternating with ", ";")
        slots: list[tuple[frozenset[str], bool]] = []
        for part in body.split(";"):
            alternatives = [n for alt in re.split(r"\s+or\s+", part, flags=re.IGNORECASE) for n in names_in(alt)]
            if alternatives:
                slots.append((frozenset(alternatives), False))
        for text in optional_text:
            for part in text.split(";"):
                slots.extend((frozenset([n]), True) for n in names_in(part))
        # Maintenance rows describe a phase inside a line, never a line of their own (a lenalidomide
        # + dexamethasone line must not be named "Lenalidomide maintenance").
        if any(not opt for _, opt in slots) and not str(row.typical_line).lower().startswith("maintenance"):
            parsed.setdefault(row.disease, []).append((row.regimen, str(row.typical_line), slots))
    return parsed


def match_regimen(disease: str, drugs: list[str], line_number: int, tables: _Tables) -> str | None:
    """The regimen of ``disease`` whose components explain the line's drugs, or None.

    Every required non-steroid component must be present and every non-steroid drug must be a
    component; steroids are optional because oral steroids are often missing from claims. Exact
    names are tried before substitutions (R-GemOx must not be named R-GDP); among matches the one
    with most components wins, then the one whose typical line fits ``line_number``.
    """
    for rename in (lambda g: g, lambda g: tables.group_rep.get(g, g)):
        given = {rename(g) for g in drugs if g not in tables.steroids}
        best, best_key = None, None
        for order, (name, typical, slots) in enumerate(tables.regimens.get(disease, [])):
            required = [frozenset(rename(a) for a in alts) for alts, opt in slots if not opt and not (alts & tables.steroids)]
            allowed = set().union(*(frozenset(rename(a) for a in alts) for alts, _ in slots))
            if not required or not given or not given <= allowed or not all(alts & given for alts in required):
                continue
            stated = re.match(r"(\d)L(\+?)", typical)
            fits = bool(stated) and (int(stated[1]) == line_number or (stated[2] == "+" and line_number >= int(stated[1])))
            key = (len(required), fits, -order)
            if best_key is None or key > best_key:
                best, best_key = name, key
        if best is not None:
            return best
    return None


@njit(cache=True)
def _set_bit(mask, row, s):
    mask[row, s >> 6] |= np.uint64(1) << np.uint64(s & 63)


@njit(cache=True)
def _open_line(cur, m, line_no, d, induction, apheresis, car_t, l_person, l_number, l_start, l_cover, l_last, l_ind, l_sctday, l_lmaint, l_aph, l_cart, reg):
    """Start line ``cur`` (number ``line_no`` of member ``m``) on day ``d`` with an empty regimen;
    a CAR T line passes its infusion day as ``induction`` and its apheresis day."""
    l_person[cur] = m
    l_number[cur] = line_no
    l_start[cur] = d
    l_cover[cur] = d
    l_last[cur] = d
    l_ind[cur] = induction
    l_sctday[cur] = _NEG
    l_lmaint[cur] = _NEG
    l_aph[cur] = apheresis
    l_cart[cur] = car_t
    reg[:] = False


@njit(cache=True)
def _maintenance_limit(induction_end, last_sct, after_induction, after_sct):
    """Days maintenance may start after its reference: longer when the reference is a transplant
    (recovery from high-dose therapy delays maintenance), else the post-induction limit."""
    return after_sct if last_sct > _NEG and last_sct >= induction_end else after_induction


@njit(cache=True)
def _sct_reference(induction_end, last_admin, last_sct):
    """The day an SCT is measured from: last induction dose (or any dose if the line has only
    maintenance drugs) or the previous transplant, so an unplanned later second ASCT is a new line."""
    ref = induction_end if induction_end > _NEG else last_admin
    return max(ref, last_sct)


@njit(cache=True)
def _unenrolled_days(lo, hi, en_seg, en_start, en_end, m):
    """Days strictly between ``lo`` and ``hi`` outside every enrollment span of member ``m``.

    0 when the member has no enrollment events (nothing is known about breaks).
    """
    a = en_seg[m]
    b = en_seg[m + 1]
    if a == b or hi - lo <= 1:
        return 0
    covered = 0
    last = lo  # last day already counted as covered
    for k in range(a, b):
        s = max(en_start[k], last + 1)
        e = min(en_end[k], hi - 1)
        if e >= s:
            covered += e - s + 1
            last = e
    return (hi - lo - 1) - covered


@njit(cache=True)
def _lines_kernel(
    seg, day, etype, slot, cover, p_dis, p_asof,
    s_role, s_group, s_ld, params, maint, add_any, add_front,
    cond_days, prephase_days, aph_lookback, ep_days, n_words, en_seg, en_start, en_end,
):  # fmt: skip
    n = len(day)
    n_persons = len(seg) - 1
    cap = n + 1
    l_person = np.empty(cap, np.int64)
    l_number = np.empty(cap, np.int64)
    l_start = np.empty(cap, np.int64)
    l_cover = np.empty(cap, np.int64)
    l_last = np.empty(cap, np.int64)
    l_ind = np.empty(cap, np.int64)
    l_sctday = np.empty(cap, np.int64)
    l_lmaint = np.empty(cap, np.int64)
    l_aph = np.empty(cap, np.int64)
    l_end = np.empty(cap, np.int64)
    l_reason = np.empty(cap, np.int64)
    l_cart = np.zeros(cap, np.bool_)
    l_auto = np.zeros(cap, np.bool_)
    l_allo = np.zeros(cap, np.bool_)
    l_sct = np.zeros(cap, np.bool_)
    l_maint = np.zeros(cap, np.bool_)
    out_mask = np.zeros((cap, n_words), np.uint64)
    name_mask = np.zeros((cap, n_words), np.uint64)
    fold = np.full(n, F_NONE, np.int64)
    ep_day = np.empty(n, np.int64)
    ep_aph = np.empty(n, np.int64)
    ep_mask = np.zeros((n, n_words), np.uint64)
    st_day = np.empty(n, np.int64)
    st_slot = np.empty(n, np.int64)
    reg = np.zeros(len(s_role), np.bool_)
    nl = 0

    for m in range(n_persons):
        a = seg[m]
        b = seg[m + 1]
        if a == b:
            continue
        dis = p_dis[m]
        window = params[dis, 0]
        gap = params[dis, 1]
        ld_win = params[dis, 2]
        mgap = params[dis, 3]
        sgap = params[dis, 4]
        msgap = params[dis, 5]
        asof = p_asof[m]
        if asof < _NEG:
            asof = _BIG
        death = _BIG
        for i in range(a, b):
            if etype[i] == E_DEATH and day[i] < death:
                death = day[i]
        for i in range(a, b):
            if day[i] > death:
                fold[i] = F_SKIP

        # CAR T infusion episodes, their apheresis and the drugs folded into them.
        ne = 0
        for i in range(a, b):
            if etype[i] == E_INF and fold[i] != F_SKIP:
                if ne == 0 or day[i] > ep_day[a + ne - 1] + ep_days:
                    ep_day[a + ne] = day[i]
                    ne += 1
        for k in range(ne):
            inf = ep_day[a + k]
            best = _NEG
            for i in range(a, b):
                if etype[i] == E_COLL and inf - aph_lookback <= day[i] <= inf and day[i] > best:
                    best = day[i]
            if k > 0 and best <= ep_day[a + k - 1]:
                best = _NEG
            ep_aph[a + k] = best
            for w in range(n_words):
                ep_mask[a + k, w] = 0
        for i in range(a, b):
            if etype[i] != E_DRUG or fold[i] != F_NONE:
                continue
            s = slot[i]
            for k in range(ne):
                inf = ep_day[a + k]
                aph = ep_aph[a + k]
                d = day[i]
                if d == inf or (aph > _NEG and aph <= d <= inf) or (s_ld[s] and inf - ld_win <= d <= inf):
                    fold[i] = a + k
                    _set_bit(ep_mask, a + k, s)
                    break
        last_inf = ep_day[a + ne - 1] if ne > 0 else _NEG
        for i in range(a, b):
            # Apheresis with no infusion yet: hold bridging back while the infusion may still come.
            if etype[i] == E_COLL and day[i] > last_inf and fold[i] != F_SKIP and asof - day[i] <= aph_lookback:
                for j in range(a, b):
                    if etype[j] == E_DRUG and fold[j] == F_NONE and day[i] <= day[j] <= day[i] + aph_lookback:
                        fold[j] = F_PENDING
        for i in range(a, b):
            if etype[i] == E_AUTO_DRG and fold[i] == F_NONE:
                for k in range(ne):
                    if abs(day[i] - ep_day[a + k]) <= ep_days:
                        fold[i] = F_SKIP
        for i in range(a, b):
            e = etype[i]
            if (e == E_AUTO or e == E_ALLO or e == E_SCT or e == E_AUTO_DRG) and fold[i] == F_NONE:
                for j in range(a, b):
                    if etype[j] == E_DRUG and fold[j] == F_NONE and day[i] - cond_days <= day[j] <= day[i]:
                        r = s_role[slot[j]]
                        if r == ROLE_LINE or r == ROLE_CONDITIONING:
                            fold[j] = F_COND

        # Walk the member's days in order.
        is_open = False
        cur = -1
        line_no = 0
        first_line = nl
        st0 = a
        st1 = a
        epq = 0
        i = a
        while i < b:
            d = day[i]
            if d > death:
                break
            j = i
            while j < b and day[j] == d:
                j += 1
            # Days seen without treatment: a break in enrollment hides fills, so it does not count.
            unseen = _unenrolled_days(l_cover[cur], d, en_seg, en_start, en_end, m) if is_open else 0
            gap_closed = is_open and d - l_cover[cur] - unseen > gap
            has_inf = False
            ep = -1
            if epq < ne and ep_day[a + epq] == d:
                has_inf = True
                ep = a + epq
                epq += 1
            need_line = False
            trigger = False
            limit = _maintenance_limit(l_ind[cur], l_sctday[cur], mgap, msgap) if is_open else mgap
            for k in range(i, j):
                e = etype[k]
                if fold[k] == F_SKIP or fold[k] == F_PENDING:
                    continue
                if e == E_DRUG:
                    if fold[k] >= 0:
                        continue
                    s = slot[k]
                    r = s_role[s]
                    if fold[k] == F_COND:
                        need_line = True
                        if not is_open or gap_closed or d - _sct_reference(l_ind[cur], l_last[cur], l_sctday[cur]) > sgap:
                            trigger = True
                    elif r == ROLE_LINE:
                        need_line = True
                        if not is_open or gap_closed or l_cart[cur]:
                            trigger = True
                        elif d <= l_start[cur] + window:
                            pass
                        elif reg[s_group[s]]:
                            if maint[dis, s] and l_ind[cur] > _NEG and l_lmaint[cur] <= l_ind[cur] and d - l_ind[cur] > limit:
                                trigger = True
                        elif maint[dis, s] and l_ind[cur] > _NEG and d - l_ind[cur] <= limit:
                            pass
                        elif add_any[dis, s] or (line_no == 1 and add_front[dis, s]):
                            pass
                        else:
                            trigger = True
                elif e == E_AUTO or e == E_ALLO or e == E_SCT or e == E_AUTO_DRG:
                    need_line = True
                    if not is_open or gap_closed or d - _sct_reference(l_ind[cur], l_last[cur], l_sctday[cur]) > sgap:
                        trigger = True

            if is_open and gap_closed and (need_line or has_inf):
                l_reason[cur] = R_CAR_T if has_inf else R_GAP
                is_open = False
            if trigger:
                if is_open:
                    l_reason[cur] = R_CAR_T if has_inf else R_NEXT
                cur = nl
                nl += 1
                line_no += 1
                is_open = True
                _open_line(cur, m, line_no, d, _NEG, _NEG, False, l_person, l_number, l_start, l_cover, l_last, l_ind, l_sctday, l_lmaint, l_aph, l_cart, reg)
                for q in range(st0, st1):
                    if st_day[q] >= d - prephase_days:
                        _set_bit(out_mask, cur, st_slot[q])
                        _set_bit(name_mask, cur, st_slot[q])
                st0 = st1

            live = is_open and d - l_cover[cur] - unseen <= gap
            for k in range(i, j):
                e = etype[k]
                f = fold[k]
                if f == F_SKIP or f == F_PENDING or (e == E_DRUG and f >= 0):
                    continue
                if e == E_DRUG:
                    s = slot[k]
                    r = s_role[s]
                    if f == F_COND:
                        _set_bit(out_mask, cur, s)
                        l_cover[cur] = max(l_cover[cur], d)
                        l_last[cur] = d
                        l_ind[cur] = max(l_ind[cur], d)
                    elif r == ROLE_LINE:
                        reg[s_group[s]] = True
                        _set_bit(out_mask, cur, s)
                        _set_bit(name_mask, cur, s)
                        end = d + max(cover[k], 1) - 1
                        l_cover[cur] = max(l_cover[cur], end)
                        l_last[cur] = d
                        if maint[dis, s]:
                            l_lmaint[cur] = max(l_lmaint[cur], d)
                        else:
                            l_ind[cur] = max(l_ind[cur], end)
                    elif r == ROLE_STEROID:
                        if live and d <= l_start[cur] + window:
                            _set_bit(out_mask, cur, s)
                            _set_bit(name_mask, cur, s)
                        else:
                            while st0 < st1 and st_day[st0] < d - prephase_days:
                                st0 += 1
                            st_day[st1] = d
                            st_slot[st1] = s
                            st1 += 1
                    elif live and not l_cart[cur]:
                        # NOC codes and conditioning agents without a transplant keep the line going.
                        if r == ROLE_CONDITIONING:
                            _set_bit(out_mask, cur, s)
                        l_cover[cur] = max(l_cover[cur], d + max(cover[k], 1) - 1)
                        l_last[cur] = d
                elif e == E_AUTO or e == E_ALLO or e == E_SCT or e == E_AUTO_DRG:
                    l_sct[cur] = True
                    if e == E_AUTO or e == E_AUTO_DRG:
                        l_auto[cur] = True
                    if e == E_ALLO:
                        l_allo[cur] = True
                    l_sctday[cur] = max(l_sctday[cur], d)
                    l_cover[cur] = max(l_cover[cur], d)
                    l_ind[cur] = max(l_ind[cur], d)
                    l_last[cur] = d
                elif e == E_INF and slot[k] >= 0 and is_open and l_cart[cur] and not has_inf:
                    _set_bit(out_mask, cur, slot[k])
                    _set_bit(name_mask, cur, slot[k])

            if has_inf:
                if is_open:
                    l_reason[cur] = R_CAR_T
                cur = nl
                nl += 1
                line_no += 1
                is_open = True
                _open_line(cur, m, line_no, d, d, ep_aph[ep], True, l_person, l_number, l_start, l_cover, l_last, l_ind, l_sctday, l_lmaint, l_aph, l_cart, reg)
                for w in range(n_words):
                    out_mask[cur, w] |= ep_mask[ep, w]
                for k in range(i, j):
                    if etype[k] == E_INF and slot[k] >= 0:
                        _set_bit(out_mask, cur, slot[k])
                        _set_bit(name_mask, cur, slot[k])
                st0 = st1
            i = j

        if is_open:
            if death < _BIG and death - l_cover[cur] <= gap:
                l_reason[cur] = R_DEATH
            elif asof - l_cover[cur] > gap:
                l_reason[cur] = R_GAP
            else:
                l_reason[cur] = R_EOD
        for q in range(first_line, nl):
            nxt = l_start[q + 1] - 1 if q + 1 < nl else _BIG
            end = min(l_cover[q], nxt, death, asof)
            l_end[q] = max(end, l_start[q])
            window_q = params[dis, 0]
            l_maint[q] = l_ind[q] > _NEG and l_lmaint[q] > l_ind[q] + window_q and not l_cart[q]

    dates = np.empty((4, nl), np.int64)  # start, end, last administration, apheresis: datetime64[s] values
    for q in range(nl):
        dates[0, q] = _day_seconds(l_start[q])
        dates[1, q] = _day_seconds(l_end[q])
        dates[2, q] = _day_seconds(l_last[q])
        dates[3, q] = _day_seconds(l_aph[q])
    return (
        l_person[:nl], l_number[:nl], dates, l_reason[:nl],
        l_cart[:nl], l_auto[:nl], l_allo[:nl], l_sct[:nl], l_maint[:nl], out_mask[:nl], name_mask[:nl],
    )  # fmt: skip
