/* central_batches.c - the list of batches and the stations' latest state in
 * the central database; see include/espline/central_query.h.  Counts come
 * from the units received, as in the local list (record/batches.c). */
#include "espline/central_query.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_COUNTS                                                                    \
	" (SELECT count(*) FROM units WHERE batch_id = b.id),"                          \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'PASS'),"      \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'FAIL')"
#define BATCHES_SQL                                                                     \
	"SELECT b.uuid, b.name, s.name, s.host, r.name, b.operator, b.started_ms,"     \
	" COALESCE(b.ended_ms, 0), b.planned," BATCH_COUNTS ", r.sha256"                \
	" FROM batches AS b JOIN stations AS s ON s.id = b.station_id"                  \
	" JOIN recipes AS r ON r.id = b.recipe_id"                                      \
	" ORDER BY b.started_ms DESC, b.id DESC LIMIT $1"
/* A station is its name and host (a new espline version is a new stations
 * row, the same station).  Its latest batch, and the newest unit anywhere
 * from it. */
#define STATIONS_SQL                                                                    \
	"SELECT DISTINCT ON (s.name, s.host) s.name, s.host, b.name, r.name,"          \
	" b.started_ms, COALESCE(b.ended_ms, 0), b.planned," BATCH_COUNTS ","          \
	" (SELECT COALESCE(max(u.ended_ms), 0) FROM units AS u JOIN batches AS b2"      \
	"    ON b2.id = u.batch_id JOIN stations AS s2 ON s2.id = b2.station_id"        \
	"    WHERE s2.name = s.name AND s2.host = s.host)"                              \
	" FROM batches AS b JOIN stations AS s ON s.id = b.station_id"                  \
	" JOIN recipes AS r ON r.id = b.recipe_id"                                      \
	" ORDER BY s.name, s.host, b.started_ms DESC, b.id DESC"

static const char *text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

static int64_t num(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Run a query whose result is small (bounded by LIMIT or by the number of
 * stations): *out is the result, to PQclear. */
static int fetch(PGconn *conn, const char *sql, const char *param, const char *what, PGresult **out,
                 espl_error *err)
{
	const char *values[1] = { param };
	PGresult *r = PQexecParams(conn, sql, param ? 1 : 0, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char msg[ESPL_ERROR_MAX];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		PQclear(r);
		return espl_fail(err, ESPL_EDB, "central database: %s: %s", what, msg);
	}
	*out = r;
	return ESPL_OK;
}

int espl_central_batches(PGconn *conn, int limit, espl_report_batch_cb cb, void *user, espl_error *err)
{
	if (!cb || limit <= 0)
		return espl_fail(err, ESPL_EARG, "batches: a callback and a positive limit are needed");
	char lim[16];
	snprintf(lim, sizeof lim, "%d", limit);
	PGresult *r;
	ESPL_TRY(fetch(conn, BATCHES_SQL, lim, "listing batches", &r, err));
	int n = PQntuples(r), stop = 0, i;
	for (i = 0; i < n && !stop; i++) {
		espl_report_batch b = {
			.uuid = text(r, i, 0), .name = text(r, i, 1), .station = text(r, i, 2),
			.host = text(r, i, 3), .recipe = text(r, i, 4), .operator_name = text(r, i, 5),
			.started_ms = num(r, i, 6), .ended_ms = num(r, i, 7), .planned = num(r, i, 8),
			.units = num(r, i, 9), .passed = num(r, i, 10), .failed = num(r, i, 11),
			.recipe_sha256 = text(r, i, 12),
		};
		stop = cb(&b, user);
	}
	PQclear(r);
	return stop ? stop : i;
}

int espl_central_stations(PGconn *conn, espl_central_station_cb cb, void *user, espl_error *err)
{
	if (!cb)
		return espl_fail(err, ESPL_EARG, "stations: a callback is needed");
	PGresult *r;
	ESPL_TRY(fetch(conn, STATIONS_SQL, NULL, "listing stations", &r, err));
	int n = PQntuples(r), stop = 0, i;
	for (i = 0; i < n && !stop; i++) {
		espl_central_station s = {
			.station = text(r, i, 0), .host = text(r, i, 1), .batch = text(r, i, 2),
			.recipe = text(r, i, 3), .batch_started_ms = num(r, i, 4), .batch_ended_ms = num(r, i, 5),
			.planned = num(r, i, 6), .units = num(r, i, 7), .passed = num(r, i, 8),
			.failed = num(r, i, 9), .last_unit_ms = num(r, i, 10),
		};
		stop = cb(&s, user);
	}
	PQclear(r);
	return stop ? stop : i;
}
