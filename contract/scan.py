"""A fast columnar pre-scan for the cohort: who could possibly be a CAR T candidate?

Scoring millions of members starts by narrowing to the few percent with a haematological
malignancy. Reading every claim line into pandas to find them costs minutes and gigabytes; DuckDB
reads only the code columns of the Parquet (or CSV) files, evaluates the predicate inside the scan
on both cores, and returns the distinct person_ids. The result is a deliberate *superset* of the
cohort (any index, relapse or remission diagnosis of a target disease group, any anticancer drug
administration or fill, any CAR T procedure); the cohort rules in ``features`` decide the rest on
the full histories of just these persons.

Diagnosis codes are matched inside the scan with one string range spanning the target ICD-10-CM
categories (a comparison DuckDB pushes into the Parquet reader; the same for dotted and dotless
codes), ICD-10-PCS codes with the range of the CAR T codes, HCPCS codes exactly; the exact dotless
prefixes and PCS codes are then checked on that small remainder in pandas. Codes
are expected in upper case, as Tuva specifies; validation reports anything else.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from contract.reading import locate_table, read_columns
from features.codelists import CodeLists

TARGET_ROLES = ("index_dx", "relapse_marker", "remission_marker")
CAR_T_EVENTS = ("car_t_collection", "car_t_preparation", "car_t_infusion")
_WIDE = range(1, 26)


def target_codes(codes: CodeLists) -> dict[str, list[str]]:
    """The code sets the scan looks for: diagnosis prefixes, HCPCS, ICD-10-PCS and NDC codes."""
    dx = codes.diagnoses[codes.diagnoses["role"].isin(TARGET_ROLES)]
    anticancer = codes.drugs[codes.drugs["counts_as_line"].isin(("yes", "qualified")) | codes.drugs["drug_class"].eq("car_t")]
    car_t = codes.procedures[codes.procedures["event"].isin(CAR_T_EVENTS) & codes.procedures["code"].notna()]
    return {
        "diagnosis_prefix": sorted(set(dx["prefix"])),
        "hcpcs": sorted(set(anticancer.loc[anticancer["code_system"] == "hcpcs", "code"]) | set(car_t.loc[car_t["code_system"] == "hcpcs", "code"])),
        "icd10pcs": sorted(set(car_t.loc[car_t["code_system"] == "icd10pcs", "code"])),
        "ndc": sorted(set(anticancer.loc[anticancer["code_system"] == "ndc", "code"])),
    }


def find_cohort_candidates(data_dir: Path, codes: CodeLists, *, threads: int | None = None) -> pd.Index:
    """Distinct person_ids with any target diagnosis, anticancer drug or CAR T procedure code."""
    data_dir = Path(data_dir)
    wanted = target_codes(codes)
    connection = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        medical = _medical_candidates(connection, locate_table(data_dir, "medical_claim"), wanted)
        pharmacy = _pharmacy_candidates(connection, data_dir, wanted)
    finally:
        connection.close()
    return pd.Index(sorted(set(medical) | set(pharmacy)), name="person_id", dtype="string")


def _source(files: list[Path], columns: list[str]) -> str:
    paths = "[" + ", ".join(_quote(str(p)) for p in files) + "]"
    if files[0].suffix == ".parquet":
        return f"read_parquet({paths}, union_by_name = true)"
    types = "{" + ", ".join(f"{_quote(c)}: 'VARCHAR'" for c in columns) + "}"
    return f"read_csv({paths}, header = true, union_by_name = true, types = {types})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(_quote(v) for v in values) + ")"


def _medical_candidates(connection, files: list[Path], wanted: dict[str, list[str]]) -> list[str]:
    """One single-column select per code column, unioned: each predicate is a plain comparison on
    one column, which DuckDB pushes into the Parquet reader (row groups whose statistics exclude
    it, such as all-empty ``diagnosis_code_17``, are skipped). An OR across columns would not be."""
    columns = _all_columns(files)
    source = _source(files, columns)
    categories = sorted({p[:3] for p in wanted["diagnosis_prefix"]})
    selects = []
    if categories:
        low, high = categories[0], _successor(categories[-1])
        selects += [
            f"SELECT person_id, 'dx' AS system, {c} AS code FROM {source} WHERE {c} >= {_quote(low)} AND {c} < {_quote(high)}"
            for c in (f"diagnosis_code_{i}" for i in _WIDE) if c in columns
        ]
    if wanted["icd10pcs"]:
        low, high = min(wanted["icd10pcs"]), max(wanted["icd10pcs"])
        selects += [
            f"SELECT person_id, 'pcs' AS system, {c} AS code FROM {source} WHERE {c} >= {_quote(low)} AND {c} <= {_quote(high)}"
            for c in (f"procedure_code_{i}" for i in _WIDE) if c in columns
        ]
    if wanted["hcpcs"] and "hcpcs_code" in columns:
        selects.append(f"SELECT person_id, 'hcpcs' AS system, hcpcs_code AS code FROM {source} WHERE hcpcs_code IN {_in_list(wanted['hcpcs'])}")
    if not selects:
        return []
    connection.execute("CREATE OR REPLACE TEMP TABLE found AS SELECT DISTINCT person_id, system, code FROM (" + " UNION ALL ".join(selects) + ")")
    codes = connection.execute("SELECT DISTINCT system, code FROM found").df()
    normal = codes["code"].astype("str").str.replace(".", "", regex=False).str.upper()
    is_target = (
        (codes["system"].eq("dx") & normal.map(lambda c: c.startswith(tuple(wanted["diagnosis_prefix"]))).astype(bool))
        | (codes["system"].eq("pcs") & normal.isin(wanted["icd10pcs"]))
        | codes["system"].eq("hcpcs")
    )
    connection.register("matching", codes[is_target.to_numpy(dtype=bool)])
    persons = connection.sql("SELECT DISTINCT person_id FROM found JOIN matching USING (system, code)").to_arrow_table()
    return persons.column("person_id").to_pylist()


def _successor(text: str) -> str:
    """The smallest string greater than every string starting with ``text``."""
    return text[:-1] + chr(ord(text[-1]) + 1)


def _pharmacy_candidates(connection, data_dir: Path, wanted: dict[str, list[str]]) -> list[str]:
    if not wanted["ndc"]:
        return []
    files = locate_table(data_dir, "pharmacy_claim")
    columns = _all_columns(files)
    sql = f"SELECT DISTINCT person_id FROM {_source(files, columns)} WHERE replace(ndc_code, '-', '') IN {_in_list(wanted['ndc'])}"
    return connection.execute(sql).df()["person_id"].astype(str).tolist()


def _all_columns(files: list[Path]) -> list[str]:
    columns: list[str] = []
    for path in files:
        columns += [c for c in read_columns(path) if c not in columns]
    return columns
