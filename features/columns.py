"""Column arrays: the cheap way in and out of pandas for the feature steps.

For one member the cost of the pipeline is per-call pandas overhead, not arithmetic: reading one
column of a DataFrame (``frame[name]``) costs about 20 us, ``pd.array(values, dtype="str")``
about 70 us and ``pd.DataFrame(dict)`` re-inspects every column. The steps therefore hand each
other plain column mappings (``{name: numpy array or pandas extension array}``), build each output
DataFrame once from finished arrays, and read a caller's DataFrame column by column only when a
step is called on its own. The same code serves one member and a million.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks

# pandas' two string dtypes: ``str`` (missing is NaN, pandas 3 default) and ``string`` (missing is NA).
STR = pd.StringDtype(storage="pyarrow", na_value=np.nan)
STRING = pd.StringDtype(storage="pyarrow", na_value=pd.NA)
_SMALL = 64
_SMALL_KEYS = 4096

Columns = Mapping[str, object]


def string_array(values, dtype: pd.StringDtype = STRING) -> pd.api.extensions.ExtensionArray:
    """A pyarrow-backed string array from Python strings (None or NaN marks missing).

    Built straight from an Arrow array: ``pd.array(values, dtype=...)`` infers and validates every
    element and costs ~15x more for a handful of values.
    """
    if isinstance(values, np.ndarray) and values.dtype == object:
        array = pa.array(values, type=pa.large_string(), from_pandas=True)
    else:
        array = pa.array([None if v is None or (isinstance(v, float) and v != v) else v for v in values], type=pa.large_string())
    return pd.arrays.ArrowStringArray(array, dtype=dtype)


def object_column(values: list) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (lists stay lists, never a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def frame_from_columns(columns: Columns, n_rows: int) -> pd.DataFrame:
    """A DataFrame from finished column arrays, built block by block.

    ``pd.DataFrame(dict)`` re-inspects every column (about 20-30 us each), which for one member
    costs more than deriving the values. Here numpy columns of one dtype are stacked into one block
    and extension arrays (string, nullable) become their own blocks, using pandas' public
    ``create_dataframe_from_blocks``. Every numpy column must be 1-D of length ``n_rows``; object
    columns must already hold their final Python objects.
    """
    groups: dict[np.dtype, list[int]] = {}
    blocks = []
    names = list(columns)
    values_list = list(columns.values())
    for i, values in enumerate(values_list):
        if isinstance(values, np.ndarray):
            if values.shape != (n_rows,):
                raise ValueError(f"column {names[i]!r} has shape {values.shape}, expected ({n_rows},)")
            groups.setdefault(values.dtype, []).append(i)
        else:
            if len(values) != n_rows:
                raise ValueError(f"column {names[i]!r} has {len(values)} rows, expected {n_rows}")
            blocks.append((values, np.array([i], dtype=np.intp)))
    for at in groups.values():
        stacked = np.empty((len(at), n_rows), dtype=values_list[at[0]].dtype)
        for row, i in enumerate(at):
            stacked[row] = values_list[i]
        blocks.append((stacked, np.array(at, dtype=np.intp)))
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n_rows), columns=pd.Index(names))


def columns_of(source: pd.DataFrame | Columns) -> Columns:
    """Column arrays of a DataFrame (read once each), or the mapping itself when already arrays."""
    if isinstance(source, pd.DataFrame):
        return _FrameColumns(source)
    return source


class _FrameColumns(Mapping):
    """A DataFrame seen as a mapping of column arrays; each column is read on first use only."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._cache: dict[str, object] = {}

    def __getitem__(self, name: str):
        hit = self._cache.get(name)
        if hit is None:
            hit = self._cache[name] = self._frame[name].array
        return hit

    def __iter__(self):
        return iter(self._frame.columns)

    def __len__(self) -> int:
        return len(self._frame.columns)

    def __contains__(self, name) -> bool:
        return name in self._frame.columns


def n_rows(columns: Columns) -> int:
    """Number of rows of a column mapping (0 when it has no columns)."""
    for values in columns.values():
        return len(values)
    return 0


_UNSET = object()


def to_numpy(values, dtype=None, na_value=_UNSET) -> np.ndarray:
    """Any column array as numpy; ``na_value`` replaces missing values of extension arrays."""
    if isinstance(values, np.ndarray):
        return values if dtype is None else values.astype(dtype, copy=False)
    if isinstance(values, pd.arrays.NumpyExtensionArray) and (na_value is _UNSET or values.dtype.kind in "biufM"):
        array = values.to_numpy()
        return array if dtype is None else array.astype(dtype, copy=False)
    if na_value is _UNSET:
        return values.to_numpy(dtype=dtype)
    return values.to_numpy(dtype=dtype, na_value=na_value)


def positions(index: pd.Index, keys: np.ndarray, name: str) -> np.ndarray:
    """Position of each key in ``index`` (-1 when absent); a dict walk for small inputs."""
    if len(index) <= _SMALL and len(keys) <= _SMALL_KEYS:
        lookup = {key: i for i, key in enumerate(index.tolist())}
        if len(lookup) != len(index):
            raise ValueError(f"{name} has duplicated person_id index values")
        return np.array([lookup.get(p, -1) for p in keys], dtype=np.int64)
    if not index.is_unique:
        raise ValueError(f"{name} has duplicated person_id index values")
    return index.get_indexer(keys).astype(np.int64)
