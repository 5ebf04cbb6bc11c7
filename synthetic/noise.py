"""Coding noise a real payer feed carries, at ``--noise`` off/low/medium/high.

Kinds that are *valid but messy* (features must cope): unspecified-site lymphoma codes and
rituximab biosimilars (applied inside the course simulator), dotted ICD-10-CM codes, out-of-network
gaps (claims missing for a stretch), duplicated service lines under a new line number, plan
switches (a second member_id for the same person_id, applied in members). Kinds that are *invalid*
(``validate`` must catch and quarantine them): a line ending before it starts, malformed HCPCS,
ICD-10-CM and NDC codes, an implausible dispensing date, a duplicated primary key, a fill after
the recorded death, a claim for a person missing from eligibility, and header fields that differ
between lines of one claim. Every injected defect is listed in ``truth/noise.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthetic.claims import MedicalBatch, PharmacyBatch, subset_medical, subset_pharmacy
from synthetic.coding import Vocabulary
from synthetic.members import NO_DATE, Members

LEVELS = {"off": 0.0, "low": 0.5, "medium": 1.0, "high": 2.0}
DOTTED_SHARE = 0.05
GAP_PERSON_SHARE = 0.02
DUPLICATE_LINE_SHARE = 0.004
PLAN_SWITCH_SHARE = 0.02
INVALID_SHARE = 0.0002
NOISE_COLUMNS = ("table", "claim_id", "claim_line_number", "person_id", "kind", "invalid")


def level_factor(level: str) -> float:
    if level not in LEVELS:
        raise ValueError(f"noise level {level!r} is not one of {', '.join(LEVELS)}")
    return LEVELS[level]


@dataclass
class Defects:
    """Row positions (in the final tables) chosen for each invalid kind."""

    medical: dict[str, np.ndarray]
    pharmacy: dict[str, np.ndarray]


def apply_batch_noise(medical: MedicalBatch, pharmacy: PharmacyBatch, members: Members, vocab: Vocabulary, factor: float,
                      rng: np.random.Generator) -> tuple[MedicalBatch, PharmacyBatch, list[tuple], np.ndarray]:
    """Valid-but-messy noise on the batches. Returns batches, gap records, and duplicated line flags."""
    gaps: list[tuple] = []
    if factor == 0:
        return medical, pharmacy, gaps, np.zeros(medical.n_lines, dtype=bool)
    # Dotted ICD-10-CM codes on some claims (header-level, so every line of the claim agrees).
    dotted = np.array([_dot(v) for v in vocab.values], dtype=object)
    dotted_ids = vocab.ids(list(dotted)) if len(dotted) else np.zeros(0, np.int32)
    chosen = rng.random(medical.n_claims) < DOTTED_SHARE * factor
    dx = medical.dx.copy()
    mask = chosen[:, None] & (dx >= 0)
    dx[mask] = dotted_ids[dx[mask]]
    medical.dx = dx
    # Out-of-network gaps: a 60-120 day stretch with no claims for some people.
    people = np.flatnonzero(rng.random(members.n) < GAP_PERSON_SHARE * factor)
    start = np.full(members.n, NO_DATE, dtype=np.int64)
    stop = np.full(members.n, -1, dtype=np.int64)
    offsets = (rng.random(len(people)) * members.enrolled_days()[people]).astype(np.int64)
    start[people] = members.calendar_day(people, offsets)
    stop[people] = start[people] + rng.integers(60, 121, len(people))
    keep_claims = ~((medical.start >= start[medical.person]) & (medical.start <= stop[medical.person]))
    keep_fills = ~((pharmacy.date >= start[pharmacy.person]) & (pharmacy.date <= stop[pharmacy.person]))
    gaps = [(int(p), int(start[p]), int(stop[p])) for p in people]
    medical = subset_medical(medical, keep_claims)
    pharmacy = subset_pharmacy(pharmacy, keep_fills)
    # Duplicated service lines (same service billed twice on the claim, new line number).
    counts = np.bincount(medical.line_claim, minlength=medical.n_claims)
    first_line = np.r_[0, np.cumsum(counts)[:-1]]
    dup_claims = np.flatnonzero((rng.random(medical.n_claims) < DUPLICATE_LINE_SHARE * factor) & (counts > 0))
    order = np.argsort(medical.line_claim, kind="stable")
    src = order[first_line[dup_claims]]
    fields = {k: getattr(medical, k) for k in ("line_claim", "line_number", "line_start", "line_end", "pos", "hcpcs", "revenue", "units", "paid")}
    for k, v in fields.items():
        extra = v[src]
        if k == "line_number":
            extra = counts[dup_claims].astype(np.int32) + 1
        setattr(medical, k, np.concatenate([v, extra]))
    duplicated = np.r_[np.zeros(len(fields["line_claim"]), bool), np.ones(len(src), bool)]
    return medical, pharmacy, gaps, duplicated


def _dot(code: str) -> str:
    """Dotted ICD-10-CM form of a dotless code (only ever applied to diagnosis ids)."""
    return code[:3] + "." + code[3:] if len(code) > 3 else code


def choose_defects(n_medical: int, n_pharmacy: int, single_line_rows: np.ndarray, multi_line_rows: np.ndarray, dead_fill_rows: np.ndarray,
                   factor: float, rng: np.random.Generator) -> Defects:
    """Pick row positions for each invalid kind (at least one of each when noise is on)."""
    if factor == 0:
        return Defects({}, {})
    def pick(pool: np.ndarray, total: int) -> np.ndarray:
        k = min(len(pool), max(1, int(round(INVALID_SHARE * factor * total))))
        return np.sort(rng.choice(pool, size=k, replace=False)) if k else np.zeros(0, np.int64)
    all_med, all_rx = np.arange(n_medical), np.arange(n_pharmacy)
    medical, pharmacy = {}, {}
    taken = np.zeros(0, np.int64)
    for kind, pool in (("malformed_icd", single_line_rows), ("end_before_start", single_line_rows), ("malformed_hcpcs", single_line_rows),
                       ("header_mismatch", multi_line_rows), ("duplicate_primary_key", all_med)):
        medical[kind] = pick(np.setdiff1d(pool, taken), n_medical)  # one defect per row, so each is caught for its own reason
        taken = np.union1d(taken, medical[kind])
    taken = np.zeros(0, np.int64)
    for kind, pool in (("malformed_ndc", all_rx), ("implausible_date", all_rx), ("after_death", dead_fill_rows), ("unknown_person", all_rx)):
        pharmacy[kind] = pick(np.setdiff1d(pool, taken), n_pharmacy)
        taken = np.union1d(taken, pharmacy[kind])
    return Defects(medical, pharmacy)


def _mask(n: int, rows: np.ndarray) -> pa.Array:
    m = np.zeros(n, dtype=bool)
    m[rows] = True
    return pa.array(m)


def corrupt_medical(table: pa.Table, defects: Defects) -> tuple[pa.Table, list[tuple]]:
    """Apply the invalid kinds to the built medical table; return it and the noise records."""
    if not defects.medical:
        return table, []
    n = table.num_rows
    d = defects.medical
    set_col = lambda t, name, arr: t.set_column(t.schema.get_field_index(name), name, arr)  # noqa: E731
    table = set_col(table, "diagnosis_code_1", pc.if_else(_mask(n, d["malformed_icd"]), pa.scalar("8C33"), table["diagnosis_code_1"]))
    table = set_col(table, "hcpcs_code", pc.if_else(_mask(n, d["malformed_hcpcs"]), pa.scalar("J93"), table["hcpcs_code"]))
    start = table["claim_line_start_date"].combine_chunks()
    earlier = pc.cast(pc.subtract(pc.cast(start, pa.int32()), pa.scalar(3, pa.int32())), pa.date32())
    table = set_col(table, "claim_line_end_date", pc.if_else(_mask(n, d["end_before_start"]), earlier, table["claim_line_end_date"]))
    flipped = pc.if_else(pc.equal(table["claim_type"], "professional"), pa.scalar("institutional"), pa.scalar("professional"))
    table = set_col(table, "claim_type", pc.if_else(_mask(n, d["header_mismatch"]), flipped, table["claim_type"]))
    records = _records("medical_claim", table, d)
    table = pa.concat_tables([table, table.take(pa.array(d["duplicate_primary_key"]))])
    return table, records


def corrupt_pharmacy(table: pa.Table, defects: Defects, death_day_of_row: np.ndarray) -> tuple[pa.Table, list[tuple]]:
    if not defects.pharmacy:
        return table, []
    n = table.num_rows
    d = defects.pharmacy
    set_col = lambda t, name, arr: t.set_column(t.schema.get_field_index(name), name, arr)  # noqa: E731
    table = set_col(table, "ndc_code", pc.if_else(_mask(n, d["malformed_ndc"]), pa.scalar("99999123"), table["ndc_code"]))
    after = death_day_of_row.copy()
    after[d["after_death"]] += 30
    dates = pa.array(np.where(np.isin(np.arange(n), d["after_death"]), after, 0).astype(np.int32)).cast(pa.date32())
    day1900 = pa.scalar(-25568, pa.int32()).cast(pa.date32())  # 1899-12-31
    col = pc.if_else(_mask(n, d["after_death"]), dates, table["dispensing_date"])
    col = pc.if_else(_mask(n, d["implausible_date"]), day1900, col)
    table = set_col(table, "dispensing_date", col)
    table = set_col(table, "person_id", pc.if_else(_mask(n, d["unknown_person"]), pa.scalar("P-UNKNOWN-0001"), table["person_id"]))
    return table, _records("pharmacy_claim", table, d)


def _records(name: str, table: pa.Table, defects: dict[str, np.ndarray]) -> list[tuple]:
    out = []
    for kind, rows in defects.items():
        if not len(rows):
            continue
        sub = table.take(pa.array(rows)).select(["claim_id", "claim_line_number", "person_id"]).to_pydict()
        out += [(name, c, int(ln), p, kind, True) for c, ln, p in zip(sub["claim_id"], sub["claim_line_number"], sub["person_id"])]
    return out
