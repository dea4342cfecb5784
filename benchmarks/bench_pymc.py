"""PyMC methods on the univariate model, N = 1000, K = 5 (issue 5).

Reports ADVI's compile time against its iteration time, the wall time of ADVI, NUTS and
SMC, their ratio to CAVI's wall time on the same data, and a second fit of the same
shapes (new data) in the same process, which reuses the cached graph (``pm.Data``) and,
for ADVI, the compiled step function.

Data: ``datasets.fixed_means(200)`` (means 1, 5, 7, 9, 15, 200 points each, N = 1000);
the second fit uses another draw of it.  Model: ``UnivariateGMM(5, prior_sd=10)``.
Every method runs with its defaults (ADVI 20000 Adam steps at most; NUTS 2 chains of
1000 tuning + 1000 draws; SMC 2 chains of 1000 particles), one process on one core.

    .venv/bin/python benchmarks/bench_pymc.py          # PyTensor's on-disk C cache as is
    .venv/bin/python benchmarks/bench_pymc.py --cold   # empty C cache: first-ever compile
"""

from __future__ import annotations

import os
import sys
import tempfile

if "--cold" in sys.argv:  # must precede the first import of pytensor
    _cold_dir = tempfile.mkdtemp(prefix="gmmkit-bench-pytensor-")
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (os.environ.get("PYTENSOR_FLAGS", ""), f"compiledir={_cold_dir}") if f
    )

import time
import warnings

import numpy as np

import gmmkit
from gmmkit import UnivariateGMM, datasets


def timed(label, fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn()
    wall = time.perf_counter() - start
    print(f"{label:<36s} {wall:8.3f} s")
    return result, wall


def advi_breakdown(fit) -> None:
    d = fit.diagnostics
    ms = 1e3 * d["iterate_s"] / max(fit.n_iter, 1)
    print(f"  graph {d['graph_s']:.2f} s; compile {d['compile_s']:.2f} s (step function"
          f"{', reused' if d['compiled_step_reused'] else ''}) + {d['logp_compile_s']:.2f} s "
          f"(vectorised log p); {fit.n_iter} iterations {d['iterate_s']:.2f} s = "
          f"{ms:.3f} ms/iteration; sample {d['sample_s']:.2f} s; "
          f"ELBO ({d['elbo_draws']} draws) {d['elbo_s']:.2f} s")
    print(f"  elbo {fit.elbo:.2f} +- {fit.elbo_se:.3f}; converged={fit.converged}")


def main() -> None:
    model = UnivariateGMM(5, 10.0)
    data = datasets.fixed_means(200, seed=0).x
    data2 = datasets.fixed_means(200, seed=1).x
    print(f"N = {data.size}, K = {model.n_components}"
          f"{' (cold PyTensor compile cache)' if '--cold' in sys.argv else ''}")

    # CAVI takes milliseconds: the best of 5 timings of one restart, after checking that
    # one restart reaches the best of 10 restarts' ELBO on these data.
    best = gmmkit.fit(model, data, "cavi", seed=0, n_init=10)
    cavi_times = []
    for _ in range(5):
        cavi, t = timed("cavi (1 restart)", lambda: gmmkit.fit(model, data, "cavi", seed=0))
        cavi_times.append(t)
    t_cavi = min(cavi_times)
    print(f"  elbo {cavi.elbo:.2f} ({cavi.n_iter} iterations); best of 10 restarts "
          f"{best.elbo:.2f}")

    advi, t_advi = timed("advi (first fit)", lambda: gmmkit.fit(model, data, "advi", seed=0))
    advi_breakdown(advi)
    advi2, t_advi2 = timed("advi (second fit, same shapes)",
                           lambda: gmmkit.fit(model, data2, "advi", seed=0))
    advi_breakdown(advi2)

    nuts, t_nuts = timed("nuts (first fit)", lambda: gmmkit.fit(model, data, "nuts", seed=0))
    print(f"  converged={nuts.converged} rhat_max={nuts.diagnostics['rhat_max']:.4f} "
          f"ess_bulk_min={nuts.diagnostics['ess_bulk_min']:.0f} "
          f"divergences={nuts.diagnostics['divergences']}")
    _, t_nuts2 = timed("nuts (second fit, same shapes)",
                       lambda: gmmkit.fit(model, data2, "nuts", seed=0))

    smc, t_smc = timed("smc (first fit)", lambda: gmmkit.fit(model, data, "smc", seed=0))
    print(f"  log_evidence {smc.log_evidence:.2f} +- {smc.log_evidence_se:.2f}; "
          f"cavi elbo + log K! = {cavi.elbo + np.log(120):.2f}")
    _, t_smc2 = timed("smc (second fit, same shapes)",
                      lambda: gmmkit.fit(model, data2, "smc", seed=0))

    print("wall time / CAVI wall time (first fit, second fit):")
    for label, first, second in [("advi", t_advi, t_advi2), ("nuts", t_nuts, t_nuts2),
                                 ("smc", t_smc, t_smc2)]:
        print(f"  {label:<6s} {first / t_cavi:8.0f} x {second / t_cavi:8.0f} x")


if __name__ == "__main__":
    main()
