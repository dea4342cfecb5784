"""The model's PyMC graph on minibatches: ``pm.Minibatch`` rows, ``total_size=N`` on the
likelihood, for minibatch ADVI (:mod:`.advi`, option ``batch_size``).

The graph is the family's own (:func:`.graphs.build_graph`, built on ``batch_size`` rows
so that its "observation" dimension has the minibatch's length), rewritten the way
``pm.Model.register_rv`` treats an observed variable given ``total_size``: the observed
variable is wrapped by :func:`pymc.variational.minibatch_rv.create_minibatch_rv` with
``total_size = N`` (its log density is scaled by N/|B|), and its value, the data, is
replaced by ``pm.Minibatch(x, batch_size=|B|)``, which draws |B| row indices uniformly
*with replacement* from the N rows at every evaluation (PyMC's ``minibatch_index``, a
random-integers variable whose generator is a shared state of the compiled step).  So
for any theta,

    E_B[log p(theta) + (N/|B|) sum_{i in B} log p(x_i | theta)] = log p(x, theta),

and each step's one-draw ELBO estimate and its gradient are unbiased for the full data.
The rewrite works on any registered family (it only needs the graph's one observed
variable), so new families need nothing here.

Cached by value in the backend's one cache (:mod:`.cache`) under
``("minibatch graph", GraphKey, batch_size)``; the data live in a shared variable of the
entry, set to the fit's data on every use (a second fit of a model with the same shapes
reuses the graph and its compiled ADVI step).  The minibatch generator is reseeded by the
compiled ADVI step's reset (:class:`.advi._CompiledADVI`), so fits are reproducible.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gmmkit.inference.pymc.cache import CACHE
from gmmkit.inference.pymc.graphs import GraphKey, build_graph

__all__ = ["MinibatchGraph", "check_batch_size", "minibatch_graph"]


class MinibatchGraph(NamedTuple):
    """A minibatch graph and the shared variable holding all N rows it samples from."""

    graph: Any  # pm.Model
    data: Any  # pytensor shared variable (N, ...) of the full data


def check_batch_size(batch_size: Any, n_points: int) -> int | None:
    """``batch_size`` checked against the N points: None (full data) or an integer in
    [1, N]; a ValueError naming the option otherwise."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be None (all the data) or an integer between 1 "
                         f"and the number of points N={n_points}, got {batch_size!r}")
    if not 1 <= batch_size <= n_points:
        raise ValueError(f"batch_size must be between 1 and the number of points "
                         f"N={n_points}, got {batch_size}")
    return int(batch_size)


def _build(key: GraphKey, x: np.ndarray, batch_size: int) -> MinibatchGraph:
    import pymc as pm
    import pytensor
    from pymc.model.fgraph import ModelObservedRV, fgraph_from_model, model_from_fgraph
    from pymc.variational.minibatch_rv import create_minibatch_rv

    graph = build_graph(key.model, x[:batch_size], ordered=key.ordered)
    # fgraph_from_model refuses graphs with initial values (the univariate graph's sorted
    # start, which the ordered transform needs): convert without, then put them back.
    initial = {rv.name: value for rv, value in graph.rvs_to_initial_values.items()
               if value is not None}
    for rv in graph.rvs_to_initial_values:
        graph.rvs_to_initial_values[rv] = None
    fgraph, _ = fgraph_from_model(graph, inlined_views=True)
    observed = [node for node in fgraph.toposort() if isinstance(node.op, ModelObservedRV)]
    if len(observed) != 1:
        raise TypeError(f"minibatch ADVI needs a graph with one observed variable, the "
                        f"{type(key.model).__name__} graph has {len(observed)}")
    (node,) = observed
    rv, _, *dims = node.inputs
    # What ``pm.Model.register_rv(..., total_size=N)`` does to an observed variable.
    scaled = create_minibatch_rv(rv, total_size=int(x.shape[0]))
    scaled.name = rv.name
    data = pytensor.shared(np.asarray(x, dtype=np.float64), name="x_full")
    rows = pm.Minibatch(data, batch_size=int(batch_size))
    new = node.op.make_node(scaled, rows, *dims).outputs[0]
    new.name = node.outputs[0].name
    fgraph.replace(node.outputs[0], new, import_missing=True)
    rewritten = model_from_fgraph(fgraph, mutate_fgraph=True)
    for name, value in initial.items():
        rewritten.rvs_to_initial_values[rewritten[name]] = value
    # The observed variable's rows are a minibatch, not the "observation" coordinate's
    # |B| labelled points: no dims (else the InferenceData of q's draws, which records the
    # observed data, finds N rows against |B| labels).
    rewritten.named_vars_to_dims.pop(new.name, None)
    return MinibatchGraph(rewritten, data)


def minibatch_graph(key: GraphKey, x: np.ndarray, batch_size: int
                    ) -> tuple[MinibatchGraph, tuple, bool]:
    """(the minibatch graph of ``key`` sampling rows of ``x``, its cache key, whether it
    was built now).  ``key`` is the full-data graph's (its shape is ``x.shape``)."""
    cache_key = ("minibatch graph", key, int(batch_size))
    entry, built = CACHE.get_or_build(cache_key, lambda: _build(key, x, batch_size))
    if not built:
        entry.data.set_value(np.asarray(x, dtype=np.float64))
    return entry, cache_key, built
