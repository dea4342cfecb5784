"""The gmmkit models as PyMC graphs, with the discrete assignments summed out.

ADVI and NUTS cannot handle the categorical z, so both graphs use a marginalised mixture
likelihood (``NormalMixture`` / a ``CustomDist``).  The graphs are *exactly* the closed-form
models: same priors, same likelihood, same constants (checked in
``tests/inference/test_pymc.py`` against ``model.log_joint``).

:func:`model_graph` is the entry point.  Graphs are cached by value in the backend's one
cache (:mod:`.cache`) under :class:`GraphKey` (model with concrete priors, data shape,
ordered): the data enter through ``pm.Data``, so a second fit of a model with the same
shapes reuses the graph and only swaps the data (``pm.set_data``).  The priors are
constants of the graph, so a ``BayesianGMM`` whose priors default to data-dependent values
(m0, W0) resolves to a different model, and a different graph, for every new data set.

What the backend needs to know about a model family it asks the functions here, each a
:func:`functools.singledispatch` on the model type: a new family registers its graph
builder (:func:`build_graph`) and, where the defaults do not fit, its concrete priors,
ordered transform, starting points and sorted prior particles, next to its graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch
from typing import Any, NamedTuple

import numpy as np

from gmmkit.inference.pymc.cache import CACHE
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.gaussian import LOG_2PI
from gmmkit.models.univariate import UnivariateGMM

__all__ = [
    "GraphKey",
    "bartlett_wishart",
    "bayesian_gmm_graph",
    "build_graph",
    "cached_graph",
    "concrete_model",
    "model_graph",
    "ordered_prior_particles",
    "start_from_means",
    "start_from_point_estimates",
    "univariate_gmm_graph",
    "uses_ordered_transform",
]


# ----------------------------------------------------------------------------- per model
@singledispatch
def build_graph(model, x: np.ndarray, *, ordered: bool):
    """A new ``pm.Model`` of ``model`` (concrete priors) on validated data ``x``, the
    ordered transform on the means when ``ordered`` (already :func:`uses_ordered_transform`).
    Each model family registers its builder."""
    raise TypeError(f"no PyMC graph for {type(model).__name__}; register one with "
                    "gmmkit.inference.pymc.graphs.build_graph.register")


@singledispatch
def concrete_model(model, x: np.ndarray):
    """The model with every data-dependent prior resolved on ``x`` (the graph's priors are
    constants).  Default: the model itself."""
    return model


@singledispatch
def uses_ordered_transform(model, ordered: bool) -> bool:
    """Whether the graph orders the component means when ``ordered`` is asked for.
    Default: never (the label symmetry stays; alignment handles it)."""
    return False


@singledispatch
def start_from_means(model, means: np.ndarray) -> dict[str, np.ndarray]:
    """Initial values (constrained space, by random-variable name) with component means
    ``means`` (K, D).  Default: the means under ``model.means_variable``."""
    return {model.means_variable: np.asarray(means, dtype=float)}


@singledispatch
def start_from_point_estimates(model, estimates: Mapping[str, np.ndarray]
                               ) -> dict[str, np.ndarray]:
    """Initial values from a previous fit's point estimates (``weights``, ``means``,
    ``covariances``); ``model`` has concrete priors.  Default: its means only."""
    return start_from_means(model, estimates["means"])


@singledispatch
def ordered_prior_particles(model, draws: int, chains: int, seed: int) -> list[dict]:
    """SMC's starting particles per chain under the ordered transform: sorted prior draws
    in the unconstrained space, by value-variable name.  Needed only by families whose
    :func:`uses_ordered_transform` can be true."""
    raise NotImplementedError(f"no sorted prior particles for {type(model).__name__}")


def _increasing(mu: np.ndarray) -> np.ndarray:
    """Sorted and strictly increasing (the ordered transform's domain)."""
    mu = np.sort(np.asarray(mu, dtype=float))
    for i in range(1, mu.size):
        mu[i] = max(mu[i], mu[i - 1] + 1e-6 * max(1.0, abs(mu[i - 1])))
    return mu


# ----------------------------------------------------------------------------- the cache
class GraphKey(NamedTuple):
    """What a graph is determined by (its value in the cache is the ``pm.Model``)."""

    model: Any  # with concrete priors
    shape: tuple[int, ...]  # of the data
    ordered: bool  # the ordered transform is used


def cached_graph(key: GraphKey, x: np.ndarray) -> tuple[Any, bool]:
    """(the cached graph for ``key``, False), or (one built on ``x`` and cached, True).

    A cached graph holds whatever data it was last given: callers that run it set theirs
    (:func:`model_graph`); the compiled log density replaces the data by an input.
    """
    return CACHE.get_or_build(key, lambda: build_graph(key.model, x, ordered=key.ordered))


def graph_for(model, x: np.ndarray, *, ordered: bool = True):
    """(graph holding ``x``, its key, whether it was built now) for validated ``x``."""
    import pymc as pm

    concrete = concrete_model(model, x)
    key = GraphKey(concrete, tuple(x.shape), bool(uses_ordered_transform(concrete, ordered)))
    graph, built = cached_graph(key, x)
    if not built:
        with graph:
            pm.set_data({"x": x})
    return graph, key, built


def model_graph(model, x: Any, *, ordered: bool = True):
    """``model`` as a ``pm.Model`` on data ``x``, with the assignments summed out.

    Parameters
    ----------
    model : UnivariateGMM or BayesianGMM (or a registered family)
    x : array_like
        Data; validated by the model and entered through ``pm.Data("x")``.
    ordered : bool
        Order the component means (the ordered transform) where the family supports it
        (the univariate model with K > 1).

    Returns
    -------
    pymc.Model
        Cached by value: equal models on data of the same shape share one graph, whose
        ``x`` is set to these data.
    """
    graph, _, _ = graph_for(model, model.check_data(x, min_points=1), ordered=ordered)
    return graph


# ----------------------------------------------------------------------------- univariate
@build_graph.register
def _(model: UnivariateGMM, x: np.ndarray, *, ordered: bool):
    return univariate_gmm_graph(model, x, ordered=ordered)


@uses_ordered_transform.register
def _(model: UnivariateGMM, ordered: bool) -> bool:
    return bool(ordered and model.n_components > 1)


@start_from_means.register
def _(model: UnivariateGMM, means: np.ndarray) -> dict[str, np.ndarray]:
    # Sorted and distinct: the ordered transform's domain (harmless without it).
    return {model.means_variable: _increasing(np.asarray(means, dtype=float)[:, 0])}


@ordered_prior_particles.register
def _(model: UnivariateGMM, draws: int, chains: int, seed: int) -> list[dict]:
    """Sorted prior draws of mu per chain, in the ordered transform's unconstrained space
    (y_0 = mu_0, y_i = log(mu_i - mu_{i-1}))."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(chains):
        mu = np.sort(rng.normal(0.0, model.prior_sd, size=(draws, model.n_components)), axis=1)
        y = np.concatenate([mu[:, :1], np.log(np.diff(mu, axis=1))], axis=1)
        out.append({f"{model.means_variable}_ordered__": y})
    return out


def univariate_gmm_graph(model, x: np.ndarray, *, ordered: bool = True):
    """Blei et al.'s univariate GMM as a ``pm.Model``.

    mu ~ Normal(0, prior_sd), shape (K,), dims "component" (ordered transform when
    ``ordered`` and K > 1); x_i ~ sum_k (1/K) Normal(mu_k, obs_sd).

    The ordered transform restricts the prior to the region mu_1 < ... < mu_K (1/K! of
    the space) without renormalising it: the unnormalised density there equals the
    exchangeable model's, so ELBOs need no correction, while evidences do
    (log Z = log Z_ordered + log K!).

    Parameters
    ----------
    model : UnivariateGMM
    x : ndarray, shape (N,)
        Validated data; enters through ``pm.Data("x")``.
    ordered : bool

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    x = np.asarray(x, dtype=float)
    k = model.n_components
    use_ordered = bool(ordered and k > 1)

    coords = {"component": np.arange(k), "observation": np.arange(x.shape[0])}
    with pm.Model(coords=coords) as graph:
        data = pm.Data("x", x, dims="observation")
        # A sorted, distinct starting point is required by the ordered transform.
        spread = model.prior_sd * np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros(1)
        kwargs: dict[str, Any] = {"initval": spread}
        if use_ordered:
            kwargs["transform"] = pm.distributions.transforms.ordered
        # float64 arrays, not Python floats: PyTensor turns a float that is exact in
        # float32 (2.5, 0.5, ...) into a float32 constant and computes log(sigma) in
        # float32, off by ~3e-8 per term from the closed-form model.
        prior_sd = np.asarray(model.prior_sd, dtype=np.float64)
        obs_sd = np.asarray(model.obs_sd, dtype=np.float64)
        mu = pm.Normal("mu", np.float64(0.0) * prior_sd, prior_sd, dims="component",
                       **kwargs)
        if k == 1:
            pm.Normal("x_obs", mu=mu[0], sigma=obs_sd, observed=data,
                      dims="observation")
        else:
            pm.NormalMixture("x_obs", w=np.full(k, 1.0 / k), mu=mu, sigma=obs_sd,
                             observed=data, dims="observation")
    return graph


def bartlett_wishart(name: str, scale: np.ndarray, nu: float, n_components: int):
    """K independent Wishart(nu, W) precisions by the Bartlett decomposition.

    Lambda_k = L A_k A_k^T L^T with L = chol(W), A_k lower triangular,
    (A_k)_ii = sqrt(c_i), c_i ~ chi^2(nu - i) (i = 0..D-1), (A_k)_ij ~ N(0, 1) below the
    diagonal (Bartlett 1933).  Every free variable is continuous and has a standard
    transform, so NUTS and ADVI can use it (plain ``pm.Wishart`` has none).

    Returns ``(precision, factor)``: the (K, D, D) precisions and their lower Cholesky
    factors U_k = L A_k (lower triangular with a positive diagonal, Lambda_k = U_k U_k^T).
    """
    import pymc as pm
    import pytensor.tensor as pt

    scale = np.asarray(scale, dtype=float)
    d = scale.shape[0]
    chol = np.linalg.cholesky(scale)
    dof = np.asarray(nu - np.arange(d), dtype=np.float64)  # chi^2 dof of the diagonal
    c = pm.ChiSquared(f"{name}_bartlett_c", nu=dof, shape=(n_components, d))
    rows, cols = np.tril_indices(d, -1)
    n_off = rows.size
    # A_k from products with constant 0/1 matrices rather than ``set_subtensor``: the
    # graph stays vectorisable (``vectorize_graph`` cannot batch a sliced set_subtensor),
    # which the batched log density of ADVI's ELBO estimate needs.
    a = pt.sqrt(c)[:, :, None] * np.eye(d)  # (K, D, D), diagonal sqrt(c_i)
    if n_off:
        z = pm.Normal(f"{name}_bartlett_z", 0.0, 1.0, shape=(n_components, n_off))
        place = np.zeros((n_off, d * d))
        place[np.arange(n_off), rows * d + cols] = 1.0  # z_j goes to (rows[j], cols[j])
        a = a + pt.dot(z, place).reshape((n_components, d, d))
    # L A_k, shape (K, D, D); einsum loses the static shape, which CustomDist needs.
    factor = pt.specify_shape(pt.einsum("ij,kjl->kil", chol, a), (n_components, d, d))
    precision = pt.specify_shape(pt.einsum("kij,klj->kil", factor, factor),
                                 (n_components, d, d))
    return precision, factor


def _gaussian_logp_by_precision_factor(diff, factor):
    """log N(diff | 0, (U U^T)^-1) over the last axis, U = ``factor`` lower triangular:
    -D/2 log 2 pi + sum_i log U_ii - ||U^T diff||^2 / 2.

    Written with elementwise products and sums only: no solve, inverse or Cholesky.
    PyTensor runs batched ``solve_triangular``/``cholesky`` (what ``pm.MvNormal`` uses) as
    a Python loop over the batch, ~40x slower for N = 150 points, and their gradients
    likewise.
    """
    import pytensor.tensor as pt

    d = diff.shape[-1]
    eye = np.eye(int(factor.type.shape[-1]))
    log_det = pt.sum(pt.log(pt.sum(factor * eye, axis=-1)), axis=-1)  # sum_i log U_ii
    projected = pt.sum(diff[..., :, None] * factor, axis=-2)  # U^T diff
    return -0.5 * d * LOG_2PI + log_det - 0.5 * pt.sum(projected**2, axis=-1)


def _solve_upper_t(factor: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """U^-T eps for lower-triangular U (batched): a draw of N(0, (U U^T)^-1)."""
    return np.linalg.solve(np.swapaxes(factor, -1, -2), eps[..., None])[..., 0]


def bayesian_gmm_graph(model, X: np.ndarray):
    """Bishop's (PRML §10.2) Bayesian GMM as a ``pm.Model``, z summed out.

    pi ~ Dirichlet(alpha0 1_K); Lambda_k ~ Wishart(W0, nu0) (Bartlett construction);
    mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1); x_i ~ sum_k pi_k N(mu_k, Lambda_k^-1).

    ``model`` must have concrete priors (``BayesianGMM.resolve(X)``): ``alpha0`` (scalar),
    ``beta0``, ``m0`` (D,), ``W0`` (D, D), ``nu0``.  Deterministics ``weights``
    (component), ``means`` (component, feature) and ``covariances`` (component, feature,
    feature_bis) carry the canonical names.

    Both Gaussians are ``pm.CustomDist`` with their log density written through the
    precision's Cholesky factor U_k = L A_k, which the Bartlett construction gives
    directly (see :func:`_gaussian_logp_by_precision_factor`).  ``pm.MvNormal`` would
    need chol(Lambda_k^-1) and batched triangular solves, and in PyMC 5.28 a batched
    symbolic ``tau`` gives it a wrongly shaped logp (K, K, ...).  Both have NumPy
    ``random`` functions, so prior draws (SMC's start, ``pm.draw``) work.
    """
    X = np.asarray(X, dtype=float)
    k = model.n_components
    n, d = X.shape

    def build():
        import pymc as pm
        import pytensor.tensor as pt

        coords = {
            "component": np.arange(k), "feature": np.arange(d),
            "feature_bis": np.arange(d), "observation": np.arange(n),
        }
        alpha0 = float(np.ravel(model.alpha0)[0])
        beta0 = float(model.beta0)
        m0 = np.asarray(model.m0, dtype=np.float64)

        def mean_logp(value, factor):
            return (0.5 * d * np.log(beta0)
                    + _gaussian_logp_by_precision_factor(np.sqrt(beta0) * (value - m0),
                                                         factor))

        def mean_random(factor, rng=None, size=None):
            factor = np.asarray(factor, dtype=float)
            batch = factor.shape[:-2] if size is None else tuple(size)
            factor = np.broadcast_to(factor, (*batch, d, d))
            eps = rng.standard_normal((*batch, d))
            return m0 + _solve_upper_t(factor, eps) / np.sqrt(beta0)

        def mixture_logp(value, weights, means, factor):
            diff = value[..., None, :] - means  # (..., N, K, D)
            comp = pt.log(weights) + _gaussian_logp_by_precision_factor(diff, factor)
            return pm.math.logsumexp(comp, axis=-1, keepdims=False)

        def mixture_random(weights, means, factor, rng=None, size=None):
            size = (n,) if size is None else tuple(size)
            labels = rng.choice(k, size=size, p=np.asarray(weights) / np.sum(weights))
            eps = rng.standard_normal((*size, d))
            return np.asarray(means)[labels] + _solve_upper_t(np.asarray(factor)[labels], eps)

        with pm.Model(coords=coords) as graph:
            data = pm.Data("x", X, dims=("observation", "feature"))
            weights = pm.Dirichlet("weights", a=np.full(k, alpha0), dims="component")
            precision, factor = bartlett_wishart("precision", model.W0, float(model.nu0), k)
            precision = pm.Deterministic(
                "precisions", precision, dims=("component", "feature", "feature_bis")
            )
            pm.Deterministic(
                "covariances", pt.linalg.inv(precision),
                dims=("component", "feature", "feature_bis"),
            )
            means = pm.CustomDist(
                "means", factor, logp=mean_logp, random=mean_random,
                signature="(d,d)->(d)", dims=("component", "feature"),
            )
            pm.CustomDist(
                "x_obs", weights, means, factor, logp=mixture_logp, random=mixture_random,
                signature="(k),(k,d),(k,d,d)->(d)", observed=data,
                dims=("observation", "feature"),
            )
        return graph

    return build()


@build_graph.register
def _(model: BayesianGMM, x: np.ndarray, *, ordered: bool):
    return bayesian_gmm_graph(model, x)


@concrete_model.register
def _(model: BayesianGMM, x: np.ndarray):
    return model.resolve(x)


@start_from_point_estimates.register
def _(model: BayesianGMM, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    means = np.asarray(estimates["means"], dtype=float)
    weights = np.clip(np.asarray(estimates["weights"], dtype=float), 1e-6, None)
    precision = np.linalg.inv(np.asarray(estimates["covariances"], dtype=float))
    # Invert the Bartlett construction Lambda_k = L A_k A_k^T L^T (bartlett_wishart): A_k
    # is the Cholesky factor of L^-1 Lambda_k L^-T, c = diag(A_k)^2, z = below its diagonal.
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
