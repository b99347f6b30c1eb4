"""Reading configurations through the reader plugin, with errors that name the configuration."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

from ..errors import FitError
from ..records import Configuration

__all__ = ["naming", "load"]


@contextmanager
def naming(name: str):
    """A ValueError or OSError raised while reading or computing configuration ``name`` becomes
    a one-line :class:`~mpisnap.errors.FitError` that names it (unless the message already
    does)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FitError(msg if name in msg else f"{name}: {msg}") from exc


def load(reader, ref, types: Sequence[str]) -> Configuration:
    """Configuration ``ref`` (a :class:`~mpisnap.records.ConfigRef`) read by ``reader``; an
    element outside ``types`` (``[BISPECTRUM] type``) is an error naming it."""
    with naming(ref.name):
        c = reader.load(ref)
        unknown = sorted(set(c.symbols) - set(types))
        if unknown:
            raise FitError(f"element {unknown[0]!r} is not in [BISPECTRUM] type "
                           f"({' '.join(types)})")
    return c
