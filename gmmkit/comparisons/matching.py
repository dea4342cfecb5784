"""Minimum-cost matching of mixture components (robust to label switching).

A mixture is invariant to relabelling its components, so an estimate's component 0 may be
the truth's component 2.  :func:`match_components` finds the relabelling that minimises
the total squared Euclidean distance between matched means, by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``, Kuhn 1955): exact, O(K^3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from gmmkit._validation import check_finite_array

__all__ = ["as_component_means", "match_components"]


def as_component_means(means: Any, name: str) -> np.ndarray:
    """``means`` as a finite array of shape (K, D); shape (K,) is read as D = 1."""
    arr = check_finite_array(name, means)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (K,) or (K, D), got shape {arr.shape}")
    return arr


def match_components(estimated_means: Any, reference_means: Any) -> np.ndarray:
    """The permutation aligning estimated components with reference components.

    Parameters
    ----------
    estimated_means : array_like, shape (K, D) or (K,)
    reference_means : array_like, shape (K, D) or (K,)

    Returns
    -------
    perm : ndarray of int, shape (K,)
        ``estimated_means[perm]`` is aligned with ``reference_means``: ``perm[k]`` is the
        estimated component matched to reference component k.  The matching minimises
        ``sum_k ||estimated_means[perm[k]] - reference_means[k]||^2``.

    Raises
    ------
    ValueError
        If the shapes differ or an entry is not finite.
    """
    estimated = as_component_means(estimated_means, "estimated_means")
    reference = as_component_means(reference_means, "reference_means")
    if estimated.shape != reference.shape:
        raise ValueError(
            f"estimated_means and reference_means must have the same shape (K, D), got "
            f"{estimated.shape} and {reference.shape}"
        )
    # cost[r, e] = ||reference_r - estimated_e||^2; rows come back in order 0..K-1.
    cost = np.sum((reference[:, None, :] - estimated[None, :, :]) ** 2, axis=-1)
    _, perm = linear_sum_assignment(cost)
    return perm.astype(np.intp)
