"""Finite differences, invariances and thread-count invariance of the descriptor core."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mpisnap import Descriptor
from mpisnap.testing import structures as S

PARAMS = {
    "linear": dict(twojmax=6, bzeroflag=1),
    "quadratic": dict(twojmax=4, quadraticflag=1, bzeroflag=1),
    "chem": dict(twojmax=4, chemflag=1, bnormflag=1, wselfallflag=1, bzeroflag=1),
    "inner switching": dict(twojmax=4, switchinnerflag=1, sinner=1.3, dinner=0.3),
}


def descriptor(name, threads=1):
    return Descriptor(type=["A", "B"], radelem=[0.5, 0.45], wj=[1.0, 0.8], threads=threads,
                      **PARAMS[name])


def structure():
    return S.triclinic(ntypes=2, seed=5)


H = 1e-5


@pytest.mark.parametrize("name", list(PARAMS))
def test_pair_derivatives_match_finite_differences(name):
    d = descriptor(name)
    s = structure()
    r = d.compute(**s.kwargs(), pairs=True)
    D = r.pairs.dense(len(s.positions))
    for m in (0, 7, 13):
        for a in range(3):
            xp, xm = s.positions.copy(), s.positions.copy()
            xp[m, a] += H
            xm[m, a] -= H
            fd = (d.compute(**{**s.kwargs(), "positions": xp}, forces=False, virial=False).B
                  - d.compute(**{**s.kwargs(), "positions": xm}, forces=False, virial=False).B) / (2 * H)
            np.testing.assert_allclose(D[:, m, a], fd, atol=2e-6 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("name", list(PARAMS))
def test_force_rows_are_minus_gradient_of_energy_row(name):
    d = descriptor(name)
    s = structure()
    r = d.compute(**s.kwargs())
    for m in (1, 11):
        for a in range(3):
            xp, xm = s.positions.copy(), s.positions.copy()
            xp[m, a] += H
            xm[m, a] -= H
            ep = d.compute(**{**s.kwargs(), "positions": xp}).energy_row
            em = d.compute(**{**s.kwargs(), "positions": xm}).energy_row
            fd = -(ep - em) / (2 * H)
            np.testing.assert_allclose(r.force_rows[3 * m + a], fd,
                                       atol=2e-6 * max(1.0, np.abs(fd).max()))


VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@pytest.mark.parametrize("name", list(PARAMS))
def test_virial_rows_are_strain_derivatives(name):
    """W[p,q] = -dE/dε for the deformation x_q -> x_q + ε x_p (positions and cell)."""
    d = descriptor(name)
    s = structure()
    r = d.compute(**s.kwargs())
    for c, (p, q) in enumerate(VOIGT):
        vals = []
        for eps in (H, -H):
            F = np.eye(3)
            F[q, p] += eps
            vals.append(d.compute(positions=s.positions @ F.T, cell=s.cell @ F.T, pbc=s.pbc,
                                  types=s.types).energy_row)
        fd = -(vals[0] - vals[1]) / (2 * H)
        np.testing.assert_allclose(r.virial_rows[c], fd, atol=2e-6 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("name", list(PARAMS))
def test_rotation_translation_permutation_invariance(name):
    d = descriptor(name)
    s = structure()
    r = d.compute(**s.kwargs())
    n = len(s.positions)
    R = Rotation.from_euler("zyx", [0.7, -1.1, 2.3]).as_matrix()
    rot = d.compute(positions=s.positions @ R.T + [1.3, -7.0, 2.2], cell=s.cell @ R.T, pbc=s.pbc,
                    types=s.types)
    tol = dict(atol=1e-11 * np.abs(r.force_rows).max())
    np.testing.assert_allclose(rot.B, r.B, atol=1e-11 * np.abs(r.B).max())
    F = r.force_rows.reshape(n, 3, -1)
    np.testing.assert_allclose(rot.force_rows.reshape(n, 3, -1), np.einsum("ab,nbk->nak", R, F), **tol)
    W = np.zeros((3, 3) + r.virial_rows.shape[1:])
    for c, (p, q) in enumerate(VOIGT):
        W[p, q] = W[q, p] = r.virial_rows[c]
    Wr = np.einsum("ap,pq...,bq->ab...", R, W, R)
    for c, (p, q) in enumerate(VOIGT):
        np.testing.assert_allclose(rot.virial_rows[c], Wr[p, q],
                                   atol=1e-11 * np.abs(r.virial_rows).max())
    perm = np.random.default_rng(3).permutation(n)
    pr = d.compute(positions=s.positions[perm], cell=s.cell, pbc=s.pbc, types=s.types[perm])
    np.testing.assert_allclose(pr.B, r.B[perm], atol=1e-12 * np.abs(r.B).max())
    np.testing.assert_allclose(pr.force_rows.reshape(n, 3, -1), F[perm], **tol)
    np.testing.assert_allclose(pr.virial_rows, r.virial_rows,
                               atol=1e-11 * np.abs(r.virial_rows).max())


@pytest.mark.parametrize("name", list(PARAMS))
def test_results_identical_for_any_thread_count(name):
    s = S.bcc_supercell((4, 4, 4), ntypes=2, seed=9)
    one = descriptor(name, threads=1).compute(**s.kwargs(), pairs=True)
    two = descriptor(name, threads=2).compute(**s.kwargs(), pairs=True)
    three = descriptor(name, threads=3).compute(**s.kwargs(), pairs=True)
    for other in (two, three):
        for k in ("B", "energy_row", "force_rows", "virial_rows"):
            np.testing.assert_array_equal(getattr(other, k), getattr(one, k))
        np.testing.assert_array_equal(other.pairs.dBdr, one.pairs.dBdr)


def test_batch_equals_single_configurations_for_any_thread_count():
    d = descriptor("linear")
    configs = [S.bcc_supercell((2, 2, 2), ntypes=2, seed=k) for k in range(7)] + [S.small_cell(ntypes=2)]
    single = [d.compute(**c.kwargs(), threads=1) for c in configs]
    for threads in (1, 2):
        batch = d.compute_batch([c.kwargs() for c in configs], threads=threads)
        for a, b in zip(batch, single):
            np.testing.assert_array_equal(a.force_rows, b.force_rows)
            np.testing.assert_array_equal(a.virial_rows, b.virial_rows)
            np.testing.assert_array_equal(a.B, b.B)


def test_power_spectrum_identity():
    """Spec 8.6: B_{0,0,0} = u0^3 and the layout of sizes (K = 30 at twojmax 6)."""
    d = Descriptor(type=["A"], twojmax=6, bzeroflag=0, threads=1)
    assert (d.K, d.ncoeff, d.nvalues) == (30, 30, 30)
    assert d.triples[:5] == [(0, 0, 0), (1, 0, 1), (1, 1, 2), (2, 0, 2), (2, 1, 3)]
    s = S.cluster()
    r = d.compute(**s.kwargs())
    # u0 = 1 + Σ_n w sfac(r): recompute from distances
    rc = 2 * 0.5 * 4.67637
    for i in range(len(s.positions)):
        dist = np.linalg.norm(s.positions - s.positions[i], axis=1)
        dist = dist[(dist > 0) & (dist < rc)]
        u0 = 1 + np.sum(0.5 * (np.cos(np.pi * dist / rc) + 1))
        assert r.B[i, 0] == pytest.approx(u0 ** 3, rel=1e-13)


def test_ase_atoms_and_arrays_agree():
    from ase import Atoms
    s = S.triclinic(ntypes=2)
    # ASE needs real element names
    d = Descriptor(type=["In", "P"], radelem=[0.5, 0.45], wj=[1.0, 0.8], twojmax=4, threads=1)
    atoms = Atoms(symbols=[["In", "P"][t] for t in s.types], positions=s.positions, cell=s.cell,
                  pbc=True)
    a = d.compute(atoms)
    b = d.compute(**s.kwargs())
    np.testing.assert_array_equal(a.force_rows, b.force_rows)
