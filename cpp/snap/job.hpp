// Internal: the state of one configuration computed block by block (see snap::Job in snap.hpp).
// Shared by compute.cpp (set-up, dispatch, finish) and kernels.cpp (one block per ISA variant).
#pragma once

#include <cstdint>
#include <vector>

#include "neighbors.hpp"
#include "snap.hpp"

namespace snap {

struct JobState {
  const Tables& t;
  Config c;
  Options o;
  int nthreads;
  NeighborGrid grid;
  NeighborList nl;       // lists of centre atoms nl_first, nl_first + 1, ... (a block's worth)
  int nl_first = 0;
  double pairs_per_atom = 0.0;  // of the last lists made (sizes the next ones)
  Result res;            // outputs; force_rows used only when F points into it
  RowsView F;            // where force rows accumulate (zeroed at set-up)
  // Quadratic energy/virial columns: Q_task = Σ_i b_i ⊗ x_i over atoms of one type in atom order,
  // task = (v + 1) * ntypes + type, v = -1 (energy, x = b) or virial component v (x = W_i,v).
  std::vector<double> Q;  // [ntask][ncoeff][ncoeff]
  std::vector<int32_t> slot;  // per atom: its target group in the current block's scatter, or -1
  int next = 0;               // first centre atom not yet computed
  bool failed = false;        // a step threw: the partial sums are unusable
};

}  // namespace snap
