"""Presentation: tables, figures, markdown reports and files, apart from the computing.

* :mod:`gmmkit.report.comparison`: :class:`ComparisonReport` (a comparison with its
  figures, report and ``save``) and :func:`compare` (``gmmkit.compare``);
* :mod:`gmmkit.report.figures`: every figure, on ``matplotlib.figure.Figure``;
* :mod:`gmmkit.report.tables`: console (rich) tables;
* :mod:`gmmkit.report.files`: one fit's output directory.
"""

from gmmkit.report.comparison import ComparisonReport, compare
from gmmkit.report.figures import (
    fit_figures,
    plot_bic,
    plot_fit,
    plot_selection,
    plot_sweep,
    selection_figures,
)
from gmmkit.report.files import write_fit_report
from gmmkit.report.tables import (
    comparison_table,
    make_console,
    print_comparison,
    print_fit_summary,
    print_sweep,
)

__all__ = [
    "ComparisonReport",
    "compare",
    "comparison_table",
    "fit_figures",
    "make_console",
    "plot_bic",
    "plot_fit",
    "plot_selection",
    "plot_sweep",
    "print_comparison",
    "print_fit_summary",
    "print_sweep",
    "selection_figures",
    "write_fit_report",
]
