// Neighbour lists for periodic (triclinic), non-periodic and mixed boundaries.
#pragma once
#include <cstdint>
#include <vector>

#include "snap.hpp"

namespace snap {

// Neighbour images of every centre atom i, stored contiguously per atom (CSR). An image n of atom
// m is a neighbour of i iff 1e-20 < |r_in|^2 < rcut_in^2 with rcut_in = (R_ti + R_tm) * rcutfac
// (strict), periodic images of i itself included. Within an atom, entries are sorted by (element
// of m, m, image), so element groups are contiguous and the order is canonical.
struct NeighborList {
  std::vector<int64_t> start;  // natoms + 1
  std::vector<int32_t> owner;  // atom m that image n belongs to
  std::vector<double> rij;     // 3 per entry: r_n − r_i (Å)
  // 3 per entry: the integer lattice shift S of image n, r_n = r_m + S · cell in terms of the
  // caller's (unwrapped) positions; 0 along non-periodic directions. The exact identity of an
  // image (r_in is rounded): the pair (i, m, S) is the reverse of (m, i, −S).
  std::vector<int32_t> shift;
  int64_t size() const { return static_cast<int64_t>(owner.size()); }
};

// Validates the configuration (finite positions, types in range, non-degenerate periodic cell)
// and throws std::invalid_argument with a one-line message otherwise.
NeighborList build_neighbors(const Tables& t, const Config& c, int nthreads);

}  // namespace snap
