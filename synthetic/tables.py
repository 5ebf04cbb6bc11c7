"""Turning claim batches into the Tuva input-layer tables and writing them (Parquet parts or CSV).

Column names and types come from ``contract/schema.py``. The generator writes every required and
used column plus the money and metadata columns it fills; all other Tuva columns are optional and
left out. Codes are strings (leading zeros kept), dates are dates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from contract.schema import ELIGIBILITY, MEDICAL_CLAIM, PHARMACY_CLAIM, TableSpec
from synthetic.claims import DX_SLOTS, MedicalBatch, PharmacyBatch

DATA_SOURCE = "cartscout synthetic payer"
_ARROW = {"varchar": pa.string(), "date": pa.date32(), "integer": pa.int64(), "number": pa.float64(), "float": pa.float64(),
          "boolean": pa.bool_(), "timestamp": pa.timestamp("s")}
_FILLED_EXTRA = {
    "eligibility": ("death_flag", "payer_type", "race", "zip_code", "state", "file_name", "file_date"),
    "medical_claim": ("payer", "plan", "service_unit_quantity", "paid_amount", "allowed_amount", "in_network_flag", "file_name", "file_date"),
    "pharmacy_claim": ("payer", "plan", "quantity", "paid_amount", "allowed_amount", "in_network_flag", "file_name", "file_date"),
}


def table_schema(spec: TableSpec) -> pa.Schema:
    """Required + used + filled extra columns, in the Tuva column order."""
    wanted = set(spec.required) | set(spec.used) | set(_FILLED_EXTRA[spec.name])
    return pa.schema([(c, _ARROW[t]) for c, t in spec.columns.items() if c in wanted])


def string_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded number, built in Arrow (no Python loop)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def constant_where(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """values[index] as Arrow strings, null where index < 0 (fast for millions of rows)."""
    return codes(pa.array(list(values), pa.string()), index)


def codes(vocab_values: pa.Array, ids: np.ndarray) -> pa.Array:
    ids = np.asarray(ids)
    return vocab_values.take(pa.array(np.where(ids < 0, 0, ids), mask=ids < 0))


def dates(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), mask=null).cast(pa.date32())


def build_medical(batch: MedicalBatch, claim_ids: pa.Array, person_ids: pa.Array, member_ids: pa.Array, payer: pa.Array, plan: pa.Array,
                  vocab_values: pa.Array, file_date: int, in_network: np.ndarray) -> pa.Table:
    """One row per claim line; header fields are taken from the claim's header arrays."""
    schema = table_schema(MEDICAL_CLAIM)
    n = batch.n_lines
    h = batch.line_claim
    inst = batch.claim_type[h] == 1
    admitted = batch.admitted[h]
    dx = batch.dx[h]
    cols: dict[str, pa.Array] = {
        "claim_id": claim_ids.take(pa.array(h)),
        "claim_line_number": pa.array(batch.line_number.astype(np.int64)),
        "claim_type": constant_where(("professional", "institutional"), inst.astype(np.int8)),
        "person_id": person_ids,
        "member_id": member_ids,
        "payer": payer,
        "plan": plan,
        "claim_start_date": dates(batch.start[h]),
        "claim_end_date": dates(batch.end[h]),
        "claim_line_start_date": dates(batch.line_start),
        "claim_line_end_date": dates(batch.line_end),
        "admission_date": dates(batch.start[h], ~admitted),
        "discharge_date": dates(batch.end[h], ~admitted),
        "place_of_service_code": codes(vocab_values, batch.pos),
        "bill_type_code": codes(vocab_values, batch.bill_type[h]),
        "drg_code_type": constant_where(("ms-drg",), np.where(batch.drg[h] >= 0, 0, -1)),
        "drg_code": codes(vocab_values, batch.drg[h]),
        "revenue_center_code": codes(vocab_values, batch.revenue),
        "service_unit_quantity": pa.array(batch.units),
        "hcpcs_code": codes(vocab_values, batch.hcpcs),
        "paid_amount": pa.array(np.round(batch.paid * 0.8, 2)),
        "allowed_amount": pa.array(np.round(batch.paid, 2)),
        "diagnosis_code_type": constant_where(("icd-10-cm",), np.zeros(n, dtype=np.int8)),
        "procedure_code_type": constant_where(("icd-10-pcs",), np.where(batch.pcs[h] >= 0, 0, -1)),
        "procedure_code_1": codes(vocab_values, batch.pcs[h]),
        "procedure_date_1": dates(batch.start[h], batch.pcs[h] < 0),
        "in_network_flag": pa.array(in_network),
        "data_source": constant_where((DATA_SOURCE,), np.zeros(n, dtype=np.int8)),
        "file_name": constant_where(("medical_claim",), np.zeros(n, dtype=np.int8)),
        "file_date": dates(np.full(n, file_date)),
    }
    for i in range(DX_SLOTS):
        cols[f"diagnosis_code_{i + 1}"] = codes(vocab_values, dx[:, i])
    return _assemble(schema, cols, n)


def build_pharmacy(batch: PharmacyBatch, claim_ids: pa.Array, person_ids: pa.Array, member_ids: pa.Array, payer: pa.Array, plan: pa.Array,
                   vocab_values: pa.Array, file_date: int, in_network: np.ndarray) -> pa.Table:
    schema = table_schema(PHARMACY_CLAIM)
    n = batch.n
    cols = {
        "claim_id": claim_ids, "claim_line_number": pa.array(np.ones(n, dtype=np.int64)), "person_id": person_ids, "member_id": member_ids,
        "payer": payer, "plan": plan, "dispensing_date": dates(batch.date), "ndc_code": codes(vocab_values, batch.ndc),
        "quantity": pa.array(batch.quantity.astype(np.int64)), "days_supply": pa.array(batch.days_supply.astype(np.int64)),
        "paid_amount": pa.array(np.round(batch.paid * 0.85, 2)), "allowed_amount": pa.array(np.round(batch.paid, 2)),
        "in_network_flag": pa.array(in_network), "data_source": constant_where((DATA_SOURCE,), np.zeros(n, dtype=np.int8)),
        "file_name": constant_where(("pharmacy_claim",), np.zeros(n, dtype=np.int8)), "file_date": dates(np.full(n, file_date)),
    }
    return _assemble(schema, cols, n)


def eligibility_schema() -> pa.Schema:
    return table_schema(ELIGIBILITY)


def _assemble(schema: pa.Schema, cols: dict[str, pa.Array], n: int) -> pa.Table:
    arrays = []
    for f in schema:
        value = cols.get(f.name)
        arrays.append(pa.nulls(n, f.type) if value is None else value.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class TableWriter:
    """Writes one table as Parquet part files (``OUT/name/part-00000.parquet``) or one CSV file."""

    def __init__(self, out: Path, name: str, schema: pa.Schema, file_format: str) -> None:
        self.schema, self.format, self.rows = schema, file_format, 0
        self._part = 0
        if file_format == "parquet":
            self.directory = out / name
            self.directory.mkdir(parents=True, exist_ok=True)
            self._csv = None
        else:
            self._csv = pacsv.CSVWriter(str(out / f"{name}.csv"), schema)

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        self.rows += table.num_rows
        if self._csv is not None:
            self._csv.write_table(table)
        elif table.num_rows or self._part == 0:
            pq.write_table(table, self.directory / f"part-{self._part:05d}.parquet", compression="zstd")
            self._part += 1

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
