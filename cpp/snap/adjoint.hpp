// SNAP energies and forces for one set of coefficients (the MD / calculator path).
//
// Instead of the per-component derivatives dB_k/dr (the design-matrix path of compute()), each
// centre atom i gets its adjoint Y^ν_J = Σ_k β̃_{i,k} ∂B_{i,k}/∂Ũ^ν_J — a linear combination of
// the atom's Z blocks with the effective coefficients β̃_i = ∂E_i/∂B_i — and every neighbour n of
// element ν then needs only ∂E_i/∂r_in = Σ_J ⟨∂Ũ^{(n)}_J, Y^ν_J⟩ (spec §12.2). This is the exact
// adjoint of the three-term derivative formula (spec §10.2), so forces are −∇E for any
// coefficients, chem ones included.
//
// Conventions as in snap.hpp: Å and eV; r_in = r_n − r_i; virial W = −Σ_i Σ_n r_in ⊗ ∂E_i/∂r_in
// in Voigt order xx yy zz yz xz xy (eV); types are 0-based.
#pragma once

#include <vector>

#include "snap.hpp"

namespace snap {

struct PotentialResult {
  int natoms = 0;
  double energy = 0.0;          // Σ_i E_i, summed in atom order (eV)
  std::vector<double> energies;  // natoms: E_i (eV)
  std::vector<double> forces;    // natoms x 3: −∂E/∂r_m (eV/Å)
  std::vector<double> virial;    // 6: eV, Voigt xx yy zz yz xz xy
};

// Energies, forces and virial of a SNAP potential.
//
// `coeff` holds one row of 1 + nvalues doubles per type (the .snapcoeff block of that type's
// element): β0, the ncoeff linear coefficients, then (quadraticflag) the ncoeff(ncoeff+1)/2
// quadratic ones in the upper-triangular order of spec §9, so that
//   E_i = β0 + β·b_i + Σ_k ½ α_kk b_ik² + Σ_{k<l} α_kl b_ik b_il     (b_i bzero-shifted).
// Thread-count invariant bitwise. Throws std::invalid_argument for an invalid configuration.
PotentialResult compute_potential(const Tables& t, const Config& c, const double* coeff,
                                  int nthreads);

}  // namespace snap
