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


def test_chunked_pass_is_one_pass_on_any_number_of_threads():
    """chunked_pass over several chunks and a tail equals one pass over all the points to
    rounding (the chunks' statistics are added), puts r in its rows, gives the same bits
    on one thread or two, and zero statistics for no points."""
    from gmmkit.inference._blocks import (
        CHUNK_BLOCKS,
        MIN_WORK_FOR_THREADS,
        block_size,
        chunked_pass,
    )

    p, k = 20, 16
    assert p * k >= MIN_WORK_FOR_THREADS  # threads are used
    phi, coef, rng = _problem(2 * CHUNK_BLOCKS * block_size(k, p) + 123, p, k, seed=8,
                              spread=1.0)
    n = phi.shape[1]
    w = rng.uniform(size=n)

    def chunk(start, stop, w_chunk, r_chunk):
        return softmax_statistics(phi, coef, w_chunk, r_chunk, start, stop)

    out = np.full((n, k), np.nan)
    stats, lse_sum = chunked_pass(n, coef, w, out, 1, chunk)
    r_ref, stats_ref, lse_ref = _reference(phi, coef, w)
    np.testing.assert_allclose(stats, stats_ref, rtol=0, atol=1e-12 * np.abs(stats_ref).max())
    np.testing.assert_allclose(lse_sum, lse_ref, rtol=1e-12)
    np.testing.assert_allclose(out, r_ref, rtol=1e-12, atol=1e-300)
    out_threaded = np.full((n, k), np.nan)
    threaded = chunked_pass(n, coef, w, out_threaded, 2, chunk)
    np.testing.assert_array_equal(threaded[0], stats)
    assert threaded[1] == lse_sum
    np.testing.assert_array_equal(out_threaded, out)
    assert chunked_pass(0, coef, None, None, 1, chunk) == (pytest.approx(np.zeros((k, p))),
                                                           0.0)


# ----------------------------------------------------------------------------- formed features
def _maps(d):
    from gmmkit.inference import vb_diag
    from gmmkit.inference._blocks import QuadraticFeatures

    return {
        "diag": vb_diag.feature_map(d, False),
        "spherical": vb_diag.feature_map(d, True),
        "linear": QuadraticFeatures.from_groups(d, []),
        "mixed-groups": QuadraticFeatures.from_groups(
            d, [[(0, 1)], [(d - 1, 0), (1, 1), (0, 0)], [(d - 1, d - 1)]]),
    }


@pytest.mark.parametrize("kind", ["diag", "spherical", "linear", "mixed-groups"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_features_formed_in_the_pass_equal_numpys(kind, weighted):
    """data_softmax_statistics forms phi tile by tile from the data: the same pass as
    softmax_statistics over phi formed by NumPy (QuadraticFeatures.__call__), to rounding
    (the quadratic sums may be added in another order), over tiles and a tail, a sub-range
    of the points, and r to out."""
    from gmmkit.inference._blocks import data_softmax_statistics

    rng = np.random.default_rng(11)
    d, n, k = 5, 2 * KERNEL_TILE + 77, 6
    x = rng.normal(scale=2.0, size=(d, n + 40))
    features = _maps(d)[kind]
    coef = rng.normal(scale=3.0, size=(features.n_features, k))
    w = rng.uniform(0.0, 2.0, size=n) if weighted else None
    out = np.full((n, k), np.nan)
    stats, lse_sum = data_softmax_statistics(x, features, coef, w, out, first=25, last=25 + n)
    phi = features(x[:, 25 : 25 + n])
    r_ref, stats_ref, lse_ref = _reference(phi, coef, w)
    np.testing.assert_allclose(stats, stats_ref, rtol=0, atol=1e-12 * np.abs(stats_ref).max())
    np.testing.assert_allclose(lse_sum, lse_ref, rtol=1e-12)
    np.testing.assert_allclose(out, r_ref, rtol=1e-12, atol=1e-300)


def test_the_numpy_feature_maps_are_the_vb_features():
    """vb_diag.feature_map and vb.feature_map describe the features those modules form
    with NumPy."""
    from gmmkit.inference import vb, vb_diag

    x = np.random.default_rng(12).normal(size=(4, 50))
    for spherical in (False, True):
        np.testing.assert_allclose(vb_diag.feature_map(4, spherical)(x),
                                   vb_diag._features(x, spherical), rtol=1e-15)
    np.testing.assert_array_equal(vb.feature_map(4)(x),
                                  vb._features(x, np.triu_indices(4), np.empty((15, 50))))


def test_formed_features_of_a_view_or_float32_are_copied_to_the_same_pass():
    from gmmkit.inference._blocks import data_softmax_statistics

    rng = np.random.default_rng(13)
    x = rng.normal(size=(3, 1_500))
    features = _maps(3)["diag"]
    coef = rng.normal(size=(features.n_features, 4))
    expected = data_softmax_statistics(np.ascontiguousarray(x[:, 200:1_200]), features, coef)
    for view in (x[:, 200:1_200], np.asfortranarray(x)[:, 200:1_200]):
        got = data_softmax_statistics(view, features, coef)
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]
    got = data_softmax_statistics(x, features, coef, first=200, last=1_200)
    np.testing.assert_array_equal(got[0], expected[0])
    single = data_softmax_statistics(x.astype(np.float32), features, coef)
    exact = data_softmax_statistics(x.astype(np.float32).astype(np.float64), features, coef)
    np.testing.assert_array_equal(single[0], exact[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [(lambda qf, f: f(np.ones((4, 10)), qf.from_groups(3, [[(0, 0)]]), np.zeros((5, 2))),
      r"x: expected \(3, L\) points"),
     (lambda qf, f: f(np.ones((3, 10)), qf.from_groups(3, [[(0, 0)]]), np.zeros((6, 2))),
      r"coef: expected 5 rows"),
     (lambda qf, f: qf.from_groups(3, [[(0, 3)]]), r"groups: coordinates must lie in 0\.\.2"),
     (lambda qf, f: qf.from_groups(3, [[(0, 0)], []]), "groups: every quadratic feature")],
    ids=["x-rows", "coef-rows", "pair-out-of-range", "empty-group"])
def test_formed_features_bad_input_names_the_argument(call, message):
    from gmmkit.inference._blocks import QuadraticFeatures, data_softmax_statistics

    with pytest.raises(ValueError, match=message):
        call(QuadraticFeatures, data_softmax_statistics)


@pytest.mark.parametrize("covariance", ["full", "spherical"])
def test_a_fit_whose_features_are_too_big_to_keep_is_the_same_fit(covariance, monkeypatch):
    """Features formed in the pass (KEEP_FEATURES_BYTES exceeded) give the fit of kept
    features: the same iterations, bound and parameters to rounding."""
    import warnings

    import gmmkit
    from gmmkit.inference import vb, vb_diag
    from gmmkit.models.bayesian import BayesianGMM

    rng = np.random.default_rng(14)
    X = np.concatenate([rng.normal(size=(1_500, 3)), rng.normal(size=(1_500, 3)) + 5.0])
    model = BayesianGMM(4, covariance=covariance)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
            return gmmkit.fit(model, X, "cavi", seed=3, max_iter=40)

    module = vb if covariance == "full" else vb_diag
    kept = fit()
    assert module._problem(model.resolve(X), X).phi is not None
    monkeypatch.setattr(module, "KEEP_FEATURES_BYTES", 0)
    assert module._problem(model.resolve(X), X).phi is None  # the other path is taken
    formed = fit()
    assert formed.n_iter == kept.n_iter
    np.testing.assert_allclose(formed.elbo_trace, kept.elbo_trace, rtol=1e-12)
    assert formed.variational_params.keys() == kept.variational_params.keys()
    for name, value in kept.variational_params.items():
        np.testing.assert_allclose(formed.variational_params[name], value, rtol=1e-10,
                                   err_msg=name)


# ------------------------------------------------------------------- diag without features
def _diag_problem(d, n, k, seed, spread=2.0):
    """Centred-looking data (D, n + 40) and diag coefficients (1 + 2D, K) of a proper
    mixture: c, a = lambda mu and b = -lambda / 2 < 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=spread, size=(d, n + 40))
    precision = rng.uniform(0.3, 3.0, size=(d, k))
    means = rng.normal(scale=spread, size=(d, k))
    constant = rng.normal(size=(1, k)) - 0.5 * (precision * means**2).sum(axis=0)
    coef = np.vstack([constant, precision * means, -0.5 * precision])
    return x, coef, rng


# Shapes that leave every remainder: points past whole tiles, 64-point blocks and 8-point
# groups; K odd and below a multiple of 4 (padded rows); D not a multiple of 3.
@pytest.mark.parametrize(("d", "n", "k"), [(5, 2 * KERNEL_TILE + 77, 6), (32, 700, 16),
                                           (1, 101, 3), (4, 7, 5), (7, 3 * KERNEL_TILE, 9)],
                         ids=["tail", "bench-shape", "one-dim", "under-a-group", "odd-k"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_diag_pass_from_the_data_equals_numpy_on_its_features(d, n, k, weighted):
    """diag_softmax_statistics never forms [1, x, x^2] (Horner's ln rho, x^2 squared in
    registers for the statistics): the same pass as NumPy and scipy on the formed
    features, to rounding, over a sub-range of the points, with r to out."""
    from gmmkit.inference._blocks import diag_softmax_statistics
    from gmmkit.inference.vb_diag import feature_map

    x, coef, rng = _diag_problem(d, n, k, seed=20 + d)
    w = rng.uniform(0.0, 2.0, size=n) if weighted else None
    out = np.full((n, k), np.nan)
    stats, lse_sum = diag_softmax_statistics(x, coef, w, out, first=25, last=25 + n)
    r_ref, stats_ref, lse_ref = _reference(feature_map(d, False)(x[:, 25 : 25 + n]), coef, w)
    # Rounding: ln rho is summed in another order (Horner) than phi . C, so r moves by a
    # few ulps of the log densities (|ln rho| up to ~1e3 here).
    np.testing.assert_allclose(stats, stats_ref, rtol=0, atol=1e-12 * np.abs(stats_ref).max())
    np.testing.assert_allclose(lse_sum, lse_ref, rtol=1e-12)
    np.testing.assert_allclose(out, r_ref, rtol=1e-11, atol=1e-300)


def test_diag_pass_of_any_layout_or_dtype_is_the_same_pass():
    from gmmkit.inference._blocks import diag_softmax_statistics

    x, coef, _ = _diag_problem(3, 1_500, 4, seed=30)
    expected = diag_softmax_statistics(np.ascontiguousarray(x[:, 200:1_200]), coef)
    for view in (x[:, 200:1_200], np.asfortranarray(x)[:, 200:1_200]):
        got = diag_softmax_statistics(view, coef)
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]
    got = diag_softmax_statistics(x, coef, first=200, last=1_200)
    np.testing.assert_array_equal(got[0], expected[0])
    single = diag_softmax_statistics(x.astype(np.float32), coef)
    exact = diag_softmax_statistics(x.astype(np.float32).astype(np.float64), coef)
    np.testing.assert_array_equal(single[0], exact[0])
    stats, lse_sum = diag_softmax_statistics(x, coef, first=9, last=9)
    np.testing.assert_array_equal(stats, np.zeros((4, 7)))
    assert lse_sum == 0.0


@pytest.mark.parametrize(
    ("x", "coef", "message"),
    [(np.ones((3, 10)), np.zeros((6, 2)), r"coef: expected 1 \+ 2D rows"),
     (np.ones((4, 10)), np.zeros((7, 2)), r"x: expected \(3, L\) points"),
     (np.ones(10), np.zeros((3, 2)), r"x: expected \(1, L\) points")],
    ids=["coef-even", "x-rows", "x-one-dimensional"])
def test_diag_pass_bad_input_names_the_argument(x, coef, message):
    from gmmkit.inference._blocks import diag_softmax_statistics

    with pytest.raises(ValueError, match=message):
        diag_softmax_statistics(x, coef)


def test_a_diag_fit_is_the_fit_of_its_formed_features(monkeypatch):
    """diag's pass from the data gives the fit of the generic pass over kept [1, x, x^2]
    (the previous path): the same iterations, bound to rounding and every variational
    parameter to 1e-10 (sums over 3000 points carried through up to 40 iterations)."""
    import warnings

    import gmmkit
    from gmmkit.inference import vb_diag
    from gmmkit.inference._blocks import in_memory_pass
    from gmmkit.models.bayesian import BayesianGMM

    rng = np.random.default_rng(15)
    X = np.concatenate([rng.normal(size=(1_500, 5)), rng.normal(size=(1_500, 5)) + 5.0])
    model = BayesianGMM(4, covariance="diag")

    def fit(**options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
            return gmmkit.fit(model, X, "cavi", seed=3, max_iter=40, **options)

    assert vb_diag._problem(model.resolve(X), X).phi is None  # nothing but the data kept
    direct = fit(n_threads=1)

    def formed_pass(prob, coef, out=None):
        phi = vb_diag._features(prob.X_t, False)
        return in_memory_pass(coef, prob.w, out, prob.n_threads, phi, prob.X_t,
                              vb_diag.feature_map(prob.X_t.shape[0], False))

    monkeypatch.setattr(vb_diag, "_pass", formed_pass)
    formed = fit(n_threads=1)
    assert formed.n_iter == direct.n_iter
    np.testing.assert_allclose(direct.elbo_trace, formed.elbo_trace, rtol=1e-12)
    for name, value in formed.variational_params.items():
        np.testing.assert_allclose(direct.variational_params[name], value, rtol=1e-10,
                                   err_msg=name)


def test_diag_chunked_pass_gives_the_same_bits_on_one_or_two_threads():
    """vb_diag's pass over chunks (K p = 16 x 17 >= MIN_WORK_FOR_THREADS: threads are
    used) equals one pass over all the points to rounding, and gives the same bits and r
    on one thread or two."""
    from gmmkit.inference import vb_diag
    from gmmkit.inference._blocks import (
        CHUNK_BLOCKS,
        MIN_WORK_FOR_THREADS,
        block_size,
        diag_softmax_statistics,
    )

    d, k = 8, 16
    assert k * (1 + 2 * d) >= MIN_WORK_FOR_THREADS
    n = 2 * CHUNK_BLOCKS * block_size(k, 1 + 2 * d) + 123
    x, coef, rng = _diag_problem(d, n, k, seed=40)
    x = np.ascontiguousarray(x[:, :n])
    w = rng.uniform(size=n)
    results = []
    for n_threads in (1, 2):
        prob = vb_diag._Problem(X_t=x, phi=None, centre=np.zeros(d), weights=None,
                                beta0=1.0, m0=np.zeros(d), W0=np.ones(d), nu0=float(d),
                                spherical=False, w=w, n_threads=n_threads)
        out = np.full((n, k), np.nan)
        results.append((*vb_diag._pass(prob, coef, out), out))
    (stats, lse_sum, out), (stats_2, lse_sum_2, out_2) = results
    np.testing.assert_array_equal(stats_2, stats)
    assert lse_sum_2 == lse_sum
    np.testing.assert_array_equal(out_2, out)
    whole = diag_softmax_statistics(x, coef, w)
    np.testing.assert_allclose(stats, whole[0], rtol=0, atol=1e-12 * np.abs(whole[0]).max())
    np.testing.assert_allclose(lse_sum, whole[1], rtol=1e-12)
