"""What counts as a user error, and how any error reads on one line.

The contract of every command (:mod:`mpisnap.cli`) and of the cross-rank error exchange
(:func:`mpisnap.comm.agree`):

* a *user-caused* error is a :class:`ValueError` (bad input file, settings, data, plugin names,
  output paths; mpisnap's own errors subclass it), an :class:`OSError` (disk full, name too long,
  not a directory, permission denied: the user's files and machine) or a :class:`MemoryError`;
* anything else is a bug (an *internal* error).

:func:`one_line` writes either on one line: an ``OSError`` as ``path: reason``, an internal error
as ``Type: message``.
"""
from __future__ import annotations

__all__ = ["USER_ERRORS", "is_user_error", "one_line", "Collective", "CollectiveInternalError",
           "FitError", "CollectiveError"]

USER_ERRORS = (ValueError, OSError, MemoryError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, USER_ERRORS)


class Collective(Exception):
    """Marks an error that every rank of the communicator raised with the same message (see
    :func:`mpisnap.comm.agree`): each rank can end on its own, and one rank prints it."""


class FitError(ValueError):
    """A user-facing problem found while fitting (bad data, unusable settings)."""


class CollectiveError(FitError, Collective):
    """Raised on every rank by :func:`mpisnap.comm.agree` when a stage failed on some rank: every
    rank knows the (lowest failing) rank's message, so the run can end cleanly without
    MPI_Abort."""


class CollectiveInternalError(RuntimeError, Collective):
    """Every rank's view of a bug on some rank (its message names the rank and the original
    type; on the failing rank the original exception is the ``__cause__``)."""


def _flat(text: str) -> str:
    return " ".join(text.split())


def one_line(exc: BaseException) -> str:
    """``exc`` on one line. OSErrors read ``path: reason`` (``path -> other: reason`` for a
    two-path operation such as a rename); internal errors are prefixed with their type."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        where = str(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {exc.filename2}"
        return _flat(f"{where}: {exc.strerror}")
    if isinstance(exc, OSError) and exc.strerror and len(exc.args) == 2:
        return _flat(exc.strerror)
    text = _flat(str(exc))
    if isinstance(exc, MemoryError):
        return f"out of memory ({text})" if text else "out of memory"
    if is_user_error(exc) or isinstance(exc, Collective):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
