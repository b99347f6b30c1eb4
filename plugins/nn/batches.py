"""Which configurations the network trains on, which rank holds each, and how an epoch is cut
into batches (NumPy only: the partition is planned before PyTorch is imported).

The batches never depend on the number of ranks. With ``[PYTORCH] paired_batches = 1`` (the
default) the training configurations are sorted by estimated cost (atoms × neighbours, ties by
index) and taken two at a time: each pair holds two configurations of nearly the same cost, an
epoch shuffles the pairs (seeded by ``seed`` and the epoch) and cuts the sequence into batches
of ``batch_size`` configurations (an even ``batch_size`` keeps every pair within one batch). The
partition deals the cost-sorted configurations to the ranks in a snake (0, 1, …, P−1, P−1, …,
0, …), so with two ranks each rank holds one configuration of every pair and every batch is
split evenly between them. With ``paired_batches = 0`` the configurations are shuffled one by
one and the ranks hold cost-balanced but otherwise arbitrary shares, so a batch's work falls
unevenly on the ranks.
"""
from __future__ import annotations

import math

import numpy as np

from mpisnap.errors import FitError
from mpisnap.partition import assign

__all__ = ["split", "make_units", "owners", "epoch_order"]


def split(settings, entries) -> tuple[np.ndarray, set[int]]:
    """(test flag per global entry, validation entries): [GROUPS]'s split, or with
    ``[PYTORCH] training_fraction`` a seeded split of all entries; the validation set a seeded
    ``validation_fraction`` of the fitted entries."""
    pt = settings.pytorch
    n = len(entries)
    test = np.array([e.test for e in entries], dtype=bool)
    seed = int(pt.seed)
    if pt.training_fraction is not None:
        order = np.random.default_rng([seed, 1]).permutation(n)
        ntrain = max(1, math.floor(pt.training_fraction * n + 0.5))
        test = np.ones(n, dtype=bool)
        test[order[:ntrain]] = False
    val: set[int] = set()
    if pt.validation_fraction > 0:
        fit = np.flatnonzero(~test)
        nval = max(1, math.floor(pt.validation_fraction * len(fit) + 0.5))
        if nval >= len(fit):
            raise FitError("[PYTORCH] validation_fraction: nothing left to train on")
        val = {int(i) for i in np.random.default_rng([seed, 2]).permutation(fit)[:nval]}
    return test, val


def _by_cost(indices, costs) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    return idx[np.lexsort((idx, np.asarray(costs, float)[idx]))]


def make_units(settings, fit_idx, costs) -> list[np.ndarray]:
    """The units an epoch shuffles: pairs of cost-neighbouring training configurations (a lone
    last one when their number is odd), each in increasing index, the units in the order of
    their first index; or single configurations with ``paired_batches = 0``."""
    fit_idx = np.asarray(fit_idx, dtype=np.int64)
    if not settings.pytorch.paired_batches:
        return [fit_idx[k:k + 1] for k in range(len(fit_idx))]
    ranked = _by_cost(fit_idx, costs)
    out = [np.sort(ranked[k:k + 2]) for k in range(0, len(ranked), 2)]
    out.sort(key=lambda u: int(u[0]))
    return out


def epoch_order(units_: list[np.ndarray], seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The training configurations of ``epoch`` in batch order: the units shuffled (a generator
    seeded by ``seed`` and the epoch) or in their given order, concatenated; a lone
    configuration left over from the pairs comes last (so that it shifts no pair off the
    batches' boundaries)."""
    if not units_:
        return np.zeros(0, dtype=np.int64)
    size = max(len(u) for u in units_)
    full = [u for u in units_ if len(u) == size]
    perm = (np.random.default_rng([int(seed), int(epoch)]).permutation(len(full)) if shuffle
            else np.arange(len(full)))
    return np.concatenate([full[k] for k in perm] + [u for u in units_ if len(u) < size])


def owners(settings, costs, entries, nranks: int) -> np.ndarray:
    """Owner rank of each entry: the training configurations in a snake over their cost order
    (``paired_batches``) or cost-balanced (longest first), the validation and the test
    configurations each cost-balanced on their own (the validation loss is computed every
    epoch, the test rows once)."""
    costs = np.asarray(costs, float)
    owner = np.zeros(len(entries), dtype=np.int64)
    if nranks == 1:
        return owner
    test, val = split(settings, entries)
    is_val = np.zeros(len(entries), dtype=bool)
    is_val[list(val)] = True
    fit = np.flatnonzero(~test & ~is_val)
    if settings.pytorch.paired_batches:
        ranked = _by_cost(fit, costs)
        lap, pos = np.divmod(np.arange(len(ranked)), nranks)
        owner[ranked] = np.where(lap % 2 == 0, pos, nranks - 1 - pos)
    else:
        owner[fit] = assign(costs[fit], nranks)
    for part in (np.flatnonzero(is_val), np.flatnonzero(test)):
        owner[part] = assign(costs[part], nranks)
    return owner
