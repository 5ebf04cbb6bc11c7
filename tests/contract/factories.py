"""Small factories for contract directories: rows as dicts of text, written as CSV, Parquet or parts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def span(person_id: str = "P1", **overrides) -> dict:
    row = {
        "person_id": person_id,
        "member_id": f"M{person_id}",
        "gender": "female",
        "race": "white",
        "birth_date": "1960-03-01",
        "death_date": "",
        "death_flag": "0",
        "enrollment_start_date": "2022-01-01",
        "enrollment_end_date": "2024-12-31",
        "payer": "acme",
        "payer_type": "commercial",
        "plan": "gold",
        "zip_code": "02139",
        "data_source": "test",
    }
    row.update(overrides)
    return row


def medical_line(claim_id: str = "C1", line: int = 1, person_id: str = "P1", **overrides) -> dict:
    row = {
        "claim_id": claim_id,
        "claim_line_number": str(line),
        "claim_type": "professional",
        "person_id": person_id,
        "member_id": f"M{person_id}",
        "claim_start_date": "2023-05-02",
        "claim_end_date": "2023-05-02",
        "claim_line_start_date": "2023-05-02",
        "claim_line_end_date": "2023-05-02",
        "place_of_service_code": "11",
        "hcpcs_code": "99213",
        "diagnosis_code_type": "icd-10-cm",
        "diagnosis_code_1": "C83.38",
        "data_source": "test",
    }
    row.update(overrides)
    return row


def fill(claim_id: str = "R1", person_id: str = "P1", **overrides) -> dict:
    row = {
        "claim_id": claim_id,
        "claim_line_number": "1",
        "person_id": person_id,
        "member_id": f"M{person_id}",
        "dispensing_date": "2023-06-01",
        "ndc_code": "00002321530",
        "days_supply": "30",
        "quantity": "60",
        "data_source": "test",
    }
    row.update(overrides)
    return row


def good_tables() -> dict[str, list[dict]]:
    """Two members: P1 with an LBCL work-up, rituximab, an inpatient stay, an ED visit and a fill."""
    return {
        "eligibility": [span("P1"), span("P1", enrollment_start_date="2025-01-01", enrollment_end_date="2025-06-30", payer_type="medicare"), span("P2", gender="male", birth_date="1950-07-15")],
        "medical_claim": [
            medical_line("C1", 1),
            medical_line("C1", 2, hcpcs_code="J9312", place_of_service_code="11"),
            medical_line(
                "C2", 1, claim_type="institutional", place_of_service_code="", bill_type_code="0111",
                claim_start_date="2023-07-01", claim_end_date="2023-07-05", claim_line_start_date="2023-07-01",
                claim_line_end_date="2023-07-05", admission_date="2023-07-01", discharge_date="2023-07-05",
                revenue_center_code="0120", hcpcs_code="", drg_code="18", drg_code_type="ms-drg",
                diagnosis_code_2="D70.1", procedure_code_type="icd-10-pcs", procedure_code_1="XW033H7", procedure_date_1="2023-07-02",
            ),
            medical_line(
                "C2", 2, claim_type="institutional", place_of_service_code="", bill_type_code="0111",
                claim_start_date="2023-07-01", claim_end_date="2023-07-05", claim_line_start_date="2023-07-02",
                claim_line_end_date="2023-07-02", admission_date="2023-07-01", discharge_date="2023-07-05",
                revenue_center_code="891", hcpcs_code="Q2041", drg_code="18", drg_code_type="ms-drg",
                diagnosis_code_2="D70.1", procedure_code_type="icd-10-pcs", procedure_code_1="XW033H7", procedure_date_1="2023-07-02",
            ),
            medical_line("C3", 1, claim_start_date="2023-08-10", claim_end_date="2023-08-10", claim_line_start_date="2023-08-10", claim_line_end_date="2023-08-10", place_of_service_code="23", hcpcs_code="99284", diagnosis_code_1="R50.9"),
            medical_line("C4", 1, person_id="P2", diagnosis_code_1="I10", hcpcs_code="99214"),
        ],
        "pharmacy_claim": [fill("R1"), fill("R2", person_id="P2", ndc_code="12345-678-90", days_supply="90")],
    }


def write_table(directory: Path, name: str, rows: list[dict], fmt: str = "csv", parts: int = 1) -> None:
    """Write one table as ``name.csv``/``name.parquet``, or as ``parts`` part files in ``name/``."""
    frame = pd.DataFrame(rows).fillna("")
    chunks = [frame.iloc[i::parts] for i in range(parts)] if parts > 1 else [frame]
    target_dir = directory / name if parts > 1 else directory
    target_dir.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(chunks):
        stem = f"part-{i:04d}" if parts > 1 else name
        path = target_dir / f"{stem}.{fmt}"
        if fmt == "csv":
            chunk.to_csv(path, index=False)
        else:
            table = pa.table({c: pa.array([None if v == "" else v for v in chunk[c]], pa.string()) for c in chunk.columns})
            pq.write_table(table, path)


def write_contract(directory: Path, tables: dict[str, list[dict]] | None = None, fmt: str = "csv", parts: int = 1) -> Path:
    """A contract directory holding the given (default: good) tables."""
    tables = good_tables() if tables is None else tables
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        write_table(directory, name, rows, fmt, parts)
    return directory
