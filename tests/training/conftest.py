"""Shared, session-scoped training fixtures: one small enriched synthetic population, its
examples and one trained model, built once per test worker (about half a minute)."""

from __future__ import annotations

import pytest

from training.settings import EvaluationSettings, ModelSettings, TrainingConfig

SMALL_MEMBERS = 5000
SMALL_ENRICHMENT = 300.0


def small_config() -> TrainingConfig:
    """Defaults except the costs: fewer trees, a small bootstrap and SHAP sample."""
    return TrainingConfig(
        model=ModelSettings(num_boost_round=150, early_stopping_rounds=30),
        evaluation=EvaluationSettings(bootstrap_replicates=50, shap_sample_rows=100),
    )


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    from synthetic.population import SynthConfig, generate_to_directory

    out = tmp_path_factory.mktemp("synthetic") / "data"
    generate_to_directory(SynthConfig(members=SMALL_MEMBERS, seed=11, cancer_enrichment=SMALL_ENRICHMENT), out)
    return out


@pytest.fixture(scope="session")
def contract_data(synthetic_dir):
    from contract.loading import load_directory

    return load_directory(synthetic_dir)


@pytest.fixture(scope="session")
def example_set(contract_data, synthetic_dir):
    from features.geography import load_zip_centroids
    from training.examples import build_examples
    from training.run import read_truth

    config = small_config()
    return build_examples(
        contract_data.events,
        contract_data.persons,
        contract_data.codes,
        config.outcome,
        config.population,
        centers=contract_data.centers,
        zip_centroids=load_zip_centroids() if contract_data.centers is not None else None,
        truth=read_truth(synthetic_dir),
    )


@pytest.fixture(scope="session")
def trained(example_set, contract_data, synthetic_dir):
    from contract.loading import read_ndc_crosswalk
    from features.codelists import CODELIST_DIR
    from features.eligibility import RULES_PATH
    from models.example_input import make_input_example
    from training.trainer import train_candidate

    return train_candidate(
        example_set,
        small_config(),
        rules_path=RULES_PATH,
        codelists_dir=CODELIST_DIR,
        data_source="pytest-synthetic",
        centers=contract_data.centers,
        ndc_crosswalk=read_ndc_crosswalk(synthetic_dir / "ndc_crosswalk.csv"),
        input_example=make_input_example(contract_data.codes),
    )
