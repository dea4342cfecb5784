"""gmmkit: Bayesian Gaussian mixture models, one model declaration, many inference methods.

Fit a model with :func:`fit`; every method returns the same immutable :class:`Fit`.
"""

from gmmkit import datasets
from gmmkit._io import load_data
from gmmkit.api import fit
from gmmkit.comparisons import Comparison, align, compare, plot_sweep, sweep
from gmmkit.models import BayesianGMM, GaussianMixture, MixtureData, UnivariateGMM
from gmmkit.result import Fit, load

__version__ = "0.1.0"

__all__ = [
    "BayesianGMM",
    "Comparison",
    "Fit",
    "GaussianMixture",
    "MixtureData",
    "UnivariateGMM",
    "__version__",
    "align",
    "compare",
    "datasets",
    "fit",
    "load",
    "load_data",
    "plot_sweep",
    "sweep",
]
