"""The PyMC backend: the models as PyMC graphs, mean-field and full-rank ADVI, NUTS and
SMC on them, and their posteriors.

* :mod:`.graphs`: the graph builders (a ``functools.singledispatch`` on the model type;
  a new model family registers its builder there; a ``BayesianGMM`` graph is composed
  of a covariance part and a weight part, dispatched on its family and weight-prior
  objects) and :func:`model_graph`;
* :mod:`.cache`: the one bounded cache of graphs and compiled functions (``CACHE``);
* :mod:`.advi`: :func:`fit_advi` (mean-field or full rank);
* :mod:`.samplers`: :func:`fit_nuts`, :func:`fit_smc`;
* :mod:`.posterior`: :class:`DrawsPosterior`, :class:`VariationalQ`.

Users call :func:`gmmkit.fit`; the method table (:mod:`gmmkit.inference.methods`) points
each PyMC method at its backend here.  Importing this package imports PyMC lazily: the
modules import it inside the functions that need it.
"""

from gmmkit.inference.pymc.advi import fit_advi
from gmmkit.inference.pymc.cache import CACHE
from gmmkit.inference.pymc.graphs import model_graph
from gmmkit.inference.pymc.posterior import DrawsPosterior, VariationalQ
from gmmkit.inference.pymc.samplers import fit_nuts, fit_smc

__all__ = [
    "CACHE",
    "DrawsPosterior",
    "VariationalQ",
    "fit_advi",
    "fit_nuts",
    "fit_smc",
    "model_graph",
]
