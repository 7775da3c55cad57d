/* db.c - the traceability store: statements, small helpers, transactions; see include/espline/db.h and src/record/db_int.h. */
#include "espline/db.h"
#include "record/db_int.h"
#include "record/db_owned.h"
#include "util/clock.h"
#include "util/uuid.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- prepared statements, prepared on first use ------------------------ */

static const char *const stmt_sql[ST_COUNT] = {
	[ST_STATION_INS] = "INSERT OR IGNORE INTO stations (name, host, version) VALUES (?1, ?2, ?3)",
	[ST_STATION_ID] = "SELECT id FROM stations WHERE name = ?1 AND host = ?2 AND version = ?3",
	[ST_RECIPE_INS] = "INSERT OR IGNORE INTO recipes (name, sha256, yaml) VALUES (?1, ?2, ?3)",
	[ST_RECIPE_ID] = "SELECT id FROM recipes WHERE sha256 = ?1",
	[ST_IMAGE_INS] = "INSERT OR IGNORE INTO recipe_images (recipe_id, position, name, sha256)"
			 " VALUES (?1, ?2, ?3, ?4)",
	[ST_BATCH_INS] = "INSERT OR IGNORE INTO batches (uuid, name, recipe_id, station_id,"
			 " operator, started_ms, planned, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_BATCH_END] = "UPDATE batches SET ended_ms = ?2 WHERE uuid = ?1",
	[ST_BATCH_FIND] = "SELECT id, hash FROM batches WHERE uuid = ?1",
	[ST_UNIT_INS] = "INSERT OR IGNORE INTO units (uuid, batch_id, mac, chip_id, flash_id,"
			" manufacturer, flash_size, crystal_mhz, port, adapter_serial,"
			" adapter_location, started_ms, ended_ms, duration_ms, result, error_kind, error)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	[ST_UNIT_FIND] = "SELECT id, result, seq, hash, repeat_of FROM units WHERE uuid = ?1",
	[ST_UNIT_UPDATE] = "UPDATE units SET batch_id = ?2, mac = ?3, chip_id = ?4, flash_id = ?5,"
			   " manufacturer = ?6, flash_size = ?7, crystal_mhz = ?8, port = ?9,"
			   " adapter_serial = ?10, adapter_location = ?11, started_ms = ?12,"
			   " ended_ms = ?13, duration_ms = ?14, result = ?15, error_kind = ?16,"
			   " error = ?17 WHERE uuid = ?1",
	[ST_STEP_INS] = "INSERT INTO steps (unit_id, idx, kind, address, length, expected_md5,"
			" actual_md5, bytes, duration_ms, retries, result, error)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	/* any earlier PASS of the MAC, in any batch (?1, the batch, is not
	 * used: a module re-flashed in a later lot is still a repeat) */
	[ST_REPEAT_FIND] = "SELECT uuid FROM units WHERE ?1 IS NOT NULL AND mac = ?2"
			   " AND result = 'PASS' AND id <> ?3 AND seq IS NOT NULL ORDER BY seq LIMIT 1",
	[ST_REPEAT_SET] = "UPDATE units SET repeat_of = ?2 WHERE id = ?1",
	[ST_CHAIN_GET] = "SELECT seq, hash FROM chain WHERE id = 1",
	[ST_CHAIN_SET] = "UPDATE chain SET seq = ?1, hash = ?2 WHERE id = 1",
	[ST_UNIT_SEAL] = "UPDATE units SET seq = ?2, prev_hash = ?3, hash = ?4 WHERE id = ?1",
	[ST_BATCH_COUNT] = "UPDATE batches SET passed = passed + ?2, failed = failed + ?3,"
			   " interrupted = interrupted + ?4 WHERE id = ?1",
	[ST_EVENT_INS] = "INSERT INTO events (time_ms, level, kind, batch_uuid, unit_uuid, message)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_STALE_LIST] = "SELECT u.uuid FROM units AS u JOIN batches AS b ON b.id = u.batch_id"
			  " JOIN stations AS s ON s.id = b.station_id"
			  " WHERE u.result = 'RUNNING' AND s.name = ?1 AND s.host = ?2",
	[ST_UNIT_LOAD] = "SELECT " UNIT_COLS UNIT_IDENT_COLS " FROM units AS u JOIN batches AS b ON b.id = u.batch_id"
			 " WHERE u.uuid = ?1",
	[ST_SPOOL_SEEN] = "SELECT 1 FROM replayed_spools WHERE sha256 = ?1",
	[ST_SPOOL_MARK] = "INSERT OR IGNORE INTO replayed_spools (sha256, replayed_ms, records)"
			  " VALUES (?1, ?2, ?3)",
	[ST_OUTBOX_INS] = "INSERT INTO outbox (kind, ref, queued_ms) VALUES (?1, ?2, ?3)",
	/* A progressive step row: only for a unit still RUNNING (a late row for
	 * a sealed unit must not change what its hash covers); replaces a row
	 * of the same index. */
	[ST_STEP_PROGRESS] = "INSERT OR REPLACE INTO steps (unit_id, idx, kind, address, length,"
			     " expected_md5, actual_md5, bytes, duration_ms, retries, result, error)"
			     " SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 FROM units"
			     " WHERE uuid = ?1 AND result = 'RUNNING'",
	[ST_STEPS_CLEAR] = "DELETE FROM steps WHERE unit_id = ?1",
	/* A step's kept text (schema v4), set only when there is some, so that
	 * writing into an older database still works for steps without it. */
	/* A unit's slot, barcode, label (schema v6) and serial (v8), set only
	 * when it has one of them, for the same reason. */
	[ST_UNIT_IDENT] = "UPDATE units SET slot = ?2, barcode = ?3, label = ?4, serial = ?5 WHERE uuid = ?1",
	[ST_UNIT_LOAD_V5] = "SELECT " UNIT_COLS ", NULL, NULL, NULL, NULL FROM units AS u"
			    " JOIN batches AS b ON b.id = u.batch_id WHERE u.uuid = ?1",
	[ST_STEP_DETAIL] = "UPDATE steps SET detail = ?3 WHERE unit_id = ?1 AND idx = ?2",
	[ST_STEP_DETAIL_PROGRESS] = "UPDATE steps SET detail = ?3 WHERE idx = ?2 AND unit_id ="
				    " (SELECT id FROM units WHERE uuid = ?1 AND result = 'RUNNING')",
};

/* ---- small helpers ----------------------------------------------------- */

static const char *const result_names[] = { "RUNNING", "PASS", "FAIL", "INTERRUPTED", "SKIPPED" };

const char *espl_db_result_name(enum espl_db_result result)
{
	if (result < 0 || result >= (int)(sizeof result_names / sizeof result_names[0]))
		return "?";
	return result_names[result];
}

int espl_db_result_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof result_names / sizeof result_names[0]; i++)
		if (strcmp(name, result_names[i]) == 0)
			return (int)i;
	return ESPL_EARG;
}

const char *espl_db_path(const char *cli_path)
{
	return cli_path && *cli_path ? cli_path : ESPL_DB_DEFAULT_PATH;
}

int64_t espl_db_now_ms(void)
{
	return espl__wall_ms();
}

int espl_db_uuid(char out[ESPL_DB_UUID_SIZE], espl_error *err)
{
	_Static_assert(ESPL_DB_UUID_SIZE == ESPL__UUID_SIZE, "one UUID size");
	return espl__uuid4(out, err);
}

int espl_db_normalize_mac(const char *text, char out[18])
{
	unsigned oct[6];
	int n = 0;
	const char *p = text;
	if (!text)
		return ESPL_EARG;
	size_t digits = 0;
	for (const char *q = text; *q; q++)
		digits += isxdigit((unsigned char)*q) != 0;
	int packed = digits == 12 && strlen(text) == 12;
	while (n < 6) {
		unsigned v = 0;
		int len = 0;
		while (isxdigit((unsigned char)*p) && len < 2) {
			char c = (char)tolower((unsigned char)*p++);
			v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
			len++;
			if (packed && len == 2)
				break;
		}
		if (len == 0)
			return ESPL_EARG;
		oct[n++] = v;
		if (n < 6 && !packed) {
			if (*p != ':' && *p != '-' && *p != '.')
				return ESPL_EARG;
			p++;
		}
	}
	if (*p)
		return ESPL_EARG;
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", oct[0], oct[1], oct[2], oct[3],
		 oct[4], oct[5]);
	return ESPL_OK;
}

/* Environmental failures are worth a retry or a spool; the rest are the
 * record's own fault. */
static int code_for_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT: case SQLITE_MISMATCH: case SQLITE_RANGE: case SQLITE_TOOBIG:
		return ESPL_EARG;
	case SQLITE_NOMEM:
		return ESPL_ENOMEM;
	default:
		return ESPL_EDB;
	}
}

static const char *advice_for_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL: return " (free disk space, or move the database with --db)";
	case SQLITE_READONLY: case SQLITE_CANTOPEN: case SQLITE_PERM:
		return " (check the file's and its folder's permissions)";
	case SQLITE_BUSY: case SQLITE_LOCKED:
		return " (another program holds the database locked; close it)";
	case SQLITE_CORRUPT: case SQLITE_NOTADB:
		return " (the file is damaged or not an espline database)";
	case SQLITE_IOERR: return " (the disk reported an I/O error)";
	default: return "";
	}
}

int espl__db_sql_fail(espl_db *db, espl_error *err, int rc, const char *what)
{
	return espl_fail(err, code_for_sqlite(rc), "database %s: %s: %s%s", db->path, what,
			 sqlite3_errmsg(db->h), advice_for_sqlite(rc));
}

sqlite3_stmt *espl__db_stmt(espl_db *db, enum stmt_id id, espl_error *err)
{
	if (!db->stmts[id]) {
		int rc = sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &db->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			espl__db_sql_fail(db, err, rc, "prepare");
			return NULL;
		}
	}
	return db->stmts[id];
}

void espl__db_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

const char *espl__db_col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Step a statement that returns no row (or whose row we ignore); reset it. */
int espl__db_prepare_once(espl_db *db, const char *sql, sqlite3_stmt **s, espl_error *err)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, s, NULL);
	if (rc != SQLITE_OK)
		return espl__db_sql_fail(db, err, rc, "prepare");
	return ESPL_OK;
}

int espl__db_run(espl_db *db, sqlite3_stmt *s, espl_error *err, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return espl__db_sql_fail(db, err, rc, what);
	return ESPL_OK;
}

int espl__db_exec(espl_db *db, const char *sql, espl_error *err)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return espl__db_sql_fail(db, err, rc, sql);
	return ESPL_OK;
}

/* Open a transaction, or a savepoint inside the caller's group transaction.
 * Returns 1 (own transaction), 2 (savepoint) or a negative code. */
int espl__db_tx_open(espl_db *db, espl_error *err)
{
	if (sqlite3_get_autocommit(db->h)) {
		ESPL_TRY(espl__db_exec(db, "BEGIN IMMEDIATE", err));
		return 1;
	}
	ESPL_TRY(espl__db_exec(db, "SAVEPOINT rec", err));
	return 2;
}

int espl__db_tx_close(espl_db *db, int kind, int rc, espl_error *err)
{
	if (rc < 0) {
		/* SQLite may already have rolled back (disk full, I/O error). */
		if (kind == 1 && !sqlite3_get_autocommit(db->h))
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		else if (kind == 2 && !sqlite3_get_autocommit(db->h))
			sqlite3_exec(db->h, "ROLLBACK TO rec; RELEASE rec", NULL, NULL, NULL);
		return rc;
	}
	if (kind == 1) {
		int r = espl__db_exec(db, "COMMIT", err);
		if (r < 0 && !sqlite3_get_autocommit(db->h))
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
	return espl__db_exec(db, "RELEASE rec", err);
}

int espl_db_begin(espl_db *db, espl_error *err)
{
	return espl__db_exec(db, "BEGIN IMMEDIATE", err);
}

int espl_db_commit(espl_db *db, espl_error *err)
{
	int rc = espl__db_exec(db, "COMMIT", err);
	if (rc < 0)
		espl_db_rollback(db);
	return rc;
}

void espl_db_rollback(espl_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}
