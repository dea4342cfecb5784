"""What the ADVI and sampler backends share: option range checks, quiet PyMC, starting
points, canonical draws and the assembly of the :class:`~gmmkit.result.Fit`."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from gmmkit._validation import check_positive
from gmmkit.inference.pymc.graphs import (
    OWN_AXIS_VARIABLES,
    graph_for,
    start_from_means,
    start_from_point_estimates,
)
from gmmkit.result import Fit

_POSITIVE_INTS = ("n_iter", "draws", "tune", "chains", "max_elbo_draws",
                  "convergence_window")

#: Fewest fresh draws of q allowed for ADVI's ELBO estimate (``max_elbo_draws``): the
#: estimate draws a first batch of 500 before it looks at its standard error, so a
#: smaller cap could not be honoured; above it, later batches stop at the cap exactly.
MIN_ELBO_DRAWS = 500


def _check_options(method_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Range checks of a PyMC method's options, with a message that names the option.

    ``options`` are already complete and known: :func:`gmmkit.fit` merges the method
    table's defaults (``Method.options``) and refuses unknown names.  Returns a copy.
    """
    out = dict(options)
    minimum = {"max_elbo_draws": MIN_ELBO_DRAWS}
    for name in _POSITIVE_INTS:
        if name in out:
            value, low = out[name], minimum.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            out[name] = int(value)
    for name in ("learning_rate", "convergence_tol", "elbo_se_target"):
        if name in out:
            out[name] = check_positive(name, out[name])
    if "target_accept" in out:
        value = out["target_accept"]
        try:
            prob = float(value)
        except (TypeError, ValueError):
            prob = float("nan")
        if isinstance(value, bool) or not 0.0 < prob < 1.0:
            raise ValueError(f"target_accept must be a number in (0, 1), got {value!r}")
        out["target_accept"] = prob
    if "ordered" in out:
        if not isinstance(out["ordered"], bool | np.bool_):
            raise ValueError(f"ordered must be True or False, got {out['ordered']!r}")
        out["ordered"] = bool(out["ordered"])
    return out


@contextlib.contextmanager
def interrupts_propagate():
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


def _ignore_pymc_noise() -> None:
    """Filter third-party warnings that say nothing about the fit: PyTensor's "could not
    link to a BLAS installation" (a speed note), PyMC/PyTensor FutureWarnings, and the
    overflow/invalid RuntimeWarnings NumPy raises inside PyMC's ``dot`` (and PyTensor's
    Python fallbacks) on draws far in q's tails, which the ELBO estimate handles."""
    warnings.filterwarnings("ignore", message=".*BLAS.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for module in ("pymc", "pytensor", "numpy"):
        warnings.filterwarnings("ignore", message=r".*(overflow|invalid value).*",
                                category=RuntimeWarning, module=module)


@contextlib.contextmanager
def quiet_pymc(progress: bool):
    """Quiet PyMC while a fit runs: its loggers at ERROR and its noise filtered
    (:func:`_ignore_pymc_noise`); with ``progress`` the loggers speak but the noise is
    still filtered.  gmmkit's own warnings pass."""
    if progress:
        with warnings.catch_warnings():
            _ignore_pymc_noise()
            yield
        return
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            _ignore_pymc_noise()
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def canonical_draws(model, posterior_group) -> dict[str, np.ndarray]:
    """The draws a fit keeps, (chain, draw, ...) by name: every parameter of
    ``model.parameter_dims`` (the canonical names, and the family's native parameter when
    the model lists it), plus the variables on an axis of their own that the graph has
    (the sticks of stick-breaking weights, :data:`OWN_AXIS_VARIABLES`)."""
    names = [*model.parameter_dims,
             *(name for name in OWN_AXIS_VARIABLES if name in posterior_group)]
    return {name: np.asarray(posterior_group[name].values, dtype=float) for name in names}


def log_k_factorial(model, used_ordered: bool) -> float:
    """log K! under the ordered transform (q lives on 1/K! of the space), else 0."""
    return float(np.sum(np.log(np.arange(2, model.n_components + 1)))) if used_ordered else 0.0


def starts(model, x, init, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` starting points: all from ``init`` when it is a Fit, else means seeded by
    ``init`` ("kmeans++" or "random") on the data, one independent seeding each (ADVI
    restarts).  Without data-seeded means every component would start at the
    same point (the prior's), a symmetric saddle that ADVI leaves only slowly.
    ``model`` has concrete priors."""
    if isinstance(init, Fit):
        return [start_from_point_estimates(model, init.posterior.point_estimates())] * n
    from gmmkit.inference.loop import initial_means

    X = x[:, None] if x.ndim == 1 else x
    rng = np.random.default_rng([seed, 2])
    return [start_from_means(model, initial_means(X, model.n_components, init, rng))
            for _ in range(n)]


def make_fit(method: str, model, x: np.ndarray, result: dict, *, seed: int,
             start_time: float, graph_s: float) -> Fit:
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


class Prepared(NamedTuple):
    """What every PyMC backend starts from: checked options, the graph holding the data
    (with its key, whose ``model`` has concrete priors) and the timings so far."""

    opts: dict[str, Any]
    graph: Any
    key: Any
    start_time: float
    graph_s: float


@contextlib.contextmanager
def prepared(model, x: np.ndarray, method: str, options: Mapping[str, Any],
             progress: bool):
    """Check ``options``, then, with PyMC quietened, yield the :class:`Prepared` graph:
    the prelude every backend shares (the fit runs inside the ``with``)."""
    opts = _check_options(method, options)
    start_time = time.perf_counter()
    with quiet_pymc(progress):
        t0 = time.perf_counter()
        graph, key, _ = graph_for(model, x, ordered=bool(opts["ordered"]))
        yield Prepared(opts, graph, key, start_time, time.perf_counter() - t0)
