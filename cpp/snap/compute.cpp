// Run-time dispatch to the kernel variant for this CPU, block-wise jobs, batches, threads.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "job.hpp"
#include "neighbors.hpp"
#include "snap.hpp"

namespace snap {

#define SNAP_DECLARE(ns)              \
  namespace ns {                      \
  void step_impl(JobState&, int, int); \
  }
SNAP_DECLARE(generic)
#ifdef SNAP_HAVE_X86_VARIANTS
SNAP_DECLARE(avx2)
SNAP_DECLARE(avx512)
#endif

namespace {

using Impl = void (*)(JobState&, int, int);

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
  if (force && std::strcmp(force, "generic") == 0) return {generic::step_impl, "generic"};
  if (force && std::strcmp(force, "avx2") == 0 && has2) return {avx2::step_impl, "avx2"};
  if (has512 && !(force && std::strcmp(force, "avx2") == 0))
    return {avx512::step_impl, "avx512"};
  if (has2) return {avx2::step_impl, "avx2"};
#endif
  (void)force;
  return {generic::step_impl, "generic"};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

}  // namespace

std::string kernel_isa() { return chosen().name; }

int64_t default_block_pairs(const Tables& t) {
  return std::max<int64_t>(1, (int64_t(64) << 20) / (int64_t(24) * std::max(1, t.ncoeff)));
}

Job::Job(const Tables& t, const Config& c, const Options& o, int nthreads, RowsView force_out) {
  if (nthreads < 1) throw std::invalid_argument("threads must be >= 1");
  s_.reset(new JobState{t, c, o, nthreads, build_grid(t, c), {}, 0, 0.0, {}, {}, {}, {}, 0});
  JobState& s = *s_;
  const Params& p = t.params;
  const int N = c.natoms, T = p.ntypes(), nc = t.ncoeff, nv = t.nvalues;
  Result& res = s.res;
  res.natoms = N;
  res.ntypes = T;
  res.nvalues = nv;
  if (o.B) res.B.resize(size_t(N) * nv);  // first touched by the threads that fill it
  res.energy_row.assign(size_t(T) * nv, 0.0);
  if (o.virial) res.virial_rows.assign(size_t(6) * T * nv, 0.0);
  res.nneigh.resize(N);
  if (p.quadraticflag) s.Q.assign(size_t(o.virial ? 7 : 1) * T * nc * nc, 0.0);
  if (o.pairs) {  // the pair outputs are sized by every atom's list: make them all now
    s.nl = neighbors_of(s.grid, 0, N, nthreads);
    for (int i = 0; i < N; ++i) res.nneigh[i] = s.nl.start[i + 1] - s.nl.start[i];
    const int64_t np = s.nl.size();
    res.pair_i.resize(np);
    res.pair_j.resize(np);
    res.pair_rij.assign(s.nl.rij.begin(), s.nl.rij.end());
    res.pair_dBdr.resize(size_t(np) * 3 * nv);
  }
  if (o.forces) {
    if (force_out.data) {
      s.F = force_out;
    } else {
      res.force_rows.resize(size_t(3) * N * T * nv);
      s.F = {res.force_rows.data(), int64_t(T) * nv, nv};
    }
    const RowsView F = s.F;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t r = 0; r < 3 * int64_t(N); ++r)
      for (int tt = 0; tt < T; ++tt) {
        double* row = F.data + r * F.row_stride + tt * F.type_stride;
        std::fill(row, row + nv, 0.0);
      }
    s.slot.assign(N, -1);
  }
}

Job::~Job() = default;

int Job::natoms() const { return s_->c.natoms; }

int Job::done() const { return s_->next; }

int Job::step(int64_t max_pairs, int max_atoms) {
  JobState& s = *s_;
  const int N = s.c.natoms, i0 = s.next;
  if (s.failed) throw std::logic_error("Job::step after a failed step");
  if (i0 >= N) return N;
  s.failed = true;  // until this block is added in full
  max_atoms = std::max(1, max_atoms);
  const int at_least = std::min(max_atoms, 8 * s.nthreads);
  int nl_end = s.nl_first + static_cast<int>(s.nl.start.size()) - 1;
  if (s.nl.start.empty() || i0 >= nl_end) {  // the next atoms' lists, about a block's worth
    // (first guess: 64 images per atom; a list longer than the block stays for the next steps)
    double guess = double(max_pairs) / (s.pairs_per_atom > 0.0 ? s.pairs_per_atom : 64.0);
    guess = std::min(std::max(guess, double(at_least)), double(max_atoms));
    const int n = static_cast<int>(std::min<double>(guess, N - i0));
    s.nl = NeighborList();  // release the old lists first
    s.nl = neighbors_of(s.grid, i0, i0 + n, s.nthreads);
    s.nl_first = i0;
    nl_end = i0 + n;
    s.pairs_per_atom = std::max(1.0, double(s.nl.size()) / n);
    for (int i = i0; i < nl_end; ++i) s.res.nneigh[i] = s.nl.start[i + 1 - i0] - s.nl.start[i - i0];
  }
  // The block: as many of those atoms as fit in max_pairs (at least at_least).
  const int64_t* start = s.nl.start.data() + (i0 - s.nl_first);  // start[i - i0]
  int i1 = i0 + 1;
  while (i1 < nl_end && i1 - i0 < max_atoms &&
         (i1 - i0 < at_least || start[i1 + 1 - i0] - start[0] <= max_pairs))
    ++i1;
  chosen().impl(s, i0, i1);
  s.next = i1;
  s.failed = false;
  return i1;
}

Result Job::finish() {
  JobState& s = *s_;
  if (s.failed || s.next < s.c.natoms)
    throw std::logic_error("Job::finish before the last block");
  const Params& p = s.t.params;
  const int T = p.ntypes(), nc = s.t.ncoeff, nv = s.t.nvalues;
  Result& res = s.res;
  if (p.quadraticflag) {
    // Quadratic energy/virial columns from Q = Σ_i b_i ⊗ x_i: energy (k,l) = Q_kl,
    // (k,k) = Q_kk / 2; virial (k,l) = Q_kl + Q_lk, (k,k) = Q_kk.
    const int ntask = (s.o.virial ? 7 : 1) * T;
    for (int task = 0; task < ntask; ++task) {
      const int v = task / T - 1, tt = task % T;
      const double* Q = &s.Q[size_t(task) * nc * nc];
      double* out = v < 0 ? &res.energy_row[size_t(tt) * nv + nc]
                          : &res.virial_rows[(size_t(v) * T + tt) * nv + nc];
      size_t q = 0;
      for (int k = 0; k < nc; ++k) {
        out[q++] = v < 0 ? 0.5 * Q[size_t(k) * nc + k] : Q[size_t(k) * nc + k];
        for (int l = k + 1; l < nc; ++l)
          out[q++] = v < 0 ? Q[size_t(k) * nc + l] : Q[size_t(k) * nc + l] + Q[size_t(l) * nc + k];
      }
    }
  }
  return std::move(res);
}

Result compute(const Tables& t, const Config& c, const Options& o, int nthreads) {
  Job job(t, c, o, nthreads);
  const int64_t max_pairs = default_block_pairs(t);
  while (job.done() < job.natoms()) job.step(max_pairs, INT_MAX);
  return job.finish();
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
