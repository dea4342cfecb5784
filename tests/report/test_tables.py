"""Tables that say one thing each: one method column, ELBO to 0.01 nat, n/a where a
value does not apply, fit quality apart from agreement, the reference's problems first,
r-hat and ESS for samplers in summary.csv."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import gmmkit
from gmmkit.inference.pymc import DrawsPosterior
from gmmkit.models import GaussianMixture, UnivariateGMM
from gmmkit.report import compare, print_comparison
from gmmkit.result import Fit


@pytest.fixture(scope="module")
def with_sampler():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-5, 1, 100), rng.normal(5, 1, 100)])
    model = UnivariateGMM(2, 10.0)
    cavi = gmmkit.fit(model, x, seed=0)
    order = np.argsort(cavi.means[:, 0])
    sd = np.sqrt(cavi.variational_params["s2"][order])
    mu = cavi.means[order, 0] + sd * rng.standard_normal((2, 300, 2))
    posterior = DrawsPosterior(model, {"mu": np.asarray(mu, dtype=float)})
    nuts = Fit(method="nuts", model=model, data=x, posterior=posterior,
               responsibilities=np.exp(posterior.log_responsibilities(x)),
               elbo=float("nan"), elbo_trace=np.empty(0), converged=True, n_iter=0,
               elapsed_s=1.0)
    return compare({"cavi": cavi, "nuts": nuts}, reference="nuts", n_draws=300,
                   psis_draws=300)


@pytest.fixture(scope="module")
def faithful_ml():
    X = gmmkit.datasets.old_faithful(standardize=True)
    em = gmmkit.fit(GaussianMixture(2), X, "em", seed=0)
    kmeans = gmmkit.fit(GaussianMixture(2), X, "kmeans", seed=0)
    return compare({"em": em, "k-means": kmeans})


def header_lines(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| fit")]


def test_markdown_says_method_once_and_only_when_it_differs_from_the_fit(with_sampler,
                                                                        faithful_ml):
    for line in header_lines(with_sampler.to_markdown()):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells.count("fit") == 1 and "method" not in cells  # names = methods
    for line in header_lines(faithful_ml.to_markdown()):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells.count("method") == 1  # "k-means" is method kmeans


def test_markdown_has_quality_and_agreement_tables_with_legends(with_sampler):
    report = with_sampler.to_markdown()
    assert "## Fit quality" in report and "## Agreement with the reference (nuts)" in report
    quality, agreement = header_lines(report)
    assert "ELBO" in quality and "k-hat" in quality and "ARI" not in quality
    assert "ARI" in agreement and "W2" in agreement and "ELBO" not in agreement
    assert report.count("Columns: ") == 2
    # the 24 columns of the table do not all reach the report
    assert max(line.count("|") for line in header_lines(report)) - 1 < 12


def test_values_to_a_hundredth_of_a_nat_and_n_a_where_they_do_not_apply(with_sampler):
    report = with_sampler.to_markdown()
    elbo = with_sampler.table.loc["cavi", "elbo"]
    row = next(line for line in report.splitlines() if line.startswith("| cavi |"))
    assert f"| {elbo:.2f} |" in row
    nuts = next(line for line in report.splitlines() if line.startswith("| nuts (ref) |"))
    assert "n/a" in nuts  # a sampler has no ELBO and no k-hat
    assert "|  |" not in report and "| nan |" not in report.lower()
    # the console table too
    buffer = io.StringIO()
    print_comparison(with_sampler, console=Console(file=buffer, width=200), reading=False)
    printed = buffer.getvalue()
    assert f"{elbo:.2f}" in printed and "n/a" in printed


def test_point_estimates_log_likelihood_is_not_an_elbo(faithful_ml):
    report = faithful_ml.to_markdown()
    (quality, _) = header_lines(report)
    assert "log-lik" in quality and "ELBO" not in quality
    loglik = faithful_ml.fits["em"].log_likelihood_trace[-1]
    assert f"{loglik:.2f}" in report


def test_reference_problems_are_the_first_thing_said(with_sampler):
    assert "**" not in with_sampler.to_markdown().split("## Fit quality")[0]
    report = compare(dict(with_sampler.fits), reference="nuts", n_draws=100, psis_draws=100)
    object.__setattr__(report, "reference_problems", ["r-hat 1.4 > 1.01"])
    object.__setattr__(report, "reference_converged", False)
    top = report.to_markdown().split("## Fit quality")[0]
    assert re.search(r"\*\*The reference nuts may not be trustworthy: r-hat 1.4 > 1.01.*\*\*",
                     top)
    buffer = io.StringIO()
    print_comparison(report, console=Console(file=buffer, width=200), reading=False)
    assert buffer.getvalue().startswith("The reference nuts may not be trustworthy")


def test_summary_csv_has_r_hat_and_ess_for_samplers(with_sampler, tmp_path):
    out = with_sampler.save(tmp_path / "cmp", log_likelihood=False)
    summary = pd.read_csv(out / "summary.csv", index_col=["fit", "parameter"])
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(summary.columns)
    assert summary.loc["nuts", "r_hat"].notna().all()
    assert summary.loc["cavi", "r_hat"].isna().all()  # draws from q: no r-hat
    assert list(summary.index.get_level_values("fit").unique()) == ["cavi", "nuts"]
