"""Stochastic variational inference (issue 15): the rho = 1 full-batch oracle against
CAVI / Bishop VB, agreement with the converged batch fit, reproducibility, options."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gmmkit
from gmmkit.datasets import old_faithful
from gmmkit.inference.cavi import GaussianMeansPosterior
from gmmkit.inference.methods import CAVI, SVI
from gmmkit.inference.vb import BishopPosterior
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.univariate import UnivariateGMM


def _separated(n=3000, seed=0):
    """3 clusters 10 sd apart (unit noise)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 1.0, n // 3) for c in (-10.0, 0.0, 10.0)])


def _faithful():
    X = np.asarray(old_faithful(), dtype=float)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _quiet_fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
        return gmmkit.fit(*args, **kw)


def _overlapping():
    """3 clusters 2 sd apart: CAVI needs many sweeps, so the oracle sees many steps."""
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(c, 1.0, 300) for c in (-2.0, 0.0, 2.0)])


CASES = [
    pytest.param(UnivariateGMM(3, prior_sd=10.0), _overlapping, id="univariate"),
    pytest.param(BayesianGMM(2), _faithful, id="bishop"),
]


@pytest.mark.parametrize(("model", "data"), CASES)
def test_full_batch_with_unit_step_is_one_batch_iteration_per_step(model, data):
    # batch_size = N and kappa = 0 (rho_t = 1): every SVI step is one CAVI / VB sweep, so
    # from the same seed (same initial state) the traces and parameters agree to rounding.
    x = data()
    n_steps = 6
    batch = _quiet_fit(model, x, CAVI.name, seed=3, tol=0.0, max_iter=n_steps)
    svi = _quiet_fit(model, x, SVI.name, seed=3, tol=0.0, n_epochs=n_steps,
                     batch_size=x.shape[0], kappa=0.0, tau=0.0)
    assert svi.diagnostics["steps_per_epoch"] == 1
    assert svi.elbo_trace.shape == batch.elbo_trace.shape
    np.testing.assert_allclose(svi.elbo_trace, batch.elbo_trace, rtol=1e-10, atol=0)
    for name, value in batch.variational_params.items():
        np.testing.assert_allclose(svi.variational_params[name], value, rtol=1e-10,
                                   atol=1e-12 * np.abs(value).max())
    # And the oracle can fail: with a step size below 1 the trace differs.
    damped = _quiet_fit(model, x, SVI.name, seed=3, tol=0.0, n_epochs=n_steps,
                        batch_size=x.shape[0], kappa=1.0, tau=1.0)
    assert abs(damped.elbo_trace[1] - batch.elbo_trace[1]) > 1e-6 * abs(batch.elbo)


@pytest.mark.parametrize(("model", "data", "options", "elbo_gap"), [
    # Measured (seeds 0-2): gaps 2e-3 nats (univariate, N = 3000, |ELBO| ~ 7.6e3) and
    # 3e-4 nats (Old Faithful, 2 minibatches of 136, |ELBO| ~ 434), means within 0.05 sd;
    # the bounds leave about 10x room for the minibatch noise left at the last step size.
    pytest.param(UnivariateGMM(3, prior_sd=10.0), _separated, {}, 0.05, id="univariate"),
    pytest.param(BayesianGMM(2), _faithful, {}, 0.01, id="bishop"),
    pytest.param(BayesianGMM(2), _faithful, {"batch_size": 32, "n_epochs": 50}, 0.05,
                 id="bishop-small-batches"),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_svi_reaches_the_batch_optimum(model, data, options, elbo_gap, seed):
    x = data()
    batch = gmmkit.fit(model, x, CAVI.name, seed=seed)
    svi = _quiet_fit(model, x, SVI.name, seed=seed, **options)
    assert svi.method == SVI.name
    assert type(svi.posterior) is type(batch.posterior)
    assert abs(svi.elbo - batch.elbo) <= elbo_gap
    assert svi.elbo <= batch.elbo + 1e-3 * elbo_gap + 1e-9 * abs(batch.elbo)
    # Means within 0.1 posterior sd of the batch fit's (same init: same labels).
    if isinstance(batch.posterior, GaussianMeansPosterior):
        sd = np.sqrt(batch.posterior.s2)[:, None]
    else:
        assert isinstance(batch.posterior, BishopPosterior)
        sd = np.sqrt(np.diagonal(batch.covariances, axis1=1, axis2=2)
                      / batch.posterior.beta[:, None])
    assert np.all(np.abs(svi.means - batch.means) <= 0.1 * sd)


def test_elbo_is_the_full_data_elbo_of_the_final_parameters():
    from gmmkit.inference.vb import elbo_at

    X = _faithful()
    svi = _quiet_fit(BayesianGMM(2), X, SVI.name, seed=0, batch_size=50, n_epochs=5)
    assert svi.elbo == svi.elbo_trace[-1]
    assert svi.elbo_trace.shape == (svi.n_iter + 1,)
    np.testing.assert_allclose(elbo_at(BayesianGMM(2), X, dict(svi.variational_params)),
                               svi.elbo, rtol=1e-10)
    np.testing.assert_allclose(svi.responsibilities.sum(axis=1), 1.0)
    d = svi.diagnostics
    assert d["batch_size"] == 50 and d["steps_per_epoch"] == 6
    assert d["n_steps"] == 6 * svi.n_iter
    assert d["final_step_size"] == pytest.approx((d["n_steps"] + 1.0) ** -0.7)


def test_same_seed_same_fit_and_another_seed_differs():
    x = _separated(600)
    model = UnivariateGMM(3, prior_sd=10.0)
    a = _quiet_fit(model, x, SVI.name, seed=5, batch_size=64, n_epochs=3, tol=0.0)
    b = _quiet_fit(model, x, SVI.name, seed=5, batch_size=64, n_epochs=3, tol=0.0)
    c = _quiet_fit(model, x, SVI.name, seed=6, batch_size=64, n_epochs=3, tol=0.0)
    np.testing.assert_array_equal(a.elbo_trace, b.elbo_trace)
    np.testing.assert_array_equal(a.posterior.m, b.posterior.m)
    assert not np.array_equal(np.sort(a.posterior.m), np.sort(c.posterior.m))


def test_stops_on_tol_and_warns_at_n_epochs():
    x = _separated(600)
    model = UnivariateGMM(3, prior_sd=10.0)
    fit = gmmkit.fit(model, x, SVI.name, seed=0, tol=1.0, n_epochs=50)
    assert fit.converged and fit.n_iter < 50
    assert abs(fit.elbo_trace[-1] - fit.elbo_trace[-2]) <= 1.0
    with pytest.warns(gmmkit.ConvergenceWarning, match="n_epochs=2"):
        fit = gmmkit.fit(model, x, SVI.name, seed=0, tol=0.0, n_epochs=2)
    assert not fit.converged and fit.n_iter == 2


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 601}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"kappa": -0.1}, "kappa"),
    ({"kappa": 1.5}, "kappa"),
    ({"tau": -1.0}, "tau"),
    ({"tau": float("nan")}, "tau"),
    ({"n_epochs": 0}, "n_epochs"),
    ({"max_iter": 10}, "max_iter"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        gmmkit.fit(UnivariateGMM(3, prior_sd=10.0), _separated(600), SVI.name, seed=0, **options)
