"""Experiment sweeps: how does each method behave as N, K and the separation change?

:func:`sweep` simulates data sets on a grid (sample size ``n``, number of clusters ``k``,
separation of the cluster means in observation-sd units, seed), fits every method
through :func:`gmmkit.fit` and returns one tidy row per (data set, method).
:func:`gmmkit.report.plot_sweep` draws the standard panels from that table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from gmmkit._validation import check_choice, check_int, check_positive
from gmmkit.api import fit
from gmmkit.comparisons.align import matching_permutation
from gmmkit.comparisons.diagnostics import has_importance_weights, psis_diagnostics
from gmmkit.comparisons.evidence import choose_evidence, evidence_estimates
from gmmkit.inference.methods import get_method
from gmmkit.models.base import MixtureData
from gmmkit.models.factory import build_model
from gmmkit.models.univariate import UnivariateGMM

__all__ = ["SWEEP_COLUMNS", "simulate", "sweep"]

#: Columns of the sweep table, in order.
SWEEP_COLUMNS = (
    "n", "k", "separation", "seed", "method", "mean_error", "elbo", "log_evidence",
    "log_evidence_source", "elbo_gap", "psis_khat", "ari", "wall_s", "n_iter", "converged",
)


def simulate(
    n: int, k: int, separation: float | None, seed: int, *, obs_sd: float = 1.0,
    prior_sd: float = 10.0,
) -> MixtureData:
    """Univariate mixture data: ``k`` equally weighted clusters with sd ``obs_sd``.

    With a ``separation``, the true means are ``separation * obs_sd`` apart and centred
    on 0; with ``separation=None`` they are drawn from the model's prior N(0, prior_sd^2).
    """
    if separation is None:
        return UnivariateGMM(k, prior_sd, obs_sd).sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    means = separation * obs_sd * (np.arange(k) - (k - 1) / 2.0)
    labels = rng.integers(k, size=n)
    x = rng.normal(means[labels], obs_sd)
    return MixtureData(
        x=x, labels=labels, means=means, weights=np.full(k, 1.0 / k),
        covariances=np.full((k, 1, 1), obs_sd**2),
    )


def _as_list(name: str, values: Any) -> list:
    if isinstance(values, str) or not isinstance(values, Iterable):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name} must hold at least one value, got an empty list")
    return values


def sweep(
    methods: Sequence[str] | str,
    n: Sequence[int] | int = (100, 1000),
    k: Sequence[int] | int = (3,),
    separation: Sequence[float | None] | float | None = (4.0,),
    seeds: Sequence[int] | int = (0,),
    *,
    model: str = "univariate",
    obs_sd: float = 1.0,
    prior_sd: float | None = None,
    n_init: int = 1,
    evidence: bool = True,
    psis_draws: int = 500,
    fit_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Fit every method on every simulated data set of a grid.

    Parameters
    ----------
    methods : str or list of str
        Methods of :func:`gmmkit.fit` ("cavi", "advi", "nuts", ...).
    n, k, separation, seeds : value or list of values
        The grid: sample sizes, numbers of clusters, separations of neighbouring true
        means in units of ``obs_sd`` (None: means drawn from the prior), and data seeds
        (each data set is fitted with the same seed).
    model : {"univariate"}
        The data-generating and fitted model (Blei et al.'s univariate GMM).
    obs_sd : float
        Known observation sd tau.
    prior_sd : float, optional
        Prior sd sigma of the fitted model's means; by default the rule every gmmkit
        entry point shares (:func:`gmmkit.models.factory.default_prior_sd`: 3 x the
        data's root mean square), so the prior covers every point.  Data whose means are
        drawn from the prior (``separation=None``) use N(0, 10^2), or N(0, prior_sd^2).
    n_init : int
        Restarts per fit.
    evidence : bool
        Fill ``log_evidence``/``elbo_gap``/``psis_khat``: exact enumeration where K**N is
        small, the fit's own estimate (SMC), else importance sampling from the fit's q
        with ``psis_draws`` draws (variational methods only).
    fit_options : dict of method to dict, optional
        Extra keyword arguments of :func:`gmmkit.fit` per method (e.g. NUTS ``draws``).

    Returns
    -------
    pandas.DataFrame
        One row per (n, k, separation, seed, method) with the columns of
        ``SWEEP_COLUMNS``: ``mean_error`` is the mean absolute error of the fitted means
        after matching them to the true means; ``ari`` the adjusted Rand index of the
        hard assignments against the true labels; ``wall_s`` the fit's wall time.
    """
    check_choice("model", model, ("univariate",))
    methods = [str(m) for m in _as_list("methods", methods)]
    ns = [check_int("n", v, 1) for v in _as_list("n", n)]
    ks = [check_int("k", v, 1) for v in _as_list("k", k)]
    separations = [
        None if v is None else check_positive("separation", v)
        for v in _as_list("separation", separation)
    ]
    seed_list = [check_int("seeds", v, 0) for v in _as_list("seeds", seeds)]
    obs_sd = check_positive("obs_sd", obs_sd)
    fit_options = dict(fit_options or {})
    unknown = set(fit_options) - set(methods)
    if unknown:
        raise ValueError(
            f"fit_options has entries for {sorted(unknown)}, which are not among the methods "
            f"{methods}"
        )
    rows = []
    for n_points, n_comp, sep, seed in itertools.product(ns, ks, separations, seed_list):
        if n_points < n_comp:
            raise ValueError(f"n must be at least k, got n = {n_points} with k = {n_comp}")
        base_prior = 10.0 if prior_sd is None else check_positive("prior_sd", prior_sd)
        data = simulate(n_points, n_comp, sep, seed, obs_sd=obs_sd, prior_sd=base_prior)
        gmm = build_model(model, n_comp, data.x[:, None], prior_sd=prior_sd, obs_sd=obs_sd)
        for method in methods:
            restarts = {"n_init": n_init} if "n_init" in get_method(method).common else {}
            result = fit(gmm, data.x, method, seed=seed, **restarts,
                         **dict(fit_options.get(method, {})))
            means = result.means[:, 0]
            perm = matching_permutation(means, data.means)
            row = {
                "n": n_points, "k": n_comp, "separation": np.nan if sep is None else sep,
                "seed": seed, "method": method,
                "mean_error": float(np.mean(np.abs(means[perm] - data.means))),
                "elbo": float(result.elbo),
                "log_evidence": np.nan, "log_evidence_source": "", "psis_khat": np.nan,
                "ari": float(adjusted_rand_score(
                    data.labels, np.argmax(result.responsibilities, axis=1)
                )),
                "wall_s": float(result.elapsed_s), "n_iter": int(result.n_iter),
                "converged": bool(result.converged),
            }
            if evidence:
                row.update(_evidence(result, method, True, psis_draws, seed))
            row["elbo_gap"] = row["log_evidence"] - row["elbo"]
            rows.append(row)
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def _evidence(result, name: str, exact: bool, psis_draws: int, seed: int) -> dict[str, Any]:
    """The evidence columns of one fit, by the one policy of ``compare``."""
    psis = {}
    if has_importance_weights(result):
        psis[name] = psis_diagnostics(result, n_draws=psis_draws, seed=seed)
    chosen, reason = choose_evidence(evidence_estimates({name: result}, psis, exact=exact))
    return {
        "psis_khat": psis[name].khat if psis else np.nan,
        "log_evidence": chosen.value if chosen is not None else np.nan,
        "log_evidence_source": chosen.source if chosen is not None else reason,
    }
