"""Everything one app instance shares across requests, built once by ``create_app``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from service.auth import Authenticator
from service.cds import FeedbackLog
from service.coalescing import Coalescer
from service.fhir import RxNormLookup
from service.logging import MemberHasher
from service.metrics import ServiceMetrics
from service.model_slot import ModelSlot
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    authenticator: Authenticator
    metrics: ServiceMetrics
    hasher: MemberHasher
    feedback: FeedbackLog
    slot: ModelSlot
    scoring_gate: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(1))
    coalescer: Coalescer | None = None
    _rxnorm: tuple[Any, RxNormLookup] | None = field(default=None, repr=False)

    def rxnorm_lookup(self, model: Any) -> RxNormLookup:
        """The RxNorm lookup built from ``model``'s own code lists (rebuilt when the model changes)."""
        cached = self._rxnorm
        if cached is None or cached[0] is not model:
            cached = (model, RxNormLookup(model.codes))
            self._rxnorm = cached
        return cached[1]
