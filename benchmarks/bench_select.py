"""Wall and CPU time of the default model selection on Old Faithful (standardised).

The default grid: K = 1..9, every covariance family and weight prior the models
implement (Bishop's VB for BayesianGMM, EM for GaussianMixture), n_init = 3; once
without and once with 5-fold CV (cv_n_init = 1, and 3 for comparison); serially
(n_jobs=1) and over worker processes (n_jobs=2).  Also: where the time goes (fitting
time per family of the full-data fits) and the load average, since on a shared machine
wall time depends on what else runs.

    PYTHONPATH=. python benchmarks/bench_select.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import pandas as pd

import gmmkit
from gmmkit.comparisons.selection import select

INFO = ("bound", "bic", "aic", "icl")


def timed(x, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    sel = select(x, **kwargs)
    # Children's CPU (the workers) is only counted once they have been joined.
    children = os.times()
    return sel, time.perf_counter() - wall, time.process_time() - cpu, children


def main(quick: bool = False) -> None:
    x = gmmkit.datasets.old_faithful(standardize=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    runs = [("no cv", dict(criteria=INFO), (1, 2)),
            ("cv, cv_n_init=1", dict(criteria=(*INFO, "cv")), (1, 2))]
    if not quick:
        runs.append(("cv, cv_n_init=3", dict(criteria=(*INFO, "cv"), cv_n_init=3), (2,)))
    tables = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, kwargs, jobs in runs:
            for n_jobs in jobs:
                before = os.times()
                sel, wall, cpu, after = timed(x, n_jobs=n_jobs, seed=0, **kwargs)
                children = (after.children_user + after.children_system
                            - before.children_user - before.children_system)
                print(f"{label:>16}, n_jobs={n_jobs}: {len(sel.table)} candidates, "
                      f"{wall:6.1f} s wall, {cpu + children:6.1f} s CPU "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                tables[label, n_jobs] = sel
            if len(jobs) == 2:
                same = sel.table.equals(tables[label, 1].table)
                print(f"{'':>16}  serial and parallel tables identical: {same}")
    sel = tables["cv, cv_n_init=1", 2]
    per_family: dict[tuple, float] = {}
    for cand, fit in sel.fits.items():
        per_family[cand.family] = per_family.get(cand.family, 0.0) + fit.elapsed_s
    print("full-data fitting time per family (n_init = 3, K = 1..9):")
    for family, seconds in sorted(per_family.items(), key=lambda kv: -kv[1]):
        print(f"  {' '.join(family):<40} {seconds:5.2f} s")
    print("best per criterion:")
    for name, cand in sel.best.items():
        print(f"  {name:>5}: {cand}")
    with pd.option_context("display.width", 120):
        t = sel.table
        print(t[t["model"] == "bayesian"].pivot_table(
            index="n_components", columns=["covariance", "weight_prior"],
            values="bound").round(1))


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
