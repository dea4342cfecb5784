"""The univariate Bayesian GMM of Blei, Kucukelbir & McAuliffe (2017, §3).

    mu_k ~ N(0, sigma^2),           k = 1..K        (sigma = prior_sd)
    c_i  ~ Categorical(1/K, ..., 1/K)
    x_i | c_i, mu ~ N(mu_{c_i}, tau^2)              (tau = obs_sd, known)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from gmmkit._validation import check_int, check_scale, check_univariate_data
from gmmkit.models.base import MixtureData, check_enumerable, enumerate_assignments
from gmmkit.models.gaussian import LOG_2PI, normal_logpdf

__all__ = ["UnivariateGMM"]



@dataclass(frozen=True)
class UnivariateGMM:
    """Blei et al.'s univariate GMM with known observation noise and equal weights.

    Parameters
    ----------
    n_components : int
        K >= 1.
    prior_sd : float
        sigma > 0, the prior standard deviation of every component mean.
    obs_sd : float
        tau > 0, the known standard deviation of each observation around its mean.

    Notes
    -----
    Both standard deviations must lie in ``gmmkit._validation.SCALE_RANGE`` = [1e-150,
    1e150], so that their squares and inverse squares are finite, non-zero floats.
    """

    n_components: int
    prior_sd: float
    obs_sd: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_components", check_int("n_components", self.n_components, 1))
        object.__setattr__(self, "prior_sd", check_scale("prior_sd", self.prior_sd))
        object.__setattr__(self, "obs_sd", check_scale("obs_sd", self.obs_sd))

    #: Canonical posterior variables and their dims after (chain, draw).
    parameter_dims = {"mu": ["component"]}  # noqa: RUF012 - class-level constant
    #: The canonical variable holding the component means.
    means_variable = "mu"
    #: Fewest points a fit needs (besides N >= K).
    min_points = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "univariate",
            "n_components": self.n_components,
            "prior_sd": self.prior_sd,
            "obs_sd": self.obs_sd,
        }

    def check_data(
        self, x: Any, *, n_features: int | None = None, min_points: int = 1, name: str = "x"
    ) -> np.ndarray:
        """Validate data for this model: finite, shape (N,) or (N, 1)."""
        return check_univariate_data(x, name=name, min_points=min_points)

    # ---------------------------------------------------------------- densities
    def _component_logpdf(self, x: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """log N(x_i | mu_k, tau^2) with shape (..., N, K) for mu of shape (..., K)."""
        return normal_logpdf(x[:, None], mu[..., None, :], self.obs_sd**2)

    def log_components(self, x: np.ndarray, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log (1/K) N(x_i | mu_k, tau^2) for S draws ``mu`` (S, K): shape (S, N, K)."""
        mu = np.asarray(draws["mu"], dtype=float)
        return self._component_logpdf(x, mu) - np.log(self.n_components)

    def component_means(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """The means ``mu`` (..., K) of draws as shape (..., K, 1)."""
        return np.asarray(draws["mu"], dtype=float)[..., None]

    def summarise_draws(self, flat_draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Posterior means from flat draws of ``mu`` (S, K); the weights (1/K) and the
        variances (tau^2) are fixed by the model."""
        k = self.n_components
        return {
            "weights": np.full(k, 1.0 / k),
            "means": np.asarray(flat_draws["mu"], dtype=float).mean(axis=0)[:, None],
            "covariances": np.full((k, 1, 1), self.obs_sd**2),
        }

    def pointwise_log_likelihood(self, x: np.ndarray, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log p(x_i | mu) = logsumexp_k(-log K + log N(x_i | mu_k, tau^2)).

        ``draws["mu"]`` has shape (..., K); the result has shape (..., N).
        """
        x = self.check_data(x)
        mu = np.asarray(draws["mu"], dtype=float)
        return logsumexp(self._component_logpdf(x, mu), axis=-1) - np.log(self.n_components)

    def log_prior(self, mu: np.ndarray) -> np.ndarray:
        """log p(mu) = sum_k log N(mu_k | 0, sigma^2); ``mu`` (..., K) -> (...)."""
        mu = np.asarray(mu, dtype=float)
        return np.sum(normal_logpdf(mu, 0.0, self.prior_sd**2), axis=-1)

    def log_joint(self, x: Any, mu: Any) -> np.ndarray:
        """log p(x, mu) with the assignments summed out, every constant included.

        Parameters
        ----------
        x : array_like, shape (N,)
        mu : array_like, shape (..., K)
            Component means; leading batch dimensions are kept.

        Returns
        -------
        ndarray, shape (...)
        """
        x = self.check_data(x)
        mu = np.asarray(mu, dtype=float)
        if mu.shape[-1:] != (self.n_components,):
            raise ValueError(
                f"mu must have shape (..., {self.n_components}), got an array of shape {mu.shape}"
            )
        return self.log_prior(mu) + self.pointwise_log_likelihood(x, {"mu": mu}).sum(axis=-1)

    # ---------------------------------------------------------------- oracle
    def exact_log_evidence(self, x: Any) -> float:
        """log p(x) by enumerating all K**N assignments (an oracle for tiny data).

        Given the assignment c, the points of cluster k share one mean mu_k ~ N(0, sigma^2),
        so x_{S_k} ~ N(0, tau^2 I + sigma^2 11^T) in closed form:

            log p(x_S) = -(n/2) log(2 pi tau^2) - (1/2) log(1 + n sigma^2 / tau^2)
                         - (1/(2 tau^2)) (sum (x - xbar)^2 + n xbar^2 / (1 + n sigma^2 / tau^2)).

        The bracket is sum x^2 - sigma^2 (sum x)^2 / (tau^2 + n sigma^2) rewritten around the
        cluster mean xbar: the raw form subtracts two numbers of size n xbar^2 and loses
        every digit when |xbar| >> sd (data far from the prior mean 0).  The model itself
        is not translation invariant (mu_k ~ N(0, sigma^2)), so the data are not shifted;
        log(1 + n sigma^2 / tau^2) is taken as logaddexp(0, log n + log(sigma^2 / tau^2)),
        which neither overflows nor underflows for any allowed sigma and tau.
        Then log p(x) = logsumexp_c [ -N log K + sum_k log p(x_{S_k}) ].
        Refuses when K**N > 2e6.

        Parameters
        ----------
        x : array_like, shape (N,)

        Returns
        -------
        float
        """
        x = self.check_data(x)
        n, k = x.shape[0], self.n_components
        check_enumerable(n, k)
        tau2 = self.obs_sd**2
        log_ratio = 2.0 * (np.log(self.prior_sd) - np.log(self.obs_sd))  # log sigma^2/tau^2
        blocks = []
        for assign in enumerate_assignments(n, k):
            total = np.zeros(assign.shape[0])
            for comp in range(k):  # loop over the K components, not the data
                member = (assign == comp).astype(float)  # (B, N)
                count = member.sum(axis=1)
                s1 = member @ x
                # xbar = 0 for an empty cluster, whose terms below all vanish.
                xbar = np.divide(s1, count, out=np.zeros_like(s1), where=count > 0)
                within = np.sum(member * (x[None, :] - xbar[:, None]) ** 2, axis=1)
                with np.errstate(divide="ignore"):  # log 0 = -inf for an empty cluster
                    log_shrink = np.logaddexp(0.0, np.log(count) + log_ratio)
                total += (
                    -0.5 * count * (LOG_2PI + np.log(tau2))
                    - 0.5 * log_shrink
                    - 0.5 / tau2 * (within + count * xbar**2 * np.exp(-log_shrink))
                )
            blocks.append(logsumexp(total))
        return float(logsumexp(blocks) - n * np.log(k))

    # ---------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> MixtureData:
        """Draw mu from the prior, then ``n`` points; returns x, labels and the true means."""
        n = check_int("n", n, 1)
        rng = np.random.default_rng(seed)
        means = rng.normal(0.0, self.prior_sd, size=self.n_components)
        labels = rng.integers(self.n_components, size=n)
        x = rng.normal(means[labels], self.obs_sd)
        return MixtureData(
            x=x, labels=labels, means=means,
            weights=np.full(self.n_components, 1.0 / self.n_components),
            covariances=np.full((self.n_components, 1, 1), self.obs_sd**2),
        )
