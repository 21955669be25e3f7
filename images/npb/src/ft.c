/* FT — spectral solution of the 3-D heat equation by FFTs (SPEC.md section 6).
 *
 * Decomposition: slabs ("1D", SPEC 6.9). In the space layout (x fastest, then y, then z)
 * each process owns nz/P whole z-planes; x and y FFTs are local. One MPI_Alltoall transposes
 * to the spectral layout, where each process owns ny/P y-values of every (x, z) and the z FFTs
 * are local; the spectrum and the decay factor live in that layout, which keeps x fastest:
 * (x, z, y-slab). The transpose moves whole x-rows with MPI datatypes, so there are no
 * separate pack and unpack passes. With one process nothing is transposed: the spectrum keeps
 * the space layout (x, y, z). P must be a power of two with P <= nz (no pencils).
 *
 * The 1-D FFTs work on blocks of NB lines at once (SPEC 6.4 notes the reference does the
 * same with 16): a block is gathered into split real/imaginary buffers laid out
 * [point][line], transformed by Stockham autosort stages (radix 4, plus one radix-2 stage
 * when log2 n is odd; no bit reversal) whose innermost loop runs over the NB lines, and
 * scattered back. Twiddles come from per-stage tables computed once per size. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_common.h"

#define FT_SEED 314159265.0
#define FT_ALPHA 1e-6
#define FT_PI 3.141592653589793238
#define MAX_STEPS 20
/* Lines per FFT block (every nx and ny is a multiple). Class A -n 1, best timed, -O3:
 * 16 lines 2.52 s, 32 lines 2.26 s (scalar stage loops: 8 lines 2.75 s, 32 2.64 s, 64 2.71 s). */
#define NB 32

struct ft_class {
    char cls;
    int nx, ny, nz, niter;
    double ref[MAX_STEPS][2]; /* checksum per step: real, imaginary */
};

static const struct ft_class classes[] = {
    {'S', 64, 64, 64, 6,
     {{5.546087004964e+02, 4.845363331978e+02}, {5.546385409189e+02, 4.865304269511e+02},
      {5.546148406171e+02, 4.883910722336e+02}, {5.545423607415e+02, 4.901273169046e+02},
      {5.544255039624e+02, 4.917475857993e+02}, {5.542683411902e+02, 4.932597244941e+02}}},
    {'W', 128, 128, 32, 6,
     {{5.673612178944e+02, 5.293246849175e+02}, {5.631436885271e+02, 5.282149986629e+02},
      {5.594024089970e+02, 5.270996558037e+02}, {5.560698047020e+02, 5.260027904925e+02},
      {5.530898991250e+02, 5.249400845633e+02}, {5.504159734538e+02, 5.239212247086e+02}}},
    {'A', 256, 256, 128, 6,
     {{5.046735008193e+02, 5.114047905510e+02}, {5.059412319734e+02, 5.098809666433e+02},
      {5.069376896287e+02, 5.098144042213e+02}, {5.077892868474e+02, 5.101336130759e+02},
      {5.085233095391e+02, 5.104914655194e+02}, {5.091487099959e+02, 5.107917842803e+02}}},
    {'B', 512, 256, 256, 20,
     {{5.177643571579e+02, 5.077803458597e+02}, {5.154521291263e+02, 5.088249431599e+02},
      {5.146409228649e+02, 5.096208912659e+02}, {5.142378756213e+02, 5.101023387619e+02},
      {5.139626667737e+02, 5.103976610617e+02}, {5.137423460082e+02, 5.105948019802e+02},
      {5.135547056878e+02, 5.107404165783e+02}, {5.133910925466e+02, 5.108576573661e+02},
      {5.132470705390e+02, 5.109577278523e+02}, {5.131197729984e+02, 5.110460304483e+02},
      {5.130070319283e+02, 5.111252433800e+02}, {5.129070537032e+02, 5.111968077718e+02},
      {5.128182883502e+02, 5.112616233064e+02}, {5.127393733383e+02, 5.113203605551e+02},
      {5.126691062020e+02, 5.113735928093e+02}, {5.126064276004e+02, 5.114218460548e+02},
      {5.125504076570e+02, 5.114656139760e+02}, {5.125002331720e+02, 5.115053595966e+02},
      {5.124551951846e+02, 5.115415130407e+02}, {5.124146770029e+02, 5.115744692211e+02}}},
    {'C', 512, 512, 512, 20,
     {{5.195078707457e+02, 5.149019699238e+02}, {5.155422171134e+02, 5.127578201997e+02},
      {5.144678022222e+02, 5.122251847514e+02}, {5.140150594328e+02, 5.121090289018e+02},
      {5.137550426810e+02, 5.121143685824e+02}, {5.135811056728e+02, 5.121496764568e+02},
      {5.134569343165e+02, 5.121870921893e+02}, {5.133651975661e+02, 5.122193250322e+02},
      {5.132955192805e+02, 5.122454735794e+02}, {5.132410471738e+02, 5.122663649603e+02},
      {5.131971141679e+02, 5.122830879827e+02}, {5.131605205716e+02, 5.122965869718e+02},
      {5.131290734194e+02, 5.123075927445e+02}, {5.131012720314e+02, 5.123166486553e+02},
      {5.130760908195e+02, 5.123241541685e+02}, {5.130528295923e+02, 5.123304037599e+02},
      {5.130310107773e+02, 5.123356167976e+02}, {5.130103090133e+02, 5.123399592211e+02},
      {5.129905029333e+02, 5.123435588985e+02}, {5.129714421109e+02, 5.123465164008e+02}}},
};

static int nprocs, rank;
static int nx, ny, nz, nzl, nyl; /* nzl z-planes per process (space), nyl y-values (spectrum) */
static size_t nloc;              /* complex elements per process */
/* complex arrays as interleaved (re, im) doubles: the spectrum, the space field, transpose scratch */
static double *u0, *a1, *a2;
static double *decay;
/* spectral layout: offset of (x, z, yl) = x + zs * z + ys * yl */
static size_t zs, ys;
static MPI_Datatype t_space, t_spec; /* one process's share of a transpose, on either side */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) npb_usage_error("ft", "out of memory (%zu bytes)", n);
    return p;
}

/* ---- 1-D FFTs of NB lines at once ---- */

struct stage {
    int radix, ns;  /* ns: length of the sub-transforms this stage combines */
    const double *w; /* per k < ns: (w^1, ..., w^(radix-1)) as re, im pairs; w = exp(2 pi i k / (radix ns)) */
};

struct plan {
    int n, nstages;
    struct stage st[32];
    double *tw;
};

static struct plan plans[3]; /* for nx, ny, nz */
static double *work;         /* two ping-pong buffers of re[n NB] + im[n NB] */

static void make_plan(struct plan *p, int n) {
    free(p->tw);
    p->n = n;
    p->nstages = 0;
    int log2n = 0;
    while ((1 << log2n) < n) log2n++;
    p->tw = xmalloc(sizeof(double) * 6 * (size_t)n);
    size_t used = 0;
    int ns = 1;
    for (int left = log2n; left > 0;) {
        const int radix = left % 2 ? 2 : 4;
        struct stage *st = &p->st[p->nstages++];
        st->radix = radix;
        st->ns = ns;
        st->w = p->tw + used;
        for (int k = 0; k < ns; k++)
            for (int r = 1; r < radix; r++) {
                /* angle 2 pi k r / (radix ns), from cos/sin directly for accuracy */
                const double a = 2.0 * FT_PI * (double)(k * r) / (double)(radix * ns);
                p->tw[used++] = cos(a);
                p->tw[used++] = sin(a);
            }
        left -= radix == 2 ? 1 : 2;
        ns *= radix;
    }
}

/* One radix-2 stage: in (ir, ii) -> out (or, oi), n points of NB lines, sign s = +-1. */
static void stage2(const struct stage *st, int n, double s, const double *restrict ir,
                   const double *restrict ii, double *restrict outr, double *restrict outi) {
    const int ns = st->ns, half = n / 2;
    for (int j = 0; j < half; j++) {
        const int k = j % ns, o = (j - k) * 2 + k;
        const double wr = st->w[2 * k], wi = s * st->w[2 * k + 1];
        const double *ar = ir + (size_t)j * NB, *ai = ii + (size_t)j * NB;
        const double *br = ir + (size_t)(j + half) * NB, *bi = ii + (size_t)(j + half) * NB;
        double *xr = outr + (size_t)o * NB, *xi = outi + (size_t)o * NB;
        double *yr = outr + (size_t)(o + ns) * NB, *yi = outi + (size_t)(o + ns) * NB;
        /* the line arrays of one stage never overlap */
#pragma GCC ivdep
        for (int l = 0; l < NB; l++) {
            const double tr = br[l] * wr - bi[l] * wi, ti = br[l] * wi + bi[l] * wr;
            xr[l] = ar[l] + tr;
            xi[l] = ai[l] + ti;
            yr[l] = ar[l] - tr;
            yi[l] = ai[l] - ti;
        }
    }
}

/* One radix-4 stage, as stage2. */
static void stage4(const struct stage *st, int n, double s, const double *restrict ir,
                   const double *restrict ii, double *restrict outr, double *restrict outi) {
    const int ns = st->ns, q = n / 4;
    for (int j = 0; j < q; j++) {
        const int k = j % ns, o = (j - k) * 4 + k;
        const double *w = st->w + 6 * k;
        const double w1r = w[0], w1i = s * w[1], w2r = w[2], w2i = s * w[3], w3r = w[4], w3i = s * w[5];
        const double *r0 = ir + (size_t)j * NB, *i0 = ii + (size_t)j * NB;
        const double *r1 = r0 + (size_t)q * NB, *i1 = i0 + (size_t)q * NB;
        const double *r2 = r1 + (size_t)q * NB, *i2 = i1 + (size_t)q * NB;
        const double *r3 = r2 + (size_t)q * NB, *i3 = i2 + (size_t)q * NB;
        double *x0r = outr + (size_t)o * NB, *x0i = outi + (size_t)o * NB;
        double *x1r = x0r + (size_t)ns * NB, *x1i = x0i + (size_t)ns * NB;
        double *x2r = x1r + (size_t)ns * NB, *x2i = x1i + (size_t)ns * NB;
        double *x3r = x2r + (size_t)ns * NB, *x3i = x2i + (size_t)ns * NB;
        /* the line arrays of one stage never overlap */
#pragma GCC ivdep
        for (int l = 0; l < NB; l++) {
            const double v1r = r1[l] * w1r - i1[l] * w1i, v1i = r1[l] * w1i + i1[l] * w1r;
            const double v2r = r2[l] * w2r - i2[l] * w2i, v2i = r2[l] * w2i + i2[l] * w2r;
            const double v3r = r3[l] * w3r - i3[l] * w3i, v3i = r3[l] * w3i + i3[l] * w3r;
            const double ar = r0[l] + v2r, ai = i0[l] + v2i; /* v0 + v2 */
            const double br = r0[l] - v2r, bi = i0[l] - v2i; /* v0 - v2 */
            const double cr = v1r + v3r, ci = v1i + v3i;     /* v1 + v3 */
            const double dr = v1r - v3r, di = v1i - v3i;     /* v1 - v3; times s i below */
            x0r[l] = ar + cr;
            x0i[l] = ai + ci;
            x2r[l] = ar - cr;
            x2i[l] = ai - ci;
            x1r[l] = br - s * di;
            x1i[l] = bi + s * dr;
            x3r[l] = br + s * di;
            x3i[l] = bi - s * dr;
        }
    }
}

/* Transforms the block in work buffer 0 (X(k) = sum_j x(j) exp(s 2 pi i j k / n), s = +1
 * forward, -1 inverse, unnormalised, SPEC 6.4); returns the buffer holding the result. */
static double *fft_block(const struct plan *p, int inverse) {
    const int n = p->n;
    const double s = inverse ? -1.0 : 1.0;
    double *in = work, *out = work + 2 * (size_t)n * NB;
    for (int i = 0; i < p->nstages; i++) {
        const struct stage *st = &p->st[i];
        (st->radix == 2 ? stage2 : stage4)(st, n, s, in, in + (size_t)n * NB, out, out + (size_t)n * NB);
        double *t = in;
        in = out;
        out = t;
    }
    return in;
}

/* FFTs along one axis of every line of a local array. Point j of line (l, m) is the complex
 * element at l * ls + m * ms + j * js, for l < nl (a multiple of NB), m < nm. Reads src,
 * writes dst with the same offsets (dst == src: in place). With mul (the decay factor, indexed
 * like the elements) every input element is first multiplied by it and stored back to src:
 * the evolve step of SPEC 6.6, fused into the inverse transform's first pass. */
static void fft_axis(const struct plan *p, int inverse, double *src, double *dst, size_t js,
                     size_t ls, int nl, size_t ms, int nm, const double *mul) {
    const int n = p->n;
    double *re = work, *im = work + (size_t)n * NB;
    for (int m = 0; m < nm; m++)
        for (int l0 = 0; l0 < nl; l0 += NB) {
            const size_t base = (size_t)l0 * ls + (size_t)m * ms;
            /* gather; loop order follows whichever stride is 1 */
            if (ls == 1) {
                for (int j = 0; j < n; j++) {
                    const size_t e = base + (size_t)j * js;
                    double *c = src + 2 * e;
                    if (mul)
                        for (int l = 0; l < NB; l++) {
                            c[2 * l] *= mul[e + l];
                            c[2 * l + 1] *= mul[e + l];
                        }
                    for (int l = 0; l < NB; l++) {
                        re[j * NB + l] = c[2 * l];
                        im[j * NB + l] = c[2 * l + 1];
                    }
                }
            } else {
                for (int l = 0; l < NB; l++) {
                    const size_t e = base + (size_t)l * ls;
                    double *c = src + 2 * e;
                    if (mul)
                        for (int j = 0; j < n; j++) {
                            c[2 * j * js] *= mul[e + j * js];
                            c[2 * j * js + 1] *= mul[e + j * js];
                        }
                    for (int j = 0; j < n; j++) {
                        re[j * NB + l] = c[2 * j * js];
                        im[j * NB + l] = c[2 * j * js + 1];
                    }
                }
            }
            const double *res = fft_block(p, inverse);
            const double *rr = res, *ri = res + (size_t)n * NB;
            if (ls == 1) {
                for (int j = 0; j < n; j++) {
                    double *c = dst + 2 * (base + (size_t)j * js);
                    for (int l = 0; l < NB; l++) {
                        c[2 * l] = rr[j * NB + l];
                        c[2 * l + 1] = ri[j * NB + l];
                    }
                }
            } else {
                for (int l = 0; l < NB; l++) {
                    double *c = dst + 2 * (base + (size_t)l * ls);
                    for (int j = 0; j < n; j++) {
                        c[2 * j * js] = rr[j * NB + l];
                        c[2 * j * js + 1] = ri[j * NB + l];
                    }
                }
            }
        }
}

/* ---- 3-D transforms ---- */

/* x then y FFTs (inverse: y then x) of a space-layout array, in place, plane by plane so that
 * the second pass finds the plane still in cache. */
static void fft_xy(double *a, int inverse) {
    for (int zl = 0; zl < nzl; zl++) {
        double *plane = a + (size_t)2 * nx * ny * zl;
        for (int pass = 0; pass < 2; pass++) {
            if ((pass == 0) != (inverse != 0)) /* the x pass: forward first, inverse second */
                fft_axis(&plans[0], inverse, plane, plane, 1, (size_t)nx, ny, 0, 1, NULL);
            else
                fft_axis(&plans[1], inverse, plane, plane, (size_t)nx, 1, nx, 0, 1, NULL);
        }
    }
}

/* z FFTs of spectral-layout data, src -> dst, with the decay multiplied into src first if given. */
static void fft_z(double *src, double *dst, int inverse, const double *mul) {
    fft_axis(&plans[2], inverse, src, dst, zs, 1, nx, ys, nyl, mul);
}

/* Forward 3-D FFT: space field a1 (destroyed) -> spectrum u0. */
static void forward(void) {
    fft_xy(a1, 0);
    if (nprocs == 1) {
        fft_z(a1, u0, 0, NULL);
        return;
    }
    npb_alltoall(a1, 1, t_space, u0, 1, t_spec);
    fft_z(u0, u0, 0, NULL);
}

/* One time step's evolve (u0 *= decay, kept) and inverse 3-D FFT into a1 (space layout). */
static void evolve_inverse(void) {
    double *dst = nprocs == 1 ? a1 : a2;
    fft_z(u0, dst, 1, decay);
    if (nprocs > 1) npb_alltoall(a2, 1, t_spec, a1, 1, t_space);
    fft_xy(a1, 1);
}

/* The transpose's datatypes. Space layout, block for/from process q: y in q's range of every
 * own z-plane, i.e. nzl runs of nyl x-rows. Spectral layout, block for/from process q: z in q's
 * range, for every own y, visited z-major so both sides list the rows in the same order. */
static void make_types(void) {
    MPI_Datatype v, rows;
    MPI_Type_vector(nzl, 2 * nyl * nx, 2 * ny * nx, MPI_DOUBLE, &v);
    MPI_Type_create_resized(v, 0, (MPI_Aint)(sizeof(double) * 2 * nyl * nx), &t_space);
    MPI_Type_free(&v);
    MPI_Type_vector(nyl, 2 * nx, (int)(2 * ys), MPI_DOUBLE, &rows);
    MPI_Type_create_hvector(nzl, 1, (MPI_Aint)(sizeof(double) * 2 * zs), rows, &v);
    MPI_Type_create_resized(v, 0, (MPI_Aint)(sizeof(double) * 2 * zs * nzl), &t_spec);
    MPI_Type_free(&v);
    MPI_Type_free(&rows);
    MPI_Type_commit(&t_space);
    MPI_Type_commit(&t_spec);
}

/* Random initial field in space layout (SPEC 6.3): element g gets r(2g+1) + i r(2g+2). */
static void initial_conditions(double *a) {
    double x = FT_SEED;
    randlc(&x, npb_pow46(NPB_A, (uint64_t)2 * nx * ny * (uint64_t)(rank * nzl)));
    for (int zl = 0; zl < nzl; zl++) vranlc(2 * nx * ny, &x, NPB_A, a + (size_t)2 * zl * nx * ny);
}

/* exp(-4 alpha pi^2 |k|^2) in the spectral layout, signed wavenumbers (SPEC 6.5), as the
 * product of one factor per axis: exp(c kx^2) exp(c ky^2) exp(c kz^2), equal to exp(c |k|^2)
 * within rounding, with nx + ny + nz calls of exp instead of one per element. */
static void compute_decay(void) {
    const double ap = -4.0 * FT_ALPHA * FT_PI * FT_PI;
    const int nmax = nx > ny ? (nx > nz ? nx : nz) : (ny > nz ? ny : nz);
    double *f = xmalloc(sizeof(double) * 3 * (size_t)nmax);
    double *fx = f, *fy = f + nmax, *fz = f + 2 * nmax;
    const int n[3] = {nx, ny, nz};
    double *fa[3] = {fx, fy, fz};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < n[a]; i++) {
            const int kb = i < n[a] / 2 ? i : i - n[a];
            fa[a][i] = exp(ap * (double)(kb * kb));
        }
    const int y0 = nprocs == 1 ? 0 : rank * nyl;
    for (int yl = 0; yl < nyl; yl++)
        for (int z = 0; z < nz; z++) {
            const double yz = fy[y0 + yl] * fz[z];
            double *d = decay + (size_t)yl * ys + (size_t)z * zs;
            for (int x = 0; x < nx; x++) d[x] = fx[x] * yz;
        }
    free(f);
}

static void setup(void) {
    make_plan(&plans[0], nx);
    make_plan(&plans[1], ny);
    make_plan(&plans[2], nz);
    compute_decay();
    initial_conditions(a1);
}

/* Sum of the 1024 sample points of the space-layout field a, divided by N,
 * completed on rank 0 (SPEC 6.6). */
static void checksum(const double *a, double out[2]) {
    double loc[2] = {0.0, 0.0};
    for (int j = 1; j <= 1024; j++) {
        const int x = j % nx, y = (3 * j) % ny, z = (5 * j) % nz;
        if (z / nzl == rank) {
            const double *c = a + 2 * (x + (size_t)nx * (y + (size_t)ny * (z % nzl)));
            loc[0] += c[0];
            loc[1] += c[1];
        }
    }
    const double ntotal = (double)nx * ny * nz;
    loc[0] /= ntotal;
    loc[1] /= ntotal;
    out[0] = out[1] = 0.0;
    MPI_Reduce(loc, out, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
}

/* Fortran 1P,D22.12, e.g. "    5.546087004964D+02". */
static void print_d(double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%22.12E", v);
    char *e = strchr(buf, 'E');
    if (e) *e = 'D';
    fputs(buf, stdout);
}

int main(int argc, char **argv) {
    const char cls = npb_init(&argc, &argv, "ft", &rank, &nprocs);
    const struct ft_class *c = NULL;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (classes[i].cls == cls) c = &classes[i];
    if (!c) npb_usage_error("ft", "class %c is not supported", cls);
    nx = c->nx;
    ny = c->ny;
    nz = c->nz;
    if ((nprocs & (nprocs - 1)) != 0)
        npb_usage_error("ft", "the number of processes must be a power of two (got %d)", nprocs);
    /* slabs need P <= nz; ny >= nz in every class, so P | ny follows */
    if (nprocs > nz)
        npb_usage_error("ft", "class %c (nz = %d) supports at most %d processes (got %d)", cls, nz,
                        nz, nprocs);
    nzl = nz / nprocs;
    nyl = ny / nprocs;
    nloc = (size_t)nx * ny * nzl;
    const double ntotal = (double)nx * ny * nz;
    if (nprocs == 1) { /* the spectrum stays in the space layout */
        zs = (size_t)nx * ny;
        ys = (size_t)nx;
    } else {
        zs = (size_t)nx;
        ys = (size_t)nx * nz;
        make_types();
    }

    u0 = xmalloc(sizeof(double) * 2 * nloc);
    a1 = xmalloc(sizeof(double) * 2 * nloc);
    a2 = nprocs > 1 ? xmalloc(sizeof(double) * 2 * nloc) : NULL; /* transpose scratch */
    decay = xmalloc(sizeof(double) * nloc);
    const int nmax = nx > ny ? (nx > nz ? nx : nz) : (ny > nz ? ny : nz);
    work = xmalloc(sizeof(double) * 4 * (size_t)nmax * NB);

    if (rank == 0) {
        npb_print_header("FT");
        printf(" No input file inputft.data. Using compiled defaults\n");
        printf(" Size                : %4dx%4dx%4d  (class %c)\n", nx, ny, nz, cls);
        printf(" Iterations          : %14d\n", c->niter);
        printf(" Number of processes : %14d\n", nprocs);
        printf(" Processor array     : %9dx%4d\n", 1, nprocs);
        printf(" Layout type         : %14s\n", nprocs == 1 ? "0D" : "1D");
        fflush(stdout);
    }

    /* untimed warm-up: the same set-up and one forward transform */
    double t_init = npb_wtime();
    setup();
    forward();
    t_init = npb_wtime() - t_init;
    double t_init_max;
    MPI_Reduce(&t_init, &t_init_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("\n Initialization time = %12.4f\n\n", t_init_max);

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = npb_wtime();
    setup();
    forward();
    double sums[MAX_STEPS][2];
    for (int t = 0; t < c->niter; t++) {
        evolve_inverse();
        checksum(a1, sums[t]);
        if (rank == 0) {
            printf(" T = %4d     Checksum =", t + 1);
            print_d(sums[t][0]);
            print_d(sums[t][1]);
            printf("\n");
        }
    }
    int verified = 1;
    if (rank == 0)
        for (int t = 0; t < c->niter; t++) {
            const double ref = hypot(c->ref[t][0], c->ref[t][1]);
            const double err = hypot(sums[t][0] - c->ref[t][0], sums[t][1] - c->ref[t][1]);
            /* The official test is on the complex modulus, |chk - ref| / |ref| <= 1e-12
             * (SPEC 1.4). Passing |ref| + |chk - ref| against |ref| makes the shared
             * relative check compute exactly that error. */
            if (!npb_verify_value(ref + err, ref, 1e-12)) verified = 0;
        }
    double elapsed = npb_wtime() - t0, tmax;
    MPI_Reduce(&elapsed, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        printf(verified ? " Result verification successful\n" : " Result verification failed\n");
        const double ln = log(ntotal);
        const double ops = ntotal * (14.8157 + 7.19641 * ln + (5.23518 + 7.21113 * ln) * c->niter);
        const double mops = tmax > 0 ? ops / tmax / 1e6 : 0.0;
        npb_print_results("FT", cls, nx, ny, nz, c->niter, tmax, mops, "floating point", verified,
                          nprocs);
    }
    if (nprocs > 1) {
        MPI_Type_free(&t_space);
        MPI_Type_free(&t_spec);
    }
    for (int d = 0; d < 3; d++) free(plans[d].tw);
    free(work);
    free(decay);
    free(a2);
    free(a1);
    free(u0);
    MPI_Finalize();
    return 0;
}
