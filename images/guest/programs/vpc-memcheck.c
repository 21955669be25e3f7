/*
 * vpc-memcheck: a guest workload that checks its own memory, so a checkpoint
 * and restore of the VM can be judged from inside the guest.
 *
 * It keeps an array of 64-bit words (default 16 MiB) and, in the same
 * process memory, the array's running sum. Every step rewrites words spread
 * over many pages (so the VM has a steady, scattered dirty set) and updates
 * the sum by the exact difference. Every VERIFY_MS it sums the whole array
 * again and compares: a checkpoint that saved some pages from before and
 * others from after a write (a torn image), or a restore that lost pages,
 * breaks the equality and is counted as a failure. Each word also carries
 * its own index in its top bits, so a page restored at the wrong place fails
 * too.
 *
 * Status goes to FILE (default /run/vpc-memcheck), rewritten through a temp
 * file + rename once per verification:
 *   "steps=N verifies=V failures=F nonce=HEX\n"
 * A test reads it over SSH: after a restore, verifies must keep growing and
 * failures must stay 0. On the first failure the program also prints
 * "MEMCHECK FAIL ..." to stderr and keeps running (so a reader sees the count).
 *
 * usage: vpc-memcheck [-f FILE] [-m MIB] [-w WORDS_PER_STEP] [-s SLEEP_US] [-v VERIFY_MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define INDEX_SHIFT 40

static uint64_t *words;
static size_t nwords;
static volatile uint64_t sum;
static uint64_t steps, verifies, failures, nonce;

static void die(const char *what) {
  fprintf(stderr, "vpc-memcheck: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* xorshift64*: deterministic per run, seeded from the nonce. */
static uint64_t rng_state;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static uint64_t make_word(size_t i, uint64_t payload) {
  return ((uint64_t)i << INDEX_SHIFT) | (payload & ((1ull << INDEX_SHIFT) - 1));
}

static void publish(const char *path, const char *tmp) {
  char line[160];
  int len = snprintf(line, sizeof line, "steps=%llu verifies=%llu failures=%llu nonce=%016llx\n",
                     (unsigned long long)steps, (unsigned long long)verifies,
                     (unsigned long long)failures, (unsigned long long)nonce);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die(tmp);
  if (write(fd, line, (size_t)len) != len) die("write");
  close(fd);
  if (rename(tmp, path) != 0) die("rename");
}

static void verify(void) {
  uint64_t s = 0;
  size_t misplaced = 0;
  for (size_t i = 0; i < nwords; i++) {
    s += words[i];
    if (words[i] >> INDEX_SHIFT != i) misplaced++;
  }
  verifies++;
  if (s != sum || misplaced) {
    failures++;
    fprintf(stderr, "MEMCHECK FAIL verify=%llu sum=%016llx expected=%016llx misplaced=%zu\n",
            (unsigned long long)verifies, (unsigned long long)s, (unsigned long long)sum, misplaced);
    /* Re-base so that later verifications test later checkpoints, not this one. */
    sum = s;
    for (size_t i = 0; i < nwords; i++) {
      if (words[i] >> INDEX_SHIFT != i) {
        sum -= words[i];
        words[i] = make_word(i, 0);
        sum += words[i];
      }
    }
  }
}

int main(int argc, char **argv) {
  const char *path = "/run/vpc-memcheck";
  long mib = 16, per_step = 64, sleep_us = 1000, verify_ms = 500;
  int opt;
  while ((opt = getopt(argc, argv, "f:m:w:s:v:")) != -1) {
    switch (opt) {
      case 'f': path = optarg; break;
      case 'm': mib = strtol(optarg, NULL, 10); break;
      case 'w': per_step = strtol(optarg, NULL, 10); break;
      case 's': sleep_us = strtol(optarg, NULL, 10); break;
      case 'v': verify_ms = strtol(optarg, NULL, 10); break;
      default:
        fprintf(stderr, "usage: %s [-f FILE] [-m MIB] [-w WORDS_PER_STEP] [-s SLEEP_US] [-v VERIFY_MS]\n",
                argv[0]);
        return 2;
    }
  }
  if (mib < 1 || mib > 4096 || per_step < 1 || sleep_us < 0 || verify_ms < 1) {
    fprintf(stderr, "vpc-memcheck: bad arguments\n");
    return 2;
  }
  if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce)
    nonce = (uint64_t)time(NULL) ^ (uint64_t)getpid();
  rng_state = nonce | 1;
  nwords = (size_t)mib * 1024 * 1024 / sizeof(uint64_t);
  words = malloc(nwords * sizeof(uint64_t));
  if (!words) die("malloc");
  uint64_t s = 0;
  for (size_t i = 0; i < nwords; i++) {
    words[i] = make_word(i, rng());
    s += words[i];
  }
  sum = s;

  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  publish(path, tmp);
  struct timespec nap = {.tv_sec = sleep_us / 1000000, .tv_nsec = (sleep_us % 1000000) * 1000L};
  uint64_t next_verify = now_ms() + (uint64_t)verify_ms;
  for (;;) {
    for (long k = 0; k < per_step; k++) {
      size_t i = (size_t)(rng() % nwords);
      uint64_t w = make_word(i, rng());
      sum = sum - words[i] + w;
      words[i] = w;
    }
    steps++;
    if (now_ms() >= next_verify) {
      verify();
      publish(path, tmp);
      next_verify = now_ms() + (uint64_t)verify_ms;
    }
    if (sleep_us) nanosleep(&nap, NULL);
  }
}
