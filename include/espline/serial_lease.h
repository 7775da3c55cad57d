/*
 * serial_lease.h - ranges of serial numbers leased from the central
 * PostgreSQL, so that stations sharing a counter never give the same
 * number, even while the server is unreachable.
 *
 * The central database keeps, per counter, the next number no station has
 * had (serial_counters) and every range handed out (serial_leases: counter,
 * the station that took it, first, last).  A lease is one statement: the
 * counter's row is created or advanced under PostgreSQL's row lock, so two
 * stations leasing at once get disjoint ranges.  A station keeps its ranges
 * in its local database (serials.h, espl_db_lease_add) and takes numbers
 * from them only; a range taken but never recorded locally (a crash between
 * the two) is a gap, never a duplicate.
 *
 * Errors: the connect errors of central.h (redacted), ESPL_EDB for the
 * server's refusal, ESPL_EARG for a bad request.  Reentrant: each call
 * opens and closes its own connection.
 */
#ifndef ESPLINE_SERIAL_LEASE_H
#define ESPLINE_SERIAL_LEASE_H

#include <stdint.h>

#include "espline/error.h"

/* Lease n numbers of counter for station (a name for the record).  A new
 * counter starts at first_default.  *first .. *last is the range. */
int espl_central_lease_serials(const char *conninfo, const char *counter, const char *station,
                               uint32_t first_default, uint32_t n, uint64_t *first, uint64_t *last,
                               espl_error *err);

#endif /* ESPLINE_SERIAL_LEASE_H */
