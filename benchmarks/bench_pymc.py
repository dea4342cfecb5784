"""PyMC methods on the univariate model, N = 1000, K = 5 (issue 5).

Reports ADVI compile time vs iteration time, the wall time of ADVI, NUTS and SMC, their
ratio to CAVI's wall time on the same data, and a second same-shape fit (new data) that
reuses the cached graph and PyTensor's compiled code.

    .venv/bin/python benchmarks/bench_pymc.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import gmmkit
from gmmkit import UnivariateGMM


def timed(label, fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn()
    wall = time.perf_counter() - start
    print(f"{label:<34s} {wall:8.2f} s")
    return result, wall


def main() -> None:
    model = UnivariateGMM(5, 10.0)
    data = model.sample(1000, seed=1).x
    data2 = model.sample(1000, seed=2).x

    cavi, t_cavi = timed("cavi", lambda: gmmkit.fit(model, data, "cavi", seed=0, n_init=1))
    advi, t_advi = timed("advi (first: build + compile)",
                         lambda: gmmkit.fit(model, data, "advi", seed=0))
    d = advi.diagnostics
    per_iter = d["fit_s"] / max(advi.n_iter, 1)
    print(f"  pm.fit {d['fit_s']:.2f} s for {advi.n_iter} iterations; "
          f"elbo {advi.elbo:.2f} +- {advi.elbo_se:.3f} ({d['elbo_draws']} draws); "
          f"cavi elbo {cavi.elbo:.2f}")
    advi2, t_advi2 = timed("advi (second, same shapes)",
                           lambda: gmmkit.fit(model, data2, "advi", seed=0))
    d2 = advi2.diagnostics
    per_iter2 = d2["fit_s"] / max(advi2.n_iter, 1)
    print(f"  pm.fit {d2['fit_s']:.2f} s for {advi2.n_iter} iterations "
          f"({1e3 * per_iter2:.3f} ms/iteration)")
    # Iteration cost from the second (compiled) run; compile = first fit_s - iterations.
    compile_s = d["fit_s"] - per_iter2 * advi.n_iter
    print(f"  ADVI compile ~{compile_s:.2f} s (first fit) vs "
          f"{1e3 * per_iter2:.3f} ms/iteration; first-run ms/iter incl. compile "
          f"{1e3 * per_iter:.3f}")
    nuts, t_nuts = timed("nuts (2 x (1000 + 1000))",
                         lambda: gmmkit.fit(model, data, "nuts", seed=0))
    print(f"  converged={nuts.converged} rhat_max={nuts.diagnostics['rhat_max']:.4f} "
          f"ess_bulk_min={nuts.diagnostics['ess_bulk_min']:.0f} "
          f"divergences={nuts.diagnostics['divergences']}")
    _, t_nuts2 = timed("nuts (second, same shapes)",
                       lambda: gmmkit.fit(model, data2, "nuts", seed=0))
    smc, t_smc = timed("smc (2 x 1000)", lambda: gmmkit.fit(model, data, "smc", seed=0))
    print(f"  log_evidence {smc.log_evidence:.2f} +- {smc.log_evidence_se:.2f}; "
          f"cavi elbo + log K! = {cavi.elbo + np.log(120):.2f}")
    print("ratio to CAVI wall time:")
    for label, t in [("advi", t_advi), ("advi (2nd)", t_advi2), ("nuts", t_nuts),
                     ("nuts (2nd)", t_nuts2), ("smc", t_smc)]:
        print(f"  {label:<12s} {t / t_cavi:10.0f} x")


if __name__ == "__main__":
    main()
