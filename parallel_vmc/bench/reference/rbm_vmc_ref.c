/*
 * rbm_vmc_ref.c: the plain-C speed reference of parallel_vmc's Monte Carlo kernel for
 * the Gaussian-binary RBM trial wave function (bosons, or two fermions in one orbital).
 *
 * Problem. P particles in D dimensions (D = 1, 2, 3), trap V = omega^2 |x|^2 / 2, the
 * Coulomb repulsion 1/r of every pair (unless --no-coulomb), and the trial function
 * psi = F^c, with F the RBM's marginal over its H binary hidden units,
 *
 *     F(x) = exp(-|x - a|^2 / (2 sigma^2)) prod_j (1 + exp(u_j)),
 *     u_j  = b_j + sum_i x_i W_ij / sigma^2,
 *
 * c = 1/2 (psi sqrt, the default: |psi|^2 = F) or c = 1 (psi full); sigma^2 = c / omega,
 * which makes a = b = W = 0 the exact non-interacting ground state (unless --sigma).
 * The parameters are a = b = 0 and W ~ U(-0.005, 0.005), the problem of `pvmc bench`
 * without a config, or read from a file (--params).
 *
 * Algorithm: the project's kernel (sampling/kernels.py with wavefunction/rbm.py), with
 * the same work per move. The walker keeps per hidden unit u_j, the sigmoid
 * s_j = 1 / (1 + exp(-u_j)) and the reciprocal r_j = 1 / (1 + exp(u_j)). A
 * single-particle move changes u by O(D H); its acceptance ratio
 *
 *     |psi(x')/psi(x)|^2 = exp(-c (|x'_p - a_p|^2 - |x_p - a_p|^2) / sigma^2)
 *                          * [prod_j (1 + exp(u'_j)) r_j]^(2c)
 *
 * costs one exponential per hidden unit and no division; an accepted move updates s
 * and r (one division per unit). Metropolis proposes x'_p = x_p + step (U - 1/2)^D;
 * importance sampling the Langevin step x'_p = x_p + step g + sqrt(step) N(0, 1)^D
 * along the drift g = grad_p ln psi, with the ratio of the Green's functions in the
 * acceptance and, optionally, Umrigar's limit of the drift (--drift-limit a). The local
 * energy is computed once per sweep (P proposed moves); every value enters the error
 * bar (blocking with Jonsson's test, done online, as parallel_vmc/stats/blocking.py does
 * it offline).
 *
 *     E_L = -1/2 sum_i [d_i^2 ln psi + (d_i ln psi)^2] + V,
 *     d_i ln psi   = c [-(x_i - a_i) + sum_j W_ij s_j] / sigma^2,
 *     d_i^2 ln psi = c [-1 / sigma^2 + sum_j W_ij^2 s_j (1 - s_j) / sigma^4].
 *
 * Build and run (`pvmc bench --reference rbm` does both, with these flags):
 *
 *     cc -O3 -march=native -ffast-math -o rbm_vmc_ref rbm_vmc_ref.c -lm
 *     ./rbm_vmc_ref [P D H SWEEPS] [options]        e.g. 2 2 4 2000000
 *     ./rbm_vmc_ref --selftest                       exit status 0 on success
 *
 * The self-test (for psi sqrt and full, random parameters, the given P D H omega): the
 * gradient and Laplacian of ln psi of E_L and the drift of a move against finite
 * differences of ln psi from scratch, move ratios against |psi'/psi|^2 from scratch, the
 * cached u, s, r after 4000 sweeps of both samplers against fresh ones, E_L = P D omega / 2
 * at every sample of the exact non-interacting state (a = b = W = 0, no Coulomb), and the
 * error bar of an AR(1) series against its exact value; exit status 1 if any fails.
 *
 * Options: --sampler metropolis|importance, --step S (box side or Langevin time step,
 * default 1.0), --therm N (untimed sweeps before timing, the first half tuning the step
 * towards --target A, default 0.5 for Metropolis and 0.93 for importance sampling; default
 * 0: the fixed step of `pvmc bench`), --omega W, --psi sqrt|full, --sigma S, --seed N,
 * --params FILE (a (P D numbers), b (H), W (P D x H, row-major: W_ij at i H + j), all
 * whitespace-separated: the order of the project's theta), --no-coulomb, --drift-limit A.
 *
 * Output: one line of key=value fields: the problem, <E> and its error bar err (the
 * parameters are not optimized: not a physics result), the variance of E_L, the
 * acceptance acc, the tuned step (tuned_step=, only after tuning), cpu (CPU over wall
 * time of the timed sweeps: well below 100% means the run was crowded out), ns/move and
 * ns/sweep. `pvmc bench` reads ns/move=, acc= and cpu=; it tells a fermion reference by
 * its step= field, which this program never prints.
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
static double zig_area(double r) { return r * zig_gauss(r) + 1.2533141373155003 /* sqrt(pi / 2) */ * erfc(r / sqrt(2.0)); }

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

/* ------------------------------------------------------------------ the wave function */

typedef struct {
    int P, D, H, M;          /* particles, dimensions, hidden units, coordinates M = P D */
    int coulomb, importance; /* Coulomb on; importance sampling (else Metropolis) */
    double omega, c, inv_s2; /* trap; psi = F^c; 1 / sigma^2 */
    double step, drift_limit;
    double *a, *b, *W; /* visible biases (M), hidden biases (H), weights W[i H + j] */
    double *x;         /* positions x[p D + d] */
    double *u, *s, *r; /* per hidden unit: u_j, sigmoid(u_j), 1 / (1 + exp(u_j)) */
    double *un, *eun, *sn, *rn; /* the proposal's u'_j, exp(u'_j), s'_j, r'_j */
    double *grad, *lap;         /* d_i ln psi and d_i^2 ln psi of the last E_L */
} Rbm;

static void *alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "rbm_vmc_ref: out of memory\n");
        exit(2);
    }
    return p;
}

static void rbm_alloc(Rbm *S)
{
    const int M = S->M, H = S->H;
    S->a = alloc(M, sizeof(double));
    S->b = alloc(H, sizeof(double));
    S->W = alloc((size_t)M * H, sizeof(double));
    S->x = alloc(M, sizeof(double));
    S->grad = alloc(M, sizeof(double));
    S->lap = alloc(M, sizeof(double));
    double **rows[] = {&S->u, &S->s, &S->r, &S->un, &S->eun, &S->sn, &S->rn};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) *rows[k] = alloc(H, sizeof(double));
}

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

/* The hidden units' cache from scratch for the current position. */
static void rbm_refresh(Rbm *S)
{
    for (int j = 0; j < S->H; j++) {
        double t = S->b[j];
        for (int i = 0; i < S->M; i++) t += S->x[i] * S->W[(size_t)i * S->H + j] * S->inv_s2;
        S->u[j] = t;
        sigmoid_pair(exp(t), &S->r[j], &S->s[j]);
    }
}

/* ln psi from scratch at positions x (for the self-test). */
static double rbm_log_psi(const Rbm *S, const double *x)
{
    double gauss = 0.0, soft = 0.0;
    for (int i = 0; i < S->M; i++) gauss += (x[i] - S->a[i]) * (x[i] - S->a[i]);
    for (int j = 0; j < S->H; j++) {
        double t = S->b[j];
        for (int i = 0; i < S->M; i++) t += x[i] * S->W[(size_t)i * S->H + j] * S->inv_s2;
        soft += t > 0.0 ? t + log1p(exp(-t)) : log1p(exp(t)); /* softplus */
    }
    return S->c * (-0.5 * S->inv_s2 * gauss + soft);
}

/* d ln psi / d x_p at the particle's coordinates xp (D) with sigmoids sig (H) into g. */
HOT void rbm_drift(const Rbm *S, int p, const double *xp, const double *sig, double *g, const int D)
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

/* Umrigar's limit of a drift g (D): g (sqrt(1 + 2 a |g|^2 tau) - 1) / (a |g|^2 tau). */
HOT void limit_drift(double *g, double tau, double a, const int D)
{
    double g2 = 0.0;
    for (int d = 0; d < D; d++) g2 += g[d] * g[d];
    const double f = 2.0 / (1.0 + sqrt(1.0 + 2.0 * a * g2 * tau));
    for (int d = 0; d < D; d++) g[d] *= f;
}

/* |psi(x')/psi(x)|^2 for particle p moved by dx (D); leaves u'_j and exp(u'_j) of the
 * proposal in un, eun. */
HOT double rbm_ratio(Rbm *S, int p, const double *dx, const int D)
{
    const int H = S->H;
    const double inv_s2 = S->inv_s2;
    double log_q = 0.0;
    for (int d = 0; d < D; d++) {
        const int i = p * D + d;
        const double xo = S->x[i] - S->a[i], xn = xo + dx[d];
        log_q -= S->c * inv_s2 * (xn * xn - xo * xo);
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
        hidden *= (1.0 + eun[j]) * r[j]; /* r_j = 1 / (1 + exp(u_j)): no division */
    }
    if (S->c != 0.5) hidden = pow(hidden, 2.0 * S->c);
    return exp(log_q) * hidden;
}

/* s'_j, r'_j of the proposal (for its drift, or on acceptance). */
HOT void rbm_proposal_sigmoids(Rbm *S)
{
    for (int j = 0; j < S->H; j++) sigmoid_pair(S->eun[j], &S->rn[j], &S->sn[j]);
}

/* Accept the proposal of rbm_ratio: the caches (sigmoids_done: s', r' are filled; the
 * proposal's rows become the current ones by swapping pointers, no copies) and the
 * particle's coordinates. */
HOT void rbm_accept(Rbm *S, int p, const double *dx, int sigmoids_done, const int D)
{
    if (!sigmoids_done) rbm_proposal_sigmoids(S);
    swap(&S->u, &S->un);
    swap(&S->s, &S->sn);
    swap(&S->r, &S->rn);
    for (int d = 0; d < D; d++) S->x[p * D + d] += dx[d];
}

/* Propose a move of particle p and return its acceptance probability (before the
 * min(1, .)): Metropolis in a box of side step, or the Langevin step of importance
 * sampling with the Green's function ratio. dx gets the displacement. */
HOT double propose(Rbm *S, Rng *g, int p, double *dx, const int D)
{
    if (!S->importance) {
        for (int d = 0; d < D; d++) dx[d] = S->step * (uniform(g) - 0.5);
        return rbm_ratio(S, p, dx, D);
    }
    const double tau = S->step, sq = sqrt(tau);
    double g_old[MAX_D], g_new[MAX_D], xn[MAX_D];
    rbm_drift(S, p, S->x + p * D, S->s, g_old, D);
    if (S->drift_limit > 0.0) limit_drift(g_old, tau, S->drift_limit, D);
    for (int d = 0; d < D; d++) dx[d] = tau * g_old[d] + sq * normal(g);
    const double ratio = rbm_ratio(S, p, dx, D);
    rbm_proposal_sigmoids(S);
    for (int d = 0; d < D; d++) xn[d] = S->x[p * D + d] + dx[d];
    rbm_drift(S, p, xn, S->sn, g_new, D);
    if (S->drift_limit > 0.0) limit_drift(g_new, tau, S->drift_limit, D);
    double t = 0.0; /* ln G(x|x') - ln G(x'|x), G(y|x) ~ exp(-|y - x - tau g(x)|^2 / 2 tau) */
    for (int d = 0; d < D; d++) {
        const double fwd = dx[d] - tau * g_old[d], bwd = dx[d] + tau * g_new[d];
        t += fwd * fwd - bwd * bwd;
    }
    return ratio * exp(t * (0.5 / tau));
}

/* One sweep: a proposed move per particle; returns the number accepted. */
HOT long sweep_d(Rbm *S, Rng *rng, const int D)
{
    Rng g = *rng; /* the state in registers */
    long accepted = 0;
    for (int p = 0; p < S->P; p++) {
        double dx[MAX_D];
        const double q = propose(S, &g, p, dx, D);
        if (uniform(&g) < q) {
            rbm_accept(S, p, dx, S->importance, D);
            accepted++;
        }
    }
    *rng = g;
    return accepted;
}

static long sweep(Rbm *S, Rng *g)
{
    switch (S->D) { /* D a constant in each copy */
    case 1: return sweep_d(S, g, 1);
    case 2: return sweep_d(S, g, 2);
    default: return sweep_d(S, g, 3);
    }
}

/* E_L at the current position; leaves d_i ln psi in grad and d_i^2 ln psi in lap. */
static double local_energy(Rbm *S)
{
    const int M = S->M, H = S->H, P = S->P, D = S->D;
    const double c = S->c, inv_s2 = S->inv_s2;
    double kinetic = 0.0, trap = 0.0, coulomb = 0.0;
    for (int i = 0; i < M; i++) {
        const double *Wi = S->W + (size_t)i * H;
        double g = -(S->x[i] - S->a[i]), l = 0.0;
        for (int j = 0; j < H; j++) {
            const double ws = Wi[j] * S->s[j];
            g += ws;
            l += ws * Wi[j] * (1.0 - S->s[j]);
        }
        S->grad[i] = c * inv_s2 * g;
        S->lap[i] = c * (-inv_s2 + l * inv_s2 * inv_s2);
        kinetic += S->lap[i] + S->grad[i] * S->grad[i];
        trap += S->x[i] * S->x[i];
    }
    if (S->coulomb)
        for (int p = 0; p < P; p++)
            for (int q = p + 1; q < P; q++) {
                double r2 = 0.0;
                for (int d = 0; d < D; d++) {
                    const double t = S->x[p * D + d] - S->x[q * D + d];
                    r2 += t * t;
                }
                coulomb += 1.0 / sqrt(r2);
            }
    return -0.5 * kinetic + 0.5 * S->omega * S->omega * trap + coulomb;
}

/* Thermalisation: n sweeps, the step tuned in the first half after every TUNE_CHUNK
 * sweeps towards the acceptance target (Robbins-Monro on ln step with the gain
 * 3 / (1 + k)^0.6 of the k-th update, a factor 2 at most, as the project's sampler). */
static void thermalize(Rbm *S, Rng *g, long n, double target)
{
    long done = 0, k = 0;
    while (done < n / 2) {
        const long chunk = n / 2 - done < TUNE_CHUNK ? n / 2 - done : TUNE_CHUNK;
        long acc = 0;
        for (long t = 0; t < chunk; t++) acc += sweep(S, g);
        const double rate = (double)acc / (chunk * S->P);
        double f = exp(3.0 / pow(1.0 + k, 0.6) * (rate - target));
        S->step *= f < 0.5 ? 0.5 : f > 2.0 ? 2.0 : f;
        done += chunk;
        k++;
    }
    for (; done < n; done++) sweep(S, g);
}

/* ------------------------------------------------------------------ self-test */

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

static void set_problem(Rbm *S, double c, double omega)
{
    S->c = c;
    S->omega = omega;
    S->inv_s2 = omega / c; /* sigma^2 = c / omega */
}

static void random_parameters(Rbm *S, Rng *g, double scale)
{
    for (int i = 0; i < S->M; i++) S->a[i] = scale * normal(g);
    for (int j = 0; j < S->H; j++) S->b[j] = scale * normal(g);
    for (long k = 0; k < (long)S->M * S->H; k++) S->W[k] = scale * normal(g);
}

static void random_positions(Rbm *S, Rng *g)
{
    for (int i = 0; i < S->M; i++) S->x[i] = normal(g) / sqrt(S->inv_s2);
}

/* Largest error of grad and Laplacian of ln psi (the E_L routine's) against fourth-order
 * central differences of rbm_log_psi, relative to 1 + |value|. */
static void derivative_errors(Rbm *S, double *err_g, double *err_l)
{
    const double h = 1e-3;
    local_energy(S);
    const double f0 = rbm_log_psi(S, S->x);
    *err_g = *err_l = 0.0;
    for (int i = 0; i < S->M; i++) {
        const double xi = S->x[i];
        double f[5];
        for (int m = -2; m <= 2; m++) {
            S->x[i] = xi + m * h;
            f[m + 2] = m ? rbm_log_psi(S, S->x) : f0;
        }
        S->x[i] = xi;
        const double g = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h);
        const double l = (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * h * h);
        const double eg = fabs(g - S->grad[i]) / (1 + fabs(g)), el = fabs(l - S->lap[i]) / (1 + fabs(l));
        *err_g = eg > *err_g ? eg : *err_g;
        *err_l = el > *err_l ? el : *err_l;
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
    const double exact = sqrt((1 + phi) / ((1 - phi) * n));
    const double dev = fabs(blocking_result(B).error / exact - 1);
    free(B);
    return dev;
}

static int selftest(Rbm *S, uint64_t seed)
{
    Rng g;
    rng_seed(&g, seed);
    int fail = 0;
    char what[128];
    const double psis[2] = {0.5, 1.0};
    printf("selftest: P=%d D=%d H=%d omega=%g\n", S->P, S->D, S->H, S->omega);
    for (int k = 0; k < 2; k++) {
        const double c = psis[k];
        const char *name = c == 0.5 ? "sqrt" : "full";
        set_problem(S, c, S->omega);
        random_parameters(S, &g, 0.1);
        random_positions(S, &g);
        rbm_refresh(S);
        /* 1. derivatives of ln psi at a few configurations of a chain */
        double eg = 0, el = 0, ed = 0;
        S->importance = 0;
        S->step = 1.0;
        for (int rep = 0; rep < 4; rep++) {
            for (int t = 0; t < 20; t++) sweep(S, &g);
            double a, b, gp[MAX_D];
            derivative_errors(S, &a, &b);
            eg = a > eg ? a : eg;
            el = b > el ? b : el;
            for (int p = 0; p < S->P; p++) { /* the move's drift against E_L's gradient */
                rbm_drift(S, p, S->x + p * S->D, S->s, gp, S->D);
                for (int d = 0; d < S->D; d++) {
                    const double e = fabs(gp[d] - S->grad[p * S->D + d]) / (1 + fabs(gp[d]));
                    ed = e > ed ? e : ed;
                }
            }
        }
        snprintf(what, sizeof what, "psi %s: grad ln psi vs finite differences", name);
        fail |= check(what, eg, 1e-7);
        snprintf(what, sizeof what, "psi %s: Laplacian of ln psi vs finite differences", name);
        fail |= check(what, el, 1e-5);
        snprintf(what, sizeof what, "psi %s: drift of a move vs the gradient of E_L", name);
        fail |= check(what, ed, 1e-12);
        /* 2. move ratios and the proposal's drift against ln psi from scratch */
        double er = 0, dx[MAX_D], gn[MAX_D];
        ed = 0;
        for (int p = 0; p < S->P; p++) {
            for (int d = 0; d < S->D; d++) dx[d] = normal(&g) * 0.3;
            const double ratio = rbm_ratio(S, p, dx, S->D);
            const double old = rbm_log_psi(S, S->x);
            for (int d = 0; d < S->D; d++) S->x[p * S->D + d] += dx[d];
            const double fresh = exp(2 * (rbm_log_psi(S, S->x) - old));
            const double e = fabs(ratio / fresh - 1);
            er = e > er ? e : er;
            /* the drift at the proposal from its sigmoids, against differences */
            rbm_proposal_sigmoids(S);
            rbm_drift(S, p, S->x + p * S->D, S->sn, gn, S->D);
            for (int d = 0; d < S->D; d++) {
                const int i = p * S->D + d;
                const double xi = S->x[i], h = 1e-4;
                S->x[i] = xi + h;
                const double fp = rbm_log_psi(S, S->x);
                S->x[i] = xi - h;
                const double fm = rbm_log_psi(S, S->x);
                S->x[i] = xi;
                const double e2 = fabs((fp - fm) / (2 * h) - gn[d]) / (1 + fabs(gn[d]));
                ed = e2 > ed ? e2 : ed;
            }
            for (int d = 0; d < S->D; d++) S->x[p * S->D + d] -= dx[d];
        }
        snprintf(what, sizeof what, "psi %s: move ratio vs |psi'/psi|^2 from scratch", name);
        fail |= check(what, er, 1e-10);
        snprintf(what, sizeof what, "psi %s: drift at the proposal vs finite differences", name);
        fail |= check(what, ed, 1e-6);
        /* 3. the updated caches after many moves of both samplers against fresh ones */
        for (int imp = 0; imp < 2; imp++) {
            S->importance = imp;
            S->step = imp ? 0.2 : 1.0;
            for (int t = 0; t < 2000; t++) sweep(S, &g);
        }
        double eu = 0;
        double *u0 = alloc(3 * S->H, sizeof(double));
        memcpy(u0, S->u, S->H * sizeof(double));
        memcpy(u0 + S->H, S->s, S->H * sizeof(double));
        memcpy(u0 + 2 * S->H, S->r, S->H * sizeof(double));
        rbm_refresh(S);
        for (int j = 0; j < S->H; j++) {
            const double e1 = fabs(u0[j] - S->u[j]) / (1 + fabs(S->u[j]));
            const double e2 = fabs(u0[S->H + j] - S->s[j]), e3 = fabs(u0[2 * S->H + j] - S->r[j]);
            eu = e1 > eu ? e1 : eu;
            eu = e2 > eu ? e2 : eu;
            eu = e3 > eu ? e3 : eu;
        }
        free(u0);
        snprintf(what, sizeof what, "psi %s: cached u, s, r after 4000 sweeps vs fresh", name);
        fail |= check(what, eu, 1e-10);
        /* 4. the exact ground state without interaction: E_L = P D omega / 2 everywhere */
        memset(S->a, 0, S->M * sizeof(double));
        memset(S->b, 0, S->H * sizeof(double));
        memset(S->W, 0, (size_t)S->M * S->H * sizeof(double));
        const int coulomb = S->coulomb;
        S->coulomb = 0;
        rbm_refresh(S);
        const double exact = 0.5 * S->P * S->D * S->omega;
        double ee = 0;
        for (int imp = 0; imp < 2; imp++) {
            S->importance = imp;
            S->step = imp ? 0.2 : 1.0;
            for (int t = 0; t < 500; t++) {
                sweep(S, &g);
                const double e = fabs(local_energy(S) - exact) / exact;
                ee = e > ee ? e : ee;
            }
        }
        S->coulomb = coulomb;
        snprintf(what, sizeof what, "psi %s, a = b = W = 0, no Coulomb: |E_L / %g - 1|", name, exact);
        fail |= check(what, ee, 1e-12);
    }
    fail |= check("blocking error of an AR(1) series vs exact: relative", blocking_error_deviation(&g), 0.1);
    printf("selftest %s\n", fail ? "FAILED" : "passed");
    return fail;
}

/* ------------------------------------------------------------------ main */

static int usage(const char *msg)
{
    fprintf(stderr,
            "rbm_vmc_ref: %s\n"
            "usage: rbm_vmc_ref [P D H SWEEPS] [--sampler metropolis|importance] [--step S]\n"
            "       [--therm N] [--target A] [--omega W] [--psi sqrt|full] [--sigma S] [--seed N]\n"
            "       [--params FILE] [--no-coulomb] [--drift-limit A] [--selftest]\n",
            msg);
    return 2;
}

static int read_parameters(Rbm *S, const char *path)
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
    long pos[4] = {2, 2, 4, 1000000}; /* P D H SWEEPS */
    int npos = 0, test = 0, have_sigma = 0, have_target = 0;
    long therm = 0;
    double omega = 1.0, c = 0.5, sigma = 0.0, step = 1.0, target = 0.0, drift_limit = 0.0;
    uint64_t seed = 1;
    const char *params = NULL;
    Rbm S0 = {0}, *S = &S0;
    S->coulomb = 1;
    for (int k = 1; k < argc; k++) {
        const char *arg = argv[k], *val = k + 1 < argc ? argv[k + 1] : NULL;
        char *end = NULL;
        if (strncmp(arg, "--", 2)) {
            if (npos == 4) return usage("more than four positional arguments");
            pos[npos++] = strtol(arg, &end, 10);
            if (*end || end == arg) return usage("P D H SWEEPS must be integers");
            continue;
        }
        if (!strcmp(arg, "--selftest")) test = 1;
        else if (!strcmp(arg, "--no-coulomb")) S->coulomb = 0;
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
            else {
                double v = strtod(val, &end);
                if (!strcmp(arg, "--omega")) omega = v;
                else if (!strcmp(arg, "--step")) step = v;
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
    const long sweeps = pos[3];
    S->M = S->P * S->D;
    if (S->P < 1 || S->D < 1 || S->D > MAX_D || S->H < 1 || (sweeps < 1 && !test))
        return usage("need P >= 1, 1 <= D <= 3, H >= 1, SWEEPS >= 1");
    if (!(omega > 0) || !(step > 0) || therm < 0 || drift_limit < 0 || (have_sigma && !(sigma > 0)))
        return usage("need omega > 0, step > 0, sigma > 0, therm >= 0, drift limit >= 0");
    if (!have_target) target = S->importance ? 0.93 : 0.5;
    if (!(target > 0 && target < 1)) return usage("need 0 < target < 1");
    zig_init();
    rbm_alloc(S);
    S->omega = omega;
    S->drift_limit = drift_limit;
    if (test) return selftest(S, seed);

    set_problem(S, c, omega);
    if (have_sigma) S->inv_s2 = 1.0 / (sigma * sigma);
    Rng g;
    rng_seed(&g, seed);
    if (params) {
        const int bad = read_parameters(S, params);
        if (bad) return bad;
    } else { /* the problem of pvmc bench: a = b = 0, W ~ U(-0.005, 0.005) */
        for (long k = 0; k < (long)S->M * S->H; k++) S->W[k] = 0.01 * (uniform(&g) - 0.5);
    }
    random_positions(S, &g);
    rbm_refresh(S);
    S->step = step;
    thermalize(S, &g, therm, target);

    Blocking *B = alloc(1, sizeof *B);
    long accepted = 0;
    struct timespec w0, w1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (long t = 0; t < sweeps; t++) {
        accepted += sweep(S, &g);
        blocking_add(B, local_energy(S));
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    const double wall = (w1.tv_sec - w0.tv_sec) + 1e-9 * (w1.tv_nsec - w0.tv_nsec);
    const double cpu = (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
    const Estimate e = blocking_result(B);
    printf("P=%d D=%d H=%d sweeps=%ld sampler=%s psi=%s omega=%g coulomb=%d  <E>=%.6f err=%.6f "
           "var=%.4g acc=%.4f",
           S->P, S->D, S->H, sweeps, S->importance ? "importance" : "metropolis",
           c == 0.5 ? "sqrt" : "full", omega, S->coulomb, e.mean, e.error, e.variance,
           (double)accepted / ((double)sweeps * S->P));
    if (therm > 0) printf(" tuned_step=%.4f", S->step);
    printf("  cpu=%.0f%% ns/move=%.2f ns/sweep=%.2f\n", 100 * cpu / wall,
           1e9 * wall / ((double)sweeps * S->P), 1e9 * wall / sweeps);
    free(B);
    return 0;
}
