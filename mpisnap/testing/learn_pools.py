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
