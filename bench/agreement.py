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
  grid month that follows the truth date (the best a monthly grid can do).

Writes bench/results/agreement.md, with the disagreement causes tallied per member.

Usage:
    python bench/agreement.py [--members 20000] [--seed 11] [--enrichment 20] [--levels off,low,medium,high]
"""

from __future__ import annotations

import argparse
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


def enrolled_on(spans: pd.DataFrame, person: pd.Series, day: pd.Series) -> np.ndarray:
    """True where ``day`` falls inside one of the person's enrollment spans (claims can see it)."""
    frame = pd.DataFrame({"person_id": person.astype(str).to_numpy(), "day": pd.to_datetime(day).astype("datetime64[s]").to_numpy(), "row": np.arange(len(person))})
    joined = frame.merge(spans, on="person_id", how="inner")
    inside = joined[(joined["day"] >= joined["date"]) & (joined["day"] <= joined["end_date"])]["row"].unique()
    out = np.zeros(len(person), dtype=bool)
    out[inside] = True
    return out


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
    # starting outside every enrollment span are unobservable and are scored separately.
    t_lines = t_all[enrolled_on(spans, t_all["person_id"], t_all["start_date"])]
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
    merged = t_lines.merge(d_lines[["person_id", "line_number", "start_date"]], on=["person_id", "line_number"], suffixes=("_truth", "_derived"))
    error_days = (merged["start_date_derived"] - merged["start_date_truth"].astype("datetime64[s]")).dt.days.abs()
    figures = {
        "truth cohort members": len(ids),
        "derived cohort members": len(all_derived),
        "cohort recall (truth members found)": derived_in.mean(),
        "cohort precision (derived members with a truth disease)": len(all_derived & set(ids)) / max(len(all_derived), 1),
        "disease agrees (truth members found)": (per_member.loc[derived_in, "truth_disease"] == per_member.loc[derived_in, "derived_disease"]).mean(),
        "exact line count vs all truth lines": (t_count_all == d_count).mean(),
        "exact line count vs observable truth lines (started while enrolled)": (t_count == d_count).mean(),
        "exact line count, observable, members without a coverage break during treatment": (t_count == d_count)[~gap].mean(),
        "line start abs. error median days (lines matched by number)": float(error_days.median()) if len(error_days) else float("nan"),
        "line start exact (share of matched lines)": float((error_days == 0).mean()) if len(error_days) else float("nan"),
    }
    return figures, per_member


def first_eligibility(events, persons, codes, rules, grid: pd.DatetimeIndex, ids: pd.Index) -> pd.DataFrame:
    """First grid date each (person, product) is label-eligible, evaluating the pipeline at every grid date."""
    found: dict[tuple[str, str], pd.Timestamp] = {}
    for day in grid:
        result = build_features(events, persons, pd.Series(day, index=ids), codes, rules=rules)
        eligible = result.eligibility[result.eligibility["eligible"]]
        for person, product in zip(eligible["person_id"], eligible["product"]):
            found.setdefault((str(person), str(product)), day)
    return pd.DataFrame([(p, q, d) for (p, q), d in found.items()], columns=["person_id", "product", "derived_date"])


def compare_eligibility(derived: pd.DataFrame, truth: pd.DataFrame, spans: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    truth = truth[truth["first_eligible_date"] <= END].copy()
    truth["person_id"] = truth["person_id"].astype(str)
    # A first-eligibility date outside enrollment cannot be seen in claims (the generator follows the patient).
    observable = enrolled_on(spans, truth["person_id"], truth["first_eligible_date"])
    unobservable = truth[~observable]
    truth = truth[observable]
    derived = derived[~derived.set_index(["person_id", "product"]).index.isin(unobservable.set_index(["person_id", "product"]).index)]
    pairs = truth.merge(derived, on=["person_id", "product"], how="outer", indicator=True)
    both = pairs[pairs["_merge"] == "both"]
    expected_month_end = both["first_eligible_date"].astype("datetime64[s]") + pd.offsets.MonthEnd(0)
    on_time = (both["derived_date"] == expected_month_end)
    n_truth, n_derived = int((pairs["_merge"] != "right_only").sum()), int((pairs["_merge"] != "left_only").sum())
    figures = {
        "truth eligible pairs, unobservable (first date outside enrollment)": len(unobservable),
        "truth eligible pairs, observable (person x product)": n_truth,
        "derived eligible pairs": n_derived,
        "precision (ever eligible)": len(both) / max(n_derived, 1),
        "recall (ever eligible)": len(both) / max(n_truth, 1),
        "first-eligibility month agrees (share of truth pairs)": on_time.sum() / max(n_truth, 1),
        "first-eligibility abs. error median days (pairs found)": float((both["derived_date"] - expected_month_end).dt.days.abs().median()) if len(both) else float("nan"),
    }
    return figures, pairs


def run_level(level: str, args) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame, float]:
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
    spans = events[events["kind"] == "enrollment"][["person_id", "date", "end_date"]].astype({"person_id": str})
    line_figures, per_member = compare_lines(result, truth_persons, truth_lines, spans)
    grid = pd.date_range(GRID_START, END, freq="ME")
    in_cohort = pd.Index(result.cohort.loc[result.cohort["in_cohort"], "person_id"])
    cohort_events = events[events["person_id"].isin(in_cohort)].reset_index(drop=True)
    cohort_persons = persons[persons["person_id"].isin(in_cohort)].reset_index(drop=True)
    derived = first_eligibility(cohort_events, cohort_persons, data.codes, rules, grid, in_cohort)
    elig_figures, pairs = compare_eligibility(derived, truth_elig, spans)
    return line_figures, elig_figures, per_member, pairs, time.perf_counter() - started


def _timing(pairs: pd.DataFrame) -> pd.Series:
    """Derived grid date minus the grid date that follows the truth date, in days (pairs in both)."""
    both = pairs[pairs["_merge"] == "both"]
    expected = both["first_eligible_date"].astype("datetime64[s]") + pd.offsets.MonthEnd(0)
    return (both["derived_date"] - expected).dt.days


def label_start_months(rules) -> set[tuple[str, pd.Timestamp]]:
    """(product, month end) for every label version's first month in force."""
    return {(r.product_generic, pd.Timestamp(r.in_force_from) + pd.offsets.MonthEnd(0)) for r in rules.rules}


def describe_disagreements(per_member: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """Tally of the kinds of disagreement at one noise level."""
    starts = label_start_months(load_rules())
    early = pairs[(pairs["_merge"] == "right_only") | ((pairs["_merge"] == "both") & (pairs.index.isin(_timing(pairs).index[_timing(pairs) < 0])))]
    at_label_start = sum((str(p), pd.Timestamp(d)) in starts for p, d in zip(early["product"], early["derived_date"]))
    found = per_member[per_member["derived_in_cohort"]]
    diff = found["derived_lines"] - found["truth_lines"]
    unobservable = found["truth_lines_all"] != found["truth_lines"]
    gap = found["coverage_gap_during_treatment"]
    rows = [
        ("truth lines start after the member left the plan (unobservable)", int(unobservable.sum())),
        ("observable count differs, coverage break during treatment", int(((diff != 0) & gap).sum())),
        ("observable count differs, no coverage break", int(((diff != 0) & ~gap).sum())),
        ("truth member not in derived cohort", int((~per_member["derived_in_cohort"]).sum())),
        ("disease differs", int((found["truth_disease"] != found["derived_disease"]).sum())),
        ("derived more lines than truth", int((diff > 0).sum())),
        ("derived fewer lines than truth", int((diff < 0).sum())),
        ("eligible in both, derived month earlier than truth", int(_timing(pairs) .lt(0).sum())),
        ("eligible in both, derived month later than truth", int(_timing(pairs).gt(0).sum())),
        ("eligible in truth, never derived", int((pairs["_merge"] == "left_only").sum())),
        ("derived eligible, not in truth", int((pairs["_merge"] == "right_only").sum())),
        ("of the derived-earlier or derived-only pairs: first eligible in the month a label version came into force", at_label_start),
    ]
    return ["| disagreement | members / pairs |", "|---|---|", *[f"| {name} | {n} |" for name, n in rows]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--enrichment", type=float, default=20.0)
    parser.add_argument("--levels", default="off,low,medium,high")
    parser.add_argument("--work", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    levels = args.levels.split(",")
    outcomes = {level: run_level(level, args) for level in levels}
    line_names = list(next(iter(outcomes.values()))[0])
    elig_names = list(next(iter(outcomes.values()))[1])

    def fmt(name: str, value) -> str:
        if isinstance(value, (int, np.integer)):
            return f"{value:,}"
        if np.isnan(value):
            return "n/a"
        return f"{value:.1f}" if "days" in name else f"{value:.1%}"

    def table(names: list[str], index: int) -> list[str]:
        out = ["| measure | " + " | ".join(f"noise {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
        for name in names:
            out.append(f"| {name} | " + " | ".join(fmt(name, outcomes[lv][index][name]) for lv in levels) + " |")
        return out

    text = [
        "# Agreement with the synthetic truth",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`  ",
        f"Run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; populations `cartscout synth --members {args.members} --seed {args.seed} "
        f"--cancer-enrichment {args.enrichment} --noise LEVEL`; evaluation as of {END.date()}, eligibility on month ends "
        f"{GRID_START.date()}..{END.date()}. Targets at noise off: >= 95% exact line counts, >= 95% eligibility agreement.",
        "",
        "## Cohort and lines of therapy",
        "",
        *table(line_names, 0),
        "",
        "## First label-eligibility date",
        "",
        *table(elig_names, 1),
        "",
        "## Disagreements by kind",
        "",
    ]
    for level in levels:
        text += [f"### noise {level} ({outcomes[level][4]:.0f} s)", "", *describe_disagreements(outcomes[level][2], outcomes[level][3]), ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(text) + "\n")
    for level in levels:
        outcomes[level][2].to_csv(args.work / f"agreement_{level}_members.csv")
        outcomes[level][3].to_csv(args.work / f"agreement_{level}_pairs.csv", index=False)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
