"""Copper candidate pools labelled by ASE's EMT, for the tests, the benchmark and the example of
``mpisnap learn`` (:mod:`mpisnap.learning`).

:func:`copper_pool` makes unlabelled structures of a fixed mix of kinds: bulk fcc under
volumetric strain, random shear and random displacements (60 %: the structures one meets most),
a vacancy, (111) and (100) slabs with vacuum, and hot displacements (10 % each: the rare kinds a
random pick of a few percent misses). Structure k draws from its own stream ``(seed, k)``, so a
pool's first structures do not depend on its size. :func:`bulk_seeds` makes the small bulk-only
starting sets; :func:`label` attaches EMT labels (energy eV, forces eV/Å, stress in ASE's eV/Å³).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["A0", "KINDS", "copper_pool", "bulk_seeds", "label", "write_seed_json"]

A0 = 3.61  # Å, fcc Cu (EMT)
#: The kinds of :func:`copper_pool`, cycled in this order.
KINDS = ("strain", "shear", "rattle", "strain", "shear", "rattle", "vacancy", "surface111",
         "surface100", "hot")


def _structure(kind: str, rng: np.random.Generator):
    from ase.build import bulk, fcc100, fcc111

    if kind in ("strain", "shear", "rattle", "hot"):
        rep = (2, 2, 1) if rng.random() < 0.5 else (1, 1, 2)
        at = bulk("Cu", "fcc", a=A0, cubic=True).repeat(rep)
    elif kind == "vacancy":
        at = bulk("Cu", "fcc", a=A0, cubic=True).repeat((2, 2, 1))
        del at[int(rng.integers(len(at)))]
    elif kind == "surface111":
        at = fcc111("Cu", size=(2, 2, 3), a=A0, vacuum=5.0, periodic=True)
    elif kind == "surface100":
        at = fcc100("Cu", size=(2, 2, 3), a=A0, vacuum=5.0, periodic=True)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "strain":
        at.set_cell(at.cell * (1 + rng.uniform(-0.06, 0.06)), scale_atoms=True)
    elif kind == "shear":
        F = np.eye(3) + rng.normal(scale=0.04, size=(3, 3))
        at.set_cell(at.cell @ F.T, scale_atoms=True)
    amp = rng.uniform(0.05, 0.15) if kind == "hot" else rng.uniform(0.01, 0.08)
    at.positions += rng.normal(scale=amp, size=at.positions.shape)
    at.info.clear()  # (slab builders leave metadata that extxyz cannot write)
    return at


def copper_pool(n: int, seed: int = 0, kinds: Sequence[str] = KINDS) -> list:
    """``n`` unlabelled copper structures (``ase.Atoms``), structure k of kind
    ``kinds[k % len(kinds)]`` (module docstring)."""
    return [_structure(kinds[k % len(kinds)], np.random.default_rng([seed, k]))
            for k in range(n)]


def bulk_seeds(n: int, seed: int = 0) -> list:
    """``n`` bulk structures (strained, sheared, displaced): a bulk-only starting set."""
    bulk_kinds = ("strain", "shear", "rattle")
    return [_structure(bulk_kinds[k % 3], np.random.default_rng([seed, 10_000_000 + k]))
            for k in range(n)]


def label(structures) -> list:
    """Copies of ``structures`` with EMT labels attached (a SinglePointCalculator)."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for at in structures:
        a = at.copy()
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out


def write_seed_json(folder: str, structures, prefix: str = "seed") -> list[str]:
    """EMT-labelled FitSNAP JSON files of ``structures`` in ``folder`` (a group folder)."""
    from mpisnap.oracle import label as oracle_label, write_labelled_json
    from ase.calculators.emt import EMT

    os.makedirs(folder, exist_ok=True)
    calc = EMT()
    return [write_labelled_json(os.path.join(folder, f"{prefix}_{k:03d}.json"), at,
                                *oracle_label(calc, at))
            for k, at in enumerate(structures)]


# -- the selection study (tests/test_learn_quality.py, scripts/bench_learn.py) ---------------

#: Settings of the selection study: linear SNAP 2J=6 on energies and forces, weights 1.
STUDY_SETTINGS = {
    "BISPECTRUM": {"numTypes": 1, "type": "Cu", "twojmax": 6, "rcutfac": 4.8, "rfac0": 0.99363,
                   "rmin0": 0.0, "wj": "1.0", "radelem": "0.5"},
    "CALCULATOR": {"energy": 1, "force": 1, "stress": 0},
    "SOLVER": {"solver": "SVD"},
    "GROUPS": {"group_sections": "name training_size testing_size eweight fweight vweight",
               "group_types": "str float float float float float", "X": "1.0 0.0 1 1 1e-4"},
}


def study_rows(model, structures) -> list:
    """EMT-labelled design rows ``(A, b, kind)`` (energy and force rows, weight 1) of
    ``structures``."""
    from mpisnap.records import Configuration

    out = []
    for a in label(structures):
        c = Configuration("c", "X", a.get_positions(), np.array(a.get_cell()), (True,) * 3,
                          tuple(a.get_chemical_symbols()), a.get_potential_energy(),
                          a.get_forces())
        d = model.descriptor.compute(positions=c.positions, cell=c.cell, pbc=c.pbc,
                                     symbols=c.symbols, threads=1)
        A, b, kind, _, _ = model.rows(c, d, None, 0.0, (True, True, False))
        out.append((A, b, kind))
    return out


def study_fit(model, rows):
    """Least-squares coefficients and per-kind triangles of ``rows``."""
    from mpisnap.pipeline.compression import Compressed
    from mpisnap.tsqr import StreamingR, split_r

    accs = {k: StreamingR(model.ncols) for k in (0, 1)}
    for A, b, kind in rows:
        for k in (0, 1):
            accs[k].add(A[kind == k], b[kind == k])
    systems = {k: Compressed(*split_r(a.R, model.ncols), a.nrows) for k, a in accs.items()}
    whole = StreamingR(model.ncols)
    for s in systems.values():
        whole.add(s.R, s.qb)
    R, qb, _ = split_r(whole.R, model.ncols)
    return np.linalg.lstsq(R, qb, rcond=None)[0], systems


def study_campaign(model, seeds, pool, criterion: str, budget: int, batch: int = 5,
                   rng_seed: int = 0) -> np.ndarray:
    """The rounds of ``mpisnap learn`` on precomputed rows (posterior of the per-kind
    triangles, greedy batches of ``batch``, a refit per round) until ``budget`` labels; returns
    the final coefficients."""
    from mpisnap.comm import SerialComm
    from mpisnap.learning.posterior import posterior_of
    from mpisnap.learning.selection import Candidates, select

    flat = np.array([n.endswith(":B0") for n in model.column_names()])
    chosen: list[int] = []
    r = 0
    while len(chosen) < budget:
        _, systems = study_fit(model, seeds + [pool[i] for i in chosen])
        post = posterior_of(systems, {k: s.nrows for k, s in systems.items()},
                            {k: float(s.nrows) for k, s in systems.items()}, flat)
        factors = np.array([np.sqrt(post.alpha.get(k, 0.0)) for k in range(3)])
        cands = Candidates()
        for i, (A, _, kind) in enumerate(pool):
            if i not in chosen:
                cands.add(i, A, kind, 1)
        chosen += select(SerialComm(), cands, post, factors, criterion,
                         min(batch, budget - len(chosen)),
                         rng=np.random.default_rng([rng_seed, r]))
        r += 1
    return study_fit(model, seeds + [pool[i] for i in chosen])[0]


def force_rmse(beta, rows) -> float:
    e = np.concatenate([A[k == 1] @ beta - b[k == 1] for A, b, k in rows])
    return float(np.sqrt(np.mean(e ** 2)))
