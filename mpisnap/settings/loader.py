""":func:`load_settings`: raw input -> every section's record -> cross-section checks -> Settings.

The sections come from the ``mpisnap_settings_sections`` hook (the built-in FitSNAP ones from
:mod:`mpisnap.settings.sections`, others from plugins); by default those of a plugin manager with
the default autoloading (:func:`default_sections`, built on first use and kept per process).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import types
from typing import Any, Iterable, Mapping, NoReturn, Sequence

from .parser import (InputContext, SectionContext, SettingsError, apply_overrides, hint,
                     read_dict, read_ini)
from .schema import (BUILTIN_SECTIONS, SECTION_ORDER, SOLVER_SECTIONS, FrozenMap, GroupSpec,
                     GroupsSettings, PathSettings, Settings)

__all__ = ["default_sections", "load_settings"]


def default_sections(autoload: bool | None = None) -> tuple:
    """The :class:`~mpisnap.records.SettingsSection` records of the built-ins and, unless
    ``autoload`` is False (default: unless ``MPISNAP_DISABLE_PLUGIN_AUTOLOAD`` is set), the
    entry-point plugins. Built once per process and autoload setting."""
    from ..plugin_manager import autoload_default

    return _sections(autoload_default() if autoload is None else bool(autoload))


@functools.lru_cache(maxsize=None)
def _sections(autoload: bool) -> tuple:
    from ..plugin_manager import build_registry, get_plugin_manager

    registry = build_registry(get_plugin_manager(autoload), families=("settings_sections",))
    return tuple(registry.all("settings_sections"))


def _schemas(sections: Iterable[Any]) -> dict[str, Any]:
    """name -> section record, the FitSNAP sections first in :data:`SECTION_ORDER`."""
    from ..plugin_manager import PluginError
    from ..records import SettingsSection

    given: dict[str, Any] = {}
    for rec in sections:
        if not isinstance(rec, SettingsSection):
            raise PluginError(f"settings sections: expected SettingsSection records, got "
                              f"{type(rec).__name__}")
        if rec.name in given:
            raise PluginError(f"settings section [{rec.name}] is given twice")
        given[rec.name] = rec
    missing = [n for n in SECTION_ORDER if n not in given]
    if missing:
        raise PluginError(f"settings sections: the built-in section(s) {', '.join(missing)} are "
                          "missing (the built-in plugin mpisnap.settings.sections provides them)")
    for name in SECTION_ORDER:
        if given[name].verb is not None:
            raise PluginError(f"settings section [{name}] is read by every command; it cannot "
                              f"belong to the verb {given[name].verb!r}")
    ordered = {n: given[n] for n in SECTION_ORDER}
    ordered.update((n, rec) for n, rec in given.items() if n not in ordered)
    return ordered


def _check_record(name: str, record: Any) -> Any:
    frozen = (dataclasses.is_dataclass(record) and not isinstance(record, type)
              and record.__dataclass_params__.frozen)
    if not (frozen or isinstance(record, FrozenMap)):
        from ..plugin_manager import PluginError

        raise PluginError(f"settings section [{name}]: parse must return a frozen record (a "
                          f"frozen dataclass), got {type(record).__name__}")
    return record


# -- cross-section checks: each runs right after its section, whose dependencies come earlier ------

def _eshift(record: FrozenMap, r: SectionContext, done: Mapping[str, Any], base: str) -> FrozenMap:
    types_ = done["BISPECTRUM"].type
    for key in record:
        if key not in types_:
            r.fail(key, f"not an element of [BISPECTRUM] type ({' '.join(types_)})"
                        + hint(key, types_))
    return FrozenMap({t: record.get(t, 0.0) for t in types_})


def _solver_section(record: Any, r: SectionContext, done: Mapping[str, Any], base: str) -> Any:
    chosen = done["SOLVER"].solver
    if r.present and chosen != r.section:
        r.notice(None, f"section ignored: [SOLVER] solver is {chosen}")
    return record


def _groups(record: GroupsSettings, r: SectionContext, done: Mapping[str, Any],
            base: str) -> GroupsSettings:
    from .sections import GROUP_KEYS, group_line

    path: PathSettings = done["PATH"]
    if path.groupFile is None:
        return record
    lines = [k for k in r.raw if k not in GROUP_KEYS]
    if lines:
        r.fail(lines[0], "group lines and [PATH] groupFile both given; use one of them")
    fname = os.path.join(base, path.groupFile)
    ctx = r.ctx
    try:
        with open(fname, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail("PATH", "groupFile", f"cannot read {fname}: {exc.__class__.__name__}")
    out: list[GroupSpec] = []
    for n, line in enumerate(text.splitlines(), 1):
        toks = line.split("#", 1)[0].split()
        if not toks:
            continue

        def fail(m: str, n: int = n) -> NoReturn:
            ctx.fail("PATH", "groupFile", f"{path.groupFile} line {n}: {m}")
        if any(g.name == toks[0] for g in out):
            fail(f"group {toks[0]!r} listed twice")
        out.append(group_line(fail, toks[0], toks[1:], record.options, line))
    return GroupsSettings(record.options, tuple(out))


_CROSS_CHECKS = {"ESHIFT": _eshift, "GROUPS": _groups,
                 **{name: _solver_section for name in SOLVER_SECTIONS}}


# -- entry point ----------------------------------------------------------------------------------

def _raw_input(source, base_dir) -> tuple[InputContext, dict[str, dict[str, str]], str, str]:
    if isinstance(source, Mapping):
        ctx = InputContext("<dict>")
        raw = read_dict(source, ctx)
        base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.getcwd()
        return ctx, raw, "<dict>", base
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        ctx = InputContext(os.path.basename(path) or path)
        raw = read_ini(path, ctx)
        src = os.path.abspath(path)
        base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.path.dirname(src)
        return ctx, raw, src, base
    raise SettingsError(f"<input>: expected a path or a dict of sections, got {type(source).__name__}")


def load_settings(source: str | os.PathLike | Mapping[str, Mapping[str, Any]],
                  overrides: Sequence[str] = (), base_dir: str | os.PathLike | None = None, *,
                  verb: str = "fit", sections: Iterable[Any] | None = None) -> Settings:
    """Read, type and validate settings from a FitSNAP ``.in`` file or a dict of sections.

    ``overrides`` are ``"SECTION.key=value"`` strings applied to the raw text before typing
    (any section, a plugin's too). ``base_dir`` (default: the input file's folder, or the
    current directory for a dict) is where relative paths are resolved. ``verb`` is the command
    reading the input: a section that belongs to another verb is accepted and kept unparsed.
    ``sections`` are the :class:`~mpisnap.records.SettingsSection` records to read with (the
    ``"settings_sections"`` of a plugin registry; default :func:`default_sections`); a section
    none of them knows is an error listing those they know. Raises :class:`SettingsError` on any
    user error.
    """
    ctx, raw, src, base = _raw_input(source, base_dir)
    apply_overrides(raw, overrides, ctx)
    schemas = _schemas(default_sections() if sections is None else sections)

    for sec in raw:
        if sec not in schemas:
            ctx.fail(sec, None, "unknown section"
                     + hint(sec, schemas, "section names are in capitals")
                     + "; known sections (from the installed plugins): " + ", ".join(schemas))

    records: dict[str, Any] = {}
    unparsed: dict[str, FrozenMap] = {}
    for name, schema in schemas.items():
        if schema.verb is not None and schema.verb != verb:
            if name in raw:
                unparsed[name] = FrozenMap(raw[name])
            continue
        r = SectionContext(ctx, name, raw.get(name))
        if schema.keys is not None:
            r.check_keys(schema.keys, schema.legacy)
        record = _check_record(name, schema.parse(types.MappingProxyType(r.raw), r))
        check = _CROSS_CHECKS.get(name)
        records[name] = check(record, r, records, base) if check is not None else record

    builtin = {attr: records[name] for name, attr in BUILTIN_SECTIONS.items() if name != "GROUPS"}
    groups: GroupsSettings = records["GROUPS"]
    return Settings(
        **builtin, group_options=groups.options, groups=groups.groups,
        source=src, base_dir=base, notices=tuple(ctx.notices), sections=tuple(raw),
        extra_sections=FrozenMap({n: rec for n, rec in records.items()
                                  if n not in BUILTIN_SECTIONS}),
        unparsed_sections=FrozenMap(unparsed), verb=verb,
    )
