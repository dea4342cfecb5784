"""The Normal-Wishart prior of one full-covariance component (Bishop PRML 10.40), its
density, its closed-form marginal likelihood, and the full-covariance family object.

    Lambda_k          ~ Wishart(W0, nu0)                                  (PRML 10.40)
    mu_k | Lambda_k   ~ N(m0, (beta0 Lambda_k)^-1)                        (PRML 10.40)

The Wishart is parametrised as in Bishop (B.78): E[Lambda] = nu W.  The helpers for the
data-dependent defaults (weighted mean, weighted sample covariance with its ridge) live
here too, because the tied family shares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg
from scipy.special import multigammaln

from gmmkit._validation import check_finite_array

__all__ = [
    "DEFAULT_RIDGE",
    "FULL",
    "FullNormalWishart",
    "check_scale_matrix",
    "default_W0",
    "log_wishart_normaliser",
    "normal_wishart_log_marginal",
    "normal_wishart_logpdf",
    "weighted_mean",
]

_LOG_PI = np.log(np.pi)


#: Relative ridge added to the data covariance for the default W0
#: (see :mod:`gmmkit.models.bayesian`).
DEFAULT_RIDGE = 1e-6


def weighted_mean(X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """The mean of X (N, D), each row counted ``sample_weight`` times (frequency weights)."""
    if sample_weight is None:
        return X.mean(axis=0)
    return (sample_weight @ X) / sample_weight.sum()


def default_W0(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """W0 = (S + eps I)^-1 with S the sample covariance (ddof = 1) of X (N, D) and
    eps = DEFAULT_RIDGE * tr(S) / D, always added (:mod:`gmmkit.models.bayesian`).  With frequency
    weights w, S = sum_n w_n (x_n - xbar)(x_n - xbar)^T / (sum_n w_n - 1), that of the
    rows repeated.

    The ridge is always there, not only when S is singular, so that nearly singular S
    (collinear columns, N <= D) gets a W0 with condition number at most ~D / 1e-6
    instead of one whose Cholesky factor is dominated by rounding, and so the default is
    a continuous function of the data.  Returns shape (D, D).
    """
    if sample_weight is None:
        cov = np.atleast_2d(np.cov(X, rowvar=False))
    else:
        diff = X - weighted_mean(X, sample_weight)
        cov = (sample_weight * diff.T) @ diff / (sample_weight.sum() - 1.0)
    return default_W0_from_covariance(cov, X.shape[0])


def default_W0_from_covariance(cov: np.ndarray, n_points: int) -> np.ndarray:
    """:func:`default_W0` from the sample covariance S (D, D) of ``n_points`` rows (for
    data streamed in chunks, whose moments come from one pass)."""
    d = cov.shape[0]
    trace = float(np.trace(cov))
    if not trace > 0:
        raise ValueError(
            f"X must not be {n_points} copies of one point for the default W0: its "
            "sample covariance is zero, so W0 = S^-1 does not exist; pass W0 explicitly"
        )
    cov = cov + (DEFAULT_RIDGE * trace / d) * np.eye(d)
    chol = np.linalg.cholesky(cov)
    inv_chol = linalg.solve_triangular(chol, np.eye(d), lower=True)
    W0 = inv_chol.T @ inv_chol
    W0 = 0.5 * (W0 + W0.T)
    if not np.all(np.isfinite(W0)):
        raise ValueError(
            f"X has a spread too small for the default W0 = S^-1 (tr(S) = {trace:.3g}); "
            "pass W0 explicitly or rescale the data"
        )
    return W0




def check_scale_matrix(W0: Any) -> np.ndarray:
    W0 = check_finite_array("W0", W0)
    if W0.ndim == 0:
        W0 = W0.reshape(1, 1)
    if W0.ndim != 2 or W0.shape[0] != W0.shape[1]:
        raise ValueError(f"W0 must be a square (D, D) matrix, got an array of shape {W0.shape}")
    if not np.allclose(W0, W0.T, rtol=1e-10, atol=0.0):
        raise ValueError("W0 must be symmetric positive definite, got a non-symmetric matrix")
    try:
        np.linalg.cholesky(W0)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(W0).min()
        raise ValueError(
            "W0 must be symmetric positive definite, got a matrix with smallest eigenvalue "
            f"{eig:.3g} (singular or indefinite)"
        ) from None
    return 0.5 * (W0 + W0.T)




def log_wishart_normaliser(log_det_W: Any, nu: Any, d: int) -> Any:
    """ln B(W, nu) of the Wishart density (Bishop B.79), from ln|W|."""
    return -0.5 * nu * log_det_W - 0.5 * nu * d * np.log(2.0) - multigammaln(0.5 * nu, d)


def normal_wishart_logpdf(means: Any, covariances: Any, m: Any, beta: Any, W: Any,
                          nu: Any) -> np.ndarray:
    """log N(mu | m, (beta Lambda)^-1) + log Wishart(Lambda | W, nu) with Lambda = Sigma^-1.

    The prior of one component (PRML 10.40) and Bishop's q(mu_k, Lambda_k) (10.59).  The
    point arguments ``means`` (..., D) and ``covariances`` (..., D, D) broadcast against
    the parameters ``m`` (..., D), ``beta`` (...), ``W`` (..., D, D) and ``nu`` (...),
    so one call evaluates every draw under every component.  Only Cholesky factors and
    their (D, D) triangular inverses are formed.
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    W = np.asarray(W, dtype=float)
    beta, nu = np.asarray(beta, dtype=float), np.asarray(nu, dtype=float)
    d = means.shape[-1]
    eye = np.eye(d)
    chol = np.linalg.cholesky(covariances)  # Sigma = L L^T, Lambda = L^-T L^-1
    log_det_lambda = -2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    inv_chol = np.linalg.solve(chol, np.broadcast_to(eye, chol.shape))
    precision = np.swapaxes(inv_chol, -1, -2) @ inv_chol
    w_chol = np.linalg.cholesky(W)
    log_det_w = 2.0 * np.log(np.diagonal(w_chol, axis1=-2, axis2=-1)).sum(-1)
    w_inv_chol = np.linalg.solve(w_chol, np.broadcast_to(eye, w_chol.shape))
    w_inv = np.swapaxes(w_inv_chol, -1, -2) @ w_inv_chol
    trace = np.einsum("...ab,...ba->...", w_inv, precision)
    diff = means - np.asarray(m, dtype=float)
    maha = np.einsum("...a,...ab,...b->...", diff, precision, diff)
    log_wishart = (log_wishart_normaliser(log_det_w, nu, d)
                   + 0.5 * (nu - d - 1.0) * log_det_lambda - 0.5 * trace)  # B.78
    log_normal = (0.5 * d * np.log(beta / (2 * np.pi)) + 0.5 * log_det_lambda
                  - 0.5 * beta * maha)
    return log_wishart + log_normal


def normal_wishart_log_marginal(
    counts: np.ndarray, s1: np.ndarray, s2: np.ndarray | None,
    beta0: float, m0: np.ndarray, W0: np.ndarray, nu0: float,
    *, scatter: np.ndarray | None = None,
) -> np.ndarray:
    """log p(X_k) for points sharing one Normal-Wishart(m0, beta0, W0, nu0) component.

    With n points, sum s1 = sum x and scatter s2 = sum x x^T (Murphy 2007, eq. 266, in
    Bishop's Wishart parametrisation):

        p(X_k) = pi^(-nD/2) Gamma_D(nu_n/2) / Gamma_D(nu0/2) |W_n|^(nu_n/2) / |W0|^(nu0/2)
                 (beta0 / beta_n)^(D/2),
        beta_n = beta0 + n, nu_n = nu0 + n, m_n = (beta0 m0 + s1) / beta_n,
        W_n^-1 = W0^-1 + s2 + beta0 m0 m0^T - beta_n m_n m_n^T.

    Shapes: ``counts`` (...,), ``s1`` (..., D), ``s2`` (..., D, D); returns (...).

    ``scatter`` (..., D, D), the within-cluster scatter sum (x - xbar)(x - xbar)^T, may
    be given instead of ``s2``; then the equivalent, cancellation-free form

        W_n^-1 = W0^-1 + scatter + (beta0 n / beta_n) (xbar - m0)(xbar - m0)^T

    is used (a sum of positive semi-definite terms), which stays accurate when W0^-1 is
    far below the data's scatter (a large W0) or the points are far from m0.
    """
    counts = np.asarray(counts, dtype=float)
    d = m0.shape[0]
    beta_n = beta0 + counts
    nu_n = nu0 + counts
    w0_chol = np.linalg.cholesky(W0)
    logdet_w0 = 2.0 * np.log(np.diag(w0_chol)).sum()
    # W_n^-1 = W0^-1 + M with M the data's (positive semi-definite) contribution.  By the
    # determinant lemma ln|W_n^-1| = -ln|W0| + ln|I + L0^T M L0| (W0 = L0 L0^T): the
    # second matrix is >= I, so its log-determinant is accurate even when W0^-1 is far
    # below the rounding level of M (a large W0, or n <= D points making M singular),
    # where forming W0^-1 + M would lose W0^-1 entirely.
    if scatter is not None:
        xbar = np.divide(s1, counts[..., None], out=np.zeros_like(s1, dtype=float),
                         where=counts[..., None] > 0)
        diff = xbar - m0
        data_term = scatter + ((beta0 * counts / beta_n)[..., None, None]
                               * np.einsum("...a,...b->...ab", diff, diff))
    else:
        m_n = (beta0 * m0 + s1) / beta_n[..., None]
        data_term = (s2 + beta0 * np.outer(m0, m0)
                     - beta_n[..., None, None] * np.einsum("...a,...b->...ab", m_n, m_n))
    inner = np.eye(d) + w0_chol.T @ data_term @ w0_chol
    # The identity must survive the addition for the lemma to help: eps * |inner| above
    # 1e-4 leaves fewer than four digits in a direction the data do not span.
    largest = float(np.max(np.abs(inner))) if inner.size else 0.0
    if not largest * np.finfo(float).eps <= 1e-4:
        raise ValueError(
            f"W0 is too large for the data: W0 times the data's scatter reaches "
            f"{largest:.3g}, beyond {1e-4 / np.finfo(float).eps:.2g}, where ln|W_n^-1| "
            "cannot be computed in float64; use a smaller W0 or rescale the data"
        )
    logdet_inner = np.linalg.slogdet(0.5 * (inner + np.swapaxes(inner, -1, -2)))[1]
    # -nu_n/2 ln|W_n^-1| - nu0/2 ln|W0| with ln|W_n^-1| = -ln|W0| + ln|inner|.
    return (
        -0.5 * counts * d * _LOG_PI
        + multigammaln(0.5 * nu_n, d) - multigammaln(0.5 * nu0, d)
        + 0.5 * counts * logdet_w0 - 0.5 * nu_n * logdet_inner
        + 0.5 * d * (np.log(beta0) - np.log(beta_n))
    )


# ----------------------------------------------------------------------------- family
def deviations_and_counts(onehot: np.ndarray, X: np.ndarray):
    """For blocks of assignments ``onehot`` (B, N, K) of centred data X (N, D): the counts
    n_k (B, K), the sums s1 (B, K, D), the means xbar (B, K, D) (0 for an empty cluster)
    and the deviations (x_n - xbar_k) masked to cluster members, (B, N, K, D)."""
    counts = onehot.sum(axis=1)  # (B, K)
    s1 = np.einsum("bnk,nd->bkd", onehot, X)
    xbar = np.divide(s1, counts[..., None], out=np.zeros_like(s1),
                     where=counts[..., None] > 0)
    dev = onehot[..., None] * (X[None, :, None, :] - xbar[:, None, :, :])
    return counts, s1, xbar, dev


def wishart_draws(rng: np.random.Generator, nu: float, W: np.ndarray, size: int) -> np.ndarray:
    """``size`` precision matrices from Wishart(W, nu), shape (size, D, D) (scipy's
    sampler, so a seed gives the stream the full family always drew)."""
    from scipy import stats

    d = W.shape[0]
    return np.atleast_3d(stats.wishart(df=nu, scale=W).rvs(size=size, random_state=rng)
                         ).reshape(size, d, d)


class WishartScale:
    """The W0 and nu0 rules of the families whose precision prior is a Wishart (full and
    tied): W0 (D, D) symmetric positive definite, nu0 > D - 1, the default W0 of
    :func:`default_W0`."""

    def check_scale(self, W0: Any) -> np.ndarray:
        return check_scale_matrix(W0)

    def scale_dim(self, W0: np.ndarray) -> int | None:
        return int(W0.shape[0])

    def min_dof(self, d: int) -> float:
        """nu0 must be > this (the Wishart needs nu0 > D - 1)."""
        return d - 1.0

    def default_scale(self, X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
        return default_W0(X, sample_weight)

    def default_scale_from_covariance(self, cov: np.ndarray, n_points: int) -> np.ndarray:
        return default_W0_from_covariance(cov, n_points)


@dataclass(frozen=True)
class FullNormalWishart(WishartScale):
    """``covariance="full"``: an independent Normal-Wishart(m0, beta0, W0, nu0) per
    component (PRML 10.40); W0 (D, D) symmetric positive definite, nu0 > D - 1."""

    name: str = "full"
    native_name: str = "covariances"
    #: One covariance shared by every component (no component axis)?
    shared: bool = False
    native_dims: tuple[str, ...] = ("component", "feature", "feature_bis")

    def native(self, covariances: np.ndarray) -> np.ndarray:
        return np.asarray(covariances, dtype=float)

    def matrices(self, native: np.ndarray, n_components: int, d: int | None = None
                 ) -> np.ndarray:
        return np.asarray(native, dtype=float)

    def n_covariance_parameters(self, n_components: int, d: int) -> int:
        return n_components * d * (d + 1) // 2

    def log_density(self, means, native, m, beta, W, nu) -> np.ndarray:
        """ln p(mu, Lambda) summed over components, shape (...): ``means`` (..., K, D),
        ``native`` covariances (..., K, D, D); the hyperparameters broadcast against the
        component axis (the prior's, or q's per-component ones)."""
        return np.sum(normal_wishart_logpdf(means, native, m, beta, W, nu), axis=-1)

    def log_marginal(self, onehot: np.ndarray, X: np.ndarray, m0, beta0, W0, nu0) -> np.ndarray:
        """ln p(X | z) for blocks of assignments ``onehot`` (B, N, K) of centred X."""
        counts, s1, _, dev = deviations_and_counts(onehot, X)
        # The within-cluster scatter from deviations, not sum x x^T - n xbar xbar^T:
        # positive semi-definite by construction, however far W0^-1 is below it.
        scatter = np.einsum("bnkd,bnke->bkde", dev, dev)
        return normal_wishart_log_marginal(
            counts, s1, None, beta0, m0, W0, nu0, scatter=scatter).sum(axis=1)

    def sample(self, rng: np.random.Generator, n_components: int, m0, beta0, W0, nu0):
        """Means (K, D) and covariances (K, D, D) from the prior."""
        precisions = wishart_draws(rng, nu0, W0, n_components)
        covariances = np.linalg.inv(precisions)
        means = np.stack([rng.multivariate_normal(m0, covariances[j] / beta0)
                          for j in range(n_components)])
        return means, covariances


FULL = FullNormalWishart()
