"""The Markdown model card logged with every run (template: ``training/model_card_template.md``, packaged with the module).

Sections follow the ONC HTI-1 source attributes for predictive decision support interventions
(intended use, out-of-scope use, inputs, training data and demographics, performance and
fairness, limitations, update schedule); ``REQUIRED_SECTIONS`` is what a test checks for.
"""

from __future__ import annotations

import math
from pathlib import Path
from string import Template

import pandas as pd

TEMPLATE = Path(__file__).parent / "model_card_template.md"
REQUIRED_SECTIONS = (
    "## Intended use",
    "## Out-of-scope use",
    "## Inputs",
    "## Training data",
    "## Performance",
    "## Fairness",
    "## Limitations",
    "## Update schedule",
)

_PERFORMANCE_ROWS = (
    ("n_examples", "test examples (person x index date)", "{:.0f}"),
    ("n_persons", "test persons", "{:.0f}"),
    ("prevalence", "share becoming a candidate", "{:.4f}"),
    ("auroc", "AUROC", "{:.3f}"),
    ("auprc", "AUPRC", "{:.3f}"),
    ("brier", "Brier score", "{:.4f}"),
    ("calibration_intercept", "calibration intercept", "{:.3f}"),
    ("calibration_slope", "calibration slope", "{:.3f}"),
    ("recall_at_top_k", "recall at top-k", "{:.3f}"),
    ("ppv_at_top_k", "PPV at top-k", "{:.3f}"),
    ("lead_time_median_days", "median lead time (days)", "{:.0f}"),
    ("candidates_flagged_before_share", "share of candidates flagged before becoming one", "{:.3f}"),
)


def _fmt(value, pattern: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return pattern.format(value)


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-style Markdown table (no optional tabulate dependency)."""
    if frame.empty:
        return "_(none)_"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("n/a" if math.isnan(value) else f"{value:.{digits}f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def performance_rows(metrics: dict[str, float]) -> str:
    rows = []
    for key, label, pattern in _PERFORMANCE_ROWS:
        if key == "auroc":
            value = f"{_fmt(metrics.get('auroc'))} (95% CI {_fmt(metrics.get('auroc_ci_low'))}-{_fmt(metrics.get('auroc_ci_high'))})"
        else:
            value = _fmt(metrics.get(key), pattern)
        if key in ("recall_at_top_k", "ppv_at_top_k"):
            label = f"{label} ({metrics.get('top_k_fraction', 0):.0%} of at-risk per index date)"
        rows.append(f"| {label} | {value} |")
    for key in sorted(k for k in metrics if k.startswith("net_benefit_") and "treat_all" not in k):
        threshold = key.removeprefix("net_benefit_")
        rows.append(
            f"| net benefit at threshold {threshold} (treat all: {_fmt(metrics.get('net_benefit_treat_all_' + threshold), '{:.4f}')}) | {_fmt(metrics[key], '{:.4f}')} |"
        )
    return "\n".join(rows)


def render_model_card(values: dict[str, str]) -> str:
    """Fill the template; a missing value is an error naming it (a card with holes is misleading)."""
    try:
        return Template(TEMPLATE.read_text()).substitute(values)
    except KeyError as error:
        raise ValueError(f"model card value missing: {error.args[0]}") from None
