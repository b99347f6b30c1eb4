"""Where the project's shared data lives (``../shared/data`` beside the repository, as CI lays it
out, or ``$MPISNAP_SHARED_DATA``). Tests that need it fail loudly when it is missing: CI has it,
so a skip would only hide a broken checkout."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data"]


def shared_data(*parts: str) -> Path:
    """Path of ``parts`` inside the shared data folder; FileNotFoundError if it is not there."""
    repo = Path(__file__).resolve().parents[2]
    roots = [Path(os.environ["MPISNAP_SHARED_DATA"])] if "MPISNAP_SHARED_DATA" in os.environ else []
    roots += [repo / "shared" / "data", repo.parent / "shared" / "data", Path.cwd().parent.parent / "shared" / "data",
              Path.cwd().parent / "shared" / "data"]
    for root in roots:
        p = root.joinpath(*parts)
        if p.exists():
            return p
    raise FileNotFoundError(f"shared data {'/'.join(parts)!r} not found under any of "
                            f"{[str(r) for r in roots]} (set MPISNAP_SHARED_DATA)")
