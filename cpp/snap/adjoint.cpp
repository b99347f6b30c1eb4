// Run-time dispatch of the adjoint kernels (adjoint_kernels.cpp) to the variant for this CPU.
#include "adjoint.hpp"

#include <cstdlib>
#include <cstring>

#include "neighbors.hpp"

namespace snap {

#define SNAP_ADJOINT_DECLARE(ns)                                                           \
  namespace ns {                                                                           \
  PotentialResult potential_impl(const Tables&, const Config&, const NeighborList&,        \
                                 const double*, int);                                      \
  }
SNAP_ADJOINT_DECLARE(generic)
#ifdef SNAP_HAVE_X86_VARIANTS
SNAP_ADJOINT_DECLARE(avx2)
SNAP_ADJOINT_DECLARE(avx512)
#endif
#undef SNAP_ADJOINT_DECLARE

namespace {

using Impl = PotentialResult (*)(const Tables&, const Config&, const NeighborList&,
                                 const double*, int);

// The same choice as the descriptor kernels (MPISNAP_ISA = generic | avx2 forces a variant).
Impl choose() {
#ifdef SNAP_HAVE_X86_VARIANTS
  const char* force = std::getenv("MPISNAP_ISA");
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (force && std::strcmp(force, "generic") == 0) return generic::potential_impl;
  if (force && std::strcmp(force, "avx2") == 0 && has2) return avx2::potential_impl;
  if (has512) return avx512::potential_impl;
  if (has2) return avx2::potential_impl;
#endif
  return generic::potential_impl;
}

}  // namespace

PotentialResult compute_potential(const Tables& t, const Config& c, const double* coeff,
                                  int nthreads) {
  if (nthreads < 1) throw std::invalid_argument("threads must be >= 1");
  static const Impl impl = choose();
  NeighborList nl = build_neighbors(t, c, nthreads);
  return impl(t, c, nl, coeff, nthreads);
}

}  // namespace snap
