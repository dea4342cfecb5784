"""gmmkit: Bayesian Gaussian mixture models, one model declaration, many inference methods.

Fit a model with :func:`fit`; every method returns the same immutable :class:`Fit`.
This module is the public facade: it may reach every layer, and nothing inside the
package imports it (see ARCHITECTURE.md).

The public names are imported on first use (PEP 562), so ``gmmkit --help`` and
``import gmmkit.cli`` do not pay for matplotlib, scikit-learn or ArviZ.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gmmkit._version import __version__
from gmmkit._warnings import ConvergenceWarning

if TYPE_CHECKING:  # what static tools and IDEs see
    from gmmkit import datasets
    from gmmkit.api import fit
    from gmmkit.comparisons import Comparison, Selection, align, select
    from gmmkit.experiments.sweep import sweep
    from gmmkit.models import BayesianGMM, GaussianMixture, MixtureData, UnivariateGMM
    from gmmkit.reading import load_data
    from gmmkit.report import ComparisonReport, compare, plot_sweep
    from gmmkit.result import Fit, load

#: Public name -> the module that defines it.
_PUBLIC = {
    "BayesianGMM": "gmmkit.models",
    "Comparison": "gmmkit.comparisons",
    "ComparisonReport": "gmmkit.report",
    "Fit": "gmmkit.result",
    "GaussianMixture": "gmmkit.models",
    "MixtureData": "gmmkit.models",
    "Selection": "gmmkit.comparisons",
    "UnivariateGMM": "gmmkit.models",
    "align": "gmmkit.comparisons",
    "compare": "gmmkit.report",
    "fit": "gmmkit.api",
    "load": "gmmkit.result",
    "load_data": "gmmkit.reading",
    "plot_sweep": "gmmkit.report",
    "select": "gmmkit.comparisons",
    "sweep": "gmmkit.experiments.sweep",
}

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


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        try:  # a submodule (gmmkit.datasets, gmmkit.result, ...)
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'gmmkit' has no attribute {name!r}") from None
    globals()[name] = value  # once resolved, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
