"""The serving model and how it is replaced.

A request reads ``slot.current`` once and scores with that object to the end, so swapping in a
new version is one reference assignment: requests already running finish on the old model (it
stays alive while they hold it), new requests get the new one, none fails.

The alias (``@champion``) is re-resolved every ``CARTSCOUT_MODEL_POLL_SECONDS`` on a background
thread and on an authenticated admin call; a load failure keeps the current model and is logged.
A poll first asks which version the alias names (``resolver``, one registry call) and loads only
when that differs from the serving version: loading even an unchanged copy again holds the GIL
for ~50 ms (``bench/bench_service.py``), which the requests in flight would otherwise feel every few minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.logging import log_event

Loader = Callable[[str, Path | None], Any]
Resolver = Callable[[str], str | None]


class ModelSlot:
    """Holds the loaded model; thread-safe reloads, lock-free reads."""

    def __init__(self, loader: Loader, uri: str, cache_dir: Path | None, on_swap: Callable[[Any], None] | None = None, resolver: Resolver | None = None):
        self._loader = loader
        self._resolver = resolver
        self.uri = uri
        self.cache_dir = cache_dir
        self.current: Any = None
        self.last_error: str | None = None
        self._on_swap = on_swap
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self) -> bool:
        """Resolve the URI again; swap when it names a different version. True when swapped."""
        with self._reload_lock:
            if self._still_serving_what_uri_names():
                return False
            try:
                candidate = self._loader(self.uri, self.cache_dir)
            except Exception as error:  # any loader failure keeps the current model serving
                self.last_error = type(error).__name__
                log_event("model_load_failed", logging.ERROR, uri=self.uri, error=type(error).__name__, detail=str(error)[:300])
                return False
            self.last_error = None
            old = self.current
            if old is not None and str(old.version) == str(candidate.version) and old.from_local_copy == candidate.from_local_copy:
                return False
            _warm_up(candidate)
            self.current = candidate
            if self._on_swap is not None:
                self._on_swap(candidate)
            log_event(
                "model_loaded",
                uri=self.uri,
                model_name=candidate.name,
                model_version=str(candidate.version),
                previous_version=None if old is None else str(old.version),
                rules_version=candidate.rules_version,
                from_local_copy=bool(candidate.from_local_copy),
            )
            return True

    def _still_serving_what_uri_names(self) -> bool:
        """Whether the registry names the version already serving (loaded from the registry, not
        from the local copy). Unknown (no resolver, registry unreachable, resolver failure): False,
        and the full load decides."""
        current = self.current
        if self._resolver is None or current is None or current.from_local_copy:
            return False
        try:
            return self._resolver(self.uri) == str(current.version)
        except Exception:  # noqa: BLE001 - the full load that follows reports what went wrong
            return False

    def start_polling(self, interval_seconds: float) -> None:
        """Re-resolve the alias every ``interval_seconds`` on a daemon thread (0 disables)."""
        if interval_seconds <= 0 or self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                self.reload()

        self._thread = threading.Thread(target=run, name="cartscout-model-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _warm_up(model: Any) -> None:
    """Score a fictional example member once before the model serves: compiling the line kernels
    and building the code-list lookups takes seconds, which the first clinician must not wait for.
    Best effort: a model that cannot score the example is still swapped in (and will answer with
    errors, as it would have without the warm-up), and the failure is logged."""
    from models.candidate import split_long_input
    from models.example_input import make_input_example
    from models.scoring import score_members

    started = time.perf_counter()
    try:
        events, persons, as_of = split_long_input(make_input_example(model.codes))
        score_members(model, events, persons, as_of)
    except Exception as error:  # noqa: BLE001 - any failure is reported, never fatal here
        log_event("model_warm_up_failed", logging.WARNING, error=type(error).__name__)
        return
    log_event("model_warmed_up", model_version=str(model.version), milliseconds=round((time.perf_counter() - started) * 1000, 1))
