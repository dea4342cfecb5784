"""``gmmkit sweep``: fit methods on simulated data over a grid of N, K and separation."""

from __future__ import annotations

from pathlib import Path

import click

from gmmkit.cli.common import (
    check_methods_apply,
    check_options_apply,
    fit_options,
    handle_errors,
    parse_methods,
    split_list,
)
from gmmkit.inference.methods import CAVI, methods_for

SWEEP_EPILOG = """\b
Examples:
  gmmkit sweep --methods cavi,advi --n 100,1000 -k 3 --separation 2,4,8 --out sweep
  gmmkit sweep --methods cavi,nuts --n 200 -k 2,3 --seeds 0,1,2 --draws 500 --tune 500 \\
      --out sweep-nuts
  gmmkit sweep --methods cavi --separation prior --seeds 0,1,2,3 --out sweep-prior

\b
Simulates univariate data sets (Blei et al.'s model, known --obs-sd) on the grid
--n x -k x --separation x --seeds and fits every method to each. A separation is the
distance between neighbouring true means in units of --obs-sd; "prior" draws the means
from the model's prior instead.

\b
Writes to --out: sweep.csv (one row per data set and method: mean error, ELBO, log
evidence and gap, PSIS k-hat, ARI, wall time, iterations) and sweep.png (error and
wall time against N, ARI against separation, ELBO gap against N).
"""


def _parse_numbers(value: str, option: str, kind: type, allow_prior: bool = False) -> list:
    items = split_list(value)
    if not items:
        raise ValueError(f"{option} must hold at least one value, got {value!r}")
    out = []
    for item in items:
        if allow_prior and item.lower() in ("prior", "none"):
            out.append(None)
            continue
        try:
            number = kind(item)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            extra = ' or "prior"' if allow_prior else ""
            raise ValueError(f"{option}: {item!r} is not {expected}{extra}") from None
        out.append(number)
    return out


@click.command(epilog=SWEEP_EPILOG)
@click.option("--methods", type=str, default=CAVI.name, show_default=True,
              help="Comma-separated methods to fit (those of --model univariate).")
@click.option("--n", "n_values", type=str, default="100,1000", show_default=True,
              help="Comma-separated sample sizes N.")
@click.option("-k", "--components", "k_values", type=str, default="3", show_default=True,
              help="Comma-separated numbers of clusters K (true and fitted).")
@click.option("--separation", type=str, default="4", show_default=True,
              help='Comma-separated separations of neighbouring true means (obs sd units); '
                   '"prior" draws the means from the prior.')
@click.option("--seeds", type=str, default="0", show_default=True,
              help="Comma-separated data (and fit) seeds.")
@click.option("--model", "model_name", type=click.Choice(["univariate"]),
              default="univariate", show_default=True,
              help="Data-generating and fitted model.")
@click.option("--obs-sd", type=float, default=1.0, show_default=True,
              help="Known observation sd.")
@click.option("--prior-sd", type=float, default=None,
              help="Prior sd of the means [default: max(10, 2 x the largest |true mean|)].")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restarts per fit.")
@click.option("--evidence/--no-evidence", default=True, show_default=True,
              help="Fill log evidence, ELBO gap and k-hat (exact where small, SMC, else "
                   "importance sampling).")
@click.option("--psis-draws", type=click.IntRange(min=10), default=500, show_default=True,
              help="Draws from q for k-hat and the importance-sampling evidence.")
@click.option("--draws", type=click.IntRange(min=1), default=None,
              help="Draws per chain (nuts, smc) or from q (advi).")
@click.option("--tune", type=click.IntRange(min=1), default=None, help="Tuning steps (nuts).")
@click.option("--chains", type=click.IntRange(min=1), default=None, help="Chains (nuts, smc).")
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-sweep].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No table.")
@handle_errors
def sweep(
    methods: str, n_values: str, k_values: str, separation: str, seeds: str,
    model_name: str, obs_sd: float, prior_sd: float | None, n_init: int, evidence: bool,
    psis_draws: int, draws: int | None, tune: int | None, chains: int | None,
    out: str | None, force: bool, quiet: bool,
) -> None:
    """Fit methods on simulated data over a grid of N, K and separation."""
    from gmmkit.experiments.sweep import sweep as run_sweep
    from gmmkit.models.factory import MODEL_KINDS
    from gmmkit.output import atomic_directory, check_output_directory
    from gmmkit.report import plot_sweep, print_sweep

    out_dir = Path(out or "gmmkit-sweep")
    check_output_directory(out_dir, force)
    method_list = parse_methods(methods)
    check_methods_apply(method_list, methods_for(MODEL_KINDS[model_name]), model_name)
    values = {"n_init": n_init, "draws": draws, "tune": tune, "chains": chains}
    check_options_apply(method_list, values)
    per_method = {
        method: options for method in method_list
        if (options := fit_options(method, {k: v for k, v in values.items() if k != "n_init"}))
    }
    table = run_sweep(
        method_list,
        n=_parse_numbers(n_values, "--n", int),
        k=_parse_numbers(k_values, "-k", int),
        separation=_parse_numbers(separation, "--separation", float, allow_prior=True),
        seeds=_parse_numbers(seeds, "--seeds", int),
        model=model_name, obs_sd=obs_sd, prior_sd=prior_sd, n_init=n_init,
        evidence=evidence, psis_draws=psis_draws, fit_options=per_method,
    )
    with atomic_directory(out_dir, force, kind="sweep") as tmp:
        table.to_csv(tmp / "sweep.csv", index=False)
        plot_sweep(table).savefig(tmp / "sweep.png", dpi=110)
    if not quiet:
        print_sweep(table)
    click.echo(f"wrote {out_dir}")


