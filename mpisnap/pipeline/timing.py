"""Stage timings and the progress bar, shared by the stages."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Timer:
    """Seconds spent per stage name (``with timer("solve"): ...``; repeated stages add up)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, enabled: bool, desc: str = "descriptors", unit: str = "config"):
    """A tqdm bar on stderr when ``enabled`` (else one that does nothing)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
