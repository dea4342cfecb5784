"""Stochastic variational inference (Hoffman, Blei, Wang & Paisley 2013) for the
univariate GMM (CAVI's family, :mod:`gmmkit.inference.cavi`) and Bishop's Bayesian GMM
(:mod:`gmmkit.inference.vb`), in memory and on Dask arrays.

The variational family is the closed-form one of CAVI / Bishop's VB; only the way the
global factors are fitted changes.  Every epoch visits the data once, in
ceil(N / ``batch_size``) minibatches of nearly equal size (at most ``batch_size`` points,
sizes differing by at most one) drawn without replacement: a fresh permutation per epoch,
from the fit's seeded Generator.  For each minibatch B, step t = 1, 2, ...:

1. local step: the responsibilities of the minibatch under the current global q, exactly
   the CAVI / VB E-step, and their sufficient statistics S_B;
2. intermediate global parameters: the CAVI / VB update as if the minibatch were the
   whole data replicated N/|B| times, i.e. from the statistics (N/|B|) S_B;
3. natural-gradient step: eta <- (1 - rho_t) eta + rho_t eta_hat with the Robbins-Monro
   step size rho_t = (t + tau)^(-kappa).

Natural parameters.  Bishop's q(pi) q(mu, Lambda) has natural parameters
(alpha; beta, beta m, W^-1 + beta m m^T, nu), and the univariate q(mu_k) = N(m_k, s2_k)
has (m_k / s2_k, -1 / (2 s2_k)).  Both are *affine* in the statistics of the E-step:
alpha = alpha0 + N_k, beta = beta0 + N_k, beta m = beta0 m0 + sum r x, W^-1 + beta m m^T =
W0^-1 + beta0 m0 m0^T + sum r x x^T, nu = nu0 + N_k (PRML 10.58-10.63 in raw-moment form),
and m/s2 = S_k / tau^2, -1/(2 s2) = -(1/sigma^2 + N_k/tau^2) / 2.  So the state stores the
natural parameters in those coordinates, eta = prior + T with T an "effective statistic"
of the same shape as the E-step's, and the step interpolates T.  That is exactly the
interpolation of the natural parameters (never of (m, W) or (m, s2)), and the
moment parameters are recovered with the very functions CAVI / VB use.  With
``batch_size = N``, ``kappa = 0`` (rho_t = 1) every step is one CAVI / VB iteration,
to rounding (the sums run in a permuted order).

Stopping: after ``n_epochs`` epochs, or earlier when the full-data ELBO at the end of an
epoch changes by at most ``tol`` nats from the previous epoch (absolute nats, as the
closed-form loop).  ``Fit.elbo_trace`` holds the exact full-data ELBO (the CAVI / VB bound
with the E-step recomputed on all data) of the initial state and at the end of every
epoch, so ``Fit.elbo`` is the full-data ELBO of the final global parameters.  No loop
visits single points; one Python iteration per minibatch.  Along the way
``Fit.diagnostics["elbo_estimate_trace"]`` holds, per epoch, the mean over its steps of the
bound of the q before the step with the data term estimated from the minibatch
(sum_B lse times N/|B|): free (the E-step computes it), unbiased for that q when the
minibatch is a uniform sample, and noisy.

Dask arrays (``gmmkit.fit(model, dask_array, "svi")``).  The data are never held in
memory.  One pass checks every value is finite and takes the mean and scatter (the
centre, and a ``BayesianGMM``'s data-dependent priors, as in memory); the seeds are drawn
as the chunked closed-form methods draw them (:data:`INIT_SAMPLE_ROWS`); the full-data
ELBO of the initial state and after every epoch is one pass of the same per-chunk
statistics as batch VB / CAVI (so an epoch costs two passes: the minibatches and the
bound), and the responsibilities are a lazy Dask array.  *The sampling scheme*: every
epoch visits the row chunks in a fresh seeded random order; each chunk is computed (the
next one meanwhile, in the background), its rows are permuted by the same generator and
appended to the rows left over from the previous chunk, and the epoch's minibatches (the
same ceil(N / batch_size) nearly equal sizes as in memory) are cut from the front.  So
each epoch still visits every row exactly once, but a minibatch holds rows of one chunk,
or of two consecutive chunks where it crosses a boundary: it is *not* a uniform sample
without replacement of all N rows, and when the chunks are ordered (data sorted by time
or by source) consecutive minibatches are correlated, which adds noise that the decaying
step size still averages out (tests/dask/test_svi_dask.py uses data sorted by cluster).
With one chunk the scheme is the in-memory one, draw for draw.  Memory: two chunks and a
minibatch.  The chunks are read from their source every epoch (nothing is persisted).
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

import numpy as np

from gmmkit._validation import check_int, check_lazy_data, is_lazy_array
from gmmkit._warnings import ConvergenceWarning, warn
from gmmkit.inference import cavi, vb
from gmmkit.inference.loop import RunResult, fit_from_run, initial_means, progress_bar
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.result import Fit

__all__ = ["check_svi_options", "fit_svi", "step_size"]

#: batch_size=None means min(N, DEFAULT_BATCH_SIZE).
DEFAULT_BATCH_SIZE = 256


def step_size(t: int | np.ndarray, tau: float, kappa: float):
    """Robbins-Monro step size rho_t = (t + tau)^(-kappa) for steps t = 1, 2, ...

    Hoffman et al. need tau >= 0 and kappa in (0.5, 1] for convergence; kappa = 0 gives
    rho_t = 1 (every step replaces q by its intermediate value)."""
    return (np.asarray(t, dtype=float) + tau) ** (-kappa)


def check_svi_options(n_points: int, batch_size: Any, n_epochs: Any, tau: Any,
                      kappa: Any) -> tuple[int, int, float, float]:
    """Validate SVI's options against N; returns (batch_size, n_epochs, tau, kappa)."""
    if batch_size is None:
        batch_size = min(n_points, DEFAULT_BATCH_SIZE)
    batch_size = check_int("batch_size", batch_size, 1)
    if batch_size > n_points:
        raise ValueError(
            f"batch_size must be between 1 and the number of points N={n_points}, "
            f"got {batch_size}"
        )
    n_epochs = check_int("n_epochs", n_epochs, 1)
    tau = _number("tau", tau)
    if tau < 0:
        raise ValueError(f"tau must be a non-negative number, got {tau:g}")
    kappa = _number("kappa", kappa)
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must be in [0, 1], got {kappa:g}")
    return batch_size, n_epochs, tau, kappa


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


# ----------------------------------------------------------------------------- models
class _Univariate:
    """CAVI's family: T = (N_k, S_k) stacked as (K, 2)."""

    label = "SVI"

    def __init__(self, model: UnivariateGMM, x: np.ndarray) -> None:
        self.model, self.x, self.n = model, x, x.shape[0]

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        state = cavi.init_state(self.model, self.x, init, rng)
        # Natural parameters of the initial q(mu) in statistic coordinates (module doc).
        tau2, sigma2 = self.model.obs_sd**2, self.model.prior_sd**2
        n_k = tau2 * (1.0 / state.s2 - 1.0 / sigma2)
        s_k = tau2 * state.m / state.s2
        return np.stack([n_k, s_k], axis=1)

    def _means(self, T: np.ndarray):
        # Exactly cavi.step's variance and mean updates.
        s2 = 1.0 / (1.0 / self.model.prior_sd**2 + T[:, 0] / self.model.obs_sd**2)
        m = s2 * T[:, 1] / self.model.obs_sd**2
        return m, s2

    def batches(self, rng: np.random.Generator, bounds: list[int]):
        """The epoch's minibatches: a fresh permutation of all N points, cut at ``bounds``."""
        data = self.x[rng.permutation(self.n)]
        for lo, hi in itertools.pairwise(bounds):
            yield data[lo:hi]

    def statistics(self, batch, T: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(the minibatch's statistics (K, 2), its sum of logsumexp terms, the bound of
        q = T without its data term sum_i lse_i)."""
        m, s2 = self._means(T)
        n_k, s_k, lse_sum = cavi.assignment_statistics(self.model, batch, m, s2)
        return np.stack([n_k, s_k], axis=1), lse_sum, self.elbo_from_lse(T, 0.0)

    def elbo_from_lse(self, T: np.ndarray, lse_sum: float) -> float:
        """The bound of q(mu) = T with ``lse_sum`` standing for sum_i lse_i."""
        m, s2 = self._means(T)
        state = cavi.CAVIState(m=m, s2=s2, n_k=T[:, 0], s_k=T[:, 1], lse_sum=lse_sum)
        return cavi.elbo(self.model, self.n, state)

    def full_elbo(self, T: np.ndarray) -> float:
        m, s2 = self._means(T)
        state = cavi._state_from_means(self.model, self.x, m, s2)
        return cavi.elbo(self.model, self.n, state)

    def finish(self, T: np.ndarray):
        m, s2 = self._means(T)
        posterior = cavi.GaussianMeansPosterior(self.model, m, s2)
        resp = np.exp(cavi.log_responsibilities(self.model, self.x, m, s2))
        return self.model, posterior, resp


class _Bishop:
    """Bishop's family: T = (N_k, sum r x, upper triangle of sum r x x^T), (K, p), the
    layout of ``vb._e_step``'s statistics."""

    label = "SVI"

    def __init__(self, model: BayesianGMM, X: np.ndarray) -> None:
        self.model = model.resolve(X)
        self.prob = vb._problem(self.model, X)
        self.X, self.n = X, X.shape[0]
        self.d = X.shape[1]

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        p = self.prob
        s = vb.init_state(p, self.model.n_components, init, rng)
        # Natural parameters of the initial q in statistic coordinates (module doc).
        n_k = s.beta - p.beta0
        s1 = s.beta[:, None] * s.m - p.beta0 * p.m0
        W_inv = np.einsum("kab,kcb->kac", s.W_inv_chol, s.W_inv_chol)
        s2 = (W_inv + s.beta[:, None, None] * np.einsum("ka,kb->kab", s.m, s.m)
              - p.W0_inv - p.beta0 * np.outer(p.m0, p.m0))
        return np.concatenate([n_k[:, None], s1, s2[:, p.iu[0], p.iu[1]]], axis=1)

    def batches(self, rng: np.random.Generator, bounds: list[int]):
        """The epoch's minibatches: a fresh permutation of all N points, cut at ``bounds``."""
        p = self.prob
        perm = rng.permutation(self.n)
        if p.phi is not None:
            phi = np.take(p.phi, perm, axis=1)  # C order: the pass reads it in place
            X_t = phi[1 : 1 + self.d]
        else:
            phi, X_t = None, np.ascontiguousarray(p.X_t[:, perm])
        for lo, hi in itertools.pairwise(bounds):
            yield p._replace(X_t=X_t[:, lo:hi], phi=None if phi is None else phi[:, lo:hi])

    def _coefficients(self, T: np.ndarray, with_terms: bool = False):
        """q's parameters at T and the E-step's coefficients (and, ``with_terms``, the
        bound without its data term, from the same expectations)."""
        params = vb._m_step(self.prob, T)
        alpha, beta, m, W_inv_chol, nu = params
        ex = vb._expectations(alpha, nu, W_inv_chol)
        coef = vb._log_rho_coefficients(beta, m, nu, ex, self.prob.iu)
        if with_terms:
            return params, coef, vb._parameter_terms(self.prob, alpha, beta, m, nu, ex)
        return params, coef

    def statistics(self, batch, T: np.ndarray) -> tuple[np.ndarray, float, float]:
        """(the minibatch's statistics (K, p), its sum of logsumexp terms, the bound of
        q = T without its data term: 10.73 + 10.74 - 10.76 - 10.77)."""
        _, coef, terms = self._coefficients(T, with_terms=True)
        stats, lse_sum = vb._e_step(batch, coef)
        return stats, lse_sum, terms

    def elbo_from_lse(self, T: np.ndarray, lse_sum: float) -> float:
        """The bound (10.70-10.77) of q = T with ``lse_sum`` standing for sum_n lse_n."""
        return _bishop_elbo_from_lse(self.prob, T, lse_sum)

    def full_elbo(self, T: np.ndarray) -> float:
        state = vb._state(self.prob, *vb._m_step(self.prob, T))
        return vb.elbo(self.prob, state)

    def finish(self, T: np.ndarray):
        (alpha, beta, m, W_inv_chol, nu), coef = self._coefficients(T)
        resp = np.empty((self.n, self.model.n_components))
        vb._e_step(self.prob, coef, out=resp)
        posterior = vb.BishopPosterior(self.model, self.prob.centre, alpha, beta, m,
                                       W_inv_chol, nu)
        return self.model, posterior, resp


def _bishop_elbo_from_lse(prob, T: np.ndarray, lse_sum: float) -> float:
    """Bishop's bound (10.70-10.77) at the q whose statistics are ``T``, with ``lse_sum``
    for the data term sum_n logsumexp_k log rho_nk (exact with the full-data sum, an
    unbiased estimate with a minibatch's sum times N/|B|)."""
    params = vb.m_step(prob, T)
    return vb.elbo(prob, vb.VBState(*params, T, lse_sum))


# ----------------------------------------------------------------------------- Dask data
#: Rows the k-means++ seeds are drawn from on Dask data: all of them (in order, no draw)
#: up to this many, else a seeded uniform sample without replacement (as the chunked
#: closed-form methods, :mod:`gmmkit.inference.chunked`).
INIT_SAMPLE_ROWS = 100_000


def _add(a, b):
    """Elementwise sum of two chunk results (arrays, floats or tuples of them)."""
    if isinstance(a, tuple):
        return tuple(_add(u, v) for u, v in zip(a, b, strict=True))
    return a + b


def _moments_chunk(x: np.ndarray, offset: int, name: str):
    """(rows, mean (D,), scatter about the mean (D, D)) of one chunk; a ValueError naming
    the rows when it holds a NaN or an infinity."""
    x = x[:, None] if x.ndim == 1 else x
    bad = ~np.isfinite(x)
    if bad.any():
        first = offset + int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} must be finite, got NaN/inf in the chunk of rows "
                         f"{offset}..{offset + x.shape[0] - 1} (first in row {first})")
    mean = x.mean(axis=0)
    diff = x - mean
    return x.shape[0], mean, diff.T @ diff


class _DaskRows:
    """A validated Dask array's row chunks and the few passes SVI makes over them: each
    pass maps a NumPy function over the chunks and adds the results in chunk order (so the
    sum does not depend on the scheduler), on whatever Dask scheduler is active."""

    def __init__(self, x: Any, *, name: str, univariate: bool, min_points: int) -> None:
        x = check_lazy_data(x, name=name, univariate=univariate, min_points=min_points)
        sizes = x.chunks[0]
        offsets = np.cumsum((0, *sizes[:-1]))
        keep = [i for i, size in enumerate(sizes) if size > 0]
        blocks = x.to_delayed().ravel()
        self.x, self.name, self.n_rows = x, name, int(x.shape[0])
        self.blocks = tuple(blocks[i] for i in keep)
        self.offsets = tuple(int(offsets[i]) for i in keep)

    def map_sum(self, fn, *args):
        """sum over chunks of ``fn(chunk, *args)`` (small results: statistics)."""
        import dask

        task = dask.delayed(fn, pure=True)
        parts = dask.compute(*[task(block, *args) for block in self.blocks])
        return functools.reduce(_add, parts)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (D,), scatter about it (D, D)) of all rows, checking every value is
        finite; the chunks' moments combined by Chan et al.'s pairwise update (no
        cancellation whatever the data's offset)."""
        import dask

        task = dask.delayed(_moments_chunk, pure=True)
        parts = dask.compute(*[task(b, o, self.name)
                               for b, o in zip(self.blocks, self.offsets, strict=True)])
        n, mean, scatter = parts[0]
        for n_b, mean_b, scatter_b in parts[1:]:
            delta = mean_b - mean
            total = n + n_b
            mean = mean + delta * (n_b / total)
            scatter = scatter + scatter_b + np.outer(delta, delta) * (n * n_b / total)
            n = total
        return mean, scatter

    def init_sample(self, rng: np.random.Generator) -> np.ndarray:
        """The rows the initial seeds are drawn from (:data:`INIT_SAMPLE_ROWS`)."""
        if self.n_rows <= INIT_SAMPLE_ROWS:
            return np.asarray(self.x.compute(), dtype=float)
        rows = np.sort(rng.choice(self.n_rows, size=INIT_SAMPLE_ROWS, replace=False))
        return np.asarray(self.x[rows].compute(), dtype=float)

    def responsibilities(self, posterior) -> Any:
        """q(z | x) of every row, a lazy Dask array (N, K) with the data's row chunks."""
        k = posterior.n_components
        fn = functools.partial(_responsibilities_block, posterior=posterior)
        new_axis = {"new_axis": 1} if self.x.ndim == 1 else {}
        return self.x.map_blocks(fn, chunks=(self.x.chunks[0], (k,)), dtype=float,
                                 **new_axis)


def _responsibilities_block(block: np.ndarray, posterior) -> np.ndarray:
    return np.exp(posterior.log_responsibilities(block))


def _cavi_chunk(x: np.ndarray, model: UnivariateGMM, m: np.ndarray, s2: np.ndarray):
    return cavi.assignment_statistics(model, x, m, s2)


def _vb_chunk(x: np.ndarray, centre: np.ndarray, coef: np.ndarray, iu):
    return vb.chunk_statistics(np.ascontiguousarray((x - centre).T), None, coef, iu)


def _vb_hard_chunk(x: np.ndarray, centre: np.ndarray, seeds: np.ndarray, iu,
                   n_features: int):
    return vb.hard_statistics(np.ascontiguousarray((x - centre).T), None, seeds, iu,
                              n_features)


def _chunk_stream(data: _DaskRows, rng: np.random.Generator, bounds: list[int]):
    """One epoch's minibatches from the row chunks of a Dask array (module docstring).

    The chunks are visited in a seeded random order; each is computed (the next one is
    computed in the background meanwhile), its rows are permuted by the same generator and
    appended to what is left of the previous chunk, and the minibatches of sizes
    ``diff(bounds)`` are cut from the front.  At most one chunk, the one being computed
    and a minibatch's worth of leftover rows are in memory at a time.  Yields NumPy
    arrays of the rows of every minibatch, in ``bounds``' order.
    """
    from concurrent.futures import ThreadPoolExecutor

    import dask

    sizes = np.diff(bounds)
    order = rng.permutation(len(data.blocks))
    batch_index = 0
    leftover = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(dask.compute, data.blocks[order[0]])
        for position in range(order.size):
            (chunk,) = pending.result()
            if position + 1 < order.size:  # prefetch: compute the next chunk meanwhile
                pending = pool.submit(dask.compute, data.blocks[order[position + 1]])
            chunk = np.asarray(chunk, dtype=float)
            chunk = chunk[rng.permutation(chunk.shape[0])]
            buffer = chunk if leftover is None else np.concatenate([leftover, chunk])
            start = 0
            while batch_index < sizes.size and buffer.shape[0] - start >= sizes[batch_index]:
                stop = start + int(sizes[batch_index])
                yield buffer[start:stop]
                start, batch_index = stop, batch_index + 1
            leftover = buffer[start:]
    assert batch_index == sizes.size, "the epoch's minibatches cover every row once"


class _ChunkedUnivariate(_Univariate):
    """CAVI's family on a Dask array (N,): minibatches streamed chunk-wise
    (:func:`_chunk_stream`), the full-data bound by one pass of CAVI's statistics
    per chunk."""

    def __init__(self, model: UnivariateGMM, x) -> None:
        self.data = _DaskRows(x, name="x", univariate=True,
                              min_points=max(model.n_components, model.min_points))
        model.check_data(np.zeros(1))
        self.data.moments()  # checks every value is finite, before any fitting
        self.model, self.x, self.n = model, self.data.x, self.data.n_rows

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        # As the chunked CAVI (and, for N <= SAMPLE_ROWS, as in memory): seeds on a
        # seeded sample of rows, s2 as if each component had N/K points.
        xs = self.data.init_sample(rng)
        m = initial_means(xs[:, None], self.model.n_components, init, rng)[:, 0]
        s2 = cavi.initial_variances(self.model, self.n)
        tau2, sigma2 = self.model.obs_sd**2, self.model.prior_sd**2
        return np.stack([tau2 * (1.0 / s2 - 1.0 / sigma2), tau2 * m / s2], axis=1)

    def batches(self, rng: np.random.Generator, bounds: list[int]):
        return _chunk_stream(self.data, rng, bounds)

    def full_elbo(self, T: np.ndarray) -> float:
        m, s2 = self._means(T)
        _, _, lse_sum = self.data.map_sum(_cavi_chunk, self.model, m, s2)
        return self.elbo_from_lse(T, lse_sum)

    def finish(self, T: np.ndarray):
        m, s2 = self._means(T)
        posterior = cavi.GaussianMeansPosterior(self.model, m, s2)
        return self.model, posterior, self.data.responsibilities(posterior)


class _ChunkedBishop(_Bishop):
    """Bishop's family on a Dask array (N, D): minibatches streamed chunk-wise
    (:func:`_chunk_stream`), centre and data-dependent priors from the chunked moments
    pass, the full-data bound by one pass of :func:`gmmkit.inference.vb.chunk_statistics`
    per chunk."""

    def __init__(self, model: BayesianGMM, X) -> None:
        self.data = _DaskRows(X, name="X", univariate=False,
                              min_points=max(model.n_components, model.min_points))
        self.d = int(self.data.x.shape[1])
        model.check_data(np.zeros((1, self.d)))
        mean, scatter = self.data.moments()
        # The sample covariance with ddof 1, as BayesianGMM.resolve (and the chunked VB).
        self.model = model.resolve_from_moments(mean, scatter / (self.data.n_rows - 1.0),
                                                self.data.n_rows)
        self.prob = vb.problem_from_centre(self.model, mean)
        self.X, self.n = self.data.x, self.data.n_rows

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        # As the chunked VB (and, for N <= SAMPLE_ROWS, as in memory): seeds on a seeded
        # sample of rows, then the statistics of the hard assignment to them, one pass.
        # Those statistics *are* T: the initial q is their M-step.
        p = self.prob
        xs = self.data.init_sample(rng)
        seeds = initial_means(xs - p.centre, self.model.n_components, init, rng)
        return self.data.map_sum(_vb_hard_chunk, p.centre, seeds, p.iu, p.n_features)

    def batches(self, rng: np.random.Generator, bounds: list[int]):
        p = self.prob
        for rows in _chunk_stream(self.data, rng, bounds):
            yield p._replace(X_t=np.ascontiguousarray((rows - p.centre).T), phi=None)

    def full_elbo(self, T: np.ndarray) -> float:
        p = self.prob
        _, coef = self._coefficients(T)
        _, lse_sum = self.data.map_sum(_vb_chunk, p.centre, coef, p.iu)
        return _bishop_elbo_from_lse(p, T, lse_sum)

    def finish(self, T: np.ndarray):
        alpha, beta, m, W_inv_chol, nu = vb.m_step(self.prob, T)
        posterior = vb.BishopPosterior(self.model, self.prob.centre, alpha, beta, m,
                                       W_inv_chol, nu)
        return self.model, posterior, self.data.responsibilities(posterior)


# ----------------------------------------------------------------------------- loop
def _run(problem, *, init: str, rng: np.random.Generator, batch_size: int, n_epochs: int,
         tau: float, kappa: float, tol: float, progress: bool):
    start_time = time.perf_counter()
    n = problem.n
    T = problem.init(init, rng)
    trace = [problem.full_elbo(T)]
    times = [time.perf_counter() - start_time]
    epoch_step_sizes = []
    estimates = []
    # ceil(N / batch_size) minibatches of nearly equal size (never a tiny last one, whose
    # N/|B| scaling would make its step far noisier than the others).
    n_batches = -(-n // batch_size)
    bounds = [(i * n) // n_batches for i in range(n_batches + 1)]
    t = 0
    converged = False
    epochs = 0
    with progress_bar(progress, problem.label, total=n_epochs) as bar:
        for epochs in range(1, n_epochs + 1):  # noqa: B007 - read after the loop
            estimate_sum = 0.0
            for batch, (lo, hi) in zip(problem.batches(rng, bounds),
                                       itertools.pairwise(bounds), strict=True):
                t += 1
                rho = float(step_size(t, tau, kappa))
                stats, lse_sum, rest = problem.statistics(batch, T)
                scale = n / (hi - lo)
                # The estimate along the way: the bound of the current q with the data
                # term estimated from the minibatch (unbiased for a uniform minibatch);
                # the bound is affine in that term, ``rest`` being the remainder.
                estimate_sum += rest + scale * lse_sum
                # Intermediate natural parameters: the minibatch replicated N/|B| times.
                T = (1.0 - rho) * T + rho * (scale * stats)  # the natural-gradient step
            epoch_step_sizes.append(rho)
            estimates.append(estimate_sum / n_batches)
            trace.append(problem.full_elbo(T))
            times.append(time.perf_counter() - start_time)
            bar.update(description=f"{problem.label}: {trace[-1]:.6g}")
            if abs(trace[-1] - trace[-2]) <= tol:
                converged = True
                break
    if not converged:
        last = trace[-1] - trace[-2]
        warn(
            f"{problem.label} did not converge: stopped at n_epochs={epochs} epochs with "
            f"the full-data ELBO still changing by {last:+.3g} nats in the last epoch "
            f"(tol={tol:g} nats); raise n_epochs or tol",
            ConvergenceWarning,
        )
    trace_arr = np.array(trace)
    run = RunResult(
        state=T, trace=trace_arr, time_trace=np.array(times), monitor_traces={},
        converged=converged, n_iter=epochs, restart_objectives=trace_arr[-1:],
        restart_failures=(), elapsed_s=time.perf_counter() - start_time,
    )
    diagnostics = {
        "step_size_schedule": "rho_t = (t + tau)^(-kappa), t = 1, 2, ... (one t per minibatch)",
        "tau": tau, "kappa": kappa, "batch_size": batch_size,
        "steps_per_epoch": n_batches, "n_steps": t, "n_epochs": epochs,
        "final_step_size": float(step_size(t, tau, kappa)),
        "step_size_at_epoch_end": np.array(epoch_step_sizes),
        "elbo_trace_is": "full-data ELBO of the initial state and after every epoch",
        "elbo_estimate_trace": np.array(estimates),
        "elbo_estimate_is": "per epoch, the mean over its steps of the ELBO of the q before "
                            "the step with the data term estimated from the minibatch "
                            "(times N/|B|)",
    }
    return run, diagnostics


def fit_svi(
    model: UnivariateGMM | BayesianGMM,
    x: Any,
    *,
    seed: int,
    init: str,
    tol: float,
    progress: bool,
    method: str,
    batch_size: int | None,
    n_epochs: int,
    tau: float,
    kappa: float,
) -> Fit:
    """SVI for ``UnivariateGMM`` (x of shape (N,)) or ``BayesianGMM`` (x (N, D)), already
    validated by :func:`gmmkit.fit` (NumPy) or a Dask array (checked here, chunk by chunk
    in the first pass); the options are checked here against N."""
    from threadpoolctl import threadpool_limits

    if isinstance(model, BayesianGMM) and model.covariance != "full":
        # SVI's natural gradients are written for the Normal-Wishart family only.
        raise ValueError(f"method {method!r} fits BayesianGMM with covariance='full' only, "
                         f"got covariance={model.covariance!r}; use the closed-form VB")
    batch_size, n_epochs, tau, kappa = check_svi_options(
        int(x.shape[0]), batch_size, n_epochs, tau, kappa)
    rng = np.random.default_rng(seed)
    univariate = isinstance(model, UnivariateGMM)
    if is_lazy_array(x):
        problem = _ChunkedUnivariate(model, x) if univariate else _ChunkedBishop(model, x)
        data = problem.data.x
    else:
        problem = _Univariate(model, x) if univariate else _Bishop(model, x)
        data = x
    # One BLAS thread, as fit_vb: the minibatch GEMMs are too small for threads to pay.
    with threadpool_limits(limits=1, user_api="blas"):
        run, diagnostics = _run(problem, init=init, rng=rng, batch_size=batch_size,
                                n_epochs=n_epochs, tau=tau, kappa=kappa, tol=tol,
                                progress=progress)
        fitted_model, posterior, resp = problem.finish(run.state)
    if is_lazy_array(x):
        diagnostics["chunks"] = len(problem.data.blocks)
        diagnostics["passes"] = {
            "minibatch": run.n_iter, "full_elbo": run.n_iter + 1,
            "moments_and_init": 1 if univariate else 2,
        }
    return fit_from_run(
        run, method=method, model=fitted_model, data=data, posterior=posterior,
        responsibilities=resp, seed=seed, diagnostics=diagnostics,
    )
