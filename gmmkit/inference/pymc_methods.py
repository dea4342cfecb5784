"""ADVI, full-rank ADVI, NUTS and SMC on the model's PyMC graph (``model.to_pymc``).

Every method returns the same :class:`gmmkit.result.Fit` as the closed-form methods, with
draws under the canonical names (``mu``; ``weights``/``means``/``covariances``), so ArviZ
lines the fits up.

Scales:

* ``elbo`` (ADVI): E_q[log p(x, theta) + log|J| - log q(theta_unconstrained)], estimated
  from enough draws of q that its standard error is at most 0.05 nats (PyMC's convention:
  the Jacobian of the transforms is included).  No correction for the ordered transform:
  on the ordered region the ordered model's unnormalised density equals the exchangeable
  model's, so a q living there has the same ELBO under both.
* ``log_evidence`` (SMC): the mean over chains of ``log_marginal_likelihood``, plus
  log K! when the ordered transform was used (it restricts the prior to 1/K! of the space
  without renormalising, so Z = K! Z_ordered).  The spread over chains is
  ``log_evidence_se``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp

from gmmkit import _arviz
from gmmkit.result import Fit

__all__ = ["DrawsPosterior", "fit_pymc"]

_LOG_2PI = np.log(2 * np.pi)

_DEFAULTS = {
    "advi": {"n_iter": 20_000, "draws": 1000, "convergence_tol": 1e-2, "ordered": True,
             "learning_rate": 0.01, "elbo_se_target": 0.05, "max_elbo_draws": 40_000},
    "fullrank_advi": {"n_iter": 20_000, "draws": 1000, "convergence_tol": 1e-2,
                      "ordered": True, "learning_rate": 0.01, "elbo_se_target": 0.05,
                      "max_elbo_draws": 40_000},
    "nuts": {"draws": 1000, "tune": 1000, "chains": 2, "target_accept": 0.9, "ordered": True},
    "smc": {"draws": 1000, "chains": 2, "ordered": True},
}


# ---------------------------------------------------------------------- posterior
def _univariate_log_components(model, x: np.ndarray, draws: dict[str, np.ndarray]):
    """log (1/K) N(x_i | mu_k, tau^2), shape (S, N, K), for draws["mu"] (S, K)."""
    tau2 = model.obs_sd**2
    mu = draws["mu"]
    diff = x[None, :, None] - mu[:, None, :]
    return -np.log(model.n_components) - 0.5 * (_LOG_2PI + np.log(tau2)) - 0.5 * diff**2 / tau2


def _bishop_log_components(model, x: np.ndarray, draws: dict[str, np.ndarray]):
    """log pi_k N(x_i | mu_k, Sigma_k), shape (S, N, K), via Cholesky factors."""
    from gmmkit.models._linalg import log_gaussian_prob, precision_cholesky

    out = []
    for w, m, c in zip(draws["weights"], draws["means"], draws["covariances"], strict=True):
        out.append(np.log(w) + log_gaussian_prob(x, m, precision_cholesky(c)))
    return np.stack(out)


class DrawsPosterior:
    """A posterior represented by draws (chain, draw, ...) under canonical names.

    Implements :class:`gmmkit.result.Posterior`.  Predictions average over the draws:
    responsibilities are the posterior mean of p(z_i = k | x_i, theta), and the
    predictive density is log mean_s p(x | theta_s).
    """

    is_point_estimate = False
    _BLOCK = 256  # draws per vectorised block: bounds memory at BLOCK * N * K floats

    def __init__(self, model, draws: dict[str, np.ndarray], *, approx=None) -> None:
        self.model = model
        self.n_components = model.n_components
        self._draws = {k: np.array(v, dtype=float) for k, v in draws.items()}
        for value in self._draws.values():
            value.setflags(write=False)
        self._approx = approx  # (VariationalQ) for ADVI's importance weights

    def _flat(self) -> dict[str, np.ndarray]:
        return {k: v.reshape((-1, *v.shape[2:])) for k, v in self._draws.items()}

    def _log_components_blocks(self, x: np.ndarray):
        flat = self._flat()
        n_draws = next(iter(flat.values())).shape[0]
        fn = _univariate_log_components if "mu" in flat else _bishop_log_components
        for start in range(0, n_draws, self._BLOCK):
            yield fn(self.model, x, {k: v[start : start + self._BLOCK] for k, v in flat.items()})

    def _n_draws(self) -> int:
        return int(np.prod(next(iter(self._draws.values())).shape[:2]))

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        total = None
        for comp in self._log_components_blocks(x):
            resp = np.exp(comp - logsumexp(comp, axis=2, keepdims=True)).sum(axis=0)
            total = resp if total is None else total + resp
        mean = total / self._n_draws()
        with np.errstate(divide="ignore"):
            return np.log(mean)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        blocks = [logsumexp(comp, axis=2) for comp in self._log_components_blocks(x)]
        return logsumexp(np.concatenate(blocks, axis=0), axis=0) - np.log(self._n_draws())

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The stored draws (``n_draws`` and ``rng`` are ignored: sampler output is fixed)."""
        return {k: v.copy() for k, v in self._draws.items()}

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for name, value in self._flat().items():
            out[f"{name}_mean"] = value.mean(axis=0)
            out[f"{name}_sd"] = value.std(axis=0, ddof=1) if value.shape[0] > 1 else 0 * value[0]
        return out

    def point_estimates(self) -> dict[str, np.ndarray]:
        flat = self._flat()
        k = self.n_components
        if "mu" in flat:
            return {
                "weights": np.full(k, 1.0 / k),
                "means": flat["mu"].mean(axis=0)[:, None],
                "covariances": np.full((k, 1, 1), self.model.obs_sd**2),
            }
        return {name: flat[name].mean(axis=0) for name in ("weights", "means", "covariances")}

    def log_importance_weights(
        self, x: np.ndarray, n_draws: int, rng: np.random.Generator
    ) -> np.ndarray:
        """log p(x, theta_s) + log|J| - log q(theta_s) for theta_s ~ q (ADVI only).

        Computed in the unconstrained space on the training data the graph holds (z is
        summed out of p), so ``logsumexp(w) - log S`` estimates log Z_ordered.
        """
        if self._approx is None:
            raise ValueError("log_importance_weights needs a variational fit (advi or "
                             "fullrank_advi), got sampler draws")
        return self._approx.log_weights(n_draws, rng)


# ---------------------------------------------------------------------- q in numpy
class VariationalQ:
    """PyMC's fitted Gaussian q in the unconstrained space, drawn from with NumPy."""

    def __init__(self, approx, graph, logp_fn) -> None:
        self.mean = np.asarray(approx.mean.eval(), dtype=float)
        if hasattr(approx, "L"):
            self.chol = np.asarray(approx.L.eval(), dtype=float)
        else:
            self.chol = np.diag(np.asarray(approx.std.eval(), dtype=float))
        self.ordering = approx.ordering
        self.logp_fn = logp_fn

    def sample_flat(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draws (n, d) from q and log q at them."""
        d = self.mean.size
        eps = rng.standard_normal((n, d))
        flat = self.mean + eps @ self.chol.T
        log_q = (-0.5 * np.sum(eps**2, axis=1) - np.sum(np.log(np.abs(np.diag(self.chol))))
                 - 0.5 * d * _LOG_2PI)
        return flat, log_q

    def log_weights(self, n: int, rng: np.random.Generator) -> np.ndarray:
        flat, log_q = self.sample_flat(n, rng)
        return self.logp_fn(flat) - log_q

    def precise_elbo(self, rng, target_se: float, max_draws: int) -> tuple[float, float, int]:
        """ELBO = mean of the log weights, drawn in batches until its SE <= ``target_se``."""
        weights: list[np.ndarray] = []
        batch = 500
        while True:
            weights.append(self.log_weights(batch, rng))
            w = np.concatenate(weights)
            se = float(w.std(ddof=1) / np.sqrt(w.size))
            if se <= target_se or w.size >= max_draws:
                return float(w.mean()), se, int(w.size)
            # n needed for the target: (sd / target)^2; draw what is missing (capped).
            need = int((w.std(ddof=1) / target_se) ** 2 * 1.1) - w.size
            batch = int(min(max(need, 500), max_draws - w.size))


_LOGP_CACHE: dict[int, Any] = {}


def _batched_logp(graph):
    """A compiled f(flat (S, d)) -> (S,) of log p(x, theta) + log|J| (vectorised graph).

    Cached per graph; the data are a ``pm.Data`` shared variable, so the function always
    sees the graph's current data.
    """
    key = id(graph)
    if key in _LOGP_CACHE and _LOGP_CACHE[key][0] is graph:
        return _LOGP_CACHE[key][1]
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    point = graph.initial_point()
    flat = pt.matrix("flat")
    replace, start = {}, 0
    for var in graph.value_vars:
        shape = point[var.name].shape
        size = int(np.prod(shape))
        replace[var] = flat[:, start : start + size].reshape((flat.shape[0], *shape))
        start += size
    out = vectorize_graph(graph.logp(jacobian=True), replace=replace)
    fn = pytensor.function([flat], out)
    _LOGP_CACHE[key] = (graph, fn)
    return fn


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_pymc(progress: bool):
    if progress:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _graph(model, x, ordered: bool):
    if "mu" in model.parameter_dims:
        return model.to_pymc(x, ordered=ordered), ordered and model.n_components > 1
    resolved = model.resolve(x) if hasattr(model, "resolve") else model
    return resolved.to_pymc(x), False


def _canonical_draws(model, posterior_group) -> dict[str, np.ndarray]:
    names = list(model.parameter_dims)
    return {name: np.asarray(posterior_group[name].values, dtype=float) for name in names}


def _start_from_fit(init: Fit, model) -> dict[str, np.ndarray]:
    """Initial values (constrained space) from a previous fit's posterior means."""
    pe = init.posterior.point_estimates()
    if "mu" in model.parameter_dims:
        mu = np.sort(np.asarray(pe["means"], dtype=float)[:, 0])
        # The ordered transform needs strictly increasing values.
        mu = mu + 1e-6 * np.arange(mu.size)
        return {"mu": mu}
    return {}


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = _DEFAULTS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unexpected option(s) {', '.join(unknown)} for method {method!r}; expected "
            f"some of {', '.join(sorted(allowed))}"
        )
    merged = {**allowed, **options}
    for name in ("n_iter", "draws", "tune", "chains", "max_elbo_draws"):
        if name in merged:
            value = merged[name]
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return merged


# ---------------------------------------------------------------------- methods
def fit_pymc(
    model,
    x: np.ndarray,
    method: str,
    *,
    seed: int,
    n_init: int = 1,
    init: Any = "kmeans++",
    tol: float = 1e-8,
    max_iter: int = 1000,
    progress: bool = False,
    **options: Any,
) -> Fit:
    """Fit ``model`` to validated data ``x`` with a PyMC method.

    Parameters
    ----------
    method : {"advi", "fullrank_advi", "nuts", "smc"}
    seed : int
        Seeds every PyMC call (``random_seed``) and the NumPy draws of q.
    n_init : int
        ADVI restarts (different seeds); the best precise ELBO is kept.  Samplers ignore it.
    init : Fit or str
        A previous ``Fit``: its posterior means start the optimiser / chains.
    tol, max_iter
        Accepted for a uniform signature; ADVI stops by ``convergence_tol`` (relative
        parameter change, PyMC's ``CheckParametersConvergence``) within ``n_iter``.
    **options
        advi/fullrank_advi: ``n_iter`` (20000), ``draws`` (1000), ``convergence_tol``
        (1e-3), ``ordered`` (True), ``elbo_se_target`` (0.05), ``max_elbo_draws``.
        nuts: ``draws`` (1000), ``tune`` (1000), ``chains`` (2), ``target_accept``,
        ``ordered``.  smc: ``draws`` (1000), ``chains`` (2), ``ordered``.
    """
    opts = _check_options(method, options)
    start_time = time.perf_counter()
    with _quiet_pymc(progress):
        graph, used_ordered = _graph(model, x, bool(opts["ordered"]))
        start = _start_from_fit(init, model) if isinstance(init, Fit) else None
        if method in ("advi", "fullrank_advi"):
            result = _fit_advi(model, x, graph, method, seed, n_init, start, progress, opts)
        elif method == "nuts":
            result = _fit_nuts(model, graph, seed, start, progress, opts)
        else:
            result = _fit_smc(model, graph, seed, progress, opts, used_ordered)
    posterior = result.pop("posterior")
    return Fit(
        method=method,
        model=model,
        data=x,
        posterior=posterior,
        responsibilities=np.exp(posterior.log_responsibilities(x)),
        elapsed_s=time.perf_counter() - start_time,
        seed=seed,
        **result,
    )


def _fit_advi(model, x, graph, method, seed, n_init, start, progress, opts) -> dict:
    import pymc as pm
    from pymc.variational.callbacks import CheckParametersConvergence

    logp_fn = _batched_logp(graph)
    seeds = np.random.default_rng(seed).integers(2**31 - 1, size=(n_init, 3))
    best, finals, failures = None, np.full(n_init, np.nan), []
    for restart in range(n_init):
        timings: dict[str, float] = {}
        try:
            with graph:
                t0 = time.perf_counter()
                callback = CheckParametersConvergence(
                    every=100, tolerance=opts["convergence_tol"], diff="absolute"
                )
                approx = pm.fit(
                    n=opts["n_iter"], method=method, random_seed=int(seeds[restart, 0]),
                    progressbar=progress, callbacks=[callback], start=start,
                    # Adam reaches the optimum of these small problems in a few thousand
                    # steps; PyMC's default adagrad_window stalls with q's sd ~20% off
                    # (measured on the K = 1 conjugate oracle).
                    obj_optimizer=pm.adam(learning_rate=opts["learning_rate"]),
                )
                timings["fit_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                sampled = approx.sample(opts["draws"], random_seed=int(seeds[restart, 1]),
                                        return_inferencedata=True)
                timings["sample_s"] = time.perf_counter() - t0
        except (FloatingPointError, ValueError) as err:
            failures.append(f"restart {restart}: {err}")
            warnings.warn(failures[-1], RuntimeWarning, stacklevel=4)
            continue
        q = VariationalQ(approx, graph, logp_fn)
        rng = np.random.default_rng(int(seeds[restart, 2]))
        elbo, se, n_used = q.precise_elbo(rng, opts["elbo_se_target"], opts["max_elbo_draws"])
        finals[restart] = elbo
        if best is None or elbo > best["elbo"]:
            hist = -np.asarray(approx.hist, dtype=float)
            best = {
                "elbo": elbo, "elbo_se": se, "elbo_trace": hist,
                "n_iter": int(hist.size),
                "converged": bool(hist.size < opts["n_iter"]),
                "posterior": DrawsPosterior(model, _canonical_draws(model, sampled.posterior),
                                            approx=q),
                "diagnostics": {"elbo_draws": n_used, **timings},
            }
    if best is None:
        raise RuntimeError(f"every one of the {n_init} restart(s) failed: " + "; ".join(failures))
    if not best["converged"]:
        warnings.warn(
            f"{method} did not meet the parameter-convergence tolerance "
            f"{opts['convergence_tol']} within n_iter={opts['n_iter']} iterations",
            RuntimeWarning, stacklevel=4,
        )
    best["restart_elbos"] = finals
    best["restart_failures"] = tuple(failures)
    return best


def _fit_nuts(model, graph, seed, start, progress, opts) -> dict:
    import pymc as pm

    chains = opts["chains"]
    with graph:
        idata = pm.sample(
            draws=opts["draws"], tune=opts["tune"], chains=chains, cores=1,
            random_seed=seed, progressbar=progress, initvals=start,
            target_accept=opts["target_accept"], compute_convergence_checks=False,
            return_inferencedata=True,
        )
    draws = _canonical_draws(model, idata.posterior)
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
        warnings.warn("NUTS did not converge: " + "; ".join(problems), RuntimeWarning,
                      stacklevel=4)
    diag["problems"] = tuple(problems)
    diag["diverging"] = np.asarray(idata.sample_stats["diverging"].values, dtype=bool)
    return {
        "posterior": DrawsPosterior(model, draws),
        "elbo": float("nan"),
        "elbo_trace": np.empty(0),
        "converged": not problems,
        "n_iter": int(opts["draws"] + opts["tune"]),
        "diagnostics": diag,
    }


def _fit_smc(model, graph, seed, progress, opts, used_ordered) -> dict:
    import pymc as pm

    start = _sorted_prior_particles(model, opts["draws"], opts["chains"], seed) if (
        used_ordered) else None
    with graph:
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
    source = ("smc (ordered transform, particles started from the sorted prior: "
              "log Z = log Z_ordered + log K! is built in)") if used_ordered else "smc"
    spread = float(lml.std(ddof=1) / np.sqrt(lml.size)) if lml.size > 1 else float("nan")
    return {
        "posterior": DrawsPosterior(model, _canonical_draws(model, idata.posterior)),
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


def _sorted_prior_particles(model, draws: int, chains: int, seed: int) -> list[dict]:
    """Sorted prior draws of mu per chain, in the ordered transform's unconstrained space
    (y_0 = mu_0, y_i = log(mu_i - mu_{i-1}))."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(chains):
        mu = np.sort(rng.normal(0.0, model.prior_sd, size=(draws, model.n_components)), axis=1)
        y = np.concatenate([mu[:, :1], np.log(np.diff(mu, axis=1))], axis=1)
        out.append({"mu_ordered__": y})
    return out


def _final_log_marginal_likelihoods(idata) -> np.ndarray:
    """The final-stage log marginal likelihood of every SMC chain, shape (chains,)."""
    values = idata.sample_stats["log_marginal_likelihood"].values
    out = []
    for chain in np.asarray(values, dtype=object).reshape(values.shape[0], -1):
        flat = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in chain])
        flat = flat[np.isfinite(flat)]
        out.append(flat[-1])
    return np.asarray(out, dtype=float)
