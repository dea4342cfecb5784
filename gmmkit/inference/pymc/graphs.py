"""The gmmkit models as PyMC graphs, with the discrete assignments summed out.

ADVI and NUTS cannot handle the categorical z, so both graphs use a marginalised mixture
likelihood (``NormalMixture`` / a ``CustomDist``).  The graphs are *exactly* the closed-form
models: same priors, same likelihood, same constants (checked in
``tests/inference/test_pymc.py`` and ``tests/inference/test_pymc_families.py`` against
``model.log_joint``, up to the documented change of variables).

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

Every ``BayesianGMM`` (one class for all covariance families and weight priors) is one
graph composed of two parts, each chosen by a ``singledispatch`` on an object of the model:

* the covariance part, :func:`covariance_part` of ``model.covariance_prior`` (the family
  object of :mod:`gmmkit.models.covariance_family`): :data:`FULL` (K Wisharts by the
  Bartlett construction), :data:`TIED` (one), :data:`DIAG` and :data:`SPHERICAL` (Gamma
  precisions per component and dimension, or per component).  It creates the precisions,
  the ``means`` and the deterministics ``covariances`` (K, D, D) and the family's native
  parameter (``variances`` (K, D), ``variance`` (K,), ``covariance`` (D, D)), and says
  how to start them from point estimates;
* the weight part, :func:`weights_graph` of ``model.weight_distribution``
  (:mod:`gmmkit.models.weights`): a Dirichlet ``weights``, or truncated stick-breaking
  (``sticks_logit``, deterministics ``sticks`` (K - 1) and ``weights``).

The graph's density is that of its own random variables, which differ from
``BayesianGMM.log_prior``'s only for full and tied (the Bartlett variables (c, z) instead
of Lambda) and for stick-breaking weights (the sticks' logits instead of pi): the tests
add those log-Jacobians.  No Bayesian graph uses the ordered transform (the label
symmetry stays; alignment handles it), so none needs sorted prior particles.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch
from typing import Any, NamedTuple

import numpy as np

from gmmkit.inference.pymc.cache import CACHE
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.gaussian import LOG_2PI
from gmmkit.models.normal_gamma import NormalGammaFamily
from gmmkit.models.normal_wishart import FullNormalWishart
from gmmkit.models.tied_wishart import TiedWishartFamily
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.models.weights import DirichletWeights, StickBreakingWeights

__all__ = [
    "DIAG",
    "FULL",
    "OWN_AXIS_VARIABLES",
    "SPHERICAL",
    "TIED",
    "ComponentGraph",
    "CovariancePart",
    "GraphKey",
    "bartlett_wishart",
    "bayesian_gmm_graph",
    "build_graph",
    "cached_graph",
    "concrete_model",
    "covariance_part",
    "diag_covariance_graph",
    "dirichlet_weights_graph",
    "full_covariance_graph",
    "model_graph",
    "ordered_prior_particles",
    "spherical_covariance_graph",
    "start_from_means",
    "start_from_point_estimates",
    "stick_breaking_start",
    "stick_breaking_weights_graph",
    "tied_covariance_graph",
    "univariate_gmm_graph",
    "uses_ordered_transform",
    "weights_graph",
    "weights_start",
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


# ----------------------------------------------------------------------------- Bayesian GMM
#
# A Bayesian GMM graph is composed of two parts, chosen by the model's covariance family and
# its weight prior: the covariance part creates the precisions and the component means
# (their prior depends on the family) and says how the likelihood reads its per-component
# scale; the weight part creates the weights.  ``bayesian_gmm_graph`` joins them with the
# marginalised mixture likelihood, which is the same for every family.


class PrecisionFactorScale(NamedTuple):
    """A likelihood scale given as lower Cholesky factors U_k of the precisions
    (Lambda_k = U_k U_k^T), shape (K, D, D), or (1, D, D) shared by every component."""

    signature: str = "(j,d,d)"

    @staticmethod
    def log_density(diff, scale):
        """log N(diff | 0, Lambda_k^-1) over the last axis (symbolic)."""
        return _gaussian_logp_by_precision_factor(diff, scale)

    @staticmethod
    def noise(scale: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """A draw of N(0, Lambda^-1) per row from standard normal ``eps`` (NumPy)."""
        return _solve_upper_t(scale, eps)


class DiagonalPrecisionScale(NamedTuple):
    """A likelihood scale given as the diagonal precisions lambda_kd, shape (K, D)."""

    signature: str = "(k,d)"

    @staticmethod
    def log_density(diff, scale):
        """sum_d log N(diff_d | 0, 1/lambda_d) over the last axis (symbolic): elementwise
        only, D times cheaper than a dense factor."""
        import pytensor.tensor as pt

        d = diff.shape[-1]
        return (-0.5 * d * LOG_2PI + 0.5 * pt.sum(pt.log(scale), axis=-1)
                - 0.5 * pt.sum(scale * diff**2, axis=-1))

    @staticmethod
    def noise(scale: np.ndarray, eps: np.ndarray) -> np.ndarray:
        return eps / np.sqrt(scale)


class ComponentGraph(NamedTuple):
    """What a covariance part adds to a Bayesian GMM graph (built inside the model).

    ``means`` is the (K, D) random variable ``means``; ``scale`` the tensor the likelihood
    takes (see ``scale_kind``).  The part also records the deterministics ``covariances``
    (K, D, D) and the family's native parameter.
    """

    means: Any
    scale: Any
    scale_kind: PrecisionFactorScale | DiagonalPrecisionScale


class CovariancePart(NamedTuple):
    """A covariance family's piece of the graph: ``build(model, k, d)`` -> ComponentGraph
    (inside the ``pm.Model``), and ``start(model, estimates)`` -> the starting values of its
    precision variables (constrained space, by name) from point estimates whose
    ``covariances`` are (K, D, D)."""

    name: str
    build: Any
    start: Any


def _float64(value: Any) -> np.ndarray:
    # float64 arrays, not Python floats: PyTensor turns a float that is exact in float32
    # into a float32 constant (see univariate_gmm_graph).
    return np.asarray(value, dtype=np.float64)


#: The dims of a (K, D, D) parameter; (K, D) and (K,) ones take their prefixes.
_DIMS = ("component", "feature", "feature_bis")


def _means_given_factor(model, factor, d: int):
    """mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1) for precision factors ``factor``
    (K or 1, D, D): a ``pm.CustomDist`` whose log density uses the factor directly."""
    import pymc as pm

    beta0 = float(model.beta0)
    m0 = _float64(model.m0)

    def mean_logp(value, factor):
        # N(m0, (beta0 Lambda)^-1) = N(0, Lambda^-1) at sqrt(beta0)(mu - m0), times
        # beta0^(D/2) for the change of scale.
        return (0.5 * d * np.log(beta0)
                + _gaussian_logp_by_precision_factor(np.sqrt(beta0) * (value - m0), factor))

    def mean_random(factor, rng=None, size=None):
        factor = np.asarray(factor, dtype=float)
        batch = factor.shape[:-2] if size is None else tuple(size)
        factor = np.broadcast_to(factor, (*batch, d, d))
        eps = rng.standard_normal((*batch, d))
        return m0 + _solve_upper_t(factor, eps) / np.sqrt(beta0)

    return pm.CustomDist("means", factor, logp=mean_logp, random=mean_random,
                         signature="(d,d)->(d)", dims=("component", "feature"))


def full_covariance_graph(model, k: int, d: int) -> ComponentGraph:
    """Lambda_k ~ Wishart(W0, nu0) (Bartlett, :func:`bartlett_wishart`), K of them;
    mu_k | Lambda_k ~ N(m0, (beta0 Lambda_k)^-1).  Deterministics ``precisions`` and
    ``covariances`` (the native parameter), (K, D, D)."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = _DIMS
    precision, factor = bartlett_wishart("precision", model.W0, float(model.nu0), k)
    precision = pm.Deterministic("precisions", precision, dims=dims)
    pm.Deterministic("covariances", pt.linalg.inv(precision), dims=dims)
    return ComponentGraph(_means_given_factor(model, factor, d), factor, PrecisionFactorScale())


def tied_covariance_graph(model, k: int, d: int) -> ComponentGraph:
    """One Lambda ~ Wishart(W0, nu0) (Bartlett) shared by every component;
    mu_k | Lambda ~ N(m0, (beta0 Lambda)^-1) iid.  Deterministics ``covariance`` (D, D),
    the native parameter, and ``covariances`` (K, D, D), its K copies."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = _DIMS
    precision, factor = bartlett_wishart("precision", model.W0, float(model.nu0), 1)
    covariance = pm.Deterministic("covariance", pt.linalg.inv(precision[0]), dims=dims[1:])
    pm.Deterministic("covariances", pt.broadcast_to(covariance, (k, d, d)), dims=dims)
    # The (1, D, D) factor broadcasts against the K means in both log densities.
    return ComponentGraph(_means_given_factor(model, factor, d), factor, PrecisionFactorScale())


def diag_covariance_graph(model, k: int, d: int) -> ComponentGraph:
    """lambda_kd ~ Gamma(shape nu0/2, rate 1/(2 W0_d)) (W0 of shape (D,));
    mu_kd | lambda_kd ~ N(m0_d, 1/(beta0 lambda_kd)).  Deterministics ``variances``
    (K, D) = 1/lambda, the native parameter, and ``covariances`` = diag(variances)."""
    import pymc as pm

    dims = _DIMS
    w0 = np.broadcast_to(_float64(model.W0), (d,))
    precision = pm.Gamma("precision_diag", alpha=_float64(0.5 * float(model.nu0)),
                         beta=1.0 / (2.0 * w0), dims=dims[:2])
    variances = pm.Deterministic("variances", 1.0 / precision, dims=dims[:2])
    pm.Deterministic("covariances", variances[:, :, None] * np.eye(d), dims=dims)
    means = pm.Normal("means", mu=_float64(model.m0), tau=float(model.beta0) * precision,
                      dims=dims[:2])
    return ComponentGraph(means, precision, DiagonalPrecisionScale())


def spherical_covariance_graph(model, k: int, d: int) -> ComponentGraph:
    """lambda_k ~ Gamma(shape nu0/2, rate 1/(2 W0)) (W0 a scalar);
    mu_k | lambda_k ~ N(m0, I/(beta0 lambda_k)).  Deterministics ``variance`` (K,) =
    1/lambda, the native parameter, and ``covariances`` = variance_k I."""
    import pymc as pm

    dims = _DIMS
    w0 = float(np.asarray(model.W0, dtype=float).reshape(-1)[0])
    precision = pm.Gamma("precision_spherical", alpha=_float64(0.5 * float(model.nu0)),
                         beta=_float64(1.0 / (2.0 * w0)), dims=dims[0])
    variance = pm.Deterministic("variance", 1.0 / precision, dims=dims[0])
    pm.Deterministic("covariances", variance[:, None, None] * np.eye(d), dims=dims)
    per_feature = precision[:, None] * np.ones(d)  # (K, D): lambda_k in every feature
    means = pm.Normal("means", mu=_float64(model.m0), tau=float(model.beta0) * per_feature,
                      dims=dims[:2])
    return ComponentGraph(means, per_feature, DiagonalPrecisionScale())


def _bartlett_start(W0: np.ndarray, precision: np.ndarray) -> dict[str, np.ndarray]:
    """The Bartlett variables (c, z) of precisions (K, D, D): invert Lambda_k =
    L A_k A_k^T L^T (bartlett_wishart); A_k is the Cholesky factor of L^-1 Lambda_k L^-T,
    c = diag(A_k)^2, z = below its diagonal."""
    chol_inv = np.linalg.inv(np.linalg.cholesky(np.asarray(W0, dtype=float)))
    inner = chol_inv @ precision @ chol_inv.T
    a = np.linalg.cholesky(0.5 * (inner + np.swapaxes(inner, 1, 2)))
    rows, cols = np.tril_indices(precision.shape[-1], -1)
    start = {"precision_bartlett_c": np.diagonal(a, axis1=1, axis2=2) ** 2}
    if rows.size:
        start["precision_bartlett_z"] = a[:, rows, cols]
    return start


def _full_start(model, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return _bartlett_start(model.W0, np.linalg.inv(np.asarray(estimates["covariances"],
                                                              dtype=float)))


def _tied_start(model, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # The weighted average of the K covariances: itself when they are tied already (a
    # previous tied fit), a pooled covariance otherwise.
    covs = np.asarray(estimates["covariances"], dtype=float)
    weights = np.asarray(estimates["weights"], dtype=float)
    pooled = np.einsum("k,kij->ij", weights / weights.sum(), covs)
    return _bartlett_start(model.W0, np.linalg.inv(pooled)[None])


def _diag_start(model, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    covs = np.asarray(estimates["covariances"], dtype=float)
    return {"precision_diag": 1.0 / np.diagonal(covs, axis1=1, axis2=2)}


def _spherical_start(model, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    covs = np.asarray(estimates["covariances"], dtype=float)
    return {"precision_spherical": covs.shape[-1] / np.trace(covs, axis1=1, axis2=2)}


FULL = CovariancePart("full", full_covariance_graph, _full_start)
DIAG = CovariancePart("diag", diag_covariance_graph, _diag_start)
SPHERICAL = CovariancePart("spherical", spherical_covariance_graph, _spherical_start)
TIED = CovariancePart("tied", tied_covariance_graph, _tied_start)


@singledispatch
def covariance_part(family) -> CovariancePart:
    """The graph part of a covariance family object (``model.covariance_prior``,
    :mod:`gmmkit.models.covariance_family`); a new family registers its own."""
    raise TypeError(f"no PyMC graph for the covariance family {type(family).__name__}; "
                    "register one with gmmkit.inference.pymc.graphs.covariance_part.register")


@covariance_part.register
def _(family: FullNormalWishart) -> CovariancePart:
    return FULL


@covariance_part.register
def _(family: TiedWishartFamily) -> CovariancePart:
    return TIED


@covariance_part.register
def _(family: NormalGammaFamily) -> CovariancePart:
    # One class for both Normal-Gamma families; its flag says which precision shape.
    return SPHERICAL if family.spherical else DIAG


# ----------------------------------------------------------------------------- weights
#: Graph variables a fit keeps besides the model's ``parameter_dims``, with their dims
#: after (chain, draw): on an axis of their own, not ``component``, so label alignment
#: leaves them as drawn (the sticks of a relabelled draw are those of its original
#: labelling: a permuted stick-breaking vector is not stick-breaking-ordered).
OWN_AXIS_VARIABLES: dict[str, tuple[str, ...]] = {"sticks": ("stick",)}

def dirichlet_weights_graph(alpha0: float, k: int):
    """pi ~ Dirichlet(alpha0 1_K): the random variable ``weights`` (simplex transform).
    Returns log pi (K,) (symbolic)."""
    import pymc as pm
    import pytensor.tensor as pt

    weights = pm.Dirichlet("weights", a=np.full(k, float(alpha0)), dims="component")
    return pt.log(weights)


def stick_breaking_weights_graph(alpha0: float, k: int):
    """Truncated stick-breaking (Blei & Jordan 2006): v_k ~ Beta(1, alpha0) for k < K,
    v_K = 1, pi_k = v_k prod_{j<k} (1 - v_j).  Returns log pi (K,) (symbolic).

    The random variable is ``sticks_logit`` y_k = logit(v_k) (dims ``stick``, K - 1), with
    the density of Beta(1, a) carried to the logit scale,

        ln p(y) = ln a + ln v + a ln(1 - v),   ln v = -softplus(-y),
        ln(1 - v) = -softplus(y),

    and ``sticks`` v = sigmoid(y) a deterministic.  PyMC's ``pm.Beta`` with its logit
    transform has a NaN gradient once v rounds to 1 (y > ~37), which a small alpha0 makes
    common: 1 - v = U^(1/a), so P(1 - v < 1e-16) = 1e-16^a, 2.5 % for a = 0.1.  Written
    with softplus, the density, its gradient and log pi (a sum of log v and log(1 - v),
    so a tiny remaining stick does not underflow) stay finite for every y.

    Change of variables: the graph's density is that of y.  ``BayesianGMM.log_prior``
    gives pi's density with respect to (pi_1..pi_{K-1}); v -> pi has a triangular
    Jacobian with diagonal prod_{j<k} (1 - v_j) = 1 - sum_{j<k} pi_j, and y -> v has
    v (1 - v), so ln p(y) = ln p(pi) + sum_{k<K} [ln(1 - sum_{j<k} pi_j) + ln v_k +
    ln(1 - v_k)].

    ``sticks`` has its own dimension ``stick``, not ``component``: permuting the components
    (label alignment) does not permute the sticks.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if k == 1:
        pm.Deterministic("weights", pt.ones(1, dtype="float64"), dims="component")
        return pt.zeros(1, dtype="float64")
    a = float(alpha0)

    def logit_logp(value, a):
        return pt.log(a) - pt.softplus(-value) - a * pt.softplus(value)

    def logit_random(a, rng=None, size=None):
        # 1 - v = U^(1/a) for v ~ Beta(1, a): ln(1 - v) = ln U / a, ln v = log1p(-(1 - v)),
        # y = ln v - ln(1 - v), finite where 1 - v underflows.
        size = (k - 1,) if size is None else tuple(size)
        log_rest = np.log(rng.uniform(size=size)) / np.asarray(a, dtype=float)
        return np.log(-np.expm1(log_rest)) - log_rest

    pm.modelcontext(None).add_coord("stick", np.arange(k - 1))
    logit = pm.CustomDist("sticks_logit", _float64(a), logp=logit_logp, random=logit_random,
                          dims="stick")
    pm.Deterministic("sticks", pt.sigmoid(logit), dims="stick")
    zero = pt.zeros(1, dtype="float64")
    log_weights = (pt.concatenate([-pt.softplus(-logit), zero])
                   + pt.concatenate([zero, pt.cumsum(-pt.softplus(logit))]))
    pm.Deterministic("weights", pt.exp(log_weights), dims="component")
    return log_weights


@singledispatch
def weights_graph(prior):
    """The weight part of a Bayesian GMM graph for the weight prior object ``prior``
    (``model.weight_distribution``): builds it inside the model, returns log pi (K,)."""
    raise TypeError(f"no PyMC graph for the weight prior {type(prior).__name__}; register "
                    "one with gmmkit.inference.pymc.graphs.weights_graph.register")


@weights_graph.register
def _(prior: DirichletWeights):
    return dirichlet_weights_graph(prior.alpha0, prior.n_components)


@weights_graph.register
def _(prior: StickBreakingWeights):
    return stick_breaking_weights_graph(prior.gamma, prior.n_components)


# ----------------------------------------------------------------------------- the graph
def bayesian_gmm_graph(model, X: np.ndarray, *, components=full_covariance_graph,
                       weights=None):
    """A Bayesian GMM (Bishop PRML §10.2 and its covariance families) as a ``pm.Model``,
    z summed out.

    x_i ~ sum_k pi_k N(mu_k, Lambda_k^-1), with pi from the weight part and
    (mu_k, Lambda_k) from the covariance part:

    * ``components``: a covariance part's builder (:func:`full_covariance_graph` by
      default: Lambda_k ~ Wishart(W0, nu0) by the Bartlett construction, mu_k | Lambda_k
      ~ N(m0, (beta0 Lambda_k)^-1); or :func:`diag_covariance_graph`,
      :func:`spherical_covariance_graph`, :func:`tied_covariance_graph`);
    * ``weights``: a builder ``() -> log pi`` run inside the model, by default
      pi ~ Dirichlet(alpha0 1_K) (:func:`dirichlet_weights_graph`); :func:`build_graph`
      passes the one :func:`weights_graph` chooses for the model's weight prior.

    ``model`` must have concrete priors (``BayesianGMM.resolve(X)``): ``alpha0``,
    ``beta0``, ``m0`` (D,), ``W0`` (shape per family), ``nu0``.  Deterministics
    ``weights`` (component), ``covariances`` (component, feature, feature_bis) and the
    family's native parameter, with the random variable ``means`` (component, feature),
    carry the canonical names.

    The likelihood is a ``pm.CustomDist`` whose log density takes the covariance part's
    scale directly: precision Cholesky factors for full and tied (which the Bartlett
    construction gives, see :func:`_gaussian_logp_by_precision_factor`), diagonal
    precisions for diag and spherical.  ``pm.MvNormal`` would need chol(Lambda_k^-1) and
    batched triangular solves, and in PyMC 5.28 a batched symbolic ``tau`` gives it a
    wrongly shaped logp (K, K, ...).  Every variable has a NumPy ``random``, so prior
    draws (SMC's start, ``pm.draw``) work.
    """
    import pymc as pm

    X = np.asarray(X, dtype=float)
    k = model.n_components
    n, d = X.shape
    if weights is None:
        def weights():
            return dirichlet_weights_graph(float(np.ravel(model.alpha0)[0]), k)

    coords = {
        "component": np.arange(k), "feature": np.arange(d),
        "feature_bis": np.arange(d), "observation": np.arange(n),
    }
    with pm.Model(coords=coords) as graph:
        data = pm.Data("x", X, dims=("observation", "feature"))
        log_weights = weights()
        part = components(model, k, d)
        scale_kind = part.scale_kind

        def mixture_logp(value, log_weights, means, scale):
            diff = value[..., None, :] - means  # (..., N, K, D)
            comp = log_weights + scale_kind.log_density(diff, scale)
            return pm.math.logsumexp(comp, axis=-1, keepdims=False)

        def mixture_random(log_weights, means, scale, rng=None, size=None):
            size = (n,) if size is None else tuple(size)
            weights = np.exp(np.asarray(log_weights, dtype=float))
            labels = rng.choice(k, size=size, p=weights / weights.sum())
            scale = np.asarray(scale, dtype=float)
            scale = np.broadcast_to(scale, (k, *scale.shape[1:]))  # a tied (1, ...) scale
            eps = rng.standard_normal((*size, d))
            return np.asarray(means)[labels] + scale_kind.noise(scale[labels], eps)

        pm.CustomDist(
            "x_obs", log_weights, part.means, part.scale, logp=mixture_logp,
            random=mixture_random, signature=f"(k),(k,d),{scale_kind.signature}->(d)",
            observed=data, dims=("observation", "feature"),
        )
    return graph


@build_graph.register
def _(model: BayesianGMM, x: np.ndarray, *, ordered: bool):
    prior = model.weight_distribution
    return bayesian_gmm_graph(model, x, components=covariance_part(model.covariance_prior).build,
                              weights=lambda: weights_graph(prior))


@concrete_model.register
def _(model: BayesianGMM, x: np.ndarray):
    return model.resolve(x)


@start_from_point_estimates.register
def _(model: BayesianGMM, estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    means = np.asarray(estimates["means"], dtype=float)
    start = {"means": means, **covariance_part(model.covariance_prior).start(model, estimates)}
    weights = np.clip(np.asarray(estimates["weights"], dtype=float), 1e-6, None)
    start.update(weights_start(model.weight_distribution, weights / weights.sum()))
    return start


@singledispatch
def weights_start(prior, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Starting values of the weight part's random variables for weights (K,) (positive,
    summing to one)."""
    raise TypeError(f"no starting values for the weight prior {type(prior).__name__}")


@weights_start.register
def _(prior: DirichletWeights, weights: np.ndarray) -> dict[str, np.ndarray]:
    return {"weights": weights}


@weights_start.register
def _(prior: StickBreakingWeights, weights: np.ndarray) -> dict[str, np.ndarray]:
    return stick_breaking_start(weights)


def stick_breaking_start(weights: np.ndarray) -> dict[str, np.ndarray]:
    """``sticks_logit`` = logit(v) with v_k = pi_k / (1 - sum_{j<k} pi_j), k < K, for
    weights (K,) (positive, summing to one): the inverse of
    :func:`stick_breaking_weights_graph`'s map, v kept in [1e-6, 1 - 1e-6]; {} for K = 1."""
    remaining = 1.0 - np.concatenate([[0.0], np.cumsum(weights[:-2])])
    sticks = np.clip(weights[:-1] / remaining, 1e-6, 1.0 - 1e-6)
    return {"sticks_logit": np.log(sticks) - np.log1p(-sticks)} if sticks.size else {}
