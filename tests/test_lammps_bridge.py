"""mpisnap.lammps_bridge: neighbour pages sized from the configuration (dense cells run without
"Neighbor list overflow"), and every LAMMPS error as a one-line LammpsError (a ValueError)."""
import numpy as np
import pytest

from mpisnap import _core
from mpisnap import lammps_bridge as B
from mpisnap.testing import structures as S
from mpisnap.testing.dense import dense_cells, wbe_c15
from mpisnap.zbl import ZBL

WBE_STYLE = "pair_style hybrid/overlay zero 10.0 zbl 4.0 4.8"
WBE_COEFFS = ["pair_coeff * * zero", "pair_coeff 1 1 zbl 74 74", "pair_coeff 1 2 zbl 74 4",
              "pair_coeff 2 2 zbl 4 4"]


def compressed_c15(scale=1.5 / 1.80764999509, seed=4):
    """The WBe C15 cell compressed to 6.75 Å³ (1.1 Å³/atom) and rattled: ≈ 4900 neighbours per
    atom within 11 Å, more than LAMMPS's default ``neigh_modify one 2000`` allows."""
    s = wbe_c15()
    f = s.positions @ np.linalg.inv(s.cell)
    s.cell = s.cell * scale
    s.positions = f @ s.cell + np.random.default_rng(seed).normal(scale=0.03, size=(6, 3))
    return s


def exact_max(s, cutoff):
    i = _core.neighbor_pairs(s.positions, s.cell, list(s.pbc), cutoff)[0]
    return np.bincount(i, minlength=len(s.positions)).max()


CASES = ([compressed_c15(), wbe_c15(), S.cluster(), S.slab(), S.bcc_supercell((3, 3, 3))]
         + dense_cells(5, ntypes=2, seed=31))


@pytest.mark.parametrize("exact", [True, False], ids=["exact count", "density estimate"])
def test_neighbour_capacity_bounds_the_neighbour_count(exact, monkeypatch):
    if not exact:
        monkeypatch.setattr(B, "EXACT_MAX_ATOMS", 0)
    for s in CASES:
        cap = B.neighbour_capacity(s.positions, s.cell, s.pbc, 11.0)
        assert cap >= exact_max(s, 11.0), s.name
        assert cap <= 3.0 * exact_max(s, 11.0) + 200 or not exact, s.name


def test_neighbour_capacity_of_atoms_on_top_of_each_other_is_the_image_bound():
    cell = np.eye(3) * 2.0
    cap = B.neighbour_capacity([[0.0, 0, 0], [0.0, 0, 0]], cell, (True,) * 3, 3.0)
    assert cap == 2 * 7 ** 3  # ceil(3 / 2 + 1) = 3 cells each side


def _zbl_energy(s):
    zbl = ZBL(4.0, 4.8, [74.0, 4.0])
    return zbl.compute(s.positions, s.cell, s.pbc, s.types)[0]


def test_dense_cell_runs_and_equals_builtin_zbl():
    s = compressed_c15()
    assert exact_max(s, 11.0) > 2 * 2000  # LAMMPS's default would overflow
    r = B.compute_pair(s.positions, s.cell, s.pbc, s.types + 1, pair_style=WBE_STYLE,
                       pair_coeffs=WBE_COEFFS, cutoff=10.0, ntypes=2)
    assert abs(r["energy"] - _zbl_energy(s)) <= 1e-10 * abs(r["energy"])


def test_too_small_an_estimate_is_retried_with_more_room(monkeypatch):
    calls = []
    real = B.neighbour_settings

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(B, "neighbour_capacity", lambda *a: 0)  # LAMMPS's default 2000
    monkeypatch.setattr(B, "neighbour_settings", spy)
    s = compressed_c15()
    r = B.compute_pair(s.positions, s.cell, s.pbc, s.types + 1, pair_style=WBE_STYLE,
                       pair_coeffs=WBE_COEFFS, cutoff=10.0, ntypes=2)
    assert calls == [0, 8000]
    assert abs(r["energy"] - _zbl_energy(s)) <= 1e-10 * abs(r["energy"])


@pytest.mark.parametrize("style, coeffs, needle", [
    ("pair_style nosuchstyle", [], "Unrecognized pair style 'nosuchstyle'"),
    ("pair_style zbl 4.0 4.8", ["pair_coeff 1 1 74"], "pair_coeff"),       # too few arguments
    ("pair_style zbl 4.0 4.8", [], "All pair coeffs are not set"),         # found at run 0
    ("pair_style zbl 4.8 4.0", ["pair_coeff * * 74 74"], "pair_style"),    # inner > outer
])
def test_lammps_errors_are_one_line_value_errors(style, coeffs, needle):
    s = wbe_c15()
    with pytest.raises(ValueError) as err:
        B.compute_pair(s.positions, s.cell, s.pbc, s.types + 1, pair_style=style,
                       pair_coeffs=coeffs, cutoff=4.8, ntypes=2)
    assert isinstance(err.value, B.LammpsError)
    msg = str(err.value)
    assert msg.startswith("LAMMPS: ") and "\n" not in msg and "src/" not in msg, msg
    assert needle in msg, msg


def test_error_text_is_condensed_to_one_line():
    exc = Exception("ERROR on proc 0: Neighbor list overflow, boost neigh_modify one\n"
                    "For more information see https://docs.lammps.org/err0036 "
                    "(src/src/npair_bin.cpp:248)")
    assert B._one_line(exc) == ("LAMMPS: Neighbor list overflow, boost neigh_modify one; For more"
                                " information see https://docs.lammps.org/err0036")
    exc = Exception("ERROR: Unrecognized pair style 'x' (src/src/force.cpp:275)\n"
                    "Last input line: pair_style x")
    assert B._one_line(exc) == "LAMMPS: Unrecognized pair style 'x' (input line: pair_style x)"
