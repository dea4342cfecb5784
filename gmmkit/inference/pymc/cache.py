"""The PyMC backend's one cache of built graphs and compiled functions.

Building a graph takes ~0.1 s and compiling ADVI's step function or the batched log
density 1-2 s (far more with PyTensor's on-disk C cache cold), while a fit of a small
model iterates in seconds; so a process that fits the same model to data of the same
shape again reuses what it built.  Everything the backend keeps between fits lives in
:data:`CACHE`, one least-recently-used map with a fixed bound, keyed by *value*:

* ``GraphKey(model, data shape, ordered)`` -> the ``pm.Model`` (``graphs``);
* ``("advi step", GraphKey, full_rank, learning_rate)`` -> a compiled ADVI (``advi``);
* ``("log density", GraphKey)`` -> the compiled batched log density f(flat, x), a pure
  function of its inputs (``posterior``).

Models are immutable values with value equality, so two equal models share their
entries; nothing is keyed by ``id()``.  What a returned :class:`~gmmkit.result.Fit`
references never lives only here: its posterior holds NumPy arrays and, at most, a
reference to a pure compiled function, so neither eviction nor :meth:`LRUCache.clear`
changes a fit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["CACHE", "CACHE_SIZE", "LRUCache"]

#: The bound on :data:`CACHE`: at most this many entries (graphs, compiled ADVI step
#: functions and compiled log densities together, about three per model and data shape
#: fitted by ADVI).  Each entry holds a graph or a compiled function of a few MB at most.
CACHE_SIZE = 32


class LRUCache:
    """A bounded map that evicts its least recently used entry when full.

    Parameters
    ----------
    maxsize : int
        The most entries it ever holds (>= 1).
    """

    def __init__(self, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an integer >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def keys(self) -> list[Hashable]:
        """The keys, least recently used first."""
        return list(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The entry under ``key`` (now the most recently used), or ``default``."""
        if key not in self._entries:
            return default
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the least recently used beyond the bound."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> tuple[Any, bool]:
        """(the entry under ``key``, False), or (``build()`` now stored there, True)."""
        if key in self._entries:
            return self.get(key), False
        value = build()
        self.put(key, value)
        return value, True

    def clear(self) -> None:
        """Drop every entry (the next fit builds and compiles afresh)."""
        self._entries.clear()


#: The PyMC backend's one cache.
CACHE = LRUCache(CACHE_SIZE)
