"""A helper process with matplotlib already imported, for drawing while a fit runs.

matplotlib's import is most of a small fit's plotting time (about a third of a whole fit of the
size of FitSNAP's Ta_Linear example). ``mpisnap fit`` starts the helper first thing
(:func:`start_early`): a Python process that runs this file as a script and imports matplotlib
on another core while the fit runs; a writer finds it (:func:`current`) and asks it to call a
drawing function (:meth:`PlotProcess.call`, e.g. the parity plot's
``mpisnap.plugins.parity_plot:draw``). This module imports nothing but the standard library, so
that the helper starts before the fit's own imports; it knows no plugin (the function to call
comes with each request and is imported in the helper).

Protocol (pipes): the helper writes ``R`` once matplotlib is imported; each request is an 8-byte
little-endian length and a pickle of ``(target, args)``, ``target`` a ``"module:function"``
name; each reply an 8-byte length and the error text (empty: done). The helper ends when its
standard input closes, or after ``IDLE`` seconds (``MPISNAP_PLOT_IDLE``) without a request.
"""
from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading

__all__ = ["PlotProcess", "can_help", "start_early", "current"]


# -- the process ---------------------------------------------------------------------------

_HEADER = struct.Struct("<Q")
#: Seconds the helper waits for a request before it ends (the writer then draws itself);
#: ``MPISNAP_PLOT_IDLE`` in its environment.
IDLE = 900.0


class PlotProcess:
    """A helper process that draws (see the module docstring). :meth:`call` returns
    False (and the caller draws itself) whenever the helper cannot: it failed to start, died, is
    too slow to answer, or drawing failed there."""

    def __init__(self, timeout: float = 120.0):
        self.timeout = timeout
        self.lock = threading.Lock()
        self.ready = False
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        env.pop("PYTHONSTARTUP", None)
        code = ("import runpy, sys; sys.path.pop(0); "  # not the current folder's modules
                f"runpy.run_path({os.path.abspath(__file__)!r}, run_name='__main__')")
        self.proc = subprocess.Popen(  # its own session: a terminal's Ctrl-C is not for it
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True, close_fds=True)

    def _read(self, n: int, deadline: float) -> bytes:
        import time

        out = b""
        fd = self.proc.stdout.fileno()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("the plot process did not answer")
            chunk = os.read(fd, n - len(out))
            if not chunk:
                raise EOFError("the plot process ended")
            out += chunk
        return out

    def call(self, target: str, *args) -> bool:
        """Have the helper call ``target`` (``"module:function"``) with ``args``; whether it did
        (False: the caller does it itself)."""
        import time

        with self.lock:
            if self.proc.poll() is not None:
                return False
            deadline = time.monotonic() + self.timeout
            try:
                if not self.ready:
                    if self._read(1, deadline) != b"R":
                        raise EOFError("the plot process did not start")
                    self.ready = True
                msg = pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.write(_HEADER.pack(len(msg)) + msg)
                self.proc.stdin.flush()
                n = _HEADER.unpack(self._read(_HEADER.size, deadline))[0]
                return not self._read(n, deadline) if n else True
            except (OSError, EOFError, TimeoutError, ValueError, struct.error):
                self.close()
                return False

    def close(self) -> None:
        """End the helper (it may still be importing matplotlib: it is killed)."""
        if self.proc.poll() is None:
            self.proc.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


#: ``MPISNAP_PLOT_PROCESS=0``: never start the helper.
PLOTTER_ENV = "MPISNAP_PLOT_PROCESS"
#: Variables that MPI launchers set: no helper under MPI (only rank 0 writes; ranks share cores).
MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "MPI_LOCALNRANKS",
           "MV2_COMM_WORLD_SIZE")


def can_help() -> bool:
    """Whether a helper can help this process: not when ``MPISNAP_PLOT_PROCESS=0``, not once
    matplotlib is imported here, not under MPI and not on Windows."""
    return not (os.environ.get(PLOTTER_ENV, "1") == "0" or "matplotlib" in sys.modules
                or "mpi4py.MPI" in sys.modules or any(v in os.environ for v in MPI_ENV)
                or os.name == "nt" or not sys.executable)


_helper: PlotProcess | None = None


def start_early() -> None:
    """Start this process's helper now, where it can help and none is running: ``mpisnap fit``
    calls it first thing (so that matplotlib's import overlaps its own imports as well as the
    fit), and so does a fit, tune or learn run that writes files (:func:`current` is what the
    writers use). The helper ends with this process (its input closes) or when idle."""
    global _helper
    if current() is not None or not can_help():
        return
    try:
        _helper = PlotProcess()
    except OSError:
        return
    import atexit

    atexit.register(_helper.close)


def current() -> PlotProcess | None:
    """This process's running helper (None if none was started, or it ended)."""
    return _helper if _helper is not None and _helper.proc.poll() is None else None


def _serve() -> None:
    """The helper: import matplotlib now, then call what is asked until stdin closes."""
    import importlib

    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401 (the point)
    from matplotlib.figure import Figure  # noqa: F401

    rd, wr = sys.stdin.buffer, sys.stdout.buffer
    wr.write(b"R")
    wr.flush()
    while True:
        idle = float(os.environ.get("MPISNAP_PLOT_IDLE", IDLE))
        if not select.select([rd], [], [], idle)[0]:  # a long fit: the import no longer matters
            return
        head = rd.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        target, args = pickle.loads(rd.read(_HEADER.unpack(head)[0]))
        try:
            module, _, name = target.partition(":")
            getattr(importlib.import_module(module), name)(*args)
            reply = b""
        except Exception as exc:  # noqa: BLE001 - the caller draws it again and reports
            reply = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace") or b"?"
        wr.write(_HEADER.pack(len(reply)) + reply)
        wr.flush()


if __name__ == "__main__":
    _serve()
