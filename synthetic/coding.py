"""Where the generator gets its codes: the project's code lists, its own background-code file, and
a synthetic NDC crosswalk.

Cancer-care codes (diagnoses, drugs, CAR T steps) come only from ``features/codelists`` so that
the generator and the feature code agree by construction. Codes the code lists do not hold (common
chronic diagnoses, ED visits, background DRGs, place of service, bill types, revenue codes) live in
``synthetic/background_codes.csv`` with a source and a ``verified`` flag. NDCs cannot be shipped, so
oral drugs get NDC-shaped codes under a labeler prefix reserved for this generator (see
``SYNTHETIC_NDC_LABELER``); the generator writes the matching ``ndc_crosswalk.csv`` next to the
tables, exactly as an operator would supply a real one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from features.codelists import CodeLists, load_codelists, normalise_code

BACKGROUND_CODES_FILE = Path(__file__).parent / "background_codes.csv"
# "99999" is not a labeler code the generator expects any real product to use; every code under it
# is SYNTHETIC and means nothing outside a cartscout synthetic population.
SYNTHETIC_NDC_LABELER = "99999"

# Oral anticancer drugs named in the code lists, plus oral supportive/background drugs.
ORAL_ANTICANCER = (
    "lenalidomide", "pomalidomide", "thalidomide", "ibrutinib", "acalabrutinib", "zanubrutinib",
    "pirtobrutinib", "venetoclax", "idelalisib", "duvelisib", "ixazomib", "selinexor", "chlorambucil",
    "mercaptopurine", "methotrexate", "cyclophosphamide", "etoposide", "prednisone", "dexamethasone",
    "dasatinib", "imatinib", "ponatinib",
)
BACKGROUND_DRUGS = (
    "lisinopril", "amlodipine", "metformin", "atorvastatin", "levothyroxine", "furosemide", "apixaban",
    "sertraline", "tiotropium", "omeprazole", "amoxicillin", "acyclovir", "allopurinol",
)
# Which chronic condition each background drug treats (the fill stream follows the diagnosis).
CONDITION_DRUGS = {
    "hypertension": ("lisinopril", "amlodipine"),
    "diabetes": ("metformin",),
    "hyperlipidaemia": ("atorvastatin",),
    "hypothyroidism": ("levothyroxine",),
    "chf": ("furosemide",),
    "afib": ("apixaban",),
    "depression": ("sertraline",),
    "anxiety": ("sertraline",),
    "copd": ("tiotropium",),
    "gerd": ("omeprazole",),
}


class Vocabulary:
    """Interns code strings to small integers so claim columns stay numpy arrays until writing.

    Id ``-1`` means "no value". Ids are assigned in first-seen order, which is deterministic
    because the generator visits members in a fixed order.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self.values: list[str] = []

    def id(self, value: str | None) -> int:
        if value is None:
            return -1
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.values)
            self.values.append(value)
        return found

    def ids(self, values) -> np.ndarray:
        return np.array([self.id(v) for v in values], dtype=np.int32)


@dataclass(frozen=True)
class CodeBook:
    """Everything the generator codes with, resolved once per run."""

    codelists: CodeLists
    background: pd.DataFrame
    hcpcs_by_generic: dict[str, str]
    biosimilar_rituximab: tuple[str, ...]
    ndc_by_generic: dict[str, tuple[str, ...]]

    def background_codes(self, category: str) -> list[str]:
        """Codes of one background category, in file order (dots removed for ICD-10-CM)."""
        rows = self.background[self.background["category"] == category]
        return [normalise_code(c) if s == "icd10cm" else c for c, s in zip(rows["code"], rows["code_system"])]

    def chronic_conditions(self) -> list[tuple[str, str]]:
        """(condition, dotless ICD-10-CM code) for every chronic background condition."""
        rows = self.background[self.background["category"].str.startswith("chronic:")]
        return [(cat.split(":", 1)[1], normalise_code(code)) for cat, code in zip(rows["category"], rows["code"])]

    def drg(self, category: str) -> list[str]:
        return self.background_codes(f"drg:{category}")

    def ndc(self, generic: str, variant: int = 0) -> str:
        codes = self.ndc_by_generic[generic]
        return codes[variant % len(codes)]

    def crosswalk(self) -> pd.DataFrame:
        """The ``ndc_code,generic`` file the generator writes next to the tables."""
        rows = [(code, generic) for generic, codes in self.ndc_by_generic.items() for code in codes]
        return pd.DataFrame(rows, columns=["ndc_code", "generic"])


@cache
def load_codebook() -> CodeBook:
    """Resolve drug HCPCS codes and synthetic NDCs from the packaged code lists (cached per process)."""
    codelists = load_codelists()
    background = pd.read_csv(BACKGROUND_CODES_FILE, dtype=str, keep_default_na=False)
    drugs = codelists.drugs[codelists.drugs["code_system"] == "hcpcs"]
    hcpcs: dict[str, str] = {}
    biosimilars: list[str] = []
    for row in drugs.itertuples(index=False):
        product = str(row.product)
        if "biosimilar" in product:
            biosimilars.append(str(row.code))
            continue
        if "hyaluronidase" in product or re.match(r"J8\d{3}$", str(row.code)) or str(row.code).startswith("C9"):
            continue  # SC co-formulations, oral J8 codes and temporary C-codes are not the default route
        hcpcs.setdefault(str(row.generic), str(row.code))
    generics = list(ORAL_ANTICANCER) + list(BACKGROUND_DRUGS)
    ndc = {g: _synthetic_ndcs(i) for i, g in enumerate(generics)}
    return CodeBook(codelists, background, hcpcs, tuple(sorted(set(biosimilars))), ndc)


def _synthetic_ndcs(index: int) -> tuple[str, ...]:
    """Two package codes per generic: labeler 99999, product code from the generic's position."""
    product = f"{index + 1:04d}"
    return (f"{SYNTHETIC_NDC_LABELER}{product}01", f"{SYNTHETIC_NDC_LABELER}{product}02")
