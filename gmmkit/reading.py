"""Reading data files for the command line (and :func:`load_data` from Python).

In memory: CSV, whitespace-delimited text, ``.npy`` and standard input, parsed into a NumPy
array.  Larger than memory (needs the ``dask`` extra, ``pip install 'gmmkit[dask]'``): a
Zarr store, a directory of Parquet files (or one Parquet file) and a large ``.npy`` opened
as a memory map are read as a lazy ``dask.array.Array`` of float64, with rows in chunks;
nothing is read from them until the fit computes it (a Parquet source reads its columns
once, to count the rows of each chunk).  Every reader applies the same column selection,
text-column and missing-value rules, and says what it read in :attr:`DataTable.notes`.

Output directories are written by :mod:`gmmkit.output`, not here.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gmmkit._validation import is_lazy_array

__all__ = ["LAZY_NPY_BYTES", "DataTable", "is_lazy", "load_data", "read_data"]


#: Cells that mean "missing" rather than "not a number someone typed by mistake".
_MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})

#: A ``.npy`` file larger than this (in bytes) is opened as a memory map and read lazily,
#: in row chunks, rather than loaded: half a GiB leaves room for the fit's own (N, K)
#: work arrays on a laptop.
LAZY_NPY_BYTES = 2**29

#: What a Dask source needs, named in the error when it is missing.
_DASK_EXTRA = "pip install 'gmmkit[dask]'"

#: Files of a Zarr store that mark a directory as one (format 2 array or group, format 3).
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
_PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


@dataclasses.dataclass(frozen=True)
class DataTable:
    """What :func:`read_data` read: the features, their names, labels and notes.

    Attributes
    ----------
    X : ndarray or dask.array.Array, shape (N, D)
        float64.  A lazy Dask array (known row chunks, nothing computed) for Zarr and
        Parquet sources and large ``.npy`` files, or when asked with ``lazy=True``.
    names : list of str
        One name per column of ``X``.
    labels : ndarray of str, shape (N,), or None
        The ``labels`` column, as text (always in memory).
    notes : list of str
        What was left out and why (text columns skipped, rows dropped) and, for a lazy
        source, how it is read; one line each.
    """

    X: Any
    names: list[str]
    labels: np.ndarray | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is a Dask array (checked without importing Dask)."""
    return is_lazy_array(x)


def _has_dask() -> bool:
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def load_data(
    source: str | Path, *, columns: Sequence[str] | None = None, standardize: bool = False,
    stdin: TextIO | None = None, dropna: bool = False, labels: str | None = None,
    lazy: bool | None = None, chunk_rows: int | None = None,
) -> tuple[Any, list[str]]:
    """Read a numeric data matrix from a file; :func:`read_data` without labels and notes.

    Returns
    -------
    X : ndarray or dask.array.Array, shape (N, D)
    names : list of str
        One name per column of ``X``.
    """
    table = read_data(source, columns=columns, standardize=standardize, stdin=stdin,
                      dropna=dropna, labels=labels, lazy=lazy, chunk_rows=chunk_rows)
    return table.X, table.names


def read_data(
    source: str | Path, *, columns: Sequence[str] | None = None, standardize: bool = False,
    stdin: TextIO | None = None, dropna: bool = False, labels: str | None = None,
    lazy: bool | None = None, chunk_rows: int | None = None,
) -> DataTable:
    """Read a numeric data matrix (and optionally a label column) from a file.

    Parameters
    ----------
    source : str or Path
        A CSV file (comma, semicolon or tab) with or without a header row, a
        whitespace-delimited text file (``np.loadtxt`` style), a ``.npy`` file, or
        ``"-"`` for standard input.  A UTF-8 byte-order mark is ignored.  With Dask
        installed, also a Zarr store (a directory ``*.zarr`` or holding ``.zarray``,
        ``.zgroup`` or ``zarr.json``: a 2-D array, or a group holding one 2-D array or
        1-D arrays that are the columns), a Parquet file or a directory of them.
    columns : sequence of str, optional
        Feature columns, by header name or 0-based index.  Only these are parsed, so
        text in other columns is never read as data.  Default: every column except
        ``labels``, leaving out text columns (most cells non-numeric; for Parquet and
        Zarr, a non-numeric type) with a note.  The names of a 2-D Zarr array are its
        ``columns`` attribute when it has one, else ``0`` to ``D - 1``.
    standardize : bool
        Centre each column and scale it to unit (population) standard deviation (one
        pass over a lazy source, for the means and standard deviations).
    stdin : text stream, optional
        Where ``"-"`` reads from (defaults to ``sys.stdin``).
    dropna : bool
        Drop rows with a missing value (in the features or the label) instead of
        refusing them; a note says how many.  On a lazy source this takes one pass (to
        count the rows left in each chunk); without it, a missing value is found as its
        chunk is read and stops the computation with the same error as a text file's.
    labels : str, optional
        A column (name or 0-based index) of true labels (any text); never a feature.
        Read into memory, also from a lazy source.
    lazy : bool, optional
        True: return a Dask array whatever the source (a text file is parsed, then
        split into row chunks).  False: compute a Zarr or Parquet source into a NumPy
        array.  Default: lazy for Zarr and Parquet, and for a ``.npy`` file larger than
        :data:`LAZY_NPY_BYTES` (opened as a memory map; loaded when Dask is not
        installed) or when ``chunk_rows`` is given.
    chunk_rows : int, optional
        Rows per chunk of a lazy ``X`` [default: the store's chunks (Zarr), the files'
        row groups (Parquet), or about Dask's ``array.chunk-size`` (``.npy``, text)].

    Returns
    -------
    DataTable

    Raises
    ------
    ValueError
        With one line naming the problem: a missing or empty file, a non-numeric cell (row
        and column), missing values (how many, and where the first is), an absent column.
    ImportError
        A Zarr, Parquet or lazy source without Dask (or Zarr, or pyarrow) installed,
        naming the extra to install.
    """
    if chunk_rows is not None and (
        isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer)
        or chunk_rows < 1
    ):
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if lazy is not None and not isinstance(lazy, bool):
        raise ValueError(f"lazy must be True, False or None, got {lazy!r}")
    label = "standard input" if str(source) == "-" else str(source)
    if str(source) == "-":
        text = (stdin or sys.stdin).read().lstrip("\ufeff")
        table = _parse_text(text, label, columns, labels, dropna)
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"DATA: file {label} does not exist")
        if _is_zarr(path):
            table = _read_zarr(path, label, columns, labels, dropna)
        elif _is_parquet(path):
            table = _read_parquet(path, label, columns, labels, dropna)
        elif path.is_dir():
            raise ValueError(
                f"DATA: {label} is a directory but neither a Zarr store (no .zarray, "
                ".zgroup or zarr.json) nor a directory of Parquet files; expected a data "
                "file, a Zarr store or Parquet files"
            )
        elif path.suffix.lower() == ".npy":
            # Without Dask a large file is loaded, as it always was: the default install
            # stays light.
            big = path.stat().st_size > LAZY_NPY_BYTES and _has_dask()
            if lazy or (lazy is None and (big or chunk_rows is not None)):
                table = _read_npy_lazily(path, label, columns, labels, dropna, chunk_rows)
            else:
                X, names = _load_npy(path, label)
                table = _select_npy(X, names, columns, labels, label)
        else:
            try:
                # utf-8-sig: a byte-order mark is dropped, not read into the first cell.
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ValueError(
                    f"DATA: {label} is not a text file; expected CSV, whitespace-delimited "
                    "text, .npy, a Zarr store or Parquet files"
                ) from None
            table = _parse_text(text, label, columns, labels, dropna)
    X, names = table.X, table.names
    if X.shape[1] == 0:
        raise ValueError(f"DATA: {label} has no numeric columns to fit")
    if not is_lazy(X) and (lazy or chunk_rows is not None) and lazy is not False:
        X = _dask().from_array(X, chunks=(chunk_rows or _default_chunk_rows(X.shape[1]), -1))
    elif is_lazy(X) and lazy is False:
        X = np.asarray(X.compute(), dtype=np.float64)
    elif is_lazy(X) and chunk_rows is not None and max(X.chunks[0]) != chunk_rows:
        X = X.rechunk({0: chunk_rows, 1: -1})
    if standardize:
        X = _standardize(X, names)
    notes = list(table.notes)
    if is_lazy(X):
        notes.append(
            f"read lazily with Dask: {X.shape[0]} rows x {X.shape[1]} columns in "
            f"{X.numblocks[0]} chunk(s) of up to {max(X.chunks[0])} rows"
        )
    return dataclasses.replace(table, X=X, notes=notes)


def _standardize(X: Any, names: list[str]) -> Any:
    if is_lazy(X):
        # One pass for both moments; the centring and scaling stay lazy.
        mean, sd = _dask().compute(X.mean(axis=0), X.std(axis=0))
    else:
        mean, sd = X.mean(axis=0), X.std(axis=0)
    if np.any(sd == 0):
        constant = [names[j] for j in np.flatnonzero(sd == 0)]
        raise ValueError(
            f"--standardize: column(s) {', '.join(constant)} are constant and cannot be "
            "scaled to unit standard deviation"
        )
    return (X - mean) / sd


def _resolve(column: str, names: list[str], label: str, option: str) -> int:
    """Index of ``column``: a header name, else a 0-based index."""
    if column in names:
        return names.index(column)
    try:
        index = int(column)
    except ValueError:
        index = -1
    if 0 <= index < len(names):
        return index
    raise ValueError(
        f"{option}: column {column!r} is not in {label}; its columns are "
        f"{', '.join(names)} (or 0-based indices 0 to {len(names) - 1})"
    )


def _selection(
    names: list[str], columns: Sequence[str] | None, labels: str | None, label: str
) -> tuple[list[int] | None, int | None]:
    label_index = None if labels is None else _resolve(labels, names, label, "--labels")
    if not columns:
        return None, label_index
    index = [_resolve(c, names, label, "--columns") for c in columns]
    if label_index is not None and label_index in index:
        raise ValueError(
            f"--labels: column {names[label_index]!r} is also in --columns; labels are "
            "never a feature"
        )
    return index, label_index


def _select_npy(X, names, columns, labels, label) -> DataTable:
    index, label_index = _selection(names, columns, labels, label)
    if index is None:
        index = [j for j in range(X.shape[1]) if j != label_index]
    y = None if label_index is None else np.array([f"{v:g}" for v in X[:, label_index]])
    return DataTable(X[:, index], [names[j] for j in index], y)


def _load_npy(path: Path, label: str) -> tuple[np.ndarray, list[str]]:
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"DATA: {label} is not a readable .npy array ({err})") from None
    if X.size == 0:
        raise ValueError(f"DATA: {label} is empty")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"DATA: {label} must hold a 1-D or 2-D array, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"DATA: {label} must hold numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    missing = ~np.isfinite(X)
    if missing.any():
        row, col = (int(i) for i in np.argwhere(missing)[0])
        raise ValueError(
            f"DATA: {label} has {int(missing.sum())} missing or non-finite value(s); the "
            f"first is in row {row + 1}, column {col}"
        )
    return X, [str(j) for j in range(X.shape[1])]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_text(
    text: str, label: str, columns: Sequence[str] | None = None, labels: str | None = None,
    dropna: bool = False,
) -> DataTable:
    """Parse CSV (comma, semicolon or tab) or whitespace-delimited text."""
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError(f"DATA: {label} is empty")
    first = lines[0][1]
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)

    def split(line: str) -> list[str]:
        cells = line.split(delimiter) if delimiter else line.split()
        return [cell.strip().strip('"').strip("'") for cell in cells]

    header = split(first)
    # A header names columns: none of its cells is a number.  (A first data row may hold
    # text too, such as a species column, but then it also holds numbers.)
    has_header = not any(_is_number(cell) for cell in header) and any(
        cell.lower() not in _MISSING_TOKENS for cell in header
    )
    if has_header:
        names, rows = header, lines[1:]
    else:
        names, rows = [str(j) for j in range(len(header))], lines
    if not rows:
        raise ValueError(f"DATA: {label} has a header row but no data rows")
    width = len(names)
    index, label_index = _selection(names, columns, labels, label)
    if label_index is None:
        fast = _parse_fast(text, delimiter, has_header, width, index)
        if fast is not None:
            chosen = list(range(width)) if index is None else index
            return DataTable(fast, [names[j] for j in chosen])
    # Slow path (text columns, labels, missing values or a bad cell): walk the cells, to
    # name the first bad one (row, line and column) instead of passing on a parser's
    # traceback.
    cells = []
    for line_number, line in rows:
        row = split(line)
        if len(row) != width:
            raise ValueError(
                f"DATA: line {line_number} of {label} has {len(row)} field(s), expected "
                f"{width}"
            )
        cells.append(row)
    notes = []
    if index is None:
        candidates = [j for j in range(width) if j != label_index]
        text_columns = [j for j in candidates if _is_text_column(cells, j)]
        index = [j for j in candidates if j not in text_columns]
        if text_columns:
            notes.append(
                "skipped text column(s) " + ", ".join(repr(names[j]) for j in text_columns)
                + " (pick columns with --columns, or name a label column with --labels)"
            )
    X = np.empty((len(rows), len(index)))
    missing_rows = np.zeros(len(rows), dtype=bool)
    n_missing, first_missing = 0, None
    for r, row in enumerate(cells):
        line_number = rows[r][0]
        for c, j in enumerate(index):
            cell = row[j]
            try:
                X[r, c] = float(cell)
            except ValueError:
                if cell.lower() in _MISSING_TOKENS:
                    X[r, c] = np.nan
                else:
                    raise ValueError(
                        f"DATA: non-numeric value {cell!r} in row {r + 1} (line "
                        f"{line_number}), column {names[j]!r} of {label}"
                    ) from None
            if not np.isfinite(X[r, c]):
                n_missing += 1
                missing_rows[r] = True
                first_missing = first_missing or (r + 1, line_number, names[j])
    y = None
    if label_index is not None:
        y = np.array([row[label_index] for row in cells])
        no_label = np.array([v.lower() in _MISSING_TOKENS for v in y], dtype=bool)
        if no_label.any() and not dropna:
            r = int(np.argmax(no_label))
            raise ValueError(
                f"DATA: {label} has {int(no_label.sum())} missing label(s) in column "
                f"{names[label_index]!r}; the first is in row {r + 1} (line {rows[r][0]}). "
                "Pass --dropna to drop those rows"
            )
        missing_rows |= no_label
    if missing_rows.any():
        if not dropna:
            row, line_number, column = first_missing
            raise ValueError(
                f"DATA: {label} has {n_missing} missing value(s); the first is in row {row} "
                f"(line {line_number}), column {column!r}. Remove or impute them first, or "
                "pass --dropna"
            )
        keep = ~missing_rows
        if not keep.any():
            raise ValueError(f"--dropna: every row of {label} has a missing value")
        notes.append(f"dropped {int(missing_rows.sum())} row(s) with missing values "
                     f"(--dropna); {int(keep.sum())} left")
        X = X[keep]
        y = None if y is None else y[keep]
    return DataTable(X, [names[j] for j in index], y, notes)


def _is_text_column(cells: list[list[str]], j: int) -> bool:
    """Most non-missing cells are not numbers (a name or category, not a typo)."""
    values = [row[j] for row in cells if row[j].lower() not in _MISSING_TOKENS]
    text = sum(not _is_number(v) for v in values)
    return bool(values) and text > len(values) / 2


def _parse_fast(
    text: str, delimiter: str | None, has_header: bool, width: int,
    index: list[int] | None = None,
) -> np.ndarray | None:
    """pandas' C parser for well-formed files; None when the file needs a diagnosis."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter or r"\s+", header=0 if has_header else None,
            comment="#", skip_blank_lines=True, dtype=np.float64, skipinitialspace=True,
            usecols=index,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    X = frame.to_numpy(dtype=np.float64)
    expected = width if index is None else len(index)
    if X.ndim != 2 or X.shape[1] != expected or X.shape[0] == 0 or not np.isfinite(X).all():
        return None
    if index is not None:
        # usecols returns the columns in file order; put them in the order asked for.
        X = X[:, np.argsort(np.argsort(index))]
    return X


# ----------------------------------------------------------------- lazy (Dask) sources
def _dask() -> Any:
    """``dask.array``, or an ImportError naming the extra to install."""
    try:
        import dask.array as da
    except ImportError:
        raise ImportError(
            f"reading Zarr stores, Parquet files and large .npy files needs Dask: {_DASK_EXTRA}"
        ) from None
    return da


def _default_chunk_rows(n_columns: int) -> int:
    """Rows per chunk so that a float64 chunk is about Dask's ``array.chunk-size``."""
    import dask
    from dask.utils import parse_bytes

    return max(1, parse_bytes(dask.config.get("array.chunk-size")) // (8 * n_columns))


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / m).exists() for m in _ZARR_MARKERS)
    )


def _is_parquet(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in _PARQUET_SUFFIXES
    return path.is_dir() and any(
        p.suffix.lower() in _PARQUET_SUFFIXES for p in path.rglob("*") if p.is_file()
    )


def _is_numeric(dtype: Any) -> bool:
    """Numbers, not booleans, text or categories (a Parquet or Zarr column's type)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def _numeric_selection(
    names: list[str], dtypes: list[Any], columns: Sequence[str] | None, labels: str | None,
    label: str,
) -> tuple[list[int], int | None, list[str]]:
    """Feature and label columns of a typed source: text columns are skipped with a note
    when no ``columns`` are given, refused when named."""
    index, label_index = _selection(names, columns, labels, label)
    notes = []
    if index is None:
        candidates = [j for j in range(len(names)) if j != label_index]
        text_columns = [j for j in candidates if not _is_numeric(dtypes[j])]
        index = [j for j in candidates if _is_numeric(dtypes[j])]
        if text_columns:
            notes.append(
                "skipped text column(s) " + ", ".join(repr(names[j]) for j in text_columns)
                + " (pick columns with --columns, or name a label column with --labels)"
            )
    else:
        for j in index:
            if not _is_numeric(dtypes[j]):
                raise ValueError(
                    f"--columns: column {names[j]!r} of {label} holds {dtypes[j]}, not "
                    "numbers; pick numeric columns (or name it with --labels)"
                )
    return index, label_index, notes


def _refuse_missing(block: np.ndarray, *, label: str, names: tuple[str, ...],
                    block_info: dict | None = None) -> np.ndarray:
    """``block`` unchanged, or the text reader's missing-value error for its first bad cell.

    Mapped over a lazy source's chunks, so the check costs no pass of its own: it runs as
    the fit reads each chunk (a Dask worker's ValueError reaches the caller as one)."""
    bad = ~np.isfinite(block)
    if bad.any():
        start = block_info[0]["array-location"][0][0] if block_info else 0
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"DATA: {label} has {int(bad.sum())} missing or non-finite value(s) in rows "
            f"{start + 1} to {start + len(block)}; the first is in row {start + row + 1}, "
            f"column {names[col]!r}. Remove or impute them first, or pass --dropna"
        )
    return block


def _missing_labels(y: np.ndarray) -> np.ndarray:
    """Which labels are missing (a missing token, as in a text file)."""
    return np.isin(np.char.lower(np.char.strip(y.astype(str))), list(_MISSING_TOKENS))


def _finish_lazy(
    X: Any, names: list[str], y: np.ndarray | None, label: str, dropna: bool,
    notes: list[str], label_name: str | None = None,
) -> DataTable:
    """Apply the missing-value policy to a lazy float64 ``X`` (and in-memory labels)."""
    no_label = None if y is None else _missing_labels(y)
    if no_label is not None and no_label.any() and not dropna:
        r = int(np.argmax(no_label))
        raise ValueError(
            f"DATA: {label} has {int(no_label.sum())} missing label(s) in column "
            f"{label_name!r}; the first is in row {r + 1}. Pass --dropna to drop those rows"
        )
    if not dropna:
        X = X.map_blocks(_refuse_missing, label=label, names=tuple(names), dtype=np.float64)
        return DataTable(X, names, y, notes)
    n_rows = X.shape[0]
    keep = _dask().isfinite(X).all(axis=1)
    if y is None:
        X = X[keep]
        X.compute_chunk_sizes()  # the one pass that counts the rows left in each chunk
    else:
        # The labels are in memory already: so is the row mask (one byte a row).
        keep = keep.compute() & ~no_label
        X, y = X[keep], y[keep]
    if X.shape[0] == 0:
        raise ValueError(f"--dropna: every row of {label} has a missing value")
    if X.shape[0] < n_rows:
        notes = [*notes, f"dropped {n_rows - X.shape[0]} row(s) with missing values "
                         f"(--dropna); {X.shape[0]} left"]
    return DataTable(X, names, y, notes)


def _read_zarr(
    path: Path, label: str, columns: Sequence[str] | None, labels: str | None, dropna: bool,
) -> DataTable:
    """A Zarr array (N, D) or (N,), or a group of one such array or of 1-D columns."""
    da = _dask()
    try:
        import zarr
    except ImportError:
        raise ImportError(f"reading a Zarr store needs zarr: {_DASK_EXTRA}") from None
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises several types for a broken store
        raise ValueError(f"DATA: {label} is not a readable Zarr store ({err})") from None
    if isinstance(node, zarr.Array):
        return _zarr_matrix(path, None, node, label, columns, labels, dropna)
    arrays = dict(node.arrays())
    if not arrays:
        raise ValueError(f"DATA: the Zarr group {label} holds no arrays")
    if len(arrays) == 1:
        (name, array), = arrays.items()
        return _zarr_matrix(path, name, array, label, columns, labels, dropna)
    shapes = {name: a.shape for name, a in arrays.items()}
    lengths = {s[0] for s in shapes.values()}
    if any(len(s) != 1 for s in shapes.values()) or len(lengths) != 1:
        raise ValueError(
            f"DATA: the Zarr group {label} holds several arrays ("
            + ", ".join(f"{n} {s}" for n, s in shapes.items())
            + "); expected one 2-D array, or 1-D arrays of one length (the columns). Point "
            f"DATA at one array ({label}/NAME)"
        )
    # A Zarr group does not keep the order its members were written in (a v3 store lists
    # them as its file system does), so the columns are taken in name order: the same
    # table on every machine and every read.
    names = sorted(arrays)
    index, label_index, notes = _numeric_selection(
        names, [arrays[n].dtype for n in names], columns, labels, label)
    parts = [da.from_zarr(str(path), component=names[j]) for j in index]
    # Columns stored with different chunks are cut to the first one's rows.
    X = da.stack([p.rechunk(parts[0].chunks) for p in parts], axis=1).astype(np.float64)
    y = None
    if label_index is not None:
        values = np.asarray(arrays[names[label_index]][:])
        # Numbers are written as a .npy label column is ("2", not "2.0").
        y = np.char.mod("%g", values) if _is_numeric(values.dtype) else values.astype(str)
    return _finish_lazy(X, [names[j] for j in index], y, label, dropna, notes,
                        None if label_index is None else names[label_index])


def _zarr_matrix(
    path: Path, component: str | None, array: Any, label: str, columns: Sequence[str] | None,
    labels: str | None, dropna: bool,
) -> DataTable:
    where = label if component is None else f"{label}/{component}"
    if array.ndim not in (1, 2) or 0 in array.shape:
        raise ValueError(
            f"DATA: the Zarr array {where} must be 1-D or 2-D and not empty, got shape "
            f"{array.shape}"
        )
    if not _is_numeric(array.dtype):
        raise ValueError(f"DATA: the Zarr array {where} must hold numbers, got {array.dtype}")
    width = 1 if array.ndim == 1 else array.shape[1]
    declared = array.attrs.get("columns")
    names = ([str(n) for n in declared]
             if isinstance(declared, list) and len(declared) == width
             else [str(j) for j in range(width)])
    index, label_index = _selection(names, columns, labels, label)
    if index is None:
        index = [j for j in range(width) if j != label_index]
    X = _dask().from_zarr(str(path), component=component)
    if X.ndim == 1:
        X = X[:, None]
    y = None
    if label_index is not None:
        y = np.char.mod("%g", X[:, label_index].compute())
    # A store chunked along columns too is read a row block at a time.
    X = X[:, index].astype(np.float64).rechunk({1: -1})
    return _finish_lazy(X, [names[j] for j in index], y, label, dropna, [],
                        None if label_index is None else names[label_index])


def _read_parquet(
    path: Path, label: str, columns: Sequence[str] | None, labels: str | None, dropna: bool,
) -> DataTable:
    """A Parquet file or directory, only the chosen columns read (pyarrow)."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise ImportError(f"reading Parquet files needs Dask: {_DASK_EXTRA}") from None
    try:
        frame = dd.read_parquet(str(path))  # the schema only: nothing is read yet
    except ImportError as err:
        raise ImportError(f"reading Parquet files needs pyarrow ({err}): {_DASK_EXTRA}") from None
    except Exception as err:  # pyarrow raises its own types for a broken file
        raise ValueError(f"DATA: {label} is not readable Parquet ({err})") from None
    keys = list(frame.columns)
    names = [str(c) for c in keys]
    index, label_index, notes = _numeric_selection(
        names, list(frame.dtypes), columns, labels, label)
    chosen = [keys[j] for j in index]
    wanted = chosen + ([] if label_index is None else [keys[label_index]])
    frame = dd.read_parquet(str(path), columns=wanted)
    # Nullable integers' <NA> become NaN, and infinities count as missing, as in text.
    features = frame[chosen].astype(np.float64).replace([np.inf, -np.inf], np.nan)
    X = features.to_dask_array()
    X.compute_chunk_sizes()  # one pass over the chosen columns: the rows of each chunk
    y, label_name = None, None
    if label_index is not None:
        label_name = names[label_index]
        values = frame[keys[label_index]].compute()
        y = np.where(values.isna().to_numpy(), "", values.astype(str).to_numpy())
    return _finish_lazy(X, [names[j] for j in index], y, label, dropna, notes, label_name)


def _read_npy_lazily(
    path: Path, label: str, columns: Sequence[str] | None, labels: str | None, dropna: bool,
    chunk_rows: int | None = None,
) -> DataTable:
    """A ``.npy`` file as a memory map, read a row chunk at a time by the tasks themselves
    (each opens the file by name, so a cluster's workers never receive the data)."""
    da = _dask()
    from dask.base import tokenize

    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"DATA: {label} is not a readable .npy array ({err})") from None
    if mapped.size == 0:
        raise ValueError(f"DATA: {label} is empty")
    if mapped.ndim not in (1, 2):
        raise ValueError(f"DATA: {label} must hold a 1-D or 2-D array, got shape {mapped.shape}")
    if not np.issubdtype(mapped.dtype, np.number):
        raise ValueError(f"DATA: {label} must hold numbers, got dtype {mapped.dtype}")
    width = 1 if mapped.ndim == 1 else mapped.shape[1]
    names = [str(j) for j in range(width)]
    index, label_index = _selection(names, columns, labels, label)
    if index is None:
        index = [j for j in range(width) if j != label_index]
    n_rows = mapped.shape[0]
    step = chunk_rows or _default_chunk_rows(len(index))
    row_chunks = tuple(min(step, n_rows - start) for start in range(0, n_rows, step))
    stat = path.stat()
    X = da.map_blocks(
        _npy_rows, chunks=(row_chunks, (len(index),)), dtype=np.float64,
        meta=np.empty((0, 0)), path=str(path.resolve()), columns=tuple(index),
        # The name changes with the file, so a rewritten file is never served from cache.
        name="read-npy-" + tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size,
                                    index, row_chunks),
    )
    y = None
    if label_index is not None:
        column = mapped[:, label_index] if mapped.ndim == 2 else mapped
        y = np.char.mod("%g", np.asarray(column))
    return _finish_lazy(X, [names[j] for j in index], y, label, dropna, [],
                        None if label_index is None else names[label_index])


def _npy_rows(path: str, columns: tuple[int, ...], block_info: dict | None = None) -> np.ndarray:
    """Rows ``block_info``'s location of the ``.npy`` file ``path``, as float64."""
    (start, stop), _ = block_info[None]["array-location"]
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    rows = mapped[start:stop]
    if rows.ndim == 1:
        rows = rows[:, None]
    return np.asarray(rows[:, list(columns)], dtype=np.float64)
