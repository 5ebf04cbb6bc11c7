"""Score calibrators: map LightGBM's raw margin to a probability of becoming a candidate.

The booster is trained with positive-class weighting, so its raw output is not a probability.
A calibrator fitted on the validation split (never on training rows, whose scores are optimistic)
restores that meaning. Both kinds follow the scikit-learn estimator habit -- parameters in
``__init__``, learned state ending in ``_``, ``fit`` returns ``self`` -- and serialise their learned
state to plain JSON so the released artifact carries no pickle.

* ``PlattCalibrator``: logistic regression on the raw margin (two parameters; stable with few
  positives, keeps the ranking exactly).
* ``IsotonicCalibrator``: monotone step function (flexible, needs many positives, creates ties).
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression


class Calibrator(Protocol):
    kind: str

    def fit(self, raw_score: np.ndarray, y: np.ndarray) -> "Calibrator": ...

    def transform(self, raw_score: np.ndarray) -> np.ndarray: ...

    def to_json(self) -> str: ...


class NotFittedError(RuntimeError):
    """A calibrator was used before ``fit`` (or loaded without learned state)."""


class PlattCalibrator:
    """p = sigmoid(a * margin + b), fitted by unpenalised logistic regression."""

    kind = "platt"

    def fit(self, raw_score: np.ndarray, y: np.ndarray) -> "PlattCalibrator":
        x = np.asarray(raw_score, dtype=np.float64).reshape(-1, 1)
        model = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=1000).fit(x, np.asarray(y, dtype=int))
        self.slope_ = float(model.coef_[0, 0])
        self.intercept_ = float(model.intercept_[0])
        return self

    def transform(self, raw_score: np.ndarray) -> np.ndarray:
        if not hasattr(self, "slope_"):
            raise NotFittedError("PlattCalibrator is not fitted")
        z = self.slope_ * np.asarray(raw_score, dtype=np.float64) + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "slope": self.slope_, "intercept": self.intercept_})


class IsotonicCalibrator:
    """Monotone non-decreasing step function of the margin, clipped outside the fitted range."""

    kind = "isotonic"

    def fit(self, raw_score: np.ndarray, y: np.ndarray) -> "IsotonicCalibrator":
        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        model.fit(np.asarray(raw_score, dtype=np.float64), np.asarray(y, dtype=np.float64))
        self.x_thresholds_ = model.X_thresholds_.astype(float)
        self.y_thresholds_ = model.y_thresholds_.astype(float)
        return self

    def transform(self, raw_score: np.ndarray) -> np.ndarray:
        if not hasattr(self, "x_thresholds_"):
            raise NotFittedError("IsotonicCalibrator is not fitted")
        return np.interp(np.asarray(raw_score, dtype=np.float64), self.x_thresholds_, self.y_thresholds_)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "x": self.x_thresholds_.tolist(), "y": self.y_thresholds_.tolist()})


def make_calibrator(kind: str) -> Calibrator:
    """An unfitted calibrator of the named kind (``platt`` or ``isotonic``)."""
    if kind == "platt":
        return PlattCalibrator()
    if kind == "isotonic":
        return IsotonicCalibrator()
    raise ValueError(f"unknown calibrator kind {kind!r}; expected 'platt' or 'isotonic'")


def load_calibrator(text: str) -> Calibrator:
    """Rebuild a fitted calibrator from its JSON learned state."""
    state = json.loads(text)
    kind = state.get("kind")
    if kind == "platt":
        calibrator = PlattCalibrator()
        calibrator.slope_, calibrator.intercept_ = float(state["slope"]), float(state["intercept"])
        return calibrator
    if kind == "isotonic":
        calibrator = IsotonicCalibrator()
        calibrator.x_thresholds_ = np.asarray(state["x"], dtype=float)
        calibrator.y_thresholds_ = np.asarray(state["y"], dtype=float)
        return calibrator
    raise ValueError(f"calibrator file has unknown kind {kind!r}")
