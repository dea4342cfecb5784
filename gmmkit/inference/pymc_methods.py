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
* ``log_evidence`` (SMC): the mean over chains of the final ``log_marginal_likelihood``,
  always for the exchangeable model.  The ordered transform restricts the prior to 1/K!
  of the space without renormalising, so Z = K! Z_ordered; SMC on the ordered graph starts
  from *sorted* prior draws (density K! p(mu) on the ordered region), which builds the
  log K! into the estimate (``Fit.log_evidence_source`` says so).  ``log_evidence_se`` is
  the standard error over chains (sd / sqrt(chains)).

Compiled code is reused within a process: the graph is cached per (model, data shape)
with the data in ``pm.Data`` (``models.pymc_graphs``), and ADVI's compiled step function
and the vectorised log density are cached per graph, so a second ADVI fit of a model
with the same shapes skips compilation (``Fit.diagnostics["compiled_step_reused"]``,
``compile_s``, ``iterate_s``).  NUTS and SMC reuse the graph but PyMC compiles their
log density and gradient on every call (about 1 s).
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
from gmmkit._validation import check_positive
from gmmkit.inference.loop import progress_bar
from gmmkit.posterior import PosteriorKind
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
class DrawsPosterior:
    """A posterior represented by draws (chain, draw, ...) under canonical names.

    Implements :class:`gmmkit.result.Posterior`.  Predictions average over the draws:
    responsibilities are the posterior mean of p(z_i = k | x_i, theta), and the
    predictive density is log mean_s p(x | theta_s).
    """

    _BLOCK = 256  # draws per vectorised block: bounds memory at BLOCK * N * K floats

    def __init__(self, model, draws: dict[str, np.ndarray], *, approx=None,
                 log_k_factorial: float = 0.0) -> None:
        self.model = model
        self.n_components = model.n_components
        self._draws = {k: np.array(v, dtype=float) for k, v in draws.items()}
        for value in self._draws.values():
            value.setflags(write=False)
        self._approx = approx  # (VariationalQ) for ADVI's importance weights
        # Draws from a fitted q (ADVI) are not posterior draws: say so.
        self.kind = PosteriorKind.SAMPLER_DRAWS if approx is None else PosteriorKind.Q_DRAWS
        #: log K! when q lives on the ordered region (ordered transform), else 0: the
        #: importance-sampling estimate ``logsumexp(w) - log S`` is of log Z_ordered,
        #: which is *exactly* log Z - log K! (the mixture is label-symmetric), so adding
        #: this gives the exchangeable model's log Z.
        self.log_k_factorial = float(log_k_factorial)

    @property
    def draws(self) -> dict[str, np.ndarray]:
        """The stored draws (read-only), each with leading (chain, draw) axes."""
        return dict(self._draws)

    def _flat(self) -> dict[str, np.ndarray]:
        return {k: v.reshape((-1, *v.shape[2:])) for k, v in self._draws.items()}

    def _log_components_blocks(self, x: np.ndarray):
        flat = self._flat()
        n_draws = next(iter(flat.values())).shape[0]
        for start in range(0, n_draws, self._BLOCK):
            yield self.model.log_components(
                x, {k: v[start : start + self._BLOCK] for k, v in flat.items()})

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
        return self.model.summarise_draws(self._flat())

    def log_importance_weights(
        self, x: np.ndarray, n_draws: int, rng: np.random.Generator
    ) -> np.ndarray:
        """log p(x, theta_s) + log|J| - log q(theta_s) for theta_s ~ q (ADVI only).

        Computed in the unconstrained space (z summed out of p) on ``x``, which must have
        the training data's shape, so ``logsumexp(w) - log S`` estimates log Z_ordered =
        log Z - ``log_k_factorial`` under the ordered transform, log Z otherwise.
        """
        if self._approx is None:
            raise ValueError("log_importance_weights needs a variational fit (advi or "
                             "fullrank_advi), got sampler draws")
        return self._approx.log_weights(n_draws, rng, x)


# ---------------------------------------------------------------------- q in numpy
class VariationalQ:
    """PyMC's fitted Gaussian q in the unconstrained space, drawn from with NumPy."""

    def __init__(self, approx, graph, logp_fn, data: np.ndarray) -> None:
        # The graph is shared by every fit of the same shapes (its data are a pm.Data
        # that the next fit overwrites), so q keeps its own data and sets them first.
        self.graph = graph
        self.data = np.array(data, dtype=float)
        self.data.setflags(write=False)
        self.mean = np.asarray(approx.mean.eval(), dtype=float)
        if hasattr(approx, "L"):
            self.chol = np.asarray(approx.L.eval(), dtype=float)
        else:
            self.chol = np.diag(np.asarray(approx.std.eval(), dtype=float))
        self.ordering = approx.ordering
        self.logp_fn = logp_fn

    def __getstate__(self) -> dict[str, Any]:
        # The PyMC graph and its compiled log density do not pickle (and are caches of
        # this process); a pickled q keeps its mean, Cholesky factor and data only.
        return {**self.__dict__, "graph": None, "logp_fn": None}

    def sample_flat(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draws (n, d) from q and log q at them."""
        d = self.mean.size
        eps = rng.standard_normal((n, d))
        flat = self.mean + eps @ self.chol.T
        log_q = (-0.5 * np.sum(eps**2, axis=1) - np.sum(np.log(np.abs(np.diag(self.chol))))
                 - 0.5 * d * _LOG_2PI)
        return flat, log_q

    def log_weights(self, n: int, rng: np.random.Generator, x=None) -> np.ndarray:
        if self.graph is None:
            raise ValueError("this ADVI fit was unpickled (or loaded from disk) without its "
                             "PyMC graph; refit it to get importance weights")
        x = self.data if x is None else np.asarray(x, dtype=float)
        shared = self.graph["x"]
        if x.shape != self.data.shape:
            raise ValueError(f"x must have the training data's shape {self.data.shape}, "
                             f"got {x.shape}")
        shared.set_value(x)
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


@contextlib.contextmanager
def _interrupts_propagate():
    """Make Ctrl-C during ``pm.sample``/``pm.sample_smc`` an interrupt, not a short run.

    PyMC catches the first ``KeyboardInterrupt`` while sampling and returns the draws it
    has (or, interrupted while tuning, fails with "Not enough samples to build a trace",
    a ValueError that would read as bad input).  A SIGINT handler of our own records the
    interrupt, so whatever PyMC returns or raises afterwards becomes ``KeyboardInterrupt``.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    interrupted = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        interrupted.append(signum)
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    except Exception:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def _graph(model, x, ordered: bool):
    """(graph, ordered transform used, model with concrete priors)."""
    if "mu" in model.parameter_dims:
        return model.to_pymc(x, ordered=ordered), ordered and model.n_components > 1, model
    resolved = model.resolve(x) if hasattr(model, "resolve") else model
    return resolved.to_pymc(x), False, resolved


def _canonical_draws(model, posterior_group) -> dict[str, np.ndarray]:
    names = list(model.parameter_dims)
    return {name: np.asarray(posterior_group[name].values, dtype=float) for name in names}


def _increasing(mu: np.ndarray) -> np.ndarray:
    """Sorted and strictly increasing (the ordered transform's domain)."""
    mu = np.sort(np.asarray(mu, dtype=float))
    for i in range(1, mu.size):
        mu[i] = max(mu[i], mu[i - 1] + 1e-6 * max(1.0, abs(mu[i - 1])))
    return mu


def _start_from_fit(init: Fit, model) -> dict[str, np.ndarray]:
    """Initial values (constrained space, by random-variable name) from a previous fit's
    point estimates; ``model`` has concrete priors."""
    pe = init.posterior.point_estimates()
    means = np.asarray(pe["means"], dtype=float)
    if "mu" in model.parameter_dims:
        return {"mu": _increasing(means[:, 0])}
    weights = np.clip(np.asarray(pe["weights"], dtype=float), 1e-6, None)
    precision = np.linalg.inv(np.asarray(pe["covariances"], dtype=float))
    # Invert the Bartlett construction Lambda_k = L A_k A_k^T L^T (pymc_graphs): A_k is
    # the Cholesky factor of L^-1 Lambda_k L^-T, c = diag(A_k)^2, z = below its diagonal.
    chol_inv = np.linalg.inv(np.linalg.cholesky(np.asarray(model.W0, dtype=float)))
    inner = chol_inv @ precision @ chol_inv.T
    a = np.linalg.cholesky(0.5 * (inner + np.swapaxes(inner, 1, 2)))
    d = means.shape[1]
    rows, cols = np.tril_indices(d, -1)
    start = {"weights": weights / weights.sum(), "means": means,
             "precision_bartlett_c": np.diagonal(a, axis1=1, axis2=2) ** 2}
    if rows.size:
        start["precision_bartlett_z"] = a[:, rows, cols]
    return start


def _starts(model, x, init, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` starting points: all from ``init`` when it is a Fit, else means seeded by
    ``init`` ("kmeans++" or "random") on the data, one independent seeding each (ADVI
    restarts).  Without data-seeded means every component would start at the
    same point (the prior's), a symmetric saddle that ADVI leaves only slowly."""
    if isinstance(init, Fit):
        return [_start_from_fit(init, model)] * n
    from gmmkit.inference.loop import initial_means

    X = x[:, None] if x.ndim == 1 else x
    rng = np.random.default_rng([seed, 2])
    out = []
    for _ in range(n):
        means = initial_means(X, model.n_components, init, rng)
        out.append({"mu": _increasing(means[:, 0])} if "mu" in model.parameter_dims
                   else {"means": means})
    return out


#: Fewest fresh draws of q allowed for ADVI's ELBO estimate (``max_elbo_draws``): the
#: estimate draws a first batch of 500 before it looks at its standard error, so a
#: smaller cap could not be honoured; above it, later batches stop at the cap exactly.
MIN_ELBO_DRAWS = 500


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Merge ``options`` into the method's defaults, refusing unknown names and values out
    of range with a message that names the option."""
    allowed = _DEFAULTS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unexpected option(s) {', '.join(unknown)} for method {method!r}; expected "
            f"some of {', '.join(sorted(allowed))}"
        )
    merged = {**allowed, **options}
    minimum = {"max_elbo_draws": MIN_ELBO_DRAWS}
    for name in ("n_iter", "draws", "tune", "chains", "max_elbo_draws"):
        if name in merged:
            value, low = merged[name], minimum.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            merged[name] = int(value)
    for name in ("learning_rate", "convergence_tol", "elbo_se_target"):
        if name in merged:
            merged[name] = check_positive(name, merged[name])
    if "target_accept" in merged:
        value = merged["target_accept"]
        try:
            prob = float(value)
        except (TypeError, ValueError):
            prob = float("nan")
        if isinstance(value, bool) or not 0.0 < prob < 1.0:
            raise ValueError(f"target_accept must be a number in (0, 1), got {value!r}")
        merged["target_accept"] = prob
    if "ordered" in merged:
        if not isinstance(merged["ordered"], bool | np.bool_):
            raise ValueError(f"ordered must be True or False, got {merged['ordered']!r}")
        merged["ordered"] = bool(merged["ordered"])
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
    init : Fit or {"kmeans++", "random"}
        Where ADVI restarts and NUTS chains start: a previous ``Fit``'s point estimates,
        or component means seeded on the data (independently per ADVI restart; one seeding
        for all NUTS chains, which PyMC jitters).  SMC starts from the prior.
    tol, max_iter
        Accepted for a uniform signature; ADVI stops by ``convergence_tol`` (relative
        parameter change, PyMC's ``CheckParametersConvergence``) within ``n_iter``.
    **options
        advi/fullrank_advi: ``n_iter`` (20000), ``draws`` (1000), ``convergence_tol``
        (1e-2: largest absolute change of q's parameters over 100 steps),
        ``learning_rate`` (Adam, 0.01), ``ordered`` (True), ``elbo_se_target`` (0.05),
        ``max_elbo_draws`` (40000).
        nuts: ``draws`` (1000), ``tune`` (1000), ``chains`` (2), ``target_accept``,
        ``ordered``.  smc: ``draws`` (1000), ``chains`` (2), ``ordered``.
    """
    opts = _check_options(method, options)
    start_time = time.perf_counter()
    with _quiet_pymc(progress):
        t0 = time.perf_counter()
        graph, used_ordered, model = _graph(model, x, bool(opts["ordered"]))
        graph_s = time.perf_counter() - t0
        if method in ("advi", "fullrank_advi"):
            starts = _starts(model, x, init, n_init, seed)
            result = _fit_advi(model, x, graph, method, seed, n_init, starts, progress, opts,
                               used_ordered)
        elif method == "nuts":
            # One start for every chain (PyMC jitters it per chain): chains seeded apart
            # could settle in different labellings, and r-hat would flag label switching.
            starts = _starts(model, x, init, 1, seed) * opts["chains"]
            result = _fit_nuts(model, graph, seed, starts, progress, opts)
        else:
            result = _fit_smc(model, graph, seed, progress, opts, used_ordered)
    posterior = result.pop("posterior")
    result["diagnostics"]["graph_s"] = graph_s  # building the graph, ~0 when cached
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


_STEP_CACHE: dict[tuple, Any] = {}
_STEP_CACHE_SIZE = 16


class _CompiledADVI:
    """One ADVI/full-rank ADVI inference on one graph, with its compiled step function.

    Compiling the step function (objective, gradients, Adam updates) is most of the fixed
    cost of a fit (about 1-2 s with PyTensor's on-disk C cache warm, far more cold).  The
    graph holds its data in ``pm.Data``, so a later fit on the same graph (same model,
    same data shape, see ``models.pymc_graphs``) reuses the compiled function: ``reset``
    puts every state the function updates (q's parameters, Adam's moments and step count)
    back to its starting value and reseeds its random generators, so a fit from the cache
    is draw-for-draw the fit a fresh compile would give.
    """

    def __init__(self, graph, method: str, learning_rate: float, seed: int, start) -> None:
        import pymc as pm
        from pytensor.tensor.random.type import RandomType

        self.graph = graph
        cls = pm.ADVI if method == "advi" else pm.FullRankADVI
        self.inference = cls(model=graph, random_seed=seed, start=start)
        self.approx = self.inference.approx
        self.step = self.inference.objective.step_function(
            score=True,
            # Adam reaches the optimum of these small problems in a few thousand steps;
            # PyMC's default adagrad_window stalls with q's sd ~20% off (measured on the
            # K = 1 conjugate oracle).
            obj_optimizer=pm.adam(learning_rate=learning_rate),
        )
        updated = [i.variable for i in self.step.maker.inputs if i.update is not None]
        self.rngs = [v for v in updated if isinstance(v.type, RandomType)]
        self.initial = {v: np.array(v.get_value(borrow=False), copy=True)
                        for v in updated if not isinstance(v.type, RandomType)}
        # The parameter holding q's mean in the unconstrained space, per group.
        self.means = [(group, group.params_dict["mu"]) for group in self.approx.groups]

    def reset(self, seed: int, start) -> None:
        from pymc.pytensorf import reseed_rngs

        for var, value in self.initial.items():
            var.set_value(value.copy())
        for group, mu in self.means:
            # PyMC's own start handling (the initial point with ``start`` overrides, in
            # the unconstrained space, ordered as q's flat vector).
            mu.set_value(np.asarray(group._prepare_start(start), dtype=mu.dtype))
        reseed_rngs(self.rngs, seed)

    def run(self, n_iter: int, callback, bar) -> tuple[np.ndarray, bool]:
        """Up to ``n_iter`` steps; returns (loss per step taken, stopped by ``callback``)."""
        losses = np.empty(n_iter)
        for i in range(n_iter):
            loss = float(self.step())
            if np.isnan(loss):
                raise FloatingPointError(f"NaN occurred in optimization at iteration {i + 1}")
            losses[i] = loss
            if (i + 1) % 100 == 0:
                bar.update(100)
            try:
                callback(self.approx, losses[: i + 1], i + 1)
            except StopIteration:
                return losses[: i + 1], True
        return losses, False


def _compiled_advi(graph, method, learning_rate, seed, start) -> tuple[_CompiledADVI, bool]:
    """The cached compiled ADVI for ``graph`` (reset to ``seed``/``start``), or a new one;
    the flag says whether it came from the cache."""
    key = (id(graph), method, float(learning_rate))
    entry = _STEP_CACHE.get(key)
    if entry is not None and entry.graph is graph:
        entry.reset(seed, start)
        return entry, True
    entry = _CompiledADVI(graph, method, learning_rate, seed, start)
    entry.reset(seed, start)
    if len(_STEP_CACHE) >= _STEP_CACHE_SIZE:
        _STEP_CACHE.pop(next(iter(_STEP_CACHE)))
    _STEP_CACHE[key] = entry
    return entry, False


def _fit_advi(model, x, graph, method, seed, n_init, starts, progress, opts,
              used_ordered) -> dict:
    from pymc.variational.callbacks import CheckParametersConvergence

    log_k_factorial = float(np.sum(np.log(np.arange(2, model.n_components + 1)))) if (
        used_ordered) else 0.0

    t0 = time.perf_counter()
    logp_fn = _batched_logp(graph)
    logp_s = time.perf_counter() - t0
    seeds = np.random.default_rng(seed).integers(2**31 - 1, size=(n_init, 4))
    best, finals, failures = None, np.full(n_init, np.nan), []
    for restart in range(n_init):
        timings: dict[str, float] = {"logp_compile_s": logp_s if restart == 0 else 0.0}
        try:
            with graph:
                t0 = time.perf_counter()
                compiled, reused = _compiled_advi(graph, method, opts["learning_rate"],
                                                  int(seeds[restart, 3]), starts[restart])
                timings["compile_s"] = time.perf_counter() - t0
                callback = CheckParametersConvergence(
                    every=100, tolerance=opts["convergence_tol"], diff="absolute"
                )
                t0 = time.perf_counter()
                with progress_bar(progress, f"{method} restart {restart + 1}/{n_init}",
                                  total=opts["n_iter"]) as bar:
                    losses, stopped = compiled.run(opts["n_iter"], callback, bar)
                timings["iterate_s"] = time.perf_counter() - t0
                timings["fit_s"] = timings["compile_s"] + timings["iterate_s"]
                t0 = time.perf_counter()
                sampled = compiled.approx.sample(
                    opts["draws"], random_seed=int(seeds[restart, 1]),
                    return_inferencedata=True)
                timings["sample_s"] = time.perf_counter() - t0
        except (FloatingPointError, ValueError) as err:
            failures.append(f"restart {restart}: {err}")
            warnings.warn(failures[-1], RuntimeWarning, stacklevel=4)
            continue
        q = VariationalQ(compiled.approx, graph, logp_fn, x)
        rng = np.random.default_rng(int(seeds[restart, 2]))
        t0 = time.perf_counter()
        elbo, se, n_used = q.precise_elbo(rng, opts["elbo_se_target"], opts["max_elbo_draws"])
        timings["elbo_s"] = time.perf_counter() - t0
        finals[restart] = elbo
        if best is None or elbo > best["elbo"]:
            hist = -losses
            best = {
                "elbo": elbo, "elbo_se": se, "elbo_trace": hist,
                "n_iter": int(hist.size),
                "converged": bool(stopped),
                "posterior": DrawsPosterior(model, _canonical_draws(model, sampled.posterior),
                                            approx=q, log_k_factorial=log_k_factorial),
                "diagnostics": {"elbo_draws": n_used, "compiled_step_reused": reused,
                                **timings},
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


def _fit_nuts(model, graph, seed, starts, progress, opts) -> dict:
    import pymc as pm

    chains = opts["chains"]
    with graph, _interrupts_propagate():
        idata = pm.sample(
            draws=opts["draws"], tune=opts["tune"], chains=chains, cores=1,
            random_seed=seed, progressbar=progress, initvals=starts,
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
    with graph, _interrupts_propagate():
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
