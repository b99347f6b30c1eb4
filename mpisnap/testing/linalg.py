"""Random weighted least-squares problems for the TSQR and solver tests."""
from __future__ import annotations

import numpy as np


def random_system(m: int, n: int, seed: int = 0, cond: float | None = None,
                  weights: tuple[float, float] = (0.5, 2.0)):
    """(A, b, w): A (m, n) Gaussian, or with singular values spread log-uniformly over
    ``cond`` decades when ``cond`` is given; b Gaussian; row weights uniform in ``weights``."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n))
    if cond is not None:
        U, _, Vt = np.linalg.svd(A, full_matrices=False)
        A = (U * np.logspace(0, -np.log10(cond), n)) @ Vt
    b = rng.normal(size=m)
    w = rng.uniform(*weights, size=m)
    return A, b, w
