"""The partition of configurations over ranks: a pure, deterministic, balancing function."""
import numpy as np
import pytest

from mpisnap.partition import assign, imbalance


def test_every_item_gets_exactly_one_rank_in_range():
    costs = np.random.default_rng(0).lognormal(size=500)
    for n in (1, 2, 3, 7, 64):
        owner = assign(costs, n)
        assert owner.shape == (500,)
        assert owner.min() >= 0 and owner.max() < n


def test_deterministic_and_independent_of_input_identity():
    costs = list(np.random.default_rng(1).integers(1, 100, size=200).astype(float))
    a = assign(costs, 5)
    b = assign(np.array(costs), 5)
    np.testing.assert_array_equal(a, b)


def test_balances_the_cost():
    rng = np.random.default_rng(2)
    costs = rng.lognormal(sigma=1.0, size=2000)
    for n in (2, 4, 16):
        owner = assign(costs, n)
        # LPT guarantees max load <= 4/3 of optimal; with many items it is much better
        assert imbalance(costs, owner, n) < 0.02


def test_greedy_is_optimal_on_a_small_known_case():
    owner = assign([5, 4, 3, 3, 3], 2)  # loads {5+3, 4+3+3} = {8, 10} — LPT's answer
    loads = sorted(np.bincount(owner, weights=[5, 4, 3, 3, 3]))
    assert loads == [8.0, 10.0]


def test_more_ranks_than_items_leaves_ranks_empty():
    owner = assign([1.0, 2.0], 4)
    assert sorted(owner.tolist()) == [0, 1]
    assert imbalance([1.0, 2.0], owner, 4) == pytest.approx(2.0 / 0.75 - 1.0)


def test_ties_go_to_the_lowest_rank_and_equal_costs_round_robin():
    np.testing.assert_array_equal(assign([1.0] * 6, 3), [0, 1, 2, 0, 1, 2])


def test_single_rank_and_empty_input():
    np.testing.assert_array_equal(assign([3.0, 1.0], 1), [0, 0])
    assert assign([], 3).shape == (0,)


@pytest.mark.parametrize("costs, n, msg", [
    ([1.0], 0, "nranks must be >= 1"),
    ([1.0, -1.0], 2, "non-negative"),
    ([1.0, np.nan], 2, "finite"),
    ([[1.0]], 2, "1-d"),
])
def test_bad_input(costs, n, msg):
    with pytest.raises(ValueError, match=msg):
        assign(costs, n)
