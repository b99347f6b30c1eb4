"""mpisnap generate under mpiexec: each rank moves its share of the configurations, descriptors
are exchanged at fixed points, so 2 ranks give the serial result (same seed, one thread per rank);
an error on one rank ends the run with one line. Each launch has a timeout as a deadlock net."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import read

INPUT = """[BISPECTRUM]
type = Cu Ni
twojmax = 4
rcutfac = 4.2
radelem = 0.5

[GENERATE]
natoms = 2 6
volume_per_atom = 10 14
nconfigs = 5
min_distance = 2.0
iterations = 2
seed = 5
oracle = ase.calculators.emt:EMT
"""


def _mpiexec():
    exe = Path(sys.executable).parent / "mpiexec"
    return str(exe) if exe.exists() else shutil.which("mpiexec")


def _run(n, args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [_mpiexec(), "-n", str(n), sys.executable, "-m", "mpisnap", "generate", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_ranks_generate_the_serial_set(tmp_path):
    inp = tmp_path / "gen.in"
    inp.write_text(INPUT)
    serial = subprocess.run([sys.executable, "-m", "mpisnap", "generate", str(inp), "--output-dir",
                             str(tmp_path / "one"), "--threads", "1", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert serial.returncode == 0, serial.stderr
    p = _run(2, [inp, "--output-dir", tmp_path / "two", "--threads", "1"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("mpisnap generate done") == 1        # rank 0 reports
    a = read(tmp_path / "one" / "generated.extxyz", ":")
    b = read(tmp_path / "two" / "generated.extxyz", ":")
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        np.testing.assert_array_equal(x.positions, y.positions)
        np.testing.assert_array_equal(x.cell, y.cell)
    one = sorted(os.listdir(tmp_path / "one" / "JSON" / "Generated"))
    two = sorted(os.listdir(tmp_path / "two" / "JSON" / "Generated"))
    assert one == two and len(one) == 5
    for f in one:  # labels made on either rank, written by rank 0: the same bytes
        assert ((tmp_path / "one" / "JSON" / "Generated" / f).read_bytes()
                == (tmp_path / "two" / "JSON" / "Generated" / f).read_bytes())
    entropy = [[ln.split(",")[:3] for ln in (tmp_path / d / "generate_entropy.csv").read_text()
                .splitlines()] for d in ("one", "two")]  # iteration, KL, smooth (not seconds)
    assert entropy[0] == entropy[1]


def test_an_oracle_failing_on_one_rank_ends_the_run_in_one_line(tmp_path):
    (tmp_path / "rank1.py").write_text(
        "import os\n"
        "from ase.calculators.emt import EMT\n"
        "class FailsOnRank1(EMT):\n"
        "    def __init__(self):\n"
        "        if os.environ.get('PMI_RANK') == '1':\n"
        "            raise OSError(2, 'No such file or directory', 'POTCAR')\n"
        "        super().__init__()\n")
    inp = tmp_path / "gen.in"
    inp.write_text(INPUT.replace("ase.calculators.emt:EMT", "rank1.py:FailsOnRank1"))
    p = _run(2, [inp, "--output-dir", tmp_path / "out", "--threads", "1"], tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("mpisnap:")]
    assert lines == ["mpisnap: error: rank 1: gen.in: [GENERATE] oracle: rank1.py:FailsOnRank1: "
                     "FailsOnRank1(**oracle_args) failed: FileNotFoundError: [Errno 2] No such "
                     "file or directory: 'POTCAR'"], p.stderr
    assert not (tmp_path / "out" / "generated.extxyz").exists()
