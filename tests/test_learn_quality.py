"""The default selection rule earns its place: on EMT copper pools with held-out test sets, at a
budget of 5 % of the pool (random selection is clearly worse than a fit to the whole pool there),
greedy I-optimal batches come within 12 % of the whole pool's test force RMSE and beat random
selection, averaged over pools (and over three random draws per pool).

The rounds are those of ``mpisnap learn`` (posterior of the per-kind triangles from
:mod:`mpisnap.learning.posterior`, batches of 5 from :func:`mpisnap.learning.selection.select`,
a refit per round) on rows computed once per pool, with the EMT labels computed up front (the
oracle would return the same numbers); the campaign's plumbing is tested in test_learn.py.
Pools, test sets and starting sets are fixed by their seeds. Measured: ivar / whole pool 1.154,
0.998, 1.249, 1.071 (mean 1.118: the 12 % bound holds with little to spare at this size), random
1.13, 1.38, 1.20, 1.40 (mean 1.28); on eight pools the means are 1.11 and 1.28, and on larger pools
ivar's margin grows (BENCHMARKS.md, scripts/bench_learn.py). Per pool ivar loses to random
about one time in three; averaged over pools it wins clearly, as random's bad draws are far
worse than ivar's.
"""
from __future__ import annotations

import numpy as np
import pytest

from mpisnap.pipeline import prepare
from mpisnap.testing.learn_pools import (STUDY_SETTINGS, bulk_seeds, copper_pool, force_rmse,
                                         study_campaign, study_fit, study_rows)

POOLS = (0, 1, 2, 3)
NPOOL, NTEST, NSEED = 300, 100, 10
BUDGET = NPOOL // 20


@pytest.fixture(scope="module")
def model():
    return prepare(STUDY_SETTINGS, autoload=False, threads=1).model


def test_ivar_beats_random_and_nears_the_whole_pool(model):
    ivar, rand = [], []
    for s in POOLS:
        pool = study_rows(model, copper_pool(NPOOL, s))
        test = study_rows(model, copper_pool(NTEST, s + 1000))
        seeds = study_rows(model, bulk_seeds(NSEED, s))
        full = force_rmse(study_fit(model, seeds + pool)[0], test)

        def ratio(criterion, k=0):
            return force_rmse(study_campaign(model, seeds, pool, criterion, BUDGET, 5, k),
                              test) / full

        ivar.append(ratio("ivar"))
        rand.append(np.mean([ratio("random", k) for k in range(3)]))
    print("ivar / full:", np.round(ivar, 3), "random / full:", np.round(rand, 3))
    assert np.mean(rand) > 1.15  # the regime of the claim: random is clearly worse than all
    assert np.mean(ivar) <= 1.12
    assert np.mean(ivar) < np.mean(rand)
