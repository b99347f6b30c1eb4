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
  int64_t size() const { return static_cast<int64_t>(owner.size()); }
};

// Validates the configuration (finite positions, types in range, non-degenerate periodic cell)
// and throws std::invalid_argument with a one-line message otherwise.
NeighborList build_neighbors(const Tables& t, const Config& c, int nthreads);

}  // namespace snap
