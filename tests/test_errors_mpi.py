"""The error contract under ``mpiexec -n 2``: one ``mpisnap`` line per job (the launcher's own
abort notice aside), the documented exit status, every rank ended, no partial outputs and the
previous outputs intact. Every launch has a timeout as a deadlock net."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "Cu_EMT"
FAULT = Path(__file__).parent / "mpi_scripts" / "cli_fault.py"
PREVIOUS = {"Cu_EMT_pot.snapcoeff": "previous coefficients", "Cu_EMT_pot.log": "previous log"}


def mpiexec(args, cwd, timeout=60, env=None):
    exe = Path(sys.executable).parent / "mpiexec"
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.run([str(exe if exe.exists() else shutil.which("mpiexec")), "-n", "2",
                        *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p, time.perf_counter() - t0


def one_message(stderr: str) -> str:
    """The single ``mpisnap`` line; anything else must be the launcher's abort notice."""
    lines = stderr.splitlines()
    ours = [ln for ln in lines if ln.startswith("mpisnap")]
    assert len(ours) == 1, stderr
    others = [ln for ln in lines if not ln.startswith("mpisnap") and ln.strip()]
    assert all("Abort(" in ln for ln in others), stderr
    return ours[0]


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("mine")
    p, _ = mpiexec([sys.executable, "-m", "mpisnap", "fit", EXAMPLE / "Cu_EMT.in",
                    "--output-dir", tmp_path / "out"], tmp_path)
    assert p.returncode == 2, p.stderr
    line = one_message(p.stderr)
    assert line.startswith("mpisnap: error: ") and "not a directory" in line
    assert p.stdout == ""
    assert (tmp_path / "out").read_text() == "mine"


def test_a_directory_in_the_way_keeps_the_previous_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in PREVIOUS.items():
        (out / name).write_text(text)
    (out / "Cu_EMT_metrics.md").mkdir()
    p, _ = mpiexec([sys.executable, "-m", "mpisnap", "fit", EXAMPLE / "Cu_EMT.in", "-q",
                    "--output-dir", out], tmp_path, timeout=120)
    assert p.returncode == 2, p.stderr
    line = one_message(p.stderr)
    assert line.startswith("mpisnap: error: ") and "Cu_EMT_metrics.md: is a directory" in line
    assert sorted(x.name for x in out.iterdir()) == sorted([*PREVIOUS, "Cu_EMT_metrics.md"])
    for name, text in PREVIOUS.items():
        assert (out / name).read_text() == text


@pytest.mark.parametrize("fault_rank", [0, 1])
def test_internal_error_on_one_rank_ends_every_rank_with_one_line(tmp_path, fault_rank):
    """The other rank waits in a collective: the failing rank prints and aborts the job."""
    out = tmp_path / "out"
    p, elapsed = mpiexec([sys.executable, FAULT, "fit", EXAMPLE / "Cu_EMT.in", "-q",
                          "--output-dir", out], tmp_path, timeout=120,
                         env={"FAULT_RANK": str(fault_rank)})
    assert p.returncode == 1, p.stderr
    line = one_message(p.stderr)
    where = f" (rank {fault_rank})" if fault_rank else ""
    assert line == (f"mpisnap: internal error{where}: ZeroDivisionError: division by zero (run "
                    f"with --debug for the traceback)")
    assert "Traceback" not in p.stderr
    assert not out.exists()
    assert elapsed < 60
