"""Reading data files for the command line (and :func:`load_data` from Python).

Output directories are written by :mod:`gmmkit.output`, not here.
"""

from __future__ import annotations

import dataclasses
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

__all__ = ["DataTable", "load_data", "read_data"]


#: Cells that mean "missing" rather than "not a number someone typed by mistake".
_MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})


@dataclasses.dataclass(frozen=True)
class DataTable:
    """What :func:`read_data` read: the features, their names, labels and notes.

    Attributes
    ----------
    X : ndarray, shape (N, D)
    names : list of str
        One name per column of ``X``.
    labels : ndarray of str, shape (N,), or None
        The ``labels`` column, as text.
    notes : list of str
        What was left out and why (text columns skipped, rows dropped), one line each.
    """

    X: np.ndarray
    names: list[str]
    labels: np.ndarray | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def load_data(
    source: str | Path, *, columns: Sequence[str] | None = None, standardize: bool = False,
    stdin: TextIO | None = None, dropna: bool = False, labels: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read a numeric data matrix from a file; :func:`read_data` without labels and notes.

    Returns
    -------
    X : ndarray, shape (N, D)
    names : list of str
        One name per column of ``X``.
    """
    table = read_data(source, columns=columns, standardize=standardize, stdin=stdin,
                      dropna=dropna, labels=labels)
    return table.X, table.names


def read_data(
    source: str | Path, *, columns: Sequence[str] | None = None, standardize: bool = False,
    stdin: TextIO | None = None, dropna: bool = False, labels: str | None = None,
) -> DataTable:
    """Read a numeric data matrix (and optionally a label column) from a file.

    Parameters
    ----------
    source : str or Path
        A CSV file (comma, semicolon or tab) with or without a header row, a
        whitespace-delimited text file (``np.loadtxt`` style), a ``.npy`` file, or
        ``"-"`` for standard input.  A UTF-8 byte-order mark is ignored.
    columns : sequence of str, optional
        Feature columns, by header name or 0-based index.  Only these are parsed, so
        text in other columns is never read as data.  Default: every column except
        ``labels``, leaving out text columns (most cells non-numeric) with a note.
    standardize : bool
        Centre each column and scale it to unit (population) standard deviation.
    stdin : text stream, optional
        Where ``"-"`` reads from (defaults to ``sys.stdin``).
    dropna : bool
        Drop rows with a missing value (in the features or the label) instead of
        refusing them; a note says how many.
    labels : str, optional
        A column (name or 0-based index) of true labels (any text); never a feature.

    Returns
    -------
    DataTable

    Raises
    ------
    ValueError
        With one line naming the problem: a missing or empty file, a non-numeric cell (row
        and column), missing values (how many, and where the first is), an absent column.
    """
    label = "standard input" if str(source) == "-" else str(source)
    if str(source) == "-":
        text = (stdin or sys.stdin).read().lstrip("\ufeff")
        table = _parse_text(text, label, columns, labels, dropna)
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"DATA: file {label} does not exist")
        if path.is_dir():
            raise ValueError(f"DATA: {label} is a directory, expected a data file")
        if path.suffix.lower() == ".npy":
            X, names = _load_npy(path, label)
            table = _select_npy(X, names, columns, labels, label)
        else:
            try:
                # utf-8-sig: a byte-order mark is dropped, not read into the first cell.
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ValueError(
                    f"DATA: {label} is not a text file; expected CSV, whitespace-delimited "
                    "text or .npy"
                ) from None
            table = _parse_text(text, label, columns, labels, dropna)
    X, names = table.X, table.names
    if X.shape[1] == 0:
        raise ValueError(f"DATA: {label} has no numeric columns to fit")
    if standardize:
        sd = X.std(axis=0)
        if np.any(sd == 0):
            constant = [names[j] for j in np.flatnonzero(sd == 0)]
            raise ValueError(
                f"--standardize: column(s) {', '.join(constant)} are constant and cannot be "
                "scaled to unit standard deviation"
            )
        X = (X - X.mean(axis=0)) / sd
    return dataclasses.replace(table, X=X)


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
