"""gmmkit's warning classes (base layer: every other layer may import them).

:class:`ConvergenceWarning` is what a fit emits when its kept restart stopped without
meeting its stopping rule (closed-form methods at ``max_iter``, ADVI at ``n_iter``), as
scikit-learn's ``ConvergenceWarning`` does.  It is exported as
``gmmkit.ConvergenceWarning``, so it can be filtered or turned into an error::

    warnings.simplefilter("error", gmmkit.ConvergenceWarning)
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["ConvergenceWarning", "warn"]

#: The package's directory: frames inside it are not where a user called gmmkit.
_PACKAGE = str(Path(__file__).resolve().parent)


class ConvergenceWarning(UserWarning):
    """A fit stopped before its stopping rule was met; its message says which method,
    after how many iterations, how far from the rule it was and what to raise."""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside gmmkit (the user's line),
    however deep inside gmmkit the warning arises (Python 3.11 has no
    ``skip_file_prefixes``)."""
    # stacklevel 1 is this function, 2 its caller (frame 1 here), and so on up.
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
