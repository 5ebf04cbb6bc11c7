"""A fictional member in the pyfunc's input shape, logged as the model's input example.

Never taken from training data (that could be a real member's history): a made-up person with
diffuse large B-cell lymphoma (ICD-10-CM C83.30, 'DLBCL, unspecified site', under the code list's
C83.3 prefix) treated with six 21-day cycles of R-CHOP, drug codes looked up from the project's
code lists, and one continuous enrollment span.
"""

from __future__ import annotations

import pandas as pd

from features.codelists import CodeLists

_R_CHOP = ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine")


def _hcpcs_for(codes: CodeLists, generic: str) -> str:
    rows = codes.drugs[(codes.drugs["generic"] == generic) & (codes.drugs["code_system"] == "hcpcs")]
    if rows.empty:
        raise LookupError(f"code lists have no HCPCS code for {generic}")
    return str(rows["code"].iloc[0])


def make_input_example(codes: CodeLists, as_of: str = "2025-06-30") -> pd.DataFrame:
    """Long input rows (events + person columns + as_of) for one fictional member."""
    person = {
        "person_id": "example-0001",
        "birth_date": pd.Timestamp("1961-04-12"),
        "sex": "female",
        "race": "unknown",
        "zip_code": "55901",
        "payer_type": "commercial",
        "death_date": pd.NaT,
        "as_of": pd.Timestamp(as_of),
    }
    rows = [
        {"kind": "enrollment", "date": "2022-01-01", "end_date": "2025-12-31", "code_system": "", "code": "", "setting": "unknown", "claim_id": "enr-1"},
        {"kind": "diagnosis", "date": "2024-01-08", "code_system": "icd10cm", "code": "C8330", "setting": "office", "claim_id": "c-1"},
        {"kind": "diagnosis", "date": "2024-02-12", "code_system": "icd10cm", "code": "C8330", "setting": "outpatient", "claim_id": "c-2"},
    ]
    for cycle in range(6):
        day = pd.Timestamp("2024-02-12") + pd.Timedelta(days=21 * cycle)
        for generic in _R_CHOP:
            rows.append(
                {"kind": "drug_admin", "date": day.date().isoformat(), "code_system": "hcpcs", "code": _hcpcs_for(codes, generic), "setting": "outpatient", "claim_id": f"c-rchop-{cycle}"}
            )
        rows.append({"kind": "diagnosis", "date": day.date().isoformat(), "code_system": "icd10cm", "code": "C8330", "setting": "outpatient", "claim_id": f"c-rchop-{cycle}"})
    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[s]")
    frame["end_date"] = pd.to_datetime(frame.get("end_date")).astype("datetime64[s]")
    # Float so that the logged signature marks it optional (an integer column cannot hold a
    # missing value); the event model casts it back to Int32.
    frame["days_supply"] = pd.Series(float("nan"), index=frame.index, dtype="float64")
    for key, value in person.items():
        frame[key] = value
    frame["birth_date"] = frame["birth_date"].astype("datetime64[s]")
    frame["death_date"] = frame["death_date"].astype("datetime64[s]")
    frame["as_of"] = frame["as_of"].astype("datetime64[s]")
    from models.candidate import INPUT_COLUMNS

    return frame[list(INPUT_COLUMNS)]
