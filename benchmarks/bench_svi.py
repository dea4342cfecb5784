"""SVI against batch VB at large N: passes over the data to come within 0.1% of batch
VB's converged ELBO (issue 15's goal for SVI: <= 3 passes at N = 10^7).

Run:  .venv/bin/python benchmarks/bench_svi.py [--n 10000000] [--d 2] [--k 4]
          [--batch-size 256] [--epochs 3] [--dask-chunks 0] [--spacing 2.5]
          [--max-iter 300] [--seed 0]

Data: N points from a K-component mixture in D dimensions (seeded; means ``--spacing``
sd apart on a grid, unit covariances: overlapping at the default 2.5, so that batch VB
needs many passes and k-means++ does not start within 0.1%), fitted with Bishop's
Bayesian GMM (K components, default priors).  Batch VB (``cavi`` on a ``BayesianGMM``)
runs to tol = 1e-8 nats per point or ``--max-iter`` iterations; its last ELBO is the
target.  Both methods start from the same seeded k-means++ state.

Printed per method: the full-data ELBO after each pass (VB: each iteration is one pass;
SVI: each epoch is one pass of minibatches), the first pass whose ELBO is within 0.1%
of the target, and seconds per pass.  The ELBO evaluations themselves (SVI's end-of-epoch
bound; one extra pass each on Dask data) are not counted as passes: they measure, they
do not fit.  With ``--dask-chunks C`` SVI also runs on a Dask array of the same data in
row chunks of C (minibatches streamed chunk-wise, inference/svi.py).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import gmmkit
from gmmkit.inference.methods import CAVI, SVI
from gmmkit.models.bayesian import BayesianGMM

TOLERANCE = 1e-3  # "within 0.1% of batch VB's ELBO"


def mixture(n: int, d: int, k: int, spacing: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(k ** (1.0 / d)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * d, indexing="ij"), -1).reshape(-1, d)
    centres = spacing * grid[:k]
    labels = rng.integers(k, size=n)
    return centres[labels] + rng.standard_normal((n, d))


def first_within(trace: np.ndarray, target: float) -> int | None:
    """The first pass (index into a trace whose entry 0 is the initial state) within
    TOLERANCE of ``target``, or None."""
    hits = np.flatnonzero(np.abs(trace - target) <= TOLERANCE * abs(target))
    return int(hits[0]) if hits.size else None


def report(label: str, fit, target: float) -> None:
    trace = fit.elbo_trace
    passes = first_within(trace, target)
    per_pass = fit.elapsed_s / max(fit.n_iter, 1)
    rel = (trace - target) / abs(target)
    shown = ", ".join(f"{r:+.1e}" for r in rel[:8])
    print(f"{label:<22} passes to 0.1%: {passes if passes is not None else '>' + str(fit.n_iter)}"
          f"   ({fit.n_iter} run, {per_pass:6.2f} s/pass incl. ELBO)")
    print(f"{'':<22} (ELBO - target)/|target| per pass from the start: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dask-chunks", type=int, default=0)
    parser.add_argument("--spacing", type=float, default=2.5,
                        help="distance between neighbouring means, in sd")
    parser.add_argument("--max-iter", type=int, default=300,
                        help="batch VB's iterations at most (its last ELBO is the target)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X = mixture(args.n, args.d, args.k, args.spacing, args.seed)
    model = BayesianGMM(args.k)
    print(f"N={args.n:,}, D={args.d}, K={args.k}, spacing={args.spacing} sd, "
          f"batch_size={args.batch_size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
        start = time.perf_counter()
        vb = gmmkit.fit(model, X, CAVI.name, seed=args.seed, tol=1e-8 * args.n,
                        max_iter=args.max_iter)
        vb_s = time.perf_counter() - start
        target = vb.elbo
        print(f"batch VB: ELBO {target:.6f} after {vb.n_iter} iterations ({vb_s:.1f} s, "
              f"converged={vb.converged})")
        report("batch VB", vb, target)
        svi = gmmkit.fit(model, X, SVI.name, seed=args.seed, tol=0.0,
                         batch_size=args.batch_size, n_epochs=args.epochs)
        report("SVI (in memory)", svi, target)
        if args.dask_chunks:
            import dask.array as da

            lazy = da.from_array(X, chunks=(args.dask_chunks, args.d))
            svi_dask = gmmkit.fit(model, lazy, SVI.name, seed=args.seed, tol=0.0,
                                  batch_size=args.batch_size, n_epochs=args.epochs)
            report(f"SVI (Dask, {len(lazy.chunks[0])} chunks)", svi_dask, target)


if __name__ == "__main__":
    main()
