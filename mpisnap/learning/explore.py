"""MD exploration with the current potential: Langevin dynamics (ASE) driven by
:class:`mpisnap.Calculator` over the round's fit; every ``md_interval`` steps a frame becomes a
candidate for labelling.

One trajectory per starting structure and temperature per round, each from the starting
structure with fresh Maxwell–Boltzmann velocities. Trajectory j of the round belongs to rank
``j mod size``. Its random stream is ``(seed, round, j, crc32 of the labelled set)``, so a resumed
campaign replays the same trajectories. The coefficients driving MD are rounded to 12
significant digits first, so the round-off by which fits on different rank counts differ does
not reach the (chaotic) trajectories in practice. A trajectory ends early at a frame whose
forces are not finite or, with ``md_max_std``, whose largest calibrated force σ exceeds it (the
frame is kept as a candidate: it is the most informative one), as pacemaker stops MD at a high
extrapolation grade.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["MDJob", "md_jobs", "run_md", "rounded"]


@dataclass(frozen=True)
class MDJob:
    """Trajectory ``index`` of a round: starting structure ``start`` at ``temperature`` K."""

    index: int
    start: int
    temperature: float


def md_jobs(nstarts: int, temperatures: Sequence[float]) -> list[MDJob]:
    return [MDJob(k * len(temperatures) + t, k, float(T))
            for k in range(nstarts) for t, T in enumerate(temperatures)]


def rounded(coefficients: np.ndarray, digits: int = 12) -> np.ndarray:
    """``coefficients`` rounded to ``digits`` significant digits."""
    c = np.asarray(coefficients, float)
    out = c.copy()
    nz = c != 0
    exp = np.floor(np.log10(np.abs(c[nz])))
    scale = 10.0 ** (digits - 1 - exp)
    out[nz] = np.round(c[nz] * scale) / scale
    return out


def run_md(job: MDJob, start, predictor, *, steps: int, interval: int, timestep_fs: float,
           friction_fs: float, rng: np.random.Generator,
           frame_std: Callable | None = None, max_std: float | None = None) -> list:
    """The frames (``ase.Atoms``, no calculator) of one trajectory (module docstring).
    ``frame_std(atoms)``: the frame's largest calibrated force σ (eV/Å), for ``max_std``."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.parallel import DummyMPI

    from ..calculator import Calculator

    atoms = start.copy()
    atoms.calc = Calculator(predictor)
    serial = DummyMPI()  # one trajectory per rank: ASE must not broadcast over MPI's world
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=job.temperature, comm=serial, rng=rng)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=job.temperature,
                   friction=friction_fs / units.fs, rng=rng, fixcm=False, comm=serial)
    frames = []
    done = 0
    while done < steps:
        n = min(interval, steps - done)
        try:
            dyn.run(n)
        except (ValueError, FloatingPointError):
            break
        done += n
        pos = atoms.get_positions()
        if not np.all(np.isfinite(pos)):
            break
        frame = atoms.__class__(symbols=atoms.get_chemical_symbols(), positions=pos,
                                cell=atoms.get_cell(), pbc=atoms.get_pbc())
        frame.wrap()
        frames.append(frame)
        forces = atoms.get_forces()
        if not np.all(np.isfinite(forces)):
            break
        if max_std is not None and frame_std is not None and frame_std(frame) > max_std:
            break
    return frames
