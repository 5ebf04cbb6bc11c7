"""Column arrays: the cheap way in and out of pandas for the feature steps.

For one member the cost of the pipeline is per-call pandas overhead, not arithmetic: reading one
column of a DataFrame (``frame[name]``) costs about 20 us, ``pd.array(values, dtype="str")``
about 70 us and ``pd.DataFrame(dict)`` re-inspects every column. The steps therefore hand each
other plain column mappings (``{name: numpy array or pandas extension array}``), build each output
DataFrame once from finished arrays, and read a caller's DataFrame column by column only when a
step is called on its own. The same code serves one member and a million.
"""

from __future__ import annotations

from itertools import repeat
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit
from pandas.api.internals import create_dataframe_from_blocks

# pandas' two string dtypes: ``str`` (missing is NaN, pandas 3 default) and ``string`` (missing is NA).
STR = pd.StringDtype(storage="pyarrow", na_value=np.nan)
STRING = pd.StringDtype(storage="pyarrow", na_value=pd.NA)
_SMALL = 64
_SMALL_KEYS = 4096

Columns = Mapping[str, object]
_UNSET_TEXT = object()
_COLUMN_INDEXES: dict[tuple[str, ...], pd.Index] = {}


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


class TextColumn:
    """A string column kept as Python strings (None = missing) until a DataFrame is built.

    Steps read each other's text columns as object arrays; holding them as Arrow strings in between
    would cost one conversion each way. ``frame_from_columns`` turns it into a ``dtype`` array.
    """

    __slots__ = ("values", "dtype", "_missing")

    def __init__(self, values, dtype: pd.StringDtype = STRING):
        self.values = values if isinstance(values, np.ndarray) and values.dtype == object else np.asarray(values, dtype=object)
        self.dtype = dtype
        self._missing = None

    def __len__(self) -> int:
        return len(self.values)

    def missing(self) -> np.ndarray:
        if self._missing is None:
            self._missing = np.equal(self.values, None)  # elementwise ``is None`` on an object array
        return self._missing

    def to_numpy(self, dtype=None, na_value=_UNSET_TEXT) -> np.ndarray:
        if dtype not in (None, object):
            raise TypeError(f"a text column cannot be read as {dtype}")
        fill = self.dtype.na_value if na_value is _UNSET_TEXT else na_value
        if fill is None or not self.missing().any():
            return self.values
        out = self.values.copy()
        out[self.missing()] = fill
        return out

    def to_array(self) -> pd.api.extensions.ExtensionArray:
        return string_array(self.values, self.dtype)


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
        if isinstance(values, TextColumn):
            values = values.to_array()
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
    key = tuple(names)
    labels = _COLUMN_INDEXES.get(key)
    if labels is None:
        labels = _COLUMN_INDEXES[key] = pd.Index(names)
    # a shallow copy per frame: the labels are shared, but setting ``columns.name`` stays local
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n_rows), columns=labels.copy())


def _column_array(frame: pd.DataFrame, name: str):
    """``frame[name].array`` without building the Series.

    ``frame[name]`` builds a Series (~15 us, ~45 us with the caches as cold as they are inside a
    request), and one member's pipeline reads thirteen columns: that was a tenth of its cost.
    ``DataFrame._get_column_array`` is private pandas API (pinned pandas 3.1); it returns the very
    array ``frame[name].array`` returns (the same object, or for datetimes a view of the same
    memory), which tests/features/test_columns.py checks for every column dtype the event model
    uses. The steps only read it. A name held by several columns goes the public way (and fails
    there as before).
    """
    at = frame.columns.get_loc(name)  # KeyError for an absent column, as frame[name]
    if not isinstance(at, int):
        return frame[name].array
    values = frame._get_column_array(at)
    # a NumPy-backed column is stored as a bare ndarray; ``.array`` wraps it
    return pd.arrays.NumpyExtensionArray(values) if isinstance(values, np.ndarray) else values


def columns_of(source: pd.DataFrame | Columns) -> Columns:
    """Column arrays of a DataFrame (read once each), or the mapping itself when already arrays."""
    if isinstance(source, pd.DataFrame):
        return FrameColumns(source)
    return source


class FrameColumns(Mapping):
    """A DataFrame seen as a mapping of column arrays; each column is read on first use only.

    Subclasses hold their columns otherwise and build the DataFrame only when ``.frame`` is read
    (``_build_frame``); the mapping protocol, the row count and the caches are this class's.
    """

    def __init__(self, frame: pd.DataFrame):
        self._frame: pd.DataFrame | None = frame
        self._names = frame.columns
        self._n = len(frame)
        self._cache: dict[str, object] = {}

    def __getitem__(self, name: str):
        hit = self._cache.get(name)
        if hit is None:
            hit = self._cache[name] = _column_array(self.frame, name)
        return hit

    def objects(self, name: str, na_value) -> np.ndarray:
        """The column as Python objects with ``na_value`` for missing, converted once per column."""
        key = (name, "objects")
        base = self._cache.get(key)
        if base is None:
            base = self._cache[key] = TextColumn(self._object_values(name))
        return base.to_numpy(object, na_value)

    def _object_values(self, name: str) -> np.ndarray:
        return to_numpy(self[name], object, None)

    def has_objects(self, name: str) -> bool:
        """Whether column ``name`` has already been converted to Python objects."""
        return (name, "objects") in self._cache

    def select_rows(self, keep: np.ndarray) -> "RowSelection":
        """The rows where ``keep`` is True, as column arrays taken from these on first use."""
        return RowSelection(self, keep)

    def derived(self, key: tuple, anchor: object, build):
        """A value computed from this frame and ``anchor`` once per pipeline call (``anchor`` is
        held with it, so the ``id`` in ``key`` cannot be reused while cached)."""
        hit = self._cache.get(key)
        if hit is None or hit[0] is not anchor:
            hit = self._cache[key] = (anchor, build())
        return hit[1]

    @property
    def has_frame(self) -> bool:
        """Whether the DataFrame has been built: scoring a request never needs it, and building it
        costs more than the mapping (a test keeps the request path columnar)."""
        return self._frame is not None

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame

    def _build_frame(self) -> pd.DataFrame:
        raise NotImplementedError  # only subclasses start without a frame

    @property
    def n_rows(self) -> int:
        return self._n

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._names


class ArrayColumns(FrameColumns):
    """Finished column arrays read as :class:`FrameColumns` reads a DataFrame; the DataFrame itself
    is built only when something asks for ``.frame`` (or for a text column as a pandas array).

    A one-member request maps claims straight to arrays, and the steps read every text column as
    Python objects: building Arrow string columns for a DataFrame only to convert them back cost
    ~0.7 ms of a ~7.5 ms request. Text columns are held as (index per row, -1 = missing; distinct
    values) pairs and become Python objects on first use; ``build_frame`` is the caller's, so the
    DataFrame a batch gets and the columns a request gets come from one implementation.
    """

    def __init__(self, arrays: dict[str, object], texts: dict[str, tuple[np.ndarray, np.ndarray]], names: tuple[str, ...], n_rows: int, build_frame):
        self._arrays, self._texts, self._names, self._n = arrays, texts, names, n_rows
        self._build_frame = build_frame
        self._frame = None
        self._cache = {}

    def __getitem__(self, name: str):
        hit = self._arrays.get(name)
        if hit is None:
            hit = self._cache.get(name)
            if hit is None:
                hit = self._cache[name] = _column_array(self.frame, name)  # KeyError for an absent column
        return hit

    def _object_values(self, name: str) -> np.ndarray:
        text = self._texts.get(name)
        if text is None:  # as the DataFrame's own column converts (dates become Timestamps)
            return to_numpy(_column_array(self.frame, name), object, None)
        index, values = text
        return np.append(values, None)[index]  # index -1 (missing) lands on the appended None


class RowSelection(FrameColumns):
    """Some rows of a :class:`FrameColumns`, each column taken from the parent's on first use.

    Clipping one member's events to ``as_of`` drops a few rows. Copying the whole frame
    (``frame[keep]``, ~0.3 ms for nine columns) and then reading and converting every column of
    the copy again costs more than most steps' arithmetic; here a column is filtered only when a
    step reads it, and what the parent has already converted (Python objects, each row's member
    position) is indexed with the mask instead of being converted twice.
    """

    def __init__(self, parent: FrameColumns, keep: np.ndarray):
        if keep.dtype != bool or keep.shape != (parent.n_rows,):
            raise ValueError(f"row mask must be boolean of length {parent.n_rows}")
        self._parent, self._keep = parent, keep
        self._names = parent._names
        self._n = int(np.count_nonzero(keep))
        self._frame = None
        self._cache = {}

    def __getitem__(self, name: str):
        hit = self._cache.get(name)
        if hit is None:
            hit = self._cache[name] = self._parent[name][self._keep]
        return hit

    def _object_values(self, name: str) -> np.ndarray:
        # A small parent's conversion (fixed cost) beats filtering the Arrow column first; a large
        # parent's is reused only when a step has already made it (converting all of it costs more).
        if self._parent.n_rows <= _SMALL_KEYS or self._parent.has_objects(name):
            return self._parent.objects(name, None)[self._keep]
        return to_numpy(self[name], object, None)

    def rows_of(self, parent_values: np.ndarray) -> np.ndarray:
        """Per-row values computed on the parent, restricted to these rows (read-only if those were)."""
        values = parent_values[self._keep]
        if not parent_values.flags.writeable:
            values.setflags(write=False)
        return values

    @property
    def parent(self) -> FrameColumns:
        return self._parent

    def _build_frame(self) -> pd.DataFrame:
        """The selected rows as a DataFrame (index 0..n-1)."""
        return self._parent.frame[self._keep].reset_index(drop=True)


def object_values(columns: Columns, name: str, na_value=None) -> np.ndarray:
    """Column ``name`` as a numpy object array with ``na_value`` for missing values.

    Several steps read the same event columns as Python objects; a DataFrame seen through
    :func:`columns_of` converts each column once for all of them.
    """
    if isinstance(columns, FrameColumns):
        return columns.objects(name, na_value)
    return to_numpy(columns[name], object, na_value)


def cached(columns: Columns, key: tuple, anchor: object, build):
    """``build()``, computed once per pipeline call when ``columns`` is a DataFrame seen through
    :func:`columns_of` (every step reads the same event columns the same way), else every time."""
    if isinstance(columns, FrameColumns):
        return columns.derived(key, anchor, build)
    return build()


def cached_rows(columns: Columns, key: tuple, anchor: object, build):
    """``build(columns)``, one value per row, cached as by :func:`cached`; on a
    :class:`RowSelection` it is the parent's value restricted to the selected rows, so a column the
    clipping step already converted (or the next step converts) is converted once, not per frame."""
    if isinstance(columns, RowSelection):
        parent = columns.parent
        return columns.derived(key, anchor, lambda: columns.rows_of(cached_rows(parent, key, anchor, build)))
    return cached(columns, key, anchor, lambda: build(columns))


def row_members(columns: Columns, ids: pd.Index) -> np.ndarray:
    """Position in ``ids`` of each row's ``person_id`` (-1 when absent or missing).

    Every step needs it; on a DataFrame seen through :func:`columns_of` it is computed once per
    set of ids. Large inputs factorise the ids first (a million rows hold ~50,000 members).
    """

    def build(columns: Columns) -> np.ndarray:
        if n_rows(columns) <= _SMALL_KEYS:
            return positions(ids, object_values(columns, "person_id", None), "as_of")
        codes, uniques = pd.factorize(columns["person_id"])
        return np.append(positions(ids, np.asarray(uniques, dtype=object), "as_of"), -1)[codes]

    return cached_rows(columns, ("row_members", id(ids)), ids, build)


def code_pair_index(events) -> tuple[np.ndarray, list[tuple]]:
    """Each row's index into the distinct ``(code_system, code)`` pairs, and those pairs (None for
    a missing system or code). Shared by every step that resolves codes: each then looks up a few
    dozen pairs instead of walking every row."""
    return cached(events, ("code_pairs",), None, lambda: _code_pair_index(events))


def _code_pair_index(events) -> tuple[np.ndarray, list[tuple]]:
    if n_rows(events) <= _SMALL_KEYS:  # one member: a dict walk beats three vectorised passes
        first: dict[tuple, int] = {}
        systems = object_values(events, "code_system", None).tolist()
        rows = [first.setdefault(pair, len(first)) for pair in zip(systems, object_values(events, "code", None).tolist())]
        return np.array(rows, dtype=np.int64), list(first)
    sys_ids, sys_uniques = pd.factorize(events["code_system"])
    code_ids, code_uniques = pd.factorize(events["code"])
    sys_ids, code_ids = sys_ids.astype(np.int64, copy=False), code_ids.astype(np.int64, copy=False)
    width = len(code_uniques) + 1
    if (len(sys_uniques) + 1) * width <= 4 * len(code_ids):
        rows, first_row = _dense_pairs(sys_ids, code_ids, len(sys_uniques), len(code_uniques))
    else:
        rows, unique_pairs = pd.factorize((sys_ids + 1) * width + code_ids + 1)
        first_row = np.empty(len(unique_pairs), dtype=np.int64)
        first_row[rows[::-1]] = np.arange(len(rows) - 1, -1, -1)  # the first row of each pair
    systems, codes = [*(str(v) for v in sys_uniques), None], [*(str(v) for v in code_uniques), None]  # code -1 (missing): None
    pairs = list(zip((systems[i] for i in sys_ids[first_row].tolist()), (codes[i] for i in code_ids[first_row].tolist())))
    return rows.astype(np.int64, copy=False), pairs


@njit(cache=True)
def _dense_pairs(a, b, n_a, n_b):
    """Dense ids of the (a, b) code pairs (codes -1..n-1) in first-seen order, and each id's first row."""
    width = n_b + 1
    seen = np.full((n_a + 1) * width, -1, np.int64)
    rows = np.empty(len(a), np.int64)
    first = np.empty(len(a), np.int64)
    count = 0
    for i in range(len(a)):
        key = (a[i] + 1) * width + b[i] + 1
        if seen[key] < 0:
            seen[key] = count
            first[count] = i
            count += 1
        rows[i] = seen[key]
    return rows, first[:count]


def n_rows(columns: Columns) -> int:
    """Number of rows of a column mapping (0 when it has no columns)."""
    if isinstance(columns, FrameColumns):
        return columns.n_rows
    for values in columns.values():
        return len(values)
    return 0


_UNSET = object()


def to_numpy(values, dtype=None, na_value=_UNSET) -> np.ndarray:
    """Any column array as numpy; ``na_value`` replaces missing values of extension arrays."""
    if isinstance(values, np.ndarray):
        return values if dtype is None else values.astype(dtype, copy=False)
    if isinstance(values, TextColumn):
        return values.to_numpy(dtype) if na_value is _UNSET else values.to_numpy(dtype, na_value)
    if isinstance(values, pd.arrays.DatetimeArray) and values.tz is None and (dtype is None or np.dtype(dtype).kind == "M"):
        array = values.to_numpy()  # the datetime64 ndarray as stored; numpy's cast is ~10x cheaper than pandas'
        return array if dtype is None else array.astype(dtype, copy=False)
    if isinstance(values, pd.arrays.NumpyExtensionArray) and (na_value is _UNSET or values.dtype.kind in "biufM"):
        array = values.to_numpy()
        return array if dtype is None else array.astype(dtype, copy=False)
    if na_value is _UNSET:
        return values.to_numpy(dtype=dtype)
    return values.to_numpy(dtype=dtype, na_value=na_value)


_LAST_LOOKUP: tuple[pd.Index, dict] | None = None


def _small_lookup(index: pd.Index, name: str) -> dict:
    """key -> position for a small index; the last one is kept, as one pipeline call asks for the
    same ``as_of`` index many times."""
    global _LAST_LOOKUP
    last = _LAST_LOOKUP
    if last is not None and last[0] is index:
        return last[1]
    lookup = {key: i for i, key in enumerate(index.tolist())}
    if len(lookup) != len(index):
        raise ValueError(f"{name} has duplicated person_id index values")
    _LAST_LOOKUP = (index, lookup)
    return lookup


def positions(index: pd.Index, keys: np.ndarray, name: str) -> np.ndarray:
    """Position of each key in ``index`` (-1 when absent); a dict walk for small inputs."""
    if len(index) <= _SMALL and len(keys) <= _SMALL_KEYS:
        lookup = _small_lookup(index, name)
        values = keys.tolist() if hasattr(keys, "tolist") else list(keys)
        return np.fromiter(map(lookup.get, values, repeat(-1)), dtype=np.int64, count=len(values))  # C-level walk
    if not index.is_unique:
        raise ValueError(f"{name} has duplicated person_id index values")
    return index.get_indexer(keys).astype(np.int64)
