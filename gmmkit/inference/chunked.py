"""The closed-form methods on Dask arrays: one pass over the chunks per iteration.

Each iteration of CAVI, Bishop's VB, EM and the k-means GMM is a sum over points of
per-point sufficient statistics and bound terms.  This module runs the *same* per-chunk
functions the in-memory fits run on all their data at once
(:func:`gmmkit.inference.cavi.assignment_statistics`,
:func:`gmmkit.inference.vb.chunk_statistics`, :func:`gmmkit.inference.em.chunk_statistics`)
on every row chunk of a Dask array, adds their results with a tree reduction, and feeds
the sums to the methods' own closed-form updates and bounds.  The loop, restarts, stopping
rule, progress bar (one update per pass) and warnings are those of
:func:`gmmkit.inference.loop.coordinate_ascent`.

Passes
------
1. **Moments** (once): per chunk, the finiteness of ``X`` (a ``ValueError`` names the
   rows of the offending chunk) and the validity of ``sample_weight``; the (weighted)
   count, mean and scatter about the chunk's own mean, combined across chunks by Chan et
   al.'s pairwise formula (no cancellation, whatever the data's offset); the range of
   every feature.  This gives the centre the fit subtracts (as in memory, so translation
   invariance holds), the data-dependent priors of a ``BayesianGMM``, and EM's feature
   scale check.
2. **Initialisation**: k-means++ (or "random") seeds, exactly as in memory, on a seeded
   uniform sample of :data:`SAMPLE_ROWS` = 100,000 rows drawn without replacement by the
   restart's generator (all rows, in order and without a draw, when N <= SAMPLE_ROWS:
   the initial state, and hence the whole fit, then equals the in-memory fit from the same
   seed).  Then one pass for the hard assignment to the seeds (plus, for EM, one pass per
   emptied cluster to find the point to re-seed it with, as in memory) and one for the
   first E-step.
3. **Iterations**: one pass each (k-means: plus one pass per emptied cluster, rare).

EM's statistics are shifted by the current means (see
:func:`gmmkit.inference.em.chunk_statistics`): the in-memory EM keeps its two-pass M-step,
which needs the (N, K) responsibilities.  Both agree to rounding (tests: 1e-10 relative).

Scheduling
----------
``dask.compute`` runs on whatever scheduler is active: the threaded scheduler by default,
or the ``distributed.Client`` set as default.  With a client, data whose size is at most
:data:`PERSIST_FRACTION` of the cluster's total worker memory are persisted on the workers
once (each pass then reads memory); larger data are streamed from their source every pass.
The reduction tree has a fixed shape (:data:`SPLIT_EVERY` children per node), so results
do not depend on the scheduler or on which worker ran what.  A worker lost during a pass
is recomputed by Dask from the graph.

Outputs
-------
``Fit.data`` is the Dask array, ``Fit.sample_weight`` the (Dask) weights, and
``Fit.responsibilities`` a lazy Dask array (N, K) computed chunk by chunk from the final
posterior on request.  Nothing of size N is ever held in memory.

Dask is imported only here, and only when a Dask array is passed.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from functools import singledispatch
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from gmmkit._validation import check_lazy_data, check_lazy_sample_weight, is_lazy_array
from gmmkit.inference import cavi, em, vb, vb_diag, vb_tied
from gmmkit.inference.loop import coordinate_ascent, fit_from_run, initial_means
from gmmkit.inference.methods import CAVI, EM, KMEANS, Method
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import GaussianMixture
from gmmkit.models.normal_gamma import NormalGammaFamily
from gmmkit.models.normal_wishart import FullNormalWishart
from gmmkit.models.tied_wishart import TiedWishartFamily
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.result import Fit

__all__ = [
    "PERSIST_FRACTION",
    "SAMPLE_ROWS",
    "SPLIT_EVERY",
    "ChunkedData",
    "chunked_backend",
    "lazy_responsibilities",
    "prepare",
    "run_pass",
]

#: Rows of the seeded uniform sample that k-means++ seeds the means on.
SAMPLE_ROWS = 100_000
#: Persist the data on a distributed cluster when they take at most this fraction of
#: its workers' total memory limit (the rest is left for the passes' temporaries).
PERSIST_FRACTION = 0.5
#: Children per node of the reduction tree.
SPLIT_EVERY = 8


# ----------------------------------------------------------------------------- data
class ChunkedData(NamedTuple):
    """Validated lazy data: the arrays and their row blocks as ``dask.delayed`` objects."""

    x: Any  # dask array, float64, (N,) or (N, D) (persisted on the cluster, if it fits)
    w: Any  # dask array (N,) with x's row chunks, or None
    blocks: tuple  # Delayed row blocks of x
    w_blocks: tuple  # Delayed row blocks of w (None entries when unweighted)
    offsets: tuple[int, ...]  # first global row of every block
    n_rows: int
    # The validated arrays as the user's graph builds them, never persisted: what the Fit
    # keeps, so it stays valid (and picklable) after the cluster is gone.
    source_x: Any = None
    source_w: Any = None


def _client():
    """The ``distributed.Client`` that ``dask.compute`` will use, or None (the threaded
    scheduler, or another one chosen with ``dask.config.set(scheduler=...)``)."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is part of the dask extra
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    from dask.base import get_scheduler

    # A client may exist while the computation is sent elsewhere: persisting on it would
    # leave the other scheduler without the data.
    return client if getattr(get_scheduler(), "__self__", None) is client else None


def _persist_if_it_fits(arrays: list) -> list:
    client = _client()
    if client is None:
        return arrays
    workers = client.scheduler_info().get("workers", {}).values()
    memory = sum(float(info.get("memory_limit") or 0) for info in workers)
    size = sum(a.nbytes for a in arrays if a is not None)
    if memory <= 0 or size > PERSIST_FRACTION * memory:
        return arrays  # streamed from storage every pass
    from distributed import wait

    persisted = client.persist([a for a in arrays if a is not None])
    wait(persisted)  # loaded once, before the first pass
    out, i = [], 0
    for a in arrays:
        if a is None:
            out.append(None)
        else:
            out.append(persisted[i])
            i += 1
    return out


def prepare(x: Any, sample_weight: Any, *, name: str, univariate: bool, min_points: int,
            n_features: int | None = None) -> ChunkedData:
    """Check shapes and dtypes (no compute), align the weights' chunks with the data's,
    persist on a cluster when the data fit, and split both into row blocks."""
    import dask.array as da

    if not is_lazy_array(x):  # NumPy data with Dask weights
        x = np.asarray(x)
        x = da.from_array(x, chunks=(sample_weight.chunks[0], *((s,) for s in x.shape[1:])))
    x = check_lazy_data(x, name=name, univariate=univariate, min_points=min_points,
                        n_features=n_features)
    w = sample_weight
    if w is not None:
        if not is_lazy_array(w):
            w = da.from_array(np.asarray(w, dtype=float), chunks=(x.chunks[0],))
        w = check_lazy_sample_weight(w, x.shape[0])
        if w.chunks[0] != x.chunks[0]:
            w = w.rechunk((x.chunks[0],))
    source_x, source_w = x, w
    x, w = _persist_if_it_fits([x, w])
    sizes = x.chunks[0]
    offsets = np.cumsum((0, *sizes[:-1]))
    keep = [i for i, size in enumerate(sizes) if size > 0]  # empty chunks add nothing
    # Optimised once here (the reading, casting and slicing of a block fuse into one
    # task), not again at every pass.
    x_blocks = x.to_delayed().ravel()
    w_blocks = w.to_delayed().ravel() if w is not None else [None] * len(sizes)
    return ChunkedData(x, w, tuple(x_blocks[i] for i in keep),
                       tuple(w_blocks[i] for i in keep),
                       tuple(int(offsets[i]) for i in keep), int(x.shape[0]),
                       source_x, source_w)


# ----------------------------------------------------------------------------- passes
def _add(a, b):
    """Elementwise sum of two chunk results (arrays, floats, tuples of them)."""
    if isinstance(a, tuple):
        values = [_add(u, v) for u, v in zip(a, b, strict=True)]
        return type(a)(*values) if hasattr(a, "_fields") else tuple(values)
    return a + b


def _fold(combine, values):
    return functools.reduce(combine, values)


def run_pass(data: ChunkedData, chunk_fn, *args, combine=_add) -> Any:
    """One pass: ``chunk_fn(x_block, w_block, offset, *args)`` on every row block, the
    results combined pairwise by ``combine`` in a tree of :data:`SPLIT_EVERY` children per
    node, computed on the active scheduler.  ``args`` are small (parameters)."""
    import dask

    task = dask.delayed(chunk_fn, pure=True)
    parts = [task(xb, wb, offset, *args)
             for xb, wb, offset in zip(data.blocks, data.w_blocks, data.offsets, strict=True)]
    fold = dask.delayed(_fold, pure=True)
    while len(parts) > 1:
        parts = [fold(combine, parts[i : i + SPLIT_EVERY])
                 for i in range(0, len(parts), SPLIT_EVERY)]
    (result,) = dask.compute(parts[0])
    return result


# ----------------------------------------------------------------------------- moments
class _Moments(NamedTuple):
    """Weighted moments of a set of rows (combined by Chan et al.'s pairwise update)."""

    rows: int
    weight: float  # sum of weights (rows when unweighted)
    positive: int  # rows with positive weight
    mean: np.ndarray  # (D,)
    scatter: np.ndarray  # (D, D) sum_n w_n (x_n - mean)(x_n - mean)^T
    low: np.ndarray  # (D,) minimum over rows with positive weight
    high: np.ndarray  # (D,) maximum over rows with positive weight
    log_sum_sq: float  # log sum_n |x_n|^2 (overflow check), -inf for none


def _rows(offset: int, n: int) -> str:
    return f"rows {offset}..{offset + n - 1}"


def _moments_chunk(x, w, offset, name):
    x = x[:, None] if x.ndim == 1 else x
    n, d = x.shape
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{name} must be finite, but the chunk of {_rows(offset, n)} holds "
            f"{int(bad.sum())} NaN/inf value(s); the first is in row {offset + first}"
        )
    if w is not None:
        bad_w = ~np.isfinite(w) | (w < 0)
        if bad_w.any():
            first = int(np.flatnonzero(bad_w)[0])
            raise ValueError(
                f"sample_weight must be finite and non-negative, got {w[first]} at index "
                f"{offset + first} (chunk of {_rows(offset, n)})"
            )
    # A few chunk-sized temporaries at most: the chunks may be large.
    total = float(n if w is None else w.sum())
    if total > 0:
        mean = (x.sum(axis=0) if w is None else w @ x) / total
    else:
        mean = np.zeros(d)
    diff = x - mean
    scatter = diff.T @ diff if w is None else (w * diff.T) @ diff
    counted = x if w is None else x[w > 0]
    top = float(np.max(np.abs(x), initial=0.0))
    log_sum_sq = -np.inf
    if top > 0:
        np.divide(x, top, out=diff)
        log_sum_sq = 2.0 * np.log(top) + np.log(np.einsum("nd,nd->", diff, diff))
    return _Moments(
        n, total, n if w is None else int(np.count_nonzero(w > 0)), mean, scatter,
        np.min(counted, axis=0, initial=np.inf), np.max(counted, axis=0, initial=-np.inf),
        float(log_sum_sq),
    )


def _combine_moments(a: _Moments, b: _Moments) -> _Moments:
    if b.weight == 0 or a.weight == 0:
        keep = a if b.weight == 0 else b
        mean, scatter = keep.mean, keep.scatter
    else:
        total = a.weight + b.weight
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.weight / total)
        scatter = a.scatter + b.scatter + np.outer(delta, delta) * (a.weight * b.weight / total)
    return _Moments(
        a.rows + b.rows, a.weight + b.weight, a.positive + b.positive, mean, scatter,
        np.minimum(a.low, b.low), np.maximum(a.high, b.high),
        float(np.logaddexp(a.log_sum_sq, b.log_sum_sq)),
    )


def _moments(data: ChunkedData, name: str, min_points: int, n_components: int) -> _Moments:
    from gmmkit._validation import MAX_SUM_OF_SQUARES

    moments = run_pass(data, _moments_chunk, name, combine=_combine_moments)
    if moments.log_sum_sq > np.log(MAX_SUM_OF_SQUARES):
        raise ValueError(
            f"{name} is too large in scale: its sum of squares is about "
            f"1e{moments.log_sum_sq / np.log(10):.0f}, beyond {MAX_SUM_OF_SQUARES:.0e}, where "
            "float64 sums of squares overflow; rescale the data"
        )
    if data.w is not None:
        if moments.weight == 0:
            raise ValueError("sample_weight must not be all zero")
        if moments.weight < min_points:
            raise ValueError(
                f"sample_weight must sum to at least {min_points} (the weighted count of "
                f"points this model and method need), got {moments.weight:g}"
            )
        if moments.positive < n_components:
            raise ValueError(
                f"sample_weight must be positive for at least n_components={n_components} "
                f"points, got {moments.positive}"
            )
    return moments


def _sample(data: ChunkedData, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    """The rows k-means++ seeds on (module docstring): all of them when N <=
    :data:`SAMPLE_ROWS`, else a uniform sample drawn by ``rng``, in row order."""
    import dask

    if data.n_rows <= SAMPLE_ROWS:
        return dask.compute(data.x, data.w)
    rows = np.sort(rng.choice(data.n_rows, size=SAMPLE_ROWS, replace=False))
    return dask.compute(data.x[rows], None if data.w is None else data.w[rows])


def lazy_responsibilities(x: Any, posterior: Any) -> Any:
    """q(z | x) of every row of the Dask array ``x`` under ``posterior``, a lazy Dask
    array (N, K) with ``x``'s row chunks, computed block by block on request."""
    k = posterior.n_components
    fn = functools.partial(_responsibilities_block, posterior=posterior)
    if x.ndim == 1:
        return x.map_blocks(fn, chunks=(x.chunks[0], (k,)), new_axis=1, dtype=float)
    return x.map_blocks(fn, chunks=(x.chunks[0], (k,)), dtype=float)


def _responsibilities_block(block: np.ndarray, posterior: Any) -> np.ndarray:
    return np.exp(posterior.log_responsibilities(block))


# ----------------------------------------------------------------------------- backends
@singledispatch
def chunked_backend(model: Any, method: Method):
    """The chunked backend that fits ``model`` by ``method`` on a Dask array."""
    backend = method.backend(model)
    if getattr(backend, "takes_lazy_data", False):  # e.g. SVI: it streams the chunks itself
        return backend
    raise ValueError(
        f"method {method.name!r} does not take a Dask array for {type(model).__name__}; "
        f"Dask input works with the closed-form methods {CAVI.name!r}, {EM.name!r} and "
        f"{KMEANS.name!r}; compute the array into memory (x.compute()) for the others"
    )


@chunked_backend.register
def _(model: UnivariateGMM, method: Method):
    if method is not CAVI:
        return chunked_backend.dispatch(object)(model, method)
    return fit_cavi


@chunked_backend.register
def _(model: BayesianGMM, method: Method):
    if method is not CAVI:
        return chunked_backend.dispatch(object)(model, method)
    return functools.partial(fit_vb_family, vb_family_module(model.covariance_prior))


@singledispatch
def vb_family_module(covariance_prior: Any) -> ModuleType:
    """The VB module (per-chunk interface of :func:`fit_vb_family`) of a Bayesian
    covariance family, by the type of ``BayesianGMM.covariance_prior``."""
    raise ValueError(
        f"BayesianGMM covariance prior {type(covariance_prior).__name__} has no chunked VB; "
        "compute the array into memory (x.compute())"
    )


@vb_family_module.register
def _(covariance_prior: FullNormalWishart) -> ModuleType:
    return vb


@vb_family_module.register
def _(covariance_prior: NormalGammaFamily) -> ModuleType:  # diag and spherical
    return vb_diag


@vb_family_module.register
def _(covariance_prior: TiedWishartFamily) -> ModuleType:
    return vb_tied


@chunked_backend.register
def _(model: GaussianMixture, method: Method):
    if method is EM:
        return functools.partial(fit_em, hard=False)
    if method is KMEANS:
        return functools.partial(fit_em, hard=True)
    return chunked_backend.dispatch(object)(model, method)


def _model_shape_check(model, d: int | None) -> None:
    # The model's own rule for the data's width (e.g. a BayesianGMM with an explicit m0
    # of another dimension), applied to one zero row of that width: no data computed.
    model.check_data(np.zeros(1) if d is None else np.zeros((1, d)))


# ----------------------------------------------------------------------------- CAVI
def _cavi_chunk(x, w, offset, model, m, s2):
    return cavi.assignment_statistics(model, x, m, s2, w)


def _refuse_threads(n_threads: int | None) -> None:
    if n_threads is not None:
        raise ValueError(
            "n_threads applies to in-memory data; with a Dask array the scheduler's "
            f"workers and threads set the parallelism (got n_threads={n_threads!r})")


def fit_cavi(model: UnivariateGMM, x: Any, *, seed: int, n_init: int, init: str,
             tol: float, max_iter: int, progress: bool, method: str,
             sample_weight: Any = None, n_threads: int | None = None) -> Fit:
    """CAVI (:mod:`gmmkit.inference.cavi`) on a Dask array of shape (N,) or (N, 1)."""
    _refuse_threads(n_threads)
    min_points = max(model.n_components, model.min_points)
    data = prepare(x, sample_weight, name="x", univariate=True, min_points=min_points)
    _model_shape_check(model, None)
    moments = _moments(data, "x", min_points, model.n_components)
    n = data.n_rows if data.w is None else moments.weight

    def state_at(m, s2):
        n_k, s_k, lse_sum = run_pass(data, _cavi_chunk, model, m, s2)
        return cavi.CAVIState(m=m, s2=s2, n_k=n_k, s_k=s_k, lse_sum=lse_sum)

    def init_state(rng):
        xs, ws = _sample(data, rng)
        m = initial_means(xs[:, None], model.n_components, init, rng, ws)[:, 0]
        return state_at(m, cavi.initial_variances(model, n))

    run = coordinate_ascent(
        init=init_state, step=lambda s: state_at(*cavi.update_means(model, s)),
        objective=lambda s: cavi.elbo(model, n, s), rng=np.random.default_rng(seed),
        n_init=n_init, tol=tol, max_iter=max_iter, progress=progress, label="CAVI",
    )
    posterior = cavi.GaussianMeansPosterior(model, run.state.m, run.state.s2)
    return fit_from_run(
        run, method=method, model=model, data=data.source_x, posterior=posterior,
        responsibilities=lazy_responsibilities(data.source_x, posterior), seed=seed,
        sample_weight=data.source_w, diagnostics={"chunks": len(data.blocks)},
    )


# ----------------------------------------------------------------------------- VB
def _centred_columns(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(x - centre)^T as a C-contiguous (D, n) array, in one pass and one allocation
    (the same values as the in-memory ``np.ascontiguousarray((X - centre).T)``)."""
    return np.subtract(x.T, centre[:, None], out=np.empty((x.shape[1], x.shape[0])))


def _vb_chunk(x, w, offset, statistics, centre, coef, layout):
    return statistics(_centred_columns(x, centre), w, coef, layout)


def _vb_hard_chunk(x, w, offset, hard_statistics, centre, seeds, layout, n_features):
    return hard_statistics(_centred_columns(x, centre), w, seeds, layout, n_features)


def fit_vb_family(family, model: BayesianGMM, x: Any, *, seed: int, n_init: int, init: str,
                  tol: float, max_iter: int, progress: bool, method: str,
                  sample_weight: Any = None, n_threads: int | None = None) -> Fit:
    """Bishop's VB on a Dask array of shape (N, D), for the covariance family whose
    in-memory VB is the module ``family`` (:func:`vb_family_module`:
    :mod:`gmmkit.inference.vb` for full, :mod:`~gmmkit.inference.vb_diag` for diag and
    spherical, :mod:`~gmmkit.inference.vb_tied` for tied).

    The per-chunk-statistics interface a family module provides (its in-memory fit uses
    the same functions on all the data at once):

    * ``problem_from_moments(model, centre, scatter, total_weight)`` -> ``prob``: the
      data-free constants from the streamed moments (priors in centred coordinates,
      ``prob.centre``, ``prob.layout``, what a chunk's features need, and
      ``prob.n_features``);
    * ``hard_statistics(X_t, w, seeds, layout, n_features)`` -> (K, p) statistics of the
      nearest-seed assignment of one chunk of centred points ``X_t`` (D, n);
    * ``m_step(prob, stats)`` -> the variational parameters (a tuple);
    * ``e_step_coefficients(prob, *params)`` -> what ``chunk_statistics`` needs;
    * ``chunk_statistics(X_t, w, coef, layout)`` -> ((K, p) statistics, lse_sum) of a
      chunk;
    * ``state_from_pass(prob, params, stats, lse_sum)`` -> the state (tied adds there the
      bound's term common to every component), ``elbo(prob, state)``, and
      ``Posterior(model, centre, *params)``.
    """
    from threadpoolctl import threadpool_limits

    _refuse_threads(n_threads)
    min_points = max(model.n_components, model.min_points)
    data = prepare(x, sample_weight, name="X", univariate=False, min_points=min_points)
    _model_shape_check(model, data.x.shape[1])
    moments = _moments(data, "X", min_points, model.n_components)
    # The sample covariance with ddof 1 in the total weight, as BayesianGMM.resolve.
    model = model.resolve_from_moments(moments.mean, moments.scatter / (moments.weight - 1.0),
                                       data.n_rows)
    prob = family.problem_from_moments(model, moments.mean, moments.scatter, moments.weight)

    def state_at(params):
        coef = family.e_step_coefficients(prob, *params)
        stats, lse_sum = run_pass(data, _vb_chunk, family.chunk_statistics, prob.centre, coef,
                                   prob.layout)
        return family.state_from_pass(prob, params, stats, lse_sum)

    def init_state(rng):
        xs, ws = _sample(data, rng)
        seeds = initial_means(xs - prob.centre, model.n_components, init, rng, ws)
        stats = run_pass(data, _vb_hard_chunk, family.hard_statistics, prob.centre, seeds,
                         prob.layout, prob.n_features)
        return state_at(family.m_step(prob, stats))

    # One BLAS thread, as in memory (fit_vb): the blocked GEMMs are too small to share.
    with threadpool_limits(limits=1, user_api="blas"):
        run = coordinate_ascent(
            init=init_state, step=lambda s: state_at(family.m_step(prob, s.stats)),
            objective=functools.partial(family.elbo, prob), rng=np.random.default_rng(seed),
            n_init=n_init, tol=tol, max_iter=max_iter, progress=progress, label="VB",
        )
    params = run.state[: -2]  # the state is (*params, stats, lse_sum)
    posterior = family.Posterior(model, prob.centre, *params)
    return fit_from_run(
        run, method=method, model=model, data=data.source_x, posterior=posterior,
        responsibilities=lazy_responsibilities(data.source_x, posterior), seed=seed,
        sample_weight=data.source_w, diagnostics={"chunks": len(data.blocks)},
    )


# ----------------------------------------------------------------------------- EM
class _EMState(NamedTuple):
    """theta_t, log p(X | theta_t), ELBO(r_{t-1}, theta_t) and the statistics of r_t."""

    weights: np.ndarray
    means: np.ndarray  # (K, D), centred
    covariances: np.ndarray  # native shape of the family
    prec_chol: np.ndarray
    log_likelihood: float
    elbo: float
    stats: em.ChunkStatistics  # of r_t, shifted by ``shift``
    shift: np.ndarray  # (K, D): ``means``, or a re-seeded cluster's point
    n_reseeded: int  # emptied clusters re-seeded for the M-steps taken so far
    pending_reseeded: int  # ... and for r_t, whose M-step comes next


_NO_OVERRIDES = (np.empty(0, dtype=int), np.empty(0, dtype=int))


def _em_chunk(x, w, offset, centre, means, theta, family, hard, overrides, shift=None):
    return em.chunk_statistics(x - centre, w, means, theta, family, hard=hard,
                               overrides=overrides, offset=offset, shift=shift)


def _candidate_chunk(x, w, offset, centre, shift, theta, family, counts, overrides):
    return em.reseed_candidate(x - centre, w, shift, theta, family, counts, overrides,
                               offset)


def _farther(a, b):
    """The better re-seed candidate: larger distance, then the smaller row (np.argmax's
    first maximum, as in memory)."""
    if b[0] > a[0] or (b[0] == a[0] and b[0] > -np.inf and b[1] < a[1]):
        return b
    return a


def fit_em(model: GaussianMixture, x: Any, *, hard: bool, seed: int, n_init: int,
           init: Any, tol: float, max_iter: int, progress: bool, method: str,
           sample_weight: Any = None) -> Fit:
    """EM (``hard=False``) or the k-means GMM (``hard=True``) of
    :mod:`gmmkit.inference.em` on a Dask array of shape (N, D), every covariance family.

    ``init`` is "kmeans++", "random" or (called directly) initial means (K, D) in the
    data's coordinates, as for :func:`gmmkit.inference.em.fit_em`.
    """
    family, reg = model.covariance, model.reg_covar
    min_points = max(model.n_components, model.min_points)
    data = prepare(x, sample_weight, name="X", univariate=False, min_points=min_points)
    _model_shape_check(model, data.x.shape[1])
    moments = _moments(data, "X", min_points, model.n_components)
    em.check_feature_variances(np.diagonal(moments.scatter) / moments.weight, reg)
    centre = moments.mean
    # The largest squared centred coordinate of a counted row (em._state's data scale).
    data_scale = float(np.max(np.maximum((moments.high - centre) ** 2,
                                         (moments.low - centre) ** 2), initial=0.0))

    def statistics(shift, theta, soft):
        """One pass of statistics at ``theta`` (None: nearest ``shift``), re-seeding
        emptied hard clusters as :func:`gmmkit.inference.em.hard_assignment` does.
        Returns the statistics, the re-seeds and the points they were taken around."""
        if soft:
            return run_pass(data, _em_chunk, centre, shift, theta, family, False,
                            _NO_OVERRIDES), 0, shift
        stats = run_pass(data, _em_chunk, centre, shift, theta, family, True, _NO_OVERRIDES)
        empty = np.flatnonzero(stats.n_k <= 0)
        if empty.size == 0:
            return stats, 0, shift
        counts = stats.n_k.copy()
        rows: list[int] = []
        comps: list[int] = []
        moved_shift = shift.copy()
        for comp in empty:  # one pass per emptied cluster (few, rare)
            overrides = (np.array(rows, dtype=int), np.array(comps, dtype=int))
            _, row, label, weight, point = run_pass(
                data, _candidate_chunk, centre, shift, theta, family, counts, overrides,
                combine=_farther)
            counts[label] -= weight
            counts[comp] = weight
            rows.append(row)
            comps.append(int(comp))
            # The re-seeded cluster is that one point: shifting its statistics by the
            # point itself keeps its scatter exactly 0 (shifted by the far-away mean that
            # lost it, the scatter would cancel to the rounding of |x - c|^2).
            moved_shift[comp] = point
        overrides = (np.array(rows, dtype=int), np.array(comps, dtype=int))
        # Labels still come from ``shift`` / ``theta``; only the statistics' shift moves.
        stats = run_pass(data, _em_chunk, centre, shift, theta, family, True, overrides,
                         moved_shift)
        return stats, int(empty.size), moved_shift

    def next_state(stats, shift, n_reseeded):
        """M-step from ``stats`` (taken around ``shift``), its ELBO, then the E-step."""
        weights, means, covariances, scatter = em.m_step_from_statistics(
            stats, shift, reg, family)
        prec_chol = em.factor_family(covariances, family, reg, data_scale)
        bound = em.elbo_from_statistics(stats, weights, means, prec_chol, scatter, family)
        new_stats, n_new, new_shift = statistics(means, (weights, means, prec_chol),
                                                 soft=not hard)
        return _EMState(weights, means, covariances, prec_chol, new_stats.log_likelihood,
                        bound, new_stats, new_shift, n_reseeded, n_new)

    def init_state(rng):
        if isinstance(init, str):
            xs, ws = _sample(data, rng)
            seeds = initial_means(xs - centre, model.n_components, init, rng, ws)
        else:  # explicit initial means (K, D), as em.fit_em takes when called directly
            seeds = np.asarray(init, dtype=float) - centre
            if seeds.shape != (model.n_components, data.x.shape[1]):
                raise ValueError(
                    f"init means must have shape ({model.n_components}, {data.x.shape[1]}), "
                    f"got shape {np.shape(init)}")
        stats, n_reseeded, shift = statistics(seeds, None, soft=False)
        return next_state(stats, shift, n_reseeded)

    run = coordinate_ascent(
        init=init_state,
        step=lambda s: next_state(s.stats, s.shift, s.n_reseeded + s.pending_reseeded),
        objective=(lambda s: s.elbo) if hard else (lambda s: s.log_likelihood),
        rng=np.random.default_rng(seed), n_init=n_init, tol=tol, max_iter=max_iter,
        progress=progress, label="k-means GMM" if hard else "EM",
        monitor=lambda s: {"elbo": s.elbo, "log_likelihood": s.log_likelihood},
    )
    fit = em.make_fit(method, model, data.source_x, centre, run, seed, hard=hard,
                      sample_weight=data.source_w,
                      responsibilities=functools.partial(lazy_responsibilities, data.source_x))
    return replace(fit, diagnostics={**fit.diagnostics, "chunks": len(data.blocks)})
