"""The :class:`Model` protocol: what every model declares, for every layer above it.

A model is an immutable value object: priors (or none, for maximum likelihood) and the
likelihood, declared once.  Inference backends, alignment, evidence estimates and plots
use only these members, so a new model family is its own file plus its inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gmmkit.models.base import MixtureData

__all__ = ["BayesianModel", "Model"]


@runtime_checkable
class Model(Protocol):
    """Every mixture model: maximum-likelihood (:class:`GaussianMixture`) and Bayesian."""

    #: K, the number of mixture components.
    n_components: int
    #: Canonical posterior variables and their dims after (chain, draw), e.g.
    #: ``{"means": ["component", "feature"], ...}``; ArviZ output uses these names.
    parameter_dims: Mapping[str, list[str]]
    #: The canonical variable holding the component means ("means", or "mu" for the
    #: univariate model).
    means_variable: str
    #: Fewest points a fit needs (besides N >= K).
    min_points: int

    def check_data(
        self, x: Any, *, n_features: int | None = None, min_points: int = 1, name: str = "x"
    ) -> np.ndarray:
        """Validated data in the shape this model's inference expects."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the model and its hyperparameters."""

    def log_components(self, x: np.ndarray, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """log pi_k + log N(x_i | theta_k) for S flat draws: shape (S, N, K)."""

    def pointwise_log_likelihood(self, x: Any, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """log p(x_i | theta) for draws with any leading axes: shape (..., N)."""

    def component_means(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """The component means of draws with any leading axes, shape (..., K, D)."""

    def summarise_draws(self, flat_draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Posterior means of ``weights`` (K,), ``means`` (K, D) and ``covariances``
        (K, D, D) from flat draws (S, ...) under the canonical names."""


@runtime_checkable
class BayesianModel(Model, Protocol):
    """A model with priors: it has a joint density, an evidence and a prior to sample."""

    def log_joint(self, x: Any, params: Any) -> np.ndarray:
        """log p(x, theta) with the assignments summed out, every constant kept."""

    def exact_log_evidence(self, x: Any) -> float:
        """log p(x) by enumerating every assignment (an oracle for tiny data sets)."""

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> MixtureData:
        """Parameters from the prior, then ``n`` points from the mixture."""
