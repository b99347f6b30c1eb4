"""Small dense kernels of the Bayesian posterior: R factors of stacked, scaled triangles (never
normal equations) and the row variances ``aᵀΣa`` of a block of design rows.

Stacking triangles uses LAPACK ``tpqrt`` (the QR of a triangle on top of a triangle, about
2n³/3 flops, against 10n³/3 for a dense QR of the 2n × n stack), one triangle at a time.
"""
from __future__ import annotations

import contextlib
from typing import Iterable

import numpy as np
from scipy.linalg import blas, lapack

__all__ = ["stack_triangles", "triangle_of", "row_variances", "inverse_triangle", "small_blas"]

#: Block size of LAPACK ``tpqrt``.
_NB = 64
#: Below this many columns the posterior's dense kernels run on one BLAS thread: threads cost
#: more than they save on such matrices (and far more on an oversubscribed node).
SMALL = 400


def small_blas(n: int):
    """A context in which BLAS uses one thread when ``n < SMALL`` (else nothing changes)."""
    if n >= SMALL:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def triangle_of(M: np.ndarray) -> np.ndarray:
    """Upper-triangular R (k × k, k = columns of M, zero rows added when M has fewer rows) of a
    QR of ``M``, rows signed so that the diagonal is non-negative."""
    M = np.asarray(M, dtype=float)
    k = M.shape[1]
    R = np.zeros((k, k))
    if M.shape[0]:
        r = np.linalg.qr(M, mode="r")
        R[:r.shape[0]] = r
    return _signed(R)


def _signed(R: np.ndarray) -> np.ndarray:
    s = np.where(np.diagonal(R) < 0, -1.0, 1.0)
    return R * s[:, None]


def stack_triangles(tris: Iterable[tuple[float, np.ndarray]]) -> np.ndarray:
    """The R factor (k × k, non-negative diagonal) of ``vstack([s·T for s, T in tris])`` for
    upper-triangular k × k ``T`` (a scale of 0 leaves a triangle out). Deterministic: triangles
    are folded in the order given."""
    acc = None
    for s, T in tris:
        if s == 0.0:
            continue
        # one scaled Fortran-order copy; tpqrt reads only the upper triangles
        B = np.multiply(np.asarray(T, dtype=float), float(s), order="F")
        if acc is None:
            acc = B
            continue
        k = acc.shape[0]
        if k == 0:
            continue
        a, _, _, info = lapack.dtpqrt(k, min(_NB, k), acc, B, overwrite_a=1, overwrite_b=1)
        if info != 0:  # pragma: no cover - LAPACK argument error
            raise RuntimeError(f"LAPACK dtpqrt failed (info {info})")
        acc = a
    if acc is None:
        raise ValueError("stack_triangles: no triangle with a non-zero scale")
    return _signed(np.triu(acc))


def inverse_triangle(T: np.ndarray) -> np.ndarray:
    """T⁻¹ of an upper-triangular T with non-zero diagonal (LAPACK ``trtri``)."""
    inv, info = lapack.dtrtri(np.asfortranarray(T), lower=0)
    if info != 0:
        raise np.linalg.LinAlgError("singular posterior precision (a zero on the diagonal of "
                                    "its triangular factor)")
    return np.triu(inv)


def row_variances(A: np.ndarray, factor: np.ndarray, *, triangular: bool = False) -> np.ndarray:
    """``rowsum((A @ F)²)``: the variance ``aᵀ F Fᵀ a`` of each row ``a`` of ``A`` (m × k) for a
    covariance factor ``F`` (k × q). With ``triangular`` (F upper triangular, k = q) BLAS
    ``trmm`` is used (half the flops of a general product)."""
    A = np.asarray(A, dtype=float)
    if A.shape[0] == 0:
        return np.zeros(0)
    if triangular:
        S = blas.dtrmm(1.0, np.asfortranarray(factor), np.array(A, order="F"), side=1, lower=0)
    else:
        S = A @ factor
    return np.einsum("ij,ij->i", S, S)
