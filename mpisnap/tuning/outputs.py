"""What ``mpisnap tune`` writes besides the potential: the tuned input file, the trial tables and
the plots (matplotlib without pyplot, Agg canvas)."""
from __future__ import annotations

import csv
import datetime
import io
import math
import os
from typing import Mapping, Sequence

from .blocks import KINDS
from .crossval import Trial

__all__ = ["raw_input", "tuned_raw", "format_input", "write_trials_csv", "format_report",
           "plot_objective", "plot_cv_errors"]

#: Units of the CV RMSE per kind (the metrics' units).
UNITS = {"energy": "eV/atom", "force": "eV/Å", "stress": "bar"}


def raw_input(source, overrides: Sequence[str]) -> dict[str, dict[str, str]]:
    """The raw strings of an input (file path or dict of sections) with ``overrides`` applied, as
    :func:`mpisnap.settings.load_settings` reads them."""
    from ..settings.parser import InputContext, apply_overrides, read_dict, read_ini

    if isinstance(source, Mapping):
        ctx = InputContext("<dict>")
        raw = read_dict(source, ctx)
    else:
        path = os.fspath(source)
        ctx = InputContext(os.path.basename(path) or path)
        raw = read_ini(path, ctx)
    apply_overrides(raw, overrides, ctx)
    return raw


def _num(v) -> str:
    """A number that reads back as the same float (or int)."""
    return str(v) if isinstance(v, int) else repr(float(v))


def tuned_raw(raw: dict, settings, weights: Mapping[str, tuple], alpha_section: str | None,
              alpha: float | None) -> dict[str, dict[str, str]]:
    """``raw`` with the tuned group ``weights`` (group → (energy, force, stress)), the tuned
    ``alpha`` of ``[alpha_section]``, the data path made absolute and the groups written inline
    (a ``[PATH] groupFile`` is replaced by its lines): an input ``mpisnap fit`` runs from
    anywhere, giving the tuned fit."""
    from ..settings.sections import GROUP_KEYS

    out = {sec: dict(body) for sec, body in raw.items()}
    path = out.setdefault("PATH", {})
    path["dataPath"] = os.path.abspath(settings.resolve(settings.path.dataPath))
    path.pop("groupFile", None)
    old = out.get("GROUPS", {})
    groups = {k: v for k, v in old.items() if k in GROUP_KEYS and k not in
              ("group_sections", "group_types")}
    body = {"group_sections": "name training_size testing_size eweight fweight vweight",
            "group_types": "str float float float float float", **groups}
    for g in settings.groups:
        we, wf, wv = weights[g.name]
        body[g.name] = " ".join([_num(g.training_size), _num(g.testing_size), _num(we), _num(wf),
                                 _num(wv)])
    out["GROUPS"] = body
    if alpha_section is not None and alpha is not None:
        out.setdefault(alpha_section, {})["alpha"] = _num(alpha)
    return out


def format_input(raw: Mapping[str, Mapping[str, str]], header: Sequence[str] = ()) -> str:
    """An input file's text from raw sections (``header``: comment lines first)."""
    lines = [f"# {h}" for h in header]
    for sec, body in raw.items():
        if lines:
            lines.append("")
        lines.append(f"[{sec}]")
        for k, v in body.items():
            lines.append(f"{k} = " + str(v).replace("\n", "\n    "))
    return "\n".join(lines) + "\n"


def _kinds(history: Sequence[Trial]) -> list[str]:
    return [k for k in KINDS if any(k in t.errors.rmse for t in history)]


def write_trials_csv(fh, history: Sequence[Trial], names: Sequence[str]) -> None:
    """Every trial: index, objective, CV RMSE per kind, the tuned values (log10 factors) and
    alpha."""
    kinds = _kinds(history)
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["trial", "objective"] + [f"cv_rmse_{k}" for k in kinds]
               + [f"log10:{n}" for n in names] + ["alpha"])
    for t in history:
        w.writerow([t.index, repr(t.objective)] + [repr(t.errors.rmse.get(k, math.nan))
                                                   for k in kinds]
                   + [repr(v) for v in t.x] + ["" if t.alpha is None else repr(t.alpha)])


def _g(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def format_report(history: Sequence[Trial], best: Trial, *, nbest: int, groups: Sequence[str],
                  folds: int, seed: int, space, mode: str, metrics_before=None,
                  metrics_after=None, notices: Sequence[str] = ()) -> str:
    """The Markdown report: the best trials, the weights before and after, the CV RMSE per group
    before and after, and the final fit's errors (MAE and RMSE) before and after."""
    base = history[0]
    kinds = _kinds(history)
    out = io.StringIO()
    p = out.write
    p(f"# mpisnap tune\n\n{len(history)} trials, {folds}-fold cross-validation (seed {seed}), "
      f"weights: {mode}")
    if space.fixed:
        p(f" (fixed: {space.fixed})")
    p(f". Objective: input {base.objective:.6g} -> best {best.objective:.6g} (trial "
      f"{best.index}).\n")
    for n in notices:
        p(f"\n- {n}\n")
    p(f"\n## Best {min(nbest, len(history))} trials\n\n")
    head = ["rank", "trial", "objective"] + [f"CV RMSE {k} ({UNITS[k]})" for k in kinds]
    if best.alpha is not None:
        head.append("alpha")
    p("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    ranked = sorted(history, key=lambda t: (t.objective, t.index))[:nbest]
    for r, t in enumerate(ranked, 1):
        row = [str(r), str(t.index), _g(t.objective)] + [_g(t.errors.rmse.get(k)) for k in kinds]
        if best.alpha is not None:
            row.append(_g(t.alpha))
        p("| " + " | ".join(row) + " |\n")
    p("\n## Weights (input -> tuned)\n\n| group | eweight | fweight | vweight |\n"
      "|---|---|---|---|\n")
    for g in groups:
        a, b = base.weights[g], best.weights[g]
        p(f"| {g} | " + " | ".join(f"{_g(x)} -> {_g(y)}" for x, y in zip(a, b)) + " |\n")
    if best.alpha is not None:
        p(f"\nalpha: {_g(base.alpha)} -> {_g(best.alpha)}\n")
    p("\n## CV RMSE per group (input -> tuned)\n\n| group | kind | input | tuned |\n"
      "|---|---|---|---|\n")
    for (g, k), v in best.errors.group_rmse.items():
        p(f"| {g} | {k} | {_g(base.errors.group_rmse.get((g, k)))} | {_g(v)} |\n")
    if metrics_after is not None:
        p("\n## Final fit, *ALL, unweighted (input weights -> tuned weights)\n\n"
          "| split | kind | MAE | RMSE |\n|---|---|---|---|\n")
        before = {(m.split, m.kind): m for m in (metrics_before or [])
                  if m.group == "*ALL" and m.weighting == "Unweighted"}
        for m in metrics_after:
            if m.group != "*ALL" or m.weighting != "Unweighted":
                continue
            b = before.get((m.split, m.kind))
            mae = f"{_g(b.mae)} -> {_g(m.mae)}" if b else _g(m.mae)
            rmse = f"{_g(b.rmse)} -> {_g(m.rmse)}" if b else _g(m.rmse)
            p(f"| {m.split} | {m.kind} | {mae} | {rmse} |\n")
    return out.getvalue()


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_objective(fh, history: Sequence[Trial]) -> None:
    """Objective of every trial and the best so far, against the trial number (PNG)."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    idx = [t.index for t in history]
    obj = [t.objective for t in history]
    run, cur = [], math.inf
    for v in obj:
        cur = min(cur, v)
        run.append(cur)
    top = 3.0 * max(obj[0], run[-1]) if obj[0] > 0 else max(obj)
    shown = [(i, v) for i, v in zip(idx, obj) if v <= top]
    over = [i for i, v in zip(idx, obj) if v > top]
    ax.scatter([i for i, _ in shown], [v for _, v in shown], s=8, alpha=0.5, label="trial")
    if over:  # far-off trials drawn at the top edge, so the progress stays visible
        ax.scatter(over, [top] * len(over), s=12, marker="^", color="C0", alpha=0.5,
                   label=f"trial above {top:.3g}")
        ax.set_ylim(top=top * 1.04)
    ax.plot(idx, run, color="C3", label="best so far")
    ax.axhline(obj[0], color="0.5", ls="--", lw=1, label="input weights")
    ax.set_xlabel("trial")
    ax.set_ylabel("CV objective")
    ax.legend()
    fig.savefig(fh, format="png", dpi=110)


def plot_cv_errors(fh, base: Trial, best: Trial, groups: Sequence[str]) -> None:
    """CV RMSE per group and kind, input weights against tuned weights (PNG, one panel per
    kind)."""
    import numpy as np

    kinds = [k for k in KINDS if any(key[1] == k for key in best.errors.group_rmse)]
    names = [g for g in list(groups) + ["*ALL"]
             if any((g, k) in best.errors.group_rmse for k in kinds)]
    fig = _figure(max(6.0, 0.45 * len(names) + 2.0), 2.6 * max(1, len(kinds)) + 0.6)
    axes = fig.subplots(max(1, len(kinds)), 1, squeeze=False)[:, 0]
    x = np.arange(len(names))
    for ax, k in zip(axes, kinds):
        a = [base.errors.group_rmse.get((g, k), np.nan) for g in names]
        b = [best.errors.group_rmse.get((g, k), np.nan) for g in names]
        ax.bar(x - 0.2, a, 0.4, label="input weights")
        ax.bar(x + 0.2, b, 0.4, label="tuned weights")
        ax.set_ylabel(f"CV RMSE {k}\n({UNITS[k]})")
        if np.nanmin(a + b) > 0:
            ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    axes[0].legend()
    axes[0].set_title("cross-validated errors per group")
    fig.savefig(fh, format="png", dpi=110)


def header_lines(source, folds: int, seed: int, trials: int, best: Trial) -> list[str]:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    src = os.path.abspath(os.fspath(source)) if not isinstance(source, Mapping) else "<dict>"
    return [f"Tuned by mpisnap tune from {src} ({when}): {folds}-fold cross-validation, "
            f"seed {seed}, {trials} trials; best trial {best.index}, objective "
            f"{best.objective:.6g}.",
            "Run: mpisnap fit THIS_FILE (data paths are absolute; comments of the input are "
            "not kept)."]
