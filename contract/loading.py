"""Loading a contract directory into the event model: read, validate, map, attach operator data.

This is the one entry point the feature run, the trainer's data step and the batch scorer use.
Valid rows flow on; quarantined rows are reported (and written when ``quarantine_dir`` is given);
a fatal problem (missing table, unreadable file, missing required column) stops the load with a
:class:`~contract.reading.ContractInvalidError` carrying the report.

Operator files next to the tables: ``ndc_crosswalk.csv`` (``ndc_code,generic``) is applied to the
code lists automatically, an explicit ``ndc_crosswalk`` path overrides it; ``car_t_centers.csv``
(``name,zip,latitude,longitude``) likewise, and without one ``centers`` is ``None`` so distance
features become missing values rather than an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract import code_formats
from contract.mapping import claims_to_events
from contract.reading import ContractInvalidError, MissingColumnError, UnreadableFileError
from contract.schema import CENTER_COLUMNS, CENTERS_FILE, NDC_CROSSWALK_FILE
from contract.validation import ValidationReport, validate_tables, write_quarantine
from features.codelists import CodeLists, load_codelists


@dataclass
class ContractData:
    """Everything the feature code needs from one delivery."""

    events: pd.DataFrame
    persons: pd.DataFrame
    codes: CodeLists
    centers: pd.DataFrame | None
    report: ValidationReport
    unmapped_ndc: int


def load_directory(
    data_dir: Path,
    *,
    ndc_crosswalk: Path | None = None,
    centers: Path | None = None,
    quarantine_dir: Path | None = None,
    person_ids: Iterable[str] | None = None,
) -> ContractData:
    """Read, validate and map a contract directory; with ``person_ids`` only their claims are read.

    Eligibility is always read whole, so orphan and after-death checks see every person.
    """
    data_dir = Path(data_dir)
    validated = validate_tables(data_dir, person_ids=person_ids)
    report = validated.report
    if quarantine_dir is not None:
        report.quarantine_path = write_quarantine(report, Path(quarantine_dir))
    if report.fatal:
        raise ContractInvalidError(report)
    codes = load_codes(data_dir, ndc_crosswalk)
    events, persons = claims_to_events(validated.eligibility, validated.medical_claim, validated.pharmacy_claim, codes)
    ndc_known = codes.drugs.loc[codes.drugs["code_system"] == "ndc", "code"]
    fills = events["kind"] == "drug_fill"
    unmapped = int((fills & ~events["code"].isin(ndc_known)).sum())
    return ContractData(events, persons, codes, load_centers(data_dir, centers), report, unmapped)


def load_codes(data_dir: Path, ndc_crosswalk: Path | None = None) -> CodeLists:
    """The packaged code lists plus the operator's NDC crosswalk (explicit path, else DATA's file)."""
    codes = load_codelists()
    path = Path(ndc_crosswalk) if ndc_crosswalk else Path(data_dir) / NDC_CROSSWALK_FILE
    if not path.is_file():
        return codes
    return codes.with_ndc_crosswalk(read_ndc_crosswalk(path))


def read_ndc_crosswalk(path: Path) -> pd.DataFrame:
    """``ndc_code,generic`` with NDCs in the 11-digit form; malformed NDC rows are left out
    (``cartscout validate`` reports them)."""
    try:
        crosswalk = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=str.lower)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UnreadableFileError(path, str(exc).splitlines()[0]) from None
    missing = [c for c in ("ndc_code", "generic") if c not in crosswalk.columns]
    if missing:
        raise MissingColumnError("ndc_crosswalk", path, missing)
    ndc, malformed = code_formats.normalise_ndc(crosswalk["ndc_code"])
    keep = ~malformed.to_numpy() & ndc.notna().to_numpy()
    return pd.DataFrame({"ndc_code": ndc[keep].to_numpy(), "generic": crosswalk["generic"][keep].to_numpy()})


def load_centers(data_dir: Path, centers: Path | None = None) -> pd.DataFrame | None:
    """CAR T treatment centres (name, zip, latitude, longitude), or None when no file is given."""
    path = Path(centers) if centers else Path(data_dir) / CENTERS_FILE
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=str.lower)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UnreadableFileError(path, str(exc).splitlines()[0]) from None
    missing = [c for c in CENTER_COLUMNS if c not in frame.columns]
    if missing:
        raise MissingColumnError("car_t_centers", path, missing)
    out = pd.DataFrame(
        {
            "name": frame["name"].astype("string"),
            "zip": frame["zip"].str.strip().str.split("-").str[0].str.zfill(5).astype("string"),
            "latitude": pd.to_numeric(frame["latitude"], errors="coerce"),
            "longitude": pd.to_numeric(frame["longitude"], errors="coerce"),
        }
    )
    bad = ~(out["latitude"].between(-90, 90) & out["longitude"].between(-180, 180))
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 1
        raise UnreadableFileError(path, f"row {row}: latitude/longitude missing or out of range")
    return out
