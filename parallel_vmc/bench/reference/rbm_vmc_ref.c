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
#define VMC_NAME "rbm_vmc_ref"
#define MAX_D 3

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

/* The random numbers, the error bars, the RBM's cache, ratio and drift, the sweep and
 * the thermalisation, the self-test's helpers, the options and the timing, shared with
 * slater_vmc_ref.c. */
#define VMC_STATE Rbm
#include "vmc_ref_common.h"

static void allocate(Rbm *S)
{
    rbm_allocate(S);
    S->x = alloc(S->M, sizeof(double));
    S->grad = alloc(S->M, sizeof(double));
    S->lap = alloc(S->M, sizeof(double));
}

/* |psi(x')/psi(x)|^2 for particle p moved by dx (D); leaves u'_j and exp(u'_j) of the
 * proposal in un, eun. */
HOT double move_ratio(Rbm *S, int p, const double *dx, const int D)
{
    double log_q = 0.0;
    const double hidden = rbm_ratio(S, p, dx, &log_q, D);
    return exp(log_q) * hidden;
}

/* Propose a move of particle p and return its acceptance probability (before the
 * min(1, .)): Metropolis in a box of side step, or the Langevin step of importance
 * sampling with the Green's function ratio. dx gets the displacement. */
HOT double propose(Rbm *S, Rng *g, int p, double *dx, const int D)
{
    if (!S->importance) {
        box_move(S, g, dx, D);
        return move_ratio(S, p, dx, D);
    }
    double g_old[MAX_D], g_new[MAX_D], xn[MAX_D];
    rbm_drift(S, p, S->x + p * D, S->s, g_old, D);
    langevin_move(S, g, g_old, dx, D);
    const double ratio = move_ratio(S, p, dx, D);
    rbm_proposal_sigmoids(S);
    for (int d = 0; d < D; d++) xn[d] = S->x[p * D + d] + dx[d];
    rbm_drift(S, p, xn, S->sn, g_new, D);
    return ratio * green_ratio(S, dx, g_old, g_new, D);
}

/* Accept the proposal of propose: the caches (with importance sampling s', r' are
 * filled) and the particle's coordinates. */
HOT void accept(Rbm *S, int p, const double *dx, const int D)
{
    rbm_accept(S, S->importance);
    for (int d = 0; d < D; d++) S->x[p * D + d] += dx[d];
}

static void after_sweep(Rbm *S, long t)
{
    (void)S, (void)t; /* nothing: no cache drifts */
}

/* E_L at the current position; leaves d_i ln psi in grad and d_i^2 ln psi in lap. */
static double local_energy(Rbm *S)
{
    const int M = S->M, P = S->P, D = S->D;
    double kinetic = 0.0, trap = 0.0, coulomb = 0.0;
    for (int i = 0; i < M; i++) {
        S->grad[i] = rbm_derivatives(S, i, &S->lap[i]);
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

/* ------------------------------------------------------------------ self-test */

static void set_problem(Rbm *S, double c, double omega)
{
    S->c = c;
    S->omega = omega;
    S->inv_s2 = omega / c; /* sigma^2 = c / omega */
}

static double log_psi(Rbm *S, const double *x) { return rbm_log_psi(S, x); }

/* Largest error of grad and Laplacian of ln psi (the E_L routine's) against fourth-order
 * central differences of log_psi, relative to 1 + |value|. */
static void derivative_errors(Rbm *S, double *err_g, double *err_l)
{
    local_energy(S);
    const double f0 = log_psi(S, S->x);
    *err_g = *err_l = 0.0;
    for (int i = 0; i < S->M; i++) {
        double g, l;
        log_psi_differences(S, S->x, i, f0, &g, &l);
        *err_g = maxd(fabs(g - S->grad[i]) / (1 + fabs(g)), *err_g);
        *err_l = maxd(fabs(l - S->lap[i]) / (1 + fabs(l)), *err_l);
    }
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
            eg = maxd(a, eg);
            el = maxd(b, el);
            for (int p = 0; p < S->P; p++) { /* the move's drift against E_L's gradient */
                rbm_drift(S, p, S->x + p * S->D, S->s, gp, S->D);
                for (int d = 0; d < S->D; d++)
                    ed = maxd(fabs(gp[d] - S->grad[p * S->D + d]) / (1 + fabs(gp[d])), ed);
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
            const double ratio = move_ratio(S, p, dx, S->D);
            const double old = log_psi(S, S->x);
            for (int d = 0; d < S->D; d++) S->x[p * S->D + d] += dx[d];
            const double fresh = exp(2 * (log_psi(S, S->x) - old));
            er = maxd(fabs(ratio / fresh - 1), er);
            /* the drift at the proposal from its sigmoids, against differences */
            rbm_proposal_sigmoids(S);
            rbm_drift(S, p, S->x + p * S->D, S->sn, gn, S->D);
            for (int d = 0; d < S->D; d++) {
                const double slope = log_psi_slope(S, S->x, p * S->D + d);
                ed = maxd(fabs(slope - gn[d]) / (1 + fabs(gn[d])), ed);
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
        double *old = alloc(3 * S->H, sizeof(double));
        rbm_save(S, old);
        rbm_refresh(S);
        const double eu = rbm_cache_error(S, old);
        free(old);
        snprintf(what, sizeof what, "psi %s: cached u, s, r after 4000 sweeps vs fresh", name);
        fail |= check(what, eu, 1e-10);
        /* 4. the exact ground state without interaction: E_L = P D omega / 2 everywhere */
        zero_parameters(S);
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
                ee = maxd(fabs(local_energy(S) - exact) / exact, ee);
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

/* The arguments of this program alone: P D H SWEEPS and --omega. */
typedef struct {
    long pos[4];
    int npos;
    double omega;
} Own;

static int own_positional(void *own, const char *arg)
{
    Own *o = own;
    char *end = NULL;
    if (o->npos == 4) return usage("more than four positional arguments");
    o->pos[o->npos++] = strtol(arg, &end, 10);
    if (*end || end == arg) return usage("P D H SWEEPS must be integers");
    return 0;
}

static int own_flag(void *own, const char *arg)
{
    (void)own, (void)arg;
    return 0;
}

static int own_option(void *own, const char *arg, const char *val, char **end)
{
    if (strcmp(arg, "--omega")) return 0;
    ((Own *)own)->omega = strtod(val, end);
    return 1;
}

int main(int argc, char **argv)
{
    Own own = {{2, 2, 4, 1000000}, 0, 1.0}; /* P D H SWEEPS */
    Options o = {.coulomb = 1, .c = 0.5, .step = 1.0, .seed = 1};
    const int bad = parse_args(argc, argv, &o, &own);
    if (bad) return bad;
    Rbm S0 = {0}, *S = &S0;
    S->coulomb = o.coulomb;
    S->importance = o.importance;
    const double omega = own.omega, c = o.c;
    S->P = (int)own.pos[0];
    S->D = (int)own.pos[1];
    S->H = (int)own.pos[2];
    const long sweeps = own.pos[3];
    S->M = S->P * S->D;
    if (S->P < 1 || S->D < 1 || S->D > MAX_D || S->H < 1 || (sweeps < 1 && !o.test))
        return usage("need P >= 1, 1 <= D <= 3, H >= 1, SWEEPS >= 1");
    if (!(omega > 0) || !(o.step > 0) || o.therm < 0 || o.drift_limit < 0 || (o.have_sigma && !(o.sigma > 0)))
        return usage("need omega > 0, step > 0, sigma > 0, therm >= 0, drift limit >= 0");
    if (settle_target(&o)) return 2;
    zig_init();
    allocate(S);
    S->omega = omega;
    S->drift_limit = o.drift_limit;
    if (o.test) return selftest(S, o.seed);

    set_problem(S, c, omega);
    if (o.have_sigma) S->inv_s2 = 1.0 / (o.sigma * o.sigma);
    Rng g;
    rng_seed(&g, o.seed);
    if (o.params) {
        const int bad_params = read_parameters(S, o.params);
        if (bad_params) return bad_params;
    } else { /* the problem of pvmc bench: a = b = 0, W ~ U(-0.005, 0.005) */
        for (long k = 0; k < (long)S->M * S->H; k++) S->W[k] = 0.01 * (uniform(&g) - 0.5);
    }
    random_positions(S, &g);
    rbm_refresh(S);
    S->step = o.step;
    thermalize(S, &g, o.therm, o.target);

    Blocking *B = alloc(1, sizeof *B);
    long accepted = 0;
    Stopwatch clock;
    stopwatch_start(&clock);
    for (long t = 0; t < sweeps; t++) {
        accepted += sweep(S, &g);
        blocking_add(B, local_energy(S));
    }
    double wall, cpu;
    stopwatch_read(&clock, &wall, &cpu);
    const Estimate e = blocking_result(B);
    printf("P=%d D=%d H=%d sweeps=%ld sampler=%s psi=%s omega=%g coulomb=%d  <E>=%.6f err=%.6f "
           "var=%.4g acc=%.4f",
           S->P, S->D, S->H, sweeps, S->importance ? "importance" : "metropolis",
           c == 0.5 ? "sqrt" : "full", omega, S->coulomb, e.mean, e.error, e.variance,
           (double)accepted / ((double)sweeps * S->P));
    if (o.therm > 0) printf(" tuned_step=%.4f", S->step);
    print_speed(wall, cpu, sweeps, S->P);
    free(B);
    return 0;
}
