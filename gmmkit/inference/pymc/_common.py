"""What the ADVI and sampler backends share: option range checks, quiet PyMC, starting
points, canonical draws and the assembly of the :class:`~gmmkit.result.Fit`."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from gmmkit.inference.pymc.graphs import start_from_means, start_from_point_estimates
from gmmkit.result import Fit

_POSITIVE_INTS = ("n_iter", "draws", "tune", "chains", "max_elbo_draws")


def _check_options(method_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Range checks of a PyMC method's options.

    ``options`` are already complete and known: :func:`gmmkit.fit` merges the method
    table's defaults (``Method.options``) and refuses unknown names.  Returns a copy.
    """
    out = dict(options)
    for name in _POSITIVE_INTS:
        if name in out:
            value = out[name]
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return out


@contextlib.contextmanager
def quiet_pymc(progress: bool):
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


def canonical_draws(model, posterior_group) -> dict[str, np.ndarray]:
    return {name: np.asarray(posterior_group[name].values, dtype=float)
            for name in model.parameter_dims}


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
