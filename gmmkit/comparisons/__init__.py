"""Comparing fits: alignment, ELBO/evidence tables, agreement metrics, plots, sweeps."""

from gmmkit.comparisons.align import align
from gmmkit.comparisons.compare import Comparison, compare
from gmmkit.comparisons.diagnostics import PsisResult, psis_diagnostics
from gmmkit.comparisons.errors import parameter_errors
from gmmkit.comparisons.matching import match_components
from gmmkit.comparisons.sweep import plot_sweep, sweep

__all__ = [
    "Comparison",
    "PsisResult",
    "align",
    "compare",
    "match_components",
    "parameter_errors",
    "plot_sweep",
    "psis_diagnostics",
    "sweep",
]
