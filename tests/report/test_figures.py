"""Figures a statistician reads at a glance: titles and labels on every axes, objectives
by kind of fit on their own scales, live components only, the data's column names."""

from __future__ import annotations

import types

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

import gmmkit
from gmmkit.models import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit.posterior import PosteriorKind
from gmmkit.report import compare, fit_figures
from gmmkit.report.figures import plot_elbo_traces, plot_fit

FAITHFUL_NAMES = ["eruptions", "waiting"]


def assert_labelled(fig, where=""):
    """Every axes with data has a title (or the figure a suptitle) and axis labels."""
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    drawn = [ax for ax in fig.axes if ax.has_data()]
    assert drawn, f"{where}: no axes with data"
    for ax in drawn:
        assert ax.get_title() or suptitle, f"{where}: axes without a title"
        assert ax.get_xlabel(), f"{where}: axes {ax.get_title()!r} without an x label"
        assert ax.get_ylabel(), f"{where}: axes {ax.get_title()!r} without a y label"


@pytest.fixture(scope="module")
def faithful():
    """Bishop's K = 6 on standardised Old Faithful (alpha0 = 1e-3): VB keeps 2."""
    X = gmmkit.datasets.old_faithful(standardize=True)
    model = BayesianGMM(6, alpha0=1e-3)
    fits = {"vb": gmmkit.fit(model, X, "cavi", seed=0),
            "vb-seed1": gmmkit.fit(model, X, "cavi", seed=1)}
    return X, fits


@pytest.fixture(scope="module")
def faithful_report(faithful):
    _, fits = faithful
    return compare(fits, reference="vb", min_weight=0.01, n_draws=200, psis_draws=200,
                   feature_names=FAITHFUL_NAMES)


@pytest.fixture(scope="module")
def univariate_report():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-4, 1, 80), rng.normal(4, 1, 80)])
    model = UnivariateGMM(2, 10.0)
    fits = [gmmkit.fit(model, x, seed=0), gmmkit.fit(model, x, seed=3)]
    return compare(fits, n_draws=200, psis_draws=200, feature_names=["height"])


@pytest.fixture(scope="module")
def three_d_report():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 2.0], [0.0, 5.0, -2.0]])
    x = np.concatenate([rng.normal(c, 1.0, size=(60, 3)) for c in centres])
    model = BayesianGMM(3)
    fits = [gmmkit.fit(model, x, seed=0, n_init=2), gmmkit.fit(model, x, seed=1, n_init=2)]
    return compare(fits, n_draws=200, psis_draws=200, feature_names=["a", "b", "c"])


@pytest.mark.parametrize("which", ["faithful_report", "univariate_report", "three_d_report"])
def test_every_figure_has_a_title_and_axis_labels(which, request):
    report = request.getfixturevalue(which)
    for stem, fig in report.figures().items():
        assert_labelled(fig, f"{which}/{stem}")


def test_forest_and_trace_leave_out_the_components_the_reference_switched_off(
        faithful_report):
    weights = faithful_report.aligned["vb"].weights
    live = np.flatnonzero(weights >= 0.01)
    assert live.size == 2  # Bishop's Fig. 10.6: two of six components survive
    expected = {f"means[component {k + 1}, {name}]" for k in live for name in FAITHFUL_NAMES}
    forest = faithful_report.plot_forest()
    ticks = {t.get_text() for t in forest.axes[0].get_yticklabels()}
    assert ticks == expected
    assert "2 of 6 components shown" in forest.axes[0].get_title()
    # min_weight=0: every component, named from 1 to 6
    every = {t.get_text() for t in faithful_report.plot_forest(0.0).axes[0].get_yticklabels()}
    assert len(every) == 12 and "means[component 6, waiting]" in every
    trace = faithful_report.plot_trace("vb")
    titles = {ax.get_title() for ax in trace.axes[::2]}
    assert titles == {f"weights[component {k + 1}]" for k in live} | expected


def test_report_keeps_min_weight_and_feature_names(faithful_report):
    assert faithful_report.min_weight == 0.01
    assert faithful_report.feature_names == tuple(FAITHFUL_NAMES)


def test_fit_figure_uses_column_names_and_a_legend_entry_per_marker(faithful_report):
    fig = faithful_report.plot_fit()
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == tuple(FAITHFUL_NAMES)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("data")
    assert any(t.startswith("vb:") for t in legend)
    assert any(t.startswith("vb-seed1:") for t in legend)


def test_pairs_grid_for_more_than_two_columns(three_d_report):
    fig = three_d_report.plot_fit()
    assert len(fig.axes) == 9 and all(ax.name != "3d" for ax in fig.axes)
    assert {ax.get_xlabel() for ax in fig.axes} == {"a", "b", "c"}
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("cavi:") for t in texts) and texts[0].startswith("data")


def test_pairs_grid_shows_at_most_six_columns_and_says_which():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8))
    x[:60, 5] += 8.0  # the clusters differ in column 6 only
    fit = gmmkit.fit(GaussianMixture(2), x, "em", seed=0)
    names = [f"v{j}" for j in range(8)]
    fig = plot_fit(x, {"em": fit}, feature_names=names)
    assert len(fig.axes) == 36
    title = fig._suptitle.get_text()
    assert "columns shown:" in title and "v5" in title and "(6 of 8" in title
    assert_labelled(fig, "pairs 8 columns")


def test_fit_figures_use_feature_names(faithful):
    _, fits = faithful
    figs = fit_figures(fits["vb"], feature_names=FAITHFUL_NAMES)
    assert figs["fit"].axes[0].get_xlabel() == "eruptions"
    for stem, fig in figs.items():
        assert_labelled(fig, stem)


def _fake_fit(kind, trace, times=None, log_likelihood=None):
    return types.SimpleNamespace(
        posterior=types.SimpleNamespace(kind=kind), elbo_trace=np.asarray(trace),
        time_trace=np.asarray(times if times is not None else []),
        log_likelihood_trace=log_likelihood)


def test_elbo_panels_by_kind_running_mean_and_positive_log_time():
    rng = np.random.default_rng(0)
    n = 2000
    advi_trace = -450 - 300 * np.exp(-np.arange(n) / 200) + 40 * rng.standard_normal(n)
    fits = {
        "cavi": _fake_fit(PosteriorKind.CLOSED_FORM_Q, np.linspace(-550, -441, 60),
                          np.linspace(0.0, 0.2, 60)),
        "advi": _fake_fit(PosteriorKind.Q_DRAWS, advi_trace),
        "em": _fake_fit(PosteriorKind.POINT_ESTIMATE, np.linspace(-400, -385, 8),
                        np.linspace(0.01, 0.02, 8), np.linspace(-400, -385, 8)),
    }
    fig = plot_elbo_traces(fits, {"cavi": -437.5, "advi": -437.5, "em": np.nan})
    axes = np.array(fig.axes).reshape(3, 2)
    assert_labelled(fig, "elbo")
    # one row per kind: CAVI alone on its scale, ADVI, EM's log-likelihood apart
    assert [ax.get_legend().get_texts()[0].get_text() for ax in axes[:, 0]] == [
        "cavi", "advi (window 40)", "em"]
    assert "log-likelihood" in axes[2, 0].get_ylabel()
    # the evidence line is on the Bayesian rows only, never beside EM's log-likelihood
    dashed = [[line for line in ax.lines if line.get_linestyle() == "--"] for ax in axes[:, 0]]
    assert [len(d) for d in dashed] == [1, 1, 0]
    # ADVI: the running mean (far smoother than the one-draw ELBO) with a +-1 sd band
    advi_line = axes[1, 0].lines[0]
    assert np.std(np.diff(advi_line.get_ydata())) < 0.2 * np.std(np.diff(advi_trace))
    assert any(isinstance(c, PolyCollection) for c in axes[1, 0].collections)
    # time: log scale, positive times only (CAVI's t = 0 is left out)
    assert axes[0, 1].get_xscale() == "log"
    assert all(np.all(np.asarray(line.get_xdata()) > 0) for line in axes[0, 1].lines
               if line.get_linestyle() != "--")
    # ADVI records no wall-time trace: that panel says so and has no evidence line
    assert not axes[1, 1].lines
