"""The model card template fills completely and carries the HTI-1-style sections."""

from __future__ import annotations

import re

import pytest

from training.model_card import REQUIRED_SECTIONS, TEMPLATE, render_model_card


def _placeholders() -> set[str]:
    return set(re.findall(r"\$([a-z_]+)", TEMPLATE.read_text()))


def test_template_has_required_sections():
    """Every required section heading is in the template."""
    text = TEMPLATE.read_text()
    for section in REQUIRED_SECTIONS:
        assert section in text


def test_render_fills_every_placeholder():
    """A fully specified card leaves no $placeholder behind."""
    card = render_model_card({name: f"<{name}>" for name in _placeholders()})
    assert "$" not in card
    assert "<auroc>" not in card and "<performance_table>" in card


def test_missing_value_is_an_error_naming_it():
    """A card with a hole fails and names the missing value."""
    values = {name: "x" for name in _placeholders() if name != "horizon_days"}
    with pytest.raises(ValueError, match="horizon_days"):
        render_model_card(values)
