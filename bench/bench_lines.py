"""Benchmark lines of therapy (``derive_lines``) and the treatment summary (``summarise_treatment``).

Writes bench/results/lines.md. Histories are built from seeded treatment templates shaped like the
real diseases (LBCL R-CHOP -> R-ICE + BEAM + ASCT -> CAR T; FL BR + rituximab maintenance -> R2;
MM VRd + ASCT + lenalidomide maintenance -> DRd -> teclistamab; CLL ibrutinib -> venetoclax; B-ALL
multiphase -> blinatumomab), each padded with diagnosis, visit, supportive-drug and imaging
claims, then copied with random date shifts and new ids to make a population. Figures:

* single member (~300 events, ~100 of them drug events): both functions, repeated; median and p99;
* batch: both functions on N members at once (default 20,000 cancer-cohort members); total and
  per member;
* baseline (same run): the same functions called member by member over a sample, i.e. what a
  per-member Python loop over the population would cost.

With ``--baseline DIR`` (a directory holding older ``lines.py`` and ``relapse.py``, e.g. from
``git show HEAD:features/lines.py``), the single-member and batch figures are also measured for
that version in the same process, calls alternating, with the ratio: the before/after comparison
that holds on a shared machine.

Usage: python bench/bench_lines.py [--members 20000] [--repeats 1000] [--baseline DIR]
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

import numba
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.codelists import load_codelists  # noqa: E402
from features.events import clip_to_as_of, conform_events  # noqa: E402
from features.lines import derive_lines  # noqa: E402
from features.relapse import summarise_treatment  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "lines.md"
# Fictitious NDCs (labeler 99999) for the oral drugs, supplied through an operator crosswalk.
ORAL = {"lenalidomide": "99999000101", "ibrutinib": "99999000201", "venetoclax": "99999000301", "mercaptopurine": "99999000401", "prednisone": "99999000501", "ondansetron": "99999000601"}
HCPCS = {
    "rituximab": "J9312", "rituximab-abbs": "Q5115", "cyclophosphamide": "J9070", "doxorubicin": "J9000", "vincristine": "J9370",
    "ifosfamide": "J9208", "carboplatin": "J9045", "etoposide": "J9181", "carmustine": "J9050", "cytarabine": "J9100",
    "melphalan": "J9245", "bendamustine": "J9033", "bortezomib": "J9041", "daratumumab": "J9144", "teclistamab": "J9380",
    "blinatumomab": "J9039", "daunorubicin": "J9150", "pegaspargase": "J9266", "methotrexate": "J9250", "dexamethasone": "J1100",
    "pegfilgrastim": "J2505", "fludarabine": "J9185", "axi-cel": "Q2041", "mesna": "J9209",
}  # fmt: skip
BACKGROUND_DX = ["I10", "E119", "E785", "Z0000", "M545", "J449", "N179", "K219", "D649", "R5383"]


class _History:
    def __init__(self, rng: np.random.Generator, disease_code: str):
        self.rows: list[tuple] = []
        self.rng = rng
        self.dx_code = disease_code

    def drug(self, day: int, name: str) -> None:
        self.rows.append(("drug_admin", day, "hcpcs", HCPCS[name], pd.NA))

    def fill(self, day: int, name: str, supply: int) -> None:
        self.rows.append(("drug_fill", day, "ndc", ORAL[name], supply))

    def proc(self, day: int, code: str, system: str = "hcpcs") -> None:
        self.rows.append(("procedure", day, system, code, pd.NA))

    def cycles(self, start: int, names: list[str], n: int, every: int) -> int:
        day = start
        for _ in range(n):
            for name in names:
                self.drug(day, name)
            self.drug(day + 1, "pegfilgrastim")
            self.rows.append(("diagnosis", day, "icd10cm", self.dx_code, pd.NA))
            day += every + int(self.rng.integers(0, 8))
        return day

    def oral(self, start: int, name: str, months: int) -> int:
        day = start
        for _ in range(months):
            self.fill(day, name, 28)
            day += 28 + int(self.rng.integers(0, 6))
        return day

    def pad(self, end: int, total: int) -> None:
        while len(self.rows) < total:
            day = int(self.rng.integers(-60, end + 30))
            kind = self.rng.integers(0, 4)
            if kind == 0:
                self.rows.append(("diagnosis", day, "icd10cm", self.dx_code, pd.NA))
            elif kind == 1:
                self.rows.append(("diagnosis", day, "icd10cm", str(self.rng.choice(BACKGROUND_DX)), pd.NA))
            elif kind == 2:
                self.proc(day, str(self.rng.choice(["99213", "99214", "78815", "85025", "80053"])))
            else:
                self.fill(day, "ondansetron", 10)


def template(kind: int, rng: np.random.Generator, total: int) -> list[tuple]:
    """One treatment history (rows of kind, day, system, code, days_supply) of about ``total`` rows."""
    if kind == 0:  # LBCL
        h = _History(rng, "C8338")
        h.fill(-5, "prednisone", 5)
        end = h.cycles(0, ["rituximab", "cyclophosphamide", "doxorubicin", "vincristine"], int(rng.integers(4, 7)), 21)
        start2 = end + int(rng.integers(60, 300))
        end = h.cycles(start2, ["rituximab-abbs", "ifosfamide", "carboplatin", "etoposide", "mesna"], 2, 21)
        for d, name in ((end + 20, "carmustine"), (end + 21, "etoposide"), (end + 22, "cytarabine"), (end + 25, "melphalan")):
            h.drug(d, name)
        h.proc(end + 27, "38241")
        aph = end + 27 + int(rng.integers(90, 200))
        h.proc(aph, "38225")
        h.cycles(aph + 7, ["bendamustine", "rituximab"], 1, 21)
        h.drug(aph + 30, "fludarabine")
        h.drug(aph + 30, "cyclophosphamide")
        h.drug(aph + 35, "axi-cel")
        end = aph + 35
    elif kind == 1:  # FL
        h = _History(rng, "C8210")
        end = h.cycles(0, ["bendamustine", "rituximab"], 6, 28)
        end = h.cycles(end + 56, ["rituximab"], 12, 56)
        start2 = end + int(rng.integers(100, 400))
        h.cycles(start2, ["rituximab"], 5, 28)
        end = h.oral(start2, "lenalidomide", 12)
    elif kind == 2:  # MM
        h = _History(rng, "C9000")
        end = h.cycles(0, ["bortezomib", "dexamethasone"], 6, 21)
        h.oral(0, "lenalidomide", 5)
        h.drug(end + 30, "melphalan")
        h.proc(end + 32, "38241")
        end = h.oral(end + 120, "lenalidomide", int(rng.integers(6, 24)))
        end = h.cycles(end + 10, ["daratumumab", "dexamethasone"], 8, 28)
        h.cycles(end + 40, ["teclistamab"], 10, 7)
    elif kind == 3:  # CLL
        h = _History(rng, "C9110")
        end = h.oral(0, "ibrutinib", int(rng.integers(12, 30)))
        end = h.oral(end + int(rng.integers(0, 60)), "venetoclax", 12)
    else:  # B-ALL
        h = _History(rng, "C9100")
        end = h.cycles(0, ["vincristine", "daunorubicin", "pegaspargase", "dexamethasone"], 4, 7)
        end = h.cycles(end + 14, ["cyclophosphamide", "cytarabine", "methotrexate"], 4, 14)
        end = h.oral(end + 14, "mercaptopurine", 18)
        h.cycles(end + 120, ["blinatumomab"], 3, 42)
        end += 250
    h.pad(end, total)
    return h.rows


def make_population(n: int, seed: int = 11, per_member: int = 300) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """Events, as_of and diseases for ``n`` members built from 60 templates with date shifts."""
    rng = np.random.default_rng(seed)
    diseases = np.array(["LBCL", "FL", "MM", "CLL_SLL", "B_ALL"], dtype=object)
    templates = [(k % 5, template(k % 5, rng, per_member)) for k in range(60)]
    pick = rng.integers(0, len(templates), n)
    base = np.datetime64("2018-01-01") + rng.integers(0, 1500, n).astype("timedelta64[D]")
    frames = []
    for t, (kind, rows) in enumerate(templates):
        members = np.flatnonzero(pick == t)
        if len(members) == 0:
            continue
        table = pd.DataFrame(rows, columns=["kind", "day", "code_system", "code", "days_supply"])
        reps = len(members)
        frames.append(
            pd.DataFrame(
                {
                    "person_id": np.repeat(np.array([f"P{m:07d}" for m in members], dtype=object), len(table)),
                    "kind": np.tile(table["kind"].to_numpy(dtype=object), reps),
                    "date": np.repeat(base[members], len(table)) + np.tile(table["day"].to_numpy(dtype=np.int64), reps).astype("timedelta64[D]"),
                    "code_system": np.tile(table["code_system"].to_numpy(dtype=object), reps),
                    "code": np.tile(table["code"].to_numpy(dtype=object), reps),
                    "days_supply": np.tile(table["days_supply"].to_numpy(dtype=object), reps),
                }
            )
        )
    events = conform_events(pd.concat(frames, ignore_index=True))
    ids = pd.Index([f"P{m:07d}" for m in range(n)], name="person_id")
    as_of = pd.Series(base + np.int64(2000), index=ids).astype("datetime64[s]")
    disease = pd.Series([diseases[templates[p][0]] for p in pick], index=ids)
    return clip_to_as_of(events, as_of), as_of, disease, events


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per call (CPU time is what the process used: robust to a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def once(fn) -> tuple[object, float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - start_cpu


def load_baseline(directory: Path):
    """Import an older lines.py and relapse.py (the latter reading the former) under other names."""
    import importlib.util
    import tempfile

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    lines = load("baseline_lines", directory / "lines.py")
    relapse_text = (directory / "relapse.py").read_text().replace("from features.lines import", "from baseline_lines import")
    target = Path(tempfile.mkdtemp()) / "baseline_relapse.py"  # a real file: numba caches by source file
    target.write_text(relapse_text)
    return lines, load("baseline_relapse", target)


def alternating(pairs: list[tuple[str, object]], repeats: int) -> dict[str, list[float]]:
    """CPU milliseconds per call of each function, the functions called in turn (same load for all)."""
    out: dict[str, list[float]] = {name: [] for name, _ in pairs}
    for i in range(repeats):
        for name, fn in pairs if i % 2 else pairs[::-1]:
            start = time.process_time()
            fn()
            out[name].append((time.process_time() - start) * 1000)
    return out


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--loop-sample", type=int, default=300)
    parser.add_argument("--baseline", type=Path, default=None, help="directory with older lines.py and relapse.py to compare against")
    args = parser.parse_args()

    crosswalk = pd.DataFrame({"ndc_code": list(ORAL.values()), "generic": list(ORAL)})
    codes = load_codelists().with_ndc_crosswalk(crosswalk)
    events, as_of, disease, _ = make_population(args.members)

    one_id = as_of.index[0]
    one = events[events["person_id"] == one_id].reset_index(drop=True)
    one_as_of, one_dis = as_of.iloc[:1], disease.iloc[:1]
    n_drug = int(one["kind"].isin(["drug_admin", "drug_fill"]).sum())
    derive_lines(one, one_dis, one_as_of, codes)  # compile / warm caches
    lines_one = derive_lines(one, one_dis, one_as_of, codes)
    summarise_treatment(lines_one, one, one_dis, one_as_of, codes)

    load_before = os.getloadavg()
    t_lines = timed(lambda: derive_lines(one, one_dis, one_as_of, codes), args.repeats)
    t_summary = timed(lambda: summarise_treatment(lines_one, one, one_dis, one_as_of, codes), args.repeats)
    t_both = timed(lambda: summarise_treatment(derive_lines(one, one_dis, one_as_of, codes), one, one_dis, one_as_of, codes), args.repeats)

    lines, batch_lines, cpu_lines = once(lambda: derive_lines(events, disease, as_of, codes))
    summary, batch_summary, cpu_summary = once(lambda: summarise_treatment(lines, events, disease, as_of, codes))

    sample = as_of.index[: args.loop_sample]
    by_person = {p: g.reset_index(drop=True) for p, g in events[events["person_id"].isin(sample)].groupby("person_id")}

    def loop() -> None:
        for p in sample:
            ev = by_person[p]
            lo = derive_lines(ev, disease.loc[[p]], as_of.loc[[p]], codes)
            summarise_treatment(lo, ev, disease.loc[[p]], as_of.loc[[p]], codes)

    _, loop_wall, loop_cpu = once(loop)
    loop_per_member = loop_cpu / len(sample) * 1000
    load_after = os.getloadavg()

    n = args.members
    per_member_batch = (cpu_lines + cpu_summary) / n * 1000

    def row(name: str, t: tuple[list[float], list[float]]) -> str:
        wall, cpu = t
        return f"| {name} | {statistics.median(cpu):.3f} | {p99(cpu):.3f} | {statistics.median(wall):.3f} | {p99(wall):.3f} |"

    text = f"""# lines of therapy and treatment summary benchmark

Command: `python bench/bench_lines.py --members {n} --repeats {args.repeats}{f' --baseline {args.baseline}' if args.baseline else ''}`
Run: {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}; Python {platform.python_version()}, pandas {pd.__version__},
numpy {np.__version__}, numba {numba.__version__}; {platform.machine()}, {os.cpu_count()} cores.
Load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after: {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}.
CPU time is the time this process used; wall time also counts waiting for a core, so on a shared,
busy machine (load above the core count) CPU time is the figure to compare.

## Single member ({len(one)} events, {n_drug} drug events, {len(lines_one)} lines), {args.repeats} repeats

| step | CPU median ms | CPU p99 ms | wall median ms | wall p99 ms |
|---|---|---|---|---|
{row("`derive_lines`", t_lines)}
{row("`summarise_treatment`", t_summary)}
{row("both", t_both)}

## Batch: {n:,} members, {len(events):,} events, {len(lines):,} lines

| step | CPU s | wall s | CPU per member ms |
|---|---|---|---|
| `derive_lines` | {cpu_lines:.2f} | {batch_lines:.2f} | {cpu_lines / n * 1000:.4f} |
| `summarise_treatment` | {cpu_summary:.2f} | {batch_summary:.2f} | {cpu_summary / n * 1000:.4f} |
| both | {cpu_lines + cpu_summary:.2f} | {batch_lines + batch_summary:.2f} | {per_member_batch:.4f} |

Baseline (same run): calling both functions member by member over {len(sample)} members costs
{loop_per_member:.3f} ms CPU per member ({loop_wall / len(sample) * 1000:.3f} ms wall), {loop_per_member / per_member_batch:.0f}x the batch cost per
member; a Python loop over 1M members would take about {loop_per_member * 1e6 / 1000 / 60:.0f} CPU minutes for this step alone.

Lines per member in the batch: {lines.groupby("person_id").size().describe()[["mean", "min", "max"]].round(2).to_dict()};
members with >= 2 prior lines: {int((summary["prior_lines"] >= 2).sum()):,}.
"""
    if args.baseline is not None:
        text += compare_with_baseline(args, codes, events, as_of, disease, one, one_dis, one_as_of)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def compare_with_baseline(args, codes, events, as_of, disease, one, one_dis, one_as_of) -> str:
    """Same-process, alternating single-member and batch figures: baseline versus this version."""
    old_lines, old_relapse = load_baseline(args.baseline)
    versions = {"baseline": (old_lines.derive_lines, old_relapse.summarise_treatment), "current": (derive_lines, summarise_treatment)}
    outputs = {}
    for name, (lines_fn, summary_fn) in versions.items():
        lo = lines_fn(one, one_dis, one_as_of, codes)  # compile / warm caches
        outputs[name] = (lo, summary_fn(lo, one, one_dis, one_as_of, codes))
    same = all(a.equals(b) for a, b in zip(outputs["baseline"], outputs["current"]))
    lines_one = outputs["current"][0]
    single = alternating(
        [
            (f"{name} {step}", (lambda f=fn: f(one, one_dis, one_as_of, codes)) if step == "lines" else (lambda f=fn: f(lines_one, one, one_dis, one_as_of, codes)))
            for name, pair in versions.items()
            for step, fn in zip(("lines", "summary"), pair)
        ],
        args.repeats,
    )
    batch_lines = {name: lines_fn(events, disease, as_of, codes) for name, (lines_fn, _) in versions.items()}
    same_batch = batch_lines["baseline"].equals(batch_lines["current"])
    batch = alternating(
        [(f"{name} lines", lambda f=fn: f(events, disease, as_of, codes)) for name, (fn, _) in versions.items()]
        + [(f"{name} summary", lambda f=fn: f(batch_lines["current"], events, disease, as_of, codes)) for name, (_, fn) in versions.items()],
        3,
    )
    rows = []
    for step, label in (("lines", "`derive_lines`"), ("summary", "`summarise_treatment`")):
        b, c = statistics.median(single[f"baseline {step}"]), statistics.median(single[f"current {step}"])
        bb, cb = statistics.median(batch[f"baseline {step}"]), statistics.median(batch[f"current {step}"])
        n = len(as_of)
        rows.append(f"| {label} | {b:.3f} | {c:.3f} | {c / b:.2f} | {bb / n:.4f} | {cb / n:.4f} | {cb / bb:.2f} |")
    table = "\n".join(rows)
    return f"""
## Against the baseline in `{args.baseline}` (same process, calls alternating)

Outputs identical: single member {same}, batch lines {same_batch}. CPU medians; single member over
{args.repeats} calls each, batch ({len(as_of):,} members) over 3 calls each.

| step | baseline ms (1 member) | current ms | ratio | baseline ms/member (batch) | current ms/member | ratio |
|---|---|---|---|---|---|---|
{table}
"""


if __name__ == "__main__":
    main()
