"""Compiled kernels (numba) of the VB pass: log densities by BLAS, responsibilities, and
their statistics by BLAS, block by block, without the GIL.  The Python face of them is
:func:`gmmkit.inference._blocks.softmax_statistics`, which imports this module on first
use (importing numba costs half a second that ``import gmmkit`` does not pay).

Why compiled.  The pass of a VB iteration (every Bayesian family) is two GEMMs with a
softmax between them.  As NumPy calls it made about fifteen calls per block of points:
threads sharing a pass waited for the GIL between them (1.4x on two cores), and the
softmax alone made five passes over the (K, B) block.  Here each block is one GEMM
(ln rho = C^T phi), one fused loop (column max, floored exp, column sums, normalisation)
and one GEMM adding phi r^T into the statistics, in a function compiled with
``nogil=True``: threads run chunks truly in parallel, and on one thread the diag pass of
``benchmarks/bench_vb.py`` (N = 1e5, D = 32, K = 16) is about 1.5x faster than NumPy's.

BLAS.  The GEMMs call scipy's BLAS (``scipy.linalg.cython_blas.dgemm``, the library
``scipy.linalg`` uses; threadpoolctl limits its threads as it does NumPy's) through its
function pointer.  The pointer is an argument, not a global, so the compiled code holds
no process-specific address and numba caches it on disk (``cache=True``: the first call in
a fresh checkout compiles for about 8 s, later processes load the cache in 0.7 s).  A strided
(p, n) view of kept features is read in place: the BLAS leading dimension is its row
stride, so nothing is copied.

The exp.  NumPy's exp cannot be called from compiled code, and numba's compiles to a
scalar libm call per element.  :func:`exp_shifted_row` is a vectorisable exp for
arguments x <= 0 (the shifted log densities), floored at ``floor``: exp(x) = 2^j exp(t) with
j = round(x / ln 2) and t = x - j ln 2 in two parts (Cody-Waite), |t| <= ln(2) / 2, and
exp(t) by its Taylor polynomial of degree 13 (the remainder t^14 / 14! < 4e-18 is below
half an ulp); 2^j is applied as 2^(j + 512) 2^-512 so that subnormal results and exp(-inf)
= 0 come out right too (a floor of -inf gives the exact exp everywhere, which the tests
use).  Against NumPy's exp over [-750, 0] it is at most 1 ulp of the result apart
(``tests/inference/test_kernels.py``).  NaN stays NaN, so a failed fit is still detected
by its bound.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["dgemm_address", "exp_floored_row", "exp_shifted_row", "softmax_statistics_kernel"]

# exp's constants: ln 2 split so that j * LN2_HI is exact for |j| < 2^11 (fdlibm's split),
# and 1.5 * 2^52, adding which rounds x / ln 2 to an integer held in the low mantissa bits.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_ROUND_SHIFT = 6755399441055744.0
_ROUND_SHIFT_BITS = 0x4338000000000000  # the bits of 1.5 * 2^52
_EXPONENT_BIAS = 1023
# 2^j is built as 2^(j + 512) and then scaled by 2^-512: below -746 (where exp rounds to 0)
# the argument is clamped, so j >= -1077 and 2^(j + 512) is a normal double.
_SCALE_SHIFT = 512
_SCALE_BACK = 2.0**-512
_ZERO_BELOW = -746.0
_MANTISSA_BITS = 52
_CHAR_N, _CHAR_T = 78, 84  # BLAS's 'N' and 'T'


def dgemm_address() -> int:
    """The address of scipy's Fortran ``dgemm``, from its Cython capsule."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__["dgemm"]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get_pointer(capsule, get_name(capsule)))


@intrinsic
def _call_fortran13(typingctx, address, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12,
                    a13):
    """Call the Fortran routine at ``address`` with 13 arguments, all by reference (the
    arguments are addresses, as integers)."""
    arg_types = (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13)

    def codegen(context, builder, signature, llargs):
        byte_ptr = ir.IntType(8).as_pointer()
        fn_type = ir.FunctionType(ir.VoidType(), [byte_ptr] * 13)
        fn = builder.inttoptr(llargs[0], fn_type.as_pointer())
        builder.call(fn, [builder.inttoptr(a, byte_ptr) for a in llargs[1:]])
        return context.get_dummy_value()

    return types.void(address, *arg_types), codegen


# contract: a * b + c may become one FMA (more accurate, and what lets the polynomial
# vectorise well); no reassociation, so every sum keeps its order and the bits are the same
# on every run.
_jit = numba.njit(nogil=True, cache=True, fastmath={"contract"})


@_jit
def _dgemm(address, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, scratch_i,
           scratch_f):
    """Column-major C (m, n) <- op(A) op(B) + beta C, with A, B, C given by address.
    Fortran takes every argument by reference: the scalars go through the scratch arrays
    (int32 (8,), float64 (2,))."""
    scratch_i[0] = trans_a
    scratch_i[1] = trans_b
    scratch_i[2] = m
    scratch_i[3] = n
    scratch_i[4] = k
    scratch_i[5] = lda
    scratch_i[6] = ldb
    scratch_i[7] = ldc
    scratch_f[0] = 1.0
    scratch_f[1] = beta
    ip = scratch_i.ctypes.data
    fp = scratch_f.ctypes.data
    _call_fortran13(address, ip, ip + 4, ip + 8, ip + 12, ip + 16, fp, a, ip + 20, b,
                    ip + 24, fp + 8, c, ip + 28)


@numba.njit("void(float64[::1], float64[::1], float64, float64[::1], float64[::1])",
           nogil=True, cache=True, fastmath={"contract"})
def exp_shifted_row(x, shift, floor, buffer, total):
    """x <- exp(max(x - shift, floor)) and total += x, elementwise and in place, for
    1-d x <= shift and any floor (module docstring); ``buffer`` (len(x),) is scratch.
    One pass of the softmax: the shift by the column max, the exp and the column sum."""
    n = x.shape[0]
    for j in range(n):
        v = x[j] - shift[j]
        if v < floor:  # not max(): a NaN compares false and stays NaN
            v = floor
        if v < _ZERO_BELOW:  # exp(v) rounds to 0 (-inf included)
            v = _ZERO_BELOW
        shifted = v * _INV_LN2 + _ROUND_SHIFT
        whole = shifted - _ROUND_SHIFT  # round(v / ln 2)
        t = (v - whole * _LN2_HI) - whole * _LN2_LO
        q = 1.0 / 6227020800.0  # 1/13!, then Horner down to 1/0!
        q = q * t + 1.0 / 479001600.0
        q = q * t + 1.0 / 39916800.0
        q = q * t + 1.0 / 3628800.0
        q = q * t + 1.0 / 362880.0
        q = q * t + 1.0 / 40320.0
        q = q * t + 1.0 / 5040.0
        q = q * t + 1.0 / 720.0
        q = q * t + 1.0 / 120.0
        q = q * t + 1.0 / 24.0
        q = q * t + 1.0 / 6.0
        q = q * t + 0.5
        q = q * t + 1.0
        q = q * t + 1.0
        x[j] = q
        buffer[j] = shifted
    # 2^j from j's bits: the low mantissa bits of `shifted` hold j in two's complement.
    bits = buffer[:n].view(np.int64)
    for j in range(n):
        bits[j] = ((bits[j] - _ROUND_SHIFT_BITS + _EXPONENT_BIAS + _SCALE_SHIFT)
                   << _MANTISSA_BITS)
    for j in range(n):
        e = (x[j] * buffer[j]) * _SCALE_BACK
        x[j] = e
        total[j] += e


def exp_floored_row(x: np.ndarray, floor: float) -> np.ndarray:
    """exp(max(x, floor)) of a 1-d array by the kernel's exp, as a new array (for tests
    and measurements)."""
    y = np.array(x, dtype=np.float64).ravel()
    exp_shifted_row(y, np.zeros_like(y), floor, np.empty_like(y), np.zeros_like(y))
    return y


def _array(ndim: int, layout: str, readonly: bool = False) -> types.Array:
    return types.Array(types.float64, ndim, layout, readonly=readonly)


# One signature, compiled once (and cached): views of any layout are accepted as "A", and
# the inputs may be read-only (writeable arrays convert).
@numba.njit(types.void(types.int64, _array(2, "A", True), types.int64, types.int64,
                       _array(2, "C", True), _array(1, "C", True), _array(2, "A"),
                       _array(2, "C"), _array(1, "C"), _array(1, "C"), types.int64,
                       types.float64),
            nogil=True, cache=True, fastmath={"contract"})
def softmax_statistics_kernel(address, phi, first, last, coef_t, w, out, stats_t, col_max,
                              col_sum, tile, floor):
    """The pass over the points (columns) first..last of ``phi`` (p, L), unit column
    stride, any row stride; ``address`` is :func:`dgemm_address`.

    stats_t (K, p) += sum_n w_n r_nk phi_n (w: (n,), or empty for none); col_max, col_sum
    (n,) <- max_k ln rho_nk and sum_k rho_nk / max_k rho_nk; out (n, K) <- r unless empty.
    """
    p = phi.shape[0]
    k = coef_t.shape[0]
    ld = phi.strides[0] // 8
    logits = np.empty((k, tile))
    buffer = np.empty(tile)
    scratch_i = np.empty(8, np.int32)
    scratch_f = np.empty(2)
    for start in range(first, last, tile):
        b = min(tile, last - start)
        rel = start - first
        phi_block = phi.ctypes.data + 8 * start
        # Row-major logits (K, b) with row stride `tile` are column-major (b, K), ld tile:
        # logits = phi_block^T (b, p) @ coef_t^T (p, K), phi_block column-major (b, p).
        _dgemm(address, _CHAR_N, _CHAR_N, b, k, p, phi_block, ld, coef_t.ctypes.data, p,
               0.0, logits.ctypes.data, tile, scratch_i, scratch_f)
        mx = col_max[rel : rel + b]
        tot = col_sum[rel : rel + b]
        mx[:] = logits[0, :b]
        for kk in range(1, k):
            row = logits[kk]
            for j in range(b):
                if row[j] > mx[j]:
                    mx[j] = row[j]
        tot[:] = 0.0
        for kk in range(k):  # rho / max_k rho (log space: the largest is exp(0) = 1)
            exp_shifted_row(logits[kk, :b], mx, floor, buffer, tot)
        for j in range(b):
            buffer[j] = 1.0 / tot[j]  # one division per point, then products
        if out.shape[0] > 0:  # r itself to out, w r to the statistics
            for kk in range(k):
                row = logits[kk, :b]
                for j in range(b):
                    row[j] *= buffer[j]
            for j in range(b):
                for kk in range(k):
                    out[rel + j, kk] = logits[kk, j]
            if w.shape[0] > 0:
                for kk in range(k):
                    row = logits[kk, :b]
                    for j in range(b):
                        row[j] *= w[rel + j]
        else:
            if w.shape[0] > 0:  # the weight folded into the normaliser: w_n / sum_k rho
                for j in range(b):
                    buffer[j] *= w[rel + j]
            for kk in range(k):
                row = logits[kk, :b]
                for j in range(b):
                    row[j] *= buffer[j]
        # Row-major stats_t (K, p) is column-major (p, K), ld p: += phi_block (p, b) r^T,
        # where r is column-major (b, K), ld tile.
        _dgemm(address, _CHAR_T, _CHAR_N, p, k, b, phi_block, ld, logits.ctypes.data, tile,
               1.0, stats_t.ctypes.data, p, scratch_i, scratch_f)
