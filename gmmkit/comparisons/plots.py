"""Figures built on ``matplotlib.figure.Figure`` (no pyplot state), so they work
headless, in scripts and in notebooks alike."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from gmmkit.result import Fit

__all__ = ["plot_elbo_traces", "plot_fit_1d"]


def plot_elbo_traces(fits: Mapping[str, Fit], log_evidence: float | None = None) -> Figure:
    """ELBO against iteration (left) and wall time (right), one line per fit.

    ``log_evidence``, when given, is drawn as a horizontal line: every ELBO lies below it.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_iter, ax_time = fig.subplots(1, 2)
    for name, fit in fits.items():
        trace = np.asarray(fit.elbo_trace)
        if trace.size == 0:
            continue
        ax_iter.plot(np.arange(trace.size), trace, label=name)
        if len(fit.time_trace) == trace.size:
            ax_time.plot(fit.time_trace, trace, label=name)
    for ax in (ax_iter, ax_time):
        if log_evidence is not None and np.isfinite(log_evidence):
            ax.axhline(log_evidence, color="k", ls="--", lw=1, label="log evidence")
        ax.set_ylabel("ELBO (nats)")
        ax.legend(loc="lower right")
    ax_iter.set_xlabel("iteration")
    ax_time.set_xlabel("wall time (s)")
    ax_time.set_xscale("symlog", linthresh=1e-3)
    return fig


def plot_fit_1d(
    x: np.ndarray, fits: Mapping[str, Fit], truth_density=None, bins: int = 80
) -> Figure:
    """Histogram of 1-D data with each fit's posterior-predictive density.

    ``truth_density``, when given, is a callable grid -> density drawn in black.
    """
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    x = np.asarray(x).ravel()
    ax.hist(x, bins=bins, density=True, color="0.85", label="data")
    grid = np.linspace(x.min() - 1.0, x.max() + 1.0, 800)
    for name, fit in fits.items():
        ax.plot(grid, np.exp(fit.score_samples(grid)), lw=1.5, label=name)
    if truth_density is not None:
        ax.plot(grid, truth_density(grid), "k--", lw=1, label="truth")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend()
    return fig
