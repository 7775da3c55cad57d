/* batches.c - the list of batches, newest first; see include/espline/report.h.
 * Counts come from the units themselves (not the batch row's counters), so a
 * batch still running shows what is recorded so far. */
#include "espline/report.h"

#include <sqlite3.h>

#define BATCHES_SQL                                                                   \
	"SELECT b.uuid, b.name, s.name, s.host, r.name, b.operator, b.started_ms,"   \
	" COALESCE(b.ended_ms, 0), b.planned,"                                        \
	" (SELECT count(*) FROM units WHERE batch_id = b.id),"                        \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'PASS'),"    \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'FAIL')"     \
	" FROM batches AS b JOIN stations AS s ON s.id = b.station_id"                \
	" JOIN recipes AS r ON r.id = b.recipe_id"                                    \
	" ORDER BY b.started_ms DESC, b.id DESC LIMIT ?"

static const char *text_or_empty(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t ? t : "";
}

static void row_to_batch(sqlite3_stmt *s, espl_report_batch *b)
{
	b->uuid = text_or_empty(s, 0);
	b->name = text_or_empty(s, 1);
	b->station = text_or_empty(s, 2);
	b->host = text_or_empty(s, 3);
	b->recipe = text_or_empty(s, 4);
	b->operator_name = text_or_empty(s, 5);
	b->started_ms = sqlite3_column_int64(s, 6);
	b->ended_ms = sqlite3_column_int64(s, 7);
	b->planned = sqlite3_column_int64(s, 8);
	b->units = sqlite3_column_int64(s, 9);
	b->passed = sqlite3_column_int64(s, 10);
	b->failed = sqlite3_column_int64(s, 11);
}

int espl_report_batches(espl_db *db, int limit, espl_report_batch_cb cb, void *user, espl_error *err)
{
	sqlite3 *conn = espl_db_sqlite(db);
	sqlite3_stmt *s;
	if (!cb || limit <= 0)
		return espl_fail(err, ESPL_EARG, "batches: a callback and a positive limit are needed");
	if (sqlite3_prepare_v2(conn, BATCHES_SQL, -1, &s, NULL) != SQLITE_OK)
		return espl_fail(err, ESPL_EDB, "database %s: listing batches: %s", espl_db_filename(db),
		                 sqlite3_errmsg(conn));
	sqlite3_bind_int(s, 1, limit);
	int n = 0, rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		espl_report_batch b;
		row_to_batch(s, &b);
		n++;
		stop = cb(&b, user);
	}
	if (!stop && rc != SQLITE_DONE) {
		espl_fail(err, ESPL_EDB, "database %s: listing batches: %s", espl_db_filename(db),
		          sqlite3_errmsg(conn));
		sqlite3_finalize(s);
		return ESPL_EDB;
	}
	sqlite3_finalize(s);
	return stop ? stop : n;
}
