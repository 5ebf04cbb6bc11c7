"""Settings objects: validated, strict about unknown keys, loadable from YAML, saved as YAML."""

from __future__ import annotations

import pytest
import yaml

from training.settings import ModelSettings, TrainingConfig, load_config


def test_defaults_round_trip_through_yaml(tmp_path):
    """A saved configuration loads back to an equal object."""
    config = TrainingConfig().with_horizon(120)
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
    assert load_config(path).outcome.horizon_days == 120


def test_unknown_key_is_rejected_with_the_file_name(tmp_path):
    """A misspelt hyperparameter is an error naming the file and the key, not silently ignored."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"num_leavs": 31}}))
    with pytest.raises(ValueError, match="bad.yaml") as info:
        load_config(path)
    assert "num_leavs" in str(info.value)


def test_partial_config_keeps_other_defaults(tmp_path):
    """Only the keys given change; everything else keeps its default."""
    path = tmp_path / "partial.yaml"
    path.write_text("model:\n  num_leaves: 7\n  calibration: isotonic\n")
    config = load_config(path)
    assert config.model.num_leaves == 7 and config.model.calibration == "isotonic"
    assert config.outcome == TrainingConfig().outcome


def test_invalid_values_fail():
    """Out-of-range values and inconsistent capacity shares are rejected."""
    with pytest.raises(ValueError):
        ModelSettings(learning_rate=0)
    with pytest.raises(ValueError, match="watch_fraction"):
        ModelSettings(top_k_fraction=0.1, watch_fraction=0.05)


def test_non_mapping_yaml_is_rejected(tmp_path):
    """A YAML file that is not a mapping is an error naming the file."""
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml"):
        load_config(path)
