"""The training set (``mpisnap.training_set``): group sizes, the deterministic train/test split, random
sampling and the (smart) weights."""
import json
import os
import re

import numpy as np
import pytest

from mpisnap.training_set import Entry, row_weights, split_sizes, training_set
from mpisnap.plugins import readers as rmod
from mpisnap.records import ConfigRef, Reader
from mpisnap.testing.shared import shared_data
from mpisnap.settings import load_settings

INP_FILE = shared_data("InP_JPCA2020", "InP-example.in")


class FakeReader:
    """In-memory groups: ``sizes`` maps group -> number of configurations; listed in a scrambled
    order to prove that the split never depends on the listing order."""

    def __init__(self, sizes, seed=123):
        self.sizes = dict(sizes)
        self.seed = seed
        self.paths = []

    def list_configs(self, data_path, group):
        self.paths.append(data_path)
        if group not in self.sizes:
            raise ValueError(f"group {group!r}: no folder {data_path}/{group}")
        refs = [ConfigRef(f"{group}/c{i:03d}", group, f"{data_path}/{group}/c{i:03d}")
                for i in range(self.sizes[group])]
        order = np.random.default_rng(self.seed).permutation(len(refs))
        return [refs[i] for i in order]

    def reader(self):
        return Reader("FAKE", self.list_configs, lambda ref: None)


def settings(groups, smartweights=0, random_sampling=0, random_seed=0, data_path="data"):
    g = {"smartweights": smartweights, "random_sampling": random_sampling,
         "random_seed": random_seed}
    g.update(groups)
    return load_settings({"BISPECTRUM": {"type": "Ta"}, "PATH": {"dataPath": data_path},
                          "GROUPS": g}, base_dir="/base")


def names(entries, test=None):
    return [e.ref.name for e in entries if test is None or e.test == test]


# -- sizes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, train, test, expected", [
    (10, 1.0, 0.0, (10, 0)),
    (10, 0.7, 0.3, (7, 3)),
    (10, 0.0, 1.0, (0, 10)),
    (10, 0.75, 0.25, (8, 2)),     # 7.5 -> 8 and 2.5 -> 3 round half up; test gets the rest
    (3, 0.5, 0.5, (2, 1)),
    (10, 0.01, 0.0, (1, 0)),      # a non-zero fraction takes at least one
    (10, 0.5, 0.01, (5, 1)),
    (7, 0.5, 0.0, (4, 0)),        # 3.5 -> 4 (half up, not Python's round-half-even)
    (5, 0.5, 0.0, (3, 0)),        # 2.5 -> 3
    (10, 5, 3, (5, 3)),
    (10, 2, 8, (2, 8)),
    (10, 0.5, 2, (5, 2)),
    (10, 8, 0.2, (8, 2)),
    (0, 1.0, 0.0, (0, 0)),
    (4, 1, 0, (4, 0)),            # 1 is the fraction 1.0: all of them
])
def test_split_sizes(n, train, test, expected):
    assert split_sizes(n, train, test, "G") == expected


@pytest.mark.parametrize("n, train, test, fragment", [
    (10, 8, 3, "ask for 8 + 3 configurations but the group has 10"),
    (10, 11, 0.0, "ask for 11 + 0"),
    (10, 0.5, 6, "ask for 5 + 6"),
    (10, 9, 0.2, "ask for 9 + 2"),
    (10, 2.5, 0.0, "must be a whole number"),
    (10, -0.5, 0.0, "training_size must be a number >= 0"),
    (10, 1.0, float("nan"), "testing_size must be a number >= 0"),
])
def test_split_sizes_errors(n, train, test, fragment):
    with pytest.raises(ValueError, match="group 'G'") as info:
        split_sizes(n, train, test, "G")
    assert fragment in str(info.value)


# -- the split ------------------------------------------------------------------------------------

def test_sorted_split_last_files_are_the_test_set():
    fake = FakeReader({"A": 10, "B": 5})
    s = settings({"B": "3 2 1 1 1", "A": "0.7 0.3 1 1 1"})
    entries = training_set(s, fake.reader())
    assert fake.paths == [os.path.normpath("/base/data")] * 2  # dataPath resolved
    # group order of the input file (B first), then by name
    assert names(entries) == [f"B/c{i:03d}" for i in range(5)] + [f"A/c{i:03d}" for i in range(10)]
    assert names(entries, test=False) == ([f"B/c{i:03d}" for i in range(3)]
                                          + [f"A/c{i:03d}" for i in range(7)])
    assert names(entries, test=True) == ([f"B/c{i:03d}" for i in (3, 4)]
                                         + [f"A/c{i:03d}" for i in (7, 8, 9)])
    assert all(isinstance(e, Entry) for e in entries)


def test_configurations_beyond_train_and_test_are_dropped():
    entries = training_set(settings({"A": "4 3 1 1 1"}), FakeReader({"A": 10}).reader())
    assert names(entries, test=False) == [f"A/c{i:03d}" for i in range(4)]
    assert names(entries, test=True) == [f"A/c{i:03d}" for i in range(4, 7)]
    assert len(entries) == 7


def test_all_training_by_default_and_weights_copied():
    entries = training_set(settings({"A": "1.0 0.0 100 2.5 1e-12"}), FakeReader({"A": 4}).reader())
    assert [(e.test, e.eweight, e.fweight, e.vweight, e.smartweights) for e in entries] == \
        [(False, 100.0, 2.5, 1e-12, False)] * 4
    assert entries[0].row_weights(7) == (100.0, 2.5, 1e-12)  # no smartweights: unchanged


def test_random_sampling_is_deterministic_and_a_partition():
    s = settings({"A": "0.6 0.3 1 1 1"}, random_sampling=1, random_seed=42)
    a = training_set(s, FakeReader({"A": 50}, seed=1).reader())
    b = training_set(s, FakeReader({"A": 50}, seed=2).reader())  # other listing order
    assert a == b
    train, test = set(names(a, False)), set(names(a, True))
    assert (len(train), len(test)) == (30, 15) and not train & test
    assert names(a) == sorted(names(a))  # returned by name, flags per entry
    sorted_split = training_set(settings({"A": "0.6 0.3 1 1 1"}), FakeReader({"A": 50}).reader())
    assert set(names(sorted_split, True)) != test  # the shuffle changed something
    other_seed = training_set(settings({"A": "0.6 0.3 1 1 1"}, random_sampling=1, random_seed=43),
                              FakeReader({"A": 50}).reader())
    assert set(names(other_seed, True)) != test


def test_random_sampling_matches_the_documented_generator():
    import zlib
    s = settings({"A": "0.5 0.5 1 1 1"}, random_sampling=1, random_seed=7)
    entries = training_set(s, FakeReader({"A": 8}).reader())
    perm = np.random.default_rng([7, zlib.crc32(b"A")]).permutation(8)
    order = [f"A/c{i:03d}" for i in perm]
    assert set(names(entries, False)) == set(order[:4])
    assert set(names(entries, True)) == set(order[4:])


def test_random_split_of_a_group_does_not_depend_on_other_groups():
    one = training_set(settings({"A": "0.5 0.5 1 1 1"}, random_sampling=1, random_seed=3),
                       FakeReader({"A": 20}).reader())
    two = training_set(settings({"Z": "0.5 0.5 1 1 1", "A": "0.5 0.5 1 1 1"}, random_sampling=1,
                                random_seed=3), FakeReader({"A": 20, "Z": 13}).reader())
    assert [e for e in two if e.ref.group == "A"] == one


def test_smartweights_divide_by_split_count_and_rows():
    s = settings({"A": "6 3 90 12 6", "B": "1.0 0.0 8 4 3"}, smartweights=1)
    entries = training_set(s, FakeReader({"A": 10, "B": 4}).reader())
    a_train = [e for e in entries if e.ref.group == "A" and not e.test]
    a_test = [e for e in entries if e.ref.group == "A" and e.test]
    b = [e for e in entries if e.ref.group == "B"]
    assert (len(a_train), len(a_test), len(b)) == (6, 3, 4)
    assert all((e.eweight, e.fweight, e.vweight, e.smartweights) == (15.0, 2.0, 1.0, True)
               for e in a_train)
    assert all((e.eweight, e.fweight, e.vweight) == (30.0, 4.0, 2.0) for e in a_test)
    assert all((e.eweight, e.fweight, e.vweight) == (2.0, 1.0, 0.75) for e in b)
    we, wf, wv = row_weights(a_train[0], 5)
    assert (we, wf, wv) == (15.0, pytest.approx(2.0 / 15), pytest.approx(1.0 / 6))
    assert a_test[0].row_weights(2) == (30.0, pytest.approx(4.0 / 6), pytest.approx(2.0 / 6))


def test_row_weights_rejects_bad_natoms():
    e = Entry(ConfigRef("A/x", "A", "x"), False, 1.0, 1.0, 1.0, True)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="A/x: natoms"):
            row_weights(e, bad)


def test_training_set_errors():
    with pytest.raises(ValueError, match="group 'A': training_size 8 \\+ testing_size 3"):
        training_set(settings({"A": "8 3 1 1 1"}), FakeReader({"A": 10}).reader())
    with pytest.raises(ValueError, match="group 'Missing': no folder"):
        training_set(settings({"Missing": "1.0 0.0 1 1 1"}), FakeReader({"A": 10}).reader())

    def dup(data_path, group):
        return [ConfigRef("A/x", group, "x"), ConfigRef("A/x", group, "y")]
    with pytest.raises(ValueError, match="'A/x' is listed twice"):
        training_set(settings({"A": "1.0 0.0 1 1 1"}), Reader("DUP", dup, lambda r: None))


def test_training_set_with_the_json_reader(tmp_path):
    reader = {r.name: r for r in rmod.mpisnap_readers()}["JSON"]
    doc = {"Dataset": {"Data": [{"Positions": [[0, 0, 0]], "Lattice": np.eye(3).tolist(),
                                 "AtomTypes": ["Ta"], "NumAtoms": 1, "Energy": -1.0}]}}
    for g, count in (("G1", 3), ("G2", 2)):
        (tmp_path / "JSON" / g).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "JSON" / g / f"f{i}.json").write_text("# c\n" + json.dumps(doc))
    inp = tmp_path / "fit.in"
    inp.write_text("[BISPECTRUM]\ntype = Ta\n[PATH]\ndataPath = JSON\n"
                   "[GROUPS]\nG2 = 1.0 0.0 1 1 1\nG1 = 2 0.34 1 1 1\n")  # 1 would be the fraction 1.0
    entries = training_set(load_settings(inp), reader)
    assert [(e.ref.name, e.test) for e in entries] == [
        ("G2/f0.json", False), ("G2/f1.json", False),
        ("G1/f0.json", False), ("G1/f1.json", False), ("G1/f2.json", True)]
    assert entries[0].ref.source == str(tmp_path / "JSON" / "G2" / "f0.json")
    inp.write_text("[BISPECTRUM]\ntype = Ta\n[PATH]\ndataPath = JSON\n[GROUPS]\nG3 = 1.0 0.0 1 1 1\n")
    with pytest.raises(ValueError, match=f"group 'G3': no folder {tmp_path / 'JSON' / 'G3'}"):
        training_set(load_settings(inp), reader)


def test_inp_training_set():
    s = load_settings(INP_FILE)
    reader = {r.name: r for r in rmod.mpisnap_readers()}["JSON"]
    entries = training_set(s, reader)
    assert len(entries) == 1894 and not any(e.test for e in entries)
    groups = list(dict.fromkeys(e.ref.group for e in entries))
    assert groups == [g.name for g in s.groups]
    for g in s.groups:
        mine = [e for e in entries if e.ref.group == g.name]
        assert names(mine) == sorted(names(mine))
        assert all((e.eweight, e.fweight, e.vweight) == (g.eweight, g.fweight, g.vweight)
                   for e in mine)
    assert entries == training_set(s, reader)


# -- weights that would fit nothing, or overflow -------------------------------------------------

def _settings_with(groups, calculator=None):
    raw = {"BISPECTRUM": {"type": "Ta"}, "PATH": {"dataPath": "data"}, "GROUPS": dict(groups)}
    if calculator:
        raw["CALCULATOR"] = calculator
    return load_settings(raw, base_dir="/base")


@pytest.mark.parametrize("groups, named", [
    ({"A": "1.0 0.0 0 0 0", "B": "0.5 0.5 0 0 0"}, "A, B"),
    # only the test rows have weight: the fit would still see zeros only
    ({"A": "1.0 0.0 0 0 0", "B": "0.0 1.0 1 1 1", "C": "0.6 0.4 0 0 0"}, "A, C"),
])
def test_every_training_weight_zero_is_an_error_naming_the_groups(groups, named):
    reader = FakeReader({"A": 4, "B": 4, "C": 5}).reader()
    with pytest.raises(ValueError, match=rf"^<dict>: \[GROUPS\]: every training row has weight 0 "
                                         rf"\(groups: {named}; fitted rows: energy, force, "
                                         r"stress\): .*set a non-zero eweight/fweight/vweight"):
        training_set(_settings_with(groups), reader)


def test_zero_weight_only_counts_for_the_fitted_row_kinds():
    reader = FakeReader({"A": 4}).reader()
    energy_only = {"force": 0, "stress": 0}
    with pytest.raises(ValueError, match=r"fitted rows: energy\): .*set a non-zero eweight in"):
        training_set(_settings_with({"A": "1.0 0.0 0 1 1"}, energy_only), reader)
    # one weighted kind of one group is enough; a group with weight 0 beside it is fine
    assert len(training_set(_settings_with({"A": "1.0 0.0 2 0 0"}, energy_only), reader)) == 4
    reader = FakeReader({"A": 4, "B": 3}).reader()
    assert len(training_set(_settings_with({"A": "1.0 0.0 0 0 0", "B": "1.0 0.0 0 1e-8 0"}),
                            reader)) == 7
    # no training rows at all is left to the pipeline ("no training rows")
    only_test = _settings_with({"A": "0.0 1.0 0 0 0"})
    assert len(training_set(only_test, FakeReader({"A": 4}).reader())) == 4


def test_weight_beyond_the_bound_is_an_error():
    reader = FakeReader({"A": 4}).reader()
    with pytest.raises(ValueError, match=r"^<dict>: \[GROUPS\] A: eweight: 1e\+300 is too large "
                                         r"\(at most 1e100\): weights only matter relative"):
        training_set(_settings_with({"A": "1.0 0.0 1e300 1 1"}), reader)
    assert training_set(_settings_with({"A": "1.0 0.0 1e100 1 1"}), reader)[0].eweight == 1e100


@pytest.mark.parametrize("value, fragment", [
    (float("nan"), "a weight must be a finite number >= 0, got nan"),
    (float("inf"), "a weight must be a finite number >= 0, got inf"),
    (-1.0, "a weight must be a finite number >= 0, got -1.0"),
    (True, "expected a number, got True"),
])
def test_weights_that_bypass_the_parser_are_checked(value, fragment):
    """Settings built in Python (not parsed) get the same checks."""
    import dataclasses

    s = _settings_with({"A": "1.0 0.0 1 1 1"})
    s = dataclasses.replace(s, groups=(dataclasses.replace(s.groups[0], fweight=value),))
    with pytest.raises(ValueError, match=r"\[GROUPS\] A: fweight: " + re.escape(fragment)):
        training_set(s, FakeReader({"A": 2}).reader())
