// mpisnap SNAP core: public C++ interface (pure C++17, no Python, no MPI).
//
// Conventions (see ../../README.md and the SNAP specification the project follows):
//  * units: Å for lengths, descriptors are dimensionless, derivatives are 1/Å, virial rows are
//    "descriptor × Å × 1/Å" = energy-like (eV when multiplied by eV coefficients);
//  * angular labels are doubled (j = 2J) and B components come in LAMMPS ML-SNAP order;
//  * r_ij = r_j − r_i (neighbour minus centre); force rows are −Σ_i ∂B_i/∂r_m;
//  * virial rows are W = −Σ_i Σ_n r_in ⊗ ∂B_i/∂r_in in Voigt order xx yy zz yz xz xy;
//  * atom types are 0-based here (type t ↔ LAMMPS type t+1); with chemflag, element = type.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace snap {

// std::vector whose resize() leaves doubles uninitialised: large outputs are first touched (and
// so placed and zeroed) by the threads that fill them, not by one serial memset.
template <class T>
struct default_init_allocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = default_init_allocator<U>;
  };
  default_init_allocator() = default;
  template <class U>
  default_init_allocator(const default_init_allocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using dvec = std::vector<double, default_init_allocator<double>>;

struct Params {
  int twojmax = 6;
  double rcutfac = 4.67637;
  double rfac0 = 0.99363;
  double rmin0 = 0.0;
  std::vector<double> radelem{0.5};  // per type
  std::vector<double> wj{1.0};       // per type (neighbour weight)
  bool switchflag = true;
  bool switchinnerflag = false;
  std::vector<double> sinner;  // per type, used iff switchinnerflag
  std::vector<double> dinner;  // per type, used iff switchinnerflag
  bool bzeroflag = true;
  bool bnormflag = false;
  bool wselfallflag = false;
  bool chemflag = false;
  bool quadraticflag = false;

  int ntypes() const { return static_cast<int>(radelem.size()); }
  int nelem() const { return chemflag ? ntypes() : 1; }
  // Throws std::invalid_argument naming the offending parameter.
  void validate() const;
};

// Index tables built once per parameter set (Clebsch–Gordan, block offsets, triples,
// derivative contraction tasks).
struct Tables {
  explicit Tables(const Params& p);

  Params params;
  int J = 0;        // twojmax
  int K = 0;        // bispectrum components per element triple
  int nelem = 1;
  int ncoeff = 0;   // linear columns per atom: K (non-chem) or K*nelem^3
  int nvalues = 0;  // ncoeff (+ ncoeff(ncoeff+1)/2 if quadratic)

  // Full U blocks: offset(j, ma, mb) = ufull_off[j] + (j+1)*mb + ma.
  std::vector<int> ufull_off;
  int ufull = 0;
  // Compact half blocks: entries (ma, mb) with 2mb < j (all ma) plus, for even j, mb = j/2 with
  // ma <= j/2. half_wt = 2 (off-centre) or 1 (centre of an even block): the factor turning a half
  // sum into the full inner product  Σ_all Re(conj X · Y).
  std::vector<int> half_off, half_n;
  std::vector<int> half_full;    // full-block index (within block j) of each compact entry
  std::vector<double> half_wt;
  int H = 0;  // total compact entries

  struct Triple { int j1, j2, j; };
  // Z triples: j1 >= j2, |j1-j2| <= j <= min(J, j1+j2), step 2, in LAMMPS order.
  std::vector<Triple> ztrip;
  std::vector<int> zindex;   // (j1*(J+1)+j2)*(J+1)+j -> Z triple index or -1
  std::vector<int> zoff;     // offset (in doubles: re block then im block) of each Z triple
  int zsize = 0;             // doubles per element pair
  std::vector<int> cg_off;   // per Z triple: offset in cg
  std::vector<double> cg;    // per Z triple dense (j1+1)x(j2+1): C(j1,ma1; j2,ma2 | j, ma)

  // Z entries, per triple its compact half entries (ma, mb) in order: the sum runs over
  // mb1 = mb1lo + r (r < nb) and ma1 = ma1lo + k (k < na) with U1 element pa + (j1+1) r + k,
  // U2 element pb − (j2+1) r − k, coefficients cg[ca + j2 k] and cg[cb + j2 r].
  struct ZEntry { int na, nb, pa, pb, ca, cb; };
  std::vector<ZEntry> zent;
  std::vector<int> zent_off;  // per Z triple: its first entry

  // B components (j1 >= j2, j >= j1), LAMMPS order.
  std::vector<Triple> btrip;
  std::vector<int> bz;       // Z triple index of (j1, j2, j)
  std::vector<double> bzero; // value subtracted (j+1, or 1 with bnormflag)

  // Derivative contraction tasks for a neighbour of element nu: for block jj, out column `col`
  // (linear column within the atom's ncoeff) gains coef * <dU_jj, Z[pair][triple]>.
  struct Task { int col; int zpair; int zoff; double coef; };
  std::vector<std::vector<std::vector<Task>>> tasks;  // [nu][jj]

  // Packed Z layout (kernels.cpp): the Z vectors of all element pairs, grouped by their last
  // label j ("block"): block jj holds a [2 half_n[jj]][#u] matrix whose column u is the Z vector
  // of one (pair, triple) with j = jj — the operand of the dB product for that block.
  // Z^{e2 e1}_{j1 j1 j} = Z^{e1 e2}_{j1 j1 j} (the two Clebsch–Gordan exchange signs cancel), so
  // such a pair of vectors is stored once (as the e1 < e2 one).
  std::vector<int> zu_blk;   // per block jj (J+2 entries): its u range [zu_blk[jj], zu_blk[jj+1])
  std::vector<int> zu_off;   // per block: offset of its matrix
  int zu_size = 0;           // doubles in all blocks
  std::vector<int> zu_of;    // per (pair * #Z triples + triple): its u (the stored one's)
  std::vector<char> zu_own;  // per (pair, triple): 1 if stored under that pair
  int zu(int pair, int tz) const { return zu_of[pair * static_cast<int>(ztrip.size()) + tz]; }
  // Where entry e (< 2 half_n[j]) of the Z vector of (pair, triple tz) lies in the packed layout.
  int zpos(int pair, int tz, int e) const {
    const int j = ztrip[tz].j, u = zu(pair, tz);
    return zu_off[j] + e * (zu_blk[j + 1] - zu_blk[j]) + (u - zu_blk[j]);
  }
  // The dB plan for a neighbour of element nu: every output column as a short sum of
  // coef * <dŨ_jj, Z_u> (the tasks of that element, merged per u).
  struct DbPlan {
    std::vector<int> cols;    // columns with a derivative from this element, ascending
    std::vector<int> cstart;  // per such column: its terms [cstart[c], cstart[c+1])
    std::vector<int> tu;      // per term: u
    std::vector<double> tc;   // per term: coefficient
    std::vector<int> idle;    // columns without one (zero derivative)
    std::vector<int> ctb, cte;  // per column (all ncoeff): its terms [ctb, cte) (empty if idle)
    int clo = 0, chi = 0;       // the columns with a derivative lie in [clo, chi) (ChemSNAP: the
                                // element triples without nu, at the ends, are skipped)
  };
  std::vector<DbPlan> dbplan;  // [nu]

  std::vector<double> rootpq;  // sqrt(p/q), (J+2)x(J+2)

  int zi(int j1, int j2, int j) const { return zindex[(j1 * (J + 1) + j2) * (J + 1) + j]; }
};

// One configuration. positions: N x 3 (row-major). cell: 3 x 3, rows are cell vectors.
struct Config {
  const double* positions = nullptr;
  const double* cell = nullptr;
  const int32_t* types = nullptr;  // 0-based
  int natoms = 0;
  bool pbc[3] = {false, false, false};
};

struct Options {
  bool forces = true;   // force rows
  bool virial = true;   // virial rows
  bool pairs = false;   // per-neighbour-image derivatives
  bool B = true;        // per-atom descriptors (Result::B)
};

// Where force rows go: value k of type block t of row 3m+a (atom m, direction a) is
// data[(3m+a) * row_stride + t * type_stride + k], k < nvalues (e.g. a strided view of
// design-matrix rows). Strides count doubles.
struct RowsView {
  double* data = nullptr;
  int64_t row_stride = 0, type_stride = 0;
};

// Results of one configuration, all row-major doubles.
struct Result {
  int natoms = 0, ntypes = 0, nvalues = 0;
  dvec B;                           // natoms x nvalues
  std::vector<double> energy_row;   // ntypes x nvalues      (Σ_{i of type t} B_i)
  dvec force_rows;                  // 3N x ntypes x nvalues (−Σ_{i of type t} ∂B_i/∂r_{m,a})
  std::vector<double> virial_rows;  // 6 x ntypes x nvalues
  // One entry per neighbour image n of centre atom i (images of i itself included):
  std::vector<int64_t> pair_i, pair_j;  // centre atom, atom that n is an image of
  std::vector<double> pair_rij;         // npairs x 3: r_in = r_n − r_i (Å)
  dvec pair_dBdr;                       // npairs x 3 x nvalues: ∂B_i/∂r_in
  std::vector<int64_t> nneigh;          // per atom neighbour count
};

// Compute one configuration with `nthreads` OpenMP threads. Thread-count invariant bitwise.
// Works through the configuration a block of centre atoms at a time (a Job), so its working memory
// beyond the results is bounded by default_block_pairs.
Result compute(const Tables& t, const Config& c, const Options& o, int nthreads);

// Neighbour images per block that keep the per-block derivative scratch (3 x ncoeff doubles per
// image) near 64 MiB.
int64_t default_block_pairs(const Tables& t);

struct JobState;

// One configuration computed block by block: the neighbour list is built once, then each step()
// computes the next block of centre atoms (in atom order) and adds its contributions to the
// results, so the working memory beyond the results is bounded by the block, and the caller
// regains control between blocks (to honour an interrupt, say). The results do not depend on the
// block sizes or the thread count (bitwise): every force-row element is accumulated over centre
// atoms in atom order (atom m's own term at centre m), energy and virial rows over atoms in atom
// order.
//
// Force rows go to `force_out` when given (its 3N x ntypes x nvalues elements are zeroed first),
// else to Result::force_rows. `t`, the arrays of `c` and `force_out` must outlive the Job.
// Throws std::invalid_argument (from the neighbour list) for an invalid configuration.
class Job {
 public:
  Job(const Tables& t, const Config& c, const Options& o, int nthreads, RowsView force_out = {});
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int natoms() const;
  int done() const;  // centre atoms computed so far (a prefix of the atoms)
  // Computes the next block: as many atoms as fit in `max_pairs` neighbour images, but at least
  // min(max_atoms, 8 x threads) and at most max_atoms. Returns done().
  int step(int64_t max_pairs, int max_atoms);
  // The results, once done() == natoms() (force_rows left empty when they went to force_out).
  Result finish();

 private:
  std::unique_ptr<JobState> s_;
};

// Compute a batch; configurations are spread over threads (each computed single-threaded) when
// there are enough of them, else one after another with threads inside each.
std::vector<Result> compute_batch(const Tables& t, const std::vector<Config>& cs, const Options& o,
                                  int nthreads);

// Which SIMD kernel variant the dispatcher selected ("avx512", "avx2" or "generic").
std::string kernel_isa();

}  // namespace snap
