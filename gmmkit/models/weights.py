"""Priors on the mixing weights of a Bayesian mixture, and their variational factors.

Every Bayesian family (full, diag, spherical, tied covariances) shares the weight part of
the model: the prior p(pi), the prior probability of an assignment sequence p(z) (with pi
integrated out, for the enumeration oracle), and in variational Bayes the factor q(pi)
that the counts N_k = sum_n r_nk determine, with E_q[ln pi_k] and the two bound terms
E_q[ln p(pi)] - E_q[ln q(pi)].  A covariance family never needs to know which weight
prior it has: it calls the :class:`WeightPrior` it is given.

* :class:`DirichletWeights` -- pi ~ Dir(alpha0 1_K) (Bishop PRML 10.39); q(pi) = Dir(alpha)
  with alpha_k = alpha0 + N_k (10.58).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
from scipy.special import digamma, gammaln

__all__ = ["DirichletQ", "DirichletWeights", "WeightPrior", "WeightsQ"]


class WeightsQ(Protocol):
    """The variational factor q(pi) of a weight prior (frozen; arrays (K,))."""

    @property
    def expected_log_weights(self) -> np.ndarray:
        """E_q[ln pi_k], shape (K,)."""
        ...

    @property
    def mean_weights(self) -> np.ndarray:
        """E_q[pi_k], shape (K,)."""
        ...

    def bound_terms(self) -> float:
        """E_q[ln p(pi)] - E_q[ln q(pi)] in nats, every constant included."""
        ...

    def params(self) -> dict[str, np.ndarray]:
        """The variational parameters, for ``Fit.variational_params``."""
        ...

    def draw_log_weights(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """ln pi for ``n_draws`` draws from q, shape (n_draws, K), finite where pi_k
        underflows."""
        ...

    def log_density(self, log_weights: np.ndarray) -> np.ndarray:
        """ln q(pi) for ln pi of shape (..., K), shape (...)."""
        ...


class WeightPrior(Protocol):
    """A prior on the K mixing weights (see the module docstring)."""

    n_components: int

    def log_prior(self, log_weights: np.ndarray) -> np.ndarray:
        """ln p(pi) (density of pi_1..pi_{K-1}), every constant, for ln pi (..., K)."""
        ...

    def log_marginal_counts(self, counts: np.ndarray) -> np.ndarray:
        """ln p(z) of one assignment sequence with these counts, pi integrated out.

        ``counts`` (B, K) integer -> (B,)."""
        ...

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of pi, shape (K,)."""
        ...

    def posterior(self, counts: np.ndarray) -> WeightsQ:
        """The optimal q(pi) given expected counts N_k = sum_n r_nk, shape (K,)."""
        ...


def _log_dirichlet_normaliser(alpha: np.ndarray) -> np.ndarray:
    """ln C(alpha) = ln Gamma(sum alpha) - sum ln Gamma(alpha_k) (PRML B.23), over the
    last axis."""
    return gammaln(np.sum(alpha, axis=-1)) - np.sum(gammaln(alpha), axis=-1)


class DirichletQ(NamedTuple):
    """q(pi) = Dir(alpha) (PRML 10.57-10.58) with its prior's alpha0."""

    alpha: np.ndarray  # (K,)
    alpha0: float

    @property
    def expected_log_weights(self) -> np.ndarray:
        return digamma(self.alpha) - digamma(self.alpha.sum())  # 10.66

    @property
    def mean_weights(self) -> np.ndarray:
        return self.alpha / self.alpha.sum()

    def bound_terms(self) -> float:
        # E[ln p(pi)] - E[ln q(pi)] (10.73 - 10.76) in one piece, sum_k (alpha0 - alpha_k)
        # E[ln pi_k].  Separately, both terms carry (alpha0 - 1) E[ln pi_k] ~ -1/alpha0 for
        # an emptied component, which with alpha0 = 1e-30 cancels to no digit at all (an
        # "ELBO" above the evidence); alpha0 - alpha_k = -N_k is accurate to eps relative.
        k = self.alpha.shape[0]
        return float(_log_dirichlet_normaliser(np.full(k, self.alpha0))
                     - _log_dirichlet_normaliser(self.alpha)
                     + np.sum((self.alpha0 - self.alpha) * self.expected_log_weights))

    def params(self) -> dict[str, np.ndarray]:
        return {"alpha": self.alpha.copy()}

    def draw_log_weights(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        # ln Gamma(a) draws as ln U / a + ln Gamma(a + 1) (Marsaglia & Tsang's boost):
        # finite for the tiny alpha of a pruned component, where Gamma(a) underflows.
        k = self.alpha.shape[0]
        log_g = (np.log(rng.standard_gamma(self.alpha + 1.0, size=(n_draws, k)))
                 + np.log(rng.uniform(size=(n_draws, k))) / self.alpha)
        top = log_g.max(axis=1, keepdims=True)
        return log_g - top - np.log(np.exp(log_g - top).sum(axis=1, keepdims=True))

    def log_density(self, log_weights: np.ndarray) -> np.ndarray:
        return (_log_dirichlet_normaliser(self.alpha)
                + np.asarray(log_weights, dtype=float) @ (self.alpha - 1.0))


class DirichletWeights(NamedTuple):
    """pi ~ Dir(alpha0 1_K) (PRML 10.39): ``alpha0`` is the prior count given to every
    component; small alpha0 (< 1) lets VB empty the components the data do not need."""

    n_components: int
    alpha0: float

    def log_prior(self, log_weights: np.ndarray) -> np.ndarray:
        k, a0 = self.n_components, self.alpha0
        return (gammaln(k * a0) - k * gammaln(a0)
                + np.sum((a0 - 1.0) * np.asarray(log_weights, dtype=float), axis=-1))

    def log_marginal_counts(self, counts: np.ndarray) -> np.ndarray:
        # Dirichlet-multinomial p(z) = Gamma(K a)/Gamma(N + K a) prod_k Gamma(n_k + a)/Gamma(a)
        # with the integer counts as rising factorials, ln Gamma(a + c) - ln Gamma(a) =
        # sum_{j<c} ln(a + j): differences of gammaln lose every digit for a large alpha0.
        counts = np.asarray(counts).astype(int)
        n = int(counts[0].sum()) if counts.size else 0
        k, a0 = self.n_components, self.alpha0
        rising = np.concatenate([[0.0], np.cumsum(np.log(a0 + np.arange(n)))])
        rising_total = float(np.sum(np.log(k * a0 + np.arange(n))))
        return np.sum(rising[counts], axis=-1) - rising_total

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.dirichlet(np.full(self.n_components, self.alpha0))

    def posterior(self, counts: np.ndarray) -> DirichletQ:
        return DirichletQ(self.alpha0 + np.asarray(counts, dtype=float), self.alpha0)  # 10.58
