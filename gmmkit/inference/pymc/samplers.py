"""NUTS and SMC on the model's PyMC graph.

Both return the same :class:`gmmkit.result.Fit` as the other methods, with the sampler's
draws under the canonical names.  They reuse the cached graph (:mod:`.cache`), but PyMC
compiles their log density and gradient on every call (about 1 s).

``log_evidence`` (SMC): the mean over chains of the final ``log_marginal_likelihood``,
always for the exchangeable model.  The ordered transform restricts the prior to 1/K!
of the space without renormalising, so Z = K! Z_ordered; SMC on the ordered graph starts
from *sorted* prior draws (density K! p(mu) on the ordered region), which builds the
log K! into the estimate (``Fit.log_evidence_source`` says so).  ``log_evidence_se`` is
the standard error over chains (sd / sqrt(chains)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmmkit import _arviz
from gmmkit._warnings import ConvergenceWarning, warn
from gmmkit.inference.pymc._common import (
    canonical_draws,
    interrupts_propagate,
    make_fit,
    prepared,
    starts,
)
from gmmkit.inference.pymc.graphs import ordered_prior_particles
from gmmkit.inference.pymc.posterior import DrawsPosterior
from gmmkit.result import Fit

__all__ = ["fit_nuts", "fit_smc"]


def fit_nuts(model, x: np.ndarray, *, method: str, seed: int, init: Any,
             progress: bool = False, **options: Any) -> Fit:
    """Fit ``model`` to validated data ``x`` with PyMC's NUTS.

    ``method`` is the method table's name (``Fit.method``); ``seed`` seeds PyMC.  Every
    chain starts from one point, which PyMC jitters per chain: ``init``'s point estimates
    when it is a Fit, else component means seeded on the data by ``init``.  ``options``
    (defaults merged by :func:`gmmkit.fit`): ``draws``, ``tune``, ``chains``,
    ``target_accept``, ``ordered``.
    """
    with prepared(model, x, method, options, progress) as run:
        model = run.key.model
        # One start for every chain (PyMC jitters it per chain): chains seeded apart
        # could settle in different labellings, and r-hat would flag label switching.
        chain_starts = starts(model, x, init, 1, seed) * run.opts["chains"]
        result = _fit_nuts(model, run.graph, seed, chain_starts, progress, run.opts)
    return make_fit(method, model, x, result, seed=seed, start_time=run.start_time,
                    graph_s=run.graph_s)


def fit_smc(model, x: np.ndarray, *, method: str, seed: int, progress: bool = False,
            **options: Any) -> Fit:
    """Fit ``model`` to validated data ``x`` with PyMC's sequential Monte Carlo.

    Starts from the prior (sorted prior draws under the ordered transform); ``options``
    (defaults merged by :func:`gmmkit.fit`): ``draws`` (particles per chain), ``chains``,
    ``ordered``.
    """
    with prepared(model, x, method, options, progress) as run:
        result = _fit_smc(run.key.model, run.graph, method, seed, progress, run.opts,
                          run.key.ordered)
    return make_fit(method, run.key.model, x, result, seed=seed, start_time=run.start_time,
                    graph_s=run.graph_s)


def _fit_nuts(model, graph, seed, chain_starts, progress, opts) -> dict:
    import pymc as pm

    chains = opts["chains"]
    with graph, interrupts_propagate():
        idata = pm.sample(
            draws=opts["draws"], tune=opts["tune"], chains=chains, cores=1,
            random_seed=seed, progressbar=progress, initvals=chain_starts,
            target_accept=opts["target_accept"], compute_convergence_checks=False,
            return_inferencedata=True,
        )
    draws = canonical_draws(model, idata.posterior)
    diag = _arviz.sampler_diagnostics(idata, list(model.parameter_dims))
    problems = []
    if not np.isfinite(diag["rhat_max"]) or diag["rhat_max"] > 1.01:
        problems.append(f"r-hat {diag['rhat_max']:.3f} > 1.01")
    for kind in ("ess_bulk_min", "ess_tail_min"):
        if not diag[kind] >= 100 * chains:
            problems.append(f"{kind.split('_')[1]} ESS {diag[kind]:.0f} < 100 * chains "
                            f"= {100 * chains}")
    if diag["divergences"] > 0:
        problems.append(f"{diag['divergences']} divergent transitions")
    if problems:
        warn("NUTS did not converge: " + "; ".join(problems), ConvergenceWarning)
    diag["problems"] = tuple(problems)
    diag["diverging"] = np.asarray(idata.sample_stats["diverging"].values, dtype=bool)
    # Per-draw statistics under ArviZ's names (energy, tree depth, step size, ...), so
    # that Fit.to_inference_data carries a sample_stats group (az.plot_energy).
    sample_stats = _arviz.sample_stats_arrays(idata)
    return {
        "posterior": DrawsPosterior(model, draws, sample_stats=sample_stats),
        "elbo": float("nan"),
        "elbo_trace": np.empty(0),
        "converged": not problems,
        "n_iter": int(opts["draws"] + opts["tune"]),
        "diagnostics": diag,
    }


def _fit_smc(model, graph, method, seed, progress, opts, used_ordered) -> dict:
    import pymc as pm

    start = ordered_prior_particles(model, opts["draws"], opts["chains"], seed) if (
        used_ordered) else None
    with graph, interrupts_propagate():
        idata = pm.sample_smc(
            draws=opts["draws"], chains=opts["chains"], cores=1, random_seed=seed,
            progressbar=progress, compute_convergence_checks=False, start=start,
        )
    lml = _final_log_marginal_likelihoods(idata)
    # PyMC's SMC starts from prior draws, which under the ordered transform are unsorted
    # (NaN in the unconstrained space), so the ordered graph starts from *sorted* prior
    # draws instead.  Their density is the normalised ordered prior, K! p(mu) on the
    # ordered region; SMC's estimate is E_start[L(mu)] = K! Z_ordered = Z, i.e. already
    # the exchangeable model's evidence: the log K! correction is built in, not added.
    correction = 0.0
    source = (f"{method} (ordered transform, particles started from the sorted prior: "
              "log Z = log Z_ordered + log K! is built in)") if used_ordered else method
    spread = float(lml.std(ddof=1) / np.sqrt(lml.size)) if lml.size > 1 else float("nan")
    return {
        "posterior": DrawsPosterior(model, canonical_draws(model, idata.posterior)),
        "elbo": float("nan"),
        "elbo_trace": np.empty(0),
        "converged": True,
        "n_iter": int(opts["draws"]),
        "log_evidence": float(lml.mean() + correction),
        "log_evidence_se": spread,
        "log_evidence_source": source,
        "diagnostics": {"log_marginal_likelihood_chains": lml + correction,
                        "log_k_factorial_correction": correction},
    }


def _final_log_marginal_likelihoods(idata) -> np.ndarray:
    """The final-stage log marginal likelihood of every SMC chain, shape (chains,).

    PyMC stores the per-stage values as (chain, stage) scalars when every chain ran the
    same number of tempering stages, but as (1, chain) *lists* when the counts differ
    (``np.array(ragged, dtype=object)`` gains a leading chain axis of length 1).
    """
    values = np.asarray(idata.sample_stats["log_marginal_likelihood"].values, dtype=object)
    if all(np.ndim(v) == 0 for v in values.ravel()):
        chains = list(values.reshape(values.shape[0], -1))
    else:
        chains = list(values.ravel())
    out = []
    for chain in chains:
        flat = np.asarray([float(v) for v in np.ravel(np.asarray(chain, dtype=object))])
        flat = flat[np.isfinite(flat)]
        out.append(flat[-1])
    return np.asarray(out, dtype=float)
