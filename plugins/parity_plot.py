"""Drawing the parity plot (:func:`parity_figure`, :func:`draw`) and a helper process that draws
it (:class:`PlotProcess`).

matplotlib's import is most of a small fit's plotting time (about a third of a whole fit of the
size of FitSNAP's Ta_Linear example). The writers plugin starts the helper when a serial fit
begins: a Python process that runs this file as a script, imports matplotlib on another core
while the fit runs, and draws the plot when the writer sends it the plot's numbers. This module
imports nothing but the standard library at import time (numpy and matplotlib when drawing), so
that the helper starts fast and ``mpisnap fit`` can start it first thing (:func:`start_early`,
before its own imports); it is not a plugin.

Protocol (pipes): the helper writes ``R`` once matplotlib is imported; each request is an 8-byte
little-endian length and a pickle of ``(spec, path)``; each reply an 8-byte length and the error
text (empty: the PNG is at ``path``). The helper ends when its standard input closes, or after
``IDLE`` seconds (``MPISNAP_PLOT_IDLE``) without a request.
"""
from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading

__all__ = ["parity_figure", "draw", "PlotProcess", "can_help", "start_early", "take_early"]

#: Inches: the width and height of one panel, and the margins of the fixed layout.
PANEL = 4.8
LEFT, WSPACE, RIGHT, BOTTOM, TOP = 0.85, 1.0, 0.15, 0.55, 0.5


def parity_figure(spec: dict):
    """The parity plot of ``spec`` (``mpisnap.plugins.writers._parity_spec``): a matplotlib
    Figure on an Agg canvas (no pyplot: the global backend is left alone). Markers are lines'
    markers (Agg renders one marker per colour and stamps it) and the layout is fixed (margins in
    inches, the legend measured once), instead of one collection per group and the constrained
    layout's measuring of every text: about half the drawing time."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = spec["panels"]
    cmap = colormaps["tab10" if spec["ngroups"] <= 10 else "tab20"]
    npanel = len(panels)
    fig = Figure(figsize=(PANEL * npanel + 1.8, PANEL), dpi=110)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, npanel, p + 1) for p in range(npanel)]
    for ax, panel in zip(axes, panels):
        x, y, group, test = panel["x"], panel["y"], panel["group"], panel["test"]
        for g in np.unique(group):
            for is_test, marker, size in ((False, "o", 2.6), (True, "x", 3.2)):
                sel = (group == g) & (test == is_test)
                if sel.any():
                    ax.plot(x[sel], y[sel], linestyle="none", marker=marker, markersize=size,
                            color=cmap(int(g) % cmap.N), alpha=0.6, markeredgewidth=0.8)
        if x.size:
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            pad = 0.02 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.02
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8, zorder=0)
        ax.set_xlabel(f"truth − reference ({panel['unit']})")
        ax.set_ylabel(f"prediction ({panel['unit']})")
        ax.set_title(panel["title"], fontsize=9, y=1.0)  # a fixed place: no measuring of the axes
    legend_w, leg = 0.0, None
    if spec["legend"]:
        handles = [Line2D([], [], linestyle="none", marker="x" if t else "o", alpha=0.6,
                          markersize=5 if t else 4, color=cmap(g % cmap.N), markeredgewidth=0.8)
                   for g, t, _ in spec["legend"]]
        leg = fig.legend(handles, [name for _, _, name in spec["legend"]], loc="upper left",
                         fontsize=7, frameon=False, ncols=1 if len(handles) <= 24 else 2,
                         borderaxespad=0.0)
        legend_w = leg.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    total = PANEL * npanel + legend_w + 0.25  # the legend right of the panels
    fig.set_size_inches(total, PANEL)
    axes_w = (PANEL * npanel - LEFT - RIGHT - WSPACE * (npanel - 1)) / npanel
    fig.subplots_adjust(left=LEFT / total, right=(PANEL * npanel - RIGHT) / total,
                        bottom=BOTTOM / PANEL, top=1 - TOP / PANEL, wspace=WSPACE / axes_w)
    if leg is not None:
        leg.set_bbox_to_anchor((PANEL * npanel / total, 1 - TOP / PANEL), fig.transFigure)
    return fig


def draw(spec: dict, path: str) -> None:
    """Draw the parity plot of ``spec`` as PNG into the file ``path`` (zlib level 1: a fifth of
    the encoding time of the default)."""
    fig = parity_figure(spec)
    with open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, pil_kwargs={"compress_level": 1})


# -- the helper process ---------------------------------------------------------------------------

_HEADER = struct.Struct("<Q")
#: Seconds the helper waits for a request before it ends (the writer then draws itself);
#: ``MPISNAP_PLOT_IDLE`` in its environment.
IDLE = 900.0


class PlotProcess:
    """A helper process drawing parity plots (see the module docstring). :meth:`draw` returns
    False (and the caller draws the plot itself) whenever the helper cannot: it failed to start,
    died, is too slow to answer, or drawing failed there."""

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

    def draw(self, spec: dict, path: str) -> bool:
        """Have the helper draw ``spec`` into ``path``; whether it did."""
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
                msg = pickle.dumps((spec, os.fspath(path)), protocol=pickle.HIGHEST_PROTOCOL)
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


_early: PlotProcess | None = None


def start_early() -> None:
    """Start a helper now, where it can help, for the writers plugin to take
    (:func:`take_early`): ``mpisnap fit`` calls it first thing, so that matplotlib's import
    overlaps its own imports as well as the fit. A helper nobody takes ends with this process
    (its input closes)."""
    global _early
    if _early is not None or not can_help():
        return
    try:
        _early = PlotProcess()
    except OSError:
        return
    import atexit

    atexit.register(_early.close)


def take_early() -> PlotProcess | None:
    """The helper :func:`start_early` started, once (None if there is none)."""
    global _early
    helper, _early = _early, None
    return helper


def _serve() -> None:
    """The helper: import matplotlib now, then draw what is asked until stdin closes."""
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
        spec, path = pickle.loads(rd.read(_HEADER.unpack(head)[0]))
        try:
            draw(spec, path)
            reply = b""
        except Exception as exc:  # noqa: BLE001 - the caller draws it again and reports
            reply = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace") or b"?"
        wr.write(_HEADER.pack(len(reply)) + reply)
        wr.flush()


if __name__ == "__main__":
    _serve()
