"""What a fitted approximation is (:class:`PosteriorKind`) and what it answers
(:class:`Posterior`).

Every method's result carries one posterior object.  The layers above (alignment, PSIS,
evidence, ArviZ output, plots) branch on its *kind* and call its protocol methods; they
never look at the method's name or at which parameter names a posterior happens to hold.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Posterior", "PosteriorKind"]


class PosteriorKind(enum.Enum):
    """The four kinds of fitted posterior, and what each may be used for."""

    #: A variational q with a closed form (CAVI, Bishop's VB): densities, draws and
    #: importance weights are exact functions of its parameters.
    CLOSED_FORM_Q = "variational q (closed form)"
    #: Draws from a fitted variational q (ADVI): not posterior draws, but q can be
    #: evaluated, so importance weights p/q exist.
    Q_DRAWS = "draws from a fitted variational q"
    #: Draws from a posterior sampler (NUTS, SMC): genuine (approximate) posterior draws.
    SAMPLER_DRAWS = "draws from a posterior sampler"
    #: One point (EM, k-means): no posterior at all.
    POINT_ESTIMATE = "point estimate"

    @property
    def is_variational(self) -> bool:
        """q is a fitted density: its bound is an ELBO and p/q importance weights exist."""
        return self in (PosteriorKind.CLOSED_FORM_Q, PosteriorKind.Q_DRAWS)

    @property
    def stores_draws(self) -> bool:
        """The posterior is a fixed set of draws (alignment relabels them draw by draw)."""
        return self in (PosteriorKind.Q_DRAWS, PosteriorKind.SAMPLER_DRAWS)

    @property
    def is_posterior_sample(self) -> bool:
        """Draws that may be presented as posterior draws (PSIS-LOO, r-hat, references)."""
        return self is PosteriorKind.SAMPLER_DRAWS

    @property
    def is_point_estimate(self) -> bool:
        return self is PosteriorKind.POINT_ESTIMATE


@runtime_checkable
class Posterior(Protocol):
    """What a fitted approximation must answer; one implementation per kind of result.

    Optional parts, by kind:

    * variational kinds (:attr:`PosteriorKind.is_variational`) also provide
      ``log_importance_weights(x, n_draws, rng) -> ndarray (n_draws,)``, returning
      log p(x, theta_s) - log q(theta_s) for theta_s ~ q with the assignments summed out
      and every constant kept (PSIS k-hat, importance-sampling evidence);
    * closed-form q (:attr:`PosteriorKind.CLOSED_FORM_Q`) provides
      ``component_log_q(draws) -> ndarray (S, K, K)``, the log density of draw s's
      component j under q's factor k up to label-invariant terms, so the importance
      weights can be taken against the label-symmetrised q;
    * ``shared_params``: names in :meth:`params` that have no component axis (a tied
      covariance shared by every component); every other parameter leads with it;
    * kinds that store draws (:attr:`PosteriorKind.stores_draws`) expose them as
      ``draws``, a mapping of canonical names to arrays with leading (chain, draw) axes.
    """

    kind: PosteriorKind
    n_components: int

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        """Normalised log responsibilities, shape (N, K), for validated data ``x``."""

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        """log posterior-predictive density, shape (N,), for validated data ``x``."""

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Parameter draws under canonical names, each with leading (chain, draw) axes."""

    def params(self) -> Mapping[str, np.ndarray]:
        """Variational parameters (or point estimates) under the method's own names."""

    def point_estimates(self) -> dict[str, np.ndarray]:
        """Posterior means of ``weights`` (K,), ``means`` (K, D) and ``covariances``."""
