"""Disease-only cohorts for calibrating and testing the natural-history and CAR T access models.

``simulate_cohort`` runs the same ``CourseSimulator`` the population generator uses, on patients
drawn like the generator draws them (age from the incidence-weighted age mix of an insured
population, frailty, risk, distance and payer), without the background population, so that
calibration figures can be measured on thousands of patients in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthetic import car_t_access as cart
from synthetic.claims import ClaimSink
from synthetic.coding import Vocabulary, load_codebook
from synthetic.courses import CourseSimulator, Patient
from synthetic.geography import draw_zip_indices, miles_to_nearest_centre
from synthetic.incidence import DISEASES, incidence_per_100k

EARLIEST_DX = "2020-01-01"


def draw_patient_factors(disease: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Age at diagnosis (incidence-weighted), sex, frailty and risk for ``n`` patients."""
    ages = np.arange(0, 100) + 0.5
    female = rng.random(n) < 0.5
    weights = incidence_per_100k(ages, np.zeros(100, bool), np.zeros(100, bool))[:, DISEASES.index(disease)] * np.exp(-np.maximum(ages - 70, 0) / 12)
    age = rng.choice(ages, size=n, p=weights / weights.sum()) + rng.uniform(-0.5, 0.5, n)
    frailty = rng.normal(0.025 * (age - 50), 1.0)
    return {"age": age, "female": female, "frailty": frailty, "risk": rng.normal(0, 1, n)}


def disease_subtype(disease: str, rng: np.random.Generator) -> tuple[int, str]:
    """(nodal site digit 1-8, subtype) used to code the diagnosis."""
    site = int(rng.integers(1, 9))
    if disease == "FL":
        return site, str(rng.choice(["0", "1", "9"]))
    if disease == "MZL":
        return site, "malt" if rng.random() < 0.5 else "nodal"
    return site, ""


def simulate_cohort(disease: str, n: int, seed: int, first_dx: str = EARLIEST_DX, last_dx: str = "2023-12-31", end: str = "2025-12-31") -> pd.DataFrame:
    """One row per simulated patient with the truth fields calibration needs."""
    rng = np.random.default_rng(seed)
    codebook = load_codebook()
    sink = ClaimSink(Vocabulary())
    sim = CourseSimulator(codebook, sink, rng)
    f = draw_patient_factors(disease, n, rng)
    miles = miles_to_nearest_centre(draw_zip_indices(n, rng))
    lo, hi, end_day = cart.day_of(first_dx), cart.day_of(last_dx), cart.day_of(end)
    rows = []
    for i in range(n):
        dx_day = int(rng.integers(lo, hi + 1))
        age = f["age"][i]
        payer = 1 if age >= 65 else int(rng.choice([0, 2], p=[0.75, 0.25]))
        site, subtype = disease_subtype(disease, rng)
        p = Patient(i, f"S{i}", disease, dx_day, int(dx_day - age * 365.25), float(f["frailty"][i]), float(f["risk"][i]), payer, float(miles[i]), end_day, site, subtype)
        t = sim.simulate(p)
        first_elig = min((d for _, d in t.eligibility.values()), default=None)
        rows.append({
            "dx_day": dx_day, "age": age, "lines": len(t.lines), "primary_refractory": t.primary_refractory,
            "relapsed_or_refractory": len(t.progressions) > 0 and (t.lines[0][0] == 1), "first_progression": t.progressions[0] if t.progressions else None,
            "end_1l": t.lines[0][2] if t.lines else None, "early_failure": t.early_failure, "first_eligible": first_elig,
            "referral": t.referral, "car_t": t.car_t, "lost": t.lost_to_progression, "death": t.death, "end_day": end_day,
        })
    return pd.DataFrame(rows)


def lbcl_calibration(frame: pd.DataFrame) -> dict[str, float]:
    """The LBCL figures docs/synthetic.md reports, from a ``simulate_cohort`` frame."""
    settled = frame[frame["first_eligible"].notna() & (frame["end_day"] - frame["first_eligible"] >= 365)]
    referred = frame[frame["referral"].notna() & (frame["end_day"] - frame["referral"] >= 365)]
    infused = frame[frame["car_t"].notna() & frame["referral"].notna()]
    progressed_1y = frame[(frame["end_day"] - frame["dx_day"] >= 3 * 365)]
    return {
        "rr_after_1l_share": float(progressed_1y["first_progression"].notna().mean()),
        "primary_refractory_share": float(progressed_1y["primary_refractory"].mean()),
        "treated_among_eligible": float(settled["car_t"].notna().mean()),
        "lost_before_infusion": float(referred["lost"].mean()),
        "referral_to_infusion_median_days": float((infused["car_t"] - infused["referral"]).median()),
        "eligible_n": float(len(settled)),
    }
