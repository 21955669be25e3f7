/* CG — Conjugate Gradient (SPEC.md section 4): smallest eigenvalue of a random
 * sparse SPD matrix by inverse power iteration, 25 CG steps per iteration.
 * MPI: the "1-D rows" scheme of SPEC 4.7 (each process owns a block of rows). */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_common.h"

#define CG_SEED 314159265.0
#define RCOND 0.1
#define CG_STEPS 25

struct cg_class {
    char cls;
    long na;
    int nonzer, niter;
    double shift, zeta;
};

static const struct cg_class classes[] = {
    {'S', 1400, 7, 15, 10.0, 8.5971775078648},
    {'W', 7000, 8, 15, 12.0, 10.362595087124},
    {'A', 14000, 11, 15, 20.0, 17.130235054029},
    {'B', 75000, 13, 75, 60.0, 22.712745482631},
    {'C', 150000, 15, 75, 110.0, 28.973605592845},
};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) npb_usage_error("cg", "out of memory (%zu bytes)", n);
    return p;
}

/* Fortran Ew.d: mantissa in [0.1, 1) with d digits, right-aligned in w columns. */
static void print_fortran_e(double v, int w, int d) {
    char buf[64];
    int e = 0;
    double m = 0.0;
    if (v != 0.0 && isfinite(v)) {
        e = (int)floor(log10(fabs(v))) + 1;
        m = v / pow(10.0, e);
        /* rounding to d digits can reach 1.0 (or the log10 guess can be one off) */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*f", d, fabs(m));
        if (tmp[0] == '1') {
            e++;
            m /= 10.0;
        } else if (fabs(m) < 0.1) {
            e--;
            m *= 10.0;
        }
    }
    snprintf(buf, sizeof buf, "%.*fE%+03d", d, m, e);
    printf("%*s", w, buf);
}

/* ---- matrix generation (SPEC 4.3), rows/columns 1-based while generating ---- */

struct gen {
    long n, nn1;
    int nonzer;
    double x; /* random state */
    long *pos;
    double *val;
};

/* Fills g->pos/val with the vector of outer index iouter; returns its length. */
static int next_vector(struct gen *g, long iouter) {
    int count = 0;
    while (count < g->nonzer) {
        double v = randlc(&g->x, NPB_A);
        double loc = randlc(&g->x, NPB_A);
        long i = (long)(g->nn1 * loc) + 1;
        if (i > g->n) continue;
        int dup = 0;
        for (int k = 0; k < count; k++)
            if (g->pos[k] == i) dup = 1;
        if (dup) continue;
        g->pos[count] = i;
        g->val[count] = v;
        count++;
    }
    for (int k = 0; k < count; k++)
        if (g->pos[k] == iouter) {
            g->val[k] = 0.5;
            return count;
        }
    g->pos[count] = iouter;
    g->val[count] = 0.5;
    return count + 1;
}

/* Local CSR of rows [r0, r1), 0-based columns. */
struct csr {
    long r0, r1;
    long *rowptr;
    int *col;
    double *a;
};

/* Runs the whole triple stream; pass 0 counts the triples of each owned row,
 * pass 1 stores them in emission order (so the bucket sort by row is stable). */
static void emit_triples(const struct cg_class *c, struct gen *g, struct csr *m, long *fill, int pass) {
    g->x = CG_SEED;
    randlc(&g->x, NPB_A); /* the reference discards one value first */
    double size = 1.0;
    const double ratio = pow(RCOND, 1.0 / (double)c->na);
    for (long iouter = 1; iouter <= c->na; iouter++) {
        int nzv = next_vector(g, iouter);
        for (int cc = 0; cc < nzv; cc++) {
            double scale = size * g->val[cc];
            for (int r = 0; r < nzv; r++) {
                long row = g->pos[r] - 1;
                if (row < m->r0 || row >= m->r1) continue;
                long lr = row - m->r0;
                if (pass == 0) {
                    fill[lr]++;
                } else {
                    long k = fill[lr]++;
                    m->col[k] = (int)(g->pos[cc] - 1);
                    m->a[k] = g->val[r] * scale;
                }
            }
        }
        size *= ratio;
    }
    for (long row = m->r0; row < m->r1; row++) {
        long lr = row - m->r0;
        if (pass == 0) {
            fill[lr]++;
        } else {
            long k = fill[lr]++;
            m->col[k] = (int)row;
            m->a[k] = RCOND - c->shift;
        }
    }
}

static void makea(const struct cg_class *c, struct csr *m) {
    struct gen g = {.n = c->na, .nonzer = c->nonzer};
    g.nn1 = 1;
    while (g.nn1 < c->na) g.nn1 *= 2;
    g.pos = xmalloc(sizeof(long) * (c->nonzer + 1));
    g.val = xmalloc(sizeof(double) * (c->nonzer + 1));
    long nrows = m->r1 - m->r0;
    long *fill = calloc(nrows + 1, sizeof(long));
    m->rowptr = xmalloc(sizeof(long) * (nrows + 1));
    if (!fill) npb_usage_error("cg", "out of memory");
    emit_triples(c, &g, m, fill, 0);
    m->rowptr[0] = 0;
    for (long i = 0; i < nrows; i++) m->rowptr[i + 1] = m->rowptr[i] + fill[i];
    long ntrip = m->rowptr[nrows];
    m->col = xmalloc(sizeof(int) * ntrip);
    m->a = xmalloc(sizeof(double) * ntrip);
    memcpy(fill, m->rowptr, sizeof(long) * nrows);
    emit_triples(c, &g, m, fill, 1);

    /* Sum duplicates per row in emission order, keep first-seen column order,
     * drop exact zeros; compacts in place. */
    double *acc = calloc(c->na, sizeof(double));
    long *seen = xmalloc(sizeof(long) * c->na);
    if (!acc) npb_usage_error("cg", "out of memory");
    for (long j = 0; j < c->na; j++) seen[j] = -1;
    long out = 0;
    for (long i = 0; i < nrows; i++) {
        long start = out;
        long b = m->rowptr[i], e = m->rowptr[i + 1];
        for (long k = b; k < e; k++) {
            int j = m->col[k];
            if (seen[j] != i) {
                seen[j] = i;
                acc[j] = 0.0;
                m->col[out++] = j; /* out <= k: safe in place */
            }
            acc[j] += m->a[k];
        }
        long w = start;
        for (long k = start; k < out; k++) {
            int j = m->col[k];
            if (acc[j] != 0.0) {
                m->col[w] = j;
                m->a[w] = acc[j];
                w++;
            }
        }
        out = w;
        m->rowptr[i] = start;
    }
    m->rowptr[nrows] = out;
    free(acc);
    free(seen);
    free(fill);
    free(g.pos);
    free(g.val);
}

/* ---- distributed vectors: each process keeps its rows [r0, r1) ---- */

struct cg_ctx {
    struct csr m;
    long nloc;
    double *full;          /* gathered full-length vector for the SpMV */
    int *counts, *displs;  /* row blocks of all processes */
};

static double dot(const struct cg_ctx *ctx, const double *a, const double *b) {
    double s = 0.0, g;
    for (long i = 0; i < ctx->nloc; i++) s += a[i] * b[i];
    MPI_Request req;
    MPI_Iallreduce(&s, &g, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
    npb_wait(&req);
    return g;
}

/* y = A v for the owned rows (v distributed like y). */
static void spmv(struct cg_ctx *ctx, const double *v, double *y) {
    MPI_Request req;
    MPI_Iallgatherv(v, (int)ctx->nloc, MPI_DOUBLE, ctx->full, ctx->counts, ctx->displs, MPI_DOUBLE,
                    MPI_COMM_WORLD, &req);
    npb_wait(&req);
    const struct csr *m = &ctx->m;
    for (long i = 0; i < ctx->nloc; i++) {
        double s = 0.0;
        for (long k = m->rowptr[i]; k < m->rowptr[i + 1]; k++) s += m->a[k] * ctx->full[m->col[k]];
        y[i] = s;
    }
}

/* z ~ A^-1 x by 25 CG steps; returns the explicit residual norm (SPEC 4.4). */
static double conj_grad(struct cg_ctx *ctx, const double *x, double *z, double *p, double *q, double *r) {
    long n = ctx->nloc;
    for (long i = 0; i < n; i++) {
        q[i] = 0.0;
        z[i] = 0.0;
        r[i] = x[i];
        p[i] = r[i];
    }
    double rho = dot(ctx, r, r);
    for (int step = 0; step < CG_STEPS; step++) {
        spmv(ctx, p, q);
        double alpha = rho / dot(ctx, p, q);
        double rho0 = rho;
        for (long i = 0; i < n; i++) {
            z[i] += alpha * p[i];
            r[i] -= alpha * q[i];
        }
        rho = dot(ctx, r, r);
        double beta = rho / rho0;
        for (long i = 0; i < n; i++) p[i] = r[i] + beta * p[i];
    }
    spmv(ctx, z, r); /* r = A z */
    double s = 0.0, g;
    for (long i = 0; i < n; i++) s += (x[i] - r[i]) * (x[i] - r[i]);
    MPI_Request req;
    MPI_Iallreduce(&s, &g, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req);
    npb_wait(&req);
    return sqrt(g);
}

int main(int argc, char **argv) {
    int rank, nprocs;
    char cls = npb_init(&argc, &argv, "cg", &rank, &nprocs);
    const struct cg_class *c = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].cls == cls) c = &classes[i];
    if (!c) npb_usage_error("cg", "class %c is not supported", cls);
    /* the 1-D scheme works for any count; powers of two as in the reference, for comparability */
    if ((nprocs & (nprocs - 1)) != 0 || nprocs > c->na)
        npb_usage_error("cg", "needs a power-of-two process count (got %d)", nprocs);

    struct cg_ctx ctx = {0};
    ctx.counts = xmalloc(sizeof(int) * nprocs);
    ctx.displs = xmalloc(sizeof(int) * nprocs);
    for (int p = 0; p < nprocs; p++) {
        long a = p * c->na / nprocs, b = (p + 1) * c->na / nprocs;
        ctx.displs[p] = (int)a;
        ctx.counts[p] = (int)(b - a);
    }
    ctx.m.r0 = ctx.displs[rank];
    ctx.m.r1 = ctx.m.r0 + ctx.counts[rank];
    ctx.nloc = ctx.counts[rank];
    ctx.full = xmalloc(sizeof(double) * c->na);

    if (rank == 0) {
        npb_print_header("CG");
        printf(" Size: %10ld  (class %c)\n", c->na, cls);
        printf(" Iterations: %5d\n", c->niter);
        printf(" Number of nonzeroes per row: %8d\n", c->nonzer);
        printf(" Eigenvalue shift: %9.3f\n", c->shift);
        printf(" Total number of processes: %6d\n\n", nprocs);
        fflush(stdout);
    }

    makea(c, &ctx.m);

    long n = ctx.nloc;
    double *x = xmalloc(sizeof(double) * n), *z = xmalloc(sizeof(double) * n);
    double *p = xmalloc(sizeof(double) * n), *q = xmalloc(sizeof(double) * n);
    double *r = xmalloc(sizeof(double) * n);

    /* untimed warm-up CG solve (its result is discarded: the timed loop starts from x = 1) */
    for (long i = 0; i < n; i++) x[i] = 1.0;
    conj_grad(&ctx, x, z, p, q, r);

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = npb_wtime();
    double zeta = 0.0;
    if (rank == 0) printf("   iteration           ||r||                 zeta\n");
    for (int it = 1; it <= c->niter; it++) {
        double rnorm = conj_grad(&ctx, x, z, p, q, r);
        double t1 = dot(&ctx, x, z);
        double t2 = dot(&ctx, z, z);
        zeta = c->shift + 1.0 / t1;
        if (rank == 0 && (it == 1 || it == c->niter || it % 5 == 0)) {
            printf("    %5d      ", it);
            print_fortran_e(rnorm, 21, 14);
            printf("%20.13f\n", zeta);
        }
        double inv = 1.0 / sqrt(t2);
        for (long i = 0; i < n; i++) x[i] = inv * z[i];
    }
    double elapsed = npb_wtime() - t0, tmax;
    MPI_Reduce(&elapsed, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        int verified = npb_verify_value(zeta, c->zeta, 1e-10);
        printf(" Benchmark completed \n");
        if (verified) {
            printf(" VERIFICATION SUCCESSFUL \n Zeta is    ");
            print_fortran_e(zeta, 20, 13);
            printf("\n Error is   ");
            print_fortran_e(fabs(zeta - c->zeta) / c->zeta, 20, 13);
            printf("\n");
        } else {
            printf(" VERIFICATION FAILED\n Zeta                ");
            print_fortran_e(zeta, 20, 13);
            printf("\n The correct zeta is ");
            print_fortran_e(c->zeta, 20, 13);
            printf("\n");
        }
        double nz = (double)c->nonzer;
        double ops = 2.0 * c->niter * (double)c->na *
                     (3.0 + nz * (nz + 1.0) + 25.0 * (5.0 + nz * (nz + 1.0)) + 3.0);
        double mops = tmax > 0 ? ops / tmax / 1e6 : 0.0;
        npb_print_results("CG", cls, c->na, 0, 0, c->niter, tmax, mops, "floating point", verified,
                          nprocs);
    }
    free(x);
    free(z);
    free(p);
    free(q);
    free(r);
    free(ctx.full);
    free(ctx.counts);
    free(ctx.displs);
    free(ctx.m.rowptr);
    free(ctx.m.col);
    free(ctx.m.a);
    MPI_Finalize();
    return 0;
}
