/*
 * fixture.h - a fixture's reset commands: how a pogo-pin jig without an
 * auto-reset circuit pulls EN and GPIO0 (a relay board, a GPIO tool such
 * as libgpiod's gpioset on a Raspberry Pi based station, a vendor CLI).
 *
 * Each command is a string split at blanks into argv (no shell, no quoting,
 * no variables: what is written is what runs, found through $PATH), run
 * with stdin, stdout and stderr on /dev/null, and must exit 0 within
 * timeout_ms; a command still running then is killed (SIGKILL).  Commands
 * run one after the other; the first that fails stops the sequence.
 *
 * Thread safety: no shared state; any thread (fork/exec per command).
 */
#ifndef ESPLINE_FIXTURE_H
#define ESPLINE_FIXTURE_H

#include <stddef.h>

#include "espline/error.h"

#define ESPL_FIXTURE_TIMEOUT_MS 5000
#define ESPL_FIXTURE_MAX_ARGS 32

/* Run cmds[0..n) in order.  0, or ESPL_ETIMEOUT / ESPL_ENOTFOUND /
 * ESPL_ESYS / ESPL_EARG with the command and what went wrong
 * ("exited 3", "killed after 5000 ms"); what says which sequence
 * ("download", "run") for the message. */
int espl_fixture_run(char *const *cmds, size_t n, const char *what, unsigned timeout_ms, espl_error *err);

#endif /* ESPLINE_FIXTURE_H */
