"""Drawing the parity plot (:func:`parity_figure`, :func:`draw`), here or in the helper process
of :mod:`mpisnap.plot_process` (matplotlib imported there while the fit runs; the writers plugin
asks it to call :data:`DRAW`). numpy and matplotlib are imported only when drawing; it is not a
plugin."""
from __future__ import annotations

__all__ = ["parity_figure", "draw", "DRAW"]

#: :func:`draw` as the helper process (:class:`PlotProcess`) names it.
DRAW = "mpisnap.plugins.parity_plot:draw"

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


