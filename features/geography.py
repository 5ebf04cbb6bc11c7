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
        fallback = _centroids_for(centers["zip"], zip_centroids)
        unknown = np.isnan(coords).any(axis=1)
        coords[unknown] = fallback[unknown]
    return coords[~np.isnan(coords).any(axis=1)]


def nearest_center_miles(zip_codes: pd.Series, zip_centroids: pd.DataFrame | None, center_coords: np.ndarray | None) -> np.ndarray:
    """Miles from each ZIP's centroid to the nearest centre; NaN for unknown ZIPs or no centres.

    Distances are computed once per distinct ZIP (a million members live in ~40,000 ZIPs), in
    chunks so that the ZIP x centre matrix stays small.
    """
    out = np.full(len(zip_codes), np.nan)
    if zip_centroids is None or center_coords is None or len(center_coords) == 0 or len(zip_codes) == 0:
        return out
    inverse, unique = pd.factorize(pd.Series(zip_codes).astype("string").str.slice(0, 5), use_na_sentinel=True)
    coords = _centroids_for(pd.Series(np.asarray(unique, dtype=object)), zip_centroids)
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


def _centroids_for(zips: pd.Series, zip_centroids: pd.DataFrame) -> np.ndarray:
    keys = pd.Series(zips).astype("string").str.strip().str.slice(0, 5).str.zfill(5).fillna("").to_numpy(dtype=object)
    position = zip_centroids.index.get_indexer(keys)
    coords = zip_centroids[["latitude", "longitude"]].to_numpy(dtype=float)[np.maximum(position, 0)]
    coords[position < 0] = np.nan
    return coords


def _haversine_miles(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Great-circle distances (miles) between each point and each centre, both in radians."""
    lat1, lon1 = points[:, :1], points[:, 1:2]
    lat2, lon2 = centers[:, 0][None, :], centers[:, 1][None, :]
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
