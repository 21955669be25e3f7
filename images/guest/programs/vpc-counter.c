/*
 * vpc-counter: a guest program whose progress lives in guest memory, so a
 * checkpoint/restore of the VM can be checked from outside.
 *
 * Every tick (default 50 ms) it increments a counter held in a tagged record,
 * rewrites a few hundred pages of a churn buffer (so the VM has a steady
 * dirty set), and publishes "COUNTER NONCE\n" to a file (default
 * /run/vpc-counter) by write-to-temp + rename, so readers never see a torn
 * value. The record starts with the 8-byte magic "VPCCNTR1" followed by the
 * 64-bit nonce and the 64-bit counter (little endian): a host can find the
 * exact counter value in a RAM image by searching for magic + nonce.
 *
 * usage: vpc-counter [-f FILE] [-i INTERVAL_MS] [-m CHURN_MB] [-p PAGES_PER_TICK]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

struct record {
  char magic[8];
  uint64_t nonce;
  volatile uint64_t counter;
};

static struct record rec = {.magic = {'V', 'P', 'C', 'C', 'N', 'T', 'R', '1'}};

static void die(const char *what) {
  fprintf(stderr, "vpc-counter: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void publish(const char *path, const char *tmp) {
  char line[64];
  int len = snprintf(line, sizeof line, "%llu %016llx\n", (unsigned long long)rec.counter,
                     (unsigned long long)rec.nonce);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die(tmp);
  if (write(fd, line, (size_t)len) != len) die("write");
  close(fd);
  if (rename(tmp, path) != 0) die("rename");
}

int main(int argc, char **argv) {
  const char *path = "/run/vpc-counter";
  long interval_ms = 50, churn_mb = 4, pages_per_tick = 256;
  int opt;
  while ((opt = getopt(argc, argv, "f:i:m:p:")) != -1) {
    switch (opt) {
      case 'f': path = optarg; break;
      case 'i': interval_ms = strtol(optarg, NULL, 10); break;
      case 'm': churn_mb = strtol(optarg, NULL, 10); break;
      case 'p': pages_per_tick = strtol(optarg, NULL, 10); break;
      default:
        fprintf(stderr, "usage: %s [-f FILE] [-i INTERVAL_MS] [-m CHURN_MB] [-p PAGES_PER_TICK]\n", argv[0]);
        return 2;
    }
  }
  if (interval_ms < 1 || churn_mb < 0 || pages_per_tick < 0) {
    fprintf(stderr, "vpc-counter: bad arguments\n");
    return 2;
  }
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce) nonce = (uint64_t)time(NULL) ^ (uint64_t)getpid();
  rec.nonce = nonce;

  size_t pages = (size_t)churn_mb * 256;
  unsigned char *churn = pages ? malloc(pages * 4096) : NULL;
  if (pages && !churn) die("malloc");
  if (churn) memset(churn, 0, pages * 4096);

  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  struct timespec tick = {.tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000L};
  size_t next = 0;
  for (;;) {
    rec.counter = rec.counter + 1;
    for (long i = 0; pages && i < pages_per_tick; i++) {
      churn[next * 4096 + (rec.counter & 4095)] = (unsigned char)rec.counter;
      next = (next + 1) % pages;
    }
    publish(path, tmp);
    nanosleep(&tick, NULL);
  }
}
