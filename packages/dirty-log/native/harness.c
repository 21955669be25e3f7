/* Test and benchmark stand-in for QEMU: maps a shared "guest RAM" file and
 * writes pages on command, so the agent (preloaded with VPC_DIRTY_LOG_EXE
 * naming this binary) can be driven by the TypeScript client without a VM.
 *
 *   vpc-dl-harness RAMFILE PAGES
 * stdin, one command per line; stdout, one reply line per command:
 *   write GEN SPEC      write u64 (GEN<<32|page) into each page of SPEC -> ok
 *   read SPEC           read each page of SPEC -> ok SUM
 *   writer start SEED   thread rewriting random pages without pause -> ok
 *   writer pause        stop the thread between two writes -> ok WRITES
 *   writer resume|stop  -> ok
 *   dump FILE           copy all of RAM to FILE -> ok
 *   bench N SEED        first-write N distinct random pages, timing each
 *                       -> ok TOTAL_NS P50_NS P99_NS
 *   loop WRITES SEED SPAN  WRITES random u64 stores into pages [0,SPAN) -> ok NS
 *   punch SPEC          discard each page of SPEC as QEMU does (balloon, virtio-mem):
 *                       punch a hole in the file, then MADV_DONTNEED the mapping -> ok
 *   xxh64 FILE OFF LEN  XXH64 of LEN bytes of FILE at OFF, with the agent's own code (lazy.c),
 *                       to build lazy maps in tests -> ok HEX
 *   grow                put one more page in the file's page cache, grow the mapping over it
 *                       in place (mremap, once) and read it -> ok (a fault the agent's range
 *                       misses)
 * SPEC is a comma list of pages and inclusive ranges ("3,10-20"). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lazy.h"

static uint8_t *ram;
static size_t npages, psz;
static int ram_fd;
static pthread_t writer;
static _Atomic int writer_on, pause_req, paused;
static _Atomic uint64_t writes;
static uint64_t writer_seed;

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t rnd(uint64_t *s) { /* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

typedef void (*page_fn)(size_t p, void *arg);
static int each_page(char *spec, page_fn fn, void *arg) {
	for (char *save = NULL, *t = strtok_r(spec, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(t, '-');
		size_t a = strtoull(t, NULL, 10), b = dash ? strtoull(dash + 1, NULL, 10) : a;
		if (b >= npages || a > b) return -1;
		for (size_t p = a; p <= b; p++) fn(p, arg);
	}
	return 0;
}
static void write_page(size_t p, void *arg) {
	uint64_t gen = *(uint64_t *)arg;
	volatile uint64_t *w = (uint64_t *)(ram + p * psz + (gen * 8) % psz);
	*w = gen << 32 | p;
}
static void punch_page(size_t p, void *arg) {
	int *failed = arg;
	if (fallocate(ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(p * psz), (off_t)psz) ||
	    madvise(ram + p * psz, psz, MADV_DONTNEED))
		*failed = 1;
}
/* The agent registered [ram, ram + npages pages); one page more, mapped by growing that
 * mapping in place, keeps its userfaultfd registration but lies outside the agent's range. */
static int grow(void) {
	uint8_t one = 1;
	if (ftruncate(ram_fd, (off_t)((npages + 1) * psz)) ||
	    pwrite(ram_fd, &one, 1, (off_t)(npages * psz)) != 1 || munmap(ram + npages * psz, psz) ||
	    mremap(ram, npages * psz, (npages + 1) * psz, 0) == MAP_FAILED)
		return -1;
	return *(volatile uint8_t *)(ram + npages * psz) == 1 ? 0 : -1;
}
static void read_page(size_t p, void *arg) {
	*(uint64_t *)arg += *(volatile uint8_t *)(ram + p * psz + 8);
}

static void *writer_main(void *arg) {
	(void)arg;
	uint64_t s = writer_seed | 1;
	while (atomic_load(&writer_on)) {
		if (atomic_load(&pause_req)) {
			atomic_store(&paused, 1);
			while (atomic_load(&pause_req) && atomic_load(&writer_on)) usleep(100);
			atomic_store(&paused, 0);
			continue;
		}
		uint64_t r = rnd(&s);
		size_t p = (size_t)(r % npages);
		volatile uint64_t *w = (uint64_t *)(ram + p * psz + ((r >> 40) % (psz / 8)) * 8);
		*w = atomic_fetch_add(&writes, 1) + 1;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void bench(size_t n, uint64_t seed) {
	if (n > npages) n = npages;
	uint32_t *perm = malloc(npages * 4);
	uint64_t *t = malloc(n * 8);
	for (size_t i = 0; i < npages; i++) perm[i] = (uint32_t)i;
	uint64_t s = seed | 1;
	for (size_t i = 0; i < n; i++) {
		size_t j = i + (size_t)(rnd(&s) % (npages - i));
		uint32_t x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	uint64_t total0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		*(volatile uint8_t *)(ram + (size_t)perm[i] * psz + 16) += 1;
		t[i] = now_ns() - t0;
	}
	uint64_t total = now_ns() - total0;
	qsort(t, n, 8, cmp_u64);
	printf("ok %llu %llu %llu\n", (unsigned long long)total, (unsigned long long)(n ? t[n / 2] : 0),
	       (unsigned long long)(n ? t[n * 99 / 100] : 0));
	free(perm);
	free(t);
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s RAMFILE PAGES\n", argv[0]);
		return 2;
	}
	psz = (size_t)sysconf(_SC_PAGESIZE);
	npages = strtoull(argv[2], NULL, 10);
	int fd = ram_fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)(npages * psz))) {
		perror(argv[1]);
		return 1;
	}
	/* One page of address space more stays reserved after RAM, for "grow". */
	uint8_t *reserve = mmap(NULL, (npages + 1) * psz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ram = reserve == MAP_FAILED ? MAP_FAILED
				    : mmap(reserve, npages * psz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (ram == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", (int)getpid());
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		line[strcspn(line, "\n")] = 0;
		char *arg = strchr(line, ' ');
		if (arg) *arg++ = 0;
		if (!strcmp(line, "write") && arg) {
			uint64_t gen = strtoull(arg, &arg, 10);
			if (*arg == ' ') arg++;
			puts(each_page(arg, write_page, &gen) ? "err bad spec" : "ok");
		} else if (!strcmp(line, "read") && arg) {
			uint64_t sum = 0;
			if (each_page(arg, read_page, &sum)) puts("err bad spec");
			else printf("ok %llu\n", (unsigned long long)sum);
		} else if (!strcmp(line, "writer") && arg && !strncmp(arg, "start", 5)) {
			writer_seed = strtoull(arg + 5, NULL, 10);
			atomic_store(&writer_on, 1);
			pthread_create(&writer, NULL, writer_main, NULL);
			puts("ok");
		} else if (!strcmp(line, "writer") && arg && !strcmp(arg, "pause")) {
			atomic_store(&pause_req, 1);
			while (!atomic_load(&paused)) usleep(50);
			printf("ok %llu\n", (unsigned long long)atomic_load(&writes));
		} else if (!strcmp(line, "writer") && arg && !strcmp(arg, "resume")) {
			atomic_store(&pause_req, 0);
			puts("ok");
		} else if (!strcmp(line, "writer") && arg && !strcmp(arg, "stop")) {
			atomic_store(&writer_on, 0);
			pthread_join(writer, NULL);
			atomic_store(&pause_req, 0);
			puts("ok");
		} else if (!strcmp(line, "dump") && arg) {
			int out = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			size_t off = 0, len = npages * psz;
			while (out >= 0 && off < len) {
				ssize_t w = write(out, ram + off, len - off);
				if (w <= 0) break;
				off += (size_t)w;
			}
			if (out >= 0) close(out);
			puts(off == len ? "ok" : "err dump failed");
		} else if (!strcmp(line, "bench") && arg) {
			char *end;
			size_t n = strtoull(arg, &end, 10);
			bench(n, strtoull(end, NULL, 10));
		} else if (!strcmp(line, "loop") && arg) {
			char *end;
			uint64_t n = strtoull(arg, &end, 10), s = strtoull(end, &end, 10) | 1;
			size_t span = strtoull(end, NULL, 10);
			if (!span || span > npages) span = npages;
			uint64_t t0 = now_ns();
			for (uint64_t i = 0; i < n; i++) {
				uint64_t r = rnd(&s);
				*(volatile uint64_t *)(ram + (r % span) * psz + ((r >> 40) % (psz / 8)) * 8) = i;
			}
			printf("ok %llu\n", (unsigned long long)(now_ns() - t0));
		} else if (!strcmp(line, "punch") && arg) {
			int failed = 0;
			if (each_page(arg, punch_page, &failed)) puts("err bad spec");
			else puts(failed ? "err punch failed" : "ok");
		} else if (!strcmp(line, "xxh64") && arg) {
			char *end, *file = arg;
			char *sp = strchr(arg, ' ');
			if (!sp) {
				puts("err usage");
				continue;
			}
			*sp = 0;
			off_t off = (off_t)strtoull(sp + 1, &end, 10);
			size_t len = strtoull(end, NULL, 10);
			uint8_t *buf = malloc(len ? len : 1);
			int f = open(file, O_RDONLY | O_CLOEXEC);
			if (buf && f >= 0 && pread(f, buf, len, off) == (ssize_t)len)
				printf("ok %016llx\n", (unsigned long long)xxh64(buf, len));
			else
				puts("err xxh64 read failed");
			if (f >= 0) close(f);
			free(buf);
		} else if (!strcmp(line, "grow")) {
			puts(grow() ? "err grow failed" : "ok");
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			puts("err unknown command");
		}
	}
	if (atomic_load(&writer_on)) {
		atomic_store(&writer_on, 0);
		pthread_join(writer, NULL);
	}
	free(line);
	return 0;
}
