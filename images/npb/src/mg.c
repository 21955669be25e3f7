/* MG — multigrid V-cycles for a periodic 3-D Poisson problem (SPEC.md section 5).
 *
 * Decomposition: the reference 3-D process grid pi[0] x pi[1] x pi[2] (SPEC 5.8).
 * Fine levels are split into equal blocks with one ghost layer, refreshed by
 * neighbour exchanges. Levels too coarse to give every process at least two
 * points per axis are instead replicated: each process holds the whole level
 * and computes it redundantly. The restriction into the first replicated level
 * gathers the blocks with one MPI_Allgather; the prolongation out of it reads
 * the replicated array directly. This replaces the reference's "dead process"
 * scheme and works for every power-of-two process count with n >= 2 * max(pi). */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_common.h"

#define MG_SEED 314159265.0
#define NTOP 10 /* number of +1 and of -1 charges in v */

struct mg_class {
    char cls;
    int lt; /* log2 of the grid size */
    int nit;
    double rnm2; /* reference L2 norm of the final residual */
};

static const struct mg_class classes[] = {
    {'S', 5, 4, 0.5307707005734e-04},  {'W', 7, 4, 0.6467329375339e-05},
    {'A', 8, 4, 0.2433365309069e-05},  {'B', 8, 20, 0.1800564401355e-05},
    {'C', 9, 20, 0.5706732285740e-06},
};

struct level {
    int m[3];   /* interior points per axis held by this process */
    int d[3];   /* padded extents m + 2 */
    long off[3]; /* global index of the first interior point */
    int repl;   /* 1: every process holds the whole level */
    double *u, *r;
};

/* process grid, set once in main */
static int nprocs, rank, pi[3], coord[3], lo_nb[3], hi_nb[3];
/* scratch: plane buffers for comm3 (2 send, 2 receive), line buffers for the stencils */
static double *plane_buf[4], *line1, *line2;

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) npb_usage_error("mg", "out of memory (%zu bytes)", n * size);
    return p;
}

static size_t level_size(const struct level *L) { return (size_t)L->d[0] * L->d[1] * L->d[2]; }

#define IDX(L, i, j, k) ((size_t)(i) + (size_t)(L)->d[0] * ((size_t)(j) + (size_t)(L)->d[1] * (size_t)(k)))

/* Copies one plane (index p along axis ax) to or from buf. Along axes handled
 * before ax the ghosts are included, along later axes only the interior
 * (SPEC 5.3), so doing the axes in order 0, 1, 2 also fills edges and corners. */
static size_t plane_io(const struct level *L, double *a, int ax, int p, double *buf, int pack) {
    const size_t s[3] = {1, (size_t)L->d[0], (size_t)L->d[0] * L->d[1]};
    const int b1 = ax == 0 ? 1 : 0, b2 = ax == 2 ? 1 : 2;
    const int lo1 = b1 < ax ? 0 : 1, hi1 = b1 < ax ? L->d[b1] - 1 : L->m[b1];
    const int lo2 = b2 < ax ? 0 : 1, hi2 = b2 < ax ? L->d[b2] - 1 : L->m[b2];
    size_t n = 0;
    for (int y = lo2; y <= hi2; y++)
        for (int x = lo1; x <= hi1; x++) {
            size_t o = (size_t)p * s[ax] + (size_t)x * s[b1] + (size_t)y * s[b2];
            if (pack)
                buf[n++] = a[o];
            else
                a[o] = buf[n++];
        }
    return n;
}

/* Periodic ghost refresh (SPEC 5.3 / 5.8). */
static void comm3(const struct level *L, double *a) {
    for (int ax = 0; ax < 3; ax++) {
        const int m = L->m[ax];
        if (L->repl || pi[ax] == 1) {
            plane_io(L, a, ax, m, plane_buf[0], 1);
            plane_io(L, a, ax, 0, plane_buf[0], 0);
            plane_io(L, a, ax, 1, plane_buf[0], 1);
            plane_io(L, a, ax, m + 1, plane_buf[0], 0);
            continue;
        }
        /* nonblocking + npb_waitall (sleeps when oversubscribed, see npb_common.h);
         * two tags: with pi == 2 both neighbours are the same process */
        const int n = (int)plane_io(L, a, ax, 1, plane_buf[0], 1);
        plane_io(L, a, ax, m, plane_buf[1], 1);
        MPI_Request req[4];
        MPI_Irecv(plane_buf[2], n, MPI_DOUBLE, hi_nb[ax], 1, MPI_COMM_WORLD, &req[0]);
        MPI_Irecv(plane_buf[3], n, MPI_DOUBLE, lo_nb[ax], 2, MPI_COMM_WORLD, &req[1]);
        MPI_Isend(plane_buf[0], n, MPI_DOUBLE, lo_nb[ax], 1, MPI_COMM_WORLD, &req[2]);
        MPI_Isend(plane_buf[1], n, MPI_DOUBLE, hi_nb[ax], 2, MPI_COMM_WORLD, &req[3]);
        npb_waitall(4, req);
        plane_io(L, a, ax, m + 1, plane_buf[2], 0);
        plane_io(L, a, ax, 0, plane_buf[3], 0);
    }
}

/* For the i-line at (j, k): p1[i] = sum of the 4 face neighbours in the (j, k)
 * plane, p2[i] = sum of the 4 diagonal ones, for i = 0 .. d0-1. With these the
 * 6 face, 12 edge and 8 corner sums of point i are cheap (SPEC 5.5). */
static inline void plane_sums(const struct level *L, const double *restrict a, int j, int k,
                              double *restrict p1, double *restrict p2) {
    const size_t sj = (size_t)L->d[0], sk = sj * L->d[1];
    const double *c = a + IDX(L, 0, j, k);
    for (int i = 0; i < L->d[0]; i++) {
        p1[i] = c[i - sj] + c[i + sj] + c[i - sk] + c[i + sk];
        p2[i] = c[i - sj - sk] + c[i + sj - sk] + c[i - sj + sk] + c[i + sj + sk];
    }
}

/* r = v - A u (v may alias r: only the same point of v is read), then comm3(r). */
static void resid(const struct level *L, const double *restrict u, const double *v, double *r) {
    const double a0 = -8.0 / 3.0, a2 = 1.0 / 6.0, a3 = 1.0 / 12.0; /* face coefficient is 0 */
    double *restrict l1 = line1, *restrict l2 = line2;
    for (int k = 1; k <= L->m[2]; k++)
        for (int j = 1; j <= L->m[1]; j++) {
            plane_sums(L, u, j, k, l1, l2);
            const size_t o = IDX(L, 0, j, k);
            /* v may alias r (same point only), so no restrict on them: tell the vectoriser */
#pragma GCC ivdep
            for (int i = 1; i <= L->m[0]; i++) {
                double n2 = l2[i] + l1[i - 1] + l1[i + 1];
                double n3 = l2[i - 1] + l2[i + 1];
                r[o + i] = v[o + i] - a0 * u[o + i] - a2 * n2 - a3 * n3;
            }
        }
    comm3(L, r);
}

/* u = u + S r (smoother), then comm3(u). */
static void psinv(const struct level *L, const double *restrict r, double *restrict u,
                  const double c[3]) {
    double *restrict l1 = line1, *restrict l2 = line2;
    const double c0 = c[0], c1 = c[1], c2 = c[2];
    for (int k = 1; k <= L->m[2]; k++)
        for (int j = 1; j <= L->m[1]; j++) {
            plane_sums(L, r, j, k, l1, l2);
            const size_t o = IDX(L, 0, j, k);
            for (int i = 1; i <= L->m[0]; i++) {
                double n1 = r[o + i - 1] + r[o + i + 1] + l1[i];
                double n2 = l2[i] + l1[i - 1] + l1[i + 1];
                u[o + i] += c0 * r[o + i] + c1 * n1 + c2 * n2;
            }
        }
    comm3(L, u);
}

/* Restriction of the fine residual r (level F) to the interior of a coarse
 * padded array s with strides (sj, sk) and mc = F->m / 2 interior points:
 * coarse padded J sits on fine padded 2J. The caller refreshes s's ghosts. */
static void rprj3(const struct level *F, const double *restrict r, double *restrict s, size_t sj,
                  size_t sk) {
    const int mc0 = F->m[0] / 2, mc1 = F->m[1] / 2, mc2 = F->m[2] / 2;
    double *restrict l1 = line1, *restrict l2 = line2;
    for (int K = 1; K <= mc2; K++)
        for (int J = 1; J <= mc1; J++) {
            plane_sums(F, r, 2 * J, 2 * K, l1, l2);
            const double *c = r + IDX(F, 0, 2 * J, 2 * K);
            double *out = s + J * sj + K * sk;
            for (int I = 1; I <= mc0; I++) {
                const int i = 2 * I;
                double n1 = c[i - 1] + c[i + 1] + l1[i];
                double n2 = l2[i] + l1[i - 1] + l1[i + 1];
                double n3 = l2[i - 1] + l2[i + 1];
                out[I] = 0.5 * c[i] + 0.25 * n1 + 0.125 * n2 + 0.0625 * n3;
            }
        }
}

/* u (level F, all points including ghosts) += trilinear prolongation of the
 * coarse padded array z (strides zj, zk; coarse padded a feeds fine 2a and
 * 2a+1). z's ghosts must be current; u's ghosts come out periodic. */
static void interp(const double *z, size_t zj, size_t zk, const struct level *F, double *u) {
    const int mc0 = F->m[0] / 2, mc1 = F->m[1] / 2, mc2 = F->m[2] / 2;
    const size_t fj = (size_t)F->d[0], fk = fj * F->d[1];
    for (int c = 0; c <= mc2; c++)
        for (int b = 0; b <= mc1; b++) {
            const double *z00 = z + b * zj + c * zk, *z10 = z00 + zj, *z01 = z00 + zk,
                         *z11 = z00 + zj + zk;
            double *f = u + IDX(F, 0, 2 * b, 2 * c);
            for (int a = 0; a <= mc0; a++) {
                /* sums over the coarse box in (j, k) for i = a and a + 1 */
                const double s00 = z00[a], s00n = z00[a + 1];
                const double sj = z00[a] + z10[a], sjn = z00[a + 1] + z10[a + 1];
                const double sk = z00[a] + z01[a], skn = z00[a + 1] + z01[a + 1];
                const double sjk = sj + z01[a] + z11[a], sjkn = sjn + z01[a + 1] + z11[a + 1];
                const size_t i = 2 * (size_t)a;
                f[i] += s00;
                f[i + 1] += 0.5 * (s00 + s00n);
                f[i + fj] += 0.5 * sj;
                f[i + 1 + fj] += 0.25 * (sj + sjn);
                f[i + fk] += 0.5 * sk;
                f[i + 1 + fk] += 0.25 * (sk + skn);
                f[i + fj + fk] += 0.25 * sjk;
                f[i + 1 + fj + fk] += 0.125 * (sjk + sjkn);
            }
        }
}

static int lt, kd; /* finest level; lowest distributed level (levels below kd are replicated) */
static struct level *lev; /* lev[1..lt] */
static double *rprj_tmp, *gather_send, *gather_recv;

/* r_{k-1} = P r_k, with the gather when level k-1 is the first replicated one. */
static void restrict_level(int k) {
    struct level *F = &lev[k], *C = &lev[k - 1];
    if (!C->repl || F->repl) {
        rprj3(F, F->r, C->r, (size_t)C->d[0], (size_t)C->d[0] * C->d[1]);
        comm3(C, C->r);
        return;
    }
    const int mc[3] = {F->m[0] / 2, F->m[1] / 2, F->m[2] / 2};
    const size_t tj = (size_t)mc[0] + 2, tk = tj * (mc[1] + 2);
    rprj3(F, F->r, rprj_tmp, tj, tk);
    const int blk = mc[0] * mc[1] * mc[2];
    int n = 0;
    for (int c = 1; c <= mc[2]; c++)
        for (int b = 1; b <= mc[1]; b++)
            for (int a = 1; a <= mc[0]; a++) gather_send[n++] = rprj_tmp[a + b * tj + c * tk];
    npb_allgather(gather_send, blk, gather_recv, MPI_DOUBLE);
    for (int q = 0; q < nprocs; q++) {
        /* rank -> grid coordinates, as in main */
        const int qc[3] = {q % pi[0], (q / pi[0]) % pi[1], q / (pi[0] * pi[1])};
        const double *src = gather_recv + (size_t)q * blk;
        for (int c = 0; c < mc[2]; c++)
            for (int b = 0; b < mc[1]; b++)
                memcpy(C->r + IDX(C, qc[0] * mc[0] + 1, qc[1] * mc[1] + b + 1, qc[2] * mc[2] + c + 1),
                       src + (size_t)mc[0] * (b + (size_t)mc[1] * c), sizeof(double) * mc[0]);
    }
    comm3(C, C->r);
}

/* u_k += Q u_{k-1}; a replicated coarse level is read at this block's offset. */
static void prolong_level(int k) {
    struct level *F = &lev[k], *C = &lev[k - 1];
    const size_t zj = (size_t)C->d[0], zk = zj * C->d[1];
    size_t start = 0;
    if (C->repl && !F->repl) start = IDX(C, F->off[0] / 2, F->off[1] / 2, F->off[2] / 2);
    interp(C->u + start, zj, zk, F, F->u);
}

static void mg3p(const double *v, const double smoother[3]) {
    for (int k = lt; k >= 2; k--) restrict_level(k);
    memset(lev[1].u, 0, sizeof(double) * level_size(&lev[1]));
    psinv(&lev[1], lev[1].r, lev[1].u, smoother);
    for (int k = 2; k < lt; k++) {
        memset(lev[k].u, 0, sizeof(double) * level_size(&lev[k]));
        prolong_level(k);
        resid(&lev[k], lev[k].u, lev[k].r, lev[k].r);
        psinv(&lev[k], lev[k].r, lev[k].u, smoother);
    }
    prolong_level(lt);
    resid(&lev[lt], lev[lt].u, v, lev[lt].r);
    psinv(&lev[lt], lev[lt].r, lev[lt].u, smoother);
}

/* L2 norm (over the global n^3 points) and max norm of the finest interior. */
static void norm2u3(const double *r, double *rnm2, double *rnmu) {
    const struct level *L = &lev[lt];
    double loc[2] = {0.0, 0.0}, glob[2];
    for (int k = 1; k <= L->m[2]; k++)
        for (int j = 1; j <= L->m[1]; j++)
            for (int i = 1; i <= L->m[0]; i++) {
                double x = r[IDX(L, i, j, k)];
                loc[0] += x * x;
                if (fabs(x) > loc[1]) loc[1] = fabs(x);
            }
    MPI_Allreduce(&loc[0], &glob[0], 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&loc[1], &glob[1], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double n = ldexp(1.0, lt);
    *rnm2 = sqrt(glob[0] / (n * n * n));
    *rnmu = glob[1];
}

struct cand {
    double val, idx; /* idx: global linear index, exact in a double */
};

/* Keeps list[0..NTOP-1] sorted best first: the largest values if largest, else the smallest. */
static void cand_insert(struct cand *list, double val, double idx, int largest) {
    int p = NTOP;
    while (p > 0 && (largest ? val > list[p - 1].val : val < list[p - 1].val)) p--;
    if (p == NTOP) return;
    memmove(list + p + 1, list + p, sizeof(struct cand) * (NTOP - 1 - p));
    list[p].val = val;
    list[p].idx = idx;
}

/* v = right-hand side: +1 at the 10 largest and -1 at the 10 smallest values of
 * the random field (value r(g+1) at global linear index g, SPEC 5.4). */
static void zran3(double *v) {
    const struct level *L = &lev[lt];
    const long n = 1L << lt;
    struct cand mine[2 * NTOP]; /* [0, NTOP): largest; [NTOP, 2 NTOP): smallest */
    for (int t = 0; t < NTOP; t++) {
        mine[t] = (struct cand){-1.0, -1.0}; /* below every value of the stream */
        mine[NTOP + t] = (struct cand){2.0, -1.0};
    }
    for (int k = 1; k <= L->m[2]; k++)
        for (int j = 1; j <= L->m[1]; j++) {
            const long g0 = L->off[0] + n * (L->off[1] + j - 1) + n * n * (L->off[2] + k - 1);
            double x = MG_SEED;
            randlc(&x, npb_pow46(NPB_A, (uint64_t)g0));
            double *row = v + IDX(L, 1, j, k);
            vranlc(L->m[0], &x, NPB_A, row);
            for (int i = 0; i < L->m[0]; i++) {
                cand_insert(mine, row[i], (double)(g0 + i), 1);
                cand_insert(mine + NTOP, row[i], (double)(g0 + i), 0);
            }
        }
    struct cand *all = xcalloc((size_t)nprocs * 2 * NTOP, sizeof(struct cand));
    MPI_Allgather(mine, 4 * NTOP, MPI_DOUBLE, all, 4 * NTOP, MPI_DOUBLE, MPI_COMM_WORLD);
    struct cand top[2 * NTOP];
    for (int t = 0; t < NTOP; t++) {
        top[t] = (struct cand){-1.0, -1.0};
        top[NTOP + t] = (struct cand){2.0, -1.0};
    }
    for (int q = 0; q < nprocs; q++)
        for (int t = 0; t < NTOP; t++) {
            const struct cand *hi = &all[q * 2 * NTOP + t], *lo = &all[q * 2 * NTOP + NTOP + t];
            if (hi->idx >= 0) cand_insert(top, hi->val, hi->idx, 1);
            if (lo->idx >= 0) cand_insert(top + NTOP, lo->val, lo->idx, 0);
        }
    free(all);
    memset(v, 0, sizeof(double) * level_size(L));
    for (int t = 0; t < 2 * NTOP; t++) {
        const long g = (long)top[t].idx;
        const long gi = g % n - L->off[0], gj = (g / n) % n - L->off[1], gk = g / (n * n) - L->off[2];
        if (gi >= 0 && gi < L->m[0] && gj >= 0 && gj < L->m[1] && gk >= 0 && gk < L->m[2])
            v[IDX(L, gi + 1, gj + 1, gk + 1)] = t < NTOP ? 1.0 : -1.0;
    }
    comm3(L, v);
}

/* Fortran E20.13, e.g. " 0.5307707005735E-04". */
static void fmt_e(char *buf, size_t size, double x) {
    int e = x == 0.0 ? 0 : (int)floor(log10(fabs(x))) + 1;
    double mant = x == 0.0 ? 0.0 : x / pow(10.0, e);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.13f", fabs(mant));
    if (tmp[0] == '1') { /* rounding reached 1.0 (or log10 was one too low) */
        e++;
        mant /= 10.0;
    } else if (x != 0.0 && fabs(mant) < 0.1) {
        e--;
        mant *= 10.0;
    }
    snprintf(tmp, sizeof tmp, "%.13fE%+03d", mant, e);
    snprintf(buf, size, "%20s", tmp);
}

static void setup_grid(char cls) {
    /* reference process grid (SPEC 5.8) */
    int L2 = 0;
    while ((1 << L2) < nprocs) L2++;
    if ((1 << L2) != nprocs)
        npb_usage_error("mg", "the number of processes must be a power of two (got %d)", nprocs);
    pi[0] = 1 << (L2 / 3);
    pi[1] = 1 << ((L2 - L2 / 3) / 2);
    pi[2] = nprocs / (pi[0] * pi[1]);
    coord[0] = rank % pi[0];
    coord[1] = (rank / pi[0]) % pi[1];
    coord[2] = rank / (pi[0] * pi[1]);
    int maxpi = 1;
    for (int a = 0; a < 3; a++) {
        int step = a == 0 ? 1 : a == 1 ? pi[0] : pi[0] * pi[1];
        lo_nb[a] = rank + ((coord[a] + pi[a] - 1) % pi[a] - coord[a]) * step;
        hi_nb[a] = rank + ((coord[a] + 1) % pi[a] - coord[a]) * step;
        if (pi[a] > maxpi) maxpi = pi[a];
    }
    /* distributed levels need >= 2 points per process and axis, so that the
     * restriction into the level below still has >= 1 */
    kd = 1;
    while ((1 << kd) < 2 * maxpi) kd++;
    if (kd > lt)
        npb_usage_error("mg", "class %c (%d^3 grid) supports at most %d processes per axis; %d processes give %d",
                        cls, 1 << lt, (1 << lt) / 2, nprocs, maxpi);

    lev = xcalloc((size_t)lt + 1, sizeof(struct level));
    size_t max_plane = 0, max_line = 0;
    for (int k = 1; k <= lt; k++) {
        struct level *L = &lev[k];
        L->repl = k < kd;
        for (int a = 0; a < 3; a++) {
            L->m[a] = L->repl ? 1 << k : (1 << k) / pi[a];
            L->off[a] = L->repl ? 0 : (long)coord[a] * L->m[a];
            L->d[a] = L->m[a] + 2;
        }
        for (int a = 0; a < 3; a++) {
            size_t p = level_size(L) / (size_t)L->d[a];
            if (p > max_plane) max_plane = p;
        }
        if ((size_t)L->d[0] > max_line) max_line = (size_t)L->d[0];
        L->u = xcalloc(level_size(L), sizeof(double));
        L->r = xcalloc(level_size(L), sizeof(double));
    }
    for (int b = 0; b < 4; b++) plane_buf[b] = xcalloc(max_plane, sizeof(double));
    line1 = xcalloc(max_line, sizeof(double));
    line2 = xcalloc(max_line, sizeof(double));
    if (kd > 1) {
        const struct level *F = &lev[kd];
        const size_t blk = (size_t)(F->m[0] / 2) * (F->m[1] / 2) * (F->m[2] / 2);
        rprj_tmp = xcalloc((size_t)(F->m[0] / 2 + 2) * (F->m[1] / 2 + 2) * (F->m[2] / 2 + 2),
                           sizeof(double));
        gather_send = xcalloc(blk, sizeof(double));
        gather_recv = xcalloc(blk * (size_t)nprocs, sizeof(double));
    }
}

int main(int argc, char **argv) {
    const char cls = npb_init(&argc, &argv, "mg", &rank, &nprocs);
    const struct mg_class *c = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].cls == cls) c = &classes[i];
    if (!c) npb_usage_error("mg", "class %c is not supported", cls);
    lt = c->lt;
    const int n = 1 << lt, nit = c->nit;
    /* smoother S(a) for classes up to A, S(b) from B on (SPEC 5.2) */
    const double sa[3] = {-3.0 / 8.0, 1.0 / 32.0, -1.0 / 64.0};
    const double sb[3] = {-3.0 / 17.0, 1.0 / 33.0, -1.0 / 61.0};
    const double *smoother = c->nit > 4 ? sb : sa;

    setup_grid(cls);
    if (rank == 0) {
        npb_print_header("MG");
        printf(" No input file. Using compiled defaults \n");
        printf(" Size: %4dx%4dx%4d  (class %c)\n", n, n, n, cls);
        printf(" Iterations: %4d\n", nit);
        printf(" Total number of processes: %6d\n\n", nprocs);
        fflush(stdout);
    }
    struct level *top = &lev[lt];
    double *v = xcalloc(level_size(top), sizeof(double));

    /* set-up and untimed warm-up V-cycle, then start again from u = 0 */
    double t_init = npb_wtime();
    zran3(v);
    resid(top, top->u, v, top->r);
    mg3p(v, smoother);
    resid(top, top->u, v, top->r);
    memset(top->u, 0, sizeof(double) * level_size(top));
    zran3(v);
    t_init = npb_wtime() - t_init;
    double t_init_max;
    MPI_Reduce(&t_init, &t_init_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("\n Initialization time: %15.3f seconds\n\n", t_init_max);

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = npb_wtime();
    double rnm2, rnmu;
    resid(top, top->u, v, top->r);
    norm2u3(top->r, &rnm2, &rnmu);
    for (int it = 1; it <= nit; it++) {
        if (rank == 0 && (it == 1 || it == nit || it % 5 == 0)) printf("  iter %4d\n", it);
        mg3p(v, smoother);
        resid(top, top->u, v, top->r);
    }
    norm2u3(top->r, &rnm2, &rnmu);
    double elapsed = npb_wtime() - t0, tmax;
    MPI_Reduce(&elapsed, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        const int verified = npb_verify_value(rnm2, c->rnm2, 1e-8);
        char a[32], b[32];
        fmt_e(a, sizeof a, rnm2);
        printf("\n Benchmark completed \n");
        if (verified) {
            fmt_e(b, sizeof b, fabs(rnm2 - c->rnm2) / c->rnm2);
            printf(" VERIFICATION SUCCESSFUL \n L2 Norm is %s\n Error is   %s\n", a, b);
        } else {
            fmt_e(b, sizeof b, c->rnm2);
            printf(" VERIFICATION FAILED\n L2 Norm is             %s\n The correct L2 Norm is %s\n", a, b);
        }
        const double mops = tmax > 0 ? 58.0 * nit * (double)n * n * n / tmax / 1e6 : 0.0;
        npb_print_results("MG", cls, n, n, n, nit, tmax, mops, "floating point", verified, nprocs);
    }
    MPI_Finalize();
    return 0;
}
