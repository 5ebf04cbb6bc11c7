"""CAR T label eligibility (the label in force on the day), referral, and the treatment pathway.

Eligibility is decided from ``car_t_products.csv`` rows: approval date on or before the day,
superseded label versions only before the newer label of the same product and disease, age
limits, minimum prior systemic lines, and the label's extra conditions read from its text (early
failure of 1L for the 2L LBCL labels, transplant ineligibility for PILOT, prior BTKi / BCL-2i
exposure, triple-class exposure and lenalidomide-refractoriness in myeloma). Only what the label
states is required: Tecartus in MCL names no BTK inhibitor (ZUMA-2's expectation is not label
text), and Kymriah in B-ALL needs refractory disease (progression during line 1) or a second or
later relapse. Ages are completed years, as on a label ("up to 25 years" admits age 25).

Referral probability falls with distance to the nearest centre, age, frailty and Medicaid
coverage (Chung 2025: distance and comorbidity lower uptake). Its intercept is calibrated so that
about 2 in 10 eligible LBCL patients are infused (CAR T Vision 2025). Timeline: referral ->
consult (~11 d) -> apheresis -> infusion (~32 d after collection), median referral-to-infusion
~143 d, and about 1 in 8 referred patients lost to progression before infusion (Singh 2026).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np

from features.codelists import load_codelists

REFERRAL_INTERCEPT = -0.7
REFERRAL_DISTANCE_PER_100MI = -0.55
REFERRAL_AGE_PER_DECADE = -0.35
REFERRAL_FRAILTY = -0.45
REFERRAL_PAYER = (0.15, 0.0, -0.6)  # commercial, medicare, medicaid
LOST_TO_PROGRESSION = 1 / 8
CONSULT_MEDIAN_DAYS = 11
APHERESIS_MEDIAN_DAYS = 100
INFUSION_MEDIAN_DAYS = 32
CRS_SHARE = 0.55
ICANS_SHARE = 0.25
INPATIENT_SHARE = 0.8
# Product -> ICD-10-PCS infusion code from FY2022 (all present in procedure_codes.csv).
PCS_FY2022 = {
    "axicabtagene ciloleucel": "XW033H7", "tisagenlecleucel": "XW033J7", "brexucabtagene autoleucel": "XW033M7",
    "lisocabtagene maraleucel": "XW033N7", "idecabtagene vicleucel": "XW033K7", "ciltacabtagene autoleucel": "XW033A7",
}
PCS_BEFORE_FY2022 = "XW033C3"  # generic engineered autologous CAR T code, valid to 2021-09-30
PRODUCT_WEIGHT = {
    "axicabtagene ciloleucel": 0.5, "lisocabtagene maraleucel": 0.35, "tisagenlecleucel": 0.15,
    "brexucabtagene autoleucel": 0.6, "obecabtagene autoleucel": 0.4, "idecabtagene vicleucel": 0.4, "ciltacabtagene autoleucel": 0.6,
}


@dataclass(frozen=True)
class LabelRow:
    product: str
    disease: str
    hcpcs: str
    min_age: float
    max_age: float
    min_prior_lines: int
    text: str
    valid_from: int
    valid_to: int  # exclusive; large when current


@dataclass(frozen=True)
class History:
    """What a label asks about a patient at a progression."""

    disease: str
    age: float
    prior_lines: int
    early_failure: bool
    transplant_ineligible: bool
    classes: frozenset
    len_refractory: bool
    primary_refractory: bool = False


def day_of(iso: str) -> int:
    return (date.fromisoformat(iso) - date(1970, 1, 1)).days


@cache
def load_labels() -> tuple[LabelRow, ...]:
    products = load_codelists().products
    rows = []
    for r in products.itertuples(index=False):
        start = (r.approval_date.date() - date(1970, 1, 1)).days
        stop = 10**9
        if str(r.label_status).startswith("superseded"):
            newer = products[(products["product_generic"] == r.product_generic) & (products["disease"] == r.disease) & (products["approval_date"] > r.approval_date)]
            stop = (newer["approval_date"].min().date() - date(1970, 1, 1)).days
        rows.append(LabelRow(r.product_generic, r.disease, r.hcpcs_code, float(r.min_age or 0), float(r.max_age) if r.max_age else 200.0,
                             int(r.min_prior_lines), str(r.extra_conditions).lower(), start, stop))
    return tuple(rows)


def eligible_labels(history: History, day: int) -> list[LabelRow]:
    """Label rows the patient meets on ``day`` (empty list when none)."""
    out = []
    for row in load_labels():
        if row.disease != history.disease or not (row.valid_from <= day < row.valid_to):
            continue
        age = math.floor(history.age)
        if not (row.min_age <= age <= row.max_age) or history.prior_lines < row.min_prior_lines:
            continue
        if _meets_text(row, history):
            out.append(row)
    return out


def _meets_text(row: LabelRow, h: History) -> bool:
    text = row.text
    if "within 12 months" in text and not h.early_failure:
        return False
    if "not eligible for hsct" in text and not h.transplant_ineligible:
        return False
    if "incl. a btk" in text and "btk_inhibitor" not in h.classes:
        return False
    if "bcl-2" in text and "bcl2_inhibitor" not in h.classes:
        return False
    if row.disease == "MM":
        if not {"proteasome_inhibitor", "imid"} <= h.classes:
            return False
        if "anti-cd38" in text and "anti_cd38" not in h.classes:
            return False
        if "refractory to lenalidomide" in text and not h.len_refractory:
            return False
    if "second or later relapse" in text and not (h.primary_refractory or h.prior_lines >= 2):
        return False
    return True


def referral_probability(age: float, frailty: float, miles: float, payer: int) -> float:
    logit = (REFERRAL_INTERCEPT + REFERRAL_DISTANCE_PER_100MI * min(miles, 400) / 100 + REFERRAL_AGE_PER_DECADE * (age - 60) / 10
             + REFERRAL_FRAILTY * frailty + REFERRAL_PAYER[payer])
    return 0.0 if age >= 85 else float(1 / (1 + np.exp(-logit)))


def pathway_days(rng: np.random.Generator) -> tuple[int, int, int]:
    """Days from referral to consult, consult to apheresis, apheresis to infusion."""
    consult = max(2, int(rng.lognormal(np.log(CONSULT_MEDIAN_DAYS), 0.5)))
    apheresis = max(7, int(rng.lognormal(np.log(APHERESIS_MEDIAN_DAYS), 0.45)))
    infusion = max(18, int(rng.lognormal(np.log(INFUSION_MEDIAN_DAYS), 0.2)))
    return consult, apheresis, infusion


def choose_product(rows: list[LabelRow], rng: np.random.Generator) -> LabelRow:
    """One product among the eligible label rows, weighted by typical US use."""
    unique = {r.product: r for r in rows}
    names = list(unique)
    w = np.array([PRODUCT_WEIGHT.get(n, 0.3) for n in names])
    return unique[names[int(rng.choice(len(names), p=w / w.sum()))]]


def infusion_pcs(product: str, day: int) -> str | None:
    """The ICD-10-PCS code valid for the product on the infusion day (None: no code exists)."""
    if day < day_of("2021-10-01"):
        return PCS_BEFORE_FY2022
    return PCS_FY2022.get(product)


def car_t_procedure_codes(day: int) -> dict[str, str]:
    """Collection/preparation/infusion CPT codes valid on ``day`` (Category III until 2024-12-31)."""
    if day >= day_of("2025-01-01"):
        return {"collection": "38225", "prep_out": "38226", "prep_in": "38227", "infusion": "38228"}
    return {"collection": "0537T", "prep_out": "0538T", "prep_in": "0539T", "infusion": "0540T"}

