"""TSQR: local factors, the combine operation, the (simulated) distributed reduction, streaming."""
from __future__ import annotations

import functools
import threading
import tracemalloc

import numpy as np
import pytest

from mpisnap.testing.linalg import random_system
from mpisnap.comm import SerialComm
from mpisnap.plugins.solvers import solve_svd
from mpisnap.tsqr import StreamingR, TsqrError, combine, local_r, split_r, tsqr


def _problem(m, n, seed=0, cond=None):
    return random_system(m, n, seed, cond, weights=(0.2, 3.0))


def _lstsq(A, b, w):
    return np.linalg.lstsq(A * w[:, None], b * w, rcond=1e-13)[0]


def _relerr(X, Y):
    return np.linalg.norm(X - Y) / max(np.linalg.norm(Y), 1e-300)


# ------------------------------------------------------------------------------- local_r


def test_local_r_is_the_r_factor_of_the_weighted_block():
    A, b, w = _problem(50, 6)
    Rf = local_r(A, b, w)
    M = np.column_stack([A * w[:, None], b * w])
    assert Rf.shape == (7, 7)
    assert np.allclose(np.tril(Rf, -1), 0.0)
    assert (np.diagonal(Rf) >= 0).all()
    assert np.allclose(Rf.T @ Rf, M.T @ M, rtol=1e-12, atol=1e-10)
    # unique with the sign convention: matches numpy's R up to row signs
    R0 = np.linalg.qr(M, mode="r")
    R0 *= np.sign(np.diagonal(R0))[:, None]
    assert _relerr(Rf, R0) < 1e-13


def test_local_r_edge_shapes_and_default_weights():
    A, b, _ = _problem(3, 6)
    Rf = local_r(A, b)                       # fewer rows than columns: trapezoidal
    assert Rf.shape == (3, 7)
    assert np.allclose(np.tril(Rf, -1), 0.0)
    M = np.column_stack([A, b])
    assert np.allclose(Rf.T @ Rf, M.T @ M, atol=1e-12)
    assert local_r(np.zeros((0, 6)), np.zeros(0)).shape == (0, 7)
    with pytest.raises(ValueError, match="shape"):
        local_r(A, b[:2])
    with pytest.raises(ValueError, match="non-finite"):
        local_r(A, np.array([1.0, np.nan, 2.0]), check_finite=True)


def test_local_r_peak_memory_is_about_one_block():
    A, b, w = _problem(40000, 24)
    block_bytes = A.shape[0] * (A.shape[1] + 1) * 8
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        local_r(A, b, w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * block_bytes, (peak, block_bytes)


def test_tall_blocks_are_folded_chunk_by_chunk_to_lapack_s_r(monkeypatch):
    """local_r and StreamingR fold the rows in chunks, each stacked under the running R (a short
    last chunk too): the R of LAPACK's QR of the whole weighted block, up to row signs, with one
    chunk's buffer instead of a copy of the block, and a NaN in a later chunk found."""
    import mpisnap.tsqr as T

    monkeypatch.setattr(T, "_CHUNK_ROWS", 4096)
    m, n = 5 * T._CHUNK_ROWS + 1234, 100
    A, b, w = _problem(m, n, seed=4, cond=1e3)
    M = np.column_stack([A * w[:, None], b * w])
    R0 = np.linalg.qr(M, mode="r")
    R0 *= np.sign(np.diagonal(R0))[:, None]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        Rf = local_r(A, b, w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * M.nbytes, (peak, M.nbytes)  # a chunk: a fifth of the block here
    assert Rf.shape == (n + 1, n + 1) and not np.tril(Rf, -1).any()
    assert (np.diagonal(Rf) >= 0).all()
    assert _relerr(Rf, R0) < 1e-12
    acc = StreamingR(n)
    acc.add(A[:7], b[:7], w[:7])  # a trapezoidal R first, then a tall block
    acc.add(A[7:], b[7:], w[7:])
    R, qb, rnorm2 = acc.finalize(SerialComm())
    assert _relerr(np.column_stack([R, qb]), R0[:n]) < 1e-12
    assert np.isclose(rnorm2, R0[n, n] ** 2, rtol=1e-10)
    b2 = b.copy()
    b2[-5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        local_r(A, b2, w, check_finite=True)


# ------------------------------------------------------------------------------- combine


def _splits(m, n, nblocks, seed):
    """Row boundaries with empty blocks and blocks shorter than n+1 rows."""
    rng = np.random.default_rng(seed)
    if nblocks == 1:
        return [0, m]
    cuts = sorted(rng.choice(np.arange(1, m), size=nblocks - 1, replace=True).tolist())
    cuts[0] = 0 if nblocks > 2 else cuts[0]          # an empty first block
    if nblocks > 3:
        cuts[1] = cuts[0] + 2                          # a block with 2 rows (< n+1)
    return [0] + cuts + [m]


@pytest.mark.parametrize("nblocks", [1, 2, 3, 7])
@pytest.mark.parametrize("order", ["left", "tree"])
def test_combine_is_invariant_to_the_row_split(nblocks, order):
    A, b, w = _problem(120, 9, seed=nblocks)
    R0 = local_r(A, b, w)
    cuts = _splits(len(b), A.shape[1], nblocks, seed=nblocks)
    parts = [local_r(A[s:e], b[s:e], w[s:e]) for s, e in zip(cuts[:-1], cuts[1:])]
    assert any(p.shape[0] < A.shape[1] + 1 for p in parts) or nblocks < 3
    if order == "left":
        R = functools.reduce(combine, parts)
    else:
        while len(parts) > 1:
            parts = [combine(*parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                     for i in range(0, len(parts), 2)]
        R = parts[0]
    assert R.shape == R0.shape
    assert _relerr(R, R0) <= 1e-12


def test_combine_identities_and_errors():
    A, b, w = _problem(30, 4)
    Rf = local_r(A, b, w)
    empty = np.zeros((0, 5))
    assert np.array_equal(combine(Rf, empty), Rf)
    assert np.array_equal(combine(empty, Rf), Rf)
    assert np.array_equal(combine(None, Rf), Rf)
    assert combine(None, None) is None
    assert combine(empty, empty).shape == (0, 5)
    short = combine(local_r(A[:1], b[:1], w[:1]), local_r(A[1:3], b[1:3], w[1:3]))
    assert short.shape == (3, 5)
    with pytest.raises(ValueError, match="columns"):
        combine(Rf, np.zeros((2, 4)))


# ----------------------------------------------------------------------------------- tsqr


def test_tsqr_serial_well_conditioned_matches_lstsq():
    A, b, w = _problem(300, 12)
    R, qb, rnorm2 = tsqr(SerialComm(), A, b, w)
    assert R.shape == (12, 12) and qb.shape == (12,)
    x = solve_svd(R, qb).coefficients
    x0 = _lstsq(A, b, w)
    assert _relerr(x, x0) < 1e-12
    res0 = np.sum((A @ x0 - b) ** 2 * w ** 2)
    assert rnorm2 == pytest.approx(res0, rel=1e-12)


def test_tsqr_ill_conditioned_matches_lstsq():
    A, b, w = _problem(400, 10, cond=1e10)
    A = A / w[:, None]                      # keep the weighted matrix at condition 1e10
    assert np.linalg.cond(A * w[:, None]) == pytest.approx(1e10, rel=1e-3)
    R, qb, rnorm2 = tsqr(SerialComm(), A, b, w)
    x = solve_svd(R, qb).coefficients
    x0 = _lstsq(A, b, w)
    # both are backward stable; forward errors are bounded by cond * eps ~ 1e-6
    assert _relerr(x, x0) < 1e-5
    # |x| ~ 1e10 here, so evaluating a residual loses ~eps * cond: compare to 1e-8
    Aw, bw = A * w[:, None], b * w
    res, res0 = np.sum((Aw @ x - bw) ** 2), np.sum((Aw @ x0 - bw) ** 2)
    assert res == pytest.approx(res0, rel=1e-8)
    assert rnorm2 == pytest.approx(res0, rel=1e-8)


def test_tsqr_rank_deficient_min_norm_matches_lstsq():
    A, b, w = _problem(200, 8)
    A = np.column_stack([A, A[:, 2], 3.0 * A[:, 5]])   # duplicate (dependent) columns
    R, qb, _ = tsqr(SerialComm(), A, b, w)
    res = solve_svd(R, qb)
    x0 = _lstsq(A, b, w)
    assert res.info["rank"] == 8
    assert _relerr(res.coefficients, x0) < 1e-10


def test_tsqr_identity_holds_for_any_x_including_too_few_rows():
    for m, n in [(50, 6), (4, 6), (6, 6), (7, 6)]:
        A, b, w = _problem(m, n, seed=m)
        R, qb, rnorm2 = tsqr(SerialComm(), A, b, w)
        assert R.shape == (n, n)
        if m <= n:
            assert rnorm2 == 0.0
        rng = np.random.default_rng(1)
        for _ in range(3):
            x = rng.normal(size=n)
            full = np.sum(((A @ x - b) * w) ** 2)
            assert np.sum((R @ x - qb) ** 2) + rnorm2 == pytest.approx(full, rel=1e-12)
        assert _relerr(solve_svd(R, qb).coefficients, _lstsq(A, b, w)) < 1e-10


def test_split_r():
    Rf = np.triu(np.arange(1.0, 17.0).reshape(4, 4))
    R, qb, r2 = split_r(Rf)
    assert R.shape == (3, 3) and np.array_equal(qb, Rf[:3, 3]) and r2 == 16.0 ** 2
    R, qb, r2 = split_r(Rf[:2])
    assert np.array_equal(R[2], np.zeros(3)) and qb[2] == 0.0 and r2 == 0.0


# ------------------------------------------------------------------ simulated multi-rank


class _ThreadComm:
    """A communicator for ranks running as threads: allreduce deposits every rank's value, then
    each rank reduces the list in rank order — a left fold, or mpi4py's binomial tree
    (``op(lower, higher)``) — on its own copy."""

    class Shared:
        def __init__(self, size, order):
            self.size = size
            self.order = order
            self.values = [None] * size
            self.barrier = threading.Barrier(size, timeout=60)

    def __init__(self, shared, rank):
        self.shared = shared
        self.rank = rank
        self.size = shared.size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def allreduce(self, obj, op=None):
        sh = self.shared
        sh.values[self.rank] = obj
        sh.barrier.wait()
        vals = list(sh.values)
        sh.barrier.wait()
        if sh.order == "left":
            return functools.reduce(op, vals)
        step = 1
        while step < len(vals):                  # binomial tree, rank order kept
            for r in range(0, len(vals), 2 * step):
                if r + step < len(vals):
                    vals[r] = op(vals[r], vals[r + step])
            step *= 2
        return vals[0]


def _run_ranks(size, order, per_rank):
    shared = _ThreadComm.Shared(size, order)
    out = [None] * size

    def work(r):
        try:
            out[r] = per_rank(_ThreadComm(shared, r), r)
        except BaseException as exc:  # noqa: BLE001
            out[r] = exc

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


@pytest.mark.parametrize("size", [2, 3, 5])
@pytest.mark.parametrize("order", ["left", "tree"])
def test_simulated_multi_rank_tsqr_matches_serial(size, order):
    A, b, w = _problem(150, 10, seed=size)
    # rank 0: no rows; rank 1 (if 3+ ranks): 3 rows (< n+1); the others share the rest
    cuts = [0, 0] + ([3] if size > 2 else [])
    rest = size + 1 - len(cuts)
    cuts += [int(c) for c in np.linspace(cuts[-1], 150, rest + 1)[1:]]
    assert len(cuts) == size + 1 and cuts[-1] == 150

    def per_rank(comm, r):
        s, e = cuts[r], cuts[r + 1]
        return tsqr(comm, A[s:e], b[s:e], w[s:e])

    outs = _run_ranks(size, order, per_rank)
    for o in outs:
        assert not isinstance(o, BaseException), o
    R0, qb0, r20 = tsqr(SerialComm(), A, b, w)
    for R, qb, r2 in outs:
        assert np.array_equal(R, outs[0][0]) and np.array_equal(qb, outs[0][1])
        assert r2 == outs[0][2]
        assert _relerr(R, R0) <= 1e-10 and _relerr(qb, qb0) <= 1e-10
        assert r2 == pytest.approx(r20, rel=1e-10)
    x = solve_svd(outs[0][0], outs[0][1]).coefficients
    assert _relerr(x, _lstsq(A, b, w)) <= 1e-10


def test_simulated_bad_input_on_one_rank_raises_on_every_rank():
    A, b, w = _problem(40, 5)

    def per_rank(comm, r):
        if r == 1:
            return tsqr(comm, A[10:20, :4], b[10:20], w[10:20])   # wrong column count
        return tsqr(comm, A[r * 10:(r + 1) * 10], b[r * 10:(r + 1) * 10], w[r * 10:(r + 1) * 10])

    outs = _run_ranks(3, "tree", per_rank)
    for o in outs:
        assert isinstance(o, TsqrError)
        assert str(o) == str(outs[0])
        assert "rank 1: 4 columns" in str(o) and "rank 0: 5 columns" in str(o)


def test_streaming_errors_are_deferred_to_finalize():
    s = StreamingR(3)
    s.add(np.ones((2, 4)), np.ones(2))
    s.add(np.ones((2, 3)), np.ones(2))             # ignored after the error
    with pytest.raises(TsqrError, match="rank 0: block has 4 columns, expected 3"):
        s.finalize(SerialComm())
    with pytest.raises(ValueError, match="expected 3"):
        StreamingR(3, defer_errors=False).add(np.ones((2, 4)), np.ones(2))
    with pytest.raises(TsqrError, match="no rank has rows"):
        StreamingR().finalize(SerialComm())


# ------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("ncols", [None, 7])
@pytest.mark.parametrize("max_block_rows", [None, 5, 64])
def test_streaming_equals_one_shot(ncols, max_block_rows):
    A, b, w = _problem(500, 7, seed=3)
    s = StreamingR(ncols, max_block_rows=max_block_rows)
    for lo, hi in [(0, 0), (0, 3), (3, 180), (180, 181), (181, 500)]:
        s.add(A[lo:hi], b[lo:hi], w[lo:hi])
        assert s.R.shape[0] <= 8                    # memory does not grow with the rows
    assert s.nrows == 500
    assert _relerr(s.R, local_r(A, b, w)) <= 1e-12
    R, qb, r2 = s.finalize(SerialComm())
    R0, qb0, r20 = tsqr(SerialComm(), A, b, w)
    assert _relerr(R, R0) <= 1e-12 and _relerr(qb, qb0) <= 1e-12
    assert r2 == pytest.approx(r20, rel=1e-12)
    assert s.total_rows == 500


def test_streaming_empty_rank_with_ncols():
    s = StreamingR(4)
    R, qb, r2 = s.finalize(SerialComm())
    assert R.shape == (4, 4) and not R.any() and not qb.any() and r2 == 0.0
    assert s.total_rows == 0


# --------------------------------------------------------------- triangles: combine, messages


def _signed(R):
    R = np.array(R, dtype=float)
    k = min(R.shape)
    R[:k] *= np.where(np.diagonal(R)[:k] < 0, -1.0, 1.0)[:, None]
    return R


@pytest.mark.parametrize("k2", [9, 4, 1])
def test_combine_of_triangles_equals_lapack_qr_of_the_stack(k2):
    """Two factors (a triangle on a triangle or trapezoid: LAPACK dtpqrt) give the R of LAPACK's
    QR of the stacked rows, up to row signs; a general (non-triangular) block still works."""
    from scipy.linalg import qr

    A, b, w = _problem(60, 8, seed=k2)
    R1 = local_r(A[:30], b[:30], w[:30])
    R2 = local_r(A[30:30 + k2], b[30:30 + k2], w[30:30 + k2])
    assert R1.shape == (9, 9) and R2.shape == (k2, 9)
    ref = _signed(qr(np.vstack([R1, R2]), mode="r")[0][:9])
    for R in (combine(R1, R2), combine(R2, R1)):
        assert R.shape == (9, 9) and _relerr(R, ref) <= 1e-13
    G = np.random.default_rng(1).normal(size=(5, 9))  # not upper triangular
    assert _relerr(combine(R1, G), _signed(qr(np.vstack([R1, G]), mode="r")[0][:9])) <= 1e-13


def test_pack_roundtrip_and_size():
    from mpisnap.tsqr import _pack, _unpack

    for k, p in [(6, 6), (3, 6), (0, 4), (1, 1)]:
        R = np.triu(np.random.default_rng(k).normal(size=(k, p)))
        flat = _pack(R)
        assert flat.shape == (k * p - k * (k - 1) // 2,)
        assert np.array_equal(_unpack(flat, k, p), R)


def test_reduction_messages_carry_only_the_triangle():
    """What each rank hands to the reduction (and what the reduction passes on) goes in a message
    as its packed upper triangle — (n+1)(n+2)/2 numbers, about half of the square's pickle — and
    comes back as the same array."""
    import pickle

    n = 40
    A, b, w = _problem(300, n, seed=4)
    seen = []

    class Recording(_ThreadComm):
        def allreduce(self, obj, op=None):
            def traced(x, y):
                out = op(x, y)
                seen.append(out)
                return out
            seen.append(obj)
            return super().allreduce(obj, op=traced)

    shared = _ThreadComm.Shared(2, "tree")
    outs = [None, None]

    def work(r):
        outs[r] = tsqr(Recording(shared, r), A[r * 150:(r + 1) * 150], b[r * 150:(r + 1) * 150],
                       w[r * 150:(r + 1) * 150])

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 4 and all(p.R.shape == (n + 1, n + 1) for p in seen)
    full = len(pickle.dumps(np.zeros((n + 1, n + 1))))
    for p in seen:
        msg = pickle.dumps(p)
        assert len(msg) < 0.56 * full
        back = pickle.loads(msg)
        assert back.R.tobytes() == p.R.tobytes() and (back.nrows, back.first, back.last) == (
            p.nrows, p.first, p.last)
    assert _relerr(outs[0][0], tsqr(SerialComm(), A, b, w)[0]) <= 1e-12


def test_parts_are_packed_only_for_messages(monkeypatch):
    """Combining parts packs nothing (a part is packed when it is pickled, once per message); a
    reduction whose messages are pickled, as mpi4py's are, gives the same bytes (signed zeros
    too) on every rank as one whose operands never leave their rank."""
    import pickle

    import mpisnap.tsqr as T

    packs = []
    real_pack = T._pack
    monkeypatch.setattr(T, "_pack", lambda R: packs.append(R.shape) or real_pack(R))

    class Messages(_ThreadComm):
        """mpi4py's tree: the higher ranks' part arrives pickled; ranks > 0 get the result by
        a pickled broadcast."""

        def allreduce(self, obj, op=None):
            def op_received(lower, higher):
                return op(lower, pickle.loads(pickle.dumps(higher)))
            out = super().allreduce(obj, op=op_received)
            return out if self.rank == 0 else pickle.loads(pickle.dumps(out))

    for seed in range(12):
        rng = np.random.default_rng(seed)
        m, n = 40, int(rng.integers(3, 9))
        A = np.round(rng.normal(size=(m, n)))  # small integers: exact zeros appear in R
        A[: m // 2, rng.integers(n)] = 0.0
        b, w = rng.normal(size=m), rng.uniform(0.5, 2.0, m)
        size = 3 + seed % 3
        cuts = [0, *np.sort(rng.integers(0, m + 1, size - 1)), m]

        def per_rank(comm, r):
            s, e = cuts[r], cuts[r + 1]
            return tsqr(comm, A[s:e], b[s:e], w[s:e])

        packs.clear()
        local = _run_ranks(size, "tree", per_rank)
        assert packs == []
        sent = [None] * size
        shared = _ThreadComm.Shared(size, "tree")

        def work(r):
            sent[r] = per_rank(Messages(shared, r), r)

        threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # every simulated rank runs the whole tree (size - 1 messages), ranks > 0 a broadcast
        assert len(packs) == (size + 1) * (size - 1)
        for o in local + sent:
            assert not isinstance(o, BaseException), o
            R, qb, r2 = o
            assert R.tobytes() == local[0][0].tobytes() and qb.tobytes() == local[0][1].tobytes()
            assert r2 == local[0][2]
