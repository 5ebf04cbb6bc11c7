"""The ``cartscout train`` orchestration: read a contract directory, build examples, train, log.

This is the thin I/O layer around the pure steps: it reads the delivery through
``contract.loading.load_directory``, reads the generator's ``truth/`` when present (only to
compare labels), and hands the trained result to ``training.registry``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.settings import TrainingConfig

TRUTH_DIR = "truth"
# Truth columns that mark entering the CAR T pathway (the first of them, with first eligibility,
# is the true candidate date).
_TRUTH_PATHWAY_COLUMNS = ("apheresis_date", "collection_date", "car_t_date")


@dataclass(frozen=True)
class TrainingSummary:
    """What ``cartscout train`` prints."""

    version: str
    run_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    split_counts: dict[str, int]
    ui_command: str
    seconds: float

    def render(self) -> str:
        m = self.metrics
        lines = [
            f"registered cartscout-candidate version {self.version} as challenger (run {self.run_id}) in {self.seconds:.0f} s",
            "examples: " + ", ".join(f"{k} {v}" for k, v in self.split_counts.items()),
            f"test AUROC {m['auroc']:.3f} (95% CI {m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f}), AUPRC {m['auprc']:.3f}, "
            f"Brier {m['brier']:.4f}, calibration slope {m['calibration_slope']:.2f}, intercept {m['calibration_intercept']:.2f}",
            f"recall at top {m['top_k_fraction']:.0%} {m['recall_at_top_k']:.3f}, PPV {m['ppv_at_top_k']:.3f}, median lead time {m['lead_time_median_days']:.0f} days",
        ]
        for name, b in self.baselines.items():
            lines.append(f"baseline {name}: AUROC {b['auroc']:.3f}, AUPRC {b['auprc']:.3f}")
        lines.append(f"promote with: cartscout promote {self.version} --reason '...'")
        lines.append(f"MLflow UI: {self.ui_command}")
        return "\n".join(lines)


def read_truth(data_dir: Path) -> pd.DataFrame | None:
    """Per person the generator's true candidate date (first true eligibility or CAR T pathway
    date), or None when the directory has no ``truth/``."""
    truth_dir = Path(data_dir) / TRUTH_DIR
    persons_path, eligibility_path = truth_dir / "persons.parquet", truth_dir / "eligibility.parquet"
    if not persons_path.exists():
        return None
    persons = pd.read_parquet(persons_path)
    dates = [pd.to_datetime(persons[c]) for c in _TRUTH_PATHWAY_COLUMNS if c in persons.columns]
    candidate = pd.concat(dates, axis=1).min(axis=1) if dates else pd.Series(pd.NaT, index=persons.index)
    truth = pd.DataFrame({"person_id": persons["person_id"].astype("string"), "truth_candidate_date": candidate.to_numpy()})
    if eligibility_path.exists():
        eligibility = pd.read_parquet(eligibility_path)
        first = eligibility.assign(first_eligible_date=pd.to_datetime(eligibility["first_eligible_date"]))
        first = first.groupby(first["person_id"].astype("string"))["first_eligible_date"].min()
        truth["truth_candidate_date"] = pd.concat(
            [truth["truth_candidate_date"], truth["person_id"].map(first)], axis=1
        ).min(axis=1).to_numpy()
    truth["truth_candidate_date"] = pd.to_datetime(truth["truth_candidate_date"]).astype("datetime64[s]")
    return truth


def train_from_directory(
    data_dir: Path,
    config: TrainingConfig,
    *,
    project_dir: Path | None = None,
    progress=None,
) -> TrainingSummary:
    """Load, build examples, train, evaluate, log and register; returns the printed summary."""
    from contract.loading import load_directory, read_ndc_crosswalk
    from contract.schema import NDC_CROSSWALK_FILE
    from features.codelists import CODELIST_DIR
    from features.eligibility import RULES_PATH, load_rules
    from features.geography import load_zip_centroids
    from models.example_input import make_input_example
    from training.examples import build_examples
    from training.registry import log_training_run, resolve_store
    from training.trainer import train_candidate

    started = time.perf_counter()
    store = resolve_store(project_dir)
    data = load_directory(Path(data_dir))
    rules = load_rules(RULES_PATH)
    truth = read_truth(data_dir)
    crosswalk_path = Path(data_dir) / NDC_CROSSWALK_FILE
    crosswalk = read_ndc_crosswalk(crosswalk_path) if crosswalk_path.is_file() else None
    zip_centroids = load_zip_centroids() if data.centers is not None else None
    example_set = build_examples(
        data.events,
        data.persons,
        data.codes,
        config.outcome,
        config.population,
        centers=data.centers,
        zip_centroids=zip_centroids,
        rules=rules,
        truth=truth,
        progress=progress,
    )
    result = train_candidate(
        example_set,
        config,
        rules_path=RULES_PATH,
        codelists_dir=CODELIST_DIR,
        data_source=Path(data_dir).name,
        centers=data.centers,
        ndc_crosswalk=crosswalk,
        input_example=make_input_example(data.codes),
        data_kind="synthetic" if truth is not None else "operator-supplied",
    )
    registered = log_training_run(result, store)
    return TrainingSummary(
        version=registered.version,
        run_id=registered.run_id,
        metrics=result.report.metrics,
        baselines=result.report.baselines,
        split_counts=result.split_counts,
        ui_command=store.ui_command(),
        seconds=time.perf_counter() - started,
    )
