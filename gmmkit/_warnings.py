"""gmmkit's warning classes (base layer: every other layer may import them).

:class:`ConvergenceWarning` is what a fit emits when its kept restart stopped without
meeting its stopping rule (closed-form methods at ``max_iter``, ADVI at ``n_iter``), as
scikit-learn's ``ConvergenceWarning`` does.  It is exported as
``gmmkit.ConvergenceWarning``, so it can be filtered or turned into an error::

    warnings.simplefilter("error", gmmkit.ConvergenceWarning)
"""

from __future__ import annotations

__all__ = ["ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """A fit stopped before its stopping rule was met; its message says which method,
    after how many iterations, how far from the rule it was and what to raise."""
