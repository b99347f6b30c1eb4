"""Transferability, EMT copper as the oracle: a linear SNAP fitted to N generated configurations
has a lower worst-group test error (energy and force RMSE) on a hand-curated EMT test suite
(strained bulk, vacancy, interstitial, surfaces, hot MD, liquid, strongly compressed) than one
fitted to N MD snapshots of the same sizes, with the same hyperparameters."""
import mpisnap
from mpisnap.testing import emt_suite

N = 20


def test_generated_set_transfers_better_than_md_snapshots(tmp_path):
    data = tmp_path / "JSON"
    for group, structures in emt_suite.suite(per_group=2, seed=3).items():
        emt_suite.write_group(data / group, structures)
    sections = {"BISPECTRUM": {"type": "Cu", "twojmax": 6, "rcutfac": 4.8, "radelem": 0.5},
                "GENERATE": {"natoms": "4 16", "volume_per_atom": "8 16", "max_strain": 0.1,
                             "nconfigs": N, "min_distance": 2.1, "iterations": 3, "seed": 1,
                             "oracle": "ase.calculators.emt:EMT"}}
    gen = mpisnap.generate(sections, threads=1)
    assert len(gen.structures) == N and all(lab is not None for lab in gen.labels)
    emt_suite.write_group(data / "Generated", gen.structures, gen.labels)
    emt_suite.write_group(data / "MD", emt_suite.md_snapshots(N, (4, 16), seed=2))
    scores = {name: emt_suite.fit_and_score(data, name, twojmax=8) for name in ("Generated", "MD")}
    worst = {name: {kind: max(s[g][kind] for g in s) for kind in ("Energy", "Force")}
             for name, s in scores.items()}
    assert worst["Generated"]["Energy"] < worst["MD"]["Energy"], scores
    assert worst["Generated"]["Force"] < worst["MD"]["Force"], scores
