"""A trained network in NumPy (float64, no PyTorch): per-atom energies and dE_i/dB_i, the
ensemble mean as one wider network, and the conversion to LAMMPS's ``model nn``
(:class:`mpisnap.potential.MliapNN`).

Layout (the same as LAMMPS's): per element, descriptors are standardised ``x = (B − scale0) /
scale1``, then each layer computes ``act(W h + b)``; the last layer has one node, linear, giving
E_i in eV. With FitSNAP's ``multi_element_option = 1`` every element has the same weights (one
shared network, written as identical per-element copies), with 2 each has its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mpisnap.potential import MLIAP_ACTIVATIONS, MliapNN

__all__ = ["ACTIVATIONS", "Network", "activation_problem", "ensemble_mean"]


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    from scipy.special import expit

    return expit(x)


#: name -> (f, f'(x, f(x))) of the activations the nn form trains with (PyTorch's definitions).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda x, y: 1.0 - y * y),
    "sigmoid": (_sigmoid, lambda x, y: y * (1.0 - y)),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x, y: (x > 0).astype(x.dtype)),
    "linear": (lambda x: x, lambda x, y: np.ones_like(x)),
    "softplus": (_softplus, lambda x, y: _sigmoid(x)),
    "silu": (lambda x: x * _sigmoid(x), lambda x, y: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
            lambda x, y: np.where(x > 0, 1.0, y + 1.0)),
}


def activation_problem(layers) -> str | None:
    """Why LAMMPS ``model nn`` cannot run layers with these activations (None if it can)."""
    bad = sorted({act for _, act in layers if act not in MLIAP_ACTIVATIONS})
    if bad:
        return (f"[PYTORCH] activation {', '.join(bad)}: LAMMPS pair_style mliap model nn knows "
                f"only {', '.join(MLIAP_ACTIVATIONS)} (it would silently compute any other as "
                "linear); train with one of those to export")
    return None


@dataclass(frozen=True, eq=False)
class Network:
    """One trained network (or an ensemble's mean): ``layers`` (nodes, activation) after the
    input, the last ``(1, "linear")``; ``weights[e][l] = (W, b)`` of element ``e`` (the
    descriptor's element order) and layer ``l``; ``scale`` (nelements, 2, ndescriptors)."""

    layers: tuple[tuple[int, str], ...]
    weights: tuple
    scale: np.ndarray

    @property
    def ndescriptors(self) -> int:
        return int(self.scale.shape[2])

    @property
    def nelements(self) -> int:
        return len(self.weights)

    def evaluate(self, B: np.ndarray, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-atom energies (eV) and dE_i/dB_i of descriptors ``B`` (N, ndescriptors) of atoms
        of 0-based ``elements``."""
        B = np.asarray(B, float)
        n = len(B)
        energies, beta = np.zeros(n), np.zeros((n, self.ndescriptors))
        for e in np.unique(elements):
            sel = np.flatnonzero(elements == e)
            s0, s1 = self.scale[e]
            h = (B[sel] - s0) / s1
            derivs = []
            for (W, b), (_, act) in zip(self.weights[int(e)], self.layers):
                f, df = ACTIVATIONS[act]
                z = h @ W.T + b
                h = f(z)
                derivs.append((W, df(z, h)))
            energies[sel] = h[:, 0]
            g = np.ones((len(sel), 1))
            for W, d in reversed(derivs):
                g = (g * d) @ W
            beta[sel] = g / s1
        return energies, beta

    @property
    def exportable(self) -> str | None:
        """None when LAMMPS ``model nn`` can run it, else why not."""
        return activation_problem(self.layers)

    def to_mliap(self) -> MliapNN:
        """The LAMMPS ``model nn`` (ValueError when :attr:`exportable` says why not)."""
        problem = self.exportable
        if problem:
            raise ValueError(problem)
        return MliapNN.from_weights(self.layers, self.weights, self.scale)

    def parameters(self) -> np.ndarray:
        """Every weight and bias, element after element, in the ``model nn`` file's order."""
        parts = [np.concatenate([np.asarray(b)[:, None], np.asarray(W)], axis=1).ravel()
                 for per in self.weights for W, b in per]
        return np.concatenate(parts) if parts else np.zeros(0)


def ensemble_mean(members: Sequence[Network]) -> Network:
    """One network computing the mean energy of ``members`` (same architecture and scale):
    hidden layers side by side (the first layer's weights stacked, later ones block-diagonal),
    the output layer's weights divided by the member count and the biases averaged. LAMMPS runs
    it as any other ``model nn``; its cost is the members' together."""
    k = len(members)
    if k == 1:
        return members[0]
    first = members[0]
    layers = tuple((nodes * k if i < len(first.layers) - 1 else nodes, act)
                   for i, (nodes, act) in enumerate(first.layers))
    weights = []
    for e in range(first.nelements):
        per = []
        nl = len(first.layers)
        for i in range(nl):
            Ws = [np.asarray(m.weights[e][i][0]) for m in members]
            bs = [np.asarray(m.weights[e][i][1]) for m in members]
            if i == nl - 1:  # the output: mean over members
                if nl == 1:
                    W = sum(Ws) / k
                else:
                    W = np.concatenate(Ws, axis=1) / k
                b = sum(bs) / k
            elif i == 0:
                W, b = np.concatenate(Ws, axis=0), np.concatenate(bs)
            else:
                from scipy.linalg import block_diag

                W, b = block_diag(*Ws), np.concatenate(bs)
            per.append((W, b))
        weights.append(tuple(per))
    return Network(layers, tuple(weights), first.scale)
