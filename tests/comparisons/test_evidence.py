"""The one evidence policy: estimates that contradict ELBO <= log Z, or whose se is too
large to decide anything, are flagged and never chosen; readings never state a negative
gap as a finding."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import gmmkit
from gmmkit import UnivariateGMM
from gmmkit.comparisons.evidence import (
    MAX_EVIDENCE_SE,
    choose_evidence,
    evidence_estimates,
)


@pytest.fixture(scope="module")
def tiny_cavi():
    # 7 points, K = 2: exact enumeration is available as the ground truth.
    x = np.array([-2.1, -1.7, -2.4, 2.2, 1.9, 2.5, 2.0])
    return gmmkit.fit(UnivariateGMM(2, prior_sd=3.0), x, "cavi", seed=0)


def with_reported_evidence(fit, value, se, source="smc (stand-in)"):
    """The CAVI fit carrying a sampler-style evidence estimate (as SMC reports one)."""
    return dataclasses.replace(fit, log_evidence=value, log_evidence_se=se,
                               log_evidence_source=source)


def test_an_estimate_below_an_elbo_by_more_than_3_se_is_flagged_and_not_chosen(tiny_cavi):
    elbo = tiny_cavi.elbo
    low = with_reported_evidence(tiny_cavi, elbo - 5.0, 1.0 / 3.0)  # 15 se below the bound
    estimates = evidence_estimates({"cavi": tiny_cavi, "smc": low}, {}, exact=False)
    (sampler,) = [e for e in estimates if e.fit == "smc"]
    assert not sampler.usable and "contradicts ELBO <= log Z" in sampler.problems[0]
    chosen, reason = choose_evidence(estimates)
    assert chosen is None and "flagged" in reason


def test_an_estimate_within_3_se_of_the_bound_is_kept(tiny_cavi):
    ok = with_reported_evidence(tiny_cavi, tiny_cavi.elbo - 0.5, 0.3)  # 1.7 se below
    chosen, _ = choose_evidence(evidence_estimates({"smc": ok}, {}, exact=False))
    assert chosen is not None and chosen.value == pytest.approx(tiny_cavi.elbo - 0.5)


def test_a_58_nat_se_is_flagged(tiny_cavi):
    wide = with_reported_evidence(tiny_cavi, tiny_cavi.elbo + 100.0, 58.0)
    (estimate,) = evidence_estimates({"smc": wide}, {}, exact=False)
    assert any(f"> {MAX_EVIDENCE_SE:g}" in p for p in estimate.problems)
    assert choose_evidence([estimate])[0] is None


def test_exact_enumeration_is_preferred_and_bounds_the_elbo(tiny_cavi):
    other = with_reported_evidence(tiny_cavi, tiny_cavi.elbo + 0.2, 0.1)
    estimates = evidence_estimates({"cavi": tiny_cavi, "smc": other}, {})
    chosen, reason = choose_evidence(estimates)
    exact = tiny_cavi.model.exact_log_evidence(tiny_cavi.data)
    assert chosen.kind == "exact" and chosen.value == exact and "exact" in reason
    assert tiny_cavi.elbo <= exact


def test_compare_reports_no_gap_when_every_estimate_is_flagged(tiny_cavi):
    bad = with_reported_evidence(tiny_cavi, tiny_cavi.elbo - 266.0, 58.0)
    report = gmmkit.compare({"cavi": tiny_cavi, "smc": bad}, reference="cavi",
                            exact_evidence=False, psis_draws=200, n_draws=100)
    row = report.table.loc["cavi"]
    # The SMC stand-in contradicts the bound; CAVI's own importance-sampling estimate
    # may be chosen instead, but never one below the ELBO by more than 3 se.
    if np.isfinite(row["log_evidence"]):
        assert row["elbo_gap"] > -3 * max(row["log_evidence_se"], 1e-12)
    reading = " ".join(report.reading())
    assert "-266" not in reading and "Evidence estimate not used" in reading
    # A negative gap is never stated as a finding ("ELBO is -0.3 nats below ...").
    assert not re.search(r"ELBO is -[0-9.]+ nats below", reading)
