"""The tied Bayesian family, ``covariance="tied"``: one precision shared by every component.

    Lambda                ~ Wishart(W0, nu0)                 (Bishop B.78; E[Lambda] = nu0 W0)
    mu_k | Lambda         ~ N(m0, (beta0 Lambda)^-1)         independently, k = 1..K
    x_n | z_n = k         ~ N(mu_k, Lambda^-1)

Marginal likelihood given the assignments (derivation in
``docs/derivations/bayesian_families.md``).  Integrating each mu_k out leaves

    (2 pi)^(-n_k D/2) |Lambda|^(n_k/2) (beta0 / beta_k)^(D/2) exp(-tr(Lambda M_k) / 2),
    M_k = S_k + (beta0 n_k / beta_k) (xbar_k - m0)(xbar_k - m0)^T,  beta_k = beta0 + n_k,

with S_k the within-cluster scatter (M_k = 0 and a factor 1 for an empty cluster).  The
product over k is one Wishart kernel in Lambda, so p(X | z) is NOT a product over clusters:

    ln p(X | z) = -(N D / 2) ln pi + ln Gamma_D(nu_N / 2) - ln Gamma_D(nu0 / 2)
                  + (nu_N / 2) ln|W_N| - (nu0 / 2) ln|W0| + (D / 2) sum_k ln(beta0 / beta_k),
    nu_N = nu0 + N,   W_N^-1 = W0^-1 + sum_k M_k.

As for the full family, ln|W_N^-1| is taken by the determinant lemma from I + L0^T M L0
(W0 = L0 L0^T), which stays accurate when W0^-1 is far below the data's scatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import multigammaln

from gmmkit.models.normal_wishart import (
    WishartScale,
    deviations_and_counts,
    log_wishart_normaliser,
    wishart_draws,
)

__all__ = ["TIED", "TiedWishartFamily", "tied_wishart_logpdf"]

_LOG_PI = np.log(np.pi)
_LOG_2PI = np.log(2.0 * np.pi)


def tied_wishart_logpdf(means: Any, covariance: Any, m: Any, beta: Any, W: Any, nu: Any
                        ) -> np.ndarray:
    """ln Wishart(Lambda | W, nu) + sum_k ln N(mu_k | m_k, (beta_k Lambda)^-1), shape (...).

    ``means`` (..., K, D), ``covariance`` Lambda^-1 (..., D, D); ``m`` (K, D) or (D,),
    ``beta`` (K,) or scalar, ``W`` (D, D), ``nu`` scalar: the prior (m0, beta0, W0, nu0)
    or the variational q(mu, Lambda) (m_k, beta_k, W, nu).
    """
    means = np.asarray(means, dtype=float)
    covariance = np.asarray(covariance, dtype=float)
    W = np.asarray(W, dtype=float)
    k, d = means.shape[-2:]
    beta = np.broadcast_to(np.asarray(beta, dtype=float), (k,))
    chol = np.linalg.cholesky(covariance)  # Sigma = L L^T, Lambda = L^-T L^-1
    log_det_lambda = -2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    inv_chol = np.linalg.solve(chol, np.broadcast_to(np.eye(d), chol.shape))
    precision = np.swapaxes(inv_chol, -1, -2) @ inv_chol
    w_chol = np.linalg.cholesky(W)
    log_det_w = 2.0 * np.log(np.diag(w_chol)).sum()
    w_inv = np.linalg.inv(W)
    trace = np.einsum("ab,...ba->...", w_inv, precision)
    log_wishart = (log_wishart_normaliser(log_det_w, nu, d)
                   + 0.5 * (nu - d - 1.0) * log_det_lambda - 0.5 * trace)  # B.78
    y = np.einsum("...ab,...kb->...ka", inv_chol, means - np.asarray(m, dtype=float))
    maha = np.einsum("...ka,...ka->...k", y, y)  # (mu_k - m_k)^T Lambda (mu_k - m_k)
    log_normal = np.sum(0.5 * d * (np.log(beta) - _LOG_2PI) - 0.5 * beta * maha, axis=-1)
    return log_wishart + 0.5 * k * log_det_lambda + log_normal


@dataclass(frozen=True)
class TiedWishartFamily(WishartScale):
    """``covariance="tied"`` (module docstring): W0 (D, D), nu0 > D - 1."""

    name: str = "tied"
    native_name: str = "covariance"
    shared: bool = True
    native_dims: tuple[str, ...] = ("feature", "feature_bis")

    def native(self, covariances: np.ndarray) -> np.ndarray:
        """The shared covariance (..., D, D) of (..., K, D, D) identical matrices."""
        covariances = np.asarray(covariances, dtype=float)
        first = covariances[..., 0, :, :]
        if np.any(covariances != first[..., None, :, :]):
            raise ValueError("covariances must be the same matrix for every component for "
                             "covariance='tied', got different matrices")
        return first.copy()

    def matrices(self, native: np.ndarray, n_components: int, d: int | None = None
                 ) -> np.ndarray:
        native = np.asarray(native, dtype=float)
        return np.repeat(native[..., None, :, :], n_components, axis=-3)

    def n_covariance_parameters(self, n_components: int, d: int) -> int:
        return d * (d + 1) // 2

    def log_density(self, means, native, m, beta, W, nu) -> np.ndarray:
        """ln p(mu, Lambda), shape (...), for ``means`` (..., K, D) and the shared
        covariance ``native`` (..., D, D)."""
        return tied_wishart_logpdf(means, native, m, beta, W, nu)

    def log_marginal(self, onehot: np.ndarray, X: np.ndarray, m0, beta0, W0, nu0
                     ) -> np.ndarray:
        """ln p(X | z) (module docstring) for blocks ``onehot`` (B, N, K) of centred X."""
        n, d = X.shape
        counts, _, xbar, dev = deviations_and_counts(onehot, X)
        beta_k = beta0 + counts  # (B, K)
        diff = xbar - m0
        data_term = (np.einsum("bnkd,bnke->bde", dev, dev)
                     + np.einsum("bk,bkd,bke->bde", beta0 * counts / beta_k, diff, diff))
        w0_chol = np.linalg.cholesky(W0)
        logdet_w0 = 2.0 * np.log(np.diag(w0_chol)).sum()
        inner = np.eye(d) + w0_chol.T @ data_term @ w0_chol
        logdet_inner = np.linalg.slogdet(0.5 * (inner + np.swapaxes(inner, -1, -2)))[1]
        nu_n = nu0 + n
        # (nu_N/2) ln|W_N| - (nu0/2) ln|W0| = (N/2) ln|W0| - (nu_N/2) ln|I + L0^T M L0|.
        return (-0.5 * n * d * _LOG_PI + multigammaln(0.5 * nu_n, d)
                - multigammaln(0.5 * nu0, d) + 0.5 * n * logdet_w0 - 0.5 * nu_n * logdet_inner
                + 0.5 * d * np.log(beta0 / beta_k).sum(axis=1))

    def sample(self, rng: np.random.Generator, n_components: int, m0, beta0, W0, nu0):
        """Means (K, D) and the shared covariance as (K, D, D) matrices from the prior."""
        d = m0.shape[0]
        precision = wishart_draws(rng, nu0, W0, 1)[0]
        chol = np.linalg.cholesky(precision)  # Lambda = C C^T
        # mu_k = m0 + C^-T z / sqrt(beta0): covariance (beta0 C C^T)^-1.
        z = rng.standard_normal((d, n_components))
        means = m0 + (np.linalg.solve(chol.T, z) / np.sqrt(beta0)).T
        covariance = np.linalg.inv(precision)
        covariance = 0.5 * (covariance + covariance.T)
        return means, self.matrices(covariance, n_components)


TIED = TiedWishartFamily()
