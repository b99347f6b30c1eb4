#include "neighbors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>

namespace snap {

std::invalid_argument overlap_error(int64_t i, int64_t m) {
  return std::invalid_argument("atom " + std::to_string(i) + " sits on " +
                               (m == i ? std::string("a periodic image of itself")
                                       : "atom " + std::to_string(m)) +
                               " (distance below 1e-10 Å)");
}

namespace {

using Vec = std::array<double, 3>;

Vec cross(const Vec& a, const Vec& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec& a, const Vec& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec& a) { return std::sqrt(dot(a, a)); }

// A basis whose periodic vectors are the cell's and whose other vectors complete it orthonormally.
std::array<Vec, 3> effective_basis(const Config& c) {
  std::array<Vec, 3> v{};
  int np = 0;
  for (int k = 0; k < 3; ++k) {
    if (!c.pbc[k]) continue;
    ++np;
    for (int a = 0; a < 3; ++a) {
      v[k][a] = c.cell[3 * k + a];
      if (!std::isfinite(v[k][a]))
        throw std::invalid_argument("cell contains a non-finite value");
    }
  }
  // Scale for the degeneracy test.
  double scale = 0.0;
  for (int k = 0; k < 3; ++k)
    if (c.pbc[k]) scale = std::max(scale, norm(v[k]));
  const double eps = 1e-9;
  auto degenerate = [&]() {
    throw std::invalid_argument(
        "the periodic cell vectors are degenerate (zero length, parallel or zero volume)");
  };
  if (np == 3) {
    double vol = dot(v[0], cross(v[1], v[2]));
    if (!(std::fabs(vol) > eps * scale * scale * scale) || scale == 0.0) degenerate();
  } else if (np == 2) {
    int a = c.pbc[0] ? 0 : 1, b = c.pbc[2] ? 2 : 1, o = 3 - a - b;
    Vec n = cross(v[a], v[b]);
    double nn = norm(n);
    if (!(nn > eps * scale * scale) || scale == 0.0) degenerate();
    for (int x = 0; x < 3; ++x) v[o][x] = n[x] / nn;
  } else if (np == 1) {
    int a = c.pbc[0] ? 0 : (c.pbc[1] ? 1 : 2);
    double na = norm(v[a]);
    if (!(na > 0.0)) degenerate();
    Vec u{v[a][0] / na, v[a][1] / na, v[a][2] / na};
    Vec trial = std::fabs(u[0]) < 0.9 ? Vec{1, 0, 0} : Vec{0, 1, 0};
    Vec p = cross(u, trial);
    double np_ = norm(p);
    Vec q = cross(u, p);
    int o1 = (a + 1) % 3, o2 = (a + 2) % 3;
    for (int x = 0; x < 3; ++x) {
      v[o1][x] = p[x] / np_;
      v[o2][x] = q[x] / np_;
    }
  } else {
    v = {Vec{1, 0, 0}, Vec{0, 1, 0}, Vec{0, 0, 1}};
  }
  return v;
}

int bin_of(const NeighborGrid& G, const double* r, int a) {
  if (G.nb[a] == 1) return 0;
  int b = static_cast<int>((r[a] - G.lo[a]) / G.binw[a]);
  return std::min(std::max(b, 0), G.nb[a] - 1);
}

}  // namespace

NeighborList build_neighbors(const Tables& t, const Config& c, int nthreads) {
  return neighbors_of(build_grid(t, c), 0, c.natoms, nthreads);
}

NeighborGrid build_grid(const Tables& t, const Config& c) {
  NeighborGrid G;
  G.t = &t;
  G.c = c;
  const Params& p = t.params;
  const int N = c.natoms;
  if (N < 0) throw std::invalid_argument("negative number of atoms");
  const int nt = p.ntypes();
  for (int i = 0; i < N; ++i) {
    if (c.types[i] < 0 || c.types[i] >= nt)
      throw std::invalid_argument("atom " + std::to_string(i) + " has type index " +
                                  std::to_string(c.types[i]) + " outside 0.." +
                                  std::to_string(nt - 1));
    for (int a = 0; a < 3; ++a)
      if (!std::isfinite(c.positions[3 * i + a]))
        throw std::invalid_argument("atom " + std::to_string(i) +
                                    " has a non-finite position (NaN or inf)");
  }
  const auto basis = effective_basis(c);
  // Inverse of the basis (rows are vectors): frac = x · inv.
  const Vec c01 = cross(basis[1], basis[2]), c12 = cross(basis[2], basis[0]),
            c20 = cross(basis[0], basis[1]);
  const double vol = dot(basis[0], c01);
  std::array<Vec, 3> recip{};  // recip[k] · basis[l] = δ_kl
  for (int a = 0; a < 3; ++a) {
    recip[0][a] = c01[a] / vol;
    recip[1][a] = c12[a] / vol;
    recip[2][a] = c20[a] / vol;
  }
  double rmax = 0.0;
  for (double r : p.radelem) rmax = std::max(rmax, r);
  const double rc = 2.0 * rmax * p.rcutfac;

  int nimg[3];
  double reach[3];
  double nimages = 1.0;
  for (int k = 0; k < 3; ++k) {
    const double h = 1.0 / norm(recip[k]);  // distance between lattice planes
    reach[k] = c.pbc[k] ? rc / h : 0.0;
    nimg[k] = c.pbc[k] ? static_cast<int>(std::ceil(reach[k])) : 0;
    nimages *= 2.0 * nimg[k] + 1.0;
  }
  if (nimages > 1e6)
    throw std::invalid_argument("the periodic cell is too thin for the cutoff (" +
                                std::to_string(static_cast<long long>(nimages)) +
                                " images per atom needed)");

  // Wrapped positions and fractional coordinates; wrap[i] is the lattice shift taken off atom i.
  std::vector<double> frac(3 * N);
  auto& x = G.x;
  auto& wrap = G.wrap;
  x.resize(3 * N);
  wrap.assign(3 * N, 0);
  for (int i = 0; i < N; ++i) {
    Vec r{c.positions[3 * i], c.positions[3 * i + 1], c.positions[3 * i + 2]};
    for (int k = 0; k < 3; ++k) {
      double s = dot(r, recip[k]);
      if (c.pbc[k]) {
        double w = std::floor(s);
        if (!(std::fabs(w) < 1e8))
          throw std::invalid_argument("atom " + std::to_string(i) +
                                      " lies more than 1e8 cell lengths outside the cell");
        s -= w;
        if (s >= 1.0) {
          s = 0.0;
          w += 1.0;
        }
        wrap[3 * i + k] = static_cast<int32_t>(w);
      }
      frac[3 * i + k] = s;
    }
    for (int a = 0; a < 3; ++a)
      x[3 * i + a] = frac[3 * i] * basis[0][a] + frac[3 * i + 1] * basis[1][a] +
                     frac[3 * i + 2] * basis[2][a];
  }

  // Ghost images near the home cell.
  auto& gx = G.gx;
  auto& gown = G.gown;    // owner atom
  auto& gshift = G.gshift;  // image shift (3 per ghost)
  auto& ghome = G.ghome;  // the atom itself, unshifted
  std::vector<int32_t> gsnum;  // shift number (< nimages <= 1e6 < 2^20) of each ghost
  int snum = 0;
  for (int s0 = -nimg[0]; s0 <= nimg[0]; ++s0)
    for (int s1 = -nimg[1]; s1 <= nimg[1]; ++s1)
      for (int s2 = -nimg[2]; s2 <= nimg[2]; ++s2, ++snum) {
        const int s[3] = {s0, s1, s2};
        for (int j = 0; j < N; ++j) {
          bool keep = true;
          for (int k = 0; k < 3 && keep; ++k)
            if (c.pbc[k]) {
              double f = frac[3 * j + k] + s[k];
              keep = f >= -reach[k] - 1e-9 && f <= 1.0 + reach[k] + 1e-9;
            }
          if (!keep) continue;
          gown.push_back(j);
          gsnum.push_back(snum);
          for (int k = 0; k < 3; ++k) gshift.push_back(s[k]);
          ghome.push_back(s0 == 0 && s1 == 0 && s2 == 0);
          for (int a = 0; a < 3; ++a)
            gx.push_back(x[3 * j + a] + s0 * basis[0][a] + s1 * basis[1][a] + s2 * basis[2][a]);
        }
      }
  const int64_t ng = static_cast<int64_t>(gown.size());

  // Cartesian bins of edge >= rc over the ghosts' bounding box.
  Vec lo{1e300, 1e300, 1e300}, hi{-1e300, -1e300, -1e300};
  for (int64_t g = 0; g < ng; ++g)
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], gx[3 * g + a]);
      hi[a] = std::max(hi[a], gx[3 * g + a]);
    }
  auto& nb = G.nb;
  auto& binw = G.binw;
  for (int a = 0; a < 3; ++a) G.lo[a] = lo[a];
  double bin_edge = rc;
  for (;;) {
    double total = 1.0;
    for (int a = 0; a < 3; ++a) {
      double len = ng ? hi[a] - lo[a] : 0.0;
      nb[a] = std::max(1, static_cast<int>(std::floor(len / bin_edge)));
      nb[a] = std::min(nb[a], 1 << 20);
      binw[a] = nb[a] > 1 ? len / nb[a] : 1e300;
      total *= nb[a];
    }
    if (total <= 8.0 * ng + 64.0) break;
    bin_edge *= 2.0;
  }
  auto bin_of = [&G](const double* r, int a) { return snap::bin_of(G, r, a); };
  const int64_t nbins = int64_t(nb[0]) * nb[1] * nb[2];
  auto& bstart = G.bstart;
  auto& border = G.border;
  bstart.assign(nbins + 1, 0);
  border.resize(ng);
  std::vector<int64_t> gbin(ng);
  for (int64_t g = 0; g < ng; ++g) {
    const double* r = &gx[3 * g];
    gbin[g] = (int64_t(bin_of(r, 0)) * nb[1] + bin_of(r, 1)) * nb[2] + bin_of(r, 2);
    ++bstart[gbin[g] + 1];
  }
  for (int64_t b = 0; b < nbins; ++b) bstart[b + 1] += bstart[b];
  {
    std::vector<int64_t> fill(bstart.begin(), bstart.end() - 1);
    for (int64_t g = 0; g < ng; ++g) border[fill[gbin[g]]++] = g;
  }
  G.bx.resize(3 * ng);
  G.btype.resize(ng);
  G.bkey.resize(ng);
  for (int64_t q = 0; q < ng; ++q) {
    const int64_t g = border[q];
    const int m = gown[g];
    for (int a = 0; a < 3; ++a) G.bx[3 * q + a] = gx[3 * g + a];
    G.btype[q] = c.types[m];
    G.bkey[q] = (uint64_t(p.chemflag ? c.types[m] : 0) << 55) | (uint64_t(m) << 20) |
                uint64_t(gsnum[g]);
  }
  return G;
}

NeighborList neighbors_of(const NeighborGrid& G, int i0, int i1, int nthreads) {
  const Params& p = G.t->params;
  const Config& c = G.c;
  const auto &x = G.x, &gx = G.gx;
  const auto &gown = G.gown, &gshift = G.gshift, &wrap = G.wrap;
  const auto& ghome = G.ghome;
  const auto &bstart = G.bstart, &border = G.border;
  const auto& nb = G.nb;
  auto bin_of = [&G](const double* r, int a) { return snap::bin_of(G, r, a); };
  const int n = i1 - i0;
  const double rcf = p.rcutfac;
  // No real structure has this many neighbours per atom: refuse instead of exhausting memory.
  const size_t max_neighbours = 20000;
  bool too_many = false;
  int64_t overlap_i = -1, overlap_m = -1;
  std::vector<std::vector<int64_t>> found(n);  // per centre: bin-order entries q, then images
  // Squared cutoff of each type pair.
  const int nt = p.ntypes();
  std::vector<double> rc2(nt * nt);
  for (int a = 0; a < nt; ++a)
    for (int b = 0; b < nt; ++b) {
      const double r = (p.radelem[a] + p.radelem[b]) * rcf;
      rc2[a * nt + b] = r * r;
    }
  const auto& bx = G.bx;
  const auto& btype = G.btype;
  const auto& bkey = G.bkey;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<std::pair<uint64_t, int64_t>> keyed;
#pragma omp for schedule(dynamic, 64)
    for (int i = i0; i < i1; ++i) {
      const double* xi = &x[3 * i];
      const double* rc2i = &rc2[c.types[i] * nt];
      int bi[3] = {bin_of(xi, 0), bin_of(xi, 1), bin_of(xi, 2)};
      auto& out = found[i - i0];
      for (int d0 = -1; d0 <= 1; ++d0)
        for (int d1 = -1; d1 <= 1; ++d1) {
          const int b0 = bi[0] + d0, b1 = bi[1] + d1;
          if (b0 < 0 || b1 < 0 || b0 >= nb[0] || b1 >= nb[1]) continue;
          // bins (b0, b1, bi[2]-1 .. bi[2]+1) are consecutive: one range of entries
          const int64_t row = (int64_t(b0) * nb[1] + b1) * nb[2];
          const int64_t q0 = bstart[row + std::max(bi[2] - 1, 0)];
          const int64_t q1 = bstart[row + std::min(bi[2] + 1, nb[2] - 1) + 1];
          for (int64_t q = q0; q < q1; ++q) {
            const double dx = bx[3 * q] - xi[0], dy = bx[3 * q + 1] - xi[1],
                         dz = bx[3 * q + 2] - xi[2];
            const double r2 = dx * dx + dy * dy + dz * dz;
            if (r2 < rc2i[btype[q]] && r2 > 1e-20) out.push_back(q);
            if (out.size() > max_neighbours) break;
            if (r2 <= 1e-20) {
              const int64_t g = border[q];
              const int m = gown[g];
              if (!(m == i && ghome[g])) {
#pragma omp critical(snap_overlap)
                if (overlap_i < 0 || i < overlap_i) {
                  overlap_i = i;
                  overlap_m = m;
                }
              }
            }
          }
          if (out.size() > max_neighbours) break;
        }
      if (out.size() > max_neighbours) {
#pragma omp atomic write
        too_many = true;
        continue;
      }
      // Canonical order: (element of m, m, image), the key of each entry.
      keyed.resize(out.size());
      for (size_t k = 0; k < out.size(); ++k) keyed[k] = {bkey[out[k]], border[out[k]]};
      std::sort(keyed.begin(), keyed.end(),
                [](const auto& u, const auto& v) { return u.first < v.first; });
      for (size_t k = 0; k < out.size(); ++k) out[k] = keyed[k].second;
    }
  }

  if (overlap_i >= 0) throw overlap_error(overlap_i, overlap_m);
  if (too_many)
    throw std::invalid_argument("an atom has more than " + std::to_string(max_neighbours) +
                                " neighbours within the cutoff (atoms on top of each other, or a"
                                " cell far too small)");
  NeighborList nl;
  nl.start.assign(n + 1, 0);
  for (int k = 0; k < n; ++k) nl.start[k + 1] = nl.start[k] + found[k].size();
  nl.owner.resize(nl.start[n]);
  nl.rij.resize(3 * nl.start[n]);
  nl.shift.resize(3 * nl.start[n]);
  for (int i = i0; i < i1; ++i) {
    int64_t o = nl.start[i - i0];
    for (int64_t g : found[i - i0]) {
      const int m = gown[g];
      nl.owner[o] = m;
      for (int a = 0; a < 3; ++a) nl.rij[3 * o + a] = gx[3 * g + a] - x[3 * i + a];
      // x_m + s = r_m - wrap_m + s and x_i = r_i - wrap_i (in lattice units)
      for (int k = 0; k < 3; ++k)
        nl.shift[3 * o + k] = gshift[3 * g + k] - wrap[3 * m + k] + wrap[3 * i + k];
      ++o;
    }
  }
  return nl;
}

}  // namespace snap
