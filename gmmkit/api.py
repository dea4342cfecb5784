"""``gmmkit.fit``: the one entry point that fits any model by any method."""

from __future__ import annotations

from typing import Any

import numpy as np

from gmmkit._validation import check_choice, check_int, is_lazy_array
from gmmkit.inference.methods import CAVI, COMMON_OPTIONS, Method, get_method, methods_for
from gmmkit.models.protocol import Model
from gmmkit.result import Fit

__all__ = ["fit", "methods_for", "resolve_seed"]


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
    model: Model,
    x: Any,
    method: str = CAVI.name,
    *,
    seed: int | np.random.Generator | None = None,
    n_init: int | None = None,
    init: Any = None,
    tol: float | None = None,
    max_iter: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Fit:
    """Fit ``model`` to data ``x`` with ``method``.

    Parameters
    ----------
    model : UnivariateGMM, BayesianGMM or GaussianMixture
        The model, declared once; ``gmmkit.api.methods_for(model)`` lists what applies.
    x : array_like or dask.array.Array, shape (N,) or (N, D)
        Data; validated (finite, right shape, at least K points).  The closed-form
        methods ("cavi", "em", "kmeans") also take a Dask array with any row chunking,
        for data larger than memory: each iteration is then one pass over the chunks on
        the active Dask scheduler (threaded, or a ``distributed.Client``), shapes are
        checked up front and values chunk by chunk, and ``Fit.responsibilities`` is a
        lazy Dask array (:mod:`gmmkit.inference.chunked`; needs ``gmmkit[dask]``).
    method : str
        A name from the method table (:data:`gmmkit.inference.methods.METHODS`): "cavi"
        (closed-form CAVI / Bishop VB), "em", "kmeans", or a PyMC method: "advi",
        "fullrank_advi", "nuts", "smc".
    seed : int, numpy.random.Generator or None
        Fixes every random choice (initialisation, restarts, draws). Recorded in
        ``Fit.seed``; the global NumPy RNG is never touched.
    n_init : int, optional
        Number of restarts (closed-form methods and ADVI); the best final objective is
        kept.  Default 1.
    init : {"kmeans++", "random"} or Fit, optional
        Initialisation of the means (default "kmeans++"); ADVI and NUTS also accept a
        previous ``Fit`` of the same model and data.
    tol : float, optional
        Closed-form methods: stop when one iteration changes the objective (ELBO, or
        log-likelihood for EM) by at most ``tol`` nats, an absolute tolerance that does
        not loosen with the number of points (default 1e-5; a scikit-learn ``tol``, per
        point, corresponds to ``tol * N`` here); 0 runs exactly ``max_iter`` iterations
        (unless the objective stops changing at all).  A fit whose kept restart reaches
        ``max_iter`` first warns with :class:`gmmkit.ConvergenceWarning`.
    max_iter : int, optional
        Closed-form methods: maximum iterations per restart (default 1000).
    progress : bool
        Show a progress bar.
    **options
        The method's own options (PyMC methods: ``draws``, ``tune``, ``chains``,
        ``n_iter``, ...; ``Method.options`` in the table lists them with defaults).
        The closed-form methods ("cavi", "em", "kmeans") take ``sample_weight``, an
        array of shape (N,) of non-negative frequency weights: every per-point term of
        the objective is multiplied by its weight, so integer weights give the fit of the
        data with each row repeated that many times, and a zero weight drops the row
        (a Dask array too, with Dask data).

    Returns
    -------
    Fit

    Raises
    ------
    ValueError
        An unknown method, a method that does not apply to the model, or an option
        (common or the method's own) that the method does not take.
    """
    chosen = get_method(method)
    methods_for(model)  # a clear error for anything that is not a gmmkit model
    backend = chosen.backend(model)
    given = {name: value for name, value in
             (("n_init", n_init), ("init", init), ("tol", tol), ("max_iter", max_iter))
             if value is not None}
    unexpected = sorted(set(given).difference(chosen.common) | set(options).difference(
        chosen.options))
    if unexpected:
        raise ValueError(
            f"unexpected option(s) {', '.join(unexpected)} for method {chosen.name!r}; it "
            f"takes {', '.join(sorted(chosen.all_options())) or 'no options'}"
        )
    common = {**{k: COMMON_OPTIONS[k] for k in chosen.common}, **given}
    if "n_init" in common:
        common["n_init"] = check_int("n_init", common["n_init"], 1)
    if "max_iter" in common:
        common["max_iter"] = check_int("max_iter", common["max_iter"], 1)
    if "tol" in common:
        common["tol"] = _check_tol(common["tol"])
    if "init" in common:
        _check_init(common["init"], chosen)
    if is_lazy_array(x) or is_lazy_array(options.get("sample_weight")):
        # Dask input: the chunked driver checks shapes now and values chunk by chunk in
        # its first pass, never computing the whole array (gmmkit.inference.chunked).
        from gmmkit.inference.chunked import chunked_backend

        lazy_backend = chunked_backend(model, chosen)
        if "init" in common and isinstance(common["init"], Fit):
            raise ValueError("init must be 'kmeans++' or 'random' for Dask input, got a Fit")
        if options.get("sample_weight") is not None and not is_lazy_array(
                options["sample_weight"]):
            options["sample_weight"] = _check_sample_weight(
                options["sample_weight"], x.shape[0], 1, model.n_components)
        return lazy_backend(model, x, method=chosen.name, seed=resolve_seed(seed),
                            progress=progress, **common, **{**chosen.options, **options})
    # Closed-form methods may resolve data-dependent priors (a sample covariance needs
    # two points); the PyMC methods only need a point per component.
    min_points = model.n_components if chosen.kind.stores_draws else max(
        model.n_components, model.min_points)
    data = model.check_data(x, min_points=min_points)
    if isinstance(common.get("init"), Fit):
        _check_init_fit(common["init"], model, data)
    if options.get("sample_weight") is not None:
        options["sample_weight"] = _check_sample_weight(
            options["sample_weight"], data.shape[0], min_points, model.n_components)
    # The backend gets every option it takes: the table's defaults, then what was given.
    return backend(model, data, method=chosen.name, seed=resolve_seed(seed),
                   progress=progress, **common, **{**chosen.options, **options})


def _check_init(init: Any, method: Method) -> None:
    if isinstance(init, Fit):
        if not method.init_from_fit:
            raise ValueError(
                f"init must be 'kmeans++' or 'random' for method {method.name!r}, got a Fit"
            )
        return
    check_choice("init", init, ("kmeans++", "random"))


def _check_init_fit(init: Fit, model: Model, data: np.ndarray) -> None:
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


def _check_sample_weight(
    sample_weight: Any, n_points: int, min_weight: int, n_components: int
) -> np.ndarray:
    """Frequency weights: shape (N,), finite, non-negative, summing to at least what the
    model needs (``min_weight``), with at least one positive weight per component.
    Returns a read-only float copy."""
    try:
        w = np.array(sample_weight, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"sample_weight must be an array of {n_points} non-negative numbers, got "
            f"{type(sample_weight).__name__}"
        ) from None
    if w.shape != (n_points,):
        raise ValueError(
            f"sample_weight must have shape ({n_points},), one weight per data point, "
            f"got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        bad = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ValueError(f"sample_weight must be finite, got {w[bad]} at index {bad}")
    if np.any(w < 0):
        bad = int(np.flatnonzero(w < 0)[0])
        raise ValueError(
            f"sample_weight must be non-negative, got {w[bad]:g} at index {bad}"
        )
    total = float(w.sum())
    if total == 0:
        raise ValueError("sample_weight must not be all zero")
    if total < min_weight:
        raise ValueError(
            f"sample_weight must sum to at least {min_weight} (the weighted count of points "
            f"this model and method need), got {total:g}"
        )
    positive = int(np.count_nonzero(w))
    if positive < n_components:
        raise ValueError(
            f"sample_weight must be positive for at least n_components={n_components} "
            f"points, got {positive}"
        )
    w.setflags(write=False)
    return w


def _check_tol(tol: Any) -> float:
    try:
        value = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"tol must be a non-negative finite number, got {tol!r}")
    return value
