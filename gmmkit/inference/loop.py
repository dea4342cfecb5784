"""The one training loop shared by every closed-form method (CAVI, Bishop VB, EM, k-means).

A method supplies pure functions over its own ``State`` NamedTuple, in the style of
BlackJAX's ``init``/``step``: ``init(rng) -> State``, ``step(State) -> State`` and
``objective(State) -> float``.  This module owns restarts, the stopping rule, timing,
the progress bar, the bookkeeping of failed restarts and the convergence warning, so they
behave identically for every method.

Stopping rule
-------------
A restart stops when one step changes the objective by at most ``tol`` **nats**:
``|L_t - L_{t-1}| <= tol`` (an absolute tolerance; the default, ``COMMON_OPTIONS["tol"]``
in :mod:`gmmkit.inference.methods`, is 1e-5 nats).  The rule does not loosen with the
number of data points N.  The former rule, a relative change ``|dL| <= tol |L|``, did:
since L grows like N, at N = 10^6 (Blei et al.'s example, ``UnivariateGMM(5,
prior_sd=3)``) it stopped CAVI while it still gained ~0.02 nats per iteration, and ten
restarts heading for the same optimum ended up to 11-17 nats apart.  On ordinary data
(N ~ 10^3, |L| ~ 2 10^3 nats) the relative 1e-8 meant ~2 10^-5 nats, so the default of
1e-5 nats keeps those results comparable (they stop at most a few iterations later).
``tol = 0`` runs ``max_iter`` iterations unless the objective stops changing at all.

scikit-learn's ``tol`` is on the change of the *mean* log-likelihood per point, i.e.
``|dL| < tol * N`` here: multiply a scikit-learn ``tol`` by N to get the same stop.

When the kept restart reaches ``max_iter`` without meeting the rule, the loop emits a
:class:`gmmkit.ConvergenceWarning` naming the method, the iterations, the last change
and the remedy, and the Fit records ``converged=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from gmmkit._warnings import ConvergenceWarning, warn

__all__ = [
    "RestartFailed",
    "RunResult",
    "coordinate_ascent",
    "fit_from_run",
    "initial_means",
    "progress_bar",
    "unconverged_message",
]


class RestartFailed(Exception):
    """Raised by a ``step`` when a restart cannot continue (e.g. a singular covariance).

    The loop records the message with the restart index, warns, and goes on with the next
    restart; only if every restart fails is a ``RuntimeError`` raised.
    """


class RunResult(NamedTuple):
    """What the loop returns: the kept restart's final state and its traces."""

    state: Any
    trace: np.ndarray
    time_trace: np.ndarray
    monitor_traces: dict[str, np.ndarray]
    converged: bool
    n_iter: int
    restart_objectives: np.ndarray
    restart_failures: tuple[str, ...]
    elapsed_s: float


class progress_bar:
    """A rich progress bar that is a no-op when ``enabled`` is False."""

    def __init__(self, enabled: bool, description: str, total: int | None) -> None:
        self._progress = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), transient=True,
            )
            self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> progress_bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, advance: int = 1, description: str | None = None, **kw: Any) -> None:
        if self._progress is not None:
            if description is not None:
                kw["description"] = description
            self._progress.update(self._task, advance=advance, **kw)


def _one_run(init, step, objective, monitor, rng, tol, max_iter, bar, label):
    start = time.perf_counter()
    state = init(rng)
    values = [objective(state)]
    times = [time.perf_counter() - start]
    monitored = [monitor(state)] if monitor else []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is read after the loop
        state = step(state)
        values.append(objective(state))
        times.append(time.perf_counter() - start)
        if monitor:
            monitored.append(monitor(state))
        bar.update(description=f"{label}: {values[-1]:.6g}")
        # Absolute change of the objective in nats (module docstring, "Stopping rule").
        if abs(values[-1] - values[-2]) <= tol:
            converged = True
            break
    traces = {k: np.array([m[k] for m in monitored]) for k in (monitored[0] if monitored else {})}
    return state, np.array(values), np.array(times), traces, converged, n_iter


def coordinate_ascent(
    *,
    init: Callable[[np.random.Generator], Any],
    step: Callable[[Any], Any],
    objective: Callable[[Any], float],
    rng: np.random.Generator,
    n_init: int,
    tol: float,
    max_iter: int,
    progress: bool = False,
    label: str = "fit",
    monitor: Callable[[Any], Mapping[str, float]] | None = None,
) -> RunResult:
    """Run ``n_init`` restarts of ``step`` until one step changes ``objective`` by at
    most ``tol`` nats (or ``max_iter`` steps), and keep the restart with the highest
    final objective.

    Restarts draw their initial states from ``rng`` in order, so one seed fixes them all.
    If the kept restart stopped at ``max_iter`` unconverged, warns with
    :class:`~gmmkit.ConvergenceWarning` (``label`` names the method in the message).
    """
    start = time.perf_counter()
    best = None
    finals = np.full(n_init, np.nan)
    failures: list[str] = []
    with progress_bar(progress, label, total=None) as bar:
        for restart in range(n_init):
            try:
                run = _one_run(init, step, objective, monitor, rng, tol, max_iter, bar,
                               f"{label} restart {restart + 1}/{n_init}")
            except RestartFailed as err:
                message = f"restart {restart}: {err}"
                failures.append(message)
                warn(message, RuntimeWarning)
                continue
            finals[restart] = run[1][-1]
            if best is None or run[1][-1] > best[1][-1]:
                best = run
    if best is None:
        raise RuntimeError(
            f"every one of the {n_init} restart(s) failed: " + "; ".join(failures)
        )
    state, trace, times, traces, converged, n_iter = best
    if not converged:
        warn(unconverged_message(label, trace, n_iter, tol), ConvergenceWarning)
    return RunResult(
        state=state, trace=trace, time_trace=times, monitor_traces=traces,
        converged=converged, n_iter=n_iter, restart_objectives=finals,
        restart_failures=tuple(failures), elapsed_s=time.perf_counter() - start,
    )


def unconverged_message(label: str, trace: np.ndarray, n_iter: int, tol: float) -> str:
    """What the convergence warning says: method, iterations, last change, remedy."""
    last = float(trace[-1] - trace[-2]) if trace.size >= 2 else float("nan")
    return (
        f"{label} did not converge: stopped at max_iter={n_iter} iterations with the "
        f"objective still changing by {last:+.3g} nats in the last iteration "
        f"(tol={tol:g} nats); raise max_iter or tol"
    )


def fit_from_run(
    run: RunResult,
    *,
    method: str,
    model: Any,
    data: np.ndarray,
    posterior: Any,
    responsibilities: np.ndarray,
    seed: int,
    elbo_trace: np.ndarray | None = None,
    **extra: Any,
):
    """The ``Fit`` of a closed-form method from the loop's result: the bookkeeping
    (ELBO, traces, convergence, restarts, timing) is the same for every method.

    ``elbo_trace`` defaults to the loop's objective trace; ``extra`` goes to ``Fit`` as is.
    """
    from gmmkit.result import Fit

    trace = run.trace if elbo_trace is None else elbo_trace
    return Fit(
        method=method, model=model, data=data, posterior=posterior,
        responsibilities=responsibilities, elbo=float(trace[-1]), elbo_trace=trace,
        converged=run.converged, n_iter=run.n_iter, elapsed_s=run.elapsed_s, seed=seed,
        restart_elbos=run.restart_objectives, time_trace=run.time_trace,
        restart_failures=run.restart_failures, **extra,
    )


def initial_means(
    X: np.ndarray, n_components: int, init: str, rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Initial component means, shape (K, D), from data ``X`` of shape (N, D).

    "kmeans++" uses scikit-learn's ``kmeans_plusplus`` seeding (Arthur & Vassilvitskii,
    2007); "random" picks K distinct data points uniformly.  With ``sample_weight`` (N,)
    kmeans++ draws every seed with probability proportional to weight times squared
    distance (scikit-learn's weighted seeding, which draws through the cumulative sum of
    the weights, so integer weights pick the same points as repeated rows for the same
    random numbers, and zero-weight points are never picked); "random" picks K distinct
    points with probabilities proportional to their weights.
    """
    if init == "kmeans++":
        from sklearn.cluster import kmeans_plusplus

        extra = {} if sample_weight is None else {"sample_weight": sample_weight}
        centers, _ = kmeans_plusplus(
            X, n_components, random_state=int(rng.integers(2**31 - 1)), **extra
        )
        return centers
    if init == "random":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        return X[rng.choice(X.shape[0], size=n_components, replace=False, p=p)].copy()
    raise ValueError(f"unknown init {init!r}; expected one of 'kmeans++', 'random'")
