"""Benchmark claims -> events: one member through the API's ingest, and a batch population.

Writes bench/results/mapping.md. The same measurements run on two source trees side by side:
the baseline (a git revision exported with ``git archive``, read-only) and the working tree.
Each measurement runs in a child process whose ``sys.path`` starts at that tree, and the two
trees alternate round by round, so machine load (other jobs share these 2 cores) hits both alike.
Wall and CPU time (``time.process_time``) are both reported: under load wall time inflates, CPU
time much less.

* one member (``bench/bench_service.py``'s member: DLBCL on R-CHOP, background care and fills,
  345 events): the API's ``service.history.build_claim_tables`` (lay out the contract tables and
  check code formats), ``contract.mapping.claims_to_events`` and the whole
  ``service.history.load_member_history``; median and p99 over ``--calls`` calls per tree.
* batch: a ``cartscout synth`` population (``--members``, default 20,000), validated once
  (untimed), then ``claims_to_events`` over all of it; time per member and peak resident memory.

Usage: python bench/bench_mapping.py [--baseline REV (default 3649ad2, before the NumPy mapping)] [--calls 400] [--rounds 4] [--members 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mapping.md"
STAGES = ("build_claim_tables", "claims_to_events", "load_member_history")


def run_single(calls: int) -> dict:
    """In a child: per-call wall and CPU ms of each stage for the bench member."""
    import contract.mapping
    from contract.mapping import claims_to_events
    from features.codelists import load_codelists
    from service.history import build_claim_tables, load_member_history
    from service.schemas import ScoreRequest

    path = list(sys.path)
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_service import make_member  # the same member in both trees (it puts ROOT on sys.path: undone below)

    sys.path[:] = path

    codes = load_codelists()
    request = ScoreRequest.model_validate_json(json.dumps(make_member()))
    today = date(2024, 7, 1)
    tables = build_claim_tables([request])
    stages = {
        "build_claim_tables": lambda: build_claim_tables([request]),
        "claims_to_events": lambda: claims_to_events(tables.eligibility, tables.medical_claim, tables.pharmacy_claim, codes),
        "load_member_history": lambda: load_member_history([request], codes, today),
    }
    events = len(load_member_history([request], codes, today).events)
    out = {"events": events, "mapping_module": contract.mapping.__file__}
    for name, call in stages.items():
        for _ in range(20):
            call()
        wall, cpu = [], []
        for _ in range(calls):
            w, c = time.perf_counter(), time.process_time()
            call()
            cpu.append((time.process_time() - c) * 1000)
            wall.append((time.perf_counter() - w) * 1000)
        out[name] = {"wall": wall, "cpu": cpu}
    return out


def run_batch(data: Path, repeats: int) -> dict:
    """In a child: claims_to_events over a validated population, wall and CPU seconds per run."""
    import contract.mapping
    from contract.loading import load_codes
    from contract.mapping import claims_to_events
    from contract.validation import validate_tables

    validated = validate_tables(data)
    codes = load_codes(data)
    members = int(validated.eligibility["person_id"].nunique())
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        events, persons = claims_to_events(validated.eligibility, validated.medical_claim, validated.pharmacy_claim, codes)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    rows = {"eligibility": len(validated.eligibility), "medical_claim": len(validated.medical_claim), "pharmacy_claim": len(validated.pharmacy_claim)}
    return {"mapping_module": contract.mapping.__file__, "members": members, "events": len(events), "rows": rows, "wall": wall, "cpu": cpu, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(tree: Path, args: list[str]) -> dict:
    """Run this script as a worker with ``tree`` first on sys.path; its JSON answer."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--worker", str(tree), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"worker failed in {tree}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_revision(revision: str, into: Path) -> str:
    """``git archive`` a revision into a directory (read-only for the repository); its full hash."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", revision], capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="3649ad2", help="git revision to compare against (default: the last one with the pandas mapping)")
    parser.add_argument("--calls", type=int, default=400, help="calls per stage per tree per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch-repeats", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, args.worker)
        result = run_single(args.single) if args.single else run_batch(Path(args.batch), args.batch_repeats)
        print(json.dumps(result))
        return

    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="cartscout-bench-mapping-"))
    baseline_tree = work / "baseline"
    baseline_tree.mkdir()
    commit = export_revision(args.baseline, baseline_tree)
    trees = {"baseline": baseline_tree, "current": ROOT}
    data = work / "synthetic"
    subprocess.run([str(Path(sys.executable).parent / "cartscout"), "synth", "--out", str(data), "--members", str(args.members), "--seed", "11"], check=True, capture_output=True)

    single = {name: {s: {"wall": [], "cpu": []} for s in STAGES} for name in trees}
    events = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            answer = child(tree, ["--single", str(args.calls)])
            events[name] = answer["events"]
            for s in STAGES:
                for k in ("wall", "cpu"):
                    single[name][s][k] += answer[s][k]
    batch = {name: [] for name in trees}
    for _ in range(2):
        for name, tree in trees.items():
            batch[name].append(child(tree, ["--batch", str(data), "--batch-repeats", str(args.batch_repeats)]))

    def med(name, stage, kind):
        return statistics.median(single[name][stage][kind])

    def p99(name, stage, kind):
        return percentile(single[name][stage][kind], 0.99)

    rows = []
    for s in STAGES:
        b, c = (med("baseline", s, "cpu"), med("current", s, "cpu"))
        rows.append(
            f"| `{s}` | {med('baseline', s, 'wall'):.2f} | {p99('baseline', s, 'wall'):.2f} | {b:.2f} | {p99('baseline', s, 'cpu'):.2f} "
            f"| {med('current', s, 'wall'):.2f} | {p99('current', s, 'wall'):.2f} | {c:.2f} | {p99('current', s, 'cpu'):.2f} | {b / c:.1f}x |"
        )
    batch_rows = []
    for name in trees:
        runs = batch[name]
        members = runs[0]["members"]
        wall = min(w for r in runs for w in r["wall"])
        cpu = min(c for r in runs for c in r["cpu"])
        batch_rows.append(f"| {name} | {wall:.2f} | {cpu:.2f} | {wall / members * 1e6:.1f} | {cpu / members * 1e6:.1f} | {max(r['max_rss_mib'] for r in runs):.0f} |")
    first = batch["current"][0]
    load = os.getloadavg()
    calls = args.calls * args.rounds
    command = "python bench/bench_mapping.py " + " ".join(sys.argv[1:])
    lines = [
        "# Claims -> events: one member through the API's ingest, and a batch population",
        "",
        f"Run {datetime.now(timezone.utc).isoformat(timespec='seconds')} on {platform.machine()} with {os.cpu_count()} cores, "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (other jobs were running when this is above ~1).",
        f"Command: `{command}`. Python {platform.python_version()}, pandas {pd.__version__}, NumPy {__import__('numpy').__version__}, "
        f"pyarrow {__import__('pyarrow').__version__}.",
        f"Baseline: `{args.baseline}` = {commit[:12]} exported with `git archive`; current: the working tree. "
        f"Trees alternate in {args.rounds} rounds, each a fresh child process; figures pool all rounds.",
        "",
        f"## One member ({events['current']} events; baseline {events['baseline']}), {calls} calls per stage per tree, ms",
        "",
        "| stage | baseline wall median | wall p99 | CPU median | CPU p99 | current wall median | wall p99 | CPU median | CPU p99 | CPU speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`build_claim_tables` lays the request out as the three contract tables and checks code formats; "
        "`load_member_history` is the whole ingest of one request (tables, checks, `claims_to_events`, as-of bookkeeping).",
        "",
        f"## Batch: {first['members']:,} synthetic members (`cartscout synth --members {args.members} --seed 11`), "
        f"{first['rows']['medical_claim']:,} medical lines, {first['rows']['pharmacy_claim']:,} fills, {first['events']:,} events",
        "",
        f"`claims_to_events` on the validated tables (validation untimed); best of {2 * args.batch_repeats} runs per tree.",
        "",
        "| tree | wall s | CPU s | wall us/member | CPU us/member | peak RSS MiB (whole worker, incl. validation) |",
        "|---|---|---|---|---|---|",
        *batch_rows,
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
