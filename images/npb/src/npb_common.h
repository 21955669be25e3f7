/* Shared parts of the NPB kernels (SPEC.md section 1): random numbers, class
 * argument, timing, verification and the NPB-style result block. */
#ifndef NPB_COMMON_H
#define NPB_COMMON_H

#include <mpi.h>
#include <stdint.h>

/* 5^13, the multiplier of every kernel's stream (SPEC 1.1). */
#define NPB_A 1220703125.0

/* Advance x (an exact integer < 2^46 held in a double) to x*a mod 2^46 and
 * return the new value times 2^-46. a must also be an integer < 2^46. */
double randlc(double *x, double a);

/* n successive randlc steps; the values go to y[0..n-1], x keeps the last state. */
void vranlc(int n, double *x, double a, double y[]);

/* a^e mod 2^46 (jump-ahead multiplier, 64-bit exponent). */
double npb_pow46(double a, uint64_t e);

/* Reads the class letter from argv[1] (S, W, A, B, C; case-insensitive).
 * On a missing or unknown class prints usage to stderr (rank 0) and exits 2. */
char npb_parse_class(int argc, char **argv, const char *kernel);

/* MPI_Init, rank and size of MPI_COMM_WORLD, then npb_parse_class. */
char npb_init(int *argc, char ***argv, const char *kernel, int *rank, int *nprocs);

/* Prints "kernel: <message>" to stderr on rank 0, finalises MPI and exits 2.
 * For unsupported process counts and similar user errors. */
void npb_usage_error(const char *kernel, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

double npb_wtime(void);

/* Completes a request like MPI_Wait, but after a short spin sleeps between
 * polls. MPICH (ch4:ucx) busy-polls inside blocking calls; with more ranks than
 * cores (e.g. -n 4 on 2 cores) a blocking collective then costs whole scheduler
 * time slices (measured 5-20 ms per MPI_Allreduce at -n 4 on 2 busy cores, ~0.35 ms this way). Use it
 * with the nonblocking collectives (MPI_Iallreduce, ...) in per-iteration loops. */
void npb_wait(MPI_Request *req);

/* 1 iff |computed - reference| / |reference| <= epsilon (reference == 0:
 * |computed| <= epsilon); NaN fails. With env NPB_TEST_WRONG_REFERENCE=1 the
 * reference is first scaled by (1 + 1e-3) so tests can prove a check fails. */
int npb_verify_value(double computed, double reference, double epsilon);

/* The banner that starts every kernel's output (rank 0 only). */
void npb_print_header(const char *name);

/* The result block of SPEC 1.7 (rank 0 only). n2 == n3 == 0 prints n1 as the
 * size; otherwise "n1 x n2 x n3" in 4-wide fields. */
void npb_print_results(const char *name, char cls, long n1, long n2, long n3, int niter,
                       double seconds, double mops, const char *optype, int verified,
                       int nprocs);

#endif
