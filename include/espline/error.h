/*
 * error.h - errors as values, with context.
 *
 * Every espline function that can fail returns 0 (ESPL_OK) or a negative
 * ESPL_E* code, and fills an espl_error the caller owns with a message that
 * says what failed and, where it can, what the operator should do.  Functions
 * that transfer bytes may return a positive count instead of ESPL_OK, in the
 * manner of libserialport.
 *
 * Nothing here prints, allocates or keeps global state: an espl_error lives
 * on the caller's stack, so one worker thread never sees another's error.
 */
#ifndef ESPLINE_ERROR_H
#define ESPLINE_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define ESPL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define ESPL_PRINTF(fmt, args)
#endif

enum espl_code {
	ESPL_OK = 0,
	ESPL_EARG = -1,          /* invalid argument: a caller bug or bad user input */
	ESPL_ESYS = -2,          /* the OS said no; the message carries its reason */
	ESPL_ENOMEM = -3,        /* out of memory */
	ESPL_ETIMEOUT = -4,      /* nothing (or not enough) arrived in time */
	ESPL_EPROTO = -5,        /* malformed frame or response */
	ESPL_EDEVICE = -6,       /* the chip answered with an error status */
	ESPL_EUNSUPPORTED = -7,  /* this port or chip cannot do that (e.g. no modem lines) */
	ESPL_ENOTFOUND = -8,     /* no such port, file or record */
	ESPL_EDISCONNECTED = -9, /* the port went away (unplugged, closed by peer) */
	ESPL_EMISMATCH = -10,    /* a hash or comparison did not match */
	ESPL_ECHIP = -11,        /* the chip is not the one expected */
	ESPL_ERECIPE = -12,      /* the recipe is invalid */
	ESPL_EDB = -13,          /* the database refused */
	ESPL_EINTERRUPTED = -14, /* stopped on request (signal, shutdown) */
	ESPL_EBUSY = -15,        /* resource in use (port locked by another program) */
	ESPL_EPERM = -16,        /* permission denied */
	ESPL_EPART = -17,        /* an ESP8266, but not a part the recipe accepts (expect:) */
	ESPL_EBOOT = -18,        /* programmed, but the firmware did not boot (boot_check) */
	ESPL_EREFUSED = -19,     /* the station refused the unit before programming (scan, route check) */
};

/* Longest message kept; longer ones are truncated, never overflowed. */
#define ESPL_ERROR_MAX 512

typedef struct espl_error {
	enum espl_code code;        /* ESPL_OK or a negative ESPL_E* */
	char msg[ESPL_ERROR_MAX];   /* human-readable, no trailing newline */
} espl_error;

/* Short fixed name of a code, e.g. "timeout". Never NULL. */
const char *espl_strerror(int code);

/* Set *err (if err is non-NULL) to code and a formatted message; returns code
 * so that callers can write `return espl_fail(err, ESPL_EARG, "...")`. */
int espl_fail(espl_error *err, int code, const char *fmt, ...) ESPL_PRINTF(3, 4);

/* Like espl_fail for a failed system call: maps errno to a code (ENOENT to
 * ESPL_ENOTFOUND, EACCES/EPERM to ESPL_EPERM, EBUSY to ESPL_EBUSY, else
 * ESPL_ESYS) and appends strerror(errno) to the message. */
int espl_fail_errno(espl_error *err, const char *fmt, ...) ESPL_PRINTF(2, 3);

/* Prepend context to an existing message: "context: old message". Keeps the
 * code. Used as errors travel up the layers. */
void espl_error_prefix(espl_error *err, const char *fmt, ...) ESPL_PRINTF(2, 3);

/* Reset to ESPL_OK with an empty message. */
void espl_error_clear(espl_error *err);

/* Propagate a failure: evaluate expr once, return its value if negative. */
#define ESPL_TRY(expr)                      \
	do {                                \
		int espl_try_rc_ = (expr);  \
		if (espl_try_rc_ < 0)       \
			return espl_try_rc_; \
	} while (0)

#endif /* ESPLINE_ERROR_H */
