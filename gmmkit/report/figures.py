"""Figures built on ``matplotlib.figure.Figure`` (no pyplot state), so they work
headless, in scripts and in notebooks alike."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gmmkit.result import Fit

__all__ = [
    "plot_elbo_traces", "plot_fit", "plot_fit_1d", "plot_fit_2d", "plot_fit_3d", "plot_sweep",
]


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
        if ax.lines:
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


def plot_fit(x: np.ndarray, fits: Mapping[str, Fit], truth=None) -> Figure:
    """The data with each fit drawn on it, in the form that suits the dimension.

    1-D: :func:`plot_fit_1d`; 2-D: :func:`plot_fit_2d`; 3-D and more: :func:`plot_fit_3d`.
    ``truth`` is a 1-D density callable, or an object with ``means``/``covariances``
    (for example :class:`gmmkit.models.base.MixtureData`) in 2-D.
    """
    x = np.asarray(x, dtype=float)
    n_features = 1 if x.ndim == 1 else x.shape[1]
    if n_features == 1:
        return plot_fit_1d(x.ravel(), fits, truth if callable(truth) else None)
    if n_features == 2:
        return plot_fit_2d(x, fits, truth)
    return plot_fit_3d(x, fits)


def _ellipse_path(mean: np.ndarray, cov: np.ndarray, n_sd: float) -> np.ndarray:
    """Points on the ``n_sd`` contour of N(mean, cov), shape (100, 2)."""
    angle = np.linspace(0.0, 2.0 * np.pi, 100)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    # The Cholesky factor maps the unit circle onto the covariance's contour.
    return mean + n_sd * circle @ np.linalg.cholesky(cov).T


def plot_fit_2d(x: np.ndarray, fits: Mapping[str, Fit], truth=None,
                weight_threshold: float = 0.01) -> Figure:
    """Scatter of 2-D data, coloured by the first fit's labels, with 1- and 2-sd
    covariance ellipses of every component (weight above ``weight_threshold``) per fit."""
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    first = next(iter(fits.values()), None)
    colours = first.predict(x) if first is not None else "0.5"
    ax.scatter(x[:, 0], x[:, 1], c=colours, s=8, cmap="tab10", alpha=0.6, linewidths=0)
    cycle = ["C3", "C0", "C2", "C1", "C4", "C5", "C6"]
    for index, (name, fit) in enumerate(fits.items()):
        colour = cycle[index % len(cycle)]
        for weight, mean, cov in zip(fit.weights, fit.means, fit.covariances, strict=True):
            if weight < weight_threshold:
                continue
            for n_sd, style in ((1.0, "-"), (2.0, ":")):
                path = _ellipse_path(mean, cov, n_sd)
                ax.plot(path[:, 0], path[:, 1], style, color=colour, lw=1.3)
            ax.plot(*mean, "+", color=colour, ms=10, mew=2)
        ax.plot([], [], "-", color=colour, label=name)
    if truth is not None and getattr(truth, "covariances", None) is not None:
        for mean, cov in zip(truth.means, truth.covariances, strict=True):
            path = _ellipse_path(np.asarray(mean), np.asarray(cov), 2.0)
            ax.plot(path[:, 0], path[:, 1], "k--", lw=1)
        ax.plot([], [], "k--", label="truth (2 sd)")
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    ax.legend(loc="best")
    return fig


def plot_fit_3d(x: np.ndarray, fits: Mapping[str, Fit], max_pairs: int = 4) -> Figure:
    """A 3-D scatter of the first three features coloured by the first fit's labels,
    beside a pairs plot of the first ``max_pairs`` features with the fitted means."""
    n_pairs = min(x.shape[1], max_pairs)
    fig = Figure(figsize=(6 + 2.2 * n_pairs, 6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
    first = next(iter(fits.values()), None)
    labels = first.predict(x) if first is not None else np.zeros(x.shape[0], dtype=int)
    ax3d = left.add_subplot(projection="3d")
    ax3d.scatter(x[:, 0], x[:, 1], x[:, 2], c=labels, cmap="tab10", s=6)
    ax3d.set_xlabel("feature 0")
    ax3d.set_ylabel("feature 1")
    ax3d.set_zlabel("feature 2")
    axes = right.subplots(n_pairs, n_pairs, squeeze=False)
    for i in range(n_pairs):
        for j in range(n_pairs):
            ax = axes[i, j]
            if i == j:
                ax.hist(x[:, i], bins=30, color="0.7")
            else:
                ax.scatter(x[:, j], x[:, i], c=labels, cmap="tab10", s=3)
                for index, fit in enumerate(fits.values()):
                    ax.plot(fit.means[:, j], fit.means[:, i], "x", color=f"C{index}", ms=6)
            if i == n_pairs - 1:
                ax.set_xlabel(f"feature {j}")
            if j == 0:
                ax.set_ylabel(f"feature {i}")
    return fig


def plot_sweep(df: pd.DataFrame) -> Figure:
    """The standard panels of a sweep table, one line per method.

    Top left: parameter error against N (log-log).  Top right: wall time against N
    (log-log).  Bottom left: ARI against the separation.  Bottom right: the ELBO gap
    (log evidence minus ELBO) against N, where it is known.  Each point averages the
    rows with the same method and x value.
    """
    missing = {"method", "n", "mean_error", "wall_s", "ari", "separation"} - set(df.columns)
    if missing:
        raise ValueError(f"df must be a sweep table; it lacks the column(s) {sorted(missing)}")
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [
        (axes[0, 0], "n", "mean_error", "N", "mean |error| of the means", True),
        (axes[0, 1], "n", "wall_s", "N", "wall time (s)", True),
        (axes[1, 0], "separation", "ari", "separation (obs sd)", "ARI vs true labels", False),
        (axes[1, 1], "n", "elbo_gap", "N", "log evidence - ELBO (nats)", False),
    ]
    for ax, x, y, xlabel, ylabel, loglog in panels:
        for method, group in df.groupby("method", sort=False):
            if y not in group:
                continue
            means = group.groupby(x)[y].mean().dropna()
            if means.empty:
                continue
            ax.plot(means.index.to_numpy(dtype=float), means.to_numpy(dtype=float), "o-",
                    label=str(method))
        if loglog:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


#: fit.png draws a random sample of at most this many points.
PLOT_MAX_POINTS = 20_000


def plot_objective_trace(result: Fit) -> Figure:
    """The objective per iteration: the log-likelihood for maximum-likelihood fits, else
    the ELBO."""
    trace = result.log_likelihood_trace
    label = "log-likelihood (nats)"
    if trace is None or np.size(trace) == 0:
        trace, label = result.elbo_trace, "ELBO (nats)"
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    if np.size(trace):
        ax.plot(np.arange(np.size(trace)), trace, marker=".", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(label)
    ax.set_title(f"{result.method}: {label.split(' (')[0]} per iteration")
    return fig


def fit_figures(result: Fit) -> dict[str, Figure]:
    """The figures of one fit, by file stem: ``trace`` (:func:`plot_objective_trace`) and
    ``fit`` (the data with the fit; a sample of at most ``PLOT_MAX_POINTS`` points)."""
    x = result.data
    if len(x) > PLOT_MAX_POINTS:
        # A million-point scatter takes matplotlib ~10 s and shows no more than a sample.
        x = x[np.sort(np.random.default_rng(0).choice(len(x), PLOT_MAX_POINTS, replace=False))]
    return {"trace": plot_objective_trace(result), "fit": plot_fit(x, {result.method: result})}
