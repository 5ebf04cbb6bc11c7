"""The feature catalog: every risk feature's name, clinician-facing label, description and group.

Names follow ``<source>_<measure>_<window>`` in snake case with the unit in the name
(``ip_admits_180d``, ``lot_days_since_last_start``). The catalog is the single definition that the
pipeline, the model card, SHAP explanations and the service all read; a test fails if the
pipeline produces a column that is not here or the catalog lists one the pipeline does not make.

Encoding (what LightGBM receives): every feature column is ``float32``; missing (unknown) is NaN,
never a sentinel number. Flags are 0/1. A categorical feature holds the index of its value in the
entry's ``levels`` tuple (0, 1, 2, ...), so codes are fixed by the catalog, not learned from data,
and stay stable between training and serving; pass ``categorical_feature_names()`` to LightGBM.

``FEATURE_SET_VERSION`` hashes the names, definitions, levels and the Charlson code-list digest,
so any change to what a feature means changes the version that travels with models and outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

UTILISATION_WINDOWS_DAYS = (30, 90, 180, 365)
DISEASE_LEVELS = ("LBCL", "FL", "MCL", "MZL", "CLL_SLL", "B_ALL", "MM")
SEX_LEVELS = ("female", "male")
PAYER_LEVELS = ("commercial", "medicare", "medicaid", "self-insured", "other")
# SHA-256 (first 16 hex) of features/codelists/charlson_icd10.csv; a test keeps it in step with the file.
CHARLSON_CODELIST_DIGEST = "8db8b8dec98e2abd"


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: ``kind`` is numeric, count, flag or categorical; ``levels`` only for categoricals."""

    name: str
    label: str
    description: str
    group: str
    unit: str
    kind: str = "numeric"
    levels: tuple[str, ...] = ()


def _utilisation(prefix: str, what: str, label: str, unit: str, how: str) -> list[FeatureSpec]:
    return [
        FeatureSpec(
            f"{prefix}_{w}d",
            f"{label}, last {w} days",
            f"Number of {what} in the {w} days up to and including the evaluation date. {how}",
            "utilisation",
            unit,
            "count",
        )
        for w in UTILISATION_WINDOWS_DAYS
    ]


_SPECS: list[FeatureSpec] = [
    # demographics
    FeatureSpec("demo_age_years", "Age", "Age in years on the evaluation date, from the birth date on the enrollment record.", "demographics", "years"),
    FeatureSpec("demo_sex", "Sex", "Sex on the enrollment record; unknown is missing.", "demographics", "category", "categorical", SEX_LEVELS),
    FeatureSpec(
        "demo_payer_type",
        "Payer type",
        "Payer type of the enrollment span in force on the evaluation date, or the last one before it (commercial, Medicare, Medicaid, self-insured; anything else is 'other').",
        "demographics",
        "category",
        "categorical",
        PAYER_LEVELS,
    ),
    # disease
    FeatureSpec(
        "dx_disease",
        "Target disease",
        "Blood cancer assigned by the cohort algorithm (LBCL, FL, MCL, MZL, CLL/SLL, B-ALL, myeloma); missing when the member is not in the cohort.",
        "disease",
        "category",
        "categorical",
        DISEASE_LEVELS,
    ),
    FeatureSpec(
        "dx_subtype_known_flag",
        "Disease subtype coded",
        "1 when the cohort algorithm could name a subtype (for example primary mediastinal LBCL or transformed FL), else 0.",
        "disease",
        "flag",
        "flag",
    ),
    FeatureSpec("dx_days_since_first", "Days since diagnosis", "Days from the first qualifying diagnosis claim to the evaluation date.", "disease", "days"),
    FeatureSpec(
        "dx_relapse_codes_180d",
        "Relapse-coded claims, last 180 days",
        "Number of days in the last 180 with an 'in relapse' diagnosis code (for example C91.02, C90.02, C91.12).",
        "disease",
        "days",
        "count",
    ),
    FeatureSpec(
        "dx_remission_codes_180d",
        "Remission-coded claims, last 180 days",
        "Number of days in the last 180 with an 'in remission' diagnosis code (for example C83.3A, C90.01).",
        "disease",
        "days",
        "count",
    ),
    FeatureSpec(
        "dx_toxicity_codes_365d",
        "Treatment-toxicity claims, last 365 days",
        "Days in the last year with a treatment-toxicity diagnosis (cytokine release syndrome, ICANS, HLH, chemotherapy-induced pancytopenia); CRS and ICANS follow CAR T and bispecific antibodies.",
        "disease",
        "days",
        "count",
    ),
    FeatureSpec(
        "cci_score_365d",
        "Charlson comorbidity index",
        "Charlson comorbidity index (Charlson 1987 weights, Quan 2005 ICD-10 mapping) from diagnosis codes in the last 365 days; includes the blood cancer itself (2 points).",
        "comorbidity",
        "points",
    ),
    # lines of therapy and treatment history
    FeatureSpec("lot_count", "Lines of therapy", "Number of systemic lines of therapy started on or before the evaluation date (CAR T counts as a line).", "treatment", "lines", "count"),
    FeatureSpec("lot_days_since_last_start", "Days since current line started", "Days from the start of the most recent line of therapy to the evaluation date.", "treatment", "days"),
    FeatureSpec(
        "lot_days_since_last_treatment",
        "Days since last treatment",
        "Days from the most recent systemic anticancer administration or fill to the evaluation date.",
        "treatment",
        "days",
    ),
    FeatureSpec(
        "lot_days_line1_end_to_line2_start",
        "Days from end of line 1 to start of line 2",
        "Days between the last administration of the first line and the start of the second; short intervals mean early failure.",
        "treatment",
        "days",
    ),
    FeatureSpec(
        "lot_early_relapse_flag",
        "Early relapse",
        "1 when the second line started within 12 months of the last dose of first-line therapy, 0 when later; missing before a second line starts (claims cannot tell yet).",
        "treatment",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "lot_primary_refractory_flag",
        "Primary refractory (proxy)",
        "1 when the second line started within 90 days of the end of the first, or the first stopped before 4 cycles; missing before a second line starts.",
        "treatment",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "lot_progressed_after_last_flag",
        "Progression after the last line",
        "1 when claims show progression after the most recent line (relapse codes or CAR T work-up after it).",
        "treatment",
        "flag",
        "flag",
    ),
    FeatureSpec("lot_prior_asct_flag", "Prior autologous transplant", "1 when an autologous stem-cell transplant is on record.", "treatment", "flag", "flag"),
    FeatureSpec("lot_car_t_received_flag", "CAR T received", "1 when a CAR T infusion is on record.", "treatment", "flag", "flag"),
    FeatureSpec(
        "lot_triple_class_exposed_flag",
        "Triple-class exposed (myeloma)",
        "1 when a proteasome inhibitor, an immunomodulatory drug and an anti-CD38 antibody have all been given.",
        "treatment",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "lot_lenalidomide_refractory_flag",
        "Lenalidomide-refractory (proxy)",
        "1 when the next line, or the first sign of progression after the last line, came while lenalidomide was supplied or within 60 days of its last supply; 0 when lenalidomide was never given or no progression followed it; missing when progression first shows more than 60 days after the last supply (claims cannot tell when it began).",
        "treatment",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "lot_current_maintenance_flag",
        "On maintenance",
        "1 when the most recent line has entered a maintenance phase (for example rituximab or lenalidomide maintenance).",
        "treatment",
        "flag",
        "flag",
    ),
    *[
        FeatureSpec(f"rx_{cls}_exposed_flag", f"Prior {label}", f"1 when any {label} has been given on or before the evaluation date.", "treatment", "flag", "flag")
        for cls, label in (
            ("anti_cd20", "anti-CD20 antibody"),
            ("anthracycline", "anthracycline"),
            ("btki", "BTK inhibitor"),
            ("bcl2i", "BCL-2 inhibitor"),
            ("imid", "immunomodulatory drug (IMiD)"),
            ("pi", "proteasome inhibitor"),
            ("anti_cd38", "anti-CD38 antibody"),
            ("bispecific", "bispecific T-cell engager"),
            ("alkylator", "alkylating agent"),
        )
    ],
    # label eligibility
    FeatureSpec(
        "elig_products_count",
        "CAR T products label-eligible",
        "Number of CAR T products whose label the member meets on the evaluation date (criteria claims cannot see are not counted against).",
        "eligibility",
        "products",
        "count",
    ),
    # utilisation
    *_utilisation("ip_admits", "inpatient admissions starting", "Inpatient admissions", "admissions", "One per inpatient stay."),
    *_utilisation("ed_visits", "days with an emergency-department claim", "Emergency visits", "days", "Counted once per day."),
    *_utilisation("pet_ct_count", "days with a PET or PET-CT scan", "PET-CT scans", "scans", "Restaging scans often precede a change of therapy."),
    *_utilisation("marrow_biopsy_count", "days with a bone marrow aspiration or biopsy", "Marrow biopsies", "procedures", "Counted once per day."),
    *_utilisation("radiation_days", "days with radiation therapy planning or delivery", "Radiation therapy days", "days", "Radiation is not a systemic line but signals active disease."),
    *_utilisation("em_visits", "days with an office, outpatient or consult evaluation-and-management visit", "Office visits", "days", "Any E&M visit; specialty is not in the claims contract."),
    # referral and work-up proxies
    FeatureSpec(
        "ref_car_t_workup_flag",
        "CAR T work-up on record",
        "1 when T-cell collection, CAR T cell preparation or leukapheresis is on record: the member has already been referred or evaluated.",
        "referral",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "ref_days_since_car_t_workup",
        "Days since CAR T work-up",
        "Days since the most recent T-cell collection, CAR T preparation or leukapheresis; missing when none.",
        "referral",
        "days",
    ),
    FeatureSpec(
        "ref_new_patient_visits_90d",
        "New-patient visits, last 90 days",
        "Days in the last 90 with a new-patient or consultation E&M visit: a second opinion or referral to a transplant or cellular-therapy centre often shows up this way.",
        "referral",
        "days",
        "count",
    ),
    FeatureSpec(
        "ref_stem_cell_workup_flag",
        "Stem-cell collection or mobilisation on record",
        "1 when stem-cell mobilisation (plerixafor) or collection is on record: a transplant centre has evaluated the member.",
        "referral",
        "flag",
        "flag",
    ),
    FeatureSpec(
        "ref_cellular_therapy_history_flag",
        "History of cellular therapy coded",
        "1 when a 'personal history of CAR T or other cellular therapy' diagnosis code (Z92.85x) is on record.",
        "referral",
        "flag",
        "flag",
    ),
    # geography
    FeatureSpec(
        "geo_car_t_center_distance_miles",
        "Distance to nearest CAR T centre",
        "Great-circle distance in miles from the centroid of the member's ZIP code to the nearest CAR T centre; missing when the ZIP or the centre list is unknown.",
        "geography",
        "miles",
    ),
]

CATALOG: dict[str, FeatureSpec] = {spec.name: spec for spec in _SPECS}
FEATURE_NAMES: tuple[str, ...] = tuple(CATALOG)
FEATURE_SET_VERSION: str = hashlib.sha256(
    json.dumps({"features": [asdict(s) for s in _SPECS], "charlson": CHARLSON_CODELIST_DIGEST}, sort_keys=True).encode()
).hexdigest()[:16]


def categorical_feature_names() -> tuple[str, ...]:
    """The features LightGBM should treat as categorical (their values are level indices)."""
    return tuple(s.name for s in _SPECS if s.kind == "categorical")


def describe_features() -> list[dict]:
    """The catalog as plain records (for docs, model cards and the API's feature dictionary)."""
    return [asdict(s) for s in _SPECS]
