"""Lookup tables compiled once per (code lists, configuration) and found again by object identity.

Every step compiles code-list lookups for its configuration. Keying those caches on the frozen
config objects' values means hashing them on every call: a pydantic model hashes field by field
(the eligibility rule set is ~190 nested ``__hash__`` calls), which alone cost a noticeable share
of a one-member pipeline call. Callers (the service, the batch scorer) hold the same objects for
their whole life, so the tables are found by ``id()`` first and by value only the first time an
object is seen. Entries keep their key objects alive, so an id cannot be reused while cached.
"""

from __future__ import annotations

from threading import Lock
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")
_MAX_IDENTITIES = 256


class IdentityMemo:
    """``get(objects, build)``: the value for these objects, built at most once per equal value."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[int, ...], tuple[tuple, object]] = {}
        self._by_value: dict[Hashable, object] = {}
        self._lock = Lock()

    def get(self, objects: tuple, value_key: Callable[[], Hashable], build: Callable[[], T]) -> T:
        """``objects`` identify the entry; ``value_key()`` is the hashable fallback key; ``build()`` makes it."""
        ident = tuple(id(o) for o in objects)
        hit = self._by_id.get(ident)
        if hit is not None and all(a is b for a, b in zip(hit[0], objects)):
            return hit[1]  # type: ignore[return-value]
        with self._lock:
            key = value_key()
            value = self._by_value.get(key)
            if value is None:
                value = self._by_value[key] = build()
            if len(self._by_id) >= _MAX_IDENTITIES:
                self._by_id.clear()  # callers creating fresh config objects per call must not grow this
            self._by_id[ident] = (objects, value)
        return value  # type: ignore[return-value]


PAIR_MEMO_LIMIT = 1 << 18


def bounded(memo: dict) -> dict:
    """``memo`` itself, emptied first once it holds ``PAIR_MEMO_LIMIT`` entries: memos of the
    (system, code) pairs seen across requests stay bounded however many distinct well-formed codes
    callers send (a real population has tens of thousands)."""
    if len(memo) >= PAIR_MEMO_LIMIT:
        memo.clear()
    return memo
