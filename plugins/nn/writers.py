"""The nn form's output files (each a no-op for any other model): the LAMMPS potential
(``<potential>.mliap.model``, ``.mliap.descriptor``, ``.mod`` via
:func:`mpisnap.potential.write_mliap_potential`), the PyTorch training state (``[PYTORCH]
save_state_output``, resumable with ``save_state_input``) and the loss curve
(``<potential>_loss.csv``, ``<potential>_loss.png``)."""
from __future__ import annotations

import csv
import io
import logging
import math
import os

from mpisnap import potential
from mpisnap.io import atomic_write

from .model import NNModel

log = logging.getLogger("mpisnap")

__all__ = ["write_potential", "write_state", "write_loss", "output_path"]


def _trained(result) -> bool:
    return isinstance(result.model, NNModel) and result.model.network is not None


def output_path(output_dir: str, name: str) -> str:
    """``name`` inside the output folder (an absolute name keeps its file name only: every
    output goes through the folder's all-or-nothing swap)."""
    return os.path.join(output_dir, os.path.basename(name) if os.path.isabs(name) else name)


def write_potential(result, output_dir: str) -> list[str]:
    """``<potential>.mliap.model``/``.mliap.descriptor``/``.mod`` (LAMMPS ``pair_style mliap
    model nn``, the reference potential overlaid), or nothing with a warning when LAMMPS cannot
    run the model (an activation it does not know, quadratic descriptors, twojmax per element:
    the reason is also in the run log's solver info)."""
    if not _trained(result):
        return []
    model = result.model
    problem = model.export_problem()
    if problem:
        log.warning("nn: no LAMMPS files written: %s", problem)
        return []
    settings = result.settings
    name = settings.outfile.potential
    base = output_path(output_dir, name)
    rel = os.path.abspath(base) if os.path.isabs(name) else os.path.normpath(name)
    ref = settings.reference
    els = " ".join(model.elements)
    layers = "-".join(str(n) for n, _ in model.layers[:-1])
    comment = (f"mpisnap {potential._version()} neural-network SNAP for {els}: "
               f"{model.ndescriptors}-{layers + '-' if layers else ''}1 {model.activation}"
               + (f", mean of {model.ensemble} networks" if model.ensemble > 1 else ""))
    return potential.write_mliap_potential(
        base, model.descriptor, model.network.to_mliap(), names_as=rel, comment=comment,
        mod_comment=comment + "\nfile paths are relative to the folder the fit wrote them to",
        reference_style=getattr(ref, "pair_style", None) if ref.active else None,
        reference_coeffs=tuple(getattr(ref, "pair_coeffs", ()) or ()) if ref.active else ())


def write_state(result, output_dir: str) -> list[str]:
    """The PyTorch state at ``[PYTORCH] save_state_output`` in the output folder."""
    if not _trained(result) or result.model.state is None:
        return []
    import torch

    path = output_path(output_dir, result.settings.pytorch.save_state_output)
    with atomic_write(path, "wb") as fh:
        torch.save(result.model.state, fh)
    return [path]


def write_loss(result, output_dir: str) -> list[str]:
    """``<potential>_loss.csv`` (epoch, train_loss, val_loss, lr, seconds) and
    ``<potential>_loss.png`` (loss per epoch, log scale)."""
    if not _trained(result) or not result.model.history:
        return []
    hist = result.model.history
    base = output_path(output_dir, result.settings.outfile.potential)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ("epoch", "train_loss", "val_loss", "lr", "seconds")
    w.writerow(cols)
    for h in hist:
        w.writerow([h["epoch"]] + [repr(float(h[c])) for c in cols[1:]])
    with atomic_write(base + "_loss.csv", encoding="utf-8") as fh:
        fh.write(buf.getvalue())

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ep = [h["epoch"] for h in hist]
    ax.plot(ep, [h["train_loss"] for h in hist], label="training")
    val = [h["val_loss"] for h in hist]
    if not all(math.isnan(v) for v in val):
        ax.plot(ep, val, label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    ax.set_title(f"{result.settings.outfile.potential}: nn loss", fontsize=9)
    with atomic_write(base + "_loss.png", "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    return [base + "_loss.csv", base + "_loss.png"]
