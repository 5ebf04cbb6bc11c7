"""Distance from a member's home ZIP code to the nearest CAR T treatment centre.

CAR T is given only at certified centres, and patients (with a caregiver) must stay near the centre
for about four weeks after infusion, so travel distance is a known barrier to referral. Claims carry
only a 5-digit ZIP, so distances run from ZIP centroids (the offline ``zipcodes`` package) and are
great-circle miles, not road miles.

``load_zip_centroids`` reads the package's table; call it once at start-up and pass the result into
:func:`nearest_center_miles`, which is pure. A missing centre list or an unknown ZIP gives NaN, not
an error: distance is a risk feature, and absence of it must not stop a member from being scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EARTH_RADIUS_MILES = 3958.7613
_CHUNK = 4096
_SMALL = 64
_INDEXED: tuple[pd.DataFrame, dict[str, int], np.ndarray] | None = None  # the last centroid table, indexed


def load_zip_centroids() -> pd.DataFrame:
    """ZIP centroid table indexed by 5-digit ZIP string with ``latitude`` and ``longitude`` (degrees)."""
    import zipcodes

    rows = [(z["zip_code"], z["lat"], z["long"]) for z in zipcodes.list_all()]
    table = pd.DataFrame(rows, columns=["zip_code", "latitude", "longitude"])
    table["latitude"] = pd.to_numeric(table["latitude"], errors="coerce")
    table["longitude"] = pd.to_numeric(table["longitude"], errors="coerce")
    table = table.dropna().drop_duplicates("zip_code")
    return table.set_index(pd.Index(table["zip_code"].astype(str).to_numpy(dtype=object), name="zip_code"))[["latitude", "longitude"]]


def locate_centers(centers: pd.DataFrame, zip_centroids: pd.DataFrame) -> np.ndarray:
    """Centre coordinates as an (m, 2) array of degrees; a centre without coordinates takes its ZIP's centroid.

    Centres that can be placed neither way are dropped (a typo in one row must not hide the others).
    """
    if centers is None or len(centers) == 0:
        return np.empty((0, 2))
    lat = pd.to_numeric(centers.get("latitude"), errors="coerce") if "latitude" in centers else pd.Series(np.nan, index=centers.index)
    lon = pd.to_numeric(centers.get("longitude"), errors="coerce") if "longitude" in centers else pd.Series(np.nan, index=centers.index)
    coords = np.column_stack([lat.to_numpy(dtype=float), lon.to_numpy(dtype=float)])
    if "zip" in centers and zip_centroids is not None:
        fallback = _centroids_for(centers["zip"].to_numpy(dtype=object, na_value=None), zip_centroids)
        unknown = np.isnan(coords).any(axis=1)
        coords[unknown] = fallback[unknown]
    return coords[~np.isnan(coords).any(axis=1)]


def nearest_center_miles(zip_codes, zip_centroids: pd.DataFrame | None, center_coords: np.ndarray | None) -> np.ndarray:
    """Miles from each ZIP's centroid to the nearest centre; NaN for unknown ZIPs or no centres.

    ``zip_codes`` is any sequence of strings (missing allowed). Distances are computed once per
    distinct ZIP (a million members live in ~40,000 ZIPs), in chunks so that the ZIP x centre
    matrix stays small; plain arrays keep the cost for one member in microseconds.
    """
    values = np.asarray(zip_codes, dtype=object)
    out = np.full(len(values), np.nan)
    if zip_centroids is None or center_coords is None or len(center_coords) == 0 or len(values) == 0:
        return out
    if len(values) <= _SMALL:  # the real-time path: factorising costs more than a repeated ZIP
        inverse, unique = np.arange(len(values)), values
    else:
        inverse, unique = pd.factorize(values, use_na_sentinel=True)
    coords = _centroids_for(unique, zip_centroids)
    best = np.full(len(unique), np.nan)
    known = ~np.isnan(coords).any(axis=1)
    rad_centers = np.radians(center_coords)
    for start in range(0, len(unique), _CHUNK):
        block = np.flatnonzero(known[start : start + _CHUNK]) + start
        if len(block):
            best[block] = _haversine_miles(np.radians(coords[block]), rad_centers).min(axis=1)
    valid = inverse >= 0
    out[valid] = best[inverse[valid]]
    return out


def _zip5(value) -> str:
    """``"02139-4307"``, ``" 2139"`` and ``2139`` all become ``"02139"``; anything else stays unmatched."""
    text = str(value).strip().split("-")[0][:5]
    return text.zfill(5) if text.isdigit() else ""


def _centroids_for(zips, zip_centroids: pd.DataFrame) -> np.ndarray:
    """(n, 2) centroid degrees per ZIP, NaN for unknown ZIPs."""
    keys = [_zip5(z) if isinstance(z, (str, int)) else "" for z in zips]
    row_of, coords = _index_centroids(zip_centroids)
    position = np.fromiter((row_of.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
    found = coords[np.maximum(position, 0)] if len(coords) else np.full((len(keys), 2), np.nan)
    found[position < 0] = np.nan
    return found


def _index_centroids(zip_centroids: pd.DataFrame) -> tuple[dict[str, int], np.ndarray]:
    """ZIP -> row and the (m, 2) coordinate array (a dict lookup per ZIP is ~50x cheaper than a
    pandas indexer call for one member, and as fast for many). Callers keep one centroid table for
    their whole life, so the last one indexed is kept, with the table itself: identity, not ``id()``,
    decides a hit."""
    global _INDEXED
    last = _INDEXED
    if last is not None and last[0] is zip_centroids:
        return last[1], last[2]
    row_of = {str(z): i for i, z in enumerate(zip_centroids.index.tolist())}
    coords = np.column_stack([zip_centroids["latitude"].to_numpy(dtype=float), zip_centroids["longitude"].to_numpy(dtype=float)])
    _INDEXED = (zip_centroids, row_of, coords)
    return row_of, coords


def _haversine_miles(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Great-circle distances (miles) between each point and each centre, both in radians."""
    lat1, lon1 = points[:, :1], points[:, 1:2]
    lat2, lon2 = centers[:, 0][None, :], centers[:, 1][None, :]
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
