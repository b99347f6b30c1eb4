"""The ``oracle`` and ``oracle_args`` keys of an input section (``[GENERATE]``, ``[LEARN]``),
checked one way for every verb that labels structures (:mod:`mpisnap.oracle` loads the oracle
later). Light: imports neither ASE nor LAMMPS."""
from __future__ import annotations

import json
from typing import Mapping

__all__ = ["read_oracle_keys"]


def read_oracle_keys(raw: Mapping[str, str], r, *, required: bool) -> tuple[str | None, str, dict]:
    """``(oracle, oracle_args text, oracle_args as a dict)`` of a section (``raw`` its strings,
    ``r`` its :class:`mpisnap.settings.SectionContext`). ``oracle`` is ``module:Class`` of an ASE
    calculator or ``lammps`` (any case, returned in lower case), None when not given and not
    ``required``; ``oracle_args`` a one-line JSON object (default ``{}``), an error without an
    oracle. Errors are one line naming the section and key."""
    from .settings import p_str

    oracle = r.get("oracle", p_str, None)
    r.require("oracle", oracle is not None or not required,
              "required: module:Class of an ASE calculator (e.g. ase.calculators.emt:EMT) or "
              "lammps")
    if oracle is not None:
        if oracle.lower() == "lammps":
            oracle = "lammps"
        else:
            mod, colon, cls = oracle.rpartition(":")
            r.require("oracle", colon and mod.strip() and cls.strip().isidentifier(),
                      f"expected module:Class of an ASE calculator (e.g. "
                      f"ase.calculators.emt:EMT) or lammps, got {oracle!r}")
    text = r.get("oracle_args", p_str, "{}")
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        r.fail("oracle_args", f"not valid one-line JSON ({exc.msg} at column {exc.colno})")
    r.require("oracle_args", isinstance(args, dict),
              f"expected a JSON object {{...}}, got {type(args).__name__}")
    r.require("oracle_args", oracle is not None or "oracle_args" not in raw,
              "given without an oracle")
    return oracle, text, args
