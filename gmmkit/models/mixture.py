"""The likelihood-only Gaussian mixture and its density utilities.

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k)                          (Bishop PRML 9.7)

:class:`GaussianMixture` has no priors: it is the target of the maximum-likelihood
methods ``gmmkit.fit(..., method="em")`` and ``method="kmeans"``.  The free functions
:func:`gmm_logpdf`, :func:`gmm_log_responsibilities`, :func:`gmm_responsibilities` and
:func:`gmm_sample` are the building blocks of the seed notebooks, written in log space on
Cholesky factors of the precisions (``gmmkit.models._linalg``): no inverse, no
``log(p + 1e-10)``, no loop over data points, and no underflow for points far in the
tails (a point 40 standard deviations away has density exp(-800), which ``float64``
cannot hold, but its log is an ordinary number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from gmmkit._validation import (
    check_choice,
    check_finite_array,
    check_int,
    check_multivariate_data,
)
from gmmkit.models.base import MixtureData
from gmmkit.models.gaussian import (
    COVARIANCE_FAMILIES,
    NotPositiveDefinite,
    batched_log_likelihood,
    batched_weighted_log_prob,
    precision_cholesky,
    weighted_log_prob,
)

__all__ = [
    "COVARIANCE_TYPES",
    "NATIVE_COVARIANCE_NAMES",
    "GaussianMixture",
    "batched_log_likelihood",
    "batched_weighted_log_prob",
    "check_gmm_parameters",
    "gmm_log_responsibilities",
    "gmm_logpdf",
    "gmm_responsibilities",
    "gmm_sample",
    "weighted_log_prob",
]

#: Covariance structures of the maximum-likelihood mixture (scikit-learn's
#: ``covariance_type``): "full", "diag", "spherical" and "tied".
COVARIANCE_TYPES = COVARIANCE_FAMILIES
#: The name of each family's native covariance parameter in ``Fit.variational_params``.
NATIVE_COVARIANCE_NAMES = {"full": "covariances", "diag": "variances",
                           "spherical": "variance", "tied": "covariance"}
#: Tolerance on |sum(weights) - 1| accepted by the density utilities.
WEIGHT_SUM_TOL = 1e-8
#: Relative tolerance on the asymmetry of a covariance matrix.
SYMMETRY_RTOL = 1e-10


# ----------------------------------------------------------------------------- validation
def check_gmm_parameters(
    weights: Any, means: Any, covariances: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate mixture parameters and factor the covariances.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Non-negative mixing weights summing to 1 (within ``WEIGHT_SUM_TOL``).
    means : array_like, shape (K, D)
        Component means; shape (K,) is read as D = 1.
    covariances : array_like, shape (K, D, D)
        Symmetric positive-definite covariances; shape (K,) is read as variances
        with D = 1.

    Returns
    -------
    weights (K,), means (K, D), covariances (K, D, D), prec_chol (K, D, D)
        ``prec_chol`` is the upper-triangular Cholesky factor of every precision.

    Raises
    ------
    ValueError
        Naming the argument, what was expected and what was received.
    """
    weights = check_finite_array("weights", weights)
    means = check_finite_array("means", means)
    covariances = check_finite_array("covariances", covariances)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise ValueError(f"weights must have shape (K,) with K >= 1, got shape {weights.shape}")
    k = weights.shape[0]
    if means.ndim == 1:
        means = means[:, None]
    if means.ndim != 2 or means.shape[0] != k:
        raise ValueError(
            f"means must have shape ({k}, D) to match the {k} weights, got shape {means.shape}"
        )
    d = means.shape[1]
    if covariances.ndim == 1 and d == 1:
        covariances = covariances[:, None, None]
    if covariances.shape != (k, d, d):
        raise ValueError(
            f"covariances must have shape ({k}, {d}, {d}) to match means of shape "
            f"{means.shape}, got shape {covariances.shape}"
        )
    if np.any(weights < 0):
        raise ValueError(f"weights must be non-negative, got {weights.tolist()}")
    total = float(weights.sum())
    if abs(total - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(
            f"weights must sum to 1 (within {WEIGHT_SUM_TOL:g}), got a sum of {total!r}"
        )
    asym = np.abs(covariances - np.swapaxes(covariances, 1, 2))
    scale = np.abs(covariances).max(axis=(1, 2))
    bad = np.flatnonzero(asym.max(axis=(1, 2)) > SYMMETRY_RTOL * scale)
    if bad.size:
        raise ValueError(
            f"covariances must be symmetric positive definite, but component {bad[0]} is "
            "not symmetric"
        )
    try:
        prec_chol = precision_cholesky(covariances)
    except NotPositiveDefinite as err:
        raise ValueError(
            f"covariances must be symmetric positive definite, but component "
            f"{err.component} is not positive definite"
        ) from None
    return weights, means, covariances, prec_chol


def _as_points(X: Any, n_features: int) -> np.ndarray:
    """Points as (N, D): (N,) is read as N points of one feature when D = 1."""
    X = check_finite_array("X", X)
    if X.ndim == 1 and n_features == 1:
        X = X[:, None]
    elif X.ndim == 1 and X.shape[0] == n_features:
        X = X[None, :]  # a single point
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(
            f"X must have shape (N, {n_features}) to match the means, got shape {X.shape}"
        )
    return X


# ----------------------------------------------------------------------------- utilities
def gmm_logpdf(X: Any, weights: Any, means: Any, covariances: Any) -> np.ndarray:
    """log p(x_n) = logsumexp_k [log pi_k + log N(x_n | mu_k, Sigma_k)], shape (N,).

    Parameters
    ----------
    X : array_like, shape (N, D)
        Points; (N,) when D = 1, or (D,) for a single point.
    weights : array_like, shape (K,)
    means : array_like, shape (K, D)
    covariances : array_like, shape (K, D, D)

    Returns
    -------
    ndarray, shape (N,)
        Log density in nats; finite even where the density underflows.
    """
    weights, means, _, prec_chol = check_gmm_parameters(weights, means, covariances)
    X = _as_points(X, means.shape[1])
    return logsumexp(weighted_log_prob(X, weights, means, prec_chol), axis=1)


def gmm_log_responsibilities(X: Any, weights: Any, means: Any, covariances: Any) -> np.ndarray:
    """log p(z_n = k | x_n), shape (N, K), normalised in log space (Bishop PRML 9.23).

    Same arguments as :func:`gmm_logpdf`.
    """
    weights, means, _, prec_chol = check_gmm_parameters(weights, means, covariances)
    X = _as_points(X, means.shape[1])
    log_prob = weighted_log_prob(X, weights, means, prec_chol)
    return log_prob - logsumexp(log_prob, axis=1, keepdims=True)


def gmm_responsibilities(X: Any, weights: Any, means: Any, covariances: Any) -> np.ndarray:
    """p(z_n = k | x_n), shape (N, K); rows sum to 1.  See :func:`gmm_log_responsibilities`."""
    return np.exp(gmm_log_responsibilities(X, weights, means, covariances))


def gmm_sample(
    weights: Any,
    means: Any,
    covariances: Any,
    n: int,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points from the mixture.

    Parameters
    ----------
    weights, means, covariances
        As in :func:`gmm_logpdf`.
    n : int
        Number of points, >= 1.
    seed : int, numpy.random.Generator or None
        The global NumPy RNG is never used.

    Returns
    -------
    X : ndarray, shape (n, D)
    labels : ndarray of int, shape (n,)
        The component each point was drawn from.
    """
    weights, means, covariances, _ = check_gmm_parameters(weights, means, covariances)
    n = check_int("n", n, 1)
    rng = np.random.default_rng(seed)
    labels = rng.choice(weights.shape[0], size=n, p=weights / weights.sum())
    # x = mu_k + L_k e with L_k L_k^T = Sigma_k: one batched product, no loop over points.
    chol = np.linalg.cholesky(covariances)  # (K, D, D), lower; SPD already checked
    noise = rng.standard_normal((n, means.shape[1]))
    X = means[labels] + np.einsum("nde,ne->nd", chol[labels], noise)
    return X, labels


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class GaussianMixture:
    """A Gaussian mixture without priors, fitted by maximum likelihood.

    Parameters
    ----------
    n_components : int
        K >= 1.
    covariance : {"full", "diag", "spherical", "tied"}
        Covariance structure, as scikit-learn's ``covariance_type``: a full (K, D, D)
        covariance per component, a diagonal one (K, D variances), one variance per
        component (sigma_k^2 I), or one full covariance shared by every component.
    reg_covar : float
        Non-negative value added to the diagonal of every covariance (to every variance
        for "diag" and "spherical") in the M-step, as in scikit-learn, which keeps a
        component that collapses onto a few points from becoming singular.  0 gives the
        textbook maximum-likelihood update.
    """

    n_components: int
    covariance: str = "full"
    reg_covar: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_components", check_int("n_components", self.n_components, 1))
        check_choice("covariance", self.covariance, COVARIANCE_TYPES)
        try:
            reg = float(self.reg_covar)
        except (TypeError, ValueError):
            raise ValueError(
                f"reg_covar must be a non-negative number, got {self.reg_covar!r}"
            ) from None
        if not np.isfinite(reg) or reg < 0:
            raise ValueError(f"reg_covar must be a non-negative finite number, got {reg!r}")
        object.__setattr__(self, "reg_covar", reg)

    #: Canonical posterior variables and their dims after (chain, draw).
    parameter_dims = {  # noqa: RUF012 - class-level constant
        "weights": ["component"],
        "means": ["component", "feature"],
        "covariances": ["component", "feature", "feature_bis"],
    }
    #: The canonical variable holding the component means.
    means_variable = "means"
    #: Fewest points a fit needs (besides N >= K, which ``gmmkit.fit`` enforces).
    min_points = 1

    def n_parameters(self, n_features: int) -> int:
        """Number of free parameters for data of ``n_features`` features (as
        scikit-learn's ``_n_parameters``): K - 1 weights, K D means, and the covariances,
        K D (D + 1) / 2 (full), K D (diag), K (spherical) or D (D + 1) / 2 (tied)."""
        d = check_int("n_features", n_features, 1)
        k = self.n_components
        cov = {
            "full": k * d * (d + 1) // 2,
            "diag": k * d,
            "spherical": k,
            "tied": d * (d + 1) // 2,
        }[self.covariance]
        return (k - 1) + k * d + cov

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "gaussian_mixture",
            "n_components": self.n_components,
            "covariance": self.covariance,
            "reg_covar": self.reg_covar,
        }

    def check_data(
        self, x: Any, *, n_features: int | None = None, min_points: int = 1, name: str = "X"
    ) -> np.ndarray:
        """Validate data: finite, shape (N, D) (an (N,) array is read as D = 1)."""
        return check_multivariate_data(x, name=name, min_points=min_points,
                                       n_features=n_features)

    # ---------------------------------------------------------------- likelihood
    def pointwise_log_likelihood(self, x: Any, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log p(x_i | theta) for every parameter draw, shape (..., N).

        ``draws`` holds ``weights`` (..., K), ``means`` (..., K, D) and ``covariances``
        (..., K, D, D) with the same leading axes, typically (chain, draw).
        """
        x = self.check_data(x)
        return batched_log_likelihood(x, draws["weights"], draws["means"], draws["covariances"])

    def log_components(self, x: np.ndarray, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log pi_k N(x_i | mu_k, Sigma_k) for S draws (``weights`` (S, K), ``means``
        (S, K, D), ``covariances`` (S, K, D, D)) of validated ``x`` (N, D): (S, N, K)."""
        return batched_weighted_log_prob(
            x, np.asarray(draws["weights"], dtype=float),
            np.asarray(draws["means"], dtype=float),
            np.asarray(draws["covariances"], dtype=float))

    def component_means(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``means`` of draws, shape (..., K, D)."""
        return np.asarray(draws["means"], dtype=float)

    def summarise_draws(self, flat_draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Posterior means of ``weights``, ``means`` and ``covariances`` over flat draws."""
        return {name: np.asarray(flat_draws[name], dtype=float).mean(axis=0)
                for name in ("weights", "means", "covariances")}

    def log_likelihood(self, x: Any, weights: Any, means: Any, covariances: Any) -> float:
        """Total log-likelihood sum_n log p(x_n | theta) in nats (Bishop PRML 9.14)."""
        x = self.check_data(x)
        return float(gmm_logpdf(x, weights, means, covariances).sum())

    def sample_data(
        self, n: int, weights: Any, means: Any, covariances: Any,
        seed: int | np.random.Generator | None = None,
    ) -> MixtureData:
        """Draw ``n`` points from the mixture with the given parameters.

        A ``GaussianMixture`` has no priors, so unlike the Bayesian models it cannot draw
        its own parameters; they are passed in.  Returns data, labels and the truth.
        """
        weights, means, covariances, _ = check_gmm_parameters(weights, means, covariances)
        if weights.shape[0] != self.n_components:
            raise ValueError(
                f"weights must have {self.n_components} entries (n_components), got "
                f"{weights.shape[0]}"
            )
        X, labels = gmm_sample(weights, means, covariances, n, seed)
        return MixtureData(x=X, labels=labels, means=means, weights=weights,
                           covariances=covariances)
