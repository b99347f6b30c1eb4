"""Tall-skinny QR (TSQR) of the weighted training rows, distributed over MPI ranks.

The least-squares fit minimises ``|W(Ax - b)|^2`` over the rows of every rank. Nothing ever
gathers ``A``: each rank reduces its own rows to the R factor of the augmented block
``[wA | wb]`` (``w`` scales rows), and the small R factors are combined up a reduction tree.

Algorithm
---------
With ``M = [wA | wb] = Q R_full`` (``R_full`` upper triangular, ``(n+1) x (n+1)``) and
``x~ = [x; -1]``::

    |wAx - wb|^2 = |M x~|^2 = |R_full x~|^2 = |R x - qb|^2 + rho^2

where ``R = R_full[:n, :n]``, ``qb = R_full[:n, n]`` (= Qᵀ wb) and ``rho = R_full[n, n]``. So the
compressed system ``(R, qb)`` has the same minimisers, singular values and right singular vectors
as the full weighted system, for any solver.

The R factor of stacked blocks only needs the R factors of the blocks:
``R(vstack([M1, M2])) = R(vstack([R(M1), R(M2)]))`` (up to the signs of its rows). So

1. every rank factors its own rows (:func:`local_r`, LAPACK ``geqrf``);
2. ``comm.allreduce(local, op=...)`` combines pairs of R factors (:func:`combine`: LAPACK
   ``dtpqrt``, the QR of a triangle stacked on a triangle, ``2/3 n^3`` flops) along a tree and
   gives every rank the same result. A factor travels as its upper triangle only, packed row
   after row when it is pickled for a message (``(n+1)(n+2)/2`` numbers instead of
   ``(n+1)^2``); a combined factor that stays on its rank is not packed. mpi4py's lower-case
   (pickle-based) reductions accept any Python callable ``op(a, b)`` (an ``MPI.Op.Create(fn)``
   object would be called as ``fn(a, b, None)``); its tree reduction calls
   ``op(lower_ranks, higher_ranks)`` — rank order is kept, which is what a non-commutative
   operation needs — then broadcasts rank 0's result, so every rank holds bit-identical R.
   :class:`mpisnap.comm.SerialComm` returns the local value.

This is the TSQR of Demmel, Grigori, Hoemmen & Langou, "Communication-optimal parallel and
sequential QR and LU factorizations", SIAM J. Sci. Comput. 34 (2012) A206-A239, in the "direct"
form of Benson, Gleich & Demmel, "Direct QR factorizations for tall-and-skinny matrices in
MapReduce architectures", IEEE BigData 2013 (only R and Qᵀb are kept; Q is never formed).
Householder QR is backward stable, so unlike the normal equations ``AᵀA`` this does not square the
condition number of the fit.

Determinism and signs: :func:`combine` flips rows so that the diagonal of R is non-negative, which
makes R unique for a full-column-rank system; the reduction order is fixed for a given number of
ranks, so a rerun gives bit-identical results, and a different rank count agrees to round-off.

Memory per rank
---------------
* :func:`local_r`: the block ``[wA | wb]`` is formed once (``local_rows x (n+1)`` doubles, Fortran
  order) and factored in place, plus the ``min(local_rows, n+1) x (n+1)`` R it returns and LAPACK's
  ``(n+1) x 64`` workspace: peak ≈ one copy of the block (the input ``A`` not counted).
* :class:`StreamingR`: one block of new rows stacked under the running R:
  ``(block_rows + n + 1) x (n+1)``; memory does not grow with the number of rows streamed.
* each reduction step: two packed triangles (the messages), two unpacked R factors and their
  Fortran copies for ``dtpqrt`` — ``O(n^2)``, ``log2(ranks)`` steps.

Edge cases
----------
* A rank with fewer rows than columns (``m < n+1``) contributes an upper-trapezoidal ``m x (n+1)``
  factor; the combination is still exact.
* A rank with no rows contributes a ``(0, n+1)`` factor (or nothing, if it does not even know
  ``n``: a :class:`StreamingR` without ``ncols`` that saw no rows); it is the identity of the
  reduction.
* Fewer rows than unknowns overall: R is padded with zero rows to ``n x n`` (and ``rnorm2 = 0``);
  the identity ``|wAx - wb|^2 = |Rx - qb|^2 + rnorm2`` still holds for every x, and the solvers see
  the rank deficiency in R.
* ``rnorm2 = rho^2`` is the constant of that identity. When ``wA`` has full column rank it is the
  least-squares residual ``|wb - P wb|^2`` (P the projection onto range(wA)); for a rank-deficient
  ``wA`` the smallest residual is ``rnorm2 + min_x |Rx - qb|^2``.
* Bad input on one rank (wrong number of columns, mismatched lengths) must not hang the others:
  :class:`StreamingR` (and so :func:`tsqr`) records the error, the reduction carries it to every
  rank and every rank raises the same :class:`TsqrError`. NaN or inf in the data propagate into R
  on every rank (solvers reject a non-finite R).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.linalg.lapack_lite import dgeqrf as _dgeqrf  # Fortran reads a C-ordered A.T as A

from .threads import SMALL_QR, numpy_blas_threads

__all__ = ["local_r", "combine", "tsqr", "StreamingR", "TsqrError", "split_r"]


class TsqrError(ValueError):
    """Bad input to the distributed QR, raised identically on every rank."""


def _lapack():
    """SciPy's LAPACK wrappers, imported on first use (only :func:`combine`'s ``dtpqrt`` needs
    them: a one-rank fit never imports SciPy)."""
    from scipy.linalg import lapack

    return lapack


def _geqrf_r(block: np.ndarray) -> np.ndarray:
    """The R factor (``min(m, p) x p``, upper triangular/trapezoidal) of a Fortran-ordered float64
    ``block``, which is overwritten (LAPACK ``dgeqrf`` in place).

    NumPy's own LAPACK (``numpy.linalg.lapack_lite.dgeqrf``, the routine behind
    ``numpy.linalg.qr``) factors the block where it lies, so SciPy is not imported for it. Below
    :data:`mpisnap.threads.SMALL_QR` (``m p^2``) it runs on one BLAS thread, whatever the pools'
    size: the choice follows the shape only."""
    m, p = block.shape
    if m == 0 or p == 0:
        return np.zeros((0, p))
    if not (block.flags.f_contiguous and block.dtype == np.float64):
        raise ValueError("internal: _geqrf_r needs a Fortran-ordered float64 block")
    tau = np.empty(min(m, p))
    query = np.empty(1)
    _dgeqrf(m, p, block.T, m, tau, query, -1, 0)
    work = np.empty(max(int(query[0]), p, 1))
    if m * p * p <= SMALL_QR:
        with numpy_blas_threads(1):
            info = _dgeqrf(m, p, block.T, m, tau, work, work.size, 0)["info"]
    else:
        info = _dgeqrf(m, p, block.T, m, tau, work, work.size, 0)["info"]
    if info != 0:  # pragma: no cover - only invalid arguments make geqrf fail
        raise RuntimeError(f"LAPACK dgeqrf failed (info={info})")
    k = min(m, p)
    return np.triu(block[:k])


def _fix_signs(R: np.ndarray) -> np.ndarray:
    """Flip rows so that the diagonal is non-negative (in place; returns R)."""
    k = min(R.shape)
    if k:
        neg = np.diagonal(R)[:k] < 0
        R[:k][neg] *= -1.0
    return R


def _check_rows(A, b, w):
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (rows x columns), got shape {A.shape}")
    m = A.shape[0]
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},) to match A {A.shape}, got {b.shape}")
    if w is None:
        w = np.ones(m)
    else:
        w = np.asarray(w, dtype=float)
        if w.shape != (m,):
            raise ValueError(f"w must have shape ({m},) to match A {A.shape}, got {w.shape}")
    return A, b, w


def _fill(block: np.ndarray, A: np.ndarray, b: np.ndarray, w: np.ndarray) -> None:
    """``block[:] = [w*A | w*b]`` without temporaries of A's size."""
    n = A.shape[1]
    np.multiply(A, w[:, None], out=block[:, :n])
    np.multiply(b, w, out=block[:, n])


def local_r(A, b, w=None, *, check_finite: bool = False) -> np.ndarray:
    """The R factor of the weighted block ``[w*A | w*b]`` (``w`` multiplies rows; None = ones).

    Returns an upper-triangular (trapezoidal if ``m < n+1``) array of shape ``(k, n+1)`` with
    ``k = min(m, n+1)``, ``(0, n+1)`` for no rows, diagonal non-negative. The rows are formed in
    Fortran order and factored in place by LAPACK ``dgeqrf`` in chunks of :data:`_CHUNK_ROWS`,
    each stacked under the R of the ones before (:func:`_fold`): peak memory one chunk plus R. ``check_finite`` raises ValueError for NaN or
    inf (checked column by column, no big temporaries); otherwise they propagate into R.
    """
    A, b, w = _check_rows(A, b, w)
    return _fold(np.zeros((0, A.shape[1] + 1)), A, b, w, check_finite)


def _check_finite(block: np.ndarray, n: int) -> None:
    for j in range(n + 1):
        if not np.isfinite(block[:, j]).all():
            raise ValueError("non-finite value (NaN or inf) in the weighted rows "
                             f"({'b' if j == n else f'column {j} of A'}) or in w")


#: rows of one chunk of :func:`_fold` (fixed: the result does not depend on the threads)
_CHUNK_ROWS = 32768


def _fold(R: np.ndarray, A, b, w, check_finite: bool = False) -> np.ndarray:
    """The R factor (diagonal non-negative) of ``[R; w*A | w*b]``, R upper triangular or
    trapezoidal with ``n+1`` columns (possibly no rows).

    The rows go in chunks of :data:`_CHUNK_ROWS`: each chunk is stacked under the running R and
    the stack factored in place by ``dgeqrf``. A chunk's panels stay in cache where a tall
    block's (``m x 32``) stream from memory, for ``p / _CHUNK_ROWS`` more flops (R refactored
    with each chunk): InP's 367,900 x 481 takes 5.9 s on 2 threads and 8.0 s on one, against
    7.8 s and 12.3 s as one block (LAPACK ``dtpqrt`` folding R with each chunk was slower on 2
    threads: 7.0 s). The buffer is one chunk, not a copy of the block."""
    m, n = A.shape
    p = n + 1
    for s in range(0, max(m, 1), _CHUNK_ROWS):
        e = min(m, s + _CHUNK_ROWS)
        k = R.shape[0]
        block = np.empty((k + e - s, p), order="F")
        block[:k] = R
        _fill(block[k:], A[s:e], b[s:e], w[s:e])
        if check_finite:
            _check_finite(block[k:], n)
        R = _geqrf_r(block)
        del block  # before the next chunk's: one chunk at a time
    return _fix_signs(R)


def _upper(R: np.ndarray) -> bool:
    """R is upper triangular/trapezoidal (nothing below the diagonal)."""
    return not np.tril(R, -1).any()


def combine(R1, R2):
    """The R factor of ``vstack([R1, R2])``: shape ``(min(k1 + k2, p), p)``, diagonal
    non-negative.

    Either input may have no rows (or be None, the identity). Inputs need not be triangular, so a
    block with fewer rows than columns is fine. Raises ValueError when the column counts differ.

    Two upper-triangular factors (the common case: one square, the other square or trapezoidal)
    are combined by LAPACK ``dtpqrt``, the QR of a triangle stacked on a triangle, which touches
    only the non-zero part: about ``2/3 p^3`` flops instead of ``10/3 p^3`` for ``dgeqrf`` of the
    stacked ``2p x p`` matrix. Anything else is stacked and factored by ``dgeqrf``.
    """
    if R1 is None:
        return None if R2 is None else _fix_signs(np.array(R2, dtype=float))
    if R2 is None:
        return _fix_signs(np.array(R1, dtype=float))
    R1 = np.asarray(R1, dtype=float)
    R2 = np.asarray(R2, dtype=float)
    if R1.ndim != 2 or R2.ndim != 2:
        raise ValueError(f"R factors must be 2-D, got shapes {R1.shape} and {R2.shape}")
    if R1.shape[1] != R2.shape[1]:
        raise ValueError(f"cannot combine R factors with {R1.shape[1]} and {R2.shape[1]} columns "
                         "(every rank must have the same number of columns)")
    k1, p = R1.shape
    k2 = R2.shape[0]
    top, low = (R1, R2) if k1 == p else (R2, R1)  # same R (up to round-off) either way
    if p and top.shape[0] == p and 0 < low.shape[0] <= p and _upper(top) and _upper(low):
        return _fix_signs(_tpqrt_r(top, low))
    stacked = np.empty((k1 + k2, p), order="F")
    stacked[:k1] = R1
    stacked[k1:] = R2
    return _fix_signs(_geqrf_r(stacked))


def _tpqrt_r(top: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The R factor (``p x p``) of ``[top; low]`` for ``top`` upper triangular ``p x p`` and
    ``low`` upper trapezoidal ``l x p`` (``l <= p``): LAPACK ``dtpqrt`` with ``L = l``."""
    p = top.shape[1]
    a = np.array(top, order="F")
    b = np.array(low, order="F")
    a, _b, _t, info = _lapack().dtpqrt(b.shape[0], min(p, _TPQRT_BLOCK), a, b, overwrite_a=1,
                                    overwrite_b=1)
    if info != 0:  # pragma: no cover - only invalid arguments make tpqrt fail
        raise RuntimeError(f"LAPACK dtpqrt failed (info={info})")
    return np.triu(a)


#: column block of ``dtpqrt`` (LAPACK's usual blocking)
_TPQRT_BLOCK = 32


def split_r(Rfull: np.ndarray, n: int | None = None):
    """``(R, qb, rnorm2)`` from an augmented R factor of shape ``(k, n+1)``: R ``(n, n)`` (zero
    rows appended when ``k < n``), ``qb = Qᵀ wb`` ``(n,)`` and ``rnorm2 = R_full[n, n]^2`` (0 when
    ``k <= n``)."""
    Rfull = np.asarray(Rfull, dtype=float)
    if n is None:
        n = Rfull.shape[1] - 1
    k = Rfull.shape[0]
    R = np.zeros((n, n))
    qb = np.zeros(n)
    kk = min(k, n)
    R[:kk] = Rfull[:kk, :n]
    qb[:kk] = Rfull[:kk, n]
    rnorm2 = float(Rfull[n, n] ** 2) if k > n else 0.0
    return R, qb, rnorm2


def _pack(R: np.ndarray) -> np.ndarray:
    """The upper-trapezoidal part of R (``k x p``, ``k <= p``), row after row: ``R[r, r:]``,
    ``k p - k (k - 1) / 2`` numbers (``p (p + 1) / 2`` for a triangle): what goes in a message."""
    k, p = R.shape
    return R[np.triu_indices(k, 0, p)]


def _unpack(flat: np.ndarray, k: int, p: int) -> np.ndarray:
    """Inverse of :func:`_pack`: the ``k x p`` upper-trapezoidal matrix (zeros below)."""
    R = np.zeros((k, p))
    R[np.triu_indices(k, 0, p)] = flat
    return R


@dataclass(frozen=True)
class _Part:
    """The contribution of ranks ``first..last`` (one rank, or a subtree: the reduction keeps rank
    order, so always a contiguous range) to the reduction: their R factor (None = no rows and no
    column count), their row count, and the errors found so far ("rank r: message").

    A part is packed only when it travels: pickled (mpi4py's lower-case reductions pickle every
    message), an upper-triangular/trapezoidal R goes as its triangle (:func:`_pack`) and comes
    back whole (:func:`_unpack`); anything else goes whole. ``triangle`` says which; a triangle
    holds exact zeros (+0.0) below its diagonal (:meth:`of`), as the message delivers them, so an
    operand of :func:`combine` is the same array whether it stayed on its rank or travelled."""

    R: np.ndarray | None
    nrows: int
    first: int
    last: int
    errors: tuple = ()
    triangle: bool = False

    @classmethod
    def of(cls, R, nrows, first, last):
        if R is None:
            return cls(None, nrows, first, last)
        R = np.asarray(R, dtype=float)
        if R.shape[0] > R.shape[1] or not _upper(R):  # not a factor: sent whole
            return cls(R, nrows, first, last)
        # np.triu: the values of the triangle, +0.0 below (_fix_signs leaves -0.0 there)
        return cls(np.triu(R), nrows, first, last, triangle=True)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.triangle:
            state["R"] = (_pack(self.R), self.R.shape)
        return state

    def __setstate__(self, state):
        if state.get("triangle"):
            state = {**state, "R": _unpack(state["R"][0], *state["R"][1])}
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @property
    def ncols(self) -> int | None:
        return None if self.R is None else self.R.shape[1]

    def where(self) -> str:
        return f"rank {self.first}" if self.first == self.last else f"ranks {self.first}-{self.last}"


def _combine_parts(a: _Part, b: _Part) -> _Part:
    """The reduction operation: never raises (an exception inside a collective would hang the
    other ranks); errors travel to every rank instead."""
    first, last = min(a.first, b.first), max(a.last, b.last)
    if a.errors or b.errors:
        return _Part(None, 0, first, last, a.errors + b.errors)
    if a.ncols is not None and b.ncols is not None and a.ncols != b.ncols:
        return _Part(None, 0, first, last, (
            f"{a.where()}: {a.ncols - 1} columns but {b.where()}: {b.ncols - 1} columns "
            "(every rank must have the same number of columns)",))
    try:
        return _Part.of(combine(a.R, b.R), a.nrows + b.nrows, first, last)
    except Exception as exc:  # noqa: BLE001 - reported on every rank by finalize
        return _Part(None, 0, first, last, (f"{a.where()} + {b.where()}: {exc}",))


class StreamingR:
    """Running R factor of ``[w*A | w*b]`` for rows streamed in blocks, then combined across ranks.

    ``add(A, b, w)`` folds a block of rows into the running R (QR of the running R stacked on the
    new rows), so memory is ``O(block rows x (n+1) + (n+1)^2)`` however many rows are streamed;
    ``max_block_rows`` splits large blocks further. ``finalize(comm)`` is collective: it combines
    every rank's R (:func:`combine` up mpi4py's reduction tree) and returns ``(R, qb, rnorm2)``, the
    same on every rank; afterwards :attr:`total_rows` holds the number of rows over all ranks.

    ``ncols`` (the number of columns of A) may be None; it is then taken from the first block. With
    ``defer_errors`` (the default) a bad block (wrong column count, mismatched lengths) does not
    raise in ``add``: the error is kept and ``finalize`` raises :class:`TsqrError` on every rank, so
    one rank's bad input cannot leave the others waiting in the collective.
    """

    def __init__(self, ncols: int | None = None, *, max_block_rows: int | None = None,
                 defer_errors: bool = True):
        if ncols is not None and int(ncols) < 0:
            raise ValueError(f"ncols must be >= 0, got {ncols}")
        if max_block_rows is not None and int(max_block_rows) < 1:
            raise ValueError(f"max_block_rows must be >= 1, got {max_block_rows}")
        self.ncols = None if ncols is None else int(ncols)
        self.max_block_rows = None if max_block_rows is None else int(max_block_rows)
        self.defer_errors = defer_errors
        self.nrows = 0          # rows added on this rank
        self.total_rows = None  # rows over all ranks, set by finalize
        self.errors: list[str] = []
        self._R = None if self.ncols is None else np.zeros((0, self.ncols + 1))

    @property
    def R(self) -> np.ndarray | None:
        """The running local augmented R factor ``(k, n+1)`` (None before ``n`` is known)."""
        return self._R

    def fail(self, message: str) -> None:
        """Record an error; ``finalize`` raises it on every rank."""
        self.errors.append(str(message))

    def add(self, A, b, w=None) -> None:
        """Fold the rows ``[w*A | w*b]`` into the running R (``w`` None = ones)."""
        if self.errors:
            return
        try:
            A, b, w = _check_rows(A, b, w)
            n = A.shape[1]
            if self.ncols is None:
                self.ncols = n
                self._R = np.zeros((0, n + 1))
            elif n != self.ncols:
                raise ValueError(f"block has {n} columns, expected {self.ncols}")
        except ValueError as exc:
            if not self.defer_errors:
                raise
            self.fail(str(exc))
            return
        m = A.shape[0]
        step = m if self.max_block_rows is None else self.max_block_rows
        for s in range(0, m, max(step, 1)):
            e = min(m, s + step)
            self._R = _fold(self._R, A[s:e], b[s:e], w[s:e])
        self.nrows += m

    def finalize(self, comm):
        """Collective: ``(R (n, n), qb (n,), rnorm2)`` of all ranks' rows, identical on every rank.

        Raises :class:`TsqrError` on every rank if any rank recorded an error or no rank knew the
        number of columns."""
        rank = comm.Get_rank()
        if self.errors:
            part = _Part(None, 0, rank, rank, tuple(f"rank {rank}: {e}" for e in self.errors))
        elif comm.Get_size() == 1:  # nothing travels, nothing combined: R as it is
            part = _Part(self._R, self.nrows, rank, rank)
        else:
            part = _Part.of(self._R, self.nrows, rank, rank)
        total = comm.allreduce(part, op=_combine_parts)
        if total.errors:
            raise TsqrError("distributed QR failed: " + "; ".join(total.errors))
        if total.R is None:
            raise TsqrError("distributed QR: no rank has rows or knows the number of columns "
                            "(pass ncols to StreamingR)")
        self.total_rows = int(total.nrows)
        return split_r(total.R)


def tsqr(comm, A, b, w=None):
    """Collective TSQR of the weighted rows ``[w*A | w*b]`` held by the ranks of ``comm`` (each rank
    passes its own rows; a rank may pass ``(0, n)`` rows).

    Returns ``(R, qb, rnorm2)``, identical on every rank: R ``(n, n)`` upper triangular (zero rows
    appended if there are fewer than n rows overall), ``qb = Qᵀ wb`` ``(n,)`` and the constant
    ``rnorm2`` with ``|wAx - wb|^2 = |Rx - qb|^2 + rnorm2`` for every x (see the module docstring).
    Input errors on any rank raise :class:`TsqrError` on every rank.
    """
    ncols = None
    try:
        shape = np.shape(A)
        if len(shape) == 2:
            ncols = int(shape[1])
    except Exception:  # noqa: BLE001 - reported by add
        pass
    acc = StreamingR(ncols)
    try:
        acc.add(A, b, w)
    except Exception as exc:  # noqa: BLE001 - must reach the collective on every rank
        acc.fail(f"{type(exc).__name__}: {exc}")
    return acc.finalize(comm)
