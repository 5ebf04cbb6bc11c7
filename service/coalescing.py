"""Requests that queue while the scorer is busy are done together, as one batch.

The feature pipeline is vectorised: one call costs ~8 ms of fixed work for a single member and
about 1 ms more per further member, so a service answering one member per request spends most of
its time on per-call overhead as soon as requests overlap. A :class:`Coalescer` keeps a queue of
waiting items; a scoring thread takes everything waiting (up to ``max_items``) as one batch. An
item that arrives while the scorer is idle is started at once, alone: no timer, no added wait.

One item's failure never reaches another: when a batch raises, each of its items not yet answered
is done again alone, so each gets exactly the answer or error it would have had by itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Deliver = Callable[[int, Any], None]
Process = Callable[[Sequence[Item], Deliver], None]


@dataclass(eq=False)
class _Job(Generic[Item]):
    item: Item
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Coalescer(Generic[Item]):
    """Run ``process(items, deliver)`` on waiting items in at most ``threads`` scoring threads.

    ``process`` calls ``deliver(i, outcome)`` once for each item it answers (``outcome`` an
    exception instance to raise in the waiting request, else its result). It may deliver some
    items (say, ones whose body did not validate) and carry on with the rest; it should deliver
    before dropping what it built, so tearing that down does not delay the answers. An exception
    escaping ``process`` sends the items it left unanswered through ``process`` one at a time.
    """

    def __init__(self, process: Process, *, max_items: int, threads: int = 1, name: str = "cartscout-scoring"):
        if max_items < 1 or threads < 1:
            raise ValueError("max_items and threads must be at least 1")
        self._process = process
        self._max_items = max_items
        self._threads = threads
        self._pending: deque[_Job[Item]] = deque()
        self._lock = threading.Lock()
        self._draining = 0
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    @property
    def waiting(self) -> int:
        """How many items are queued and not yet taken by a scoring thread."""
        return len(self._pending)

    async def submit(self, item: Item) -> Any:
        """The outcome of ``item`` once a scoring thread has processed it (its exception raised)."""
        loop = asyncio.get_running_loop()
        job = _Job(item, loop, loop.create_future())
        with self._lock:
            self._pending.append(job)
            start = self._draining < self._threads
            self._draining += start
        if start:
            self._executor.submit(self._drain)
        return await job.future

    def _drain(self) -> None:
        """Process waiting jobs batch after batch until the queue is empty."""
        while True:
            with self._lock:
                if not self._pending:
                    self._draining -= 1
                    return
                batch = [self._pending.popleft() for _ in range(min(self._max_items, len(self._pending)))]
            self._run(batch)

    def _run(self, batch: list[_Job[Item]]) -> None:
        answered: set[int] = set()

        def deliver(index: int, outcome: Any) -> None:
            answered.add(index)
            job = batch[index]
            job.loop.call_soon_threadsafe(_settle, job.future, outcome)

        try:
            self._process([job.item for job in batch], deliver)
        except Exception as error:  # noqa: BLE001 - re-run alone, or hand the error to its request
            if len(batch) == 1:
                if not answered:
                    deliver(0, error)
                return
            for index, job in enumerate(batch):
                if index not in answered:
                    self._run([job])
            return
        for index in range(len(batch)):
            if index not in answered:
                deliver(index, RuntimeError("the scoring step returned without answering this request"))


def _settle(future: asyncio.Future, outcome: Any) -> None:
    """Complete ``future`` on its event loop, unless its request was cancelled meanwhile."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
