"""The CLI shows warnings as one-line notes, and PyMC's noise not at all (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gmmkit", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def test_unconverged_fit_warns_in_one_line(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 1))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="x", comments="")
    out = run_cli("fit", str(tmp_path / "x.csv"), "--model", "gmm", "-k", "3",
                  "--method", "em", "--max-iter", "2", "--out", str(tmp_path / "o"),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "did not converge" in line]
    assert len(lines) == 1
    assert lines[0].startswith("gmmkit: warning: EM did not converge")
    assert "warnings.warn(" not in out.stderr and "Warning:" not in out.stderr


@pytest.mark.slow
def test_short_advi_fit_shows_no_raw_warnings(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 1))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="x", comments="")
    out = run_cli("fit", str(tmp_path / "x.csv"), "--model", "univariate", "-k", "2",
                  "--method", "advi", "--n-iter", "200", "--draws", "50", "--out",
                  str(tmp_path / "o"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "warnings.warn(" not in out.stderr
    assert "UserWarning:" not in out.stderr and "RuntimeWarning:" not in out.stderr
    for line in out.stderr.splitlines():
        if "warning" in line.lower():
            assert line.startswith("gmmkit: warning: "), out.stderr
