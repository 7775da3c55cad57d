/*
 * central_int.h - what the central module's files share (internal to
 * src/central, not installed; private names start with espl__central_).
 *
 *   central.c  connection strings and redaction, errors, the central schema
 *   sender.c   sending records, the sender thread
 *   central_query.c  history, report, export and verify on the server
 *   serial_lease.c   ranges of serial numbers leased to stations
 *
 * Thread-safety: as central.h.
 */
#ifndef ESPLINE_CENTRAL_INT_H
#define ESPLINE_CENTRAL_INT_H

#include <libpq-fe.h>

#include "espline/central.h"

/* central.c */
/* Run sql (no result rows); on failure fill err with the server's message,
 * the password of conninfo removed. */
int espl__central_exec_ok(PGconn *conn, const char *conninfo, const char *sql, espl_error *err);
/* Run a parameterized statement; *res (when not NULL) receives its result. */
int espl__central_exec_params(PGconn *conn, const char *conninfo, const char *what,
			      const char *sql, int n, const char *const *values, PGresult **res,
			      espl_error *err);

#endif /* ESPLINE_CENTRAL_INT_H */
