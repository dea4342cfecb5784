"""CAVI speed at N = 10^6, K = 10, against the floor of one ``np.exp`` over an N x K array.

Run:  .venv/bin/python benchmarks/bench_cavi.py [--n 1000000] [--k 10] [--repeat 10]

Prints milliseconds per CAVI iteration (one q(mu) update + one fused phi pass, ELBO
included), the time of ``np.exp`` on an (N, K) array (allocating, and into a preallocated
array), their ratio, and the peak memory of an iteration measured with tracemalloc
(NumPy reports its allocations to it), in units of one N x K float64 array.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from gmmkit import UnivariateGMM
from gmmkit.inference import cavi


def best_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    n, k = args.n, args.k

    model = UnivariateGMM(k, prior_sd=5.0)
    x = model.sample(n, seed=0).x
    rng = np.random.default_rng(0)
    state = cavi.init_state(model, x, "kmeans++", rng)

    iteration_ms = best_ms(lambda: cavi.elbo(model, n, cavi.step(model, x, state)), args.repeat)
    block = rng.normal(size=(n, k))
    out = np.empty_like(block)
    exp_ms = best_ms(lambda: np.exp(block), args.repeat)
    exp_out_ms = best_ms(lambda: np.exp(block, out=out), args.repeat)

    tracemalloc.start()
    cavi.elbo(model, n, cavi.step(model, x, state))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nk_bytes = n * k * 8

    print(f"CAVI iteration, N={n:,}, K={k}: {iteration_ms:8.2f} ms")
    print(f"np.exp on an (N, K) array:        {exp_ms:8.2f} ms  "
          f"(ratio {iteration_ms / exp_ms:.2f})")
    print(f"np.exp into a preallocated array: {exp_out_ms:8.2f} ms  "
          f"(ratio {iteration_ms / exp_out_ms:.2f})")
    print(f"peak memory of one iteration:     {peak / 2**20:8.2f} MiB "
          f"= {peak / nk_bytes:.3f} x one N x K float64 array ({nk_bytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
