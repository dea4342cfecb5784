"""gmmkit: Bayesian Gaussian mixture models, one model declaration, many inference methods.

Fit a model with :func:`fit`; every method returns the same immutable :class:`Fit`.
This module is the public facade: it may import from every layer, and nothing inside
the package imports it (see ARCHITECTURE.md).
"""

from gmmkit import datasets
from gmmkit._version import __version__
from gmmkit._warnings import ConvergenceWarning
from gmmkit.api import fit
from gmmkit.comparisons import Comparison, Selection, align, select
from gmmkit.experiments.sweep import sweep
from gmmkit.models import BayesianGMM, GaussianMixture, MixtureData, UnivariateGMM
from gmmkit.reading import load_data
from gmmkit.report import ComparisonReport, compare, plot_sweep
from gmmkit.result import Fit, load

__all__ = [
    "BayesianGMM",
    "Comparison",
    "ComparisonReport",
    "ConvergenceWarning",
    "Fit",
    "GaussianMixture",
    "MixtureData",
    "Selection",
    "UnivariateGMM",
    "__version__",
    "align",
    "compare",
    "datasets",
    "fit",
    "load",
    "load_data",
    "plot_sweep",
    "select",
    "sweep",
]
