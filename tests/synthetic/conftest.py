from datetime import date
from pathlib import Path

import pytest

from synthetic.population import SynthConfig, generate_to_directory


@pytest.fixture(scope="session")
def clean_population(tmp_path_factory) -> Path:
    """A small enriched population without noise (Parquet)."""
    out = tmp_path_factory.mktemp("synth_clean")
    generate_to_directory(SynthConfig(members=4000, seed=11, cancer_enrichment=40, noise="off", end_date=date(2025, 12, 31)), out)
    return out


@pytest.fixture(scope="session")
def noisy_population(tmp_path_factory) -> Path:
    """A small enriched population with high noise (Parquet)."""
    out = tmp_path_factory.mktemp("synth_noisy")
    generate_to_directory(SynthConfig(members=4000, seed=12, cancer_enrichment=40, noise="high"), out)
    return out
