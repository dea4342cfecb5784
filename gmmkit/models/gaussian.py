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
    "COVARIANCE_FAMILIES",
    "LOG_2PI",
    "batched_log_likelihood",
    "batched_weighted_log_prob",
    "covariance_matrices",
    "family_log_gaussian_prob",
    "family_precision_factor",
    "log_det_from_cholesky",
    "log_gaussian_prob",
    "log_gaussian_prob_diag",
    "log_gaussian_prob_spherical",
    "log_gaussian_prob_tied",
    "mahalanobis_sq",
    "normal_logpdf",
    "precision_cholesky",
    "precision_cholesky_from_precision",
    "weighted_log_prob",
]

#: log(2 pi), the constant of every Gaussian normaliser.
LOG_2PI = np.log(2 * np.pi)

#: Covariance families and the shape of their native parameter (scikit-learn's
#: ``covariance_type``): "full" (K, D, D), "diag" (K, D) variances, "spherical" (K,)
#: variances, "tied" one (D, D) covariance shared by every component.
COVARIANCE_FAMILIES = ("full", "diag", "spherical", "tied")


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


#: Floats of the (rows, K, D) temporaries a kernel below may build at once: 2^20 (8 MB).
#: Their arrays are computed in blocks of rows, so their memory is that of the (N, K)
#: result whatever N, D and K are (one (N, K, D) array at N = 1e6, D = 40, K = 16 was
#: 5 GB).  Rows are independent, so blocking changes no value.
_KERNEL_BLOCK_FLOATS = 2**20


def _by_row_blocks(kernel, X: np.ndarray, means: np.ndarray, factor: np.ndarray
                   ) -> np.ndarray:
    """``kernel(X, means, factor)`` (N, K) computed on blocks of rows of ``X``."""
    n, d = X.shape
    k = means.shape[0]
    block = max(1, _KERNEL_BLOCK_FLOATS // max(1, k * d))
    if n <= block:
        return kernel(X, means, factor)
    out = np.empty((n, k))
    for start in range(0, n, block):
        out[start : start + block] = kernel(X[start : start + block], means, factor)
    return out


def _mahalanobis_sq(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    y = np.matmul(X[None, :, :], prec_chol)  # (K, N, D)
    y -= np.einsum("kd,kde->ke", means, prec_chol)[:, None, :]
    return np.einsum("knd,knd->nk", y, y)


def mahalanobis_sq(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """(x_n - mu_k)^T Lambda_k (x_n - mu_k), shape (N, K), as ||x P_k - mu_k P_k||^2.

    One batched GEMM for all components: (K, N, D) = X @ P_k, minus the (K, D) rows
    mu_k P_k; no (N, K, D) difference array is built from X.  In blocks of rows
    (:data:`_KERNEL_BLOCK_FLOATS`).
    """
    return _by_row_blocks(_mahalanobis_sq, X, means, prec_chol)


def log_gaussian_prob(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, Lambda_k^{-1}), shape (N, K), every constant included."""
    d = X.shape[1]
    return (
        -0.5 * d * LOG_2PI
        + 0.5 * log_det_from_cholesky(prec_chol)[None, :]
        - 0.5 * mahalanobis_sq(X, means, prec_chol)
    )


# ----------------------------------------------------------------------------- families
# The restricted families keep scikit-learn's "precision Cholesky" in its native shape:
# diag (K, D) and spherical (K,) hold 1 / sd, tied one upper-triangular (D, D) factor P
# with P P^T = Sigma^{-1}.  Their kernels never form a (D, D) matrix per component:
# diag and spherical are elementwise, O(NKD); tied is one (N, D) x (D, D) product.
def _scaled_sq_diag(X: np.ndarray, means: np.ndarray, prec_sd: np.ndarray) -> np.ndarray:
    y = (X[:, None, :] - means[None, :, :]) * prec_sd[None, :, :]  # (rows, K, D)
    return np.einsum("nkd,nkd->nk", y, y)


def _sq_distance(X: np.ndarray, means: np.ndarray, _: Any) -> np.ndarray:
    diff = X[:, None, :] - means[None, :, :]  # (rows, K, D)
    return np.einsum("nkd,nkd->nk", diff, diff)


def _scaled_sq_tied(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    y = (X @ prec_chol)[:, None, :] - (means @ prec_chol)[None, :, :]  # (rows, K, D)
    return np.einsum("nkd,nkd->nk", y, y)


def log_gaussian_prob_diag(X: np.ndarray, means: np.ndarray, prec_sd: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, diag(sigma_k^2)) with ``prec_sd`` = 1 / sigma_k, (K, D): (N, K).
    Differences in blocks of rows (:data:`_KERNEL_BLOCK_FLOATS`)."""
    d = X.shape[1]
    log_det = 2.0 * np.sum(np.log(prec_sd), axis=1)  # log|Lambda_k|
    return (-0.5 * d * LOG_2PI + 0.5 * log_det[None, :]
            - 0.5 * _by_row_blocks(_scaled_sq_diag, X, means, prec_sd))


def log_gaussian_prob_spherical(
    X: np.ndarray, means: np.ndarray, prec_sd: np.ndarray
) -> np.ndarray:
    """log N(x_n | mu_k, sigma_k^2 I) with ``prec_sd`` = 1 / sigma_k, (K,): (N, K).
    Differences in blocks of rows (:data:`_KERNEL_BLOCK_FLOATS`)."""
    d = X.shape[1]
    sq = _by_row_blocks(_sq_distance, X, means, None)
    log_det = 2.0 * d * np.log(prec_sd)
    return -0.5 * d * LOG_2PI + 0.5 * log_det[None, :] - 0.5 * sq * prec_sd[None, :] ** 2


def log_gaussian_prob_tied(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """log N(x_n | mu_k, Sigma) with one shared factor ``prec_chol`` (D, D): (N, K).
    Differences in blocks of rows (:data:`_KERNEL_BLOCK_FLOATS`)."""
    d = X.shape[1]
    log_det = 2.0 * np.sum(np.log(np.diagonal(prec_chol)))
    return (-0.5 * d * LOG_2PI + 0.5 * log_det
            - 0.5 * _by_row_blocks(_scaled_sq_tied, X, means, prec_chol))


_FAMILY_KERNELS = {
    "full": log_gaussian_prob,
    "diag": log_gaussian_prob_diag,
    "spherical": log_gaussian_prob_spherical,
    "tied": log_gaussian_prob_tied,
}


def family_log_gaussian_prob(
    X: np.ndarray, means: np.ndarray, precision_factor: np.ndarray, covariance: str
) -> np.ndarray:
    """log N(x_n | mu_k, Sigma_k), shape (N, K), for a family's native precision factor
    (see :func:`family_precision_factor`)."""
    return _FAMILY_KERNELS[covariance](X, means, precision_factor)


def family_precision_factor(covariances: np.ndarray, covariance: str) -> np.ndarray:
    """The native precision factor of native covariances, as scikit-learn's
    ``_compute_precision_cholesky``: full (K, D, D) and tied (D, D) upper-triangular
    Cholesky factors of the precisions, diag (K, D) and spherical (K,) 1 / sd.

    Raises :class:`NotPositiveDefinite` naming the component (0 for tied).
    """
    covariances = np.asarray(covariances, dtype=float)
    if covariance == "full":
        return precision_cholesky(covariances)
    if covariance == "tied":
        return precision_cholesky(covariances[None])[0]
    bad = np.flatnonzero(np.any((covariances <= 0).reshape(covariances.shape[0], -1), axis=1))
    if bad.size:
        raise NotPositiveDefinite(int(bad[0]))
    return 1.0 / np.sqrt(covariances)


def covariance_matrices(covariances: np.ndarray, covariance: str, n_components: int,
                        n_features: int) -> np.ndarray:
    """A family's native covariances as (K, D, D) matrices."""
    covariances = np.asarray(covariances, dtype=float)
    if covariance == "full":
        return covariances.copy()
    if covariance == "tied":
        return np.repeat(covariances[None], n_components, axis=0)
    variances = (covariances if covariance == "diag"
                 else np.repeat(covariances[:, None], n_features, axis=1))
    out = np.zeros((n_components, n_features, n_features))
    out[:, np.arange(n_features), np.arange(n_features)] = variances
    return out


# ----------------------------------------------------------------------------- mixtures
def weighted_log_prob(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray,
    covariance: str = "full",
) -> np.ndarray:
    """log pi_k + log N(x_n | mu_k, Sigma_k), shape (N, K), for validated inputs.

    ``prec_chol`` is the family's native precision factor (:func:`family_precision_factor`);
    by default the (K, D, D) Cholesky factors of full precisions.
    ``log(0) = -inf`` for a zero weight is intended: that component has no mass.
    """
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return log_weights[None, :] + _FAMILY_KERNELS[covariance](X, means, prec_chol)


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
    # y = L^-1 (x - mu) by stacked matmul (a BLAS product per draw and component; einsum
    # ran this contraction in its own loops, 10x slower at D = 12): |y|^2 = Mahalanobis.
    y = np.matmul(diff, np.swapaxes(inv_chol, -1, -2))  # (S, K, N, D)
    mahalanobis = np.einsum("sknd,sknd->skn", y, y)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (S, K)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)  # log 0 = -inf: a component without mass
    return (log_w[:, None, :] - 0.5 * (d * LOG_2PI + log_det[:, None, :])
            - 0.5 * np.swapaxes(mahalanobis, 1, 2))


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
