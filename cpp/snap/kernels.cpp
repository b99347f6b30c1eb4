// The SNAP compute kernels. This file is compiled once per SIMD level (generic, AVX2, AVX-512)
// into the namespace SNAP_ISA_NS; compute.cpp dispatches at run time.
//
// Per group of L centre atoms (spec: U -> Z -> B -> dB/dr):
//  * the group's neighbour images form one stream (atom by atom, in list order), processed L at
//    a time, one SIMD lane per image, to build U_j and its three Cartesian derivatives by the
//    Wigner recursion (full blocks, left half + symmetry). U_tot of each (atom, element) is
//    accumulated lane-wise and reduced in a fixed order relative to the atom's first image, and
//    the weighted derivatives dŨ (compact half entries, half-sum weights folded in) are stored
//    as rows 3n+a of D, so nothing depends on how atoms are grouped (block sizes, threads);
//  * atoms are processed L at a time, one SIMD lane per atom, for Z and B;
//  * dB_i/dr_in of one atom, for the neighbours of one element nu: for each block jj, the dot
//    products P[u][row] = <dŨ_jj(row), Z_u> with every distinct Z vector u the derivative tasks
//    read (a register-tiled product, SIMD over rows), then each output column as a short sum of
//    coef * P[u] (Tables::DbPlan), transposed into rows [3n+a][column].
// Configuration level, one block of centre atoms at a time (snap::Job): with one thread the force
// rows are accumulated as each atom's derivatives are made (centre atoms in atom order); with
// more, the block's per-pair derivatives g = ∂B_i/∂r_in are kept and scattered into the force
// rows per target atom in the same fixed order, so results are bitwise identical for any thread
// count and any block size; virial and energy rows are summed in atom order.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <memory>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "job.hpp"
#include "neighbors.hpp"
#include "snap.hpp"

#ifndef SNAP_ISA_NS
#define SNAP_ISA_NS generic
#endif

namespace snap {
namespace SNAP_ISA_NS {

constexpr int L = 8;  // SIMD lanes (neighbours or atoms); dB rows per vector
// dB product tile: up to UB Z vectors x RV vectors of L rows, in registers.
#if defined(__AVX512F__)
constexpr int UB = 12, RV = 2;
#elif defined(__AVX2__)
constexpr int UB = 3, RV = 2;
#else
constexpr int UB = 2, RV = 1;
#endif
constexpr int RVL = RV * L;  // rows per dB chunk

namespace {

// Allocator giving 64-byte (cache-line) aligned storage, so that SIMD rows of L doubles at
// multiples of L never straddle two lines.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) noexcept {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const Aligned64<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const noexcept { return false; }
};
template <class T>
using vec = std::vector<T, Aligned64<T>>;

// out[3l + a] = v_a[l] for l < L: three lane vectors interleaved as rows 3n+a.
inline void interleave3(const double* x, const double* y, const double* z, double* out) {
#if defined(__AVX512F__)
  alignas(64) static const int64_t k[6][8] = {
      {0, 8, 0, 1, 9, 0, 2, 10},  {0, 1, 8, 3, 4, 9, 6, 7},       // x0 y0 z0 x1 y1 z1 x2 y2
      {0, 3, 11, 0, 4, 12, 0, 5}, {10, 1, 2, 11, 4, 5, 12, 7},    // z2 x3 y3 z3 x4 y4 z4 x5
      {13, 0, 6, 14, 0, 7, 15, 0}, {0, 13, 2, 3, 14, 5, 6, 15}};  // y5 z5 x6 y6 z6 x7 y7 z7
  const __m512d X = _mm512_loadu_pd(x), Y = _mm512_loadu_pd(y), Z = _mm512_loadu_pd(z);
  for (int o = 0; o < 3; ++o) {
    const __m512d t = _mm512_permutex2var_pd(X, _mm512_load_si512(k[2 * o]), Y);
    _mm512_storeu_pd(out + 8 * o, _mm512_permutex2var_pd(t, _mm512_load_si512(k[2 * o + 1]), Z));
  }
#else
  for (int l = 0; l < L; ++l) {
    out[3 * l] = x[l];
    out[3 * l + 1] = y[l];
    out[3 * l + 2] = z[l];
  }
#endif
}

#if defined(__AVX512F__)
// r[q] <- column q of the 8 x 8 matrix whose rows are r[0..7] (in registers).
inline void transpose8_zmm(__m512d* r) {
  alignas(64) static const int64_t k[4][8] = {{0, 1, 8, 9, 4, 5, 12, 13},
                                              {2, 3, 10, 11, 6, 7, 14, 15},
                                              {0, 1, 2, 3, 8, 9, 10, 11},
                                              {4, 5, 6, 7, 12, 13, 14, 15}};
  __m512d t[8];
  for (int c = 0; c < 8; c += 2) {
    t[c] = _mm512_unpacklo_pd(r[c], r[c + 1]);      // r_c[0] r_c+1[0] r_c[2] ...
    t[c + 1] = _mm512_unpackhi_pd(r[c], r[c + 1]);  // r_c[1] r_c+1[1] r_c[3] ...
  }
  const __m512i lo = _mm512_load_si512(k[0]), hi = _mm512_load_si512(k[1]);
  __m512d u[8];
  u[0] = _mm512_permutex2var_pd(t[0], lo, t[2]);  // rows 0, 4 of columns 0-3
  u[1] = _mm512_permutex2var_pd(t[1], lo, t[3]);  // rows 1, 5
  u[2] = _mm512_permutex2var_pd(t[0], hi, t[2]);  // rows 2, 6
  u[3] = _mm512_permutex2var_pd(t[1], hi, t[3]);  // rows 3, 7
  u[4] = _mm512_permutex2var_pd(t[4], lo, t[6]);  // the same for columns 4-7
  u[5] = _mm512_permutex2var_pd(t[5], lo, t[7]);
  u[6] = _mm512_permutex2var_pd(t[4], hi, t[6]);
  u[7] = _mm512_permutex2var_pd(t[5], hi, t[7]);
  const __m512i first = _mm512_load_si512(k[2]), second = _mm512_load_si512(k[3]);
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_permutex2var_pd(u[q], first, u[q + 4]);
    r[q + 4] = _mm512_permutex2var_pd(u[q], second, u[q + 4]);
  }
}
#endif

// dst[r * ldd + c] = src[c * lds + r] for r, c < 8.
inline void transpose8(const double* src, int64_t lds, double* dst, int64_t ldd) {
#if defined(__AVX512F__)
  __m512d r[8];
  for (int c = 0; c < 8; ++c) r[c] = _mm512_loadu_pd(src + c * lds);
  transpose8_zmm(r);
  for (int q = 0; q < 8; ++q) _mm512_storeu_pd(dst + q * ldd, r[q]);
#else
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) dst[r * ldd + c] = src[c * lds + r];
#endif
}

#pragma GCC diagnostic ignored "-Wpsabi"  // v8 is only passed between inline functions
// L doubles as one value (GCC/Clang vector extension: one zmm, two ymm or four xmm), so that
// accumulators live in registers; loads and stores need no alignment.
typedef double v8 __attribute__((vector_size(8 * L)));
typedef double v8u __attribute__((vector_size(8 * L), aligned(8), may_alias));
inline v8 ld8(const double* p) { return *reinterpret_cast<const v8u*>(p); }
inline void st8(double* p, v8 x) { *reinterpret_cast<v8u*>(p) = x; }
inline v8 splat(double x) { return v8{x, x, x, x, x, x, x, x}; }
static_assert(L == 8, "splat() spells out L lanes");

// interleave3 of three values: out[3l + a] = v_a[l].
inline void interleave3v(v8 x, v8 y, v8 z, double* out) {
#if defined(__AVX512F__)
  alignas(64) static const int64_t k[6][8] = {
      {0, 8, 0, 1, 9, 0, 2, 10},  {0, 1, 8, 3, 4, 9, 6, 7},
      {0, 3, 11, 0, 4, 12, 0, 5}, {10, 1, 2, 11, 4, 5, 12, 7},
      {13, 0, 6, 14, 0, 7, 15, 0}, {0, 13, 2, 3, 14, 5, 6, 15}};
  const __m512d X = (__m512d)x, Y = (__m512d)y, Z = (__m512d)z;
  for (int o = 0; o < 3; ++o) {
    const __m512d t = _mm512_permutex2var_pd(X, _mm512_load_si512(k[2 * o]), Y);
    _mm512_storeu_pd(out + 8 * o, _mm512_permutex2var_pd(t, _mm512_load_si512(k[2 * o + 1]), Z));
  }
#else
  alignas(64) double v[3][L];
  st8(v[0], x);
  st8(v[1], y);
  st8(v[2], z);
  interleave3(v[0], v[1], v[2], out);
#endif
}

struct Geometry {  // per-lane neighbour geometry
  alignas(64) double ar[L], ai[L], br[L], bi[L];
  alignas(64) double dar[3][L], dai[3][L], dbr[3][L], dbi[3][L];
  alignas(64) double sfac[L], dsfac[L], w[L], rhat[3][L];
};

// Angle map, Cayley–Klein parameters, switching function and their radial derivatives.
void neighbour_geometry(const Params& p, double x, double y, double z, double rcut, double wn,
                        double sin_, double din, Geometry& g, int l) {
  const double rsq = x * x + y * y + z * z;
  const double r = std::sqrt(rsq);
  const double rscale0 = p.rfac0 * M_PI / (rcut - p.rmin0);
  const double theta0 = (r - p.rmin0) * rscale0;
  const double z0 = r / std::tan(theta0);
  const double dz0dr = z0 / r - (r * rscale0) * (rsq + z0 * z0) / rsq;
  const double r0inv = 1.0 / std::sqrt(rsq + z0 * z0);
  const double dr0invdr = -r0inv * r0inv * r0inv * (r + z0 * dz0dr);
  g.ar[l] = z0 * r0inv;
  g.ai[l] = -z * r0inv;
  g.br[l] = y * r0inv;
  g.bi[l] = -x * r0inv;
  const double u[3] = {x / r, y / r, z / r};
  for (int a = 0; a < 3; ++a) {
    const double dr0inv = dr0invdr * u[a], dz0 = dz0dr * u[a];
    g.dar[a][l] = dz0 * r0inv + z0 * dr0inv;
    g.dai[a][l] = -z * dr0inv;
    g.dbr[a][l] = y * dr0inv;
    g.dbi[a][l] = -x * dr0inv;
    g.rhat[a][l] = u[a];
  }
  g.dai[2][l] -= r0inv;
  g.dbr[1][l] += r0inv;
  g.dbi[0][l] -= r0inv;

  double fc = 1.0, dfc = 0.0;
  if (p.switchflag && r > p.rmin0) {
    const double rcutfac = M_PI / (rcut - p.rmin0);
    const double arg = rcutfac * (r - p.rmin0);
    fc = 0.5 * (std::cos(arg) + 1.0);
    dfc = -0.5 * std::sin(arg) * rcutfac;
  }
  if (p.switchinnerflag) {
    if (r <= sin_ - din) {
      fc = 0.0;
      dfc = 0.0;
    } else if (r < sin_ + din) {
      const double s = M_PI / (2.0 * din);
      const double phi = M_PI / 2.0 + (r - sin_) * s;
      const double fin = 0.5 * (1.0 - std::cos(phi)), dfin = 0.5 * s * std::sin(phi);
      dfc = dfc * fin + fc * dfin;
      fc = fc * fin;
    }
  }
  g.sfac[l] = fc;
  g.dsfac[l] = dfc;
  g.w[l] = wn;
}

// Wigner U_j and (DERIV) dU_j/dr in three directions for L neighbours, full blocks,
// lane-interleaved.
template <bool DERIV>
__attribute__((noinline)) void wigner_u(const Tables& t, const Geometry& g, double* ur, double* ui,
                                        double* dur, double* dui) {
  const int J = t.J, NU = t.ufull;
  const size_t DS = size_t(NU) * L;  // stride of one direction in dur/dui
  const double* rootpq = t.rootpq.data();
  const int rp = J + 2;
  const v8 ar = ld8(g.ar), ai = ld8(g.ai), br = ld8(g.br), bi = ld8(g.bi);
  v8 dar[3], dai[3], dbr[3], dbi[3];
  for (int a = 0; a < 3; ++a) {
    dar[a] = ld8(g.dar[a]);
    dai[a] = ld8(g.dai[a]);
    dbr[a] = ld8(g.dbr[a]);
    dbi[a] = ld8(g.dbi[a]);
  }
  st8(ur, splat(1.0));
  st8(ui, v8{});
  if (DERIV)
  for (int a = 0; a < 3; ++a) {
    st8(dur + a * DS, v8{});
    st8(dui + a * DS, v8{});
  }
  for (int j = 1; j <= J; ++j) {
    const int base = t.ufull_off[j], prev = t.ufull_off[j - 1];
    for (int mb = 0; 2 * mb <= j; ++mb) {
      for (int ma = 0; ma <= j; ++ma) {
        const int idx = (base + (j + 1) * mb + ma) * L;
        // First term (ma < j) assigned, second (ma > 0) subtracted term by term, so that every
        // product is one fused multiply-add.
        v8 r{}, im{}, dr[3] = {}, di[3] = {};
        if (ma < j) {
          const v8 rq = splat(rootpq[(j - ma) * rp + (j - mb)]);
          const int pi = (prev + j * mb + ma) * L;
          const v8 upr = ld8(ur + pi) * rq, upi = ld8(ui + pi) * rq;
          r = ar * upr + ai * upi;
          im = ar * upi - ai * upr;
          if (DERIV)
            for (int a = 0; a < 3; ++a) {
              const v8 dpr = ld8(dur + a * DS + pi) * rq, dpi = ld8(dui + a * DS + pi) * rq;
              dr[a] = dar[a] * upr + dai[a] * upi + ar * dpr + ai * dpi;
              di[a] = dar[a] * upi - dai[a] * upr + ar * dpi - ai * dpr;
            }
        }
        if (ma > 0) {
          const v8 rq = splat(rootpq[ma * rp + (j - mb)]);
          const int pi = (prev + j * mb + ma - 1) * L;
          const v8 upr = ld8(ur + pi) * rq, upi = ld8(ui + pi) * rq;
          r = r - br * upr - bi * upi;
          im = im - br * upi + bi * upr;
          if (DERIV)
            for (int a = 0; a < 3; ++a) {
              const v8 dpr = ld8(dur + a * DS + pi) * rq, dpi = ld8(dui + a * DS + pi) * rq;
              dr[a] = dr[a] - dbr[a] * upr - dbi[a] * upi - br * dpr - bi * dpi;
              di[a] = di[a] - dbr[a] * upi + dbi[a] * upr - br * dpi + bi * dpr;
            }
        }
        st8(ur + idx, r);
        st8(ui + idx, im);
        if (DERIV)
        for (int a = 0; a < 3; ++a) {
          st8(dur + a * DS + idx, dr[a]);
          st8(dui + a * DS + idx, di[a]);
        }
      }
    }
    // The next level needs row floor((j+1)/2) of this one; for odd j that row lies beyond the
    // computed half and follows from U_j[j-ma, j-mb] = (-1)^(ma+mb) conj(U_j[ma, mb]).
    // (Rows of the top level beyond the half are never used: U_tot and dŨ use mb <= j/2.)
    if (j % 2 == 1 && j < J) {
      const int mb = (j - 1) / 2;  // source row; destination row j - mb = (j+1)/2
      for (int ma = 0; ma <= j; ++ma) {
        const int src = (base + (j + 1) * mb + ma) * L;
        const int dst = (base + (j + 1) * (j - mb) + (j - ma)) * L;
        const v8 sg = splat(((ma + mb) % 2) ? -1.0 : 1.0);
        st8(ur + dst, sg * ld8(ur + src));
        st8(ui + dst, -sg * ld8(ui + src));
        if (DERIV)
        for (int a = 0; a < 3; ++a) {
          st8(dur + a * DS + dst, sg * ld8(dur + a * DS + src));
          st8(dui + a * DS + dst, -sg * ld8(dui + a * DS + src));
        }
      }
    }
  }
}

struct Scratch {
  std::unique_ptr<double[]> buf[3];
  size_t cap[3] = {0, 0, 0};
  double* get(int k, size_t n) {
    if (cap[k] < n) {
      buf[k].reset();
      buf[k].reset(new double[n]);
      cap[k] = n;
    }
    return buf[k].get();
  }
};

struct Workspace {
  vec<double> ur, ui, dur, dui;  // one lane group of images, full blocks: [ufull][L]
  vec<double> uacc;              // lane-wise U_tot sums of the open (atom, element) run: [2][NH][L]
  vec<double> utr, uti;          // per atom of the group: [ne][ufull]
  vec<double> ubr, ubi;          // block layout for Z: [ne][ufull][L]
  vec<double> z;                 // packed Z layout (Tables::zu_*): [zu_size][L]
  vec<double> zpa;               // the same per atom of the group: [L][zpad]
  int zpad = 0;
  vec<double> blin;              // [L][ncoeff]
  vec<Geometry> geo_all;         // the group's lane geometries (first pass, reused by the second)
  vec<double> D;                 // weighted dŨ: [2H][ld], rows 3n+a of the stream from row Dbase
  int64_t ld = 0, Dbase = 0;
  vec<double> P;                 // [u][RVL]: dot products of one row chunk
  vec<double> G;                 // [ncoeff][RVL]: columns of one row chunk
  vec<double> gbuf;              // one atom's rows [3n+a][ncoeff] (quadraticflag, not kept)
  vec<double> gsum;              // [3][ncp]: Σ_n ∂B_i/∂r_in (ncp = ncoeff rounded up to L)
  vec<double> T;                 // [RVL][ncp]: one chunk's rows
  vec<double> wvir;              // [6][ncp]: the atom's virial rows
  vec<double> gself;             // [images of i itself][3][ncp]
  vec<int> selfslot;             // per image of the atom: its gself slot, or -1
  vec<int> hq;                   // compact index -> full index of the U rows mb <= j/2
  int shape[4] = {-1, -1, -1, -1};  // (ufull, nelem, zsize, ncoeff) it was sized for
  // Sizes the workspace for `t` unless it already is (its content is scratch: every element is
  // written before it is read).
  void prepare(const Tables& t) {
    const int want[4] = {t.ufull, t.nelem, t.zsize, t.ncoeff};
    if (std::equal(want, want + 4, shape) && hq.size() > 0) return;
    std::copy(want, want + 4, shape);
    init(t);
  }
  // Returns large per-group buffers (atoms with very many neighbours) to the system.
  void trim() {
    if (D.capacity() > (size_t(1) << 22)) vec<double>().swap(D);
    if (gbuf.capacity() > (size_t(1) << 22)) vec<double>().swap(gbuf);
  }
  void init(const Tables& t) {
    const int ne = t.nelem;
    hq.clear();
    for (int j = 0; j <= t.J; ++j)
      for (int q = 0; q < (j + 1) * (j / 2 + 1); ++q) hq.push_back(t.ufull_off[j] + q);
    const int nh = static_cast<int>(hq.size());
    ur.assign(t.ufull * L, 0.0);
    ui.assign(t.ufull * L, 0.0);
    dur.assign(3 * t.ufull * L, 0.0);
    dui.assign(3 * t.ufull * L, 0.0);
    uacc.assign(size_t(2) * ((nh + L - 1) / L * L) * L, 0.0);
    utr.assign(L * ne * t.ufull, 0.0);
    uti.assign(L * ne * t.ufull, 0.0);
    ubr.assign(ne * t.ufull * L, 0.0);
    ubi.assign(ne * t.ufull * L, 0.0);
    zpad = (t.zu_size + L - 1) / L * L;
    z.assign(size_t(zpad) * L, 0.0);
    zpa.assign(size_t(L) * zpad, 0.0);
    blin.assign(L * t.ncoeff, 0.0);
    P.assign(size_t(t.zu_blk.back() + 1) * RVL, 0.0);
    const size_t ncp = (t.ncoeff + L - 1) / L * L;
    G.assign(ncp * RVL, 0.0);
    gsum.assign(3 * ncp, 0.0);
    wvir.assign(6 * ncp, 0.0);
    T.assign(RVL * ncp, 0.0);
  }
};

struct Shared {  // per-block arrays written by the atom stage (centres i0.., pairs p0..)
  const Tables* t;
  const Config* c;
  const NeighborList* nl;  // holds the block's lists: owner[q], rij[3q]
  const int64_t* start;    // pairs of centre i: start[i - i0] <= q < start[i + 1 - i0]
  double* g;      // [block pairs][3][ncoeff], when keep_g
  double* blin;   // [block atoms][ncoeff]
  double* wat;    // [block atoms][6][ncoeff]
  int i0;         // first centre atom of the block
  int64_t p0;     // its first pair
  bool keep_g;    // store per-pair derivatives in g (pairs output, or forces from threads)
  bool direct;    // accumulate force rows into F as each atom is done (one thread)
  RowsView F;
};

// Adds the lane-wise U_tot sums of one (atom, element) run to the atom's U_tot, lanes in the
// order of the run's images (the run began at stream position `first`).
void flush_run(Workspace& ws, double* utr, double* uti, int64_t first) {
  const int nh = static_cast<int>(ws.hq.size());
  const int np = (nh + L - 1) / L * L;
  const int rot = static_cast<int>(first % L);
  for (int part = 0; part < 2; ++part) {
    const double* acc = &ws.uacc[size_t(part) * np * L];
    double* out = part ? uti : utr;
    for (int q0 = 0; q0 < nh; q0 += L) {
      alignas(64) double tr[L][L];  // tr[lane][q - q0]
      transpose8(acc + size_t(q0) * L, L, &tr[0][0], L);
      v8 x[L];
      for (int m = 0; m < L; ++m) x[m] = ld8(tr[(m + rot) % L]);
      alignas(64) double sum[L];
      st8(sum, ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])));
      const int n = std::min(L, nh - q0);
      for (int k = 0; k < n; ++k) out[ws.hq[q0 + k]] += sum[k];
    }
  }
}

// Lane geometries of the group's neighbour stream (images of atoms [a0, a0 + cnt), atom by atom,
// in list order), L at a time: lane group k covers stream positions [kL, kL + L).
void group_geometry(const Shared& sh, Workspace& ws, int a0, int cnt, int64_t ng) {
  const Tables& t = *sh.t;
  const Params& p = t.params;
  const Config& c = *sh.c;
  const int64_t qa = sh.start[a0 - sh.i0];
  const size_t ngrp = static_cast<size_t>((ng + L - 1) / L);
  if (ws.geo_all.size() < ngrp) ws.geo_all.resize(ngrp);
  int slot = 0;
  for (size_t k = 0; k < ngrp; ++k) {
    Geometry& g = ws.geo_all[k];
    for (int l = 0; l < L; ++l) {
      const int64_t pos = int64_t(k) * L + l;
      if (pos < ng) {
        const int64_t q = qa + pos;
        while (q >= sh.start[a0 + slot + 1 - sh.i0]) ++slot;
        const int ti = c.types[a0 + slot];
        const int tm = c.types[sh.nl->owner[q]];
        const double* r = &sh.nl->rij[3 * q];
        const double rcut = (p.radelem[ti] + p.radelem[tm]) * p.rcutfac;
        double si = 0.0, di = 1.0;
        if (p.switchinnerflag) {
          si = 0.5 * (p.sinner[ti] + p.sinner[tm]);
          di = 0.5 * (p.dinner[ti] + p.dinner[tm]);
        }
        neighbour_geometry(p, r[0], r[1], r[2], rcut, p.wj[tm], si, di, g, l);
      } else {  // padding lane: a harmless geometry with zero weight
        neighbour_geometry(p, 0.0, 0.0, 1.0, 2.0 + 2.0 * p.rmin0, 0.0, 0.0, 1.0, g, l);
      }
    }
  }
  (void)cnt;
}

// First neighbour pass over the group: U_tot of each atom (ws.utr/uti slot), accumulated
// lane-wise per (atom, element) run and reduced in a fixed order relative to the run's first image.
__attribute__((noinline)) void group_utot(const Shared& sh, Workspace& ws, int a0, int cnt,
                                          int64_t ng) {
  const Tables& t = *sh.t;
  const Params& p = t.params;
  const Config& c = *sh.c;
  const int ne = t.nelem, NU = t.ufull;
  const int64_t qa = sh.start[a0 - sh.i0];
  const int nh = static_cast<int>(ws.hq.size());
  const int np = (nh + L - 1) / L * L;

  for (int s = 0; s < cnt; ++s) {
    const int ei = p.chemflag ? c.types[a0 + s] : 0;
    double* utr = &ws.utr[size_t(s) * ne * NU];
    double* uti = &ws.uti[size_t(s) * ne * NU];
    std::fill(utr, utr + ne * NU, 0.0);
    std::fill(uti, uti + ne * NU, 0.0);
    for (int e = 0; e < ne; ++e) {
      if (!(e == ei || p.wselfallflag || !p.chemflag)) continue;
      for (int j = 0; j <= t.J; ++j)
        for (int ma = 0; ma <= j; ++ma) utr[e * NU + t.ufull_off[j] + (j + 1) * ma + ma] = 1.0;
    }
  }

  int open_key = -1;       // (slot * ne + element) of the open U_tot run
  int64_t open_first = 0;  // its first stream position
  int slot = 0;            // centre atom (slot) of the next image
  for (int64_t p0 = 0; p0 < ng; p0 += L) {
    const int cnt_l = static_cast<int>(std::min<int64_t>(L, ng - p0));
    const Geometry& g = ws.geo_all[p0 / L];
    int key[L];
    for (int l = 0; l < cnt_l; ++l) {
      const int64_t q = qa + p0 + l;
      while (q >= sh.start[a0 + slot + 1 - sh.i0]) ++slot;
      key[l] = slot * ne + (p.chemflag ? c.types[sh.nl->owner[q]] : 0);
    }
    wigner_u<false>(t, g, ws.ur.data(), ws.ui.data(), ws.dur.data(), ws.dui.data());
    alignas(64) double wsl[L];
    for (int l = 0; l < L; ++l) wsl[l] = l < cnt_l ? g.w[l] * g.sfac[l] : 0.0;
    for (int l = 0; l < cnt_l;) {
      int l2 = l + 1;
      while (l2 < cnt_l && key[l2] == key[l]) ++l2;
      alignas(64) double wl[L];
      for (int k = 0; k < L; ++k) wl[k] = (k >= l && k < l2) ? wsl[k] : 0.0;
      const v8 w = ld8(wl);
      v8* ar = reinterpret_cast<v8*>(ws.uacc.data());
      v8* ai = ar + np;
      if (key[l] != open_key) {  // a new run: reduce the open one, start this one
        if (open_key >= 0) {
          const int s = open_key / ne, e = open_key % ne;
          flush_run(ws, &ws.utr[(size_t(s) * ne + e) * NU], &ws.uti[(size_t(s) * ne + e) * NU],
                    open_first);
        }
        open_key = key[l];
        open_first = p0 + l;
        for (int h = 0; h < nh; ++h) {
          ar[h] = w * ld8(&ws.ur[size_t(ws.hq[h]) * L]);
          ai[h] = w * ld8(&ws.ui[size_t(ws.hq[h]) * L]);
        }
      } else {
        for (int h = 0; h < nh; ++h) {
          ar[h] += w * ld8(&ws.ur[size_t(ws.hq[h]) * L]);
          ai[h] += w * ld8(&ws.ui[size_t(ws.hq[h]) * L]);
        }
      }
      l = l2;
    }
  }
  if (open_key >= 0) {
    const int s = open_key / ne, e = open_key % ne;
    flush_run(ws, &ws.utr[(size_t(s) * ne + e) * NU], &ws.uti[(size_t(s) * ne + e) * NU],
              open_first);
  }

  // Fill the rows mb > j/2 of U_tot by symmetry.
  for (int s = 0; s < cnt; ++s)
    for (int e = 0; e < ne; ++e) {
      double* utr = &ws.utr[(size_t(s) * ne + e) * NU];
      double* uti = &ws.uti[(size_t(s) * ne + e) * NU];
      for (int j = 0; j <= t.J; ++j) {
        const int o = t.ufull_off[j];
        for (int mb = 0; 2 * mb < j; ++mb)
          for (int ma = 0; ma <= j; ++ma) {
            const double sg = ((ma + mb) % 2) ? -1.0 : 1.0;
            utr[o + (j + 1) * (j - mb) + (j - ma)] = sg * utr[o + (j + 1) * mb + ma];
            uti[o + (j + 1) * (j - mb) + (j - ma)] = -sg * uti[o + (j + 1) * mb + ma];
          }
      }
    }
}

// Second pass, one lane group (stream positions [p0, p0 + L)): U and dU, weighted derivative rows
// 3n+a into D (stream row r at D[e * ld + r - Dbase]).
__attribute__((noinline)) void lane_group_rows(const Tables& t, Workspace& ws, int64_t p0) {
  const int NU = t.ufull;
  const Geometry& g = ws.geo_all[p0 / L];
  wigner_u<true>(t, g, ws.ur.data(), ws.ui.data(), ws.dur.data(), ws.dui.data());
  const int64_t ld = ws.ld;
  v8 s1[3];
  const v8 s2 = ld8(g.w) * ld8(g.sfac);
  for (int a = 0; a < 3; ++a) s1[a] = ld8(g.w) * ld8(g.dsfac) * ld8(g.rhat[a]);
  for (int j = 0; j <= t.J; ++j) {
    const int hn = t.half_n[j], ho = t.half_off[j];
    double* dre = &ws.D[size_t(2) * ho * ld + 3 * p0 - ws.Dbase];
    double* dim = dre + size_t(hn) * ld;
    for (int e = 0; e < hn; ++e) {
      const int f = t.ufull_off[j] + t.half_full[ho + e];
      const v8 wt = splat(t.half_wt[ho + e]);
      const v8 u_r = ld8(&ws.ur[f * L]), u_i = ld8(&ws.ui[f * L]);
      v8 vr[3], vi[3];
      for (int a = 0; a < 3; ++a) {
        const v8 a1 = wt * s1[a], a2 = wt * s2;
        vr[a] = a1 * u_r + a2 * ld8(&ws.dur[(a * NU + f) * L]);
        vi[a] = a1 * u_i + a2 * ld8(&ws.dui[(a * NU + f) * L]);
      }
      interleave3v(vr[0], vr[1], vr[2], dre + size_t(e) * ld);
      interleave3v(vi[0], vi[1], vi[2], dim + size_t(e) * ld);
    }
  }
}

// One Z entry (Tables::ZEntry): Σ_r cb[r] Σ_{k < na} ca[k] U1[pa + astep r + k] U2[pb − bstep r − k],
// times norm, to outr/outi; na known at compile time so a row is straight-line code; two partial
// sums (even and odd k) per component keep the dependency chains short.
template <int NA>
void z_entry(const double* a1r, const double* a1i, const double* b2r, const double* b2i,
             const double* ca, const double* cb, int cstep, int nb, int astep, int bstep,
             v8 norm, double* outr, double* outi) {
  v8 c[NA];
#pragma GCC unroll 32
  for (int k = 0; k < NA; ++k) c[k] = splat(ca[k * cstep]);
  v8 zr{}, zi{};
  for (int r = 0; r < nb; ++r) {
    v8 sr[2] = {}, si[2] = {};
#pragma GCC unroll 32
    for (int k = 0; k < NA; ++k) {
      const v8 ar = ld8(a1r + k * L), ai = ld8(a1i + k * L);
      const v8 br = ld8(b2r - k * L), bi = ld8(b2i - k * L);
      sr[k & 1] += c[k] * (ar * br - ai * bi);
      si[k & 1] += c[k] * (ar * bi + ai * br);
    }
    const v8 cbv = splat(cb[r * cstep]);
    zr += cbv * (sr[0] + sr[1]);
    zi += cbv * (si[0] + si[1]);
    a1r += astep;
    a1i += astep;
    b2r -= bstep;
    b2i -= bstep;
  }
  st8(outr, norm * zr);
  st8(outi, norm * zi);
}

// The same for any na (large twojmax).
void z_entry_any(int na, const double* a1r, const double* a1i, const double* b2r,
                 const double* b2i, const double* ca, const double* cb, int cstep, int nb,
                 int astep, int bstep, v8 norm, double* outr, double* outi) {
  v8 zr{}, zi{};
  for (int r = 0; r < nb; ++r) {
    v8 sr{}, si{};
    for (int k = 0; k < na; ++k) {
      const v8 ar = ld8(a1r + k * L), ai = ld8(a1i + k * L);
      const v8 br = ld8(b2r - k * L), bi = ld8(b2i - k * L);
      const v8 c = splat(ca[k * cstep]);
      sr += c * (ar * br - ai * bi);
      si += c * (ar * bi + ai * br);
    }
    const v8 cbv = splat(cb[r * cstep]);
    zr += cbv * sr;
    zi += cbv * si;
    a1r += astep;
    a1i += astep;
    b2r -= bstep;
    b2i -= bstep;
  }
  st8(outr, norm * zr);
  st8(outi, norm * zi);
}

using ZEntryFn = void (*)(const double*, const double*, const double*, const double*,
                          const double*, const double*, int, int, int, int, v8, double*, double*);
constexpr int ZNA = 10;  // z_entry<1..ZNA>, else z_entry_any
template <int... N>
constexpr std::array<ZEntryFn, sizeof...(N)> z_entries(std::integer_sequence<int, N...>) {
  return {&z_entry<N + 1>...};
}
constexpr auto kZEntry = z_entries(std::make_integer_sequence<int, ZNA>());

// Z for all stored (element pair, triple) vectors, L atoms at once (lanes = atoms), into the
// packed layout.
__attribute__((noinline)) void compute_z(const Tables& t, Workspace& ws) {
  const int ne = t.nelem, NU = t.ufull;
  const bool bnorm = t.params.bnormflag;
  const int nz = static_cast<int>(t.ztrip.size());
  const double* cg = t.cg.data();
  for (int e1 = 0; e1 < ne; ++e1)
    for (int e2 = 0; e2 < ne; ++e2)
      for (int tz = 0; tz < nz; ++tz) {
        if (!t.zu_own[(e1 * ne + e2) * nz + tz]) continue;
        const auto [j1, j2, j] = t.ztrip[tz];
        // Entry e of this vector goes to packed row zbase + e * zstride.
        const size_t zstride = size_t(t.zu_blk[j + 1] - t.zu_blk[j]) * L;
        double* zbase = &ws.z[size_t(t.zpos(e1 * ne + e2, tz, 0)) * L];
        const double* u1r = &ws.ubr[(e1 * NU + t.ufull_off[j1]) * L];
        const double* u1i = &ws.ubi[(e1 * NU + t.ufull_off[j1]) * L];
        const double* u2r = &ws.ubr[(e2 * NU + t.ufull_off[j2]) * L];
        const double* u2i = &ws.ubi[(e2 * NU + t.ufull_off[j2]) * L];
        const int hn = t.half_n[j], astep = (j1 + 1) * L, bstep = (j2 + 1) * L;
        const v8 norm = splat(bnorm ? 1.0 / (j + 1) : 1.0);
        const Tables::ZEntry* ent = &t.zent[t.zent_off[tz]];
        for (int e = 0; e < hn; ++e) {
          const Tables::ZEntry& z = ent[e];
          const int pa = z.pa * L, pb = z.pb * L;
          double* outr = zbase + e * zstride;
          double* outi = zbase + (hn + e) * zstride;
          if (z.na <= ZNA)
            kZEntry[z.na - 1](u1r + pa, u1i + pa, u2r + pb, u2i + pb, cg + z.ca, cg + z.cb, j2,
                              z.nb, astep, bstep, norm, outr, outi);
          else
            z_entry_any(z.na, u1r + pa, u1i + pa, u2r + pb, u2i + pb, cg + z.ca, cg + z.cb, j2,
                        z.nb, astep, bstep, norm, outr, outi);
        }
      }
}

// B (linear, bzero-shifted) for L atoms.
__attribute__((noinline)) void compute_b(const Tables& t, Workspace& ws, const int* elem_of_lane, int cnt) {
  const Params& p = t.params;
  const int ne = t.nelem, NU = t.ufull, K = t.K;
  for (int k1 = 0; k1 < ne; ++k1)
    for (int k2 = 0; k2 < ne; ++k2)
      for (int mu = 0; mu < ne; ++mu)
        for (int k = 0; k < K; ++k) {
          const auto [j1, j2, j] = t.btrip[k];
          (void)j1;
          (void)j2;
          const int tz = t.bz[k], hn = t.half_n[j], ho = t.half_off[j];
          const int zstride = (t.zu_blk[j + 1] - t.zu_blk[j]) * L;
          const double* zr = &ws.z[size_t(t.zpos(k1 * ne + k2, tz, 0)) * L];
          const double* zi = zr + size_t(hn) * zstride;
          const double* ur = &ws.ubr[(mu * NU + t.ufull_off[j]) * L];
          const double* ui = &ws.ubi[(mu * NU + t.ufull_off[j]) * L];
          v8 sv{};
          for (int e = 0; e < hn; ++e) {
            const int f = t.half_full[ho + e];
            sv += splat(t.half_wt[ho + e]) *
                  (ld8(ur + f * L) * ld8(zr + e * zstride) + ld8(ui + f * L) * ld8(zi + e * zstride));
          }
          alignas(64) double s[L];
          st8(s, sv);
          const int col = ((k1 * ne + k2) * ne + mu) * K + k;
          for (int l = 0; l < cnt; ++l) {
            double v = s[l];
            if (p.bzeroflag) {
              const int el = elem_of_lane[l];
              if (!p.chemflag || p.wselfallflag || (k1 == el && k2 == el && mu == el))
                v -= t.bzero[k];
            }
            ws.blin[size_t(l) * t.ncoeff + col] = v;
          }
        }
}

// out[quad index(k,l)] += s * (b_k g_l + b_l g_k) (k < l), s * b_k g_k (k == l).
inline void quad_axpy(int nc, double s, const double* b, const double* g, double* out) {
  size_t o = 0;
  for (int k = 0; k < nc; ++k) {
    const double bk = s * b[k], gk = s * g[k];
    out[o] += bk * g[k];
    double* dst = out + o + 1 - (k + 1);  // dst[l] for l > k
#pragma omp simd
    for (int l = k + 1; l < nc; ++l) dst[l] += bk * g[l] + gk * b[l];
    o += nc - k;
  }
}


// P[u][r] = Σ_e zp[e * ldz + u] d[e * ldd + r] for u < NU, r < NV * L (P rows RVL apart).
template <int NU, int NV>
void db_tile(const double* __restrict zp, int ldz, const double* __restrict d, int64_t ldd, int E,
             double* __restrict P) {
  double acc[NU][NV * L];
  for (int u = 0; u < NU; ++u)
#pragma omp simd
    for (int r = 0; r < NV * L; ++r) acc[u][r] = 0.0;
  for (int e = 0; e < E; ++e) {
    const double* de = d + e * ldd;
    const double* ze = zp + e * ldz;
#pragma GCC unroll 16
    for (int u = 0; u < NU; ++u) {
      const double zu = ze[u];
#pragma omp simd
      for (int r = 0; r < NV * L; ++r) acc[u][r] += zu * de[r];
    }
  }
  for (int u = 0; u < NU; ++u)
#pragma omp simd
    for (int r = 0; r < NV * L; ++r) P[u * RVL + r] = acc[u][r];
}

using TileFn = void (*)(const double*, int, const double*, int64_t, int, double*);

template <int NV, int... U>
constexpr std::array<TileFn, sizeof...(U)> tile_row(std::integer_sequence<int, U...>) {
  return {&db_tile<U + 1, NV>...};
}
template <int... V>
constexpr std::array<std::array<TileFn, UB>, sizeof...(V)> tile_table(
    std::integer_sequence<int, V...>) {
  return {tile_row<V + 1>(std::make_integer_sequence<int, UB>())...};
}
// kTile[nv - 1][nu - 1]
constexpr auto kTile = tile_table(std::make_integer_sequence<int, RV>());

// Where the rows of one atom's dB go (fused_rows): each row (image n, direction a) goes to the
// kept rows (Shared::g), the own-term sums, the virial and, with direct force rows, the rows of the
// atom n is an image of (images of i itself are deferred until after the own term). Not for
// quadraticflag (its force terms need whole rows).
struct RowSink {
  const Tables* t;
  const Shared* sh;
  Workspace* ws;
  int i, ti, nc, ncp;
  int64_t b, s0;       // first pair of atom i; stream position of its first image
  double* kept;        // Shared::g rows of atom i, or null
  double* gsum;        // [3][ncp]
  double* wv;          // [6][ncp]
};

// x[r] <- column r of the 8 x 8 matrix whose rows are x[0..7] (in registers).
inline void transpose8v(v8* x) {
#if defined(__AVX512F__)
  __m512d r[8];
  for (int c = 0; c < 8; ++c) r[c] = (__m512d)x[c];
  transpose8_zmm(r);
  for (int c = 0; c < 8; ++c) x[c] = (v8)r[c];
#else
  alignas(64) double a[8][8], b[8][8];
  for (int c = 0; c < 8; ++c) st8(a[c], x[c]);
  transpose8(&a[0][0], 8, &b[0][0], 8);
  for (int c = 0; c < 8; ++c) x[c] = ld8(b[c]);
#endif
}

// One row chunk of dB (non-quadratic): the columns as short sums of coef * P[u] (DbPlan),
// L columns at a time, transposed in registers into rows that go at once to the own-term sums and
// the virial (register accumulators per column block) and to a small row buffer; then each row
// goes, a whole row at a time, to the kept rows and the force rows (or, for images of i itself,
// to gself until after the own term). The column-major chunk is never stored.
__attribute__((noinline)) void fused_rows(const RowSink& k, const Tables::DbPlan& pl,
                                          const double* P, int64_t gr, int nv, int64_t g0,
                                          int64_t g1) {
  const Shared& sh = *k.sh;
  const int nc = k.nc, ncp = k.ncp;
  const int64_t lo = std::max(gr, g0), hi = std::min(gr + nv * L, g1);  // rows of this atom
  double* T = k.ws->T.data();  // [RVL][ncp]: the chunk's rows
  int dir[RVL];
  const double* rin[RVL];
  for (int r = 0; r < nv * L; ++r) {
    const int64_t row = gr + r;
    dir[r] = -1;
    if (row < lo || row >= hi) continue;
    const int64_t rl = row - 3 * k.s0, n = rl / 3;
    dir[r] = static_cast<int>(rl - 3 * n);
    rin[r] = &sh.nl->rij[3 * (k.b + n)];
  }
  const int* tu = pl.tu.data();
  const double* tc = pl.tc.data();
  const int* ctb = pl.ctb.data();
  const int* cte = pl.cte.data();
  // Columns outside [clo, chi) have no derivative from this element: their sums stay as they are,
  // force rows are not touched there and kept rows get zeros.
  const int clo = pl.clo, chi = pl.chi;
  for (int col = clo / L * L; col < chi; col += L) {
    const int w = std::min(L, nc - col);  // valid columns of this block
    v8 S[3], W[6];
    for (int a = 0; a < 3; ++a) S[a] = ld8(k.gsum + a * ncp + col);
    for (int v = 0; v < 6; ++v) W[v] = ld8(k.wv + v * ncp + col);
    v8 x[RV][L];
    for (int c = 0; c < L; ++c) {
      for (int v = 0; v < RV; ++v) x[v][c] = v8{};
      if (c >= w) continue;
      const int tb = ctb[col + c], te = cte[col + c];
      if (tb == te) continue;
      const v8 c0 = splat(tc[tb]);
      const double* p0 = P + size_t(tu[tb]) * RVL;
      for (int v = 0; v < nv; ++v) x[v][c] = c0 * ld8(p0 + v * L);
      for (int q = tb + 1; q < te; ++q) {
        const v8 cq = splat(tc[q]);
        const double* pq = P + size_t(tu[q]) * RVL;
        for (int v = 0; v < nv; ++v) x[v][c] += cq * ld8(pq + v * L);
      }
    }
    for (int v = 0; v < nv; ++v) {
      transpose8v(x[v]);  // x[v][l]: row v L + l, columns col..col+L
      for (int l = 0; l < L; ++l) {
        const int r = v * L + l, a = dir[r];
        const v8 y = x[v][l];
        st8(T + size_t(r) * ncp + col, y);
        if (a < 0) continue;
        const double* ri = rin[r];
        switch (a) {  // S_a += g_a; W_v −= r_{vp[v]} g_{vq[v]}, Voigt xx yy zz yz xz xy
          case 0:
            S[0] += y;
            W[0] -= splat(ri[0]) * y;
            break;
          case 1:
            S[1] += y;
            W[1] -= splat(ri[1]) * y;
            W[5] -= splat(ri[0]) * y;
            break;
          default:
            S[2] += y;
            W[2] -= splat(ri[2]) * y;
            W[3] -= splat(ri[1]) * y;
            W[4] -= splat(ri[0]) * y;
        }
      }
    }
    for (int a = 0; a < 3; ++a) st8(k.gsum + a * ncp + col, S[a]);
    for (int v = 0; v < 6; ++v) st8(k.wv + v * ncp + col, W[v]);
  }
  const RowsView F = sh.F;
  for (int64_t row = lo; row < hi; ++row) {
    const int64_t rl = row - 3 * k.s0, n = rl / 3;
    const int a = static_cast<int>(rl - 3 * n);
    const double* x = T + (row - gr) * ncp;
    auto whole_row = [&](double* out) {  // x on [clo, chi), zeros elsewhere
      std::fill(out, out + clo, 0.0);
#pragma omp simd
      for (int q = clo; q < chi; ++q) out[q] = x[q];
      std::fill(out + chi, out + nc, 0.0);
    };
    if (k.kept) whole_row(k.kept + rl * nc);
    if (!sh.direct) continue;
    const int m = sh.nl->owner[k.b + n];
    if (m == k.i) {
      whole_row(&k.ws->gself[(size_t(k.ws->selfslot[n]) * 3 + a) * ncp]);
      continue;
    }
    double* Fr = F.data + (3 * int64_t(m) + a) * F.row_stride + k.ti * F.type_stride;
#pragma omp simd
    for (int q = clo; q < chi; ++q) Fr[q] -= x[q];
  }
}

// dB/dr_in of centre atom i (group slot `slot`, first image at stream position s0): the rows
// [3n+a][ncoeff] go to Shared::g when kept, and into the atom's virial rows and (direct) its
// force-row contributions.
__attribute__((noinline)) void compute_db(const Tables& t, Workspace& ws, const Shared& sh, int i,
                                          int slot, int64_t s0) {
  const Params& p = t.params;
  const Config& c = *sh.c;
  const int ne = t.nelem, nc = t.ncoeff, ncp = (nc + L - 1) / L * L;
  const int64_t b = sh.start[i - sh.i0], nn = sh.start[i + 1 - sh.i0] - b;
  const int64_t ld = ws.ld;
  const int ti = c.types[i];
  const bool quad = p.quadraticflag;
  const double* zp = &ws.zpa[size_t(slot) * ws.zpad];  // this atom's packed Z
  double* P = ws.P.data();
  double* G = ws.G.data();
  // With quadraticflag the rows are transposed into `gout` and used after the loop.
  double* gout = nullptr;
  if (sh.keep_g) {
    gout = sh.g + size_t(b - sh.p0) * 3 * nc;
  } else if (quad) {
    if (ws.gbuf.size() < size_t(3) * nn * nc) ws.gbuf.resize(size_t(3) * nn * nc);
    gout = ws.gbuf.data();
  }
  double* gsum = ws.gsum.data();
  std::fill(gsum, gsum + 3 * ncp, 0.0);
  std::fill(ws.wvir.begin(), ws.wvir.end(), 0.0);
  int nself = 0;  // images of i itself: their force terms wait for the own term
  if (sh.direct && !quad) {
    if (ws.selfslot.size() < size_t(nn)) ws.selfslot.resize(nn);
    for (int64_t n = 0; n < nn; ++n) ws.selfslot[n] = sh.nl->owner[b + n] == i ? nself++ : -1;
    if (ws.gself.size() < size_t(nself) * 3 * ncp) ws.gself.resize(size_t(nself) * 3 * ncp);
  }
  const RowSink sink{&t, &sh, &ws, i, ti, nc, ncp, b, s0, sh.keep_g ? gout : nullptr, gsum,
                     ws.wvir.data()};

  int64_t nb = 0;
  for (int nu = 0; nu < ne; ++nu) {
    int64_t neb = nb;
    while (neb < nn && (p.chemflag ? c.types[sh.nl->owner[b + neb]] : 0) == nu) ++neb;
    const int64_t r0 = 3 * nb, r1 = 3 * neb;
    nb = neb;
    if (r1 == r0) continue;
    const Tables::DbPlan& pl = t.dbplan[nu];
    if (quad)
      for (int col : pl.idle) std::fill(G + size_t(col) * RVL, G + size_t(col + 1) * RVL, 0.0);
    const int ncols = static_cast<int>(pl.cols.size());
    // Row chunks of RVL rows on multiples of L (D is 64-byte aligned), in stream row numbers;
    // rows outside [g0, g1) belong to other images and are dropped.
    const int64_t g0 = 3 * s0 + r0, g1 = 3 * s0 + r1;
    for (int64_t gr = g0 / L * L; gr < g1; gr += RVL) {
      const int nv = static_cast<int>((std::min<int64_t>(gr + RVL, g1) - gr + L - 1) / L);
      const double* drow = &ws.D[gr - ws.Dbase];
      for (int jj = 0; jj <= t.J; ++jj) {
        const int E = 2 * t.half_n[jj], u0 = t.zu_blk[jj], nu_ = t.zu_blk[jj + 1] - u0;
        const double* d = drow + size_t(2) * t.half_off[jj] * ld;
        const double* zpj = zp + t.zu_off[jj];
        for (int u = 0; u < nu_; u += UB) {
          const int k = std::min(UB, nu_ - u);
          kTile[nv - 1][k - 1](zpj + u, nu_, d, ld, E, P + size_t(u0 + u) * RVL);
        }
      }
      if (!quad) {
        fused_rows(sink, pl, P, gr, nv, g0, g1);
        continue;
      }
      // Columns: short sums of coef * P[u].
      for (int q = 0; q < ncols; ++q) {
        double* gc = G + size_t(pl.cols[q]) * RVL;
        const int tb = pl.cstart[q], te = pl.cstart[q + 1];
        const v8 c0 = splat(pl.tc[tb]);
        const double* p0 = P + size_t(pl.tu[tb]) * RVL;
        for (int v = 0; v < nv; ++v) {
          v8 x = c0 * ld8(p0 + v * L);
          for (int k = tb + 1; k < te; ++k) x += splat(pl.tc[k]) * ld8(P + size_t(pl.tu[k]) * RVL + v * L);
          st8(gc + v * L, x);
        }
      }
      // Transpose into rows.
      for (int v = 0; v < nv; ++v) {
        const int64_t lo = std::max(gr + v * L, g0), hi = std::min(gr + (v + 1) * L, g1);
        if (lo >= hi) continue;
        double* dst = gout + (lo - 3 * s0) * nc;
        const int skip = static_cast<int>(lo - gr - v * L), nrt = static_cast<int>(hi - lo);
        int col = 0;
        if (nrt == L) {
          for (; col + L <= nc; col += L) transpose8(G + size_t(col) * RVL + v * L, RVL, dst + col, nc);
        } else {
          alignas(64) double tmp[L][L];
          for (; col + L <= nc; col += L) {
            transpose8(G + size_t(col) * RVL + v * L, RVL, &tmp[0][0], L);
            for (int r = 0; r < nrt; ++r) std::memcpy(dst + r * nc + col, tmp[skip + r], sizeof(double) * L);
          }
        }
        for (; col < nc; ++col)
          for (int r = 0; r < nrt; ++r) dst[r * nc + col] = G[size_t(col) * RVL + v * L + skip + r];
      }
    }
  }

  double* wat = sh.wat + size_t(i - sh.i0) * 6 * nc;
  const RowsView F = sh.F;
  if (!quad) {
    for (int v = 0; v < 6; ++v) std::memcpy(wat + v * nc, &ws.wvir[v * ncp], sizeof(double) * nc);
    if (!sh.direct) return;
    // Force rows: the own term +Σ_n ∂B_i/∂r_in into row block type(i) of atom i, then −∂B_i/∂r_in
    // for the images of i itself, in pair order (the threaded scatter of step_impl's order).
    for (int a = 0; a < 3; ++a) {
      double* Fr = F.data + (3 * int64_t(i) + a) * F.row_stride + ti * F.type_stride;
      for (int k = 0; k < nc; ++k) Fr[k] += gsum[a * ncp + k];
    }
    for (int64_t n = 0; n < nn; ++n) {
      if (sh.nl->owner[b + n] != i) continue;
      for (int a = 0; a < 3; ++a) {
        double* Fr = F.data + (3 * int64_t(i) + a) * F.row_stride + ti * F.type_stride;
        const double* gq = &ws.gself[(size_t(ws.selfslot[n]) * 3 + a) * ncp];
        for (int k = 0; k < nc; ++k) Fr[k] -= gq[k];
      }
    }
    return;
  }

  // quadraticflag: the atom's virial contribution and force rows from the stored rows.
  std::fill(wat, wat + 6 * nc, 0.0);
  static const int vp[6] = {0, 1, 2, 1, 0, 0}, vq[6] = {0, 1, 2, 2, 2, 1};
  for (int64_t n = 0; n < nn; ++n) {
    const double* rin = &sh.nl->rij[3 * (b + n)];
    const double* gp = gout + size_t(n) * 3 * nc;
    for (int v = 0; v < 6; ++v) {
      const double rp = rin[vp[v]];
      const double* gq = gp + vq[v] * nc;
      double* wv = wat + v * nc;
#pragma omp simd
      for (int k = 0; k < nc; ++k) wv[k] -= rp * gq[k];
    }
  }
  if (!sh.direct) return;
  const double* bi = sh.blin + size_t(i - sh.i0) * nc;
  std::fill(gsum, gsum + 3 * nc, 0.0);
  for (int64_t n = 0; n < nn; ++n) {
    const double* gp = gout + size_t(n) * 3 * nc;
#pragma omp simd
    for (int k = 0; k < 3 * nc; ++k) gsum[k] += gp[k];
    const int m = sh.nl->owner[b + n];
    if (m == i) continue;
    for (int a = 0; a < 3; ++a) {
      double* Fr = F.data + (3 * int64_t(m) + a) * F.row_stride + ti * F.type_stride;
      const double* gq = gp + a * nc;
#pragma omp simd
      for (int k = 0; k < nc; ++k) Fr[k] -= gq[k];
      quad_axpy(nc, -1.0, bi, gq, Fr + nc);
    }
  }
  for (int a = 0; a < 3; ++a) {
    double* Fr = F.data + (3 * int64_t(i) + a) * F.row_stride + ti * F.type_stride;
    for (int k = 0; k < nc; ++k) Fr[k] += gsum[a * nc + k];
    quad_axpy(nc, 1.0, bi, &gsum[a * nc], Fr + nc);
  }
  for (int64_t n = 0; n < nn; ++n) {
    if (sh.nl->owner[b + n] != i) continue;
    const double* gp = gout + size_t(n) * 3 * nc;
    for (int a = 0; a < 3; ++a) {
      double* Fr = F.data + (3 * int64_t(i) + a) * F.row_stride + ti * F.type_stride;
      const double* gq = gp + a * nc;
#pragma omp simd
      for (int k = 0; k < nc; ++k) Fr[k] -= gq[k];
      quad_axpy(nc, -1.0, bi, gq, Fr + nc);
    }
  }
}

}  // namespace

// One block of centre atoms [i0, i1) of a Job: descriptors and derivatives of the block's atoms,
// then their contributions to every output.
void step_impl(JobState& s, int i0, int i1) {
  const Tables& t = s.t;
  const Config& c = s.c;
  const NeighborList& nl = s.nl;
  const Options& o = s.o;
  const Params& p = t.params;
  const int T = p.ntypes(), nc = t.ncoeff, nv = t.nvalues, nthreads = s.nthreads;
  const bool quad = p.quadraticflag;
  const int nb = i1 - i0;
  // The neighbour lists of this block's centres (held by s.nl from atom s.nl_first on).
  const int64_t* start = nl.start.data() + (i0 - s.nl_first);  // start[i - i0]
  const int64_t p0 = start[0], np = start[i1 - i0] - p0;

  // Block scratch written in full by the atom stage. It is kept per calling thread between calls
  // (grown, never shrunk; bounded by the block size): fresh pages cost more than the arithmetic.
  // With one thread the force rows are accumulated atom by atom (compute_db); otherwise the
  // per-pair derivatives are kept and scattered below.
  static thread_local Scratch scratch;
  const bool direct = o.forces && nthreads == 1;
  const bool keep_g = o.pairs || (o.forces && !direct);
  double* g = keep_g ? scratch.get(0, size_t(np) * 3 * nc) : nullptr;
  double* blin = scratch.get(1, size_t(nb) * nc);
  double* wat = scratch.get(2, size_t(nb) * 6 * nc);
  Shared sh{&t, &c, &nl, start, g, blin, wat, i0, p0, keep_g, direct, s.F};

  const int ngroups = (nb + L - 1) / L;
#pragma omp parallel num_threads(nthreads)
  {
    // Kept per thread between blocks and calls: fresh pages cost more than small blocks' work.
    static thread_local Workspace ws;
    ws.prepare(t);
#pragma omp for schedule(dynamic, 1)
    for (int grp = 0; grp < ngroups; ++grp) {
      const int a0 = i0 + grp * L, cnt = std::min(L, i1 - a0);
      int elem[L] = {};
      for (int l = 0; l < cnt; ++l) elem[l] = p.chemflag ? c.types[a0 + l] : 0;
      const int64_t qa = start[a0 - i0], ng = start[a0 + cnt - i0] - qa;
      group_geometry(sh, ws, a0, cnt, ng);
      group_utot(sh, ws, a0, cnt, ng);
      // Interleave U_tot for the Z/B stage (padding lanes copy lane 0).
      const int ne = t.nelem, NU = t.ufull;
      for (int l = 0; l < L; ++l) {
        const int src = l < cnt ? l : 0;
        const double* tr = &ws.utr[size_t(src) * ne * NU];
        const double* ti = &ws.uti[size_t(src) * ne * NU];
        for (int q = 0; q < ne * NU; ++q) {
          ws.ubr[q * L + l] = tr[q];
          ws.ubi[q * L + l] = ti[q];
        }
      }
      compute_z(t, ws);
      compute_b(t, ws, elem, cnt);
      for (int q = 0; q < ws.zpad; q += L)  // per-atom copies of the packed Z
        transpose8(&ws.z[size_t(q) * L], L, &ws.zpa[q], ws.zpad);
      for (int l = 0; l < cnt; ++l)
        std::memcpy(&blin[size_t(a0 - i0 + l) * nc], &ws.blin[size_t(l) * nc], sizeof(double) * nc);
      // Second pass: derivative rows into a rolling buffer D holding the rows of the atom being
      // finished (from the L-aligned row at or before its first) and of the lane groups after it;
      // each atom's dB is computed once its rows are all there.
      int64_t nmax = 0;
      for (int l = 0; l < cnt; ++l) nmax = std::max(nmax, start[a0 + l + 1 - i0] - start[a0 + l - i0]);
      ws.ld = (3 * nmax + 2 * 3 * L + L) / L * L + RVL;
      if (ws.D.size() < size_t(2) * t.H * ws.ld) ws.D.resize(size_t(2) * t.H * ws.ld);
      ws.Dbase = 0;
      int next = 0;  // next atom (slot) to finish
      auto finish_ready = [&](int64_t written) {  // rows [Dbase, 3 * written) are in D
        while (next < cnt && start[a0 + next + 1 - i0] - qa <= written) {
          compute_db(t, ws, sh, a0 + next, next, start[a0 + next - i0] - qa);
          ++next;
          if (next == cnt) break;
          const int64_t nb = (3 * (start[a0 + next - i0] - qa)) / L * L;  // the next atom's base
          const int64_t keep = 3 * written - nb;
          if (nb > ws.Dbase && keep > 0)
            for (int e = 0; e < 2 * t.H; ++e) {
              double* d = &ws.D[size_t(e) * ws.ld];
              std::memmove(d, d + (nb - ws.Dbase), sizeof(double) * keep);
            }
          ws.Dbase = nb;
        }
      };
      finish_ready(0);
      for (int64_t p0 = 0; p0 < ng; p0 += L) {
        lane_group_rows(t, ws, p0);
        finish_ready(p0 + L);
      }
      finish_ready(ng + L);
    }
    ws.trim();
  }

  // Centre atom of each pair of the block.
  vec<int32_t> centre(np);
  for (int i = i0; i < i1; ++i)
    for (int64_t q = start[i - i0]; q < start[i + 1 - i0]; ++q) centre[q - p0] = i;

  if (o.B) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int a = 0; a < nb; ++a) {
      const double* bm = &blin[size_t(a) * nc];
      double* Bo = &s.res.B[size_t(i0 + a) * nv];
      std::copy(bm, bm + nc, Bo);
      if (quad) {
        size_t q = nc;
        for (int k = 0; k < nc; ++k) {
          Bo[q++] = 0.5 * bm[k] * bm[k];
          for (int l = k + 1; l < nc; ++l) Bo[q++] = bm[k] * bm[l];
        }
      }
    }
  }

  // Energy and virial rows: sums over atoms in atom order; the quadratic part goes to the Q
  // accumulators, split over threads by task so each element is still summed in atom order.
  for (int a = 0; a < nb; ++a) {
    const int ti = c.types[i0 + a];
    double* E = &s.res.energy_row[size_t(ti) * nv];
    const double* bi = &blin[size_t(a) * nc];
    for (int k = 0; k < nc; ++k) E[k] += bi[k];
    if (o.virial)
      for (int v = 0; v < 6; ++v) {
        double* V = &s.res.virial_rows[(size_t(v) * T + ti) * nv];
        const double* w = &wat[(size_t(a) * 6 + v) * nc];
        for (int k = 0; k < nc; ++k) V[k] += w[k];
      }
  }
  if (quad) {
    const int ntask = (o.virial ? 7 : 1) * T;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int task = 0; task < ntask; ++task) {
      const int v = task / T - 1, tt = task % T;  // v = -1: energy row
      double* Q = &s.Q[size_t(task) * nc * nc];
      for (int a = 0; a < nb; ++a) {
        if (c.types[i0 + a] != tt) continue;
        const double* bi = &blin[size_t(a) * nc];
        const double* x = v < 0 ? bi : &wat[(size_t(a) * 6 + v) * nc];
        for (int k = 0; k < nc; ++k) {
          const double bk = bi[k];
          double* qk = &Q[size_t(k) * nc];
#pragma omp simd
          for (int l = 0; l < nc; ++l) qk[l] += bk * x[l];
        }
      }
    }
  }

  if (o.pairs) {  // s.nl holds every atom's list (see Job::Job): q is the global pair index
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t q = 0; q < np; ++q) {
      s.res.pair_i[p0 + q] = centre[q];
      s.res.pair_j[p0 + q] = nl.owner[p0 + q];
      const double* bi = &blin[size_t(centre[q] - i0) * nc];
      for (int a = 0; a < 3; ++a) {
        const double* gq = &g[(size_t(q) * 3 + a) * nc];
        double* out = &s.res.pair_dBdr[(size_t(p0 + q) * 3 + a) * nv];
        std::copy(gq, gq + nc, out);
        if (quad) {
          std::fill(out + nc, out + nv, 0.0);
          quad_axpy(nc, 1.0, bi, gq, out + nc);
        }
      }
    }
  }

  if (!o.forces || direct) return;
  // Force rows. Row 3m+a of block type t collects, over centre atoms i in atom order:
  // +Σ_n ∂B_m/∂r_mn (i = m, into type(m)) and −∂B_i/∂r_in for each image n of m among i's
  // neighbours (into type(i)). This block's contributions, grouped by target atom m (groups in
  // order of first appearance, events within a group in centre order, atom m's own term before
  // its pairs), are applied in parallel over targets: each thread owns the rows it writes.
  vec<int32_t> target;    // group -> atom m
  vec<int64_t> gstart;    // group -> first event (then the end, after the prefix sum)
  auto visit = [&](int m) {
    if (s.slot[m] < 0) {
      s.slot[m] = static_cast<int32_t>(target.size());
      target.push_back(m);
      gstart.push_back(0);
    }
    ++gstart[s.slot[m]];
  };
  for (int i = i0; i < i1; ++i) {
    visit(i);
    for (int64_t q = start[i - i0]; q < start[i + 1 - i0]; ++q) visit(nl.owner[q]);
  }
  const int ng = static_cast<int>(target.size());
  gstart.push_back(0);
  for (int64_t k = 0, acc = 0; k <= ng; ++k) {
    const int64_t n = gstart[k];
    gstart[k] = acc;
    acc += n;
  }
  vec<int64_t> event(size_t(nb) + np);  // pair q (>= 0) or own term of atom m (-1 - m)
  {
    vec<int64_t> fill(gstart.begin(), gstart.end() - 1);
    for (int i = i0; i < i1; ++i) {
      event[fill[s.slot[i]]++] = -1 - int64_t(i);
      for (int64_t q = start[i - i0]; q < start[i + 1 - i0]; ++q)
        event[fill[s.slot[nl.owner[q]]]++] = q;
    }
  }
  const RowsView F = s.F;
#pragma omp parallel num_threads(nthreads)
  {
    vec<double> gsum(3 * nc);
#pragma omp for schedule(dynamic, 16)
    for (int k = 0; k < ng; ++k) {
      const int m = target[k];
      for (int64_t e = gstart[k]; e < gstart[k + 1]; ++e) {
        if (event[e] < 0) {  // own term: +Σ_n ∂B_m/∂r_mn into block type(m)
          std::fill(gsum.begin(), gsum.end(), 0.0);
          for (int64_t q = start[m - i0]; q < start[m + 1 - i0]; ++q)
            for (int a = 0; a < 3 * nc; ++a) gsum[a] += g[size_t(q - p0) * 3 * nc + a];
          const int tm = c.types[m];
          const double* bm = &blin[size_t(m - i0) * nc];
          for (int a = 0; a < 3; ++a) {
            double* Fr = F.data + (3 * int64_t(m) + a) * F.row_stride + tm * F.type_stride;
            for (int kk = 0; kk < nc; ++kk) Fr[kk] += gsum[a * nc + kk];
            if (quad) quad_axpy(nc, 1.0, bm, &gsum[a * nc], Fr + nc);
          }
        } else {  // −∂B_i/∂r_in for image n (pair q) of m, into block type(i)
          const int64_t q = event[e];
          const int i = centre[q - p0], ti = c.types[i];
          const double* gq = &g[size_t(q - p0) * 3 * nc];
          for (int a = 0; a < 3; ++a) {
            double* Fr = F.data + (3 * int64_t(m) + a) * F.row_stride + ti * F.type_stride;
#pragma omp simd
            for (int kk = 0; kk < nc; ++kk) Fr[kk] -= gq[a * nc + kk];
            if (quad) quad_axpy(nc, -1.0, &blin[size_t(i - i0) * nc], gq + a * nc, Fr + nc);
          }
        }
      }
    }
  }
  for (int m : target) s.slot[m] = -1;
}

}  // namespace SNAP_ISA_NS
}  // namespace snap
