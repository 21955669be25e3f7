/*
 * vpc-dirtier: a synthetic dirty-rate workload that is also a guest-side stall
 * probe, for the checkpointing sweep (packages/eval, experiment "sweep").
 *
 * Workload. It keeps a region of MIB MiB and writes RATE pages per second
 * (one 8-byte store per page, enough to dirty it), paced in SLICE_US slices:
 * every slice it writes the pages that fell due since the last one, so the
 * rate is steady rather than bursty. A fraction HOT of the writes goes to a
 * small hot set at the start of the region, round robin, so each hot page is
 * rewritten again and again (by default the hot set is HOT*RATE/10 pages:
 * every hot page is rewritten about every 100 ms, i.e. soon after every
 * checkpoint -- what a predictor can learn). The other writes scatter over
 * the cold rest of the region with a stride coprime to its size, so they
 * visit every cold page once per cycle with no locality (nothing to learn
 * from the last interval). The distinct pages written per second are thus
 * the hot set plus the cold writes, capped by the region size.
 *
 * Probe. The loop reads CLOCK_MONOTONIC after every sleep and every page
 * write. When an observation comes more than GAP_MS later than it should
 * (after a write: later than the previous observation; after a sleep: later
 * than the wake-up time asked for), the excess is a gap: time the guest did
 * not run although it wanted to -- a vCPU stalled in a checkpoint-caused
 * page fault, or the vCPU thread not scheduled on the host. Gaps are counted
 * (number, total, largest, histogram). A QEMU `stop` does NOT show up here:
 * QEMU stops the guest's clocks with the vCPUs, so a pause is invisible from
 * inside; the host measures it.
 *
 * Status goes to FILE (default /run/vpc-dirtier), rewritten through a temp
 * file + rename every PUBLISH_MS and at once on SIGUSR1 (a "mark"), one line
 * of key=value:
 *   marks=N pages=N hot=N cold=N t_ms=T rate=R gaps=N gap_ms=T max_gap_ms=T
 *   write_gaps=N write_gap_ms=T
 *   hist_ms=1:N,2:N,5:N,10:N,20:N,50:N,100:N,200:N,500:N,1000:N
 *   region_pages=N hot_pages=N
 * t_ms is the guest's monotonic time since the loop started (the writes
 * began); rate = pages / t_ms; hist_ms counts gaps by lower bound in ms
 * (1:N counts gaps of 1 up to 2 ms); write_gaps/write_gap_ms are the part of
 * gaps/gap_ms seen across a page write; max_gap_ms is the largest gap since
 * the previous mark (at a mark: of the window that mark closes). A reader sends SIGUSR1, waits for the line whose marks= went
 * up (its exact state at the mark), does the same at the end of a window, and
 * subtracts.
 *
 * usage: vpc-dirtier [-f FILE] [-m MIB] [-r PAGES_PER_S] [-h HOT 0..1]
 *                    [-H HOT_MIB] [-s SLICE_US] [-g GAP_MS] [-p PUBLISH_MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))
#define NS_PER_MS 1000000ull

static const unsigned hist_bounds_ms[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
#define HIST_BUCKETS (sizeof hist_bounds_ms / sizeof hist_bounds_ms[0])

static uint64_t gaps, gap_ns, max_gap_ns, hist[HIST_BUCKETS];
/* The gaps seen across a page write: stalls in the program's own memory accesses, with little of
 * the host's scheduling noise that a late wake-up from sleep also carries. */
static uint64_t write_gaps, write_gap_ns;
/* SIGUSR1 asks for a mark: publish at once with `marks` one higher, then start a new max_gap_ms. */
static volatile sig_atomic_t mark_requested;
static uint64_t marks;

static void on_mark(int sig) {
  (void)sig;
  mark_requested = 1;
}
static uint64_t gap_threshold_ns;

static void die(const char *what) {
  fprintf(stderr, "vpc-dirtier: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage_error(const char *argv0, const char *why) {
  if (why) fprintf(stderr, "vpc-dirtier: %s\n", why);
  fprintf(stderr,
          "usage: %s [-f FILE] [-m MIB] [-r PAGES_PER_S] [-h HOT 0..1] [-H HOT_MIB] [-s SLICE_US] "
          "[-g GAP_MS] [-p PUBLISH_MS]\n",
          argv0);
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An observation at `t` that should have come at `expected`: a gap if it is late. */
static void observe(uint64_t t, uint64_t expected, int across_write) {
  if (t <= expected) return;
  uint64_t late = t - expected;
  if (late < gap_threshold_ns) return;
  if (across_write) {
    write_gaps++;
    write_gap_ns += late;
  }
  gaps++;
  gap_ns += late;
  if (late > max_gap_ns) max_gap_ns = late;
  size_t b = 0;
  while (b + 1 < HIST_BUCKETS && late >= hist_bounds_ms[b + 1] * NS_PER_MS) b++;
  hist[b]++;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static void publish(const char *path, const char *tmp, uint64_t pages, uint64_t hot, uint64_t cold,
                    uint64_t elapsed_ns, size_t region_pages, size_t hot_pages) {
  char hist_text[256];
  size_t off = 0;
  for (size_t b = 0; b < HIST_BUCKETS; b++)
    off += (size_t)snprintf(hist_text + off, sizeof hist_text - off, "%s%u:%llu", b ? "," : "",
                            hist_bounds_ms[b], (unsigned long long)hist[b]);
  double t_ms = (double)elapsed_ns / 1e6;
  char line[512];
  int len = snprintf(line, sizeof line,
                     "marks=%llu pages=%llu hot=%llu cold=%llu t_ms=%.3f rate=%.1f gaps=%llu gap_ms=%.3f "
                     "max_gap_ms=%.3f write_gaps=%llu write_gap_ms=%.3f hist_ms=%s region_pages=%zu "
                     "hot_pages=%zu\n",
                     (unsigned long long)marks, (unsigned long long)pages, (unsigned long long)hot, (unsigned long long)cold, t_ms,
                     t_ms > 0 ? (double)pages * 1000.0 / t_ms : 0.0, (unsigned long long)gaps,
                     (double)gap_ns / 1e6, (double)max_gap_ns / 1e6, (unsigned long long)write_gaps,
                     (double)write_gap_ns / 1e6, hist_text, region_pages, hot_pages);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die(tmp);
  if (write(fd, line, (size_t)len) != len) die("write");
  close(fd);
  if (rename(tmp, path) != 0) die("rename");
}

static double parse_number(const char *argv0, const char *opt, const char *text) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end) {
    char why[96];
    snprintf(why, sizeof why, "-%s wants a number, got \"%s\"", opt, text);
    usage_error(argv0, why);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *path = "/run/vpc-dirtier";
  double mib = 64, rate = 1000, hot_fraction = 0.5, hot_mib = -1, slice_us = 1000, gap_ms = 1,
         publish_ms = 100;
  int opt;
  while ((opt = getopt(argc, argv, "f:m:r:h:H:s:g:p:")) != -1) {
    char name[2] = {(char)opt, 0};
    switch (opt) {
      case 'f': path = optarg; break;
      case 'm': mib = parse_number(argv[0], name, optarg); break;
      case 'r': rate = parse_number(argv[0], name, optarg); break;
      case 'h': hot_fraction = parse_number(argv[0], name, optarg); break;
      case 'H': hot_mib = parse_number(argv[0], name, optarg); break;
      case 's': slice_us = parse_number(argv[0], name, optarg); break;
      case 'g': gap_ms = parse_number(argv[0], name, optarg); break;
      case 'p': publish_ms = parse_number(argv[0], name, optarg); break;
      default: usage_error(argv[0], NULL);
    }
  }
  if (optind != argc) usage_error(argv[0], "unexpected argument");
  if (!(mib >= 1 && mib <= 65536)) usage_error(argv[0], "-m MIB must be in 1..65536");
  if (!(rate > 0 && rate <= 10e6)) usage_error(argv[0], "-r PAGES_PER_S must be in (0, 10000000]");
  if (!(hot_fraction >= 0 && hot_fraction <= 1)) usage_error(argv[0], "-h HOT must be in 0..1");
  if (!(slice_us >= 100 && slice_us <= 1e6)) usage_error(argv[0], "-s SLICE_US must be in 100..1000000");
  if (!(gap_ms >= 1)) usage_error(argv[0], "-g GAP_MS must be at least 1 (the histogram starts at 1 ms)");
  if (!(publish_ms >= 10)) usage_error(argv[0], "-p PUBLISH_MS must be at least 10");

  size_t region_pages = (size_t)(mib * 1024 * 1024 / PAGE);
  size_t hot_pages;
  if (hot_fraction == 0) {
    hot_pages = 0;
  } else if (hot_mib >= 0) {
    hot_pages = (size_t)(hot_mib * 1024 * 1024 / PAGE);
  } else {
    /* Every hot page rewritten about every 100 ms. */
    hot_pages = (size_t)(hot_fraction * rate / 10 + 0.5);
  }
  if (hot_fraction > 0 && hot_pages == 0) hot_pages = 1;
  if (hot_pages > region_pages) usage_error(argv[0], "the hot set (-H) is larger than the region (-m)");
  size_t cold_pages = region_pages - hot_pages;
  if (hot_fraction < 1 && cold_pages == 0)
    usage_error(argv[0], "no cold pages left: make -m larger than -H, or -h 1");

  struct sigaction mark_action = {.sa_handler = on_mark};
  sigemptyset(&mark_action.sa_mask);
  if (sigaction(SIGUSR1, &mark_action, NULL) != 0) die("sigaction");

  uint64_t *region = malloc(region_pages * PAGE);
  if (!region) die("malloc");
  /* Back every page now, so the loop's writes are the only dirtying it does. */
  for (size_t i = 0; i < region_pages; i++) region[i * WORDS_PER_PAGE] = 1;

  /* A stride coprime to the cold size visits every cold page once per cycle, scattered. */
  uint64_t stride = 1;
  if (cold_pages > 2) {
    stride = (uint64_t)((double)cold_pages * 0.6180339887) | 1;
    while (gcd(stride, cold_pages) != 1) stride += 2;
    stride %= cold_pages;
    if (stride == 0) stride = 1;
  }

  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  gap_threshold_ns = (uint64_t)(gap_ms * 1e6);
  const uint64_t slice_ns = (uint64_t)(slice_us * 1000);
  const uint64_t publish_ns = (uint64_t)(publish_ms * 1e6);
  /* After a long stall, write at most 10 slices' worth at once: a steady rate, not a catch-up burst. */
  const double max_owed = rate * 10 * (double)slice_ns / 1e9 + 1;

  uint64_t written = 0, hot_written = 0, cold_written = 0, seq = 0;
  size_t hot_next = 0;
  uint64_t cold_next = 0;
  double owed = 0, hot_credit = 0;
  const uint64_t start = now_ns();
  /* `last`: the previous observation; `credited`: how far the rate has been turned into pages owed. */
  uint64_t last = start, credited = start, next_wake = start + slice_ns, next_publish = start;
  for (;;) {
    struct timespec wake = {.tv_sec = (time_t)(next_wake / 1000000000ull),
                            .tv_nsec = (long)(next_wake % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR) {
    }
    uint64_t t = now_ns();
    observe(t, last > next_wake ? last : next_wake, 0);
    owed += rate * (double)(t - credited) / 1e9;
    if (owed > max_owed) owed = max_owed;
    credited = t;
    last = t;
    for (; owed >= 1; owed -= 1) {
      size_t page;
      hot_credit += hot_fraction;
      if (hot_credit >= 1) {
        hot_credit -= 1;
        page = hot_next;
        hot_next = (hot_next + 1) % hot_pages;
        hot_written++;
      } else {
        page = hot_pages + (size_t)cold_next;
        cold_next = (cold_next + stride) % cold_pages;
        cold_written++;
      }
      region[page * WORDS_PER_PAGE] = ++seq;
      written++;
      t = now_ns();
      observe(t, last, 1);
      last = t;
    }
    int marking = mark_requested;
    if (marking) {
      mark_requested = 0;
      marks++;
    }
    if (marking || t >= next_publish) {
      publish(path, tmp, written, hot_written, cold_written, t - start, region_pages, hot_pages);
      /* The line just published closed the window that ends at this mark; the next starts here. */
      if (marking) max_gap_ns = 0;
      next_publish = t + publish_ns;
      /* Writing the status is this program's own work, not a stall. */
      last = now_ns();
    }
    while (next_wake <= last) next_wake += slice_ns;
  }
}
