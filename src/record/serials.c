/* serials.c - serial numbers and CSV rows reserved, committed, returned
 * and voided in the local database; see include/espline/serials.h. */
#include "espline/serials.h"
#include "espline/unitdata.h"
#include "record/db_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* One statement: prepare, bind text (NULL = SQL NULL) or integers, step.
 * For a row, *row is the live statement (caller finalizes); else it is
 * finalized here. */
typedef struct arg {
	const char *text;
	int64_t num;
	int is_num;
} arg;
#define T(s) ((arg){ (s), 0, 0 })
#define N(n) ((arg){ NULL, (n), 1 })

static int run(espl_db *db, const char *sql, const arg *a, int n, sqlite3_stmt **row, espl_error *err)
{
	sqlite3_stmt *s;
	if (row)
		*row = NULL;
	ESPL_TRY(espl__db_prepare_once(db, sql, &s, err));
	for (int i = 0; i < n; i++) {
		if (a[i].is_num)
			sqlite3_bind_int64(s, i + 1, a[i].num);
		else
			espl__db_bind_text(s, i + 1, a[i].text);
	}
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && row) {
		*row = s;
		return 1;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return espl__db_sql_fail(db, err, rc, sql);
	return 0;
}

static int event(espl_db *db, int64_t now, const char *kind, const char *unit_uuid, const char *msg,
                 espl_error *err)
{
	espl_db_event e = { now, "warn", kind, NULL, unit_uuid, msg };
	return espl_db_add_event(db, &e, err);
}

/* ---- serial numbers ------------------------------------------------------ */

static int reuse_serial(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->counter), T(q->mac) };
	int rc = run(db, "SELECT serial, seq FROM serials WHERE counter = ?1 AND mac = ?2 AND state = 'committed'"
	                 " ORDER BY seq LIMIT 1", a, 2, &s, err);
	if (rc <= 0)
		return rc;
	snprintf(out->serial, sizeof out->serial, "%s", (const char *)sqlite3_column_text(s, 0));
	out->seq = (uint64_t)sqlite3_column_int64(s, 1);
	out->serial_reused = 1;
	sqlite3_finalize(s);
	return 1;
}

/* A station on its own: one more than the highest number of the counter. */
static int take_next(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->counter) };
	int rc = run(db, "SELECT max(seq) FROM serials WHERE counter = ?1", a, 1, &s, err);
	ESPL_TRY(rc);
	out->seq = rc == 1 && sqlite3_column_type(s, 0) != SQLITE_NULL ? (uint64_t)sqlite3_column_int64(s, 0) + 1 : q->first;
	if (rc == 1)
		sqlite3_finalize(s);
	return ESPL_OK;
}

/* A station sharing the counter: the next number of its oldest range. */
static int take_leased(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->counter) };
	int rc = run(db, "SELECT id, next FROM serial_leases WHERE counter = ?1 AND next <= last ORDER BY first LIMIT 1",
	             a, 1, &s, err);
	ESPL_TRY(rc);
	if (rc == 0) {
		out->need_lease = 1;
		return espl_fail(err, ESPL_ENOTFOUND, "no serial number of counter %s is left in the ranges leased from the central database",
		                 q->counter);
	}
	int64_t id = sqlite3_column_int64(s, 0);
	out->seq = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_finalize(s);
	arg u[] = { N(id) };
	return run(db, "UPDATE serial_leases SET next = next + 1 WHERE id = ?1", u, 1, NULL, err);
}

/* The lowest returned number, else the next new one. */
static int take_serial(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->counter) };
	int rc = run(db, "SELECT seq, serial FROM serials WHERE counter = ?1 AND state = 'returned' ORDER BY seq LIMIT 1",
	             a, 1, &s, err);
	ESPL_TRY(rc);
	if (rc == 1) {
		out->seq = (uint64_t)sqlite3_column_int64(s, 0);
		snprintf(out->serial, sizeof out->serial, "%s", (const char *)sqlite3_column_text(s, 1));
		sqlite3_finalize(s);
		arg u[] = { T(q->unit_uuid), T(q->mac), N(q->now_ms), N(q->serial_void_on_fail), T(q->counter), N((int64_t)out->seq) };
		return run(db, "UPDATE serials SET state = 'reserved', unit_uuid = ?1, mac = ?2, changed_ms = ?3,"
		               " void_on_fail = ?4, reason = NULL WHERE counter = ?5 AND seq = ?6", u, 6, NULL, err);
	}
	if (q->leased)
		ESPL_TRY(take_leased(db, q, out, err));
	else
		ESPL_TRY(take_next(db, q, out, err));
	espl_unit_values v = { .mac = q->mac, .time_ms = q->now_ms, .seq = out->seq };
	size_t n = 0;
	if (espl_template_render(q->format, strlen(q->format), ESPL_TEMPLATE_SERIAL, &v, (uint8_t *)out->serial,
	                         sizeof out->serial - 1, &n, err) < 0)
		return err->code;
	out->serial[n] = '\0';
	arg ins[] = { T(q->counter), N((int64_t)out->seq), T(out->serial), T(q->unit_uuid), T(q->mac), N(q->now_ms),
	              N(q->serial_void_on_fail) };
	rc = run(db, "INSERT INTO serials (counter, seq, serial, state, unit_uuid, mac, changed_ms, void_on_fail)"
	             " VALUES (?1, ?2, ?3, 'reserved', ?4, ?5, ?6, ?7)", ins, 7, NULL, err);
	if (rc < 0)
		espl_error_prefix(err, "serial %s (counter %s, number %llu) could not be reserved (the format must give each number its own serial)",
		                  out->serial, q->counter, (unsigned long long)out->seq);
	return rc;
}

/* ---- CSV rows ------------------------------------------------------------- */

static int reuse_row(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->csv_source), T(q->mac) };
	int rc = run(db, "SELECT key FROM csv_rows WHERE source = ?1 AND mac = ?2 AND state = 'committed'"
	                 " AND position IS NOT NULL LIMIT 1", a, 2, &s, err);
	if (rc <= 0)
		return rc;
	snprintf(out->csv_key, sizeof out->csv_key, "%s", (const char *)sqlite3_column_text(s, 0));
	out->csv_reused = 1;
	sqlite3_finalize(s);
	return 1;
}

static int take_row(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(q->csv_source) };
	int rc = run(db, "SELECT key FROM csv_rows WHERE source = ?1 AND state IN ('unused', 'returned')"
	                 " AND position IS NOT NULL ORDER BY position LIMIT 1", a, 1, &s, err);
	ESPL_TRY(rc);
	if (rc == 0)
		return espl_fail(err, ESPL_ENOTFOUND, "%s is used up: every row went to a unit (or was voided); add rows to the file, then start again",
		                 q->csv_source);
	snprintf(out->csv_key, sizeof out->csv_key, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	arg u[] = { T(q->unit_uuid), T(q->mac), N(q->now_ms), N(q->csv_void_on_fail), T(q->csv_source), T(out->csv_key) };
	return run(db, "UPDATE csv_rows SET state = 'reserved', unit_uuid = ?1, mac = ?2, changed_ms = ?3,"
	               " void_on_fail = ?4, reason = NULL WHERE source = ?5 AND key = ?6", u, 6, NULL, err);
}

static int reserve_all(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	int reuse = q->reuse_for_mac && q->mac && *q->mac;
	if (q->counter) {
		int rc = reuse ? reuse_serial(db, q, out, err) : 0;
		ESPL_TRY(rc);
		if (rc == 0)
			ESPL_TRY(take_serial(db, q, out, err));
	}
	if (q->csv_source) {
		int rc = reuse ? reuse_row(db, q, out, err) : 0;
		ESPL_TRY(rc);
		if (rc == 0)
			ESPL_TRY(take_row(db, q, out, err));
	}
	arg a[] = { T(q->unit_uuid), T(out->serial[0] ? out->serial : NULL), T(q->csv_source),
	            T(out->csv_key[0] ? out->csv_key : NULL) };
	return run(db, "INSERT OR REPLACE INTO unit_identity (unit_uuid, serial, csv_source, csv_key)"
	               " VALUES (?1, ?2, ?3, ?4)", a, 4, NULL, err);
}

int espl_db_reserve(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err)
{
	memset(out, 0, sizeof *out);
	if (!q->unit_uuid || !*q->unit_uuid || (q->counter && !q->format))
		return espl_fail(err, ESPL_EARG, "a reservation needs the unit's uuid (and a serial format)");
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = reserve_all(db, q, out, err);
	if (rc < 0) {
		int need = out->need_lease;
		memset(out, 0, sizeof *out);
		out->need_lease = need;
	}
	return espl__db_tx_close(db, tx, rc, err);
}

static int register_keys(espl_db *db, const char *source, const char *const *keys, size_t n, espl_error *err)
{
	arg a[] = { T(source) };
	ESPL_TRY(run(db, "UPDATE csv_rows SET position = NULL WHERE source = ?1", a, 1, NULL, err));
	sqlite3_stmt *s;
	ESPL_TRY(espl__db_prepare_once(db, "INSERT INTO csv_rows (source, key, position, state) VALUES (?1, ?2, ?3, 'unused')"
	                                   " ON CONFLICT (source, key) DO UPDATE SET position = excluded.position", &s, err));
	for (size_t i = 0; i < n; i++) {
		espl__db_bind_text(s, 1, source);
		espl__db_bind_text(s, 2, keys[i]);
		sqlite3_bind_int64(s, 3, (int64_t)i);
		int rc = espl__db_run(db, s, err, "registering a CSV key");
		if (rc < 0) {
			sqlite3_finalize(s);
			return rc;
		}
	}
	sqlite3_finalize(s);
	return ESPL_OK;
}

int espl_db_csv_register(espl_db *db, const char *source, const char *const *keys, size_t n,
                         int64_t *unused, espl_error *err)
{
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = register_keys(db, source, keys, n, err);
	if (rc == 0 && unused) {
		sqlite3_stmt *s;
		arg a[] = { T(source) };
		rc = run(db, "SELECT count(*) FROM csv_rows WHERE source = ?1 AND position IS NOT NULL"
		             " AND state IN ('unused', 'returned')", a, 1, &s, err);
		if (rc == 1) {
			*unused = sqlite3_column_int64(s, 0);
			sqlite3_finalize(s);
			rc = 0;
		}
	}
	return espl__db_tx_close(db, tx, rc, err);
}

/* ---- settling ------------------------------------------------------------- */

/* Return or void the open reservations that match where (with ?1 bound to
 * arg), noting each in the events; reason says why. */
static int release(espl_db *db, const char *table, const char *where, arg which, int force_void,
                   const char *reason, int64_t now, int *count, espl_error *err)
{
	char sql[512];
	sqlite3_stmt *s;
	const char *what = strcmp(table, "serials") == 0 ? "serial" : "key";
	snprintf(sql, sizeof sql, "SELECT %s, unit_uuid, void_on_fail%s FROM %s WHERE state = 'reserved' AND %s",
	         what, strcmp(table, "serials") == 0 ? ", counter" : ", source", table, where);
	ESPL_TRY(espl__db_prepare_once(db, sql, &s, err));
	espl__db_bind_text(s, 1, which.text);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char msg[600];
		int voided = force_void || sqlite3_column_int(s, 2);
		const char *unit = (const char *)sqlite3_column_text(s, 1);
		snprintf(msg, sizeof msg, "%s %s of %s %s: %s", strcmp(table, "serials") == 0 ? "serial" : "CSV row",
		         (const char *)sqlite3_column_text(s, 0), strcmp(table, "serials") == 0 ? "counter" : "file",
		         (const char *)sqlite3_column_text(s, 3), voided ? "voided" : "returned");
		snprintf(msg + strlen(msg), sizeof msg - strlen(msg), " (%s)", reason);
		if (event(db, now, voided ? "identity-voided" : "identity-returned", unit, msg, err) < 0) {
			sqlite3_finalize(s);
			return err->code;
		}
		++*count;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return espl__db_sql_fail(db, err, rc, "reading reservations");
	snprintf(sql, sizeof sql, "UPDATE %s SET state = CASE WHEN ?2 OR void_on_fail THEN 'voided' ELSE 'returned' END,"
	         " changed_ms = ?3, reason = ?4 WHERE state = 'reserved' AND %s", table, where);
	arg a[] = { which, N(force_void), N(now), T(reason) };
	return run(db, sql, a, 4, NULL, err);
}

static int leased_left(espl_db *db, const char *counter, int64_t *left, espl_error *err)
{
	sqlite3_stmt *s;
	arg a[] = { T(counter) };
	int rc = run(db, "SELECT coalesce(sum(last - next + 1), 0) FROM serial_leases WHERE counter = ?1 AND next <= last",
	             a, 1, &s, err);
	ESPL_TRY(rc);
	*left = rc == 1 ? sqlite3_column_int64(s, 0) : 0;
	if (rc == 1)
		sqlite3_finalize(s);
	return ESPL_OK;
}

int espl_db_lease_add(espl_db *db, const char *counter, uint64_t first, uint64_t last, int64_t now_ms,
                      int64_t *left, espl_error *err)
{
	int64_t n = 0;
	if (!counter || (first && last < first))
		return espl_fail(err, ESPL_EARG, "a lease needs a counter and a range");
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = ESPL_OK;
	if (first) {
		arg a[] = { T(counter), N((int64_t)first), N((int64_t)last), N(now_ms) };
		rc = run(db, "INSERT INTO serial_leases (counter, first, last, next, leased_ms) VALUES (?1, ?2, ?3, ?2, ?4)",
		         a, 4, NULL, err);
	}
	if (rc == 0)
		rc = leased_left(db, counter, &n, err);
	if (rc == 0 && left)
		*left = n;
	return espl__db_tx_close(db, tx, rc, err);
}

int espl_db_settle(espl_db *db, const char *unit_uuid, int result, int64_t now_ms, espl_error *err)
{
	int count = 0;
	if (espl_db_schema_version(db) < 5)
		return ESPL_OK;
	if (result == ESPL_DB_PASS) {
		arg a[] = { T(unit_uuid), N(now_ms) };
		ESPL_TRY(run(db, "UPDATE serials SET state = 'committed', changed_ms = ?2 WHERE unit_uuid = ?1 AND state = 'reserved'",
		             a, 2, NULL, err));
		return run(db, "UPDATE csv_rows SET state = 'committed', changed_ms = ?2 WHERE unit_uuid = ?1 AND state = 'reserved'",
		           a, 2, NULL, err);
	}
	const char *why = result == ESPL_DB_FAIL ? "the unit failed" : "the unit was interrupted";
	ESPL_TRY(release(db, "serials", "unit_uuid = ?1", T(unit_uuid), 0, why, now_ms, &count, err));
	return release(db, "csv_rows", "unit_uuid = ?1", T(unit_uuid), 0, why, now_ms, &count, err);
}

int espl_db_void_open(espl_db *db, int64_t now_ms, int *count, espl_error *err)
{
	const char *why = "the station stopped before the unit completed; the unit may hold it, so it is never handed out again";
	*count = 0;
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = release(db, "serials", "?1 IS NULL", T(NULL), 1, why, now_ms, count, err);
	if (rc == 0)
		rc = release(db, "csv_rows", "?1 IS NULL", T(NULL), 1, why, now_ms, count, err);
	return espl__db_tx_close(db, tx, rc, err);
}
