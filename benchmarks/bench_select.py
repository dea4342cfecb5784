"""Wall time of the default model selection on Old Faithful (standardised).

K = 1..9, EM for the four covariance types of GaussianMixture plus Bishop's VB for the
full-covariance BayesianGMM, n_init = 3; once without and once with 5-fold CV.

    PYTHONPATH=. python benchmarks/bench_select.py
"""

from __future__ import annotations

import time
import warnings

from threadpoolctl import threadpool_limits

import gmmkit


def main() -> None:
    x = gmmkit.datasets.old_faithful(standardize=True)
    covariances = ("full", "diag", "spherical", "tied")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for criteria in (("bound", "bic", "aic", "icl"), ("bound", "bic", "aic", "icl", "cv")):
            start = time.perf_counter()
            sel = gmmkit.select(x, range(1, 10), covariance=covariances, criteria=criteria,
                                n_init=3, seed=0)
            elapsed = time.perf_counter() - start
            print(f"criteria={','.join(criteria)}: {len(sel.table)} candidates in "
                  f"{elapsed:.1f} s")
            per_family = {}
            for cand, fit in sel.fits.items():
                per_family[cand.family] = per_family.get(cand.family, 0.0) + fit.elapsed_s
            for family, seconds in per_family.items():
                print(f"  {' '.join(family)}: {seconds:.2f} s of fitting on all the data")
            for name, cand in sel.best.items():
                print(f"  best by {name}: {cand}")


if __name__ == "__main__":
    main()
