"""Input checks shared by every model and method.

Every message names the argument, what was expected and what was received, so a user
sees a one-line ``ValueError`` instead of a traceback from deep inside NumPy or PyMC.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return repr(value)


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, refusing NaN, inf and values <= 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {_describe(value)}") from None
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return out


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int, refusing non-integers and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Refuse a string option that is not one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; expected one of {listed}")
    return value


def check_finite_array(name: str, x: Any) -> np.ndarray:
    """Convert to a float64 array and refuse NaN or inf, naming the first bad entry."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric, got {type(x).__name__}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite, but it holds {int(bad.sum())} NaN/inf value(s); "
            f"the first is at index {where if len(where) > 1 else where[0]}"
        )
    return arr


def check_univariate_data(x: Any, *, name: str = "x", min_points: int = 1) -> np.ndarray:
    """Validate 1-D data: shape (N,) or (N, 1), finite, with at least ``min_points`` points."""
    arr = check_finite_array(name, x)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D data of shape (N,) or (N, 1) for a univariate model, "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape[0] < min_points:
        raise ValueError(
            f"{name} must hold at least {min_points} points, got {arr.shape[0]}"
        )
    return arr


def check_multivariate_data(
    x: Any, *, name: str = "X", min_points: int = 1, n_features: int | None = None
) -> np.ndarray:
    """Validate data of shape (N, D); a 1-D array is read as (N, 1)."""
    arr = check_finite_array(name, x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got an array of shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} feature(s) (columns) as the data the model was "
            f"fitted on, got {arr.shape[1]}"
        )
    if arr.shape[0] < min_points:
        raise ValueError(f"{name} must hold at least {min_points} points, got {arr.shape[0]}")
    return arr
