/*
 * spawn.h - run a command without a shell, with a time limit, safely from
 * any thread (internal: not part of the public API; names start with
 * espl__).  One place for every child process espline starts: a fixture's
 * reset commands, the station's hooks (route_check, on_unit_done) and a
 * label printer command.
 *
 * argv is run as given (argv[0] found through $PATH; no shell, no
 * splitting, no variables).  The child gets `in` on its stdin through a
 * pipe (or /dev/null when in is NULL), its stdout captured up to
 * ESPL_SPAWN_OUT_MAX bytes (the rest is read and dropped), its stderr on
 * /dev/null, and no other file descriptor of ours: every descriptor from 3
 * up is closed in the child (posix_spawn_file_actions_addclosefrom_np), so
 * a hook never holds a worker's serial port or the database open.  It runs
 * with no signal blocked (whatever the calling thread blocks) and SIGPIPE,
 * SIGINT, SIGTERM at their defaults, in a process group of its own; when
 * timeout_ms passes, the whole group
 * is killed (SIGKILL) and reaped.  A child that exits without reading its
 * stdin does not kill us: SIGPIPE is blocked in this thread while writing
 * and a pending one is consumed.
 *
 * Returns ESPL_OK when the child ran and ended by itself (whatever its exit
 * status: res says it), ESPL_ETIMEOUT when it was killed at the time limit
 * (res->timed_out), ESPL_ENOTFOUND when argv[0] cannot be found,
 * ESPL_ESYS / ESPL_ENOMEM for the rest; the message says what happened,
 * without naming the command (the caller does).
 * Thread safety: no shared state; any thread.
 */
#ifndef ESPLINE_UTIL_SPAWN_H
#define ESPLINE_UTIL_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

#include "espline/error.h"

#define ESPL_SPAWN_OUT_MAX 1024

typedef struct espl__spawn_result {
	bool exited;            /* ended by exit(): status is its exit status */
	int status;             /* exit status, or the signal that ended it */
	bool timed_out;         /* killed at the time limit */
	double seconds;         /* how long it ran */
	char out[ESPL_SPAWN_OUT_MAX + 1]; /* the start of its stdout, NUL-ended */
	size_t out_len;
} espl__spawn_result;

int espl__spawn_run(char *const argv[], const void *in, size_t in_len, unsigned timeout_ms,
                    espl__spawn_result *res, espl_error *err);

/* "exited 3", "killed by signal 9", "still running after 5000 ms: killed":
 * how a child ended, for messages.  Returns buf. */
const char *espl__spawn_outcome(const espl__spawn_result *res, unsigned timeout_ms, char *buf, size_t cap);

#endif /* ESPLINE_UTIL_SPAWN_H */
