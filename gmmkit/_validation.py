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


#: Standard deviations (and other scales that get squared and inverted) must lie in
#: [1e-150, 1e150]: then sd^2 and 1/sd^2 are normal float64 numbers, with room for the
#: products with N and the data that the updates form (sd^2 alone would overflow at
#: 1.3e154 and underflow to 0 at 1e-162).
SCALE_RANGE = (1e-150, 1e150)


def check_scale(name: str, value: Any) -> float:
    """Return a standard deviation as a float, refusing values whose square or inverse
    square is not a usable float64 (outside :data:`SCALE_RANGE`)."""
    out = check_positive(name, value)
    lo, hi = SCALE_RANGE
    if not lo <= out <= hi:
        raise ValueError(
            f"{name} must lie in [{lo:g}, {hi:g}] so that {name}**2 and 1/{name}**2 are "
            f"finite, non-zero float64 numbers, got {value!r}"
        )
    return out


def check_positive_in_range(name: str, value: Any, lo: float, hi: float) -> float:
    """Return a positive float in [lo, hi], naming the argument and the range otherwise."""
    out = check_positive(name, value)
    if not lo <= out <= hi:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {value!r}")
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
    """Convert to a float64 array and refuse NaN or inf, naming the first bad entry.

    Only real numbers are accepted: floating or integer arrays (and lists of them).
    Complex, bool, string and object arrays are refused rather than converted, because
    the conversion would silently drop the imaginary part or read True as 1.0.
    """
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be numeric (an array of real floating or integer numbers), got "
            f"a {type(x).__name__} that is not a rectangular array"
        ) from None
    if raw.dtype.kind not in _REAL_KINDS:
        raise ValueError(
            f"{name} must be numeric (real floating or integer numbers), got an array of "
            f"dtype {raw.dtype} ({_KIND_NAMES.get(raw.dtype.kind, 'non-numeric')})"
        )
    arr = np.asarray(raw, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite, but it holds {int(bad.sum())} NaN/inf value(s); "
            f"the first is at index {where if len(where) > 1 else where[0]}"
        )
    return arr


#: dtype kinds accepted as data: floating, signed and unsigned integers.
_REAL_KINDS = "fiu"
_KIND_NAMES = {"c": "complex", "b": "bool", "U": "string", "S": "bytes", "O": "object",
               "M": "datetime", "m": "timedelta", "V": "structured"}

#: Data whose sum of squares exceeds this are refused.  Every method forms sums of
#: squares and outer products of the data (the sample covariance, sum r x x^T, the
#: Gaussian exponents), and a few of those added together must still fit in float64
#: (max ~1.8e308): 1e300 leaves eight orders of magnitude of headroom.
MAX_SUM_OF_SQUARES = 1e300


def check_data_scale(name: str, arr: np.ndarray) -> np.ndarray:
    """Refuse data whose sum of squares overflows (exceeds :data:`MAX_SUM_OF_SQUARES`).

    Computed as max|x|^2 * sum((x / max|x|)^2), so the check itself cannot overflow
    before it compares.  Roughly, |x| > 1e150 / sqrt(N D) is refused.
    """
    if arr.size == 0:
        return arr
    top = float(np.max(np.abs(arr)))
    if top == 0.0:
        return arr
    log_total = 2.0 * np.log(top) + np.log(np.sum((arr / top) ** 2))
    if log_total > np.log(MAX_SUM_OF_SQUARES):
        raise ValueError(
            f"{name} is too large in scale: its sum of squares is about "
            f"1e{log_total / np.log(10):.0f} (largest |value| {top:.3g}), beyond "
            f"{MAX_SUM_OF_SQUARES:.0e}, where float64 sums of squares overflow; rescale "
            "the data (e.g. divide by its standard deviation)"
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
    return check_data_scale(name, arr)


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
    return check_data_scale(name, arr)


# ----------------------------------------------------------------------------- lazy arrays
def is_lazy_array(x: Any) -> bool:
    """True for a Dask array (duck-typed on ``__dask_graph__`` and ``chunks``), without
    importing Dask, so NumPy input never pays for it."""
    return (getattr(x, "__dask_graph__", None) is not None and hasattr(x, "chunks")
            and hasattr(x, "shape") and hasattr(x, "dtype"))


def check_lazy_data(
    x: Any, *, name: str, univariate: bool, min_points: int = 1,
    n_features: int | None = None,
) -> Any:
    """Check a Dask array's shape and dtype without computing it.

    Returns a float64 Dask array of shape (N,) for a univariate model or (N, D) otherwise
    (an (N,) array is read as D = 1; an (N, 1) array as univariate), with every row chunk
    holding all the columns (rechunked if not).  Finiteness is checked chunk by chunk
    in the first pass over the data (:mod:`gmmkit.inference.chunked`).
    """
    dtype = np.dtype(x.dtype)
    if dtype.kind not in _REAL_KINDS:
        raise ValueError(
            f"{name} must be numeric (real floating or integer numbers), got a Dask array "
            f"of dtype {dtype} ({_KIND_NAMES.get(dtype.kind, 'non-numeric')})"
        )
    if any(np.isnan(c) for c in x.chunks[0]) or not x.chunks[0]:
        raise ValueError(
            f"{name} must be a Dask array with known chunk sizes, got unknown (NaN) row "
            "chunk sizes; call x.compute_chunk_sizes() first"
        )
    if univariate:
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D data of shape (N,) or (N, 1) for a univariate model, "
                f"got a Dask array of shape {x.shape}"
            )
    else:
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(
                f"{name} must have shape (N, D), got a Dask array of shape {x.shape}")
        if n_features is not None and x.shape[1] != n_features:
            raise ValueError(
                f"{name} must have {n_features} feature(s) (columns), got {x.shape[1]}")
        if len(x.chunks[1]) > 1:
            # A row chunk must hold whole points: every statistic is per point.
            x = x.rechunk({1: -1})
    if x.shape[0] < min_points:
        raise ValueError(f"{name} must hold at least {min_points} points, got {x.shape[0]}")
    return x.astype(np.float64) if dtype != np.float64 else x


def check_lazy_sample_weight(sample_weight: Any, n_points: int) -> Any:
    """Check a Dask ``sample_weight``'s shape and dtype (its values are checked chunk by
    chunk in the first pass); returns a float64 Dask array of shape (N,)."""
    dtype = np.dtype(sample_weight.dtype)
    if dtype.kind not in _REAL_KINDS:
        raise ValueError(
            f"sample_weight must be an array of {n_points} non-negative numbers, got a "
            f"Dask array of dtype {dtype}"
        )
    if sample_weight.shape != (n_points,):
        raise ValueError(
            f"sample_weight must have shape ({n_points},), one weight per data point, "
            f"got shape {sample_weight.shape}"
        )
    return sample_weight.astype(np.float64) if dtype != np.float64 else sample_weight
