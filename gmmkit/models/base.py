"""Pieces shared by the model classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_ENUMERATED_ASSIGNMENTS", "MixtureData", "enumerate_assignments"]

#: ``exact_log_evidence`` refuses data sets with more than this many assignments K**N.
MAX_ENUMERATED_ASSIGNMENTS = 2_000_000


@dataclass(frozen=True)
class MixtureData:
    """A sample from a mixture: data ``x``, true ``labels`` and true component ``means``.

    ``x`` has shape (N,) for univariate data or (N, D); ``labels`` (N,); ``means`` (K,) or
    (K, D).  ``weights`` and ``covariances`` are the true values when the generator knows
    them (None otherwise).
    """

    x: np.ndarray
    labels: np.ndarray
    means: np.ndarray
    weights: np.ndarray | None = None
    covariances: np.ndarray | None = None


def enumerate_assignments(n_points: int, n_components: int, *, chunk: int = 1 << 16):
    """Yield every assignment vector in blocks of shape (block, N), with values in 0..K-1.

    Used by the exact-evidence oracles; the caller checks K**N first.
    """
    total = n_components**n_points
    powers = n_components ** np.arange(n_points)
    for start in range(0, total, chunk):
        index = np.arange(start, min(start + chunk, total))
        yield (index[:, None] // powers[None, :]) % n_components


def check_enumerable(n_points: int, n_components: int) -> None:
    """Refuse enumeration when K**N exceeds :data:`MAX_ENUMERATED_ASSIGNMENTS`."""
    # Compare in log space: K**N itself may not fit in a machine integer.
    if n_points * np.log(n_components) > np.log(MAX_ENUMERATED_ASSIGNMENTS):
        raise ValueError(
            f"exact_log_evidence enumerates all K**N = {n_components}**{n_points} "
            f"assignments, which exceeds the limit of {MAX_ENUMERATED_ASSIGNMENTS:.0e}; "
            "use fewer points (it is an oracle for tiny data sets)"
        )
