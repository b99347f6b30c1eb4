"""The mpisnap plugin hooks: the one place that defines what a plugin can provide.

Every hook is named ``mpisnap_<family>`` and returns an iterable of typed records
(:mod:`mpisnap.records`). A plugin is any module or object with functions decorated by
:data:`mpisnap.hookimpl`; installed packages announce theirs in the ``mpisnap`` entry-point group::

    # pyproject.toml of a third-party package
    [project.entry-points.mpisnap]
    my_plugin = "my_package.mpisnap_plugin"

The built-in readers, model forms, solvers, writers and reference potentials are plugins of
exactly this kind (``mpisnap.plugins.*``), registered through the same call; so are the sections
of the input file (``mpisnap.settings.sections``).
"""
from __future__ import annotations

from typing import Iterable

import pluggy

from .records import ModelForm, Reader, ReferencePotential, SettingsSection, Solver, Writer

PROJECT = "mpisnap"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mpisnap_readers() -> Iterable[Reader]:
    """Training-data readers, selected by ``[SCRAPER] scraper``.

    Example — a reader of one-configuration ``.npz`` files, one folder per group::

        import glob, os
        import numpy as np
        from mpisnap import hookimpl
        from mpisnap.records import ConfigRef, Configuration, Reader

        def list_configs(data_path, group):
            files = sorted(glob.glob(os.path.join(data_path, group, "*.npz")))
            return [ConfigRef(f"{group}/{os.path.basename(f)}", group, f) for f in files]

        def load(ref):
            d = np.load(ref.source)
            return Configuration(ref.name, ref.group, d["positions"], d["cell"], (True,) * 3,
                                 tuple(d["symbols"]), float(d["energy"]), d["forces"], None)

        @hookimpl
        def mpisnap_readers():
            return [Reader("NPZ", list_configs, load, "one .npz per configuration")]
    """


@hookspec
def mpisnap_model_forms() -> Iterable[ModelForm]:
    """Model forms, selected by ``[CALCULATOR] model``; with ``auto`` (the default), the form
    whose record ``accepts(settings)`` with the lowest ``priority``.

    The contract is typed in :mod:`mpisnap.models`: a ``linear`` form builds a
    :class:`~mpisnap.models.LinearModel` (``ncols``, ``column_names()``, ``row_count``,
    ``rows(config, descriptors, reference, eshift, kinds) -> Rows``, ``symmetrize``,
    ``coefficient_blocks``); :class:`mpisnap.plugins.models.LinearSNAP` is one, which third-party
    forms may subclass. Example — a linear SNAP that drops the quadratic diagonal (named
    explicitly in the input, as it has no ``accepts``)::

        import numpy as np
        from mpisnap import hookimpl
        from mpisnap.plugins.models import LinearSNAP
        from mpisnap.records import ModelForm

        class NoDiagonal(LinearSNAP):
            name = "quadratic-nodiag"

            def column_mask(self):
                mask = super().column_mask()
                mask[:, self.diagonal_columns()] = 0.0
                return mask

        @hookimpl
        def mpisnap_model_forms():
            return [ModelForm("quadratic-nodiag", "linear", NoDiagonal, "no b_k^2 terms")]

    A ``nonlinear`` form builds a :class:`~mpisnap.models.TrainableModel`:
    ``train(comm, pieces, plan, timer) -> FitResult``: it gets the settings, reader and reference (``pieces``), this rank's share of
    the configurations (``plan.entries``, ``plan.mine``; see :func:`mpisnap.pipeline.plan`),
    trains data-parallel over ``comm`` and returns the result the writers receive; it is paired
    with a solver record whose ``kinds`` include ``"nonlinear"`` (``tests/test_nonlinear.py``
    has a complete small example).
    """


@hookspec
def mpisnap_solvers() -> Iterable[Solver]:
    """Solvers of the compressed linear system, selected by ``[SOLVER] solver``.

    ``solve(R, qb, settings, *, nrows=None, rnorm2=0.0)`` minimises ``|R x - qb|^2`` (R upper
    triangular from the QR of the weighted training rows: ``|W(Ax - b)|^2 = |Rx - qb|^2 +
    rnorm2``; ``nrows`` is the number of training rows over all ranks). Example — Tikhonov with
    a fixed strength::

        import numpy as np
        from mpisnap import hookimpl
        from mpisnap.records import SolveResult, Solver

        def solve(R, qb, settings, *, nrows=None, rnorm2=0.0):
            n = R.shape[1]
            M = np.vstack([R, 1e-6 * np.eye(n)])
            x = np.linalg.lstsq(M, np.concatenate([qb, np.zeros(n)]), rcond=None)[0]
            return SolveResult(x)

        @hookimpl
        def mpisnap_solvers():
            return [Solver("TIKHONOV", solve, frozenset({"linear"}), "fixed 1e-6 penalty")]

    A Bayesian solver sets ``posterior=True`` in its record (like the built-in ``BAYES`` and
    ``ANL``, :mod:`mpisnap.plugins.bayes`). The fit then takes the uncertainty path
    (:mod:`mpisnap.uq.fitting`) and accepts the ``[UQ]`` section, which is an error with any
    other solver. The contract differs from the plain one:

    * it is called as ``solve(None, None, settings, nrows=..., rnorm2=..., blocks=blocks)``:
      R and qb are None, and ``blocks`` (:class:`mpisnap.pipeline.solving.Blocks`) holds the
      training rows of weight > 0 compressed per (cross-validation fold, row kind). Every rank
      gets the same blocks and must return the same result, without collectives;
    * ``SolveResult.coefficients`` is the posterior mean and ``covariance`` its (n, n)
      covariance;
    * ``info["alpha"]`` (row kind 0 energy, 1 force, 2 stress → noise precision of the weighted
      rows) and ``info["prior_precision"]`` (λ of the prior on standardised columns, flat on
      ``blocks.flat``) are required. From them the uncertainty stage rebuilds the posterior of
      the whole training set and of each fold held out (:func:`mpisnap.uq.solver.hyper_of`;
      the model is that of :mod:`mpisnap.uq.posterior`). ``noise_std``,
      ``noise_std_error``, ``log_evidence`` and ``effective_parameters`` are reported when
      present.
    """


@hookspec
def mpisnap_writers() -> Iterable[Writer]:
    """Output writers; each runs when ``enabled(settings)`` is true, on rank 0.

    Example — write the coefficients as a plain text column::

        import os
        import numpy as np
        from mpisnap import hookimpl
        from mpisnap.io import atomic_write
        from mpisnap.records import Writer

        def write(result, output_dir):
            path = os.path.join(output_dir, "coefficients.txt")
            with atomic_write(path) as f:
                np.savetxt(f, result.coefficients)
            return [path]

        @hookimpl
        def mpisnap_writers():
            return [Writer("coefficients-txt", write)]
    """


@hookspec
def mpisnap_reference_potentials() -> Iterable[ReferencePotential]:
    """Reference potentials subtracted from the training data (``[REFERENCE]``).

    Example — a constant energy per atom (a pair style named ``constant``)::

        import numpy as np
        from mpisnap import hookimpl
        from mpisnap.records import ReferencePotential, ReferenceResult

        class Constant:
            def __init__(self, settings):
                self.e = float(settings.reference.pair_style.split()[1])
            def compute(self, config):
                n = config.natoms
                return ReferenceResult(self.e * n, np.zeros((n, 3)), np.zeros(6))

        @hookimpl
        def mpisnap_reference_potentials():
            return [ReferencePotential("constant",
                                       lambda ref: ref.pair_style.split()[0] == "constant",
                                       Constant)]
    """


@hookspec
def mpisnap_settings_sections() -> Iterable[SettingsSection]:
    """Sections of the input file, ``[NAME]``, each read into a frozen record.

    ``parse(raw, ctx)`` gets the section's strings (empty when the section is not in the input:
    return the defaults) and reports problems through ``ctx`` as one-line
    ``<file>: [NAME] key: problem`` errors; the keys were checked against ``keys`` before.
    ``--set NAME.key=value`` works as for any section, and code reads the record as
    ``settings.section("NAME")``. A section with ``verb="learn"`` is parsed only by that command
    (the others accept it unparsed). Example — the strength of a penalty, for a solver plugin to
    read as ``settings.section("PENALTY").strength``::

        from dataclasses import dataclass
        from mpisnap import hookimpl
        from mpisnap.records import SettingsSection
        from mpisnap.settings import p_float, p_word

        @dataclass(frozen=True)
        class Penalty:
            strength: float = 1e-6
            norm: str = "l2"

        def parse(raw, ctx):
            strength = ctx.get("strength", p_float, 1e-6)
            ctx.require("strength", strength >= 0, f"must be >= 0, got {strength}")
            norm = ctx.get("norm", p_word, "l2").lower()
            ctx.require("norm", norm in ("l1", "l2"), f"expected l1 or l2, got {norm!r}")
            return Penalty(strength, norm)

        @hookimpl
        def mpisnap_settings_sections():
            return [SettingsSection("PENALTY", parse, ("strength", "norm"),
                                    description="penalty of the fit")]
    """
