"""Closed-form variational Bayes for the tied Bayesian GMM (one Wishart precision shared
by every component; prior in :mod:`gmmkit.models.tied_wishart`).

Variational family:

    q(pi)                  the weight prior's factor given N_k (Dir(alpha0 + N_k))
    q(Lambda)              = Wishart(Lambda | W, nu)                  one, shared
    q(mu_k | Lambda)       = N(mu_k | m_k, (beta_k Lambda)^-1)
    q(z_n = k)             = r_nk ∝ rho_nk

Updates (derived as PRML 10.54-10.63, with the K components' Gaussian kernels in Lambda
multiplied into one Wishart; ``docs/derivations/bayesian_families.md``):

    beta_k = beta0 + N_k,  m_k = (beta0 m0 + sum_n r_nk x_n) / beta_k
    nu     = nu0 + N                                      (N = sum_k N_k, exact conjugacy)
    W^-1   = W0^-1 + sum_n x_n x_n^T + K beta0 m0 m0^T - sum_k beta_k m_k m_k^T
    ln rho_nk = E[ln pi_k] + E[ln|Lambda|]/2 - (D/2) ln 2 pi - D/(2 beta_k)
                - nu (x_n - m_k)^T W (x_n - m_k) / 2

scikit-learn's tied ``BayesianGaussianMixture`` instead sets nu = nu0 + N / K (it averages
the per-component degrees of freedom of its full-covariance update): not the conjugate
update of this model.  The sum_n x x^T term does not depend on r, and -nu x^T W x / 2 is
the same for every k: the E-step is one GEMM on phi(x) = [1, x] (p = 1 + D), and the
common term adds -nu tr(W sum_n x x^T) / 2 to sum_n logsumexp_k ln rho_nk, computed once.

The bound, every constant (E[ln|Lambda|] = sum_i psi((nu - i)/2) + D ln 2 + ln|W|):

    L = sum_n w_n logsumexp_k ln rho_nk + (E[ln p(pi)] - E[ln q(pi)])
        + ln B(W0, nu0) - ln B(W, nu) + (nu0 - nu) E[ln|Lambda|] / 2
        - nu tr(W0^-1 W) / 2 + nu D / 2
        + sum_k [ (D/2) ln(beta0 / beta_k) - D beta0 / (2 beta_k) + D / 2
                  - beta0 nu (m_k - m0)^T W (m_k - m0) / 2 ].
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from scipy import linalg
from scipy.special import digamma, gammaln, logsumexp

from gmmkit.inference._blocks import (
    QuadraticFeatures,
    block_size,
    data_softmax_statistics,
    in_memory_pass,
    resolve_threads,
)
from gmmkit.inference.loop import RestartFailed, coordinate_ascent, fit_from_run, initial_means
from gmmkit.inference.vb_diag import (
    hard_block_statistics,
    weight_component_log_q,
    weights_q_from_beta,
)
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.gaussian import LOG_2PI, batched_log_likelihood, mahalanobis_sq
from gmmkit.models.normal_wishart import log_wishart_normaliser
from gmmkit.models.tied_wishart import tied_wishart_logpdf
from gmmkit.models.weights import WeightPrior, WeightsQ
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = ["Posterior", "TiedPosterior", "TiedVBState", "chunk_statistics",
           "e_step_coefficients", "elbo", "elbo_at", "fit_vb_tied", "hard_statistics",
           "init_state", "m_step", "problem_from_moments", "state_from_pass", "step"]


# ----------------------------------------------------------------------------- setup
class _Problem(NamedTuple):
    phi: np.ndarray | None  # (1 + D, N): [1, x] with x centred (None when streamed)
    centre: np.ndarray  # (D,)
    scatter: np.ndarray  # (D, D) sum_n w_n x_n x_n^T (centred)
    n_total: float  # sum_n w_n
    weights: WeightPrior
    beta0: float
    m0: np.ndarray  # (D,) centred
    W0_inv: np.ndarray  # (D, D)
    log_det_W0: float
    nu0: float
    w: np.ndarray | None
    n_threads: int = 1  # threads of an in-memory pass (gmmkit.inference._blocks)

    @property
    def layout(self) -> None:
        """What :func:`chunk_statistics` needs to form a chunk's features [1, x]: nothing."""
        return None

    @property
    def n_features(self) -> int:
        return 1 + self.m0.shape[0]


def _problem(model: BayesianGMM, X: np.ndarray, w: np.ndarray | None = None,
             n_threads: int = 1) -> _Problem:
    centre = X.mean(axis=0) if w is None else (w @ X) / w.sum()
    n, d = X.shape
    phi = np.empty((1 + d, n))
    phi[0] = 1.0
    phi[1:] = (X - centre).T
    xc_t = phi[1:]
    scatter = xc_t @ xc_t.T if w is None else (xc_t * w) @ xc_t.T
    return _problem_from(model, centre, scatter, float(n if w is None else w.sum()), phi,
                         w)._replace(n_threads=n_threads)


def problem_from_moments(model: BayesianGMM, centre: np.ndarray, scatter: np.ndarray,
                         total_weight: float) -> _Problem:
    """The data-free problem of the chunked driver (:mod:`gmmkit.inference.chunked`) from
    the streamed moments: the (weighted) mean ``centre`` (D,), the scatter about it
    sum_n w_n (x_n - centre)(x_n - centre)^T (D, D) and the total weight sum_n w_n, which
    the shared precision's update (W^-1, nu) and the common term of the bound need."""
    return _problem_from(model, np.asarray(centre, dtype=float),
                         np.asarray(scatter, dtype=float), float(total_weight), None, None)


def _problem_from(model: BayesianGMM, centre: np.ndarray, scatter: np.ndarray,
                  n_total: float, phi: np.ndarray | None, w: np.ndarray | None) -> _Problem:
    d = centre.shape[0]
    w0_chol = np.linalg.cholesky(model.W0)
    w0_inv_chol = linalg.solve_triangular(w0_chol, np.eye(d), lower=True)
    return _Problem(
        phi=phi, centre=centre, scatter=0.5 * (scatter + scatter.T),
        n_total=n_total, weights=model.weight_distribution,
        beta0=float(model.beta0), m0=np.asarray(model.m0, dtype=float) - centre,
        W0_inv=w0_inv_chol.T @ w0_inv_chol,
        log_det_W0=float(2.0 * np.log(np.diag(w0_chol)).sum()), nu0=float(model.nu0), w=w,
    )


def _feature_source(prob: _Problem):
    """``features(start, stop)``: the kept [1, x] of those points."""
    phi = prob.phi
    return lambda start, stop: phi[:, start:stop]


def _pass(prob: _Problem, coef: np.ndarray, out: np.ndarray | None = None
          ) -> tuple[np.ndarray, float]:
    """:func:`~gmmkit.inference._blocks.in_memory_pass` over the kept [1, x]."""
    return in_memory_pass(coef, prob.w, out, prob.n_threads, prob.phi, prob.phi[1:],
                          _linear_features(prob.phi.shape[0] - 1))


# ----------------------------------------------------------------------------- state
class TiedVBState(NamedTuple):
    q_weights: WeightsQ
    beta: np.ndarray  # (K,)
    m: np.ndarray  # (K, D), centred
    W_inv_chol: np.ndarray  # (D, D) lower Cholesky factor of W^-1
    nu: float
    stats: np.ndarray  # (K, 1 + D): N_k, sum r x
    lse_sum: float  # sum_n w_n logsumexp_k ln rho_nk, the common term included


class _Expectations(NamedTuple):
    W: np.ndarray  # (D, D)
    log_det_W: float
    e_log_det: float  # E[ln|Lambda|]  (10.65)


def _expectations(W_inv_chol: np.ndarray, nu: float) -> _Expectations:
    d = W_inv_chol.shape[0]
    inv_chol = linalg.solve_triangular(W_inv_chol, np.eye(d), lower=True)
    W = inv_chol.T @ inv_chol
    log_det_W = float(-2.0 * np.log(np.diag(W_inv_chol)).sum())
    e_log_det = float(digamma(0.5 * (nu - np.arange(d))).sum() + d * np.log(2.0) + log_det_W)
    return _Expectations(W, log_det_W, e_log_det)


def _log_rho_coefficients(q_weights: WeightsQ, beta, m, nu, ex: _Expectations) -> np.ndarray:
    """C (1 + D, K): ln rho_nk = [1, x_n] . C[:, k] - nu x_n^T W x_n / 2."""
    d = m.shape[1]
    Am = nu * m @ ex.W  # (K, D): nu W m_k
    const = (q_weights.expected_log_weights + 0.5 * ex.e_log_det - 0.5 * d * LOG_2PI
             - 0.5 * d / beta - 0.5 * np.einsum("kd,kd->k", Am, m))
    return np.ascontiguousarray(np.concatenate([const[:, None], Am], axis=1).T)


def _m_step(prob: _Problem, stats: np.ndarray):
    k = stats.shape[0]
    n_k, s1 = stats[:, 0], stats[:, 1:]
    q_weights = prob.weights.posterior(n_k)
    beta = prob.beta0 + n_k
    m = (prob.beta0 * prob.m0 + s1) / beta[:, None]
    W_inv = (prob.W0_inv + prob.scatter + k * prob.beta0 * np.outer(prob.m0, prob.m0)
             - np.einsum("k,ka,kb->ab", beta, m, m))
    try:
        W_inv_chol = np.linalg.cholesky(0.5 * (W_inv + W_inv.T))
    except np.linalg.LinAlgError:
        raise RestartFailed("W^-1 lost positive definiteness to rounding; rescale the data "
                            "or use a smaller W0") from None
    nu = prob.nu0 + prob.n_total  # exact conjugate update (not scikit-learn's nu0 + N/K)
    return q_weights, beta, m, W_inv_chol, nu


def m_step(prob: _Problem, stats: np.ndarray):
    """``(q(pi), beta, m, W_inv_chol, nu)`` from r's statistics (K, 1 + D) and the
    problem's scatter and total weight; :class:`RestartFailed` when W^-1 is not positive
    definite."""
    return _m_step(prob, stats)


def e_step_coefficients(prob: _Problem, q_weights: WeightsQ, beta, m, W_inv_chol, nu
                        ) -> np.ndarray:
    """C (1 + D, K): ln rho_nk = [1, x_n] . C[:, k] - nu x_n^T W x_n / 2 at these
    parameters (the common last term is added by :func:`state_from_pass`)."""
    return _log_rho_coefficients(q_weights, beta, m, nu, _expectations(W_inv_chol, nu))


def _chunk_features(X_t: np.ndarray, n_components: int):
    """``features(start, stop)``: [1, x] of the points (columns) start..stop of ``X_t``,
    into one reused buffer."""
    p = 1 + X_t.shape[0]
    buffer = np.empty((p, min(block_size(n_components, p), X_t.shape[1])))
    buffer[0] = 1.0

    def features(start: int, stop: int) -> np.ndarray:
        out = buffer[:, : stop - start]
        out[1:] = X_t[:, start:stop]
        return out

    return features


@functools.cache
def _linear_features(d: int) -> QuadraticFeatures:
    """[1, x]: no quadratic features (x^T W x is shared by every k, added once)."""
    return QuadraticFeatures.from_groups(d, [])


def chunk_statistics(X_t: np.ndarray, w: np.ndarray | None, coef: np.ndarray, layout: None
                     ) -> tuple[np.ndarray, float]:
    """The E-step fused with the statistics of r over one chunk of centred points ``X_t``
    (D, n): ``(stats (K, 1 + D), sum_n w_n logsumexp_k [1, x_n] . C[:, k])`` by the same
    compiled pass as the in-memory fit (which reads its kept [1, x] instead; here [1, x] is
    formed tile by tile from the chunk).  The term common to every k is left to
    :func:`state_from_pass`, which adds it for all the points at once."""
    return data_softmax_statistics(X_t, _linear_features(X_t.shape[0]), coef, w)


def hard_statistics(X_t: np.ndarray, w: np.ndarray | None, centres: np.ndarray,
                    layout: None, n_features: int) -> np.ndarray:
    """(K, 1 + D) statistics of the nearest-of-``centres`` (K, D) assignment of one chunk
    of centred points ``X_t`` (D, n)."""
    features = _chunk_features(X_t, centres.shape[0])
    return hard_block_statistics(X_t, features, centres, w, n_features)


def _with_common_term(prob: _Problem, ex: _Expectations, nu: float, lse_sum: float) -> float:
    # The term -nu x^T W x / 2 shared by every k, summed over points at once.
    return lse_sum - 0.5 * nu * float(np.einsum("ab,ba->", ex.W, prob.scatter))


def state_from_pass(prob: _Problem, params: tuple, stats: np.ndarray, lse_sum: float
                    ) -> TiedVBState:
    """The state of ``params`` from the summed results of :func:`chunk_statistics`: adds
    the common term -nu tr(W sum_n w_n x_n x_n^T) / 2 to ``lse_sum``."""
    q_weights, beta, m, W_inv_chol, nu = params
    lse_sum = _with_common_term(prob, _expectations(W_inv_chol, nu), nu, lse_sum)
    return TiedVBState(q_weights, beta, m, W_inv_chol, nu, stats, lse_sum)


def _state(prob: _Problem, q_weights, beta, m, W_inv_chol, nu) -> TiedVBState:
    ex = _expectations(W_inv_chol, nu)
    coef = _log_rho_coefficients(q_weights, beta, m, nu, ex)
    stats, lse_sum = _pass(prob, coef)
    lse_sum = _with_common_term(prob, ex, nu, lse_sum)
    return TiedVBState(q_weights, beta, m, W_inv_chol, nu, stats, lse_sum)


def init_state(prob: _Problem, n_components: int, init: str, rng: np.random.Generator
               ) -> TiedVBState:
    """Nearest of K seeds (kmeans++ or random), the M-step of that hard assignment, then
    the E-step."""
    phi = prob.phi
    X_t = phi[1:]
    # The (N, D) view of the kept (D, N) rows, not a copy: seeding reads the points a few
    # times, and a copy would be the fit's largest allocation.
    centres = initial_means(X_t.T, n_components, init, rng, prob.w)
    stats = hard_block_statistics(X_t, _feature_source(prob), centres, prob.w, phi.shape[0])
    return _state(prob, *_m_step(prob, stats))


def step(prob: _Problem, state: TiedVBState) -> TiedVBState:
    """One VB sweep: M-step from r's statistics, then the E-step."""
    return _state(prob, *_m_step(prob, state.stats))


# ----------------------------------------------------------------------------- bound
def _parameter_terms(prob: _Problem, state: TiedVBState, ex: _Expectations) -> float:
    beta, m, nu = state.beta, state.m, state.nu
    d = m.shape[1]
    beta0, nu0 = prob.beta0, prob.nu0
    diff = m - prob.m0
    maha = np.einsum("ka,ab,kb->k", diff, ex.W, diff)
    wishart = (log_wishart_normaliser(prob.log_det_W0, nu0, d)
               - log_wishart_normaliser(ex.log_det_W, nu, d)
               + 0.5 * (nu0 - nu) * ex.e_log_det
               - 0.5 * nu * float(np.einsum("ab,ba->", prob.W0_inv, ex.W)) + 0.5 * nu * d)
    normals = np.sum(0.5 * d * np.log(beta0 / beta) - 0.5 * d * beta0 / beta + 0.5 * d
                     - 0.5 * beta0 * nu * maha)
    return float(state.q_weights.bound_terms() + wishart + normals)


def elbo(prob: _Problem, state: TiedVBState) -> float:
    """The full bound in nats (module docstring), exact for the state."""
    return state.lse_sum + _parameter_terms(prob, state, _expectations(state.W_inv_chol,
                                                                        state.nu))


def elbo_at(model: BayesianGMM, X: Any, params: Mapping[str, np.ndarray]) -> float:
    """The bound at given variational parameters, with q(z) at its optimum.

    ``params``: ``beta`` (K,), ``m`` (K, D), ``W`` (D, D), ``nu`` (scalar); q(pi) is the
    weight prior's factor at N_k = beta_k - beta0.  Data-dependent priors are resolved
    against ``X``.
    """
    X = model.check_data(X, min_points=2)
    model = model.resolve(X)
    prob = _problem(model, X)
    beta = np.asarray(params["beta"], dtype=float)
    W = np.asarray(params["W"], dtype=float)
    W_inv = np.linalg.inv(W)
    state = _state(prob, weights_q_from_beta(prob.weights, beta, prob.beta0), beta,
                   np.asarray(params["m"], dtype=float) - prob.centre,
                   np.linalg.cholesky(0.5 * (W_inv + W_inv.T)), float(params["nu"]))
    return elbo(prob, state)


# ----------------------------------------------------------------------------- posterior
class TiedPosterior:
    """q(pi) q(Lambda) prod_k q(mu_k | Lambda) of the tied VB (implements
    ``gmmkit.posterior.Posterior``)."""

    kind = PosteriorKind.CLOSED_FORM_Q
    #: Parameters without a component axis.
    shared_params = ("W", "nu", "covariance")

    def __init__(self, model: BayesianGMM, centre, q_weights: WeightsQ, beta, m, W_inv_chol,
                 nu) -> None:
        self.model = model
        self.n_components = model.n_components
        self._family = model.covariance_prior
        self._centre = np.array(centre, dtype=float)
        self.q_weights = q_weights
        self.beta = np.array(beta, dtype=float)
        self._m_centred = np.array(m, dtype=float)
        self._W_inv_chol = np.array(W_inv_chol, dtype=float)
        self.nu = float(nu)
        self._ex = _expectations(self._W_inv_chol, self.nu)
        self._d = self._m_centred.shape[1]

    @property
    def m(self) -> np.ndarray:
        return self._m_centred + self._centre

    @property
    def W(self) -> np.ndarray:
        return self._ex.W.copy()

    def params(self) -> dict[str, np.ndarray]:
        return {**self.q_weights.params(), "beta": self.beta.copy(), "m": self.m,
                "W": self.W, "nu": np.float64(self.nu)}

    def point_estimates(self) -> dict[str, np.ndarray]:
        """E[pi]; m_k; the covariance E[Lambda]^-1 = (nu W)^-1 (scikit-learn's
        ``covariances_``), shared: (D, D) ``covariance`` and (K, D, D) ``covariances``."""
        covariance = self._W_inv_chol @ self._W_inv_chol.T / self.nu
        return {"weights": self.q_weights.mean_weights.copy(), "means": self.m,
                "covariances": self._family.matrices(covariance, self.n_components),
                "covariance": covariance}

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        xc = np.asarray(x, dtype=float) - self._centre
        coef = _log_rho_coefficients(self.q_weights, self.beta, self._m_centred, self.nu,
                                     self._ex)
        log_rho = coef[0] + xc @ coef[1:]  # the common -nu x^T W x / 2 cancels
        return log_rho - logsumexp(log_rho, axis=1, keepdims=True)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        """log p(x | X) = ln sum_k E[pi_k] St(x | m_k, L_k, nu + 1 - D), with
        L_k = (nu + 1 - D) beta_k / (1 + beta_k) W (PRML 10.81-10.82 with the shared
        q(Lambda)), shape (N,)."""
        xc = np.asarray(x, dtype=float) - self._centre
        d = self._d
        dof = self.nu + 1.0 - d
        scale = dof * self.beta / (1.0 + self.beta)  # (K,)
        inv_chol = linalg.solve_triangular(self._W_inv_chol, np.eye(d), lower=True)
        prec_chol = np.sqrt(scale)[:, None, None] * inv_chol.T[None]  # upper, P P^T = L_k
        maha = mahalanobis_sq(xc, self._m_centred, prec_chol)  # (N, K)
        log_det_L = d * np.log(scale) + self._ex.log_det_W
        log_t = (gammaln(0.5 * (dof + d)) - gammaln(0.5 * dof) + 0.5 * log_det_L
                 - 0.5 * d * np.log(dof * np.pi) - 0.5 * (dof + d) * np.log1p(maha / dof))
        return logsumexp(np.log(self.q_weights.mean_weights) + log_t, axis=1)

    def _draw_flat(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """pi ~ q(pi); Lambda ~ Wishart(W, nu) by Bartlett, one per draw; mu_k | Lambda ~
        N(m_k, (beta_k Lambda)^-1)."""
        k, d = self.n_components, self._d
        log_weights = self.q_weights.draw_log_weights(n_draws, rng)
        chol_W = np.linalg.cholesky(self._ex.W)
        a = np.zeros((n_draws, d, d))
        diag = np.sqrt(rng.chisquare(np.broadcast_to(self.nu - np.arange(d), (n_draws, d))))
        a[:, np.arange(d), np.arange(d)] = diag
        rows, cols = np.tril_indices(d, -1)
        a[:, rows, cols] = rng.standard_normal((n_draws, rows.size))
        F = chol_W[None] @ a  # Lambda = F F^T (Bartlett 1933)
        z = rng.standard_normal((n_draws, d, k))
        offset = np.swapaxes(np.linalg.solve(np.swapaxes(F, 1, 2), z), 1, 2)  # F^-T z
        means = self.m[None] + offset / np.sqrt(self.beta)[None, :, None]
        F_inv = np.linalg.solve(F, np.broadcast_to(np.eye(d), F.shape))
        covariance = np.swapaxes(F_inv, 1, 2) @ F_inv
        return {"weights": np.exp(log_weights), "log_weights": log_weights, "means": means,
                "covariances": self._family.matrices(covariance, k), "covariance": covariance}

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draws = self._draw_flat(n_draws, rng)
        return {name: draws[name][None]
                for name in ("weights", "means", "covariances", "covariance")}

    def component_log_q(self, draws: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Draw s's component j under q's factor k, (S, K, K): N(mu_j | m_k, (beta_k
        Lambda)^-1) and the weight part; q(Lambda) is label-invariant and left out."""
        k, d = self.n_components, self._d
        log_weights = np.log(np.maximum(np.asarray(draws["weights"]).reshape(-1, k), 1e-300))
        weight_part = weight_component_log_q(self.q_weights, log_weights)
        if weight_part is None:
            return None
        means = np.asarray(draws["means"]).reshape(-1, k, d)
        covariance = np.asarray(draws["covariance"]).reshape(-1, d, d)
        chol = np.linalg.cholesky(covariance)  # Sigma = L L^T
        inv_chol = np.linalg.solve(chol, np.broadcast_to(np.eye(d), chol.shape))
        diff = means[:, :, None, :] - self.m[None, None]  # (S, J, K, D)
        y = np.einsum("sab,sjkb->sjka", inv_chol, diff)
        log_det_lambda = -2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        log_normal = (0.5 * d * (np.log(self.beta) - LOG_2PI)[None, None]
                      + 0.5 * log_det_lambda[:, None, None]
                      - 0.5 * self.beta[None, None] * np.einsum("sjka,sjka->sjk", y, y))
        return log_normal + weight_part

    def log_importance_weights(self, x: np.ndarray, n_draws: int, rng: np.random.Generator
                               ) -> np.ndarray:
        """ln p(x, theta_s) - ln q(theta_s) for theta_s ~ q, shape (n_draws,)."""
        draws = self._draw_flat(n_draws, rng)
        log_p = self.model.log_prior(draws) + batched_log_likelihood(
            x, draws["weights"], draws["means"], draws["covariances"]).sum(axis=-1)
        log_q = (self.q_weights.log_density(draws["log_weights"])
                 + tied_wishart_logpdf(draws["means"], draws["covariance"], self.m,
                                       self.beta, self._ex.W, self.nu))
        return log_p - log_q


#: The posterior class under the name the chunked driver uses for every family.
Posterior = TiedPosterior


# ----------------------------------------------------------------------------- fit
def fit_vb_tied(
    model: BayesianGMM, X: np.ndarray, *, seed: int, n_init: int, init: str, tol: float,
    max_iter: int, progress: bool, method: str, sample_weight: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Fit:
    """VB for ``covariance="tied"`` through the shared loop; ``X`` and ``sample_weight``
    are validated.  ``Fit.model`` is resolved.  Passes run on ``n_threads`` threads
    (None: as many as the BLAS may use); the result does not depend on it."""
    from threadpoolctl import threadpool_limits

    n_threads = resolve_threads(n_threads)
    model = model.resolve(X, sample_weight=sample_weight)
    prob = _problem(model, X, sample_weight, n_threads)
    rng = np.random.default_rng(seed)
    with threadpool_limits(limits=1, user_api="blas"):
        run = coordinate_ascent(
            init=partial(init_state, prob, model.n_components, init),
            step=partial(step, prob), objective=partial(elbo, prob),
            rng=rng, n_init=n_init, tol=tol, max_iter=max_iter, progress=progress,
            label="VB",
        )
        state = run.state
        ex = _expectations(state.W_inv_chol, state.nu)
        coef = _log_rho_coefficients(state.q_weights, state.beta, state.m, state.nu, ex)
        responsibilities = np.empty((X.shape[0], model.n_components))
        _pass(prob, coef, out=responsibilities)
    posterior = TiedPosterior(model, prob.centre, state.q_weights, state.beta, state.m,
                              state.W_inv_chol, state.nu)
    del prob  # frees the features before Fit copies the responsibilities
    return fit_from_run(run, method=method, model=model, data=X, posterior=posterior,
                        responsibilities=responsibilities, seed=seed,
                        sample_weight=sample_weight)
