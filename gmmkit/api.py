"""``gmmkit.fit``: the one entry point that fits any model by any method."""

from __future__ import annotations

from typing import Any

import numpy as np

from gmmkit._validation import check_choice, check_int
from gmmkit.result import Fit

__all__ = ["PYMC_METHODS", "fit", "methods_for", "resolve_seed"]

#: Methods that run on the model's PyMC graph (``model.to_pymc``).
PYMC_METHODS = ("advi", "fullrank_advi", "nuts", "smc")


def methods_for(model: Any) -> tuple[str, ...]:
    """The methods that apply to ``model``, e.g. ("cavi", "advi", ...)."""
    methods = getattr(model, "methods", None)
    if methods is None:
        raise ValueError(
            "model must be a gmmkit model (UnivariateGMM, BayesianGMM or GaussianMixture), "
            f"got {type(model).__name__}"
        )
    return tuple(methods)


def resolve_seed(seed: int | np.random.Generator | None) -> int:
    """Turn ``seed`` into an int that the Fit records, so every fit can be replayed.

    ``None`` draws fresh entropy from a new Generator; the global NumPy state is never
    read or written.
    """
    if seed is None:
        return int(np.random.default_rng().integers(2**32))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**32))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative int, a numpy.random.Generator or None, got {seed!r}"
        )
    return int(seed)


def fit(
    model: Any,
    x: Any,
    method: str = "cavi",
    *,
    seed: int | np.random.Generator | None = None,
    n_init: int = 1,
    init: Any = "kmeans++",
    tol: float = 1e-8,
    max_iter: int = 1000,
    progress: bool = False,
    **options: Any,
) -> Fit:
    """Fit ``model`` to data ``x`` with ``method``.

    Parameters
    ----------
    model : UnivariateGMM, BayesianGMM or GaussianMixture
        The model, declared once; see ``model.methods`` for what applies.
    x : array_like, shape (N,) or (N, D)
        Data; validated (finite, right shape, at least K points).
    method : str
        "cavi" (closed-form CAVI / Bishop VB), "em", "kmeans", or a PyMC method:
        "advi", "fullrank_advi", "nuts", "smc".
    seed : int, numpy.random.Generator or None
        Fixes every random choice (initialisation, restarts, draws). Recorded in
        ``Fit.seed``; the global NumPy RNG is never touched.
    n_init : int
        Number of restarts; the best final objective is kept.
    init : {"kmeans++", "random"} or Fit
        Initialisation of the means; PyMC methods also accept a previous ``Fit``.
    tol : float
        Stop when the relative change of the objective is at most ``tol``; 0 runs
        exactly ``max_iter`` iterations (unless the objective stops changing at all).
    max_iter : int
        Maximum iterations per restart.
    progress : bool
        Show a progress bar.
    **options
        Method-specific options (PyMC methods: ``draws``, ``tune``, ``chains``,
        ``n_iter``; see ``gmmkit.inference.pymc_methods``).

    Returns
    -------
    Fit
    """
    method = check_choice("method", method, _all_methods())
    allowed = methods_for(model)
    if method not in allowed:
        raise ValueError(
            f"method {method!r} does not apply to {type(model).__name__}; "
            f"expected one of {', '.join(repr(m) for m in allowed)}"
        )
    n_init = check_int("n_init", n_init, 1)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = _check_tol(tol)
    if not isinstance(init, Fit):
        check_choice("init", init, ("kmeans++", "random"))
    seed = resolve_seed(seed)
    common = dict(seed=seed, n_init=n_init, init=init, tol=tol, max_iter=max_iter,
                  progress=progress)

    if method in PYMC_METHODS:
        from gmmkit.inference.pymc_methods import fit_pymc

        data = model.check_data(x, min_points=model.n_components)
        if isinstance(init, Fit):
            _check_init_fit(init, model, data)
        return fit_pymc(model, data, method, **common, **options)
    if options:
        raise ValueError(
            f"unexpected option(s) {', '.join(sorted(options))} for method {method!r}"
        )
    if isinstance(init, Fit):
        raise ValueError(f"init must be 'kmeans++' or 'random' for method {method!r}, got a Fit")
    data = model.check_data(x, min_points=max(model.n_components, model.min_points))
    if method == "cavi":
        from gmmkit.models.univariate import UnivariateGMM

        if isinstance(model, UnivariateGMM):
            from gmmkit.inference.cavi import fit_cavi

            return fit_cavi(model, data, **common)
        from gmmkit.inference.vb import fit_vb

        return fit_vb(model, data, **common)
    from gmmkit.inference.em import fit_em, fit_kmeans

    return (fit_em if method == "em" else fit_kmeans)(model, data, **common)


def _check_init_fit(init: Fit, model: Any, data: np.ndarray) -> None:
    """Refuse an ``init=`` Fit whose components or dimension differ from the model and
    data, before any PyMC work (the start values would have the wrong shapes)."""
    if init.n_components != model.n_components:
        raise ValueError(
            f"init must be a Fit with {model.n_components} components to match the model, "
            f"got a Fit with {init.n_components}"
        )
    means = np.asarray(init.posterior.point_estimates()["means"])
    d_init = 1 if means.ndim < 2 else means.shape[-1]
    d_data = 1 if data.ndim == 1 else data.shape[1]
    if d_init != d_data:
        raise ValueError(
            f"init must be a Fit of {d_data}-dimensional data to match x, got a Fit of "
            f"{d_init}-dimensional data"
        )


def _check_tol(tol: Any) -> float:
    try:
        value = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"tol must be a non-negative finite number, got {tol!r}")
    return value


def _all_methods() -> tuple[str, ...]:
    return ("cavi", "em", "kmeans", *PYMC_METHODS)
