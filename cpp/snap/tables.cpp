// Index tables for the SNAP core: parameters validation, Clebsch–Gordan coefficients, block
// layouts, Z/B triples and the derivative contraction tasks.
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <tuple>

#include "snap.hpp"

namespace snap {

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

bool finite_positive(double x) { return std::isfinite(x) && x > 0.0; }

// Clebsch–Gordan coefficient <J1 M1 J2 M2 | J M> by Racah's formula, all labels doubled.
double clebsch_gordan(int j1, int m1, int j2, int m2, int j, int m) {
  if (m1 + m2 != m) return 0.0;
  auto f = [](int n) { return std::tgamma(n + 1.0); };
  double pre = std::sqrt((j + 1) * f((j1 + j2 - j) / 2) * f((j1 - j2 + j) / 2) *
                         f((-j1 + j2 + j) / 2) / f((j1 + j2 + j) / 2 + 1));
  pre *= std::sqrt(f((j1 + m1) / 2) * f((j1 - m1) / 2) * f((j2 + m2) / 2) * f((j2 - m2) / 2) *
                   f((j + m) / 2) * f((j - m) / 2));
  double sum = 0.0;
  for (int z = 0;; ++z) {
    int a = (j1 + j2 - j) / 2 - z, b = (j1 - m1) / 2 - z, c = (j2 + m2) / 2 - z;
    int d = (j - j2 + m1) / 2 + z, e = (j - j1 - m2) / 2 + z;
    if (a < 0 || b < 0 || c < 0) break;
    if (d < 0 || e < 0) continue;
    sum += ((z % 2) ? -1.0 : 1.0) / (f(z) * f(a) * f(b) * f(c) * f(d) * f(e));
  }
  return pre * sum;
}

}  // namespace

void Params::validate() const {
  require(twojmax >= 0, "twojmax must be >= 0 (got " + std::to_string(twojmax) + ")");
  require(twojmax <= 24, "twojmax must be <= 24 (got " + std::to_string(twojmax) + ")");
  require(finite_positive(rcutfac), "rcutfac must be a positive finite number");
  require(std::isfinite(rfac0) && rfac0 > 0.0 && rfac0 < 1.0, "rfac0 must lie in (0, 1)");
  require(std::isfinite(rmin0) && rmin0 >= 0.0, "rmin0 must be >= 0");
  const int nt = ntypes();
  require(nt >= 1, "radelem needs one value per type (got none)");
  require(static_cast<int>(wj.size()) == nt, "wj needs one value per type (" +
                                                 std::to_string(nt) + "), got " +
                                                 std::to_string(wj.size()));
  for (int t = 0; t < nt; ++t) {
    require(finite_positive(radelem[t]), "radelem must be positive and finite");
    require(std::isfinite(wj[t]), "wj must be finite");
    require(radelem[t] * 2.0 * rcutfac > rmin0, "rmin0 must be smaller than every cutoff");
  }
  if (switchinnerflag) {
    require(static_cast<int>(sinner.size()) == nt && static_cast<int>(dinner.size()) == nt,
            "switchinnerflag needs sinner and dinner with one value per type");
    for (int t = 0; t < nt; ++t) {
      require(std::isfinite(sinner[t]) && sinner[t] >= 0.0, "sinner must be >= 0");
      require(finite_positive(dinner[t]), "dinner must be > 0");
    }
  }
  if (chemflag) require(nt <= 16, "chemflag supports at most 16 element types");
}

Tables::Tables(const Params& p) : params(p) {
  p.validate();
  J = p.twojmax;
  nelem = p.nelem();

  rootpq.assign((J + 2) * (J + 2), 0.0);
  for (int a = 1; a <= J + 1; ++a)
    for (int b = 1; b <= J + 1; ++b) rootpq[a * (J + 2) + b] = std::sqrt(double(a) / b);

  ufull_off.resize(J + 1);
  half_off.resize(J + 1);
  half_n.resize(J + 1);
  for (int j = 0; j <= J; ++j) {
    ufull_off[j] = ufull;
    ufull += (j + 1) * (j + 1);
    half_off[j] = H;
    int n = 0;
    for (int mb = 0; 2 * mb <= j; ++mb)
      for (int ma = 0; ma <= j; ++ma) {
        if (2 * mb == j && 2 * ma > j) continue;
        half_full.push_back((j + 1) * mb + ma);
        half_wt.push_back((2 * mb == j && 2 * ma == j) ? 1.0 : 2.0);
        ++n;
      }
    half_n[j] = n;
    H += n;
  }

  zindex.assign((J + 1) * (J + 1) * (J + 1), -1);
  for (int j1 = 0; j1 <= J; ++j1)
    for (int j2 = 0; j2 <= j1; ++j2)
      for (int j = j1 - j2; j <= std::min(J, j1 + j2); j += 2) {
        zindex[(j1 * (J + 1) + j2) * (J + 1) + j] = static_cast<int>(ztrip.size());
        ztrip.push_back({j1, j2, j});
        zoff.push_back(zsize);
        zsize += 2 * half_n[j];
        cg_off.push_back(static_cast<int>(cg.size()));
        for (int ma1 = 0; ma1 <= j1; ++ma1)
          for (int ma2 = 0; ma2 <= j2; ++ma2) {
            int m1 = 2 * ma1 - j1, m2 = 2 * ma2 - j2, m = m1 + m2;
            cg.push_back((m < -j || m > j) ? 0.0 : clebsch_gordan(j1, m1, j2, m2, j, m));
          }
      }

  for (size_t tz = 0; tz < ztrip.size(); ++tz) {
    const auto [j1, j2, j] = ztrip[tz];
    const int sh = (j1 + j2 - j) / 2;
    zent_off.push_back(static_cast<int>(zent.size()));
    for (int e = 0; e < half_n[j]; ++e) {
      const int f = half_full[half_off[j] + e], ma = f % (j + 1), mb = f / (j + 1);
      const int ma1lo = std::max(0, (2 * ma - j - j2 + j1) / 2);
      const int ma1hi = std::min(j1, (2 * ma - j + j2 + j1) / 2);
      const int mb1lo = std::max(0, (2 * mb - j - j2 + j1) / 2);
      const int mb1hi = std::min(j1, (2 * mb - j + j2 + j1) / 2);
      const int ma2 = ma - ma1lo + sh, mb2 = mb - mb1lo + sh;
      zent.push_back({ma1hi - ma1lo + 1, mb1hi - mb1lo + 1, (j1 + 1) * mb1lo + ma1lo,
                      (j2 + 1) * mb2 + ma2, cg_off[tz] + ma1lo * (j2 + 1) + ma2,
                      cg_off[tz] + mb1lo * (j2 + 1) + mb2});
    }
  }
  zent_off.push_back(static_cast<int>(zent.size()));

  for (int j1 = 0; j1 <= J; ++j1)
    for (int j2 = 0; j2 <= j1; ++j2)
      for (int j = j1 - j2; j <= std::min(J, j1 + j2); j += 2)
        if (j >= j1) {
          btrip.push_back({j1, j2, j});
          bz.push_back(zi(j1, j2, j));
          bzero.push_back(p.bnormflag ? 1.0 : double(j + 1));
        }
  K = static_cast<int>(btrip.size());
  ncoeff = p.chemflag ? K * nelem * nelem * nelem : K;
  nvalues = p.quadraticflag ? ncoeff + ncoeff * (ncoeff + 1) / 2 : ncoeff;

  // Derivative tasks (three-term formula), merged when the same Z feeds the same column.
  tasks.assign(nelem, std::vector<std::vector<Task>>(J + 1));
  const int ne = nelem;
  for (int nu = 0; nu < ne; ++nu) {
    std::map<std::tuple<int, int, int, int>, double> acc;  // (block, col, pair, zoff) -> coef
    std::vector<std::tuple<int, int, int, int>> order;
    auto add = [&](int block, int col, int pair, int ztr, double coef) {
      auto key = std::make_tuple(block, col, pair, zoff[ztr]);
      auto it = acc.find(key);
      if (it == acc.end()) {
        acc.emplace(key, coef);
        order.push_back(key);
      } else {
        it->second += coef;
      }
    };
    for (int k = 0; k < K; ++k) {
      const auto [j1, j2, j] = btrip[k];
      double c1 = p.bnormflag ? 1.0 : double(j + 1) / (j1 + 1);
      double c2 = p.bnormflag ? 1.0 : double(j + 1) / (j2 + 1);
      for (int e1 = 0; e1 < ne; ++e1)
        for (int e2 = 0; e2 < ne; ++e2) {
          add(j, ((e1 * ne + e2) * ne + nu) * K + k, e1 * ne + e2, zi(j1, j2, j), 1.0);
          add(j1, ((nu * ne + e2) * ne + e1) * K + k, e1 * ne + e2, zi(j, j2, j1), c1);
          add(j2, ((e1 * ne + nu) * ne + e2) * K + k, e2 * ne + e1, zi(j, j1, j2), c2);
        }
    }
    for (const auto& key : order) {
      const auto [block, col, pair, zo] = key;
      tasks[nu][block].push_back({col, pair, zo, acc[key]});
    }
  }

  // Packed Z layout: per block, the stored (pair, triple) vectors in (pair, triple) order.
  const int nz = static_cast<int>(ztrip.size());
  zu_of.assign(ne * ne * nz, -1);
  zu_own.assign(ne * ne * nz, 0);
  zu_blk.assign(1, 0);
  for (int jj = 0; jj <= J; ++jj) {
    zu_off.push_back(zu_size);
    int n = zu_blk.back();
    for (int pair = 0; pair < ne * ne; ++pair)
      for (int tz = 0; tz < nz; ++tz) {
        const Triple& tr = ztrip[tz];
        if (tr.j != jj || (tr.j1 == tr.j2 && pair / ne > pair % ne)) continue;
        zu_of[pair * nz + tz] = n++;
        zu_own[pair * nz + tz] = 1;
      }
    zu_size += 2 * half_n[jj] * (n - zu_blk.back());
    zu_blk.push_back(n);
  }
  for (int pair = 0; pair < ne * ne; ++pair)
    for (int tz = 0; tz < nz; ++tz)
      if (!zu_own[pair * nz + tz])
        zu_of[pair * nz + tz] = zu_of[((pair % ne) * ne + pair / ne) * nz + tz];

  // dB plans: the tasks of each element, merged per (column, u), columns ascending.
  std::vector<int> trip_of_zoff(zsize + 1, -1);
  for (int tz = 0; tz < nz; ++tz) trip_of_zoff[zoff[tz]] = tz;
  dbplan.assign(ne, DbPlan());
  for (int nu = 0; nu < ne; ++nu) {
    DbPlan& pl = dbplan[nu];
    std::vector<std::vector<std::pair<int, double>>> terms(ncoeff);  // col -> (u, coef)
    for (int jj = 0; jj <= J; ++jj)
      for (const Task& task : tasks[nu][jj]) {
        const int u = zu(task.zpair, trip_of_zoff[task.zoff]);
        auto& tl = terms[task.col];
        auto same = std::find_if(tl.begin(), tl.end(), [&](const auto& x) { return x.first == u; });
        if (same == tl.end())
          tl.push_back({u, task.coef});
        else
          same->second += task.coef;
      }
    pl.cstart.push_back(0);
    pl.ctb.assign(ncoeff, 0);
    pl.cte.assign(ncoeff, 0);
    for (int col = 0; col < ncoeff; ++col) {
      pl.ctb[col] = pl.cte[col] = static_cast<int>(pl.tu.size());
      if (terms[col].empty()) {
        pl.idle.push_back(col);
        continue;
      }
      pl.cols.push_back(col);
      for (const auto& [u, c] : terms[col]) {
        pl.tu.push_back(u);
        pl.tc.push_back(c);
      }
      pl.cstart.push_back(static_cast<int>(pl.tu.size()));
      pl.cte[col] = static_cast<int>(pl.tu.size());
    }
    pl.clo = pl.cols.empty() ? 0 : pl.cols.front();
    pl.chi = pl.cols.empty() ? 0 : pl.cols.back() + 1;
  }
}

}  // namespace snap
