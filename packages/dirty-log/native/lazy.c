/* Lazy restore: QEMU starts on an empty (sparse) RAM file; every page is filled with its
 * committed content from the checkpoint store's page files, when the guest (or QEMU) first
 * touches it (userfaultfd MISSING fault) or when a background loader gets to it.
 *
 * The controller resolves the epoch chain once into a lazy map (FORMAT.md "Lazy map"): per
 * guest page, the store block holding its newest content, or zero; per block, its file,
 * offset, length and XXH64, and which guest page each of its slots fills. A block is read once,
 * verified, and all its live pages are copied in (UFFDIO_COPY): nothing is read twice, and a
 * block whose checksum fails is never served — its faulting threads stay blocked, so the VM
 * does not run on, and the status names the file and offset. When every block is in, the range
 * is unregistered: zero pages stay holes, as after an eager restore. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lazy.h"
#include "uffd_compat.h"

#define LAZY_MAGIC "VPCLAZY1"
#define LAZY_VERSION 1
#define LAZY_HEADER 80
#define LAZY_BLOCK 32
#define NO_PAGE 0xffffffffu
#define ZERO_PAGE_BLOCK 0xffffffffu
#define LOAD_NO_LOADER 1u /* request flag: faults only, no background loader (tests) */
#define STATUS_WAIT 1u    /* request flag: wait until done or failed (up to timeoutMs) */

#ifndef UFFD_FEATURE_MISSING_SHMEM
#define UFFD_FEATURE_MISSING_SHMEM (1 << 5)
#endif

struct lazy_block { /* FORMAT.md "Lazy map", 32 bytes */
	uint64_t offset, hash;
	uint32_t stored_bytes, file, first_slot;
	uint16_t page_count;
	uint8_t codec, reserved;
};

enum { BLOCK_TODO = 0, BLOCK_LOADING = 1, BLOCK_DONE = 2 };

static struct {
	int active;
	_Atomic int done, failed, stopping;
	uint8_t *base;
	size_t len, psz, npages;
	off_t file_off;
	int uffd, stop_efd, ram_fd, have_zeropage;
	/* the map */
	uint8_t *map;
	uint32_t nfiles, nblocks, nslots;
	char **paths;
	int *fds;
	struct lazy_block *blocks;
	uint32_t *slots, *page_block;
	uint8_t *state;
	uint32_t blocks_left;
	uint8_t *fault_buf, *loader_buf, *zero_buf;
	size_t buf_bytes;
	pthread_t handler, loader;
	int have_handler, have_loader;
	pthread_mutex_t mu;
	pthread_cond_t settled, block_cv;
	/* failure: the first block that failed */
	char error[512];
	const char *error_path;
	uint64_t error_offset;
	/* stats */
	uint64_t start_ns, done_ns, faults, zero_faults, fault_ns, fault_max_ns, first_fault_ns;
	uint64_t blocks_by_fault, blocks_by_loader, pages_by_fault, pages_by_loader, bytes_read;
	uint64_t prefilled, zero_pages, pending_faults;
} L = {.uffd = -1, .stop_efd = -1, .ram_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER,
       .settled = PTHREAD_COND_INITIALIZER, .block_cv = PTHREAD_COND_INITIALIZER};

static uint64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- XXH64 (the public algorithm: 4 lanes of 8-byte rounds, then a tail and an avalanche) */
#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const uint8_t *p) {
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline uint64_t xround(uint64_t acc, uint64_t in) { return rotl64(acc + in * P2, 31) * P1; }
static inline uint64_t xmerge(uint64_t h, uint64_t v) { return (h ^ xround(0, v)) * P1 + P4; }

uint64_t xxh64(const void *data, size_t len) {
	const uint8_t *p = data, *end = p + len;
	uint64_t h;
	if (len >= 32) {
		uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
		for (; p + 32 <= end; p += 32) {
			v1 = xround(v1, rd64(p));
			v2 = xround(v2, rd64(p + 8));
			v3 = xround(v3, rd64(p + 16));
			v4 = xround(v4, rd64(p + 24));
		}
		h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
		h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
	} else {
		h = P5;
	}
	h += len;
	for (; p + 8 <= end; p += 8) h = rotl64(h ^ xround(0, rd64(p)), 27) * P1 + P4;
	if (p + 4 <= end) {
		uint32_t v;
		memcpy(&v, p, 4);
		h = rotl64(h ^ (uint64_t)v * P1, 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++) h = rotl64(h ^ *p * P5, 11) * P1;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

/* ---- /proc/self/maps */
int find_shared_mapping(const char *real, uint8_t **base, size_t *len, off_t *file_off) {
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f) return -1;
	char line[PATH_MAX + 256];
	size_t best = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off;
		char perms[8];
		int pos = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &off, &pos) < 4 || !pos)
			continue;
		char *path = line + pos;
		path[strcspn(path, "\n")] = 0;
		if (strcmp(path, real) || perms[1] != 'w' || perms[3] != 's') continue;
		if (hi - lo > best) {
			best = hi - lo;
			*base = (uint8_t *)lo;
			*len = hi - lo;
			*file_off = (off_t)off;
		}
	}
	fclose(f);
	return best ? 0 : -1;
}

/* ---- filling pages (L.mu held) */

/* A page already present (QEMU wrote it before the range was registered) takes no MISSING
 * fault: it gets its committed content through the file instead. */
static int write_present(size_t q, const uint8_t *src) {
	off_t at = L.file_off + (off_t)(q * L.psz);
	return pwrite(L.ram_fd, src, L.psz, at) == (ssize_t)L.psz ? 0 : -1;
}

/* Copies `n` pages from `src` to guest pages q… (consecutive); wakes the faulting threads.
 * Pages already present are written through the file and counted in `present`. */
static int copy_run(size_t q, const uint8_t *src, size_t n, uint64_t *present) {
	while (n) {
		struct uffdio_copy c = {.dst = (uint64_t)(uintptr_t)(L.base + q * L.psz),
					.src = (uint64_t)(uintptr_t)src,
					.len = n * L.psz};
		if (!ioctl(L.uffd, UFFDIO_COPY, &c)) return 0;
		size_t done = c.copy > 0 ? (size_t)c.copy / L.psz : 0;
		if (errno == EEXIST && !done) {
			if (write_present(q, src)) return -1;
			(*present)++;
			done = 1;
		} else if (errno != EAGAIN && !done) {
			return -1;
		}
		q += done;
		src += done * L.psz;
		n -= done;
	}
	return 0;
}

static void fail_block(uint32_t b, const char *what) {
	const struct lazy_block *bl = &L.blocks[b];
	if (atomic_load(&L.failed)) return;
	L.error_path = L.paths[bl->file];
	L.error_offset = bl->offset;
	snprintf(L.error, sizeof L.error, "%s at offset %llu of %s (block of %u pages)", what,
		 (unsigned long long)bl->offset, L.error_path, bl->page_count);
	atomic_store(&L.failed, 1);
	pthread_cond_broadcast(&L.settled);
}

/* Every block is in: unregister (zero pages stay holes and read as zero from now on), which
 * also wakes any thread still queued, and let tracking register the range. */
static void finish_locked(void) {
	struct uffdio_range r = {.start = (uint64_t)(uintptr_t)L.base, .len = L.len};
	if (ioctl(L.uffd, UFFDIO_UNREGISTER, &r)) {
		snprintf(L.error, sizeof L.error, "unregister after the last block: %s", strerror(errno));
		atomic_store(&L.failed, 1);
	} else {
		L.done_ns = mono_ns();
		atomic_store(&L.done, 1);
	}
	atomic_store(&L.stopping, 1);
	uint64_t one = 1;
	if (write(L.stop_efd, &one, sizeof one) < 0) { /* the handler also polls with a timeout */
	}
	pthread_cond_broadcast(&L.settled);
}

/* Reads block `bl` into `buf` and checks its XXH64: 0, or -1 with `why` set. */
static int read_block(const struct lazy_block *bl, uint8_t *buf, char *why, size_t cap) {
	size_t got = 0;
	while (got < bl->stored_bytes) {
		ssize_t r = pread(L.fds[bl->file], buf + got, bl->stored_bytes - got, (off_t)(bl->offset + got));
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) {
			snprintf(why, cap, "%s", r < 0 ? strerror(errno) : "file ends inside the block");
			return -1;
		}
		got += (size_t)r;
	}
	if (xxh64(buf, got) != bl->hash) {
		snprintf(why, cap, "checksum mismatch");
		return -1;
	}
	return 0;
}

/* Copies the live pages of verified block `bl` from `buf` into guest RAM: how many, or -1. */
static long copy_block(const struct lazy_block *bl, const uint8_t *buf, uint64_t *present, char *why,
		       size_t cap) {
	long pages = 0;
	for (uint32_t k = 0; k < bl->page_count;) {
		uint32_t q = L.slots[bl->first_slot + k];
		if (q == NO_PAGE) {
			k++;
			continue;
		}
		uint32_t n = 1;
		while (k + n < bl->page_count && L.slots[bl->first_slot + k + n] == q + n) n++;
		if (copy_run(q, buf + (size_t)k * L.psz, n, present)) {
			snprintf(why, cap, "copy into guest page %u: %s", q, strerror(errno));
			return -1;
		}
		pages += n;
		k += n;
	}
	return pages;
}

/* Block b in guest RAM, once: 0 when it is in, -1 on failure (L.failed). Called with L.mu held;
 * releases it while reading and copying, so a fault on another block does not wait for this one,
 * and one on this block waits for it instead of reading it again. */
static int load_block(uint32_t b, uint8_t *buf, int by_fault) {
	while (L.state[b] == BLOCK_LOADING) pthread_cond_wait(&L.block_cv, &L.mu);
	if (L.state[b] == BLOCK_DONE) return 0;
	if (atomic_load(&L.failed)) return -1;
	const struct lazy_block *bl = &L.blocks[b];
	L.state[b] = BLOCK_LOADING;
	pthread_mutex_unlock(&L.mu);
	char why[128] = "";
	uint64_t present = 0;
	int read_ok = !read_block(bl, buf, why, sizeof why);
	long pages = read_ok ? copy_block(bl, buf, &present, why, sizeof why) : -1;
	pthread_mutex_lock(&L.mu);
	if (read_ok) L.bytes_read += bl->stored_bytes;
	L.prefilled += present;
	L.state[b] = pages < 0 ? BLOCK_TODO : BLOCK_DONE;
	pthread_cond_broadcast(&L.block_cv);
	if (pages < 0) {
		fail_block(b, why);
		return -1;
	}
	if (by_fault) {
		L.blocks_by_fault++;
		L.pages_by_fault += (uint64_t)pages;
	} else {
		L.blocks_by_loader++;
		L.pages_by_loader += (uint64_t)pages;
	}
	if (--L.blocks_left == 0) finish_locked();
	return 0;
}

static int zero_fill(size_t p) {
	if (L.have_zeropage) {
		struct uffdio_zeropage z = {.range = {.start = (uint64_t)(uintptr_t)(L.base + p * L.psz),
						      .len = L.psz}};
		if (!ioctl(L.uffd, UFFDIO_ZEROPAGE, &z) || errno == EEXIST) return 0;
		return -1;
	}
	uint64_t present = 0;
	return copy_run(p, L.zero_buf, 1, &present);
}

static void resolve_fault(uint64_t addr) {
	uint64_t t0 = mono_ns();
	size_t p = (size_t)((addr - (uint64_t)(uintptr_t)L.base) / L.psz);
	if (p >= L.npages) return;
	pthread_mutex_lock(&L.mu);
	if (!L.first_fault_ns) L.first_fault_ns = t0;
	L.faults++;
	int rc;
	if (L.page_block[p] == ZERO_PAGE_BLOCK) {
		L.zero_faults++;
		rc = zero_fill(p);
	} else {
		rc = load_block(L.page_block[p], L.fault_buf, 1);
	}
	if (!rc) {
		/* The loader may have filled the page after the fault was queued: the copy woke the
		 * thread then, but a wake costs nothing and covers every order. */
		struct uffdio_range r = {.start = (uint64_t)(uintptr_t)(L.base + p * L.psz), .len = L.psz};
		if (!atomic_load(&L.done)) ioctl(L.uffd, UFFDIO_WAKE, &r);
	} else {
		/* Unverified or uncopyable content is never served: the thread stays blocked. */
		L.pending_faults++;
	}
	uint64_t dt = mono_ns() - t0;
	L.fault_ns += dt;
	if (dt > L.fault_max_ns) L.fault_max_ns = dt;
	pthread_mutex_unlock(&L.mu);
}

static void *handler_main(void *arg) {
	(void)arg;
	struct uffd_msg msgs[32];
	struct pollfd pf[2] = {{.fd = L.uffd, .events = POLLIN}, {.fd = L.stop_efd, .events = POLLIN}};
	while (!atomic_load(&L.stopping)) {
		int n = poll(pf, 2, 200);
		if (n < 0 && errno != EINTR) break;
		if (n <= 0 || pf[1].revents) continue;
		if (!(pf[0].revents & POLLIN)) {
			if (pf[0].revents & (POLLERR | POLLNVAL)) break;
			continue;
		}
		ssize_t r = read(L.uffd, msgs, sizeof msgs);
		if (r <= 0) continue;
		for (size_t i = 0; i < (size_t)r / sizeof msgs[0]; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT) resolve_fault(msgs[i].arg.pagefault.address);
	}
	/* Finished: the range is unregistered, nothing can fault here any more. */
	if (atomic_load(&L.done)) {
		close(L.uffd);
		L.uffd = -1;
	}
	return NULL;
}

/* In map order (file order within each part); the lock is not held while a block is read and
 * copied, so a fault waits for the loader only when it touches the block being loaded. */
static void *loader_main(void *arg) {
	(void)arg;
	for (uint32_t b = 0; b < L.nblocks && !atomic_load(&L.stopping); b++) {
		pthread_mutex_lock(&L.mu);
		int rc = load_block(b, L.loader_buf, 0);
		pthread_mutex_unlock(&L.mu);
		if (rc) break;
	}
	return NULL;
}

static int start_thread(pthread_t *t, void *(*fn)(void *)) {
	sigset_t all, old;
	sigfillset(&all); /* QEMU relies on its signals reaching its own threads */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- the map */
static int read_map(const char *path, char *msg, size_t msgcap) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) FAIL(errno, "lazy map %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) || st.st_size < LAZY_HEADER) {
		close(fd);
		FAIL(EINVAL, "lazy map %s: shorter than its header", path);
	}
	L.map = malloc((size_t)st.st_size);
	size_t got = 0;
	while (L.map && got < (size_t)st.st_size) {
		ssize_t r = read(fd, L.map + got, (size_t)st.st_size - got);
		if (r <= 0) break;
		got += (size_t)r;
	}
	close(fd);
	if (!L.map || got != (size_t)st.st_size) FAIL(EIO, "lazy map %s: read failed", path);
	const uint8_t *m = L.map;
	uint32_t version, psz;
	uint64_t npages, files_off, blocks_off, slots_off, pages_off, bytes;
	memcpy(&version, m + 8, 4);
	memcpy(&psz, m + 12, 4);
	memcpy(&npages, m + 16, 8);
	memcpy(&L.nfiles, m + 24, 4);
	memcpy(&L.nblocks, m + 28, 4);
	memcpy(&L.nslots, m + 32, 4);
	memcpy(&files_off, m + 40, 8);
	memcpy(&blocks_off, m + 48, 8);
	memcpy(&slots_off, m + 56, 8);
	memcpy(&pages_off, m + 64, 8);
	memcpy(&bytes, m + 72, 8);
	if (memcmp(m, LAZY_MAGIC, 8) || version != LAZY_VERSION)
		FAIL(EINVAL, "lazy map %s: not a version %d lazy map", path, LAZY_VERSION);
	if (bytes != (uint64_t)st.st_size) FAIL(EINVAL, "lazy map %s: header says %llu bytes", path,
						 (unsigned long long)bytes);
	if (psz != L.psz || npages * psz != L.len)
		FAIL(EINVAL, "lazy map %s: %llu pages of %u bytes, guest RAM mapping is %zu bytes of pages of %zu",
		     path, (unsigned long long)npages, psz, L.len, L.psz);
	if (blocks_off + (uint64_t)L.nblocks * LAZY_BLOCK > bytes || slots_off + 4ull * L.nslots > bytes ||
	    pages_off + 4 * npages > bytes || files_off > bytes || (blocks_off | slots_off | pages_off) & 3)
		FAIL(EINVAL, "lazy map %s: sections out of bounds", path);
	L.blocks = (struct lazy_block *)(L.map + blocks_off);
	L.slots = (uint32_t *)(L.map + slots_off);
	L.page_block = (uint32_t *)(L.map + pages_off);
	L.paths = calloc(L.nfiles + 1, sizeof *L.paths);
	L.fds = malloc((L.nfiles + 1) * sizeof *L.fds);
	if (!L.paths || !L.fds) FAIL(ENOMEM, "lazy map: out of memory");
	uint64_t at = files_off;
	for (uint32_t f = 0; f < L.nfiles; f++) {
		uint32_t pl;
		if (at + 4 > bytes) FAIL(EINVAL, "lazy map %s: file table out of bounds", path);
		memcpy(&pl, m + at, 4);
		if (!pl || pl >= PATH_MAX || at + 4 + pl > bytes) FAIL(EINVAL, "lazy map %s: bad file name", path);
		L.paths[f] = strndup((const char *)m + at + 4, pl);
		L.fds[f] = -1;
		at = (at + 4 + pl + 7) & ~7ull;
	}
	return 0;
}

/* Bounds, and that each non-zero page is filled by exactly one slot of the block the page names:
 * a map that breaks this would leave a page unfilled (a thread blocked for ever) or fill it with
 * another page's content. */
static int check_map(char *msg, size_t msgcap) {
	size_t psz = L.psz;
	uint64_t *seen = calloc((L.npages + 63) / 64, 8);
	if (!seen) FAIL(ENOMEM, "lazy map: out of memory");
	size_t live = 0, nonzero = 0;
	int bad = 0;
	for (uint32_t b = 0; b < L.nblocks && !bad; b++) {
		const struct lazy_block *bl = &L.blocks[b];
		if (bl->file >= L.nfiles || bl->codec != 0 || bl->stored_bytes != (uint64_t)bl->page_count * psz ||
		    (uint64_t)bl->first_slot + bl->page_count > L.nslots) {
			snprintf(msg, msgcap, "lazy map: block %u is malformed (file %u, codec %u, %u bytes, %u pages)",
				 b, bl->file, bl->codec, bl->stored_bytes, bl->page_count);
			bad = EINVAL;
			break;
		}
		for (uint32_t k = 0; k < bl->page_count; k++) {
			uint32_t q = L.slots[bl->first_slot + k];
			if (q == NO_PAGE) continue;
			if (q >= L.npages || L.page_block[q] != b || (seen[q >> 6] >> (q & 63) & 1)) {
				snprintf(msg, msgcap, "lazy map: slot %u of block %u names page %u wrongly", k, b, q);
				bad = EINVAL;
				break;
			}
			seen[q >> 6] |= 1ull << (q & 63);
			live++;
		}
	}
	for (size_t p = 0; p < L.npages && !bad; p++) {
		if (L.page_block[p] == ZERO_PAGE_BLOCK) continue;
		if (L.page_block[p] >= L.nblocks) {
			snprintf(msg, msgcap, "lazy map: page %zu names block %u of %u", p, L.page_block[p], L.nblocks);
			bad = EINVAL;
		}
		nonzero++;
	}
	free(seen);
	if (bad) return bad;
	if (live != nonzero) FAIL(EINVAL, "lazy map: %zu slots fill %zu non-zero pages", live, nonzero);
	L.zero_pages = L.npages - nonzero;
	return 0;
}

/* Pages QEMU put into the RAM file before the range was registered get their committed content
 * now, before the guest runs. */
static int fill_present_locked(char *msg, size_t msgcap) {
	off_t end = (off_t)(L.file_off + (off_t)L.len), pos = L.file_off;
	while (pos < end) {
		off_t data = lseek(L.ram_fd, pos, SEEK_DATA);
		if (data < 0 || data >= end) break;
		off_t hole = lseek(L.ram_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end) hole = end;
		size_t last = (size_t)(hole - L.file_off + (off_t)L.psz - 1) / L.psz;
		for (size_t p = (size_t)(data - L.file_off) / L.psz; p < last; p++) {
			int rc;
			if (L.page_block[p] == ZERO_PAGE_BLOCK) {
				rc = write_present(p, L.zero_buf);
				if (!rc) L.prefilled++;
			} else {
				rc = load_block(L.page_block[p], L.loader_buf, 0);
			}
			if (rc) FAIL(EIO, "filling page %zu that QEMU wrote before registration: %s", p,
				     L.error[0] ? L.error : strerror(errno));
		}
		pos = hole;
	}
	return 0;
}

static int start_load(const uint8_t *in, size_t n, char *json, size_t cap, char *msg, size_t msgcap) {
	if (n < 8) FAIL(EINVAL, "lazyLoad: short request");
	uint32_t flags, mem_len;
	memcpy(&flags, in, 4);
	memcpy(&mem_len, in + 4, 4);
	if (mem_len == 0 || mem_len >= PATH_MAX || 8 + (size_t)mem_len >= n || n - 8 - mem_len >= PATH_MAX)
		FAIL(EINVAL, "lazyLoad: bad path lengths");
	char mem[PATH_MAX], map_path[PATH_MAX], real[PATH_MAX];
	memcpy(mem, in + 8, mem_len);
	mem[mem_len] = 0;
	memcpy(map_path, in + 8 + mem_len, n - 8 - mem_len);
	map_path[n - 8 - mem_len] = 0;
	if (!realpath(mem, real)) FAIL(errno, "memory-backend file %s: %s", mem, strerror(errno));
	if (find_shared_mapping(real, &L.base, &L.len, &L.file_off))
		FAIL(ENOENT, "no shared writable mapping of %s in /proc/self/maps", real);
	L.psz = (size_t)sysconf(_SC_PAGESIZE);
	L.npages = L.len / L.psz;
	L.active = 1; /* from here on the state is this load's, even if it fails */
	L.start_ns = mono_ns();
	int e = read_map(map_path, msg, msgcap);
	if (!e) e = check_map(msg, msgcap);
	if (e) return e;
	for (uint32_t f = 0; f < L.nfiles; f++) {
		L.fds[f] = open(L.paths[f], O_RDONLY | O_CLOEXEC);
		if (L.fds[f] < 0) FAIL(errno, "store file %s: %s", L.paths[f], strerror(errno));
	}
	L.ram_fd = open(real, O_RDWR | O_CLOEXEC);
	if (L.ram_fd < 0) FAIL(errno, "open %s: %s", real, strerror(errno));
	L.buf_bytes = L.psz;
	for (uint32_t b = 0; b < L.nblocks; b++)
		if (L.blocks[b].stored_bytes > L.buf_bytes) L.buf_bytes = L.blocks[b].stored_bytes;
	L.fault_buf = malloc(L.buf_bytes);
	L.loader_buf = malloc(L.buf_bytes);
	L.zero_buf = calloc(1, L.psz);
	L.state = calloc(L.nblocks + 1, 1);
	if (!L.fault_buf || !L.loader_buf || !L.zero_buf || !L.state) FAIL(ENOMEM, "lazyLoad: out of memory");
	L.blocks_left = L.nblocks;

	L.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (L.uffd < 0) FAIL(errno, "userfaultfd: %s", strerror(errno));
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM};
	if (ioctl(L.uffd, UFFDIO_API, &api))
		FAIL(ENOTSUP, "userfaultfd lacks MISSING faults on shared memory: %s", strerror(errno));
	struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)L.base, .len = L.len},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(L.uffd, UFFDIO_REGISTER, &reg))
		FAIL(errno, "register %s for MISSING faults: %s%s", real, strerror(errno),
		     errno == EBUSY ? " (already registered: lazy load must come before attach)" : "");
	L.have_zeropage = (reg.ioctls >> _UFFDIO_ZEROPAGE) & 1;
	pthread_mutex_lock(&L.mu);
	e = fill_present_locked(msg, msgcap);
	if (!e && L.blocks_left == 0 && !atomic_load(&L.done)) finish_locked();
	pthread_mutex_unlock(&L.mu);
	if (e) return e;
	L.stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (L.stop_efd < 0) FAIL(errno, "eventfd: %s", strerror(errno));
	if (start_thread(&L.handler, handler_main)) FAIL(EAGAIN, "cannot start the lazy fault handler");
	L.have_handler = 1;
	if (!(flags & LOAD_NO_LOADER)) {
		if (start_thread(&L.loader, loader_main)) FAIL(EAGAIN, "cannot start the lazy loader");
		L.have_loader = 1;
	}
	snprintf(json, cap,
		 "{\"pages\":%zu,\"zeroPages\":%llu,\"blocks\":%u,\"files\":%u,\"prefilled\":%llu,\"ns\":%llu}",
		 L.npages, (unsigned long long)L.zero_pages, L.nblocks, L.nfiles,
		 (unsigned long long)L.prefilled, (unsigned long long)(mono_ns() - L.start_ns));
	return 0;
}

/* A load that failed after it began leaves guest RAM incomplete: record why, so that tracking
 * (lazy_settle) and the status refuse to go on. */
static int lazy_load(const uint8_t *in, size_t n, char *json, size_t cap, char *msg, size_t msgcap) {
	if (L.active) FAIL(EBUSY, "a lazy load was already started in this QEMU");
	int e = start_load(in, n, json, cap, msg, msgcap);
	if (e && L.active) {
		pthread_mutex_lock(&L.mu);
		if (!atomic_load(&L.failed)) {
			snprintf(L.error, sizeof L.error, "%s", msg);
			atomic_store(&L.failed, 1);
			pthread_cond_broadcast(&L.settled);
		}
		pthread_mutex_unlock(&L.mu);
	}
	return e;
}

static void status_json(char *json, size_t cap) {
	char err[1100] = "null";
	if (atomic_load(&L.failed)) {
		char esc[600];
		size_t j = 0;
		for (const char *s = L.error; *s && j + 2 < sizeof esc; s++) {
			if (*s == '"' || *s == '\\') esc[j++] = '\\';
			esc[j++] = (unsigned char)*s < 0x20 ? ' ' : *s;
		}
		esc[j] = 0;
		snprintf(err, sizeof err, "{\"message\":\"%s\",\"offset\":%llu}", esc,
			 (unsigned long long)L.error_offset);
	}
	snprintf(json, cap,
		 "{\"active\":%s,\"done\":%s,\"failed\":%s,\"error\":%s,\"pages\":%zu,\"zeroPages\":%llu,"
		 "\"blocks\":%u,\"blocksLeft\":%u,\"faults\":%llu,\"zeroFaults\":%llu,\"faultNs\":%llu,"
		 "\"faultMaxNs\":%llu,\"blocksByFault\":%llu,\"blocksByLoader\":%llu,\"pagesByFault\":%llu,"
		 "\"pagesByLoader\":%llu,\"prefilled\":%llu,\"bytesRead\":%llu,\"blockedFaults\":%llu,"
		 "\"firstFaultNs\":%llu,\"startNs\":%llu,\"doneNs\":%llu}",
		 L.active ? "true" : "false", atomic_load(&L.done) ? "true" : "false",
		 atomic_load(&L.failed) ? "true" : "false", err, L.npages, (unsigned long long)L.zero_pages,
		 L.nblocks, L.blocks_left, (unsigned long long)L.faults, (unsigned long long)L.zero_faults,
		 (unsigned long long)L.fault_ns, (unsigned long long)L.fault_max_ns,
		 (unsigned long long)L.blocks_by_fault, (unsigned long long)L.blocks_by_loader,
		 (unsigned long long)L.pages_by_fault, (unsigned long long)L.pages_by_loader,
		 (unsigned long long)L.prefilled, (unsigned long long)L.bytes_read,
		 (unsigned long long)L.pending_faults, (unsigned long long)L.first_fault_ns,
		 (unsigned long long)L.start_ns, (unsigned long long)L.done_ns);
}

static void wait_settled(uint64_t timeout_ms) {
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000);
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!atomic_load(&L.done) && !atomic_load(&L.failed))
		if (pthread_cond_timedwait(&L.settled, &L.mu, &until) == ETIMEDOUT) break;
}

int lazy_command(uint16_t op, const uint8_t *in, size_t n, char *json, size_t cap, char *msg,
		 size_t msgcap) {
	if (op == LAZY_OP_LOAD) return lazy_load(in, n, json, cap, msg, msgcap);
	uint32_t flags = 0, timeout_ms = 0;
	if (n >= 8) {
		memcpy(&flags, in, 4);
		memcpy(&timeout_ms, in + 4, 4);
	}
	pthread_mutex_lock(&L.mu);
	if (L.active && (flags & STATUS_WAIT)) wait_settled(timeout_ms);
	status_json(json, cap);
	pthread_mutex_unlock(&L.mu);
	return 0;
}

int lazy_settle(char *msg, size_t msgcap) {
	if (!L.active) return 0;
	pthread_mutex_lock(&L.mu);
	while (!atomic_load(&L.done) && !atomic_load(&L.failed)) wait_settled(60000);
	int failed = atomic_load(&L.failed);
	if (failed) snprintf(msg, msgcap, "lazy restore failed, guest RAM is incomplete: %s", L.error);
	pthread_mutex_unlock(&L.mu);
	return failed ? EIO : 0;
}
