/* vpc dirty-log agent: LD_PRELOAD library that tracks writes to a QEMU guest's
 * shared RAM mapping with userfaultfd and serves copy-on-write checkpoints.
 * Protocol, modes and shared-file layouts: ../README.md and ../FORMAT.md.
 *
 * Threads: the control thread (socket commands) lives as long as the process;
 * the fault handler and the watchdog exist only while attached. All three run
 * with every signal blocked, because QEMU directs signals at its own threads.
 * One mutex (g.mu) guards the bitmaps, order log and staging; the handler
 * never calls into the kernel on the uffd while holding it except to copy. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lazy.h"
#include "uffd_compat.h"

#define LOG(...) fprintf(stderr, "vpc-dirty-log: " __VA_ARGS__)
#define PROTO_VERSION 1
#define MAX_FRAME (16u << 20)
#define STAGING_MAGIC "VPCDLSTG"
#define STAGING_VERSION 1
#define STAGING_HEADER 4096

enum { MODE_SYNC = 0, MODE_ASYNC = 1 };
enum {
	OP_HELLO = 0, OP_ATTACH, OP_MODE, OP_ARM, OP_HARVEST, OP_PEEK, OP_CONFIRM,
	OP_PROTECT, OP_COPY, OP_RELEASE, OP_RELEASE_SET, OP_STATS, OP_DETACH,
	OP_MARK, OP_CHECKPOINT, OP_SAVE, OP_SAVE_STATUS, OP_LAZY_LOAD, OP_LAZY_STATUS,
	OP_COUNT
};
_Static_assert((int)OP_LAZY_LOAD == (int)LAZY_OP_LOAD && (int)OP_LAZY_STATUS == (int)LAZY_OP_STATUS,
	       "lazy.h op codes");
static const char *const op_names[OP_COUNT] = {
	"hello", "attach", "mode", "arm", "harvest", "peek", "confirm",
	"protect", "copy", "release", "releaseSet", "stats", "detach",
	"mark", "checkpoint", "save", "saveStatus", "lazyLoad", "lazyStatus"};
/* Staged page sources; a COW fault raised by a read (async MINOR faults fire on
 * reads too) is told apart, because it is not a write the predictor missed. */
enum { SRC_COW = 1, SRC_COPY = 2, SRC_COW_READ = 3 };
#define COPY_ONLY_PROTECTED 1u
/* checkpoint request flags (README "checkpoint") */
#define CP_FULL 1u       /* save every page, not only the accumulated set */
#define CP_COPY_ALL 2u   /* copy the whole save set in the pause (stop-copy, precopy) */
#define CP_PROTECT_ALL 4u /* protect the whole save set (cow) */
#define CP_PREDICT 8u    /* copy save ∩ P, protect the rest (vpc); P = set file ∪ window ∪ front */
#define CP_ADD_SET 16u   /* the set file's pages are saved too (precopy's carried set) */
#define CP_DIRTY_ONLY 32u /* save the harvested interval's D, not the accumulated set (precopy) */
#define SAVE_FIRST 1u    /* save: the set file names pages to save before the others */
#define SYNC_FEATURES (UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
/* Without WP_UNPOPULATED (Linux < 6.4: Debian 12's 6.1, e.g. inside an L1 host VM) a page with
 * no page-table entry cannot carry the write-protect bit, so its first write would go untracked.
 * Sync mode then does without it: attach populates every entry of guest RAM first
 * (MADV_POPULATE_WRITE: contents unchanged, holes become zero pages), and shmem's PTE markers
 * (WP_HUGETLBFS_SHMEM, 5.19) keep the bit when an entry is zapped later. */
#define ASYNC_FEATURES                                                                  \
	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_UNPOPULATED | \
	 UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
/* The features a mode asks for, given what the kernel offers (attach and mode switches alike). */
static uint64_t mode_features(int mode, uint64_t avail) {
	if (mode == MODE_ASYNC) return ASYNC_FEATURES;
	return avail & UFFD_FEATURE_WP_UNPOPULATED ? SYNC_FEATURES
						   : SYNC_FEATURES & ~(uint64_t)UFFD_FEATURE_WP_UNPOPULATED;
}

struct orec { /* one first-write record, FORMAT.md "order file" */
	uint32_t page;
	uint32_t cls;
	uint64_t t_ns;
};
struct slot { /* staging slot table entry, FORMAT.md "staging file" */
	uint64_t page;
	uint32_t state;
	uint32_t source;
};
/* Log-linear histogram: 8 sub-buckets per power of two (~12% resolution). */
struct hist {
	uint64_t n, total, max;
	uint64_t b[512];
};
struct timer {
	uint64_t n, total, last;
};

static struct {
	/* process-wide */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	/* attachment */
	int attached, armed, mode;
	_Atomic int failed, stopping;
	uint8_t *base, *ro;
	size_t len, psz, npages, words, bm_bytes;
	off_t file_off;
	int ram_fd, uffd, stop_efd;
	uint64_t features;
	pthread_t handler, watchdog;
	int have_handler, have_watchdog;
	pthread_mutex_t mu;
	pthread_cond_t space;
	uint64_t *dirty, *seen, *carry, *acc, *pending, *recent, *first;
	/* Async mode: pages that were holes in the RAM file at attach and have not been written
	 * since. Their content is zero, and their first touch raises no MINOR fault (only pages in
	 * the page cache do), so COW could not copy them on touch: they are saved as zeros. */
	uint64_t *zero;
	int marked; /* a mark() started the pre-pause window of this interval */
	uint64_t npending;
	struct orec *order;
	size_t norder;
	uint32_t peeks;
	uint64_t interval_start;
	double run_cost_ns, whole_cost_ns; /* re-protect cost estimates (sync) */
	/* shared files */
	char path_dirty[PATH_MAX], path_acc[PATH_MAX], path_set[PATH_MAX], path_order[PATH_MAX],
		path_stage[PATH_MAX], path_recent[PATH_MAX], path_copied[PATH_MAX];
	uint8_t *f_dirty, *f_acc, *f_set, *f_stage, *f_recent, *f_copied;
	struct orec *f_order;
	size_t stage_len;
	uint32_t nslots, nfree, peak_used;
	uint32_t *free_stack;
	struct slot *table;
	uint8_t *stage_data;
	/* watchdog */
	_Atomic uint64_t busy_since;
	_Atomic int waiting_space;
	uint64_t watchdog_ns;
	/* background saver (after cont): copies the pending pages into staging */
	pthread_t saver;
	int have_saver;
	_Atomic int saving;
	uint64_t save_start_ns, save_end_ns, save_copied, save_min_ns;
	uint32_t save_max_in_use; /* the saver waits while this many slots are staged (0: no bound) */
	uint32_t save_end_class; /* async: the peek class taken when the save ended */
	/* stats */
	struct hist h_track, h_cow;
	uint64_t wait_n, wait_ns, minor_plain, reprotect_whole, reprotect_runs, cow_reads;
	struct timer t_arm, t_harvest, t_peek, t_protect, t_copy;
} g = {.listen_fd = -1, .ram_fd = -1, .uffd = -1, .stop_efd = -1,
       .mu = PTHREAD_MUTEX_INITIALIZER, .space = PTHREAD_COND_INITIALIZER};

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- bitmaps: bit p = bit (p & 63) of word p >> 6, i.e. bit p&7 of byte p>>3 on LE */
static inline int bt(const uint64_t *m, size_t p) { return (int)((m[p >> 6] >> (p & 63)) & 1); }
static inline void bs(uint64_t *m, size_t p) { m[p >> 6] |= 1ull << (p & 63); }
static inline void bc(uint64_t *m, size_t p) { m[p >> 6] &= ~(1ull << (p & 63)); }
static size_t bcount(const uint64_t *m, size_t words) {
	size_t n = 0;
	for (size_t i = 0; i < words; i++) n += (size_t)__builtin_popcountll(m[i]);
	return n;
}
/* Next set bit at or after p, or npages. */
static size_t bnext(const uint64_t *m, size_t p, size_t npages) {
	while (p < npages) {
		uint64_t w = m[p >> 6] >> (p & 63);
		if (w) {
			p += (size_t)__builtin_ctzll(w);
			return p < npages ? p : npages;
		}
		p = (p | 63) + 1;
	}
	return npages;
}
static size_t bnext_clear(const uint64_t *m, size_t p, size_t npages) {
	while (p < npages && bt(m, p)) p++;
	return p;
}

static void hist_add(struct hist *h, uint64_t v) {
	unsigned idx;
	if (v < 8) {
		idx = (unsigned)v;
	} else {
		unsigned e = 63u - (unsigned)__builtin_clzll(v);
		idx = 8 + (e - 3) * 8 + (unsigned)((v >> (e - 3)) - 8);
	}
	h->b[idx]++;
	h->n++;
	h->total += v;
	if (v > h->max) h->max = v;
}
static uint64_t hist_q(const struct hist *h, double q) {
	if (!h->n) return 0;
	uint64_t want = (uint64_t)(q * (double)h->n);
	if (want >= h->n) want = h->n - 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < 512; i++) {
		acc += h->b[i];
		if (acc > want) {
			if (i < 8) return i;
			unsigned e = (i - 8) / 8 + 3, sub = (i - 8) % 8;
			uint64_t lo = (uint64_t)(8 + sub) << (e - 3);
			uint64_t mid = lo + (1ull << (e - 3)) / 2;
			return mid > h->max ? h->max : mid;
		}
	}
	return h->max;
}
static void timer_add(struct timer *t, uint64_t v) {
	t->n++;
	t->total += v;
	t->last = v;
}

/* ---- replies: JSON text built with a bounded appender */
struct out {
	char *buf;
	size_t len, cap;
	int err;
};
static void outf(struct out *o, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->err = 1;
		return;
	}
	o->len += (size_t)n;
}

/* ---- userfaultfd helpers */
/* VPC_DIRTY_LOG_HIDE_FEATURES (a number) hides kernel features, so tests can run the paths
 * for older kernels (e.g. without WP_UNPOPULATED) on a new one. */
static uint64_t probe_features(void) {
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0) return 0;
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	uint64_t f = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
	close(fd);
	const char *hide = getenv("VPC_DIRTY_LOG_HIDE_FEATURES");
	return hide ? f & ~strtoull(hide, NULL, 0) : f;
}
static int wp_range(size_t first, size_t count, int protect) {
	struct uffdio_writeprotect wp = {
		.range = {.start = (uint64_t)(uintptr_t)(g.base + first * g.psz), .len = count * g.psz},
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
	return ioctl(g.uffd, UFFDIO_WRITEPROTECT, &wp);
}
static void wake_page(size_t p) {
	struct uffdio_range r = {.start = (uint64_t)(uintptr_t)(g.base + p * g.psz), .len = g.psz};
	ioctl(g.uffd, UFFDIO_WAKE, &r);
}
/* Map back a run of zapped pages from the page cache. EEXIST (someone mapped a
 * page first) is success for that page; CONTINUE does not wake on failure, so
 * wake explicitly. */
static int continue_run(size_t first, size_t count, int keep_wp) {
	size_t p = first, end = first + count;
	while (p < end) {
		struct uffdio_continue c = {
			.range = {.start = (uint64_t)(uintptr_t)(g.base + p * g.psz), .len = (end - p) * g.psz},
			.mode = keep_wp ? UFFDIO_CONTINUE_MODE_WP : 0};
		if (ioctl(g.uffd, UFFDIO_CONTINUE, &c) == 0) return 0;
		if (errno != EEXIST && errno != EAGAIN) return -1;
		size_t done = c.mapped > 0 ? (size_t)c.mapped / g.psz : 0;
		if (errno == EEXIST) {
			wake_page(p + done);
			done++;
		}
		p += done;
	}
	return 0;
}

/* PAGEMAP_SCAN over [first, first+count) for written pages; calls fn per run. */
static int scan_written(size_t first, size_t count, int reprotect,
			void (*fn)(size_t first, size_t count, void *arg), void *arg) {
	static struct page_region vec[4096];
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0) return -1;
	uint64_t start = (uint64_t)(uintptr_t)(g.base + first * g.psz);
	uint64_t end = start + count * g.psz;
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof a,
			.flags = reprotect ? (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC) : 0,
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)vec,
			.vec_len = sizeof vec / sizeof vec[0],
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN};
		long n = ioctl(pm, PAGEMAP_SCAN, &a);
		if (n < 0) {
			int e = errno;
			close(pm);
			errno = e;
			return -1;
		}
		for (long i = 0; i < n; i++) {
			size_t p0 = (size_t)((vec[i].start - (uint64_t)(uintptr_t)g.base) / g.psz);
			fn(p0, (size_t)((vec[i].end - vec[i].start) / g.psz), arg);
		}
		if (a.walk_end <= start) break;
		start = a.walk_end;
	}
	close(pm);
	return 0;
}

/* ---- staging (g.mu held) */
static uint32_t stage_used(void) { return g.nslots - g.nfree; }
static int is_zero(size_t p) { return g.zero && bt(g.zero, p); }
static void stage_fill(uint32_t s, size_t p, uint32_t source) {
	/* A zero page is not read: reading a hole through g.ro would allocate it. */
	if (is_zero(p)) memset(g.stage_data + (size_t)s * g.psz, 0, g.psz);
	else memcpy(g.stage_data + (size_t)s * g.psz, g.ro + p * g.psz, g.psz);
	g.table[s].page = p;
	g.table[s].source = source;
	/* The client reads state last: data and page must be visible first. */
	__atomic_store_n(&g.table[s].state, 1, __ATOMIC_RELEASE);
	if (stage_used() > g.peak_used) g.peak_used = stage_used();
}
/* COW fault: save page p, waiting for a free slot. While it waits the saver may
 * copy p itself; then p is no longer pending and must not be staged twice.
 * Returns 1 if this call staged p. */
static int stage_cow(size_t p, uint32_t source) {
	if (!g.nfree) {
		uint64_t t0 = now_ns();
		atomic_store(&g.waiting_space, 1);
		while (!g.nfree && bt(g.pending, p) && !atomic_load(&g.stopping))
			pthread_cond_wait(&g.space, &g.mu);
		atomic_store(&g.waiting_space, 0);
		g.wait_n++;
		g.wait_ns += now_ns() - t0;
	}
	if (!bt(g.pending, p) || !g.nfree) return 0;
	stage_fill(g.free_stack[--g.nfree], p, source);
	bc(g.pending, p);
	g.npending--;
	return 1;
}

/* ---- fault handler thread */
static void order_append(size_t p, uint32_t cls, uint64_t t) {
	g.order[g.norder].page = (uint32_t)p;
	g.order[g.norder].cls = cls;
	g.order[g.norder].t_ns = t;
	g.norder++;
}

/* A fault outside the range the agent tracks (the mapping grew in place, keeping its
 * registration): nothing to record, but the thread must go on. Waking alone would re-raise the
 * same fault, so resolve it as the kernel would without us: map the page (MINOR) or drop the
 * write protection (WP), then wake. */
static void release_foreign(uint64_t addr, uint64_t flags) {
	uint64_t page = addr & ~(uint64_t)(g.psz - 1);
	if (flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		struct uffdio_continue c = {.range = {.start = page, .len = g.psz}};
		ioctl(g.uffd, UFFDIO_CONTINUE, &c);
	} else if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		struct uffdio_writeprotect wp = {.range = {.start = page, .len = g.psz}, .mode = 0};
		ioctl(g.uffd, UFFDIO_WRITEPROTECT, &wp);
	}
	struct uffdio_range r = {.start = page, .len = g.psz};
	ioctl(g.uffd, UFFDIO_WAKE, &r);
}

static void handle_fault(const struct uffd_msg *m) {
	uint64_t t0 = now_ns();
	uint64_t addr = m->arg.pagefault.address;
	uint64_t flags = m->arg.pagefault.flags;
	if (addr < (uint64_t)(uintptr_t)g.base || addr >= (uint64_t)(uintptr_t)(g.base + g.len)) {
		release_foreign(addr, flags);
		return;
	}
	size_t p = (size_t)((addr - (uint64_t)(uintptr_t)g.base) / g.psz);
	int cow = 0;
	int write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
	pthread_mutex_lock(&g.mu);
	if (bt(g.pending, p)) cow = stage_cow(p, write ? SRC_COW : SRC_COW_READ);
	if (cow && !write) g.cow_reads++;
	if (g.mode == MODE_SYNC && !bt(g.dirty, p)) {
		bs(g.dirty, p);
		/* A mark() clears dirty mid-interval; the order log keeps first writes only. */
		if (!bt(g.seen, p)) {
			bs(g.seen, p);
			order_append(p, 0, t0);
		}
	}
	if (!cow && g.mode == MODE_ASYNC) g.minor_plain++;
	if (g.mode == MODE_SYNC) {
		/* Unprotect under the lock: a harvest in between would re-protect and
		 * clear the bit, and this write would then land unrecorded. Unprotecting
		 * wakes the writer; a failure still needs a wake. */
		if (wp_range(p, 1, 0)) wake_page(p);
	}
	pthread_mutex_unlock(&g.mu);
	/* Async: a write maps the page writable (the kernel then reports it
	 * written); a read keeps it write-protected so tracking goes on. */
	if (g.mode == MODE_ASYNC && continue_run(p, 1, !write))
		wake_page(p);
	uint64_t dt = now_ns() - t0;
	pthread_mutex_lock(&g.mu);
	hist_add(cow ? &g.h_cow : &g.h_track, dt);
	pthread_mutex_unlock(&g.mu);
}

static void *handler_main(void *arg) {
	(void)arg;
	struct uffd_msg msgs[64];
	struct pollfd pf[2] = {{.fd = g.uffd, .events = POLLIN}, {.fd = g.stop_efd, .events = POLLIN}};
	for (;;) {
		int n = poll(pf, 2, 200);
		if (n < 0 && errno != EINTR) break;
		if (pf[1].revents) break;
		if (n <= 0 || !(pf[0].revents & POLLIN)) {
			if (pf[0].revents & (POLLERR | POLLNVAL)) break;
			continue;
		}
		ssize_t r = read(g.uffd, msgs, sizeof msgs);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR) continue;
			break;
		}
		/* End of file: the watchdog replaced the userfaultfd with /dev/null (always readable):
		 * there is nothing left to handle, and polling it again would spin. */
		if (r == 0) break;
		atomic_store(&g.busy_since, now_ns());
		for (size_t i = 0; i < (size_t)r / sizeof msgs[0]; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT) handle_fault(&msgs[i]);
		atomic_store(&g.busy_since, 0);
	}
	if (!atomic_load(&g.stopping) && !atomic_load(&g.failed)) {
		LOG("fault handler stopped unexpectedly (%s)\n", strerror(errno));
		atomic_store(&g.failed, 1);
	}
	return NULL;
}

/* If the handler is stuck (not waiting for staging) or gone while faults may be
 * queued, drop the userfaultfd: unregistering wakes faulting threads and
 * closing it lets every later fault resolve normally. */
static void *watchdog_main(void *arg) {
	(void)arg;
	while (!atomic_load(&g.stopping)) {
		usleep(100000);
		uint64_t busy = atomic_load(&g.busy_since);
		int stuck = busy && !atomic_load(&g.waiting_space) && now_ns() - busy > g.watchdog_ns;
		if (!stuck && !atomic_load(&g.failed)) continue;
		LOG("watchdog: fault handler %s; releasing guest RAM\n", stuck ? "stuck" : "dead");
		/* Mark the failure before the swap: a command whose ioctl meets /dev/null
		 * must already see it, or it reports ENOTTY instead of the handler's failure. */
		atomic_store(&g.failed, 1);
		struct uffdio_range r = {.start = (uint64_t)(uintptr_t)g.base, .len = g.len};
		ioctl(g.uffd, UFFDIO_UNREGISTER, &r);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, g.uffd); /* keeps the fd number owned until detach closes it */
			close(null);
		}
		break;
	}
	return NULL;
}

static int start_thread(pthread_t *t, void *(*fn)(void *)) {
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- uffd lifecycle */
static int uffd_open(int mode) {
	uint64_t want = mode == MODE_ASYNC ? ASYNC_FEATURES : mode_features(mode, probe_features());
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) return -1;
	struct uffdio_api api = {.api = UFFD_API, .features = want};
	if (ioctl(fd, UFFDIO_API, &api)) goto fail;
	struct uffdio_register reg = {
		.range = {.start = (uint64_t)(uintptr_t)g.base, .len = g.len},
		.mode = UFFDIO_REGISTER_MODE_WP | (mode == MODE_ASYNC ? UFFDIO_REGISTER_MODE_MINOR : 0)};
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) goto fail;
	g.features = api.features;
	return fd;
fail: {
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}
}

static void stop_handler(void) {
	atomic_store(&g.stopping, 1);
	pthread_mutex_lock(&g.mu);
	pthread_cond_broadcast(&g.space);
	pthread_mutex_unlock(&g.mu);
	if (g.stop_efd >= 0) {
		uint64_t one = 1;
		if (write(g.stop_efd, &one, sizeof one) < 0) LOG("stop eventfd: %s\n", strerror(errno));
	}
	if (g.have_handler) pthread_join(g.handler, NULL);
	if (g.have_watchdog) pthread_join(g.watchdog, NULL);
	if (g.have_saver) pthread_join(g.saver, NULL);
	g.have_handler = g.have_watchdog = g.have_saver = 0;
	if (g.uffd >= 0) {
		struct uffdio_range r = {.start = (uint64_t)(uintptr_t)g.base, .len = g.len};
		ioctl(g.uffd, UFFDIO_UNREGISTER, &r); /* clears protections, wakes waiters */
		close(g.uffd);
		g.uffd = -1;
	}
	if (g.stop_efd >= 0) close(g.stop_efd);
	g.stop_efd = -1;
}

static int start_handler(int mode) {
	g.uffd = uffd_open(mode);
	if (g.uffd < 0) return -1;
	g.mode = mode;
	g.stop_efd = eventfd(0, EFD_CLOEXEC);
	atomic_store(&g.stopping, 0);
	atomic_store(&g.failed, 0);
	if (g.stop_efd < 0 || start_thread(&g.handler, handler_main)) goto fail;
	g.have_handler = 1;
	if (start_thread(&g.watchdog, watchdog_main)) goto fail;
	g.have_watchdog = 1;
	return 0;
fail: {
	int e = errno ? errno : EAGAIN;
	stop_handler();
	errno = e;
	return -1;
}
}

/* ---- shared files */
static void *map_file(const char *path, size_t len) {
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) return NULL;
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)len) == 0)
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	errno = e;
	return p == MAP_FAILED ? NULL : p;
}
static size_t order_file_len(void) { return g.npages * sizeof(struct orec); }
static size_t bm_file_len(void) { return g.bm_bytes ? g.bm_bytes : 4; }

static void detach_all(void) {
	stop_handler();
#define UNMAP(p, l)                                                \
	do {                                                       \
		if (p) munmap((void *)(p), l);                     \
		(p) = NULL;                                        \
	} while (0)
	UNMAP(g.f_dirty, bm_file_len());
	UNMAP(g.f_acc, bm_file_len());
	UNMAP(g.f_set, bm_file_len());
	UNMAP(g.f_order, order_file_len());
	UNMAP(g.f_stage, g.stage_len);
	UNMAP(g.f_recent, bm_file_len());
	UNMAP(g.f_copied, bm_file_len());
	UNMAP(g.ro, g.len);
#undef UNMAP
	const char *paths[] = {g.path_dirty, g.path_acc,    g.path_set,   g.path_order,
			       g.path_stage, g.path_recent, g.path_copied};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (paths[i][0]) unlink(paths[i]);
	if (g.ram_fd >= 0) close(g.ram_fd);
	g.ram_fd = -1;
	free(g.dirty);
	free(g.seen);
	free(g.carry);
	free(g.acc);
	free(g.pending);
	free(g.recent);
	free(g.first);
	free(g.zero);
	g.zero = NULL;
	free(g.order);
	free(g.free_stack);
	g.dirty = g.seen = g.carry = g.acc = g.pending = g.recent = g.first = NULL;
	g.order = NULL;
	g.free_stack = NULL;
	g.attached = g.armed = g.marked = 0;
	g.npending = 0;
	atomic_store(&g.saving, 0);
}

/* Sync mode on a kernel without WP_UNPOPULATED: every page needs a page-table entry to carry
 * the write-protect bit, so populate all of guest RAM before registering (contents unchanged,
 * holes become zero pages). */
static int populate_for(int mode, uint64_t avail) {
	if (mode != MODE_SYNC || (avail & UFFD_FEATURE_WP_UNPOPULATED)) return 0;
	return madvise(g.base, g.len, MADV_POPULATE_WRITE);
}

static void clear_zero_run(size_t first, size_t count, void *arg) {
	(void)arg;
	for (size_t p = first; p < first + count; p++) bc(g.zero, p);
}

/* Async mode, right after write-protecting all of guest RAM: the pages that are holes in the
 * RAM file now are zero and, from now on, every write to them is tracked (g.zero). Found with
 * SEEK_DATA/SEEK_HOLE, which count swapped-out pages as data (mincore would not). */
static int track_holes(void) {
	free(g.zero);
	g.zero = calloc(g.words, 8);
	if (!g.zero) return -1;
	off_t pos = g.file_off, end = g.file_off + (off_t)g.len;
	while (pos < end) {
		off_t data = lseek(g.ram_fd, pos, SEEK_DATA);
		if (data < 0 && errno != ENXIO) return -1;
		if (data < 0 || data > end) data = end;
		for (off_t o = pos; o < data; o += (off_t)g.psz) bs(g.zero, (size_t)(o - g.file_off) / g.psz);
		if (data >= end) break;
		pos = lseek(g.ram_fd, data, SEEK_HOLE);
		if (pos < 0) return -1;
	}
	return 0;
}

/* ---- commands. Each returns 0 or an errno, with a message in *msg. */
static int find_mapping(const char *want, char *msg, size_t msgcap) {
	char real[PATH_MAX];
	if (!realpath(want, real)) FAIL(errno, "memory-backend file %s: %s", want, strerror(errno));
	if (find_shared_mapping(real, &g.base, &g.len, &g.file_off))
		FAIL(ENOENT, "no shared writable mapping of %s in /proc/self/maps", real);
	g.ram_fd = open(real, O_RDONLY | O_CLOEXEC);
	if (g.ram_fd < 0) FAIL(errno, "open %s: %s", real, strerror(errno));
	g.ro = mmap(NULL, g.len, PROT_READ, MAP_SHARED, g.ram_fd, g.file_off);
	if (g.ro == MAP_FAILED) {
		g.ro = NULL;
		FAIL(errno, "read-only mapping of %s: %s", real, strerror(errno));
	}
	return 0;
}

static int cmd_attach(const uint8_t *in, size_t n, struct out *o, char *msg, size_t msgcap) {
	if (g.attached) FAIL(EBUSY, "already attached");
	if (n < 12) FAIL(EINVAL, "attach: short request");
	/* After a lazy restore, tracking starts once every page is in (one userfaultfd per range). */
	int lazy = lazy_settle(msg, msgcap);
	if (lazy) return lazy;
	uint32_t mode, slots;
	memcpy(&mode, in, 4);
	memcpy(&slots, in + 4, 4);
	if (mode > MODE_ASYNC) FAIL(EINVAL, "unknown mode %u", mode);
	if (!slots) FAIL(EINVAL, "staging needs at least one slot");
	char path[PATH_MAX];
	size_t pl = n - 12 < sizeof path - 1 ? n - 12 : sizeof path - 1;
	memcpy(path, in + 12, pl);
	path[pl] = 0;
	uint64_t avail = probe_features();
	uint64_t want = mode_features((int)mode, avail);
	if ((avail & want) != want)
		FAIL(ENOTSUP,
		     "kernel userfaultfd lacks features 0x%llx needed for %s mode (has 0x%llx)%s",
		     (unsigned long long)(want & ~avail), mode ? "async" : "sync",
		     (unsigned long long)avail,
		     mode == MODE_ASYNC && (avail & mode_features(MODE_SYNC, avail)) == mode_features(MODE_SYNC, avail)
			 ? "; sync mode is available"
			 : "");
	g.psz = (size_t)sysconf(_SC_PAGESIZE);
	int rc = find_mapping(path, msg, msgcap);
	if (rc) {
		detach_all();
		return rc;
	}
	if (populate_for((int)mode, avail)) {
		int e = errno;
		detach_all();
		FAIL(e, "populate guest RAM (kernel without WP_UNPOPULATED): %s", strerror(e));
	}
	g.npages = g.len / g.psz;
	g.words = (g.npages + 63) / 64;
	g.bm_bytes = (g.npages + 31) / 32 * 4;
	g.nslots = slots;
	g.dirty = calloc(g.words, 8);
	g.seen = calloc(g.words, 8);
	g.carry = calloc(g.words, 8);
	g.acc = calloc(g.words, 8);
	g.pending = calloc(g.words, 8);
	g.recent = calloc(g.words, 8);
	g.order = calloc(g.npages, sizeof(struct orec));
	g.free_stack = calloc(slots, 4);
	if (!g.dirty || !g.seen || !g.carry || !g.acc || !g.pending || !g.recent || !g.order ||
	    !g.free_stack) {
		detach_all();
		FAIL(ENOMEM, "attach: out of memory for %zu pages", g.npages);
	}
	snprintf(g.path_dirty, PATH_MAX, "%s.dirty", g.sock);
	snprintf(g.path_acc, PATH_MAX, "%s.accumulated", g.sock);
	snprintf(g.path_set, PATH_MAX, "%s.set", g.sock);
	snprintf(g.path_order, PATH_MAX, "%s.order", g.sock);
	snprintf(g.path_stage, PATH_MAX, "%s.staging", g.sock);
	snprintf(g.path_recent, PATH_MAX, "%s.recent", g.sock);
	snprintf(g.path_copied, PATH_MAX, "%s.copied", g.sock);
	size_t table_end = STAGING_HEADER + (size_t)slots * sizeof(struct slot);
	size_t data_off = (table_end + g.psz - 1) / g.psz * g.psz;
	g.stage_len = data_off + (size_t)slots * g.psz;
	g.f_dirty = map_file(g.path_dirty, bm_file_len());
	g.f_acc = g.f_dirty ? map_file(g.path_acc, bm_file_len()) : NULL;
	g.f_set = g.f_acc ? map_file(g.path_set, bm_file_len()) : NULL;
	g.f_order = g.f_set ? map_file(g.path_order, order_file_len()) : NULL;
	g.f_stage = g.f_order ? map_file(g.path_stage, g.stage_len) : NULL;
	g.f_recent = g.f_stage ? map_file(g.path_recent, bm_file_len()) : NULL;
	g.f_copied = g.f_recent ? map_file(g.path_copied, bm_file_len()) : NULL;
	if (!g.f_copied) {
		int e = errno;
		detach_all();
		FAIL(e, "create shared files next to %s: %s", g.sock, strerror(e));
	}
	memcpy(g.f_stage, STAGING_MAGIC, 8);
	uint32_t hdr32[4] = {STAGING_VERSION, (uint32_t)g.psz, slots, 0};
	memcpy(g.f_stage + 8, hdr32, 16);
	uint64_t hdr64[3] = {STAGING_HEADER, data_off, g.npages};
	memcpy(g.f_stage + 24, hdr64, 24);
	g.table = (struct slot *)(g.f_stage + STAGING_HEADER);
	g.stage_data = g.f_stage + data_off;
	for (uint32_t i = 0; i < slots; i++) g.free_stack[i] = slots - 1 - i;
	g.nfree = slots;
	g.peak_used = 0;
	memset(&g.h_track, 0, sizeof g.h_track);
	memset(&g.h_cow, 0, sizeof g.h_cow);
	g.wait_n = g.wait_ns = g.minor_plain = g.reprotect_whole = g.reprotect_runs = g.cow_reads = 0;
	memset(&g.t_arm, 0, sizeof(struct timer) * 5);
	g.run_cost_ns = g.whole_cost_ns = 0;
	const char *wd = getenv("VPC_DIRTY_LOG_WATCHDOG_MS");
	g.watchdog_ns = (uint64_t)(wd ? atol(wd) : 5000) * 1000000u;
	if (start_handler((int)mode)) {
		int e = errno;
		detach_all();
		FAIL(e, "register guest RAM with userfaultfd (%s mode): %s", mode ? "async" : "sync",
		     strerror(e));
	}
	/* Async: protect now, so that writes before the first arm are known when holes are
	 * counted as zero pages (a write to a hole there costs ~1 µs, resolved by the kernel). */
	if (mode == MODE_ASYNC && (wp_range(0, g.npages, 1) || track_holes())) {
		int e = errno ? errno : ENOMEM;
		detach_all();
		FAIL(e, "find never-populated pages of guest RAM: %s", strerror(e));
	}
	g.attached = 1;
	outf(o,
	     "{\"mode\":\"%s\",\"pageSize\":%zu,\"pageCount\":%zu,\"ramBytes\":%zu,"
	     "\"bitmapBytes\":%zu,\"stagingSlots\":%u,\"features\":%llu,\"availableFeatures\":%llu,"
	     "\"files\":{\"dirty\":\"%s\",\"accumulated\":\"%s\",\"set\":\"%s\",\"order\":\"%s\","
	     "\"staging\":\"%s\",\"recent\":\"%s\",\"copied\":\"%s\"}}",
	     mode ? "async" : "sync", g.psz, g.npages, g.len, g.bm_bytes, slots,
	     (unsigned long long)g.features, (unsigned long long)avail, g.path_dirty, g.path_acc,
	     g.path_set, g.path_order, g.path_stage, g.path_recent, g.path_copied);
	return 0;
}

static void mark_run(size_t first, size_t count, void *arg) {
	uint64_t *m = arg;
	for (size_t p = first; p < first + count; p++) bs(m, p);
}

/* Fold what the current interval wrote into carry (next harvest reports it). */
static int fold_current(void) {
	if (!g.armed) return 0;
	if (g.mode == MODE_SYNC) {
		for (size_t i = 0; i < g.words; i++) g.carry[i] |= g.dirty[i];
		return 0;
	}
	return scan_written(0, g.npages, 0, mark_run, g.carry);
}

/* Write-protects all guest RAM and starts an interval (g.mu held). */
static int arm_locked(void) {
	uint64_t t0 = now_ns();
	int rc = fold_current();
	/* Pages written between attach and the first arm are no longer zero. */
	if (!rc && !g.armed && g.zero) rc = scan_written(0, g.npages, 0, clear_zero_run, NULL);
	if (!rc) rc = wp_range(0, g.npages, 1);
	if (rc) return rc;
	memset(g.dirty, 0, g.words * 8);
	memset(g.seen, 0, g.words * 8);
	g.norder = 0;
	g.peeks = 0;
	g.marked = 0;
	g.armed = 1;
	g.interval_start = now_ns();
	timer_add(&g.t_arm, g.interval_start - t0);
	g.whole_cost_ns = (double)(g.interval_start - t0);
	return 0;
}

static int cmd_arm(struct out *o, char *msg, size_t msgcap) {
	pthread_mutex_lock(&g.mu);
	int rc = arm_locked();
	int e = errno;
	uint64_t start = g.interval_start, dt = g.t_arm.last;
	pthread_mutex_unlock(&g.mu);
	if (rc) FAIL(e, "write-protect guest RAM: %s", strerror(e));
	outf(o, "{\"startNs\":%llu,\"ns\":%llu}", (unsigned long long)start, (unsigned long long)dt);
	return 0;
}

struct harvest_ctx {
	uint64_t *set;
	uint32_t cls;
	uint64_t t;
	size_t fresh;
};
static void harvest_run(size_t first, size_t count, void *arg) {
	struct harvest_ctx *h = arg;
	for (size_t p = first; p < first + count; p++) {
		if (h->set) bs(h->set, p);
		if (!bt(g.seen, p)) {
			bs(g.seen, p);
			order_append(p, h->cls, h->t);
			h->fresh++;
		}
	}
}

/* Sync mode: re-protect the pages the interval unprotected, per run or the
 * whole range in one call, whichever the measured costs say is cheaper. */
static int reprotect_sync(void) {
	size_t runs = 0;
	for (size_t p = bnext(g.dirty, 0, g.npages); p < g.npages;
	     p = bnext(g.dirty, bnext_clear(g.dirty, p, g.npages), g.npages))
		runs++;
	if (!runs) return 0;
	double est_runs = g.run_cost_ns > 0 ? g.run_cost_ns * (double)runs : 0;
	if (g.whole_cost_ns > 0 && est_runs > g.whole_cost_ns) {
		g.reprotect_whole++;
		uint64_t t0 = now_ns();
		int rc = wp_range(0, g.npages, 1);
		g.whole_cost_ns = (double)(now_ns() - t0);
		return rc;
	}
	uint64_t t0 = now_ns();
	for (size_t p = bnext(g.dirty, 0, g.npages); p < g.npages;) {
		size_t e = bnext_clear(g.dirty, p, g.npages);
		if (wp_range(p, e - p, 1)) return -1;
		p = bnext(g.dirty, e, g.npages);
	}
	g.reprotect_runs++;
	double per = (double)(now_ns() - t0) / (double)runs;
	g.run_cost_ns = g.run_cost_ns > 0 ? 0.7 * g.run_cost_ns + 0.3 * per : per;
	return 0;
}

struct harvest_out {
	size_t dirty, accumulated, orders, recent;
	int marked;
	uint64_t start, end;
};

/* Ends the interval (g.mu held). R = pages written since the last mark (or the
 * interval start), D = carry ∪ R; publishes D, the accumulated set, the order
 * log and R in the shared files and starts the next interval. */
static int harvest_locked(struct harvest_out *h) {
	uint64_t t0 = now_ns();
	int rc;
	memset(g.recent, 0, g.words * 8);
	if (g.mode == MODE_SYNC) {
		rc = reprotect_sync();
		if (!rc) memcpy(g.recent, g.dirty, g.words * 8);
	} else {
		struct harvest_ctx hc = {.set = g.recent, .cls = g.peeks + 1, .t = t0};
		rc = scan_written(0, g.npages, 1, harvest_run, &hc);
	}
	if (rc) return rc;
	uint64_t *d = g.carry; /* becomes the interval's set D */
	for (size_t i = 0; i < g.words; i++) {
		d[i] |= g.recent[i];
		g.acc[i] |= d[i];
		if (g.zero) g.zero[i] &= ~d[i];
	}
	memcpy(g.f_dirty, d, g.bm_bytes);
	memcpy(g.f_acc, g.acc, g.bm_bytes);
	memcpy(g.f_recent, g.recent, g.bm_bytes);
	memcpy(g.f_order, g.order, g.norder * sizeof(struct orec));
	h->dirty = bcount(d, g.words);
	h->accumulated = bcount(g.acc, g.words);
	h->recent = bcount(g.recent, g.words);
	h->orders = g.norder;
	h->marked = g.marked;
	h->start = g.interval_start;
	h->end = now_ns();
	memset(g.carry, 0, g.words * 8);
	memset(g.dirty, 0, g.words * 8);
	memset(g.seen, 0, g.words * 8);
	g.norder = 0;
	g.peeks = 0;
	g.marked = 0;
	g.interval_start = h->end;
	timer_add(&g.t_harvest, h->end - t0);
	return 0;
}

static void out_harvest(struct out *o, const struct harvest_out *h) {
	outf(o,
	     "\"dirty\":%zu,\"accumulated\":%zu,\"orders\":%zu,\"recent\":%zu,\"marked\":%s,"
	     "\"exact\":%s,\"startNs\":%llu,\"endNs\":%llu",
	     h->dirty, h->accumulated, h->orders, h->recent, h->marked ? "true" : "false",
	     g.mode == MODE_SYNC ? "true" : "false", (unsigned long long)h->start,
	     (unsigned long long)h->end);
}

static int cmd_harvest(struct out *o, char *msg, size_t msgcap) {
	if (!g.armed) FAIL(EINVAL, "harvest before arm");
	struct harvest_out h;
	pthread_mutex_lock(&g.mu);
	int rc = harvest_locked(&h);
	int e = errno;
	pthread_mutex_unlock(&g.mu);
	if (rc) FAIL(e, "%s: %s", g.mode == MODE_SYNC ? "re-protect" : "PAGEMAP_SCAN", strerror(e));
	outf(o, "{");
	out_harvest(o, &h);
	outf(o, ",\"ns\":%llu}", (unsigned long long)g.t_harvest.last);
	return 0;
}

/* Starts the pre-pause window: what was written so far goes into carry and is
 * re-protected, so the next harvest's R holds only what is written from now on. */
static int cmd_mark(struct out *o, char *msg, size_t msgcap) {
	if (!g.armed) FAIL(EINVAL, "mark before arm");
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&g.mu);
	int rc;
	size_t folded = 0;
	if (g.mode == MODE_SYNC) {
		for (size_t i = 0; i < g.words; i++) g.carry[i] |= g.dirty[i];
		folded = bcount(g.dirty, g.words);
		rc = reprotect_sync();
		if (!rc) memset(g.dirty, 0, g.words * 8);
	} else {
		struct harvest_ctx hc = {.set = g.carry, .cls = ++g.peeks, .t = t0};
		rc = scan_written(0, g.npages, 1, harvest_run, &hc);
		folded = bcount(g.carry, g.words);
	}
	int e = errno;
	if (!rc) g.marked = 1;
	uint64_t dt = now_ns() - t0;
	pthread_mutex_unlock(&g.mu);
	if (rc) FAIL(e, "mark: %s", strerror(e));
	outf(o, "{\"written\":%zu,\"atNs\":%llu,\"ns\":%llu}", folded, (unsigned long long)t0,
	     (unsigned long long)dt);
	return 0;
}

static int cmd_peek(struct out *o, char *msg, size_t msgcap) {
	if (!g.armed) FAIL(EINVAL, "peek before arm");
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&g.mu);
	size_t fresh = 0, written;
	uint32_t cls = 0;
	if (g.mode == MODE_ASYNC) {
		struct harvest_ctx h = {.set = NULL, .cls = ++g.peeks, .t = t0};
		if (scan_written(0, g.npages, 0, harvest_run, &h)) {
			int e = errno;
			g.peeks--;
			pthread_mutex_unlock(&g.mu);
			FAIL(e, "PAGEMAP_SCAN: %s", strerror(e));
		}
		fresh = h.fresh;
		cls = g.peeks;
		written = bcount(g.seen, g.words);
	} else {
		written = bcount(g.dirty, g.words);
	}
	uint64_t dt = now_ns() - t0;
	timer_add(&g.t_peek, dt);
	pthread_mutex_unlock(&g.mu);
	outf(o, "{\"written\":%zu,\"new\":%zu,\"class\":%u,\"atNs\":%llu,\"ns\":%llu}", written, fresh,
	     cls, (unsigned long long)t0, (unsigned long long)dt);
	return 0;
}

static int cmd_confirm(struct out *o) {
	pthread_mutex_lock(&g.mu);
	size_t n = bcount(g.acc, g.words);
	memset(g.acc, 0, g.words * 8);
	memset(g.f_acc, 0, g.bm_bytes);
	pthread_mutex_unlock(&g.mu);
	outf(o, "{\"cleared\":%zu}", n);
	return 0;
}

static const uint64_t *set_words(void) { return (const uint64_t *)g.f_set; }
/* The set file is g.bm_bytes long (a multiple of 4); read its last word safely. */
static uint64_t *set_copy(void) {
	uint64_t *s = calloc(g.words, 8);
	if (s) memcpy(s, set_words(), g.bm_bytes);
	if (s && g.npages % 64) s[g.words - 1] &= (1ull << (g.npages % 64)) - 1;
	return s;
}

/* Protects the pages of s for COW (g.mu held, no COW phase pending). On failure
 * nothing stays pending: pages already zapped fault in as MINOR and are just
 * mapped back. */
static int protect_locked(const uint64_t *s, size_t *protected_out) {
	int rc = 0;
	size_t n = 0;
	if (g.mode == MODE_ASYNC) {
		/* Zapping a PTE that is not write-protected would forget that the page
		 * was written this interval: keep those in carry first. */
		size_t lo = bnext(s, 0, g.npages), hi = lo;
		for (size_t p = lo; p < g.npages; p = bnext(s, p + 1, g.npages)) hi = p + 1;
		if (lo < g.npages) {
			uint64_t *w = calloc(g.words, 8);
			rc = w ? scan_written(lo, hi - lo, 0, mark_run, w) : (errno = ENOMEM, -1);
			for (size_t i = 0; !rc && i < g.words; i++) {
				g.carry[i] |= w[i] & s[i];
				if (g.zero) g.zero[i] &= ~w[i];
			}
			free(w);
		}
	}
	for (size_t p = bnext(s, 0, g.npages); !rc && p < g.npages;) {
		size_t e = bnext_clear(s, p, g.npages);
		for (size_t q = p; q < e; q++) bs(g.pending, q);
		n += e - p;
		if (g.mode == MODE_ASYNC) {
			rc = madvise(g.base + p * g.psz, (e - p) * g.psz, MADV_DONTNEED);
		} else {
			/* Pages unprotected this interval are exactly the dirty ones. */
			for (size_t q = bnext(g.dirty, p, e); !rc && q < e;) {
				size_t qe = bnext_clear(g.dirty, q, e);
				rc = wp_range(q, qe - q, 1);
				q = bnext(g.dirty, qe, e);
			}
		}
		p = bnext(s, e, g.npages);
	}
	if (rc) {
		int e = errno;
		memset(g.pending, 0, g.words * 8);
		g.npending = 0;
		errno = e;
		return rc;
	}
	g.npending = n;
	*protected_out = n;
	return 0;
}

static int cmd_protect(struct out *o, char *msg, size_t msgcap) {
	if (!g.armed) FAIL(EINVAL, "protect before arm");
	uint64_t *s = set_copy();
	if (!s) FAIL(ENOMEM, "protect: out of memory");
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&g.mu);
	if (g.npending) {
		pthread_mutex_unlock(&g.mu);
		free(s);
		FAIL(EBUSY, "%llu pages of the previous COW phase are not saved yet",
		     (unsigned long long)g.npending);
	}
	size_t n = 0;
	int rc = protect_locked(s, &n);
	int e = errno;
	uint64_t dt = now_ns() - t0;
	if (!rc) timer_add(&g.t_protect, dt);
	pthread_mutex_unlock(&g.mu);
	free(s);
	if (rc) FAIL(e, "protect: %s", strerror(e));
	outf(o, "{\"protected\":%zu,\"ns\":%llu}", n, (unsigned long long)dt);
	return 0;
}

struct copy_out {
	size_t copied, skipped, remaining;
	int map_back_errno;
};

/* Copies the pages of s into staging (g.mu held). Pending pages stop being
 * protected: in async mode they are mapped back write-protected, so tracking
 * goes on. */
static void copy_locked(const uint64_t *s, uint32_t flags, struct copy_out *c) {
	int rc = 0;
	size_t run_lo = 0, run_n = 0; /* pending pages to map back (async) */
	for (size_t p = bnext(s, 0, g.npages); p < g.npages; p = bnext(s, p + 1, g.npages)) {
		int pend = bt(g.pending, p);
		if (!pend && (flags & COPY_ONLY_PROTECTED)) {
			c->skipped++;
			continue;
		}
		if (!g.nfree) {
			c->remaining++;
			continue;
		}
		stage_fill(g.free_stack[--g.nfree], p, SRC_COPY);
		c->copied++;
		if (!pend) continue;
		bc(g.pending, p);
		g.npending--;
		/* A zero page may be a hole: there is nothing to map back (CONTINUE would fail). */
		if (g.mode != MODE_ASYNC || is_zero(p)) continue;
		if (run_n && run_lo + run_n == p) {
			run_n++;
			continue;
		}
		if (run_n && !rc) rc = continue_run(run_lo, run_n, 1);
		run_lo = p;
		run_n = 1;
	}
	if (run_n && !rc) rc = continue_run(run_lo, run_n, 1);
	c->map_back_errno = rc ? errno : 0;
}

static int cmd_copy(const uint8_t *in, size_t n, struct out *o, char *msg, size_t msgcap) {
	uint32_t flags = 0;
	if (n >= 4) memcpy(&flags, in, 4);
	uint64_t *s = set_copy();
	if (!s) FAIL(ENOMEM, "copy: out of memory");
	uint64_t t0 = now_ns();
	struct copy_out c = {0};
	pthread_mutex_lock(&g.mu);
	copy_locked(s, flags, &c);
	uint64_t dt = now_ns() - t0;
	timer_add(&g.t_copy, dt);
	uint64_t pending = g.npending;
	pthread_mutex_unlock(&g.mu);
	free(s);
	/* A failed map-back only costs a MINOR fault later; the copy itself is done. */
	if (c.map_back_errno) LOG("copy: map back: %s\n", strerror(c.map_back_errno));
	outf(o, "{\"copied\":%zu,\"skipped\":%zu,\"remaining\":%zu,\"pending\":%llu,\"ns\":%llu}",
	     c.copied, c.skipped, c.remaining, (unsigned long long)pending, (unsigned long long)dt);
	return 0;
}

/* ---- the background saver: after cont it copies every page still protected
 * into staging (pages of the "first" set before the others), in word-sized
 * batches under g.mu, and maps them back write-protected. When it is done, an
 * async-mode peek records which pages the guest wrote during the save (the
 * early-write class the predictor learns from). */
/* Saves the pending pages of one bitmap word (masked). g.mu is taken per page, so a
 * COW fault waits for at most one page copy, never for a whole batch. */
static size_t saver_word(size_t w, uint64_t mask) {
	size_t staged = 0, runs_lo[64], runs_n[64], nruns = 0;
	uint64_t bits = __atomic_load_n(&g.pending[w], __ATOMIC_RELAXED) & mask;
	while (bits && !atomic_load(&g.stopping)) {
		size_t p = w * 64 + (size_t)__builtin_ctzll(bits);
		bits &= bits - 1;
		pthread_mutex_lock(&g.mu);
		/* Bounded in flight: the saver leaves the slots beyond its budget to COW faults, so
		 * staging (the checkpoint's memory overhead) stays small while the client drains it. */
		uint32_t cap = g.save_max_in_use && g.save_max_in_use < g.nslots ? g.save_max_in_use : g.nslots;
		if (stage_used() >= cap) {
			atomic_store(&g.waiting_space, 1);
			while (stage_used() >= cap && bt(g.pending, p) && !atomic_load(&g.stopping))
				pthread_cond_wait(&g.space, &g.mu);
			atomic_store(&g.waiting_space, 0);
		}
		/* A COW fault may have saved p meanwhile. */
		int take = bt(g.pending, p) && g.nfree, map_back = take && !is_zero(p);
		if (take) {
			stage_fill(g.free_stack[--g.nfree], p, SRC_COPY);
			bc(g.pending, p);
			g.npending--;
			g.save_copied++;
		}
		pthread_mutex_unlock(&g.mu);
		if (!take) continue;
		staged++;
		if (!map_back) continue;
		if (nruns && runs_lo[nruns - 1] + runs_n[nruns - 1] == p) {
			runs_n[nruns - 1]++;
		} else {
			runs_lo[nruns] = p;
			runs_n[nruns++] = 1;
		}
	}
	for (size_t i = 0; g.mode == MODE_ASYNC && i < nruns; i++)
		if (continue_run(runs_lo[i], runs_n[i], 1)) LOG("saver: map back: %s\n", strerror(errno));
	return staged;
}

static void *saver_main(void *arg) {
	(void)arg;
	for (int pass = g.first ? 0 : 1; pass < 2 && !atomic_load(&g.stopping); pass++)
		for (size_t w = 0; w < g.words && !atomic_load(&g.stopping); w++)
			saver_word(w, pass == 0 ? g.first[w] : ~0ull);
	/* The early-write window is at least save_min_ns long, so what it records does not
	 * shrink to nothing when there was little to save. */
	for (uint64_t t; !atomic_load(&g.stopping) && (t = now_ns()) < g.save_start_ns + g.save_min_ns;) {
		uint64_t left = g.save_start_ns + g.save_min_ns - t;
		struct timespec ts = {0, (long)(left < 5000000u ? left : 5000000u)};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&g.mu);
	uint64_t end = now_ns();
	if (g.mode == MODE_ASYNC && g.armed) {
		struct harvest_ctx hc = {.set = NULL, .cls = ++g.peeks, .t = end};
		if (scan_written(0, g.npages, 0, harvest_run, &hc)) {
			LOG("saver: end-of-save peek: %s\n", strerror(errno));
			g.peeks--;
		}
	}
	g.save_end_ns = end;
	g.save_end_class = g.mode == MODE_ASYNC ? g.peeks : 0;
	free(g.first);
	g.first = NULL;
	pthread_mutex_unlock(&g.mu);
	atomic_store(&g.saving, 0);
	return NULL;
}

/* Joins a saver that has finished (the caller checked g.saving is 0). */
static void join_saver(void) {
	if (!g.have_saver) return;
	pthread_join(g.saver, NULL);
	g.have_saver = 0;
}

static int cmd_save(const uint8_t *in, size_t n, struct out *o, char *msg, size_t msgcap) {
	uint32_t flags = 0, min_us = 0, max_in_use = 0;
	if (n >= 4) memcpy(&flags, in, 4);
	if (n >= 8) memcpy(&min_us, in + 4, 4);
	if (n >= 12) memcpy(&max_in_use, in + 8, 4);
	if (atomic_load(&g.saving)) FAIL(EBUSY, "save: the saver is still running");
	join_saver();
	uint64_t *first = NULL;
	if ((flags & SAVE_FIRST) && !(first = set_copy())) FAIL(ENOMEM, "save: out of memory");
	pthread_mutex_lock(&g.mu);
	g.first = first;
	g.save_start_ns = now_ns();
	g.save_end_ns = 0;
	g.save_copied = 0;
	g.save_min_ns = (uint64_t)min_us * 1000u;
	g.save_max_in_use = max_in_use;
	uint64_t pending = g.npending;
	pthread_mutex_unlock(&g.mu);
	atomic_store(&g.saving, 1);
	if (start_thread(&g.saver, saver_main)) {
		int e = errno;
		atomic_store(&g.saving, 0);
		pthread_mutex_lock(&g.mu);
		free(g.first);
		g.first = NULL;
		pthread_mutex_unlock(&g.mu);
		FAIL(e, "save: cannot start the saver thread: %s", strerror(e));
	}
	g.have_saver = 1;
	outf(o, "{\"pending\":%llu,\"startNs\":%llu}", (unsigned long long)pending,
	     (unsigned long long)g.save_start_ns);
	return 0;
}

static int cmd_save_status(struct out *o) {
	int saving = atomic_load(&g.saving);
	pthread_mutex_lock(&g.mu);
	outf(o,
	     "{\"saving\":%s,\"pending\":%llu,\"copied\":%llu,\"inUse\":%u,\"startNs\":%llu,"
	     "\"endNs\":%llu,\"endClass\":%u}",
	     saving ? "true" : "false", (unsigned long long)g.npending,
	     (unsigned long long)g.save_copied, stage_used(), (unsigned long long)g.save_start_ns,
	     (unsigned long long)(saving ? 0 : g.save_end_ns), saving ? 0 : g.save_end_class);
	pthread_mutex_unlock(&g.mu);
	return 0;
}

static size_t count_runs(const uint64_t *m) {
	size_t runs = 0;
	for (size_t p = bnext(m, 0, g.npages); p < g.npages; p = bnext(m, bnext_clear(m, p, g.npages), g.npages))
		runs++;
	return runs;
}

/* Adds to m the pages right after each run of r: for a run of n pages, the next
 * ceil(n * factor) pages (a sweep that wrote the run goes on past its end). */
static void add_fronts(uint64_t *m, const uint64_t *r, double factor) {
	for (size_t p = bnext(r, 0, g.npages); p < g.npages;) {
		size_t e = bnext_clear(r, p, g.npages);
		size_t ahead = (size_t)((double)(e - p) * factor + 0.999);
		size_t stop = e + ahead < g.npages ? e + ahead : g.npages;
		for (size_t q = e; q < stop; q++) bs(m, q);
		p = bnext(r, e, g.npages);
	}
}

/* The whole pause in one call: end the interval (or arm on the first
 * checkpoint), choose what is copied now and what is protected for the saver,
 * copy, protect. Request: u32 flags (CP_*), u32 front (extrapolation factor ×
 * 1000), u32 fallback (‰ of the save set: when the predicted part reaches it,
 * copy everything). The copied set is published in the "copied" file. */
static int cmd_checkpoint(const uint8_t *in, size_t n, struct out *o, char *msg, size_t msgcap) {
	if (n < 12) FAIL(EINVAL, "checkpoint: short request");
	uint32_t flags, front, fallback;
	memcpy(&flags, in, 4);
	memcpy(&front, in + 4, 4);
	memcpy(&fallback, in + 8, 4);
	uint32_t kinds = flags & (CP_COPY_ALL | CP_PROTECT_ALL | CP_PREDICT);
	if (kinds != CP_COPY_ALL && kinds != CP_PROTECT_ALL && kinds != CP_PREDICT)
		FAIL(EINVAL, "checkpoint: exactly one of copy-all, protect-all, predict (flags 0x%x)", flags);
	if (atomic_load(&g.saving)) FAIL(EBUSY, "checkpoint: the saver of the previous checkpoint is still running");
	join_saver();
	uint64_t *set = (flags & (CP_PREDICT | CP_ADD_SET)) ? set_copy() : NULL;
	uint64_t *save = calloc(g.words, 8), *copy = calloc(g.words, 8), *prot = calloc(g.words, 8);
	if (!save || !copy || !prot || ((flags & (CP_PREDICT | CP_ADD_SET)) && !set)) {
		free(set), free(save), free(copy), free(prot);
		FAIL(ENOMEM, "checkpoint: out of memory");
	}
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&g.mu);
	if (g.npending) {
		pthread_mutex_unlock(&g.mu);
		free(set), free(save), free(copy), free(prot);
		FAIL(EBUSY, "%llu pages of the previous COW phase are not saved yet",
		     (unsigned long long)g.npending);
	}
	int armed_now = !g.armed, rc;
	struct harvest_out h = {0};
	rc = armed_now ? arm_locked() : harvest_locked(&h);
	if (rc) {
		int e = errno;
		pthread_mutex_unlock(&g.mu);
		free(set), free(save), free(copy), free(prot);
		FAIL(e, "checkpoint: %s: %s", armed_now ? "arm" : "harvest", strerror(e));
	}
	uint64_t t1 = now_ns();
	if ((flags & CP_FULL) || armed_now) {
		memset(save, 0xff, g.words * 8);
		if (g.npages % 64) save[g.words - 1] = (1ull << (g.npages % 64)) - 1;
	} else {
		if (flags & CP_DIRTY_ONLY) memcpy(save, g.f_dirty, g.bm_bytes); /* D, as just published */
		else memcpy(save, g.acc, g.words * 8);
	}
	if (flags & CP_ADD_SET)
		for (size_t i = 0; i < g.words; i++) save[i] |= set[i];
	size_t nsave = bcount(save, g.words), npredicted = 0, nwindow = 0;
	int fell_back = 0;
	if (flags & CP_COPY_ALL) {
		memcpy(copy, save, g.words * 8);
	} else if (flags & CP_PROTECT_ALL) {
		memcpy(prot, save, g.words * 8);
	} else {
		/* P = the caller's history-based set ∪ the pre-pause window ∪ its fronts. */
		uint64_t *pred = set;
		if (h.marked) {
			nwindow = h.recent;
			for (size_t i = 0; i < g.words; i++) pred[i] |= g.recent[i];
			if (front) add_fronts(pred, g.recent, front / 1000.0);
		}
		for (size_t i = 0; i < g.words; i++) copy[i] = save[i] & pred[i];
		npredicted = bcount(copy, g.words);
		if (nsave && (uint64_t)npredicted * 1000 >= (uint64_t)fallback * nsave) {
			memcpy(copy, save, g.words * 8);
			fell_back = 1;
		}
		for (size_t i = 0; i < g.words; i++) prot[i] = save[i] & ~copy[i];
	}
	uint64_t t2 = now_ns(), copy_ns, protect_ns;
	struct copy_out c = {0};
	size_t nprot = 0;
	/* Zapping costs per call (a TLB shootdown) far more than per page, and a prediction
	 * punches holes into the save set's runs. When the protected part has many more runs
	 * than the whole save set (async mode), zap the whole set in its few runs and map the
	 * predicted pages back as they are copied (UFFDIO_CONTINUE needs no shootdown). */
	if (g.mode == MODE_ASYNC && count_runs(save) * 2 < count_runs(prot)) {
		rc = protect_locked(save, &nprot);
		uint64_t t3 = now_ns();
		/* Predicted pages that do not fit in staging stay protected: the saver takes them. */
		if (!rc) copy_locked(copy, 0, &c);
		nprot -= c.copied;
		c.remaining = 0;
		protect_ns = t3 - t2;
		copy_ns = now_ns() - t3;
	} else {
		copy_locked(copy, 0, &c);
		uint64_t t3 = now_ns();
		if (!c.remaining) rc = protect_locked(prot, &nprot);
		copy_ns = t3 - t2;
		protect_ns = now_ns() - t3;
	}
	timer_add(&g.t_copy, copy_ns);
	if (!rc) timer_add(&g.t_protect, protect_ns);
	uint64_t t4 = now_ns();
	int e = errno;
	memcpy(g.f_copied, copy, g.bm_bytes);
	pthread_mutex_unlock(&g.mu);
	free(set), free(save), free(copy), free(prot);
	if (c.map_back_errno) LOG("checkpoint: map back: %s\n", strerror(c.map_back_errno));
	if (c.remaining)
		FAIL(ENOSPC, "checkpoint: staging full: %zu of %zu pages not copied (attach with more slots)",
		     c.remaining, c.remaining + c.copied);
	if (rc) FAIL(e, "checkpoint: protect: %s", strerror(e));
	outf(o, "{\"armed\":%s,", armed_now ? "true" : "false");
	if (!armed_now) {
		out_harvest(o, &h);
		outf(o, ",");
	}
	outf(o,
	     "\"toSave\":%zu,\"predicted\":%zu,\"window\":%zu,\"fellBack\":%s,\"copied\":%zu,"
	     "\"protected\":%zu,\"harvestNs\":%llu,\"planNs\":%llu,\"copyNs\":%llu,"
	     "\"protectNs\":%llu,\"ns\":%llu}",
	     nsave, npredicted, nwindow, fell_back ? "true" : "false", c.copied, nprot,
	     (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), (unsigned long long)copy_ns,
	     (unsigned long long)protect_ns, (unsigned long long)(t4 - t0));
	return 0;
}

static void release_slot(uint32_t s, size_t *released) {
	if (s >= g.nslots || !g.table[s].state) return;
	__atomic_store_n(&g.table[s].state, 0, __ATOMIC_RELEASE);
	g.free_stack[g.nfree++] = s;
	(*released)++;
}

static int cmd_release(const uint8_t *in, size_t n, int by_set, struct out *o, char *msg,
		       size_t msgcap) {
	size_t released = 0;
	uint64_t *s = NULL;
	if (by_set && !(s = set_copy())) FAIL(ENOMEM, "release: out of memory");
	pthread_mutex_lock(&g.mu);
	if (by_set) {
		for (uint32_t i = 0; i < g.nslots; i++)
			if (g.table[i].state && g.table[i].page < g.npages && bt(s, g.table[i].page))
				release_slot(i, &released);
	} else {
		for (size_t i = 0; i + 4 <= n; i += 4) {
			uint32_t sl;
			memcpy(&sl, in + i, 4);
			release_slot(sl, &released);
		}
	}
	if (released) pthread_cond_broadcast(&g.space);
	uint32_t used = stage_used();
	pthread_mutex_unlock(&g.mu);
	free(s);
	outf(o, "{\"released\":%zu,\"inUse\":%u}", released, used);
	return 0;
}

static void out_hist(struct out *o, const char *name, const struct hist *h) {
	outf(o,
	     "\"%s\":{\"count\":%llu,\"totalNs\":%llu,\"p50Ns\":%llu,\"p90Ns\":%llu,\"p99Ns\":%llu,"
	     "\"maxNs\":%llu},",
	     name, (unsigned long long)h->n, (unsigned long long)h->total,
	     (unsigned long long)hist_q(h, 0.5), (unsigned long long)hist_q(h, 0.9),
	     (unsigned long long)hist_q(h, 0.99), (unsigned long long)h->max);
}
static void out_timer(struct out *o, const char *name, const struct timer *t) {
	outf(o, "\"%s\":{\"count\":%llu,\"totalNs\":%llu,\"lastNs\":%llu},", name,
	     (unsigned long long)t->n, (unsigned long long)t->total, (unsigned long long)t->last);
}

static int cmd_stats(struct out *o) {
	pthread_mutex_lock(&g.mu);
	outf(o, "{\"mode\":\"%s\",\"armed\":%s,\"failed\":%s,\"pageCount\":%zu,",
	     g.mode ? "async" : "sync", g.armed ? "true" : "false",
	     atomic_load(&g.failed) ? "true" : "false", g.npages);
	out_hist(o, "trackingFaults", &g.h_track);
	out_hist(o, "cowFaults", &g.h_cow);
	outf(o, "\"stagingWaits\":{\"count\":%llu,\"totalNs\":%llu},", (unsigned long long)g.wait_n,
	     (unsigned long long)g.wait_ns);
	outf(o,
	     "\"staging\":{\"slots\":%u,\"inUse\":%u,\"peak\":%u,\"bytesInUse\":%zu,"
	     "\"peakBytes\":%zu},",
	     g.nslots, stage_used(), g.peak_used, (size_t)stage_used() * g.psz,
	     (size_t)g.peak_used * g.psz);
	outf(o, "\"pending\":%llu,\"reprotectWhole\":%llu,\"reprotectRuns\":%llu,",
	     (unsigned long long)g.npending, (unsigned long long)g.reprotect_whole,
	     (unsigned long long)g.reprotect_runs);
	out_timer(o, "arm", &g.t_arm);
	out_timer(o, "harvest", &g.t_harvest);
	out_timer(o, "peek", &g.t_peek);
	out_timer(o, "protect", &g.t_protect);
	out_timer(o, "copy", &g.t_copy);
	outf(o, "\"cowFaultsOnRead\":%llu,\"minorFaultsUnprotected\":%llu}", (unsigned long long)g.cow_reads,
	     (unsigned long long)g.minor_plain);
	pthread_mutex_unlock(&g.mu);
	return 0;
}

static int cmd_mode(const uint8_t *in, size_t n, struct out *o, char *msg, size_t msgcap) {
	uint32_t mode;
	if (n < 4) FAIL(EINVAL, "mode: short request");
	memcpy(&mode, in, 4);
	if (mode > MODE_ASYNC) FAIL(EINVAL, "unknown mode %u", mode);
	if (mode != (uint32_t)g.mode) {
		uint64_t avail = probe_features();
		uint64_t want = mode_features((int)mode, avail);
		if ((avail & want) != want)
			FAIL(ENOTSUP, "kernel userfaultfd lacks features 0x%llx for %s mode",
			     (unsigned long long)(want & ~avail), mode ? "async" : "sync");
		if (g.npending || atomic_load(&g.saving))
			FAIL(EBUSY, "COW pages pending; finish saving before switching");
		join_saver();
		pthread_mutex_lock(&g.mu);
		int rc = fold_current();
		/* An async-mode peek log would be reported again by sync faults. */
		memset(g.seen, 0, g.words * 8);
		memset(g.dirty, 0, g.words * 8);
		g.norder = 0;
		g.peeks = 0;
		g.marked = 0;
		pthread_mutex_unlock(&g.mu);
		if (rc) FAIL(errno, "mode: scan before switch: %s", strerror(errno));
		stop_handler();
		free(g.zero); /* sync faults see first writes to holes: no zero set */
		g.zero = NULL;
		if (populate_for((int)mode, avail) || start_handler((int)mode)) {
			int e = errno;
			detach_all();
			FAIL(e, "mode switch: re-register guest RAM: %s (detached)", strerror(e));
		}
		if ((g.armed || mode == MODE_ASYNC) && wp_range(0, g.npages, 1)) {
			int e = errno;
			detach_all();
			FAIL(e, "mode switch: write-protect: %s (detached)", strerror(e));
		}
		if (mode == MODE_ASYNC && track_holes()) {
			int e = errno ? errno : ENOMEM;
			detach_all();
			FAIL(e, "mode switch: find never-populated pages: %s (detached)", strerror(e));
		}
	}
	outf(o, "{\"mode\":\"%s\"}", g.mode ? "async" : "sync");
	return 0;
}

static int dispatch_attached(uint16_t op, const uint8_t *in, size_t n, struct out *o, char *msg,
			     size_t msgcap) {
	switch (op) {
	case OP_MODE: return cmd_mode(in, n, o, msg, msgcap);
	case OP_ARM: return cmd_arm(o, msg, msgcap);
	case OP_HARVEST: return cmd_harvest(o, msg, msgcap);
	case OP_PEEK: return cmd_peek(o, msg, msgcap);
	case OP_CONFIRM: return cmd_confirm(o);
	case OP_PROTECT: return cmd_protect(o, msg, msgcap);
	case OP_COPY: return cmd_copy(in, n, o, msg, msgcap);
	case OP_RELEASE: return cmd_release(in, n, 0, o, msg, msgcap);
	case OP_RELEASE_SET: return cmd_release(in, n, 1, o, msg, msgcap);
	case OP_STATS: return cmd_stats(o);
	case OP_MARK: return cmd_mark(o, msg, msgcap);
	case OP_CHECKPOINT: return cmd_checkpoint(in, n, o, msg, msgcap);
	case OP_SAVE: return cmd_save(in, n, o, msg, msgcap);
	case OP_SAVE_STATUS: return cmd_save_status(o);
	case OP_DETACH:
		detach_all();
		outf(o, "{\"detached\":true}");
		return 0;
	}
	FAIL(ENOSYS, "unknown operation %u", op);
}

static int dispatch(uint16_t op, const uint8_t *in, size_t n, struct out *o, char *msg,
		    size_t msgcap) {
	if (op == OP_HELLO) {
		outf(o, "{\"agent\":\"vpc-dirty-log\",\"protocol\":%d,\"pid\":%d,\"availableFeatures\":%llu,"
			"\"attached\":%s}",
		     PROTO_VERSION, (int)getpid(), (unsigned long long)probe_features(),
		     g.attached ? "true" : "false");
		return 0;
	}
	if (op == OP_ATTACH) return cmd_attach(in, n, o, msg, msgcap);
	if (op == OP_LAZY_LOAD || op == OP_LAZY_STATUS) {
		int e = lazy_command(op, in, n, o->buf + o->len, o->cap - o->len, msg, msgcap);
		if (!e) o->len += strlen(o->buf + o->len);
		return e;
	}
	if (op >= OP_COUNT) FAIL(ENOSYS, "unknown operation %u", op);
	if (!g.attached) FAIL(ENOTCONN, "not attached");
	if (atomic_load(&g.failed) && op != OP_DETACH && op != OP_STATS)
		FAIL(EIO, "fault handler failed; tracking abandoned, detach and attach again");
	int e = dispatch_attached(op, in, n, o, msg, msgcap);
	/* The watchdog may drop the userfaultfd while the command runs; its errors
	 * (ENOTTY, EBADF from /dev/null) would hide why tracking stopped. */
	if (e && atomic_load(&g.failed) && op != OP_DETACH)
		FAIL(EIO, "fault handler failed; tracking abandoned, detach and attach again");
	return e;
}

/* ---- control thread: frames are u32 len | u32 id | u16 op | u16 flags | body */
static int read_full(int fd, void *buf, size_t n) {
	uint8_t *b = buf;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r == 0) return -1;
		if (r < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}
static int write_full(int fd, const void *buf, size_t n) {
	const uint8_t *b = buf;
	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void json_escape(struct out *o, const char *s) {
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') outf(o, "\\%c", c);
		else if (c < 0x20) outf(o, "\\u%04x", c);
		else outf(o, "%c", c);
	}
}

static void serve(int fd) {
	static char body[1 << 16];
	for (;;) {
		uint32_t len;
		if (read_full(fd, &len, 4) || len < 8 || len > MAX_FRAME) return;
		uint8_t *req = malloc(len);
		if (!req || read_full(fd, req, len)) {
			free(req);
			return;
		}
		uint32_t id;
		uint16_t op;
		memcpy(&id, req, 4);
		memcpy(&op, req + 4, 2);
		struct out o = {.buf = body + 12, .cap = sizeof body - 12};
		char msg[512] = "";
		int e = dispatch(op, req + 8, len - 8, &o, msg, sizeof msg);
		free(req);
		if (!e && o.err) {
			e = EOVERFLOW;
			snprintf(msg, sizeof msg, "reply too large");
		}
		uint16_t flags = 0;
		if (e) {
			flags = 1;
			o.len = 0;
			o.err = 0;
			outf(&o, "{\"errno\":%d,\"op\":\"%s\",\"message\":\"", e,
			     op < OP_COUNT ? op_names[op] : "unknown");
			json_escape(&o, msg);
			outf(&o, "\"}");
		}
		uint32_t rlen = (uint32_t)(8 + o.len);
		memcpy(body, &rlen, 4);
		memcpy(body + 4, &id, 4);
		memcpy(body + 8, &op, 2);
		memcpy(body + 10, &flags, 2);
		if (write_full(fd, body, 12 + o.len)) return;
	}
}

static void *control_main(void *arg) {
	(void)arg;
	for (;;) {
		int c = accept4(g.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
			LOG("accept: %s; control thread ends\n", strerror(errno));
			return NULL;
		}
		serve(c);
		close(c);
		/* The client is gone: never leave guest RAM protected behind it. */
		if (g.attached) detach_all();
	}
}

/* ---- activation */
static int exe_matches(void) {
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) return 0;
	exe[n] = 0;
	const char *want = getenv("VPC_DIRTY_LOG_EXE");
	if (want && *want) {
		char real[PATH_MAX];
		return realpath(want, real) && strcmp(real, exe) == 0;
	}
	const char *b = strrchr(exe, '/');
	return strncmp(b ? b + 1 : exe, "qemu-system-", 12) == 0;
}

/* Drop this library from LD_PRELOAD so QEMU's own children (exec: migration
 * helpers, scripts) never load it. */
static void strip_preload(void) {
	Dl_info di;
	const char *pre = getenv("LD_PRELOAD");
	if (!pre || !dladdr((void *)strip_preload, &di) || !di.dli_fname) return;
	char self[PATH_MAX];
	if (!realpath(di.dli_fname, self)) return;
	char *copy = strdup(pre), *outp = calloc(1, strlen(pre) + 1);
	if (!copy || !outp) goto done;
	for (char *save = NULL, *tok = strtok_r(copy, ": ", &save); tok;
	     tok = strtok_r(NULL, ": ", &save)) {
		char real[PATH_MAX];
		if (realpath(tok, real) && strcmp(real, self) == 0) continue;
		if (*outp) strcat(outp, ":");
		strcat(outp, tok);
	}
	if (*outp) setenv("LD_PRELOAD", outp, 1);
	else unsetenv("LD_PRELOAD");
done:
	free(copy);
	free(outp);
}

__attribute__((constructor)) static void vpc_dirty_log_init(void) {
	const char *sock = getenv("VPC_DIRTY_LOG_SOCKET");
	if (!sock || !*sock || !exe_matches()) return;
	if (strlen(sock) >= sizeof g.sock - 16) {
		LOG("socket path too long: %s\n", sock);
		return;
	}
	snprintf(g.sock, sizeof g.sock, "%s", sock);
	unsetenv("VPC_DIRTY_LOG_SOCKET");
	strip_preload();
	char dir[sizeof g.sock];
	snprintf(dir, sizeof dir, "%s", g.sock);
	char *slash = strrchr(dir, '/');
	if (slash) *slash = 0;
	struct stat st;
	if (!slash || stat(*dir ? dir : "/", &st) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		LOG("%s must be in a directory owned by uid %d with mode 0700; agent inactive\n", g.sock,
		    (int)geteuid());
		g.sock[0] = 0;
		return;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, g.sock, strlen(g.sock) + 1);
	unlink(g.sock);
	mode_t old = umask(077);
	int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc || chmod(g.sock, 0600) || listen(fd, 1)) {
		LOG("listen on %s: %s; agent inactive\n", g.sock, strerror(errno));
		if (fd >= 0) close(fd);
		g.sock[0] = 0;
		return;
	}
	g.listen_fd = fd;
	pthread_t t;
	if (start_thread(&t, control_main)) {
		LOG("cannot start control thread; agent inactive\n");
		close(fd);
		unlink(g.sock);
		g.sock[0] = 0;
		return;
	}
	pthread_detach(t);
}

__attribute__((destructor)) static void vpc_dirty_log_fini(void) {
	if (!g.sock[0]) return;
	unlink(g.sock);
	const char *paths[] = {g.path_dirty, g.path_acc,    g.path_set,   g.path_order,
			       g.path_stage, g.path_recent, g.path_copied};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if (paths[i][0]) unlink(paths[i]);
}
