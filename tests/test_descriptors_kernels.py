"""Paths of the descriptor core that the LAMMPS flag-set tests do not reach: ChemSNAP with three
elements (element-pair symmetry of Z, per-element derivative plans) and the generic and AVX2
kernel variants (other register tiles, scalar transposes), each against an independent result."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mpisnap import Descriptor
from mpisnap.testing import lammps as lmp
from mpisnap.testing import structures as S

RAD = [0.5, 0.42, 0.46]
WJ = [1.0, 0.77, 0.9]


def relerr(x, y):
    return np.abs(x - y).max() / max(np.abs(y).max(), 1e-300)


def three_elements():
    """24 atoms of three elements in a sheared cell, plus a cluster with an isolated atom (no
    neighbours) so that one group of centre atoms mixes long, short and empty lists."""
    return [S.triclinic(ntypes=3, seed=11), S.cluster(ntypes=3, seed=4, isolated=True)]


@pytest.mark.parametrize("flags", [dict(bnormflag=1, wselfallflag=1), dict(bnormflag=0, wselfallflag=0)],
                         ids=["bnorm1 wself1", "bnorm0 wself0"])
@pytest.mark.parametrize("k", [0, 1], ids=["triclinic", "cluster"])
def test_three_element_chem_matches_lammps(flags, k):
    s = three_elements()[k]
    assert set(s.types.tolist()) == {0, 1, 2}
    p = dict(twojmax=4, rcutfac=4.67637, rfac0=0.99363, bzeroflag=1, chemflag=1, **flags)
    d = Descriptor(type=["A", "B", "C"], radelem=RAD, wj=WJ, threads=2, **p)
    ours = d.compute(**s.kwargs(), pairs=True)
    ref = lmp.compute_snap(s.positions, s.cell, s.pbc, s.types + 1, radelem=RAD, wj=WJ,
                           ntypes=3, dgrad=True, **p)
    for key in ("B", "energy_row", "force_rows", "virial_rows"):
        assert relerr(getattr(ours, key), ref[key]) < 1e-10, key
    assert relerr(ours.pairs.dense(len(s.positions)), ref["dBdr"]) < 1e-10


VARIANT_SCRIPT = """
import sys, numpy as np
from mpisnap import Descriptor, _core
from mpisnap.testing import structures as S
out = {"isa": np.array(_core.kernel_isa())}
for name, kw, s in [
    ("linear", dict(twojmax=8, bzeroflag=1), S.bcc_supercell((2, 2, 2), ntypes=2, displacement=0.1, seed=3)),
    ("chem", dict(twojmax=6, chemflag=1, bnormflag=1, wselfallflag=1), S.triclinic(ntypes=2, seed=5)),
    ("quadratic", dict(twojmax=4, quadraticflag=1), S.cluster(ntypes=2, isolated=True)),
]:
    d = Descriptor(type=["A", "B"], radelem=[0.5, 0.45], wj=[1.0, 0.8], threads=1, **kw)
    r = d.compute(**s.kwargs(), pairs=True)
    for key in ("B", "force_rows", "virial_rows"):
        out[name + " " + key] = getattr(r, key)
    out[name + " dBdr"] = r.pairs.dBdr
np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """The same descriptors from each kernel variant (MPISNAP_ISA), in fresh processes."""
    res = {}
    for isa in ("default", "generic", "avx2"):
        path = tmp_path_factory.mktemp("isa") / f"{isa}.npz"
        env = dict(os.environ)
        env.pop("MPISNAP_ISA", None)
        if isa != "default":
            env["MPISNAP_ISA"] = isa
        proc = subprocess.run([sys.executable, "-c", VARIANT_SCRIPT, str(path)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        with np.load(path) as z:
            res[isa] = {k: z[k] for k in z.files}
    return res


@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_kernel_variants_agree(variants, isa):
    """Every SIMD variant gives the same descriptors and derivatives up to rounding (the
    dispatcher may fall back to generic where the CPU lacks AVX2)."""
    assert str(variants["generic"]["isa"]) == "generic"
    ref, other = variants["default"], variants[isa]
    for key in ref:
        if key != "isa":
            assert relerr(other[key], ref[key]) < 1e-12, key
