"""The covariance families of the Bayesian GMM: one object per family, chosen once from
the ``covariance`` string (like the method table), so that :class:`BayesianGMM` has no
``if covariance == ...`` branches.

| family | prior (module) | W0 | nu0 | native parameter |
|---|---|---|---|---|
| full | Normal-Wishart per component (normal_wishart) | (D, D) | > D - 1 | covariances (K, D, D) |
| diag | Normal-Gamma per dimension (normal_gamma) | (D,) | > 0 | variances (K, D) |
| spherical | Normal-Gamma over dimensions (normal_gamma) | () | > 0 | variance (K,) |
| tied | one Wishart, Normal means (tied_wishart) | (D, D) | > D - 1 | covariance (D, D) |
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from gmmkit.models.normal_gamma import DIAG, SPHERICAL
from gmmkit.models.normal_wishart import FULL
from gmmkit.models.tied_wishart import TIED

__all__ = ["COVARIANCE_PRIORS", "CovariancePrior"]


class CovariancePrior(Protocol):
    """What a covariance family supplies to :class:`gmmkit.models.bayesian.BayesianGMM`.

    Hyperparameters are passed explicitly (m0 (D,), beta0, W0, nu0), so the same
    densities evaluate the prior and a variational factor with per-component parameters.
    """

    #: The ``covariance`` string.
    name: str
    #: Name of the native covariance parameter (``NATIVE_COVARIANCE_NAMES``).
    native_name: str
    #: True when one covariance is shared by every component (no component axis).
    shared: bool
    #: Dims of the native parameter after (chain, draw).
    native_dims: tuple[str, ...]

    def check_scale(self, W0: Any) -> np.ndarray:
        """Validated W0 in the family's shape, or ValueError naming W0."""

    def scale_dim(self, W0: np.ndarray) -> int | None:
        """D implied by a validated W0 (None when W0 is a scalar)."""

    def min_dof(self, d: int) -> float:
        """nu0 must be strictly greater than this."""

    def default_scale(self, X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
        """The data-dependent default W0."""

    def native(self, covariances: np.ndarray) -> np.ndarray:
        """The native parameter from (..., K, D, D) matrices (ValueError off-family)."""

    def matrices(self, native: np.ndarray, n_components: int, d: int | None = None
                 ) -> np.ndarray:
        """(..., K, D, D) matrices from the native parameter."""

    def n_covariance_parameters(self, n_components: int, d: int) -> int:
        """Free covariance parameters."""

    def log_density(self, means: Any, native: Any, m: Any, beta: Any, W: Any, nu: Any
                    ) -> np.ndarray:
        """ln p(means, covariances) with every constant, summed over components."""

    def log_marginal(self, onehot: np.ndarray, X: np.ndarray, m0: Any, beta0: float,
                     W0: Any, nu0: float) -> np.ndarray:
        """ln p(X | z) for blocks of one-hot assignments (B, N, K) of centred X: (B,)."""

    def sample(self, rng: np.random.Generator, n_components: int, m0: np.ndarray,
               beta0: float, W0: np.ndarray, nu0: float) -> tuple[np.ndarray, np.ndarray]:
        """Means (K, D) and covariance matrices (K, D, D) from the prior."""


#: The covariance families of the Bayesian GMM, by their ``covariance`` string.
COVARIANCE_PRIORS: dict[str, CovariancePrior] = {
    family.name: family for family in (FULL, DIAG, SPHERICAL, TIED)
}
