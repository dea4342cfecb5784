"""Sweeps over simulated data: the table, its errors and the evidence gap."""

from __future__ import annotations

from gmmkit import plot_sweep, sweep


# ----------------------------------------------------------------------------- sweep
def test_sweep_error_decreases_with_n():
    df = sweep(["cavi"], n=[40, 4000], k=2, separation=[4.0, 8.0], seeds=range(6),
               evidence=False)
    assert len(df) == 2 * 2 * 6
    errors = df.groupby(["separation", "n"])["mean_error"].mean()
    for sep in (4.0, 8.0):
        # The error of a mean scales as tau / sqrt(N / K): 10x smaller at 100x the data.
        # Averaged over 6 seeds, the ratio's sampling spread is well under 2x, so
        # requiring a 3x drop leaves a wide margin either way.
        assert errors[(sep, 4000)] < errors[(sep, 40)] / 3, errors
    assert df["converged"].all()
    assert (df["ari"] > 0.8).all()
    fig = plot_sweep(df)
    assert len(fig.axes) == 4
    assert len(fig.axes[0].lines) == 1 and fig.axes[0].get_xscale() == "log"


def test_sweep_reports_exact_evidence_gap_on_tiny_data():
    df = sweep("cavi", n=8, k=2, separation=3.0, seeds=[0, 1])
    assert (df["log_evidence_source"] == "exact enumeration").all()
    assert (df["elbo_gap"] > 0).all()  # the ELBO is a lower bound on the exact evidence
    assert df["psis_khat"].notna().all()


# ----------------------------------------------------------------------------- bad input


