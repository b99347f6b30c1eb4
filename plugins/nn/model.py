"""The ``nn`` model form: a :class:`mpisnap.models.TrainableModel` that, once trained, is a
:class:`mpisnap.models.Predictor` (so ``FitResult.predictor()`` and ``mpisnap.Calculator`` use
it). PyTorch is imported only by :meth:`NNModel.train`; prediction is NumPy (float64)."""
from __future__ import annotations

import numpy as np

from mpisnap import Descriptor
from mpisnap.models import Prediction
from mpisnap.potential import nn_energies_forces

__all__ = ["NNModel", "NNSettingsError"]


class NNSettingsError(ValueError):
    """A ``[PYTORCH]`` setting that does not fit the descriptors (one line)."""


class NNModel:
    """Neural-network SNAP: E = Σ_i E_i, E_i = network(standardised B_i), one network shared by
    all elements (``[PYTORCH] multi_element_option = 1``) or one per element (2), ``[PYTORCH]
    ensemble`` independent networks whose mean is the prediction and whose spread is the
    uncertainty.

    Built by the model-form factory from the settings (nothing trained yet); :meth:`train`
    (data-parallel over ``comm``, :mod:`.training`) fills :attr:`members` (one
    :class:`~.network.Network` per ensemble member), :attr:`network` (their mean, the exported
    one), :attr:`history` (per epoch) and :attr:`state` (the PyTorch training state)."""

    kind = "nonlinear"
    name = "nn"

    def __init__(self, settings, threads: int | None = None) -> None:
        self.settings = settings
        pt = settings.pytorch
        self.threads = threads
        self.descriptor = Descriptor(**settings.bispectrum.descriptor_kwargs(), threads=threads)
        self.elements = list(self.descriptor.elements)
        self.ndescriptors = int(self.descriptor.nvalues)
        first = pt.layer_sizes[0]
        if first != "num_desc" and int(first) != self.ndescriptors:
            raise NNSettingsError(f"[PYTORCH] layer_sizes: the input size {first} is not the "
                                  f"number of descriptors, {self.ndescriptors} (write num_desc)")
        self.hidden = [int(n) for n in pt.layer_sizes[1:-1]]
        if pt.num_elements is not None and pt.num_elements != len(self.elements):
            raise NNSettingsError(f"[PYTORCH] num_elements: {pt.num_elements}, but [BISPECTRUM] "
                                  f"type lists {len(self.elements)} elements")
        self.activation = pt.activation
        self.shared = pt.multi_element_option == 1
        self.dtype = "float32" if pt.dtype_setting == 1 else "float64"
        self.ensemble = int(pt.ensemble)
        #: per element, which descriptor values exist (per-element twojmax; FitSNAP's blank2J)
        self.mask = np.asarray(self.descriptor.blank2J, float)
        self.members: list = []
        self.network = None
        self.reference = None
        self.eshift: dict[str, float] = {}
        self.history: list[dict] = []
        self.state: dict | None = None
        self.info: dict = {}

    @property
    def layers(self) -> tuple[tuple[int, str], ...]:
        """(nodes, activation) of each layer after the input; the output layer is linear."""
        return tuple((n, self.activation) for n in self.hidden) + ((1, "linear"),)

    @property
    def coefficients(self) -> np.ndarray:
        """The exported network's weights and biases (``model nn`` order)."""
        return self.network.parameters() if self.network is not None else np.zeros(0)

    def export_problem(self) -> str | None:
        """Why LAMMPS ``pair_style mliap model nn`` cannot run this model (None if it can)."""
        d = self.descriptor
        if d.quadraticflag:
            return ("[BISPECTRUM] quadraticflag = 1: pair_style mliap descriptor sna has no "
                    "quadratic descriptors")
        if len(set(d.twojmax_per_type)) != 1:
            return ("[BISPECTRUM] twojmax differs per element: pair_style mliap descriptor sna "
                    "has one twojmax")
        from .network import activation_problem

        return activation_problem(self.layers)

    def owners(self, costs, entries, nranks: int):
        """Owner rank of each training-set entry (:func:`mpisnap.pipeline.plan` calls it): every
        batch shared evenly between two ranks (:mod:`.batches`)."""
        from .batches import owners

        return owners(self.settings, costs, entries, nranks)

    def train(self, comm, setup, partition, timer):
        """Train on this rank's configurations of ``partition`` (data-parallel over ``comm``);
        returns the :class:`mpisnap.results.FitResult`."""
        from .training import train

        return train(self, comm, setup, partition, timer)

    # -- the predictor --------------------------------------------------------------------------
    def _config(self, config):
        from mpisnap.records import Configuration

        if hasattr(config, "get_positions"):
            pos, cell = config.get_positions(), np.array(config.get_cell())
            pbc, symbols = config.get_pbc(), config.get_chemical_symbols()
        else:
            pos, symbols = config.positions, config.symbols
            cell = np.zeros((3, 3)) if config.cell is None else config.cell
            pbc = np.broadcast_to(np.asarray(config.pbc, bool), (3,))
        return Configuration("predict", "", np.asarray(pos, float), np.asarray(cell, float),
                             tuple(bool(x) for x in pbc), tuple(symbols))

    def predict(self, config, *, uncertainty: bool = False) -> Prediction:
        """Energy (eV), per-atom energies, forces (eV/Å) and stress (eV/Å³, ASE's sign) of
        ``config`` (an ``ase.Atoms`` or a record with positions, cell, pbc and symbols): the
        network (the ensemble's mean) plus the reference potential, minus the energy shifts
        (so energies are on the training data's scale). ``uncertainty``: the ``*_std`` fields
        are the standard deviation over the ensemble members (needs ``[PYTORCH] ensemble`` >=
        2)."""
        if self.network is None:
            raise RuntimeError("the nn model is not trained yet")
        if uncertainty and len(self.members) < 2:
            raise NotImplementedError("model 'nn' has an uncertainty estimate only as an "
                                      "ensemble: set [PYTORCH] ensemble >= 2")
        cfg = self._config(config)
        types = self.descriptor.type_indices(cfg.symbols)
        d = self.descriptor.compute(positions=cfg.positions, cell=cfg.cell, pbc=cfg.pbc,
                                    types=types, forces=False, virial=False, pairs=True)

        def one(net):
            return nn_energies_forces(net, self.descriptor, None, None, None, types,
                                      mask=self.mask, descriptors=d)

        energies, forces, virial = one(self.network)
        shifts = np.array([self.eshift.get(s, 0.0) for s in cfg.symbols])
        energies = energies - shifts
        ref = self.reference.compute(cfg) if self.reference is not None else None
        if ref is not None:
            forces = forces + np.asarray(ref.forces)
            virial = virial + np.asarray(ref.virial)
            ref_e = getattr(ref, "energies", None)
            energy = float(energies.sum() + ref.energy)
            energies = energies + np.asarray(ref_e) if ref_e is not None else None
        else:
            energy = float(energies.sum())
        vol = cfg.volume if all(cfg.pbc) else 0.0
        three_d = vol > 0 and np.linalg.matrix_rank(cfg.cell) == 3
        stress = -virial / vol if three_d else None
        spread = {}
        if uncertainty:  # the members' sample standard deviation (model part, uncalibrated)
            runs = [one(m) for m in self.members]
            spread = {"energy_std": float(np.std([r[0].sum() for r in runs], ddof=1)),
                      "forces_std": np.std([r[1] for r in runs], axis=0, ddof=1),
                      "stress_std": (np.std([-r[2] / vol for r in runs], axis=0, ddof=1)
                                     if three_d else None)}
            if "energy_std_model" in Prediction.__dataclass_fields__:
                spread.update({k + "_model": v for k, v in list(spread.items())})
        return Prediction(energy=energy, forces=forces, energies=energies, stress=stress,
                          **spread)
