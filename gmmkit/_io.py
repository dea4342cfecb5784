"""Reading data files for the command line (and :func:`load_data` from Python).

Output directories are written by :mod:`gmmkit.output`, not here."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

__all__ = ["load_data"]


# ---------------------------------------------------------------------- reading data
#: Cells that mean "missing" rather than "not a number someone typed by mistake".
_MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})


def load_data(
    source: str | Path, *, columns: Sequence[str] | None = None, standardize: bool = False,
    stdin: TextIO | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Read a numeric data matrix from a file, for the command line.

    Parameters
    ----------
    source : str or Path
        A CSV file with a header row, a whitespace-delimited text file (``np.loadtxt``
        style, header optional), a ``.npy`` file, or ``"-"`` for standard input.
    columns : sequence of str, optional
        Columns to keep, by header name (or by 0-based index for files without a header).
    standardize : bool
        Centre each column and scale it to unit (population) standard deviation.
    stdin : text stream, optional
        Where ``"-"`` reads from (defaults to ``sys.stdin``).

    Returns
    -------
    X : ndarray, shape (N, D)
    names : list of str
        One name per column of ``X``.

    Raises
    ------
    ValueError
        With one line naming the problem: a missing or empty file, a non-numeric cell (row
        and column), missing values (how many, and where the first is), an absent column.
    """
    label = "standard input" if str(source) == "-" else str(source)
    if str(source) == "-":
        text = (stdin or sys.stdin).read()
        X, names = _parse_text(text, label)
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"DATA: file {label} does not exist")
        if path.is_dir():
            raise ValueError(f"DATA: {label} is a directory, expected a data file")
        if path.suffix.lower() == ".npy":
            X, names = _load_npy(path, label)
        else:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                raise ValueError(
                    f"DATA: {label} is not a text file; expected CSV, whitespace-delimited "
                    "text or .npy"
                ) from None
            X, names = _parse_text(text, label)
    if columns:
        X, names = _select_columns(X, names, list(columns), label)
    if standardize:
        sd = X.std(axis=0)
        if np.any(sd == 0):
            constant = [names[j] for j in np.flatnonzero(sd == 0)]
            raise ValueError(
                f"--standardize: column(s) {', '.join(constant)} are constant and cannot be "
                "scaled to unit standard deviation"
            )
        X = (X - X.mean(axis=0)) / sd
    return X, names


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


def _parse_text(text: str, label: str) -> tuple[np.ndarray, list[str]]:
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
    has_header = any(
        not _is_number(cell) and cell.lower() not in _MISSING_TOKENS for cell in header
    )
    if has_header:
        names, rows = header, lines[1:]
    else:
        names, rows = [str(j) for j in range(len(header))], lines
    if not rows:
        raise ValueError(f"DATA: {label} has a header row but no data rows")
    width = len(names)
    fast = _parse_fast(text, delimiter, has_header, width)
    if fast is not None:
        return fast, names
    # Slow path, only reached when something is wrong: walk the cells to name the first
    # bad one (row, line and column) instead of passing on a parser's traceback.
    X = np.empty((len(rows), width))
    n_missing, first_missing = 0, None
    for r, (line_number, line) in enumerate(rows):
        cells = split(line)
        if len(cells) != width:
            raise ValueError(
                f"DATA: line {line_number} of {label} has {len(cells)} field(s), expected "
                f"{width}"
            )
        for c, cell in enumerate(cells):
            try:
                X[r, c] = float(cell)
            except ValueError:
                if cell.lower() in _MISSING_TOKENS:
                    X[r, c] = np.nan
                else:
                    raise ValueError(
                        f"DATA: non-numeric value {cell!r} in row {r + 1} (line "
                        f"{line_number}), column {names[c]!r} of {label}"
                    ) from None
            if not np.isfinite(X[r, c]):
                n_missing += 1
                first_missing = first_missing or (r + 1, line_number, names[c])
    if n_missing:
        row, line_number, column = first_missing
        raise ValueError(
            f"DATA: {label} has {n_missing} missing value(s); the first is in row {row} "
            f"(line {line_number}), column {column!r}. Remove or impute them first"
        )
    return X, names


def _parse_fast(
    text: str, delimiter: str | None, has_header: bool, width: int
) -> np.ndarray | None:
    """pandas' C parser for well-formed files; None when the file needs a diagnosis."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter or r"\s+", header=0 if has_header else None,
            comment="#", skip_blank_lines=True, dtype=np.float64, skipinitialspace=True,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    X = frame.to_numpy(dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != width or X.shape[0] == 0 or not np.isfinite(X).all():
        return None
    return X


def _select_columns(
    X: np.ndarray, names: list[str], columns: list[str], label: str
) -> tuple[np.ndarray, list[str]]:
    index = []
    for column in columns:
        if column in names:
            index.append(names.index(column))
        else:
            raise ValueError(
                f"--columns: column {column!r} is not in {label}; its columns are "
                f"{', '.join(names)}"
            )
    return X[:, index], [names[j] for j in index]
