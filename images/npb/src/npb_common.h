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

/* Waiting for communication. MPICH (ch4:ucx) busy-polls inside blocking calls; with more
 * ranks than cores (e.g. -n 4 on 2 cores) a blocking collective then costs whole scheduler
 * time slices (measured 5-20 ms per MPI_Allreduce at -n 4 on 2 busy cores, ~0.35 ms with the
 * sleeping wait). npb_init therefore decides once, at run time, whether this node runs more
 * ranks than it has cores (ranks sharing this node's memory, from MPI_Comm_split_type, against
 * the online CPUs, or fewer if the affinity mask allows fewer). Env NPB_SLEEPING_WAIT=1 or 0
 * forces the choice (for measurements).
 *   - not oversubscribed: npb_wait is MPI_Wait and the npb_<collective> helpers call the
 *     blocking MPI collective (lowest latency, one rank per core may spin);
 *   - oversubscribed: the helpers start the nonblocking collective and npb_wait spins 20 us,
 *     then yields the core between MPI_Test polls for up to 1 ms, then sleeps 20 us between
 *     polls, so a waiting rank gives its core away. */
int npb_sleeping_wait(void);
void npb_wait(MPI_Request *req);
void npb_waitall(int n, MPI_Request reqs[]);
void npb_allreduce(const void *send, void *recv, int count, MPI_Datatype type, MPI_Op op);
void npb_allgather(const void *send, int count, void *recv, MPI_Datatype type);
void npb_allgatherv(const void *send, int count, void *recv, const int counts[], const int displs[],
                    MPI_Datatype type);
void npb_alltoall(const void *send, int scount, MPI_Datatype stype, void *recv, int rcount,
                  MPI_Datatype rtype);
void npb_alltoallv(const void *send, const int scounts[], const int sdispls[], void *recv,
                   const int rcounts[], const int rdispls[], MPI_Datatype type);

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
