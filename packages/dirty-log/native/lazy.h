/* Lazy restore (lazy.c), kept apart from tracking (agent.c): guest RAM starts empty and is
 * filled from the checkpoint store's page files, on MISSING faults and by a background loader,
 * through a lazy map the controller writes (FORMAT.md "Lazy map"). */
#ifndef VPC_LAZY_H
#define VPC_LAZY_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Commands (agent.c and lazy.c) fail by returning an errno with `msg` (of `msgcap` bytes) set. */
#define FAIL(e, ...)                                 \
	do {                                         \
		int fail_errno_ = (e);               \
		snprintf(msg, msgcap, __VA_ARGS__);  \
		return fail_errno_;                  \
	} while (0)

enum { LAZY_OP_LOAD = 17, LAZY_OP_STATUS = 18 };

/* Runs op LAZY_OP_LOAD or LAZY_OP_STATUS: the reply's JSON object goes to `json`, or an errno is
 * returned with `msg` saying why. */
int lazy_command(uint16_t op, const uint8_t *in, size_t n, char *json, size_t cap, char *msg,
		 size_t msgcap);

/* Tracking registers the same range with its own userfaultfd, and a range takes only one: before
 * attach, wait until a lazy load has filled every page and unregistered (0), or name its failure
 * (an errno, `msg` set). Returns 0 at once when no lazy load was started. */
int lazy_settle(char *msg, size_t msgcap);

/* The largest shared, writable mapping of the file `real` (a resolved path) in /proc/self/maps:
 * 0 and its start, length and file offset, or -1 when there is none. */
int find_shared_mapping(const char *real, uint8_t **base, size_t *len, off_t *file_off);

/* XXH64 (seed 0), as the checkpoint store checksums its page blocks. */
uint64_t xxh64(const void *data, size_t len);

#endif
