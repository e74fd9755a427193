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
 * The random numbers, the error bars, the RBM's formulas, the sweep, the thermalisation,
 * the shared options and the timing are those of rbm_vmc_ref.c, in the header
 * vmc_ref_common.h beside this file (the compiler finds it there: each reference still
 * compiles as one file with the command above).
 */
#define _POSIX_C_SOURCE 200809L
#define VMC_NAME "slater_vmc_ref"
#define MAX_D 3

/* ------------------------------------------------------------------ the state */

typedef struct {
    int P, D, H, M;      /* particles, dimensions, hidden units, coordinates M = P D */
    int n, nt;           /* orbitals per spin (P / 2); Hermite polynomials per axis */
    int jastrow, coulomb, importance, refresh_every;
    double omega, sqo;   /* trap, sqrt(omega) (the orbitals' scale) */
    double c, inv_s2;    /* RBM: psi contains F^c; 1 / sigma^2 */
    double step, drift_limit;
    double *x;           /* positions x[p D + d] */
    /* RBM (see rbm_vmc_ref.c and vmc_ref_common.h) */
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

/* The random numbers, the error bars, the RBM's cache, ratio and drift, the sweep and
 * the thermalisation, the self-test's helpers, the options and the timing, shared with
 * rbm_vmc_ref.c. */
#define VMC_STATE Sys
#include "vmc_ref_common.h"

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
        box_move(S, g, dx, D);
        return move_ratio(S, p, dx, D);
    }
    double g_old[MAX_D], g_new[MAX_D];
    drift(S, p, g_old, D);
    langevin_move(S, g, g_old, dx, D);
    const double ratio = move_ratio(S, p, dx, D);
    if (ratio == 0.0) return 0.0; /* on a node: no drift there */
    proposal_drift(S, p, g_new, D);
    return ratio * green_ratio(S, dx, g_old, g_new, D);
}

/* ------------------------------------------------------------------ local energy */

/* E_L = -1/2 sum_p [nabla_p^2 ln psi + |grad_p ln psi|^2] + V; leaves grad ln psi in
 * S->grad and nabla_p^2 ln psi in S->lap. */
HOT double local_energy_d(Sys *S, const int D)
{
    const int P = S->P, n = S->n;
    double *grad = S->grad, *lap = S->lap, trap = 0.0, coulomb = 0.0;
    for (int p = 0; p < P; p++) { /* RBM, from its sigmoids */
        lap[p] = 0.0;
        for (int d = 0; d < D; d++) {
            const int i = p * D + d;
            double l;
            grad[i] = rbm_derivatives(S, i, &l);
            lap[p] += l;
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
    const int P = S->P, M = S->M, n = S->n;
    S->x = alloc(M, sizeof(double));
    rbm_allocate(S);
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

/* The inverses rebuilt every refresh_every sweeps (t of them done). */
static void after_sweep(Sys *S, long t)
{
    if (t % S->refresh_every == 0) refresh_inverses(S);
}

/* ------------------------------------------------------------------ self-test */

/* ln|psi| at positions x from scratch. */
static double log_psi(Sys *S, const double *x)
{
    const int P = S->P, D = S->D;
    int sign;
    double value = slater_log_det(S, x, 0, &sign) + slater_log_det(S, x, 1, &sign);
    value += rbm_log_psi(S, x);
    for (int p = 0; p < P; p++)
        for (int q = p + 1; q < P; q++) {
            const double r = distance(x + p * D, x + q * D, D), B = S->beta[p * P + q];
            value += S->cusp[p * P + q] * r / (1.0 + B * r);
        }
    return value;
}

/* Largest errors of grad ln psi and of the per-particle Laplacians (the E_L routine's)
 * against fourth-order central differences of log_psi, relative to 1 + |value|. */
static void derivative_errors(Sys *S, double *err_g, double *err_l)
{
    const int P = S->P, D = S->D;
    const double f0 = log_psi(S, S->x);
    local_energy(S);
    *err_g = *err_l = 0.0;
    for (int p = 0; p < P; p++) {
        double lap = 0.0;
        for (int d = 0; d < D; d++) {
            const int i = p * D + d;
            double g, l;
            log_psi_differences(S, S->x, i, f0, &g, &l);
            lap += l;
            *err_g = maxd(*err_g, fabs(g - S->grad[i]) / (1 + fabs(g)));
        }
        *err_l = maxd(*err_l, fabs(lap - S->lap[p]) / (1 + fabs(lap)));
    }
}

static int selftest(Sys *S, uint64_t seed, double exact)
{
    const int P = S->P, D = S->D, M = S->M, H = S->H, n = S->n;
    Rng g;
    rng_seed(&g, seed);
    int fail = 0;
    printf("selftest: P=%d D=%d H=%d omega=%g jastrow=%d, RBM parameters ~ N(0, 0.05^2)\n", P, D, H,
           S->omega, S->jastrow);
    random_parameters(S, &g, 0.05);
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
        for (int d = 0; d < D; d++)
            ed = maxd(ed, fabs(log_psi_slope(S, x1, p * D + d) - gn[d]) / (1 + fabs(gn[d])));
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
    rbm_save(S, old);
    memcpy(old + 3 * H, S->dist, (size_t)P * P * sizeof(double));
    memcpy(old + 3 * H + P * P, S->slope, (size_t)P * P * sizeof(double));
    const double drift = refresh_inverses(S);
    rbm_refresh(S);
    jastrow_refresh(S);
    const double eu = rbm_cache_error(S, old);
    double ej = 0.0;
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
    zero_parameters(S);
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
            after_sweep(S, t + 1);
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

/* The arguments of this program alone: P D H SWEEPS omega jastrow, --non-interacting,
 * --refresh and --beta. */
typedef struct {
    double pos[6];
    int npos, free_particles;
    long refresh;
    double beta_anti, beta_para;
} Own;

static int own_positional(void *own, const char *arg)
{
    Own *o = own;
    char *end = NULL;
    if (o->npos == 6) return usage("more than six positional arguments");
    o->pos[o->npos] = strtod(arg, &end);
    if (*end || end == arg || (o->npos != 4 && o->pos[o->npos] != floor(o->pos[o->npos])))
        return usage("P D H SWEEPS and jastrow must be integers, omega a number");
    o->npos++;
    return 0;
}

static int own_flag(void *own, const char *arg)
{
    if (strcmp(arg, "--non-interacting")) return 0;
    ((Own *)own)->free_particles = 1;
    return 1;
}

static int own_option(void *own, const char *arg, const char *val, char **end)
{
    Own *o = own;
    if (!strcmp(arg, "--refresh")) o->refresh = strtol(val, end, 10);
    else if (!strcmp(arg, "--beta")) {
        o->beta_anti = o->beta_para = strtod(val, end);
        if (**end == ',') o->beta_para = strtod(*end + 1, end);
    } else return 0;
    return 1;
}

int main(int argc, char **argv)
{
    Own own = {{6, 2, 12, 200000, 1.0, 1}, 0, 0, 100, 0.5, 0.5}; /* P D H SWEEPS omega jastrow */
    Options o = {.coulomb = 1, .therm = 2000, .c = 0.5, .step = 1.0, .drift_limit = 1.0, .seed = 1};
    const int bad = parse_args(argc, argv, &o, &own);
    if (bad) return bad;
    const int free_particles = own.free_particles;
    const long refresh = own.refresh;
    Sys S0 = {0}, *S = &S0;
    S->coulomb = o.coulomb;
    S->importance = o.importance;
    S->P = (int)own.pos[0];
    S->D = (int)own.pos[1];
    S->H = (int)own.pos[2];
    const long sweeps = (long)own.pos[3];
    S->omega = own.pos[4];
    const int jastrow = (int)own.pos[5] && !free_particles;
    S->M = S->P * S->D;
    S->n = S->P / 2;
    if (S->D < 1 || S->D > MAX_D || S->H < 1 || (sweeps < 1 && !o.test))
        return usage("need 1 <= D <= 3, H >= 1, SWEEPS >= 1");
    if (S->P < 2 || S->P % 2) return usage("P is not a closed-shell electron count");
    if (jastrow && S->D < 2) return usage("the Pade-Jastrow cusp 1/(D-1) needs D >= 2 (jastrow 0)");
    if (!(S->omega > 0) || !(o.step > 0) || o.therm < 0 || refresh < 1 || !(o.drift_limit >= 0) ||
        (o.have_sigma && !(o.sigma > 0)) || !(own.beta_anti > 0) || !(own.beta_para > 0))
        return usage("need omega, step, sigma, beta > 0, therm >= 0, refresh >= 1, drift limit >= 0");
    if (settle_target(&o)) return 2;
    if (free_particles) S->coulomb = 0;
    zig_init();
    allocate(S);
    double exact;
    if (!fill_orbitals(S, &exact)) return usage("P is not a closed-shell electron count");
    allocate_tables(S);
    S->sqo = sqrt(S->omega);
    S->c = o.c;
    S->inv_s2 = o.have_sigma ? 1.0 / (o.sigma * o.sigma) : S->omega / o.c; /* sigma^2 = c / omega */
    S->refresh_every = (int)refresh;
    S->drift_limit = o.drift_limit;
    set_jastrow(S, jastrow, own.beta_anti, own.beta_para);
    if (o.test) return selftest(S, o.seed, exact);

    Rng g;
    rng_seed(&g, o.seed);
    if (o.params) {
        const int bad_params = read_parameters(S, o.params);
        if (bad_params) return bad_params;
    } else { /* the fermion problem of pvmc bench: RBM parameters ~ N(0, 0.01^2) */
        random_parameters(S, &g, 0.01);
    }
    if (free_particles) zero_parameters(S);
    random_positions(S, &g);
    refresh_all(S);
    S->step = o.step;
    thermalize(S, &g, o.therm, o.target);
    refresh_all(S);

    Blocking *B = alloc(1, sizeof *B);
    long accepted = 0;
    double inv_err = 0.0, worst = 0.0;
    Stopwatch clock;
    stopwatch_start(&clock);
    for (long t = 0; t < sweeps; t++) {
        accepted += sweep(S, &g);
        if ((t + 1) % refresh == 0) inv_err = maxd(inv_err, refresh_inverses(S));
        const double e = local_energy(S);
        blocking_add(B, e);
        if (free_particles) worst = maxd(worst, fabs(e - exact));
    }
    double wall, cpu;
    stopwatch_read(&clock, &wall, &cpu);
    const Estimate e = blocking_result(B);
    printf("P=%d D=%d H=%d sweeps=%ld sampler=%s psi=%s omega=%g jastrow=%d coulomb=%d  <E>=%.6f "
           "err=%.6f var=%.4g acc=%.4f step=%.4f inv_err=%.1e",
           S->P, S->D, S->H, sweeps, S->importance ? "importance" : "metropolis",
           o.c == 0.5 ? "sqrt" : "full", S->omega, S->jastrow, S->coulomb, e.mean, e.error,
           e.variance, (double)accepted / ((double)sweeps * S->P), S->step, inv_err);
    if (free_particles) printf(" E_exact=%g max|E_L-E_exact|=%.1e", exact, worst);
    print_speed(wall, cpu, sweeps, S->P);
    free(B);
    return 0;
}
