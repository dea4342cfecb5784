"""The compiled VB pass (gmmkit.inference._kernels via _blocks.softmax_statistics) against
NumPy and scipy: its exp to the ulp, its responsibilities, statistics and logsumexp sum
to rounding, on every kind of input view it is handed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from gmmkit.inference import _blocks
from gmmkit.inference._blocks import EXP_FLOOR, KERNEL_TILE, softmax_statistics
from gmmkit.inference._kernels import exp_floored_row, exp_shifted_row


def _kernel_exp(x: np.ndarray, floor: float = EXP_FLOOR) -> np.ndarray:
    return exp_floored_row(np.asarray(x, dtype=float), floor)


# ----------------------------------------------------------------------------- exp
def test_kernel_exp_is_within_one_ulp_of_numpys_down_to_zero():
    x = np.concatenate([np.linspace(-750.0, 0.0, 2_000_001), -np.logspace(-300, 2.8, 10_001),
                        [0.0, -0.0, -1e-300, -708.3964185322641, -745.1332191019411]])
    got = _kernel_exp(x, floor=-np.inf)
    expected = np.exp(x)
    # One ulp of the exact result (subnormal results included: their ulp is 2^-1074).
    assert np.all(np.abs(got - expected) <= np.spacing(expected)), np.max(
        np.abs(got - expected) / np.spacing(expected))
    assert got[-5] == 1.0 and got[-4] == 1.0


def test_the_shifted_exp_adds_into_the_total():
    rng = np.random.default_rng(0)
    x, shift = rng.normal(scale=30.0, size=(2, 1_000))
    shift = np.maximum(shift, x)
    total = rng.uniform(size=1_000)
    expected_total = total + np.exp(np.maximum(x - shift, EXP_FLOOR))
    y = x.copy()
    exp_shifted_row(y, shift, EXP_FLOOR, np.empty(1_000), total)
    np.testing.assert_allclose(y, np.exp(np.maximum(x - shift, EXP_FLOOR)), rtol=3e-16)
    np.testing.assert_allclose(total, expected_total, rtol=3e-16)


def test_kernel_exp_floor_minus_inf_nan():
    got = _kernel_exp(np.array([-1e6, -800.0, -np.inf, np.nan, -3.0]))
    np.testing.assert_array_equal(got[:3], np.full(3, np.exp(EXP_FLOOR)))
    assert np.isnan(got[3])
    exact = _kernel_exp(np.array([-1e6, -800.0, -np.inf, np.nan]), floor=-np.inf)
    np.testing.assert_array_equal(exact[:3], 0.0)
    assert np.isnan(exact[3])


# ----------------------------------------------------------------------------- the pass
def _reference(phi, coef, w=None):
    """r, stats (K, p) and the logsumexp sum, by NumPy and scipy on the whole array."""
    log_rho = phi.T @ coef
    lse = logsumexp(log_rho, axis=1)
    r = np.exp(log_rho - lse[:, None])
    weights = np.ones(phi.shape[1]) if w is None else w
    return r, (weights[:, None] * r).T @ phi.T, float(weights @ lse)


def _problem(n, p, k, seed=0, spread=30.0):
    rng = np.random.default_rng(seed)
    phi = np.vstack([np.ones(n), rng.normal(size=(p - 1, n))])
    coef = rng.normal(scale=spread, size=(p, k))  # clusters far apart: r near 0 and 1
    return phi, coef, rng


@pytest.mark.parametrize(("n", "p", "k"), [(3 * KERNEL_TILE + 17, 9, 5), (700, 65, 16),
                                            (1, 3, 1), (KERNEL_TILE, 4, 2), (33, 2, 40)],
                         ids=["tiles-and-tail", "diag-shape", "one-point-K1", "one-tile",
                              "K-over-p"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_the_pass_equals_numpy_and_scipy(n, p, k, weighted):
    phi, coef, rng = _problem(n, p, k)
    w = rng.uniform(0.0, 3.0, size=n) if weighted else None
    r_ref, stats_ref, lse_ref = _reference(phi, coef, w)
    out = np.full((n, k), np.nan)
    stats, lse_sum = softmax_statistics(phi, coef, w, out)
    # Exact algebra: rounding of sums over n points (relative to the largest entry).
    scale = np.abs(stats_ref).max()
    np.testing.assert_allclose(stats, stats_ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(lse_sum, lse_ref, rtol=1e-12)
    np.testing.assert_allclose(out, r_ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-14)


def test_a_strided_view_is_read_in_place_with_first_and_last():
    """A view of some columns of kept features (row stride L, wider than the view) and a
    sub-range of it: the same numbers as a contiguous copy of those columns, and the
    features untouched."""
    phi, coef, rng = _problem(5_000, 7, 4, seed=1)
    wide = phi.copy()
    before = wide.copy()
    view = wide[:, 100:4_000]
    w = rng.uniform(size=2_000)
    out = np.empty((2_000, 4))
    stats, lse_sum = softmax_statistics(view, coef, w, out, first=300, last=2_300)
    expected = softmax_statistics(np.ascontiguousarray(phi[:, 400:2_400]), coef, w)
    np.testing.assert_array_equal(stats, expected[0])
    assert lse_sum == expected[1]
    np.testing.assert_allclose(out, _reference(phi[:, 400:2_400], coef)[0], rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_array_equal(wide, before)


def test_read_only_inputs_are_accepted():
    phi, coef, rng = _problem(1_000, 5, 3, seed=2)
    w = rng.uniform(size=1_000)
    expected = softmax_statistics(phi, coef, w)
    for a in (phi, coef, w):
        a.setflags(write=False)
    got = softmax_statistics(phi, coef, w)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]


def test_the_floor_is_the_only_approximation(monkeypatch):
    """With EXP_FLOOR = -inf the pass takes the exact exp of every argument: statistics
    and bound agree with the floored pass to rounding, r to exp(-700)."""
    phi, coef, _ = _problem(3_000, 6, 8, seed=3, spread=200.0)
    r_floored = np.empty((3_000, 8))
    floored = softmax_statistics(phi, coef, out=r_floored)
    monkeypatch.setattr(_blocks, "EXP_FLOOR", -np.inf)
    r_exact = np.empty((3_000, 8))
    exact = softmax_statistics(phi, coef, out=r_exact)
    assert np.mean(r_exact < np.exp(-700.0)) > 0.3  # the floor does act on these data
    assert np.any(r_exact == 0.0) and not np.any(r_floored == 0.0)
    np.testing.assert_allclose(floored[0], exact[0], rtol=1e-14, atol=1e-290)
    np.testing.assert_allclose(floored[1], exact[1], rtol=1e-15)
    np.testing.assert_allclose(r_floored, r_exact, rtol=0, atol=np.exp(-700.0))


def test_nan_coefficients_give_a_nan_bound_not_a_number():
    phi, coef, _ = _problem(100, 4, 3, seed=4)
    coef[2, 1] = np.nan
    stats, lse_sum = softmax_statistics(phi, coef)
    assert np.isnan(lse_sum)
    assert np.all(np.isnan(stats))


def test_no_points_give_zero_statistics():
    phi, coef, _ = _problem(10, 4, 3)
    stats, lse_sum = softmax_statistics(phi, coef, first=5, last=5)
    np.testing.assert_array_equal(stats, np.zeros((3, 4)))
    assert lse_sum == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"phi": np.ones((3, 10))}, r"phi: expected \(4, L\) features"),
     ({"phi": np.ones(40)}, r"phi: expected \(4, L\) features"),
     ({"last": 11}, "first <= last <= L"),
     ({"out": np.empty((9, 3))}, r"out: expected a C-contiguous \(10, 3\)"),
     ({"out": np.empty((3, 10)).T}, "C-contiguous")],
    ids=["wrong-p", "one-dimensional", "last-past-end", "out-shape", "out-order"])
def test_bad_input_names_the_argument(kwargs, message):
    arguments = {"phi": np.ones((4, 10)), "coef": np.zeros((4, 3))} | kwargs
    with pytest.raises(ValueError, match=message):
        softmax_statistics(**arguments)


def test_features_of_any_layout_or_dtype_give_the_same_pass():
    """Points not contiguous (Fortran order, as ``phi[:, perm]`` returns) or float32 are
    copied, only the columns passed over, and give the numbers of the C-ordered float64
    features."""
    phi, coef, rng = _problem(2_500, 6, 4, seed=7)
    w = rng.uniform(size=2_000)
    expected = softmax_statistics(phi, coef, w, first=300, last=2_300)
    got = softmax_statistics(np.asfortranarray(phi), coef, w, first=300, last=2_300)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    single = softmax_statistics(phi.astype(np.float32), coef, w, first=300, last=2_300)
    exact = softmax_statistics(phi.astype(np.float32).astype(np.float64), coef, w,
                               first=300, last=2_300)
    np.testing.assert_array_equal(single[0], exact[0])


def test_blocked_e_step_is_the_sum_of_its_blocks():
    """blocked_e_step over several blocks and a tail equals one pass over all the points
    to rounding (the statistics of blocks are added), and r lands in its rows."""
    from gmmkit.inference._blocks import block_size, blocked_e_step

    phi, coef, rng = _problem(2 * block_size(3, 5) + 123, 5, 3, seed=8)
    n = phi.shape[1]
    w = rng.uniform(size=n)
    out = np.full((n, 3), np.nan)
    stats, lse_sum = blocked_e_step(n, lambda start, stop: phi[:, start:stop], coef, w, out)
    r_ref, stats_ref, lse_ref = _reference(phi, coef, w)
    np.testing.assert_allclose(stats, stats_ref, rtol=0, atol=1e-12 * np.abs(stats_ref).max())
    np.testing.assert_allclose(lse_sum, lse_ref, rtol=1e-12)
    np.testing.assert_allclose(out, r_ref, rtol=1e-12, atol=1e-300)
    assert blocked_e_step(0, lambda start, stop: phi[:, start:stop], coef, None) == (
        pytest.approx(np.zeros((3, 5))), 0.0)
