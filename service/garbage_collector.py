"""Keep Python's cyclic garbage collector off the scoring path of a long-running process.

The service and the batch scorer load a model (booster, code lists, rules, modules: hundreds of
thousands of objects that live as long as the process) and then create and drop many small
objects per member scored. At Python's default young-generation threshold (700 allocations) a
collection runs inside nearly every API request (one request keeps ~700 objects alive at once,
its validated body alone) and hundreds of times per batch chunk, each promoting short-lived
objects to older generations that the next full collection then walks along with everything the
model holds. Freezing what is alive once the model is loaded (``gc.freeze``) takes it out of every
later collection, and a higher threshold lets reference counting free most per-member objects
before a collection runs. Measured in ``bench/bench_service.py`` (app in process) and
``bench/bench_score.py`` (score stage).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION_THRESHOLD = 10_000


@contextmanager
def settled_garbage_collector() -> Iterator[None]:
    """Within the block, objects alive on entry are frozen out of the collector's view and the
    young-generation threshold is raised; both are put back on exit."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
