"""Benchmark the treatment steps of the feature pipeline: lines, treatment summary, label eligibility.

Writes bench/results/eligibility.md. The steps are timed with exactly the inputs
``features.pipeline.build_features`` hands them (column mappings), on real-shaped histories: the
cohort members of a synthetic population (``cartscout synth``).

* one member: ``line_columns``, ``treatment_columns`` and ``eligibility_columns`` for the cohort
  member of a disease whose history is closest to 300 events (LBCL has the most label rules, MM
  the most criteria), repeated; median and p99 wall time, median CPU (thread) time;
* per member in a chunk: the same steps on ``--chunk`` members at once (the cohort histories
  repeated under new ids), total divided by the chunk size, median of ``--chunk-repeats`` runs.
  The batch path and the real-time path are the same functions, so this is the batch figure;
* baseline, same run: ``--baseline FILE`` is an earlier copy of ``features/eligibility.py`` (for
  example the committed one, saved to a file); its ``eligibility_columns`` is timed on the same
  inputs, interleaved call by call with the current one so that load on the shared machine hits
  both alike, and the outputs are compared.

Usage:
    python bench/bench_eligibility.py --data DIR [--chunk 2000] [--repeats 400] [--baseline FILE]
``DIR`` from ``cartscout synth --members 50000 --seed 11 --cancer-enrichment 20``; a baseline from
``git show HEAD:features/eligibility.py > /tmp/eligibility_head.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
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

from contract.loading import load_codes, load_directory  # noqa: E402
from contract.scan import find_cohort_candidates  # noqa: E402
from features.cohort import cohort_columns  # noqa: E402
from features.columns import columns_of, frame_from_columns, n_rows  # noqa: E402
from features.eligibility import eligibility_columns, load_rules  # noqa: E402
from features.events import clip_to_as_of  # noqa: E402
from features.lines import line_columns  # noqa: E402
from features.pipeline import _check_as_of, _clip_persons, _cohort_diseases  # noqa: E402
from features.relapse import treatment_columns  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "eligibility.md"
AS_OF = pd.Timestamp("2025-12-31")


class StepInputs:
    """The inputs each step receives inside ``build_features``, computed once."""

    def __init__(self, events: pd.DataFrame, persons: pd.DataFrame, as_of: pd.Series, codes, rules):
        self.codes, self.rules = codes, rules
        self.as_of = _check_as_of(as_of)
        self.events = columns_of(clip_to_as_of(events, self.as_of))
        self.persons = columns_of(_clip_persons(persons, self.as_of))
        self.cohort = cohort_columns(self.events, self.persons, self.as_of, codes)
        self.diseases = _cohort_diseases(self.cohort)
        self.lines = line_columns(self.events, self.diseases, self.as_of, codes)
        self.treatment = treatment_columns(self.lines, self.events, self.diseases, self.as_of, codes)

    def steps(self, baseline=None) -> dict:
        steps = {
            "cohort_columns (cohort.py, for reference)": lambda: cohort_columns(self.events, self.persons, self.as_of, self.codes),
            "line_columns": lambda: line_columns(self.events, self.diseases, self.as_of, self.codes),
            "treatment_columns": lambda: treatment_columns(self.lines, self.events, self.diseases, self.as_of, self.codes),
            "eligibility_columns": lambda: eligibility_columns(self.persons, self.cohort, self.treatment, self.as_of, self.rules),
        }
        if baseline is not None:
            steps["eligibility_columns, baseline"] = lambda: baseline.eligibility_columns(self.persons, self.cohort, self.treatment, self.as_of, self.rules)
        return steps


def time_interleaved(steps: dict, repeats: int, warmup: int = 30) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU milliseconds per call of each step, the steps called in turn each round."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    out = {name: ([], []) for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            out[name][0].append((time.perf_counter() - t0) * 1000)
            out[name][1].append((time.thread_time() - c0) * 1000)
    return out


def pick_member(events: pd.DataFrame, ids, target: int = 300) -> str:
    """The member of ``ids`` whose event count is closest to ``target``."""
    counts = events["person_id"].value_counts()
    counts = counts[counts.index.isin(ids)]
    return str((counts - target).abs().idxmin())


def repeat_members(events: pd.DataFrame, persons: pd.DataFrame, ids: list[str], size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``size`` members: the histories of ``ids`` repeated under new ids (``<id>~<k>``)."""
    ev = events[events["person_id"].isin(ids)]
    pe = persons[persons["person_id"].isin(ids)]
    copies = -(-size // len(ids))
    keep = set(f"{p}~{k}" for k in range(copies) for p in ids[: size - k * len(ids)] if k * len(ids) < size)
    frames_e, frames_p = [], []
    for k in range(copies):
        frames_e.append(ev.assign(person_id=ev["person_id"].astype(str) + f"~{k}"))
        frames_p.append(pe.assign(person_id=pe["person_id"].astype(str) + f"~{k}"))
    all_e, all_p = pd.concat(frames_e, ignore_index=True), pd.concat(frames_p, ignore_index=True)
    all_e = all_e[all_e["person_id"].isin(keep)].reset_index(drop=True)
    all_p = all_p[all_p["person_id"].isin(keep)].reset_index(drop=True)
    all_e["person_id"] = all_e["person_id"].astype(events["person_id"].dtype)
    all_p["person_id"] = all_p["person_id"].astype(persons["person_id"].dtype)
    return all_e, all_p


def load_baseline(path: Path):
    spec = importlib.util.spec_from_file_location("eligibility_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare_outputs(inputs: StepInputs, baseline) -> str:
    """How the current output differs from the baseline's on the same inputs."""
    new = eligibility_columns(inputs.persons, inputs.cohort, inputs.treatment, inputs.as_of, inputs.rules)
    old = baseline.eligibility_columns(inputs.persons, inputs.cohort, inputs.treatment, inputs.as_of, inputs.rules)
    a, b = frame_from_columns(new, n_rows(new)), frame_from_columns(old, n_rows(old))
    same_flags = a[["person_id", "product", "indication", "eligible"]].equals(b[["person_id", "product", "indication", "eligible"]])
    texts = ["criteria_met", "criteria_missing", "criteria_unknown", "first_eligible_hint"]
    differ = int((a[texts].astype(object).fillna("").map(str) != b[texts].astype(object).fillna("").map(str)).any(axis=1).sum())
    return f"flags and indications {'identical' if same_flags else 'DIFFER'}; {differ} of {len(a)} rows differ in reason texts or hints"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="synthetic contract directory (cartscout synth)")
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--chunk-repeats", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--baseline", type=Path, help="an earlier copy of features/eligibility.py to time side by side")
    args = parser.parse_args()

    codes, rules = load_codes(args.data), load_rules()
    candidates = find_cohort_candidates(args.data, codes)
    data = load_directory(args.data, person_ids=candidates)
    events = data.events[data.events["person_id"].isin(candidates)].reset_index(drop=True)
    persons = data.persons[data.persons["person_id"].isin(candidates)].reset_index(drop=True)
    everyone = StepInputs(events, persons, pd.Series(AS_OF, index=pd.Index(candidates)), codes, rules)
    cohort = frame_from_columns(everyone.cohort, n_rows(everyone.cohort))
    treated = set(everyone.treatment["person_id"].values[everyone.treatment["prior_lines"] > 0])
    members = cohort[cohort["in_cohort"] & cohort["person_id"].isin(treated)]
    baseline = load_baseline(args.baseline) if args.baseline else None

    rows, singles = [], {}
    for disease in ("LBCL", "MM"):
        person = pick_member(events, list(members.loc[members["disease"] == disease, "person_id"]))
        one = StepInputs(events[events["person_id"] == person].reset_index(drop=True),
                         persons[persons["person_id"] == person].reset_index(drop=True),
                         pd.Series(AS_OF, index=[person]), codes, rules)  # fmt: skip
        steps = one.steps(baseline)
        if disease == "MM":
            steps = {k: v for k, v in steps.items() if k.startswith("eligibility")}
        times = time_interleaved(steps, args.repeats)
        n_events = int((events["person_id"] == person).sum())
        for name, (wall, cpu) in times.items():
            singles[(disease, name)] = statistics.median(wall)
            rows.append(f"| one {disease} member ({n_events} events, {int(one.treatment['prior_lines'][0])} lines): {name} "
                        f"| {statistics.median(wall):.3f} | {np.percentile(wall, 99):.3f} | {statistics.median(cpu):.3f} |")

    ids = list(members["person_id"])
    chunk_events, chunk_persons = repeat_members(events, persons, ids, args.chunk)
    chunk = StepInputs(chunk_events, chunk_persons, pd.Series(AS_OF, index=pd.Index(chunk_persons["person_id"].astype(str))), codes, rules)
    chunk_times = time_interleaved(chunk.steps(baseline), args.chunk_repeats, warmup=1)
    chunk_rows = []
    for name, (wall, cpu) in chunk_times.items():
        chunk_rows.append(f"| {name} | {statistics.median(wall):.0f} | {statistics.median(wall) / args.chunk:.4f} "
                          f"| {statistics.median(cpu) / args.chunk:.4f} |")

    reference = [t for t in time_interleaved({"ref": lambda: np.sort(np.random.default_rng(0).random(200_000))}, 30, 3)["ref"][0]]
    load = os.getloadavg()
    command = f".venv/bin/python bench/bench_eligibility.py --data {args.data} --chunk {args.chunk} --repeats {args.repeats}"
    command += f" --baseline {args.baseline}" if args.baseline else ""
    lines = [
        "# Lines, treatment summary and label eligibility benchmark",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.machine()}, Python {platform.python_version()}, "
        f"pandas {pd.__version__}, numpy {np.__version__}.  ",
        f"Command: `{command}`  ",
        f"Load average at the end of the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) on 2 cores; reference "
        f"workload (numpy sort of 200k floats) {statistics.median(reference):.2f} ms median. Compare runs through the reference "
        "and the same-run baseline, not through absolute figures.",
        "",
        f"Population: {args.data} ({len(candidates)} cohort candidates, {len(members)} treated cohort members); as of {AS_OF.date()}; "
        f"{len(rules.rules)} label rules, {len(rules.products)} products."
        + (f" Baseline: `{args.baseline}`, timed call by call alternately with the current code; "
           f"outputs on the chunk: {compare_outputs(chunk, baseline)}." if baseline else ""),
        "",
        "## One member (the real-time path)",
        "",
        "| step | wall median ms | wall p99 ms | CPU median ms |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    if baseline:
        lines += [", ".join(f"{d}: eligibility {singles[(d, 'eligibility_columns, baseline')] / singles[(d, 'eligibility_columns')]:.1f}x faster than the baseline"
                            for d in ("LBCL", "MM")) + " (wall medians).", ""]
    lines += [
        f"## Per member in a chunk of {args.chunk} members (the batch path: same functions)",
        "",
        f"| step | wall total ms (median of {args.chunk_repeats}) | wall per member ms | CPU per member ms |",
        "|---|---|---|---|",
        *chunk_rows,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
