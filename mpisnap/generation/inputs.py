"""Reading the input of ``mpisnap generate``: only ``[BISPECTRUM]`` and ``[GENERATE]``.

The other sections of the file are accepted unread (their data paths need not exist yet: the
usual input of ``mpisnap fit`` can carry the ``[GENERATE]`` section that makes its data), but an
unknown section is still an error listing the known ones. Both sections are parsed by the
records the plugins register (``mpisnap_settings_sections``), with the same one-line errors as
:func:`mpisnap.settings.load_settings`.
"""
from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..settings.loader import default_sections
from ..settings.parser import (InputContext, SectionContext, SettingsError, apply_overrides,
                               hint, read_dict, read_ini)

__all__ = ["GenerateInput", "read_generate_input"]


@dataclass(frozen=True)
class GenerateInput:
    """The two sections ``generate`` reads: ``bispectrum`` (a
    :class:`~mpisnap.settings.BispectrumSettings`), ``generate`` (the ``[GENERATE]`` record),
    and ``elements`` / ``composition`` resolved (defaults: ``[BISPECTRUM] type``, equal
    fractions; normalised to sum 1). ``source`` is the input's display name, ``base_dir`` where
    relative paths are resolved."""

    bispectrum: Any
    generate: Any
    elements: tuple[str, ...]
    composition: tuple[float, ...]
    source: str
    base_dir: str
    notices: tuple[str, ...] = ()

    def resolve(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.base_dir, path))

    def descriptor_kwargs(self) -> dict:
        """Keyword arguments of :class:`mpisnap.Descriptor` from ``[BISPECTRUM]``."""
        b = self.bispectrum
        return dict(type=list(b.type), twojmax=list(b.twojmax), rcutfac=b.rcutfac, rfac0=b.rfac0,
                    rmin0=b.rmin0, wj=list(b.wj), radelem=list(b.radelem),
                    wselfallflag=b.wselfallflag, chemflag=b.chemflag, bnormflag=b.bnormflag,
                    bzeroflag=b.bzeroflag, quadraticflag=b.quadraticflag,
                    switchflag=b.switchflag, switchinnerflag=b.switchinnerflag,
                    sinner=list(b.sinner), dinner=list(b.dinner))

    def fingerprint(self) -> dict:
        """What determines the generated structures (for ``--resume``): the two sections'
        values, JSON-serialisable."""
        from dataclasses import asdict

        g = asdict(self.generate)
        return {"BISPECTRUM": asdict(self.bispectrum), "GENERATE": g,
                "elements": list(self.elements), "composition": list(self.composition)}


def read_generate_input(source: str | os.PathLike | Mapping, overrides: Sequence[str] = (),
                        base_dir: str | os.PathLike | None = None, *,
                        sections: Sequence[Any] | None = None) -> GenerateInput:
    """``[BISPECTRUM]`` and ``[GENERATE]`` of an input file (path) or a dict of sections, with
    ``--set`` ``overrides``; :class:`~mpisnap.settings.SettingsError` on any user error."""
    if isinstance(source, Mapping):
        ctx = InputContext("<dict>")
        raw = read_dict(source, ctx)
        base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.getcwd()
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        ctx = InputContext(os.path.basename(path) or path)
        raw = read_ini(path, ctx)
        base = (os.path.abspath(os.fspath(base_dir)) if base_dir is not None
                else os.path.dirname(os.path.abspath(path)))
    else:
        raise SettingsError(f"<input>: expected a path or a dict of sections, got "
                            f"{type(source).__name__}")
    apply_overrides(raw, overrides, ctx)
    known = {rec.name: rec for rec in (default_sections() if sections is None else sections)}
    for sec in raw:
        if sec not in known:
            ctx.fail(sec, None, "unknown section"
                     + hint(sec, known, "section names are in capitals")
                     + "; known sections (from the installed plugins): " + ", ".join(known))
    if "GENERATE" not in known:
        ctx.error("[GENERATE]: no installed plugin provides this section (the built-in plugin "
                  "mpisnap.plugins.generation does)")
    if "GENERATE" not in raw:
        ctx.error("[GENERATE]: missing: mpisnap generate needs this section (volume_per_atom, "
                  "min_distance, ...)")
    records = {}
    for name in ("BISPECTRUM", "GENERATE"):
        r = SectionContext(ctx, name, raw.get(name))
        rec = known[name]
        if rec.keys is not None:
            r.check_keys(rec.keys, rec.legacy)
        records[name] = rec.parse(types.MappingProxyType(r.raw), r)
    b, g = records["BISPECTRUM"], records["GENERATE"]
    elements = tuple(g.elements) if g.elements is not None else tuple(b.type)
    r = SectionContext(ctx, "GENERATE", raw["GENERATE"])
    for e in elements:
        r.require("elements", e in b.type,
                  f"{e!r} is not an element of [BISPECTRUM] type ({' '.join(b.type)})")
    if g.composition is None:
        comp = (1.0 / len(elements),) * len(elements)
    else:
        r.require("composition", len(g.composition) == len(elements),
                  f"{len(g.composition)} fractions for the {len(elements)} elements "
                  f"{' '.join(elements)}")
        total = float(sum(g.composition))
        comp = tuple(float(c) / total for c in g.composition)
    return GenerateInput(b, g, elements, comp, ctx.name, base, tuple(ctx.notices))
