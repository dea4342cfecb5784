"""Compiled kernels (numba) of the VB pass: log densities, responsibilities and their
statistics, tile by tile, without the GIL.  The Python faces of them are
:func:`gmmkit.inference._blocks.softmax_statistics` (kept features) and
:func:`~gmmkit.inference._blocks.data_softmax_statistics` (features formed from the data
in the pass), which import this module on first use (importing numba costs half a second
that ``import gmmkit`` does not pay).

Why compiled.  The pass of a VB iteration (every Bayesian family) is two GEMMs with a
softmax between them.  As NumPy calls it made about fifteen calls per block of points:
threads sharing a pass waited for the GIL between them (1.4x on two cores), and the
softmax alone made five passes over the (K, B) block.  Here each tile of 256 points is
one product ln rho = C^T phi, one fused softmax (column max, floored exp, column sums),
the normalisation, and one GEMM adding phi r^T into the statistics, in functions compiled
with ``nogil=True``: threads run chunks truly in parallel.

Measured on this project's machine (one thread, diag, N = 1e5, D = 32, K = 16, p = 65;
timings move by up to 1.5x with the shared machine's state, so each figure is an
interleaved A/B): the NumPy pass took 30-33 ms, the first compiled one 18-22 ms; this one
13-14 ms against 15-16 ms for that first one, from three changes --

* **512-bit vectors.**  LLVM tunes for this machine's AVX-512 cores with 256-bit vectors
  ("prefer-256-bit"), so loops that numba vectorises run 4 doubles at a time.  The exp
  of the softmax and the first product are therefore written as LLVM IR on <8 x double>
  values (:func:`_softmax_lanes`, :func:`_logits_block_intrinsic`), which the backend
  keeps in zmm registers (on a CPU without AVX-512 it splits them, with the same results:
  every operation is elementwise IEEE arithmetic).  The softmax of the 1.6e6 log
  densities now takes 2.7 ms, where its exp alone had taken 4.5.
* **A register-blocked first product.**  ln rho for 2 components x 64 points is 16
  vector accumulators summed over the p features in order by fused multiply-adds, reading
  the features where they lie: 7.2-7.5 ms per pass like scipy's ``dgemm`` on these
  (tile, p) x (p, K) shapes (bounded by streaming the kept features from memory), but
  without its per-call packing, and with results that do not depend on the BLAS build.
  The second product (a long inner dimension, 60 GFLOPS) stays with the BLAS.
* **Padded scratch rows.**  The (K, tile) log densities had rows exactly 4 KiB apart, so
  the softmax's walk down 16 rows for 8 points hit one set of the L1 cache and kept
  evicting itself; rows of 512 + 8 doubles took the pass from 15.8 to 13.1 ms (tiles are
  now 256 points, :data:`~gmmkit.inference._blocks.KERNEL_TILE`).

BLAS.  The second product calls scipy's BLAS (``scipy.linalg.cython_blas.dgemm``, the
library ``scipy.linalg`` uses; threadpoolctl limits its threads as it does NumPy's)
through its function pointer.  The pointer is an argument, not a global, so the compiled
code holds no process-specific address and numba caches it on disk (``cache=True``: the
first import in a fresh checkout compiles both kernels, 17 s in a slow phase of the
machine; later processes load the cache in about 2 s with NumPy, SciPy and numba's own
imports).  A strided (p, n) view of kept features is read in place: the BLAS
leading dimension is its row stride, so nothing is copied.

Formed features.  :func:`data_softmax_statistics_kernel` forms phi = [1, x, quadratic
products of x] for each tile from the data into a buffer that stays in cache
(:func:`_form_tile`), for data streamed in chunks and features too big to keep: 26-28 %
faster than forming them with NumPy block by block.  Kept features that fit are still
faster to read (diag 13.8 against 14.2 ms, spherical 8.7 against 11.0): the kept pass
streams them from memory while it computes, a formed tile waits for its data first.

diag without features.  :func:`diag_softmax_statistics_kernel` is diag's pass from the
centred data alone: ln rho = c + sum_d x_d (a_d + b_d x_d) by Horner (two fused
multiply-adds per coordinate, as phi . C has, without x^2; :func:`_logits_diag_intrinsic`)
and the statistics sum r [1, x, x^2] with x^2 squared in registers, 4 components x 3
coordinates x 8 points of partial sums per block over sub-tiles that stay in L1
(:func:`_diag_statistics_intrinsic`; lanes added at the end of the call, in order).  It
reads D doubles per point instead of 1 + 2D and forms nothing: 10.1-10.8 ms a pass at N
= 1e5, D = 32, K = 16 on one thread against 12.9-14.5 ms over kept features
(interleaved).

The exp.  NumPy's exp cannot be called from compiled code, and numba's compiles to a
scalar libm call per element.  The kernel's exp is for arguments x <= 0 (the shifted log
densities), floored at ``floor``: exp(x) = 2^j exp(t) with j = round(x / ln 2) and t = x
- j ln 2 in two parts (Cody-Waite), |t| <= ln(2) / 2, and exp(t) by its Taylor polynomial
of degree 13 (the remainder t^14 / 14! < 4e-18 is below half an ulp); 2^j is applied as
2^(j + 512) 2^-512 so that subnormal results and exp(-inf) = 0 come out right too (a floor
of -inf gives the exact exp everywhere, which the tests use).  Against NumPy's exp over
[-750, 0] it is at most 1 ulp of the result apart (``tests/inference/test_kernels.py``);
the vector version (:func:`_exp_vector`) and the scalar one for tails
(:func:`exp_shifted_row`) run the same operations and give the same bits.  NaN stays NaN,
so a failed fit is still detected by its bound.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = [
    "data_softmax_statistics_kernel",
    "dgemm_address",
    "diag_softmax_statistics_kernel",
    "exp_floored_row",
    "exp_shifted_row",
    "softmax_statistics_kernel",
]

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


# --------------------------------------------------------------------- explicit vectors
# The softmax's exp and the first product as LLVM IR on <8 x double> (module docstring).
_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_LANES = 8
_VEC = ir.VectorType(_F64, _LANES)
_IVEC = ir.VectorType(_I64, _LANES)


def _const(value: float) -> ir.Constant:
    return ir.Constant(_VEC, [value] * _LANES)


def _fma(builder: ir.IRBuilder, a, b, c):
    """a * b + c, rounded once (llvm.fma)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3),
                                        "llvm.fma.v8f64")
    return builder.call(fn, [a, b, c])


def _address(builder: ir.IRBuilder, base, index):
    """The double ``index`` places after the address ``base`` (both i64)."""
    return builder.inttoptr(builder.add(base, builder.mul(index, ir.Constant(_I64, 8))),
                            _VEC.as_pointer())


def _load(builder: ir.IRBuilder, base, index):
    return builder.load(_address(builder, base, index), align=8, typ=_VEC)


def _store(builder: ir.IRBuilder, value, base, index) -> None:
    builder.store(value, _address(builder, base, index), align=8)


def _splat(builder: ir.IRBuilder, base, index):
    """The double at ``base`` + ``index`` in every lane."""
    scalar = builder.load(builder.inttoptr(
        builder.add(base, builder.mul(index, ir.Constant(_I64, 8))), _F64.as_pointer()),
        typ=_F64)
    one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), scalar,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), _LANES),
                                              [0] * _LANES))


def _exp_vector(builder: ir.IRBuilder, v, floor):
    """exp(max(v, floor)) of 8 lanes: the arithmetic of :func:`exp_shifted_row`, operation
    for operation (so the same bits)."""
    below = builder.fcmp_ordered("<", v, floor)  # a NaN compares false and stays NaN
    v = builder.select(below, floor, v)
    v = builder.select(builder.fcmp_ordered("<", v, _const(_ZERO_BELOW)), _const(_ZERO_BELOW),
                       v)
    shifted = _fma(builder, v, _const(_INV_LN2), _const(_ROUND_SHIFT))
    whole = builder.fsub(shifted, _const(_ROUND_SHIFT))
    minus_whole = builder.fneg(whole)
    t = _fma(builder, minus_whole, _const(_LN2_LO),
             _fma(builder, minus_whole, _const(_LN2_HI), v))
    q = _const(1.0 / 6227020800.0)
    for coefficient in _TAYLOR_DOWN_FROM_12:
        q = _fma(builder, q, t, _const(coefficient))
    bits = builder.bitcast(shifted, _IVEC)
    bits = builder.add(bits, ir.Constant(_IVEC, [_EXPONENT_BIAS + _SCALE_SHIFT
                                                 - _ROUND_SHIFT_BITS] * _LANES))
    scale = builder.bitcast(builder.shl(bits, ir.Constant(_IVEC, [_MANTISSA_BITS] * _LANES)),
                            _VEC)
    return builder.fmul(builder.fmul(q, scale), _const(_SCALE_BACK))


# 1/12!, 1/11!, ..., 1/0!: Horner's coefficients after the leading 1/13!.
_TAYLOR_DOWN_FROM_12 = (1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                        1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                        1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0)


@intrinsic
def _softmax_lanes(typingctx, logits, row_stride, n_rows, floor, col_max, col_sum):
    """For 8 points (columns) of a (K, .) block of log densities at address ``logits``
    (rows ``row_stride`` doubles apart): col_max <- max_k, logits <- exp(max(logits -
    col_max, floor)), col_sum <- their sum over k in order; addresses as integers."""
    def codegen(context, builder, signature, args):
        base, stride, k, floor_value, max_out, sum_out = args
        zero = ir.Constant(_I64, 0)
        floor_lanes = builder.insert_element(ir.Constant(_VEC, ir.Undefined), floor_value,
                                             ir.Constant(ir.IntType(32), 0))
        floor_lanes = builder.shuffle_vector(
            floor_lanes, ir.Constant(_VEC, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES))
        largest = cgutils.alloca_once_value(builder, _load(builder, base, zero))
        with cgutils.for_range(builder, builder.sub(k, ir.Constant(_I64, 1))) as loop:
            row = _load(builder, base, builder.mul(builder.add(loop.index,
                                                               ir.Constant(_I64, 1)), stride))
            current = builder.load(largest, typ=_VEC)
            builder.store(builder.select(builder.fcmp_ordered(">", row, current), row,
                                         current), largest)
        shift = builder.load(largest, typ=_VEC)
        total = cgutils.alloca_once_value(builder, _const(0.0))
        with cgutils.for_range(builder, k) as loop:
            offset = builder.mul(loop.index, stride)
            e = _exp_vector(builder, builder.fsub(_load(builder, base, offset), shift),
                            floor_lanes)
            _store(builder, e, base, offset)
            builder.store(builder.fadd(builder.load(total, typ=_VEC), e), total)
        _store(builder, shift, max_out, zero)
        _store(builder, builder.load(total, typ=_VEC), sum_out, zero)
        return context.get_dummy_value()

    return types.void(types.int64, types.int64, types.int64, types.float64, types.int64,
                      types.int64), codegen


#: The register block of the first GEMM: rows (components) x groups of 8 points.
_LOGIT_ROWS, _LOGIT_GROUPS = 2, 8
_LOGIT_POINTS = _LANES * _LOGIT_GROUPS


def _load_points(builder: ir.IRBuilder, base, row):
    """The 64 points of one row (feature or coordinate) at ``base`` + ``row``: 8 vectors."""
    return [_load(builder, base, builder.add(row, ir.Constant(_I64, _LANES * g)))
            for g in range(_LOGIT_GROUPS)]


def _store_rows(builder: ir.IRBuilder, accumulators, out_base, out_ld) -> None:
    """Row r of the block's accumulators (vectors of 8 points) to out[r, 0:64]."""
    for r, row_slots in enumerate(accumulators):
        start = builder.mul(ir.Constant(_I64, r), out_ld)
        for g, slot in enumerate(row_slots):
            _store(builder, builder.load(slot, typ=_VEC), out_base,
                   builder.add(start, ir.Constant(_I64, _LANES * g)))


def _logits_block_intrinsic(n_rows: int):
    @intrinsic
    def logits_block(typingctx, phi, phi_stride, coef, p, out, out_stride):
        """out[r, 0:64] = sum_j coef[r p + j] phi[j phi_stride + 0:64], r < n_rows, the
        sum over j in order by fused multiply-adds from 0; addresses as integers."""
        def codegen(context, builder, signature, args):
            phi_base, phi_ld, coef_base, p_value, out_base, out_ld = args
            accumulators = [[cgutils.alloca_once_value(builder, _const(0.0))
                             for _ in range(_LOGIT_GROUPS)] for _ in range(n_rows)]
            with cgutils.for_range(builder, p_value) as loop:
                j = loop.index
                points = _load_points(builder, phi_base, builder.mul(j, phi_ld))
                for r in range(n_rows):
                    c = _splat(builder, coef_base,
                               builder.add(builder.mul(ir.Constant(_I64, r), p_value), j))
                    for g in range(_LOGIT_GROUPS):
                        slot = accumulators[r][g]
                        builder.store(_fma(builder, c, points[g],
                                           builder.load(slot, typ=_VEC)), slot)
            _store_rows(builder, accumulators, out_base, out_ld)
            return context.get_dummy_value()

        return types.void(*[types.int64] * 6), codegen

    return logits_block


_logits_two_rows = _logits_block_intrinsic(_LOGIT_ROWS)
_logits_one_row = _logits_block_intrinsic(1)


def _logits_diag_intrinsic(n_rows: int):
    @intrinsic
    def logits_block(typingctx, x, x_stride, coef, p, d, out, out_stride):
        """out[r, 0:64] = coef[r p] + sum_i x_i (coef[r p + 1 + i] + coef[r p + 1 + d + i]
        x_i), x_i = x[i x_stride + 0:64], for r < n_rows: diag's ln rho on [1, x, x^2]
        without x^2 (Horner), two fused multiply-adds per coordinate in order of i;
        addresses as integers."""
        def codegen(context, builder, signature, args):
            x_base, x_ld, coef_base, p_value, d_value, out_base, out_ld = args
            accumulators = []
            for r in range(n_rows):
                constant = _splat(builder, coef_base,
                                  builder.mul(ir.Constant(_I64, r), p_value))
                accumulators.append([cgutils.alloca_once_value(builder, constant)
                                     for _ in range(_LOGIT_GROUPS)])
            with cgutils.for_range(builder, d_value) as loop:
                i = loop.index
                points = _load_points(builder, x_base, builder.mul(i, x_ld))
                for r in range(n_rows):
                    at = builder.add(builder.mul(ir.Constant(_I64, r), p_value),
                                     builder.add(i, ir.Constant(_I64, 1)))
                    linear = _splat(builder, coef_base, at)
                    square = _splat(builder, coef_base, builder.add(at, d_value))
                    for g in range(_LOGIT_GROUPS):
                        slot = accumulators[r][g]
                        inner = _fma(builder, square, points[g], linear)
                        builder.store(_fma(builder, inner, points[g],
                                           builder.load(slot, typ=_VEC)), slot)
            _store_rows(builder, accumulators, out_base, out_ld)
            return context.get_dummy_value()

        return types.void(*[types.int64] * 7), codegen

    return logits_block


_logits_diag_two_rows = _logits_diag_intrinsic(_LOGIT_ROWS)
_logits_diag_one_row = _logits_diag_intrinsic(1)

#: diag's second product in registers: 4 components x 3 (or 1) coordinates, each with the
#: sums of r x and r x^2 as 8 lanes of partial sums over the points.
_DIAG_ROWS = 4
_DIAG_GROUPS = 16  # groups of 8 points per sub-tile: its r and x stay in L1


def _diag_statistics_intrinsic(n_dims: int):
    @intrinsic
    def statistics_block(typingctx, r, r_stride, x, x_stride, n_groups, linear, square,
                         acc_stride):
        """For i < 4 rows and j < n_dims coordinates, over the groups g < n_groups of 8
        points in order, lane by lane by fused multiply-adds: linear[i acc_stride + 8 j +
        0:8] += r_i x_j and square[...] += r_i x_j^2, with r_i = r[i r_stride + 8 g + 0:8],
        x_j = x[j x_stride + 8 g + 0:8]; addresses as integers."""
        def codegen(context, builder, signature, args):
            r_base, r_ld, x_base, x_ld, groups, linear_base, square_base, acc_ld = args

            def at(i, j):
                return builder.add(builder.mul(ir.Constant(_I64, i), acc_ld),
                                   ir.Constant(_I64, _LANES * j))

            sums = [[[cgutils.alloca_once_value(builder, _load(builder, base, at(i, j)))
                      for j in range(n_dims)] for i in range(_DIAG_ROWS)]
                    for base in (linear_base, square_base)]
            with cgutils.for_range(builder, groups) as loop:
                offset = builder.mul(loop.index, ir.Constant(_I64, _LANES))
                coordinates = [_load(builder, x_base, builder.add(
                    builder.mul(ir.Constant(_I64, j), x_ld), offset)) for j in range(n_dims)]
                squares = [builder.fmul(v, v) for v in coordinates]
                for i in range(_DIAG_ROWS):
                    weights = _load(builder, r_base, builder.add(
                        builder.mul(ir.Constant(_I64, i), r_ld), offset))
                    for features, slots in zip((coordinates, squares), sums, strict=True):
                        for j in range(n_dims):
                            slot = slots[i][j]
                            builder.store(_fma(builder, weights, features[j],
                                               builder.load(slot, typ=_VEC)), slot)
            for base, slots in zip((linear_base, square_base), sums, strict=True):
                for i in range(_DIAG_ROWS):
                    for j in range(n_dims):
                        _store(builder, builder.load(slots[i][j], typ=_VEC), base, at(i, j))
            return context.get_dummy_value()

        return types.void(*[types.int64] * 8), codegen

    return statistics_block


_diag_statistics_three = _diag_statistics_intrinsic(3)
_diag_statistics_one = _diag_statistics_intrinsic(1)


@intrinsic
def _responsibility_sums(typingctx, r, r_stride, n_groups, acc, acc_stride):
    """acc[i acc_stride + 0:8] += sum_g r[i r_stride + 8 g + 0:8], i < 4, lane by lane."""
    def codegen(context, builder, signature, args):
        r_base, r_ld, groups, acc_base, acc_ld = args
        rows = [builder.mul(ir.Constant(_I64, i), acc_ld) for i in range(_DIAG_ROWS)]
        slots = [cgutils.alloca_once_value(builder, _load(builder, acc_base, row))
                 for row in rows]
        with cgutils.for_range(builder, groups) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, _LANES))
            for i, slot in enumerate(slots):
                weights = _load(builder, r_base, builder.add(
                    builder.mul(ir.Constant(_I64, i), r_ld), offset))
                builder.store(builder.fadd(builder.load(slot, typ=_VEC), weights), slot)
        for row, slot in zip(rows, slots, strict=True):
            _store(builder, builder.load(slot, typ=_VEC), acc_base, row)
        return context.get_dummy_value()

    return types.void(*[types.int64] * 5), codegen


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


@_jit
def _logits_tile(phi, start, b, ld, coef_t, logits):
    """logits[:, :b] (K, tile) <- coef_t (K, p) @ phi[:, start:start + b]: blocks of 2
    components x 64 points in registers (:func:`_logits_block_intrinsic`), the points past
    the last whole block by a loop with the same sums (j in order, fused multiply-adds)."""
    p = coef_t.shape[1]
    k = coef_t.shape[0]
    tile = logits.shape[1]
    whole = b - b % _LOGIT_POINTS
    pairs = k - k % _LOGIT_ROWS
    phi_base = phi.ctypes.data + 8 * start
    coef_base = coef_t.ctypes.data
    logits_base = logits.ctypes.data
    for n0 in range(0, whole, _LOGIT_POINTS):
        for k0 in range(0, pairs, _LOGIT_ROWS):
            _logits_two_rows(phi_base + 8 * n0, ld, coef_base + 8 * k0 * p, p,
                             logits_base + 8 * (k0 * tile + n0), tile)
        for k0 in range(pairs, k):
            _logits_one_row(phi_base + 8 * n0, ld, coef_base + 8 * k0 * p, p,
                            logits_base + 8 * (k0 * tile + n0), tile)
    if whole < b:
        for kk in range(k):
            row = logits[kk]
            row[whole:b] = 0.0
            for j in range(p):
                c = coef_t[kk, j]
                for n in range(whole, b):
                    row[n] += c * phi[j, start + n]


@_jit
def _softmax_tile(logits, b, floor, col_max, col_sum, buffer):
    """In place over logits[:, :b] (K, tile): col_max <- max_k, logits <- rho / max_k rho
    (the exp of the floored shifted log densities), col_sum <- their sum over k; 8 points
    at a time in vector registers (:func:`_softmax_lanes`), the rest by
    :func:`exp_shifted_row`, with the same bits."""
    k = logits.shape[0]
    tile = logits.shape[1]
    whole = b - b % _LANES
    for n0 in range(0, whole, _LANES):
        _softmax_lanes(logits.ctypes.data + 8 * n0, tile, k, floor,
                       col_max.ctypes.data + 8 * n0, col_sum.ctypes.data + 8 * n0)
    if whole < b:
        mx = col_max[whole:b]
        tot = col_sum[whole:b]
        mx[:] = logits[0, whole:b]
        for kk in range(1, k):
            row = logits[kk, whole:b]
            for j in range(b - whole):
                if row[j] > mx[j]:
                    mx[j] = row[j]
        tot[:] = 0.0
        for kk in range(k):  # rho / max_k rho (log space: the largest is exp(0) = 1)
            exp_shifted_row(logits[kk, whole:b], mx, floor, buffer, tot)


def _array(ndim: int, layout: str, readonly: bool = False) -> types.Array:
    return types.Array(types.float64, ndim, layout, readonly=readonly)


@_jit
def _tile_statistics(address, phi, start, b, coef_t, w, out, rel, stats_t, col_max, col_sum,
                     logits, buffer, floor, scratch_i, scratch_f):
    """One tile: the b points (columns) start..start + b of ``phi`` (p, .), unit column
    stride, whose results go to rows rel..rel + b of ``w``, ``out``, ``col_max`` and
    ``col_sum`` (see :func:`softmax_statistics_kernel`); ``logits`` (K, >= b) and
    ``buffer`` (>= b,) are scratch."""
    p = phi.shape[0]
    k = coef_t.shape[0]
    ld = phi.strides[0] // 8
    _logits_tile(phi, start, b, ld, coef_t, logits)
    _responsibilities_tile(logits, b, k, w, out, rel, col_max, col_sum, buffer, floor)
    # Row-major stats_t (K, p) is column-major (p, K), ld p: += phi_tile (p, b) r^T, where
    # r is column-major (b, K), ld the logits' row length.
    _dgemm(address, _CHAR_T, _CHAR_N, p, k, b, phi.ctypes.data + 8 * start, ld,
           logits.ctypes.data, logits.shape[1], 1.0, stats_t.ctypes.data, p, scratch_i,
           scratch_f)


@_jit
def _responsibilities_tile(logits, b, k, w, out, rel, col_max, col_sum, buffer, floor):
    """The log densities logits[:k, :b] -> w r (in place, the weights w of rows rel..rel
    + b, or none if w is empty), with col_max and col_sum of rows rel..rel + b as
    :func:`softmax_statistics_kernel` returns them, and r to rows rel..rel + b of ``out``
    unless it is empty."""
    _softmax_tile(logits[:k], b, floor, col_max[rel : rel + b], col_sum[rel : rel + b],
                  buffer)
    for j in range(b):
        buffer[j] = 1.0 / col_sum[rel + j]  # one division per point, then products
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


# Rows of the scratch tiles are padded past a multiple of 4 KiB: 16 rows 4 KiB apart share
# one set of the L1 cache, which the softmax's walk down a column of 8 points then keeps
# evicting (diag at N = 1e5, D = 32, K = 16: 15.8 -> 13.1 ms a pass).
_ROW_PAD = 8  # doubles


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
    logits = np.empty((coef_t.shape[0], tile + _ROW_PAD))
    buffer = np.empty(tile)
    scratch_i = np.empty(8, np.int32)
    scratch_f = np.empty(2)
    for start in range(first, last, tile):
        _tile_statistics(address, phi, start, min(tile, last - start), coef_t, w, out,
                         start - first, stats_t, col_max, col_sum, logits, buffer, floor,
                         scratch_i, scratch_f)


@_jit
def _form_tile(x, start, b, offsets, pairs, phi):
    """phi[:, :b] <- [1; x; q_1; ...; q_m] of the points start..start + b of ``x`` (D, .),
    with q_i = sum over the pairs (a, c) in pairs[offsets[i]:offsets[i + 1]] of x_a x_c,
    added in that order (the first product is assigned, not added to 0: the same bits)."""
    d = x.shape[0]
    phi[0, :b] = 1.0
    for a in range(d):
        source = x[a]
        target = phi[1 + a]
        for n in range(b):
            target[n] = source[start + n]
    for q in range(offsets.shape[0] - 1):
        row = phi[1 + d + q]
        first_pair = offsets[q]
        left = phi[1 + pairs[first_pair, 0]]
        right = phi[1 + pairs[first_pair, 1]]
        for n in range(b):
            row[n] = left[n] * right[n]
        for i in range(first_pair + 1, offsets[q + 1]):
            left = phi[1 + pairs[i, 0]]
            right = phi[1 + pairs[i, 1]]
            for n in range(b):
                row[n] += left[n] * right[n]


@numba.njit(types.void(types.int64, _array(2, "C", True), types.int64, types.int64,
                       types.Array(types.int64, 1, "C", readonly=True),
                       types.Array(types.int64, 2, "C", readonly=True),
                       _array(2, "C", True), _array(1, "C", True), _array(2, "A"),
                       _array(2, "C"), _array(1, "C"), _array(1, "C"), types.int64,
                       types.float64),
            nogil=True, cache=True, fastmath={"contract"})
def data_softmax_statistics_kernel(address, x, first, last, offsets, pairs, coef_t, w, out,
                                   stats_t, col_max, col_sum, tile, floor):
    """As :func:`softmax_statistics_kernel`, with the features formed tile by tile from
    the C-contiguous data ``x`` (D, L) (:func:`_form_tile`; p = 1 + D + len(offsets) - 1,
    and every group of pairs non-empty) into a
    buffer that stays in cache, instead of read from memory: half the bytes per pass for
    diag's [1, x, x^2], and a GEMM that reads its operand from L2."""
    logits = np.empty((coef_t.shape[0], tile + _ROW_PAD))
    phi = np.empty((coef_t.shape[1], tile + _ROW_PAD))
    buffer = np.empty(tile)
    scratch_i = np.empty(8, np.int32)
    scratch_f = np.empty(2)
    for start in range(first, last, tile):
        b = min(tile, last - start)
        _form_tile(x, start, b, offsets, pairs, phi)
        _tile_statistics(address, phi, 0, b, coef_t, w, out, start - first, stats_t,
                         col_max, col_sum, logits, buffer, floor, scratch_i, scratch_f)


@_jit
def _logits_diag_tile(x, start, b, coef_t, logits):
    """logits[:K, :b] <- diag's ln rho of the points start..start + b of ``x`` (D, .), C
    order: coef_t (K, 1 + 2D) holds [c, a, b] of c + sum_i x_i (a_i + b_i x_i), in blocks
    of 2 components x 64 points in registers (:func:`_logits_diag_intrinsic`), the points
    past the last whole block by a loop with the same operations."""
    d = x.shape[0]
    ld = x.shape[1]
    p = coef_t.shape[1]
    k = coef_t.shape[0]
    tile = logits.shape[1]
    whole = b - b % _LOGIT_POINTS
    pairs = k - k % _LOGIT_ROWS
    x_base = x.ctypes.data + 8 * start
    coef_base = coef_t.ctypes.data
    logits_base = logits.ctypes.data
    for n0 in range(0, whole, _LOGIT_POINTS):
        for k0 in range(0, pairs, _LOGIT_ROWS):
            _logits_diag_two_rows(x_base + 8 * n0, ld, coef_base + 8 * k0 * p, p, d,
                                  logits_base + 8 * (k0 * tile + n0), tile)
        for k0 in range(pairs, k):
            _logits_diag_one_row(x_base + 8 * n0, ld, coef_base + 8 * k0 * p, p, d,
                                 logits_base + 8 * (k0 * tile + n0), tile)
    if whole < b:
        for kk in range(k):
            row = logits[kk]
            row[whole:b] = coef_t[kk, 0]
            for i in range(d):
                linear = coef_t[kk, 1 + i]
                square = coef_t[kk, 1 + d + i]
                source = x[i]
                for n in range(whole, b):
                    v = source[start + n]
                    row[n] += (square * v + linear) * v


@_jit
def _diag_statistics_tile(x, start, b, r, acc):
    """acc (K4, 1 + 2D, 8) += the lane partial sums of r[:, :b] [1, x, x^2] of the points
    start..start + b of ``x`` (D, .), C order, whose w r are the rows of ``r`` (K4, .; K4
    = K rounded up to a multiple of 4, the rows past K zeros): sub-tiles of
    :data:`_DIAG_GROUPS` groups of 8 points, 4 components x 3 coordinates in registers
    (:func:`_diag_statistics_intrinsic`); the points past the whole groups go to lane 0,
    in order."""
    d = x.shape[0]
    ld = x.shape[1]
    k4 = r.shape[0]
    whole = b - b % _LANES
    groups = whole // _LANES
    x_base = x.ctypes.data + 8 * start
    r_base = r.ctypes.data
    r_ld = r.shape[1]
    acc_base = acc.ctypes.data
    acc_ld = acc.shape[1] * _LANES
    for g0 in range(0, groups, _DIAG_GROUPS):
        g = min(_DIAG_GROUPS, groups - g0)
        sub_x = x_base + 8 * _LANES * g0
        sub_r = r_base + 8 * _LANES * g0
        for k0 in range(0, k4, _DIAG_ROWS):
            rows_r = sub_r + 8 * k0 * r_ld
            rows_acc = acc_base + 8 * k0 * acc_ld
            _responsibility_sums(rows_r, r_ld, g, rows_acc, acc_ld)
            i = 0
            while i < d:
                linear = rows_acc + 8 * _LANES * (1 + i)
                square = rows_acc + 8 * _LANES * (1 + d + i)
                if d - i >= 3:
                    _diag_statistics_three(rows_r, r_ld, sub_x + 8 * i * ld, ld, g, linear,
                                           square, acc_ld)
                    i += 3
                else:
                    _diag_statistics_one(rows_r, r_ld, sub_x + 8 * i * ld, ld, g, linear,
                                         square, acc_ld)
                    i += 1
    for n in range(whole, b):
        for kk in range(k4):
            weight = r[kk, n]
            acc[kk, 0, 0] += weight
            for i in range(d):
                v = x[i, start + n]
                acc[kk, 1 + i, 0] += weight * v
                acc[kk, 1 + d + i, 0] += weight * (v * v)


@_jit
def _add_lanes(acc, stats_t):
    """stats_t (K, p) += the sums of acc's (K4, p, 8) lanes, in lane order."""
    for kk in range(stats_t.shape[0]):
        for j in range(stats_t.shape[1]):
            total = acc[kk, j, 0]
            for lane in range(1, _LANES):
                total += acc[kk, j, lane]
            stats_t[kk, j] += total


@numba.njit(types.void(_array(2, "C", True), types.int64, types.int64, _array(2, "C", True),
                       _array(1, "C", True), _array(2, "A"), _array(2, "C"), _array(1, "C"),
                       _array(1, "C"), types.int64, types.float64),
            nogil=True, cache=True, fastmath={"contract"})
def diag_softmax_statistics_kernel(x, first, last, coef_t, w, out, stats_t, col_max, col_sum,
                                   tile, floor):
    """:func:`softmax_statistics_kernel` for diag's features phi = [1, x, x^2] of the
    C-contiguous data ``x`` (D, L), never formed: ln rho = c + sum_i x_i (a_i + b_i x_i)
    (:func:`_logits_diag_tile`) and the statistics with x^2 squared in registers
    (:func:`_diag_statistics_tile`), so a pass reads each coordinate once, from memory,
    and each tile again from cache.  stats_t (K, 1 + 2D) += sum_n w_n r_nk phi_n."""
    k = coef_t.shape[0]
    k4 = -(-k // _DIAG_ROWS) * _DIAG_ROWS
    logits = np.zeros((k4, tile + _ROW_PAD))  # rows past K stay 0: no statistics
    acc = np.zeros((k4, coef_t.shape[1], _LANES))
    buffer = np.empty(tile)
    for start in range(first, last, tile):
        b = min(tile, last - start)
        rel = start - first
        _logits_diag_tile(x, start, b, coef_t, logits)
        _responsibilities_tile(logits, b, k, w, out, rel, col_max, col_sum, buffer, floor)
        _diag_statistics_tile(x, start, b, logits, acc)
    _add_lanes(acc, stats_t)
