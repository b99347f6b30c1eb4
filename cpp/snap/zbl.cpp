#include "zbl.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include <omp.h>

#include "neighbors.hpp"

namespace snap {

namespace {

constexpr double kPhiC[4] = {0.18175, 0.50986, 0.28022, 0.02817};
constexpr double kPhiD[4] = {3.19980, 0.94229, 0.40290, 0.20162};

// Neighbour-list parameters: radelem = outer / 2 for every type, rcutfac 1, so the core's images
// cover the cutoff `outer` of pair_style zbl.
Params list_params(double outer, int ntypes) {
  if (ntypes < 1) throw std::invalid_argument("ZBL needs at least one type");
  if (!(std::isfinite(outer) && outer > 0.0))
    throw std::invalid_argument("ZBL outer cutoff must be positive and finite");
  Params p;
  p.twojmax = 0;
  p.rcutfac = 1.0;
  p.radelem.assign(ntypes, 0.5 * outer);
  p.wj.assign(ntypes, 1.0);
  return p;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// One copy of the batch kernel per x86 level, chosen when the library loads.
#define ZBL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ZBL_CLONES
#endif

// exp(v) for v <= 0, inline so that a loop calling it vectorises: v = n ln2 + u, |u| <= ln2/2
// (ln2 in two parts, n ln2_hi exact), e^u by its Taylor series to u^13 (truncation below 1e-17
// relative), times 2^n from the exponent bits. Within a few ulp of std::exp; arguments below
// -708 give exp(-708) (in φ such a term is below 1e-300 of the largest).
inline double exp_nonpositive(double v) {
  constexpr double log2e = 1.4426950408889634, ln2_hi = 0.693147180369123816490,
                   ln2_lo = 1.90821492927058770002e-10, shifter = 6755399441055744.0;  // 1.5·2^52
  v = std::max(v, -708.0);
  const double big = v * log2e + shifter;  // its low mantissa bits hold n = round(v / ln2)
  const double nf = big - shifter;
  const double u = (v - nf * ln2_hi) - nf * ln2_lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * u + 1.0 / 479001600.0;
  p = p * u + 1.0 / 39916800.0;
  p = p * u + 1.0 / 3628800.0;
  p = p * u + 1.0 / 362880.0;
  p = p * u + 1.0 / 40320.0;
  p = p * u + 1.0 / 5040.0;
  p = p * u + 1.0 / 720.0;
  p = p * u + 1.0 / 120.0;
  p = p * u + 1.0 / 24.0;
  p = p * u + 1.0 / 6.0;
  p = p * u + 0.5;
  p = p * u + 1.0;
  p = p * u + 1.0;
  int64_t bits;
  std::memcpy(&bits, &big, sizeof bits);
  bits = (bits - 0x4338000000000000LL + 1023) << 52;  // 2^n
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Pair terms of a batch of n neighbours, lanes independent (vectorised): D (dx, dy, dz) and the
// type pair p (index into the coefficient tables zz, ainv, A, B, C). Out: E (switched pair
// energy) and S = (dE/dr) / r.
ZBL_CLONES void pair_batch(int n, const double* dx, const double* dy, const double* dz,
                           const int32_t* p, const double* zz, const double* ainv,
                           const double* A, const double* B, const double* C, double inner,
                           double* E, double* S) {
#pragma omp simd
  for (int h = 0; h < n; ++h) {
    const int t = p[h];
    const double r2 = dx[h] * dx[h] + dy[h] * dy[h] + dz[h] * dz[h];
    const double r = std::sqrt(r2), inv = 1.0 / r, ai = ainv[t], x = r * ai;
    const double c0 = kPhiC[0] * exp_nonpositive(-kPhiD[0] * x);
    const double c1 = kPhiC[1] * exp_nonpositive(-kPhiD[1] * x);
    const double c2 = kPhiC[2] * exp_nonpositive(-kPhiD[2] * x);
    const double c3 = kPhiC[3] * exp_nonpositive(-kPhiD[3] * x);
    const double phi = ((c0 + c1) + c2) + c3;
    const double dphi = -ai * (((kPhiD[0] * c0 + kPhiD[1] * c1) + kPhiD[2] * c2) + kPhiD[3] * c3);
    const double e0 = zz[t] * phi * inv;
    const double de0 = zz[t] * (dphi - phi * inv) * inv;
    const double u = std::max(r - inner, 0.0);
    E[h] = e0 + C[t] + u * u * u * (A[t] / 3.0 + 0.25 * B[t] * u);
    S[h] = (de0 + u * u * (A[t] + B[t] * u)) * inv;
  }
}

}  // namespace

void ZBL::unswitched(double r, double zz, double ainv, double& e, double& de, double& d2e) {
  const double x = r * ainv;
  double phi = 0.0, dphi = 0.0, d2phi = 0.0;
  for (int k = 0; k < 4; ++k) {
    const double c = kPhiC[k] * std::exp(-kPhiD[k] * x);
    phi += c;
    dphi -= kPhiD[k] * c;
    d2phi += kPhiD[k] * kPhiD[k] * c;
  }
  dphi *= ainv;  // dφ/dr
  d2phi *= ainv * ainv;
  const double inv = 1.0 / r;
  e = zz * phi * inv;
  de = zz * (dphi - phi * inv) * inv;
  d2e = zz * (d2phi - 2.0 * dphi * inv + 2.0 * phi * inv * inv) * inv;
}

ZBL::ZBL(double inner, double outer, int ntypes, const double* zi, const double* zj)
    : ntypes_(ntypes), inner_(inner), outer_(outer), tables_(list_params(outer, ntypes)) {
  if (!(inner > 0.0 && inner <= outer))
    throw std::invalid_argument("ZBL needs 0 < inner <= outer < inf, got inner=" +
                                std::to_string(inner) + ", outer=" + std::to_string(outer));
  const int n = ntypes;
  for (auto* v : {&zz_, &ainv_, &A_, &B_, &C_}) v->resize(size_t(n) * n);
  const double d = outer - inner;
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      const double za = zi[a * n + b], zb = zj[a * n + b];
      if (!(std::isfinite(za) && std::isfinite(zb) && za > 0.0 && zb > 0.0))
        throw std::invalid_argument("ZBL charges must be positive and finite");
      if (za != zj[b * n + a] || zb != zi[b * n + a])
        throw std::invalid_argument("ZBL charge table is not symmetric: zi[a][b] != zj[b][a]");
      const size_t p = size_t(a) * n + b;
      zz_[p] = kZblQqr2e * za * zb;
      ainv_[p] = (std::pow(za, kZblPzbl) + std::pow(zb, kZblPzbl)) / kZblA0;
      double e0, d1, d2;
      unswitched(outer, zz_[p], ainv_[p], e0, d1, d2);
      A_[p] = d > 0.0 ? (-3.0 * d1 + d * d2) / (d * d) : 0.0;
      B_[p] = d > 0.0 ? (2.0 * d1 - d * d2) / (d * d * d) : 0.0;
      C_[p] = -e0 + 0.5 * d * d1 - d * d * d2 / 12.0;
    }
}

void ZBL::pair(double r, int ti, int tj, double& e, double& de, double& d2e) const {
  if (!(r < outer_)) {
    e = de = d2e = 0.0;
    return;
  }
  const size_t p = size_t(ti) * ntypes_ + tj;
  unswitched(r, zz_[p], ainv_[p], e, de, d2e);
  const double t = std::max(r - inner_, 0.0);
  e += C_[p] + t * t * t * (A_[p] / 3.0 + 0.25 * B_[p] * t);
  de += t * t * (A_[p] + B_[p] * t);
  d2e += t * (2.0 * A_[p] + 3.0 * B_[p] * t);
}

namespace {

// w (virial, xx yy zz yz xz xy) -= D ⊗ g for one pair: D = r_j − r_i, g = ∂E/∂r_ij on i.
inline void add_pair_virial(double* w, const double* D, const double* g) {
  w[0] -= D[0] * g[0];
  w[1] -= D[1] * g[1];
  w[2] -= D[2] * g[2];
  w[3] -= D[1] * g[2];
  w[4] -= D[0] * g[2];
  w[5] -= D[0] * g[1];
}

// Bins per axis within rc of a point: bins have edge >= rc / 2, so at most 6.
constexpr int kMaxSpan = 8;

// The periodic images of a configuration (the core's NeighborGrid: exact integer shifts, own
// images included) in bins of edge >= outer/2, coordinates apart and in bin order, so that an
// atom's candidates are a few contiguous runs near its cutoff sphere (about 3 times its volume,
// against 6.4 for the grid's 27 bins of edge >= outer).
struct Bins {
  std::vector<double> x, y, z;  // image coordinates, bin order
  std::vector<int32_t> owner, type;
  std::vector<int64_t> image;  // the grid's index of each image
  std::vector<int64_t> start;  // per bin (x slowest, z fastest), + 1
  double lo[3] = {0, 0, 0}, w[3] = {1, 1, 1}, winv[3] = {1, 1, 1}, last[3] = {0, 0, 0};
  int nb[3] = {1, 1, 1};

  int bin(double r, int a) const {  // clamped to 0 .. nb - 1 (`last`)
    double f = (r - lo[a]) * winv[a];
    f = f > 0.0 ? f : 0.0;
    return static_cast<int>(f < last[a] ? f : last[a]);
  }
};

// The lattice shift of a grid image is lexicographically positive (for an atom's own images the
// shift of the pair (i, i, S) is the image's shift).
bool positive_shift(const NeighborGrid& G, int64_t g) {
  const int32_t* S = &G.gshift[3 * g];
  return S[0] > 0 || (S[0] == 0 && (S[1] > 0 || (S[1] == 0 && S[2] > 0)));
}

Bins make_bins(const NeighborGrid& G, const int32_t* types, double rc) {
  Bins B;
  const int64_t ng = static_cast<int64_t>(G.gown.size());
  double hi[3] = {-1e300, -1e300, -1e300};
  for (int a = 0; a < 3; ++a) B.lo[a] = 1e300;
  for (int64_t g = 0; g < ng; ++g)
    for (int a = 0; a < 3; ++a) {
      B.lo[a] = std::min(B.lo[a], G.gx[3 * g + a]);
      hi[a] = std::max(hi[a], G.gx[3 * g + a]);
    }
  double edge = 0.5 * rc;
  for (;;) {  // as many bins as images at most (a sparse cluster gets coarser bins)
    double total = 1.0;
    for (int a = 0; a < 3; ++a) {
      const double len = ng ? hi[a] - B.lo[a] : 0.0;
      B.nb[a] = std::min(std::max(1, static_cast<int>(std::floor(len / edge))), 1 << 20);
      B.w[a] = B.nb[a] > 1 ? len / B.nb[a] : 1.0;
      total *= B.nb[a];
    }
    if (total <= 2.0 * ng + 64.0) break;
    edge *= 2.0;
  }
  for (int a = 0; a < 3; ++a) {
    B.winv[a] = 1.0 / B.w[a];
    B.last[a] = B.nb[a] - 1;
    if (B.nb[a] > 1 && !(B.w[a] >= 0.499 * rc))  // (w >= edge by construction)
      throw std::logic_error("ZBL bins narrower than half the cutoff");
  }
  const int64_t nbins = int64_t(B.nb[0]) * B.nb[1] * B.nb[2];
  std::vector<int64_t> of(ng);
  B.start.assign(nbins + 1, 0);
  for (int64_t g = 0; g < ng; ++g) {
    const double* r = &G.gx[3 * g];
    of[g] = (int64_t(B.bin(r[0], 0)) * B.nb[1] + B.bin(r[1], 1)) * B.nb[2] + B.bin(r[2], 2);
    ++B.start[of[g] + 1];
  }
  for (int64_t b = 0; b < nbins; ++b) B.start[b + 1] += B.start[b];
  B.x.resize(ng);
  B.y.resize(ng);
  B.z.resize(ng);
  B.owner.resize(ng);
  B.type.resize(ng);
  B.image.resize(ng);
  std::vector<int64_t> fill(B.start.begin(), B.start.end() - 1);
  for (int64_t g = 0; g < ng; ++g) {  // stable: images keep the grid's order within a bin
    const int64_t q = fill[of[g]]++;
    B.x[q] = G.gx[3 * g];
    B.y[q] = G.gx[3 * g + 1];
    B.z[q] = G.gx[3 * g + 2];
    B.owner[q] = G.gown[g];
    B.type[q] = types[G.gown[g]];
    B.image[q] = g;
  }
  return B;
}

// No real structure has this many neighbours per atom (the descriptors' limit too).
constexpr int kMaxNeighbours = 20000;
// Configurations of fewer atoms are computed on one thread with each pair evaluated once; larger
// ones by every atom summing its full neighbour list, threaded. The choice depends on the atoms
// only, so either way the result does not depend on the number of threads.
constexpr int kThreadedAtoms = 512;

// Errors met while scanning (reported after the block, lowest atom first, as the neighbour list).
struct ScanErrors {
  int64_t overlap_i = -1, overlap_m = -1, crowded = -1;
  void overlap(int64_t i, int64_t m) {
#pragma omp critical(zbl_overlap)
    if (overlap_i < 0 || i < overlap_i) {
      overlap_i = i;
      overlap_m = m;
    }
  }
  void too_many(int64_t i) {
#pragma omp critical(zbl_crowded)
    if (crowded < 0 || i < crowded) crowded = i;
  }
  void raise() const {
    if (overlap_i >= 0) throw overlap_error(overlap_i, overlap_m);
    if (crowded >= 0)
      throw std::invalid_argument("atom " + std::to_string(crowded) + " has more than " +
                                  std::to_string(kMaxNeighbours) +
                                  " neighbours within the cutoff (atoms on top of each other, or"
                                  " a cell far too small)");
  }
};

// One thread's buffers for the neighbours of a few atoms, kept between calls (most training sets
// are many small configurations).
struct ScanBuffers {
  // the neighbours found, atom after atom, each atom's in bin order: D = r_image − r_i, the
  // type pair (centre type · ntypes + partner type), the partner atom; after terms(): E and
  // S = (dE/dr) / r
  std::vector<double> dx, dy, dz, E, S;
  std::vector<int32_t> pair, owner;
  std::vector<int64_t> cand;  // one atom's images within rc, itself included
  size_t cap = 0;

  void reserve(size_t want) {
    if (want <= cap) return;
    cap = std::max(want, 2 * cap);
    cand.resize(cap);
    for (auto* v : {&dx, &dy, &dz, &E, &S}) v->resize(cap);
    for (auto* v : {&pair, &owner}) v->resize(cap);
  }
};

ScanBuffers& thread_buffers() {
  static thread_local ScanBuffers b;
  return b;
}

// Atoms per batch of pair terms (one pair_batch call).
constexpr int kChunk = 16;

// One thread's neighbours of a chunk of atoms and their pair terms.
struct Scanner {
  const NeighborGrid& G;
  const Bins& B;
  const double rc, rc2, margin;
  const int ntypes;
  ScanBuffers& buf = thread_buffers();
  int n = 0;                 // neighbours found since clear()
  int first[kChunk + 1];     // where each scanned atom's neighbours start
  int atoms = 0;             // atoms scanned since clear()

  Scanner(const NeighborGrid& g, const Bins& b, double cut, double marg, int nt)
      : G(g), B(b), rc(cut), rc2(cut * cut), margin(marg), ntypes(nt) {}

  void clear() { n = atoms = 0; }

  // Appends the neighbours of atom i (type ti) at xi: every image within rc but the atom itself
  // (half: only those of atoms m > i, and of i itself with a lexicographically positive lattice
  // shift, so that every pair is met once). An atom with too many neighbours gets none (the
  // error is recorded).
  void scan(int i, int ti, const double* xi, bool half, ScanErrors& err) {
    first[atoms++] = n;
    const double* __restrict px = B.x.data();
    const double* __restrict py = B.y.data();
    const double* __restrict pz = B.z.data();
    // bins within rc (+ margin) along each axis; rows (x, y) of bins farther than rc are
    // skipped, each row is scanned over the z-bins within rc
    int lo[3], hi[3];
    double gap[2][kMaxSpan];
    for (int a = 0; a < 3; ++a) {
      lo[a] = B.bin(xi[a] - rc - margin, a);
      hi[a] = B.bin(xi[a] + rc + margin, a);
    }
    for (int a = 0; a < 2; ++a)
      for (int b = lo[a]; b <= hi[a]; ++b) {  // squared distance to the slab of bin b
        const double l = B.lo[a] + b * B.w[a] - margin, h = l + B.w[a] + 2.0 * margin;
        const double d = xi[a] < l ? l - xi[a] : (xi[a] > h ? xi[a] - h : 0.0);
        gap[a][b - lo[a]] = B.nb[a] == 1 ? 0.0 : d * d;
      }
    const double x0 = xi[0], x1 = xi[1], x2 = xi[2];
    int nc = 0;
    for (int a0 = lo[0]; a0 <= hi[0]; ++a0) {
      const double dx2 = gap[0][a0 - lo[0]];
      if (dx2 >= rc2) continue;
      for (int a1 = lo[1]; a1 <= hi[1]; ++a1) {
        if (dx2 + gap[1][a1 - lo[1]] >= rc2) continue;
        const int64_t row = (int64_t(a0) * B.nb[1] + a1) * B.nb[2];
        const int64_t qa = B.start[row + lo[2]], qb = B.start[row + hi[2] + 1];
        buf.reserve(size_t(n + nc + (qb - qa)) + 16);
        int64_t* __restrict out = buf.cand.data();
        for (int64_t q = qa; q < qb; ++q) {  // branch-free: keep the images within rc
          const double x = px[q] - x0, y = py[q] - x1, z = pz[q] - x2;
          out[nc] = q;
          nc += (x * x + y * y + z * z < rc2);
        }
        if (nc > kMaxNeighbours) {
          err.too_many(i);
          return;
        }
      }
    }
    const int row = ti * ntypes;
    for (int h = 0; h < nc; ++h) {
      const int64_t q = buf.cand[h];
      const double x = px[q] - xi[0], y = py[q] - xi[1], z = pz[q] - xi[2];
      const int m = B.owner[q];
      if (!(x * x + y * y + z * z > 1e-20)) {
        if (!(m == i && G.ghome[B.image[q]])) err.overlap(i, m);  // on top of atom i
        continue;
      }
      if (half && (m < i || (m == i && !positive_shift(G, B.image[q])))) continue;
      buf.dx[n] = x;
      buf.dy[n] = y;
      buf.dz[n] = z;
      buf.pair[n] = row + B.type[q];
      buf.owner[n] = m;
      ++n;
    }
  }

  // E and S of every neighbour found since clear(); closes the chunk (first[atoms] = n).
  void terms(const double* zz, const double* ainv, const double* A, const double* Bs,
             const double* C, double inner) {
    first[atoms] = n;
    const int padded = (n + 7) & ~7;  // whole vectors; the padding is computed, not used
    buf.reserve(size_t(padded) + 1);
    for (int h = n; h < padded; ++h) {
      buf.dx[h] = rc;
      buf.dy[h] = buf.dz[h] = 0.0;
      buf.pair[h] = 0;
    }
    pair_batch(padded, buf.dx.data(), buf.dy.data(), buf.dz.data(), buf.pair.data(), zz, ainv,
               A, Bs, C, inner, buf.E.data(), buf.S.data());
  }
};

}  // namespace

ZBLResult ZBL::compute(const Config& c, int nthreads, int block_atoms) const {
  if (nthreads < 1) nthreads = omp_get_max_threads();
  if (block_atoms < 1) throw std::invalid_argument("block_atoms must be >= 1");
  const int N = c.natoms;
  ZBLResult res;
  res.forces.assign(size_t(3) * std::max(N, 0), 0.0);
  // The core's periodic images of the atoms (validates types, positions and cell).
  const NeighborGrid G = build_grid(tables_, c);
  if (N == 0) return res;
  const double rc = outer_;
  const Bins B = make_bins(G, c.types, rc);
  // Bin ranges are widened by a rounding margin, so no image within rc is ever skipped.
  const double margin =
      1e-9 * (rc + std::max({std::fabs(B.lo[0]), std::fabs(B.lo[1]), std::fabs(B.lo[2])}) +
              std::max({B.w[0] * B.nb[0], B.w[1] * B.nb[1], B.w[2] * B.nb[2]}));
  ScanErrors err;
  double* F = res.forces.data();

  if (N < kThreadedAtoms) {  // one thread, each pair once: +g on i, −g on its partner
    Scanner sc(G, B, rc, margin, ntypes_);
    double e = 0.0, w[6] = {0, 0, 0, 0, 0, 0};
    for (int c0 = 0; c0 < N; c0 += kChunk) {
      const int c1 = std::min(N, c0 + kChunk);
      sc.clear();
      for (int i = c0; i < c1; ++i) sc.scan(i, c.types[i], &G.x[3 * i], true, err);
      sc.terms(zz_.data(), ainv_.data(), A_.data(), B_.data(), C_.data(), inner_);
      const ScanBuffers& b = sc.buf;
      for (int i = c0; i < c1; ++i)
        for (int h = sc.first[i - c0]; h < sc.first[i - c0 + 1]; ++h) {
          const double D[3] = {b.dx[h], b.dy[h], b.dz[h]}, s = b.S[h];
          const double g[3] = {s * D[0], s * D[1], s * D[2]};  // ∂E/∂r_ij
          const int m = b.owner[h];
          e += b.E[h];
          if (m != i) {  // the distance to an atom's own images does not depend on it
            for (int a = 0; a < 3; ++a) {
              F[3 * i + a] += g[a];
              F[3 * m + a] -= g[a];
            }
          }
          add_pair_virial(w, D, g);
        }
    }
    err.raise();
    res.energy = e;
    for (int v = 0; v < 6; ++v) res.virial[v] = w[v];
    return res;
  }

  // Every atom sums its own full list (a pair is met at both its atoms, an atom's own images
  // twice: half of each energy and virial), so forces need no reduction across threads; the
  // chunks of atoms are fixed, so each atom's sums are the same on any thread.
  const int nt = std::max(1, std::min(nthreads, N / kThreadedAtoms));
  const int bsize = std::min(block_atoms, N);
  std::vector<double> eatom(bsize), watom(size_t(6) * bsize);
  for (int i0 = 0; i0 < N; i0 += bsize) {
    const int i1 = std::min(N, i0 + bsize);
    const int nchunks = (i1 - i0 + kChunk - 1) / kChunk;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      Scanner sc(G, B, rc, margin, ntypes_);
#pragma omp for schedule(dynamic, 1)
      for (int ch = 0; ch < nchunks; ++ch) {
        const int c0 = i0 + ch * kChunk, c1 = std::min(i1, c0 + kChunk);
        sc.clear();
        for (int i = c0; i < c1; ++i) sc.scan(i, c.types[i], &G.x[3 * i], false, err);
        sc.terms(zz_.data(), ainv_.data(), A_.data(), B_.data(), C_.data(), inner_);
        const ScanBuffers& b = sc.buf;
        for (int i = c0; i < c1; ++i) {
          double e = 0.0, f[3] = {0, 0, 0}, w[6] = {0, 0, 0, 0, 0, 0};
          for (int h = sc.first[i - c0]; h < sc.first[i - c0 + 1]; ++h) {  // in list order
            const double D[3] = {b.dx[h], b.dy[h], b.dz[h]}, s = b.S[h];
            const double g[3] = {s * D[0], s * D[1], s * D[2]};  // ∂E/∂r_ij: force on i
            e += b.E[h];
            if (b.owner[h] != i) {
              f[0] += g[0];
              f[1] += g[1];
              f[2] += g[2];
            }
            add_pair_virial(w, D, g);
          }
          const int k = i - i0;
          eatom[k] = 0.5 * e;
          for (int a = 0; a < 3; ++a) F[3 * size_t(i) + a] = f[a];
          for (int v = 0; v < 6; ++v) watom[6 * k + v] = 0.5 * w[v];
        }
      }
    }
    err.raise();
    for (int k = 0; k < i1 - i0; ++k) {  // totals in atom order
      res.energy += eatom[k];
      for (int v = 0; v < 6; ++v) res.virial[v] += watom[6 * k + v];
    }
  }
  return res;
}

}  // namespace snap
