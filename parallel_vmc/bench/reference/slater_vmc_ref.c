/*
 * slater_vmc_ref.c: the plain-C speed reference of parallel_vmc's Monte Carlo kernel for
 * fermions, psi = Slater x RBM x Pade-Jastrow.
 *
 * Problem. P electrons (a closed shell: D = 2: P = 2, 6, 12, 20, 30, ...; D = 3: 2, 8,
 * 20, 40, ...; D = 1: any even P, without the Jastrow factor) in the isotropic harmonic trap V = omega^2 |x|^2 / 2 with the Coulomb
 * repulsion 1/r of every pair (unless --no-coulomb); particles 0 .. P/2-1 spin up, the
 * rest spin down. The trial function is
 *
 *     psi = det(D_up) det(D_down) * F^c * exp(sum_{p<q} A_pq r_pq / (1 + beta_pq r_pq)),
 *
 * with the Slater matrices D_spin[k][j] = phi_j(r_k) of the P/2 lowest oscillator
 * orbitals without their Gaussian, phi_j(r) = prod_d H_{n_jd}(sqrt(omega) r_d)
 * (physicists' Hermite polynomials, filled shell by shell), the RBM marginal F of
 * rbm_vmc_ref.c (c = 1/2 by default, so that F^c carries the Gaussian
 * exp(-omega |x|^2 / 2) at a = b = W = 0 and sigma^2 = c / omega), and the cusp-exact
 * Pade-Jastrow factor: A = 1/(D-1) for antiparallel and 1/(D+1) for parallel spins,
 * beta = 0.5 for both kinds of pair. RBM parameters ~ N(0, 0.01^2) from the seed: the
 * fermion problem of `pvmc bench` (or read from a file, --params).
 *
 * Algorithm: the project's kernel (sampling/kernels.py with wavefunction/rbm.py,
 * slater.py and pair_jastrow.py), with the same work per move:
 *   - Slater: each spin's inverse kept transposed, T[k n + j] = Dinv[j][k]; the
 *     ratio of a move of the k-th particle of a spin to r' is R = sum_j phi_j(r') T[k n + j]
 *     (O(n), one Hermite table at r'), an accepted move updates the inverse by
 *     Sherman-Morrison (O(n^2)), and both inverses are computed from scratch every
 *     --refresh sweeps (100), which measures how far the updated ones had drifted
 *     (inv_err = max |D Dinv - I|);
 *   - RBM: hidden pre-activations, sigmoids and reciprocals cached (see rbm_vmc_ref.c);
 *   - Jastrow: tables of r_pq and of u'(r_pq)/r_pq, a move costing one distance per
 *     other particle;
 *   - the local energy once per sweep: gradient and Laplacian of ln|det| from the
 *     inverses and the orbitals' derivatives, of the RBM from its sigmoids, of the
 *     Jastrow factor and the Coulomb energy from the pair tables;
 *   - Metropolis (box of side step) or importance sampling (Langevin step along the drift
 *     with the Green's function ratio; Umrigar's drift limit a = 1, as the project uses
 *     with determinants, --drift-limit); the step is tuned during the untimed
 *     thermalisation (--therm, 2000 sweeps; the first half tunes towards --target, 0.5
 *     for Metropolis and 0.93 for importance sampling).
 * Every E_L enters the error bar (blocking with Jonsson's test, done online, as
 * parallel_vmc/stats/blocking.py does it offline).
 *
 * Build and run (`pvmc bench --reference slater` does both, with these flags):
 *
 *     cc -O3 -march=native -ffast-math -o slater_vmc_ref slater_vmc_ref.c -lm
 *     ./slater_vmc_ref [P D H SWEEPS [omega [jastrow 0|1]]] [options]   e.g. 6 2 12 300000
 *     ./slater_vmc_ref 12 2 24 0 --selftest                 exit status 0 on success
 *     ./slater_vmc_ref 12 2 24 20000 --non-interacting      E_L = 28 omega at every sample
 *
 * The self-test (random RBM parameters, betas 0.4 and 0.6, the given P D H omega jastrow):
 * gradient and per-particle Laplacian of ln|psi| of E_L and the drifts of a move against
 * finite differences of ln|psi| from scratch (determinants by Gauss-Jordan elimination),
 * the determinant ratio from the inverse against two fresh determinants, move ratios
 * against |psi'/psi|^2 from scratch, the inverses after 4000 sweeps of Sherman-Morrison
 * updates (both samplers, no rebuild) against fresh ones, the RBM and Jastrow caches
 * likewise, E_L = the closed-shell energy at every sample of the exact non-interacting
 * state (a = b = W = 0, no Jastrow, no Coulomb: 2D 2, 10, 28, 60 omega for P = 2, 6, 12,
 * 20; 3D 3, 18, 60 omega for P = 2, 8, 20), and the error bar of an AR(1) series against
 * its exact value; exit status 1 if any fails.
 *
 * Options: --sampler metropolis|importance, --step S (initial), --therm N, --target A,
 * --psi sqrt|full, --sigma S, --seed N, --beta B[,B_parallel], --refresh N,
 * --params FILE (a (P D numbers), b (H), W (P D x H, row-major), whitespace-separated:
 * the order of the project's theta), --no-coulomb, --non-interacting (a = b = W = 0, no
 * Jastrow factor, no Coulomb: psi is exact and E_L the closed-shell energy),
 * --drift-limit A (0: off).
 *
 * Output: one line of key=value fields: the problem, <E> with its error bar err (the
 * parameters are not optimized: not a physics result), the variance of E_L, the
 * acceptance acc, the tuned step= (by which `pvmc bench` tells a fermion reference),
 * inv_err, cpu (CPU over wall time of the timed sweeps: well below 100% means the run was
 * crowded out), ns/move and ns/sweep.
 *
 * The random numbers, the error bars and the RBM's formulas are those of rbm_vmc_ref.c;
 * each reference is one file that compiles alone.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

#define MAX_D 3
#define SATURATED 1e300 /* exp(u) clamped here: 1/(1 + e) and e/(1 + e) stay exact */
#define TUNE_CHUNK 20   /* sweeps between step updates while tuning (as the project) */

/* ------------------------------------------------------------------ random numbers */

/* xoshiro256** (Blackman and Vigna), the generator of the project's walkers. */
typedef struct {
    uint64_t s[4];
} Rng;

static inline uint64_t rotl64(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

HOT uint64_t rng_next(Rng *g)
{
    uint64_t *s = g->s;
    const uint64_t out = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return out;
}

/* Uniform in [0, 1) from the top 53 bits. */
HOT double uniform(Rng *g) { return (double)(rng_next(g) >> 11) * 0x1.0p-53; }

/* The four state words from a 64-bit seed by splitmix64 (never all zero). */
static void rng_seed(Rng *g, uint64_t seed)
{
    for (int k = 0; k < 4; k++) {
        uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        g->s[k] = z ^ (z >> 31);
    }
}

/* Standard normal deviates by the ziggurat method (Marsaglia and Tsang, 2000) with 256
 * layers of equal area under f(x) = exp(-x^2/2), as the project's kernel draws them:
 * one 64-bit draw per deviate but in about 1 % of the cases. Layer i > 0 is the box
 * [0, zx[i]] x [f(zx[i]), f(zx[i+1])]; layer 0 is the base strip with the tail beyond
 * zig_r, drawn as a box of width zx[0] = v / f(zig_r). */
#define ZIG_N 256
static double zx[ZIG_N + 1], zf[ZIG_N + 1], zinner[ZIG_N], zig_r;

static double zig_gauss(double x) { return exp(-0.5 * x * x); }

/* Area of each layer for a base abscissa r: the strip r f(r) plus the tail. */
static double zig_area(double r)
{
    return r * zig_gauss(r) + 1.2533141373155003 /* sqrt(pi / 2) */ * erfc(r / sqrt(2.0));
}

/* The height reached by the top of the stack of layers built up from r (>= 1 when
 * r is too small, < 1 when too large). */
static double zig_top(double r)
{
    const double v = zig_area(r);
    double x = r;
    for (int i = 1; i < ZIG_N - 1; i++) {
        const double y = v / x + zig_gauss(x);
        if (y >= 1.0) return y;
        x = sqrt(-2.0 * log(y));
    }
    return v / x + zig_gauss(x);
}

static void zig_init(void)
{
    double lo = 1.0, hi = 10.0;
    for (int it = 0; it < 200; it++) { /* r such that the top layer ends at f = 1 */
        const double mid = 0.5 * (lo + hi);
        if (zig_top(mid) >= 1.0) lo = mid;
        else hi = mid;
    }
    zig_r = 0.5 * (lo + hi);
    const double v = zig_area(zig_r);
    zx[0] = v / zig_gauss(zig_r);
    zx[1] = zig_r;
    for (int i = 1; i < ZIG_N - 1; i++) zx[i + 1] = sqrt(-2.0 * log(v / zx[i] + zig_gauss(zx[i])));
    zx[ZIG_N] = 0.0;
    for (int i = 0; i <= ZIG_N; i++) zf[i] = zig_gauss(zx[i]);
    for (int i = 0; i < ZIG_N; i++) zinner[i] = zx[i + 1] / zx[i];
}

HOT double normal(Rng *g)
{
    for (;;) {
        const uint64_t bits = rng_next(g);
        const int i = (int)(bits & (ZIG_N - 1));
        const double v = (double)(bits >> 11) * 0x1.0p-52 - 1.0; /* [-1, 1) */
        const double x = v * zx[i];
        if (fabs(v) < zinner[i]) return x; /* inside the layer's sure part */
        if (i == 0) {                      /* the tail beyond r (Marsaglia's method) */
            double t, y;
            do {
                t = -log(1.0 - uniform(g)) / zig_r;
                y = -log(1.0 - uniform(g));
            } while (2.0 * y <= t * t);
            return v > 0.0 ? zig_r + t : -zig_r - t;
        }
        if (zf[i + 1] + uniform(g) * (zf[i] - zf[i + 1]) < zig_gauss(x)) return x; /* wedge */
    }
}

/* ------------------------------------------------------------------ error bars */

/* Online blocking: the series is fed one value at a time; level k receives the means of
 * consecutive pairs of level k-1 (the complete blocks of 2^k samples from the start).
 * Each level keeps what the blocking analysis needs: count, sum, sum of squares, the sum
 * of products of neighbours, its first and last value. Values are shifted by the first
 * sample against cancellation. */
#define MAX_LEVELS 64
typedef struct {
    long count;
    double shift, total;
    long n[MAX_LEVELS];
    double sum[MAX_LEVELS], sq[MAX_LEVELS], cross[MAX_LEVELS], first[MAX_LEVELS],
        last[MAX_LEVELS], held[MAX_LEVELS];
    int pending[MAX_LEVELS];
} Blocking;

static void blocking_add(Blocking *B, double value)
{
    if (B->count++ == 0) B->shift = value;
    double v = value - B->shift;
    B->total += v;
    for (int k = 0; k < MAX_LEVELS; k++) {
        if (B->n[k] == 0) B->first[k] = v;
        else B->cross[k] += B->last[k] * v;
        B->n[k]++;
        B->sum[k] += v;
        B->sq[k] += v * v;
        B->last[k] = v;
        if (!B->pending[k]) { /* the first of a pair: wait for its partner */
            B->pending[k] = 1;
            B->held[k] = v;
            return;
        }
        B->pending[k] = 0;
        v = 0.5 * (B->held[k] + v);
    }
}

/* The 1 - alpha = 0.99 quantile of chi^2 with df degrees of freedom (Wilson-Hilferty). */
static double chi2_q99(int df)
{
    const double z = 2.3263478740408408, h = 2.0 / (9.0 * df);
    const double t = 1.0 - h + z * sqrt(h);
    return df * t * t * t;
}

typedef struct {
    double mean, error, variance;
} Estimate;

/* Mean and standard error of the mean by Jonsson's automated blocking (Phys. Rev. E 98,
 * 043304 (2018)): the first level k from which the normalised lag-one covariances of
 * all higher levels are consistent with zero (M_k below the chi^2 quantile), its error
 * sqrt(s_k^2 / (n_k - 1)) times sqrt(1 + 2 r_k) for the remaining correlation r_k of
 * neighbouring blocks (clipped to [0.5, 2]), as parallel_vmc/stats/blocking.py does. */
static Estimate blocking_result(const Blocking *B)
{
    Estimate e = {B->count ? B->shift + B->total / B->count : NAN, 0.0, 0.0};
    double s2[MAX_LEVELS], g[MAX_LEVELS], m[MAX_LEVELS + 1];
    int L = 0;
    while (L < MAX_LEVELS && B->n[L] >= 2) {
        const double n = (double)B->n[L], mu = B->sum[L] / n;
        s2[L] = B->sq[L] / n - mu * mu;
        g[L] = (B->cross[L] - mu * (2.0 * B->sum[L] - B->first[L] - B->last[L]) + (n - 1) * mu * mu) / n;
        L++;
    }
    if (L == 0) return e;
    e.variance = s2[0] * B->n[0] / (B->n[0] - 1.0);
    for (int k = 0; k < L; k++)
        if (!(s2[k] > 0.0)) return e; /* constant series: no error */
    m[L] = 0.0;
    for (int k = L - 1; k >= 0; k--) m[k] = m[k + 1] + B->n[k] * (g[k] / s2[k]) * (g[k] / s2[k]);
    int level = L - 1;
    for (int k = 0; k < L; k++)
        if (m[k] < chi2_q99(L - k)) {
            level = k;
            break;
        }
    double f = 1.0 + 2.0 * g[level] / s2[level];
    f = f < 0.5 ? 0.5 : f > 2.0 ? 2.0 : f;
    e.error = sqrt(s2[level] / (B->n[level] - 1.0) * f);
    return e;
}

/* ------------------------------------------------------------------ the state */

typedef struct {
    int P, D, H, M;      /* particles, dimensions, hidden units, coordinates M = P D */
    int n, nt;           /* orbitals per spin (P / 2); Hermite polynomials per axis */
    int jastrow, coulomb, importance, refresh_every;
    double omega, sqo;   /* trap, sqrt(omega) (the orbitals' scale) */
    double c, inv_s2;    /* RBM: psi contains F^c; 1 / sigma^2 */
    double step, drift_limit;
    double *x;           /* positions x[p D + d] */
    /* RBM (see rbm_vmc_ref.c) */
    double *a, *b, *W;          /* visible biases (M), hidden biases (H), W[i H + j] */
    double *u, *s, *r;          /* u_j, sigmoid(u_j), 1 / (1 + exp(u_j)) */
    double *un, *eun, *sn, *rn; /* the proposal's u'_j, exp(u'_j), s'_j, r'_j */
    /* Slater determinants */
    int *qn;             /* quantum numbers n_jd at qn[j D + d] */
    int *hidx;           /* where H_{n_jd} of axis d lies in a Hermite table: d nt + n_jd */
    double *T[2];        /* per spin T[k n + j] = Dinv[j][k]: row k for its k-th particle */
    double *phi;         /* the orbitals at the proposal (n) */
    double *sm, *row;    /* Sherman-Morrison scratch (n each) */
    double *herm;        /* H_m, H_m', H_m'' at one point: three tables of D x nt */
    double *work;        /* a rebuild's matrix and inverse (2 n^2) */
    double R;            /* the determinant ratio of the last proposal */
    double y[MAX_D];     /* the proposed position of the moving particle */
    /* Pade-Jastrow */
    double *cusp, *beta; /* A_pq (0 on the diagonal and without the factor), beta_pq */
    double *dist;        /* r_pq (P x P) */
    double *slope;       /* u'(r_pq) / r_pq (P x P) */
    double *dist_new, *slope_new; /* the proposal's r'_pq and u'(r'_pq) / r'_pq (P) */
    /* local energy */
    double *grad, *lap;  /* grad ln psi (M) and per particle nabla_p^2 ln psi (P) */
} Sys;

static void *alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "slater_vmc_ref: out of memory\n");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------ RBM */

HOT void swap(double **a, double **b)
{
    double *t = *a;
    *a = *b;
    *b = t;
}


/* 1 / (1 + e) and e / (1 + e) for e = exp(u), exact also where e overflowed. */
HOT void sigmoid_pair(double e, double *recip, double *sig)
{
    const double ec = e < SATURATED ? e : SATURATED;
    const double inv = 1.0 / (1.0 + ec);
    *recip = inv;
    *sig = ec * inv;
}

static void rbm_refresh(Sys *S)
{
    for (int j = 0; j < S->H; j++) {
        double t = S->b[j];
        for (int i = 0; i < S->M; i++) t += S->x[i] * S->W[(size_t)i * S->H + j] * S->inv_s2;
        S->u[j] = t;
        sigmoid_pair(exp(t), &S->r[j], &S->s[j]);
    }
}

/* d ln F^c / d x_p at the particle's coordinates xp (D) with sigmoids sig, into g. */
HOT void rbm_drift(const Sys *S, int p, const double *xp, const double *sig, double *g, const int D)
{
    const int H = S->H;
    for (int d = 0; d < D; d++) {
        const int i = p * D + d;
        const double *Wi = S->W + (size_t)i * H;
        double t = -(xp[d] - S->a[i]);
        for (int j = 0; j < H; j++) t += Wi[j] * sig[j];
        g[d] = S->c * S->inv_s2 * t;
    }
}

/* The RBM's |F'/F|^(2c) for particle p moved by dx: the Gaussian's logarithm added to
 * *log_q, the hidden units' product returned; u' and exp(u') left in un, eun. */
HOT double rbm_ratio(Sys *S, int p, const double *dx, double *log_q, const int D)
{
    const int H = S->H;
    const double inv_s2 = S->inv_s2;
    for (int d = 0; d < D; d++) {
        const int i = p * D + d;
        const double xo = S->x[i] - S->a[i], xn = xo + dx[d];
        *log_q -= S->c * inv_s2 * (xn * xn - xo * xo);
    }
    const double *Wp = S->W + (size_t)p * D * H;
    const double *u = S->u, *r = S->r;
    double *un = S->un, *eun = S->eun;
    double hidden = 1.0;
    for (int j = 0; j < H; j++) {
        double du = 0.0;
        for (int d = 0; d < D; d++) du += dx[d] * Wp[d * H + j];
        un[j] = u[j] + du * inv_s2;
        eun[j] = exp(un[j]);
        hidden *= (1.0 + eun[j]) * r[j];
    }
    return S->c != 0.5 ? pow(hidden, 2.0 * S->c) : hidden;
}

HOT void rbm_proposal_sigmoids(Sys *S)
{
    for (int j = 0; j < S->H; j++) sigmoid_pair(S->eun[j], &S->rn[j], &S->sn[j]);
}

/* Accept the proposal (sigmoids_done: s', r' are filled): the proposal's rows become the
 * current ones by swapping pointers, no copies. */
HOT void rbm_accept(Sys *S, int sigmoids_done)
{
    if (!sigmoids_done) rbm_proposal_sigmoids(S);
    swap(&S->u, &S->un);
    swap(&S->s, &S->sn);
    swap(&S->r, &S->rn);
}

/* ------------------------------------------------------------------ orbitals */

/* Hermite tables at the point y (D): H_m(sqrt(omega) y_d) for m < nt and, if wanted, the
 * derivatives in y_d, H_m' = 2 m sqrt(omega) H_{m-1} and H_m'' = 4 m (m-1) omega H_{m-2}. */
HOT void hermite(Sys *S, const double *y, int derivatives, const int D)
{
    const int nt = S->nt;
    for (int d = 0; d < D; d++) {
        double *h = S->herm + d * nt;
        const double t = S->sqo * y[d];
        h[0] = 1.0;
        h[1] = 2.0 * t;
        for (int m = 1; m + 1 < nt; m++) h[m + 1] = 2.0 * t * h[m] - 2.0 * m * h[m - 1];
        if (!derivatives) continue;
        double *h1 = S->herm + (D + d) * nt, *h2 = S->herm + (2 * D + d) * nt;
        h1[0] = h2[0] = h2[1] = 0.0;
        for (int m = 1; m < nt; m++) h1[m] = 2.0 * m * S->sqo * h[m - 1];
        for (int m = 2; m < nt; m++) h2[m] = 4.0 * m * (m - 1) * S->omega * h[m - 2];
    }
}

/* phi_j at the point of the last hermite(). */
HOT double orbital(const Sys *S, int j, const int D)
{
    const int *restrict idx = S->hidx + j * D;
    const double *restrict h = S->herm;
    double v = h[idx[0]];
    for (int d = 1; d < D; d++) v *= h[idx[d]];
    return v;
}

/* At the point y: g = sum_j grad phi_j(y) w_j into g (D) and the return value
 * sum_j nabla^2 phi_j(y) w_j, for the weights w (n). With w the particle's row of T
 * these are grad det / det and nabla^2 det / det. */
HOT double orbital_sums(Sys *S, const double *y, const double *w, double *g, const int D)
{
    hermite(S, y, 1, D);
    const int *restrict idx = S->hidx;
    const double *restrict t0 = S->herm, *restrict t1 = t0 + D * S->nt, *restrict t2 = t1 + D * S->nt;
    double lap = 0.0;
    for (int d = 0; d < D; d++) g[d] = 0.0;
    for (int j = 0; j < S->n; j++) {
        double h0[MAX_D], h1[MAX_D], h2[MAX_D];
        for (int d = 0; d < D; d++) {
            const int m = idx[j * D + d];
            h0[d] = t0[m];
            h1[d] = t1[m];
            h2[d] = t2[m];
        }
        for (int d = 0; d < D; d++) {
            double others = w[j]; /* the weight times the other axes' factors */
            for (int e = 0; e < D; e++)
                if (e != d) others *= h0[e];
            g[d] += h1[d] * others;
            lap += h2[d] * others;
        }
    }
    return lap;
}

/* ------------------------------------------------------------------ Slater inverses */

/* B = inverse of the n x n row-major matrix A (overwritten) by Gauss-Jordan elimination
 * with partial pivoting; returns ln|det A| and its sign in *sign (0 if singular). */
static double invert(int n, double *A, double *B, int *sign)
{
    double log_det = 0.0;
    *sign = 1;
    for (int i = 0; i < n * n; i++) B[i] = 0.0;
    for (int i = 0; i < n; i++) B[i * n + i] = 1.0;
    for (int col = 0; col < n; col++) {
        int best = col; /* the pivot: the largest entry of the column on or below */
        for (int row = col + 1; row < n; row++)
            if (fabs(A[row * n + col]) > fabs(A[best * n + col])) best = row;
        if (best != col) {
            for (int i = 0; i < n; i++) {
                double t = A[col * n + i];
                A[col * n + i] = A[best * n + i];
                A[best * n + i] = t;
                t = B[col * n + i];
                B[col * n + i] = B[best * n + i];
                B[best * n + i] = t;
            }
            *sign = -*sign;
        }
        const double pivot = A[col * n + col];
        if (pivot == 0.0) {
            *sign = 0;
            return -INFINITY;
        }
        log_det += log(fabs(pivot));
        if (pivot < 0.0) *sign = -*sign;
        const double scale = 1.0 / pivot;
        for (int i = 0; i < n; i++) {
            A[col * n + i] *= scale;
            B[col * n + i] *= scale;
        }
        for (int row = 0; row < n; row++) {
            const double f = A[row * n + col];
            if (row == col || f == 0.0) continue;
            for (int i = 0; i < n; i++) {
                A[row * n + i] -= f * A[col * n + i];
                B[row * n + i] -= f * B[col * n + i];
            }
        }
    }
    return log_det;
}

/* The transposed Slater matrix of a spin at the positions x: A[j n + k] = phi_j(r_k). */
static void slater_matrix(Sys *S, const double *x, int spin, double *A)
{
    const int n = S->n, D = S->D;
    for (int k = 0; k < n; k++) {
        if (D == 1) hermite(S, x + (spin * n + k) * D, 0, 1);
        else if (D == 2) hermite(S, x + (spin * n + k) * D, 0, 2);
        else hermite(S, x + (spin * n + k) * D, 0, 3);
        for (int j = 0; j < n; j++) A[j * n + k] = orbital(S, j, D);
    }
}

/* ln|det D_spin| at positions x from scratch (the sign in *sign); T is not touched. */
static double slater_log_det(Sys *S, const double *x, int spin, int *sign)
{
    double *A = S->work, *B = S->work + S->n * S->n;
    slater_matrix(S, x, spin, A);
    return invert(S->n, A, B, sign);
}

/* Both inverses from scratch; returns max |D Dinv - I| of the ones they replace. The
 * inverse of the transposed matrix is T: (D^T)^-1 = (D^-1)^T. */
static double refresh_inverses(Sys *S)
{
    const int n = S->n;
    double drift = 0.0, *A = S->work;
    for (int spin = 0; spin < 2; spin++) {
        double *T = S->T[spin];
        slater_matrix(S, S->x, spin, A);
        for (int k = 0; k < n; k++)
            for (int q = 0; q < n; q++) {
                double e = k == q ? -1.0 : 0.0; /* (D Dinv)[k][q] - delta_kq */
                for (int j = 0; j < n; j++) e += A[j * n + k] * T[q * n + j];
                drift = fabs(e) > drift ? fabs(e) : drift;
            }
        int sign;
        invert(n, A, T, &sign);
        if (sign == 0) /* on a node: poison the inverse, so that E_L shows it */
            for (int i = 0; i < n * n; i++) T[i] = NAN;
    }
    return drift;
}

/* The determinant ratio R of a move of particle p to y (S->y); the orbitals there are
 * kept for the update. Returns R^2. */
HOT double slater_ratio(Sys *S, int p, const int D)
{
    const int n = S->n, spin = p >= n;
    const double *restrict Tk = S->T[spin] + (p - spin * n) * n;
    double *restrict phi = S->phi;
    hermite(S, S->y, 0, D);
    double R = 0.0;
    for (int j = 0; j < n; j++) {
        const double v = orbital(S, j, D);
        phi[j] = v;
        R += v * Tk[j];
    }
    S->R = R;
    return R * R;
}

/* Sherman-Morrison update of the moved particle's inverse: with v_q = sum_j phi_j(r')
 * T[q n + j] (v_k = R), row k becomes T_k / R and every other row T_q - v_q T_k / R. */
HOT void slater_accept(Sys *S, int p)
{
    const int n = S->n, spin = p >= n, k = p - spin * n;
    double *restrict T = S->T[spin], *restrict v = S->sm, *restrict row = S->row;
    const double *restrict phi = S->phi;
    for (int q = 0; q < n; q++) {
        double t = 0.0;
        for (int j = 0; j < n; j++) t += phi[j] * T[q * n + j];
        v[q] = t;
    }
    const double inv_R = 1.0 / S->R;
    for (int j = 0; j < n; j++) row[j] = T[k * n + j] * inv_R;
    for (int q = 0; q < n; q++) {
        const double f = q == k ? 0.0 : v[q];
        for (int j = 0; j < n; j++) T[q * n + j] -= f * row[j];
    }
    for (int j = 0; j < n; j++) T[k * n + j] = row[j];
}

/* ------------------------------------------------------------------ Pade-Jastrow */

/* u'(r) / r of u = A r / (1 + beta r) (u''(r) = -2 A beta / (1 + beta r)^3: see E_L). */
HOT double pade_slope(double r, double A, double beta)
{
    const double t = 1.0 + beta * r;
    return A / (t * t * r);
}

HOT double distance(const double *y, const double *z, const int D)
{
    double r2 = 0.0;
    for (int d = 0; d < D; d++) r2 += (y[d] - z[d]) * (y[d] - z[d]);
    return sqrt(r2);
}

/* Both pair tables from scratch. */
static void jastrow_refresh(Sys *S)
{
    const int P = S->P, D = S->D;
    for (int p = 0; p < P; p++)
        for (int q = 0; q < P; q++) {
            const double r = p == q ? 0.0 : distance(S->x + p * D, S->x + q * D, D);
            S->dist[p * P + q] = r;
            S->slope[p * P + q] = p == q ? 0.0 : pade_slope(r, S->cusp[p * P + q], S->beta[p * P + q]);
        }
}

/* 2 [J(x') - J(x)] for particle p moved to y, from the distance table; the new
 * distances are kept. u(r') - u(r) = A (r' - r) / ((1 + beta r') (1 + beta r)). */
HOT double jastrow_log_ratio(Sys *S, int p, const int D)
{
    const int P = S->P;
    const double *restrict A = S->cusp + p * P, *restrict B = S->beta + p * P;
    const double *restrict r_old = S->dist + p * P, *restrict x = S->x;
    double *restrict r_new = S->dist_new, y[MAX_D], dJ = 0.0;
    for (int d = 0; d < D; d++) y[d] = S->y[d];
    for (int q = 0; q < P; q++) { /* q = p adds nothing (A_pp = 0): no branch, a vector loop */
        const double r = distance(y, x + q * D, D);
        r_new[q] = r;
        dJ += A[q] * (r - r_old[q]) / ((1.0 + B[q] * r) * (1.0 + B[q] * r_old[q]));
    }
    return 2.0 * dJ;
}

/* Adds grad_p J at the current position (from the slope table) to g. */
HOT void jastrow_drift(const Sys *S, int p, double *g, const int D)
{
    const int P = S->P;
    const double *restrict f = S->slope + p * P, *restrict x = S->x; /* f_pp = 0 */
    for (int q = 0; q < P; q++)
        for (int d = 0; d < D; d++) g[d] += f[q] * (x[p * D + d] - x[q * D + d]);
}

/* Adds grad_p J at the proposal y to g; keeps the proposal's slopes. */
HOT void jastrow_proposal_drift(Sys *S, int p, double *g, const int D)
{
    const int P = S->P;
    const double *restrict A = S->cusp + p * P, *restrict B = S->beta + p * P;
    const double *restrict r_new = S->dist_new, *restrict x = S->x;
    double *restrict f_new = S->slope_new;
    for (int q = 0; q < P; q++) { /* q = p: A_pp = 0 */
        const double f = pade_slope(r_new[q], A[q], B[q]);
        f_new[q] = f;
        for (int d = 0; d < D; d++) g[d] += f * (S->y[d] - x[q * D + d]);
    }
}

/* The proposal's distances (and slopes, computed here unless slopes_done) into row and
 * column p of the tables. */
HOT void jastrow_accept(Sys *S, int p, int slopes_done)
{
    const int P = S->P;
    const double *restrict r_new = S->dist_new;
    double *restrict f_new = S->slope_new;
    if (!slopes_done) { /* a vector loop; q = p gives 0 (A_pp = 0) and is not stored */
        const double *restrict A = S->cusp + p * P, *restrict B = S->beta + p * P;
        for (int q = 0; q < P; q++) f_new[q] = pade_slope(r_new[q], A[q], B[q]);
    }
    double *restrict dist = S->dist, *restrict slope = S->slope;
    for (int q = 0; q < P; q++) {
        if (q == p) continue;
        dist[p * P + q] = dist[q * P + p] = r_new[q];
        slope[p * P + q] = slope[q * P + p] = f_new[q];
    }
}

/* ------------------------------------------------------------------ moves */

/* |psi(x')/psi(x)|^2 for particle p moved by dx (D): every part's ratio, the proposal
 * kept in the caches (the move's position in S->y). */
HOT double move_ratio(Sys *S, int p, const double *dx, const int D)
{
    for (int d = 0; d < D; d++) S->y[d] = S->x[p * D + d] + dx[d];
    double log_q = 0.0;
    const double hidden = rbm_ratio(S, p, dx, &log_q, D);
    if (S->jastrow) log_q += jastrow_log_ratio(S, p, D);
    return exp(log_q) * hidden * slater_ratio(S, p, D);
}

/* grad_p ln|psi| at the current position into g (D). */
HOT void drift(Sys *S, int p, double *g, const int D)
{
    const int n = S->n, spin = p >= n;
    double gd[MAX_D];
    rbm_drift(S, p, S->x + p * D, S->s, g, D);
    if (S->jastrow) jastrow_drift(S, p, g, D);
    orbital_sums(S, S->x + p * D, S->T[spin] + (p - spin * n) * n, gd, D);
    for (int d = 0; d < D; d++) g[d] += gd[d];
}

/* grad_p ln|psi| at the proposal of the last move_ratio into g (D): the new inverse's
 * row k is the old one over R. Fills the RBM's s', r' and the Jastrow slopes there. */
HOT void proposal_drift(Sys *S, int p, double *g, const int D)
{
    const int n = S->n, spin = p >= n;
    double gd[MAX_D];
    rbm_proposal_sigmoids(S);
    rbm_drift(S, p, S->y, S->sn, g, D);
    if (S->jastrow) jastrow_proposal_drift(S, p, g, D);
    orbital_sums(S, S->y, S->T[spin] + (p - spin * n) * n, gd, D);
    const double inv_R = 1.0 / S->R;
    for (int d = 0; d < D; d++) g[d] += gd[d] * inv_R;
}

/* Umrigar's limit of a drift g (D): g (sqrt(1 + 2 a |g|^2 tau) - 1) / (a |g|^2 tau). */
HOT void limit_drift(double *g, double tau, double a, const int D)
{
    double g2 = 0.0;
    for (int d = 0; d < D; d++) g2 += g[d] * g[d];
    const double f = 2.0 / (1.0 + sqrt(1.0 + 2.0 * a * g2 * tau));
    for (int d = 0; d < D; d++) g[d] *= f;
}

/* Take the last proposal of particle p (displacement dx) into every cache and x. */
HOT void accept(Sys *S, int p, const double *dx, const int D)
{
    rbm_accept(S, S->importance);
    if (S->jastrow) jastrow_accept(S, p, S->importance);
    slater_accept(S, p);
    for (int d = 0; d < D; d++) S->x[p * D + d] += dx[d];
}

/* Propose a move of particle p; returns its acceptance probability before min(1, .):
 * Metropolis in a box of side step, or the Langevin step with the ratio of the Green's
 * functions. dx gets the displacement. */
HOT double propose(Sys *S, Rng *g, int p, double *dx, const int D)
{
    if (!S->importance) {
        for (int d = 0; d < D; d++) dx[d] = S->step * (uniform(g) - 0.5);
        return move_ratio(S, p, dx, D);
    }
    const double tau = S->step, sq = sqrt(tau);
    double g_old[MAX_D], g_new[MAX_D];
    drift(S, p, g_old, D);
    if (S->drift_limit > 0.0) limit_drift(g_old, tau, S->drift_limit, D);
    for (int d = 0; d < D; d++) dx[d] = tau * g_old[d] + sq * normal(g);
    const double ratio = move_ratio(S, p, dx, D);
    if (ratio == 0.0) return 0.0; /* on a node: no drift there */
    proposal_drift(S, p, g_new, D);
    if (S->drift_limit > 0.0) limit_drift(g_new, tau, S->drift_limit, D);
    double t = 0.0; /* ln G(x|x') - ln G(x'|x), G(y|x) ~ exp(-|y - x - tau g(x)|^2 / 2 tau) */
    for (int d = 0; d < D; d++) {
        const double fwd = dx[d] - tau * g_old[d], bwd = dx[d] + tau * g_new[d];
        t += fwd * fwd - bwd * bwd;
    }
    return ratio * exp(t * (0.5 / tau));
}

HOT long sweep_d(Sys *S, Rng *rng, const int D)
{
    Rng g = *rng; /* the state in registers */
    long accepted = 0;
    for (int p = 0; p < S->P; p++) {
        double dx[MAX_D];
        const double q = propose(S, &g, p, dx, D);
        if (uniform(&g) < q) {
            accept(S, p, dx, D);
            accepted++;
        }
    }
    *rng = g;
    return accepted;
}

/* One sweep (a proposed move per particle); the number accepted. */
static long sweep(Sys *S, Rng *g)
{
    switch (S->D) { /* D a constant in each copy */
    case 1: return sweep_d(S, g, 1);
    case 2: return sweep_d(S, g, 2);
    default: return sweep_d(S, g, 3);
    }
}

/* ------------------------------------------------------------------ local energy */

/* E_L = -1/2 sum_p [nabla_p^2 ln psi + |grad_p ln psi|^2] + V; leaves grad ln psi in
 * S->grad and nabla_p^2 ln psi in S->lap. */
HOT double local_energy_d(Sys *S, const int D)
{
    const int P = S->P, H = S->H, n = S->n;
    const double c = S->c, inv_s2 = S->inv_s2;
    double *grad = S->grad, *lap = S->lap, trap = 0.0, coulomb = 0.0;
    for (int p = 0; p < P; p++) { /* RBM, from its sigmoids */
        lap[p] = 0.0;
        for (int d = 0; d < D; d++) {
            const int i = p * D + d;
            const double *Wi = S->W + (size_t)i * H;
            double g = -(S->x[i] - S->a[i]), l = 0.0;
            for (int j = 0; j < H; j++) {
                const double ws = Wi[j] * S->s[j];
                g += ws;
                l += ws * Wi[j] * (1.0 - S->s[j]);
            }
            grad[i] = c * inv_s2 * g;
            lap[p] += c * (-inv_s2 + l * inv_s2 * inv_s2);
            trap += S->x[i] * S->x[i];
        }
    }
    /* pairs: grad_p J = sum_q u'(r)/r (x_p - x_q), nabla_p^2 J = sum_q u''(r) + (D-1) u'(r)/r;
     * the Coulomb energy from the same distances */
    if (!S->jastrow && S->coulomb)
        for (int p = 0; p < P; p++)
            for (int q = p + 1; q < P; q++) coulomb += 1.0 / distance(S->x + p * D, S->x + q * D, D);
    if (S->jastrow)
        for (int p = 0; p < P; p++)
            for (int q = p + 1; q < P; q++) {
                const double r = S->dist[p * P + q], A = S->cusp[p * P + q], B = S->beta[p * P + q];
                /* u'/r = A / (t^2 r), u'' = -2 A beta / t^3 with t = 1 + beta r, and 1/r:
                 * one division */
                const double t = 1.0 + B * r, inv = 1.0 / (t * t * t * r);
                const double f = A * t * inv, l = -2.0 * A * B * r * inv + (D - 1) * f;
                for (int d = 0; d < D; d++) {
                    const double gd = f * (S->x[p * D + d] - S->x[q * D + d]);
                    grad[p * D + d] += gd;
                    grad[q * D + d] -= gd;
                }
                lap[p] += l;
                lap[q] += l;
                coulomb += S->coulomb * t * t * t * inv;
            }
    /* determinants: grad ln|det| = g, nabla^2 ln|det| = (nabla^2 det)/det - |g|^2 */
    for (int p = 0; p < P; p++) {
        const int spin = p >= n;
        double g[MAX_D], g2 = 0.0;
        const double L = orbital_sums(S, S->x + p * D, S->T[spin] + (p - spin * n) * n, g, D);
        for (int d = 0; d < D; d++) {
            grad[p * D + d] += g[d];
            g2 += g[d] * g[d];
        }
        lap[p] += L - g2;
    }
    double kinetic = 0.0;
    for (int p = 0; p < P; p++) kinetic += lap[p];
    for (int i = 0; i < P * D; i++) kinetic += grad[i] * grad[i];
    return -0.5 * kinetic + 0.5 * S->omega * S->omega * trap + coulomb;
}

static double local_energy(Sys *S)
{
    switch (S->D) {
    case 1: return local_energy_d(S, 1);
    case 2: return local_energy_d(S, 2);
    default: return local_energy_d(S, 3);
    }
}

/* ------------------------------------------------------------------ set-up */

/* Orbitals of the closed shell, shell by shell (within a shell n_1 descending, then
 * n_2, as the project's shells.py), and the non-interacting energy 2 omega sum_j
 * (|n_j| + D/2); returns 0 if P is not a closed shell. */
static int fill_orbitals(Sys *S, double *exact)
{
    const int n = S->n, D = S->D;
    int j = 0, top = 0;
    *exact = 0.0;
    for (int shell = 0; j < n; shell++) {
        int size = 0; /* orbitals in the shell */
        for (int n1 = shell; n1 >= 0; n1--) {
            const int rest = shell - n1;
            if (D == 1 && rest > 0) continue;
            for (int n2 = (D == 1 ? 0 : rest); n2 >= (D == 2 ? rest : 0); n2--) {
                if (j + size < n) {
                    int *q = S->qn + (j + size) * D;
                    q[0] = n1;
                    if (D >= 2) q[1] = n2;
                    if (D == 3) q[2] = rest - n2;
                }
                size++;
            }
        }
        if (j + size > n) return 0; /* the last shell only partly filled */
        j += size;
        top = shell;
        *exact += 2.0 * S->omega * size * (shell + 0.5 * D);
    }
    S->nt = top + 1 > 2 ? top + 1 : 2;
    return 1;
}

static void allocate(Sys *S)
{
    const int P = S->P, M = S->M, H = S->H, n = S->n;
    S->x = alloc(M, sizeof(double));
    S->a = alloc(M, sizeof(double));
    S->b = alloc(H, sizeof(double));
    S->W = alloc((size_t)M * H, sizeof(double));
    double **hidden[] = {&S->u, &S->s, &S->r, &S->un, &S->eun, &S->sn, &S->rn};
    for (size_t k = 0; k < sizeof hidden / sizeof hidden[0]; k++) *hidden[k] = alloc(H, sizeof(double));
    S->qn = alloc((size_t)n * S->D, sizeof(int));
    S->T[0] = alloc((size_t)n * n, sizeof(double));
    S->T[1] = alloc((size_t)n * n, sizeof(double));
    S->phi = alloc(n, sizeof(double));
    S->sm = alloc(n, sizeof(double));
    S->row = alloc(n, sizeof(double));
    S->work = alloc(2 * (size_t)n * n, sizeof(double));
    S->cusp = alloc((size_t)P * P, sizeof(double));
    S->beta = alloc((size_t)P * P, sizeof(double));
    S->dist = alloc((size_t)P * P, sizeof(double));
    S->slope = alloc((size_t)P * P, sizeof(double));
    S->dist_new = alloc(P, sizeof(double));
    S->slope_new = alloc(P, sizeof(double));
    S->grad = alloc(M, sizeof(double));
    S->lap = alloc(P, sizeof(double));
}

/* The Hermite tables and their indices, once nt is known (fill_orbitals). */
static void allocate_tables(Sys *S)
{
    S->herm = alloc(3 * (size_t)S->D * S->nt, sizeof(double));
    S->hidx = alloc((size_t)S->n * S->D, sizeof(int));
    for (int j = 0; j < S->n; j++)
        for (int d = 0; d < S->D; d++) S->hidx[j * S->D + d] = d * S->nt + S->qn[j * S->D + d];
}

/* Cusps A_pq (0 without the factor) and betas (beta_anti, beta_para) per pair. */
static void set_jastrow(Sys *S, int on, double beta_anti, double beta_para)
{
    const int P = S->P, D = S->D;
    S->jastrow = on;
    for (int p = 0; p < P; p++)
        for (int q = 0; q < P; q++) {
            const int parallel = (p < S->n) == (q < S->n);
            S->cusp[p * P + q] = !on || p == q ? 0.0 : parallel ? 1.0 / (D + 1) : 1.0 / (D - 1);
            S->beta[p * P + q] = parallel ? beta_para : beta_anti;
        }
}

/* All caches from scratch for the current position and parameters. */
static void refresh_all(Sys *S)
{
    rbm_refresh(S);
    jastrow_refresh(S);
    refresh_inverses(S);
}

static void random_positions(Sys *S, Rng *g)
{
    for (int i = 0; i < S->M; i++) S->x[i] = normal(g) / sqrt(S->inv_s2);
}

/* Thermalisation: n sweeps, the step tuned in the first half after every TUNE_CHUNK
 * sweeps towards the acceptance target (Robbins-Monro on ln step with the gain
 * 3 / (1 + k)^0.6 of the k-th update, a factor 2 at most, as the project's sampler);
 * the inverses rebuilt every refresh_every sweeps. */
static void thermalize(Sys *S, Rng *g, long n, double target)
{
    long done = 0, k = 0;
    while (done < n) {
        const int tuning = done < n / 2;
        const long end = tuning ? n / 2 : n;
        const long chunk = end - done < TUNE_CHUNK ? end - done : TUNE_CHUNK;
        long acc = 0;
        for (long t = 0; t < chunk; t++) {
            acc += sweep(S, g);
            if ((done + t + 1) % S->refresh_every == 0) refresh_inverses(S);
        }
        if (tuning) {
            const double rate = (double)acc / (chunk * S->P);
            const double f = exp(3.0 / pow(1.0 + k, 0.6) * (rate - target));
            S->step *= f < 0.5 ? 0.5 : f > 2.0 ? 2.0 : f;
            k++;
        }
        done += chunk;
    }
}

/* ------------------------------------------------------------------ self-test */

/* ln|psi| at positions x from scratch. */
static double log_psi(Sys *S, const double *x)
{
    const int P = S->P, D = S->D;
    int sign;
    double value = slater_log_det(S, x, 0, &sign) + slater_log_det(S, x, 1, &sign);
    double gauss = 0.0, soft = 0.0;
    for (int i = 0; i < S->M; i++) gauss += (x[i] - S->a[i]) * (x[i] - S->a[i]);
    for (int j = 0; j < S->H; j++) {
        double t = S->b[j];
        for (int i = 0; i < S->M; i++) t += x[i] * S->W[(size_t)i * S->H + j] * S->inv_s2;
        soft += t > 0.0 ? t + log1p(exp(-t)) : log1p(exp(t)); /* softplus */
    }
    value += S->c * (-0.5 * S->inv_s2 * gauss + soft);
    for (int p = 0; p < P; p++)
        for (int q = p + 1; q < P; q++) {
            const double r = distance(x + p * D, x + q * D, D), B = S->beta[p * P + q];
            value += S->cusp[p * P + q] * r / (1.0 + B * r);
        }
    return value;
}

/* Whether x is a finite number, from its bits (-ffast-math may drop isfinite). */
static int finite(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return ((bits >> 52) & 0x7FF) != 0x7FF;
}

static int check(const char *what, double err, double tol)
{
    const int ok = finite(err) && err <= tol;
    printf("  %-62s %.2e (tolerance %.1e) %s\n", what, err, tol, ok ? "ok" : "FAILED");
    return !ok;
}

static double maxd(double a, double b) { return a > b ? a : b; }

/* Largest errors of grad ln psi and of the per-particle Laplacians (the E_L routine's)
 * against fourth-order central differences of log_psi, relative to 1 + |value|. */
static void derivative_errors(Sys *S, double *err_g, double *err_l)
{
    const int P = S->P, D = S->D;
    const double h = 1e-3, f0 = log_psi(S, S->x);
    local_energy(S);
    *err_g = *err_l = 0.0;
    for (int p = 0; p < P; p++) {
        double lap = 0.0;
        for (int d = 0; d < D; d++) {
            const int i = p * D + d;
            const double xi = S->x[i];
            double f[5];
            for (int m = -2; m <= 2; m++) {
                S->x[i] = xi + m * h;
                f[m + 2] = m ? log_psi(S, S->x) : f0;
            }
            S->x[i] = xi;
            const double g = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h);
            lap += (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * h * h);
            *err_g = maxd(*err_g, fabs(g - S->grad[i]) / (1 + fabs(g)));
        }
        *err_l = maxd(*err_l, fabs(lap - S->lap[p]) / (1 + fabs(lap)));
    }
}

/* The AR(1) series x_t = phi x_{t-1} + sqrt(1 - phi^2) N(0, 1) has the error of the
 * mean sqrt((1 + phi) / ((1 - phi) n)): the relative deviation of the blocking error. */
static double blocking_error_deviation(Rng *g)
{
    const double phi = 0.9;
    const long n = 1L << 20;
    Blocking *B = alloc(1, sizeof *B);
    double v = normal(g);
    for (long t = 0; t < n; t++) {
        v = phi * v + sqrt(1 - phi * phi) * normal(g);
        blocking_add(B, v);
    }
    const double dev = fabs(blocking_result(B).error / sqrt((1 + phi) / ((1 - phi) * n)) - 1);
    free(B);
    return dev;
}

static int selftest(Sys *S, uint64_t seed, double exact)
{
    const int P = S->P, D = S->D, M = S->M, H = S->H, n = S->n;
    Rng g;
    rng_seed(&g, seed);
    int fail = 0;
    printf("selftest: P=%d D=%d H=%d omega=%g jastrow=%d, RBM parameters ~ N(0, 0.05^2)\n", P, D, H,
           S->omega, S->jastrow);
    for (int i = 0; i < M; i++) S->a[i] = 0.05 * normal(&g);
    for (int j = 0; j < H; j++) S->b[j] = 0.05 * normal(&g);
    for (long k = 0; k < (long)M * H; k++) S->W[k] = 0.05 * normal(&g);
    set_jastrow(S, S->jastrow, 0.4, 0.6); /* the two kinds of pair differ */
    random_positions(S, &g);
    refresh_all(S);
    S->importance = 0;
    S->step = 1.0 / sqrt(S->omega);
    /* 1. derivatives of ln|psi| (E_L's) at configurations of a chain */
    double eg = 0.0, el = 0.0, ed = 0.0;
    for (int rep = 0; rep < 4; rep++) {
        for (int t = 0; t < 50; t++) sweep(S, &g);
        refresh_inverses(S);
        double a, b;
        derivative_errors(S, &a, &b);
        eg = maxd(eg, a);
        el = maxd(el, b);
        for (int p = 0; p < P; p++) { /* the move's drift against E_L's gradient */
            double gp[MAX_D];
            if (D == 1) drift(S, p, gp, 1);
            else if (D == 2) drift(S, p, gp, 2);
            else drift(S, p, gp, 3);
            for (int d = 0; d < D; d++)
                ed = maxd(ed, fabs(gp[d] - S->grad[p * D + d]) / (1 + fabs(S->grad[p * D + d])));
        }
    }
    fail |= check("grad ln|psi| vs finite differences", eg, 1e-7);
    fail |= check("per-particle Laplacian of ln|psi| vs finite differences", el, 1e-5);
    fail |= check("drift of a move vs the gradient of E_L", ed, 1e-12);
    /* 2. ratios and the proposal's drift against ln|psi| from scratch */
    ed = 0.0;
    double er = 0.0, eR = 0.0;
    double *x1 = alloc(M, sizeof(double));
    for (int p = 0; p < P; p++) {
        double dx[MAX_D], gn[MAX_D];
        for (int d = 0; d < D; d++) dx[d] = 0.3 * normal(&g) / sqrt(S->omega);
        const int spin = p >= n;
        int s0, s1;
        const double ld0 = slater_log_det(S, S->x, spin, &s0), f0 = log_psi(S, S->x);
        const double ratio = move_ratio(S, p, dx, D);
        proposal_drift(S, p, gn, D);
        memcpy(x1, S->x, M * sizeof(double));
        for (int d = 0; d < D; d++) x1[p * D + d] += dx[d];
        const double ld1 = slater_log_det(S, x1, spin, &s1);
        er = maxd(er, fabs(ratio / exp(2 * (log_psi(S, x1) - f0)) - 1));
        eR = maxd(eR, fabs(S->R / (s0 * s1 * exp(ld1 - ld0)) - 1));
        for (int d = 0; d < D; d++) {
            const int i = p * D + d;
            const double h = 1e-4, xi = x1[i];
            x1[i] = xi + h;
            const double fp = log_psi(S, x1);
            x1[i] = xi - h;
            const double fm = log_psi(S, x1);
            x1[i] = xi;
            ed = maxd(ed, fabs((fp - fm) / (2 * h) - gn[d]) / (1 + fabs(gn[d])));
        }
    }
    free(x1);
    fail |= check("determinant ratio from the inverse vs two determinants", eR, 1e-9);
    fail |= check("move ratio vs |psi'/psi|^2 from scratch", er, 1e-9);
    fail |= check("drift at the proposal vs finite differences", ed, 1e-6);
    /* 3. the updated caches after many moves of both samplers, never rebuilt */
    long moved = 0;
    for (int imp = 0; imp < 2; imp++) {
        S->importance = imp;
        S->step = (imp ? 0.1 : 1.0) / sqrt(S->omega);
        for (int t = 0; t < 2000; t++) moved += sweep(S, &g);
    }
    double *old = alloc(3 * (size_t)H + 2 * (size_t)P * P, sizeof(double));
    memcpy(old, S->u, H * sizeof(double));
    memcpy(old + H, S->s, H * sizeof(double));
    memcpy(old + 2 * H, S->r, H * sizeof(double));
    memcpy(old + 3 * H, S->dist, (size_t)P * P * sizeof(double));
    memcpy(old + 3 * H + P * P, S->slope, (size_t)P * P * sizeof(double));
    const double drift = refresh_inverses(S);
    rbm_refresh(S);
    jastrow_refresh(S);
    double eu = 0.0, ej = 0.0;
    for (int j = 0; j < H; j++) {
        eu = maxd(eu, fabs(old[j] - S->u[j]) / (1 + fabs(S->u[j])));
        eu = maxd(eu, fabs(old[H + j] - S->s[j]));
        eu = maxd(eu, fabs(old[2 * H + j] - S->r[j]));
    }
    for (int k = 0; k < P * P; k++) {
        ej = maxd(ej, fabs(old[3 * H + k] - S->dist[k]) / (1 + S->dist[k]));
        ej = maxd(ej, fabs(old[3 * H + P * P + k] - S->slope[k]) / (1 + S->slope[k]));
    }
    free(old);
    char what[128];
    snprintf(what, sizeof what, "inverse after %ld Sherman-Morrison updates: max|D Dinv - I|", moved);
    fail |= check(what, drift, 1e-8);
    fail |= check("cached RBM u, s, r after 4000 sweeps vs fresh", eu, 1e-10);
    if (S->jastrow) fail |= check("Jastrow distance and slope tables after 4000 sweeps vs fresh", ej, 1e-10);
    /* 4. the exact state: a = b = W = 0, no Jastrow, no Coulomb; E_L is the closed-shell
     * energy at every configuration */
    memset(S->a, 0, M * sizeof(double));
    memset(S->b, 0, H * sizeof(double));
    memset(S->W, 0, (size_t)M * H * sizeof(double));
    const int jastrow = S->jastrow, coulomb = S->coulomb;
    set_jastrow(S, 0, 0.5, 0.5);
    S->coulomb = 0;
    refresh_all(S);
    double ee = 0.0;
    for (int imp = 0; imp < 2; imp++) {
        S->importance = imp;
        S->step = (imp ? 0.1 : 1.0) / sqrt(S->omega);
        for (int t = 0; t < 300; t++) {
            sweep(S, &g);
            if ((t + 1) % S->refresh_every == 0) refresh_inverses(S);
            ee = maxd(ee, fabs(local_energy(S) / exact - 1));
        }
    }
    set_jastrow(S, jastrow, 0.5, 0.5);
    S->coulomb = coulomb;
    snprintf(what, sizeof what, "a = b = W = 0, no Jastrow, no Coulomb: |E_L / %g - 1|", exact);
    fail |= check(what, ee, 1e-9);
    fail |= check("blocking error of an AR(1) series vs exact: relative", blocking_error_deviation(&g), 0.1);
    printf("selftest %s\n", fail ? "FAILED" : "passed");
    return fail;
}

/* ------------------------------------------------------------------ main */

static int usage(const char *msg)
{
    fprintf(stderr,
            "slater_vmc_ref: %s\n"
            "usage: slater_vmc_ref [P D H SWEEPS [omega [jastrow 0|1]]] [--sampler metropolis|importance]\n"
            "       [--step S] [--therm N] [--target A] [--psi sqrt|full] [--sigma S] [--seed N]\n"
            "       [--beta B[,B_parallel]] [--refresh N] [--params FILE] [--no-coulomb]\n"
            "       [--non-interacting] [--drift-limit A] [--selftest]\n"
            "  P a closed shell: D=2: 2 6 12 20 30 42 ...; D=3: 2 8 20 40 70 ...\n",
            msg);
    return 2;
}

static int read_parameters(Sys *S, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return usage("--params: cannot open the file");
    double *blocks[3] = {S->a, S->b, S->W};
    const long sizes[3] = {S->M, S->H, (long)S->M * S->H};
    for (int k = 0; k < 3; k++)
        for (long i = 0; i < sizes[k]; i++)
            if (fscanf(f, "%lf", &blocks[k][i]) != 1) {
                fclose(f);
                return usage("--params: fewer than M + H + M H numbers (a, b, W)");
            }
    double extra;
    const int more = fscanf(f, "%lf", &extra) == 1;
    fclose(f);
    return more ? usage("--params: more than M + H + M H numbers (a, b, W)") : 0;
}

int main(int argc, char **argv)
{
    double pos[6] = {6, 2, 12, 200000, 1.0, 1}; /* P D H SWEEPS omega jastrow */
    int npos = 0, test = 0, free_particles = 0, have_sigma = 0, have_target = 0;
    long therm = 2000, refresh = 100;
    double c = 0.5, sigma = 0.0, step = 1.0, target = 0.0, drift_limit = 1.0;
    double beta_anti = 0.5, beta_para = 0.5;
    uint64_t seed = 1;
    const char *params = NULL;
    Sys S0 = {0}, *S = &S0;
    S->coulomb = 1;
    for (int k = 1; k < argc; k++) {
        const char *arg = argv[k], *val = k + 1 < argc ? argv[k + 1] : NULL;
        char *end = NULL;
        if (strncmp(arg, "--", 2)) {
            if (npos == 6) return usage("more than six positional arguments");
            pos[npos] = strtod(arg, &end);
            if (*end || end == arg || (npos != 4 && pos[npos] != floor(pos[npos])))
                return usage("P D H SWEEPS and jastrow must be integers, omega a number");
            npos++;
            continue;
        }
        if (!strcmp(arg, "--selftest")) test = 1;
        else if (!strcmp(arg, "--no-coulomb")) S->coulomb = 0;
        else if (!strcmp(arg, "--non-interacting")) free_particles = 1;
        else if (!val) return usage("an option without its value");
        else {
            k++;
            if (!strcmp(arg, "--sampler")) {
                if (!strcmp(val, "importance")) S->importance = 1;
                else if (strcmp(val, "metropolis")) return usage("--sampler: metropolis or importance");
            } else if (!strcmp(arg, "--psi")) {
                if (!strcmp(val, "full")) c = 1.0;
                else if (strcmp(val, "sqrt")) return usage("--psi: sqrt or full");
            } else if (!strcmp(arg, "--params")) params = val;
            else if (!strcmp(arg, "--seed")) seed = strtoull(val, &end, 10);
            else if (!strcmp(arg, "--therm")) therm = strtol(val, &end, 10);
            else if (!strcmp(arg, "--refresh")) refresh = strtol(val, &end, 10);
            else if (!strcmp(arg, "--beta")) {
                beta_anti = beta_para = strtod(val, &end);
                if (*end == ',') beta_para = strtod(end + 1, &end);
            } else {
                const double v = strtod(val, &end);
                if (!strcmp(arg, "--step")) step = v;
                else if (!strcmp(arg, "--sigma")) sigma = v, have_sigma = 1;
                else if (!strcmp(arg, "--target")) target = v, have_target = 1;
                else if (!strcmp(arg, "--drift-limit")) drift_limit = v;
                else return usage("unknown option");
            }
            if (end && (*end || end == val)) return usage("an option's value is not a number");
        }
    }
    S->P = (int)pos[0];
    S->D = (int)pos[1];
    S->H = (int)pos[2];
    const long sweeps = (long)pos[3];
    S->omega = pos[4];
    const int jastrow = (int)pos[5] && !free_particles;
    S->M = S->P * S->D;
    S->n = S->P / 2;
    if (S->D < 1 || S->D > MAX_D || S->H < 1 || (sweeps < 1 && !test))
        return usage("need 1 <= D <= 3, H >= 1, SWEEPS >= 1");
    if (S->P < 2 || S->P % 2) return usage("P is not a closed-shell electron count");
    if (jastrow && S->D < 2) return usage("the Pade-Jastrow cusp 1/(D-1) needs D >= 2 (jastrow 0)");
    if (!(S->omega > 0) || !(step > 0) || therm < 0 || refresh < 1 || !(drift_limit >= 0) ||
        (have_sigma && !(sigma > 0)) || !(beta_anti > 0) || !(beta_para > 0))
        return usage("need omega, step, sigma, beta > 0, therm >= 0, refresh >= 1, drift limit >= 0");
    if (!have_target) target = S->importance ? 0.93 : 0.5;
    if (!(target > 0 && target < 1)) return usage("need 0 < target < 1");
    if (free_particles) S->coulomb = 0;
    zig_init();
    allocate(S);
    double exact;
    if (!fill_orbitals(S, &exact)) return usage("P is not a closed-shell electron count");
    allocate_tables(S);
    S->sqo = sqrt(S->omega);
    S->c = c;
    S->inv_s2 = have_sigma ? 1.0 / (sigma * sigma) : S->omega / c; /* sigma^2 = c / omega */
    S->refresh_every = (int)refresh;
    S->drift_limit = drift_limit;
    set_jastrow(S, jastrow, beta_anti, beta_para);
    if (test) return selftest(S, seed, exact);

    Rng g;
    rng_seed(&g, seed);
    if (params) {
        const int bad = read_parameters(S, params);
        if (bad) return bad;
    } else { /* the fermion problem of pvmc bench: RBM parameters ~ N(0, 0.01^2) */
        for (int i = 0; i < S->M; i++) S->a[i] = 0.01 * normal(&g);
        for (int j = 0; j < S->H; j++) S->b[j] = 0.01 * normal(&g);
        for (long k = 0; k < (long)S->M * S->H; k++) S->W[k] = 0.01 * normal(&g);
    }
    if (free_particles) {
        memset(S->a, 0, S->M * sizeof(double));
        memset(S->b, 0, S->H * sizeof(double));
        memset(S->W, 0, (size_t)S->M * S->H * sizeof(double));
    }
    random_positions(S, &g);
    refresh_all(S);
    S->step = step;
    thermalize(S, &g, therm, target);
    refresh_all(S);

    Blocking *B = alloc(1, sizeof *B);
    long accepted = 0;
    double inv_err = 0.0, worst = 0.0;
    struct timespec w0, w1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (long t = 0; t < sweeps; t++) {
        accepted += sweep(S, &g);
        if ((t + 1) % refresh == 0) inv_err = maxd(inv_err, refresh_inverses(S));
        const double e = local_energy(S);
        blocking_add(B, e);
        if (free_particles) worst = maxd(worst, fabs(e - exact));
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    const double wall = (w1.tv_sec - w0.tv_sec) + 1e-9 * (w1.tv_nsec - w0.tv_nsec);
    const double cpu = (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
    const Estimate e = blocking_result(B);
    printf("P=%d D=%d H=%d sweeps=%ld sampler=%s psi=%s omega=%g jastrow=%d coulomb=%d  <E>=%.6f "
           "err=%.6f var=%.4g acc=%.4f step=%.4f inv_err=%.1e",
           S->P, S->D, S->H, sweeps, S->importance ? "importance" : "metropolis",
           c == 0.5 ? "sqrt" : "full", S->omega, S->jastrow, S->coulomb, e.mean, e.error,
           e.variance, (double)accepted / ((double)sweeps * S->P), S->step, inv_err);
    if (free_particles) printf(" E_exact=%g max|E_L-E_exact|=%.1e", exact, worst);
    printf("  cpu=%.0f%% ns/move=%.2f ns/sweep=%.2f\n", 100 * cpu / wall,
           1e9 * wall / ((double)sweeps * S->P), 1e9 * wall / sweeps);
    free(B);
    return 0;
}
