"""Small factories that build member histories as event and person frames.

A test reads like a clinical vignette::

    member = make_member("P1", events=[
        drug("2024-01-02", "rituximab"), drug("2024-01-02", "J9000"),
        fill("2024-03-01", "lenalidomide", days_supply=21),
        dx("2024-01-01", "C83.38"), proc("2024-06-01", "38241"), death("2025-01-01"),
    ])
    member.events  # conformed events frame (features.events.conform_events)
    member.persons  # one-row persons frame

``drug`` takes a generic name (its first HCPCS code in the code lists is used) or a HCPCS code.
``fill`` takes an NDC or a generic name; generic names use ``TEST_NDCS``, fictitious 11-digit
identifiers (labeler 99999) that exist only in ``ndc_crosswalk()``, never real products, so tests
exercise the operator crosswalk path without inventing real billing codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import count

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from features.codelists import CodeLists, load_codelists, normalise_code
from features.events import conform_events, conform_persons

_HCPCS = re.compile(r"^[A-V]\d{4}$|^\d{4}[A-Z]$|^\d{5}$")
_claims = count(1)

# Oral drugs (no HCPCS code) given fictitious NDCs for tests only.
TEST_NDCS = {
    generic: f"99999{i:04d}01"
    for i, generic in enumerate(
        [
            "lenalidomide", "pomalidomide", "thalidomide", "ibrutinib", "acalabrutinib", "zanubrutinib",
            "pirtobrutinib", "venetoclax", "idelalisib", "duvelisib", "mercaptopurine", "ixazomib",
            "selinexor", "chlorambucil", "imatinib", "dasatinib", "ponatinib", "prednisone",
            "dexamethasone", "methotrexate", "cyclophosphamide", "etoposide", "ondansetron",
        ],
        start=1,
    )
}  # fmt: skip


def ndc_crosswalk() -> pd.DataFrame:
    """The operator NDC crosswalk matching ``TEST_NDCS`` (ondansetron maps to no catalog drug)."""
    return pd.DataFrame({"ndc_code": list(TEST_NDCS.values()), "generic": list(TEST_NDCS)})


@cache
def codes_with_crosswalk() -> CodeLists:
    """The packaged code lists plus the test crosswalk."""
    return load_codelists().with_ndc_crosswalk(ndc_crosswalk())


@cache
def _hcpcs_for(generic: str) -> str:
    drugs = load_codelists().drugs
    rows = drugs[(drugs["code_system"] == "hcpcs") & (drugs["generic"].str.lower() == generic.lower())]
    if rows.empty:
        raise ValueError(f"no HCPCS code for {generic!r} in the code lists; use fill() for oral drugs")
    return str(rows["code"].iloc[0])


def _event(kind: str, date: str, code_system: str, code: str, **extra: object) -> dict:
    return {
        "kind": kind,
        "date": date,
        "code_system": code_system,
        "code": code,
        "setting": extra.pop("setting", "outpatient"),
        "claim_id": extra.pop("claim_id", f"C{next(_claims)}"),
        **extra,
    }


def drug(date: str, generic_or_hcpcs: str, *, setting: str = "outpatient", kind: str = "drug_admin") -> dict:
    """An administered drug on ``date`` (J/Q code, or a generic name's first HCPCS code)."""
    code = generic_or_hcpcs if _HCPCS.match(generic_or_hcpcs) else _hcpcs_for(generic_or_hcpcs)
    return _event(kind, date, "hcpcs", code, setting=setting)


def fill(date: str, ndc_or_generic: str, days_supply: int = 28) -> dict:
    """A pharmacy fill: an 11-digit NDC, or a generic name mapped through ``TEST_NDCS``."""
    ndc = ndc_or_generic if ndc_or_generic.replace("-", "").isdigit() else TEST_NDCS[ndc_or_generic]
    end = pd.Timestamp(date) + pd.Timedelta(days=days_supply - 1)
    return _event("drug_fill", date, "ndc", ndc.replace("-", ""), setting="pharmacy", days_supply=days_supply, end_date=end)


def dx(date: str, code: str, setting: str = "outpatient") -> dict:
    """An ICD-10-CM diagnosis (dotted or not)."""
    return _event("diagnosis", date, "icd10cm", normalise_code(code), setting=setting)


def proc(date: str, code: str, system: str = "hcpcs", setting: str = "outpatient") -> dict:
    """A procedure code: CPT/HCPCS by default, or icd10pcs, ms_drg, revenue."""
    return _event("procedure", date, system, normalise_code(code), setting=setting)


def radiation(date: str) -> dict:
    """One radiation treatment-delivery CPT code from the code lists."""
    return proc(date, "77412")


def stay(admit: str, discharge: str, drg: str | None = None) -> list[dict]:
    """An inpatient stay, optionally with its MS-DRG as a procedure-coded event on admission."""
    claim = f"C{next(_claims)}"
    out = [_event("inpatient_stay", admit, "", "", end_date=discharge, setting="inpatient", claim_id=claim)]
    if drg is not None:
        out.append(_event("procedure", admit, "ms_drg", drg, setting="inpatient", claim_id=claim))
    return out


def enrollment(start: str, end: str) -> dict:
    """An enrollment span."""
    return _event("enrollment", start, "", "", end_date=end, setting="unknown")


def death(date: str) -> dict:
    """A death record."""
    return _event("death", date, "", "", setting="unknown")


def every(start: str, times: int, days: int) -> list[str]:
    """``times`` dates from ``start`` every ``days`` days (cycle day 1 of a regimen)."""
    first = pd.Timestamp(start)
    return [(first + pd.Timedelta(days=days * i)).strftime("%Y-%m-%d") for i in range(times)]


def regimen(start: str, drugs: list[str], cycles: int, cycle_days: int) -> list[dict]:
    """``cycles`` cycles of the given drugs (generic names or HCPCS) each on cycle day 1."""
    return [drug(d, g) for d in every(start, cycles, cycle_days) for g in drugs]


@dataclass(frozen=True)
class Member:
    """One member's persons row and events, both conformed to the event model."""

    person_id: str
    persons: pd.DataFrame
    events: pd.DataFrame


def _flatten(items) -> list[dict]:
    out: list[dict] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def make_member(
    person_id: str = "P1",
    birth_date: str = "1960-01-01",
    sex: str = "female",
    events=(),
    *,
    race: str = "unknown",
    zip_code: str = "10001",
    payer_type: str = "commercial",
    death_date: str | None = None,
) -> Member:
    """A member with demographics and a (possibly nested) list of event dicts."""
    rows = [{**e, "person_id": person_id} for e in _flatten(events)]
    frame = pd.DataFrame(rows) if rows else pd.DataFrame({"person_id": [], "kind": [], "date": [], "code_system": [], "code": []})
    persons = pd.DataFrame(
        {
            "person_id": [person_id],
            "birth_date": [birth_date],
            "sex": [sex],
            "race": [race],
            "zip_code": [zip_code],
            "payer_type": [payer_type],
            "death_date": [death_date],
        }
    )
    return Member(person_id, conform_persons(persons), conform_events(frame))


def make_population(members: list[Member]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenated (persons, events) of several members."""
    persons = pd.concat([m.persons for m in members], ignore_index=True)
    events = pd.concat([m.events for m in members], ignore_index=True)
    return conform_persons(persons), conform_events(events)


def as_of_series(members: list[Member] | Member, date: str) -> pd.Series:
    """The same as_of date for every member, indexed by person_id."""
    members = [members] if isinstance(members, Member) else members
    return pd.Series(pd.Timestamp(date), index=pd.Index([m.person_id for m in members], name="person_id")).astype("datetime64[s]")


# Codes drawn by the property tests: drugs (incl. a biosimilar, NOC, conditioning, CAR T), procedures
# (apheresis, ASCT by CPT and DRG, CAR T by PCS, radiation), a diagnosis and fictitious NDCs.
POOL = [
    ("hcpcs", "J9312"), ("hcpcs", "Q5115"), ("hcpcs", "J9070"), ("hcpcs", "J9000"), ("hcpcs", "J9370"), ("hcpcs", "J9045"),
    ("hcpcs", "J9060"), ("hcpcs", "J9185"), ("hcpcs", "J9245"), ("hcpcs", "J1100"), ("hcpcs", "J2505"), ("hcpcs", "J9999"),
    ("hcpcs", "Q2041"), ("hcpcs", "38225"), ("hcpcs", "38241"), ("ms_drg", "016"), ("icd10pcs", "XW033C3"), ("hcpcs", "77412"),
    ("icd10cm", "C8338"), ("ndc", "99999000101"), ("ndc", "99999000401"), ("ndc", "99999000701"), ("hcpcs", "J9039"),
]  # fmt: skip


@st.composite
def histories(draw, person_id: str):
    """A random history of up to 30 events from ``POOL`` over 900 days, sometimes with a death."""
    n = draw(st.integers(0, 30))
    rows = []
    for _ in range(n):
        system, code = draw(st.sampled_from(POOL))
        day = draw(st.integers(0, 900))
        kind = {"icd10cm": "diagnosis", "ndc": "drug_fill"}.get(system, "procedure" if code[0].isdigit() or system != "hcpcs" else "drug_admin")
        supply = draw(st.sampled_from([None, 7, 28, 90])) if system == "ndc" else None
        rows.append({"person_id": person_id, "kind": kind, "date": np.datetime64("2023-01-01") + np.timedelta64(day, "D"), "code_system": system, "code": code, "days_supply": supply})
    if draw(st.booleans()):
        rows.append({"person_id": person_id, "kind": "death", "date": np.datetime64("2023-01-01") + np.timedelta64(draw(st.integers(0, 900)), "D"), "code_system": "", "code": ""})
    return rows


def events_frame(rows: list[dict]) -> pd.DataFrame:
    """Conformed events from row dicts (an empty list gives an empty frame)."""
    if not rows:
        return conform_events(pd.DataFrame({"person_id": [], "kind": [], "date": [], "code_system": [], "code": []}))
    return conform_events(pd.DataFrame(rows))
