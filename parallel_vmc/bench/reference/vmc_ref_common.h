/*
 * vmc_ref_common.h: what the two plain-C speed references rbm_vmc_ref.c and
 * slater_vmc_ref.c share, in one place: the random numbers (xoshiro256**, ziggurat normal
 * deviates), the error bar (online blocking with Jonsson's test), the RBM part of the
 * trial function (its cache, move ratio, drift and derivatives), the sweep and the
 * thermalisation with step tuning, the self-test's helpers, the shared command-line
 * options and the timing of the measured sweeps. Each reference still compiles as one
 * file (`cc -O3 ... rbm_vmc_ref.c -lm`): the compiler finds this header beside it.
 *
 * The including file defines, before the #include:
 *   - VMC_NAME, its name for messages ("rbm_vmc_ref");
 *   - MAX_D, the most dimensions;
 *   - its walker's struct and VMC_STATE, that struct's name; the struct has the fields
 *         int P, D, H, M, importance;
 *         double c, inv_s2, step, drift_limit;
 *         double *x, *a, *b, *W, *u, *s, *r, *un, *eun, *sn, *rn;
 *     with the meanings of rbm_vmc_ref.c;
 * and, after it, the functions declared below under "defined by the including file".
 */
#ifndef VMC_REF_COMMON_H
#define VMC_REF_COMMON_H

#if !defined(VMC_NAME) || !defined(MAX_D) || !defined(VMC_STATE)
#error "define VMC_NAME, MAX_D and VMC_STATE (the walker's struct) before including vmc_ref_common.h"
#endif

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

/* ------------------------------------------------------------------ defined by the including file */

typedef VMC_STATE State;

/* The move of particle p: its acceptance probability before min(1, .) with the
 * displacement in dx (D), and the acceptance of that proposal into every cache and x. */
HOT double propose(State *S, Rng *g, int p, double *dx, const int D);
HOT void accept(State *S, int p, const double *dx, const int D);
/* What to do after the t-th sweep (t from 1) of the thermalisation. */
static void after_sweep(State *S, long t);
/* ln |psi| at positions x from scratch (for the self-test). */
static double log_psi(State *S, const double *x);
/* The message msg and the command line's usage on stderr; returns the exit status 2. */
static int usage(const char *msg);

/* ------------------------------------------------------------------ utilities */

static void *alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, VMC_NAME ": out of memory\n");
        exit(2);
    }
    return p;
}

HOT void swap(double **a, double **b)
{
    double *t = *a;
    *a = *b;
    *b = t;
}

static inline double maxd(double a, double b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ RBM */

/* The RBM's parameters a (M), b (H), W (M x H) and its hidden units' rows. */
static void rbm_allocate(State *S)
{
    const int M = S->M, H = S->H;
    S->a = alloc(M, sizeof(double));
    S->b = alloc(H, sizeof(double));
    S->W = alloc((size_t)M * H, sizeof(double));
    double **rows[] = {&S->u, &S->s, &S->r, &S->un, &S->eun, &S->sn, &S->rn};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) *rows[k] = alloc(H, sizeof(double));
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
static void rbm_refresh(State *S)
{
    for (int j = 0; j < S->H; j++) {
        double t = S->b[j];
        for (int i = 0; i < S->M; i++) t += S->x[i] * S->W[(size_t)i * S->H + j] * S->inv_s2;
        S->u[j] = t;
        sigmoid_pair(exp(t), &S->r[j], &S->s[j]);
    }
}

/* ln F^c at positions x from scratch (for the self-test). */
static double rbm_log_psi(const State *S, const double *x)
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

/* d ln F^c / d x_p at the particle's coordinates xp (D) with sigmoids sig (H) into g. */
HOT void rbm_drift(const State *S, int p, const double *xp, const double *sig, double *g, const int D)
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

/* The RBM's |F'/F|^(2c) for particle p moved by dx (D): the Gaussian's logarithm added
 * to *log_q, the hidden units' product returned; u'_j and exp(u'_j) of the proposal left
 * in un, eun. */
HOT double rbm_ratio(State *S, int p, const double *dx, double *log_q, const int D)
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
        hidden *= (1.0 + eun[j]) * r[j]; /* r_j = 1 / (1 + exp(u_j)): no division */
    }
    return S->c != 0.5 ? pow(hidden, 2.0 * S->c) : hidden;
}

/* s'_j, r'_j of the proposal (for its drift, or on acceptance). */
HOT void rbm_proposal_sigmoids(State *S)
{
    for (int j = 0; j < S->H; j++) sigmoid_pair(S->eun[j], &S->rn[j], &S->sn[j]);
}

/* Accept the proposal of rbm_ratio (sigmoids_done: s', r' are filled): the proposal's
 * rows become the current ones by swapping pointers, no copies. */
HOT void rbm_accept(State *S, int sigmoids_done)
{
    if (!sigmoids_done) rbm_proposal_sigmoids(S);
    swap(&S->u, &S->un);
    swap(&S->s, &S->sn);
    swap(&S->r, &S->rn);
}

/* d_i ln F^c returned and d_i^2 ln F^c into *lap for coordinate i, from the sigmoids:
 *     d_i ln F^c   = c [-(x_i - a_i) + sum_j W_ij s_j] / sigma^2,
 *     d_i^2 ln F^c = c [-1 / sigma^2 + sum_j W_ij^2 s_j (1 - s_j) / sigma^4]. */
HOT double rbm_derivatives(const State *S, int i, double *lap)
{
    const double c = S->c, inv_s2 = S->inv_s2;
    const double *Wi = S->W + (size_t)i * S->H;
    double g = -(S->x[i] - S->a[i]), l = 0.0;
    for (int j = 0; j < S->H; j++) {
        const double ws = Wi[j] * S->s[j];
        g += ws;
        l += ws * Wi[j] * (1.0 - S->s[j]);
    }
    *lap = c * (-inv_s2 + l * inv_s2 * inv_s2);
    return c * inv_s2 * g;
}

/* a, b, W ~ N(0, scale^2), in this order. */
static void random_parameters(State *S, Rng *g, double scale)
{
    for (int i = 0; i < S->M; i++) S->a[i] = scale * normal(g);
    for (int j = 0; j < S->H; j++) S->b[j] = scale * normal(g);
    for (long k = 0; k < (long)S->M * S->H; k++) S->W[k] = scale * normal(g);
}

/* a = b = W = 0. */
static void zero_parameters(State *S)
{
    memset(S->a, 0, S->M * sizeof(double));
    memset(S->b, 0, S->H * sizeof(double));
    memset(S->W, 0, (size_t)S->M * S->H * sizeof(double));
}

static void random_positions(State *S, Rng *g)
{
    for (int i = 0; i < S->M; i++) S->x[i] = normal(g) / sqrt(S->inv_s2);
}

/* a, b, W from the file path (whitespace-separated, in this order); usage() if it has
 * not exactly M + H + M H numbers. */
static int read_parameters(State *S, const char *path)
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

/* ------------------------------------------------------------------ moves */

/* Umrigar's limit of a drift g (D): g (sqrt(1 + 2 a |g|^2 tau) - 1) / (a |g|^2 tau). */
HOT void limit_drift(double *g, double tau, double a, const int D)
{
    double g2 = 0.0;
    for (int d = 0; d < D; d++) g2 += g[d] * g[d];
    const double f = 2.0 / (1.0 + sqrt(1.0 + 2.0 * a * g2 * tau));
    for (int d = 0; d < D; d++) g[d] *= f;
}

/* Metropolis: the displacement dx (D) uniform in a box of side step. */
HOT void box_move(const State *S, Rng *g, double *dx, const int D)
{
    for (int d = 0; d < D; d++) dx[d] = S->step * (uniform(g) - 0.5);
}

/* Importance sampling: the Langevin step dx (D) along the drift g_old (limited, if
 * drift_limit > 0, in place), with the time step tau = step. */
HOT void langevin_move(const State *S, Rng *g, double *g_old, double *dx, const int D)
{
    const double tau = S->step, sq = sqrt(tau);
    if (S->drift_limit > 0.0) limit_drift(g_old, tau, S->drift_limit, D);
    for (int d = 0; d < D; d++) dx[d] = tau * g_old[d] + sq * normal(g);
}

/* The acceptance probability ratio G(x|x') / G(x'|x) of a Langevin step dx from the
 * drifts g_old at x and g_new at x' (limited here, in place, if drift_limit > 0). */
HOT double green_ratio(const State *S, const double *dx, const double *g_old, double *g_new, const int D)
{
    const double tau = S->step;
    if (S->drift_limit > 0.0) limit_drift(g_new, tau, S->drift_limit, D);
    double t = 0.0; /* ln G(x|x') - ln G(x'|x), G(y|x) ~ exp(-|y - x - tau g(x)|^2 / 2 tau) */
    for (int d = 0; d < D; d++) {
        const double fwd = dx[d] - tau * g_old[d], bwd = dx[d] + tau * g_new[d];
        t += fwd * fwd - bwd * bwd;
    }
    return exp(t * (0.5 / tau));
}

/* One sweep: a proposed move per particle; returns the number accepted. */
HOT long sweep_d(State *S, Rng *rng, const int D)
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

static long sweep(State *S, Rng *g)
{
    switch (S->D) { /* D a constant in each copy */
    case 1: return sweep_d(S, g, 1);
    case 2: return sweep_d(S, g, 2);
    default: return sweep_d(S, g, 3);
    }
}

/* Thermalisation: n sweeps, the step tuned in the first half after every TUNE_CHUNK
 * sweeps towards the acceptance target (Robbins-Monro on ln step with the gain
 * 3 / (1 + k)^0.6 of the k-th update, a factor 2 at most, as the project's sampler);
 * after_sweep() after each. */
static void thermalize(State *S, Rng *g, long n, double target)
{
    long done = 0, k = 0;
    while (done < n) {
        const int tuning = done < n / 2;
        const long end = tuning ? n / 2 : n;
        const long chunk = end - done < TUNE_CHUNK ? end - done : TUNE_CHUNK;
        long acc = 0;
        for (long t = 0; t < chunk; t++) {
            acc += sweep(S, g);
            after_sweep(S, done + t + 1);
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

/* The first (into *g) and second derivative (into *l) of log_psi in x_i at x by
 * fourth-order central differences; f0 = log_psi(S, x). */
static void log_psi_differences(State *S, double *x, int i, double f0, double *g, double *l)
{
    const double h = 1e-3, xi = x[i];
    double f[5];
    for (int m = -2; m <= 2; m++) {
        x[i] = xi + m * h;
        f[m + 2] = m ? log_psi(S, x) : f0;
    }
    x[i] = xi;
    *g = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h);
    *l = (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * h * h);
}

/* d log_psi / d x_i at x by a second-order central difference. */
static double log_psi_slope(State *S, double *x, int i)
{
    const double h = 1e-4, xi = x[i];
    x[i] = xi + h;
    const double fp = log_psi(S, x);
    x[i] = xi - h;
    const double fm = log_psi(S, x);
    x[i] = xi;
    return (fp - fm) / (2 * h);
}

/* The RBM's cache u, s, r copied into old (3 H) ... */
static void rbm_save(const State *S, double *old)
{
    memcpy(old, S->u, S->H * sizeof(double));
    memcpy(old + S->H, S->s, S->H * sizeof(double));
    memcpy(old + 2 * S->H, S->r, S->H * sizeof(double));
}

/* ... and its largest deviation from the current one (after rbm_refresh: a fresh one). */
static double rbm_cache_error(const State *S, const double *old)
{
    double e = 0.0;
    for (int j = 0; j < S->H; j++) {
        e = maxd(e, fabs(old[j] - S->u[j]) / (1 + fabs(S->u[j])));
        e = maxd(e, fabs(old[S->H + j] - S->s[j]));
        e = maxd(e, fabs(old[2 * S->H + j] - S->r[j]));
    }
    return e;
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

/* ------------------------------------------------------------------ command line */

/* The options both references take (their meanings in rbm_vmc_ref.c); main sets the
 * defaults, parse_args what the command line gives. */
typedef struct {
    int test, coulomb, importance, have_sigma, have_target;
    long therm;
    double c, sigma, step, target, drift_limit;
    uint64_t seed;
    const char *params;
} Options;

/* Defined by the including file, on its own arguments own: a positional argument
 * (usage()'s status if it is wrong, else 0); whether arg is one of its options without
 * a value; whether it is one of its options with the value val (a number's end in *end,
 * to be checked, or left NULL). */
static int own_positional(void *own, const char *arg);
static int own_flag(void *own, const char *arg);
static int own_option(void *own, const char *arg, const char *val, char **end);

/* The command line into o and own; usage()'s status if it is wrong, else 0. */
static int parse_args(int argc, char **argv, Options *o, void *own)
{
    for (int k = 1; k < argc; k++) {
        const char *arg = argv[k], *val = k + 1 < argc ? argv[k + 1] : NULL;
        char *end = NULL;
        if (strncmp(arg, "--", 2)) {
            const int bad = own_positional(own, arg);
            if (bad) return bad;
            continue;
        }
        if (!strcmp(arg, "--selftest")) o->test = 1;
        else if (!strcmp(arg, "--no-coulomb")) o->coulomb = 0;
        else if (own_flag(own, arg)) continue;
        else if (!val) return usage("an option without its value");
        else {
            k++;
            if (!strcmp(arg, "--sampler")) {
                if (!strcmp(val, "importance")) o->importance = 1;
                else if (strcmp(val, "metropolis")) return usage("--sampler: metropolis or importance");
            } else if (!strcmp(arg, "--psi")) {
                if (!strcmp(val, "full")) o->c = 1.0;
                else if (strcmp(val, "sqrt")) return usage("--psi: sqrt or full");
            } else if (!strcmp(arg, "--params")) o->params = val;
            else if (!strcmp(arg, "--seed")) o->seed = strtoull(val, &end, 10);
            else if (!strcmp(arg, "--therm")) o->therm = strtol(val, &end, 10);
            else if (!own_option(own, arg, val, &end)) {
                const double v = strtod(val, &end);
                if (!strcmp(arg, "--step")) o->step = v;
                else if (!strcmp(arg, "--sigma")) o->sigma = v, o->have_sigma = 1;
                else if (!strcmp(arg, "--target")) o->target = v, o->have_target = 1;
                else if (!strcmp(arg, "--drift-limit")) o->drift_limit = v;
                else return usage("unknown option");
            }
            if (end && (*end || end == val)) return usage("an option's value is not a number");
        }
    }
    return 0;
}

/* The acceptance target: by default 0.5 for Metropolis and 0.93 for importance
 * sampling; usage()'s status if it is not in (0, 1), else 0. */
static int settle_target(Options *o)
{
    if (!o->have_target) o->target = o->importance ? 0.93 : 0.5;
    return o->target > 0 && o->target < 1 ? 0 : usage("need 0 < target < 1");
}

/* ------------------------------------------------------------------ timing */

typedef struct {
    struct timespec wall, cpu;
} Stopwatch;

static void stopwatch_start(Stopwatch *t)
{
    clock_gettime(CLOCK_MONOTONIC, &t->wall);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t->cpu);
}

/* Wall and CPU seconds since stopwatch_start. */
static void stopwatch_read(const Stopwatch *t, double *wall, double *cpu)
{
    struct timespec w1, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    *wall = (w1.tv_sec - t->wall.tv_sec) + 1e-9 * (w1.tv_nsec - t->wall.tv_nsec);
    *cpu = (c1.tv_sec - t->cpu.tv_sec) + 1e-9 * (c1.tv_nsec - t->cpu.tv_nsec);
}

/* The output line's end: cpu (CPU over wall time), ns/move and ns/sweep of the timed
 * sweeps of P moves. */
static void print_speed(double wall, double cpu, long sweeps, int P)
{
    printf("  cpu=%.0f%% ns/move=%.2f ns/sweep=%.2f\n", 100 * cpu / wall,
           1e9 * wall / ((double)sweeps * P), 1e9 * wall / sweeps);
}

#endif /* VMC_REF_COMMON_H */
