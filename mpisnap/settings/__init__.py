"""Read a FitSNAP-style input (``*.in`` file or dict) into a frozen, typed, validated :class:`Settings`.

Usage::

    from mpisnap.settings import load_settings, SettingsError
    s = load_settings("InP-example.in", overrides=["BISPECTRUM.twojmax=8"])
    s.bispectrum.twojmax          # (8, 8): per-type keys are tuples of length numTypes
    s.groups[0].eweight           # groups in file order, as GroupSpec
    s.resolve(s.path.dataPath)    # relative paths are resolved against s.base_dir
    s.section("BISPECTRUM")       # any section as its frozen record, a plugin's too

Rules (see ``fitsnap-formats.md`` section 1):

* INI syntax read with :mod:`configparser`: ``#`` starts a comment (inline after whitespace),
  keys are case-sensitive, no interpolation, no ``[DEFAULT]`` magic, duplicate keys or sections
  are errors. Section names are in capitals.
* Field names are the FitSNAP key names (``settings.bispectrum.numTypes``,
  ``settings.path.dataPath``); sections map to lower-case attributes. Exceptions:
  ``[ESHIFT]`` is ``settings.eshift`` (element -> float, every element present, 0.0 where not
  given), ``[REFERENCE] pair_coeff*`` lines are ``settings.reference.pair_coeffs`` (file order)
  and ``[GROUPS]`` is split into ``settings.group_options`` (the option keys) and
  ``settings.groups`` (one :class:`GroupSpec` per group line, file order).
* Values are typed on reading: flags are ints 0/1 (``0``/``1``; ``true``/``false``, ``yes``/``no``,
  ``on``/``off`` are accepted too), per-type keys (``twojmax``, ``wj``, ``radelem``, ``sinner``,
  ``dinner``) take one value or numTypes values and are stored as tuples of length numTypes.
  Names that pick from a list (``solver``, ``scraper``, ``metrics_style``, ``output_style``) are
  matched case-insensitively and stored in upper case; ``calculator`` ``SNAP`` is stored as
  ``LAMMPSSNAP``.
* ``type`` is required; ``numTypes`` defaults to ``len(type)`` when not given (1 in the spec's
  table, which is the same thing for one element) and must equal it when given.
* Strict: an unknown section or key, a value of the wrong type, or inconsistent values raise
  :class:`SettingsError` (a :class:`ValueError`) with a one-line message
  ``<file name>: [SECTION] key: what is wrong`` (``<dict>`` for dict input). Legacy FitSNAP keys
  (``[SOLVER] compute_testerrs``, ``detailed_errors``, ``normalweight``/``normweight``,
  ``normratio``; ``[OUTFILE] detailed_errors``) are accepted and ignored, each adding a line to
  ``settings.notices``; so does a solver section ([RIDGE], [LASSO], [ARD], [PYTORCH]) that the
  chosen solver does not use.
* Overrides ``"SECTION.key=value"`` (command-line ``--set``) replace or add raw strings before
  typing, so they are validated like the file; they may add a key, a section or a group line.
* Group sizes: a value <= 1 is a fraction (stored as float), > 1 a count of configurations
  (stored as int; must be a whole number).

Sections are owned by plugins. Every section — the FitSNAP ones above included — is a
:class:`~mpisnap.records.SettingsSection` returned by the ``mpisnap_settings_sections`` hook
(:mod:`mpisnap.hookspecs`): its name, the parse function that turns its raw strings into a frozen
record, its allowed keys and, for a section of one command (e.g. ``[LEARN]``), its verb. A plugin
brings its own section the same way; code reads it as ``settings.section("NAME")``. An unknown
section is an error that lists the sections the installed plugins know; a section of another
verb is accepted and kept unparsed (``settings.unparsed_sections``).

The package: :mod:`~mpisnap.settings.schema` (the records and :class:`Settings`),
:mod:`~mpisnap.settings.parser` (INI/dict/override input and the value parsers),
:mod:`~mpisnap.settings.loader` (:func:`load_settings` and the checks across sections),
:mod:`~mpisnap.settings.sections` (the FitSNAP sections, a built-in plugin).

Importing it loads only the standard library and numpy; the plugin manager is built on the first
:func:`load_settings` that needs it (:func:`default_sections`).
"""
from __future__ import annotations

from .loader import default_sections, load_settings
from .parser import (SectionContext, SettingsError, p_choice, p_flag, p_float, p_floats, p_int,
                     p_ints, p_str, p_word, p_words)
from .schema import (SECTION_ORDER, SOLVERS, ArdSettings, BispectrumSettings, CalculatorSettings,
                     ExtrasSettings, FrozenMap, GroupOptions, GroupSpec, GroupsSettings,
                     LassoSettings, MemorySettings, OutfileSettings, PathSettings,
                     PytorchSettings, ReferenceSettings, RidgeSettings, ScraperSettings, Settings,
                     SolverSettings)

__all__ = [
    "ArdSettings",
    "BispectrumSettings",
    "CalculatorSettings",
    "ExtrasSettings",
    "FrozenMap",
    "GroupOptions",
    "GroupSpec",
    "GroupsSettings",
    "LassoSettings",
    "MemorySettings",
    "OutfileSettings",
    "PathSettings",
    "PytorchSettings",
    "ReferenceSettings",
    "RidgeSettings",
    "ScraperSettings",
    "SECTION_ORDER",
    "SectionContext",
    "Settings",
    "SettingsError",
    "SolverSettings",
    "SOLVERS",
    "default_sections",
    "load_settings",
    "p_choice",
    "p_flag",
    "p_float",
    "p_floats",
    "p_int",
    "p_ints",
    "p_str",
    "p_word",
    "p_words",
]
