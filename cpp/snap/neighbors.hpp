// Neighbour lists for periodic (triclinic), non-periodic and mixed boundaries.
#pragma once
#include <cstdint>
#include <vector>

#include "snap.hpp"

#include <stdexcept>

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

// The binned periodic images of one configuration's atoms, built once and queried for any range
// of centre atoms, so that a large configuration's list can be made a block at a time (snap::Job)
// with memory O(atoms) for the grid and O(block) for the lists. build_neighbors(t, c, n) is
// neighbors_of(build_grid(t, c), 0, natoms, n). `t` and the arrays of `c` must outlive the grid.
struct NeighborGrid {
  const Tables* t = nullptr;
  Config c;
  std::vector<double> x;        // wrapped positions, 3 per atom
  std::vector<int32_t> wrap;    // lattice shift taken off each atom, 3 per atom
  std::vector<double> gx;       // images near the home cell, 3 per image
  std::vector<int32_t> gown;    // atom of each image
  std::vector<int32_t> gshift;  // lattice shift of each image, 3 per image
  std::vector<char> ghome;      // the atom itself, unshifted
  double lo[3] = {0, 0, 0}, binw[3] = {1, 1, 1};  // Cartesian bins of the images
  int nb[3] = {1, 1, 1};
  std::vector<int64_t> bstart, border;
  // In bin order (entry q is image border[q]): positions (3 per entry), types and the key that
  // orders a list: element (with chemflag) << 55 | atom << 20 | image shift number.
  std::vector<double> bx;
  std::vector<int32_t> btype;
  std::vector<uint64_t> bkey;
};

// The error for atom i closer than 1e-10 Å to atom m (m == i: to a periodic image of itself).
std::invalid_argument overlap_error(int64_t i, int64_t m);

// Validates the configuration as build_neighbors does and bins the images.
NeighborGrid build_grid(const Tables& t, const Config& c);

// The neighbour lists of centre atoms i0 <= i < i1: the entries build_neighbors gives them, with
// start indexed from i0 (start[i - i0]; start[0] = 0). Throws std::invalid_argument (as
// build_neighbors) when an atom of the range sits on another or has too many neighbours.
NeighborList neighbors_of(const NeighborGrid& g, int i0, int i1, int nthreads);

}  // namespace snap
