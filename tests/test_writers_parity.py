"""The parity plot (``mpisnap.plugins.writers``): every row drawn once in its group's colour and
split's marker, the legend's entries, and a fixed layout that keeps every text inside the figure
and off the panels for long group names, many groups and large numbers."""
import os
import sys

import numpy as np
import pytest

import mpisnap.plugins.writers as W
from mpisnap import plot_process
from mpisnap.comm import SerialComm
from mpisnap.metrics import compute_metrics
from mpisnap.results import ROW_KINDS

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: share the builders
from test_metrics import make_shard  # noqa: E402
from test_writers import descriptor_for, make_result, settings_for  # noqa: E402


def result_for(groups, nconfigs=40, stress_scale=1.0):
    shard = make_shard(groups=groups, nconfigs=nconfigs)
    stress = shard.labels["kind"] == 2
    shard.b[stress] *= stress_scale
    shard.predictions[stress] *= stress_scale
    s = settings_for(["Ta"], outfile={"potential": "Ta_pot"})
    return make_result(s, descriptor_for(s), shard=shard,
                       metrics=compute_metrics(SerialComm(), shard))


def drawn_points(ax):
    """(x, y, colour, marker) of every marker drawn in ``ax`` (the identity line has none)."""
    out = []
    for line in ax.get_lines():
        if line.get_marker() in ("o", "x"):
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                out.append((x, y, line.get_color(), line.get_marker()))
    return out


def test_every_row_drawn_once_in_its_group_colour_and_split_marker():
    r = result_for(("Bulk", "EOS", "Shear"))
    spec = W._parity_spec(r)
    fig = W._parity_figure(spec)
    shard = r.shard
    lab = shard.labels
    assert [p["unit"] for p in spec["panels"]] == [W.UNITS[k] for k in ROW_KINDS]
    for ax, k in zip(fig.axes, range(len(ROW_KINDS))):
        sel = lab["kind"] == k
        got = sorted((x, y, c, m) for x, y, c, m in drawn_points(ax))
        cmap = __import__("matplotlib").colormaps["tab10"]
        want = sorted((x, y, cmap(int(g)), "x" if t else "o") for x, y, g, t in zip(
            shard.b[sel], shard.predictions[sel], lab["group"][sel], lab["test"][sel]))
        assert len(got) == len(want) == sel.sum()
        for (x, y, c, m), (wx, wy, wc, wm) in zip(got, want):
            assert (x, y, m) == (wx, wy, wm) and np.allclose(
                __import__("matplotlib").colors.to_rgba(c), wc)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names == ["Bulk", "Bulk (test)", "EOS", "EOS (test)", "Shear", "Shear (test)"]
    assert "RMSE train" in fig.axes[0].get_title() and "test" in fig.axes[0].get_title()


def test_at_most_max_points_per_panel(monkeypatch):
    monkeypatch.setattr(W, "_MAX_POINTS", 50)
    r = result_for(("Bulk", "EOS"), nconfigs=60)
    spec = W._parity_spec(r)
    nforce = int((r.shard.labels["kind"] == 1).sum())
    assert nforce > 50
    force = spec["panels"][1]
    assert force["x"].size == 50 and f"(50 of {nforce} rows shown)" in force["title"]


@pytest.mark.parametrize("groups, scale", [
    (("Bulk", "EOS", "Shear"), 1.0),
    (tuple(f"a_rather_long_group_name_number_{i:02d}" for i in range(14)), 1e6),  # 2 columns
])
def test_layout_keeps_every_text_inside_and_off_the_panels(tmp_path, groups, scale):
    r = result_for(groups, nconfigs=4 * len(groups), stress_scale=scale)
    fig = W._parity_figure(W._parity_spec(r))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fb = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    leg = fig.legends[0].get_window_extent(renderer)
    for b in boxes + [leg]:  # inside the figure (1 px of rounding)
        assert fb.x0 - 1 <= b.x0 and b.x1 <= fb.x1 + 1 and fb.y0 - 1 <= b.y0 and b.y1 <= fb.y1 + 1
    for a, b in zip(boxes, boxes[1:] + [leg]):  # left to right, not overlapping
        assert a.x1 <= b.x0
    lab = r.shard.labels
    assert len(fig.legends[0].get_texts()) == len(set(zip(lab["group"], lab["test"])))
    path = W.write_parity(r, str(tmp_path))[0]
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


# -- the helper process -------------------------------------------------------------------------

def test_helper_process_draws_the_same_image_and_survives_a_bad_request(tmp_path):
    import matplotlib.image

    from mpisnap.plugins import parity_plot

    spec = W._parity_spec(result_for(("Bulk", "EOS", "Shear")))
    helper = plot_process.PlotProcess()
    try:
        assert helper.call(parity_plot.DRAW, spec, str(tmp_path / "helper.png"))
        assert not helper.call(parity_plot.DRAW, {"panels": "nonsense"},
                               str(tmp_path / "bad.png"))  # an error there
        assert helper.proc.poll() is None  # still serving
        assert helper.call(parity_plot.DRAW, spec, str(tmp_path / "again.png"))
    finally:
        helper.close()
    assert helper.proc.poll() is not None
    parity_plot.draw(spec, str(tmp_path / "here.png"))
    here = matplotlib.image.imread(tmp_path / "here.png")
    for name in ("helper.png", "again.png"):
        np.testing.assert_array_equal(matplotlib.image.imread(tmp_path / name), here)


def test_write_parity_draws_itself_when_the_helper_is_gone(tmp_path, monkeypatch):
    helper = plot_process.PlotProcess()
    helper.proc.kill()
    helper.proc.wait()
    monkeypatch.setattr(plot_process, "current", lambda: helper)  # (as if it died just now)
    path = W.write_parity(result_for(("Bulk",)), str(tmp_path))[0]
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["Ta_pot_parity.png"]  # no temporary left
    helper.close()


def test_helper_ends_with_its_parent_input(tmp_path):
    helper = plot_process.PlotProcess()
    assert helper._read(1, __import__("time").monotonic() + 120) == b"R"
    helper.proc.stdin.close()
    assert helper.proc.wait(timeout=60) == 0
    helper.close()


@pytest.mark.parametrize("why", ["disabled", "mpi", "matplotlib"])
def test_no_helper_where_it_cannot_help(monkeypatch, why):
    import matplotlib  # noqa: F401

    monkeypatch.setattr(plot_process, "_helper", None)
    if why == "disabled":
        monkeypatch.setenv("MPISNAP_PLOT_PROCESS", "0")
    elif why == "mpi":
        monkeypatch.setenv("PMI_SIZE", "2")
    if why != "matplotlib":
        monkeypatch.delitem(sys.modules, "matplotlib")  # as if not imported yet
    started = []
    monkeypatch.setattr(plot_process, "PlotProcess", lambda: started.append(1))
    plot_process.start_early()
    assert plot_process.current() is None and not started


class FakeHelper:
    """Stands for the helper process: counted, always running, never draws (the writer then
    draws itself)."""
    started: list = []

    def __init__(self):
        FakeHelper.started.append(self)
        self.proc = type("P", (), {"poll": staticmethod(lambda: None)})()
        self.calls = 0

    def call(self, target, *args):
        self.calls += 1
        return False

    def close(self):
        pass


def test_a_helper_starts_only_for_runs_that_write(tmp_path, monkeypatch):
    """Building the plugin registry (``mpisnap plugins``, any prepare) starts no helper; a fit
    that writes starts one (once: a second fit uses the same) and its parity writer uses it; a
    fit that writes nothing starts none."""
    import mpisnap
    from mpisnap.plugin_manager import build_registry, get_plugin_manager

    monkeypatch.delenv("MPISNAP_PLOT_PROCESS", raising=False)
    monkeypatch.setattr(plot_process, "_helper", None)
    monkeypatch.setattr(plot_process, "can_help", lambda: True)
    monkeypatch.setattr(plot_process, "PlotProcess", FakeHelper)
    monkeypatch.setattr(FakeHelper, "started", [])
    build_registry(get_plugin_manager())
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "Cu_EMT", "Cu_EMT.in")
    mpisnap.fit(example, write=False, threads=1)
    assert FakeHelper.started == []
    for k in range(2):
        mpisnap.fit(example, output_dir=tmp_path / str(k), threads=1)
        assert (tmp_path / str(k) / "Cu_EMT_pot_parity.png").is_file()
    assert len(FakeHelper.started) == 1 and FakeHelper.started[0].calls == 2


def test_idle_helper_ends_and_the_writer_draws_itself(tmp_path, monkeypatch):
    from mpisnap.plugins import parity_plot

    monkeypatch.setenv("MPISNAP_PLOT_IDLE", "0.5")
    helper = plot_process.PlotProcess()
    try:
        assert helper.proc.wait(timeout=120) == 0  # ready, then idle for IDLE seconds: ended
        spec = W._parity_spec(result_for(("Bulk",)))
        assert not helper.call(parity_plot.DRAW, spec, str(tmp_path / "p.png"))
    finally:
        helper.close()
