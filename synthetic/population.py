"""``cartscout synth``: generate a synthetic payer population in the input contract, in chunks.

Members are generated in fixed chunks of ``CHUNK_MEMBERS`` with one independent random stream per
chunk (``SeedSequence(seed).spawn``), so output is byte-identical for the same configuration and
memory stays flat however many members are asked for. Each chunk: members and enrollment ->
cancer diagnoses (age/sex-specific incidence x enrichment) -> per-patient courses and CAR T access
-> background claims -> noise -> tables appended to the writers. Ground truth goes to ``truth/``,
which features and training never read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.schema import CENTERS_FILE, MEDICAL_CLAIM, NDC_CROSSWALK_FILE, PHARMACY_CLAIM
from synthetic import noise as noise_mod
from synthetic.background import draw_conditions, generate_background
from synthetic.calibration import disease_subtype
from synthetic.claims import ClaimSink, concat_medical, concat_pharmacy, subset_medical, subset_pharmacy
from synthetic.coding import Vocabulary, load_codebook
from synthetic.courses import CourseSimulator, Patient
from synthetic.geography import build_centres, load_zip_table, miles_to_nearest_centre
from synthetic.incidence import DISEASES, draw_diagnoses
from synthetic.members import BLACK, NO_DATE, PAYER_TYPES, RACES, Members, draw_members
from synthetic.tables import DATA_SOURCE, TableWriter, build_medical, build_pharmacy, codes, dates, eligibility_schema, string_ids, table_schema

CHUNK_MEMBERS = 100_000
HISTORY_YEARS = 6
PAYERS = ("Synthetic Commercial Health Plan", "Synthetic Medicare Advantage Plan", "Synthetic Medicaid Managed Care")
PLANS = (("PPO", "HMO"), ("MA-PD", "MA-PD"), ("Medicaid MCO", "Medicaid MCO"))
FILE_DELAY_DAYS = 45
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class SynthConfig:
    members: int = 10_000
    seed: int = 0
    cancer_enrichment: float = 1.0
    noise: str = "off"
    end_date: date = date(2025, 12, 31)
    file_format: str = "parquet"

    def check(self) -> None:
        if self.members < 1:
            raise ValueError("members must be at least 1")
        if self.cancer_enrichment < 1:
            raise ValueError("cancer_enrichment must be >= 1")
        noise_mod.level_factor(self.noise)
        if self.file_format not in FORMATS:
            raise ValueError(f"file_format must be one of {', '.join(FORMATS)}, not {self.file_format!r}")

    @property
    def window(self) -> tuple[int, int]:
        first = date(self.end_date.year - HISTORY_YEARS, self.end_date.month, 1) + timedelta(days=32)
        first = first.replace(day=1)
        return _day(first), _day(self.end_date)


@dataclass
class SynthSummary:
    config: SynthConfig
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    persons: int = 0
    cancer: dict[str, int] = field(default_factory=dict)
    car_t: int = 0
    eligible: int = 0
    deaths: int = 0
    invalid_rows: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        c = self.config
        lines = [
            f"cartscout synth: {self.persons:,} persons, seed {c.seed}, noise {c.noise}, enrichment {c.cancer_enrichment:g}, end {c.end_date} -> {self.out}",
            "  tables: " + ", ".join(f"{k} {v:,} rows" for k, v in self.rows.items()),
            f"  medical claim lines per member: {self.rows.get('medical_claim', 0) / max(self.persons, 1):.1f}; pharmacy fills per member: {self.rows.get('pharmacy_claim', 0) / max(self.persons, 1):.1f}",
            "  cancer cohort: " + (", ".join(f"{k} {v}" for k, v in sorted(self.cancer.items())) or "none"),
            f"  label-eligible for CAR T: {self.eligible}; infused: {self.car_t}; deaths: {self.deaths:,}",
            f"  injected invalid rows: {self.invalid_rows}",
            f"  wrote {self.out}/truth/ (evaluation only) in {self.seconds:.1f} s",
        ]
        return "\n".join(lines)


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def generate_to_directory(config: SynthConfig, out: Path) -> SynthSummary:
    """Write the three tables, the NDC crosswalk, the centre file and truth/ under ``out``."""
    config.check()
    started = time.perf_counter()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    codebook = load_codebook()
    load_zip_table()
    factor = noise_mod.level_factor(config.noise)
    writers = {
        "eligibility": TableWriter(out, "eligibility", eligibility_schema(), config.file_format),
        "medical_claim": TableWriter(out, "medical_claim", table_schema(MEDICAL_CLAIM), config.file_format),
        "pharmacy_claim": TableWriter(out, "pharmacy_claim", table_schema(PHARMACY_CLAIM), config.file_format),
    }
    summary = SynthSummary(config, out)
    truth_persons, truth_lines, truth_elig, noise_rows = [], [], [], []
    n_chunks = math.ceil(config.members / CHUNK_MEMBERS)
    streams = np.random.SeedSequence(config.seed).spawn(n_chunks)
    for chunk in range(n_chunks):
        first = chunk * CHUNK_MEMBERS
        n = min(CHUNK_MEMBERS, config.members - first)
        result = _generate_chunk(config, chunk, first, n, streams[chunk], codebook, factor)
        for name, table in result["tables"].items():
            writers[name].write(table)
        truth_persons.append(result["persons"])
        truth_lines.append(result["lines"])
        truth_elig.append(result["eligibility"])
        noise_rows += result["noise"]
        del result
    for w in writers.values():
        w.close()
    summary.rows = {k: w.rows for k, w in writers.items()}
    persons = pd.concat(truth_persons, ignore_index=True)
    _write_truth(out, persons, pd.concat(truth_lines, ignore_index=True), pd.concat(truth_elig, ignore_index=True), noise_rows)
    codebook.crosswalk().to_csv(out / NDC_CROSSWALK_FILE, index=False)
    build_centres().to_csv(out / CENTERS_FILE, index=False)
    summary.persons = len(persons)
    summary.cancer = persons["disease"].dropna().value_counts().to_dict()
    summary.car_t = int(persons["car_t_date"].notna().sum())
    eligible = pd.concat(truth_elig) if truth_elig else pd.DataFrame(columns=["person_id", "first_eligible_date"])
    summary.eligible = int(eligible.loc[eligible["first_eligible_date"].notna(), "person_id"].nunique())
    summary.deaths = int(persons["death_date"].notna().sum())
    summary.invalid_rows = sum(1 for r in noise_rows if r[5])
    summary.seconds = time.perf_counter() - started
    return summary


def _generate_chunk(config: SynthConfig, chunk: int, first: int, n: int, stream: np.random.SeedSequence, codebook, factor: float) -> dict:
    rng_members, rng_cancer, rng_background, rng_noise = (np.random.default_rng(s) for s in stream.spawn(4))
    w0, w1 = config.window
    members = draw_members(n, first, (w0, w1), noise_mod.PLAN_SWITCH_SHARE * factor, rng_members)
    vocab = Vocabulary()
    person_ids = string_ids("P", np.arange(first, first + n), 9)

    # Cancer diagnoses and courses.
    enrolled = members.enrolled_days()
    idx = np.arange(n)
    mid_age = members.age_at(idx, members.calendar_day(idx, enrolled // 2))
    disease, when, weight = draw_diagnoses(mid_age, members.female, members.race == BLACK, enrolled / 365.25, config.cancer_enrichment, rng_cancer)
    cases = np.flatnonzero(disease >= 0)
    dx_day = members.calendar_day(cases, (when[cases] * enrolled[cases]).astype(np.int64))
    miles = miles_to_nearest_centre(members.zip_idx[cases]) if len(cases) else np.zeros(0)
    sink = ClaimSink(vocab)
    sim = CourseSimulator(codebook, sink, rng_cancer, noise=0.25 * factor)
    risk = rng_cancer.normal(0, 1, len(cases))
    truth_rows, line_rows, elig_rows = {}, [], []
    pid = {int(m): person_ids[int(m)].as_py() for m in cases}
    for k, m in enumerate(cases):
        name = DISEASES[disease[m]]
        site, subtype = disease_subtype(name, rng_cancer)
        span2 = members.s2[m] >= 0 and dx_day[k] >= members.s2[m]
        payer = int(members.payer2[m] if span2 else members.payer1[m])
        horizon = int(min(w1, members.death[m]))
        patient = Patient(int(m), pid[m], name, int(dx_day[k]), int(members.birth[m]), float(members.frailty[m]), float(risk[k]), payer, float(miles[k]), horizon, site, subtype)
        t = sim.simulate(patient)
        if t.death is not None:
            members.death[m] = min(members.death[m], t.death)
        truth_rows[m] = (name, subtype, int(dx_day[k]), float(risk[k]), patient.age(int(dx_day[k])), t)
        for i, ln in enumerate(t.lines):
            progression = t.progressions[i] if i < len(t.progressions) else None  # progressions follow lines in order
            line_rows.append((int(m), pid[m], ln[0], ln[1], ln[2], ln[3], ln[4], ln[5], ln[6], progression))
        for product in sorted(set(t.eligibility) | set(t.claims_eligibility)):
            dis, day = t.eligibility.get(product, (None, None))
            claims_dis, claims_day = t.claims_eligibility[product]
            elig_rows.append((int(m), pid[m], product, claims_dis, day, claims_day))
    members.truncate_at_death()

    names, conditions = draw_conditions(members, codebook, rng_background)
    bg_medical, bg_pharmacy = generate_background(members, conditions, names, codebook, vocab, rng_background)
    ca_medical, ca_pharmacy = sink.medical(), sink.pharmacy()
    ca_medical = subset_medical(ca_medical, _in_enrollment(members, ca_medical.start, ca_medical.end, ca_medical.person, w1))
    ca_pharmacy = subset_pharmacy(ca_pharmacy, _in_enrollment(members, ca_pharmacy.date, ca_pharmacy.date, ca_pharmacy.person, w1))
    medical = concat_medical([bg_medical, ca_medical])
    pharmacy = concat_pharmacy([bg_pharmacy, ca_pharmacy])
    medical, pharmacy, gaps, _ = noise_mod.apply_batch_noise(medical, pharmacy, members, vocab, factor, rng_noise)

    vocab_values = pa.array(vocab.values, pa.string()) if vocab.values else pa.array([""], pa.string())
    file_date = w1 + FILE_DELAY_DAYS
    med_span2 = _span2(members, medical.start[medical.line_claim], medical.person[medical.line_claim])
    med_person = medical.person[medical.line_claim]
    claim_ids = string_ids(f"MC{chunk:04d}", np.arange(medical.n_claims), 8)
    medical_table = build_medical(
        medical, claim_ids, person_ids.take(pa.array(med_person)), _member_ids(first, members, med_person, med_span2),
        _payer(members, med_person, med_span2), _plan(members, med_person, med_span2), vocab_values, file_date, np.ones(medical.n_lines, bool),
    )
    rx_span2 = _span2(members, pharmacy.date, pharmacy.person)
    pharmacy_table = build_pharmacy(
        pharmacy, string_ids(f"RX{chunk:04d}", np.arange(pharmacy.n), 8), person_ids.take(pa.array(pharmacy.person)),
        _member_ids(first, members, pharmacy.person, rx_span2), _payer(members, pharmacy.person, rx_span2), _plan(members, pharmacy.person, rx_span2),
        vocab_values, file_date, np.ones(pharmacy.n, bool),
    )
    noise_records = [("medical_claim", None, None, pid_, "out_of_network_gap", False) for pid_ in person_ids.take(pa.array(np.array([g[0] for g in gaps], dtype=np.int64))).to_pylist()] if gaps else []
    if factor > 0:
        lines_per_claim = np.bincount(medical.line_claim, minlength=medical.n_claims)
        single = np.flatnonzero(lines_per_claim[medical.line_claim] == 1)
        multi = np.flatnonzero(lines_per_claim[medical.line_claim] > 1)
        dead_rows = np.flatnonzero(members.death[pharmacy.person] != NO_DATE)
        defects = noise_mod.choose_defects(medical.n_lines, pharmacy.n, single, multi, dead_rows, factor, rng_noise)
        medical_table, med_records = noise_mod.corrupt_medical(medical_table, defects)
        pharmacy_table, rx_records = noise_mod.corrupt_pharmacy(pharmacy_table, defects, members.death[pharmacy.person].astype(np.int64))
        noise_records += med_records + rx_records

    return {
        "tables": {"eligibility": _eligibility(members, person_ids, first, w1), "medical_claim": medical_table, "pharmacy_claim": pharmacy_table},
        "persons": _truth_persons(members, person_ids, disease, weight, truth_rows, config.cancer_enrichment),
        "lines": _truth_lines(members, line_rows),
        "eligibility": _truth_eligibility(members, elig_rows),
        "noise": noise_records,
    }


def enrolled_on(members: Members, person: np.ndarray, day: np.ndarray) -> np.ndarray:
    """True where ``day`` falls inside one of the person's enrollment spans (claims can exist then).

    The truth follows a patient after they leave the plan or between spans; evaluation restricts
    to what claims can observe with this flag. Call after ``truncate_at_death``.
    """
    person, day = np.asarray(person, dtype=np.int64), np.asarray(day, dtype=np.int64)
    in1 = (day >= members.s1[person]) & (day <= members.e1[person])
    in2 = (members.s2[person] >= 0) & (day >= members.s2[person]) & (day <= members.e2[person])
    return in1 | in2


def _truth_lines(members: Members, rows: list[tuple]) -> pd.DataFrame:
    columns = ["person_id", "line_number", "start_date", "end_date", "drugs", "regimen", "includes_sct", "is_car_t", "progression_date"]
    frame = pd.DataFrame([r[1:] for r in rows], columns=columns)
    person = np.array([r[0] for r in rows], dtype=np.int64)
    start, end = frame["start_date"].to_numpy(dtype=np.int64), frame["end_date"].to_numpy(dtype=np.int64)
    frame["enrolled"] = enrolled_on(members, person, start) if rows else pd.Series(dtype=bool)
    # Some of the line's claims can exist when its span overlaps an enrollment span.
    in1 = (start <= members.e1[person]) & (end >= members.s1[person])
    in2 = (members.s2[person] >= 0) & (start <= members.e2[person]) & (end >= members.s2[person])
    frame["observed"] = (in1 | in2) if rows else pd.Series(dtype=bool)
    return frame


def _truth_eligibility(members: Members, rows: list[tuple]) -> pd.DataFrame:
    """One row per person x product eligible in either view; NaT date where a view never is."""
    frame = pd.DataFrame([r[1:] for r in rows], columns=["person_id", "product", "disease", "first_eligible_date", "claims_first_eligible_date"])
    person = np.array([r[0] for r in rows], dtype=np.int64)
    for date_col, flag in (("first_eligible_date", "enrolled"), ("claims_first_eligible_date", "claims_enrolled")):
        days = frame[date_col].to_numpy(dtype=float) if rows else np.zeros(0)
        known = ~np.isnan(days)
        frame[flag] = known & enrolled_on(members, person, np.where(known, days, -1).astype(np.int64)) if rows else pd.Series(dtype=bool)
    return frame


def _in_enrollment(members: Members, start: np.ndarray, end: np.ndarray, person: np.ndarray, last_day: int) -> np.ndarray:
    """Events fully inside one enrollment span, not after death, not after the end of data."""
    in1 = (start >= members.s1[person]) & (end <= members.e1[person])
    in2 = (members.s2[person] >= 0) & (start >= members.s2[person]) & (end <= members.e2[person])
    return (in1 | in2) & (end <= last_day) & (end <= members.death[person])


def _span2(members: Members, day: np.ndarray, person: np.ndarray) -> np.ndarray:
    return (members.s2[person] >= 0) & (day >= members.s2[person])


def _member_ids(first: int, members: Members, person: np.ndarray, span2: np.ndarray) -> pa.Array:
    base = string_ids("M", first + person.astype(np.int64), 9)
    other = string_ids("N", first + person.astype(np.int64), 9)
    return pc.if_else(pa.array(span2 & members.switched[person]), other, base)


def _payer_index(members: Members, person: np.ndarray, span2: np.ndarray) -> np.ndarray:
    return np.where(span2, members.payer2[person], members.payer1[person]).astype(np.int64)


def _payer(members, person, span2) -> pa.Array:
    return codes(pa.array(list(PAYERS)), _payer_index(members, person, span2))


def _plan(members, person, span2) -> pa.Array:
    switched = (span2 & members.switched[person]).astype(np.int64)
    return codes(pa.array([p for pair in PLANS for p in pair]), _payer_index(members, person, span2) * 2 + switched)


def _eligibility(members: Members, person_ids: pa.Array, first: int, last_day: int) -> pa.Table:
    has2 = np.flatnonzero(members.s2 >= 0)
    person = np.concatenate([np.arange(members.n), has2])
    span2 = np.r_[np.zeros(members.n, bool), np.ones(len(has2), bool)]
    start = np.where(span2, members.s2[person], members.s1[person])
    end = np.where(span2, members.e2[person], members.e1[person])
    death = members.death[person]
    dead = death != NO_DATE
    zips = load_zip_table()
    cols = {
        "person_id": person_ids.take(pa.array(person)),
        "member_id": _member_ids(first, members, person, span2),
        "gender": codes(pa.array(["male", "female"]), members.female[person].astype(np.int64)),
        "race": codes(pa.array(list(RACES)), members.race[person].astype(np.int64)),
        "birth_date": dates(members.birth[person]),
        "death_date": dates(np.where(dead, death, 0), ~dead),
        "death_flag": pa.array(dead),
        "enrollment_start_date": dates(start),
        "enrollment_end_date": dates(end),
        "payer": _payer(members, person, span2),
        "payer_type": codes(pa.array(list(PAYER_TYPES)), _payer_index(members, person, span2)),
        "plan": _plan(members, person, span2),
        "state": pa.array(zips.state[members.zip_idx[person]]),
        "zip_code": pa.array(zips.zip_code[members.zip_idx[person]]),
        "data_source": pa.array(np.full(len(person), DATA_SOURCE)),
        "file_name": pa.array(np.full(len(person), "eligibility")),
        "file_date": dates(np.full(len(person), last_day + FILE_DELAY_DAYS)),
    }
    schema = eligibility_schema()
    return pa.Table.from_arrays([cols[f.name].cast(f.type) if f.name in cols else pa.nulls(len(person), f.type) for f in schema], schema=schema)


def _truth_persons(members: Members, person_ids: pa.Array, disease: np.ndarray, weight: np.ndarray, rows: dict, enrichment: float) -> pd.DataFrame:
    n = members.n
    to_date = lambda d: None if d is None else np.datetime64(int(d), "D")  # noqa: E731
    frame = pd.DataFrame({
        "person_id": person_ids.to_pandas(),
        "disease": pd.Series([None] * n, dtype="string"),
        "subtype": pd.Series([None] * n, dtype="string"),
        "diagnosis_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]"),
        "age_at_diagnosis": np.full(n, np.nan),
        "frailty": members.frailty,
        "disease_risk": np.full(n, np.nan),
        "referral_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]"),
        "car_t_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]"),
        "car_t_product": pd.Series([None] * n, dtype="string"),
        "death_date": pd.Series(np.where(members.death != NO_DATE, members.death, 0).astype("datetime64[D]"), dtype="datetime64[s]").where(members.death != NO_DATE),
        "lost_to_progression": np.zeros(n, bool),
        "cancer_enrichment": np.full(n, float(enrichment)),
        "sampling_weight": weight,
    })
    if rows:
        m = np.array(list(rows))
        vals = list(rows.values())
        frame.loc[m, "disease"] = [v[0] for v in vals]
        frame.loc[m, "subtype"] = [v[1] or None for v in vals]
        frame.loc[m, "diagnosis_date"] = pd.to_datetime([to_date(v[2]) for v in vals]).astype("datetime64[s]")
        frame.loc[m, "disease_risk"] = [v[3] for v in vals]
        frame.loc[m, "age_at_diagnosis"] = [round(v[4], 2) for v in vals]
        frame.loc[m, "referral_date"] = pd.to_datetime([to_date(v[5].referral) for v in vals]).astype("datetime64[s]")
        frame.loc[m, "car_t_date"] = pd.to_datetime([to_date(v[5].car_t) for v in vals]).astype("datetime64[s]")
        frame.loc[m, "car_t_product"] = [v[5].car_t_product for v in vals]
        frame.loc[m, "lost_to_progression"] = [v[5].lost_to_progression for v in vals]
    return frame


def _write_truth(out: Path, persons: pd.DataFrame, lines: pd.DataFrame, eligibility: pd.DataFrame, noise_rows: list[tuple]) -> None:
    truth = out / "truth"
    persons.to_parquet(truth / "persons.parquet", index=False)
    for col in ("start_date", "end_date"):
        lines[col] = pd.to_datetime(lines[col].astype("int64"), unit="D").astype("datetime64[s]") if len(lines) else pd.Series(dtype="datetime64[s]")
    lines["progression_date"] = pd.to_datetime(lines["progression_date"].astype("float64"), unit="D").astype("datetime64[s]")
    lines["drugs"] = lines["drugs"].map(list)
    lines.to_parquet(truth / "lines.parquet", index=False)
    for col in ("first_eligible_date", "claims_first_eligible_date"):
        eligibility[col] = pd.to_datetime(eligibility[col].astype("float64"), unit="D").astype("datetime64[s]")
    eligibility.to_parquet(truth / "eligibility.parquet", index=False)
    noise = pd.DataFrame(noise_rows, columns=list(noise_mod.NOISE_COLUMNS))
    noise["claim_line_number"] = noise["claim_line_number"].astype("Int64")
    noise.to_parquet(truth / "noise.parquet", index=False)
