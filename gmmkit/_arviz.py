"""The one module that talks to ArviZ.

Every ``arviz`` call in gmmkit lives here, so that the move to ArviZ 1.x (whose
``from_dict`` and group handling changed) touches this file only.  Everything else in
gmmkit passes plain NumPy arrays and dicts in and gets ``InferenceData`` or pandas out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    import arviz as az

__all__ = [
    "FIT_GROUP",
    "draws_diagnostics",
    "ess",
    "from_netcdf",
    "loo",
    "make_inference_data",
    "rhat",
    "summary",
    "to_netcdf",
]



def _az():
    # Imported on first use: ArviZ takes ~2 s to import, which every `gmmkit --help` and
    # every fit that never touches InferenceData would otherwise pay.
    with _quiet():
        import arviz

    return arviz


def __getattr__(name: str) -> Any:
    if name == "InferenceData":
        return _az().InferenceData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: Name of the extra group that carries the ELBO trace and the variational parameters.
FIT_GROUP = "fit"


@contextmanager
def _quiet():
    # ArviZ 0.2x announces its 1.x migration and warns about tiny "chains" (a single
    # point estimate is one chain of one draw); neither is actionable for gmmkit users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*migration.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
        warnings.filterwarnings("ignore", message=".*Shape validation failed.*")
        warnings.filterwarnings("ignore", message=".*not .* InferenceData scheme.*")
        yield


def _dataset(variables: Mapping[str, tuple[Sequence[str], Any]], attrs=None) -> xr.Dataset:
    data_vars = {
        name: (tuple(dims), np.asarray(value)) for name, (dims, value) in variables.items()
    }
    return xr.Dataset(data_vars, attrs=dict(attrs or {}))


def make_inference_data(
    *,
    posterior: Mapping[str, np.ndarray],
    dims: Mapping[str, Sequence[str]],
    observed: np.ndarray,
    log_likelihood: np.ndarray | None,
    fit_variables: Mapping[str, tuple[Sequence[str], Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
) -> az.InferenceData:
    """Assemble an ``InferenceData`` from draws, the data and the pointwise log-likelihood.

    Parameters
    ----------
    posterior : dict of str to ndarray
        Draws with leading dimensions ``(chain, draw)``.
    dims : dict of str to list of str
        Dimension names after ``(chain, draw)`` for every posterior variable.
    observed : ndarray, shape (N,) or (N, D)
        The data; stored as ``observed_data["x"]``.
    log_likelihood : ndarray, shape (chain, draw, N), or None
        log p(x_i | theta) per draw and point, so that ``az.loo`` works; None leaves the
        ``log_likelihood`` group out altogether.
    fit_variables : dict of str to (dims, value), optional
        Stored in the extra group ``"fit"`` (ELBO trace, variational parameters, ...);
        it survives a netCDF round trip.
    attrs : dict, optional
        Attributes set on every group (method name, model, point-estimate flag).
    sample_stats : dict of str to ndarray, optional
        Per-draw sampler statistics with leading ``(chain, draw)`` dimensions.
    """
    observed = np.asarray(observed)
    obs_dims = ["observation"] if observed.ndim == 1 else ["observation", "feature"]
    all_dims = {name: list(d) for name, d in dims.items()}
    all_dims["x"] = obs_dims
    coords = {"observation": np.arange(observed.shape[0])}
    n_components = None
    for name, value in posterior.items():
        for axis, dim in enumerate(all_dims.get(name, ()), start=2):
            coords.setdefault(dim, np.arange(np.shape(value)[axis]))
        if "component" in all_dims.get(name, ()):
            n_components = np.shape(value)[2 + list(all_dims[name]).index("component")]
    if observed.ndim == 2:
        coords["feature"] = np.arange(observed.shape[1])
    with _quiet():
        idata = _az().from_dict(
            posterior={k: np.asarray(v) for k, v in posterior.items()},
            observed_data={"x": observed},
            log_likelihood=None if log_likelihood is None else {"x": np.asarray(log_likelihood)},
            sample_stats=dict(sample_stats) if sample_stats else None,
            dims={**all_dims},
            coords=coords,
            attrs=dict(attrs or {}),
        )
        if log_likelihood is not None:
            # from_dict applies the observation dims to log_likelihood["x"] only for the
            # first axis; the pointwise log-likelihood is per row, so fix its dims here.
            ll = xr.DataArray(
                np.asarray(log_likelihood), dims=("chain", "draw", "observation")
            ).assign_coords(
                chain=idata.posterior.chain, draw=idata.posterior.draw,
                observation=coords["observation"],
            )
            idata.log_likelihood = xr.Dataset({"x": ll}, attrs=dict(attrs or {}))
        # from_dict keeps its own provenance attrs on the posterior and drops ours; the
        # posterior group must say which method (and whether a point estimate) it holds.
        idata.posterior.attrs.update(dict(attrs or {}))
        if fit_variables:
            group = _dataset(fit_variables, attrs)
            if n_components is not None and "component" in group.dims:
                group = group.assign_coords(component=np.arange(n_components))
            idata.add_groups({FIT_GROUP: group})
    return idata


def to_netcdf(idata: az.InferenceData, path: str | Path) -> Path:
    """Write ``idata`` (every group, including ``fit``) to ``path``."""
    idata.to_netcdf(str(path))
    return Path(path)


def from_netcdf(path: str | Path) -> az.InferenceData:
    """Read an ``InferenceData`` written by :func:`to_netcdf`."""
    with _quiet():
        return _az().from_netcdf(str(path))


def summary(idata: az.InferenceData, **kwargs: Any):
    """``az.summary`` with gmmkit's warnings silenced; returns a pandas DataFrame."""
    with _quiet():
        return _az().summary(idata, **kwargs)


def loo(idata: az.InferenceData, **kwargs: Any):
    """``az.loo`` (PSIS-LOO) on the pointwise log-likelihood."""
    with _quiet():
        return _az().loo(idata, **kwargs)


def rhat(idata: az.InferenceData) -> xr.Dataset:
    """Rank-normalised split r-hat of every posterior variable."""
    return _az().rhat(idata)


def ess(idata: az.InferenceData, method: str = "bulk") -> xr.Dataset:
    """Bulk or tail effective sample size of every posterior variable."""
    return _az().ess(idata, method=method)


# ---------------------------------------------------------------------- comparison layer
def psislw(log_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed log importance weights and the Pareto shape k-hat.

    ``log_weights`` has shape (S,); the smoothed weights are returned on the original
    scale (not normalised), so ``logsumexp(smoothed) - log S`` estimates log E_q[w].
    """
    with _quiet():
        smoothed, khat = _az().psislw(np.array(log_weights, dtype=float), normalize=False)
    return np.asarray(smoothed), float(np.asarray(khat))


def summaries_side_by_side(idatas: Mapping[str, az.InferenceData], **kwargs: Any):
    """``az.summary`` of every InferenceData, concatenated with an outer ``fit`` index."""
    import pandas as pd

    with warnings.catch_warnings():
        # a point estimate is one draw: its sd is undefined (NaN), which is the answer
        warnings.filterwarnings("ignore", message=".*[Dd]egrees of freedom.*")
        warnings.filterwarnings("ignore", message=".*invalid value encountered.*")
        frames = {name: summary(idata, **kwargs) for name, idata in idatas.items()}
    return pd.concat(frames, names=["fit", "parameter"])


@contextmanager
def _quiet_plots():
    # ArviZ 0.2x calls a matplotlib API deprecated in 3.11; not actionable for users.
    with _quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*alias_mapping.*")
        yield


def plot_forest(idatas: Mapping[str, az.InferenceData], *, var_names=None, ax=None, **kwargs):
    """``az.plot_forest`` of several fits with ``model_names``; returns the axes."""
    with _quiet_plots():
        return _az().plot_forest(
            list(idatas.values()), model_names=list(idatas), var_names=var_names,
            combined=True, ax=ax, show=False, **kwargs,
        )


def plot_trace(idata: az.InferenceData, *, var_names=None, axes=None, **kwargs):
    """``az.plot_trace`` (density and trace per variable); returns the axes array."""
    with _quiet_plots():
        return _az().plot_trace(idata, var_names=var_names, axes=axes, show=False, **kwargs)


# ---------------------------------------------------------------------- PyMC samplers
#: The per-draw sampler statistics gmmkit keeps, under ArviZ's (and PyMC's) names:
#: what ``az.plot_energy``, divergence counts and step-size checks read.
SAMPLE_STATS = ("diverging", "energy", "tree_depth", "step_size", "lp", "acceptance_rate")


def sample_stats_arrays(idata: Any) -> dict[str, np.ndarray]:
    """The :data:`SAMPLE_STATS` a PyMC ``InferenceData`` holds, as (chain, draw) arrays."""
    stats = getattr(idata, "sample_stats", None)
    if stats is None:
        return {}
    out = {}
    for name in SAMPLE_STATS:
        if name in stats:
            value = np.asarray(stats[name].values)
            out[name] = value.astype(bool) if name == "diverging" else value
    return out


def draws_diagnostics(draws: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Worst rank-normalised r-hat and bulk/tail ESS over every entry of ``draws``.

    ``draws`` maps names to arrays with leading (chain, draw) axes (for example
    relabelled component means and weights).  Returns ``rhat_max``, ``ess_bulk_min``,
    ``ess_tail_min`` and the per-variable arrays under ``rhat``, ``ess_bulk`` and
    ``ess_tail``.
    """
    with _quiet(), warnings.catch_warnings():
        # a constant entry (fixed weights, a pinned component) has undefined r-hat: NaN
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        dataset = _az().convert_to_dataset({k: np.asarray(v, dtype=float)
                                            for k, v in draws.items()})
        rhat_ds = _az().rhat(dataset)
        bulk = _az().ess(dataset, method="bulk")
        tail = _az().ess(dataset, method="tail")

    def worst(ds, fn):
        values = np.concatenate([np.ravel(ds[v].values) for v in ds.data_vars])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    return {
        "rhat": {v: np.asarray(rhat_ds[v].values) for v in rhat_ds.data_vars},
        "ess_bulk": {v: np.asarray(bulk[v].values) for v in bulk.data_vars},
        "ess_tail": {v: np.asarray(tail[v].values) for v in tail.data_vars},
        "rhat_max": worst(rhat_ds, np.max),
        "ess_bulk_min": worst(bulk, np.min),
        "ess_tail_min": worst(tail, np.min),
    }


def sampler_diagnostics(idata: az.InferenceData, var_names: Sequence[str]) -> dict[str, Any]:
    """Worst r-hat, bulk/tail ESS (:func:`draws_diagnostics` on the posterior variables
    ``var_names``) and the number of divergences of a sampler's output."""
    out = draws_diagnostics({v: np.asarray(idata.posterior[v].values) for v in var_names})
    diverging = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        diverging = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    out["divergences"] = diverging
    return out
