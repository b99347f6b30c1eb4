"""Metrics from per-rank partial sums against direct numpy computations; table formats."""
import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.testing.shared import shared_data
from mpisnap.metrics import (ALL_GROUPS, SPLITS, SUM_FIELDS, WEIGHTINGS, compute_metrics,
                             format_metrics, metric_rows, partial_sums, read_metrics, reduce_sums)
from mpisnap.results import LABEL_DTYPE, ROW_KINDS, DesignShard, MetricRow

INP_METRICS = shared_data("InP_JPCA2020", "20May21_Standard", "InP_metrics.md")


def make_shard(seed=0, groups=("Bulk", "EOS", "Shear"), nconfigs=12, ncols=5, test_every=4,
               energy_offset=-3.0):
    """A small design shard: per configuration 1 energy, 3N force and 6 stress rows; weights vary
    per group and kind and a little per configuration; some configurations are testing ones."""
    rng = np.random.default_rng(seed)
    labels, b, w = [], [], []
    for c in range(nconfigs):
        g = c % len(groups)
        test = (c % test_every) == test_every - 1
        natoms = int(rng.integers(1, 4))
        cw = 1.0 + 0.1 * (c % 3)
        rows = [(0, -1, 0)] + [(1, a, x) for a in range(natoms) for x in range(3)] \
            + [(2, -1, v) for v in range(6)]
        for kind, atom, comp in rows:
            labels.append((c, g, kind, atom, comp, test))
            if kind == 0:
                b.append(energy_offset + 0.05 * rng.normal())
                w.append(cw * 100.0 * (g + 1))
            elif kind == 1:
                b.append(rng.normal())
                w.append(cw * 10.0 / (g + 1))
            else:
                b.append(1e4 * rng.normal())
                w.append(cw * 1e-6)
    labels = np.array(labels, dtype=LABEL_DTYPE)
    b = np.array(b)
    n = len(b)
    A = rng.normal(size=(n, ncols))
    pred = b + np.where(labels["kind"] == 2, 300.0, np.where(labels["kind"] == 0, 0.01, 0.1)) \
        * rng.normal(size=n)
    return DesignShard(A=A, b=b, w=np.array(w), labels=labels,
                       config_names=[f"{groups[c % len(groups)]}/c{c}.json" for c in range(nconfigs)],
                       group_names=list(groups), predictions=pred)


def subshard(shard, sel):
    return DesignShard(A=shard.A[sel], b=shard.b[sel], w=shard.w[sel], labels=shard.labels[sel],
                       config_names=shard.config_names, group_names=shard.group_names,
                       predictions=None if shard.predictions is None else shard.predictions[sel])


def direct(shard, group, weighting, split, kind):
    """(n, mae, rmse, rsq) of one cell computed straight from the rows (None when empty)."""
    lab = shard.labels
    sel = (lab["kind"] == ROW_KINDS.index(kind)) & (lab["test"] == (split == "Testing"))
    if group != ALL_GROUPS:
        sel &= lab["group"] == shard.group_names.index(group)
    if not sel.any():
        return None
    r = shard.predictions[sel] - shard.b[sel]
    y = shard.b[sel].copy()
    if weighting == "Weighted":
        r = r * shard.w[sel]
        y = y * shard.w[sel]
    ss_res = np.sum(r * r)
    ss_tot = np.sum((y - y.mean()) ** 2)
    if ss_tot > 0:
        rsq = 1 - ss_res / ss_tot
    else:
        rsq = -np.inf if ss_res > 0 else np.nan
    return sel.sum(), np.mean(np.abs(r)), np.sqrt(np.mean(r * r)), rsq


def assert_rows_match(rows, shard, rtol=1e-12):
    seen = set()
    for m in rows:
        ref = direct(shard, m.group, m.weighting, m.split, m.kind)
        assert ref is not None, m
        n, mae, rmse, rsq = ref
        assert m.ncount == n
        assert m.mae == pytest.approx(mae, rel=rtol, abs=0)
        assert m.rmse == pytest.approx(rmse, rel=rtol, abs=0)
        if math.isfinite(rsq):
            assert m.rsq == pytest.approx(rsq, rel=rtol, abs=1e-12)
        else:
            assert (math.isnan(m.rsq) and math.isnan(rsq)) or m.rsq == rsq
        seen.add((m.group, m.weighting, m.split, m.kind))
    # every non-empty cell is in the table, nothing else
    for g in [ALL_GROUPS] + list(shard.group_names):
        for wt in WEIGHTINGS:
            for sp in SPLITS:
                for k in ROW_KINDS:
                    assert ((g, wt, sp, k) in seen) == (direct(shard, g, wt, sp, k) is not None)


def test_partial_sums_shape_and_fields():
    shard = make_shard()
    s = partial_sums(shard)
    assert s.shape == (3, 2, 2, 3, len(SUM_FIELDS))
    assert s[..., 0].sum() == 2 * shard.nrows          # every row counted once per weighting
    # Σy of the unweighted cells is Σb
    assert s[:, 0, ..., 3].sum() == pytest.approx(shard.b.sum())


def test_metrics_match_numpy():
    shard = make_shard()
    rows = compute_metrics(SerialComm(), shard)
    assert_rows_match(rows, shard)
    # order: *ALL first, then the groups in group_names order
    order = []
    for m in rows:
        if not order or order[-1] != m.group:
            order.append(m.group)
    assert order == [ALL_GROUPS, "Bulk", "EOS", "Shear"]
    assert {m.split for m in rows} == {"Training", "Testing"}


def test_weighted_is_unweighted_times_weight_for_constant_weights():
    shard = make_shard(test_every=10**6)
    # one weight per group and kind (FitSNAP): weighted mae = unweighted mae * weight, same R²
    for g in range(3):
        for k in range(3):
            sel = (shard.labels["group"] == g) & (shard.labels["kind"] == k)
            shard.w[sel] = [747239.126417448, 1609572.6749909, 1e-12][k] * (g + 1)
    rows = {(m.group, m.weighting, m.split, m.kind): m for m in compute_metrics(SerialComm(), shard)}
    for g in range(3):
        for k, kind in enumerate(ROW_KINDS):
            u = rows[(shard.group_names[g], "Unweighted", "Training", kind)]
            wt = rows[(shard.group_names[g], "Weighted", "Training", kind)]
            wgt = [747239.126417448, 1609572.6749909, 1e-12][k] * (g + 1)
            assert wt.mae == pytest.approx(u.mae * wgt, rel=1e-12)
            assert wt.rmse == pytest.approx(u.rmse * wgt, rel=1e-12)
            assert wt.rsq == pytest.approx(u.rsq, rel=1e-9)


def test_single_energy_row_gives_minus_inf_and_perfect_gives_nan():
    shard = make_shard(groups=("Bulk", "EOS"), nconfigs=3, test_every=10**6)
    # config 1 is the only one of group EOS: one energy row
    rows = {(m.group, m.weighting, m.split, m.kind): m for m in compute_metrics(SerialComm(), shard)}
    for wt in WEIGHTINGS:
        m = rows[("EOS", wt, "Training", "Energy")]
        assert m.ncount == 1 and m.rsq == -math.inf and m.mae > 0
    # exact prediction of the single row: 0/0 -> nan
    e = (shard.labels["group"] == 1) & (shard.labels["kind"] == 0)
    shard.predictions[e] = shard.b[e]
    rows = {(m.group, m.weighting, m.split, m.kind): m for m in compute_metrics(SerialComm(), shard)}
    m = rows[("EOS", "Unweighted", "Training", "Energy")]
    assert m.mae == 0 and math.isnan(m.rsq)
    assert_rows_match(list(rows.values()), shard)


def test_constant_truth_many_rows_is_exactly_zero_spread():
    shard = make_shard(groups=("G",), nconfigs=7, test_every=10**6)
    e = shard.labels["kind"] == 0
    shard.b[e] = -3.123456789012345          # identical truths: SS_tot must be exactly 0
    m = [r for r in compute_metrics(SerialComm(), shard)
         if (r.group, r.weighting, r.kind) == ("G", "Unweighted", "Energy")][0]
    assert m.rsq == -math.inf


def test_no_cancellation_for_small_spread_around_large_mean():
    shard = make_shard(groups=("G",), nconfigs=40, test_every=10**6, energy_offset=-3.0)
    e = shard.labels["kind"] == 0
    rng = np.random.default_rng(5)
    shard.b[e] = -3.0 + 1e-7 * rng.normal(size=e.sum())
    shard.predictions[e] = shard.b[e] + 3e-8 * rng.normal(size=e.sum())
    rows = compute_metrics(SerialComm(), shard)
    assert_rows_match(rows, shard, rtol=1e-9)


def test_sums_add_up_over_ranks():
    """Three 'ranks' holding interleaved rows give the same table as one rank holding all."""
    shard = make_shard(seed=3, nconfigs=20)
    parts = [subshard(shard, np.arange(shard.nrows) % 3 == r) for r in range(3)]

    class FakeComm:
        def Get_size(self):
            return 3

        def allgather(self, obj):
            return [partial_sums(p) for p in parts]

    total = reduce_sums(FakeComm(), partial_sums(parts[0]))
    rows = metric_rows(total, shard.group_names)
    assert_rows_match(rows, shard, rtol=1e-11)
    serial = compute_metrics(SerialComm(), shard)
    assert [(m.group, m.weighting, m.split, m.kind, m.ncount) for m in rows] == \
        [(m.group, m.weighting, m.split, m.kind, m.ncount) for m in serial]


def test_reduce_sums_serial_and_empty_shard():
    shard = make_shard()
    s = partial_sums(shard)
    assert np.array_equal(reduce_sums(SerialComm(), s), s)
    empty = subshard(shard, np.zeros(shard.nrows, dtype=bool))
    empty.predictions = None
    z = partial_sums(empty)
    assert z.shape == s.shape and not z.any()
    assert metric_rows(z, shard.group_names) == []


def test_errors():
    shard = make_shard()
    shard.predictions = None
    with pytest.raises(ValueError, match="no predictions"):
        partial_sums(shard)
    with pytest.raises(ValueError, match="do not match"):
        metric_rows(np.zeros((2, 2, 2, 3, len(SUM_FIELDS))), ["a"])


def test_mpi_two_ranks(tmp_path):
    """Under mpiexec -n 2 both ranks get the serial table (to round-off), bit-identical."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, pickle
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np
        from mpi4py import MPI
        from test_metrics import make_shard, subshard
        from mpisnap.metrics import compute_metrics
        comm = MPI.COMM_WORLD
        shard = make_shard(seed=7, nconfigs=15)
        mine = subshard(shard, np.arange(shard.nrows) % comm.size == comm.rank)
        rows = compute_metrics(comm, mine)
        allrows = comm.gather(rows)
        if comm.rank == 0:
            with open({str(tmp_path / 'out.pkl')!r}, "wb") as f:
                pickle.dump(allrows, f)
    """))
    mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], check=True, timeout=300,
                   capture_output=True)
    import pickle
    with open(tmp_path / "out.pkl", "rb") as f:
        r0, r1 = pickle.load(f)
    assert r0 == r1 or all(a == b or (math.isnan(a.rsq) and math.isnan(b.rsq)) for a, b in zip(r0, r1))
    assert_rows_match(r0, make_shard(seed=7, nconfigs=15), rtol=1e-11)


# -- formats ------------------------------------------------------------------------------------

def sample_rows():
    return [MetricRow("*ALL", "Unweighted", "Training", "Energy", 1894, 0.00331169, 0.00737328,
                      0.999886),
            MetricRow("*ALL", "Weighted", "Training", "Stress", 11364, 1.2777e-08, 3.32781e-08,
                      0.959519),
            MetricRow("Bulk", "Unweighted", "Testing", "Energy", 1, 0.00057938, 0.00057938,
                      -math.inf),
            MetricRow("Bulk", "Weighted", "Training", "Force", 24, 12777.0, 33278.1, math.nan)]


def same(a, b, rel=0.0):
    assert (a.group, a.weighting, a.split, a.kind, a.ncount) == \
        (b.group, b.weighting, b.split, b.kind, b.ncount)
    for f in ("mae", "rmse", "rsq"):
        x, y = getattr(a, f), getattr(b, f)
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=rel, abs=0)


@pytest.mark.parametrize("style,ext", [("MD", ".md"), ("CSV", ".csv"), ("SSV", ".txt"),
                                       ("JSON", ".json")])
def test_format_round_trip(tmp_path, style, ext):
    rows = sample_rows()
    rows.append(MetricRow("g2", "Weighted", "Testing", "Stress", 6, 1 / 3, math.pi, 1 - 1e-13))
    p = tmp_path / f"m{ext}"
    p.write_text(format_metrics(rows, style))
    back = read_metrics(p)
    assert len(back) == len(rows)
    for a, b in zip(back, rows):
        if style == "JSON" and math.isinf(b.rsq):      # strict JSON: non-finite -> null -> nan
            b = MetricRow(*[getattr(b, f) for f in MetricRow.__dataclass_fields__][:-1], math.nan)
        same(a, b, rel=1e-5 if style == "MD" else 0.0)


def test_markdown_looks_like_fitsnap():
    text = format_metrics(sample_rows(), "MD")
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["", "ncount", "mae", "rmse", "rsq"]
    assert lines[1].startswith("|:-") and lines[1].endswith(":|")
    assert lines[2].startswith("| ('*ALL', 'Unweighted', 'Training', 'Energy')")
    assert len({len(ln) for ln in lines}) == 1          # a rectangular table
    assert "-inf" in lines[4] and "nan" in lines[5]
    assert "0.00331169" in lines[2] and "1.2777e-08" in lines[3]


def test_reads_fitsnap_markdown():
    rows = read_metrics(INP_METRICS)
    assert len(rows) == 120
    bulk = {(m.weighting, m.kind): m for m in rows if m.group == "Bulk"}
    assert bulk[("Weighted", "Energy")].mae == pytest.approx(0.00057938 * 747239.126417448,
                                                             rel=1e-5)
    assert bulk[("Unweighted", "Energy")].rsq == -math.inf
