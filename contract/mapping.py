"""Mapping validated Tuva claims tables to the internal event model (``features.events``).

Pure: frames in, frames out, no I/O and no clock. The frames are the valid rows that
``contract.validation`` returns (dates parsed, codes normalised); hand-built frames work too, as
codes are normalised again here (upper case, no dots or dashes) and dates parsed if they are text.

How a claim becomes events (``docs/event_model.md`` has the column-by-column table):

- Header fields repeat on every line of a claim, so diagnoses, ICD-10-PCS procedures, the MS-DRG
  and the inpatient stay are taken once per claim (``claim_id`` + ``data_source``).
- Line fields (``hcpcs_code``, ``revenue_center_code``) give one event per distinct code and day.
- Setting is decided per claim, most specific first: ``inpatient`` (bill type 11x/12x, an
  institutional claim with an admission date, or a line at place of service 21), ``ed`` (a line at
  place of service 23 or revenue centre 045x), ``office`` (place of service 11), ``outpatient``
  (any other institutional claim or place of service), else ``unknown``. Every event of the claim
  carries it, so the lab line of an ED visit counts as ED care.
- A pharmacy line is a ``drug_fill`` whether or not its NDC maps to a drug: an unmapped fill is
  still a fill (the loader counts them), never silently dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.codelists import CodeLists
from features.events import conform_events, conform_persons, empty_events

_WIDE = range(1, 26)
_INPATIENT_POS = ("21",)
_ED_POS = ("23",)
_OFFICE_POS = ("11",)


def claims_to_events(eligibility: pd.DataFrame, medical: pd.DataFrame, pharmacy: pd.DataFrame, codes: CodeLists) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(events, persons)`` conformed to the event model, events sorted by person and date."""
    persons = derive_persons(eligibility)
    parts = [
        _enrollment_events(eligibility),
        _death_events(persons),
        *_medical_events(medical, codes),
        _pharmacy_events(pharmacy),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_events(), persons
    events = conform_events(pd.concat(parts, ignore_index=True))
    order = ["person_id", "date", "kind", "code_system", "code", "claim_id", "end_date"]
    events = events.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
    return events, persons


def derive_persons(eligibility: pd.DataFrame) -> pd.DataFrame:
    """One row per person: demographics of the most recent span, the latest recorded death date."""
    if eligibility.empty:
        return conform_persons(pd.DataFrame({"person_id": pd.Series(dtype="string")}))
    elig = eligibility.assign(
        enrollment_start_date=_dates(eligibility, "enrollment_start_date"),
        enrollment_end_date=_dates(eligibility, "enrollment_end_date"),
        death_date=_dates(eligibility, "death_date"),
    )
    latest = elig.sort_values(["person_id", "enrollment_start_date", "enrollment_end_date"], kind="stable").drop_duplicates("person_id", keep="last")
    deaths = elig.groupby("person_id")["death_date"].max()
    persons = pd.DataFrame(
        {
            "person_id": latest["person_id"].to_numpy(),
            "birth_date": _dates(latest, "birth_date").to_numpy(),
            "sex": _text(latest, "gender").str.lower().fillna("unknown").to_numpy(),
            "race": _text(latest, "race").to_numpy(),
            "zip_code": _zip5(_text(latest, "zip_code")).to_numpy(),
            "payer_type": _text(latest, "payer_type").str.lower().to_numpy(),
        }
    )
    persons["death_date"] = persons["person_id"].map(deaths).astype("datetime64[s]")
    return conform_persons(persons)


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="str")
    values = frame[column].astype("str").str.strip()
    return values.where(values.ne(""))


def _dates(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s]")
    values = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(_text(frame, column), format="%Y-%m-%d", errors="coerce")
    return values.astype("datetime64[s]")


def _codes(frame: pd.DataFrame, column: str) -> pd.Series:
    """Upper case without dots, dashes or spaces (validated frames already are; hand-built may not be)."""
    text = _text(frame, column)
    if text.isna().all():
        return text
    array = pa.array(text)
    normal = pc.utf8_upper(pc.replace_substring_regex(array, pattern=r"[.\-\s]", replacement=""))
    return normal.to_pandas().astype("str").set_axis(frame.index)


def _bill_type(values: pd.Series) -> pd.Series:
    """Three-character bill type: the four-character form carries a leading zero."""
    return values.where(values.str.len() != 4, values.str[1:])


def _zip5(values: pd.Series) -> pd.Series:
    # extract, not split().str[0]: on an all-missing column split() yields floats and .str fails.
    return values.str.extract(r"^\s*(\d{3,5})\s*(?:-.*)?$", expand=False).str.zfill(5)


def _enrollment_events(elig: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": elig["person_id"].to_numpy(),
            "kind": "enrollment",
            "date": _dates(elig, "enrollment_start_date").to_numpy(),
            "end_date": _dates(elig, "enrollment_end_date").to_numpy(),
            "code_system": "",
            "code": "",
        }
    )


def _death_events(persons: pd.DataFrame) -> pd.DataFrame:
    dead = persons[persons["death_date"].notna()]
    return pd.DataFrame({"person_id": dead["person_id"].to_numpy(), "kind": "death", "date": dead["death_date"].to_numpy(), "code_system": "", "code": ""})


def _medical_events(medical: pd.DataFrame, codes: CodeLists) -> list[pd.DataFrame]:
    if medical.empty:
        return []
    med = pd.DataFrame(
        {
            "person_id": _text(medical, "person_id"),
            "claim_id": _text(medical, "claim_id"),
            "key": _text(medical, "claim_id") + "\x1f" + _text(medical, "data_source").fillna(""),
            "claim_type": _text(medical, "claim_type").str.lower(),
            "start": _dates(medical, "claim_start_date"),
            "end": _dates(medical, "claim_end_date"),
            "line_start": _dates(medical, "claim_line_start_date"),
            "admission": _dates(medical, "admission_date"),
            "discharge": _dates(medical, "discharge_date"),
            "bill_type": _bill_type(_codes(medical, "bill_type_code")),
            "pos": _codes(medical, "place_of_service_code").str.zfill(2),
            "revenue": _codes(medical, "revenue_center_code").str.zfill(4),
            "hcpcs": _codes(medical, "hcpcs_code"),
            "drg": _codes(medical, "drg_code").str.zfill(3),
            "drg_type": _text(medical, "drg_code_type").str.lower(),
            "dx_type": _text(medical, "diagnosis_code_type").str.lower(),
            "px_type": _text(medical, "procedure_code_type").str.lower(),
        }
    )
    med["setting"], med["inpatient_claim"] = _claim_settings(med)
    header_index = ~med.duplicated("key", keep="first").to_numpy()
    header = med[header_index]
    raw_header = medical[header_index]
    parts = [_diagnosis_events(header, raw_header), _icd_procedure_events(header, raw_header), _line_events(med, codes), _drg_events(header), _stay_events(header)]
    return [p for p in parts if len(p)]


def _claim_settings(med: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per claim, broadcast to its lines: setting, and whether it is an institutional inpatient stay."""
    institutional = med["claim_type"].eq("institutional").fillna(False) | med["bill_type"].notna()
    stay_line = med["bill_type"].str[:2].isin(("11", "12")).fillna(False) | (med["claim_type"].eq("institutional").fillna(False) & med["admission"].notna())
    by_claim = pd.DataFrame(
        {
            "key": med["key"],
            "stay": stay_line,
            "inpatient": stay_line | med["pos"].isin(_INPATIENT_POS),
            "ed": med["pos"].isin(_ED_POS) | med["revenue"].str.startswith("045").fillna(False),
            "office": med["pos"].isin(_OFFICE_POS),
            "outpatient": institutional | med["pos"].notna(),
        }
    ).groupby("key", sort=False).any()
    setting = np.select(
        [by_claim["inpatient"], by_claim["ed"], by_claim["office"], by_claim["outpatient"]],
        ["inpatient", "ed", "office", "outpatient"],
        default="unknown",
    )
    settings = pd.Series(setting, index=by_claim.index)
    return med["key"].map(settings).to_numpy(), med["key"].map(by_claim["stay"]).to_numpy(dtype=bool)


def _base(frame: pd.DataFrame, kind: str, code_system: str, code: pd.Series, date: pd.Series, end_date=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": frame["person_id"].to_numpy(),
            "kind": kind,
            "date": date.to_numpy(),
            "end_date": end_date.to_numpy() if end_date is not None else np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[s]"),
            "code_system": code_system,
            "code": code.to_numpy(),
            "setting": frame["setting"].to_numpy(),
            "claim_id": frame["claim_id"].to_numpy(),
        }
    )


def _diagnosis_events(header: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    usable = ~header["dx_type"].eq("icd-9-cm").fillna(False).to_numpy()
    parts = []
    for i in _WIDE:
        column = f"diagnosis_code_{i}"
        if column not in raw.columns:
            continue
        code = _codes(raw, column)
        keep = usable & code.notna().to_numpy()
        if keep.any():
            parts.append(_base(header[keep], "diagnosis", "icd10cm", code[keep], header["start"][keep]).assign(key=header["key"].to_numpy()[keep]))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).drop_duplicates(["key", "code"]).drop(columns="key")


def _icd_procedure_events(header: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    usable = ~header["px_type"].eq("icd-9-pcs").fillna(False).to_numpy()
    parts = []
    for i in _WIDE:
        column = f"procedure_code_{i}"
        if column not in raw.columns:
            continue
        code = _codes(raw, column)
        keep = usable & code.notna().to_numpy()
        if keep.any():
            date = _dates(raw, f"procedure_date_{i}").fillna(header["start"])
            parts.append(_base(header[keep], "procedure", "icd10pcs", code[keep], date[keep]).assign(key=header["key"].to_numpy()[keep]))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).drop_duplicates(["key", "code", "date"]).drop(columns="key")


def _line_events(med: pd.DataFrame, codes: CodeLists) -> pd.DataFrame:
    """HCPCS lines (drug administrations or procedures) and revenue-centre lines."""
    date = med["line_start"].fillna(med["start"])
    drug_codes = codes.drugs.loc[codes.drugs["code_system"] == "hcpcs", "code"]
    parts = []
    has_hcpcs = med["hcpcs"].notna().to_numpy()
    if has_hcpcs.any():
        lines = med[has_hcpcs]
        is_drug = lines["hcpcs"].isin(drug_codes).to_numpy()
        for kind, mask in (("drug_admin", is_drug), ("procedure", ~is_drug)):
            if mask.any():
                parts.append(_base(lines[mask], kind, "hcpcs", lines["hcpcs"][mask], date[has_hcpcs][mask]).assign(key=lines["key"].to_numpy()[mask]))
    has_revenue = med["revenue"].notna().to_numpy()
    if has_revenue.any():
        lines = med[has_revenue]
        parts.append(_base(lines, "procedure", "revenue", lines["revenue"], date[has_revenue]).assign(key=lines["key"].to_numpy()))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).drop_duplicates(["key", "code_system", "code", "date"]).drop(columns="key")


def _drg_events(header: pd.DataFrame) -> pd.DataFrame:
    ms = header["drg"].notna() & header["drg_type"].isin(("ms-drg",)).where(header["drg_type"].notna(), True)
    rows = header[ms.to_numpy(dtype=bool)]
    return _base(rows, "procedure", "ms_drg", rows["drg"], rows["admission"].fillna(rows["start"]))


def _stay_events(header: pd.DataFrame) -> pd.DataFrame:
    rows = header[header["inpatient_claim"].to_numpy(dtype=bool)]
    code = pd.Series("", index=rows.index)
    return _base(rows, "inpatient_stay", "", code, rows["admission"].fillna(rows["start"]), rows["discharge"].fillna(rows["end"]))


def _pharmacy_events(pharmacy: pd.DataFrame) -> pd.DataFrame:
    if pharmacy.empty:
        return pd.DataFrame()
    date = _dates(pharmacy, "dispensing_date")
    supply = pd.to_numeric(_text(pharmacy, "days_supply"), errors="coerce") if "days_supply" in pharmacy.columns else pd.Series(np.nan, index=pharmacy.index)
    supply = supply.where(supply >= 1)
    end = date + pd.to_timedelta(supply - 1, unit="D")
    return pd.DataFrame(
        {
            "person_id": _text(pharmacy, "person_id").to_numpy(),
            "kind": "drug_fill",
            "date": date.to_numpy(),
            "end_date": end.astype("datetime64[s]").to_numpy(),
            "code_system": "ndc",
            "code": _codes(pharmacy, "ndc_code").to_numpy(),
            "setting": "pharmacy",
            "claim_id": _text(pharmacy, "claim_id").to_numpy(),
            "days_supply": supply.astype("Int32").to_numpy(),
        }
    )
