"""Gaussian linear algebra on Cholesky factors, vectorised over components.

Conventions follow scikit-learn's ``sklearn/mixture/_gaussian_mixture.py``: we keep the
*precision* Cholesky factor ``P_k`` (upper triangular, ``Lambda_k = P_k P_k^T``), so a
Mahalanobis distance is one batched matrix product, ``||(x - mu_k) P_k||^2``, and
``log|Lambda_k| = 2 sum log diag(P_k)``.  No explicit inverse is ever formed.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = [
    "LOG_2PI",
    "log_det_from_cholesky",
    "log_gaussian_prob",
    "mahalanobis_sq",
    "precision_cholesky",
    "precision_cholesky_from_precision",
]

LOG_2PI = np.log(2 * np.pi)


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
