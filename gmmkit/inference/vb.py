"""Bishop's variational Bayes for the Bayesian GMM (PRML §10.2.1-10.2.2).

q(z, pi, mu, Lambda) = q(z) q(pi) prod_k q(mu_k | Lambda_k) q(Lambda_k) with

    q(pi)                 = Dir(pi | alpha)                                (10.57)
    q(mu_k | Lambda_k)    = N(mu_k | m_k, (beta_k Lambda_k)^-1)            (10.59)
    q(Lambda_k)           = Wishart(Lambda_k | W_k, nu_k)                  (10.59)
    q(z_n = k)            = r_nk ∝ rho_nk                                  (10.46, 10.49)

With stick-breaking ("Dirichlet-process") weights q(pi) is instead q(v) = prod_{k<K}
Beta(v_k | a_k, b_k) (Blei & Jordan 2006).  Everything about the weights goes through the
model's ``weight_distribution`` (:mod:`gmmkit.models.weights`): the update of q(pi) from
the counts N_k (10.58), E[ln pi_k] (10.66) and the weight terms of the bound (10.73 -
10.76); the Gaussian-Wishart part does not depend on which weight prior it is.

Implementation notes (why it is fast and stable):

* The data are centred on their mean before fitting (and the prior mean with them); every
  term of the model is translation invariant, and the quadratic forms below lose far
  fewer digits near the origin.
* log rho_nk is affine in the features phi(x) = [1, x, upper-triangle of x x^T]:
  log rho_nk = c_k + b_k.x - x^T A_k x / 2 with A_k = nu_k W_k (10.64).  So the E-step is
  one GEMM (N x p) @ (p x K), and the M-step statistics N_k, sum r x, sum r x x^T
  (10.51-10.53) are one GEMM R^T phi.  Both run over blocks of points that stay in cache;
  no loop visits single points.
* The terms E[ln p(X|Z)] + E[ln p(Z|pi)] - E[ln q(Z)] of the bound collapse, for
  r = softmax(log rho), to sum_n logsumexp_k log rho_nk, which the E-step accumulates;
  the rest of the bound depends only on (q(pi), beta, m, W, nu).  The (N, K)
  responsibilities are formed once, at the end.
* That pass is :func:`chunk_statistics` (and :func:`hard_statistics` for the initial
  assignment): a pure function of one chunk of points and the small state.  The
  in-memory fit calls it on all the points; :mod:`gmmkit.inference.chunked` calls it on
  every chunk of a Dask array and adds the results, so both run the same arithmetic.
* Every update is in "raw moment" form (10.62 rewritten as W_k^-1 = W0^-1 + sum r x x^T +
  beta0 m0 m0^T - beta_k m_k m_k^T), so an empty component (N_k -> 0) falls back exactly
  to the prior instead of dividing 0 by 0.
* Frequency weights (``sample_weight`` w_n) multiply every per-point term of the bound:
  the statistics become sum_n w_n r_nk phi(x_n) and the data term sum_n w_n logsumexp_k.
  The weight is folded into the per-point normaliser 1/sum_k rho_nk that already scales
  the narrower operand of the statistics GEMM, so weights cost one product per point.
  The centre and the data-dependent priors m0, W0 use the weighted mean and the weighted
  sample covariance (ddof 1 in the total weight), so integer weights equal repetition.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from functools import partial, singledispatch
from typing import NamedTuple

import numpy as np
from scipy import linalg
from scipy.special import digamma, gammaln, logsumexp

from gmmkit.inference._blocks import (
    KEEP_FEATURES_BYTES,
    QuadraticFeatures,
    block_size,
    data_softmax_statistics,
    in_memory_pass,
    resolve_threads,
    softmax_statistics,
)
from gmmkit.inference.loop import RestartFailed, coordinate_ascent, fit_from_run, initial_means
from gmmkit.models.bayesian import (
    BayesianGMM,
    log_wishart_normaliser,
    normal_wishart_logpdf,
)
from gmmkit.models.gaussian import LOG_2PI, batched_log_likelihood, mahalanobis_sq
from gmmkit.models.normal_gamma import NormalGammaFamily
from gmmkit.models.tied_wishart import TiedWishartFamily
from gmmkit.models.weights import WeightPrior, WeightsQ
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "BishopPosterior",
    "Posterior",
    "VBState",
    "chunk_statistics",
    "e_step_coefficients",
    "elbo",
    "elbo_at",
    "fit_vb",
    "hard_statistics",
    "init_state",
    "m_step",
    "problem_from_centre",
    "problem_from_moments",
    "state_from_pass",
    "state_from_statistics",
    "step",
]


# ----------------------------------------------------------------------------- setup
class _Problem(NamedTuple):
    """Everything about (model, data) that does not change between iterations."""

    X: np.ndarray | None  # (N, D), centred (None when the data are streamed in chunks)
    X_t: np.ndarray | None  # (D, N), the same, points along the contiguous axis
    centre: np.ndarray  # (D,) added back to every mean
    weights: WeightPrior  # the prior on pi (Dirichlet or stick-breaking)
    beta0: float
    m0: np.ndarray  # (D,), centred
    W0_inv: np.ndarray  # (D, D)
    log_det_W0: float
    nu0: float
    iu: tuple[np.ndarray, np.ndarray]  # upper-triangle indices of x x^T
    n_features: int  # p = 1 + D + D(D+1)/2
    phi: np.ndarray | None  # (p, N) features of every point, when cheap enough to keep
    w: np.ndarray | None = None  # (N,) frequency weights; None: every point counts once
    n_threads: int = 1  # threads of an in-memory pass (gmmkit.inference._blocks)

    @property
    def layout(self):
        """What :func:`chunk_statistics` and :func:`hard_statistics` need to form a
        chunk's features: the upper-triangle indices of x x^T."""
        return self.iu


def _problem(model: BayesianGMM, X: np.ndarray, w: np.ndarray | None = None,
             n_threads: int = 1) -> _Problem:
    centre = X.mean(axis=0) if w is None else (w @ X) / w.sum()
    prob = problem_from_centre(model, centre)
    d = X.shape[1]
    X_centred = X - centre
    phi = None
    if prob.n_features <= _KEEP_FEATURES_RATIO * (d + model.n_components) and (
        8 * prob.n_features * X.shape[0] <= KEEP_FEATURES_BYTES
    ):
        # The features never change: computing them once saves a pass per iteration.
        # Kept only while they are no bigger than a few (N, K) or (N, D) arrays, so the
        # fit never needs more memory than scikit-learn's (benchmarks/bench_vb.py); the
        # transposed data are then rows 1..D of phi, not a copy.
        phi = np.empty((prob.n_features, X.shape[0]))
        phi[1 : 1 + d] = X_centred.T
        X_t = phi[1 : 1 + d]
        _features(X_t, prob.iu, phi)
    else:
        X_t = np.ascontiguousarray(X_centred.T)
    return prob._replace(X=X_centred, X_t=X_t, phi=phi, w=w, n_threads=n_threads)


def problem_from_centre(model: BayesianGMM, centre: np.ndarray) -> _Problem:
    """The data-free part of the problem: the (resolved) priors in coordinates centred on
    ``centre`` (D,).  ``X``, ``X_t``, ``phi`` and ``w`` are left None: the chunked driver
    (:mod:`gmmkit.inference.chunked`) streams the data instead of holding them."""
    centre = np.asarray(centre, dtype=float)
    d = centre.shape[0]
    w0_chol = np.linalg.cholesky(model.W0)
    w0_inv_chol = linalg.solve_triangular(w0_chol, np.eye(d), lower=True)
    iu = np.triu_indices(d)
    return _Problem(
        X=None, X_t=None, centre=centre,
        weights=model.weight_distribution, beta0=float(model.beta0),
        m0=np.asarray(model.m0, dtype=float) - centre, W0_inv=w0_inv_chol.T @ w0_inv_chol,
        log_det_W0=float(2.0 * np.log(np.diag(w0_chol)).sum()), nu0=float(model.nu0),
        iu=iu, n_features=1 + d + iu[0].size, phi=None, w=None,
    )


def problem_from_moments(model: BayesianGMM, centre: np.ndarray, scatter: np.ndarray,
                         total_weight: float) -> _Problem:
    """The problem of the chunked driver (:mod:`gmmkit.inference.chunked`) from the
    streamed moments: the (weighted) mean ``centre`` (D,); the scatter (D, D) and the total
    weight are not needed by the full family (its statistics carry sum r x x^T)."""
    return problem_from_centre(model, centre)


#: Keep the (p, N) features when p <= this * (D + K) and they fit in KEEP_FEATURES_BYTES.
_KEEP_FEATURES_RATIO = 3


def _features(xb_t: np.ndarray, iu, out: np.ndarray) -> np.ndarray:
    """phi(x) = [1, x, x_i x_j for i <= j] for a block of points stored as columns:
    ``xb_t`` (D, B) -> ``out`` (p, B).

    Points run along the last axis so that the per-point reductions over components
    (max, sum) are elementwise operations between K contiguous rows, not K-long reductions
    per point, which NumPy runs several times slower.
    """
    d = xb_t.shape[0]
    out[0] = 1.0
    out[1 : 1 + d] = xb_t
    row = 1 + d
    for i in range(d):  # D broadcast products (row-major order of iu); no fancy-index copies
        np.multiply(xb_t[i], xb_t[i:], out=out[row : row + d - i])
        row += d - i
    return out


def _unpack_statistics(stats: np.ndarray, d: int, iu):
    """(K, p) statistics -> N_k (K,), sum_n r x (K, D), sum_n r x x^T (K, D, D)."""
    k = stats.shape[0]
    second = np.zeros((k, d, d))
    second[:, iu[0], iu[1]] = stats[:, 1 + d :]
    second[:, iu[1], iu[0]] = stats[:, 1 + d :]
    return stats[:, 0], stats[:, 1 : 1 + d], second


# ----------------------------------------------------------------------------- state
class VBState(NamedTuple):
    """q(pi, mu, Lambda) and the statistics of the q(z) it implies.

    ``stats`` (K, p) = sum_n r_nk phi(x_n) and ``lse_sum`` = sum_n logsumexp_k log rho_nk
    are computed from the r that these very parameters give (10.46-10.49), so the bound of
    a state is exact without storing r.  ``m`` is in centred coordinates.
    """

    weights: WeightsQ  # q(pi)     10.58 (or q(v) for stick-breaking)
    beta: np.ndarray  # (K,)       10.60
    m: np.ndarray  # (K, D)        10.61
    W_inv_chol: np.ndarray  # (K, D, D) lower Cholesky factor of W_k^-1 (10.62)
    nu: np.ndarray  # (K,)         10.63
    stats: np.ndarray  # (K, p)
    lse_sum: float


class _Expectations(NamedTuple):
    W: np.ndarray  # (K, D, D)
    log_det_W: np.ndarray  # (K,)
    e_log_det: np.ndarray  # (K,)  E[ln |Lambda_k|]   10.65
    e_log_pi: np.ndarray  # (K,)   E[ln pi_k]         10.66


def _expectations(weights: WeightsQ, nu, W_inv_chol) -> _Expectations:
    k, d, _ = W_inv_chol.shape
    inv_chol = np.empty_like(W_inv_chol)
    eye = np.eye(d)
    for j in range(k):  # K small triangular solves; the data never loop
        inv_chol[j] = linalg.solve_triangular(W_inv_chol[j], eye, lower=True)
    W = np.einsum("kab,kac->kbc", inv_chol, inv_chol)  # W = L^-T L^-1
    log_det_W = -2.0 * np.log(np.diagonal(W_inv_chol, axis1=1, axis2=2)).sum(axis=1)
    e_log_det = (digamma(0.5 * (nu[:, None] - np.arange(d))).sum(axis=1)
                 + d * np.log(2.0) + log_det_W)  # 10.65
    e_log_pi = weights.expected_log_weights  # 10.66
    return _Expectations(W, log_det_W, e_log_det, e_log_pi)


def _log_rho_coefficients(beta, m, nu, ex: _Expectations, iu) -> np.ndarray:
    """C (p, K) with log rho_nk = phi(x_n) . C[:, k]  (10.46 with 10.64-10.66):

    log rho_nk = E[ln pi_k] + E[ln|Lambda_k|]/2 - (D/2) ln 2pi
                 - D/(2 beta_k) - nu_k (x - m_k)^T W_k (x - m_k) / 2.
    """
    d = m.shape[1]
    A = nu[:, None, None] * ex.W  # nu_k W_k
    Am = np.einsum("kab,kb->ka", A, m)
    const = (ex.e_log_pi + 0.5 * ex.e_log_det - 0.5 * d * LOG_2PI - 0.5 * d / beta
             - 0.5 * np.einsum("ka,ka->k", m, Am))
    quad = -A[:, iu[0], iu[1]]  # off-diagonal pairs appear once in phi, twice in x^T A x
    quad[:, iu[0] == iu[1]] *= 0.5
    # Contiguous (p, K): matmul falls back to a slow non-BLAS loop on strided operands.
    return np.ascontiguousarray(np.concatenate([const[:, None], Am, quad], axis=1).T)


def _e_step(prob: _Problem, coef: np.ndarray, out: np.ndarray | None = None):
    """Responsibilities from log rho = phi @ coef over all the (in-memory) points
    (:func:`gmmkit.inference._blocks.in_memory_pass`: in chunks on ``prob.n_threads``
    threads, the result the same for every count; the kept features, or [1, x, x_i x_j]
    formed from the data in the pass).

    Returns ``(stats (K, p), lse_sum)``; with ``out`` (N, K) also writes r there.
    """
    return in_memory_pass(coef, prob.w, out, prob.n_threads, prob.phi, prob.X_t,
                          feature_map(prob.X_t.shape[0]))


def chunk_statistics(X_t: np.ndarray, w: np.ndarray | None, coef: np.ndarray, iu,
                     features: np.ndarray | None = None, out: np.ndarray | None = None):
    """The E-step (10.46-10.49) fused with the statistics of r over one chunk of points.

    The one per-iteration pass of VB, shared by the in-memory fit (one chunk: all the
    data) and the chunked driver (:mod:`gmmkit.inference.chunked`, one call per Dask
    chunk, the results summed), so both run the same arithmetic.

    Parameters
    ----------
    X_t : ndarray, shape (D, n)
        Centred points of the chunk as columns.
    w : ndarray, shape (n,), or None
        Frequency weights of the chunk (None: every point counts once).
    coef : ndarray, shape (p, K)
        :func:`_log_rho_coefficients`.
    iu : tuple of ndarray
        Upper-triangle indices of x x^T.
    features : ndarray, shape (p, n), optional
        The chunk's features phi(x), when kept (never written to).
    out : ndarray, shape (n, K), optional
        Receives r.

    Returns
    -------
    stats : ndarray, shape (K, p)
        sum_n w_n r_nk phi(x_n).
    lse_sum : float
        sum_n w_n logsumexp_k log rho_nk.
    """
    # 10.46-10.49 and the statistics in one compiled pass: kept features read in place
    # (never written), or [1, x, x_i x_j] formed from the chunk tile by tile in cache.
    if features is not None:
        return softmax_statistics(features, coef, w, out)
    return data_softmax_statistics(X_t, feature_map(X_t.shape[0]), coef, w, out)


@functools.cache
def feature_map(d: int) -> QuadraticFeatures:
    """phi as the compiled pass forms it: [1, x, x_i x_j for i <= j], the upper triangle in
    row-major order (``np.triu_indices(d)``, as :func:`_features`)."""
    return QuadraticFeatures.from_groups(d, [[(i, j)] for i in range(d) for j in range(i, d)])


def _m_step(prob: _Problem, stats: np.ndarray):
    """q(pi), q(mu, Lambda) from the statistics of r (10.58, 10.60-10.63); q(pi) is a
    :class:`~gmmkit.models.weights.WeightsQ`."""
    d = prob.m0.shape[0]
    n_k, s1, s2 = _unpack_statistics(stats, d, prob.iu)
    weights = prob.weights.posterior(n_k)  # 10.58
    beta = prob.beta0 + n_k  # 10.60
    m = (prob.beta0 * prob.m0 + s1) / beta[:, None]  # 10.61
    # 10.62 as W_k^-1 = W0^-1 + N_k S_k + beta0 N_k/(beta0 + N_k) (xbar_k - m0)(xbar_k - m0)^T
    #               = W0^-1 + sum_n r_nk x_n x_n^T + beta0 m0 m0^T - beta_k m_k m_k^T,
    # which needs no xbar_k = (sum r x) / N_k and so stays finite as N_k -> 0.
    W_inv = (prob.W0_inv + s2 + prob.beta0 * np.outer(prob.m0, prob.m0)
             - beta[:, None, None] * np.einsum("ka,kb->kab", m, m))
    W_inv = 0.5 * (W_inv + np.swapaxes(W_inv, 1, 2))
    # 10.63 reads nu_k = nu0 + N_k + 1 in early printings of PRML; the erratum (and the
    # derivation from 10.59) gives nu0 + N_k.
    nu = prob.nu0 + n_k
    try:
        W_inv_chol = np.linalg.cholesky(W_inv)
    except np.linalg.LinAlgError:
        raise RestartFailed(
            "a W_k^-1 lost positive definiteness to rounding; rescale the data or use a "
            "larger W0^-1 (smaller W0)"
        ) from None
    return weights, beta, m, W_inv_chol, nu


def e_step_coefficients(prob: _Problem, weights: WeightsQ, beta, m, W_inv_chol, nu
                        ) -> np.ndarray:
    """C (p, K) of log rho_nk = phi(x_n) . C[:, k] at these parameters (10.46, 10.64-10.66)."""
    ex = _expectations(weights, nu, W_inv_chol)
    return _log_rho_coefficients(beta, m, nu, ex, prob.iu)


def m_step(prob: _Problem, stats: np.ndarray):
    """``(q(pi), beta, m, W_inv_chol, nu)`` from r's statistics (K, p) (10.58-10.63);
    :class:`RestartFailed` when a W_k^-1 is not positive definite."""
    return _m_step(prob, stats)


def state_from_pass(prob: _Problem, params: tuple, stats: np.ndarray, lse_sum: float
                    ) -> VBState:
    """The state of ``params`` from the summed results of :func:`chunk_statistics`."""
    return VBState(*params, stats, lse_sum)


def _state(prob: _Problem, weights: WeightsQ, beta, m, W_inv_chol, nu) -> VBState:
    coef = e_step_coefficients(prob, weights, beta, m, W_inv_chol, nu)
    stats, lse_sum = _e_step(prob, coef)
    return VBState(weights, beta, m, W_inv_chol, nu, stats, lse_sum)


def init_state(prob: _Problem, n_components: int, init: str, rng: np.random.Generator):
    """Hard-assign every point to the nearest of K seeds (kmeans++ or random points), take
    the M-step of those one-hot responsibilities, then the E-step."""
    centres = initial_means(prob.X, n_components, init, rng, prob.w)
    stats = hard_statistics(prob.X_t, prob.w, centres, prob.iu, prob.n_features)
    return state_from_statistics(prob, stats)


def hard_statistics(X_t: np.ndarray, w: np.ndarray | None, centres: np.ndarray, iu,
                    n_features: int) -> np.ndarray:
    """sum_n w_n z_nk phi(x_n), shape (K, p), for z the one-hot assignment of every
    centred point of ``X_t`` (D, n) to the nearest of ``centres`` (K, D) (Euclidean): the
    statistics of the initial state, for one chunk (or all) of the points."""
    n_components = centres.shape[0]
    n = X_t.shape[1]
    stats = np.zeros((n_features, n_components))
    block = max(1, min(block_size(n_components, n_features), n))
    phi = np.empty((n_features, block))
    sq_centres = np.einsum("kd,kd->k", centres, centres)
    components = np.arange(n_components)[:, None]
    for start in range(0, n, block):
        xb = X_t[:, start : start + block]
        f = _features(xb, iu, phi[:, : xb.shape[1]])
        labels = np.argmin(sq_centres[:, None] - 2.0 * centres @ xb, axis=0)
        one_hot = (labels == components).T.astype(float)
        if w is not None:
            one_hot *= w[start : start + block, None]
        stats += f @ one_hot
    return stats.T


def state_from_statistics(prob: _Problem, stats: np.ndarray) -> VBState:
    """The M-step (10.58-10.63) from statistics (K, p), then the E-step."""
    return _state(prob, *_m_step(prob, stats))


def step(prob: _Problem, state: VBState) -> VBState:
    """One VB sweep: the M-step (10.58-10.63) from r's statistics, then the E-step."""
    return state_from_statistics(prob, state.stats)


# ----------------------------------------------------------------------------- bound
_log_B = log_wishart_normaliser  # ln B(W, nu), Bishop B.79


def _parameter_terms(prob: _Problem, weights: WeightsQ, beta, m, nu, ex: _Expectations) -> float:
    """E[ln p(pi)] + E[ln p(mu, Lambda)] - E[ln q(pi)] - E[ln q(mu, Lambda)]
    (10.73 + 10.74 - 10.76 - 10.77), every constant included."""
    k, d = m.shape
    beta0, nu0 = prob.beta0, prob.nu0
    diff = m - prob.m0
    maha = np.einsum("ka,kab,kb->k", diff, ex.W, diff)
    trace = np.einsum("ab,kba->k", prob.W0_inv, ex.W)
    # E[ln p(pi)] - E[ln q(pi)] (10.73 - 10.76), computed by q(pi) in one piece so that
    # the ~ -1/alpha0 terms of an emptied component cancel algebraically.
    pi_terms = weights.bound_terms()
    log_p_mu_lambda = (  # 10.74
        0.5 * np.sum(d * np.log(beta0 / (2 * np.pi)) + ex.e_log_det - d * beta0 / beta
                     - beta0 * nu * maha)
        + k * _log_B(prob.log_det_W0, nu0, d)
        + 0.5 * (nu0 - d - 1.0) * ex.e_log_det.sum()
        - 0.5 * np.sum(nu * trace)
    )
    entropy_lambda = (-_log_B(ex.log_det_W, nu, d) - 0.5 * (nu - d - 1.0) * ex.e_log_det
                      + 0.5 * nu * d)  # B.82
    log_q_mu_lambda = np.sum(  # 10.77
        0.5 * ex.e_log_det + 0.5 * d * np.log(beta / (2 * np.pi)) - 0.5 * d - entropy_lambda
    )
    return float(pi_terms + log_p_mu_lambda - log_q_mu_lambda)


def elbo(prob: _Problem, state: VBState) -> float:
    """The full bound (10.70-10.77) in nats, every constant included, exact for the state.

    For r = softmax(log rho), 10.71 + 10.72 - 10.75 = sum_n logsumexp_k log rho_nk, the
    state's ``lse_sum``; the other terms need only the variational parameters.
    """
    ex = _expectations(state.weights, state.nu, state.W_inv_chol)
    return state.lse_sum + _parameter_terms(prob, state.weights, state.beta, state.m, state.nu,
                                            ex)


def elbo_at(model: BayesianGMM, X, params: dict[str, np.ndarray]) -> float:
    """The bound at given variational parameters, with q(z) set to its optimum (10.49).

    Parameters
    ----------
    model : BayesianGMM
        Data-dependent priors are resolved against ``X``.
    X : array_like, shape (N, D)
    params : dict
        Bishop's notation: q(pi)'s parameters (``alpha`` (K,) for Dirichlet weights,
        ``stick_a``, ``stick_b`` (K - 1,) for stick-breaking ones: the model's
        ``weight_distribution.q_from_params``), ``beta`` (K,), ``m`` (K, D),
        ``W`` (K, D, D), ``nu`` (K,); e.g. ``Fit.variational_params`` or scikit-learn's
        fitted attributes.

    Returns
    -------
    float
        ELBO in nats (10.70).
    """
    X = model.check_data(X, min_points=2)
    model = model.resolve(X)
    prob = _problem(model, X)
    W = np.asarray(params["W"], dtype=float)
    W_inv = np.linalg.inv(W)
    state = _state(
        prob, model.weight_distribution.q_from_params(params),
        np.asarray(params["beta"], dtype=float),
        np.asarray(params["m"], dtype=float) - prob.centre,
        np.linalg.cholesky(0.5 * (W_inv + np.swapaxes(W_inv, 1, 2))),
        np.asarray(params["nu"], dtype=float),
    )
    return elbo(prob, state)


# ----------------------------------------------------------------------------- posterior
class BishopPosterior:
    """q(pi) q(mu, Lambda) of Bishop's VB (implements ``gmmkit.posterior.Posterior``)."""

    kind = PosteriorKind.CLOSED_FORM_Q

    def __init__(self, model: BayesianGMM, centre, weights: WeightsQ, beta, m, W_inv_chol,
                 nu) -> None:
        self.model = model
        self.n_components = model.n_components
        self._centre = np.array(centre, dtype=float)
        #: q(pi) (:class:`~gmmkit.models.weights.WeightsQ`), frozen like the arrays below.
        self.weights = weights
        self.beta = np.array(beta, dtype=float)
        self._m_centred = np.array(m, dtype=float)
        self._W_inv_chol = np.array(W_inv_chol, dtype=float)
        self.nu = np.array(nu, dtype=float)
        self._ex = _expectations(self.weights, self.nu, self._W_inv_chol)
        self._d = self._m_centred.shape[1]

    @property
    def m(self) -> np.ndarray:
        return self._m_centred + self._centre

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the q(pi) parameters without a component axis (the sticks)."""
        return self.weights.param_dims

    @property
    def W(self) -> np.ndarray:
        return self._ex.W.copy()

    def params(self) -> dict[str, np.ndarray]:
        return {**self.weights.params(), "beta": self.beta.copy(), "m": self.m,
                "W": self.W, "nu": self.nu.copy()}

    def point_estimates(self) -> dict[str, np.ndarray]:
        """E[pi_k] (alpha_k / sum(alpha) for Dirichlet weights); E[mu_k] = m_k; covariances
        (nu_k W_k)^-1 = E[Lambda_k]^-1, scikit-learn's ``covariances_`` (E[Lambda_k^-1] is
        infinite for nu_k <= D + 1, e.g. an empty component with the default nu0 = D)."""
        covariances = np.einsum(
            "kba,kca->kbc", self._W_inv_chol, self._W_inv_chol
        ) / self.nu[:, None, None]
        return {"weights": self.weights.mean_weights, "means": self.m,
                "covariances": covariances}

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        """E-step responsibilities for new points (10.46-10.49), in log space, (N, K)."""
        xc = np.asarray(x, dtype=float) - self._centre
        iu = np.triu_indices(self._d)
        coef = _log_rho_coefficients(self.beta, self._m_centred, self.nu, self._ex, iu)
        phi = _features(np.ascontiguousarray(xc.T), iu, np.empty((coef.shape[0], xc.shape[0])))
        log_rho = (coef.T @ phi).T
        return log_rho - logsumexp(log_rho, axis=1, keepdims=True)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        """log p(x | X), the Student-t mixture (10.81-10.82), shape (N,):

        p(x | X) = sum_k E[pi_k] St(x | m_k, L_k, nu_k + 1 - D),
        L_k = (nu_k + 1 - D) beta_k / (1 + beta_k) W_k.
        """
        xc = np.asarray(x, dtype=float) - self._centre
        d = self._d
        dof = self.nu + 1.0 - d
        scale = dof * self.beta / (1.0 + self.beta)
        # Upper factor P_k with P_k P_k^T = L_k: W_k = U^T U with U = (W_k^-1 chol)^-1.
        inv_chol = np.linalg.inv(self._W_inv_chol)
        prec_chol = np.sqrt(scale)[:, None, None] * np.swapaxes(inv_chol, 1, 2)
        maha = mahalanobis_sq(xc, self._m_centred, prec_chol)  # (N, K)
        log_det_L = d * np.log(scale) + self._ex.log_det_W
        log_t = (gammaln(0.5 * (dof + d)) - gammaln(0.5 * dof) + 0.5 * log_det_L
                 - 0.5 * d * np.log(dof * np.pi) - 0.5 * (dof + d) * np.log1p(maha / dof))
        return logsumexp(self.weights.log_mean_weights + log_t, axis=1)

    def _draw_components(self, n_draws: int, rng: np.random.Generator):
        """pi ~ q(pi); Lambda_k ~ W(W_k, nu_k) by Bartlett; mu_k ~ N(m_k, (beta_k
        Lambda_k)^-1).  Returns log weights (S, K), means (S, K, D) and F (S, K, D, D), the
        lower-triangular factor with Lambda = F F^T."""
        k, d = self.n_components, self._d
        # Log weights: with a pruned component the weight underflows to 0 in linear space,
        # but its log stays finite, which the importance weights need.
        log_weights = self.weights.draw_log_weights(n_draws, rng)
        chol_W = np.linalg.cholesky(self._ex.W)  # (K, D, D) lower
        a = np.zeros((n_draws, k, d, d))
        dof = self.nu[None, :, None] - np.arange(d)[None, None, :]
        diag = np.sqrt(rng.chisquare(np.broadcast_to(dof, (n_draws, k, d))))
        a[:, :, np.arange(d), np.arange(d)] = diag
        rows, cols = np.tril_indices(d, -1)
        a[:, :, rows, cols] = rng.standard_normal((n_draws, k, rows.size))
        F = np.matmul(chol_W[None], a)  # Lambda = (L A)(L A)^T, Bartlett (1933)
        z = rng.standard_normal((n_draws, k, d, 1))
        # mu = m + (F^T)^-1 z / sqrt(beta): covariance (beta F F^T)^-1.
        offset = np.linalg.solve(np.swapaxes(F, -1, -2), z)[..., 0]
        means = self.m[None] + offset / np.sqrt(self.beta)[None, :, None]
        return log_weights, means, F

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draws = self._draw_flat(n_draws, rng)
        return {name: draws[name][None] for name in ("weights", "means", "covariances")}

    def _draw_flat(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        log_weights, means, F = self._draw_components(n_draws, rng)
        d = self._d
        F_inv = np.linalg.solve(F, np.broadcast_to(np.eye(d), F.shape))
        covariances = np.swapaxes(F_inv, -1, -2) @ F_inv  # Lambda^-1 = F^-T F^-1
        return {"weights": np.exp(log_weights), "log_weights": log_weights, "means": means,
                "covariances": covariances}

    def component_log_q(self, draws: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Draw s's component j under q's factor k (PRML 10.55-10.59), shape (S, K, K):
        q(pi) prod_k N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | W_k, nu_k) on the
        draws' (weights, means, covariances), the weight part as q(pi)'s
        ``component_log_density`` (for the Dirichlet exact up to its normaliser, which
        does not change under relabelling).  None when q(pi) does not factorise over the
        components (stick-breaking): the draws are then weighed against q itself."""
        k, d = self.n_components, self._d
        weights = np.asarray(draws["weights"]).reshape(-1, k)
        log_q_weights = self.weights.component_log_density(np.log(np.maximum(weights, 1e-300)))
        if log_q_weights is None:
            return None
        means = np.asarray(draws["means"]).reshape(-1, k, d)
        covs = np.asarray(draws["covariances"]).reshape(-1, k, d, d)
        # Draw s's component j (axis 1) under factor k (axis 2), by broadcasting.
        log_nw = normal_wishart_logpdf(means[:, :, None], covs[:, :, None], self.m,
                                       self.beta, self._ex.W, self.nu)
        return log_nw + log_q_weights

    def log_importance_weights(
        self, x: np.ndarray, n_draws: int, rng: np.random.Generator
    ) -> np.ndarray:
        """log p(x, theta_s) - log q(theta_s) for theta_s ~ q, shape (n_draws,), with z
        summed out of p (draws taken with :meth:`draw`, so a replay with the same rng
        gives the same theta)."""
        draws = self._draw_flat(n_draws, rng)  # the same stream as draw(n_draws, rng)
        log_p = self.model.log_prior(draws) + batched_log_likelihood(
            x, draws["weights"], draws["means"], draws["covariances"]).sum(axis=-1)
        # q(pi) on log weights: finite even where a weight underflows to 0.
        log_q = (self.weights.log_density(draws["log_weights"])
                 + normal_wishart_logpdf(draws["means"], draws["covariances"], self.m,
                                         self.beta, self._ex.W, self.nu).sum(axis=-1))
        return log_p - log_q


#: The posterior class under the name the chunked driver uses for every family.
Posterior = BishopPosterior


# ----------------------------------------------------------------------------- fit
@singledispatch
def _family_backend(family: object):
    """The VB backend of a restricted covariance family; None for full (this module)."""
    return None


@_family_backend.register
def _(family: NormalGammaFamily):
    from gmmkit.inference.vb_diag import fit_vb_diag

    return fit_vb_diag


@_family_backend.register
def _(family: TiedWishartFamily):
    from gmmkit.inference.vb_tied import fit_vb_tied

    return fit_vb_tied


def fit_vb(
    model: BayesianGMM,
    X: np.ndarray,
    *,
    seed: int,
    n_init: int,
    init: str,
    tol: float,
    max_iter: int,
    progress: bool,
    method: str,
    sample_weight: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Fit:
    """Bishop's VB with restarts through the shared loop; ``X`` is already validated, and
    so is ``sample_weight`` (N,) (None: every point counts once).  Every pass over the
    data runs on ``n_threads`` threads (None: as many as the BLAS may use,
    :func:`gmmkit.inference._blocks.default_threads`); the result does not depend on it.

    ``Fit.model`` is the model with its data-dependent priors resolved against ``X``
    (the weighted ``X`` when weighted).
    """
    from threadpoolctl import threadpool_limits

    family_backend = _family_backend(model.covariance_prior)
    if family_backend is not None:  # diag, spherical, tied: their own modules
        return family_backend(model, X, seed=seed, n_init=n_init, init=init, tol=tol,
                              max_iter=max_iter, progress=progress, method=method,
                              sample_weight=sample_weight, n_threads=n_threads)
    n_threads = resolve_threads(n_threads)
    model = model.resolve(X, sample_weight=sample_weight)
    prob = _problem(model, X, sample_weight, n_threads)
    rng = np.random.default_rng(seed)
    # One BLAS thread in each of the pass's threads: the GEMMs are (K, p) x (p, 512)
    # tiles, too small for BLAS threads to pay, and multi-threaded OpenBLAS made them
    # 2-5x slower in benchmarks/bench_vb.py (tenfold on a busy machine, where its threads
    # spin against other work).  The pass's own threads split the points instead.
    with threadpool_limits(limits=1, user_api="blas"):
        run = coordinate_ascent(
            init=partial(init_state, prob, model.n_components, init),
            step=partial(step, prob),
            objective=partial(elbo, prob),
            rng=rng, n_init=n_init, tol=tol, max_iter=max_iter, progress=progress,
            label="VB",
        )
    state = run.state
    ex = _expectations(state.weights, state.nu, state.W_inv_chol)
    coef = _log_rho_coefficients(state.beta, state.m, state.nu, ex, prob.iu)
    responsibilities = np.empty((X.shape[0], model.n_components))
    _e_step(prob, coef, out=responsibilities)
    centre = prob.centre
    del prob  # frees the kept features before Fit copies the (N, K) responsibilities
    return fit_from_run(
        run, method=method, model=model, data=X,
        posterior=BishopPosterior(model, centre, state.weights, state.beta, state.m,
                                  state.W_inv_chol, state.nu),
        responsibilities=responsibilities, seed=seed, sample_weight=sample_weight,
    )
