"""Benchmark: train the candidate model on a large enriched synthetic population.

Measures wall time per stage (contract load, landmark examples, fitting + evaluation, MLflow
logging into a throw-away embedded store) and the process's peak resident memory, and records
the test-set figures the issue asks for: AUROC (95% CI), AUPRC against both baselines (rules
only and logistic regression, fitted and scored on the same rows in the same run), calibration
slope, recall at top 1%, median lead time, and the subgroup table.

    .venv/bin/python bench/bench_train.py --members 200000 --enrichment 50 --seed 7
    .venv/bin/python bench/bench_train.py --data DIR   # reuse a generated population

Writes bench/results/train.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _versions() -> str:
    names = ("pandas", "numpy", "lightgbm", "scikit-learn", "mlflow", "shap", "pyarrow")
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def _git(*args: str) -> str:
    import subprocess

    out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--enrichment", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="existing contract directory (skips generation)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train.md")
    args = parser.parse_args()

    from contract.loading import load_directory, read_ndc_crosswalk
    from features.codelists import CODELIST_DIR
    from features.eligibility import RULES_PATH
    from features.geography import load_zip_centroids
    from models.example_input import make_input_example
    from training.examples import build_examples
    from training.model_card import markdown_table
    from training.registry import log_training_run, resolve_store
    from training.run import read_truth
    from training.settings import TrainingConfig
    from training.trainer import train_candidate

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data
        if data_dir is None:
            from synthetic.population import SynthConfig, generate_to_directory

            data_dir = Path(tmp) / "data"
            started = time.perf_counter()
            generate_to_directory(SynthConfig(members=args.members, seed=args.seed, cancer_enrichment=args.enrichment), data_dir)
            timings["synthetic generation (not part of training)"] = time.perf_counter() - started
        config = TrainingConfig()
        train_started = time.perf_counter()
        started = time.perf_counter()
        data = load_directory(data_dir)
        timings["load contract directory"] = time.perf_counter() - started
        started = time.perf_counter()
        truth = read_truth(data_dir)
        example_set = build_examples(
            data.events,
            data.persons,
            data.codes,
            config.outcome,
            config.population,
            centers=data.centers,
            zip_centroids=load_zip_centroids() if data.centers is not None else None,
            truth=truth,
        )
        timings["landmark examples and labels"] = time.perf_counter() - started
        started = time.perf_counter()
        crosswalk = data_dir / "ndc_crosswalk.csv"
        result = train_candidate(
            example_set,
            config,
            rules_path=RULES_PATH,
            codelists_dir=CODELIST_DIR,
            data_source=f"synthetic {args.members} members, enrichment {args.enrichment:g}, seed {args.seed}",
            centers=data.centers,
            ndc_crosswalk=read_ndc_crosswalk(crosswalk) if crosswalk.is_file() else None,
            input_example=make_input_example(data.codes),
        )
        timings["split, fit, calibrate, baselines, evaluate"] = time.perf_counter() - started
        started = time.perf_counter()
        store = resolve_store(Path(tmp) / "project")
        (Path(tmp) / "project").mkdir(exist_ok=True)
        registered = log_training_run(result, store)
        timings["MLflow logging (figures, SHAP, model card, pyfunc, registry)"] = time.perf_counter() - started
        timings["training total (load to registered version)"] = time.perf_counter() - train_started
        members = len(data.persons)
        cohort = example_set.cohort_persons

    m, b, truth_metrics = result.report.metrics, result.report.baselines, result.report.truth
    command = " ".join([".venv/bin/python", "bench/bench_train.py", *sys.argv[1:]])
    lines = [
        "# Training benchmark",
        "",
        f"Command: `{command}`  ",
        *(
            [f"Population generated by: `.venv/bin/cartscout synth --members {args.members} --seed {args.seed} --cancer-enrichment {args.enrichment:g} --out {args.data}`  "]
            if args.data
            else []
        ),
        f"Code state: commit {_git('rev-parse', '--short', 'HEAD')} plus uncommitted changes to {_git('status', '--short').count(chr(10)) + 1 if _git('status', '--short') else 0} file(s) in the work tree.  ",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}; {_versions()}  ",
        f"Population: {members:,} synthetic members, cancer enrichment x{args.enrichment:g} (haematological malignancies oversampled), seed {args.seed}; "
        f"{cohort:,} members in the cohort at the end of the data; horizon {config.outcome.horizon_days} days, landmarks every {config.population.landmark_interval_days} days, "
        f"{example_set.extra.get('grid_evaluations', 0):,} (member, date) pipeline evaluations plus {example_set.extra.get('older_label_evaluations', 0):,} re-judged by older label versions.  ",
        "Examples: " + ", ".join(f"{k} {v:,}" for k, v in result.split_counts.items()) + f"; registered version {registered.version} (throw-away store).",
        "",
        "## Cost",
        "",
        "| stage | wall time (s) |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()],
        f"| **peak resident memory of the process** | **{_peak_mib():,.0f} MiB** |",
        "",
        "## Test split (later index dates, persons never seen in training)",
        "",
        "| model | AUROC | AUPRC | LightGBM AUPRC minus this (95% CI, paired person bootstrap) | recall at top 1% | PPV at top 1% |",
        "|---|---|---|---|---|---|",
        f"| LightGBM, calibrated | {m['auroc']:.3f} (95% CI {m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f}) | {m['auprc']:.3f} | | {m['recall_at_top_k']:.3f} | {m['ppv_at_top_k']:.3f} |",
        *[
            f"| baseline: {name.replace('_', ' ')} | {v['auroc']:.3f} | {v['auprc']:.3f} | {v['auprc_difference']:+.3f} ({v['auprc_difference_ci_low']:+.3f} to {v['auprc_difference_ci_high']:+.3f}) | {v['recall_at_top_k']:.3f} | {v['ppv_at_top_k']:.3f} |"
            for name, v in b.items()
        ],
        "",
        f"Prevalence {m['prevalence']:.4f}; Brier {m['brier']:.4f}; calibration intercept {m['calibration_intercept']:.3f}, "
        f"**slope {m['calibration_slope']:.3f}**; median lead time **{m['lead_time_median_days']:.0f} days** "
        f"(IQR {m['lead_time_p25_days']:.0f}-{m['lead_time_p75_days']:.0f}; {m['lead_time_members']:.0f} members flagged before becoming candidates, "
        f"{m['candidates_flagged_before_share']:.1%} of test candidates).  ",
        "Net benefit: " + ", ".join(f"t={k.removeprefix('net_benefit_')}: {v:.4f} (treat all {m['net_benefit_treat_all_' + k.removeprefix('net_benefit_')]:.4f})" for k, v in m.items() if k.startswith("net_benefit_") and "treat_all" not in k),
        "",
    ]
    v = result.validation_metrics
    lines += [
        "Validation split (where model choices are compared; never the test split): "
        f"LightGBM AUPRC {v['auprc']:.3f} (AUROC {v['auroc']:.3f}), rules only {v['rules_only_auprc']:.3f}, "
        f"logistic regression {v['logistic_regression_auprc']:.3f}; best iteration {result.best_iteration}.",
        "",
    ]
    schedule = result.report.label_schedule
    if schedule:
        counts = schedule["counts"]
        lines += [
            f"Outcome definition: `label_rules: {config.outcome.label_rules}`. The same test rows judged by the label versions in force on each "
            f"later date have {counts['positives_outcome_rules']:.0f} positives, {counts['label_change_only']:.0f} of them only because a new label "
            f"version took effect (index-date labels: {counts['positives_index_rules']:.0f}).",
            "",
            "| scorer | AUROC (later labels) | AUPRC (later labels) | recall at top 1% (later labels) | recall at top 1% of label-change-only positives |",
            "|---|---|---|---|---|",
            *[
                f"| {name.replace('_', ' ')} | {s['auroc_outcome_rules']:.3f} | {s['auprc_outcome_rules']:.3f} | {s['recall_at_top_k_outcome_rules']:.3f} | {s['recall_at_top_k_label_change_only']:.3f} |"
                for name, s in schedule.items()
                if name != "counts"
            ],
            "",
        ]
    if truth_metrics:
        lines += [
            "Against the generator's truth: claims-derived labels agree on "
            f"{truth_metrics['truth_label_agreement']:.1%} of test examples (precision {truth_metrics['claims_label_precision_vs_truth']:.3f}, "
            f"recall {truth_metrics['claims_label_recall_vs_truth']:.3f}); model AUROC vs truth labels {truth_metrics['truth_auroc']:.3f}, AUPRC {truth_metrics['truth_auprc']:.3f}.",
            "",
        ]
    lines += ["## Subgroups (test split)", "", markdown_table(result.report.subgroups), ""]
    lines += ["## Population attrition (landmark examples)", "", markdown_table(result.attrition), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
