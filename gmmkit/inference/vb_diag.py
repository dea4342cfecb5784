"""Closed-form variational Bayes for the diag and spherical Bayesian GMMs (Normal-Gamma
components; priors in :mod:`gmmkit.models.normal_gamma`).

Variational family (mean field between z and the parameters, as Bishop's §10.2):

    q(pi)                       the weight prior's factor given N_k (Dir(alpha0 + N_k))
    q(lambda_kg)                = Gamma(nu_k / 2, rate 1 / (2 W_kg))
    q(mu_kd | lambda_kg)        = N(m_kd, 1 / (beta_k lambda_kg))
    q(z_n = k)                  = r_nk ∝ rho_nk

with g the precision group of dimension d (diag: every dimension its own group, G = D;
spherical: one group of all D dimensions).  The optimal factors, derived as PRML
10.54-10.63 with the Wishart replaced by its one-dimensional case (derivation in
``docs/derivations/bayesian_families.md``):

    N_k = sum_n r_nk,  s1_k = sum_n r_nk x_n,  s2_kd = sum_n r_nk x_nd^2
    beta_k = beta0 + N_k,  m_k = (beta0 m0 + s1_k) / beta_k                   (10.60-10.61)
    nu_k = nu0 + N_k g                (g = 1 for diag, D for spherical)       (10.63)
    W_kg^-1 = W0^-1 + sum_{d in g} (s2_kd + beta0 m0d^2 - beta_k m_kd^2)      (10.62)
    ln rho_nk = E[ln pi_k] + 1/2 sum_d E[ln lambda_kd] - (D/2) ln 2 pi - D / (2 beta_k)
                - 1/2 sum_d nu_k W_kd (x_nd - m_kd)^2                          (10.46, 10.64)
    E[lambda] = nu W,  E[ln lambda] = psi(nu / 2) + ln 2 + ln W              (10.65, D = 1)

W_k^-1 is in "raw moment" form, so an empty component (N_k -> 0) falls back exactly to the
prior.  As in :mod:`gmmkit.inference.vb`, ln rho_nk is affine in the features
phi(x) = [1, x, x^2] (p = 1 + 2D; for spherical [1, x, |x|^2], p = D + 2), so the E-step
is one product per block of points and the statistics (N_k, s1, s2) are a second (for
diag computed from x alone, ln rho = c + sum_d x_d (a_d + b_d x_d), so [1, x, x^2] is never
formed: :func:`~gmmkit.inference._blocks.diag_softmax_statistics`);
sum_n logsumexp_k ln rho_nk, accumulated there, is the bound's data part
E[ln p(X | z, mu, lambda)] + E[ln p(z | pi)] - E[ln q(z)].

The bound (every constant; a = nu/2, b = 1/(2W), a0 = nu0/2, b0 = 1/(2 W0), per
component k and group g, E[lambda] = a/b):

    L = sum_n w_n logsumexp_k ln rho_nk + (E[ln p(pi)] - E[ln q(pi)])
        + sum_kg [a0 ln b0 - ln Gamma(a0) - a ln b + ln Gamma(a) + (a0 - a) E[ln lambda]
                  - b0 E[lambda] + a]
        + sum_kd [1/2 ln(beta0 / beta_k) - beta0 / (2 beta_k) + 1/2
                  - (beta0 / 2) E[lambda_kd] (m_kd - m0d)^2].

The data are centred on their (weighted) mean first and ``sample_weight`` multiplies every
per-point term, as in :mod:`gmmkit.inference.vb`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from functools import partial, singledispatch
from typing import Any, NamedTuple

import numpy as np
from scipy.special import digamma, gammaln, logsumexp

from gmmkit.inference._blocks import (
    KEEP_FEATURES_BYTES,
    QuadraticFeatures,
    block_size,
    chunked_pass,
    data_softmax_statistics,
    diag_softmax_statistics,
    in_memory_pass,
    resolve_threads,
)
from gmmkit.inference.loop import RestartFailed, coordinate_ascent, fit_from_run, initial_means
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.gaussian import LOG_2PI, batched_log_likelihood
from gmmkit.models.normal_gamma import normal_gamma_logpdf
from gmmkit.models.weights import DirichletQ, WeightPrior, WeightsQ
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "NormalGammaPosterior",
    "NormalGammaVBState",
    "Posterior",
    "chunk_statistics",
    "e_step_coefficients",
    "elbo",
    "elbo_at",
    "feature_map",
    "fit_vb_diag",
    "hard_block_statistics",
    "hard_statistics",
    "init_state",
    "m_step",
    "problem_from_moments",
    "state_from_pass",
    "step",
    "weight_component_log_q",
]

_LOG_2 = np.log(2.0)


# ----------------------------------------------------------------------------- shared
def hard_block_statistics(
    X_t: np.ndarray, features: Callable[[int, int], np.ndarray], centres: np.ndarray,
    w: np.ndarray | None, n_features: int,
) -> np.ndarray:
    """sum_n w_n z_nk phi(x_n), shape (K, p), for z the one-hot assignment of every
    centred point of ``X_t`` (D, n) to the nearest of ``centres`` (K, D) (Euclidean), in
    blocks of points: the statistics of the initial state, for one chunk (or all) of the
    points.  ``features(start, stop)`` -> phi of those points, (p, B)."""
    n_components = centres.shape[0]
    n = X_t.shape[1]
    stats = np.zeros((n_features, n_components))
    block = min(block_size(n_components, n_features), n)
    sq_centres = np.einsum("kd,kd->k", centres, centres)
    components = np.arange(n_components)[:, None]
    for start in range(0, n, block):
        stop = min(start + block, n)
        f = features(start, stop)
        labels = np.argmin(sq_centres[:, None] - 2.0 * centres @ X_t[:, start:stop], axis=0)
        one_hot = (labels == components).T.astype(float)
        if w is not None:
            one_hot *= w[start:stop, None]
        stats += f @ one_hot
    return np.ascontiguousarray(stats.T)


@singledispatch
def weight_component_log_q(q: WeightsQ, log_weights: np.ndarray) -> np.ndarray | None:
    """The weight part of ``component_log_q``: M[s, j, k] with ln q(pi permuted) =
    sum_k M[s, perm(k), k] + const, shape (S, K, K); None when q(pi) does not factorise
    over components that way (then no label symmetrisation is attempted)."""
    return None


@weight_component_log_q.register
def _(q: DirichletQ, log_weights: np.ndarray) -> np.ndarray:
    # Dir(pi | alpha) = C(alpha) prod_k pi_k^(alpha_k - 1): component j under factor k.
    return (q.alpha - 1.0)[None, None, :] * log_weights[:, :, None]


def weights_q_from_beta(prior: WeightPrior, beta: np.ndarray, beta0: float) -> WeightsQ:
    """q(pi) at the counts N_k = beta_k - beta0 that an M-step implies (10.58, 10.60)."""
    return prior.posterior(np.maximum(beta - beta0, 0.0))


# ----------------------------------------------------------------------------- setup
class _Problem(NamedTuple):
    """Everything about (model, data) that does not change between iterations."""

    X_t: np.ndarray | None  # (D, N) centred, points along the contiguous axis (None when
    # the data are streamed in chunks); rows 1..D of phi when phi is kept
    phi: np.ndarray | None  # (p, N) spherical features, when cheap enough to keep (diag
    # never forms its features: diag_softmax_statistics reads X_t)
    centre: np.ndarray  # (D,)
    weights: WeightPrior
    beta0: float
    m0: np.ndarray  # (D,) centred
    W0: np.ndarray  # (G,)  G = D (diag) or 1 (spherical)
    nu0: float
    spherical: bool
    w: np.ndarray | None  # (N,) frequency weights
    n_threads: int = 1  # threads of an in-memory pass (gmmkit.inference._blocks)

    @property
    def layout(self) -> bool:
        """What :func:`chunk_statistics` needs to form a chunk's features: spherical?"""
        return self.spherical

    @property
    def n_features(self) -> int:
        return _n_features(self.m0.shape[0], self.spherical)


def _n_features(d: int, spherical: bool) -> int:
    return 2 + d if spherical else 1 + 2 * d


def _features(xb_t: np.ndarray, spherical: bool, out: np.ndarray | None = None
              ) -> np.ndarray:
    """phi(x) for points as columns, (D, B) -> (p, B): [1, x, x^2] (p = 1 + 2D) for diag,
    [1, x, |x|^2] (p = D + 2) for spherical, whose isotropic precision needs only the
    squared norm (half the work of diag per iteration)."""
    d, b = xb_t.shape
    if out is None:
        out = np.empty((_n_features(d, spherical), b))
    out[0] = 1.0
    out[1 : 1 + d] = xb_t
    if spherical:
        np.einsum("db,db->b", xb_t, xb_t, out=out[1 + d])
    else:
        np.multiply(xb_t, xb_t, out=out[1 + d :])
    return out


def _problem(model: BayesianGMM, X: np.ndarray, w: np.ndarray | None = None,
             n_threads: int = 1) -> _Problem:
    centre = X.mean(axis=0) if w is None else (w @ X) / w.sum()
    n, d = X.shape
    spherical = model.covariance_prior.spherical
    p = _n_features(d, spherical)
    if not spherical or 8 * p * n > KEEP_FEATURES_BYTES:
        # diag's pass reads the centred data alone (diag_softmax_statistics: x^2 is
        # squared in registers), half the bytes of kept [1, x, x^2]: 10.1-10.8 ms against
        # 12.9-14.5 at N = 1e5, D = 32, K = 16 on one thread (interleaved A/B).  Spherical
        # features too big to keep are formed tile by tile from the centred data.
        # Too big to keep: the pass forms them tile by tile from the centred data.
        return _problem_from_centre(model, centre, np.ascontiguousarray((X - centre).T),
                                    None, w)._replace(n_threads=n_threads)
    # Spherical's features never change: kept, the pass streams them from memory while it
    # computes.  Formed tile by tile instead (data_softmax_statistics) each tile waits for
    # its data first: at N = 1e5, D = 32, K = 16 that pass took 11.0 ms against 8.7 kept.
    # The centred data are rows 1..D of phi, not a copy.
    phi = np.empty((p, n))
    X_t = phi[1 : 1 + d]
    np.subtract(X.T, centre[:, None], out=X_t)
    _features(X_t, spherical, phi)
    return _problem_from_centre(model, centre, X_t, phi, w)._replace(n_threads=n_threads)


def problem_from_moments(model: BayesianGMM, centre: np.ndarray, scatter: np.ndarray,
                         total_weight: float) -> _Problem:
    """The data-free problem of the chunked driver (:mod:`gmmkit.inference.chunked`): the
    (resolved) priors in coordinates centred on the streamed mean ``centre`` (D,); the
    scatter and total weight are not needed (the statistics carry sum r x^2)."""
    return _problem_from_centre(model, np.asarray(centre, dtype=float), None, None, None)


def _problem_from_centre(model: BayesianGMM, centre: np.ndarray, X_t: np.ndarray | None,
                         phi: np.ndarray | None, w: np.ndarray | None) -> _Problem:
    return _Problem(
        X_t=X_t, phi=phi, centre=centre, weights=model.weight_distribution,
        beta0=float(model.beta0),
        m0=np.asarray(model.m0, dtype=float) - centre,
        W0=np.atleast_1d(np.asarray(model.W0, dtype=float)), nu0=float(model.nu0),
        spherical=model.covariance_prior.spherical, w=w,
    )


@functools.cache
def feature_map(d: int, spherical: bool) -> QuadraticFeatures:
    """phi as the compiled pass forms it: [1, x, x_d^2 for each d] (diag) or [1, x,
    sum_d x_d^2] (spherical); equal to :func:`_features`."""
    squares = [(a, a) for a in range(d)]
    return QuadraticFeatures.from_groups(d, [squares] if spherical else
                                         [[pair] for pair in squares])


def _pass(prob: _Problem, coef: np.ndarray, out: np.ndarray | None = None
          ) -> tuple[np.ndarray, float]:
    """The pass over the problem's points: diag's from the centred data
    (:func:`~gmmkit.inference._blocks.diag_softmax_statistics`); spherical's
    :func:`~gmmkit.inference._blocks.in_memory_pass`, kept features read in place or
    formed from the data in the pass."""
    if not prob.spherical:
        X_t = prob.X_t

        def chunk(start: int, stop: int, w_chunk, r_chunk) -> tuple[np.ndarray, float]:
            return diag_softmax_statistics(X_t, coef, w_chunk, r_chunk, start, stop)

        return chunked_pass(X_t.shape[1], coef, prob.w, out, prob.n_threads, chunk)
    return in_memory_pass(coef, prob.w, out, prob.n_threads, prob.phi, prob.X_t,
                          feature_map(prob.m0.shape[0], prob.spherical))


def _column_features(X_t: np.ndarray, spherical: bool, n_components: int
                     ) -> Callable[[int, int], np.ndarray]:
    """``features(start, stop)``: phi of the points (columns) start..stop of ``X_t``."""
    p = _n_features(X_t.shape[0], spherical)
    buffer = np.empty((p, min(block_size(n_components, p), X_t.shape[1])))

    def features(start: int, stop: int) -> np.ndarray:
        return _features(X_t[:, start:stop], spherical, buffer[:, : stop - start])

    return features


def _group_sum(a: np.ndarray, spherical: bool) -> np.ndarray:
    """Sum a (..., D) within the precision groups: (..., D) for diag, (..., 1) spherical."""
    return a.sum(axis=-1, keepdims=True) if spherical else a


# ----------------------------------------------------------------------------- state
class NormalGammaVBState(NamedTuple):
    """q(pi) q(mu, lambda) and the statistics of the q(z) they imply (exact bound)."""

    q_weights: WeightsQ
    beta: np.ndarray  # (K,)
    m: np.ndarray  # (K, D), centred
    W: np.ndarray  # (K, G)
    nu: np.ndarray  # (K,)
    stats: np.ndarray  # (K, 1 + D + G): N_k, sum r x, sum r x^2 summed within groups
    lse_sum: float


def _expected_precision(W: np.ndarray, nu: np.ndarray):
    """E[lambda] = nu W and E[ln lambda] = psi(nu/2) + ln 2 + ln W, both (K, G)."""
    return nu[:, None] * W, digamma(0.5 * nu)[:, None] + _LOG_2 + np.log(W)


def _log_rho_coefficients(q_weights: WeightsQ, beta, m, W, nu, spherical) -> np.ndarray:
    """C (p, K) with ln rho_nk = phi(x_n) . C[:, k] (module docstring)."""
    d = m.shape[1]
    e_lam, e_log_lam = _expected_precision(W, nu)
    prec = np.broadcast_to(e_lam, m.shape)  # (K, D): E[lambda_kd]
    sum_log = e_log_lam.sum(axis=1) * (d if spherical else 1)  # sum_d E[ln lambda_kd]
    pm = prec * m
    const = (q_weights.expected_log_weights + 0.5 * sum_log - 0.5 * d * LOG_2PI
             - 0.5 * d / beta - 0.5 * np.einsum("kd,kd->k", pm, m))
    # The quadratic term per feature x_d^2 (diag) or per |x|^2 (spherical): (K, G).
    return np.ascontiguousarray(np.concatenate([const[:, None], pm, -0.5 * e_lam], axis=1).T)


def _m_step(prob: _Problem, stats: np.ndarray):
    d = prob.m0.shape[0]
    n_k, s1, s2 = stats[:, 0], stats[:, 1 : 1 + d], stats[:, 1 + d :]
    q_weights = prob.weights.posterior(n_k)  # 10.58 or the weight prior's own update
    beta = prob.beta0 + n_k  # 10.60
    m = (prob.beta0 * prob.m0 + s1) / beta[:, None]  # 10.61
    # 10.62 per dimension in raw-moment form: finite as N_k -> 0 (no xbar = s1 / N_k).
    t = s2 + _group_sum(prob.beta0 * prob.m0**2 - beta[:, None] * m**2, prob.spherical)
    W_inv = 1.0 / prob.W0 + t
    if not np.all(W_inv > 0):
        raise RestartFailed("a W_k^-1 lost positivity to rounding; rescale the data or use "
                            "a smaller W0")
    nu = prob.nu0 + n_k * (d if prob.spherical else 1)  # 10.63
    return q_weights, beta, m, 1.0 / W_inv, nu


def m_step(prob: _Problem, stats: np.ndarray):
    """``(q(pi), beta, m, W, nu)`` from r's statistics (K, 1 + D + G) (module docstring);
    :class:`RestartFailed` when a W_kg^-1 is not positive."""
    return _m_step(prob, stats)


def e_step_coefficients(prob: _Problem, q_weights: WeightsQ, beta, m, W, nu) -> np.ndarray:
    """C (p, K) of ln rho_nk = phi(x_n) . C[:, k] at these parameters."""
    return _log_rho_coefficients(q_weights, beta, m, W, nu, prob.spherical)


def chunk_statistics(X_t: np.ndarray, w: np.ndarray | None, coef: np.ndarray,
                     spherical: bool) -> tuple[np.ndarray, float]:
    """The E-step fused with the statistics of r over one chunk of centred points ``X_t``
    (D, n) with weights ``w`` (n,) or None: ``(stats (K, p), lse_sum)`` as
    :func:`~gmmkit.inference._blocks.diag_softmax_statistics` (diag) or
    :func:`~gmmkit.inference._blocks.data_softmax_statistics` (spherical): the chunked
    driver's pass (:mod:`gmmkit.inference.chunked`, one call per Dask chunk, the results
    summed), the same compiled arithmetic as the in-memory fit's."""
    if not spherical:
        return diag_softmax_statistics(X_t, coef, w)
    return data_softmax_statistics(X_t, feature_map(X_t.shape[0], spherical), coef, w)


def hard_statistics(X_t: np.ndarray, w: np.ndarray | None, centres: np.ndarray,
                    spherical: bool, n_features: int) -> np.ndarray:
    """(K, p) statistics of the nearest-of-``centres`` (K, D) assignment of one chunk of
    centred points ``X_t`` (D, n) (:func:`hard_block_statistics`)."""
    features = _column_features(X_t, spherical, centres.shape[0])
    return hard_block_statistics(X_t, features, centres, w, n_features)


def state_from_pass(prob: _Problem, params: tuple, stats: np.ndarray, lse_sum: float
                    ) -> NormalGammaVBState:
    """The state of ``params`` from the summed results of :func:`chunk_statistics`."""
    return NormalGammaVBState(*params, stats, lse_sum)


def _state(prob: _Problem, q_weights, beta, m, W, nu) -> NormalGammaVBState:
    coef = e_step_coefficients(prob, q_weights, beta, m, W, nu)
    stats, lse_sum = _pass(prob, coef)
    return NormalGammaVBState(q_weights, beta, m, W, nu, stats, lse_sum)


def init_state(prob: _Problem, n_components: int, init: str, rng: np.random.Generator
               ) -> NormalGammaVBState:
    """Hard-assign every point to the nearest of K seeds (kmeans++ or random points),
    take the M-step of those one-hot responsibilities, then the E-step."""
    X_t = prob.X_t
    # The (N, D) view of the kept (D, N) rows, not a copy: seeding reads the points a few
    # times, and a copy would be the fit's largest allocation.
    centres = initial_means(X_t.T, n_components, init, rng, prob.w)
    stats = hard_block_statistics(X_t, _column_features(X_t, prob.spherical, n_components),
                                  centres, prob.w, prob.n_features)
    return _state(prob, *_m_step(prob, stats))


def step(prob: _Problem, state: NormalGammaVBState) -> NormalGammaVBState:
    """One VB sweep: the M-step (10.58-10.63 analogues) from r's statistics, then the
    E-step."""
    return _state(prob, *_m_step(prob, state.stats))


# ----------------------------------------------------------------------------- bound
def _parameter_terms(prob: _Problem, state: NormalGammaVBState) -> float:
    """E[ln p(pi, mu, lambda)] - E[ln q(pi, mu, lambda)], every constant (module doc)."""
    beta, m, W, nu = state.beta, state.m, state.W, state.nu
    beta0 = prob.beta0
    e_lam, e_log_lam = _expected_precision(W, nu)  # (K, G)
    a0, a = 0.5 * prob.nu0, 0.5 * nu[:, None]
    log_b0, log_b = -np.log(2.0 * prob.W0), -np.log(2.0 * W)
    gamma_terms = (a0 * log_b0 - gammaln(a0) - a * log_b + gammaln(a)
                   + (a0 - a) * e_log_lam - np.exp(log_b0) * e_lam + a)
    prec = np.broadcast_to(e_lam, m.shape)
    normal_terms = (0.5 * np.log(beta0 / beta)[:, None] - 0.5 * (beta0 / beta)[:, None]
                    + 0.5 - 0.5 * beta0 * prec * (m - prob.m0) ** 2)
    return float(state.q_weights.bound_terms() + gamma_terms.sum() + normal_terms.sum())


def elbo(prob: _Problem, state: NormalGammaVBState) -> float:
    """The full bound in nats (module docstring), exact for the state."""
    return state.lse_sum + _parameter_terms(prob, state)


def elbo_at(model: BayesianGMM, X: Any, params: Mapping[str, np.ndarray]) -> float:
    """The bound at given variational parameters, with q(z) at its optimum (10.49).

    Parameters
    ----------
    model : BayesianGMM
        ``covariance`` "diag" or "spherical"; data-dependent priors are resolved
        against ``X``.
    X : array_like, shape (N, D)
    params : dict
        ``beta`` (K,), ``m`` (K, D), ``W`` (K, D) for diag or (K,) for spherical, ``nu``
        (K,).  q(pi) is the weight prior's factor at the counts N_k = beta_k - beta0 that
        these parameters imply (for Dirichlet weights alpha_k = alpha0 + N_k).

    Returns
    -------
    float
    """
    X = model.check_data(X, min_points=2)
    model = model.resolve(X)
    prob = _problem(model, X)
    beta = np.asarray(params["beta"], dtype=float)
    W = np.asarray(params["W"], dtype=float)
    W = W[:, None] if prob.spherical else W
    q_weights = weights_q_from_beta(prob.weights, beta, prob.beta0)
    state = _state(prob, q_weights, beta, np.asarray(params["m"], dtype=float) - prob.centre,
                   W, np.asarray(params["nu"], dtype=float))
    return elbo(prob, state)


# ----------------------------------------------------------------------------- posterior
class NormalGammaPosterior:
    """q(pi) q(mu, lambda) of the diag / spherical VB (implements
    ``gmmkit.posterior.Posterior``)."""

    kind = PosteriorKind.CLOSED_FORM_Q
    shared_params: tuple[str, ...] = ()

    def __init__(self, model: BayesianGMM, centre, q_weights: WeightsQ, beta, m, W, nu
                 ) -> None:
        self.model = model
        self.n_components = model.n_components
        self._family = model.covariance_prior
        self._spherical = self._family.spherical
        self._centre = np.array(centre, dtype=float)
        self.q_weights = q_weights
        self.beta = np.array(beta, dtype=float)
        self._m_centred = np.array(m, dtype=float)
        self._W = np.array(W, dtype=float)  # (K, G)
        self.nu = np.array(nu, dtype=float)
        self._d = self._m_centred.shape[1]

    @property
    def m(self) -> np.ndarray:
        return self._m_centred + self._centre

    @property
    def W(self) -> np.ndarray:
        """(K, D) for diag, (K,) for spherical."""
        return self._W[:, 0].copy() if self._spherical else self._W.copy()

    def params(self) -> dict[str, np.ndarray]:
        return {**self.q_weights.params(), "beta": self.beta.copy(), "m": self.m,
                "W": self.W, "nu": self.nu.copy()}

    def point_estimates(self) -> dict[str, np.ndarray]:
        """E[pi]; E[mu_k] = m_k; variances 1 / E[lambda] = 1 / (nu_k W_k) (scikit-learn's
        ``covariances_``), as (K, D, D) ``covariances`` and the native parameter."""
        variances = 1.0 / (self.nu[:, None] * self._W)
        native = variances[:, 0] if self._spherical else variances
        return {"weights": self.q_weights.mean_weights.copy(), "means": self.m,
                "covariances": self._family.matrices(native, self.n_components, self._d),
                self._family.native_name: native}

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        xc = np.asarray(x, dtype=float) - self._centre
        coef = _log_rho_coefficients(self.q_weights, self.beta, self._m_centred, self._W,
                                     self.nu, self._spherical)
        log_rho = (coef.T @ _features(np.ascontiguousarray(xc.T), self._spherical)).T
        return log_rho - logsumexp(log_rho, axis=1, keepdims=True)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        """log p(x | X), shape (N,): sum_k E[pi_k] prod_g St_g(x_g | m_kg, s_kg, nu_k),
        Student-t with nu_k degrees of freedom, g dimensions and isotropic precision
        s_kg = nu_k beta_k W_kg / (1 + beta_k): a product of univariate t for diag, one
        D-dimensional t with scale proportional to I for spherical."""
        xc = np.asarray(x, dtype=float) - self._centre
        n, d = xc.shape
        k = self.n_components
        g = d if self._spherical else 1
        dof = self.nu[:, None]  # (K, 1)
        s = dof * self.beta[:, None] / (1.0 + self.beta[:, None]) * self._W  # (K, G)
        const = (gammaln(0.5 * (dof + g)) - gammaln(0.5 * dof) + 0.5 * g * np.log(s)
                 - 0.5 * g * np.log(dof * np.pi)).sum(axis=1)  # (K,)
        log_w = np.log(self.q_weights.mean_weights)
        out = np.empty(n)
        block = max(1, 2_000_000 // (k * d))  # bounds the (B, K, D) squares
        for start in range(0, n, block):
            xb = xc[start : start + block]
            sq = (xb[:, None, :] - self._m_centred[None]) ** 2  # (B, K, D)
            sq = _group_sum(sq, self._spherical)  # (B, K, G)
            log_t = const - (0.5 * (dof + g) * np.log1p(s * sq / dof)).sum(axis=2)
            out[start : start + block] = logsumexp(log_w + log_t, axis=1)
        return out

    def _draw_flat(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """pi ~ q(pi); lambda ~ Gamma(nu/2, rate 1/(2W)); mu | lambda ~ N(m, 1/(beta
        lambda)).  Canonical names plus the native parameter and ``log_weights``."""
        k, d = self.n_components, self._d
        log_weights = self.q_weights.draw_log_weights(n_draws, rng)
        g_count = self._W.shape[1]
        lam = rng.gamma(np.broadcast_to(0.5 * self.nu[:, None], (n_draws, k, g_count)),
                        2.0 * self._W)  # (S, K, G), scale 2 W
        lam_d = np.broadcast_to(lam, (n_draws, k, d))
        means = self.m + rng.standard_normal((n_draws, k, d)) / np.sqrt(
            self.beta[:, None] * lam_d)
        variances = 1.0 / (lam[..., 0] if self._spherical else lam)
        return {"weights": np.exp(log_weights), "log_weights": log_weights, "means": means,
                "covariances": self._family.matrices(variances, k, d),
                self._family.native_name: variances}

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draws = self._draw_flat(n_draws, rng)
        names = ("weights", "means", "covariances", self._family.native_name)
        return {name: draws[name][None] for name in names}

    def _log_q_parameters(self, means, variances) -> np.ndarray:
        # Parameters broadcast against the component axis of the draws.
        W = self._W[:, 0] if self._spherical else self._W
        return normal_gamma_logpdf(means, 1.0 / variances, self.m, self.beta, W, self.nu,
                                   self._spherical)

    def component_log_q(self, draws: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Draw s's component j under q's factor k, shape (S, K, K), up to label-invariant
        terms (None when q(pi) does not factorise over components)."""
        k, d = self.n_components, self._d
        log_weights = np.log(np.maximum(np.asarray(draws["weights"]).reshape(-1, k), 1e-300))
        weight_part = weight_component_log_q(self.q_weights, log_weights)
        if weight_part is None:
            return None
        means = np.asarray(draws["means"]).reshape(-1, k, d)
        native = np.asarray(draws[self._family.native_name])
        native = native.reshape((-1, k) if self._spherical else (-1, k, d))
        return self._log_q_parameters(means[:, :, None], native[:, :, None]) + weight_part

    def log_importance_weights(self, x: np.ndarray, n_draws: int, rng: np.random.Generator
                               ) -> np.ndarray:
        """ln p(x, theta_s) - ln q(theta_s) for theta_s ~ q (z summed out of p), shape
        (n_draws,); the draws are those of :meth:`draw` with the same rng."""
        draws = self._draw_flat(n_draws, rng)
        native = draws[self._family.native_name]
        log_p = self.model.log_prior(draws) + batched_log_likelihood(
            x, draws["weights"], draws["means"], draws["covariances"]).sum(axis=-1)
        log_q = (self.q_weights.log_density(draws["log_weights"])
                 + self._log_q_parameters(draws["means"], native).sum(axis=-1))
        return log_p - log_q


#: The posterior class under the name the chunked driver uses for every family.
Posterior = NormalGammaPosterior


# ----------------------------------------------------------------------------- fit
def fit_vb_diag(
    model: BayesianGMM, X: np.ndarray, *, seed: int, n_init: int, init: str, tol: float,
    max_iter: int, progress: bool, method: str, sample_weight: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Fit:
    """VB for ``covariance="diag"`` or ``"spherical"`` with restarts through the shared
    loop; ``X`` and ``sample_weight`` are validated.  ``Fit.model`` is resolved.  Each
    pass runs on ``n_threads`` threads (None: :func:`gmmkit.inference._blocks.
    default_threads`); the result does not depend on it."""
    from threadpoolctl import threadpool_limits

    n_threads = resolve_threads(n_threads)
    model = model.resolve(X, sample_weight=sample_weight)
    prob = _problem(model, X, sample_weight, n_threads)
    rng = np.random.default_rng(seed)
    # One BLAS thread in each of the pass's threads (see vb.py).
    with threadpool_limits(limits=1, user_api="blas"):
        run = coordinate_ascent(
            init=partial(init_state, prob, model.n_components, init),
            step=partial(step, prob), objective=partial(elbo, prob),
            rng=rng, n_init=n_init, tol=tol, max_iter=max_iter, progress=progress,
            label="VB",
        )
        state = run.state
        coef = _log_rho_coefficients(state.q_weights, state.beta, state.m, state.W,
                                     state.nu, prob.spherical)
        responsibilities = np.empty((X.shape[0], model.n_components))
        _pass(prob, coef, out=responsibilities)
    posterior = NormalGammaPosterior(model, prob.centre, state.q_weights, state.beta,
                                     state.m, state.W, state.nu)
    del prob
    return fit_from_run(run, method=method, model=model, data=X, posterior=posterior,
                        responsibilities=responsibilities, seed=seed,
                        sample_weight=sample_weight)
