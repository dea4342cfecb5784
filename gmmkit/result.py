"""The one result type every method returns: :class:`Fit`.

A method builds a ``Fit`` once and never changes it afterwards (NumPyro's ``SVIRunResult``
is the model): arrays are made read-only, and anything derived (predictions, draws,
``InferenceData``) is computed from the stored fields on demand.

What differs between methods lives in the ``posterior`` field, a small object satisfying
the :class:`Posterior` protocol (a variational family, a point estimate, or a set of
draws), so ``Fit`` itself has no per-method branches.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from gmmkit import _arviz, output
from gmmkit._validation import check_int
from gmmkit.models.protocol import Model
from gmmkit.posterior import Posterior

__all__ = ["CSV_MAX_CELLS", "LOG_LIKELIHOOD_MAX_FLOATS", "Fit", "Posterior", "load"]

#: ``to_inference_data(log_likelihood=None)`` includes the pointwise log-likelihood only
#: up to this many floats (draws x N); 2e7 float64 are 160 MB in memory and on disk.
LOG_LIKELIHOOD_MAX_FLOATS = 20_000_000
#: ``Fit.save`` writes ``responsibilities.csv`` (besides the ``.npy``) up to N x K cells.
CSV_MAX_CELLS = 1_000_000
#: The pickle of the fit's remaining fields in a saved fit's directory.
PICKLE_FILE = "fit.pkl"


def _readonly(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.setflags(write=False)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True, eq=False, repr=False)
class Fit:
    """The result of :func:`gmmkit.fit`, the same for every model and method.

    Attributes
    ----------
    method : str
        "cavi", "em", "kmeans", "advi", "fullrank_advi", "nuts" or "smc".
    model : object
        The model that was fitted (an immutable value object).
    data : ndarray, shape (N,) or (N, D)
        The validated data the fit saw.
    posterior : Posterior
        The fitted approximation (variational family, point estimate or draws).
    responsibilities : ndarray, shape (N, K)
        q(z_i = k) for the training data; rows sum to 1.
    elbo : float
        Final ELBO in nats with every normalising constant (NaN where not applicable).
    elbo_trace : ndarray, shape (n_iter + 1,)
        The ELBO after every iteration, starting with the initial state.
    converged : bool
    n_iter : int
    elapsed_s : float
        Wall time of the whole fit, restarts included.
    seed : int or None
        The seed the fit was run with; reused by :meth:`to_inference_data`.
    restart_elbos : ndarray, shape (n_init,)
        Final objective of every restart (NaN for a restart that failed).
    time_trace : ndarray, shape (n_iter + 1,)
        Seconds since the start of the kept restart at every ``elbo_trace`` entry.
    elbo_se : float
        Monte Carlo standard error of ``elbo`` (0 for closed-form ELBOs).
    log_likelihood_trace, kl_trace : ndarray or None
        For EM: total log-likelihood per iteration, and log-likelihood minus ELBO.
    log_evidence, log_evidence_se : float
        An evidence estimate where the method gives one (SMC), else NaN.
    log_evidence_source : str
        Where ``log_evidence`` comes from, and any correction applied to it.
    restart_failures : tuple of str
        One message per restart that failed (for example a singular covariance).
    diagnostics : mapping
        Method-specific diagnostics (r-hat, ESS, divergences, warnings).
    sample_weight : ndarray, shape (N,), or None
        The frequency weights of a weighted closed-form fit (read-only); None when every
        point counted once.  The ELBO and log-likelihood traces are weighted sums.
    """

    method: str
    model: Model
    data: np.ndarray
    posterior: Posterior
    responsibilities: np.ndarray
    elbo: float
    elbo_trace: np.ndarray
    converged: bool
    n_iter: int
    elapsed_s: float
    seed: int | None = None
    restart_elbos: np.ndarray = field(default_factory=lambda: np.empty(0))
    time_trace: np.ndarray = field(default_factory=lambda: np.empty(0))
    elbo_se: float = 0.0
    log_likelihood_trace: np.ndarray | None = None
    kl_trace: np.ndarray | None = None
    log_evidence: float = float("nan")
    log_evidence_se: float = float("nan")
    log_evidence_source: str = ""
    restart_failures: tuple[str, ...] = ()
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    sample_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Frozen dataclass: bypass __setattr__ once, to store read-only copies.
        for name in (
            "data", "responsibilities", "elbo_trace", "restart_elbos", "time_trace",
            "log_likelihood_trace", "kl_trace", "sample_weight",
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "diagnostics", MappingProxyType(dict(self.diagnostics)))

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # The diagnostics mapping proxy does not pickle, and cached InferenceData
        # (``idata``) is derived: store plain fields only.
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["diagnostics"] = dict(self.diagnostics)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        # Unpickled arrays come back writable: make them read-only again.
        self.__post_init__()

    def __repr__(self) -> str:
        return (
            f"Fit(method={self.method!r}, model={self.model!r}, n={self.data.shape[0]}, "
            f"elbo={self.elbo:.6g}, n_iter={self.n_iter}, converged={self.converged})"
        )

    # ------------------------------------------------------------------ parameters
    @property
    def n_components(self) -> int:
        return self.posterior.n_components

    @property
    def variational_params(self) -> Mapping[str, np.ndarray]:
        """The fitted parameters in the method's own notation (read-only arrays)."""
        return MappingProxyType({k: _readonly(v) for k, v in self.posterior.params().items()})

    @property
    def weights(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the mixing weights, shape (K,)."""
        return _readonly(self.posterior.point_estimates()["weights"])

    @property
    def means(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the component means, shape (K, D)."""
        return _readonly(self.posterior.point_estimates()["means"])

    @property
    def covariances(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the covariances, shape (K, D, D)."""
        return _readonly(self.posterior.point_estimates()["covariances"])

    # ------------------------------------------------------------------ prediction
    def _check_new(self, x: Any) -> np.ndarray:
        n_features = None if self.data.ndim == 1 else self.data.shape[1]
        return self.model.check_data(x, n_features=n_features)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Responsibilities q(z = k | x) for new points, shape (N, K)."""
        return np.exp(self.posterior.log_responsibilities(self._check_new(x)))

    def predict(self, x: Any) -> np.ndarray:
        """Most probable component of each new point, shape (N,)."""
        return np.argmax(self.posterior.log_responsibilities(self._check_new(x)), axis=1)

    def score_samples(self, x: Any) -> np.ndarray:
        """log posterior-predictive density of each new point, shape (N,), in nats."""
        return self.posterior.log_predictive(self._check_new(x))

    # ------------------------------------------------------------------ ArviZ / disk
    def fit_variables(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Traces and parameters stored in the ``fit`` group of the InferenceData."""
        out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
            "elbo_trace": (("iteration",), np.asarray(self.elbo_trace, dtype=float)),
            "time_trace": (("iteration",), np.asarray(self.time_trace, dtype=float)),
            "restart_elbos": (("restart",), np.asarray(self.restart_elbos, dtype=float)),
            "elbo": ((), np.float64(self.elbo)),
            "elbo_se": ((), np.float64(self.elbo_se)),
            "log_evidence": ((), np.float64(self.log_evidence)),
        }
        if self.log_likelihood_trace is not None:
            out["log_likelihood_trace"] = (("iteration",), np.asarray(self.log_likelihood_trace))
        if self.kl_trace is not None:
            out["kl_trace"] = (("iteration",), np.asarray(self.kl_trace))
        shared = getattr(self.posterior, "shared_params", ())
        # Parameters on an axis of their own (the K - 1 sticks of stick-breaking weights).
        own_dims = getattr(self.posterior, "param_dims", {})
        for name, value in self.posterior.params().items():
            value = np.asarray(value, dtype=float)
            # Per-component parameters lead with the component axis; one shared by every
            # component (the tied covariance, (D, D)) has only feature axes.
            names = ("feature", "feature_bis") if name in shared else (
                "component", "feature", "feature_bis")
            names = own_dims.get(name, names)
            out[f"q_{name}"] = (names[: value.ndim], value)
        if len(self.time_trace) != len(self.elbo_trace):
            del out["time_trace"]
        return out

    def to_inference_data(
        self, draws: int = 1000, seed: int | None = None, *, log_likelihood: bool | None = None
    ):
        """Draws from the fitted posterior as an ``arviz.InferenceData``.

        Parameters
        ----------
        draws : int
            Number of draws from q, >= 1 (ignored for point estimates and sampler output).
        seed : int, optional
            Seed for the draws; defaults to the fit's own seed.
        log_likelihood : bool, optional
            Include the pointwise log-likelihood group, shape (chain, draw, N), which
            ``az.loo`` needs.  None (default) includes it only when it holds at most
            :data:`LOG_LIKELIHOOD_MAX_FLOATS` floats (draws x N; 2e7 floats, 160 MB);
            True always includes it, False never.  When it is left out there is *no*
            ``log_likelihood`` group (a zero-filled one would give a wrong LOO of 0), and
            the attribute ``log_likelihood_omitted`` of the posterior group says why.

        Returns
        -------
        arviz.InferenceData
            Groups ``posterior``, ``observed_data``, ``log_likelihood`` (see above),
            ``sample_stats`` (sampler fits that record them, e.g. NUTS: ``diverging``,
            ``energy``, ``tree_depth``, ``step_size``, ``lp``, ``acceptance_rate``) and
            ``fit`` (ELBO trace and variational parameters).  Every group's attrs carry
            ``gmmkit_posterior_kind`` (the :class:`PosteriorKind` name) and
            ``gmmkit_draws_from_q`` (1 when the draws come from a fitted variational q,
            which are not posterior draws: PSIS-LOO and r-hat do not apply to them).
        """
        draws = check_int("draws", draws, 1)
        if log_likelihood not in (None, True, False):
            raise ValueError(
                f"log_likelihood must be None, True or False, got {log_likelihood!r}"
            )
        rng = np.random.default_rng(self.seed if seed is None else seed)
        posterior = self.posterior.draw(draws, rng)
        chain, draw = next(iter(posterior.values())).shape[:2]
        n_floats = chain * draw * self.data.shape[0]
        kind = self.posterior.kind
        attrs = {
            "gmmkit_method": self.method,
            "gmmkit_model": repr(self.model),
            "point_estimate": int(kind.is_point_estimate),
            "posterior_kind": kind.name,
            # Draws from a fitted q are not posterior draws: say so on every group, so
            # that PSIS-LOO or r-hat on them can be refused (gmmkit.comparisons.loo).
            "gmmkit_posterior_kind": kind.name,
            "gmmkit_draws_from_q": int(kind.is_variational),
        }
        loglik = None
        if log_likelihood is False:
            attrs["log_likelihood_omitted"] = "log_likelihood=False"
        elif log_likelihood is None and n_floats > LOG_LIKELIHOOD_MAX_FLOATS:
            attrs["log_likelihood_omitted"] = (
                f"draws x N = {n_floats} floats exceeds {LOG_LIKELIHOOD_MAX_FLOATS:.0e}; pass "
                "log_likelihood=True to include it"
            )
        else:
            loglik = self.model.pointwise_log_likelihood(self.data, posterior)
        return _arviz.make_inference_data(
            posterior=posterior,
            dims=self.model.parameter_dims,
            observed=self.data,
            log_likelihood=loglik,
            fit_variables=self.fit_variables(),
            attrs=attrs,
            sample_stats=self._sample_stats((chain, draw)),
        )

    def _sample_stats(self, shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """The sampler's per-draw statistics when the posterior holds sampler draws and
        records them with one value per stored (chain, draw), else None."""
        if not self.posterior.kind.is_posterior_sample:
            return None
        stats = getattr(self.posterior, "sample_stats", None) or {}
        kept = {name: np.asarray(value) for name, value in stats.items()
                if np.shape(value)[:2] == shape}
        return kept or None

    @cached_property
    def idata(self):
        """``to_inference_data()`` with default arguments, computed once."""
        return self.to_inference_data()

    def summary_dict(self) -> dict[str, Any]:
        """JSON-ready description: method, model, ELBO, convergence and parameters."""
        return _jsonable(
            {
                "method": self.method,
                "model": self.model.to_dict(),
                "elbo": float(self.elbo),
                "elbo_se": float(self.elbo_se),
                "log_evidence": float(self.log_evidence),
                "log_evidence_source": self.log_evidence_source,
                "converged": bool(self.converged),
                "n_iter": int(self.n_iter),
                "elapsed_s": float(self.elapsed_s),
                "seed": self.seed,
                "restart_elbos": self.restart_elbos,
                "restart_failures": list(self.restart_failures),
                "variational_params": dict(self.posterior.params()),
                "weights": self.weights,
                "means": self.means,
                "covariances": self.covariances,
            }
        )

    def save(
        self, directory: str | Path, *, replace: bool = False, draws: int = 1000,
        log_likelihood: bool | None = None,
    ) -> Path:
        """Write the fit to a new ``directory``, atomically: all files or none.

        Files: ``responsibilities.npy`` (N x K at full precision) and, when N x K is at
        most :data:`CSV_MAX_CELLS`, ``responsibilities.csv`` too; ``data.npy``;
        ``params.json``; ``diagnostics.json``; ``elbo_trace.csv`` (iteration, elbo and,
        for EM, log-likelihood and KL); ``fit.pkl`` (everything else, for :func:`load`);
        ``idata.nc`` (:meth:`to_inference_data` with ``draws`` and ``log_likelihood``);
        and the manifest ``.gmmkit-output.json``.

        Parameters
        ----------
        directory : str or Path
            Created (with missing parents); an existing non-empty directory is refused
            unless ``replace`` and it is a gmmkit output (carries gmmkit's manifest).
        replace : bool
            Replace an existing gmmkit output directory.
        draws, log_likelihood
            Passed to :meth:`to_inference_data` for ``idata.nc``.

        Returns
        -------
        Path
            ``directory``.
        """
        with output.atomic_directory(directory, replace, kind="fit", option="directory",
                                     force_name="replace=True") as tmp:
            self.write_files(tmp, draws=draws, log_likelihood=log_likelihood)
        return Path(directory)

    def write_files(
        self, directory: Path, *, draws: int = 1000, log_likelihood: bool | None = None
    ) -> None:
        """Write the files of :meth:`save` into the existing (temporary) ``directory``."""
        directory = Path(directory)
        output.write_array(directory / "responsibilities.npy", self.responsibilities)
        if self.responsibilities.size <= CSV_MAX_CELLS:
            output.write_csv(
                directory / "responsibilities.csv",
                [f"component_{k}" for k in range(self.n_components)], self.responsibilities,
            )
        output.write_array(directory / "data.npy", self.data)
        output.write_json(directory / "params.json", self.summary_dict())
        output.write_json(directory / "diagnostics.json", _jsonable(dict(self.diagnostics)))
        columns = {"iteration": np.arange(len(self.elbo_trace)), "elbo": self.elbo_trace}
        if len(self.time_trace) == len(self.elbo_trace):
            columns["time_s"] = self.time_trace
        if self.log_likelihood_trace is not None:
            columns["log_likelihood"] = self.log_likelihood_trace
        if self.kl_trace is not None:
            columns["kl"] = self.kl_trace
        output.write_csv(directory / "elbo_trace.csv", list(columns),
                         np.column_stack(list(columns.values())))
        # The arrays are in .npy files already: the pickle holds the rest only.
        state = self.__getstate__()
        state["data"] = state["responsibilities"] = None
        with open(directory / PICKLE_FILE, "wb") as fh:
            pickle.dump({"format": 1, "state": state}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        _arviz.to_netcdf(
            self.to_inference_data(draws=draws, log_likelihood=log_likelihood),
            directory / "idata.nc",
        )


def load(directory: str | Path) -> Fit:
    """The :class:`Fit` written by :meth:`Fit.save` to ``directory``.

    Every field is restored exactly (arrays at full precision, the posterior object
    included).  ``fit.pkl`` is a pickle: load only directories you trust.  An ADVI fit's
    compiled log density is not stored; it is compiled again on first use (PSIS).

    Raises
    ------
    ValueError
        When ``directory`` is not a directory written by :meth:`Fit.save`.
    """
    directory = Path(directory)
    manifest = output.read_manifest(directory)
    if manifest is None or manifest.get("kind") != "fit" or not (
        directory / PICKLE_FILE
    ).is_file():
        raise ValueError(
            f"directory {directory} is not a saved gmmkit fit (expected {output.MANIFEST} "
            f"of kind 'fit' and {PICKLE_FILE}, as written by Fit.save)"
        )
    with open(directory / PICKLE_FILE, "rb") as fh:
        saved = pickle.load(fh)
    state = dict(saved["state"])
    state["data"] = np.load(directory / "data.npy", allow_pickle=False)
    state["responsibilities"] = np.load(directory / "responsibilities.npy", allow_pickle=False)
    fit = Fit.__new__(Fit)
    fit.__setstate__(state)
    return fit
