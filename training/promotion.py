"""The promotion gate: when a challenger may replace the champion.

Pure logic, separate from the registry that applies it. Both models are scored on the
challenger's test set (the same rows), so the comparison is not confounded by a different period
or population. The challenger must not lose more than ``MAX_AUPRC_DROP`` AUPRC -- ranking quality
is what outreach capacity spends -- and its calibration slope must stay in ``SLOPE_RANGE``,
because the score is shown to clinicians as a probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AUPRC_DROP = 0.01
SLOPE_RANGE = (0.8, 1.2)


@dataclass(frozen=True)
class GateDecision:
    """``passed`` plus one human-readable line per check (recorded as a version tag)."""

    passed: bool
    reasons: tuple[str, ...]

    def render(self) -> str:
        return ("PASSED" if self.passed else "FAILED") + ": " + "; ".join(self.reasons)


def check_promotion_gate(
    challenger_auprc: float,
    challenger_slope: float,
    champion_auprc: float | None,
    max_auprc_drop: float = MAX_AUPRC_DROP,
    slope_range: tuple[float, float] = SLOPE_RANGE,
) -> GateDecision:
    """Decide whether the challenger may become champion; ``champion_auprc`` is None when there is
    no champion yet (then only the calibration check applies). Undefined metrics fail."""
    reasons: list[str] = []
    passed = True
    if not math.isfinite(challenger_auprc):
        passed = False
        reasons.append("challenger AUPRC is undefined on its test set")
    elif champion_auprc is None:
        reasons.append(f"no current champion; challenger AUPRC {challenger_auprc:.4f}")
    elif not math.isfinite(champion_auprc):
        passed = False
        reasons.append("champion AUPRC is undefined on the challenger's test set")
    elif challenger_auprc < champion_auprc - max_auprc_drop:
        passed = False
        reasons.append(
            f"AUPRC {challenger_auprc:.4f} is worse than the champion's {champion_auprc:.4f} by more than {max_auprc_drop:g}"
        )
    else:
        reasons.append(f"AUPRC {challenger_auprc:.4f} vs champion {champion_auprc:.4f} (allowed drop {max_auprc_drop:g})")
    low, high = slope_range
    if not math.isfinite(challenger_slope) or not low <= challenger_slope <= high:
        passed = False
        reasons.append(f"calibration slope {challenger_slope:.3f} outside {low:g}-{high:g}")
    else:
        reasons.append(f"calibration slope {challenger_slope:.3f} within {low:g}-{high:g}")
    return GateDecision(passed=passed, reasons=tuple(reasons))
