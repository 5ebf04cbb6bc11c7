"""Charlson comorbidity index from ICD-10-CM diagnosis codes.

Comorbidity decides fitness for CAR T (organ function, infections) and competes with the cancer as a
cause of death, so the model needs a summary of it. The code list is
``features/codelists/charlson_icd10.csv``: the Quan et al. 2005 ICD-10 mapping (Med Care
43:1130-9) with the original Charlson 1987 weights, each row carrying its source. Loading the list
is the only I/O here; scoring is pure and works on array positions so that it costs the same per
member for one member or a million.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from features.codelists import CODELIST_DIR, normalise_code
from features.memo import bounded

CHARLSON_FILE = CODELIST_DIR / "charlson_icd10.csv"
# Within each pair only the more severe category scores (Charlson 1987): a member with metastatic
# disease gets 6 points, not 6 + 2 for "any malignancy".
_HIERARCHY = (
    ("mild_liver_disease", "moderate_severe_liver_disease"),
    ("diabetes_without_complication", "diabetes_with_complication"),
    ("malignancy", "metastatic_solid_tumour"),
)


@dataclass(frozen=True)
class CharlsonCodes:
    """Dotless ICD-10-CM prefix -> category index, plus per-category weights and the file digest."""

    digest: str
    categories: tuple[str, ...]
    weights: np.ndarray
    prefix_category: dict[str, int]
    # code -> category of every distinct code looked up so far: a request repeats the codes of the last one
    known: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def categorise(self, codes: np.ndarray) -> np.ndarray:
        """Category index for each normalised code (-1 when none); looks up each distinct code once."""
        inverse, unique = pd.factorize(codes)  # hashing, not sorting: cheaper for ten codes and for a million
        # the trailing -1 is where a missing code (inverse -1) lands
        found = np.array([self._lookup(str(c)) for c in unique] + [-1], dtype=np.int64)
        return found[inverse]

    def categorise_distinct(self, codes: list) -> np.ndarray:
        """Category index of each code of a list of distinct codes (None: -1). The risk step passes
        the codes of its distinct (system, code) pairs, a few dozen for one member, instead of every
        diagnosis row, so nothing is factorised per call."""
        known = bounded(self.known)
        found = []
        for code in codes:
            hit = known.get(code)
            if hit is None:
                hit = known[code] = -1 if code is None else self._lookup(code)
            found.append(hit)
        return np.array(found, dtype=np.int64)

    def _lookup(self, code: str) -> int:
        for length in range(min(len(code), 4), 2, -1):
            hit = self.prefix_category.get(code[:length])
            if hit is not None:
                return hit
        return -1


def load_charlson_codes(path: Path = CHARLSON_FILE) -> CharlsonCodes:
    """Read the Charlson code list (cached for the packaged file)."""
    return _load_packaged() if path == CHARLSON_FILE else _load(path)


@cache
def _load_packaged() -> CharlsonCodes:
    return _load(CHARLSON_FILE)


def _load(path: Path) -> CharlsonCodes:
    raw = path.read_bytes()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"code_prefix", "category", "weight"} - set(table.columns)
    if missing:
        raise ValueError(f"{path.name} lacks column(s): {', '.join(sorted(missing))}")
    categories = tuple(dict.fromkeys(table["category"]))
    weights = np.array([int(table.loc[table["category"] == c, "weight"].iloc[0]) for c in categories], dtype=np.float64)
    index = {c: i for i, c in enumerate(categories)}
    prefixes = {normalise_code(p): index[c] for p, c in zip(table["code_prefix"], table["category"])}
    return CharlsonCodes(hashlib.sha256(raw).hexdigest()[:16], categories, weights, prefixes)


def score_charlson(member: np.ndarray, codes: np.ndarray, n_members: int, charlson: CharlsonCodes) -> np.ndarray:
    """Charlson index per member position from (member position, diagnosis code) pairs.

    ``member`` holds each code's member position in ``range(n_members)``; the caller chooses the
    look-back window by choosing which diagnoses to pass. Members with no codes score 0.
    """
    return score_categories(member, charlson.categorise(codes), n_members, charlson)


def score_categories(member: np.ndarray, category: np.ndarray, n_members: int, charlson: CharlsonCodes) -> np.ndarray:
    """:func:`score_charlson` from each code's category index (-1: none), as ``CharlsonCodes`` gives them."""
    hit = category >= 0
    flags = np.zeros((n_members, len(charlson.categories)), dtype=bool)
    flags[member[hit], category[hit]] = True
    points = flags * charlson.weights
    position = {c: i for i, c in enumerate(charlson.categories)}
    for milder, severe in _HIERARCHY:
        points[flags[:, position[severe]], position[milder]] = 0.0
    return points.sum(axis=1)
