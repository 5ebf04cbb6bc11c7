"""Member addresses and CAR T centres placed on real US ZIP codes (offline ``zipcodes`` package).

The package has no population counts, so members are drawn half from ZIPs in large metropolitan
cities and half from all standard ZIPs; that mix puts a realistic minority of members far (hours)
from a treatment centre, which is what the CAR T access model needs. No public list of CAR T
centres is available offline, so the centre file is synthetic: ~100 centres named
"Synthetic CAR T Centre NNN", placed at ZIPs of the large metros where real centres cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

# Large US metropolitan cities (city, state) with a rough weight for how many centres they hold.
METROS = (
    ("New York", "NY", 6), ("Los Angeles", "CA", 5), ("Chicago", "IL", 4), ("Houston", "TX", 4),
    ("Philadelphia", "PA", 4), ("Boston", "MA", 4), ("Dallas", "TX", 3), ("San Francisco", "CA", 3),
    ("Seattle", "WA", 3), ("Atlanta", "GA", 3), ("Baltimore", "MD", 3), ("Washington", "DC", 2),
    ("Miami", "FL", 3), ("Tampa", "FL", 2), ("Minneapolis", "MN", 2), ("Saint Louis", "MO", 2),
    ("Cleveland", "OH", 2), ("Columbus", "OH", 2), ("Cincinnati", "OH", 1), ("Pittsburgh", "PA", 2),
    ("Detroit", "MI", 2), ("Ann Arbor", "MI", 1), ("Nashville", "TN", 2), ("Denver", "CO", 2),
    ("Phoenix", "AZ", 2), ("San Diego", "CA", 2), ("Portland", "OR", 2), ("Salt Lake City", "UT", 2),
    ("Durham", "NC", 1), ("Chapel Hill", "NC", 1), ("Charlotte", "NC", 1), ("Birmingham", "AL", 1),
    ("New Orleans", "LA", 1), ("Omaha", "NE", 1), ("Kansas City", "MO", 1), ("Milwaukee", "WI", 1),
    ("Indianapolis", "IN", 1), ("Rochester", "MN", 1), ("San Antonio", "TX", 1), ("Sacramento", "CA", 1),
    ("Richmond", "VA", 1), ("Buffalo", "NY", 1), ("Iowa City", "IA", 1), ("Oklahoma City", "OK", 1),
    ("Little Rock", "AR", 1), ("Albuquerque", "NM", 1), ("Las Vegas", "NV", 1), ("Louisville", "KY", 1),
)
CENTRE_COUNT = 100
_METRO_SHARE = 0.5
_EARTH_RADIUS_MILES = 3958.8


@dataclass(frozen=True)
class ZipTable:
    """Standard US ZIP codes with coordinates; ``metro`` marks ZIPs in a METROS city."""

    zip_code: np.ndarray
    city: np.ndarray
    state: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    metro: np.ndarray


@cache
def load_zip_table() -> ZipTable:
    import zipcodes

    rows = [r for r in zipcodes.list_all() if r["zip_code_type"] == "STANDARD" and r["active"] and r["state"] not in ("PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW")]
    rows.sort(key=lambda r: r["zip_code"])
    metros = {(c.lower(), s) for c, s, _ in METROS}
    return ZipTable(
        zip_code=np.array([r["zip_code"] for r in rows]),
        city=np.array([r["city"].lower() for r in rows]),
        state=np.array([r["state"] for r in rows]),
        latitude=np.array([float(r["lat"]) for r in rows]),
        longitude=np.array([float(r["long"]) for r in rows]),
        metro=np.array([(r["city"].lower(), r["state"]) in metros for r in rows]),
    )


def draw_zip_indices(n: int, rng: np.random.Generator) -> np.ndarray:
    """Index into the ZIP table for ``n`` members: 50 % metro ZIPs, 50 % any standard ZIP."""
    table = load_zip_table()
    metro_idx = np.flatnonzero(table.metro)
    from_metro = rng.random(n) < _METRO_SHARE
    return np.where(from_metro, metro_idx[rng.integers(0, len(metro_idx), n)], rng.integers(0, len(table.zip_code), n)).astype(np.int32)


@cache
def build_centres() -> pd.DataFrame:
    """The synthetic CAR T centre file (name, zip, latitude, longitude); fixed, independent of seed."""
    table = load_zip_table()
    rng = np.random.default_rng(20_240_101)
    weights = np.array([w for _, _, w in METROS], dtype=float)
    counts = np.floor(weights / weights.sum() * CENTRE_COUNT).astype(int)
    counts[np.argsort(-weights)[: CENTRE_COUNT - counts.sum()]] += 1
    picks: list[int] = []
    for (city, state, _), k in zip(METROS, counts):
        candidates = np.flatnonzero(table.state == state)
        in_city = candidates[table.city[candidates] == city.lower()]
        pool = in_city if len(in_city) else candidates
        picks.extend(int(i) for i in rng.choice(pool, size=min(k, len(pool)), replace=False))
    picks = picks[:CENTRE_COUNT]
    return pd.DataFrame(
        {
            "name": [f"Synthetic CAR T Centre {i + 1:03d} (SYNTHETIC, not a real facility)" for i in range(len(picks))],
            "zip": table.zip_code[picks],
            "latitude": table.latitude[picks],
            "longitude": table.longitude[picks],
        }
    )


def miles_to_nearest_centre(zip_indices: np.ndarray) -> np.ndarray:
    """Great-circle miles from each member's ZIP centroid to the nearest synthetic centre."""
    table = load_zip_table()
    centres = build_centres()
    lat1 = np.radians(table.latitude[zip_indices])[:, None]
    lon1 = np.radians(table.longitude[zip_indices])[:, None]
    lat2 = np.radians(centres["latitude"].to_numpy())[None, :]
    lon2 = np.radians(centres["longitude"].to_numpy())[None, :]
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return (2 * _EARTH_RADIUS_MILES * np.arcsin(np.sqrt(a))).min(axis=1)
