"""Claims as columnar numpy batches, and the sink the per-patient cancer histories write into.

Both the vectorised background generator and the per-patient cancer simulator produce the same
``MedicalBatch`` / ``PharmacyBatch`` shape: header arrays (one entry per claim) and line arrays
pointing at their header. Header fields (claim type, dates, diagnoses, DRG, bill type, ICD-10-PCS)
live only on the header, so they are identical across the lines of a claim by construction, as the
Tuva contract requires. Codes are ids into the chunk's ``Vocabulary``; ``-1`` means empty.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from synthetic.coding import Vocabulary

DX_SLOTS = 4
PROFESSIONAL, INSTITUTIONAL = 0, 1


@dataclass
class MedicalBatch:
    # headers
    person: np.ndarray
    claim_type: np.ndarray
    start: np.ndarray
    end: np.ndarray
    admitted: np.ndarray  # inpatient stay: admission = start, discharge = end
    bill_type: np.ndarray
    drg: np.ndarray
    dx: np.ndarray  # (n_claims, DX_SLOTS)
    pcs: np.ndarray
    # lines
    line_claim: np.ndarray
    line_number: np.ndarray
    line_start: np.ndarray
    line_end: np.ndarray
    pos: np.ndarray
    hcpcs: np.ndarray
    revenue: np.ndarray
    units: np.ndarray
    paid: np.ndarray

    @property
    def n_claims(self) -> int:
        return len(self.person)

    @property
    def n_lines(self) -> int:
        return len(self.line_claim)


_HEADER = ("person", "claim_type", "start", "end", "admitted", "bill_type", "drg", "dx", "pcs")


def concat_medical(batches: list[MedicalBatch]) -> MedicalBatch:
    """Concatenate batches, re-pointing line arrays at the combined headers."""
    offsets = np.cumsum([0] + [b.n_claims for b in batches[:-1]])
    out = {}
    for f in fields(MedicalBatch):
        parts = [getattr(b, f.name) for b in batches]
        if f.name == "line_claim":
            parts = [p + o for p, o in zip(parts, offsets)]
        out[f.name] = np.concatenate(parts)
    return MedicalBatch(**out)


def subset_medical(batch: MedicalBatch, keep_claims: np.ndarray, keep_lines: np.ndarray | None = None) -> MedicalBatch:
    """Keep the claims flagged in ``keep_claims`` (and, optionally, only some of their lines)."""
    new_index = np.cumsum(keep_claims) - 1
    lines = keep_claims[batch.line_claim]
    if keep_lines is not None:
        lines &= keep_lines
    out = {}
    for f in fields(MedicalBatch):
        value = getattr(batch, f.name)
        out[f.name] = value[keep_claims] if f.name in _HEADER else value[lines]
    out["line_claim"] = new_index[out["line_claim"]]
    return MedicalBatch(**out)


@dataclass
class PharmacyBatch:
    person: np.ndarray
    date: np.ndarray
    ndc: np.ndarray
    days_supply: np.ndarray
    quantity: np.ndarray
    paid: np.ndarray

    @property
    def n(self) -> int:
        return len(self.person)


def concat_pharmacy(batches: list[PharmacyBatch]) -> PharmacyBatch:
    return PharmacyBatch(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(PharmacyBatch)})


def subset_pharmacy(batch: PharmacyBatch, keep: np.ndarray) -> PharmacyBatch:
    return PharmacyBatch(**{f.name: getattr(batch, f.name)[keep] for f in fields(PharmacyBatch)})


class ClaimSink:
    """Collects claims one at a time for the small cancer cohort (plain Python lists)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self._h: dict[str, list] = {k: [] for k in _HEADER}
        self._l: dict[str, list] = {k: [] for k in ("line_claim", "line_number", "line_start", "line_end", "pos", "hcpcs", "revenue", "units", "paid")}
        self._rx: dict[str, list] = {k: [] for k in ("person", "date", "ndc", "days_supply", "quantity", "paid")}

    def _header(self, person: int, claim_type: int, start: int, end: int, dx: list[str], *, admitted=False, bill_type=None, drg=None, pcs=None) -> int:
        v = self.vocab
        codes = [v.id(c) for c in dx[:DX_SLOTS]] + [-1] * (DX_SLOTS - min(len(dx), DX_SLOTS))
        h = self._h
        h["person"].append(person)
        h["claim_type"].append(claim_type)
        h["start"].append(start)
        h["end"].append(end)
        h["admitted"].append(admitted)
        h["bill_type"].append(v.id(bill_type))
        h["drg"].append(v.id(drg))
        h["dx"].append(codes)
        h["pcs"].append(v.id(pcs))
        return len(h["person"]) - 1

    def _line(self, claim: int, number: int, start: int, end: int, pos, hcpcs, revenue, units: float, paid: float) -> None:
        v, l = self.vocab, self._l
        l["line_claim"].append(claim)
        l["line_number"].append(number)
        l["line_start"].append(start)
        l["line_end"].append(end)
        l["pos"].append(v.id(pos))
        l["hcpcs"].append(v.id(hcpcs))
        l["revenue"].append(v.id(revenue))
        l["units"].append(units)
        l["paid"].append(paid)

    def professional(self, person: int, day: int, dx: list[str], lines: list[tuple[str, float, float]], pos: str = "11") -> None:
        """A professional claim on one day: lines are (hcpcs, units, paid)."""
        claim = self._header(person, PROFESSIONAL, day, day, dx)
        for i, (code, units, paid) in enumerate(lines, start=1):
            self._line(claim, i, day, day, pos, code, None, units, paid)

    def outpatient_facility(self, person: int, day: int, dx: list[str], lines: list[tuple[str, str | None, float, float]]) -> None:
        """An institutional outpatient claim (bill type 0131): lines are (revenue, hcpcs, units, paid)."""
        claim = self._header(person, INSTITUTIONAL, day, day, dx, bill_type="0131")
        for i, (rev, code, units, paid) in enumerate(lines, start=1):
            self._line(claim, i, day, day, None, code, rev, units, paid)

    def inpatient(self, person: int, admit: int, discharge: int, dx: list[str], drg: str, lines: list[tuple[str, str | None, float, float]], pcs: str | None = None) -> None:
        """An inpatient stay (bill type 0111) with MS-DRG and optional ICD-10-PCS procedure."""
        claim = self._header(person, INSTITUTIONAL, admit, discharge, dx, admitted=True, bill_type="0111", drg=drg, pcs=pcs)
        for i, (rev, code, units, paid) in enumerate(lines, start=1):
            self._line(claim, i, admit, discharge, None, code, rev, units, paid)

    def fill(self, person: int, day: int, ndc: str, days_supply: int, quantity: int, paid: float) -> None:
        rx = self._rx
        rx["person"].append(person)
        rx["date"].append(day)
        rx["ndc"].append(self.vocab.id(ndc))
        rx["days_supply"].append(days_supply)
        rx["quantity"].append(quantity)
        rx["paid"].append(paid)

    def medical(self) -> MedicalBatch:
        h, l = self._h, self._l
        i32 = lambda x: np.asarray(x, dtype=np.int32)  # noqa: E731
        return MedicalBatch(
            person=i32(h["person"]), claim_type=np.asarray(h["claim_type"], dtype=np.int8), start=i32(h["start"]), end=i32(h["end"]),
            admitted=np.asarray(h["admitted"], dtype=bool), bill_type=i32(h["bill_type"]), drg=i32(h["drg"]),
            dx=np.asarray(h["dx"], dtype=np.int32).reshape(-1, DX_SLOTS), pcs=i32(h["pcs"]),
            line_claim=i32(l["line_claim"]), line_number=i32(l["line_number"]), line_start=i32(l["line_start"]), line_end=i32(l["line_end"]),
            pos=i32(l["pos"]), hcpcs=i32(l["hcpcs"]), revenue=i32(l["revenue"]),
            units=np.asarray(l["units"], dtype=np.float64), paid=np.asarray(l["paid"], dtype=np.float64),
        )

    def pharmacy(self) -> PharmacyBatch:
        rx = self._rx
        return PharmacyBatch(
            person=np.asarray(rx["person"], dtype=np.int32), date=np.asarray(rx["date"], dtype=np.int32),
            ndc=np.asarray(rx["ndc"], dtype=np.int32), days_supply=np.asarray(rx["days_supply"], dtype=np.int32),
            quantity=np.asarray(rx["quantity"], dtype=np.int32), paid=np.asarray(rx["paid"], dtype=np.float64),
        )
