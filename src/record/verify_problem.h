/* verify_problem.h - how a chain verification remembers what it found
 * (internal to libespline, not installed).
 *
 * The local check (espl_db_verify) and the central one (espl_central_verify)
 * report the same way: ok drops to 0 at the first problem, which is kept
 * with its chain position and uuid; later problems are ignored, because the
 * first break is the one the operator must look at.  Both results have the
 * fields ok, bad_seq, bad_uuid and problem; ESPL_VERIFY_PROBLEM fills them.
 *
 * Thread-safety: touches only the result it is given.
 */
#ifndef ESPLINE_VERIFY_PROBLEM_H
#define ESPLINE_VERIFY_PROBLEM_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* Record the first problem: *ok = 0, seq, uuid (NULL: none) and the
 * message; nothing when *ok is already 0. */
static inline void espl_verify_problem(int *ok, int64_t *bad_seq, char *bad_uuid,
				       size_t uuid_size, char *problem, size_t problem_size,
				       int64_t seq, const char *uuid, const char *fmt, va_list ap)
{
	if (!*ok)
		return; /* keep the first */
	*ok = 0;
	*bad_seq = seq;
	snprintf(bad_uuid, uuid_size, "%s", uuid ? uuid : "");
	vsnprintf(problem, problem_size, fmt, ap);
}

/* For a result r with the four fields, inside a variadic function. */
#define ESPL_VERIFY_PROBLEM(r, seq, uuid, fmt)                                               \
	do {                                                                                 \
		va_list ap_;                                                                 \
		va_start(ap_, fmt);                                                          \
		espl_verify_problem(&(r)->ok, &(r)->bad_seq, (r)->bad_uuid,                  \
				    sizeof (r)->bad_uuid, (r)->problem, sizeof (r)->problem, \
				    seq, uuid, fmt, ap_);                                    \
		va_end(ap_);                                                                 \
	} while (0)

#endif /* ESPLINE_VERIFY_PROBLEM_H */
