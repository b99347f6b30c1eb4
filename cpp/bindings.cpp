// The one pybind11 file: checks dtypes and shapes, allocates outputs, releases the GIL.
// All validation of physics lives in cpp/snap (std::invalid_argument -> ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <mutex>

#include "snap/adjoint.hpp"
#include "snap/neighbors.hpp"
#include "snap/snap.hpp"
#include "snap/zbl.hpp"

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
  d["B"] = o.B ? py::object(to_numpy(std::move(r.B), {N, nv})) : py::object(py::none());
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

// A view of a caller's float64 array (rows, ntypes, nvalues) with a contiguous last axis.
snap::RowsView rows_view(py::handle obj, py::ssize_t rows, int ntypes, int nvalues) {
  const std::string want = "force_out must be a writable float64 array of shape (" +
                           std::to_string(rows) + ", " + std::to_string(ntypes) + ", " +
                           std::to_string(nvalues) + ") with a contiguous last axis";
  if (!py::isinstance<py::array>(obj)) throw py::value_error(want);
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<double>()) || !a.writeable() || a.ndim() != 3 ||
      a.shape(0) != rows || a.shape(1) != ntypes || a.shape(2) != nvalues)
    throw py::value_error(want);
  const py::ssize_t d = sizeof(double);
  const py::ssize_t s0 = a.strides(0), s1 = a.strides(1), s2 = a.strides(2);
  // No two (row, type) runs of nvalues doubles overlap: with the outer axes ordered by stride
  // (a <= b, counts na, nb), a >= one run and b >= the extent of the inner axis.
  py::ssize_t a_ = s0, na = rows, b_ = s1, nb = ntypes;
  if (na <= 1 || (nb > 1 && b_ < a_)) {
    std::swap(a_, b_);
    std::swap(na, nb);
  }
  const bool distinct = (na <= 1 || a_ >= nvalues * d) &&
                        (nb <= 1 || b_ >= a_ * (na - 1) + nvalues * d);
  if ((nvalues > 1 && s2 != d) || s0 % d || s1 % d || s0 < 0 || s1 < 0 || !distinct)
    throw py::value_error(want);
  return {static_cast<double*>(a.mutable_data()), s0 / d, s1 / d};
}

struct BlockJob {  // a snap::Job and everything it points into
  std::shared_ptr<snap::Tables> tables;
  Held held;
  snap::Options opts;
  py::object out;
  std::unique_ptr<snap::Job> job;
  std::mutex mu;
};

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

  // One configuration a block of centre atoms at a time (see snap::Job): Python calls step()
  // until done, so an interrupt (KeyboardInterrupt from a signal handler) lands between blocks.
  py::class_<BlockJob>(m, "Job")
      .def(py::init([](std::shared_ptr<snap::Tables> t, py::handle positions, py::handle cell,
                       py::handle pbc, py::handle types, bool forces, bool virial, bool pairs,
                       bool per_atom, py::object force_out, int threads) {
             auto j = std::make_unique<BlockJob>();
             j->tables = std::move(t);
             j->held = make_config(positions, cell, pbc, types);
             j->opts = snap::Options{forces, virial, pairs, per_atom};
             snap::RowsView view;
             if (forces && !force_out.is_none()) {
               view = rows_view(force_out, 3 * py::ssize_t(j->held.cfg.natoms),
                                j->tables->params.ntypes(), j->tables->nvalues);
               j->out = force_out;
             }
             {
               py::gil_scoped_release nogil;
               j->job = std::make_unique<snap::Job>(*j->tables, j->held.cfg, j->opts, threads,
                                                    view);
             }
             return j;
           }),
           py::arg("tables"), py::arg("positions"), py::arg("cell"), py::arg("pbc"),
           py::arg("types"), py::arg("forces") = true, py::arg("virial") = true,
           py::arg("pairs") = false, py::arg("per_atom") = true,
           py::arg("force_out") = py::none(), py::arg("threads") = 1,
           "Builds the neighbour list (GIL released). force_out: None or a writable float64 "
           "array (3N, ntypes, nvalues), last axis contiguous, that receives the force rows.")
      .def_property_readonly("natoms", [](const BlockJob& j) { return j.job->natoms(); })
      .def_property_readonly("done", [](const BlockJob& j) { return j.job->done(); })
      .def(
          "step",
          [](BlockJob& j, int64_t max_pairs, int max_atoms) {
            std::unique_lock<std::mutex> lock(j.mu, std::try_to_lock);
            if (!lock.owns_lock()) throw std::runtime_error("Job.step is already running");
            py::gil_scoped_release nogil;
            return j.job->step(max_pairs, max_atoms);
          },
          py::arg("max_pairs"), py::arg("max_atoms") = INT_MAX,
          "Computes the next block of centre atoms (GIL released); returns the atoms done.")
      .def("finish", [](BlockJob& j) {
        std::lock_guard<std::mutex> lock(j.mu);
        if (j.job->done() < j.job->natoms())
          throw py::value_error("Job.finish: the configuration is not computed yet");
        snap::Options o = j.opts;
        if (j.out) o.forces = false;  // the force rows are in the caller's array
        return to_dict(j.job->finish(), o);
      });
  m.def("default_block_pairs", &snap::default_block_pairs, py::arg("tables"),
        "Neighbour images per block of compute(): about 64 MiB of derivative scratch.");

  m.def(
      "neighbor_pairs",
      [](py::handle positions, py::handle cell, py::handle pbc, double cutoff, int64_t start,
         int64_t stop) {
        if (!(cutoff > 0.0)) throw py::value_error("cutoff must be > 0");
        const auto n = py::len(positions);
        if (stop < 0 || stop > static_cast<int64_t>(n)) stop = static_cast<int64_t>(n);
        if (start < 0 || start > stop) throw py::value_error("centres: need 0 <= start <= stop");
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
          snap::NeighborGrid g = snap::build_grid(t, h.cfg);
          nl = snap::neighbors_of(g, static_cast<int>(start), static_cast<int>(stop), 1);
        }
        const py::ssize_t P = nl.size();
        std::vector<int64_t> ii(P), jj(P);
        for (int64_t i = start; i < stop; ++i)
          for (int64_t q = nl.start[i - start]; q < nl.start[i - start + 1]; ++q) ii[q] = i;
        for (py::ssize_t q = 0; q < P; ++q) jj[q] = nl.owner[q];
        return py::make_tuple(to_numpy(std::move(ii), {P}), to_numpy(std::move(jj), {P}),
                              to_numpy(std::move(nl.rij), {P, 3}),
                              to_numpy(std::move(nl.shift), {P, 3}));
      },
      py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("cutoff"),
      py::arg("start") = 0, py::arg("stop") = -1,
      "Neighbour images within cutoff (strict <) of the centre atoms start <= i < stop (default: "
      "all): (i, j, D, S) with D = r_j + S @ cell - r_i "
      "(float, Å) and S the integer lattice shift (int32, 0 along non-periodic directions); both "
      "directions, periodic images of an atom's own self included.");

  m.def("kernel_isa", &snap::kernel_isa, "SIMD variant chosen for this CPU.");

  py::class_<snap::ZBL, std::shared_ptr<snap::ZBL>>(m, "ZBL")
      .def(py::init([](double inner, double outer, darr zi, darr zj) {
             const py::ssize_t n = zi.ndim() == 2 ? zi.shape(0) : -1;
             if (n < 1 || zi.shape(1) != n || zj.ndim() != 2 || zj.shape(0) != n ||
                 zj.shape(1) != n)
               throw py::value_error("zi and zj must be (ntypes, ntypes) arrays");
             return std::make_shared<snap::ZBL>(inner, outer, static_cast<int>(n), zi.data(),
                                                zj.data());
           }),
           py::arg("inner"), py::arg("outer"), py::arg("zi"), py::arg("zj"))
      .def(
          "pair",
          [](const snap::ZBL& z, darr r, iarr ti, iarr tj) {
            const py::ssize_t n = r.size();
            if (r.ndim() != 1 || ti.ndim() != 1 || tj.ndim() != 1 || ti.size() != n ||
                tj.size() != n)
              throw py::value_error("r, ti and tj must be 1-d arrays of one length");
            for (py::ssize_t k = 0; k < n; ++k)
              if (ti.data()[k] < 0 || ti.data()[k] >= z.ntypes() || tj.data()[k] < 0 ||
                  tj.data()[k] >= z.ntypes())
                throw py::value_error("types must lie in 0.." + std::to_string(z.ntypes() - 1));
            std::vector<double> e(n), de(n), d2e(n);
            for (py::ssize_t k = 0; k < n; ++k)
              z.pair(r.data()[k], ti.data()[k], tj.data()[k], e[k], de[k], d2e[k]);
            return py::make_tuple(to_numpy(std::move(e), {n}), to_numpy(std::move(de), {n}),
                                  to_numpy(std::move(d2e), {n}));
          },
          py::arg("r"), py::arg("ti"), py::arg("tj"),
          "Switched pair energy, dE/dr, d2E/dr2 (1-d arrays); zero for r >= outer.")
      .def(
          "compute",
          [](const snap::ZBL& z, py::handle positions, py::handle cell, py::handle pbc,
             py::handle types, int threads, int block_atoms) {
            Held h = make_config(positions, cell, pbc, types);
            snap::ZBLResult r;
            {
              py::gil_scoped_release nogil;
              r = z.compute(h.cfg, threads, block_atoms);
            }
            const py::ssize_t N = h.cfg.natoms;
            std::vector<double> w(r.virial, r.virial + 6);
            return py::make_tuple(r.energy, to_numpy(std::move(r.forces), {N, 3}),
                                  to_numpy(std::move(w), {6}));
          },
          py::arg("positions"), py::arg("cell"), py::arg("pbc"), py::arg("types"),
          py::arg("threads") = 0, py::arg("block_atoms") = 4096,
          "(energy eV, forces (N, 3) eV/A, virial (6,) eV) of one configuration; threads 0: "
          "OpenMP's default. Same result for any threads and block_atoms.");

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
