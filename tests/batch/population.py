"""A small seeded contract population for batch tests (the real generator is bench material).

Members are background (office visits, hypertension), one-claim lymphoma rule-outs, and large
B-cell lymphoma or myeloma patients with one to three lines of therapy billed as HCPCS drug
administrations on cycle dates. Ids are zero-padded so their order is predictable.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np

from tests.contract.factories import fill, medical_line, span, write_contract

LBCL_LINES = (("J9312", "J9070", "J9000", "J9370"), ("J9312", "J9208", "J9045", "J9181"), ("J9309", "J9033", "J9312"))
MM_LINES = (("J9041", "J9145"), ("J9047", "J9145"), ("J9041",))
ZIPS = ("02139", "10001", "60601", "73301", "94103", "59801", "83702")


def write_population(directory: Path, *, members: int, seed: int, fmt: str = "parquet") -> Path:
    """Write eligibility, medical and pharmacy tables for ``members`` persons; returns ``directory``."""
    rng = np.random.default_rng(seed)
    tables = {"eligibility": [], "medical_claim": [], "pharmacy_claim": []}
    for i in range(members):
        pid = f"P{i:05d}"
        kind = rng.choice(["background", "rule_out", "lbcl", "mm"], p=[0.35, 0.1, 0.35, 0.2])
        birth = date(1940 + int(rng.integers(0, 50)), 1 + int(rng.integers(0, 12)), 1)
        tables["eligibility"].append(
            span(pid, gender=str(rng.choice(["female", "male"])), birth_date=birth.isoformat(), enrollment_start_date="2021-01-01",
                 enrollment_end_date="2025-12-31", payer_type=str(rng.choice(["commercial", "medicare", "medicaid"])),
                 zip_code=str(rng.choice(ZIPS)))
        )
        claims = tables["medical_claim"]
        claims.append(medical_line(f"{pid}-V0", 1, person_id=pid, diagnosis_code_1="I10", hcpcs_code="99213",
                                   **_dates(date(2022, 3, 1) + timedelta(days=int(rng.integers(0, 300))))))
        tables["pharmacy_claim"].append(fill(f"{pid}-R0", person_id=pid, ndc_code="00000000001", dispensing_date="2023-02-01"))
        if kind == "rule_out":
            claims.append(medical_line(f"{pid}-RO", 1, person_id=pid, diagnosis_code_1="C83.30", hcpcs_code="99214", **_dates(date(2023, 4, 2))))
        if kind in ("lbcl", "mm"):
            dx, lines = ("C83.38", LBCL_LINES) if kind == "lbcl" else ("C90.00", MM_LINES)
            start = date(2022, 1, 10) + timedelta(days=int(rng.integers(0, 400)))
            for number in range(int(rng.integers(1, 4))):
                for cycle in range(4):
                    day = start + timedelta(days=21 * cycle + int(rng.integers(0, 3)))
                    for k, code in enumerate(lines[number]):
                        claims.append(medical_line(f"{pid}-L{number}C{cycle}", k + 1, person_id=pid, diagnosis_code_1=dx, hcpcs_code=code,
                                                   place_of_service_code="22", **_dates(day)))
                start = start + timedelta(days=84 + 100 + int(rng.integers(0, 120)))
    return write_contract(Path(directory), tables, fmt=fmt)


def _dates(day: date) -> dict:
    text = day.isoformat()
    return {"claim_start_date": text, "claim_end_date": text, "claim_line_start_date": text, "claim_line_end_date": text}
