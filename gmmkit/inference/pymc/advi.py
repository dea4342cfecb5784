"""Mean-field and full-rank ADVI on the model's PyMC graph.

Returns the same :class:`gmmkit.result.Fit` as the closed-form methods, with q's draws
under the canonical names (``mu``; ``weights``/``means``/``covariances``), so ArviZ lines
the fits up.

``elbo``: E_q[log p(x, theta) + log|J| - log q(theta_unconstrained)], estimated from
enough draws of q that its standard error is at most ``elbo_se_target`` (PyMC's
convention: the Jacobian of the transforms is included).  No correction for the ordered
transform: on the ordered region the ordered model's unnormalised density equals the
exchangeable model's, so a q living there has the same ELBO under both.

Compiled code is reused within a process through the backend's one cache (:mod:`.cache`):
the graph per (model, data shape, ordered), ADVI's compiled step function per (graph,
mean-field or full rank, learning rate) and the batched log density per graph, so a
second ADVI fit of a model with the same shapes skips compilation
(``Fit.diagnostics["compiled_step_reused"]``, ``compile_s``, ``iterate_s``).

Stopping rule (:class:`WindowedELBOConvergence`): every ``convergence_window`` = w steps,
compare the means of the last two windows of w one-draw losses (PyMC's ``-ELBO``
estimate per step).  Stop when the later window's mean ELBO is at most
``convergence_tol`` standard errors above the earlier one's, i.e. the ELBO no longer rises
by more than its Monte Carlo noise can hide: ``mean(B) - mean(A) <= convergence_tol *
sqrt(var(A)/w + var(B)/w)``, each variance estimated from successive differences so that a
drift does not pass for noise.  With w = 1000 and tol = 1 the rule stops Blei et al.'s
example (N = 1000, K = 5) at 4000-10000 steps, where a longer run gains less than a nat;
w = 500 stopped full-rank ADVI in its noisy early phase, 9 nats short.  The standard
error scales with the loss's own noise, so the rule is met by a healthy Adam run at any
data size.  (PyMC's
``CheckParametersConvergence`` at its default tolerance is never met with Adam at
learning rate 0.01: Adam's steps keep q's parameters jittering by more than it allows.)
A fit that reaches ``n_iter`` first warns with :class:`gmmkit.ConvergenceWarning` and has
``converged=False``.

Minibatch ADVI (``batch_size`` = B, an integer in [1, N]; None uses all the data every
step): the steps run on the model's minibatch graph (:mod:`.minibatch`: ``pm.Minibatch``
rows, ``total_size=N`` on the likelihood), with PyMC's rescaling of the loss to the
minibatch switched off, so each step's loss is an unbiased one-draw estimate of the
full-data -ELBO in nats and the trace reads on the full-data scale.  The stopping rule
needs no change: its standard error is estimated from the losses themselves, which now
carry the minibatch noise as well as q's, so it stops once a window's gain is below that
larger noise (on N = 20,000 points, minibatches of 1000 stopped 8 nats, 2e-4, below
batch VB's bound; of 200, 36 nats).  q's draws, ``Fit.elbo`` (same draw rule as the
full-data path: ``elbo_se_target``, ``max_elbo_draws``), the responsibilities and the
importance weights are computed on all N points with the full-data graph's log density,
so a minibatch fit compares with any other on one scale.  Dask input is computed into
memory when it takes at most :data:`MAX_DASK_BYTES`, refused with the reason otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gmmkit._validation import is_lazy_array
from gmmkit._warnings import ConvergenceWarning, warn
from gmmkit.inference.loop import progress_bar
from gmmkit.inference.pymc._common import (
    canonical_draws,
    log_k_factorial,
    make_fit,
    prepared,
    starts,
)
from gmmkit.inference.pymc.cache import CACHE
from gmmkit.inference.pymc.graphs import GraphKey
from gmmkit.inference.pymc.minibatch import check_batch_size, minibatch_graph
from gmmkit.inference.pymc.posterior import DrawsPosterior, VariationalQ, batched_log_density
from gmmkit.result import Fit

__all__ = ["WindowedELBOConvergence", "fit_advi"]


class WindowedELBOConvergence:
    """ADVI's stopping rule (module docstring): called after every step with the losses so
    far; raises ``StopIteration`` once two consecutive windows of ``window`` losses have
    means within ``tol`` standard errors (the later no better by more than that).

    ``change`` and ``se`` hold the last comparison (ELBO gain of the later window's mean,
    nats, and the standard error of that difference), NaN before the first.
    """

    def __init__(self, window: int, tol: float) -> None:
        self.window = int(window)
        self.tol = float(tol)
        self.change = float("nan")
        self.se = float("nan")

    def __call__(self, approx: Any, losses: np.ndarray, i: int) -> None:
        w = self.window
        if i % w or i < 2 * w:
            return
        before, after = losses[i - 2 * w : i - w], losses[i - w : i]
        # Losses are -ELBO: the gain is the fall of the mean loss.
        self.change = float(before.mean() - after.mean())
        # Each window's noise variance from its successive differences (var(diff) / 2),
        # which a drift within the window does not inflate.
        noise = (np.diff(before).var() + np.diff(after).var()) / 2
        self.se = float(np.sqrt(noise / w))
        if self.change <= self.tol * self.se:
            raise StopIteration


def fit_advi(
    model,
    x: np.ndarray,
    *,
    method: str,
    seed: int,
    full_rank: bool = False,
    n_init: int,
    init: Any,
    progress: bool = False,
    **options: Any,
) -> Fit:
    """Fit ``model`` to validated data ``x`` by mean-field or full-rank ADVI.

    Parameters
    ----------
    method : str
        The method table's name for this method; recorded as ``Fit.method``.
    seed : int
        Seeds every PyMC call (``random_seed``) and the NumPy draws of q.
    full_rank : bool
        Full-rank Gaussian q (``pm.FullRankADVI``) instead of mean-field (``pm.ADVI``).
    n_init : int
        Restarts (different seeds); the best precise ELBO is kept.
    init : Fit or {"kmeans++", "random"}
        Where each restart starts: a previous ``Fit``'s point estimates, or component
        means seeded on the data (independently per restart).
    **options
        The method table's options, defaults merged in by :func:`gmmkit.fit`:
        ``n_iter``, ``draws`` (of q, stored), ``convergence_window`` and
        ``convergence_tol`` (the stopping rule: stop once the mean ELBO of the last
        ``convergence_window`` steps is at most ``convergence_tol`` standard errors above
        that of the window before; module docstring), ``learning_rate`` (Adam),
        ``ordered``, ``elbo_se_target``, ``max_elbo_draws``.
    """
    if is_lazy_array(x):
        x = _in_memory(model, x, method)
    batch_size = check_batch_size(options.pop("batch_size", None), int(x.shape[0]))
    with prepared(model, x, method, options, progress) as run:
        model = run.key.model
        graph, key = run.graph, run.key
        if batch_size is not None:
            t0 = time.perf_counter()
            (graph, _), key, _ = minibatch_graph(run.key, x, batch_size)
            run = run._replace(graph_s=run.graph_s + time.perf_counter() - t0)
        result = _fit_advi(model, x, graph, key, run.key, method, full_rank, seed, n_init,
                           starts(model, x, init, n_init, seed), progress, run.opts)
        result["diagnostics"]["batch_size"] = batch_size
    return make_fit(method, model, x, result, seed=seed, start_time=run.start_time,
                    graph_s=run.graph_s)


#: The largest Dask array ADVI computes into memory (bytes, as float64): PyMC's Minibatch
#: draws its rows by indexing an in-memory array, and q's final ELBO, responsibilities and
#: importance weights are evaluated on all the data, so ADVI needs the data in memory.
MAX_DASK_BYTES = 256 * 2**20


def _in_memory(model, x, method: str) -> np.ndarray:
    """A Dask array small enough (:data:`MAX_DASK_BYTES`) computed and validated as
    :func:`gmmkit.fit` validates NumPy data; a ValueError with the reason otherwise."""
    n_bytes = 8 * int(np.prod(x.shape))
    if n_bytes > MAX_DASK_BYTES:
        raise ValueError(
            f"x must fit in memory for {method!r}: got a Dask array of {n_bytes / 2**20:.0f} "
            f"MiB as float64, more than the {MAX_DASK_BYTES / 2**20:.0f} MiB ADVI computes "
            "into memory (PyMC's Minibatch indexes an in-memory array, and q's final ELBO "
            "and importance weights are evaluated on all the data); fit Dask data by "
            "stochastic variational inference (method 'svi'), which streams minibatches "
            "from the chunks"
        )
    return model.check_data(np.asarray(x.compute(), dtype=float),
                            min_points=model.n_components)


class _CompiledADVI:
    """One ADVI/full-rank ADVI inference on one graph, with its compiled step function.

    Compiling the step function (objective, gradients, Adam updates) is most of the fixed
    cost of a fit (about 1-2 s with PyTensor's on-disk C cache warm, far more cold).  The
    graph holds its data in ``pm.Data``, so a later fit on the same graph (same model,
    same data shape) reuses the compiled function: ``reset`` puts every state the
    function updates (q's parameters, Adam's moments and step count) back to its starting
    value and reseeds its random generators, so a fit from the cache is draw-for-draw the
    fit a fresh compile would give.
    """

    def __init__(self, graph, full_rank: bool, learning_rate: float, seed: int,
                 start) -> None:
        import pymc as pm
        from pytensor.tensor.random.type import RandomType

        self.graph = graph
        cls = pm.FullRankADVI if full_rank else pm.ADVI
        self.inference = cls(model=graph, random_seed=seed, start=start)
        self.approx = self.inference.approx
        # The loss in nats of the full data: on a minibatch graph PyMC would divide it by
        # N/|B| (``scale_cost_to_minibatch``); Adam's steps do not depend on the scale,
        # the reported ELBO trace and the stopping rule's window means read in nats.
        self.approx.scale_cost_to_minibatch = False
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
        # The parameter holding q's mean in the unconstrained space, with q's layout of
        # it (value-variable name -> slice), per group.
        self.means = [(group.params_dict["mu"],
                       [(name, s) for name, s, _, _ in group.ordering.values()])
                      for group in self.approx.groups]

    def unconstrained_start(self, start) -> dict[str, np.ndarray]:
        """The graph's initial point with ``start`` (constrained values by random-variable
        name) overriding it, in the unconstrained space, by value-variable name."""
        from pymc.initial_point import make_initial_point_fn

        point_fn = make_initial_point_fn(model=self.graph, overrides=start, jitter_rvs=set(),
                                         return_transformed=True)
        return point_fn(0)  # no jitter: the seed is unused

    def reset(self, seed: int, start) -> None:
        from pymc.pytensorf import reseed_rngs

        for var, value in self.initial.items():
            var.set_value(value.copy())
        point = self.unconstrained_start(start)
        for mu, layout in self.means:
            flat = np.array(mu.get_value(borrow=False), copy=True)
            for name, s in layout:
                flat[s] = np.ravel(point[name])
            mu.set_value(flat.astype(mu.dtype))
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


def _compiled_advi(graph, key: GraphKey, full_rank: bool, learning_rate: float, seed: int,
                   start) -> tuple[_CompiledADVI, bool]:
    """The cached compiled ADVI for ``graph`` (reset to ``seed``/``start``), or a new one;
    the flag says whether it came from the cache.

    Keyed by value (the graph's key); an entry compiled on an earlier graph of the same
    key (since evicted and rebuilt) reads that graph's data, so it is replaced.
    """
    cache_key = ("advi step", key, bool(full_rank), float(learning_rate))
    entry = CACHE.get(cache_key)
    if entry is not None and entry.graph is graph:
        entry.reset(seed, start)
        return entry, True
    entry = _CompiledADVI(graph, full_rank, learning_rate, seed, start)
    entry.reset(seed, start)
    CACHE.put(cache_key, entry)
    return entry, False


def _fit_advi(model, x, graph, key, full_key, method, full_rank, seed, n_init,
              restart_starts, progress, opts) -> dict:
    """The restarts, on ``graph`` (cache key ``key``): the full-data graph (``key`` is
    ``full_key``) or its minibatch graph.  q's final ELBO and draws are always taken on
    all the data, through the full-data graph's log density (``full_key``)."""
    t0 = time.perf_counter()
    batched_log_density(full_key, x)  # compiled (or found) once for every restart
    logp_s = time.perf_counter() - t0
    seeds = np.random.default_rng(seed).integers(2**31 - 1, size=(n_init, 4))
    best, finals, failures = None, np.full(n_init, np.nan), []
    for restart in range(n_init):
        timings: dict[str, float] = {"logp_compile_s": logp_s if restart == 0 else 0.0}
        try:
            with graph:
                t0 = time.perf_counter()
                compiled, reused = _compiled_advi(graph, key, full_rank,
                                                  opts["learning_rate"],
                                                  int(seeds[restart, 3]), restart_starts[restart])
                timings["compile_s"] = time.perf_counter() - t0
                callback = WindowedELBOConvergence(opts["convergence_window"],
                                                   opts["convergence_tol"])
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
            warn(failures[-1], RuntimeWarning)
            continue
        q = VariationalQ.from_approximation(compiled.approx, x, full_key)
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
                "posterior": DrawsPosterior(
                    model, canonical_draws(model, sampled.posterior), approx=q,
                    log_k_factorial=log_k_factorial(model, full_key.ordered)),
                "diagnostics": {"elbo_draws": n_used, "compiled_step_reused": reused,
                                "window_elbo_change": callback.change,
                                "window_elbo_change_se": callback.se, **timings},
            }
    if best is None:
        raise RuntimeError(f"every one of the {n_init} restart(s) failed: " + "; ".join(failures))
    if not best["converged"]:
        diag = best["diagnostics"]
        change, se = diag["window_elbo_change"], diag["window_elbo_change_se"]
        w = opts["convergence_window"]
        still = (f"the mean ELBO of the last {w} iterations still rose by {change:.3g} "
                 f"nats over the {w} before ({change / se:.1f} standard errors > "
                 f"convergence_tol={opts['convergence_tol']:g})" if np.isfinite(change)
                 else f"too few iterations to compare two windows of {w}")
        warn(
            f"{method} did not converge: stopped at n_iter={opts['n_iter']} iterations; "
            f"{still}; raise n_iter (or convergence_tol)",
            ConvergenceWarning,
        )
    best["restart_elbos"] = finals
    best["restart_failures"] = tuple(failures)
    return best
