"""Small builders of member histories in the API's JSON shape."""

from __future__ import annotations

from datetime import date, timedelta

R_CHOP = ("J9312", "J9070", "J9000", "J9370")  # rituximab, cyclophosphamide, doxorubicin, vincristine
R_ICE = ("J9312", "J9208", "J9045", "J9181")  # rituximab, ifosfamide, carboplatin, etoposide
DLBCL = "C83.38"


def make_claim(claim_id: str, day: date, hcpcs: str | None = None, diagnoses: tuple[str, ...] = (DLBCL,), **extra) -> dict:
    line = {
        "claim_id": claim_id,
        "claim_line_number": 1,
        "claim_type": "professional",
        "claim_start_date": day.isoformat(),
        "claim_end_date": day.isoformat(),
        "place_of_service_code": "11",
        "diagnosis_codes": list(diagnoses),
    }
    if hcpcs:
        line["hcpcs_code"] = hcpcs
    line.update(extra)
    return line


def make_line_of_therapy(prefix: str, start: date, drugs: tuple[str, ...], cycles: int = 6, every_days: int = 21) -> list[dict]:
    """One claim line per drug per cycle: a regimen given every ``every_days`` days."""
    claims = []
    for cycle in range(cycles):
        day = start + timedelta(days=cycle * every_days)
        for k, code in enumerate(drugs):
            claims.append(make_claim(f"{prefix}-{cycle}-{k}", day, code))
    return claims


def make_member(person_id: str = "member-1", *, lines: tuple[tuple[date, tuple[str, ...]], ...] = (), as_of: date | None = None, birth_date: str = "1962-04-17", diagnoses_on: tuple[date, ...] = (date(2023, 12, 1),), **extra) -> dict:
    """A commercially insured member with DLBCL diagnosis claims and the given lines of therapy."""
    claims = [make_claim(f"{person_id}-dx-{i}", day) for i, day in enumerate(diagnoses_on)]
    for n, (start, drugs) in enumerate(lines, start=1):
        claims += make_line_of_therapy(f"{person_id}-l{n}", start, drugs)
    member = {
        "person_id": person_id,
        "demographics": {"birth_date": birth_date, "gender": "female", "zip_code": "02139"},
        "enrollment": [{"enrollment_start_date": "2020-01-01", "enrollment_end_date": "2026-12-31", "payer_type": "commercial"}],
        "medical_claims": claims,
        "pharmacy_claims": [],
    }
    if as_of:
        member["as_of"] = as_of.isoformat()
    member.update(extra)
    return member


def relapsed_dlbcl_member(person_id: str = "member-1") -> dict:
    """R-CHOP from January 2024, relapse treated with R-ICE from September 2024 (early failure)."""
    return make_member(person_id, lines=((date(2024, 1, 10), R_CHOP), (date(2024, 9, 2), R_ICE)), as_of=date(2024, 11, 1))
