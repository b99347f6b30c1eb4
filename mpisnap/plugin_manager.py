"""Building the plugin manager and the registry of what the plugins provide.

The manager is built by :func:`get_plugin_manager`, never at import. Built-ins (:data:`BUILTINS`)
and the packages of the ``mpisnap`` entry-point group are registered through the same call; set
``MPISNAP_DISABLE_PLUGIN_AUTOLOAD=1`` to load the built-ins only. The sections of the input file
are a family like the others (``settings_sections``); the FitSNAP ones are the built-in plugin
:mod:`mpisnap.settings.sections`.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Iterable

import pluggy

from . import hookspecs
from ._metadata import may_have_entry_points
from .records import ModelForm, Reader, ReferencePotential, SettingsSection, Solver, Writer

BUILTINS = (
    "mpisnap.plugins.readers",
    "mpisnap.plugins.models",
    "mpisnap.plugins.solvers",
    "mpisnap.plugins.writers",
    "mpisnap.plugins.references",
    "mpisnap.plugins.nn",
    "mpisnap.settings.sections",
    "mpisnap.plugins.generation",
    "mpisnap.plugins.tuning",
    "mpisnap.plugins.learning",
    "mpisnap.plugins.bayes",
    "mpisnap.plugins.uq_writers",
)
ENTRY_POINT_GROUP = "mpisnap"
DISABLE_AUTOLOAD = "MPISNAP_DISABLE_PLUGIN_AUTOLOAD"


class PluginError(ValueError):
    """A plugin problem (duplicate name, unknown name, bad record): a user error."""


def autoload_default() -> bool:
    """Whether entry-point plugins load when ``autoload`` is not given: unless
    ``MPISNAP_DISABLE_PLUGIN_AUTOLOAD`` is set (to anything but ``0``)."""
    return os.environ.get(DISABLE_AUTOLOAD, "") in ("", "0")


def get_plugin_manager(autoload: bool | None = None, plugins: Iterable[Any] = ()) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins, the entry-point plugins (unless ``autoload`` is
    False or ``MPISNAP_DISABLE_PLUGIN_AUTOLOAD`` is set) and any extra ``plugins`` objects."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTINS:
        pm.register(importlib.import_module(name), name=name)
    if autoload is None:
        autoload = autoload_default()
    try:
        if autoload and may_have_entry_points(ENTRY_POINT_GROUP):  # else nothing to load
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for p in plugins:
            pm.register(p)
        pm.check_pending()
    except (ImportError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"a plugin failed to load ({type(exc).__name__}: {exc}); set "
                          f"{DISABLE_AUTOLOAD}=1 to run with the built-ins only") from None
    return pm


_FAMILIES = {
    "readers": ("mpisnap_readers", Reader),
    "model_forms": ("mpisnap_model_forms", ModelForm),
    "solvers": ("mpisnap_solvers", Solver),
    "writers": ("mpisnap_writers", Writer),
    "reference_potentials": ("mpisnap_reference_potentials", ReferencePotential),
    "settings_sections": ("mpisnap_settings_sections", SettingsSection),
}
_LABEL = {"readers": "reader", "model_forms": "model form", "solvers": "solver",
          "writers": "writer", "reference_potentials": "reference potential",
          "settings_sections": "settings section"}


@dataclass(frozen=True)
class Registry:
    """Records by family, keyed by lower-case name, with the provider of each."""

    items: dict
    providers: dict

    def names(self, family: str) -> list[str]:
        return [r.name for r in self.items[family].values()]

    def all(self, family: str) -> list:
        return list(self.items[family].values())

    def get(self, family: str, name: str, *, what: str | None = None):
        """The record called ``name`` (case-insensitive) or a PluginError listing the choices."""
        rec = self.items[family].get(name.lower())
        if rec is None:
            where = f"{what}: " if what else ""
            raise PluginError(f"{where}unknown {_LABEL[family]} {name!r}; choose one of: "
                              + ", ".join(self.names(family)))
        return rec


def build_registry(pm: pluggy.PluginManager, families: Iterable[str] | None = None) -> Registry:
    """Flatten every hook's records (or those of ``families`` only); a duplicate name is an error
    naming both providers."""
    items: dict = {}
    providers: dict = {}
    for family in (_FAMILIES if families is None else families):
        hook, cls = _FAMILIES[family]
        items[family] = {}
        for impl in getattr(pm.hook, hook).get_hookimpls():
            provider = pm.get_name(impl.plugin) or repr(impl.plugin)
            out = impl.function()
            try:
                recs = list(() if out is None else out)
            except TypeError:
                raise PluginError(f"plugin {provider!r}: {hook} must return a list of "
                                  f"{cls.__name__} records, got {type(out).__name__}") from None
            for rec in recs:
                if not isinstance(rec, cls):
                    raise PluginError(f"plugin {provider!r}: {hook} returned {type(rec).__name__},"
                                      f" expected {cls.__name__}")
                if not isinstance(rec.name, str) or not rec.name.strip():
                    raise PluginError(f"plugin {provider!r}: {hook} returned a record without a name")
                key = rec.name.lower()
                if key in items[family]:
                    raise PluginError(f"{_LABEL[family]} {rec.name!r} is provided twice: by "
                                      f"{providers[(family, key)]!r} and by {provider!r}")
                items[family][key] = rec
                providers[(family, key)] = provider
    return Registry(items, providers)
