/*
 * vpc-udpcheck: sees every lost, duplicated or reordered datagram between VMs, so the network
 * side of a checkpoint and restore can be judged from inside the guests (TCP and ping hide loss).
 *
 * Every instance binds one UDP port, sends sequence-numbered datagrams at a steady rate to each
 * PEER given on the command line, and checks the datagrams it receives, per flow (per source
 * address). A datagram carries the magic "VPCUDP1\0", the sender's nonce (random per start, kept
 * by a restore since it lives in guest memory) and its sequence number. Only a datagram that
 * sendto() accepted uses up a number, so a full socket buffer is not a gap.
 *
 * Per flow the receiver keeps the first and highest number seen and a bitmap of the last WINDOW
 * numbers:
 *   lost       = numbers in [first, highest] never received (a late arrival fills its gap again);
 *   duplicated = a number received twice;
 *   reordered  = a number received after a higher one;
 *   stale      = a number older than the window (cannot be told duplicated or late);
 *   skipped    = the first number received (datagrams sent before the receiver saw the flow,
 *                e.g. before it started: not counted as lost);
 *   restarts   = the sender's nonce changed (it started again: the flow is checked afresh).
 *
 * Status goes to FILE (default /run/vpc-udpcheck), rewritten through a temp file + rename every
 * PUBLISH_MS and at once on SIGUSR1:
 *   "sent=S received=R lost=L duplicated=D reordered=O stale=X skipped=K restarts=Z flows=F\n"
 * then one line per flow:
 *   "flow ADDR received=R first=A highest=H lost=L duplicated=D reordered=O stale=X restarts=Z\n"
 * and one per peer: "peer ADDR sent=S\n".
 *
 * usage: vpc-udpcheck [-b BIND_ADDR] [-p PORT] [-r PER_PEER_PER_S] [-s BYTES] [-f FILE]
 *                     [-P PUBLISH_MS] PEER_ADDR...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "VPCUDP1"
#define WINDOW 65536u /* numbers remembered per flow (a power of two) */
#define MAX_FLOWS 64
#define MAX_PEERS 64
#define HEADER_BYTES 24 /* magic 8, nonce 8, sequence 8 */

struct flow {
  uint32_t addr; /* network order */
  uint64_t nonce, first, highest, received, duplicated, reordered, stale, restarts;
  uint8_t seen[WINDOW / 8];
};

struct peer {
  struct sockaddr_in to;
  uint64_t next_seq;
};

static struct flow flows[MAX_FLOWS];
static unsigned nflows;
static struct peer peers[MAX_PEERS];
static unsigned npeers;
static uint64_t nonce;
static volatile sig_atomic_t publish_now;

static void die(const char *what) {
  fprintf(stderr, "vpc-udpcheck: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(const char *why) {
  fprintf(stderr,
          "vpc-udpcheck: %s\nusage: vpc-udpcheck [-b BIND_ADDR] [-p PORT] [-r PER_PEER_PER_S] "
          "[-s BYTES] [-f FILE] [-P PUBLISH_MS] PEER_ADDR...\n",
          why);
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bit(const struct flow *f, uint64_t n) { return f->seen[(n % WINDOW) / 8] >> (n % 8) & 1; }
static void set_bit(struct flow *f, uint64_t n) { f->seen[(n % WINDOW) / 8] |= (uint8_t)(1u << (n % 8)); }
static void clear_bit(struct flow *f, uint64_t n) { f->seen[(n % WINDOW) / 8] &= (uint8_t)~(1u << (n % 8)); }

static struct flow *flow_for(uint32_t addr) {
  for (unsigned i = 0; i < nflows; i++)
    if (flows[i].addr == addr) return &flows[i];
  if (nflows == MAX_FLOWS) return NULL;
  struct flow *f = &flows[nflows++];
  memset(f, 0, sizeof *f);
  f->addr = addr;
  return f;
}

static void start_flow(struct flow *f, uint64_t sender_nonce, uint64_t seq) {
  memset(f->seen, 0, sizeof f->seen);
  f->nonce = sender_nonce;
  f->first = f->highest = seq;
  f->received = 1;
  set_bit(f, seq);
}

/* The checking logic: one datagram of flow `f`. */
static void account(struct flow *f, uint64_t sender_nonce, uint64_t seq) {
  if (f->received == 0) {
    start_flow(f, sender_nonce, seq);
    return;
  }
  if (sender_nonce != f->nonce) {
    /* The sender started afresh: the old run's counters go, the restart is counted. */
    uint32_t addr = f->addr;
    uint64_t restarts = f->restarts + 1;
    memset(f, 0, offsetof(struct flow, seen));
    f->addr = addr;
    f->restarts = restarts;
    start_flow(f, sender_nonce, seq);
    return;
  }
  if (seq > f->highest) {
    /* Numbers between leave the window's far end: forget them before reusing their bits. */
    uint64_t from = f->highest + 1;
    if (seq - from >= WINDOW) from = seq - WINDOW + 1;
    for (uint64_t n = from; n < seq; n++) clear_bit(f, n);
    f->highest = seq;
    set_bit(f, seq);
    f->received++;
  } else if (seq < f->first || f->highest - seq >= WINDOW) {
    f->stale++;
  } else if (bit(f, seq)) {
    f->duplicated++;
  } else {
    set_bit(f, seq);
    f->received++;
    f->reordered++;
  }
}

static uint64_t lost(const struct flow *f) {
  return f->received == 0 ? 0 : f->highest - f->first + 1 - f->received;
}

static void publish(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (out == NULL) die(tmp);
  uint64_t sent = 0, received = 0, lo = 0, dup = 0, reord = 0, stale = 0, skipped = 0, restarts = 0;
  for (unsigned i = 0; i < npeers; i++) sent += peers[i].next_seq;
  for (unsigned i = 0; i < nflows; i++) {
    const struct flow *f = &flows[i];
    received += f->received, lo += lost(f), dup += f->duplicated, reord += f->reordered;
    stale += f->stale, skipped += f->first, restarts += f->restarts;
  }
  fprintf(out,
          "sent=%llu received=%llu lost=%llu duplicated=%llu reordered=%llu stale=%llu skipped=%llu "
          "restarts=%llu flows=%u\n",
          (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lo,
          (unsigned long long)dup, (unsigned long long)reord, (unsigned long long)stale,
          (unsigned long long)skipped, (unsigned long long)restarts, nflows);
  for (unsigned i = 0; i < nflows; i++) {
    const struct flow *f = &flows[i];
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &f->addr, a, sizeof a);
    fprintf(out,
            "flow %s received=%llu first=%llu highest=%llu lost=%llu duplicated=%llu reordered=%llu "
            "stale=%llu restarts=%llu\n",
            a, (unsigned long long)f->received, (unsigned long long)f->first,
            (unsigned long long)f->highest, (unsigned long long)lost(f), (unsigned long long)f->duplicated,
            (unsigned long long)f->reordered, (unsigned long long)f->stale, (unsigned long long)f->restarts);
  }
  for (unsigned i = 0; i < npeers; i++) {
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peers[i].to.sin_addr, a, sizeof a);
    fprintf(out, "peer %s sent=%llu\n", a, (unsigned long long)peers[i].next_seq);
  }
  if (fclose(out) != 0) die(tmp);
  if (rename(tmp, path) != 0) die(path);
}

static void on_usr1(int sig) {
  (void)sig;
  publish_now = 1;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

int main(int argc, char **argv) {
  /* First: SIGUSR1's default action ends the process, and a reader may signal at any time. */
  signal(SIGUSR1, on_usr1);
  const char *file = "/run/vpc-udpcheck", *bind_addr = "0.0.0.0";
  long port = 7450, rate = 50, size = 64, publish_ms = 500;
  int opt;
  while ((opt = getopt(argc, argv, "b:p:r:s:f:P:")) != -1) {
    char *end = NULL;
    long v = 0;
    if (opt != 'b' && opt != 'f' && opt != '?') {
      v = strtol(optarg, &end, 10);
      if (*optarg == '\0' || *end != '\0') usage("options -p -r -s -P take a number");
    }
    switch (opt) {
    case 'b': bind_addr = optarg; break;
    case 'f': file = optarg; break;
    case 'p': if (v < 1 || v > 65535) usage("-p PORT must be 1..65535"); port = v; break;
    case 'r': if (v < 1 || v > 100000) usage("-r PER_PEER_PER_S must be 1..100000"); rate = v; break;
    case 's': if (v < HEADER_BYTES || v > 1400) usage("-s BYTES must be 24..1400"); size = v; break;
    case 'P': if (v < 10) usage("-P PUBLISH_MS must be >= 10"); publish_ms = v; break;
    default: usage("unknown option");
    }
  }
  for (int i = optind; i < argc; i++) {
    if (npeers == MAX_PEERS) usage("too many peers (at most 64)");
    struct peer *p = &peers[npeers++];
    p->to.sin_family = AF_INET;
    p->to.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, argv[i], &p->to.sin_addr) != 1) usage("a peer is not an IPv4 address");
  }
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) die("getrandom");

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int big = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big); /* capped by rmem_max: best effort */
  struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, bind_addr, &me.sin_addr) != 1) usage("-b BIND_ADDR is not an IPv4 address");
  if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) die("bind");

  uint8_t buf[2048];
  const uint64_t period = 1000000000u / (uint64_t)rate, publish_every = (uint64_t)publish_ms * 1000000u;
  uint64_t next_send = now_ns(), next_publish = next_send;
  for (;;) {
    uint64_t now = now_ns();
    if (now >= next_send) {
      for (unsigned i = 0; i < npeers; i++) {
        memset(buf, 0, (size_t)size);
        memcpy(buf, MAGIC, 8);
        put64(buf + 8, nonce);
        put64(buf + 16, peers[i].next_seq);
        ssize_t n = sendto(fd, buf, (size_t)size, 0, (struct sockaddr *)&peers[i].to, sizeof peers[i].to);
        if (n == size) peers[i].next_seq++; /* refused (buffer full, no route): the number is reused */
      }
      next_send += period;
      /* Behind by more than a second (the host was busy): keep the rate, do not burst to catch up. */
      if (now > next_send + 1000000000u) next_send = now + period;
    }
    if (now >= next_publish || publish_now) {
      publish_now = 0;
      publish(file);
      next_publish = now + publish_every;
    }
    for (;;) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR || errno == ECONNREFUSED) continue;
        die("recvfrom");
      }
      if (n < HEADER_BYTES || memcmp(buf, MAGIC, 8) != 0) continue; /* not ours */
      struct flow *f = flow_for(from.sin_addr.s_addr);
      if (f != NULL) account(f, get64(buf + 8), get64(buf + 16));
    }
    uint64_t wake = next_send < next_publish ? next_send : next_publish;
    now = now_ns();
    int timeout = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout) < 0 && errno != EINTR) die("poll");
  }
}
