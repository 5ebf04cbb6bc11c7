"""Agreement of derived lines of therapy and first label-eligibility dates with the generator's truth.

For each noise level this script generates (or reuses) a synthetic population with ``cartscout
synth``, runs the one feature pipeline (``features.pipeline.build_features``) on the cohort
candidates, and compares with ``truth/``:

* cohort: members the generator gave a target disease vs members the claims algorithm put in the
  cohort, and whether the disease matches;
* lines: share of truth-cohort members whose derived line count (as of the end of data) equals the
  truth count; median absolute error of line start dates over lines matched by number;
* eligibility: the pipeline is evaluated on a monthly ``as_of`` grid (month ends); a member x
  product's derived first-eligibility date is the first grid date it is eligible. Precision and
  recall of ever-eligible pairs, and the share of truth pairs whose derived date falls in the
  grid month that follows the truth date (the best a monthly grid can do), and the share within
  one grid month after it.

Truth views. The generator follows a patient after they leave the plan; its truth carries
``enrolled`` flags (the member was enrolled on the line start / first eligible day), and the
eligibility truth two dates: ``first_eligible_date`` (every label criterion) and
``claims_first_eligible_date`` (criteria claims cannot observe, i.e. transplant ineligibility for
liso-cel's PILOT indication, taken as met, because the engine reports them as unknown and does not
block on them). The headline ("claims-observable") view scores the claims view restricted to
``claims_enrolled`` pairs; pairs whose truth date falls outside enrollment are left out of both
sides. The other views are reported next to it. Derived eligibility whose only open criteria are
unknowns counts as eligible (it is the engine's flag); the disagreement tally says how many
derived-only pairs carried unknowns.

Writes bench/results/agreement.md, with the disagreement causes tallied per member.

Usage:
    python bench/agreement.py [--members 20000] [--seed 11] [--enrichment 20] [--levels off,low,medium,high]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.loading import load_codes, load_directory  # noqa: E402
from contract.scan import find_cohort_candidates  # noqa: E402
from features.eligibility import load_rules  # noqa: E402
from features.pipeline import build_features  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "agreement.md"
END = pd.Timestamp("2025-12-31")
LYMPHOMAS = ("LBCL", "FL", "MCL", "MZL")
FY2025_MONTH_END = pd.Timestamp("2024-10-31")  # first grid month with lymphoma remission codes
GRID_START = pd.Timestamp("2017-08-31")  # first CAR T approval (tisagenlecleucel, 2017-08-30)


def generate(out: Path, members: int, seed: int, enrichment: float, noise: str) -> None:
    if (out / "truth" / "persons.parquet").exists():
        return
    command = [str(ROOT / ".venv" / "bin" / "cartscout"), "synth", "--members", str(members), "--seed", str(seed),
               "--cancer-enrichment", str(enrichment), "--noise", noise, "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)


def load(data_dir: Path):
    codes = load_codes(data_dir)
    candidates = find_cohort_candidates(data_dir, codes)
    data = load_directory(data_dir, person_ids=candidates)
    persons = data.persons[data.persons["person_id"].isin(candidates)].reset_index(drop=True)
    events = data.events[data.events["person_id"].isin(candidates)].reset_index(drop=True)
    return data, candidates, persons, events


def coverage_gap_between(spans: pd.DataFrame, person: str, first: pd.Timestamp, last: pd.Timestamp) -> bool:
    """True when the person's enrollment has a break between two dates (claims stop, treatment may not)."""
    own = spans[spans["person_id"] == person].sort_values("date")
    starts, ends = own["date"].to_numpy()[1:], own["end_date"].to_numpy()[:-1]
    breaks = [(e, s) for e, s in zip(ends, starts) if (s - e) / np.timedelta64(1, "D") > 1]
    return any(e >= np.datetime64(first) and e < np.datetime64(last) for e, _ in breaks)


def compare_lines(result, truth_persons: pd.DataFrame, truth_lines: pd.DataFrame, spans: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    cohort = result.cohort.set_index("person_id")
    truth_cohort = truth_persons[truth_persons["disease"].notna()].set_index("person_id")
    ids = truth_cohort.index
    derived_in = cohort["in_cohort"].reindex(ids).fillna(False).astype(bool)
    derived_disease = cohort["disease"].reindex(ids)
    all_derived = set(cohort.index[cohort["in_cohort"]])

    t_all = truth_lines[truth_lines["start_date"] <= END]
    # The generator's truth follows the patient after they leave the plan; claims cannot. Lines
    # that never overlap an enrollment span (truth flag ``observed``) are scored separately; start
    # dates are compared only for lines that started while enrolled (``enrolled``).
    t_lines = t_all[t_all["observed"]]
    t_count_all = t_all.groupby("person_id").size().reindex(ids, fill_value=0)
    t_count = t_lines.groupby("person_id").size().reindex(ids, fill_value=0)
    d_lines = result.lines
    d_count = d_lines.groupby("person_id").size().reindex(ids, fill_value=0)
    bounds = t_all.groupby("person_id").agg(first=("start_date", "min"), last=("end_date", "max"))
    gap = pd.Series([coverage_gap_between(spans, p, *bounds.loc[p]) if p in bounds.index else False for p in ids], index=ids)
    per_member = pd.DataFrame(
        {
            "truth_disease": truth_cohort["disease"].astype("string"),
            "derived_in_cohort": derived_in,
            "derived_disease": derived_disease.astype("string"),
            "truth_lines_all": t_count_all,
            "truth_lines": t_count,
            "derived_lines": d_count,
            "coverage_gap_during_treatment": gap,
        }
    )
    merged = t_lines[t_lines["enrolled"]].merge(d_lines[["person_id", "line_number", "start_date"]], on=["person_id", "line_number"], suffixes=("_truth", "_derived"))
    error_days = (merged["start_date_derived"] - merged["start_date_truth"].astype("datetime64[s]")).dt.days.abs()
    figures = {
        "truth cohort members": len(ids),
        "derived cohort members": len(all_derived),
        "cohort recall (truth members found)": derived_in.mean(),
        "cohort precision (derived members with a truth disease)": len(all_derived & set(ids)) / max(len(all_derived), 1),
        "disease agrees (truth members found)": (per_member.loc[derived_in, "truth_disease"] == per_member.loc[derived_in, "derived_disease"]).mean(),
        "exact line count vs all truth lines": (t_count_all == d_count).mean(),
        "exact line count vs observable truth lines (overlapping enrollment)": (t_count == d_count).mean(),
        "exact line count, observable, members without a coverage break during treatment": (t_count == d_count)[~gap].mean(),
        "line start abs. error median days (lines matched by number, started while enrolled)": float(error_days.median()) if len(error_days) else float("nan"),
        "line start exact (share of matched lines)": float((error_days == 0).mean()) if len(error_days) else float("nan"),
    }
    return figures, per_member


def first_eligibility(events, persons, codes, rules, grid: pd.DatetimeIndex, ids: pd.Index) -> pd.DataFrame:
    """First grid date each (person, product) is label-eligible, with the unknown criteria on that date."""
    found: dict[tuple[str, str], tuple] = {}
    for day in grid:
        result = build_features(events, persons, pd.Series(day, index=ids), codes, rules=rules)
        eligible = result.eligibility[result.eligibility["eligible"]]
        for person, product, indication, unknown in zip(eligible["person_id"], eligible["product"], eligible["indication"], eligible["criteria_unknown"]):
            found.setdefault((str(person), str(product)), (day, str(indication), "; ".join(unknown)))
    return pd.DataFrame([(p, q, *v) for (p, q), v in found.items()], columns=["person_id", "product", "derived_date", "derived_indication", "derived_unknown"])


VIEWS = {
    "claims": ("claims_first_eligible_date", "claims_enrolled", "claims-observable truth (headline): transplant ineligibility taken as met, first date while enrolled"),
    "visible": ("claims_visible_date", "claims_enrolled", "additional comparison, not the headline: the claims-observable truth dated at the first claim that "
                "shows its progression (see below); pairs no claim ever shows are left out of both sides"),
    "label_enrolled": ("first_eligible_date", "enrolled", "every label criterion, first date while enrolled"),
    "label_all": ("first_eligible_date", None, "every label criterion, all truth dates (also after the member left the plan)"),
}


def compare_eligibility(derived: pd.DataFrame, truth: pd.DataFrame, view: str) -> tuple[dict, pd.DataFrame]:
    """Pairs (outer join of truth and derived) and the figures for one truth view."""
    date_col, flag = VIEWS[view][:2]
    if view == "visible":
        # eligible in the claims view but never shown by a claim: out of both sides, like dates outside enrollment
        hidden = truth["claims_first_eligible_date"].notna() & (truth["claims_first_eligible_date"] <= END) & truth[date_col].isna()
        truth = truth.assign(**{flag: truth[flag] & ~hidden, date_col: truth[date_col].where(~hidden, truth["claims_first_eligible_date"])})
    truth = truth[truth[date_col].notna() & (truth[date_col] <= END)].copy()
    truth["person_id"] = truth["person_id"].astype(str)
    truth["truth_date"] = truth[date_col].astype("datetime64[s]")
    # A first-eligibility date outside enrollment cannot be seen in claims: out of both sides.
    unobservable = truth[~truth[flag]] if flag else truth.iloc[:0]
    truth = truth[truth[flag]] if flag else truth
    derived = derived[~derived.set_index(["person_id", "product"]).index.isin(unobservable.set_index(["person_id", "product"]).index)]
    pairs = truth[["person_id", "product", "disease", "truth_date"]].merge(derived, on=["person_id", "product"], how="outer", indicator=True)
    both = pairs[pairs["_merge"] == "both"]
    lag = _lag_months(pairs)
    n_truth, n_derived = int((pairs["_merge"] != "right_only").sum()), int((pairs["_merge"] != "left_only").sum())
    figures = {
        "truth eligible pairs left out (first date outside enrollment)": len(unobservable),
        "truth eligible pairs (person x product)": n_truth,
        "derived eligible pairs": n_derived,
        "precision (ever eligible)": len(both) / max(n_derived, 1),
        "recall (ever eligible)": len(both) / max(n_truth, 1),
        "first-eligibility month agrees (share of truth pairs)": int((lag == 0).sum()) / max(n_truth, 1),
        "derived in the truth month or the next (share of truth pairs)": int(lag.isin([0, 1]).sum()) / max(n_truth, 1),
        "first-eligibility abs. error median days (pairs found)": float((both["derived_date"] - _expected(both)).dt.days.abs().median()) if len(both) else float("nan"),
    }
    return figures, pairs


def _expected(pairs: pd.DataFrame) -> pd.Series:
    """The grid date (month end) on or after the truth date."""
    return pairs["truth_date"].astype("datetime64[s]") + pd.offsets.MonthEnd(0)


def _lag_months(pairs: pd.DataFrame) -> pd.Series:
    """Derived grid month minus truth grid month, for pairs in both (others NaN)."""
    both = pairs["_merge"] == "both"
    lag = pd.Series(np.nan, index=pairs.index)
    exp = _expected(pairs[both])
    der = pairs.loc[both, "derived_date"]
    lag[both] = (der.dt.year - exp.dt.year) * 12 + (der.dt.month - exp.dt.month)
    return lag


def claims_visible_dates(truth_elig: pd.DataFrame, truth_lines: pd.DataFrame, truth_persons: pd.DataFrame, events: pd.DataFrame, codes) -> pd.Series:
    """For each truth pair, the first date claims could show its eligibility (NaT: no claim before the end of data does).

    The truth dates eligibility at the latent progression (or at a label's in-force day after it).
    A payer sees a progression only through a claim: the next line of therapy (a truth line started
    while enrolled, CAR T infusion included), a relapse-coded diagnosis of the member's disease
    (ICD-10-CM "in relapse"), a return to an active-disease code after an "in remission" code
    coded since the progressed line began, or CAR T apheresis/cell-preparation codes. For the last
    truth progression on or before the truth date (``progression_date`` of truth lines), the
    visible date is the first such claim on or after it, or the truth date when that is later.
    Computed from the truth and the claims (code lists), never from the engine.
    """
    diseases = truth_persons.assign(person_id=truth_persons["person_id"].astype(str)).set_index("person_id")["disease"]
    pids = set(truth_elig["person_id"].astype(str))
    ev = events[events["person_id"].astype(str).isin(pids)]
    ev = ev.assign(person_id=ev["person_id"].astype(str), day=ev["date"].astype("datetime64[s]"))
    prefixes = {p: (g, r) for p, g, r in zip(codes.diagnoses["prefix"], codes.diagnoses["disease_group"], codes.diagnoses["role"])}

    def dx_role(code: str, disease: str) -> str | None:
        for length in range(min(len(code), 6), 2, -1):
            hit = prefixes.get(code[:length])
            if hit is not None:
                return hit[1] if hit[0] == disease else None
        return None

    workup = codes.procedures[codes.procedures["event"].isin(["car_t_collection", "car_t_preparation"]) & (codes.procedures["code_system"] == "hcpcs")]
    workup_codes = set(workup["code"].dropna())
    lines = truth_lines.assign(person_id=truth_lines["person_id"].astype(str)).sort_values(["person_id", "line_number"])
    by_line = {p: g for p, g in lines.groupby("person_id")}
    by_person = {p: g.sort_values("day") for p, g in ev.groupby("person_id")}
    out = []
    for person, when in zip(truth_elig["person_id"].astype(str), truth_elig["claims_first_eligible_date"]):
        own = by_line.get(person)
        if pd.isna(when) or own is None:
            out.append(pd.NaT if pd.isna(when) else pd.Timestamp(when))
            continue
        day = pd.Timestamp(when)
        progressed = own[own["progression_date"].notna() & (own["progression_date"] <= day)]
        if progressed.empty:
            out.append(day)
            continue
        progression, line_start = progressed["progression_date"].iloc[-1], progressed["start_date"].iloc[-1]
        later = own[own["enrolled"] & (own["start_date"] >= progression)]
        found = list(later["start_date"])
        history = by_person.get(person)
        if history is not None:
            disease = diseases.get(person)
            remission = None
            for kind, system, code, d in zip(history["kind"], history["code_system"], history["code"], history["day"]):
                if d <= line_start:
                    continue
                if kind == "diagnosis" and system == "icd10cm" and isinstance(code, str):
                    role = dx_role(code, disease)
                    if role == "relapse_marker" and d >= progression:
                        found.append(d)
                    elif role == "remission_marker" and remission is None:
                        remission = d
                    elif role == "index_dx" and remission is not None and d > remission and d >= progression:
                        found.append(d)
                elif system == "hcpcs" and code in workup_codes and d >= progression:
                    found.append(d)
        first = min(found) if found else None
        out.append(pd.NaT if first is None or first > END else max(day, pd.Timestamp(first)))
    return pd.Series(out, index=truth_elig.index, dtype="datetime64[s]")


def run_level(level: str, args) -> tuple[dict, dict, pd.DataFrame, float]:
    started = time.perf_counter()
    data_dir = args.work / f"agreement_{level}"
    generate(data_dir, args.members, args.seed, args.enrichment, level)
    data, candidates, persons, events = load(data_dir)
    rules = load_rules()
    ids = pd.Index(candidates)
    result = build_features(events, persons, pd.Series(END, index=ids), data.codes, rules=rules)
    truth_persons = pd.read_parquet(data_dir / "truth" / "persons.parquet")
    truth_lines = pd.read_parquet(data_dir / "truth" / "lines.parquet")
    truth_elig = pd.read_parquet(data_dir / "truth" / "eligibility.parquet")
    truth_elig["claims_visible_date"] = claims_visible_dates(truth_elig, truth_lines, truth_persons, events, data.codes)
    spans = events[events["kind"] == "enrollment"][["person_id", "date", "end_date"]].astype({"person_id": str})
    line_figures, per_member = compare_lines(result, truth_persons, truth_lines, spans)
    grid = pd.date_range(GRID_START, END, freq="ME")
    in_cohort = pd.Index(result.cohort.loc[result.cohort["in_cohort"], "person_id"])
    cohort_events = events[events["person_id"].isin(in_cohort)].reset_index(drop=True)
    cohort_persons = persons[persons["person_id"].isin(in_cohort)].reset_index(drop=True)
    derived = first_eligibility(cohort_events, cohort_persons, data.codes, rules, grid, in_cohort)
    views = {view: compare_eligibility(derived, truth_elig, view) for view in VIEWS}
    views = {view: (figures, assign_causes(pairs, truth_lines, truth_persons)) for view, (figures, pairs) in views.items()}
    return line_figures, views, per_member, time.perf_counter() - started


def assign_causes(pairs: pd.DataFrame, truth_lines: pd.DataFrame, truth_persons: pd.DataFrame) -> pd.DataFrame:
    """Name the likely cause of each disagreeing pair from the truth (rules checked on examples by hand).

    ``next_line`` is the first truth line (or CAR T work-up, seen as apheresis) starting after the
    truth date while enrolled: for lymphoma, claims show a progression only then (no relapse ICD-10
    code; remission codes exist only from FY2025).
    """
    people = truth_persons.assign(person_id=truth_persons["person_id"].astype(str)).set_index("person_id")
    pairs = pairs.copy()
    pairs["disease"] = pairs["person_id"].map(people["disease"])
    car_t = pairs["person_id"].map(people["car_t_date"])
    death = pairs["person_id"].map(people["death_date"])
    lag = _lag_months(pairs)
    lines = truth_lines[truth_lines["enrolled"]].assign(person_id=lambda f: f["person_id"].astype(str))
    first_end = truth_lines[truth_lines["line_number"] == 1].assign(person_id=lambda f: f["person_id"].astype(str)).set_index("person_id")["end_date"]
    by_person = {p: g["start_date"].sort_values().to_numpy(dtype="datetime64[s]") for p, g in lines.groupby("person_id")}
    causes = []
    for row, months, infused, died in zip(pairs.rename(columns={"_merge": "side"}).itertuples(index=False), lag, car_t, death):
        starts = by_person.get(row.person_id, np.array([], dtype="datetime64[s]"))
        truth_day = np.datetime64(row.truth_date, "s") if pd.notna(row.truth_date) else None
        later = starts[starts > truth_day] if truth_day is not None else starts[:0]
        next_line = pd.Timestamp(later[0]) if len(later) else None
        line1_end = first_end.get(row.person_id)
        if row.side == "both" and months == 0:
            causes.append("")
        elif pd.notna(died) and pd.notna(row.derived_date) and row.derived_date > died and (row.side == "right_only" or months != 0):
            causes.append("derived after the member's death (the engine does not check death before as_of)")
        elif ((row.side == "right_only" or months < 0) and pd.notna(row.derived_date) and (row.disease not in LYMPHOMAS or row.derived_date >= FY2025_MONTH_END)
              and any(0 <= (row.derived_date - pd.Timestamp(d)).days <= 62 for d in starts)):
            causes.append("remission code before a new line, active code on its claims: read as progression after the new line")
        elif row.side == "left_only" and pd.notna(died) and died <= row.truth_date + pd.offsets.MonthEnd(0):
            causes.append("died before the month-end grid date of the truth month (eligible for days only; the grid cannot see it)")
        elif row.side == "left_only" and pd.notna(infused) and infused <= row.truth_date:
            causes.append("after CAR T: the engine does not count the CAR T line as a prior line")
        elif row.disease == "MM" and row.product == "ciltacabtagene autoleucel" and (row.side == "left_only" or months > 0):
            causes.append("MM cilta-cel: lenalidomide-refractory status differs between the claims proxy and the truth")
        elif row.side == "left_only" and next_line is None:
            causes.append("progression never visible: no later line while enrolled (death, end of data or plan exit before the next line)")
        elif (row.side == "left_only" and row.product in ("axicabtagene ciloleucel", "lisocabtagene maraleucel") and line1_end is not None
              and (row.truth_date - line1_end).days <= 365 and (next_line - line1_end).days >= 355):
            causes.append("12-month clock: relapse within 12 months of 1L, next line started about 12 months or more after it")
        elif row.side == "both" and months > 0 and next_line is not None and row.derived_date <= next_line + pd.offsets.MonthEnd(0):
            causes.append("progression visible only at the next line or CAR T work-up (a later month)")
        elif (row.side == "right_only" or months < 0) and isinstance(row.derived_unknown, str) and row.derived_unknown:
            causes.append("engine eligible with unknown criteria open that the truth knows are not met")
        elif row.disease == "MM" and (row.side == "right_only" or months < 0):
            causes.append("MM: class exposure taken from the current, not yet failed line")
        elif row.disease == "B_ALL" and (row.side == "right_only" or months < 0):
            causes.append("B-ALL: refractory proxy (next line <= 90 days after last dose) counts relapse on maintenance")
        else:
            causes.append("other (see the pairs CSV)")
    pairs["cause"] = causes
    return pairs


def features_state() -> str:
    """Which code the engine ran: digest of features/ sources and rules, and files changed since HEAD."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "features").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".csv"):
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    status = subprocess.run(["git", "status", "--porcelain", "--", "features"], cwd=ROOT, capture_output=True, text=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = sorted(line[3:] for line in status.stdout.splitlines())
    return f"features/ digest {digest.hexdigest()[:12]} on HEAD {head or '?'}; uncommitted changes: {', '.join(changed) if changed else 'none'}"


CAUSE_NOTES = [
    "Cause notes (rules in `assign_causes`, checked on printed examples):",
    "",
    "* *progression never visible*: lymphoma has no relapse ICD-10-CM code and remission codes exist only from FY2025, so a "
    "progression followed by death, plan exit or the end of data without a further line leaves no claims signal. Inherent to claims.",
    "* *visible only at the next line or CAR T work-up*: the same, when a later line (or apheresis) shows the progression in a later "
    "grid month than the relapse itself. Inherent; the `derived in the truth month or the next` row absorbs most of it.",
    "* *12-month clock*: the label's \"relapse within 12 months\" is measured in the truth from the relapse, in claims from the next "
    "line's start (`features.relapse`); relapses shortly before 12 months with the next line after it disagree. Inherent proxy.",
    "* *MM: class exposure taken from the current line*: the engine counts drug classes of a line still under way as prior exposure "
    "(e.g. DRd failed, KRd started: no PI in the prior lines, yet cilta-cel flagged). Engine (features/).",
    "* *MM cilta-cel: lenalidomide-refractory status differs*: the claims proxy (progression evidence or a next line on or within 60 "
    "days of the last lenalidomide supply; unknown when progression first shows later) and the truth (progression within 60 days "
    "of the last lenalidomide dose) disagree. Until 2026-11-23 the proxy read False before line 2 (fixed in features/relapse.py).",
    "* *died before the month-end grid date*: the truth is eligible from a progression and the member dies before the end of that "
    "month, where the monthly grid evaluates; the engine rightly reports a dead member as not eligible. Bench grid limit.",
    "* *claims-visible view*: the truth date moved to the first claim that shows the progression (next line while enrolled, "
    "relapse-coded diagnosis, active-disease code after an in-remission code, CAR T apheresis/cell preparation), computed from "
    "the truth and the claims in `claims_visible_dates`, never from the engine. It is an additional comparison that separates "
    "what claims cannot show from engine errors; the headline tables above are unchanged and keep every disagreement.",
    "* *after CAR T*: a progression after a CAR T infusion is a progression after a line of systemic therapy; the engine does not "
    "count the CAR T line among prior lines. Engine (features/).",
    "* *derived after death*: the engine evaluated at an `as_of` after the member's death still flags eligibility. Engine (features/); "
    "a dead member should not be flagged.",
    "* *remission code before a new line*: follow-up visits carry the remission code (myeloma C90.01 always, lymphoma C83.3A ... "
    "from FY2025); the active-disease code on the claims of the line that treats the relapse is read as progression after that "
    "new line, one line too early. Engine (features/): the remission code should also postdate the last line's start.",
    "* *unknown criteria open*: the engine flags eligibility while a criterion is unknown (e.g. Kymriah at a first B-ALL relapse "
    "before line 2 shows whether line 1 was refractory); the truth knows it is not met. Scoring decision: unknowns count as "
    "eligible (the engine's flag), so these are false positives by design of the flag.",
    "* *B-ALL refractory proxy*: `primary_refractory` (next line <= 90 days after the last dose) calls a relapse during POMP "
    "maintenance refractory, which Kymriah's \"refractory or second or later relapse\" does not mean. Engine proxy (features/).",
]


def label_start_months(rules) -> set[tuple[str, pd.Timestamp]]:
    """(product, month end) for every label version's first month in force."""
    return {(r.product_generic, pd.Timestamp(r.in_force_from) + pd.offsets.MonthEnd(0)) for r in rules.rules}


def describe_disagreements(per_member: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """Tally of the kinds of disagreement at one noise level (eligibility: headline view)."""
    starts = label_start_months(load_rules())
    lag = _lag_months(pairs)
    only_derived = pairs["_merge"] == "right_only"
    early = pairs[only_derived | (lag < 0)]
    at_label_start = sum((str(p), pd.Timestamp(d)) in starts for p, d in zip(early["product"], early["derived_date"]))
    found = per_member[per_member["derived_in_cohort"]]
    diff = found["derived_lines"] - found["truth_lines"]
    unobservable = found["truth_lines_all"] != found["truth_lines"]
    gap = found["coverage_gap_during_treatment"]
    with_unknowns = pairs["derived_unknown"].fillna("").ne("")
    rows = [
        ("members with truth lines outside every enrollment span (unobservable)", int(unobservable.sum())),
        ("observable count differs, coverage break during treatment", int(((diff != 0) & gap).sum())),
        ("observable count differs, no coverage break", int(((diff != 0) & ~gap).sum())),
        ("truth member not in derived cohort", int((~per_member["derived_in_cohort"]).sum())),
        ("disease differs", int((found["truth_disease"] != found["derived_disease"]).sum())),
        ("derived more lines than truth", int((diff > 0).sum())),
        ("derived fewer lines than truth", int((diff < 0).sum())),
        ("eligible in both, derived month earlier than truth", int((lag < 0).sum())),
        ("eligible in both, derived one month later than truth", int((lag == 1).sum())),
        ("eligible in both, derived two or more months later than truth", int((lag > 1).sum())),
        ("eligible in truth, never derived", int((pairs["_merge"] == "left_only").sum())),
        ("derived eligible, not in truth", int(only_derived.sum())),
        ("of those: derived with unknown criteria open", int((only_derived & with_unknowns).sum())),
        ("of the derived-earlier or derived-only pairs: first eligible in the month a label version came into force", at_label_start),
    ]
    causes = pairs.loc[pairs["cause"] != "", "cause"].value_counts()
    silent = pairs["cause"].str.startswith("progression never visible")
    truth_side = pairs["_merge"] != "right_only"
    rows.append(("recall leaving out truth pairs whose progression has no later claims signal (%)",
                 round(100 * int((pairs["_merge"] == "both").sum()) / max(int((truth_side & ~silent).sum()), 1), 1)))
    return ["| disagreement | members / pairs |", "|---|---|", *[f"| {name} | {n} |" for name, n in rows], "",
            "| eligibility disagreement by cause (pairs) | n |", "|---|---|", *[f"| {c} | {n} |" for c, n in causes.items()]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--enrichment", type=float, default=20.0)
    parser.add_argument("--levels", default="off,low,medium,high")
    parser.add_argument("--work", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    levels = args.levels.split(",")
    state = features_state()
    outcomes = {level: run_level(level, args) for level in levels}
    line_names = list(next(iter(outcomes.values()))[0])
    elig_names = list(next(iter(outcomes.values()))[1]["claims"][0])

    def fmt(name: str, value) -> str:
        if isinstance(value, (int, np.integer)):
            return f"{value:,}"
        if np.isnan(value):
            return "n/a"
        return f"{value:.1f}" if "days" in name else f"{value:.1%}"

    def table(names: list[str], pick) -> list[str]:
        out = ["| measure | " + " | ".join(f"noise {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
        for name in names:
            out.append(f"| {name} | " + " | ".join(fmt(name, pick(outcomes[lv])[name]) for lv in levels) + " |")
        return out

    text = [
        "# Agreement with the synthetic truth",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`  ",
        f"Run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; populations `cartscout synth --members {args.members} --seed {args.seed} "
        f"--cancer-enrichment {args.enrichment} --noise LEVEL`; evaluation as of {END.date()}, eligibility on month ends "
        f"{GRID_START.date()}..{END.date()}. Targets at noise off: >= 95% exact line counts, >= 95% eligibility agreement.  ",
        f"Engine measured: {state}.",
        "",
        "## Cohort and lines of therapy",
        "",
        *table(line_names, lambda o: o[0]),
        "",
    ]
    for view, (_, _, title) in VIEWS.items():
        text += [f"## First label-eligibility date: {title}", "", *table(elig_names, lambda o, v=view: o[1][v][0]), ""]
    text += ["## Disagreements by kind (eligibility: claims-observable truth)", ""]
    for level in levels:
        text += [f"### noise {level} ({outcomes[level][3]:.0f} s)", "", *describe_disagreements(outcomes[level][2], outcomes[level][1]["claims"][1]), ""]
    text += CAUSE_NOTES
    if state != features_state():
        text += ["", "**features/ changed during the run**: figures may mix engine versions; re-run."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(text) + "\n")
    for level in levels:
        outcomes[level][2].to_csv(args.work / f"agreement_{level}_members.csv")
        for view in VIEWS:
            outcomes[level][1][view][1].to_csv(args.work / f"agreement_{level}_pairs_{view}.csv", index=False)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
