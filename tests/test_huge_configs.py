"""Huge configurations: block-wise descriptors and rows with bounded working memory, the same
numbers as the whole computation (bitwise), and a SIGTERM that ends a fit between blocks."""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

import mpisnap
from mpisnap import Descriptor
from mpisnap.testing import structures as S

PARAMS = {
    "linear": dict(twojmax=6, bzeroflag=1),
    "quadratic": dict(twojmax=4, quadraticflag=1, bzeroflag=1),
    "chem": dict(twojmax=4, chemflag=1, bnormflag=1, wselfallflag=1, bzeroflag=1),
}


def two_element_cell(n=(5, 5, 6), seed=11):
    """A few hundred atoms: a displaced two-element bcc supercell, sheared (triclinic)."""
    s = S.bcc_supercell(n, a=3.316, displacement=0.15, ntypes=2, seed=seed)
    shear = np.array([[1.0, 0.0, 0.0], [0.12, 1.0, 0.0], [-0.07, 0.05, 1.0]])
    return dict(positions=s.positions @ shear, cell=s.cell @ shear, pbc=True, types=s.types)


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("block_atoms, block_bytes", [(1, 64 << 20), (7, 64 << 20),
                                                      (None, 20000), (50, 1)])
def test_blockwise_equals_whole_computation(name, block_atoms, block_bytes):
    """Force rows accumulated block by block into a strided view of design rows, energy and
    virial rows and neighbour counts equal compute()'s bitwise, for blocks of 1, 7 and 50 atoms
    or bounded by bytes, and any thread count."""
    kw = two_element_cell()
    n = len(kw["positions"])
    whole = Descriptor(type=["A", "B"], radelem=[0.5, 0.45], wj=[1.0, 0.8], threads=1,
                       **PARAMS[name])
    ref = whole.compute(**kw)
    for threads in (1, 2):
        d = Descriptor(type=["A", "B"], radelem=[0.5, 0.45], wj=[1.0, 0.8], threads=threads,
                       **PARAMS[name])
        d._block_atoms, d._block_bytes = block_atoms, block_bytes
        rows = np.full((3 * n + 5, 2 * (d.nvalues + 1)), np.nan)  # constant column per type
        view = rows[2:2 + 3 * n].reshape(3 * n, 2, d.nvalues + 1)[:, :, 1:]
        r = d.compute_into(view, **kw)
        assert r.force_rows is view and r.B is None
        assert np.array_equal(view, ref.force_rows)
        assert np.isnan(rows[:2]).all() and np.isnan(rows[2:2 + 3 * n, [0, d.nvalues + 1]]).all()
        assert np.array_equal(r.energy_row, ref.energy_row)
        assert np.array_equal(r.virial_rows, ref.virial_rows)
        assert np.array_equal(r.nneigh, ref.nneigh)


def test_compute_into_without_forces_and_bad_destinations():
    kw = two_element_cell((3, 3, 3))
    d = Descriptor(type=["A", "B"], radelem=[0.5, 0.45], twojmax=4)
    ref = d.compute(**kw)
    r = d.compute_into(None, **kw, virial=False)
    assert r.force_rows is None and r.virial_rows is None
    assert np.array_equal(r.energy_row, ref.energy_row)
    n = len(kw["positions"])
    good = np.zeros((3 * n, 2, d.nvalues))
    read_only = good.copy()
    read_only.flags.writeable = False
    overlapping = np.lib.stride_tricks.as_strided(good, strides=(good.strides[0], 0, 8))
    for bad in (good.astype(np.float32), np.zeros((3 * n, 2, d.nvalues + 1)),
                np.zeros((3 * n, 2, 2 * d.nvalues))[:, :, ::2], overlapping, read_only):
        with pytest.raises(ValueError, match="force_out must be a writable float64 array"):
            d.compute_into(bad, **kw)
    d.compute_into(np.zeros((2, 3 * n, d.nvalues)).transpose(1, 0, 2), **kw)  # any row strides


def test_an_error_in_a_later_block_names_the_atom():
    kw = two_element_cell((3, 3, 3))
    kw["positions"][45] = kw["positions"][40]
    d = Descriptor(type=["A", "B"], radelem=[0.5, 0.45], twojmax=2)
    d._block_atoms = 8  # atom 40 is in the sixth block
    out = np.zeros((3 * len(kw["positions"]), 2, d.nvalues))
    with pytest.raises(ValueError, match="atom 40 sits on atom 45"):
        d.compute_into(out, **kw)


MEMORY_PROBE = r"""
import json, resource, sys
import numpy as np
from mpisnap import Descriptor
from mpisnap.testing import structures as S

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MiB

s = S.bcc_supercell((20, 20, 20), a=3.316, displacement=0.05, seed=3)   # 16,000 atoms
d = Descriptor(type=["Ta"], twojmax=8, rcutfac=4.67637, radelem=0.5, threads=2)
n = len(s.positions)
out = np.ones((3 * n, 1, d.nvalues))
d._block_bytes = 8 << 20
before = peak()
d.compute_into(out, **s.kwargs())
into = peak() - before
before = peak()
r = d.compute(**s.kwargs())
whole = peak() - before - (r.force_rows.nbytes + r.B.nbytes) / 2 ** 20
print(json.dumps({"into": into, "whole": whole, "rows": out.nbytes / 2 ** 20}))
"""


def test_working_memory_is_bounded_by_the_block():
    """16,000 atoms, twojmax 8 (14 neighbours): the derivatives of the whole configuration would
    take 296 MB. Block-wise with 8 MiB blocks the peak grows by a few tens of MiB (neighbour grid,
    block lists and scratch, thread workspaces); compute() stays within its 64 MiB blocks plus
    that, beyond its outputs."""
    p = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    assert m["rows"] > 15
    assert m["into"] < 40, m
    assert m["whole"] < 64 + 40, m


# -- the fit pipeline -------------------------------------------------------------------------

def write_config(path: Path, positions, cell, symbols, seed):
    rng = np.random.default_rng(seed)
    n = len(positions)
    data = {"Positions": np.asarray(positions).tolist(), "Lattice": np.asarray(cell).tolist(),
            "AtomTypes": list(symbols), "NumAtoms": n, "Energy": -3.0 * n,
            "Forces": rng.normal(0.0, 0.3, (n, 3)).tolist(),
            "Stress": (np.eye(3) * 500.0 + rng.normal(0, 50, (3, 3))).tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"Dataset": {"Data": [data]}}))


def write_input(folder: Path, bispectrum: str) -> Path:
    inp = folder / "fit.in"
    inp.write_text(f"[BISPECTRUM]\n{bispectrum}\n[CALCULATOR]\nenergy = 1\nforce = 1\nstress = 1\n"
                   "[SOLVER]\nsolver = SVD\n[SCRAPER]\nscraper = JSON\n[PATH]\ndataPath = JSON\n"
                   "[OUTFILE]\npotential = pot\n[GROUPS]\nG = 1.0 0.0 100 1 1e-4\n")
    return inp


def test_fit_writes_big_configurations_in_place(tmp_path, monkeypatch):
    """A 2,200-atom configuration between two small ones goes the block-wise path (rows written
    straight into the shard) and gives the same shard, bitwise, as the whole computation."""
    from mpisnap.plugins.models import LinearSNAP

    in_place = []
    rows_into = LinearSNAP.rows_into

    def spy(self, A, config, *args, **kw):
        in_place.append((config.natoms, A.base is not None))
        return rows_into(self, A, config, *args, **kw)

    monkeypatch.setattr(LinearSNAP, "rows_into", spy)
    for k, n in enumerate(((2, 2, 2), (10, 10, 11), (2, 3, 2))):
        s = S.bcc_supercell(n, a=3.316, displacement=0.1, ntypes=2, seed=k)
        write_config(tmp_path / "JSON" / "G" / f"c{k}.json", s.positions, s.cell,
                     np.array(["Ta", "W"])[s.types], seed=k)
    inp = write_input(tmp_path, "type = Ta W\ntwojmax = 4 2\nradelem = 0.5 0.45\nwj = 1 0.9\n"
                                "rcutfac = 4.67637\nbzeroflag = 0")
    res = mpisnap.fit(inp, write=False, threads=2)
    assert in_place == [(2200, True)]  # a view of the shard's preallocated rows
    shard = res.shard
    from mpisnap.pipeline import prepare

    pieces = prepare(inp)
    model = pieces.model
    for k in range(3):
        from mpisnap.records import ConfigRef

        c = pieces.reader.load(ConfigRef(f"G/c{k}.json", "G", str(tmp_path / "JSON" / "G" /
                                                               f"c{k}.json")))
        d = model.descriptor.compute(positions=c.positions, cell=c.cell, pbc=c.pbc,
                                     symbols=c.symbols)
        A, b, kind, atom, comp = model.rows(c, d, None, 0.0)
        mine = shard.labels["config"] == shard.config_names.index(f"G/c{k}.json")
        assert np.array_equal(shard.A[mine], A)
        assert np.array_equal(shard.b[mine], b)
        assert np.array_equal(shard.labels["kind"][mine], kind)
        assert np.array_equal(shard.labels["atom"][mine], atom)
    assert shard.A.shape[0] == 1 + 3 * 16 + 6 + 1 + 3 * 2200 + 6 + 1 + 3 * 24 + 6
    # streaming mode: the big configuration's rows in a buffer of their own, folded into R
    streamed = mpisnap.fit(inp, write=False, threads=2, overrides=["MEMORY.stream=1"])
    np.testing.assert_allclose(streamed.coefficients, res.coefficients, rtol=1e-9, atol=1e-12)


def test_sigterm_ends_a_fit_between_blocks(tmp_path):
    """SIGTERM while `mpisnap fit` computes the descriptors of a 50,000-atom configuration (about
    4 s of work at twojmax 8 on one thread): the run exits within 2 s with status 130 and writes
    nothing. The descriptor stage is recognised by its progress bar (stderr is a terminal)."""
    s = S.bcc_supercell((25, 25, 40), a=3.316, displacement=0.05, seed=5)
    write_config(tmp_path / "JSON" / "G" / "big.json", np.round(s.positions, 6), s.cell,
                 ["Ta"] * len(s.positions), seed=1)
    inp = write_input(tmp_path, "type = Ta\ntwojmax = 8\nradelem = 0.5\nrcutfac = 4.67637")
    out = tmp_path / "out"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a bar needs width
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "mpisnap", "fit", str(inp), "--output-dir",
                          str(out), "--threads", "1"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    seen, t_end = b"", time.monotonic() + 60
    try:
        while b"descriptors" not in seen:
            assert p.poll() is None, seen.decode(errors="replace")
            assert time.monotonic() < t_end, "no progress bar within 60 s"
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)
        time.sleep(0.5)  # well inside the ~4 s of descriptor work
        assert p.poll() is None
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        while p.poll() is None and time.monotonic() < t0 + 30:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        p.wait(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert p.returncode == 130, seen.decode(errors="replace")
    assert elapsed < 2.0, elapsed
    assert b"mpisnap: interrupted" in seen
    assert not out.exists() or list(out.iterdir()) == []
