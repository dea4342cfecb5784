"""The one method table: every inference method gmmkit offers, in one place.

Each :class:`Method` says which backend fits which model, which options it takes (with
their defaults), which of :func:`gmmkit.fit`'s common keywords apply to it, and what kind
of posterior it returns.  :func:`gmmkit.fit`, the command line and the comparison layer
all read this table; outside it (and the tests) no module spells a method's name.

Backends are imported on first use, so ``import gmmkit`` never pays for PyMC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gmmkit._validation import check_choice
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import GaussianMixture
from gmmkit.models.protocol import Model
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.posterior import PosteriorKind

if TYPE_CHECKING:
    from gmmkit.result import Fit

__all__ = [
    "ADVI",
    "CAVI",
    "COMMON_OPTIONS",
    "EM",
    "FULLRANK_ADVI",
    "KMEANS",
    "METHODS",
    "NUTS",
    "SMC",
    "SVI",
    "Method",
    "get_method",
    "methods_for",
]

#: Keywords of :func:`gmmkit.fit` that some methods take and others do not, with their
#: defaults.  (``seed`` and ``progress`` apply to every method.)
COMMON_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {"n_init": 1, "init": "kmeans++", "tol": 1e-5, "max_iter": 1000}
)

#: A backend: ``backend(model, data, *, method, seed, progress, **options) -> Fit``,
#: where ``options`` are the method's applicable common keywords and its own options, all
#: of them: :func:`gmmkit.fit` merges the table's defaults and refuses unknown names, so
#: a backend holds no defaults of its own (it may check ranges).
Backend = Callable[..., "Fit"]


@dataclass(frozen=True)
class Method:
    """One inference method.

    Attributes
    ----------
    name : str
        What users type: ``gmmkit.fit(model, x, name)``, ``gmmkit fit --method name``.
    summary : str
        One line for ``--help`` and reports.
    kind : PosteriorKind
        What the fit's posterior is (closed-form q, q draws, sampler draws, point).
    backends : tuple of (model type, backend)
        The backend that fits each model type; the method applies to these models only.
    common : tuple of str
        Which of :data:`COMMON_OPTIONS` the method uses.
    options : mapping
        The method's own options and their defaults.
    init_from_fit : bool
        Whether ``init`` may be a previous :class:`~gmmkit.result.Fit`.
    """

    name: str
    summary: str
    kind: PosteriorKind
    backends: tuple[tuple[type, Backend], ...]
    common: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    init_from_fit: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def models(self) -> tuple[type, ...]:
        """The model types this method fits."""
        return tuple(model_type for model_type, _ in self.backends)

    def applies_to(self, model: Model | type) -> bool:
        model_type = model if isinstance(model, type) else type(model)
        return issubclass(model_type, self.models)

    def backend(self, model: Model) -> Backend:
        """The backend that fits ``model``; a clear error for a model it does not fit."""
        for model_type, backend in self.backends:
            if isinstance(model, model_type):
                return backend
        raise ValueError(
            f"method {self.name!r} does not apply to {type(model).__name__}; it fits "
            f"{', '.join(t.__name__ for t in self.models)}"
        )

    def all_options(self) -> dict[str, Any]:
        """Every option the method takes, common and its own, with defaults."""
        return {**{k: COMMON_OPTIONS[k] for k in self.common}, **self.options}


# ----------------------------------------------------------------------------- backends
# Thin adapters that import the backend on first use.
def _cavi(model, x, **kw):
    from gmmkit.inference.cavi import fit_cavi

    return fit_cavi(model, x, **kw)


def _vb(model, x, **kw):
    from gmmkit.inference.vb import fit_vb

    return fit_vb(model, x, **kw)


def _svi(model, x, **kw):
    from gmmkit.inference.svi import fit_svi

    return fit_svi(model, x, **kw)


#: SVI streams minibatches from a Dask array's chunks itself (``gmmkit.inference.svi``):
#: the chunked driver hands it Dask input as is.
_svi.takes_lazy_data = True


def _em(model, x, **kw):
    from gmmkit.inference.em import fit_em

    return fit_em(model, x, **kw)


def _kmeans(model, x, **kw):
    from gmmkit.inference.em import fit_kmeans

    return fit_kmeans(model, x, **kw)


def _meanfield_advi(model, x, **kw):
    from gmmkit.inference.pymc import fit_advi

    return fit_advi(model, x, full_rank=False, **kw)


def _fullrank_advi(model, x, **kw):
    from gmmkit.inference.pymc import fit_advi

    return fit_advi(model, x, full_rank=True, **kw)


#: ADVI refuses Dask input itself, with the reason and the alternatives.
_meanfield_advi.takes_lazy_data = _fullrank_advi.takes_lazy_data = True


def _nuts(model, x, **kw):
    from gmmkit.inference.pymc import fit_nuts

    return fit_nuts(model, x, **kw)


def _smc(model, x, **kw):
    from gmmkit.inference.pymc import fit_smc

    return fit_smc(model, x, **kw)


def _bayesian(backend: Backend) -> tuple[tuple[type, Backend], ...]:
    """``backend`` for both Bayesian models (the PyMC backend dispatches on the model)."""
    return ((UnivariateGMM, backend), (BayesianGMM, backend))


_CLOSED_FORM_COMMON = ("n_init", "init", "tol", "max_iter")
#: The closed-form methods' own options: ``sample_weight`` (N,) frequency weights, None for
#: an unweighted fit (validated by :func:`gmmkit.fit`; a weighted fit equals the fit on
#: the data with every row repeated as often as its integer weight says).
_CLOSED_FORM_OPTIONS = {"sample_weight": None}
#: ADVI's options.  The stopping rule: every ``convergence_window`` steps, stop once the
#: mean one-draw ELBO of the last window is at most ``convergence_tol`` standard errors (of
#: the difference of the two window means) above that of the window before, i.e. the
#: ELBO no longer rises by more than its Monte Carlo noise (``gmmkit.inference.pymc.advi``).
#: ``batch_size``: None fits on all the data every step; an integer B in [1, N] makes it
#: minibatch ADVI: B rows drawn uniformly with replacement every step (``pm.Minibatch``),
#: the likelihood scaled by N/B (``total_size=N``), so each step's ELBO estimate is
#: unbiased for the full data; the reported ELBO is still computed on all the data
#: (``gmmkit.inference.pymc.minibatch``).
_ADVI_OPTIONS = {
    "batch_size": None, "n_iter": 20_000, "draws": 1000, "convergence_window": 1000,
    "convergence_tol": 1.0,
    "ordered": True, "learning_rate": 0.01, "elbo_se_target": 0.05,
    "max_elbo_draws": 40_000,
}

#: CAVI's own option besides ``sample_weight``: ``n_threads``, the threads every pass over
#: in-memory data runs on (None: as many as the BLAS may use -- every core unless
#: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``threadpoolctl`` say fewer).  The
#: points are cut into chunks that do not depend on it, so neither does the fit, to the
#: bit (``gmmkit.inference._blocks``).  Dask input takes its parallelism from the
#: scheduler instead and refuses ``n_threads``.
CAVI = Method(
    name="cavi",
    summary="closed-form coordinate-ascent VI (Blei et al. 2017; Bishop's VB, PRML §10.2)",
    kind=PosteriorKind.CLOSED_FORM_Q,
    backends=((UnivariateGMM, _cavi), (BayesianGMM, _vb)),
    common=_CLOSED_FORM_COMMON,
    options={**_CLOSED_FORM_OPTIONS, "n_threads": None},
)
#: SVI's options (Hoffman et al. 2013; ``gmmkit.inference.svi``): minibatches of
#: ``batch_size`` points (None: min(N, 256)), drawn without replacement within each of at
#: most ``n_epochs`` epochs; natural-gradient steps of size rho_t = (t + tau)^(-kappa) for
#: steps t = 1, 2, ... (kappa in [0, 1], tau >= 0; kappa = 0 gives rho_t = 1).  The
#: common ``tol`` stops when the full-data ELBO changes by at most tol nats between epochs.
_SVI_OPTIONS = {"batch_size": None, "n_epochs": 20, "tau": 1.0, "kappa": 0.7}

SVI = Method(
    name="svi",
    summary="stochastic variational inference: natural-gradient steps on minibatches "
            "(Hoffman et al. 2013) in CAVI's / Bishop's family",
    kind=PosteriorKind.CLOSED_FORM_Q,
    backends=((UnivariateGMM, _svi), (BayesianGMM, _svi)),
    common=("init", "tol"),
    options=_SVI_OPTIONS,
)
EM = Method(
    name="em",
    summary="maximum-likelihood EM",
    kind=PosteriorKind.POINT_ESTIMATE,
    backends=((GaussianMixture, _em),),
    common=_CLOSED_FORM_COMMON,
    options=_CLOSED_FORM_OPTIONS,
)
KMEANS = Method(
    name="kmeans",
    summary="hard-assignment (classification) EM: k-means with covariances",
    kind=PosteriorKind.POINT_ESTIMATE,
    backends=((GaussianMixture, _kmeans),),
    common=_CLOSED_FORM_COMMON,
    options=_CLOSED_FORM_OPTIONS,
)
ADVI = Method(
    name="advi",
    summary="PyMC mean-field ADVI on the model's graph",
    kind=PosteriorKind.Q_DRAWS,
    backends=_bayesian(_meanfield_advi),
    common=("n_init", "init"),
    options=_ADVI_OPTIONS,
    init_from_fit=True,
)
FULLRANK_ADVI = Method(
    name="fullrank_advi",
    summary="PyMC full-rank ADVI on the model's graph",
    kind=PosteriorKind.Q_DRAWS,
    backends=_bayesian(_fullrank_advi),
    common=("n_init", "init"),
    options=_ADVI_OPTIONS,
    init_from_fit=True,
)
NUTS = Method(
    name="nuts",
    summary="PyMC NUTS (the usual reference)",
    kind=PosteriorKind.SAMPLER_DRAWS,
    backends=_bayesian(_nuts),
    common=("init",),
    options={"draws": 1000, "tune": 1000, "chains": 2, "target_accept": 0.9, "ordered": True},
    init_from_fit=True,
)
SMC = Method(
    name="smc",
    summary="PyMC sequential Monte Carlo (gives the log evidence)",
    kind=PosteriorKind.SAMPLER_DRAWS,
    backends=_bayesian(_smc),
    options={"draws": 1000, "chains": 2, "ordered": True},
)

#: Every method by name, in the order they are listed to users.
METHODS: Mapping[str, Method] = MappingProxyType(
    {m.name: m for m in (CAVI, SVI, EM, KMEANS, ADVI, FULLRANK_ADVI, NUTS, SMC)}
)


def get_method(name: Any) -> Method:
    """The :class:`Method` called ``name``; a clear error naming the choices otherwise."""
    return METHODS[check_choice("method", name, METHODS)]


def methods_for(model: Model | type) -> tuple[str, ...]:
    """Names of the methods that apply to ``model`` (a model or a model type), e.g.
    ("cavi", "advi", ...)."""
    model_type = model if isinstance(model, type) else type(model)
    names = tuple(m.name for m in METHODS.values() if m.applies_to(model_type))
    if not names:
        raise ValueError(
            "model must be a gmmkit model (UnivariateGMM, BayesianGMM or GaussianMixture), "
            f"got {model_type.__name__}"
        )
    return names


def default_method(model: Model) -> Method:
    """The first listed method that applies to ``model`` (closed form where it exists)."""
    return METHODS[methods_for(model)[0]]
