"""Gaussian kernels and constants, the one home for every Gaussian log density.

Linear algebra on Cholesky factors, vectorised over components, and the mixture kernels
built on it (weighted component log densities, batched over parameter draws).

Conventions follow scikit-learn's ``sklearn/mixture/_gaussian_mixture.py``: we keep the
*precision* Cholesky factor ``P_k`` (upper triangular, ``Lambda_k = P_k P_k^T``), so a
Mahalanobis distance is one batched matrix product, ``||(x - mu_k) P_k||^2``, and
``log|Lambda_k| = 2 sum log diag(P_k)``.  No explicit inverse is ever formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

__all__ = [
    "LOG_2PI",
    "batched_log_likelihood",
    "batched_weighted_log_prob",
    "log_det_from_cholesky",
    "log_gaussian_prob",
    "mahalanobis_sq",
    "normal_logpdf",
    "precision_cholesky",
    "precision_cholesky_from_precision",
    "weighted_log_prob",
]

#: log(2 pi), the constant of every Gaussian normaliser.
LOG_2PI = np.log(2 * np.pi)


def normal_logpdf(x: Any, mean: Any, var: Any) -> np.ndarray:
    """log N(x | mean, var) of a univariate normal, broadcasting its arguments."""
    return -0.5 * (LOG_2PI + np.log(var)) - 0.5 * (x - mean) ** 2 / var


class NotPositiveDefinite(np.linalg.LinAlgError):
    """A covariance (or precision) matrix of one component is not positive definite."""

    def __init__(self, component: int) -> None:
        super().__init__(f"the covariance of component {component} is not positive definite")
        self.component = component


def precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Upper-triangular P_k with P_k P_k^T = Sigma_k^{-1}, shape (K, D, D).

    Computed as inv(chol(Sigma_k))^T by a triangular solve, as in scikit-learn's
    ``_compute_precision_cholesky``.  Raises :class:`NotPositiveDefinite` naming the
    component when Sigma_k is not SPD.
    """
    covariances = np.asarray(covariances, dtype=float)
    n_components, d, _ = covariances.shape
    out = np.empty_like(covariances)
    eye = np.eye(d)
    for k in range(n_components):  # K small factorisations; data never loops
        try:
            chol = linalg.cholesky(covariances[k], lower=True)
        except linalg.LinAlgError:
            raise NotPositiveDefinite(k) from None
        out[k] = linalg.solve_triangular(chol, eye, lower=True).T
    return out


def precision_cholesky_from_precision(precisions: np.ndarray) -> np.ndarray:
    """Upper-triangular P_k with P_k P_k^T = Lambda_k, from precision matrices (K, D, D).

    Uses the "flipped" Cholesky: with J the exchange matrix, chol(J Lambda J) = L gives
    Lambda = (J L J)(J L J)^T where J L J is upper triangular.
    """
    precisions = np.asarray(precisions, dtype=float)
    flipped = precisions[:, ::-1, ::-1]
    try:
        chol = np.linalg.cholesky(flipped)
    except np.linalg.LinAlgError:
        for k in range(precisions.shape[0]):
            try:
                np.linalg.cholesky(flipped[k])
            except np.linalg.LinAlgError:
                raise NotPositiveDefinite(k) from None
        raise
    return chol[:, ::-1, ::-1]


def log_det_from_cholesky(prec_chol: np.ndarray) -> np.ndarray:
    """log|Lambda_k| = 2 sum_d log P_k[d, d], shape (K,)."""
    return 2.0 * np.sum(np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)


def mahalanobis_sq(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """(x_n - mu_k)^T Lambda_k (x_n - mu_k), shape (N, K), as ||x P_k - mu_k P_k||^2.

    One batched GEMM for all components: (K, N, D) = X @ P_k, minus the (K, D) rows
    mu_k P_k; no (N, K, D) difference array is built from X.
    """
    y = np.matmul(X[None, :, :], prec_chol)  # (K, N, D)
    y -= np.einsum("kd,kde->ke", means, prec_chol)[:, None, :]
    return np.einsum("knd,knd->nk", y, y)


def log_gaussian_prob(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, Lambda_k^{-1}), shape (N, K), every constant included."""
    d = X.shape[1]
    return (
        -0.5 * d * LOG_2PI
        + 0.5 * log_det_from_cholesky(prec_chol)[None, :]
        - 0.5 * mahalanobis_sq(X, means, prec_chol)
    )


# ----------------------------------------------------------------------------- mixtures
def weighted_log_prob(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray
) -> np.ndarray:
    """log pi_k + log N(x_n | mu_k, Sigma_k), shape (N, K), for validated inputs.

    ``log(0) = -inf`` for a zero weight is intended: that component has no mass.
    """
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return log_weights[None, :] + log_gaussian_prob(X, means, prec_chol)


def batched_weighted_log_prob(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """log pi_k + log N(x_n | mu_k, Sigma_k) for S parameter sets at once, shape (S, N, K).

    ``weights`` (S, K), ``means`` (S, K, D), ``covariances`` (S, K, D, D).  Vectorised
    over draws, points and components; the covariances are factored by batched Cholesky
    and only the small (D, D) triangular factors are inverted, as in scikit-learn's
    precision Cholesky.  Memory: S * K * N * D floats.
    """
    d = X.shape[1]
    try:
        chol = np.linalg.cholesky(covariances)  # (S, K, D, D) lower
    except np.linalg.LinAlgError:
        raise ValueError(
            "covariances must be symmetric positive definite, but a draw is not"
        ) from None
    diff = X[None, None, :, :] - means[:, :, None, :]  # (S, K, N, D)
    inv_chol = np.linalg.solve(chol, np.broadcast_to(np.eye(d), chol.shape))
    y = np.einsum("skde,skne->snkd", inv_chol, diff)  # L^-1 (x - mu): |y|^2 = Mahalanobis
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (S, K)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)  # log 0 = -inf: a component without mass
    return (log_w[:, None, :] - 0.5 * (d * LOG_2PI + log_det[:, None, :])
            - 0.5 * np.einsum("snkd,snkd->snk", y, y))


def batched_log_likelihood(
    X: np.ndarray, weights: Any, means: Any, covariances: Any
) -> np.ndarray:
    """log p(x_n | theta_s) for many parameter sets at once, shape (..., N).

    ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` (..., K, D, D) share
    their leading axes (typically (chain, draw)).  :func:`batched_weighted_log_prob` in
    blocks of draws that bound the working memory at about 2e6 floats.
    """
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    batch = weights.shape[:-1]
    k = weights.shape[-1]
    n, d = X.shape
    flat_w = weights.reshape(-1, k)
    flat_m = means.reshape(-1, k, d)
    flat_c = covariances.reshape(-1, k, d, d)
    out = np.empty((flat_w.shape[0], n))
    block = max(1, min(256, 2_000_000 // (k * n * d)))
    for start in range(0, flat_w.shape[0], block):
        stop = start + block
        out[start:stop] = logsumexp(batched_weighted_log_prob(
            X, flat_w[start:stop], flat_m[start:stop], flat_c[start:stop]), axis=2)
    return out.reshape(*batch, n)
