"""Bishop VB on a Zarr array on disk, through Dask: time per pass and peak memory.

Run:  .venv/bin/python benchmarks/bench_dask.py [--n 100_000_000] [--iterations 3]

Issue 15's benchmark.  N x D = 8 float64 points from K = 16 clusters are written chunk by
chunk (never held in memory) to a Zarr store in a temporary directory (``--dir`` to keep
it elsewhere; N = 1e8 is 6.4 GB), then ``gmmkit.fit(BayesianGMM(16), zarr_array, "cavi",
tol=0, max_iter=iterations)`` runs:

1. on Dask's threaded scheduler (streaming the chunks from disk every pass);
2. on a ``LocalCluster`` with 1 and with 2 single-threaded worker processes (each with
   ``--worker-memory``; the data are persisted on the workers when they fit in half the
   cluster's memory, else streamed; the line says which).

Reported per run: seconds per pass (the mean of the ``Fit.time_trace`` steps, so the
moments pass and the initialisation are excluded), the peak resident memory of the whole
process tree (this process and every child: scheduler and workers), sampled every 50 ms
by a psutil thread, and the ratio of the time per pass to the in-memory time per
iteration at N = 1e6 scaled by N / 1e6.  Goals (issue 15): peak <= 2 GB, ratio <= 1.5,
2 workers >= 1.7x faster than 1.  On a machine whose cores are shared with other work
the times are noisy: the ratio and the speed-up are only meaningful on idle cores.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import psutil

D, K = 8, 16


class PeakMemory:
    """Peak RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a process that ended between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _centres() -> np.ndarray:
    return np.random.default_rng(0).normal(scale=4.0, size=(K, D))


def _block(block_info=None) -> np.ndarray:
    """One chunk of the data set, generated from its own seed (chunk index)."""
    info = block_info[None]
    (start, stop), _ = info["array-location"]
    rng = np.random.default_rng([1, info["chunk-location"][0]])
    n = stop - start
    return _centres()[rng.integers(K, size=n)] + rng.normal(size=(n, D))


def write_zarr(path: Path, n: int, chunk_rows: int) -> None:
    import dask
    import dask.array as da

    lazy = da.map_blocks(_block, chunks=(_chunks(n, chunk_rows), (D,)), dtype=float)
    with dask.config.set(scheduler="threads"):
        lazy.to_zarr(str(path), overwrite=True)


def _chunks(n: int, chunk_rows: int) -> tuple[int, ...]:
    full, rest = divmod(n, chunk_rows)
    return (chunk_rows,) * full + ((rest,) if rest else ())


def time_per_pass(fit) -> float:
    return float(np.mean(np.diff(fit.time_trace)))


def run_fit(x, iterations: int):
    import gmmkit
    from gmmkit.models.bayesian import BayesianGMM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol = 0 never converges, by design
        return gmmkit.fit(BayesianGMM(K), x, "cavi", seed=0, tol=0.0, max_iter=iterations)


def in_memory_reference(iterations: int) -> float:
    import dask.array as da

    x = da.map_blocks(_block, chunks=(_chunks(1_000_000, 1_000_000), (D,)),
                      dtype=float).compute(scheduler="threads")
    return time_per_pass(run_fit(x, iterations))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e8, help="points (default 1e8)")
    parser.add_argument("--iterations", type=int, default=3, help="passes timed per run")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--worker-memory", default="2GiB")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the Zarr")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    n = int(args.n)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from gmmkit.inference import chunked

    reference = in_memory_reference(args.iterations)
    scaled = reference * n / 1e6
    print(f"in memory, N = 1e6: {reference * 1e3:.1f} ms per iteration "
          f"(x {n / 1e6:g} = {scaled:.2f} s)")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "data.zarr"
        start = time.perf_counter()
        write_zarr(path, n, args.chunk_rows)
        print(f"wrote N = {n:.3g}, D = {D} float64 ({n * D * 8 / 1e9:.2f} GB) to Zarr in "
              f"{time.perf_counter() - start:.1f} s")

        def report(label: str, fit, peak: int, extra: str = "") -> float:
            per_pass = time_per_pass(fit)
            print(f"{label:<28} {per_pass:8.2f} s per pass   peak RSS {peak / 2**30:5.2f} GiB"
                  f"   ratio to in-memory {per_pass / scaled:5.2f}{extra}")
            return per_pass

        with dask.config.set(scheduler="threads"), PeakMemory() as peak:
            fit = run_fit(da.from_zarr(str(path)), args.iterations)
        report("threaded scheduler", fit, peak.peak)

        if args.skip_cluster:
            return
        times = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              memory_limit=args.worker_memory, dashboard_address=":0") as cl, \
                    Client(cl) as client, PeakMemory() as peak:
                x = da.from_zarr(str(path))
                limit = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
                persisted = x.nbytes <= chunked.PERSIST_FRACTION * limit
                fit = run_fit(x, args.iterations)
            times[workers] = report(
                f"LocalCluster, {workers} worker(s)", fit, peak.peak,
                "   (persisted)" if persisted else "   (streamed)")
        print(f"speed-up, 2 workers over 1: {times[1] / times[2]:.2f}x")


if __name__ == "__main__":
    main()
