"""The fit's stages called one by one (as tuning, uncertainty and active learning call them)
give the fit's answer; compressed blocks per key combine to the whole system; rows folded into
an existing R equal one compression of all rows; an in-process plugin brings its own settings
section; the layout rules of DESIGN.md hold (no production module imports mpisnap.testing, the
core imports no plugin)."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap.comm import SerialComm
from mpisnap.pipeline import (build_shard, compress, compress_shard, evaluate, finalize, own_all,
                              plan, prepare, shard_blocks, solve_compressed)
from mpisnap.pipeline.compression import Compressed
from mpisnap.tsqr import StreamingR

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "Cu_EMT" / "Cu_EMT.in"


@pytest.fixture(scope="module")
def staged():
    comm = SerialComm()
    setup = prepare(str(EXAMPLE), autoload=False)
    pl = plan(comm, setup)
    shard = build_shard(comm, setup, pl=pl)
    return comm, setup, pl, shard


def test_stages_by_hand_equal_fit(staged):
    comm, setup, pl, shard = staged
    system = finalize(comm, compress_shard(shard))
    sol = solve_compressed(comm, system, setup)
    coef = setup.model.symmetrize(sol.coefficients)
    metrics, rows = evaluate(comm, shard, coef)
    ref = mpisnap.fit(str(EXAMPLE), autoload=False, write=False)
    np.testing.assert_array_equal(coef, ref.coefficients)
    assert [(m.group, m.kind, m.split, m.rmse) for m in metrics] == \
        [(m.group, m.kind, m.split, m.rmse) for m in ref.metrics]
    assert system.nrows == int(shard.train.sum())


def _stack(blocks: dict, scale: dict) -> Compressed:
    """Blocks combined with per-key weights by a QR of the stacked, scaled triangles."""
    n = next(iter(blocks.values())).R.shape[0]
    acc = StreamingR(n)
    for k, c in blocks.items():
        acc.add(c.R, c.qb, np.full(n, scale[k]))
    return finalize(SerialComm(), acc)


def test_blocks_per_kind_combine_to_the_whole_system(staged):
    comm, setup, pl, shard = staged
    whole = finalize(comm, compress_shard(shard))
    per_kind = finalize(comm, compress_shard(shard, key=lambda lab: lab["kind"]), setup.model.ncols)
    assert sorted(per_kind) == sorted(set(shard.labels["kind"][shard.train].tolist()))
    assert sum(c.nrows for c in per_kind.values()) == whole.nrows
    stacked = _stack(per_kind, {k: 1.0 for k in per_kind})
    # same normal matrix and solution (R unique up to row signs, which both fix)
    np.testing.assert_allclose(stacked.R, whole.R, rtol=0, atol=1e-10 * np.abs(whole.R).max())
    beta = np.linalg.lstsq(whole.R, whole.qb, rcond=None)[0]
    beta_k = np.linalg.lstsq(stacked.R, stacked.qb, rcond=None)[0]
    np.testing.assert_allclose(beta_k, beta, rtol=1e-8, atol=1e-10 * np.abs(beta).max())
    # residual of a block = ‖R_k β − (Qᵀb)_k‖² + ρ_k², checked against the raw rows
    t = shard.train
    for k, c in per_kind.items():
        sel = t & (shard.labels["kind"] == k)
        r = shard.w[sel] * (shard.A[sel] @ beta - shard.b[sel])
        np.testing.assert_allclose(np.sum((c.R @ beta - c.qb) ** 2) + c.rnorm2, r @ r,
                                   rtol=1e-9)


def test_weighting_blocks_equals_reweighted_rows(staged):
    """Scaling a block by s is the same as multiplying its rows' weights by s."""
    comm, setup, pl, shard = staged
    per_kind = finalize(comm, compress_shard(shard, key=lambda lab: lab["kind"]), setup.model.ncols)
    scale = {0: 3.0, 1: 0.5, 2: 2.0}
    stacked = _stack(per_kind, scale)
    w = shard.w * np.choose(shard.labels["kind"], [scale[0], scale[1], scale[2]])
    t = shard.train
    direct = StreamingR(shard.A.shape[1])
    direct.add(shard.A[t], shard.b[t], w[t])
    direct = finalize(comm, direct)
    np.testing.assert_allclose(np.abs(stacked.R), np.abs(direct.R), rtol=0,
                               atol=1e-9 * np.abs(direct.R).max())


def test_folding_new_rows_into_r_equals_one_compression(staged):
    comm, setup, pl, shard = staged
    blocks = list(shard_blocks(shard, 500))
    first = compress(blocks[: len(blocks) // 2], shard.A.shape[1])
    folded = finalize(comm, compress(blocks[len(blocks) // 2:], shard.A.shape[1], into=first))
    once = finalize(comm, compress(blocks, shard.A.shape[1]))
    np.testing.assert_allclose(folded.R, once.R, rtol=0, atol=1e-10 * np.abs(once.R).max())
    assert folded.nrows == once.nrows


def test_rows_of_chosen_entries(staged):
    """Rows for a few configurations (e.g. new labels) through a partition that owns them."""
    comm, setup, pl, shard = staged
    pick = [3, 7]
    sub = build_shard(comm, setup, pl=own_all([pl.entries[i] for i in pick], pl.group_names))
    for k, i in enumerate(pick):
        mine = shard.labels["config"] == i
        np.testing.assert_array_equal(sub.A[sub.labels["config"] == k], shard.A[mine])
        np.testing.assert_array_equal(sub.b[sub.labels["config"] == k], shard.b[mine])


@dataclass(frozen=True)
class _Demo:
    level: int


class _SectionPlugin:
    @mpisnap.hookimpl
    def mpisnap_settings_sections(self):
        from mpisnap.records import SettingsSection

        def parse(raw, ctx):
            from mpisnap.settings import p_int

            return _Demo(ctx.get("level", p_int, 1))

        return [SettingsSection("DEMO", parse, ("level",), description="a test section")]


def test_in_process_plugin_brings_a_section(tmp_path):
    inp = tmp_path / "demo.in"
    inp.write_text(EXAMPLE.read_text().replace("[PATH]", "[DEMO]\nlevel = 4\n\n[PATH]"))
    overrides = [f"PATH.dataPath={EXAMPLE.parent / 'JSON'}"]
    setup = prepare(str(inp), overrides, plugins=[_SectionPlugin()], autoload=False)
    assert setup.settings.section("DEMO") == _Demo(4)
    with pytest.raises(ValueError, match=r"demo.in: \[DEMO\]: unknown section"):
        prepare(str(inp), overrides, autoload=False)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_layout_rules():
    """No production module imports mpisnap.testing; the core (mpisnap/) imports no plugin."""
    core = [p for p in (REPO / "mpisnap").rglob("*.py") if "testing" not in p.parts]
    assert len(core) > 20
    for path in core + list((REPO / "plugins").rglob("*.py")):
        bad = {m for m in _imports(path) if m == "mpisnap.testing" or m.startswith("mpisnap.testing.")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"
    for path in core:
        bad = {m for m in _imports(path) if m == "mpisnap.plugins" or m.startswith("mpisnap.plugins.")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_fold_blocks_give_cross_validation_residuals(staged):
    """Per (fold, group, kind) blocks: the fit without fold f, from blocks, equals a fit of the
    raw rows without fold f; the held-out residual from the block equals the raw rows'."""
    from mpisnap.pipeline.folds import BlockIndex, assign_folds, combine, residual

    comm, setup, pl, shard = staged
    folds = assign_folds(pl.entries, 3, seed=7)
    assert set(folds[[not e.test for e in pl.entries]].tolist()) == {0, 1, 2}
    assert (folds[[e.test for e in pl.entries]] == -1).all()
    np.testing.assert_array_equal(folds, assign_folds(pl.entries[::-1], 3, seed=7)[::-1])
    index = BlockIndex(folds, len(pl.group_names))
    blocks = finalize(comm, compress_shard(shard, key=index.key), shard.A.shape[1])
    row_fold = folds[shard.labels["config"]]
    t = shard.train
    for f in range(3):
        system = combine(blocks, lambda c: 0.0 if index.decode(c)[0] == f else 1.0)
        beta = np.linalg.lstsq(system.R, system.qb, rcond=None)[0]
        keep = t & (row_fold != f)
        sw = shard.w[keep]
        beta_raw = np.linalg.lstsq(shard.A[keep] * sw[:, None], shard.b[keep] * sw,
                                   rcond=None)[0]
        np.testing.assert_allclose(beta, beta_raw, rtol=1e-7, atol=1e-9 * np.abs(beta_raw).max())
        held = [c for c in blocks if index.decode(c)[0] == f]
        out = t & (row_fold == f)
        r = shard.w[out] * (shard.A[out] @ beta - shard.b[out])
        np.testing.assert_allclose(sum(residual(blocks[c], beta) for c in held), r @ r,
                                   rtol=1e-9)
