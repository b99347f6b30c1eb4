"""Stage 2, plan: list the training set (identically on every rank) and give each rank its
configurations, balanced by estimated descriptor cost."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..comm import agree, gather_dict
from ..training_set import training_set
from ..errors import FitError
from ..partition import assign, imbalance
from .reading import load
from .setup import Setup

__all__ = ["Partition", "plan", "config_cost", "estimate_costs", "gather_costs", "own_all"]

log = logging.getLogger("mpisnap")


@dataclass
class Partition:
    """Which configurations this rank computes: ``entries`` the global training-set listing
    (:class:`~mpisnap.training_set.TrainingEntry`, identical on every rank), ``mine`` the indices of this
    rank's entries, and the global names the row labels index (``config_names``,
    ``group_names``)."""

    entries: list
    mine: np.ndarray
    config_names: list[str]
    group_names: list[str]
    #: estimated cost of every entry (:func:`estimate_costs`), when the plan computed them
    costs: np.ndarray | None = None


def own_all(entries, group_names) -> Partition:
    """A partition in which this rank owns every entry (one process, or entries already split,
    e.g. new configurations to fold into an existing fit)."""
    return Partition(list(entries), np.arange(len(entries)), [e.ref.name for e in entries],
                     list(group_names))


def config_cost(setup: Setup, natoms: int, volume: float) -> float:
    """Estimated descriptor cost of a configuration: atoms × (1 + neighbours within the largest
    cutoff at its mean density); ``volume`` 0 (not periodic): every atom a neighbour."""
    b = setup.settings.bispectrum
    sphere = 4.0 / 3.0 * np.pi * (2.0 * max(b.radelem) * b.rcutfac) ** 3
    neigh = natoms / volume * sphere if volume > 0 else natoms
    return natoms * (1.0 + neigh)


def estimate_costs(setup: Setup, entries, indices) -> dict[int, float]:
    """:func:`config_cost` of ``entries[i]`` for each ``i`` in ``indices`` (reads those
    configurations)."""
    out = {}
    for i in indices:
        c = load(setup.reader, entries[i].ref, setup.settings.bispectrum.type)
        out[i] = config_cost(setup, c.natoms, c.volume if all(c.pbc) else 0.0)
    return out


def gather_costs(comm, n: int, local: dict[int, float]) -> np.ndarray:
    """The ``n`` entries' costs from every rank's ``local`` share (entry index → cost; together
    every entry once), exchanged."""
    costs = np.zeros(n)
    for i, v in gather_dict(comm, local).items():
        costs[i] = v
    return costs


def plan(comm, setup: Setup, owners=None) -> Partition:
    """List the training set (identically on every rank) and assign configurations to ranks by
    estimated cost, atoms × neighbours. Each rank estimates a 1/P round-robin share (reading those
    configurations once), the estimates are exchanged (one number per configuration), and
    :func:`mpisnap.partition.assign` balances them; each rank then reads only its own.

    ``owners(costs, entries, nranks)``, when given (a trainable model's own rule, see
    :class:`mpisnap.models.TrainableModel`), assigns instead. The costs are kept in
    :attr:`Partition.costs` (None on one rank, where nothing is estimated)."""
    settings = setup.settings
    groups = [g.name for g in settings.groups]

    def listing():
        entries = training_set(settings, setup.reader)
        if not entries:
            raise FitError("no training configurations: check [PATH] dataPath and [GROUPS]")
        return entries

    entries = agree(comm, listing)  # (no collective inside a function given to agree)
    if comm.size == 1:
        return own_all(entries, groups)
    costs = gather_costs(comm, len(entries), agree(
        comm, estimate_costs, setup, entries, range(comm.rank, len(entries), comm.size)))
    owner = (assign(costs, comm.size) if owners is None
             else agree(comm, owners, costs, entries, comm.size))
    if comm.rank == 0:
        log.info("partition: %d configurations over %d ranks, cost (atoms x neighbours) "
                 "imbalance %.1f%%", len(entries), comm.size,
                 100 * imbalance(costs, owner, comm.size))
    return Partition(entries, np.flatnonzero(owner == comm.rank), [e.ref.name for e in entries],
                     groups, costs)
