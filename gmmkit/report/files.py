"""Writing reports to disk: one fit's directory (the CLI's ``gmmkit fit``).

A comparison's directory is written by :meth:`gmmkit.report.ComparisonReport.save`.
Every directory goes through :mod:`gmmkit.output`: written in full or not at all, and
never replacing a directory gmmkit did not write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gmmkit.report.figures import fit_figures
from gmmkit.result import Fit

__all__ = ["write_fit_report"]


def write_fit_report(
    result: Fit, directory: Path, *, dpi: int = 110,
    feature_names: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """The fit's files (:meth:`Fit.write_files`) and its figures (``trace.png``,
    ``fit.png``, axes named by ``feature_names``) into ``directory``, which the caller's
    atomic writer owns.  ``progress``, when given, is told what is being written next
    (large fits take seconds to write)."""
    say = progress or (lambda _: None)
    n, k = result.responsibilities.shape
    say(f"writing the fit ({n} x {k} responsibilities, parameters, traces, idata.nc)")
    result.write_files(directory)
    say("drawing trace.png and fit.png")
    for stem, fig in fit_figures(result, feature_names=feature_names).items():
        fig.savefig(directory / f"{stem}.png", dpi=dpi)
