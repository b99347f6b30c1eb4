"""Copper with ASE's EMT as the oracle: a hand-curated test suite, the baseline training sets
(MD snapshots, random displacements) and a fitting helper, for the tests and the benchmark of
``mpisnap generate`` (:mod:`mpisnap.generation`).

Suite groups (:func:`suite`): ``Strained`` (bulk fcc, ±6 % volumetric and random shear),
``Vacancy``, ``Interstitial`` (octahedral), ``Surface`` ((111) and (100) slabs), ``HotMD``
(1200 K), ``Liquid`` (melted at 4000 K) and ``Compressed`` (−30 % volume), each
rattled; every structure labelled by EMT. Sizes are small so that a test runs in seconds.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["A0", "suite", "md_snapshots", "displaced", "write_group", "fit_and_score",
           "label_all", "SUITE_GROUPS"]

A0 = 3.61  # Å, fcc Cu lattice constant of EMT (about)
SUITE_GROUPS = ("Strained", "Vacancy", "Interstitial", "Surface", "HotMD", "Liquid",
                "Compressed")
#: fcc supercell repeats of the 4-atom cubic cell, by atom count
_REPEATS = {4: (1, 1, 1), 8: (2, 1, 1), 12: (3, 1, 1), 16: (2, 2, 1), 32: (2, 2, 2)}


def _emt():
    from ase.calculators.emt import EMT

    return EMT()


def _bulk(repeat=(2, 2, 2), a=A0):
    from ase.build import bulk

    return bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)


def _md(atoms, temperature: float, steps: int, seed: int, dt_fs: float = 2.0):
    """``atoms`` after ``steps`` Langevin steps at ``temperature`` K (EMT), seeded."""
    from ase import units
    from ase.md.langevin import Langevin
    at = atoms.copy()
    at.calc = _emt()
    rng = np.random.default_rng(seed)
    m = at.get_masses()[:, None]   # Maxwell-Boltzmann momenta (any ASE version)
    at.set_momenta(rng.normal(size=(len(at), 3)) * np.sqrt(m * units.kB * temperature))
    dyn = Langevin(at, dt_fs * units.fs, temperature_K=temperature, friction=0.02, rng=rng,
                   fixcm=False)
    dyn.run(steps)
    out = at.copy()
    out.calc = None
    return out


def _relaxed(atoms, rattle: float, seed: int, steps: int = 30):
    """``atoms`` after a few FIRE steps with EMT (cell fixed), then rattled."""
    from ase.optimize import FIRE

    at = atoms.copy()
    at.calc = _emt()
    FIRE(at, logfile=None).run(fmax=0.05, steps=steps)
    out = at.copy()
    out.calc = None
    out.rattle(rattle, seed=seed)
    return out


def suite(per_group: int = 3, seed: int = 0) -> dict[str, list]:
    """The test suite: ``{group: [ase.Atoms]}`` (unlabelled; see :func:`label_all`)."""
    from ase.build import fcc100, fcc111

    rng = np.random.default_rng(seed)
    out: dict[str, list] = {g: [] for g in SUITE_GROUPS}
    for k in range(per_group):
        at = _bulk()
        F = np.eye(3) * (1 + rng.uniform(-0.02, 0.02)) + rng.normal(scale=0.03, size=(3, 3))
        at.set_cell(at.cell @ F.T, scale_atoms=True)
        at.rattle(0.03, seed=int(rng.integers(1 << 30)))
        out["Strained"].append(at)

        at = _bulk()
        del at[int(rng.integers(len(at)))]
        at.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out["Vacancy"].append(at)

        at = _bulk()
        at.append("Cu")
        at.positions[-1] = [A0 / 2, 0.0, 0.0]  # octahedral site, then partly relaxed
        out["Interstitial"].append(_relaxed(at, 0.05, int(rng.integers(1 << 30))))

        slab = (fcc111("Cu", size=(2, 2, 4), a=A0, vacuum=5.0, periodic=True) if k % 2 == 0
                else fcc100("Cu", size=(2, 2, 4), a=A0, vacuum=5.0, periodic=True))
        slab.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out["Surface"].append(slab)

        out["HotMD"].append(_md(_bulk(), 1200.0, 150, int(rng.integers(1 << 30))))

        # melted: 0.3 ps at 4000 K from the expanded crystal
        out["Liquid"].append(_md(_bulk(a=A0 * 1.03), 4000.0, 300, int(rng.integers(1 << 30)),
                                 dt_fs=1.0))

        at = _bulk(a=A0 * 0.89)  # about -30 % volume
        at.rattle(0.04, seed=int(rng.integers(1 << 30)))
        out["Compressed"].append(at)
    return out


def _sizes(natoms: Sequence[int]) -> list[int]:
    return [n for n in sorted(_REPEATS) if natoms[0] <= n <= natoms[1]] or [4]


def md_snapshots(n: int, natoms=(4, 16), temperatures=(300.0, 1500.0), steps: int = 150,
                 seed: int = 0) -> list:
    """``n`` MD snapshots of fcc Cu (EMT, Langevin): cells of the sizes in ``natoms`` in turn, a
    random temperature in the range, each from its own run of ``steps`` steps."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(natoms)
    out = []
    for k in range(n):
        at = _bulk(_REPEATS[sizes[k % len(sizes)]])
        out.append(_md(at, float(rng.uniform(*temperatures)), steps, int(rng.integers(1 << 30))))
    return out


def displaced(n: int, natoms=(4, 16), amplitude: float = 0.1, seed: int = 0) -> list:
    """``n`` fcc Cu cells of the sizes in ``natoms``, every atom displaced by a Gaussian of
    ``amplitude`` Å."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(natoms)
    out = []
    for k in range(n):
        at = _bulk(_REPEATS[sizes[k % len(sizes)]])
        at.rattle(amplitude, seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out


def label_all(structures: Sequence) -> list:
    """EMT labels of each structure (:class:`mpisnap.oracle.Labels`)."""
    from mpisnap.oracle import label

    calc = _emt()
    return [label(calc, at, where=f"structure {k}") for k, at in enumerate(structures)]


def write_group(folder, structures: Sequence, labels: Sequence | None = None) -> str:
    """Write labelled structures as FitSNAP JSON files ``folder/s_NNNN.json``; labels by EMT
    when not given."""
    from mpisnap.oracle import write_labelled_json

    labels = label_all(structures) if labels is None else labels
    os.makedirs(folder, exist_ok=True)
    for k, (at, lab) in enumerate(zip(structures, labels)):
        write_labelled_json(os.path.join(folder, f"s_{k:04d}.json"), at, *lab)
    return os.fspath(folder)


def fit_and_score(data_dir, train_group: str = "Train", groups: Sequence[str] = SUITE_GROUPS, *,
                  twojmax: int = 6, rcutfac: float = 4.8, eweight: float = 10.0,
                  fweight: float = 1.0, vweight: float = 0.0, solver: str = "SVD",
                  alpha: float = 1e-8) -> dict[str, dict[str, float]]:
    """Fit a linear SNAP to ``data_dir/<train_group>`` with :func:`mpisnap.fit` (no files
    written) and return the test RMSEs of each suite group: ``{group: {"Energy": eV/atom,
    "Force": eV/Å}}``; the suite groups are test-only."""
    import mpisnap

    cols = "name training_size testing_size eweight fweight vweight"
    grp = {"group_sections": cols, "group_types": "str float float float float float",
           "random_sampling": 0, train_group: f"1.0 0.0 {eweight} {fweight} {vweight}"}
    for g in groups:
        grp[g] = f"0.0 1.0 {eweight} {fweight} {vweight}"
    settings = {
        "BISPECTRUM": {"numTypes": 1, "type": "Cu", "twojmax": twojmax, "rcutfac": rcutfac,
                       "rfac0": 0.99363, "rmin0": 0.0, "wj": 1.0, "radelem": 0.5,
                       "bzeroflag": 0, "quadraticflag": 0},
        "CALCULATOR": {"calculator": "LAMMPSSNAP", "energy": 1, "force": 1,
                       "stress": 1 if vweight > 0 else 0},
        "SOLVER": {"solver": solver},
        "SCRAPER": {"scraper": "JSON"},
        "PATH": {"dataPath": os.fspath(data_dir)},
        "GROUPS": grp,
    }
    if solver.upper() == "RIDGE":
        settings["RIDGE"] = {"alpha": alpha}
    result = mpisnap.fit(settings, write=False)
    out = {}
    for g in groups:
        out[g] = {kind: result.metric(g, "Unweighted", "Testing", kind).rmse
                  for kind in ("Energy", "Force")}
    return out
