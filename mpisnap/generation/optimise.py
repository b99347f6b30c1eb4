"""The objective of one configuration and its optimisation (an inner step of ``generate``).

For the structure ``x`` of configuration c (:class:`~mpisnap.generation.structures.Param`) the
objective to minimise is ::

    f(x) = −S_c(B(x)) + E_wall(x)

``S_c`` the entropy terms c changes (:meth:`mpisnap.generation.entropy.ConfigTerms.value_and_grad`,
per centre element, in whitened coordinates), ``B(x)`` the per-atom descriptors. The gradient is
analytic, through the core's per-neighbour derivatives (:class:`mpisnap.PairDerivatives`,
``dBdr[p] = ∂B_i/∂r_in`` for the neighbour image n of centre i): with ``G_i = ∂S/∂B_i`` and
``g_p = dBdr[p] · G_{i_p}``, ::

    ∂S/∂r_m = Σ_{p: j_p = m} g_p − Σ_{p: i_p = m} g_p,      V_ab = Σ_p g_{p,a} r_{in,b}

``V`` the derivative with respect to a homogeneous deformation (the virial form), which
:meth:`Param.chain` turns into the derivatives with respect to the cell's distortion and volume.
The wall adds its own pair terms in the same form.

:func:`optimise` runs SciPy's L-BFGS-B (box bounds: ``max_strain`` on the distortion, the
``volume_per_atom`` range on the volume), then enforces ``min_distance``: a result with a shorter
distance is relaxed by the wall alone, and if that fails the configuration keeps its previous
(valid) structure.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .entropy import ConfigTerms, Whitening
from .structures import WALL_MARGIN, Param, min_pair_distance, relax_wall, wall_terms

__all__ = ["Objective", "optimise", "descriptors_of", "INNER_STEPS"]

#: L-BFGS-B iterations per configuration per outer iteration.
INNER_STEPS = 8


def descriptors_of(descriptor, param: Param, x: np.ndarray, *, pairs: bool = False):
    """The descriptor result of the structure ``x`` (per-atom B; pair derivatives if asked)."""
    r, h = param.structure(x)
    return descriptor.compute(positions=r, cell=h, pbc=True, symbols=param.symbols,
                              forces=False, virial=False, pairs=pairs)


class Objective:
    """``f(x)`` and ``∂f/∂x`` of one configuration (module docstring). ``terms`` and
    ``whitening`` are per element symbol; ``d_wall`` the wall distance in Å."""

    def __init__(self, descriptor, param: Param, terms: Mapping[str, ConfigTerms],
                 whitening: Mapping[str, Whitening], d_wall: float) -> None:
        self.descriptor, self.param, self.d_wall = descriptor, param, d_wall
        self.terms, self.whitening = terms, whitening
        sym = np.array(param.symbols)
        self.groups = {e: np.flatnonzero(sym == e) for e in dict.fromkeys(param.symbols)}
        self.ncoeff = descriptor.ncoeff
        self.calls = 0

    def entropy(self, x: np.ndarray, grad: bool = True, res=None):
        """``S_c`` and, with ``grad``, its derivatives (∂S/∂r (N, 3), V (3, 3))."""
        if res is None:
            res = descriptors_of(self.descriptor, self.param, x, pairs=grad)
        B = res.B[:, :self.ncoeff]
        value = 0.0
        GB = np.zeros_like(B)
        for e, idx in self.groups.items():
            W = self.whitening[e]
            s, gY = self.terms[e].value_and_grad(W(B[idx]))
            value += s
            GB[idx] = W.pullback(gY)
        if not grad:
            return value
        p = res.pairs
        gp = np.einsum("pak,pk->pa", p.dBdr[:, :, :self.ncoeff], GB[p.i])
        dr = np.zeros((self.param.natoms, 3))
        np.add.at(dr, p.j, gp)
        np.add.at(dr, p.i, -gp)
        return value, dr, gp.T @ p.rij

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.calls += 1
        res = descriptors_of(self.descriptor, self.param, x, pairs=True)
        s, dr, V = self.entropy(x, res=res)
        # the wall from the descriptor's own neighbour images (d_wall is below every cutoff)
        p = res.pairs
        ew, drw, Vw = wall_terms(p.i, p.j, p.rij, self.param.natoms, self.d_wall)
        return -s + ew, self.param.chain(x, drw - dr, Vw - V)


def bounds(param: Param, volume_per_atom, max_strain: float) -> list:
    L0 = param.L0
    lo, hi = math.log(volume_per_atom[0]), math.log(volume_per_atom[1])
    return ([(None, None)] * (3 * param.natoms) + [(-max_strain * L0, max_strain * L0)] * 6
            + [(lo * L0, hi * L0)])


def feasible(param: Param, x: np.ndarray, min_distance: float) -> bool:
    r, h = param.structure(x)
    return min_pair_distance(r, h, min_distance) >= min_distance


def optimise(objective: Objective, x0: np.ndarray, volume_per_atom, max_strain: float,
             min_distance: float, steps: int = INNER_STEPS) -> np.ndarray:
    """A few L-BFGS-B steps on ``objective`` from ``x0`` (which must satisfy ``min_distance``),
    returning a structure that satisfies it (module docstring)."""
    from scipy.optimize import minimize

    param = objective.param
    b = bounds(param, volume_per_atom, max_strain)
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=b,
                   options={"maxiter": steps, "maxfun": 3 * steps})
    x = np.asarray(res.x, dtype=float)
    if not np.all(np.isfinite(x)):
        return x0
    if feasible(param, x, min_distance):
        return x
    x = relax_wall(param, x, WALL_MARGIN * min_distance)
    return x if feasible(param, x, min_distance) else x0
