// Ziegler-Biersack-Littmark (ZBL) screened nuclear repulsion, as LAMMPS `pair_style zbl`, with
// its switching function; units metal (Å, eV, elementary charges). See mpisnap/zbl.py for the
// formulas. For a pair of types (a, b) at distance r < outer:
//
//   E(r) = qqr2e Z_a Z_b / r · φ(r / s) + S(r),   s = 0.46850 / (Z_a^0.23 + Z_b^0.23)
//   φ(x) = Σ_k c_k exp(-d_k x)
//   S(r) = C (r <= inner),  A/3 (r - inner)^3 + B/4 (r - inner)^4 + C (inner < r < outer)
//
// with A, B, C chosen from the unswitched term's value and first two derivatives at `outer` so
// that E, E' and E'' vanish there (E = 0 from outer on).
//
// Virial convention (as the SNAP core): W = −Σ_pairs r_ij ⊗ ∂E/∂r_ij, r_ij = r_j − r_i, Voigt
// order xx yy zz yz xz xy.
#pragma once

#include <vector>

#include "snap.hpp"

namespace snap {

// Coulomb constant in eV·Å (LAMMPS qqr2e for units metal) and the universal screening length.
constexpr double kZblQqr2e = 14.399645;
constexpr double kZblA0 = 0.46850;
constexpr double kZblPzbl = 0.23;

struct ZBLResult {
  double energy = 0.0;
  std::vector<double> forces;  // natoms x 3 (eV/Å)
  double virial[6] = {0, 0, 0, 0, 0, 0};
};

class ZBL {
 public:
  // zi, zj: ntypes x ntypes row-major; (zi[a][b], zj[a][b]) are the charges of types a and b in
  // the pair (a, b) (zi[a][b] == zj[b][a]). Throws std::invalid_argument for 0 < inner <= outer
  // violated, non-finite or non-positive charges or an asymmetric table.
  ZBL(double inner, double outer, int ntypes, const double* zi, const double* zj);

  int ntypes() const { return ntypes_; }
  double inner() const { return inner_; }
  double outer() const { return outer_; }

  // Switched E (eV), dE/dr (eV/Å) and d²E/dr² (eV/Å²) of one pair of 0-based types; all zero
  // for r >= outer. r > 0 and types in range are the caller's business.
  void pair(double r, int ti, int tj, double& e, double& de, double& d2e) const;

  // Energy, forces and virial of one configuration (types validated, positions finite, periodic
  // cell non-degenerate; std::invalid_argument otherwise, naming the atom as the neighbour list
  // does), over the core's periodic images (build_grid: exact integer lattice shifts, an atom's
  // own images included). Below 512 atoms one thread takes each pair once (i < j, or i == j with
  // the lattice shift lexicographically positive); from 512 atoms on, `nthreads` threads (< 1:
  // OpenMP's current default, which thread-pool limits set) let every atom sum its full
  // neighbour list in a fixed order, half of each pair's energy and virial, `block_atoms` centre
  // atoms at a time, totals in atom order. Either way the result is the same bitwise for any
  // thread count (and, from 512 atoms, any block size), and memory beyond the images and the
  // outputs stays bounded.
  ZBLResult compute(const Config& c, int nthreads, int block_atoms) const;

 private:
  int ntypes_;
  double inner_, outer_;
  // per type pair (row: centre type, column: partner type): qqr2e Z_i Z_j, the inverse screening
  // length and the switching coefficients A, B, C
  std::vector<double> zz_, ainv_, A_, B_, C_;
  Tables tables_;           // neighbour-list parameters: cutoff `outer` for every type pair

  // Unswitched E0 and its first two r-derivatives.
  static void unswitched(double r, double zz, double ainv, double& e, double& de, double& d2e);
};

}  // namespace snap
