"""Model declarations: priors and likelihood, declared once for every inference method."""

from gmmkit.models.base import MixtureData
from gmmkit.models.univariate import UnivariateGMM

__all__ = ["MixtureData", "UnivariateGMM"]
