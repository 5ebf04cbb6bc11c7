"""Relapse/refractory status and treatment history per member as of a date (lot_rules.md section 3).

The CAR T labels ask claims questions: how many prior lines, which drug classes, relapse within
12 months of first-line chemoimmunotherapy, refractory disease, lenalidomide-refractory myeloma.
``summarise_treatment`` answers them from the lines of ``features.lines.derive_lines`` and the
clipped events, one row per member of ``as_of``.

Clocks and proxies (parameters in ``features.lot_config.RelapseConfig``):

* ``line1_end`` is the **last administration** of line 1 (``last_admin_date``), not the end of
  its covered period: the published Flatiron LBCL study admits 2L patients who "initiated ...
  2L therapy within 12 months of ending a 1L chemo+anti-CD20 treatment", and the end of
  treatment in claims is the last dose. ``days_line1_end_to_line2_start`` and ``early_relapse``
  (<= 365 days) use that clock.
* ``line2_start`` is the start of line 2; when line 2 is a CAR T line, its apheresis date (if
  seen) is used, because relapse therapy began there, not at the infusion weeks later.
* ``primary_refractory``: 2L starts <= 90 days after the end of 1L, or 1L stopped before 4
  cycles (cycle length from the matched regimen, else 21 days) and another line started; never
  when line 1 reached its maintenance phase (``maintenance`` of ``derive_lines``): a relapse on
  POMP or rituximab maintenance follows a response, it is not refractory disease, however close
  the next line comes to the last maintenance dose. Missing (NA) when there is no line 2: the
  claims cannot tell.
* ``progressed_after_last_line`` looks after the start of the last prior (non-CAR T) line for: a
  CAR T line started after it, a relapse-coded diagnosis (ICD-10-CM 5th character 2) of the
  member's disease, a return to an active-disease code after a remission code, or CAR T
  work-up (apheresis/cell preparation codes). ``progression_evidence`` names what was found.
  The remission code must itself postdate the last line's start: follow-up visits before a new
  line carry the remission code and the new line's own claims the active-disease code, which
  is the relapse that line treats, not a progression after it.
* ``lenalidomide_refractory`` (myeloma proxy of "progression on or within 60 days of the last
  dose"), nullable: True when a line (number >= 2) starts while lenalidomide supply is active
  or <= 60 days after the end of its last supply before that start, or when the first
  progression evidence after the last line (see above) falls on lenalidomide or within those
  60 days, so a myeloma relapse coded on maintenance is refractory before any next line starts.
  Unknown (NA) when lenalidomide of the last line was followed by progression evidence dated
  more than 60 days after its supply ended (the progression itself may predate its first claim);
  otherwise False (never on lenalidomide, or no progression on it). It is computed for every
  member; only the myeloma labels read it.
* Class exposure flags come from every administration or fill on or before as_of, including
  bridging therapy and lymphodepletion (cyclophosphamide is an alkylator exposure).
* ``failed_lines`` counts the prior lines followed by progression: every line after which another
  line started, plus the last one when ``progressed_after_last_line``. ``failed_<class>`` flags a
  class received in those lines only (drugs before the last line started or, when it progressed,
  up to the first progression evidence). Labels mean prior therapy received *and failed*: a member
  who has just started a BTK inhibitor has BTKi exposure (``exposed_btki``) but no prior BTKi
  (``failed_btki``) until that line progresses. The eligibility engine reads ``failed_*``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from numba import njit

from features.codelists import CodeLists
from features.columns import TextColumn, columns_of, frame_from_columns, n_rows, positions, row_members, to_numpy
from features.lines import (
    _NEG,
    _day_of,
    _days_to_dates,
    encode_codes,
    event_seconds,
    event_supply,
    member_as_of_days,
    member_diseases,
    member_ids,
    member_order,
)
from features.lot_config import DISEASES, LotConfig, RelapseConfig
from features.memo import IdentityMemo

# Event tags resolved from (code_system, code).
T_NONE, T_RELAPSE, T_REMISSION, T_INDEX, T_WORKUP, T_DRUG, T_LENALIDOMIDE = 0, 1, 2, 3, 4, 5, 6
_BIG_DAY = 1 << 40
# Progression evidence bits.
EV_CAR_T_LINE, EV_RELAPSE_DX, EV_RETURN_DX, EV_WORKUP = 1, 2, 4, 8
_EVIDENCE_TEXT = (
    (EV_CAR_T_LINE, "CAR T infusion"),
    (EV_RELAPSE_DX, "relapse-coded diagnosis"),
    (EV_RETURN_DX, "active-disease code after a remission code"),
    (EV_WORKUP, "CAR T apheresis/work-up"),
)
_CAR_T_WORKUP = ("car_t_collection", "car_t_preparation")

_TABLES = IdentityMemo()
DEFAULT_CONFIG = RelapseConfig()
DEFAULT_LOT_CONFIG = LotConfig()


def _disease_of_group(group: str) -> str | None:
    """Which target disease a diagnosis group belongs to (``MM_related`` -> MM), if any."""
    base = re.sub(r"_(related|possible)$", "", group)
    return base if base in DISEASES else None


_LAST_TABLES: tuple = (None, None, None, None)  # the last (codes, config, lot, tables)


def _tables(codes: CodeLists, config: RelapseConfig, lot: LotConfig) -> dict:
    global _LAST_TABLES
    last = _LAST_TABLES
    if last[0] is codes and last[1] is config and last[2] is lot:
        return last[3]
    tables = _TABLES.get((codes, config, lot), lambda: (codes.version, config, lot), lambda: _build_tables(codes, config, lot))
    _LAST_TABLES = (codes, config, lot, tables)
    return tables


def _build_tables(codes: CodeLists, config: RelapseConfig, lot: LotConfig) -> dict:
    diagnoses = codes.diagnoses
    prefixes = {}
    for prefix, group, role in zip(diagnoses["prefix"], diagnoses["disease_group"], diagnoses["role"]):
        prefixes.setdefault(prefix, (group, role))
    classes = list(config.exposure_classes)
    class_index = {c: i for i, c in enumerate(classes)}
    drug_class = {}
    for system, code, generic, cls in zip(codes.drugs["code_system"], codes.drugs["code"], codes.drugs["generic"], codes.drugs["drug_class"]):
        if cls in class_index:
            drug_class[(system, code)] = (class_index[cls], str(generic).lower() == "lenalidomide")
    procs = codes.procedures[codes.procedures["event"].isin(_CAR_T_WORKUP) & codes.procedures["code_system"].isin(lot.car_t_code_systems)]
    workup = set(zip(procs["code_system"], procs["code"]))
    cycle_days = {}
    for name, text in zip(codes.regimens["regimen"], codes.regimens["cycle_days"]):
        number = re.match(r"\D*?(\d+)", str(text))
        if number and "n/a" not in str(text) and "continuous" not in str(text):
            cycle_days.setdefault(name, int(number[1]))
    triple = [class_index[c] for c in config.triple_classes]
    return {
        "prefixes": prefixes,
        "max_prefix": max((len(p) for p in prefixes), default=0),
        "classes": classes,
        "exposed_names": [f"exposed_{config.exposure_classes[c]}" for c in classes],
        "failed_names": [f"failed_{config.exposure_classes[c]}" for c in classes],
        "drug_class": drug_class,
        "workup": workup,
        "cycle_days": cycle_days,
        "triple_mask": sum(1 << i for i in triple),
        "disease_index": {d: i for i, d in enumerate(DISEASES)},
        "resolved": {},
    }


def _resolve(tables: dict, system: str, code: str) -> tuple[int, int]:
    """(tag, value): diagnosis role with the disease index, CAR T work-up, or drug class index."""
    if system == "icd10cm":
        for length in range(min(len(code), tables["max_prefix"]), 2, -1):
            hit = tables["prefixes"].get(code[:length])
            if hit is not None:
                group, role = hit
                disease = _disease_of_group(group)
                tag = {"relapse_marker": T_RELAPSE, "remission_marker": T_REMISSION, "index_dx": T_INDEX}.get(role, T_NONE)
                if tag == T_NONE or disease is None:
                    return T_NONE, -1
                return tag, tables["disease_index"][disease]
        return T_NONE, -1
    if (system, code) in tables["workup"]:
        return T_WORKUP, -1
    hit = tables["drug_class"].get((system, code))
    if hit is not None:
        return (T_LENALIDOMIDE if hit[1] else T_DRUG), hit[0]
    return T_NONE, -1


def summarise_treatment(
    lines: pd.DataFrame,
    events: pd.DataFrame,
    diseases: pd.Series | np.ndarray,
    as_of: pd.Series,
    codes: CodeLists,
    config: RelapseConfig | None = None,
    lot_config: LotConfig | None = None,
) -> pd.DataFrame:
    """One row per member of ``as_of`` (column ``person_id``) with the treatment summary.

    ``lines`` is the output of ``derive_lines`` and ``events`` the clipped events it was derived
    from; ``diseases`` is as for ``derive_lines``. Members without lines get zero prior lines, False
    flags and missing dates.
    """
    columns = treatment_columns(lines, events, diseases, as_of, codes, config, lot_config)
    return frame_from_columns(columns, len(as_of))


def treatment_columns(
    lines,
    events: pd.DataFrame,
    diseases: pd.Series | np.ndarray,
    as_of: pd.Series,
    codes: CodeLists,
    config: RelapseConfig | None = None,
    lot_config: LotConfig | None = None,
) -> dict:
    """:func:`summarise_treatment` as column arrays; ``lines`` may be a DataFrame or a column mapping."""
    config = config if config is not None else DEFAULT_CONFIG
    lot_config = lot_config if lot_config is not None else DEFAULT_LOT_CONFIG
    tables = _tables(codes, config, lot_config)
    persons = as_of.index
    n_persons = len(persons)
    events = columns_of(events)
    asof_day = member_as_of_days(events, as_of)
    p_dis = member_diseases(events, diseases, persons)

    # Lines, sorted by member (as_of order) and line number.
    lines = columns_of(lines)
    l_person = positions(persons, to_numpy(lines["person_id"], object), "as_of")
    l_number = to_numpy(lines["line_number"], np.int64)
    l_order, l_seg = member_order(l_person, l_number, np.zeros(len(l_number), np.int64), n_persons)

    def line_days(column: str) -> np.ndarray:
        return to_numpy(lines[column], "datetime64[D]")[l_order].astype(np.int64)

    l_start, l_last, l_aph = line_days("start_date"), line_days("last_admin_date"), line_days("apheresis_date")
    l_cart = to_numpy(lines["is_car_t"], bool)[l_order]
    l_auto = to_numpy(lines["includes_auto_sct"], bool)[l_order]
    l_maint = to_numpy(lines["maintenance"], bool)[l_order]
    regimens = to_numpy(lines["regimen"], object, None)[l_order]
    l_cycle = np.array([tables["cycle_days"].get(r, config.default_cycle_days) if r else config.default_cycle_days for r in regimens], dtype=np.int64)

    # Events: diagnoses, work-up, drug classes.
    if n_rows(events):
        tag, value = encode_codes(events, lambda s, c: _resolve(tables, s, c), tables["resolved"])
        rows = _treatment_rows(row_members(events, persons), tag, value, event_seconds(events), event_supply(events), n_persons)
    else:
        rows = _treatment_rows(*(np.zeros(0, np.int64) for _ in range(4)), np.zeros(0), n_persons)
    e_seg, e_day, e_cover, e_tag, e_value = rows

    out = _summary_kernel(
        l_seg, l_number[l_order], l_start, l_last, l_aph, l_cart, l_auto, l_maint, l_cycle,
        e_seg, e_day, e_cover, e_tag, e_value, p_dis, asof_day,
        config.early_relapse_days, config.refractory_days, config.refractory_min_cycles, config.drug_refractory_days,
    )  # fmt: skip
    return _assemble(out, member_ids(events, persons), regimens, l_seg, tables)


@njit(cache=True)
def _treatment_rows(member, tag, value, seconds, supply, n_members):
    """Tagged rows (diagnosis role, work-up, drug class) per member by (day, tag), each with the
    days it covers (days supply, else 1). ``seconds``: the event dates as datetime64[s] values."""
    n = 0
    for i in range(len(member)):
        n += tag[i] > T_NONE and member[i] >= 0 and _day_of(seconds[i]) > _NEG
    used = np.empty(n, np.int64)
    n = 0
    for i in range(len(member)):
        if tag[i] > T_NONE and member[i] >= 0 and _day_of(seconds[i]) > _NEG:
            used[n] = i
            n += 1
    day = np.empty(n, np.int64)
    for k in range(n):
        day[k] = _day_of(seconds[used[k]])
    order, seg = member_order(member[used], day, tag[used], n_members)
    e_day = np.empty(n, np.int64)
    e_cover = np.empty(n, np.int64)
    e_tag = np.empty(n, np.int64)
    e_value = np.empty(n, np.int64)
    for k in range(n):
        i = used[order[k]]
        e_day[k] = day[order[k]]
        e_cover[k] = np.int64(supply[i]) if supply[i] > 0 else 1
        e_tag[k] = tag[i]
        e_value[k] = value[i]
    return seg, e_day, e_cover, e_tag, e_value


def _integers(values: np.ndarray, known: np.ndarray) -> pd.arrays.IntegerArray:
    """Nullable Int64 from values and a known-mask (built directly: no per-call type inference)."""
    return pd.arrays.IntegerArray(np.where(known, values, 0).astype(np.int64), ~known)


def _booleans(values: np.ndarray, known: np.ndarray) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(values & known, ~known)


def _assemble(out: tuple, persons: np.ndarray, regimens: np.ndarray, l_seg: np.ndarray, tables: dict) -> dict:
    (prior, l1_start, l1_end, l2_start, has_l1, has_l2, early, refractory, progressed, ev_bits, ev_day,
     exposure, len_ref, len_known, asct, cart_day, last_start, last_treat, asof, failed_lines, failed_exposure) = out  # fmt: skip
    both = has_l1 & has_l2
    has_any = last_start > _NEG
    first_line = np.full(len(persons), None, dtype=object)
    first_line[has_l1] = regimens[l_seg[:-1][has_l1]]
    line1_start, line1_end, line2_start, car_t_date = _days_to_dates(np.stack((l1_start, l1_end, l2_start, cart_day)))  # _NEG when absent
    columns = {
        "person_id": TextColumn(persons.copy()),
        "prior_lines": prior,
        "line1_start": line1_start,
        "line1_end": line1_end,
        "line2_start": line2_start,
        "days_line1_end_to_line2_start": _integers(l2_start - l1_end, both),
        "early_relapse": _booleans(early, both),
        "primary_refractory": _booleans(refractory, both),
        "progressed_after_last_line": progressed,
        "progression_evidence": TextColumn(_evidence_text(ev_bits, ev_day)),
    }
    # one (classes x members) flag matrix per bit mask; each class's column is a row of it
    shifts = np.arange(len(tables["classes"]), dtype=np.int64)[:, None]
    columns.update(zip(tables["exposed_names"], ((exposure >> shifts) & 1).astype(bool)))
    columns["triple_class_exposed"] = (exposure & tables["triple_mask"]) == tables["triple_mask"]
    columns["failed_lines"] = failed_lines
    columns.update(zip(tables["failed_names"], ((failed_exposure >> shifts) & 1).astype(bool)))
    columns["lenalidomide_refractory"] = _booleans(len_ref, len_known)
    columns["prior_asct"] = asct
    columns["car_t_received"] = cart_day > _NEG
    columns["car_t_date"] = car_t_date
    columns["days_since_last_line_start"] = _integers(asof - last_start, has_any)
    columns["days_since_last_treatment"] = _integers(asof - last_treat, has_any & (last_treat > _NEG))
    columns["line1_regimen"] = TextColumn(first_line)
    return columns


def _evidence_text(bits: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Short text per member naming each kind of progression evidence and its first date."""
    text = np.full(len(bits), "", dtype=object)
    for i in np.flatnonzero(bits):
        parts = []
        for k, (bit, label) in enumerate(_EVIDENCE_TEXT):
            if bits[i] & bit:
                parts.append(f"{label} {np.datetime64(int(days[i, k]), 'D')}")
        text[i] = "; ".join(parts)
    return text


@njit(cache=True)
def _summary_kernel(
    l_seg, l_number, l_start, l_last, l_aph, l_cart, l_auto, l_maint, l_cycle,
    e_seg, e_day, e_cover, e_tag, e_value, p_dis, p_asof,
    early_days, refractory_days, min_cycles, drug_refractory_days,
):  # fmt: skip
    n = len(p_asof)
    prior = np.zeros(n, np.int64)
    l1_start = np.full(n, _NEG, np.int64)
    l1_end = np.full(n, _NEG, np.int64)
    l2_start = np.full(n, _NEG, np.int64)
    has_l1 = np.zeros(n, np.bool_)
    has_l2 = np.zeros(n, np.bool_)
    early = np.zeros(n, np.bool_)
    refractory = np.zeros(n, np.bool_)
    progressed = np.zeros(n, np.bool_)
    ev_bits = np.zeros(n, np.int64)
    ev_day = np.zeros((n, 4), np.int64)
    exposure = np.zeros(n, np.int64)
    failed_exposure = np.zeros(n, np.int64)
    failed_lines = np.zeros(n, np.int64)
    len_ref = np.zeros(n, np.bool_)
    len_known = np.ones(n, np.bool_)
    asct = np.zeros(n, np.bool_)
    cart_day = np.full(n, _NEG, np.int64)
    last_start = np.full(n, _NEG, np.int64)
    last_treat = np.full(n, _NEG, np.int64)
    for p in range(n):
        asof = p_asof[p]
        a, b = l_seg[p], l_seg[p + 1]
        last_prior = -1
        early_stop = False
        maintained = False
        for q in range(a, b):
            if l_start[q] > asof:
                continue
            if not l_cart[q]:
                prior[p] += 1
                last_prior = q
            elif cart_day[p] == _NEG:
                cart_day[p] = l_start[q]
            if l_auto[q]:
                asct[p] = True
            last_start[p] = max(last_start[p], l_start[q])
            last_treat[p] = max(last_treat[p], l_last[q])
            if l_number[q] == 1:
                has_l1[p] = True
                l1_start[p] = l_start[q]
                l1_end[p] = l_last[q]
                cycles = int(np.floor((l_last[q] - l_start[q]) / l_cycle[q] + 0.5)) + 1
                early_stop = cycles < min_cycles
                maintained = l_maint[q]
            elif l_number[q] == 2:
                has_l2[p] = True
                l2_start[p] = l_aph[q] if l_cart[q] and l_aph[q] > _NEG else l_start[q]
        if has_l1[p] and has_l2[p]:
            gap = l2_start[p] - l1_end[p]
            early[p] = gap <= early_days
            refractory[p] = (gap <= refractory_days or early_stop) and not maintained

        ea, eb = e_seg[p], e_seg[p + 1]
        dis = p_dis[p]
        after = l_start[last_prior] if last_prior >= 0 else _NEG
        remission_seen = _NEG
        len_end = _NEG
        q = a
        for i in range(ea, eb):
            d = e_day[i]
            if d > asof:
                continue
            t = e_tag[i]
            # Lines that start before this event: check lenalidomide supply against their start.
            while q < b and l_start[q] <= d:
                if l_number[q] >= 2 and l_start[q] <= asof and len_end > _NEG and l_start[q] <= len_end + drug_refractory_days:
                    len_ref[p] = True
                q += 1
            if t == 5 or t == 6:
                exposure[p] |= np.int64(1) << np.int64(e_value[i])
                if t == 6:
                    len_end = max(len_end, d + max(e_cover[i], 1) - 1)
                continue
            same = dis < 0 or e_value[i] == dis
            if last_prior < 0 or d <= after:
                continue
            # Only a remission reached on the last line counts: an active code on the claims that
            # treat a relapse, after a remission coded before that line started, is that relapse.
            if t == 2 and same and remission_seen == _NEG:
                remission_seen = d
            if t == 1 and same:
                _note(ev_bits, ev_day, p, 1, d)
            elif t == 3 and same and remission_seen > _NEG and d > remission_seen:
                _note(ev_bits, ev_day, p, 2, d)
            elif t == 4:
                _note(ev_bits, ev_day, p, 3, d)
        while q < b:
            if l_number[q] >= 2 and l_start[q] <= asof and len_end > _NEG and l_start[q] <= len_end + drug_refractory_days:
                len_ref[p] = True
            q += 1
        if last_prior >= 0:
            for r in range(last_prior + 1, b):
                if l_cart[r] and l_start[r] <= asof and l_start[r] > after:
                    _note(ev_bits, ev_day, p, 0, l_start[r])
                    break
        progressed[p] = ev_bits[p] != 0
        # Lenalidomide-refractory (tri-state): proven by a line start above, or by the first
        # progression evidence after the last line falling on lenalidomide or within the window.
        # Unknown when lenalidomide of the last line was followed by evidence dated later than the
        # window: the progression itself may have come earlier than the claims show it.
        if not len_ref[p] and progressed[p]:
            first_ev = _first_evidence(ev_bits, ev_day, p)
            len_before, len_current = _NEG, False
            for i in range(ea, eb):
                if e_tag[i] == 6 and e_day[i] <= first_ev and e_day[i] <= asof:
                    len_before = max(len_before, e_day[i] + max(e_cover[i], 1) - 1)
                    len_current = len_current or e_day[i] >= after
            if len_before > _NEG and first_ev <= len_before + drug_refractory_days:
                len_ref[p] = True
            elif len_current:
                len_known[p] = False
        # Failed lines: every prior line followed by another line, and the last one when progression
        # followed it. Their drug classes are the "prior" classes labels mean (received and failed):
        # drugs before the last line started, or, after progression, up to its first evidence.
        if last_prior >= 0:
            failed_lines[p] = prior[p] - 1 + (1 if progressed[p] else 0)
            cut = _first_evidence(ev_bits, ev_day, p) if progressed[p] else after - 1
            for i in range(ea, eb):
                t = e_tag[i]
                if (t == 5 or t == 6) and e_day[i] <= cut and e_day[i] <= asof:
                    failed_exposure[p] |= np.int64(1) << np.int64(e_value[i])
    return (
        prior, l1_start, l1_end, l2_start, has_l1, has_l2, early, refractory, progressed, ev_bits, ev_day,
        exposure, len_ref, len_known, asct, cart_day, last_start, last_treat, p_asof, failed_lines, failed_exposure,
    )  # fmt: skip


@njit(cache=True)
def _first_evidence(bits, days, p):
    """The first day any progression evidence of member ``p`` was seen (a large day when none)."""
    first = _BIG_DAY
    for k in range(days.shape[1]):
        if bits[p] & (np.int64(1) << np.int64(k)) and days[p, k] < first:
            first = days[p, k]
    return first


@njit(cache=True)
def _note(bits, days, p, k, d):
    """Record evidence kind ``k`` for member ``p`` on day ``d`` (the first date is kept)."""
    bit = np.int64(1) << np.int64(k)
    if bits[p] & bit == 0:
        bits[p] |= bit
        days[p, k] = d
