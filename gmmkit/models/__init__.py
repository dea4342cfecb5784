"""Model declarations: priors and likelihood, declared once for every inference method."""

from gmmkit.models.base import MixtureData
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import (
    GaussianMixture,
    gmm_log_responsibilities,
    gmm_logpdf,
    gmm_responsibilities,
    gmm_sample,
)
from gmmkit.models.univariate import UnivariateGMM

__all__ = [
    "BayesianGMM",
    "GaussianMixture",
    "MixtureData",
    "UnivariateGMM",
    "gmm_log_responsibilities",
    "gmm_logpdf",
    "gmm_responsibilities",
    "gmm_sample",
]
