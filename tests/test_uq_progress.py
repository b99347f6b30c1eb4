"""The evidence optimisation of a BAYES fit shows a tqdm display (iterations, current
log-evidence) on a terminal, like the descriptor bar, and nothing with ``-q``."""
import fcntl
import os
import pty
import struct
import termios
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "Cu_EMT" / "Cu_EMT_bayes.in"


def fit_on_a_terminal(tmp_path, *options) -> str:
    """``mpisnap fit`` of the BAYES example with stderr on a pseudo-terminal (progress bars are
    shown on terminals only); what it wrote there."""
    master, slave = pty.openpty()
    # a terminal 120 columns wide (a new pseudo-terminal has 0 columns: tqdm would print nothing)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, OMP_NUM_THREADS="1", MPISNAP_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.Popen([sys.executable, "-m", "mpisnap", "fit", str(EXAMPLE), "--set",
                             "UQ.nsamples=0", "--output-dir", str(tmp_path / "out"), *options],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_evidence_progress_on_a_terminal_and_none_with_quiet(tmp_path):
    shown = fit_on_a_terminal(tmp_path / "shown")
    assert "descriptors" in shown  # the terminal works: the fit's own bar
    assert "evidence:" in shown and "log E = " in shown
    quiet = fit_on_a_terminal(tmp_path / "quiet", "-q")
    assert quiet.strip() == ""
