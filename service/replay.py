"""JWT replay check: each ``(iss, jti)`` is accepted once while its token is valid.

Two stores with one method. :class:`ReplayCache` lives in one process's memory: enough for one
worker. With ``cartscout serve --workers N`` each worker is its own process, and a token replayed
to a different worker would pass a per-process check; :class:`SqliteReplayCache` keeps the pairs
in one SQLite file that every worker on the host shares (``CARTSCOUT_JTI_STORE``, which
``cartscout serve`` sets to a private file when it starts more than one worker). SQLite's own
locking makes the check-and-remember one atomic statement across processes. Several hosts need a
shared store of their own (not provided): route each EHR to one host, or run one worker per host.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path


class ReplayCache:
    """Remembers ``(issuer, jti)`` pairs until their token expires; bounded, oldest evicted first."""

    def __init__(self, max_entries: int):
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """True when the pair is new (and now remembered); False for a replay."""
        key = (issuer, jti)
        with self._lock:
            while self._seen:
                oldest_key, oldest_exp = next(iter(self._seen.items()))
                if oldest_exp >= now and len(self._seen) < self._max:
                    break
                self._seen.popitem(last=False)
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until >= now:
                return False
            self._seen[key] = expires_at
            self._seen.move_to_end(key)
            return True


class SqliteReplayCache:
    """The same check over a SQLite file shared by processes. Every ``PRUNE_EVERY`` accepted
    tokens, expired pairs are dropped, then the soonest to expire while over ``max_entries``, so
    the file stays within ``PRUNE_EVERY`` pairs of the bound."""

    PRUNE_EVERY = 256  # inserts between clean-ups: pruning is a table scan, the check is an index probe

    def __init__(self, path: Path, max_entries: int):
        self._max = max_entries
        self._lock = threading.Lock()
        self._inserts = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # losing the list in a power cut only re-admits tokens that expire within minutes
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (issuer TEXT NOT NULL, jti TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (issuer, jti)) WITHOUT ROWID")
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)")

    def check_and_add(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """True when the pair is new or its earlier token has expired (and it is now remembered);
        False for a replay. One statement, so two processes cannot both accept the same pair."""
        with self._lock:
            added = self._db.execute(
                "INSERT INTO seen (issuer, jti, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (issuer, jti) DO UPDATE SET expires = excluded.expires WHERE seen.expires < ?",
                (issuer, jti, expires_at, now),
            ).rowcount
            if added:
                self._inserts += 1
                if self._inserts % self.PRUNE_EVERY == 0:
                    self._prune(now)
            return bool(added)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM seen").fetchone()[0]

    def _prune(self, now: float) -> None:
        self._db.execute("DELETE FROM seen WHERE expires < ?", (now,))
        self._db.execute(
            "DELETE FROM seen WHERE (issuer, jti) IN (SELECT issuer, jti FROM seen ORDER BY expires LIMIT max(0, (SELECT count(*) FROM seen) - ?))",
            (self._max,),
        )
