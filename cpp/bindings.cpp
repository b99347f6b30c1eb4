// The one pybind11 file: checks dtypes and shapes, allocates outputs, releases the GIL.
// All validation of physics lives in cpp/snap (std::invalid_argument -> ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "snap/adjoint.hpp"
#include "snap/neighbors.hpp"
#include "snap/snap.hpp"

namespace py = pybind11;

namespace {

using darr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using iarr = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// Hands a vector's buffer to numpy without copying (the capsule owns the vector).
template <class V>
py::array to_numpy(V&& v, std::vector<py::ssize_t> shape) {
  using Vec = std::decay_t<V>;
  using T = typename Vec::value_type;
  auto* heap = new Vec(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<Vec*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

struct Held {  // keeps the converted input arrays alive while the GIL is released
  darr pos, cell;
  iarr types;
  snap::Config cfg;
};

Held make_config(py::handle positions, py::handle cell, py::handle pbc, py::handle types) {
  Held h{darr::ensure(positions), darr::ensure(cell), iarr::ensure(types), {}};
  if (!h.pos || h.pos.ndim() != 2 || h.pos.shape(1) != 3)
    throw py::value_error("positions must be an array of shape (natoms, 3)");
  if (!h.cell || h.cell.ndim() != 2 || h.cell.shape(0) != 3 || h.cell.shape(1) != 3)
    throw py::value_error("cell must be an array of shape (3, 3)");
  if (!h.types || h.types.ndim() != 1 || h.types.shape(0) != h.pos.shape(0))
    throw py::value_error("types must be a 1-d integer array with one entry per atom (" +
                          std::to_string(h.pos.shape(0)) + ")");
  auto p = pbc.cast<std::vector<bool>>();
  if (p.size() != 3) throw py::value_error("pbc must have 3 entries");
  h.cfg.positions = h.pos.data();
  h.cfg.cell = h.cell.data();
  h.cfg.types = h.types.data();
  h.cfg.natoms = static_cast<int>(h.pos.shape(0));
  for (int k = 0; k < 3; ++k) h.cfg.pbc[k] = p[k];
  return h;
}

py::dict to_dict(snap::Result&& r, const snap::Options& o) {
  const py::ssize_t N = r.natoms, T = r.ntypes, nv = r.nvalues;
  py::dict d;
  d["B"] = to_numpy(std::move(r.B), {N, nv});
  d["energy_row"] = to_numpy(std::move(r.energy_row), {T, nv});
  if (o.forces) d["force_rows"] = to_numpy(std::move(r.force_rows), {3 * N, T, nv});
  if (o.virial) d["virial_rows"] = to_numpy(std::move(r.virial_rows), {6, T, nv});
  d["nneigh"] = to_numpy(std::move(r.nneigh), {N});
  if (o.pairs) {
    const py::ssize_t P = static_cast<py::ssize_t>(r.pair_i.size());
    d["pair_i"] = to_numpy(std::move(r.pair_i), {P});
    d["pair_j"] = to_numpy(std::move(r.pair_j), {P});
    d["pair_rij"] = to_numpy(std::move(r.pair_rij), {P, 3});
    d["pair_dBdr"] = to_numpy(std::move(r.pair_dBdr), {P, 3, nv});
  }
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mpisnap private compiled core (SNAP descriptors). Use mpisnap.Descriptor instead.";

  py::class_<snap::Tables, std::shared_ptr<snap::Tables>>(m, "Tables")
      .def(py::init([](int twojmax, double rcutfac, double rfac0, double rmin0,
                       std::vector<double> radelem, std::vector<double> wj, bool switchflag,
                       bool switchinnerflag, std::vector<double> sinner,
                       std::vector<double> dinner, bool bzeroflag, bool bnormflag,
                       bool wselfallflag, bool chemflag, bool quadraticflag) {
             snap::Params p;
             p.twojmax = twojmax;
             p.rcutfac = rcutfac;
             p.rfac0 = rfac0;
             p.rmin0 = rmin0;
             p.radelem = std::move(radelem);
             p.wj = std::move(wj);
             p.switchflag = switchflag;
             p.switchinnerflag = switchinnerflag;
             p.sinner = std::move(sinner);
             p.dinner = std::move(dinner);
             p.bzeroflag = bzeroflag;
             p.bnormflag = bnormflag;
             p.wselfallflag = wselfallflag;
             p.chemflag = chemflag;
             p.quadraticflag = quadraticflag;
             return std::make_shared<snap::Tables>(p);
           }),
           py::arg("twojmax"), py::arg("rcutfac"), py::arg("rfac0"), py::arg("rmin0"),
           py::arg("radelem"), py::arg("wj"), py::arg("switchflag"), py::arg("switchinnerflag"),
           py::arg("sinner"), py::arg("dinner"), py::arg("bzeroflag"), py::arg("bnormflag"),
           py::arg("wselfallflag"), py::arg("chemflag"), py::arg("quadraticflag"))
      .def_property_readonly("K", [](const snap::Tables& t) { return t.K; })
      .def_property_readonly("ncoeff", [](const snap::Tables& t) { return t.ncoeff; })
      .def_property_readonly("nvalues", [](const snap::Tables& t) { return t.nvalues; })
      .def_property_readonly("triples", [](const snap::Tables& t) {
        std::vector<std::tuple<int, int, int>> out;
        for (const auto& b : t.btrip) out.emplace_back(b.j1, b.j2, b.j);
        return out;
      });

  m.def(
      "compute",
      [](const snap::Tables& t, py::handle positions, py::handle cell, py::handle pbc,
         py::handle types, bool forces, bool virial, bool pairs, int threads) {
        Held h = make_config(positions, cell, pbc, types);
        snap::Options o{forces, virial, pairs};
        snap::Result r;
        {
          py::gil_scoped_release nogil;
          r = snap::compute(t, h.cfg, o, threads);
        }
        return to_dict(std::move(r), o);
      },
      py::arg("tables"), py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("types"),
      py::arg("forces") = true, py::arg("virial") = true, py::arg("pairs") = false,
      py::arg("threads") = 1);

  m.def(
      "compute_batch",
      [](const snap::Tables& t, py::list configs, bool forces, bool virial, bool pairs,
         int threads) {
        std::vector<Held> held;
        held.reserve(configs.size());
        for (py::handle c : configs) {
          auto tup = c.cast<py::tuple>();
          if (tup.size() != 4)
            throw py::value_error("each configuration is (positions, cell, pbc, types)");
          held.push_back(make_config(tup[0], tup[1], tup[2], tup[3]));
        }
        std::vector<snap::Config> cs;
        for (auto& h : held) cs.push_back(h.cfg);
        snap::Options o{forces, virial, pairs};
        std::vector<snap::Result> rs;
        {
          py::gil_scoped_release nogil;
          rs = snap::compute_batch(t, cs, o, threads);
        }
        py::list out;
        for (auto& r : rs) out.append(to_dict(std::move(r), o));
        return out;
      },
      py::arg("tables"), py::arg("configs"), py::arg("forces") = true, py::arg("virial") = true,
      py::arg("pairs") = false, py::arg("threads") = 1);

  m.def(
      "neighbor_pairs",
      [](py::handle positions, py::handle cell, py::handle pbc, double cutoff) {
        if (!(cutoff > 0.0)) throw py::value_error("cutoff must be > 0");
        const auto n = py::len(positions);
        iarr types(std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
        std::fill(types.mutable_data(), types.mutable_data() + n, 0);
        Held h = make_config(positions, cell, pbc, types);
        snap::Params p;
        p.twojmax = 0;
        p.rcutfac = 1.0;
        p.radelem = {0.5 * cutoff};
        p.wj = {1.0};
        snap::NeighborList nl;
        {
          py::gil_scoped_release nogil;
          snap::Tables t(p);
          nl = snap::build_neighbors(t, h.cfg, 1);
        }
        const py::ssize_t P = nl.size();
        std::vector<int64_t> ii(P), jj(P);
        for (int i = 0; i < h.cfg.natoms; ++i)
          for (int64_t q = nl.start[i]; q < nl.start[i + 1]; ++q) ii[q] = i;
        for (py::ssize_t q = 0; q < P; ++q) jj[q] = nl.owner[q];
        return py::make_tuple(to_numpy(std::move(ii), {P}), to_numpy(std::move(jj), {P}),
                              to_numpy(std::move(nl.rij), {P, 3}),
                              to_numpy(std::move(nl.shift), {P, 3}));
      },
      py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
      "All neighbour images within cutoff (strict <): (i, j, D, S) with D = r_j + S @ cell - r_i "
      "(float, Å) and S the integer lattice shift (int32, 0 along non-periodic directions); both "
      "directions, periodic images of an atom's own self included.");

  m.def("kernel_isa", &snap::kernel_isa, "SIMD variant chosen for this CPU.");

  m.def(
      "potential",
      [](const snap::Tables& t, py::handle positions, py::handle cell, py::handle pbc,
         py::handle types, py::handle coeff, int threads) {
        Held h = make_config(positions, cell, pbc, types);
        darr cf = darr::ensure(coeff);
        if (!cf || cf.ndim() != 2 || cf.shape(0) != t.params.ntypes() ||
            cf.shape(1) != 1 + t.nvalues)
          throw py::value_error("coeff must be an array of shape (ntypes, 1 + nvalues) = (" +
                                std::to_string(t.params.ntypes()) + ", " +
                                std::to_string(1 + t.nvalues) + ")");
        snap::PotentialResult r;
        {
          py::gil_scoped_release nogil;
          r = snap::compute_potential(t, h.cfg, cf.data(), threads);
        }
        const py::ssize_t N = r.natoms;
        py::dict d;
        d["energy"] = r.energy;
        d["energies"] = to_numpy(std::move(r.energies), {N});
        d["forces"] = to_numpy(std::move(r.forces), {N, 3});
        d["virial"] = to_numpy(std::move(r.virial), {6});
        return d;
      },
      py::arg("tables"), py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("types"),
      py::arg("coeff"), py::arg("threads") = 1,
      "SNAP energy (eV), per-atom energies, forces (eV/A) and virial (eV, Voigt xx yy zz yz xz "
      "xy) for one coefficient set (rows: beta0, then the nvalues coefficients, per type), by "
      "the adjoint (Y) method.");
}
