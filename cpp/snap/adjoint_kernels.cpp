// The adjoint ("Y") kernels: SNAP energies and forces for one coefficient set. Compiled once per
// SIMD level (generic, AVX2, AVX-512) into the namespace SNAP_ISA_NS; adjoint.cpp dispatches.
//
// Per block of L centre atoms (spec §12.2):
//  1. neighbours L at a time (one SIMD lane each): Cayley–Klein parameters, Wigner U_j by the
//     recursion of spec §4 (rows mb <= j/2), accumulated into the atom's densities U_tot^e;
//  2. atoms L at a time (one lane each): Z for every Z triple and element pair, then B, the atom
//     energy E_i and the effective coefficients β̃_i = ∂E_i/∂B_i (β, plus α·b for quadratic);
//  3. Y^ν_J = Σ_tasks coef · β̃_{i,col} · Z[pair][triple], the tasks being exactly the terms of the
//     three-term derivative formula (Tables::tasks), so ⟨∂Ũ, Y⟩ = Σ_k β̃_k ∂B_k (exact adjoint);
//     the half-sum weights are folded into Y;
//  4. neighbours again L at a time: U and ∂U/∂r by the differentiated recursion, contracted on the
//     fly with the atom's Y of the neighbour's element:  ∂E_i/∂r_in,a = w_n [sfac' r̂_a ⟨U, Y⟩ +
//     sfac ⟨∂_a U, Y⟩].
// Per-pair gradients are stored and scattered into forces and the virial in pair order after the
// parallel region, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "adjoint.hpp"
#include "neighbors.hpp"

#ifndef SNAP_ISA_NS
#define SNAP_ISA_NS generic
#endif

namespace snap {
namespace SNAP_ISA_NS {

namespace {

constexpr int L = 8;  // SIMD lanes (neighbours in steps 1 and 4, atoms in steps 2 and 3)

template <class T>
using vec = std::vector<T>;

struct Lanes {  // geometry of L neighbours
  alignas(64) double ar[L], ai[L], br[L], bi[L];
  alignas(64) double dar[3][L], dai[3][L], dbr[3][L], dbi[3][L];
  alignas(64) double sfac[L], dsfac[L], w[L], rhat[3][L];
};

// Angle map (spec §3), Cayley–Klein parameters (§4), switching functions and the derivatives of
// all of them with respect to r_in (§10.1) for one lane.
void lane_geometry(const Params& p, const double* rv, double rcut, double wn, double s_in,
                   double d_in, Lanes& g, int l) {
  const double x = rv[0], y = rv[1], z = rv[2];
  const double rsq = x * x + y * y + z * z;
  const double r = std::sqrt(rsq);
  const double s = p.rfac0 * M_PI / (rcut - p.rmin0);  // dθ0/dr
  const double theta0 = (r - p.rmin0) * s;
  const double z0 = r / std::tan(theta0);
  const double dz0dr = z0 / r - s * r * (rsq + z0 * z0) / rsq;
  const double r0inv = 1.0 / std::sqrt(rsq + z0 * z0);
  const double dr0inv = -r0inv * r0inv * r0inv * (r + z0 * dz0dr);  // d(1/r0)/dr
  g.ar[l] = z0 * r0inv;
  g.ai[l] = -z * r0inv;
  g.br[l] = y * r0inv;
  g.bi[l] = -x * r0inv;
  const double u[3] = {x / r, y / r, z / r};
  for (int a = 0; a < 3; ++a) {
    g.rhat[a][l] = u[a];
    g.dar[a][l] = (dz0dr * r0inv + z0 * dr0inv) * u[a];
    g.dai[a][l] = -z * dr0inv * u[a];
    g.dbr[a][l] = y * dr0inv * u[a];
    g.dbi[a][l] = -x * dr0inv * u[a];
  }
  g.dai[2][l] -= r0inv;
  g.dbr[1][l] += r0inv;
  g.dbi[0][l] -= r0inv;

  double fc = 1.0, dfc = 0.0;
  if (p.switchflag && r > p.rmin0) {
    const double k = M_PI / (rcut - p.rmin0);
    fc = 0.5 * (std::cos((r - p.rmin0) * k) + 1.0);
    dfc = -0.5 * std::sin((r - p.rmin0) * k) * k;
  }
  if (p.switchinnerflag) {
    if (r <= s_in - d_in) {
      fc = dfc = 0.0;
    } else if (r < s_in + d_in) {
      const double k = M_PI / (2.0 * d_in);
      const double phi = M_PI / 2.0 + (r - s_in) * k;
      const double f = 0.5 * (1.0 - std::cos(phi)), df = 0.5 * k * std::sin(phi);
      dfc = dfc * f + fc * df;
      fc *= f;
    }
  }
  g.sfac[l] = fc;
  g.dsfac[l] = dfc;
  g.w[l] = wn;
}

// Fills one lane of `g` for neighbour q of atom i (or a harmless zero-weight dummy if q < 0).
inline void load_lane(const Tables& t, const Config& c, const NeighborList& nl, int i, int64_t q,
                      Lanes& g, int l, int* elem) {
  const Params& p = t.params;
  if (q < 0) {
    static const double dummy[3] = {0.0, 0.0, 1.0};
    lane_geometry(p, dummy, 2.0 + 2.0 * p.rmin0, 0.0, 0.0, 1.0, g, l);
    elem[l] = elem[0];
    return;
  }
  const int ti = c.types[i], tm = c.types[nl.owner[q]];
  const double rcut = (p.radelem[ti] + p.radelem[tm]) * p.rcutfac;
  double s_in = 0.0, d_in = 1.0;
  if (p.switchinnerflag) {
    s_in = 0.5 * (p.sinner[ti] + p.sinner[tm]);
    d_in = 0.5 * (p.dinner[ti] + p.dinner[tm]);
  }
  lane_geometry(p, &nl.rij[3 * q], rcut, p.wj[tm], s_in, d_in, g, l);
  elem[l] = p.chemflag ? tm : 0;
}

// One entry of the recursion: U_j[ma,mb] from U_{j-1}[ma,mb] (term A) and U_{j-1}[ma-1,mb]
// (term B): U = rA·conj(a)·U_A − rB·conj(b)·U_B.
#define SNAP_CONJ_MUL_ADD(sr, si, cr, ci, vr, vi) \
  sr += (cr) * (vr) + (ci) * (vi);                 \
  si += (cr) * (vi) - (ci) * (vr);

// Wigner U_j (rows mb <= j/2, plus the symmetric row the next level needs) for L neighbours.
__attribute__((noinline)) void wigner_u(const Tables& t, const Lanes& g, double* ur, double* ui) {
  const int J = t.J, rp = J + 2;
  const double* rootpq = t.rootpq.data();
  for (int l = 0; l < L; ++l) {
    ur[l] = 1.0;
    ui[l] = 0.0;
  }
  for (int j = 1; j <= J; ++j) {
    const int base = t.ufull_off[j], prev = t.ufull_off[j - 1];
    for (int mb = 0; 2 * mb <= j; ++mb)
      for (int ma = 0; ma <= j; ++ma) {
        alignas(64) double r[L] = {}, im[L] = {};
        if (ma < j) {
          const double k = rootpq[(j - ma) * rp + (j - mb)];
          const double* pr = ur + (prev + j * mb + ma) * L;
          const double* pi = ui + (prev + j * mb + ma) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            SNAP_CONJ_MUL_ADD(r[l], im[l], k * g.ar[l], k * g.ai[l], pr[l], pi[l])
          }
        }
        if (ma > 0) {
          const double k = -rootpq[ma * rp + (j - mb)];
          const double* pr = ur + (prev + j * mb + ma - 1) * L;
          const double* pi = ui + (prev + j * mb + ma - 1) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            SNAP_CONJ_MUL_ADD(r[l], im[l], k * g.br[l], k * g.bi[l], pr[l], pi[l])
          }
        }
        double* outr = ur + (base + (j + 1) * mb + ma) * L;
        double* outi = ui + (base + (j + 1) * mb + ma) * L;
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          outr[l] = r[l];
          outi[l] = im[l];
        }
      }
    if (j % 2 == 1 && j < J) {  // row (j+1)/2 by U_j[j-ma, j-mb] = (-1)^(ma+mb) conj(U_j[ma,mb])
      const int mb = (j - 1) / 2;
      for (int ma = 0; ma <= j; ++ma) {
        const double sg = ((ma + mb) % 2) ? -1.0 : 1.0;
        const double* sr = ur + (base + (j + 1) * mb + ma) * L;
        const double* si = ui + (base + (j + 1) * mb + ma) * L;
        double* dr = ur + (base + (j + 1) * (j - mb) + (j - ma)) * L;
        double* di = ui + (base + (j + 1) * (j - mb) + (j - ma)) * L;
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          dr[l] = sg * sr[l];
          di[l] = -sg * si[l];
        }
      }
    }
  }
}

// U and ∂U/∂r (three directions) by the differentiated recursion for L neighbours, contracted on
// the fly with the per-lane adjoint `y` (compact half layout, weights folded in, [2H][L]):
// out[a][l] = ∂E_i/∂r_in,a of lane l.
__attribute__((noinline)) void wigner_du_dot(const Tables& t, const Lanes& g, double* ur,
                                             double* ui, double* dur, double* dui,
                                             const double* y, double (*out)[L]) {
  const int J = t.J, rp = J + 2, NU = t.ufull;
  const double* rootpq = t.rootpq.data();
  alignas(64) double uy[L], duy[3][L];
  for (int l = 0; l < L; ++l) {
    ur[l] = 1.0;
    ui[l] = 0.0;
    uy[l] = y[l];  // j = 0: U_0 = 1 (weight 1, real part)
    for (int a = 0; a < 3; ++a) {
      dur[a * NU * L + l] = dui[a * NU * L + l] = 0.0;
      duy[a][l] = 0.0;
    }
  }
  for (int j = 1; j <= J; ++j) {
    const int base = t.ufull_off[j], prev = t.ufull_off[j - 1];
    const int hn = t.half_n[j];
    const double* yre = y + size_t(2) * t.half_off[j] * L;
    const double* yim = yre + size_t(hn) * L;
    for (int mb = 0; 2 * mb <= j; ++mb)
      for (int ma = 0; ma <= j; ++ma) {
        alignas(64) double r[L] = {}, im[L] = {}, dr[3][L] = {}, di[3][L] = {};
        if (ma < j) {
          const double k = rootpq[(j - ma) * rp + (j - mb)];
          const int pidx = (prev + j * mb + ma) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            SNAP_CONJ_MUL_ADD(r[l], im[l], k * g.ar[l], k * g.ai[l], ur[pidx + l], ui[pidx + l])
          }
          for (int a = 0; a < 3; ++a) {
            const double* dpr = dur + a * NU * L + pidx;
            const double* dpi = dui + a * NU * L + pidx;
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              SNAP_CONJ_MUL_ADD(dr[a][l], di[a][l], k * g.dar[a][l], k * g.dai[a][l],
                                ur[pidx + l], ui[pidx + l])
              SNAP_CONJ_MUL_ADD(dr[a][l], di[a][l], k * g.ar[l], k * g.ai[l], dpr[l], dpi[l])
            }
          }
        }
        if (ma > 0) {
          const double k = -rootpq[ma * rp + (j - mb)];
          const int pidx = (prev + j * mb + ma - 1) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            SNAP_CONJ_MUL_ADD(r[l], im[l], k * g.br[l], k * g.bi[l], ur[pidx + l], ui[pidx + l])
          }
          for (int a = 0; a < 3; ++a) {
            const double* dpr = dur + a * NU * L + pidx;
            const double* dpi = dui + a * NU * L + pidx;
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              SNAP_CONJ_MUL_ADD(dr[a][l], di[a][l], k * g.dbr[a][l], k * g.dbi[a][l],
                                ur[pidx + l], ui[pidx + l])
              SNAP_CONJ_MUL_ADD(dr[a][l], di[a][l], k * g.br[l], k * g.bi[l], dpr[l], dpi[l])
            }
          }
        }
        const int idx = (base + (j + 1) * mb + ma) * L;
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
        if (2 * mb < j || 2 * ma <= j) {  // a compact half entry: contract with Y
          const int e = (j + 1) * mb + ma;
          const double* yr = yre + size_t(e) * L;
          const double* yi = yim + size_t(e) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) uy[l] += r[l] * yr[l] + im[l] * yi[l];
          for (int a = 0; a < 3; ++a)
#pragma omp simd
            for (int l = 0; l < L; ++l) duy[a][l] += dr[a][l] * yr[l] + di[a][l] * yi[l];
        }
      }
    if (j % 2 == 1 && j < J) {
      const int mb = (j - 1) / 2;
      for (int ma = 0; ma <= j; ++ma) {
        const double sg = ((ma + mb) % 2) ? -1.0 : 1.0;
        const int src = (base + (j + 1) * mb + ma) * L;
        const int dst = (base + (j + 1) * (j - mb) + (j - ma)) * L;
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          ur[dst + l] = sg * ur[src + l];
          ui[dst + l] = -sg * ui[src + l];
        }
        for (int a = 0; a < 3; ++a)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            dur[a * NU * L + dst + l] = sg * dur[a * NU * L + src + l];
            dui[a * NU * L + dst + l] = -sg * dui[a * NU * L + src + l];
          }
      }
    }
  }
#pragma omp simd
  for (int l = 0; l < L; ++l)
    for (int a = 0; a < 3; ++a)
      out[a][l] = g.w[l] * (g.dsfac[l] * g.rhat[a][l] * uy[l] + g.sfac[l] * duy[a][l]);
}

#undef SNAP_CONJ_MUL_ADD

struct Workspace {
  Lanes geo;
  vec<double> ur, ui, dur, dui;  // recursion buffers, [ufull][L] (dU: [3][ufull][L])
  vec<double> utr, uti;          // densities per atom of the block: [L][ne][ufull]
  vec<double> ubr, ubi;          // the same interleaved by lane: [ne][ufull][L]
  vec<double> z;                 // [ne*ne][zsize][L]
  vec<double> blin, beta;        // [L][ncoeff]: b_i and β̃_i
  vec<double> y;                 // [ne][2H][L], half-sum weights folded in
  vec<double> ylane;             // [2H][L]: Y of each neighbour lane's element
  void init(const Tables& t) {
    const int ne = t.nelem, NU = t.ufull;
    ur.assign(size_t(NU) * L, 0.0);
    ui.assign(size_t(NU) * L, 0.0);
    dur.assign(size_t(3) * NU * L, 0.0);
    dui.assign(size_t(3) * NU * L, 0.0);
    utr.assign(size_t(L) * ne * NU, 0.0);
    uti.assign(size_t(L) * ne * NU, 0.0);
    ubr.assign(size_t(ne) * NU * L, 0.0);
    ubi.assign(size_t(ne) * NU * L, 0.0);
    z.assign(size_t(ne) * ne * t.zsize * L, 0.0);
    blin.assign(size_t(L) * t.ncoeff, 0.0);
    beta.assign(size_t(L) * t.ncoeff, 0.0);
    y.assign(size_t(ne) * 2 * t.H * L, 0.0);
    ylane.assign(size_t(2) * t.H * L, 0.0);
  }
};

// Step 1 for atom i into slot s: U_tot^e (self term + Σ_n w_n sfac U), all rows.
void densities(const Tables& t, const Config& c, const NeighborList& nl, Workspace& ws, int i,
               int s) {
  const Params& p = t.params;
  const int ne = t.nelem, NU = t.ufull;
  const int ei = p.chemflag ? c.types[i] : 0;
  double* utr = &ws.utr[size_t(s) * ne * NU];
  double* uti = &ws.uti[size_t(s) * ne * NU];
  std::fill(utr, utr + size_t(ne) * NU, 0.0);
  std::fill(uti, uti + size_t(ne) * NU, 0.0);
  for (int e = 0; e < ne; ++e) {
    if (p.chemflag && !p.wselfallflag && e != ei) continue;
    for (int j = 0; j <= t.J; ++j)
      for (int ma = 0; ma <= j; ++ma) utr[e * NU + t.ufull_off[j] + (j + 1) * ma + ma] = 1.0;
  }
  const int64_t b = nl.start[i], nn = nl.start[i + 1] - b;
  for (int64_t n0 = 0; n0 < nn; n0 += L) {
    const int cnt = static_cast<int>(std::min<int64_t>(L, nn - n0));
    int elem[L];
    for (int l = 0; l < L; ++l) load_lane(t, c, nl, i, l < cnt ? b + n0 + l : -1, ws.geo, l, elem);
    wigner_u(t, ws.geo, ws.ur.data(), ws.ui.data());
    alignas(64) double wl[L];
    for (int l = 0; l < L; ++l) wl[l] = l < cnt ? ws.geo.w[l] * ws.geo.sfac[l] : 0.0;
    bool uniform = true;
    for (int l = 1; l < cnt; ++l) uniform = uniform && elem[l] == elem[0];
    for (int l0 = 0; l0 < (uniform ? 1 : cnt); ++l0) {
      alignas(64) double wsel[L];
      for (int l = 0; l < L; ++l) wsel[l] = (uniform || l == l0) ? wl[l] : 0.0;
      double* tr = utr + elem[l0] * NU;
      double* tim = uti + elem[l0] * NU;
      for (int j = 0; j <= t.J; ++j) {
        const int o = t.ufull_off[j], m = (j + 1) * (j / 2 + 1);
        for (int q = o; q < o + m; ++q) {
          double sr = 0.0, si = 0.0;
#pragma omp simd reduction(+ : sr, si)
          for (int l = 0; l < L; ++l) {
            sr += wsel[l] * ws.ur[size_t(q) * L + l];
            si += wsel[l] * ws.ui[size_t(q) * L + l];
          }
          tr[q] += sr;
          tim[q] += si;
        }
      }
    }
  }
  for (int e = 0; e < ne; ++e)  // rows mb > j/2 by symmetry
    for (int j = 0; j <= t.J; ++j) {
      const int o = e * NU + t.ufull_off[j];
      for (int mb = 0; 2 * mb < j; ++mb)
        for (int ma = 0; ma <= j; ++ma) {
          const double sg = ((ma + mb) % 2) ? -1.0 : 1.0;
          utr[o + (j + 1) * (j - mb) + (j - ma)] = sg * utr[o + (j + 1) * mb + ma];
          uti[o + (j + 1) * (j - mb) + (j - ma)] = -sg * uti[o + (j + 1) * mb + ma];
        }
    }
}

// Step 2a: Z^{e1e2}_{j1j2j} (half rows, compact layout) for all triples, L atoms (lanes).
__attribute__((noinline)) void z_blocks(const Tables& t, Workspace& ws) {
  const int ne = t.nelem, NU = t.ufull;
  for (int e1 = 0; e1 < ne; ++e1)
    for (int e2 = 0; e2 < ne; ++e2) {
      double* zp = &ws.z[size_t(e1 * ne + e2) * t.zsize * L];
      for (size_t tz = 0; tz < t.ztrip.size(); ++tz) {
        const auto [j1, j2, j] = t.ztrip[tz];
        const double* u1r = &ws.ubr[size_t(e1 * NU + t.ufull_off[j1]) * L];
        const double* u1i = &ws.ubi[size_t(e1 * NU + t.ufull_off[j1]) * L];
        const double* u2r = &ws.ubr[size_t(e2 * NU + t.ufull_off[j2]) * L];
        const double* u2i = &ws.ubi[size_t(e2 * NU + t.ufull_off[j2]) * L];
        const double* cg = &t.cg[t.cg_off[tz]];
        const int hn = t.half_n[j], ho = t.half_off[j], sh = (j1 + j2 - j) / 2;
        const double norm = t.params.bnormflag ? 1.0 / (j + 1) : 1.0;
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
              const double* ar = u1r + ((j1 + 1) * mb1 + ma1) * L;
              const double* ai = u1i + ((j1 + 1) * mb1 + ma1) * L;
              const double* br = u2r + ((j2 + 1) * mb2 + ma2) * L;
              const double* bi = u2i + ((j2 + 1) * mb2 + ma2) * L;
#pragma omp simd
              for (int l = 0; l < L; ++l) {
                sr[l] += ca * (ar[l] * br[l] - ai[l] * bi[l]);
                si[l] += ca * (ar[l] * bi[l] + ai[l] * br[l]);
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

// Step 2b: b_i (bzero-shifted), E_i and β̃_i for the `cnt` atoms of the block.
void energies_and_beta(const Tables& t, Workspace& ws, const Config& c, const double* coeff,
                       int i0, int cnt, double* energies) {
  const Params& p = t.params;
  const int ne = t.nelem, NU = t.ufull, K = t.K, nc = t.ncoeff, nv = t.nvalues;
  for (int k1 = 0; k1 < ne; ++k1)
    for (int k2 = 0; k2 < ne; ++k2)
      for (int mu = 0; mu < ne; ++mu)
        for (int k = 0; k < K; ++k) {
          const int j = t.btrip[k].j, hn = t.half_n[j], ho = t.half_off[j];
          const double* zr = &ws.z[(size_t(k1 * ne + k2) * t.zsize + t.zoff[t.bz[k]]) * L];
          const double* zi = zr + size_t(hn) * L;
          const double* ur = &ws.ubr[size_t(mu * NU + t.ufull_off[j]) * L];
          const double* ui = &ws.ubi[size_t(mu * NU + t.ufull_off[j]) * L];
          alignas(64) double sum[L] = {};
          for (int e = 0; e < hn; ++e) {
            const int f = t.half_full[ho + e];
            const double wt = t.half_wt[ho + e];
#pragma omp simd
            for (int l = 0; l < L; ++l)
              sum[l] += wt * (ur[f * L + l] * zr[e * L + l] + ui[f * L + l] * zi[e * L + l]);
          }
          const int col = ((k1 * ne + k2) * ne + mu) * K + k;
          for (int l = 0; l < cnt; ++l) {
            double v = sum[l];
            if (p.bzeroflag) {
              const int el = p.chemflag ? c.types[i0 + l] : 0;
              if (!p.chemflag || p.wselfallflag || (k1 == el && k2 == el && mu == el))
                v -= t.bzero[k];
            }
            ws.blin[size_t(l) * nc + col] = v;
          }
        }
  for (int l = 0; l < L; ++l) {
    double* beta = &ws.beta[size_t(l) * nc];
    if (l >= cnt) {
      std::fill(beta, beta + nc, 0.0);
      continue;
    }
    const double* cf = coeff + size_t(c.types[i0 + l]) * (1 + nv);
    const double* b = &ws.blin[size_t(l) * nc];
    double e = 0.0;
    for (int k = 0; k < nc; ++k) e += cf[1 + k] * b[k];
    std::copy(cf + 1, cf + 1 + nc, beta);
    if (p.quadraticflag) {  // β̃ = β + A b with A_kk = α_kk, A_kl = A_lk = α_kl; E += ½ b·A b
      const double* alpha = cf + 1 + nc;
      double quad = 0.0;
      for (int k = 0; k < nc; ++k) {
        const double bk = b[k];
        double acc = alpha[0] * bk;
        for (int m = k + 1; m < nc; ++m) {
          acc += alpha[m - k] * b[m];
          beta[m] += alpha[m - k] * bk;
        }
        beta[k] += acc;
        quad += bk * (acc - 0.5 * alpha[0] * bk);
        alpha += nc - k;
      }
      e += quad;
    }
    energies[i0 + l] = cf[0] + e;
  }
}

// Step 3: Y^ν (compact half layout, half-sum weights folded in) for the L atoms of the block.
__attribute__((noinline)) void adjoint_y(const Tables& t, Workspace& ws) {
  const int ne = t.nelem, nc = t.ncoeff, H = t.H;
  std::fill(ws.y.begin(), ws.y.end(), 0.0);
  for (int nu = 0; nu < ne; ++nu)
    for (int jj = 0; jj <= t.J; ++jj) {
      const int n2 = 2 * t.half_n[jj];
      double* yo = &ws.y[(size_t(nu) * 2 * H + 2 * t.half_off[jj]) * L];
      for (const auto& task : t.tasks[nu][jj]) {
        alignas(64) double cl[L];
        for (int l = 0; l < L; ++l) cl[l] = task.coef * ws.beta[size_t(l) * nc + task.col];
        const double* zp = &ws.z[(size_t(task.zpair) * t.zsize + task.zoff) * L];
        for (int e = 0; e < n2; ++e)
#pragma omp simd
          for (int l = 0; l < L; ++l) yo[e * L + l] += cl[l] * zp[e * L + l];
      }
      const int hn = t.half_n[jj], ho = t.half_off[jj];
      for (int e = 0; e < hn; ++e) {
        const double wt = t.half_wt[ho + e];
        for (int l = 0; l < L; ++l) {
          yo[e * L + l] *= wt;
          yo[(hn + e) * L + l] *= wt;
        }
      }
    }
}

// Step 4 for atom i in slot s: ∂E_i/∂r_in for every neighbour n, into grad[3 q + a].
void pair_gradients(const Tables& t, const Config& c, const NeighborList& nl, Workspace& ws,
                    int i, int s, double* grad) {
  const int H = t.H;
  const int64_t b = nl.start[i], nn = nl.start[i + 1] - b;
  int filled = -1;  // element whose Y is in every lane of ws.ylane (-1: none)
  for (int64_t n0 = 0; n0 < nn; n0 += L) {
    const int cnt = static_cast<int>(std::min<int64_t>(L, nn - n0));
    int elem[L];
    for (int l = 0; l < L; ++l) load_lane(t, c, nl, i, l < cnt ? b + n0 + l : -1, ws.geo, l, elem);
    bool uniform = true;
    for (int l = 1; l < cnt; ++l) uniform = uniform && elem[l] == elem[0];
    if (!uniform || elem[0] != filled) {
      for (int l = 0; l < L; ++l) {
        const double* src = &ws.y[size_t(elem[l]) * 2 * H * L + s];
        for (int e = 0; e < 2 * H; ++e) ws.ylane[size_t(e) * L + l] = src[size_t(e) * L];
      }
      filled = uniform ? elem[0] : -1;
    }
    alignas(64) double out[3][L];
    wigner_du_dot(t, ws.geo, ws.ur.data(), ws.ui.data(), ws.dur.data(), ws.dui.data(),
                  ws.ylane.data(), out);
    for (int l = 0; l < cnt; ++l)
      for (int a = 0; a < 3; ++a) grad[3 * (b + n0 + l) + a] = out[a][l];
  }
}

}  // namespace

PotentialResult potential_impl(const Tables& t, const Config& c, const NeighborList& nl,
                               const double* coeff, int nthreads) {
  const int N = c.natoms, ne = t.nelem, NU = t.ufull;
  const int64_t np = nl.size();
  PotentialResult res;
  res.natoms = N;
  res.energies.assign(N, 0.0);
  res.forces.assign(size_t(3) * N, 0.0);
  res.virial.assign(6, 0.0);
  vec<double> grad(size_t(3) * np);

  const int nblocks = (N + L - 1) / L;
#pragma omp parallel num_threads(nthreads)
  {
    Workspace ws;
    ws.init(t);
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < nblocks; ++blk) {
      const int i0 = blk * L, cnt = std::min(L, N - i0);
      for (int s = 0; s < cnt; ++s) densities(t, c, nl, ws, i0 + s, s);
      for (int s = 0; s < L; ++s) {  // interleave by lane; padding lanes copy lane 0
        const int src = s < cnt ? s : 0;
        const double* tr = &ws.utr[size_t(src) * ne * NU];
        const double* ti = &ws.uti[size_t(src) * ne * NU];
        for (int q = 0; q < ne * NU; ++q) {
          ws.ubr[size_t(q) * L + s] = tr[q];
          ws.ubi[size_t(q) * L + s] = ti[q];
        }
      }
      z_blocks(t, ws);
      energies_and_beta(t, ws, c, coeff, i0, cnt, res.energies.data());
      adjoint_y(t, ws);
      for (int s = 0; s < cnt; ++s) pair_gradients(t, c, nl, ws, i0 + s, s, grad.data());
    }
  }

  // Scatter in pair order: F_i += g, F_m −= g (m = owner of image n); W −= r_in ⊗ g.
  static const int vp[6] = {0, 1, 2, 1, 0, 0}, vq[6] = {0, 1, 2, 2, 2, 1};
  for (int i = 0; i < N; ++i)
    for (int64_t q = nl.start[i]; q < nl.start[i + 1]; ++q) {
      const double* g = &grad[3 * q];
      const double* r = &nl.rij[3 * q];
      const int m = nl.owner[q];
      for (int a = 0; a < 3; ++a) {
        res.forces[3 * i + a] += g[a];
        res.forces[3 * m + a] -= g[a];
      }
      for (int v = 0; v < 6; ++v) res.virial[v] -= r[vp[v]] * g[vq[v]];
    }
  for (int i = 0; i < N; ++i) res.energy += res.energies[i];
  return res;
}

}  // namespace SNAP_ISA_NS
}  // namespace snap
