"""Benchmark the cancer cohort and the CAR T eligibility engine: one member and 20k members.

Writes bench/results/eligibility.md. Histories are random but shaped like the real thing: about
300 events per member (diagnosis claims of one target disease plus background codes, anticancer
and supportive drug administrations, procedures), and a treatment summary frame with the columns
``features.relapse.summarise_treatment`` produces. Figures:

* single member: ``assign_cohort`` and ``assess_eligibility`` called for one member, repeated;
  median and p99;
* batch: both functions on 20,000 members at once; total and per member;
* baseline (same run): the same functions called member by member over a sample, i.e. what a
  per-member Python loop over the population would cost.

Usage: python bench/bench_eligibility.py [--members 20000] [--repeats 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.codelists import load_codelists  # noqa: E402
from features.cohort import assign_cohort  # noqa: E402
from features.eligibility import assess_eligibility, load_rules  # noqa: E402
from features.events import clip_to_as_of, conform_events, conform_persons  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "eligibility.md"
DISEASE_CODES = ["C8338", "C8330", "C8210", "C8310", "C9110", "C9100", "C9000", "C8300", "C8840", "C8240", "C8522"]
BACKGROUND = ["I10", "E119", "E785", "Z0000", "M545", "J449", "N179", "K219"]
DRUGS = ["J9312", "J9000", "J9070", "J9370", "J9033", "J9041", "J9145", "J9039", "J1100", "J2505", "J9045", "J9181"]


def make_population(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.DataFrame]:
    """Events (~300 per member), persons, as_of and a treatment summary for ``n`` members."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:07d}" for i in range(n)], dtype=object)
    per = rng.integers(250, 350, n)
    person = np.repeat(ids, per)
    total = len(person)
    start = np.datetime64("2019-01-01")
    day = start + rng.integers(0, 6 * 365, total).astype("timedelta64[D]")
    kind = rng.choice(np.array(["diagnosis", "drug_admin", "procedure"], dtype=object), total, p=[0.5, 0.35, 0.15])
    disease_of_member = rng.choice(np.array(DISEASE_CODES, dtype=object), n)
    member_code = np.repeat(disease_of_member, per)
    dx_code = np.where(rng.random(total) < 0.2, member_code, rng.choice(np.array(BACKGROUND, dtype=object), total))
    drug_code = rng.choice(np.array(DRUGS, dtype=object), total)
    code = np.where(kind == "diagnosis", dx_code, np.where(kind == "drug_admin", drug_code, "99213"))
    system = np.where(kind == "diagnosis", "icd10cm", "hcpcs")
    setting = rng.choice(np.array(["office", "outpatient", "inpatient"], dtype=object), total, p=[0.6, 0.3, 0.1])
    events = conform_events(pd.DataFrame({"person_id": person, "kind": kind, "date": day, "code_system": system,
                                          "code": code, "setting": setting}))
    persons = conform_persons(pd.DataFrame({"person_id": ids, "birth_date": start - rng.integers(18 * 365, 85 * 365, n).astype("timedelta64[D]")}))
    as_of = pd.Series(pd.Timestamp("2025-06-01"), index=pd.Index(ids, dtype="string"))
    lines = rng.integers(0, 5, n)
    flags = {c: rng.random(n) < 0.5 for c in ("exposed_anti_cd20", "exposed_anthracycline", "exposed_btki", "exposed_bcl2i",
                                             "exposed_imid", "exposed_pi", "exposed_anti_cd38", "exposed_bispecific", "exposed_alkylator")}
    gap = rng.integers(30, 900, n).astype(float)
    treatment = pd.DataFrame({
        "person_id": ids, "prior_lines": lines, "line1_start": pd.NaT, "line1_end": pd.NaT, "line2_start": pd.NaT,
        "days_line1_end_to_line2_start": np.where(lines >= 2, gap, np.nan),
        "early_relapse": pd.array(np.where(lines >= 2, gap <= 365, None), dtype="boolean"),
        "primary_refractory": pd.array(np.where(lines >= 2, gap <= 90, None), dtype="boolean"),
        "progressed_after_last_line": rng.random(n) < 0.4, "progression_evidence": "relapse code",
        **flags, "triple_class_exposed": flags["exposed_imid"] & flags["exposed_pi"] & flags["exposed_anti_cd38"],
        "lenalidomide_refractory": pd.array(rng.random(n) < 0.3, dtype="boolean"), "prior_asct": False,
        "car_t_received": False, "car_t_date": pd.NaT, "line1_regimen": "R-CHOP",
        "days_since_last_line_start": 100.0, "days_since_last_treatment": 30.0,
    })
    return events, persons, as_of, treatment


def time_calls(fn, repeats: int, clock=time.perf_counter) -> list[float]:
    """Milliseconds per call; ``clock=time.thread_time`` gives CPU time, which load on a shared machine inflates far less."""
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append((clock() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--baseline-members", type=int, default=200)
    args = parser.parse_args()
    codes, rules = load_codelists(), load_rules()
    events, persons, as_of, treatment = make_population(args.members)
    events = clip_to_as_of(events, as_of)

    # one member: pick an in-cohort member so every eligibility rule of its disease runs
    cohort_all = assign_cohort(events, persons, as_of, codes)
    pid = cohort_all.loc[cohort_all["in_cohort"] & (cohort_all["disease"] == "LBCL"), "person_id"].iloc[0]
    ev1 = events[events["person_id"] == pid].reset_index(drop=True)
    p1 = persons[persons["person_id"] == pid].reset_index(drop=True)
    t1 = treatment[treatment["person_id"] == pid].reset_index(drop=True)
    a1 = as_of.loc[[pid]]
    c1 = assign_cohort(ev1, p1, a1, codes)
    single_cohort = time_calls(lambda: assign_cohort(ev1, p1, a1, codes), args.repeats)
    single_elig = time_calls(lambda: assess_eligibility(p1, c1, t1, a1, rules), args.repeats)
    cpu_cohort = time_calls(lambda: assign_cohort(ev1, p1, a1, codes), args.repeats, time.thread_time)
    cpu_elig = time_calls(lambda: assess_eligibility(p1, c1, t1, a1, rules), args.repeats, time.thread_time)

    batch_times, batch_cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.thread_time()
        c = assign_cohort(events, persons, as_of, codes)
        t1_, c1_ = time.perf_counter(), time.thread_time()
        assess_eligibility(persons, c, treatment, as_of, rules)
        t2, c2 = time.perf_counter(), time.thread_time()
        batch_times.append(((t1_ - t0) * 1000, (t2 - t1_) * 1000))
        batch_cpu.append(((c1_ - c0) * 1000, (c2 - c1_) * 1000))
    cohort_ms = statistics.median(b[0] for b in batch_times)
    elig_ms = statistics.median(b[1] for b in batch_times)
    cohort_cpu = statistics.median(b[0] for b in batch_cpu)
    elig_cpu = statistics.median(b[1] for b in batch_cpu)

    sample = list(as_of.index[: args.baseline_members])
    grouped = {pid_: g.reset_index(drop=True) for pid_, g in events[events["person_id"].isin(sample)].groupby("person_id")}
    t0 = time.perf_counter()
    for pid_ in sample:
        a = as_of.loc[[pid_]]
        p_ = persons[persons["person_id"] == pid_]
        c_ = assign_cohort(grouped.get(pid_, events.iloc[:0]), p_, a, codes)
        assess_eligibility(p_, c_, treatment[treatment["person_id"] == pid_], a, rules)
    loop_per_member = (time.perf_counter() - t0) * 1000 / len(sample)

    def q(xs, p):
        return float(np.percentile(xs, p))

    # a fixed numpy workload timed in the same run: this machine is shared, so absolute figures
    # drift with load; the reference lets runs be compared
    reference = time_calls(lambda: np.sort(np.random.default_rng(0).random(200_000)), 50)
    load = os.getloadavg()
    n = args.members
    batch_per_member = (cohort_ms + elig_ms) / n
    lines = [
        "# Cohort and eligibility benchmark",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.machine()}, {platform.python_version()}, "
        f"pandas {pd.__version__}, numpy {np.__version__}.",
        f"Command: `.venv/bin/python bench/bench_eligibility.py --members {n} --repeats {args.repeats} "
        f"--baseline-members {args.baseline_members}`",
        "",
        f"Load average during the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) on 2 cores; reference "
        f"workload (numpy sort of 200k floats) {statistics.median(reference):.2f} ms median. Scale figures by the "
        "reference when comparing runs.",
        "",
        f"Random histories, {len(events) / n:.0f} events per member, {int(cohort_all['in_cohort'].sum())} of {n} in the cohort; "
        f"{len(rules.rules)} rules, {len(rules.products)} products.",
        "",
        "| measurement | wall median ms | wall p99 ms | CPU median ms | CPU p99 ms |",
        "|---|---|---|---|---|",
        f"| one member: assign_cohort ({len(ev1)} events) | {statistics.median(single_cohort):.2f} | {q(single_cohort, 99):.2f} "
        f"| {statistics.median(cpu_cohort):.2f} | {q(cpu_cohort, 99):.2f} |",
        f"| one member: assess_eligibility (LBCL, 7 products) | {statistics.median(single_elig):.2f} | {q(single_elig, 99):.2f} "
        f"| {statistics.median(cpu_elig):.2f} | {q(cpu_elig, 99):.2f} |",
        "",
        "| batch | wall total ms | wall per member ms | CPU total ms | CPU per member ms |",
        "|---|---|---|---|---|",
        f"| assign_cohort, {n} members ({len(events)} events) | {cohort_ms:.0f} | {cohort_ms / n:.4f} | {cohort_cpu:.0f} | {cohort_cpu / n:.4f} |",
        f"| assess_eligibility, {n} members ({n * len(rules.products)} rows) | {elig_ms:.0f} | {elig_ms / n:.4f} | {elig_cpu:.0f} | {elig_cpu / n:.4f} |",
        f"| both, batch | {cohort_ms + elig_ms:.0f} | {batch_per_member:.4f} | {cohort_cpu + elig_cpu:.0f} | {(cohort_cpu + elig_cpu) / n:.4f} |",
        f"| baseline: both called member by member ({len(sample)} members) | - | {loop_per_member:.3f} | - | - |",
        "",
        f"Batch vs member-by-member loop: {loop_per_member / batch_per_member:.0f}x cheaper per member. "
        f"Extrapolated to 1M members: cohort + eligibility ~{batch_per_member * 1e6 / 1000:.0f} s in batch "
        f"vs ~{loop_per_member * 1e6 / 1000 / 60:.0f} min in a per-member loop.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
