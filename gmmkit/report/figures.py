"""Figures built on ``matplotlib.figure.Figure`` (no pyplot state), so they work
headless, in scripts and in notebooks alike.

Every figure has a title and labelled axes; the data's column names are used wherever
they are known (``feature_names``), and components are numbered from 1 as in the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "MAX_PAIRS_COLUMNS",
    "feature_labels",
    "fit_figures",
    "plot_bic",
    "plot_elbo_traces",
    "plot_fit",
    "plot_fit_1d",
    "plot_fit_2d",
    "plot_fit_pairs",
    "plot_selection",
    "plot_sweep",
    "selection_figures",
]

#: A pairs grid shows at most this many columns (the most informative ones).
MAX_PAIRS_COLUMNS = 6

#: One colour per fit, in the order the fits are given (the first fit's labels colour
#: the data, with the ``tab10`` map, so the fits use a distinct dark palette).
FIT_COLOURS = ("C3", "C0", "C2", "C1", "C4", "C5", "C6", "C8", "C9")
#: One marker per fit for its component means.
FIT_MARKERS = ("P", "X", "D", "^", "s", "v", "*", "h", "p")


def _colour(index: int) -> str:
    return FIT_COLOURS[index % len(FIT_COLOURS)]


def _marker(index: int) -> str:
    return FIT_MARKERS[index % len(FIT_MARKERS)]


def feature_labels(n_features: int, feature_names: Sequence[str] | None = None) -> list[str]:
    """The data's column names when known (and as many as the columns), else
    ``x1, x2, ...`` (``x`` for one column)."""
    if feature_names is not None and len(feature_names) == n_features:
        return [str(name) for name in feature_names]
    if n_features == 1:
        return ["x"]
    return [f"x{j + 1}" for j in range(n_features)]


# ---------------------------------------------------------------------- ELBO traces
#: The panels of :func:`plot_elbo_traces`, one row each, by posterior kind.
_ELBO_PANELS = (
    (PosteriorKind.CLOSED_FORM_Q, "closed-form q: ELBO", "ELBO (nats)"),
    (PosteriorKind.Q_DRAWS, "stochastic q: ELBO, running mean ± 1 sd", "ELBO (nats)"),
    (PosteriorKind.POINT_ESTIMATE, "point estimates: log-likelihood (not a bound on the "
     "evidence)", "log-likelihood (nats)"),
)


def _objective_trace(fit: Fit) -> np.ndarray:
    """The objective per iteration: the log-likelihood for a point estimate when it is
    recorded, else the ELBO trace."""
    if fit.posterior.kind.is_point_estimate and fit.log_likelihood_trace is not None \
            and np.size(fit.log_likelihood_trace):
        return np.asarray(fit.log_likelihood_trace, dtype=float)
    return np.asarray(fit.elbo_trace, dtype=float)


def running_mean(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing running mean and sd of ``values`` over ``window`` entries (fewer at the
    start); NaN entries are skipped."""
    series = pd.Series(np.asarray(values, dtype=float))
    rolling = series.rolling(window, min_periods=1)
    return rolling.mean().to_numpy(), rolling.std(ddof=0).fillna(0.0).to_numpy()


def _window(n: int) -> int:
    return int(min(max(10, n // 50), max(n, 1)))


def plot_elbo_traces(
    fits: Mapping[str, Fit], log_evidence: float | Mapping[str, float] | None = None,
) -> Figure:
    """The objective of every fit against iteration (left) and wall time (right).

    One row per kind of fit, each on its own scale: closed-form variational fits (the
    ELBO, exact at every iteration); fits with a stochastic ELBO (ADVI: the one-draw
    estimate is noise, so the running mean with a band of ± 1 sd of its window is drawn);
    point estimates (their log-likelihood, which is not comparable with an ELBO and is
    drawn apart).  ``log_evidence`` (one value, or one per fit name) is drawn as a
    dashed line on the Bayesian rows only.  The wall-time axis is logarithmic from the
    first positive time.
    """
    fits = dict(fits)
    colours = {name: _colour(i) for i, name in enumerate(fits)}
    rows = [(kind, title, ylabel, {n: f for n, f in fits.items()
                                   if f.posterior.kind is kind and _objective_trace(f).size})
            for kind, title, ylabel in _ELBO_PANELS]
    rows = [row for row in rows if row[3]]
    fig = Figure(figsize=(11, 0.6 + 3.4 * max(len(rows), 1)), layout="constrained")
    if not rows:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no fit records an objective trace", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        fig.suptitle("Objective per iteration")
        return fig
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (kind, title, ylabel, group), (ax_iter, ax_time) in zip(rows, axes, strict=True):
        low_candidates = []
        for name, fit in group.items():
            trace = _objective_trace(fit)
            iters = np.arange(trace.size)
            times = np.asarray(fit.time_trace, dtype=float)
            has_time = times.size == trace.size
            if kind is PosteriorKind.Q_DRAWS:
                window = _window(trace.size)
                mean, sd = running_mean(trace, window)
                label = f"{name} (window {window})"
                ax_iter.plot(iters, mean, color=colours[name], lw=1.5, label=label)
                ax_iter.fill_between(iters, mean - sd, mean + sd, color=colours[name],
                                     alpha=0.25, lw=0)
                start = min(trace.size - 1, trace.size // 10)
                low_candidates.append(np.nanmin((mean - sd)[start:]))
                if has_time:
                    keep = times > 0
                    ax_time.plot(times[keep], mean[keep], color=colours[name], lw=1.5,
                                 label=label)
                    ax_time.fill_between(times[keep], (mean - sd)[keep], (mean + sd)[keep],
                                         color=colours[name], alpha=0.25, lw=0)
            else:
                ax_iter.plot(iters, trace, marker=".", ms=3, color=colours[name], lw=1.2,
                             label=name)
                if has_time:
                    keep = times > 0
                    ax_time.plot(times[keep], trace[keep], marker=".", ms=3,
                                 color=colours[name], lw=1.2, label=name)
        timed = bool(ax_time.lines)
        if kind.is_variational:
            for value, label in _evidence_lines(log_evidence, group):
                for ax in (ax_iter, ax_time) if timed else (ax_iter,):
                    ax.axhline(value, color="k", ls="--", lw=1, label=label)
        if low_candidates:
            # The first iterations of a stochastic optimiser are far below the rest;
            # the axis shows the last 90 %, where the comparison is.
            top = max(float(np.nanmax(np.asarray(line.get_ydata(), dtype=float)))
                      for line in ax_iter.lines if np.size(line.get_ydata()))
            bottom = float(np.min(low_candidates))
            margin = 0.05 * max(top - bottom, 1.0)
            ax_iter.set_ylim(bottom - margin, top + margin)
            ax_time.set_ylim(bottom - margin, top + margin)
        ax_iter.set_title(title)
        ax_time.set_title(f"{title.split(':')[0]}: against wall time")
        ax_iter.set_xlabel("iteration")
        ax_time.set_xlabel("wall time since the start (s, log scale)")
        for ax in (ax_iter, ax_time):
            ax.set_ylabel(ylabel)
            if ax.lines:
                ax.legend(loc="lower right", fontsize="small")
        if timed:
            ax_time.set_xscale("log")
        else:
            ax_time.set_xlabel("wall time since the start (s)")
            ax_time.text(0.5, 0.5, "no wall-time trace recorded", ha="center",
                         va="center", transform=ax_time.transAxes, color="0.4")
    fig.suptitle("Objective per iteration and against wall time")
    return fig


def _evidence_lines(log_evidence, group: Mapping[str, Fit]) -> list[tuple[float, str]]:
    if log_evidence is None:
        return []
    if isinstance(log_evidence, Mapping):
        values = [log_evidence.get(name) for name in group]
    else:
        values = [log_evidence]
    finite = sorted({float(v) for v in values if v is not None and np.isfinite(v)})
    return [(v, f"log evidence {v:.2f}") for v in finite]


# ---------------------------------------------------------------------- the data with fits
def _live(fit: Fit, weight_threshold: float) -> np.ndarray:
    weights = np.asarray(fit.weights, dtype=float)
    return np.flatnonzero(weights >= min(weight_threshold, weights.max()))


def _fit_handles(fits: Mapping[str, Fit], what: str) -> list[Line2D]:
    return [Line2D([], [], color=_colour(i), marker=_marker(i), ls="-", mec="k", mew=0.5,
                   label=f"{name}: {what}") for i, name in enumerate(fits)]


def plot_fit_1d(
    x: np.ndarray, fits: Mapping[str, Fit], truth_density=None, bins: int = 80,
    feature_names: Sequence[str] | None = None,
) -> Figure:
    """Histogram of 1-D data with each fit's posterior-predictive density.

    ``truth_density``, when given, is a callable grid -> density drawn in black.
    """
    (label,) = feature_labels(1, feature_names)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    x = np.asarray(x).ravel()
    ax.hist(x, bins=bins, density=True, color="0.85", label="data")
    grid = np.linspace(x.min() - 1.0, x.max() + 1.0, 800)
    for index, (name, fit) in enumerate(fits.items()):
        ax.plot(grid, np.exp(fit.score_samples(grid)), lw=1.5, color=_colour(index),
                label=f"{name}: predictive density")
    if truth_density is not None:
        ax.plot(grid, truth_density(grid), "k--", lw=1, label="truth: density")
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(f"Data ({x.size} points) and the fitted densities")
    ax.legend(fontsize="small")
    return fig


def plot_fit(
    x: np.ndarray, fits: Mapping[str, Fit], truth=None,
    feature_names: Sequence[str] | None = None,
) -> Figure:
    """The data with every fit drawn on it, in the form that suits the dimension.

    1-D: :func:`plot_fit_1d`; 2-D: :func:`plot_fit_2d`; more: :func:`plot_fit_pairs` (a
    pairs grid of at most ``MAX_PAIRS_COLUMNS`` columns).  ``truth`` is a 1-D density
    callable, or an object with ``means`` and optionally ``covariances`` (for example
    :class:`gmmkit.models.base.MixtureData`).  ``feature_names`` label the axes.
    """
    x = np.asarray(x, dtype=float)
    n_features = 1 if x.ndim == 1 else x.shape[1]
    if n_features == 1:
        return plot_fit_1d(x.ravel(), fits, truth if callable(truth) else None,
                           feature_names=feature_names)
    if n_features == 2:
        return plot_fit_2d(x, fits, truth, feature_names=feature_names)
    return plot_fit_pairs(x, fits, truth, feature_names=feature_names)


def _ellipse_path(mean: np.ndarray, cov: np.ndarray, n_sd: float) -> np.ndarray:
    """Points on the ``n_sd`` contour of N(mean, cov), shape (100, 2)."""
    angle = np.linspace(0.0, 2.0 * np.pi, 100)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    # The Cholesky factor maps the unit circle onto the covariance's contour (a tiny
    # jitter keeps a degenerate covariance drawable).
    cov = np.asarray(cov, dtype=float) + 1e-12 * np.eye(2)
    return mean + n_sd * circle @ np.linalg.cholesky(cov).T


def _truth_parts(truth) -> tuple[np.ndarray | None, np.ndarray | None]:
    if truth is None or callable(truth):
        return None, None
    means = getattr(truth, "means", None)
    covs = getattr(truth, "covariances", None)
    return (None if means is None else np.atleast_2d(np.asarray(means, dtype=float)),
            None if covs is None else np.asarray(covs, dtype=float))


def _draw_pair(ax, x: np.ndarray, i: int, j: int, fits: Mapping[str, Fit], truth,
               labels, weight_threshold: float, sds=(1.0, 2.0), size: float = 8) -> None:
    """Column j against column i: the data coloured by ``labels``, each fit's component
    means and covariance ellipses, the truth's means and 2-sd ellipses."""
    pair = [j, i]
    ax.scatter(x[:, j], x[:, i], c=labels, s=size, cmap="tab10", alpha=0.5, linewidths=0)
    for index, fit in enumerate(fits.values()):
        colour = _colour(index)
        live = _live(fit, weight_threshold)
        means = np.asarray(fit.means, dtype=float)[live][:, pair]
        for k in live:
            cov = np.asarray(fit.covariances[k], dtype=float)[np.ix_(pair, pair)]
            for n_sd, style in zip(sds, ("-", ":"), strict=False):
                path = _ellipse_path(np.asarray(fit.means[k], dtype=float)[pair], cov, n_sd)
                ax.plot(path[:, 0], path[:, 1], style, color=colour, lw=1.2)
        ax.plot(means[:, 0], means[:, 1], ls="none", marker=_marker(index), color=colour,
                mec="k", mew=0.5, ms=8)
    t_means, t_covs = _truth_parts(truth)
    if t_means is not None:
        if t_covs is not None:
            for mean, cov in zip(t_means, t_covs.reshape(len(t_means), *t_covs.shape[-2:]),
                                 strict=True):
                path = _ellipse_path(mean[pair], cov[np.ix_(pair, pair)], 2.0)
                ax.plot(path[:, 0], path[:, 1], "k--", lw=1)
        ax.plot(t_means[:, j], t_means[:, i], "kx", ms=8, mew=2, ls="none")


def _legend_handles(fits: Mapping[str, Fit], truth, data_note: str, ellipses: str):
    handles = [Line2D([], [], ls="none", marker="o", color="0.5", alpha=0.6,
                      label=f"data{data_note}")]
    handles += _fit_handles(fits, f"means (marker), {ellipses}")
    t_means, t_covs = _truth_parts(truth)
    if t_means is not None:
        what = "means (x), 2 sd (dashed)" if t_covs is not None else "means (x)"
        handles.append(Line2D([], [], color="k", ls="--", marker="x", mew=2,
                              label=f"truth: {what}"))
    return handles


def _data_note(fits: Mapping[str, Fit]) -> str:
    first = next(iter(fits), None)
    return "" if first is None else f" (colour: {first}'s hard assignments)"


def plot_fit_2d(x: np.ndarray, fits: Mapping[str, Fit], truth=None,
                weight_threshold: float = 0.01,
                feature_names: Sequence[str] | None = None) -> Figure:
    """Scatter of 2-D data, coloured by the first fit's labels, with the means and the 1-
    and 2-sd covariance ellipses of every component (weight at least
    ``weight_threshold``) of every fit."""
    names = feature_labels(2, feature_names)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    first = next(iter(fits.values()), None)
    labels = first.predict(x) if first is not None else "0.5"
    _draw_pair(ax, x, 1, 0, fits, truth, labels, weight_threshold)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"Data ({len(x)} points) and the fitted components "
                 f"(weight ≥ {weight_threshold:g})")
    ax.legend(handles=_legend_handles(fits, truth, _data_note(fits),
                                      "1 sd (solid), 2 sd (dotted)"),
              loc="best", fontsize="small")
    return fig


def pairs_columns(x: np.ndarray, fits: Mapping[str, Fit], max_columns: int,
                  weight_threshold: float = 0.01) -> list[int]:
    """The columns a pairs grid shows: all when there are at most ``max_columns``, else
    those along which the first fit's component means are most spread out (in data sd),
    in their original order."""
    n_features = x.shape[1]
    if n_features <= max_columns:
        return list(range(n_features))
    first = next(iter(fits.values()), None)
    sd = np.std(x, axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    if first is None:
        return list(range(max_columns))
    means = np.asarray(first.means, dtype=float)[_live(first, weight_threshold)]
    spread = np.ptp(means, axis=0) / sd
    return sorted(np.argsort(-spread, kind="stable")[:max_columns].tolist())


def plot_fit_pairs(x: np.ndarray, fits: Mapping[str, Fit], truth=None,
                   feature_names: Sequence[str] | None = None,
                   max_columns: int = MAX_PAIRS_COLUMNS,
                   weight_threshold: float = 0.01) -> Figure:
    """A pairs grid of data with three or more columns: on the diagonal the histogram of
    one column with every fit's marginal density, off it the data coloured by the first
    fit's labels with every fit's means and 2-sd ellipses.  At most ``max_columns``
    columns are shown (see :func:`pairs_columns`); the title names them when not all
    are."""
    x = np.asarray(x, dtype=float)
    names = feature_labels(x.shape[1], feature_names)
    shown = pairs_columns(x, fits, max_columns, weight_threshold)
    n = len(shown)
    fig = Figure(figsize=(2.6 * n + 1.5, 2.6 * n + 1.0), layout="constrained")
    axes = fig.subplots(n, n, squeeze=False)
    first = next(iter(fits.values()), None)
    labels = first.predict(x) if first is not None else np.zeros(len(x), dtype=int)
    small = "x-small" if n > 3 else "small"
    for row, i in enumerate(shown):
        for col, j in enumerate(shown):
            ax = axes[row, col]
            if i == j:
                _draw_marginal(ax, x[:, i], i, fits, weight_threshold)
                ax.set_ylabel("density", fontsize=small)
            else:
                _draw_pair(ax, x, i, j, fits, truth, labels, weight_threshold,
                           sds=(2.0,), size=3)
                ax.set_ylabel(names[i], fontsize=small)
            ax.set_xlabel(names[j], fontsize=small)
            ax.tick_params(labelsize="x-small")
    title = f"Data ({len(x)} points) and the fitted components (weight ≥ {weight_threshold:g})"
    if n < x.shape[1]:
        title += (f"\ncolumns shown: {', '.join(names[j] for j in shown)} ({n} of "
                  f"{x.shape[1]}: those where the first fit's means are most spread)")
    fig.suptitle(title)
    handles = _legend_handles(fits, truth, _data_note(fits), "2 sd (solid)")
    handles.insert(1, Patch(color="0.8", label="data histogram (diagonal)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3),
               fontsize="small")
    return fig


def _draw_marginal(ax, column: np.ndarray, j: int, fits: Mapping[str, Fit],
                   weight_threshold: float) -> None:
    from scipy.stats import norm

    ax.hist(column, bins=30, density=True, color="0.8")
    grid = np.linspace(column.min(), column.max(), 300)
    for index, fit in enumerate(fits.values()):
        live = _live(fit, 0.0)
        weights = np.asarray(fit.weights, dtype=float)[live]
        means = np.asarray(fit.means, dtype=float)[live, j]
        sds = np.sqrt(np.asarray(fit.covariances, dtype=float)[live, j, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            density = np.nansum(weights * norm.pdf(grid[:, None], means, sds), axis=1)
        ax.plot(grid, density, color=_colour(index), lw=1.2)


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
        (axes[0, 0], "n", "mean_error", "N", "mean |error| of the means", True,
         "Error of the means"),
        (axes[0, 1], "n", "wall_s", "N", "wall time (s)", True, "Wall time"),
        (axes[1, 0], "separation", "ari", "separation (obs sd)", "ARI vs true labels", False,
         "Recovery of the clusters"),
        (axes[1, 1], "n", "elbo_gap", "N", "log evidence - ELBO (nats)", False,
         "ELBO gap"),
    ]
    for ax, x, y, xlabel, ylabel, loglog, title in panels:
        ax.set_title(title)
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
    fig.suptitle("Sweep: each point averages the data sets with the same method and x")
    return fig


#: fit.png draws a random sample of at most this many points.
PLOT_MAX_POINTS = 20_000


def plot_objective_trace(result: Fit) -> Figure:
    """The objective of one fit per iteration and against wall time: the log-likelihood
    for maximum-likelihood fits, else the ELBO (its running mean for a stochastic ELBO);
    see :func:`plot_elbo_traces`."""
    fig = plot_elbo_traces({result.method: result})
    fig.suptitle(f"{result.method}: objective per iteration and against wall time")
    return fig


def fit_figures(result: Fit, feature_names: Sequence[str] | None = None) -> dict[str, Figure]:
    """The figures of one fit, by file stem: ``trace`` (:func:`plot_objective_trace`) and
    ``fit`` (the data with the fit; a sample of at most ``PLOT_MAX_POINTS`` points),
    with the axes named by ``feature_names`` (the data's column names) when given."""
    x = result.data
    if len(x) > PLOT_MAX_POINTS:
        # A million-point scatter takes matplotlib ~10 s and shows no more than a sample.
        x = x[np.sort(np.random.default_rng(0).choice(len(x), PLOT_MAX_POINTS, replace=False))]
    return {"trace": plot_objective_trace(result),
            "fit": plot_fit(x, {result.method: result}, feature_names=feature_names)}


# ----------------------------------------------------------------------------- selection
_CRITERION_LABELS = {
    "bound": "ELBO + label-symmetry correction (nats)",
    "exact": "exact log evidence (nats)",
    "bic": "BIC = -2 ln L + p ln N",
    "aic": "AIC = -2 ln L + 2p",
    "icl": "ICL = BIC + 2 x entropy",
    "cv": "held-out log predictive density (nats)",
    "loo": "PSIS-LOO elpd (nats)",
    "evidence": "log evidence estimated by SMC (nats)",
}


def _family_label(model: str, covariance: str, weight_prior: str) -> str:
    prior = "" if weight_prior == "none" else f", {weight_prior}"
    return f"{model} {covariance}{prior}"


def plot_selection(selection, criterion: str) -> Figure:
    """``criterion`` against K, one line per (model, covariance, weight prior), with
    error bars of +-1 se where the criterion has one (Bishop PRML Fig. 10.7 style); the
    chosen candidate is circled.

    Parameters
    ----------
    selection : gmmkit.comparisons.Selection
    criterion : str
        One of ``selection.criteria``.
    """
    if criterion not in selection.criteria:
        raise ValueError(f"criterion must be one of the selection's criteria "
                         f"{', '.join(selection.criteria)}, got {criterion!r}")
    table = selection.table
    higher = selection.higher_is_better[criterion]
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    se_column = f"{criterion}_se"
    for index, (family, group) in enumerate(
            table.groupby(["model", "covariance", "weight_prior"], sort=False)):
        group = group.sort_values("n_components")
        y = group[criterion].to_numpy(dtype=float)
        if not np.isfinite(y).any():
            continue
        k = group["n_components"].to_numpy(dtype=float)
        se = group[se_column].to_numpy(dtype=float) if se_column in group else None
        ax.errorbar(k, y, yerr=se, fmt="o-", capsize=3, color=_colour(index),
                    label=_family_label(*family))
    best = selection.best.get(criterion)
    if best is not None:
        row = selection.row(best)
        ax.plot([best.n_components], [row[criterion]], "o", ms=14, mfc="none", mec="k",
                label=f"chosen: {best}")
    direction = "higher is better" if higher else "lower is better"
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{_CRITERION_LABELS.get(criterion, criterion)} ({direction})")
    ax.set_title(f"Model selection by {criterion}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ax.lines:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, f"no candidate has a {criterion} value", ha="center",
                va="center", transform=ax.transAxes)
    return fig


def plot_bic(selection) -> Figure:
    """mclust-style BIC plot: BIC against K, one line per covariance type of the
    maximum-likelihood mixtures.  gmmkit's (scikit-learn's) sign: BIC = -2 ln L + p ln N,
    lower is better (mclust plots the negative, higher is better)."""
    if "bic" not in selection.criteria:
        raise ValueError("selection must include the 'bic' criterion to plot BIC")
    table = selection.table
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    markers = {"full": "o", "diag": "s", "spherical": "^", "tied": "D"}
    for index, (covariance, group) in enumerate(table.groupby("covariance", sort=False)):
        group = group[np.isfinite(group["bic"].to_numpy(dtype=float))]
        if group.empty:
            continue
        group = group.sort_values("n_components")
        ax.plot(group["n_components"], group["bic"], "-", marker=markers.get(covariance, "o"),
                color=_colour(index), label=str(covariance))
    ax.set_xlabel("number of components K")
    ax.set_ylabel("BIC = -2 ln L + p ln N (lower is better)")
    ax.set_title("BIC by covariance type (maximum likelihood, EM)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ax.lines:
        ax.legend(title="covariance", fontsize="small")
    return fig


def selection_figures(selection) -> dict[str, Figure]:
    """Every figure of a selection by file stem: ``selection_<criterion>`` for each
    criterion with a value, and ``bic_by_covariance`` when BIC was computed."""
    figures = {}
    table = selection.table
    for criterion in selection.criteria:
        if np.isfinite(table[criterion].to_numpy(dtype=float)).any():
            figures[f"selection_{criterion}"] = plot_selection(selection, criterion)
    if "bic" in selection.criteria and np.isfinite(table["bic"].to_numpy(dtype=float)).any():
        figures["bic_by_covariance"] = plot_bic(selection)
    return figures
