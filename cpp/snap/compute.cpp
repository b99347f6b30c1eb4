// Run-time dispatch to the kernel variant for this CPU, batches, thread handling.
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "neighbors.hpp"
#include "snap.hpp"

namespace snap {

#define SNAP_DECLARE(ns)                                                                    \
  namespace ns {                                                                            \
  Result compute_impl(const Tables&, const Config&, const NeighborList&, const Options&, int); \
  }
SNAP_DECLARE(generic)
#ifdef SNAP_HAVE_X86_VARIANTS
SNAP_DECLARE(avx2)
SNAP_DECLARE(avx512)
#endif

namespace {

using Impl = Result (*)(const Tables&, const Config&, const NeighborList&, const Options&, int);

struct Choice {
  Impl impl;
  const char* name;
};

Choice choose() {
  const char* force = std::getenv("MPISNAP_ISA");  // generic | avx2 | avx512 (testing, tuning)
#ifdef SNAP_HAVE_X86_VARIANTS
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (force && std::strcmp(force, "generic") == 0) return {generic::compute_impl, "generic"};
  if (force && std::strcmp(force, "avx2") == 0 && has2) return {avx2::compute_impl, "avx2"};
  if (has512 && !(force && std::strcmp(force, "avx2") == 0))
    return {avx512::compute_impl, "avx512"};
  if (has2) return {avx2::compute_impl, "avx2"};
#endif
  (void)force;
  return {generic::compute_impl, "generic"};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

}  // namespace

std::string kernel_isa() { return chosen().name; }

Result compute(const Tables& t, const Config& c, const Options& o, int nthreads) {
  if (nthreads < 1) throw std::invalid_argument("threads must be >= 1");
  NeighborList nl = build_neighbors(t, c, nthreads);
  return chosen().impl(t, c, nl, o, nthreads);
}

std::vector<Result> compute_batch(const Tables& t, const std::vector<Config>& cs,
                                  const Options& o, int nthreads) {
  if (nthreads < 1) throw std::invalid_argument("threads must be >= 1");
  const int n = static_cast<int>(cs.size());
  std::vector<Result> out(n);
  if (n >= 2 * nthreads && nthreads > 1) {
    std::exception_ptr err;
    int err_index = n;
    std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int k = 0; k < n; ++k) {
      try {
        out[k] = compute(t, cs[k], o, 1);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (k < err_index) {  // report the first bad configuration, whatever the schedule
          err_index = k;
          err = std::current_exception();
        }
      }
    }
    if (err) {
      try {
        std::rethrow_exception(err);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("configuration " + std::to_string(err_index) + ": " +
                                    e.what());
      }
    }
  } else {
    for (int k = 0; k < n; ++k) {
      try {
        out[k] = compute(t, cs[k], o, nthreads);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("configuration " + std::to_string(k) + ": " + e.what());
      }
    }
  }
  return out;
}

}  // namespace snap
