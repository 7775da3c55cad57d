/* serial_lease.c - ranges of serial numbers from the central database; see
 * include/espline/serial_lease.h. */
#include "espline/serial_lease.h"
#include "espline/central.h"
#include "central/central_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Created or advanced in one statement: ON CONFLICT DO UPDATE holds the
 * counter's row lock until the lease row is in. */
static const char lease_sql[] =
	"WITH c AS (INSERT INTO serial_counters (counter, next) VALUES ($1, $2::bigint + $3::bigint)"
	"  ON CONFLICT (counter) DO UPDATE SET next = serial_counters.next + $3::bigint"
	"  RETURNING next - $3::bigint AS first)"
	" INSERT INTO serial_leases (counter, station, first, last, leased_ms)"
	" SELECT $1, $4, c.first, c.first + $3::bigint - 1, $5::bigint FROM c RETURNING first, last";

int espl_central_lease_serials(const char *conninfo, const char *counter, const char *station,
                               uint32_t first_default, uint32_t n, uint64_t *first, uint64_t *last,
                               espl_error *err)
{
	PGconn *conn;
	PGresult *r = NULL;
	char dflt[24], count[24], now[24];
	if (!conninfo || !counter || !station || n == 0)
		return espl_fail(err, ESPL_EARG, "a lease needs the server, the counter, the station and a count");
	ESPL_TRY(espl_central_connect(&conn, conninfo, err));
	snprintf(dflt, sizeof dflt, "%" PRIu32, first_default);
	snprintf(count, sizeof count, "%" PRIu32, n);
	snprintf(now, sizeof now, "%lld", (long long)time(NULL) * 1000);
	const char *v[] = { counter, dflt, count, station, now };
	int rc = espl__central_exec_params(conn, conninfo, "leasing serial numbers", lease_sql, 5, v, &r, err);
	if (rc == 0 && PQntuples(r) == 1) {
		*first = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		*last = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	} else if (rc == 0) {
		rc = espl_fail(err, ESPL_EDB, "leasing serial numbers: the server returned no range");
	}
	PQclear(r);
	espl_central_disconnect(conn);
	return rc;
}
