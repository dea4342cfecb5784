"""Label alignment: make component k mean the same cluster in every fit.

A mixture posterior is invariant to relabelling the components, so two fits of the same
data (or two draws of one sampler) may call the same cluster by different indices.
:func:`align` returns a new :class:`~gmmkit.result.Fit` whose components are reordered to
match a reference:

* parametric posteriors (point estimates, closed-form variational families) get one
  permutation, the minimum-cost matching of the component means
  (``scipy.optimize.linear_sum_assignment``);
* posteriors that store draws (NUTS, SMC, ADVI through PyMC) are relabelled draw by draw
  against a pivot, the reference's point-estimate means (pivotal reordering, Marin,
  Mengersen & Robert 2005, section 4.2), after one permutation per chain (each chain's
  own label-consistent pivot matched to the reference), so that summaries of
  label-switched chains mean something; chains whose draws needed different labellings
  are flagged in ``fit.diagnostics["label_switching"]``.

The input fit is never modified.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from gmmkit.comparisons.matching import match_components
from gmmkit.models.protocol import Model
from gmmkit.posterior import Posterior
from gmmkit.result import Fit

__all__ = [
    "PermutedPosterior",
    "RelabelledDrawsPosterior",
    "align",
    "aligned_inference_data",
    "chain_permutations",
    "matching_permutation",
    "reference_means",
    "relabel_permutations",
    "self_pivot",
]

#: Up to this K, per-draw relabelling enumerates all K! permutations in one vectorised
#: pass; above it, one linear_sum_assignment per draw.
_ENUMERATE_MAX_K = 5
#: Draws per block when per-draw responsibilities are averaged (bounds the memory).
_DRAW_BLOCK = 64


# ----------------------------------------------------------------------------- helpers
def reference_means(reference: Any, *, name: str = "to") -> np.ndarray:
    """Component means of ``reference`` as an array of shape (K, D).

    ``reference`` is a :class:`Fit`, an object with a ``means`` attribute (for example
    :class:`gmmkit.models.base.MixtureData`), a mapping with a ``"means"`` key, or an
    array of shape (K,) or (K, D).
    """
    if isinstance(reference, Fit):
        means = reference.means
    elif isinstance(reference, Mapping):
        if "means" not in reference:
            raise ValueError(f"{name} must hold 'means', got keys {sorted(reference)}")
        means = reference["means"]
    elif hasattr(reference, "means"):
        means = reference.means
    else:
        means = reference
    try:
        means = np.asarray(means, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a Fit, MixtureData, a dict with 'means' or an array of means, "
            f"got {type(reference).__name__}"
        ) from None
    if means.ndim == 1:
        means = means[:, None]
    if means.ndim != 2 or not np.all(np.isfinite(means)):
        raise ValueError(
            f"{name} means must be a finite array of shape (K,) or (K, D), got shape "
            f"{means.shape}"
        )
    return means


def _feature_scale(data: np.ndarray) -> np.ndarray:
    """Per-feature sd of the data, so that distances do not depend on the units."""
    data = np.asarray(data, dtype=float)
    data = data[:, None] if data.ndim == 1 else data
    scale = data.std(axis=0)
    return np.where(scale > 0, scale, 1.0)


def matching_permutation(
    means: np.ndarray, target: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """``perm`` such that ``means[perm]`` is the minimum-cost matching to ``target``.

    Cost: squared Euclidean distance between means, each feature divided by ``scale``.
    ``perm[k]`` is the component of ``means`` that becomes component k.
    """
    means = reference_means(means, name="means")
    target = reference_means(target, name="target")
    scale = np.ones(means.shape[1]) if scale is None else np.asarray(scale, dtype=float)
    # The Hungarian matching of match_components, on features divided by ``scale``.
    return match_components(means / scale, target / scale)


def _component_axes(model: Model) -> dict[str, int]:
    """Axis of the ``component`` dimension in every canonical draw (after chain, draw)."""
    return {
        name: 2 + list(d).index("component")
        for name, d in model.parameter_dims.items() if "component" in d
    }


def _take_components(value: np.ndarray, perm: np.ndarray, axis: int) -> np.ndarray:
    return np.take(np.asarray(value), perm, axis=axis)


def stored_draws(posterior: Posterior) -> Mapping[str, np.ndarray] | None:
    """The draws of a posterior whose kind stores draws (sampler output, ADVI's draws),
    else None (a closed-form q or a point estimate, aligned by one permutation)."""
    return posterior.draws if posterior.kind.stores_draws else None


# ----------------------------------------------------------------------------- posteriors
class PermutedPosterior:
    """A posterior with its components reordered by one permutation.

    Component k of this posterior is component ``perm[k]`` of ``base``.  Everything that
    does not depend on the labels (predictive density, importance weights) is delegated to
    ``base`` unchanged.
    """

    def __init__(self, base: Any, perm: np.ndarray, component_axes: Mapping[str, int]) -> None:
        if isinstance(base, PermutedPosterior):  # compose instead of nesting wrappers
            perm = base.perm[np.asarray(perm)]
            base = base.base
        self.base = base
        self.perm = np.asarray(perm, dtype=np.intp)
        self.component_axes = dict(component_axes)
        self.n_components = base.n_components
        self.kind = base.kind

    def __getattr__(self, name: str) -> Any:
        # Delegate optional protocol methods (log_importance_weights, model, ...).
        if name.startswith("__") or name in {"base", "perm", "component_axes"}:
            raise AttributeError(name)
        return getattr(self.base, name)

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        return self.base.log_responsibilities(x)[:, self.perm]

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        return self.base.log_predictive(x)

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draws = self.base.draw(n_draws, rng)
        return {
            name: _take_components(value, self.perm, self.component_axes[name])
            if name in self.component_axes else value
            for name, value in draws.items()
        }

    def _permute_leading(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = self.n_components
        # A parameter shared by every component (a tied covariance) has no component
        # axis, even when its leading size happens to equal K.
        shared = getattr(self.base, "shared_params", ())
        return {
            name: np.asarray(v)[self.perm]
            if name not in shared and np.ndim(v) >= 1 and np.shape(v)[0] == k
            else np.asarray(v)
            for name, v in values.items()
        }

    def params(self) -> dict[str, np.ndarray]:
        return self._permute_leading(self.base.params())

    def point_estimates(self) -> dict[str, np.ndarray]:
        return self._permute_leading(self.base.point_estimates())


class RelabelledDrawsPosterior:
    """A draws-based posterior whose every draw was relabelled against a pivot.

    Parameters
    ----------
    base : Posterior
        The original posterior (its ``draws`` are label-switched).
    draws : dict of str to ndarray
        The relabelled draws, each with leading (chain, draw) axes.
    perms : ndarray, shape (chain, draw, K)
        ``perms[c, s, k]`` is the original label of what is now component k in draw (c, s).
    model : object
        The fitted model; used to recompute responsibilities per relabelled draw.
    """

    def __init__(self, base: Any, draws: Mapping[str, np.ndarray], perms: np.ndarray,
                 model: Any) -> None:
        self.base = base
        self.draws = {name: np.asarray(v) for name, v in draws.items()}
        self.perms = np.asarray(perms, dtype=np.intp)
        self.model = model
        self.n_components = base.n_components
        self.kind = base.kind

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in {"base", "draws", "perms", "model"}:
            raise AttributeError(name)
        return getattr(self.base, name)

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # Sampler output: the stored (relabelled) draws, as the base posterior returns.
        return {name: v.copy() for name, v in self.draws.items()}

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        return self.base.log_predictive(x)  # a sum over components: label-invariant

    def params(self) -> dict[str, np.ndarray]:
        return {name: v.mean(axis=(0, 1)) for name, v in self.draws.items()}

    def point_estimates(self) -> dict[str, np.ndarray]:
        base = self.base.point_estimates()
        out = {
            "weights": np.asarray(base["weights"]),
            "means": self.model.component_means(self.draws).mean(axis=(0, 1)),
            "covariances": np.asarray(base["covariances"]),
        }
        for name in ("weights", "covariances"):
            if name in self.draws:
                out[name] = self.draws[name].mean(axis=(0, 1))
        return out

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        """log of the responsibilities averaged over the relabelled draws, shape (N, K)."""
        flat = {
            name: v.reshape((-1, *v.shape[2:])) for name, v in self.draws.items()
        }
        n_total = next(iter(flat.values())).shape[0]
        log_sum = None
        for start in range(0, n_total, _DRAW_BLOCK):
            block = {name: v[start : start + _DRAW_BLOCK] for name, v in flat.items()}
            # log w_k + log N(x_i | theta_k) for the block of draws, (S, N, K).
            dens = self.model.log_components(x, block)
            log_resp = dens - logsumexp(dens, axis=2, keepdims=True)
            part = logsumexp(log_resp, axis=0)
            log_sum = part if log_sum is None else np.logaddexp(log_sum, part)
        out = log_sum - np.log(n_total)
        return out - logsumexp(out, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- relabelling
def _modal_permutation(perms: np.ndarray) -> np.ndarray:
    flat = perms.reshape(-1, perms.shape[-1])
    unique, counts = np.unique(flat, axis=0, return_counts=True)
    return unique[np.argmax(counts)]


def relabel_permutations(
    draw_means: np.ndarray, pivot: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """Per-draw permutations matching each draw's means to ``pivot``.

    Parameters
    ----------
    draw_means : ndarray, shape (..., K, D)
    pivot : ndarray, shape (K, D)
    scale : ndarray, shape (D,), optional
        Feature scales dividing the differences.

    Returns
    -------
    perms : ndarray, shape (..., K)
        ``perms[..., k]`` is the draw's component that becomes component k.
    """
    draw_means = np.asarray(draw_means, dtype=float)
    batch, (k, d) = draw_means.shape[:-2], draw_means.shape[-2:]
    scale = np.ones(d) if scale is None else np.asarray(scale, dtype=float)
    flat = draw_means.reshape(-1, k, d) / scale
    target = np.asarray(pivot, dtype=float) / scale
    # cost[s, j, k] = || draw component j - pivot component k ||^2
    cost = ((flat[:, :, None, :] - target[None, None, :, :]) ** 2).sum(axis=-1)
    if k <= _ENUMERATE_MAX_K:
        candidates = np.array(list(itertools.permutations(range(k))), dtype=np.intp)  # (P, K)
        totals = cost[:, candidates, np.arange(k)].sum(axis=-1)  # (S, P)
        # Prefer the identity on exact ties (argmin returns the first, and the identity is
        # the first permutation itertools yields).
        perms = candidates[np.argmin(totals, axis=1)]
    else:
        perms = np.empty((flat.shape[0], k), dtype=np.intp)
        for s in range(flat.shape[0]):  # one small assignment problem per draw
            _, perms[s] = linear_sum_assignment(cost[s].T)
    return perms.reshape((*batch, k))


def _relabel_draws(draws: Mapping[str, np.ndarray], perms: np.ndarray,
                   component_axes: Mapping[str, int]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in draws.items():
        value = np.asarray(value)
        axis = component_axes.get(name)
        if axis is None:
            out[name] = value.copy()
            continue
        moved = np.moveaxis(value, axis, 2)  # (chain, draw, K, ...)
        index = perms.reshape(perms.shape + (1,) * (moved.ndim - 3))
        out[name] = np.moveaxis(np.take_along_axis(moved, index, axis=2), 2, axis)
    return out


# ----------------------------------------------------------------------------- align
def _stephens_pivot(means: np.ndarray, scale: np.ndarray, start: np.ndarray,
                    n_rounds: int = 10) -> np.ndarray:
    """Alternate relabelling every draw of ``means`` (chain, draw, K, D) against a pivot
    with re-averaging the relabelled means, from ``start``, until the labelling stops
    changing (Stephens 2000, Algorithm 2, with squared distance as the loss)."""
    pivot, previous = start, None
    for _ in range(n_rounds):
        perms = relabel_permutations(means, pivot, scale)
        if previous is not None and np.array_equal(perms, previous):
            break
        relabelled = np.take_along_axis(means, perms[..., None], axis=2)
        pivot, previous = relabelled.mean(axis=(0, 1)), perms
    return pivot


def chain_pivots(means: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each chain's own label-consistent pivot, shape (chain, K, D), from its draws'
    component means (chain, draw, K, D), each started from the chain's last draw."""
    return np.stack([
        _stephens_pivot(means[c : c + 1], scale, means[c, -1]) for c in range(means.shape[0])
    ])


def chain_permutations(means: np.ndarray, target: np.ndarray,
                       scale: np.ndarray) -> np.ndarray:
    """One permutation per chain, shape (chain, K): the matching of each chain's own
    pivot (:func:`chain_pivots`) to ``target`` (K, D).  ``perms[c, k]`` is chain c's
    component that becomes component k."""
    pivots = chain_pivots(means, scale)
    return np.stack([matching_permutation(p, target, scale) for p in pivots])


def self_pivot(fit: Fit, n_rounds: int = 10) -> np.ndarray:
    """A label-consistent pivot for a fit's own draws, shape (K, D).

    The average of label-switched draws is meaningless, so every chain is first brought
    onto one labelling: each chain's own pivot (Stephens' algorithm within the chain,
    started from its last draw) is matched to the first chain's, and the matched chain
    pivots averaged.  From there, relabelling every draw against the pivot alternates
    with re-averaging the relabelled means (Stephens 2000, Algorithm 2, with squared
    distance as the loss) until the labelling stops changing.  Chains that sampled
    different labellings of one mode therefore end on one labelling.
    """
    draws = stored_draws(fit.posterior)
    own = reference_means(fit.means, name="fit")
    if draws is None:
        return own
    means = fit.model.component_means(draws)
    scale = _feature_scale(fit.data)
    pivots = chain_pivots(means, scale)
    matched = [p[matching_permutation(p, pivots[0], scale)] for p in pivots]
    return _stephens_pivot(means, scale, np.mean(matched, axis=0), n_rounds)


def align(fit: Fit, to: Any = None) -> Fit:
    """Relabel the components of ``fit`` to match the reference ``to``.

    Parameters
    ----------
    fit : Fit
        Any fit; it is not modified.
    to : Fit, MixtureData, dict with "means", array of shape (K,) or (K, D), or None
        The reference; its (point-estimate) means are the pivot.  None relabels a
        draws-based fit against its own label-consistent pivot (:func:`self_pivot`),
        and leaves a parametric fit's labels as they are; ``to=fit`` does the same.

    Returns
    -------
    Fit
        A new fit whose posterior, point estimates, draws and responsibilities use the
        reference's labels.  For draws-based posteriors, ``diagnostics`` gains
        ``"label_switching"`` ({chain: fraction of its draws whose labelling differs from
        the chain's most common one}), ``"relabelled_fraction"`` ({chain: fraction of draws
        that were permuted}), ``"switched_chains"`` (chains with any switch) and
        ``"chain_permutations"`` ({chain: the permutation that first brought the whole
        chain onto the reference's labelling}).

    Raises
    ------
    ValueError
        If ``fit`` is not a Fit, or the reference has a different number of components
        or features.
    """
    if not isinstance(fit, Fit):
        raise ValueError(f"fit must be a gmmkit Fit, got {type(fit).__name__}")
    # A fit's own point-estimate means average over any label switches, so aligning a
    # fit to itself uses its label-consistent pivot instead.
    pivot = self_pivot(fit) if to is None or to is fit else reference_means(to)
    own = reference_means(fit.means, name="fit")
    if pivot.shape != own.shape:
        raise ValueError(
            f"to must have {own.shape[0]} components with {own.shape[1]} feature(s) like "
            f"the fit, got means of shape {pivot.shape}"
        )
    scale = _feature_scale(fit.data)
    axes = _component_axes(fit.model)
    draws = stored_draws(fit.posterior)
    if draws is None:
        perm = matching_permutation(own, pivot, scale)
        posterior = PermutedPosterior(fit.posterior, perm, axes)
        responsibilities = np.asarray(fit.responsibilities)[:, perm]
        return dataclasses.replace(fit, posterior=posterior, responsibilities=responsibilities)

    # First one permutation per chain (its own pivot matched to the reference's), then
    # one per draw of the chain-relabelled means; ``perms`` composes the two.
    draw_means = fit.model.component_means(draws)  # (chain, draw, K, D)
    by_chain = chain_permutations(draw_means, pivot, scale)  # (chain, K)
    chain_means = np.take_along_axis(draw_means, by_chain[:, None, :, None], axis=2)
    per_draw = relabel_permutations(chain_means, pivot, scale)  # (chain, draw, K)
    perms = np.take_along_axis(by_chain[:, None, :], per_draw, axis=2)
    relabelled = _relabel_draws(draws, perms, axes)
    posterior = RelabelledDrawsPosterior(fit.posterior, relabelled, perms, fit.model)
    identity = np.arange(perms.shape[-1])
    switched, relabelled_fraction = {}, {}
    for chain in range(perms.shape[0]):
        modal = _modal_permutation(perms[chain])
        switched[chain] = float(np.mean(np.any(perms[chain] != modal, axis=-1)))
        relabelled_fraction[chain] = float(np.mean(np.any(perms[chain] != identity, axis=-1)))
    diagnostics = {
        **dict(fit.diagnostics),
        "label_switching": switched,
        "relabelled_fraction": relabelled_fraction,
        "switched_chains": tuple(c for c, f in switched.items() if f > 0),
        "chain_permutations": {c: tuple(int(i) for i in p) for c, p in enumerate(by_chain)},
    }
    responsibilities = np.exp(posterior.log_responsibilities(np.asarray(fit.data)))
    return dataclasses.replace(
        fit, posterior=posterior, responsibilities=responsibilities, diagnostics=diagnostics
    )


def aligned_inference_data(
    fit: Fit, to: Any = None, *, draws: int = 1000, seed: int | None = None,
    log_likelihood: bool | None = None,
):
    """``align(fit, to).to_inference_data(...)``: the fit's InferenceData with component k
    meaning the reference's component k, ready for ``az.plot_forest`` next to the
    reference's.  ``draws``, ``seed`` and ``log_likelihood`` as in
    :meth:`Fit.to_inference_data`."""
    return align(fit, to).to_inference_data(draws=draws, seed=seed,
                                            log_likelihood=log_likelihood)
