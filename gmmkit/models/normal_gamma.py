"""Normal-Gamma priors for the restricted Bayesian families ``covariance="diag"`` and
``covariance="spherical"``.

diag (per-dimension Normal-Gamma; W0 has shape (D,)):

    lambda_kd             ~ Gamma(shape nu0 / 2, rate 1 / (2 W0_d))
    mu_kd | lambda_kd     ~ N(m0_d, 1 / (beta0 lambda_kd))
    x_nd | z_n = k        ~ N(mu_kd, 1 / lambda_kd)

spherical (one precision per component, shared over dimensions; W0 is a scalar):

    lambda_k              ~ Gamma(shape nu0 / 2, rate 1 / (2 W0))
    mu_k | lambda_k       ~ N(m0, I / (beta0 lambda_k))
    x_n | z_n = k         ~ N(mu_k, I / lambda_k)

A Gamma(nu/2, rate 1/(2W)) is the one-dimensional Wishart(W, nu) of Bishop (B.78), so
E[lambda] = nu W and E[ln lambda] = psi(nu/2) + ln 2 + ln W, and the diagonal entries of a
Wishart(W0, nu0) matrix are exactly Gamma(nu0/2, rate 1/(2 W0_dd)): diag's prior is the
marginal of full's.  Both families are written over "precision groups": diag has G = D
groups of g = 1 dimension, spherical G = 1 group of g = D dimensions; every formula below
is the same with the data terms summed within a group.

Closed-form marginal likelihood of n points x_1..x_n sharing one component (per group;
Murphy 2007, §8 for g = 1), with t_d = sum_i (x_id - xbar_d)^2 + beta0 n / beta_n
(xbar_d - m0_d)^2 and T = sum of t_d over the group:

    ln p = ln Gamma(a_n) - ln Gamma(a0) + (n g / 2) ln(W0 / pi) - a_n ln(1 + W0 T)
           + (g / 2) ln(beta0 / beta_n),
    a0 = nu0 / 2,  a_n = a0 + n g / 2,  beta_n = beta0 + n,

the form a0 ln b0 - a_n ln b_n with b = 1 / (2 W) rewritten so that no large cancelling
logarithms appear (ln(1 + W0 T) by log1p).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from gmmkit._validation import check_finite_array
from gmmkit.models.normal_wishart import DEFAULT_RIDGE, deviations_and_counts, weighted_mean

__all__ = ["DIAG", "SPHERICAL", "NormalGammaFamily", "normal_gamma_logpdf",
           "weighted_variances"]

_LOG_2PI = np.log(2.0 * np.pi)


def weighted_variances(X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """Per-feature sample variances (ddof 1) of X (N, D), each row counted
    ``sample_weight`` times (frequency weights): the diagonal of full's S.  Shape (D,)."""
    diff = X - weighted_mean(X, sample_weight)
    if sample_weight is None:
        return np.einsum("nd,nd->d", diff, diff) / (X.shape[0] - 1.0)
    return (sample_weight @ (diff * diff)) / (sample_weight.sum() - 1.0)


def normal_gamma_logpdf(means: Any, precisions: Any, m: Any, beta: Any, W: Any, nu: Any,
                        spherical: bool) -> np.ndarray:
    """ln N(mu | m, (beta lambda)^-1) + ln Gamma(lambda | nu/2, rate 1/(2W)) per component.

    ``means`` (..., D); ``precisions`` lambda (..., D) for diag or (...) for spherical;
    the parameters broadcast against them: ``m`` (..., D), ``beta`` (...), ``W`` like
    ``precisions``, ``nu`` (...) (one per component, also for diag).  Returns (...): the
    prior of one component, or q's factor q(mu_k, lambda_k) with per-component
    parameters.
    """
    means = np.asarray(means, dtype=float)
    lam = np.asarray(precisions, dtype=float)
    W, nu = np.asarray(W, dtype=float), np.asarray(nu, dtype=float)
    beta = np.asarray(beta, dtype=float)
    # diag: nu (...) is shared by the D precisions of a component.
    a = 0.5 * (nu if spherical else nu[..., None])
    # Gamma(a, rate 1/(2W)): -a ln(2W) - ln Gamma(a) + (a - 1) ln lambda - lambda / (2W).
    log_gamma = -a * np.log(2.0 * W) - gammaln(a) + (a - 1.0) * np.log(lam) - lam / (2.0 * W)
    sq = (means - np.asarray(m, dtype=float)) ** 2
    lam_d = lam[..., None] if spherical else lam
    log_normal = np.sum(0.5 * (np.log(beta[..., None] * lam_d) - _LOG_2PI)
                        - 0.5 * beta[..., None] * lam_d * sq, axis=-1)
    if not spherical:
        log_gamma = np.sum(log_gamma, axis=-1)
    return log_gamma + log_normal


@dataclass(frozen=True)
class NormalGammaFamily:
    """``covariance="diag"`` or ``"spherical"`` (module docstring): W0 (D,) or a scalar,
    nu0 > 0."""

    name: str
    native_name: str
    spherical: bool
    shared: bool = False

    @property
    def native_dims(self) -> tuple[str, ...]:
        return ("component",) if self.spherical else ("component", "feature")

    # ---------------------------------------------------------------- hyperparameters
    def check_scale(self, W0: Any) -> np.ndarray:
        W0 = check_finite_array("W0", W0)
        if self.spherical and W0.ndim != 0:
            raise ValueError(f"W0 must be a positive scalar for covariance='spherical' (the "
                             f"Gamma scale of the shared precision), got an array of shape "
                             f"{W0.shape}")
        if not self.spherical and W0.ndim != 1:
            raise ValueError(f"W0 must have shape (D,) for covariance='diag' (one Gamma "
                             f"scale per dimension), got an array of shape {W0.shape}")
        if np.any(W0 <= 0):
            raise ValueError(f"W0 must be positive for covariance={self.name!r}, got "
                             f"{np.asarray(W0).tolist()}")
        return W0

    def scale_dim(self, W0: np.ndarray) -> int | None:
        return None if self.spherical else int(W0.shape[0])

    def min_dof(self, d: int) -> float:
        """nu0 must be > this: a Gamma shape nu0 / 2 > 0."""
        return 0.0

    def default_scale(self, X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
        """W0_d = 1 / (var_d + eps) (diag) or 1 / (mean_d var_d + eps) (spherical), with
        full's ridge eps = 1e-6 tr(S) / D: E[lambda] = nu0 W0 ~ nu0 / var."""
        var = weighted_variances(X, sample_weight)
        total = float(var.sum())
        if not total > 0:
            raise ValueError(
                f"X must not be {X.shape[0]} copies of one point for the default W0: its "
                "variances are zero; pass W0 explicitly"
            )
        eps = DEFAULT_RIDGE * total / var.shape[0]
        W0 = 1.0 / (var.mean() + eps) if self.spherical else 1.0 / (var + eps)
        if not np.all(np.isfinite(W0)):
            raise ValueError(f"X has a spread too small for the default W0 (total variance "
                             f"{total:.3g}); pass W0 explicitly or rescale the data")
        return np.asarray(W0, dtype=float)

    # ---------------------------------------------------------------- parameters
    def native(self, covariances: np.ndarray) -> np.ndarray:
        """Variances (..., K, D) or (..., K) from diagonal (..., K, D, D) matrices."""
        covariances = np.asarray(covariances, dtype=float)
        d = covariances.shape[-1]
        diag = np.diagonal(covariances, axis1=-2, axis2=-1)
        off = covariances - diag[..., None] * np.eye(d)
        if np.any(off != 0):
            raise ValueError(f"covariances must be diagonal for covariance={self.name!r}, "
                             "got matrices with non-zero off-diagonal entries")
        if not self.spherical:
            return diag.copy()
        if np.any(diag != diag[..., :1]):
            raise ValueError("covariances must be multiples of the identity for "
                             "covariance='spherical', got unequal diagonal entries")
        return diag[..., 0].copy()

    def matrices(self, native: np.ndarray, n_components: int, d: int | None = None
                 ) -> np.ndarray:
        """(..., K, D, D) diagonal matrices from variances (..., K, D) or (..., K)."""
        native = np.asarray(native, dtype=float)
        if self.spherical:
            if d is None:
                raise ValueError("spherical covariance matrices need the dimension D")
            native = np.repeat(native[..., None], d, axis=-1)
        return native[..., None] * np.eye(native.shape[-1])

    def n_covariance_parameters(self, n_components: int, d: int) -> int:
        return n_components if self.spherical else n_components * d

    # ---------------------------------------------------------------- densities
    def log_density(self, means, native, m, beta, W, nu) -> np.ndarray:
        """ln p(mu, lambda) summed over components, (...), for ``means`` (..., K, D) and
        variances ``native`` (..., K, D) or (..., K); parameters broadcast on K."""
        lam = 1.0 / np.asarray(native, dtype=float)
        return np.sum(normal_gamma_logpdf(means, lam, m, beta, W, nu, self.spherical),
                      axis=-1)

    def log_marginal(self, onehot: np.ndarray, X: np.ndarray, m0, beta0, W0, nu0
                     ) -> np.ndarray:
        """ln p(X | z) (module docstring) for blocks of assignments ``onehot`` (B, N, K)
        of centred X (N, D), shape (B,)."""
        counts, _, xbar, dev = deviations_and_counts(onehot, X)
        beta_n = beta0 + counts  # (B, K)
        # Within-cluster squared deviations: no cancellation of sum x^2 - n xbar^2.
        t = (np.einsum("bnkd,bnkd->bkd", dev, dev)
             + (beta0 * counts / beta_n)[..., None] * (xbar - m0) ** 2)  # (B, K, D)
        g = X.shape[1] if self.spherical else 1
        if self.spherical:
            t = t.sum(axis=-1, keepdims=True)  # one group of D dimensions
        a0 = 0.5 * nu0
        a_n = a0 + 0.5 * g * counts[..., None]  # (B, K, G)
        log_p = (gammaln(a_n) - gammaln(a0)
                 + 0.5 * g * counts[..., None] * np.log(W0 / np.pi)
                 - a_n * np.log1p(W0 * t)
                 + 0.5 * g * np.log(beta0 / beta_n)[..., None])
        return log_p.sum(axis=(1, 2))

    def sample(self, rng: np.random.Generator, n_components: int, m0, beta0, W0, nu0):
        """Means (K, D) and covariances (K, D, D) from the prior."""
        d = m0.shape[0]
        shape = (n_components,) if self.spherical else (n_components, d)
        lam = rng.gamma(0.5 * nu0, 2.0 * np.broadcast_to(W0, shape))  # scale 2 W0
        lam_d = np.broadcast_to(lam[:, None], (n_components, d)) if self.spherical else lam
        means = m0 + rng.standard_normal((n_components, d)) / np.sqrt(beta0 * lam_d)
        return means, self.matrices(1.0 / lam, n_components, d)


DIAG = NormalGammaFamily("diag", "variances", spherical=False)
SPHERICAL = NormalGammaFamily("spherical", "variance", spherical=True)
