/* batches.c - the list of batches, newest first; see include/espline/report.h.
 * Counts come from the units themselves (not the batch row's counters), so a
 * batch still running shows what is recorded so far. */
#include "espline/report.h"

#include <sqlite3.h>
#include <stdio.h>

#define BATCHES_COLS                                                                  \
	"SELECT b.uuid, b.name, s.name, s.host, r.name, b.operator, b.started_ms,"   \
	" COALESCE(b.ended_ms, 0), b.planned,"                                        \
	" (SELECT count(*) FROM units WHERE batch_id = b.id),"                        \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'PASS'),"    \
	" (SELECT count(*) FROM units WHERE batch_id = b.id AND result = 'FAIL'),"    \
	" r.sha256"                                                                   \
	" FROM batches AS b JOIN stations AS s ON s.id = b.station_id"                \
	" JOIN recipes AS r ON r.id = b.recipe_id"
#define BATCHES_SQL BATCHES_COLS " ORDER BY b.started_ms DESC, b.id DESC LIMIT ?"
#define BATCHES_NAMED_SQL BATCHES_COLS " WHERE b.name = ? ORDER BY b.started_ms DESC, b.id DESC"

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
	b->recipe_sha256 = text_or_empty(s, 12);
}

static int list_batches(espl_db *db, const char *sql, int limit, const char *name, espl_report_batch_cb cb,
                        void *user, espl_error *err)
{
	sqlite3 *conn = espl_db_sqlite(db);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(conn, sql, -1, &s, NULL) != SQLITE_OK)
		return espl_fail(err, ESPL_EDB, "database %s: listing batches: %s", espl_db_filename(db),
		                 sqlite3_errmsg(conn));
	if (name)
		sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_int(s, 1, limit);
	int n = 0, rc = SQLITE_DONE, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		espl_report_batch b;
		row_to_batch(s, &b);
		n++;
		stop = cb ? cb(&b, user) : 0;
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

int espl_report_batches(espl_db *db, int limit, espl_report_batch_cb cb, void *user, espl_error *err)
{
	if (!cb || limit <= 0)
		return espl_fail(err, ESPL_EARG, "batches: a callback and a positive limit are needed");
	return list_batches(db, BATCHES_SQL, limit, NULL, cb, user, err);
}

int espl_report_batches_named(espl_db *db, const char *name, espl_report_batch_cb cb, void *user,
                              espl_error *err)
{
	if (!name)
		return espl_fail(err, ESPL_EARG, "batches: a name is needed");
	return list_batches(db, BATCHES_NAMED_SQL, 0, name, cb, user, err);
}

int espl_report_device_commands(espl_db *db, const char *mac, espl_report_command_cb cb, void *user,
                                espl_error *err)
{
	char norm[18], like[32];
	sqlite3 *conn = espl_db_sqlite(db);
	sqlite3_stmt *s;
	if (!cb || espl_db_normalize_mac(mac, norm) < 0)
		return espl_fail(err, ESPL_EARG, "device commands: a callback and a MAC are needed");
	snprintf(like, sizeof like, "mac=%s %%", norm);
	if (sqlite3_prepare_v2(conn, "SELECT time_ms, level, kind, message FROM events WHERE kind LIKE 'device-%'"
	                       " AND message LIKE ?1 ORDER BY time_ms DESC, id DESC", -1, &s, NULL) != SQLITE_OK)
		return espl_fail(err, ESPL_EDB, "database %s: device commands: %s", espl_db_filename(db),
		                 sqlite3_errmsg(conn));
	sqlite3_bind_text(s, 1, like, -1, SQLITE_TRANSIENT);
	int n = 0, rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		stop = cb(sqlite3_column_int64(s, 0), text_or_empty(s, 1), text_or_empty(s, 2), text_or_empty(s, 3),
		          user);
	}
	sqlite3_finalize(s);
	return stop ? stop : n;
}
