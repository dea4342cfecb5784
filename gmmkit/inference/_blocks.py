"""The blocked pass over the points shared by the closed-form methods: block sizes, the
memory budget for keeping features, the pass split over threads, and log densities to
responsibilities on NumPy's fast exp.

**Threads.**  An in-memory pass is cut into chunks of :data:`CHUNK_BLOCKS` blocks; each
chunk's statistics are computed on their own (block by block, as before) and the chunks'
results are added in chunk order, whichever thread computed them.  The chunks depend on
N and the block size only, never on the number of threads, so a fit gives the same bits
on one thread or many.  Threads share the data without copying it.  The VB passes run
each block as one compiled call without the GIL (:func:`softmax_statistics`,
:mod:`gmmkit.inference._kernels`); CAVI's and EM's passes are NumPy calls, which release
the GIL only inside BLAS and ufunc loops, so their threads wait for it in between.

**The exp.**
NumPy's vectorised exp (AVX2 / AVX-512) hands every argument below about -708, where
exp(x) is subnormal or 0, to a scalar fallback that is 10-100 times slower per element
(measured on this project's machine: 0.6 ns per element above -705, 11-125 ns below
-708, and 3.6 ns for -inf).  Well-separated data put some of their (point, component)
pairs there -- 6 % in ``benchmarks/bench_vb.py``'s diag case, N = 1e5, D = 32, K = 16,
whose VB iteration spent 55 of its 75 ms in exp.  scikit-learn and scipy's
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

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "CHUNK_BLOCKS",
    "EXP_FLOOR",
    "KEEP_FEATURES_BYTES",
    "KERNEL_TILE",
    "QuadraticFeatures",
    "block_size",
    "chunked_pass",
    "data_softmax_statistics",
    "default_threads",
    "diag_softmax_statistics",
    "exp_floored",
    "in_memory_pass",
    "log_normaliser_rows",
    "map_chunks",
    "normalise_columns",
    "pass_threads",
    "resolve_threads",
    "softmax_statistics",
]

#: Blocks per chunk of a threaded pass: a chunk (~1-3 ms of work) dwarfs handing it to a
#: thread, and N = 1e5 makes a dozen chunks, which two threads share evenly.
CHUNK_BLOCKS = 2

T = TypeVar("T")

#: The (p, N) features of the data are kept between iterations when they fit in this many
#: bytes (and recomputed per block otherwise).
KEEP_FEATURES_BYTES = 256 * 2**20


def block_size(n_components: int, n_features: int) -> int:
    """Points per block of a VB pass: ~256k doubles per (K, block) or (p, block) buffer,
    2048 to 8192 points.  A block is one compiled call (:func:`softmax_statistics`, which
    tiles it by :data:`KERNEL_TILE` for the cache), or one buffer of features where they
    are recomputed; a chunk of :data:`CHUNK_BLOCKS` blocks is the unit handed to a
    thread."""
    return max(2048, min(8192, 262_144 // max(n_components, n_features)))


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


def default_threads() -> int:
    """The threads a pass uses when ``n_threads`` is None: as many as the BLAS may use
    (threadpoolctl's view, which honours ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
    ``threadpool_limits``), which is every core unless the user said otherwise.  One
    knob then limits both: under ``threadpool_limits(1)`` gmmkit runs on one core too."""
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    if blas:
        return max(1, min(blas))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def resolve_threads(n_threads: int | None) -> int:
    """``n_threads`` checked (None or an int >= 1), None as :func:`default_threads`."""
    from gmmkit._validation import check_int

    return default_threads() if n_threads is None else check_int("n_threads", n_threads, 1)


#: A pass with fewer multiply-adds than this per point (K p, p features) runs on one
#: thread whatever ``n_threads`` says: between NumPy calls there is then too little work
#: for threads to overlap, and they only wait for the GIL (tied VB at D = 8, K = 16,
#: K p = 144: two threads took 8.1 ms a pass against 6.2 ms on one).
MIN_WORK_FOR_THREADS = 256


def pass_threads(n_threads: int, n_components: int, n_features: int) -> int:
    """The threads a pass of K = ``n_components`` and p = ``n_features`` uses: 1 below
    :data:`MIN_WORK_FOR_THREADS`, ``n_threads`` otherwise (the result is the same)."""
    return n_threads if n_components * n_features >= MIN_WORK_FOR_THREADS else 1


def chunked_pass(
    n: int, coef: np.ndarray, w: np.ndarray | None, out: np.ndarray | None, n_threads: int,
    chunk_statistics: Callable[[int, int, np.ndarray | None, np.ndarray | None],
                               tuple[np.ndarray, float]],
) -> tuple[np.ndarray, float]:
    """The VB pass over n in-memory points: ``chunk_statistics(start, stop, w[start:stop],
    out[start:stop])`` (None for an absent ``w`` or ``out``) -> ``(stats, lse_sum)`` of
    each chunk, summed by :func:`map_chunks` on up to ``n_threads`` threads (the same bits
    for every count); ``coef`` (p, K) sets the chunks' size and whether threads pay."""
    p, k = coef.shape
    if n == 0:  # no chunks to add up
        return np.zeros((k, p)), 0.0

    def chunk(start: int, stop: int) -> tuple[np.ndarray, float]:
        return chunk_statistics(start, stop, None if w is None else w[start:stop],
                                None if out is None else out[start:stop])

    return map_chunks(n, block_size(k, p), chunk, pass_threads(n_threads, k, p))


def _add(a: T, b: T) -> T:
    if isinstance(a, tuple):
        return tuple(_add(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]
    return a + b  # type: ignore[operator]


def map_chunks(n_points: int, block: int, chunk_pass: Callable[[int, int], T],
               n_threads: int) -> T:
    """The sum over the chunks of points [start, stop) of ``chunk_pass(start, stop)``.

    Parameters
    ----------
    n_points : int
        N, the points of the pass.
    block : int
        The block size of ``chunk_pass``: a chunk is ``CHUNK_BLOCKS`` blocks of points.
    chunk_pass : callable
        ``chunk_pass(start, stop)`` -> an array, a float or a tuple of them: the
        statistics of those points.  Called from several threads at once: it must write
        nothing shared (each call its own buffers; rows start..stop of an output array are
        its own).
    n_threads : int
        Threads to use (at most one per chunk); 1 runs the chunks in this thread.

    Returns
    -------
    The chunks' results added in chunk order (tuples element by element): the same bits
    for every ``n_threads``.
    """
    size = CHUNK_BLOCKS * block
    bounds = [(start, min(start + size, n_points)) for start in range(0, n_points, size)]
    n_threads = min(n_threads, len(bounds))
    if n_threads <= 1:
        results = (chunk_pass(start, stop) for start, stop in bounds)
        return _sum_in_order(results)
    executor = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="gmmkit-pass")
    try:
        futures = [executor.submit(chunk_pass, start, stop) for start, stop in bounds]
        return _sum_in_order(future.result() for future in futures)
    finally:
        # An error or Ctrl-C in one chunk: drop the chunks not yet started, so the pass
        # stops within one chunk's time instead of finishing.
        executor.shutdown(wait=True, cancel_futures=True)


def _sum_in_order(results):
    total = None
    for result in results:
        total = result if total is None else _add(total, result)
    return total


#: Points per tile inside the compiled pass (:func:`softmax_statistics`): the (p, B)
#: features stay in L2 cache between its two products, and the (K, B) log densities (34
#: KiB at K = 16) in L1.  Interleaved A/B at N = 1e5, one thread, 256 against 512: diag
#: (p = 65) the same (24.5 / 25.0 ms in a slow phase of the machine), spherical 13.1 /
#: 14.7, full at D = 8 13.8 / 16.1, tied at D = 8 5.1 / 6.1, full at D = 1 2.7 / 2.8.
KERNEL_TILE = 256

_NO_WEIGHTS = np.empty(0)
_NO_OUTPUT = np.empty((0, 0))


def softmax_statistics(phi: np.ndarray, coef: np.ndarray, w: np.ndarray | None = None,
                       out: np.ndarray | None = None, first: int = 0,
                       last: int | None = None) -> tuple[np.ndarray, float]:
    """Responsibilities r_nk = softmax_k(phi_n . C[:, k]) of the points ``first..last``
    and their statistics, in one compiled pass without the GIL
    (:mod:`gmmkit.inference._kernels`; exp of the shifted log densities floored at
    :data:`EXP_FLOOR`, as :func:`normalise_columns`).

    Parameters
    ----------
    phi : ndarray, shape (p, L)
        Features, one point per column.  A float64 view with unit column stride (any row
        stride) is read in place, as kept features are; any other layout is copied first
        (the columns first..last only).
    coef : ndarray, shape (p, K)
        C of ln rho_nk = phi_n . C[:, k].
    w : ndarray, shape (n,), or None
        Frequency weights of the n = last - first points (None: each counts once).
    out : ndarray, shape (n, K), optional
        C-contiguous; receives r (unweighted).
    first, last : int
        The columns of ``phi`` to pass over (``last`` defaults to L).

    Returns
    -------
    stats : ndarray, shape (K, p)
        sum_n w_n r_nk phi_n.
    lse_sum : float
        sum_n w_n logsumexp_k ln rho_nk.
    """
    from gmmkit.inference import _kernels  # numba: imported on the first pass only

    p, k = coef.shape
    phi, first, last, weights = _checked_points("phi", "features", phi, p, first, last, w, out, k)
    return _finish(lambda stats_t, col_max, col_sum, coef_t: (
        _kernels.softmax_statistics_kernel(
            _dgemm_address(), phi, first, last, coef_t,
            _NO_WEIGHTS if weights is None else weights, _NO_OUTPUT if out is None else out,
            stats_t, col_max, col_sum, KERNEL_TILE, EXP_FLOOR)), coef, last - first, weights)


def _checked_points(name: str, what: str, a: np.ndarray, n_rows: int, first: int,
                    last: int | None, w: np.ndarray | None, out: np.ndarray | None, k: int):
    """The columns first..last of ``a`` (n_rows, L) as the kernels read them: ``(a, first,
    last, weights)``, ``a`` copied (just those columns) unless a float64 view with unit
    column stride; a ValueError naming ``name`` (holding ``what``) or ``out`` for what does
    not fit."""
    a = np.asarray(a)
    last = a.shape[-1] if last is None else last
    n = last - first
    if a.ndim != 2 or a.shape[0] != n_rows or not 0 <= first <= last <= a.shape[1]:
        raise ValueError(f"{name}: expected ({n_rows}, L) {what} and 0 <= first <= last <= "
                         f"L; got shape {a.shape}, first {first}, last {last}")
    if a.dtype != np.float64 or a.strides[1] != a.itemsize:
        # The kernels read points as contiguous doubles: copy just the points passed over.
        a, first, last = np.ascontiguousarray(a[:, first:last], dtype=np.float64), 0, n
    if a.strides[0] // a.itemsize >= 2**31:  # the BLAS's leading dimension is 32-bit
        raise ValueError(f"{name}: rows {a.strides[0] // a.itemsize} doubles apart; the "
                         "BLAS takes fewer than 2^31 (pass the points in chunks)")
    if out is not None and (out.shape != (n, k) or not out.flags.c_contiguous):
        raise ValueError(f"out: expected a C-contiguous ({n}, {k}) array, got {out.shape}")
    weights = None if w is None else np.ascontiguousarray(w, dtype=np.float64)
    return a, first, last, weights


def _finish(kernel: Callable[..., None], coef: np.ndarray, n: int,
            weights: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Run ``kernel(stats_t, col_max, col_sum, coef_t)`` over n points and return
    ``(stats (K, p), lse_sum)``."""
    p, k = coef.shape
    stats_t = np.zeros((k, p))
    col_max = np.empty(n)
    col_sum = np.empty(n)
    if n > 0:
        kernel(stats_t, col_max, col_sum, np.ascontiguousarray(coef.T, dtype=np.float64))
    log_col_sum = np.log(col_sum)
    if weights is None:
        return stats_t, float(col_max.sum() + log_col_sum.sum())
    return stats_t, float(weights @ col_max + weights @ log_col_sum)


class QuadraticFeatures(NamedTuple):
    """A map phi(x) = [1, x, q_1(x), ..., q_m(x)] from D coordinates to p = 1 + D + m
    features, where q_i(x) is the sum of x_a x_c over the pairs (a, c) of group i: the
    features of diag ([x_d^2]: one pair (d, d) per group) and spherical ([|x|^2]: one group
    of D pairs) VB, which :func:`data_softmax_statistics` forms from the data itself.

    Build it with :meth:`from_groups`.
    """

    n_dims: int  # D
    offsets: np.ndarray  # (m + 1,) int64: group i is pairs[offsets[i]:offsets[i + 1]]
    pairs: np.ndarray  # (n_pairs, 2) int64 coordinates

    @classmethod
    def from_groups(cls, n_dims: int, groups: Sequence[Sequence[tuple[int, int]]]
                    ) -> QuadraticFeatures:
        """The map of D = ``n_dims`` coordinates with one quadratic feature per group of
        coordinate pairs (each 0 <= a, c < D)."""
        if any(len(group) == 0 for group in groups):
            raise ValueError("groups: every quadratic feature needs at least one pair")
        pairs = np.array([pair for group in groups for pair in group], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= n_dims):
            raise ValueError(f"groups: coordinates must lie in 0..{n_dims - 1}, got "
                             f"{pairs.min()}..{pairs.max()}")
        offsets = np.cumsum([0] + [len(group) for group in groups], dtype=np.int64)
        offsets.setflags(write=False)
        pairs.setflags(write=False)
        return cls(n_dims, offsets, pairs)

    @property
    def n_features(self) -> int:
        """p = 1 + D + m."""
        return 1 + self.n_dims + len(self.offsets) - 1

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """phi of points as columns, (D, n) -> (p, n), by NumPy (the reference the
        compiled pass is tested against)."""
        products = x[self.pairs[:, 0]] * x[self.pairs[:, 1]]
        quadratic = np.add.reduceat(products, self.offsets[:-1], axis=0) if len(
            self.pairs) else np.empty((0, x.shape[1]))
        return np.vstack([np.ones((1, x.shape[1])), x, quadratic])


def data_softmax_statistics(x: np.ndarray, features: QuadraticFeatures, coef: np.ndarray,
                            w: np.ndarray | None = None, out: np.ndarray | None = None,
                            first: int = 0, last: int | None = None
                            ) -> tuple[np.ndarray, float]:
    """:func:`softmax_statistics` of ``features(x)``, the features formed from the data
    tile by tile inside the compiled pass (never as a (p, n) array in memory).

    Parameters
    ----------
    x : ndarray, shape (D, L)
        Centred points, one per column; C-contiguous float64 data are read in place, any
        other layout (a view of some columns included) is copied first (columns
        first..last only).
    features : QuadraticFeatures
        phi, with ``features.n_dims`` = D and ``features.n_features`` = p.
    coef : ndarray, shape (p, K)
    w, out, first, last
        As :func:`softmax_statistics`.

    Returns
    -------
    stats : ndarray, shape (K, p)
    lse_sum : float
        As :func:`softmax_statistics`.
    """
    from gmmkit.inference import _kernels  # numba: imported on the first pass only

    p, k = coef.shape
    if p != features.n_features:
        raise ValueError(f"coef: expected {features.n_features} rows (the features' p), "
                         f"got shape {coef.shape}")
    x, first, last, weights = _checked_points("x", "points", x, features.n_dims, first,
                                              last, w, out, k)
    if not x.flags.c_contiguous:  # rows at a known stride let the tile's copy vectorise
        x, first, last = np.ascontiguousarray(x[:, first:last]), 0, last - first
    return _finish(lambda stats_t, col_max, col_sum, coef_t: (
        _kernels.data_softmax_statistics_kernel(
            _dgemm_address(), x, first, last, features.offsets, features.pairs, coef_t,
            _NO_WEIGHTS if weights is None else weights, _NO_OUTPUT if out is None else out,
            stats_t, col_max, col_sum, KERNEL_TILE, EXP_FLOOR)), coef, last - first, weights)


def diag_softmax_statistics(x: np.ndarray, coef: np.ndarray, w: np.ndarray | None = None,
                            out: np.ndarray | None = None, first: int = 0,
                            last: int | None = None) -> tuple[np.ndarray, float]:
    """:func:`softmax_statistics` of diag's features phi = [1, x, x^2] of the data ``x``,
    without forming them: ln rho = c + sum_d x_d (a_d + b_d x_d) and the statistics'
    x^2 squared in registers, so the pass reads D rows per point, not 1 + 2D
    (:func:`gmmkit.inference._kernels.diag_softmax_statistics_kernel`).

    Parameters
    ----------
    x : ndarray, shape (D, L)
        Centred points, one per column; C-contiguous float64 data are read in place, any
        other layout is copied first (columns first..last only).
    coef : ndarray, shape (1 + 2D, K)
        C of ln rho_nk = phi_n . C[:, k], rows in phi's order [1, x, x^2].
    w, out, first, last
        As :func:`softmax_statistics`.

    Returns
    -------
    stats : ndarray, shape (K, 1 + 2D)
    lse_sum : float
        As :func:`softmax_statistics`.
    """
    from gmmkit.inference import _kernels  # numba: imported on the first pass only

    p, k = coef.shape
    d = (p - 1) // 2
    if p % 2 == 0:
        raise ValueError(f"coef: expected 1 + 2D rows (an odd number), got shape {coef.shape}")
    x, first, last, weights = _checked_points("x", "points", x, d, first, last, w, out, k)
    if not x.flags.c_contiguous:
        x, first, last = np.ascontiguousarray(x[:, first:last]), 0, last - first
    return _finish(lambda stats_t, col_max, col_sum, coef_t: (
        _kernels.diag_softmax_statistics_kernel(
            x, first, last, coef_t, _NO_WEIGHTS if weights is None else weights,
            _NO_OUTPUT if out is None else out, stats_t, col_max, col_sum, KERNEL_TILE,
            EXP_FLOOR)), coef, last - first, weights)


def in_memory_pass(coef: np.ndarray, w: np.ndarray | None, out: np.ndarray | None,
                   n_threads: int, phi: np.ndarray | None, x: np.ndarray,
                   features: QuadraticFeatures) -> tuple[np.ndarray, float]:
    """The VB E-step and statistics of r over all in-memory points (every family):
    :func:`chunked_pass` of :func:`softmax_statistics` on the kept features ``phi`` (p, N)
    when given, else of :func:`data_softmax_statistics` forming ``features(x)`` from the
    centred data ``x`` (D, N) in the pass; r to ``out`` (N, K) if given."""
    if phi is not None:
        def chunk(start: int, stop: int, w_chunk, r_chunk) -> tuple[np.ndarray, float]:
            return softmax_statistics(phi, coef, w_chunk, r_chunk, start, stop)
    else:
        def chunk(start: int, stop: int, w_chunk, r_chunk) -> tuple[np.ndarray, float]:
            return data_softmax_statistics(x, features, coef, w_chunk, r_chunk, start, stop)

    return chunked_pass(x.shape[1], coef, w, out, n_threads, chunk)


@functools.cache
def _dgemm_address() -> int:
    from gmmkit.inference import _kernels

    return _kernels.dgemm_address()
