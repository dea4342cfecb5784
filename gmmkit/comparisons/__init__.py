"""Comparing fits: alignment, ELBO/evidence tables, agreement metrics, plots, sweeps."""
