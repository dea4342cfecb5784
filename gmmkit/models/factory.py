"""One factory for models named by kind, with the default-prior rules in one place.

The command line, the sweep and the demo build their models here, so "the default prior"
means the same thing everywhere.  Bayesian defaults that depend on the data are resolved
by the model itself at fit time (``BayesianGMM.resolve``); the univariate model's prior
sd is fixed when the model is built, by :func:`default_prior_sd`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from gmmkit._validation import check_choice
from gmmkit.models.bayesian import WEIGHT_PRIORS, BayesianGMM
from gmmkit.models.mixture import GaussianMixture
from gmmkit.models.protocol import Model
from gmmkit.models.univariate import UnivariateGMM

__all__ = ["MODEL_KINDS", "build_model", "default_prior_sd"]

#: Model kinds by the name users type (``gmmkit fit --model NAME``).
MODEL_KINDS: Mapping[str, type] = MappingProxyType({
    "bayesian": BayesianGMM,
    "univariate": UnivariateGMM,
    "gmm": GaussianMixture,
})

#: The univariate prior sd is this many times the data's root mean square (about the
#: origin, where the prior is centred), so the prior covers every point.
PRIOR_SD_RMS_FACTOR = 3.0


def default_prior_sd(x: Any) -> float:
    """Prior sd of the univariate model's means: 3 x the data's root mean square (1 for
    data that are all zero)."""
    x = np.asarray(x, dtype=float)
    return PRIOR_SD_RMS_FACTOR * float(np.sqrt(np.mean(x**2))) or 1.0


def build_model(
    kind: str, n_components: int, X: Any, *, alpha0: float | None = None,
    beta0: float = 1.0, nu0: float | None = None, prior_sd: float | None = None,
    obs_sd: float = 1.0, reg_covar: float = 1e-6, covariance: str = "full",
    weight_prior: str = "dirichlet_distribution",
) -> Model:
    """The model of ``kind`` with its prior options; ``None`` priors take the defaults.

    Parameters
    ----------
    kind : {"bayesian", "univariate", "gmm"}
    n_components : int
    X : ndarray, shape (N, D)
        The data (the univariate model needs D = 1 and sets its default prior sd on it).
    alpha0, beta0, nu0 : optional
        BayesianGMM priors (None: ``BayesianGMM``'s data-dependent defaults).
    prior_sd, obs_sd : optional
        UnivariateGMM prior sd (None: :func:`default_prior_sd`) and noise sd.
    reg_covar : float
        GaussianMixture covariance regularisation.
    covariance : {"full", "diag", "spherical", "tied"}
        Covariance family of the gmm model (the bayesian model refuses all but "full").
    weight_prior : {"dirichlet_distribution", "dirichlet_process"}
        Prior on the bayesian model's weights: symmetric Dirichlet, or truncated
        stick-breaking with concentration ``alpha0``; the other models have none.
    """
    check_choice("model", kind, MODEL_KINDS)
    model_type = MODEL_KINDS[kind]
    check_choice("weight_prior", weight_prior, WEIGHT_PRIORS)
    if model_type is not BayesianGMM and weight_prior != WEIGHT_PRIORS[0]:
        raise ValueError(f"weight_prior {weight_prior!r} applies to the bayesian model only, "
                         f"got model {kind!r} (its weights have no prior)")
    if model_type is UnivariateGMM:
        X = np.asarray(X, dtype=float)
        if X.ndim == 2 and X.shape[1] != 1:
            raise ValueError(
                f"the univariate model needs one column, got {X.shape[1]}; choose one with "
                "--columns"
            )
        if prior_sd is None:
            prior_sd = default_prior_sd(X)
        return UnivariateGMM(n_components, prior_sd=prior_sd, obs_sd=obs_sd)
    if model_type is BayesianGMM:
        return BayesianGMM(n_components, alpha0=alpha0, beta0=beta0, nu0=nu0,
                           covariance=covariance, weight_prior=weight_prior)
    return GaussianMixture(n_components, covariance=covariance, reg_covar=reg_covar)
