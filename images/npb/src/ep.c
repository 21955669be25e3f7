/* EP — Embarrassingly Parallel (SPEC.md section 2): Gaussian pairs by the
 * Marsaglia polar method, tallied in square annuli. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_common.h"

#define MK 16
#define NK (1 << MK)  /* pairs per batch */
#define NQ 10         /* annuli */
#define EP_SEED 271828183.0

struct ep_class {
    char cls;
    int m;
    double sx, sy; /* NPB 3.4.2+ sums of |X| and |Y| */
    double gc;
};

static const struct ep_class classes[] = {
    {'S', 24, 1.051299420395306e+07, 1.051517131857535e+07, 13176389.0},
    {'W', 25, 2.102505525182392e+07, 2.103162209578822e+07, 26354769.0},
    {'A', 28, 1.682235632304711e+08, 1.682195123368299e+08, 210832767.0},
    {'B', 30, 6.728927543423024e+08, 6.728951822504275e+08, 843345606.0},
    {'C', 32, 2.691444083862931e+09, 2.691519118724585e+09, 3373275903.0},
};

/* Fortran 1P,D25.15 style, e.g. "    1.051299420395170D+07". */
static void print_d(double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%25.15E", v);
    char *e = strchr(buf, 'E');
    if (e) *e = 'D';
    fputs(buf, stdout);
}

int main(int argc, char **argv) {
    int rank, nprocs;
    char cls = npb_init(&argc, &argv, "ep", &rank, &nprocs);
    const struct ep_class *c = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].cls == cls) c = &classes[i];
    if (!c) npb_usage_error("ep", "class %c is not supported", cls);

    const long nn = 1L << (c->m - MK); /* batches */
    if (nprocs > nn)
        npb_usage_error("ep", "class %c has %ld batches; run with at most %ld processes (got %d)",
                        cls, nn, nn, nprocs);
    const double nrand = ldexp(1.0, c->m + 1);

    if (rank == 0) {
        printf("\n NAS Parallel Benchmarks 3.4 -- EP Benchmark\n\n");
        printf(" Number of random numbers generated: %15.0f  (class %c)\n", nrand, cls);
        printf(" Total number of processes:          %15d\n\n", nprocs);
        fflush(stdout);
    }

    double *buf = malloc(sizeof(double) * 2 * NK);
    if (!buf) npb_usage_error("ep", "out of memory");

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = npb_wtime();

    /* batches split as evenly as possible, the first (nn mod P) ranks get one extra */
    long per = nn / nprocs, extra = nn % nprocs;
    long first = rank * per + (rank < extra ? rank : extra);
    long count = per + (rank < extra ? 1 : 0);
    const double batch_mult = npb_pow46(NPB_A, (uint64_t)2 * NK); /* a^(2^17) */

    /* Two passes per batch. The first keeps the pairs inside the unit circle (x1, x2 packed
     * in place, branch-free: ~21% of the pairs are rejected at random, which a branch
     * mispredicts); the second turns them into Gaussian pairs. Annulus counts are integers
     * in two interleaved copies, so that consecutive pairs in the same annulus do not wait
     * for each other's increment. */
    double sx = 0.0, sy = 0.0;
    long cnt[2][NQ] = {{0}};
    for (long k = first; k < first + count; k++) {
        double x = EP_SEED;
        randlc(&x, npb_pow46(batch_mult, (uint64_t)k)); /* x = seed * A^k mod 2^46 */
        vranlc(2 * NK, &x, NPB_A, buf);
        int kept = 0;
        for (int i = 0; i < NK; i++) {
            const double x1 = 2.0 * buf[2 * i] - 1.0;
            const double x2 = 2.0 * buf[2 * i + 1] - 1.0;
            const double t = x1 * x1 + x2 * x2;
            /* kept <= i: never overwrites a pair not yet read */
            buf[2 * kept] = x1;
            buf[2 * kept + 1] = x2;
            kept += t <= 1.0;
        }
        for (int i = 0; i < kept; i++) {
            const double x1 = buf[2 * i], x2 = buf[2 * i + 1], t = x1 * x1 + x2 * x2;
            const double f = sqrt(-2.0 * log(t) / t);
            const double gx = fabs(x1 * f), gy = fabs(x2 * f);
            /* written so that it compiles to maxsd */
            const double big = gy > gx ? gy : gx;
            cnt[i & 1][(int)big]++;
            sx += gx;
            sy += gy;
        }
    }
    double q[NQ];
    for (int l = 0; l < NQ; l++) q[l] = (double)(cnt[0][l] + cnt[1][l]);
    double local[2 + NQ], global[2 + NQ];
    local[0] = sx;
    local[1] = sy;
    memcpy(local + 2, q, sizeof q);
    MPI_Allreduce(local, global, 2 + NQ, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double elapsed = npb_wtime() - t0, tmax;
    MPI_Reduce(&elapsed, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    free(buf);

    if (rank == 0) {
        double gc = 0.0;
        for (int i = 0; i < NQ; i++) gc += global[2 + i];
        /* gc is only checked when both sums pass, as in the reference */
        int verified = npb_verify_value(global[0], c->sx, 1e-8) &&
                       npb_verify_value(global[1], c->sy, 1e-8) &&
                       npb_verify_value(gc, c->gc, 1e-8);
        printf(" EP Benchmark Results:\n\n");
        printf(" CPU Time = %9.3f\n", tmax);
        printf(" N = 2^%5d\n", c->m);
        printf(" No. Gaussian Pairs = %14.0f.\n", gc);
        printf(" Sums = ");
        print_d(global[0]);
        print_d(global[1]);
        printf("\n Counts:\n");
        for (int i = 0; i < NQ; i++) printf("%3d%14.0f.\n", i, global[2 + i]);
        double mops = tmax > 0 ? nrand / tmax / 1e6 : 0.0;
        npb_print_results("EP", cls, (long)nrand, 0, 0, 0, tmax, mops, "Random numbers generated",
                          verified, nprocs);
    }
    MPI_Finalize();
    return 0;
}
