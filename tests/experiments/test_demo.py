"""``gmmkit demo`` (``run_demo``) in its quick setting: what it fits, prints and writes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from gmmkit.experiments.demo import FULL, QUICK, DemoResult, run_demo

BLEI_METHODS = ["cavi", "advi", "fullrank_advi", "nuts", "smc"]


def quiet_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160), buffer


def check_blei(result: DemoResult, printed: str) -> None:
    out = result.out
    for name in ("README.md", "blei/table.csv", "blei/summary.csv", "blei/report.md",
                 "blei/elbo.png", "blei/fit.png", "blei/forest.png", "blei/khat.png",
                 "blei/trace_nuts.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in (out / "blei" / "fits").iterdir()) == sorted(
        f"{m}.nc" for m in BLEI_METHODS
    )
    table = pd.read_csv(out / "blei" / "table.csv", index_col="fit")
    assert list(table.index) == BLEI_METHODS
    assert result.blei.reference == "nuts"
    # SMC supplies the evidence of the one model all five fits share; every ELBO is a
    # lower bound on it (slack: the SMC estimate's and ADVI's Monte Carlo error).
    assert table["log_evidence_source"].str.startswith("smc").all()
    evidence = table["log_evidence"].to_numpy()
    assert np.isfinite(evidence).all() and np.ptp(evidence) == 0
    elbos = table.loc[["cavi", "advi", "fullrank_advi"], "elbo"]
    assert (elbos < evidence[0] + 1.0).all()
    assert table.loc[["cavi", "advi", "fullrank_advi"], "psis_khat"].notna().all()
    assert table.loc[["nuts", "smc"], "elbo"].isna().all()
    # The truth is known (and the means overlap, so with the quick settings's N = 200
    # a fit may sit in a poorer mode): the best method recovers the means to within half
    # an obs sd, and none is lost entirely.
    assert table["truth_mean_error"].min() < 0.5
    assert (table["truth_mean_error"] < 2.0).all()
    # The two samplers agree on the hard assignments.
    assert table.loc["smc", "ari"] > 0.8
    for column in ("ELBO", "log Z", "k-hat", "ARI", "time s", "nuts (ref)"):
        assert column in printed, column
    assert result.timings["total"] > 0 and result.wall_s == result.timings["total"]
    assert "wall time" in printed and "blei: nuts" in printed
    readme = (out / "README.md").read_text()
    assert "blei/report.md" in readme and "| blei: nuts |" in readme


def test_demo_quick_blei(tmp_path):
    console, buffer = quiet_console()
    out = tmp_path / "demo"
    result = run_demo(out, quick=True, faithful=False, console=console)
    assert result.out == out and result.faithful is None
    assert sorted(p.name for p in out.iterdir()) == [".gmmkit-output.json", "README.md", "blei"]
    # Nothing left behind beside the output directory (atomic write).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    check_blei(result, buffer.getvalue())


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_demo_quick_with_old_faithful(tmp_path, parallel):
    console, buffer = quiet_console()
    result = run_demo(tmp_path / "demo", quick=True, console=console, parallel=parallel)
    printed = buffer.getvalue()
    check_blei(result, printed)
    faithful = result.out / "faithful"
    table = pd.read_csv(faithful / "table.csv", index_col="fit")
    assert list(table.index) == ["cavi", "em_k2"]
    if parallel:  # part (b) ran in a second process: its report is on disk only
        assert result.faithful is None
        assert {"faithful: cavi", "faithful: compare"} <= set(result.timings)
        assert "(b) Old Faithful" in printed
    else:
        assert result.faithful.reference == "cavi"
    # Bishop's Fig. 10.6: with alpha0 = 1e-3 VB keeps two of its six components, the same
    # two clusters EM with K = 2 finds.
    assert table.loc["em_k2", "ari"] == pytest.approx(1.0)
    weights = pd.read_csv(faithful / "weights.csv", index_col="fit")
    assert list(weights.index) == ["cavi", "em_k2", "em_k6"]
    assert int((weights.loc["cavi"] > 0.01).sum()) == 2
    assert int((weights.loc["em_k6"] > 0.01).sum()) == 6
    np.testing.assert_allclose(
        weights.loc["cavi"].iloc[:2], weights.loc["em_k2"].iloc[:2], atol=0.02
    )
    assert "mixing weights" in printed


def test_demo_refuses_busy_directory_before_fitting(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user data")
    console, buffer = quiet_console()
    with pytest.raises(ValueError, match="exists and is not empty"):
        run_demo(busy, console=console)
    assert buffer.getvalue() == ""  # not a single fit was started
    assert (busy / "keep.txt").read_text() == "user data"


def test_demo_settings():
    # The full demo uses the budget of the issue: NUTS 500 + 500 draws x 2 chains, SMC
    # 500 draws; the quick one is strictly smaller.
    assert FULL.nuts == {"draws": 500, "tune": 500, "chains": 2}
    assert FULL.smc == {"draws": 500, "chains": 2}
    assert FULL.blei_n == 1000
    assert QUICK.blei_n < FULL.blei_n and QUICK.nuts["draws"] < FULL.nuts["draws"]


@pytest.mark.slow
def test_the_full_demos_reference_converges_without_a_warning():
    # The flagship comparison's reference, as the full demo fits it: NUTS from the CAVI
    # solution with FULL's settings.  It must pass its own checks, after relabelling.
    import warnings

    import gmmkit
    from gmmkit import datasets

    data = datasets.blei_example(FULL.blei_n, seed=0)
    model = gmmkit.UnivariateGMM(5, prior_sd=3.0, obs_sd=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gmmkit.ConvergenceWarning)
        cavi = gmmkit.fit(model, data.x, "cavi", seed=0, n_init=FULL.cavi_restarts)
        nuts = gmmkit.fit(model, data.x, "nuts", seed=0, init=cavi, **FULL.nuts)
    report = gmmkit.compare({"cavi": cavi, "nuts": nuts}, reference="nuts",
                            psis_draws=200, n_draws=200)
    assert report.reference_converged, report.reference_problems
    assert np.isfinite(report.table.loc["cavi", "mean_shift_max"])
