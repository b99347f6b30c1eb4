// The SNAP compute kernels. This file is compiled once per SIMD level (generic, AVX2, AVX-512)
// into the namespace SNAP_ISA_NS; compute.cpp dispatches at run time.
//
// Per centre atom i (spec: U -> Z -> B -> dB/dr):
//  * neighbours are processed L at a time, one SIMD lane per neighbour, to build U_j and its
//    three Cartesian derivatives by the Wigner recursion (full blocks, left half + symmetry);
//  * atoms are processed L at a time, one SIMD lane per atom, for Z and B;
//  * dB_i/dr_in is a block-sparse product: for each angular block jj, the weighted derivatives
//    dŨ_jj of all neighbours (rows 3n+a, compact half entries with the half-sum weights folded
//    in) are contracted with the per-atom Z vectors that feed each output column (three-term
//    formula, tasks precomputed in Tables).
// Configuration level, one block of centre atoms at a time (snap::Job): the block's per-pair
// derivatives g = ∂B_i/∂r_in are kept, then scattered into the force rows per target atom in a
// fixed order (centre atoms in atom order, so results are bitwise identical for any thread count
// and any block size); virial and energy rows are summed in atom order.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "job.hpp"
#include "neighbors.hpp"
#include "snap.hpp"

#ifndef SNAP_ISA_NS
#define SNAP_ISA_NS generic
#endif

namespace snap {
namespace SNAP_ISA_NS {

constexpr int L = 8;   // SIMD lanes (neighbours or atoms)
constexpr int RB = 16;  // rows per register block in the dB kernel
constexpr int TB = 4;  // tasks per register block in the dB kernel

namespace {

template <class T>
using vec = std::vector<T>;

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

// Wigner U_j and dU_j/dr (three directions) for L neighbours, full blocks, lane-interleaved.
__attribute__((noinline)) void wigner_u(const Tables& t, const Geometry& g, double* ur, double* ui, double* dur,
              double* dui) {
  const int J = t.J, NU = t.ufull;
  const double* rootpq = t.rootpq.data();
  const int rp = J + 2;
#pragma omp simd
  for (int l = 0; l < L; ++l) {
    ur[l] = 1.0;
    ui[l] = 0.0;
    for (int a = 0; a < 3; ++a) dur[a * NU * L + l] = dui[a * NU * L + l] = 0.0;
  }
  for (int j = 1; j <= J; ++j) {
    const int base = t.ufull_off[j], prev = t.ufull_off[j - 1];
    for (int mb = 0; 2 * mb <= j; ++mb) {
      for (int ma = 0; ma <= j; ++ma) {
        const int idx = (base + (j + 1) * mb + ma) * L;
        alignas(64) double r[L] = {}, im[L] = {}, dr[3][L] = {}, di[3][L] = {};
        if (ma < j) {
          const double rq = rootpq[(j - ma) * rp + (j - mb)];
          const int pi = (prev + j * mb + ma) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            const double upr = ur[pi + l], upi = ui[pi + l];
            r[l] += rq * (g.ar[l] * upr + g.ai[l] * upi);
            im[l] += rq * (g.ar[l] * upi - g.ai[l] * upr);
          }
          for (int a = 0; a < 3; ++a) {
            const double* dpr = dur + a * NU * L + pi;
            const double* dpi = dui + a * NU * L + pi;
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              const double upr = ur[pi + l], upi = ui[pi + l];
              dr[a][l] += rq * (g.dar[a][l] * upr + g.dai[a][l] * upi + g.ar[l] * dpr[l] +
                                g.ai[l] * dpi[l]);
              di[a][l] += rq * (g.dar[a][l] * upi - g.dai[a][l] * upr + g.ar[l] * dpi[l] -
                                g.ai[l] * dpr[l]);
            }
          }
        }
        if (ma > 0) {
          const double rq = rootpq[ma * rp + (j - mb)];
          const int pi = (prev + j * mb + ma - 1) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            const double upr = ur[pi + l], upi = ui[pi + l];
            r[l] -= rq * (g.br[l] * upr + g.bi[l] * upi);
            im[l] -= rq * (g.br[l] * upi - g.bi[l] * upr);
          }
          for (int a = 0; a < 3; ++a) {
            const double* dpr = dur + a * NU * L + pi;
            const double* dpi = dui + a * NU * L + pi;
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              const double upr = ur[pi + l], upi = ui[pi + l];
              dr[a][l] -= rq * (g.dbr[a][l] * upr + g.dbi[a][l] * upi + g.br[l] * dpr[l] +
                                g.bi[l] * dpi[l]);
              di[a][l] -= rq * (g.dbr[a][l] * upi - g.dbi[a][l] * upr + g.br[l] * dpi[l] -
                                g.bi[l] * dpr[l]);
            }
          }
        }
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          ur[idx + l] = r[l];
          ui[idx + l] = im[l];
        }
        for (int a = 0; a < 3; ++a)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            dur[a * NU * L + idx + l] = dr[a][l];
            dui[a * NU * L + idx + l] = di[a][l];
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
        const double s = ((ma + mb) % 2) ? -1.0 : 1.0;
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          ur[dst + l] = s * ur[src + l];
          ui[dst + l] = -s * ui[src + l];
        }
        for (int a = 0; a < 3; ++a)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            dur[a * NU * L + dst + l] = s * dur[a * NU * L + src + l];
            dui[a * NU * L + dst + l] = -s * dui[a * NU * L + src + l];
          }
      }
    }
  }
}

struct Workspace {
  Geometry geo;
  vec<double> ur, ui, dur, dui;      // L neighbours, full blocks
  vec<double> utr, uti;              // per atom of the block: [ne][ufull]
  vec<double> ubr, ubi;              // block layout for Z: [ne][ufull][L]
  vec<double> z;                     // [npair][zsize][L]
  vec<double> zc;                    // one atom: [npair][zsize]
  vec<double> blin;                  // [L][ncoeff]
  vec<vec<double>> dut;              // per atom of the block: [2H][Rpad]
  vec<int> rpad;
  vec<double> dbt;                   // [ncoeff][Rpad]
  int shape[4] = {-1, -1, -1, -1};   // (ufull, nelem, zsize, ncoeff) it was sized for
  // Sizes the workspace for `t` unless it already is (its content is scratch: every element is
  // written before it is read).
  void prepare(const Tables& t) {
    const int want[4] = {t.ufull, t.nelem, t.zsize, t.ncoeff};
    if (std::equal(want, want + 4, shape)) return;
    std::copy(want, want + 4, shape);
    init(t);
  }
  // Returns the per-atom derivative rows of an atom with very many neighbours to the system.
  void trim() {
    for (auto& d : dut)
      if (d.capacity() > (size_t(1) << 22)) vec<double>().swap(d);
    if (dbt.capacity() > (size_t(1) << 22)) vec<double>().swap(dbt);
  }
  void init(const Tables& t) {
    const int ne = t.nelem;
    ur.assign(t.ufull * L, 0.0);
    ui.assign(t.ufull * L, 0.0);
    dur.assign(3 * t.ufull * L, 0.0);
    dui.assign(3 * t.ufull * L, 0.0);
    utr.assign(L * ne * t.ufull, 0.0);
    uti.assign(L * ne * t.ufull, 0.0);
    ubr.assign(ne * t.ufull * L, 0.0);
    ubi.assign(ne * t.ufull * L, 0.0);
    z.assign(size_t(ne) * ne * t.zsize * L, 0.0);
    zc.assign(size_t(ne) * ne * t.zsize, 0.0);
    blin.assign(L * t.ncoeff, 0.0);
    dut.resize(L);
    rpad.assign(L, 0);
  }
};

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

struct Shared {  // per-block arrays written by the atom stage (centres i0.., pairs p0..)
  const Tables* t;
  const Config* c;
  const NeighborList* nl;  // holds the block's lists: owner[q], rij[3q]
  const int64_t* start;    // pairs of centre i: start[i - i0] <= q < start[i + 1 - i0]
  double* g;      // [block pairs][3][ncoeff]
  double* blin;   // [block atoms][ncoeff]
  double* wat;    // [block atoms][6][ncoeff]
  int i0;         // first centre atom of the block
  int64_t p0;     // its first pair
};

// Neighbour stage for one atom: U_tot (into ws.utr/uti slot `slot`) and dŨ rows (ws.dut[slot]).
__attribute__((noinline)) void atom_neighbours(const Shared& sh, Workspace& ws, int i, int slot) {
  const Tables& t = *sh.t;
  const Params& p = t.params;
  const Config& c = *sh.c;
  const int ne = t.nelem, NU = t.ufull, H = t.H;
  const int64_t b = sh.start[i - sh.i0], nn = sh.start[i + 1 - sh.i0] - b;
  const int ti = c.types[i];
  const int ei = p.chemflag ? ti : 0;

  double* utr = &ws.utr[size_t(slot) * ne * NU];
  double* uti = &ws.uti[size_t(slot) * ne * NU];
  std::fill(utr, utr + ne * NU, 0.0);
  std::fill(uti, uti + ne * NU, 0.0);
  for (int e = 0; e < ne; ++e) {
    if (!(e == ei || p.wselfallflag || !p.chemflag)) continue;
    for (int j = 0; j <= t.J; ++j)
      for (int ma = 0; ma <= j; ++ma) utr[e * NU + t.ufull_off[j] + (j + 1) * ma + ma] = 1.0;
  }

  const int rows = static_cast<int>(3 * nn);
  const int rpad = ((rows + RB - 1) / RB) * RB + RB;
  ws.rpad[slot] = rpad;
  auto& dut = ws.dut[slot];
  if (dut.size() < size_t(2) * H * rpad) dut.resize(size_t(2) * H * rpad);
  for (int e = 0; e < 2 * H; ++e)  // rows past the last neighbour are read (not used) by the kernel
    std::fill(dut.begin() + size_t(e) * rpad + rows, dut.begin() + size_t(e + 1) * rpad, 0.0);

  for (int64_t n0 = 0; n0 < nn; n0 += L) {
    const int cnt = static_cast<int>(std::min<int64_t>(L, nn - n0));
    int elem[L];
    for (int l = 0; l < L; ++l) {
      if (l < cnt) {
        const int64_t q = b + n0 + l;
        const int tm = c.types[sh.nl->owner[q]];
        const double* r = &sh.nl->rij[3 * q];
        const double rcut = (p.radelem[ti] + p.radelem[tm]) * p.rcutfac;
        double si = 0.0, di = 1.0;
        if (p.switchinnerflag) {
          si = 0.5 * (p.sinner[ti] + p.sinner[tm]);
          di = 0.5 * (p.dinner[ti] + p.dinner[tm]);
        }
        neighbour_geometry(p, r[0], r[1], r[2], rcut, p.wj[tm], si, di, ws.geo, l);
        elem[l] = p.chemflag ? tm : 0;
      } else {  // padding lane: a harmless geometry with zero weight
        neighbour_geometry(p, 0.0, 0.0, 1.0, 2.0 + 2.0 * p.rmin0, 0.0, 0.0, 1.0, ws.geo, l);
        elem[l] = 0;
      }
    }
    wigner_u(t, ws.geo, ws.ur.data(), ws.ui.data(), ws.dur.data(), ws.dui.data());
    const Geometry& g = ws.geo;
    // U_tot over the computed rows (mb <= j/2).
    alignas(64) double wsl[L];
    bool uniform = true;
    for (int l = 0; l < L; ++l) {
      wsl[l] = l < cnt ? g.w[l] * g.sfac[l] : 0.0;
      if (l < cnt && elem[l] != elem[0]) uniform = false;
    }
    for (int l = 0; l < (uniform ? 1 : cnt); ++l) {
      double* tr = utr + elem[l] * NU;
      double* tim = uti + elem[l] * NU;
      alignas(64) double wl[L];
      for (int q = 0; q < L; ++q) wl[q] = (uniform || q == l) ? wsl[q] : 0.0;
      for (int j = 0; j <= t.J; ++j) {
        const int o = t.ufull_off[j], m = (j + 1) * (j / 2 + 1);
        for (int q = o; q < o + m; ++q) {
          double sr = 0.0, si = 0.0;
#pragma omp simd reduction(+ : sr, si)
          for (int k = 0; k < L; ++k) {
            sr += wl[k] * ws.ur[q * L + k];
            si += wl[k] * ws.ui[q * L + k];
          }
          tr[q] += sr;
          tim[q] += si;
        }
      }
    }
    // Weighted derivatives into rows 3n+a of dut, compact half layout.
    for (int j = 0; j <= t.J; ++j) {
      const int hn = t.half_n[j], ho = t.half_off[j];
      double* dre = dut.data() + size_t(2) * ho * rpad;
      double* dim = dre + size_t(hn) * rpad;
      for (int e = 0; e < hn; ++e) {
        const int f = t.ufull_off[j] + t.half_full[ho + e];
        const double wt = t.half_wt[ho + e];
        alignas(64) double vr[3][L], vi[3][L];
        for (int a = 0; a < 3; ++a) {
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            const double s1 = wt * g.w[l] * g.dsfac[l] * g.rhat[a][l];
            const double s2 = wt * g.w[l] * g.sfac[l];
            vr[a][l] = s1 * ws.ur[f * L + l] + s2 * ws.dur[(a * NU + f) * L + l];
            vi[a][l] = s1 * ws.ui[f * L + l] + s2 * ws.dui[(a * NU + f) * L + l];
          }
        }
        double* orr = dre + size_t(e) * rpad + 3 * n0;  // rows 3n+a of this group: contiguous
        double* oi = dim + size_t(e) * rpad + 3 * n0;
        for (int l = 0; l < cnt; ++l)
          for (int a = 0; a < 3; ++a) {
            orr[3 * l + a] = vr[a][l];
            oi[3 * l + a] = vi[a][l];
          }
      }
    }
  }
  // Fill the rows mb > j/2 of U_tot by symmetry.
  for (int e = 0; e < ne; ++e)
    for (int j = 0; j <= t.J; ++j) {
      const int o = t.ufull_off[j];
      for (int mb = 0; 2 * mb < j; ++mb)
        for (int ma = 0; ma <= j; ++ma) {
          const double s = ((ma + mb) % 2) ? -1.0 : 1.0;
          utr[e * NU + o + (j + 1) * (j - mb) + (j - ma)] = s * utr[e * NU + o + (j + 1) * mb + ma];
          uti[e * NU + o + (j + 1) * (j - mb) + (j - ma)] = -s * uti[e * NU + o + (j + 1) * mb + ma];
        }
    }
}

// Z for all element pairs and triples, L atoms at once (lanes = atoms).
__attribute__((noinline)) void compute_z(const Tables& t, Workspace& ws) {
  const int ne = t.nelem, NU = t.ufull;
  const bool bnorm = t.params.bnormflag;
  for (int e1 = 0; e1 < ne; ++e1)
    for (int e2 = 0; e2 < ne; ++e2) {
      double* zp = &ws.z[size_t(e1 * ne + e2) * t.zsize * L];
      for (size_t tz = 0; tz < t.ztrip.size(); ++tz) {
        const auto [j1, j2, j] = t.ztrip[tz];
        const double* u1r = &ws.ubr[(e1 * NU + t.ufull_off[j1]) * L];
        const double* u1i = &ws.ubi[(e1 * NU + t.ufull_off[j1]) * L];
        const double* u2r = &ws.ubr[(e2 * NU + t.ufull_off[j2]) * L];
        const double* u2i = &ws.ubi[(e2 * NU + t.ufull_off[j2]) * L];
        const double* cg = &t.cg[t.cg_off[tz]];
        const int hn = t.half_n[j], ho = t.half_off[j], sh = (j1 + j2 - j) / 2;
        const double norm = bnorm ? 1.0 / (j + 1) : 1.0;
        for (int e = 0; e < hn; ++e) {
          const int f = t.half_full[ho + e];
          const int ma = f % (j + 1), mb = f / (j + 1);
          const int ma1lo = std::max(0, (2 * ma - j - j2 + j1) / 2);
          const int ma1hi = std::min(j1, (2 * ma - j + j2 + j1) / 2);
          const int mb1lo = std::max(0, (2 * mb - j - j2 + j1) / 2);
          const int mb1hi = std::min(j1, (2 * mb - j + j2 + j1) / 2);
          alignas(64) double zr[L] = {}, zi[L] = {};
          for (int mb1 = mb1lo; mb1 <= mb1hi; ++mb1) {
            const int mb2 = mb - mb1 + sh;
            const double cb = cg[mb1 * (j2 + 1) + mb2];
            alignas(64) double sr[L] = {}, si[L] = {};
            for (int ma1 = ma1lo; ma1 <= ma1hi; ++ma1) {
              const int ma2 = ma - ma1 + sh;
              const double ca = cg[ma1 * (j2 + 1) + ma2];
              const int p1 = ((j1 + 1) * mb1 + ma1) * L, p2 = ((j2 + 1) * mb2 + ma2) * L;
#pragma omp simd
              for (int l = 0; l < L; ++l) {
                sr[l] += ca * (u1r[p1 + l] * u2r[p2 + l] - u1i[p1 + l] * u2i[p2 + l]);
                si[l] += ca * (u1r[p1 + l] * u2i[p2 + l] + u1i[p1 + l] * u2r[p2 + l]);
              }
            }
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              zr[l] += cb * sr[l];
              zi[l] += cb * si[l];
            }
          }
          double* outr = zp + size_t(t.zoff[tz] + e) * L;
          double* outi = zp + size_t(t.zoff[tz] + hn + e) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            outr[l] = norm * zr[l];
            outi[l] = norm * zi[l];
          }
        }
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
          const double* zr = &ws.z[(size_t(k1 * ne + k2) * t.zsize + t.zoff[tz]) * L];
          const double* zi = zr + size_t(hn) * L;
          const double* ur = &ws.ubr[(mu * NU + t.ufull_off[j]) * L];
          const double* ui = &ws.ubi[(mu * NU + t.ufull_off[j]) * L];
          alignas(64) double s[L] = {};
          for (int e = 0; e < hn; ++e) {
            const int f = t.half_full[ho + e];
            const double wt = t.half_wt[ho + e];
#pragma omp simd
            for (int l = 0; l < L; ++l)
              s[l] += wt * (ur[f * L + l] * zr[e * L + l] + ui[f * L + l] * zi[e * L + l]);
          }
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

// dB/dr_in for one atom: dbt[col][row] for rows 3n+a.
__attribute__((noinline)) void compute_db(const Tables& t, Workspace& ws, const Shared& sh, int i, int slot) {
  const int ne = t.nelem, nc = t.ncoeff;
  const int rpad = ws.rpad[slot];
  const int64_t b = sh.start[i - sh.i0], nn = sh.start[i + 1 - sh.i0] - b;
  const double* dut = ws.dut[slot].data();
  if (ws.dbt.size() < size_t(nc) * rpad) ws.dbt.resize(size_t(nc) * rpad);
  double* dbt = ws.dbt.data();
  std::fill(dbt, dbt + size_t(nc) * rpad, 0.0);
  // This atom's Z, contiguous.
  const size_t zn = size_t(ne) * ne * t.zsize;
  for (size_t q = 0; q < zn; ++q) ws.zc[q] = ws.z[q * L + slot];
  const double* zc = ws.zc.data();
  const Params& p = t.params;
  const Config& c = *sh.c;
  int64_t nb = 0;
  for (int nu = 0; nu < ne; ++nu) {
    int64_t neb = nb;
    while (neb < nn && (p.chemflag ? c.types[sh.nl->owner[b + neb]] : 0) == nu) ++neb;
    const int r0 = static_cast<int>(3 * nb), r1 = static_cast<int>(3 * neb);
    nb = neb;
    if (r1 == r0) continue;
    for (int jj = 0; jj <= t.J; ++jj) {
      const auto& tasks = t.tasks[nu][jj];
      const int E = 2 * t.half_n[jj];
      const double* D = dut + size_t(2) * t.half_off[jj] * rpad;
      const int ntask = static_cast<int>(tasks.size());
      for (int tb = 0; tb < ntask; tb += TB) {
        const int nt = std::min(TB, ntask - tb);
        const double* zp[TB];
        for (int q = 0; q < TB; ++q) {
          const auto& task = tasks[tb + std::min(q, nt - 1)];
          zp[q] = zc + size_t(task.zpair) * t.zsize + task.zoff;
        }
        for (int rr = r0; rr < r1; rr += RB) {
          alignas(64) double acc[TB][RB] = {};
          for (int e = 0; e < E; ++e) {
            const double* d = D + size_t(e) * rpad + rr;
            for (int q = 0; q < TB; ++q) {
              const double zq = zp[q][e];
#pragma omp simd
              for (int r = 0; r < RB; ++r) acc[q][r] += zq * d[r];
            }
          }
          const int nr = std::min(RB, r1 - rr);
          for (int q = 0; q < nt; ++q) {
            const auto& task = tasks[tb + q];
            double* out = dbt + size_t(task.col) * rpad + rr;
            for (int r = 0; r < nr; ++r) out[r] += task.coef * acc[q][r];
          }
        }
      }
    }
  }
  // Per-pair storage and the atom's virial contribution.
  double* wat = sh.wat + size_t(i - sh.i0) * 6 * nc;
  std::fill(wat, wat + 6 * nc, 0.0);
  static const int vp[6] = {0, 1, 2, 1, 0, 0}, vq[6] = {0, 1, 2, 2, 2, 1};
  for (int64_t n = 0; n < nn; ++n) {
    const double* rin = &sh.nl->rij[3 * (b + n)];
    double* gp = sh.g + size_t(b + n - sh.p0) * 3 * nc;
    for (int a = 0; a < 3; ++a)
      for (int k = 0; k < nc; ++k) gp[a * nc + k] = dbt[size_t(k) * rpad + 3 * n + a];
    for (int v = 0; v < 6; ++v) {
      const double rp = rin[vp[v]];
      const double* gq = gp + vq[v] * nc;
      double* wv = wat + v * nc;
#pragma omp simd
      for (int k = 0; k < nc; ++k) wv[k] -= rp * gq[k];
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
  static thread_local Scratch scratch;
  double* g = scratch.get(0, size_t(np) * 3 * nc);
  double* blin = scratch.get(1, size_t(nb) * nc);
  double* wat = scratch.get(2, size_t(nb) * 6 * nc);
  Shared sh{&t, &c, &nl, start, g, blin, wat, i0, p0};

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
      for (int l = 0; l < cnt; ++l) {
        atom_neighbours(sh, ws, a0 + l, l);
        elem[l] = p.chemflag ? c.types[a0 + l] : 0;
      }
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
      for (int l = 0; l < cnt; ++l) {
        std::memcpy(&blin[size_t(a0 - i0 + l) * nc], &ws.blin[size_t(l) * nc], sizeof(double) * nc);
        compute_db(t, ws, sh, a0 + l, l);
      }
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

  if (!o.forces) return;
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
