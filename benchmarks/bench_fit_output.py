"""Wall time and output size of ``gmmkit fit`` at N = 1e6, D = 2 (not a timed test).

Run: ``PYTHONPATH=. python benchmarks/bench_fit_output.py [N]``.  Prints, for cavi on
BayesianGMM and em on GaussianMixture, the wall time of the whole command (a fresh
interpreter, as a user runs it), the fit's own time and the size of --out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(n: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    x = centres[rng.integers(3, size=n)] + rng.normal(size=(n, 2))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "big.npy", x)
        for model, method in (("bayesian", "cavi"), ("gmm", "em")):
            out = tmp / f"out-{method}"
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "gmmkit", "fit", str(tmp / "big.npy"), "--model", model,
                 "--method", method, "-k", "3", "--quiet", "--out", str(out)],
                capture_output=True, text=True,
            )
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                print(f"{method}: failed: {proc.stderr.strip()}")
                continue
            elapsed = json.loads((out / "params.json").read_text())["elapsed_s"]
            files = {p.name: p.stat().st_size for p in out.iterdir()}
            print(f"{model}/{method}: N={n} wall {wall:.1f} s (fit {elapsed:.1f} s), "
                  f"--out {directory_size(out) / 1e6:.1f} MB")
            for name, size in sorted(files.items(), key=lambda kv: -kv[1]):
                print(f"    {name:28s} {size / 1e6:9.2f} MB")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000)
