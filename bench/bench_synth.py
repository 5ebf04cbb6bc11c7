"""Benchmark ``cartscout synth``: wall time and peak RSS for 100k and 1M members.

Each size runs as a separate process under ``/usr/bin/time -v`` (peak RSS of the whole process,
not a Python-side estimate). The 100k run is the baseline; the 1M run is reported next to it with
the ratio, so a non-linear slowdown shows up. Results go to bench/results/synth.md with the exact
commands and library versions.

    .venv/bin/python bench/bench_synth.py [--sizes 100000 1000000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "synth.md"
LIMIT_SECONDS = 300
LIMIT_GIB = 6.0


def run_once(members: int, out: Path) -> dict:
    cartscout = Path(sys.executable).with_name("cartscout")
    command = [str(cartscout), "synth", "--members", str(members), "--seed", "1", "--out", str(out)]
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True)
    stats = done.stderr
    wall = _elapsed(re.search(r"Elapsed \(wall clock\) time.*?: (\S+)", stats).group(1))
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats).group(1))
    rows = {m.group(1): int(m.group(2).replace(",", "")) for m in re.finditer(r"(\w+) ([\d,]+) rows", done.stdout)}
    return {"command": " ".join(["cartscout", *command[1:-1], "OUT"]), "wall": wall, "rss_gib": rss_kib / 2**20, "rows": rows, "summary": done.stdout}


def _elapsed(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    results = {}
    for members in args.sizes:
        runs = []
        for _ in range(args.repeats):
            out = Path(tempfile.mkdtemp(prefix="bench_synth_"))
            try:
                runs.append(run_once(members, out))
            finally:
                shutil.rmtree(out, ignore_errors=True)
        results[members] = runs
    load = os.getloadavg()
    base = args.sizes[0]
    base_wall = statistics.median(r["wall"] for r in results[base])
    lines = [
        "# cartscout synth benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"numpy {version('numpy')}, pandas {version('pandas')}, pyarrow {version('pyarrow')}. Command: `.venv/bin/python bench/bench_synth.py "
        f"--sizes {' '.join(map(str, args.sizes))} --repeats {args.repeats}` (each size a separate process under `/usr/bin/time -v`).",
        "",
        f"Load average when the runs finished (shared machine; absolute times drift with it): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.",
        "",
        f"Budget: 1,000,000 members in at most {LIMIT_SECONDS} s with peak RSS under {LIMIT_GIB:g} GiB.",
        "",
        "| members | command | wall s (median) | x baseline | peak RSS GiB (max) | medical lines | pharmacy fills | lines/member |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for members, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        rss = max(r["rss_gib"] for r in runs)
        rows = runs[0]["rows"]
        lines.append(
            f"| {members:,} | `{runs[0]['command']}` | {wall:.1f} | {wall / base_wall:.2f} | {rss:.2f} | {rows.get('medical_claim', 0):,} | "
            f"{rows.get('pharmacy_claim', 0):,} | {(rows.get('medical_claim', 0) + rows.get('pharmacy_claim', 0)) / members:.1f} |"
        )
    lines += ["", "Summary printed by the largest run:", "", "```", results[args.sizes[-1]][0]["summary"].strip(), "```", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
