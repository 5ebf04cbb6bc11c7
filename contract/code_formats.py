"""Code formats of the claims contract: how each code system is written, and its normal form.

Every function takes a text column and returns ``(normalised, malformed)``: the column in the
form the event model uses, and a boolean mask of non-empty values that do not fit the format.
Patterns are evaluated on the distinct values only (claims repeat the same few thousand codes
millions of times), then mapped back, so checking a column costs little more than one hash lookup
per row.

Formats (what a code *looks like*; whether it exists is the code lists' business):

- ICD-10-CM: letter, digit, letter-or-digit, then up to four more letters/digits, optionally with
  a dot after the third character (``C83.38`` and ``C8338`` are the same code; stored dotless).
- HCPCS/CPT: Level II is a letter and four digits (``J9312``); CPT is five digits (``96413``) or
  four digits and a letter (Category II ``F``, Category III ``T``, PLA ``U``, e.g. ``0537T``).
- ICD-10-PCS: exactly seven characters from digits and letters other than ``I`` and ``O``.
- NDC: the 11-digit 5-4-2 form without dashes, leading zeros kept. A dashed 10-digit NDC
  (4-4-2, 5-3-2 or 5-4-1) is padded to 5-4-2 by the FDA's rule; an undashed 10-digit value is
  ambiguous (the padding position is unknown) and is malformed.
- Revenue centre: four digits; a three-digit value gets its leading zero back.
- Bill type: three characters after dropping the optional leading zero of the four-digit form.
- Place of service: two digits; one digit gets its leading zero back. MS-DRG: three digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from features.codelists import eleven_digit_ndc

_ICD10CM = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")
_HCPCS = re.compile(r"^(?:[A-Z][0-9]{4}|[0-9]{4}[0-9A-Z])$")
_ICD10PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
_STR = pd.StringDtype("pyarrow", na_value=np.nan)
# Distinct codes remembered per format: real traffic repeats a few thousand codes, so a request
# or a batch chunk pays the pattern once per code per process, not once per call. Bounded.
_CACHE = 1 << 16


def _by_unique(values: pd.Series, normalise: Callable[[str], str | None]) -> tuple[pd.Series, pd.Series]:
    """Apply ``normalise(str) -> str | None`` (None = malformed) to distinct values, map back.

    Blank (after trimming whitespace) counts as missing, not malformed. The Python function sees
    each distinct value once; mapping back is one integer ``take`` in Arrow, so the cost is a hash
    per row for a batch column and a few tens of microseconds for a one-member request.
    """
    index, distinct = pd.factorize(values.array)
    normal, malformed = [], []
    for value in np.asarray(distinct, dtype=object).tolist():
        text = str(value).strip()
        result = normalise(text) if text else None
        normal.append(result)
        malformed.append(bool(text) and result is None)
    result = pa.array(normal, pa.large_string()).take(pa.array(index, mask=index < 0))
    malformed.append(False)
    return (
        pd.Series(pd.arrays.ArrowStringArray(result, dtype=_STR), index=values.index, copy=False),
        pd.Series(np.array(malformed, dtype=bool)[index], index=values.index, copy=False),
    )


@lru_cache(maxsize=_CACHE)
def clean_icd10cm(code: str) -> str | None:
    """The dotless upper-case ICD-10-CM code, or None when the value does not have that shape."""
    code = code.upper()
    return code.replace(".", "") if _ICD10CM.match(code) else None


@lru_cache(maxsize=_CACHE)
def clean_hcpcs(code: str) -> str | None:
    """The upper-case HCPCS Level II / CPT code, or None when the value does not have that shape."""
    code = code.upper()
    return code if _HCPCS.match(code) else None


@lru_cache(maxsize=_CACHE)
def clean_icd10pcs(code: str) -> str | None:
    """The upper-case ICD-10-PCS code, or None when the value does not have that shape."""
    code = code.upper()
    return code if _ICD10PCS.match(code) else None


# The one NDC rule lives with the code lists (the operator's crosswalk uses it too).
clean_ndc = lru_cache(maxsize=_CACHE)(eleven_digit_ndc)


def _revenue(code: str) -> str | None:
    return code.zfill(4) if code.isdigit() and len(code) in (3, 4) else None


def _bill_type(code: str) -> str | None:
    code = code.upper()
    if len(code) == 4 and code.startswith("0"):
        code = code[1:]
    return code if len(code) == 3 and code[:2].isdigit() else None


def _place_of_service(code: str) -> str | None:
    return code.zfill(2) if code.isdigit() and len(code) <= 2 else None


def _drg(code: str) -> str | None:
    return code.zfill(3) if code.isdigit() and len(code) <= 3 else None


def normalise_icd10cm(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dotless upper-case ICD-10-CM; malformed where the shape is not ICD-10-CM."""
    return _by_unique(values, clean_icd10cm)


def normalise_hcpcs(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Upper-case HCPCS Level II or CPT code."""
    return _by_unique(values, clean_hcpcs)


def normalise_icd10pcs(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Upper-case seven-character ICD-10-PCS code."""
    return _by_unique(values, clean_icd10pcs)


def normalise_ndc(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """11-digit NDC (5-4-2 without dashes); dashed 10-digit forms padded, undashed ones rejected."""
    return _by_unique(values, clean_ndc)


def normalise_revenue(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Four-digit revenue centre code (``450`` -> ``0450``)."""
    return _by_unique(values, _revenue)


def normalise_bill_type(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Three-character bill type (``0111`` -> ``111``)."""
    return _by_unique(values, _bill_type)


def normalise_place_of_service(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Two-digit place of service (``1`` -> ``01``)."""
    return _by_unique(values, _place_of_service)


def normalise_drg(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Three-digit DRG (``18`` -> ``018``)."""
    return _by_unique(values, _drg)
