"""The blocked pass over the points shared by the closed-form methods: block sizes, the
memory budget for keeping features, and log densities to responsibilities on NumPy's fast
exp.

NumPy's vectorised exp (AVX2 / AVX-512) hands every argument below about -708, where
exp(x) is subnormal or 0, to a scalar fallback that is 10-100 times slower per element
(measured on this project's machine: 0.6 ns per element above -705, 11-125 ns below
-708, and 3.6 ns for -inf).  The log-responsibilities of well-separated data sit there
for most (point, component) pairs: a diag VB iteration at N = 1e5, D = 32, K = 16 spent
55 of its 75 ms in exp (``benchmarks/bench_vb.py``).  scikit-learn and scipy's
``logsumexp`` pay it too.

Every exp here is taken of the shifted log densities floored at :data:`EXP_FLOOR`.  That
changes a responsibility only where it is below exp(-700) ~ 1e-304, in a point whose
largest responsibility is at least 1 / K, so the change lies below the rounding of every
sum it enters (N_k, sum r x, sum logsumexp): the floor is a speed fix, not an
approximation of the model.  A component that explains no point keeps responsibilities of
~1e-304 instead of exact zeros, which no update divides by (the M-steps are in raw-moment
form or add 10 eps to N_k), so nothing becomes NaN either way.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "EXP_FLOOR",
    "KEEP_FEATURES_BYTES",
    "block_size",
    "exp_floored",
    "log_normaliser_rows",
    "normalise_columns",
]

#: The (p, N) features of the data are kept between iterations when they fit in this many
#: bytes (and recomputed per block otherwise).
KEEP_FEATURES_BYTES = 256 * 2**20


def block_size(n_components: int, n_features: int) -> int:
    """Points per block of a VB pass: ~64k doubles per (K, block) or (p, block) buffer
    amortises Python overhead and keeps the buffers in L2 cache (measured with
    ``benchmarks/bench_vb.py``)."""
    return max(512, 65_536 // max(n_components, n_features))


#: The floor of exp's argument: exp(-700) ~ 9.9e-305 is a normal double with margin above
#: where NumPy's fast path ends (~ -708).
EXP_FLOOR = -700.0


def exp_floored(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """exp(max(a, EXP_FLOOR)), into ``out`` (may be ``a`` itself) or a new array."""
    out = np.maximum(a, EXP_FLOOR, out=out)
    return np.exp(out, out=out)


def normalise_columns(logits: np.ndarray, col_max: np.ndarray, col_sum: np.ndarray
                      ) -> None:
    """In place, for log densities laid out as (K, B), one point per column:
    ``logits`` <- rho / max_k rho (as exp of the floored shifted logits), ``col_max`` <-
    max_k logits, ``col_sum`` <- sum_k rho / max_k rho.  The point's logsumexp is then
    ``col_max + log(col_sum)`` and its responsibilities ``logits / col_sum``.

    Parameters
    ----------
    logits : ndarray, shape (K, B)
    col_max, col_sum : ndarray, shape (B,)
        Output buffers.
    """
    np.max(logits, axis=0, out=col_max)
    logits -= col_max  # log space: the largest term is exp(0) = 1, nothing overflows
    exp_floored(logits, out=logits)
    np.sum(logits, axis=0, out=col_sum)


def log_normaliser_rows(log_prob: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis of log densities (N, K) -> (N,), as scipy's
    ``logsumexp(log_prob, axis=1)`` (equal to rounding) but on the fast exp."""
    row_max = np.max(log_prob, axis=1)
    if not np.all(np.isfinite(row_max)):  # a row without finite terms: scipy's rules
        return logsumexp(log_prob, axis=1)
    shifted = exp_floored(log_prob - row_max[:, None])
    return row_max + np.log(np.sum(shifted, axis=1))
