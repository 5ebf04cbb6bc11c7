"""Age- and sex-specific incidence of the target B-cell malignancies (per 100,000 person-years).

The shapes follow ``shared/domain/epidemiology.md`` §1: every disease rises steeply with age
(DLBCL from 0.3 at 35-39 to 26.6 at 80-84 in the ESMO data), childhood B-ALL peaks at ages 1-4
(75.2 per million) and myeloma is about twice as common in Black Americans. Band values were set so
that the crude rates on a US-like age mix land near the published crude figures (DLBCL 5.5-5.6,
FL 3.0-3.3, MCL 0.7-1.0, CLL 4.6, ALL 1.7-1.9 of which ~80 % B-lineage, myeloma 8.5 in adults).
MZL has no figure in epidemiology.md; its band values are domain knowledge (crude ~1.8) and are
flagged U in docs/synthetic.md.
"""

from __future__ import annotations

import numpy as np

DISEASES = ("LBCL", "FL", "MCL", "MZL", "CLL_SLL", "B_ALL", "MM")
AGE_BAND_EDGES = np.array([0, 15, 20, 30, 40, 50, 60, 70, 80, 200])
AGE_BAND_LABELS = ("0-14", "15-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+")
# Both-sex rates per 100,000 person-years by AGE_BAND_LABELS.
RATES_PER_100K = {
    "LBCL": (0.3, 0.6, 0.8, 1.2, 2.6, 6.0, 13.0, 22.0, 27.0),
    "FL": (0.0, 0.1, 0.4, 1.2, 3.0, 5.5, 8.0, 9.5, 8.0),
    "MCL": (0.0, 0.0, 0.02, 0.1, 0.4, 1.2, 2.6, 3.8, 3.5),
    "MZL": (0.0, 0.05, 0.2, 0.5, 1.2, 2.5, 4.5, 6.5, 7.0),
    "CLL_SLL": (0.0, 0.0, 0.05, 0.3, 1.5, 6.0, 14.0, 24.0, 28.0),
    "B_ALL": (2.0, 1.3, 0.5, 0.4, 0.5, 0.6, 0.8, 1.0, 1.0),
    "MM": (0.0, 0.0, 0.1, 0.7, 2.5, 8.0, 19.0, 30.0, 35.0),
}
B_ALL_AGE_1_4 = 6.4  # 75.2 per million for all ALL at ages 1-4 (Siegel 2017) x ~0.85 B-lineage
# Relative rate by sex (male, female); males carry more of every B-cell lymphoma but FL/MZL.
SEX_FACTOR = {
    "LBCL": (1.15, 0.87), "FL": (1.05, 0.95), "MCL": (1.5, 0.55), "MZL": (1.0, 1.0),
    "CLL_SLL": (1.3, 0.72), "B_ALL": (1.15, 0.87), "MM": (1.2, 0.83),
}
MM_BLACK_FACTOR = 2.0


def incidence_per_100k(age: np.ndarray, female: np.ndarray, black: np.ndarray) -> np.ndarray:
    """Rates per 100,000 person-years, shape (n, len(DISEASES)), for ages in years."""
    band = np.clip(np.searchsorted(AGE_BAND_EDGES, age, side="right") - 1, 0, len(AGE_BAND_LABELS) - 1)
    out = np.empty((len(age), len(DISEASES)))
    for j, disease in enumerate(DISEASES):
        male_f, female_f = SEX_FACTOR[disease]
        out[:, j] = np.asarray(RATES_PER_100K[disease])[band] * np.where(female, female_f, male_f)
    out[:, DISEASES.index("B_ALL")] = np.where((age >= 1) & (age < 5), B_ALL_AGE_1_4, out[:, DISEASES.index("B_ALL")])
    out[:, DISEASES.index("MM")] *= np.where(black, MM_BLACK_FACTOR, 1.0)
    return out


def draw_diagnoses(
    age: np.ndarray, female: np.ndarray, black: np.ndarray, years: np.ndarray, enrichment: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who is diagnosed during their enrolled years, with what, and their sampling weight.

    Returns (disease index or -1, fraction of the enrolled time at which the diagnosis falls,
    sampling weight). ``enrichment`` multiplies every hazard; the weight is the ratio of the
    inclusion probability at population rates to that under enrichment, so weighted counts estimate
    population rates again.
    """
    rates = incidence_per_100k(age, female, black) / 1e5
    total = rates.sum(axis=1) * years
    p_true = -np.expm1(-total)
    p_drawn = -np.expm1(-total * enrichment)
    case = rng.random(len(age)) < p_drawn
    cum = np.cumsum(rates, axis=1)
    pick = (rng.random(len(age)) * cum[:, -1])[:, None]
    disease = np.where(case, (pick > cum).sum(axis=1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(case, p_true / p_drawn, (1 - p_true) / (1 - p_drawn))
    weight = np.nan_to_num(weight, nan=1.0, posinf=1.0)
    return disease.astype(np.int8), rng.random(len(age)), weight
