"""How the network's training configurations are batched and shared between ranks
(plugins/nn/batches.py): pairs of configurations of similar cost, one of each pair per rank for
two ranks, so that every batch is split evenly; the same batches for every rank count; the
validation and test configurations balanced on their own; ``paired_batches = 0`` gives
batches of single configurations. One rank takes the costs from the configurations it loaded,
bit for bit the plan's estimate."""
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mpisnap.comm import SerialComm
from mpisnap.partition import assign
from mpisnap.pipeline import Timer, plan, prepare
from mpisnap.pipeline.partitioning import estimate_costs
from mpisnap.settings import SettingsError
from mpisnap.settings.schema import PytorchSettings
from mpisnap.testing import nn_data as D
from mpisnap.plugins.nn.batches import epoch_order, make_units, owners, split


def settings(**pytorch):
    return SimpleNamespace(pytorch=replace(PytorchSettings(), **pytorch))


def entries(n, test=()):
    return [SimpleNamespace(test=i in test) for i in range(n)]


def costs(n, seed=0, sigma=0.7):
    """Configuration costs spread like a mixed training set (log-normal, a few cells larger)."""
    return np.random.default_rng(seed).lognormal(mean=0.0, sigma=sigma, size=n)


def epoch_speedups(s, c, ent, nranks, batch, epochs=20):
    """Per epoch, the ideal speed-up of ``nranks`` ranks: the epoch's total cost over the sum of
    the busiest rank's cost in each batch (the ranks wait for each other at every batch)."""
    test, val = split(s, ent)
    fit = np.array([i for i in range(len(ent)) if not test[i] and i not in val])
    own = owners(s, c, ent, nranks)
    out = []
    for epoch in range(epochs):
        order = epoch_order(make_units(s, fit, c), s.pytorch.seed, epoch, True)
        busiest = 0.0
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            busiest += np.bincount(own[idx], weights=c[idx], minlength=nranks).max()
        out.append(c[order].sum() / busiest)
    return np.array(out)


def test_pairs_are_cost_neighbours_and_cover_the_training_set_once():
    c = costs(41)
    fit = np.arange(41)
    units = make_units(settings(), fit, c)
    assert sorted(np.concatenate(units).tolist()) == fit.tolist()
    assert [len(u) for u in units].count(1) == 1 and {len(u) for u in units} == {1, 2}
    rank = np.empty(41, int)
    rank[np.argsort(c, kind="stable")] = np.arange(41)
    for u in units:
        assert list(u) == sorted(u)
        if len(u) == 2:
            assert abs(rank[u[0]] - rank[u[1]]) == 1 and min(rank[u]) % 2 == 0


def test_a_lone_configuration_comes_last_and_keeps_the_pairs_on_batch_boundaries():
    c = costs(41)
    units = make_units(settings(), np.arange(41), c)
    lone = [u for u in units if len(u) == 1][0]
    own = owners(settings(), c, entries(41), 2)
    for epoch in range(5):
        order = epoch_order(units, 0, epoch, True)
        assert order[-1] == lone[0]
        for b in range(0, 40, 8):  # every batch of 8 holds 4 whole pairs: 4 on each rank
            assert np.bincount(own[order[b:b + 8]], minlength=2).tolist() == [4, 4]


def test_two_ranks_hold_one_configuration_of_every_pair():
    c, ent = costs(60), entries(60, test=range(50, 60))
    s = settings()
    own = owners(s, c, ent, 2)
    for u in make_units(s, np.arange(50), c):
        assert sorted(own[u]) == [0, 1]
    for part in (np.arange(50, 60),):  # the test configurations: balanced on their own
        loads = np.bincount(own[part], weights=c[part], minlength=2)
        ref = np.bincount(assign(c[part], 2), weights=c[part], minlength=2)
        assert loads.max() == pytest.approx(ref.max())


@pytest.mark.parametrize("sigma", [0.3, 0.7])
def test_every_batch_is_shared_evenly_by_two_ranks(sigma):
    """The ideal 2-rank speed-up of epochs of batches of 32: paired at least 1.9 in every epoch;
    the single-configuration shuffle with cost-balanced ranks falls clearly lower."""
    c, ent = costs(124, seed=3, sigma=sigma), entries(124)
    paired = epoch_speedups(settings(), c, ent, 2, 32)
    single = epoch_speedups(settings(paired_batches=0), c, ent, 2, 32)
    assert paired.min() >= 1.9
    assert np.median(single) < np.median(paired) - 0.1


def test_three_ranks_share_the_training_configurations_evenly():
    c, ent = costs(90, seed=5), entries(90)
    own = owners(settings(), c, ent, 3)
    assert np.bincount(own, minlength=3).tolist() == [30, 30, 30]
    loads = np.bincount(own, weights=c, minlength=3)
    assert loads.max() / loads.mean() < 1.1
    paired = np.median(epoch_speedups(settings(), c, ent, 3, 30))
    assert paired > 2.4 and paired > np.median(epoch_speedups(settings(paired_batches=0), c,
                                                              ent, 3, 30))


def test_validation_configurations_are_left_out_of_the_pairs_and_balanced():
    c, ent = costs(50, seed=7), entries(50, test=range(40, 50))
    s = settings(validation_fraction=0.25)
    test, val = split(s, ent)
    assert len(val) == 10 and not any(test[i] for i in val)
    fit = [i for i in range(50) if not test[i] and i not in val]
    units = make_units(s, fit, c)
    assert sorted(np.concatenate(units).tolist()) == fit
    own = owners(s, c, ent, 2)
    v = np.array(sorted(val))
    loads = np.bincount(own[v], weights=c[v], minlength=2)
    ref = np.bincount(assign(c[v], 2), weights=c[v], minlength=2)
    assert loads.max() == pytest.approx(ref.max())


def test_single_configuration_batches_on_request():
    c, fit = costs(10), np.arange(10)
    s = settings(paired_batches=0)
    assert [u.tolist() for u in make_units(s, fit, c)] == [[i] for i in range(10)]
    assert epoch_order(make_units(s, fit, c), 0, 0, False).tolist() == fit.tolist()
    np.testing.assert_array_equal(owners(s, c, entries(10), 2), assign(c, 2))
    shuffled = epoch_order(make_units(s, fit, c), 0, 1, True)
    assert sorted(shuffled.tolist()) == fit.tolist() and shuffled.tolist() != fit.tolist()


def test_without_shuffling_the_pairs_come_in_index_order():
    c = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.5])
    units = make_units(settings(), np.arange(6), c)
    # cost order 5 1 3 4 2 0 -> pairs (1, 5) (3, 4) (0, 2), listed by first index
    assert [u.tolist() for u in units] == [[0, 2], [1, 5], [3, 4]]
    assert epoch_order(units, 0, 3, False).tolist() == [0, 2, 1, 5, 3, 4]


# -- in the pipeline --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cu_sizes(tmp_path_factory):
    """Cu cells of two sizes (2x2x2 and 2x2x1 conventional cells)."""
    d = tmp_path_factory.mktemp("cu_sizes")
    D.write_set(d, {"big": D.emt_structures(("Cu",), n=6, seed=1),
                    "small": D.emt_structures(("Cu",), n=6, seed=2, repeat=(2, 2, 1))})
    groups = {"big": "1.0 0.0 1.0 1.0 1e-5", "small": "1.0 0.0 1.0 1.0 1e-5"}
    return D.nn_input(Path(d) / "cu.in", ["Cu"], groups,
                      pytorch={"num_epochs": 2, "batch_size": 4, "layer_sizes": "num_desc 8 1"})


def test_costs_from_the_loaded_configurations_equal_the_plans_estimate(cu_sizes):
    """One rank estimates nothing before reading; the training takes the same estimate from the
    configurations it loaded, to the last bit (so 1 and N ranks pair the same way)."""
    from mpisnap.plugins.nn import training

    setup = prepare(cu_sizes, [])
    pl = plan(SerialComm(), setup, setup.model.owners)
    assert pl.costs is None and pl.mine.tolist() == list(range(12))
    items = training.load_items(setup.model, setup, pl, Timer())
    ref = estimate_costs(setup, pl.entries, range(12))
    got = training._costs(SerialComm(), setup, pl, items)
    assert got.tolist() == [ref[i] for i in range(12)]
    assert got[6:].max() < got[:6].min()  # 16-atom cells cost less than 32-atom ones


def test_a_partition_with_the_plans_costs_trains_the_same_network(cu_sizes):
    nets = []
    for with_costs in (True, False):
        setup = prepare(cu_sizes, [])
        pl = plan(SerialComm(), setup, setup.model.owners)
        if with_costs:  # as a plan on several ranks hands them over
            ref = estimate_costs(setup, pl.entries, range(12))
            pl = replace(pl, costs=np.array([ref[i] for i in range(12)]))
        result = setup.model.train(SerialComm(), setup, pl, Timer())
        nets.append(np.asarray(result.model.coefficients))
    np.testing.assert_array_equal(nets[0], nets[1])


@pytest.mark.parametrize("value, ok", [("0", 0), ("1", 1), ("off", 0), ("2", None),
                                       ("pairs", None)])
def test_paired_batches_is_a_flag(cu_sizes, value, ok):
    assert prepare(cu_sizes, []).settings.pytorch.paired_batches == 1
    if ok is not None:
        assert prepare(cu_sizes, [f"PYTORCH.paired_batches={value}"]).settings.pytorch \
            .paired_batches == ok
    else:
        with pytest.raises(SettingsError, match=r"cu.in: \[PYTORCH\] paired_batches"):
            prepare(cu_sizes, [f"PYTORCH.paired_batches={value}"])
