/* db.c - the traceability store; see include/espline/db.h. */
#include "espline/db.h"
#include "record/db_owned.h"
#include "record/verify_problem.h"
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
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Public entry points accept err == NULL; the helpers below need one. */
#define NEED_ERR(err)            \
	espl_error err##_local_; \
	if (!(err))              \
		(err) = &err##_local_

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* ---- schema: one entry per version; entry v migrates v-1 to v ---------- */

static const char *const migrations[ESPL_DB_SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE TABLE stations ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL, host TEXT NOT NULL, version TEXT NOT NULL,"
	"  UNIQUE (name, host, version));"
	"CREATE TABLE recipes ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE, yaml TEXT NOT NULL);"
	"CREATE TABLE recipe_images ("
	"  recipe_id INTEGER NOT NULL REFERENCES recipes(id),"
	"  position INTEGER NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL,"
	"  PRIMARY KEY (recipe_id, position)) WITHOUT ROWID;"
	"CREATE TABLE batches ("
	"  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
	"  recipe_id INTEGER NOT NULL REFERENCES recipes(id),"
	"  station_id INTEGER NOT NULL REFERENCES stations(id),"
	"  operator TEXT, started_ms INTEGER NOT NULL, ended_ms INTEGER,"
	"  planned INTEGER NOT NULL DEFAULT 0,"
	"  passed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
	"  interrupted INTEGER NOT NULL DEFAULT 0,"
	"  hash TEXT NOT NULL);"
	"CREATE INDEX batches_name ON batches (name);"
	"CREATE TABLE units ("
	"  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
	"  batch_id INTEGER NOT NULL REFERENCES batches(id),"
	"  mac TEXT, chip_id INTEGER NOT NULL DEFAULT 0, flash_id INTEGER NOT NULL DEFAULT 0,"
	"  manufacturer TEXT, flash_size INTEGER NOT NULL DEFAULT 0,"
	"  crystal_mhz INTEGER NOT NULL DEFAULT 0,"
	"  port TEXT, adapter_serial TEXT, adapter_location TEXT,"
	"  started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL DEFAULT 0,"
	"  duration_ms INTEGER NOT NULL DEFAULT 0,"
	"  result TEXT NOT NULL CHECK (result IN ('RUNNING','PASS','FAIL','INTERRUPTED')),"
	"  error_kind TEXT, error TEXT,"
	"  seq INTEGER UNIQUE, prev_hash TEXT, hash TEXT);"
	"CREATE INDEX units_mac ON units (mac, started_ms);"
	"CREATE INDEX units_batch ON units (batch_id, result);"
	"CREATE INDEX units_started ON units (started_ms);"
	"CREATE INDEX units_running ON units (batch_id) WHERE result = 'RUNNING';"
	"CREATE TABLE steps ("
	"  unit_id INTEGER NOT NULL REFERENCES units(id), idx INTEGER NOT NULL,"
	"  kind TEXT NOT NULL, address INTEGER NOT NULL, length INTEGER NOT NULL,"
	"  expected_md5 TEXT, actual_md5 TEXT, bytes INTEGER NOT NULL,"
	"  duration_ms INTEGER NOT NULL, retries INTEGER NOT NULL,"
	"  result TEXT NOT NULL CHECK (result IN ('RUNNING','PASS','FAIL','INTERRUPTED','SKIPPED')),"
	"  error TEXT,"
	"  PRIMARY KEY (unit_id, idx)) WITHOUT ROWID;"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, level TEXT NOT NULL,"
	"  kind TEXT NOT NULL, batch_uuid TEXT, unit_uuid TEXT, message TEXT NOT NULL);"
	"CREATE INDEX events_time ON events (time_ms);"
	"CREATE TABLE chain ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);"
	"INSERT INTO chain VALUES (1, 0, '" ZERO_HASH "');"
	"CREATE TABLE replayed_spools ("
	"  sha256 TEXT PRIMARY KEY, replayed_ms INTEGER NOT NULL, records INTEGER NOT NULL);",

	/* v2: repeat detection.  A PASS of a MAC that already passed in the same
	 * batch points at the first one; existing rows are back-filled. */
	[2] =
	"ALTER TABLE units ADD COLUMN repeat_of TEXT;"
	"CREATE INDEX units_batch_mac_pass ON units (batch_id, mac) WHERE result = 'PASS';"
	"UPDATE units SET repeat_of = ("
	"    SELECT f.uuid FROM units AS f"
	"    WHERE f.batch_id = units.batch_id AND f.mac = units.mac"
	"      AND f.result = 'PASS' AND f.seq < units.seq ORDER BY f.seq LIMIT 1)"
	"  WHERE result = 'PASS' AND seq IS NOT NULL AND mac IS NOT NULL AND mac <> '';",

	/* v3: replication to a central database.  meta.origin names this
	 * database's hash chain everywhere else; the outbox lists, in commit
	 * order, the batches and sealed units not yet acknowledged by the
	 * central server (filled in the transaction that records them);
	 * sync_state is what the sender last saw.  Existing records are queued
	 * so that a station's history replicates when --central is turned on. */
	[3] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta VALUES ('origin', lower(hex(randomblob(4))) || '-' ||"
	"  lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||"
	"  substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||"
	"  '-' || lower(hex(randomblob(6))));"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('batch', 'unit')),"
	"  ref TEXT NOT NULL, queued_ms INTEGER NOT NULL);"
	"CREATE TABLE sync_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), central TEXT, sent INTEGER NOT NULL DEFAULT 0,"
	"  last_ok_ms INTEGER, last_error TEXT, last_error_ms INTEGER);"
	"INSERT INTO sync_state (id) VALUES (1);"
	"INSERT INTO outbox (kind, ref, queued_ms) SELECT 'batch', uuid,"
	"  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM batches ORDER BY id;"
	"INSERT INTO outbox (kind, ref, queued_ms) SELECT 'unit', uuid,"
	"  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM units"
	"  WHERE seq IS NOT NULL ORDER BY seq;",
};

/* ---- prepared statements, prepared on first use ------------------------ */

#define UNIT_COLS                                                              \
	"u.uuid, b.uuid, u.mac, u.chip_id, u.flash_id, u.manufacturer,"        \
	" u.flash_size, u.crystal_mhz, u.port, u.adapter_serial,"             \
	" u.adapter_location, u.started_ms, u.ended_ms, u.duration_ms,"       \
	" u.result, u.error_kind, u.error"
#define UNIT_NCOLS 17

enum stmt_id {
	ST_STATION_INS, ST_STATION_ID, ST_RECIPE_INS, ST_RECIPE_ID, ST_IMAGE_INS,
	ST_BATCH_INS, ST_BATCH_END, ST_BATCH_FIND, ST_UNIT_INS, ST_UNIT_FIND,
	ST_UNIT_UPDATE, ST_STEP_INS, ST_REPEAT_FIND, ST_REPEAT_SET, ST_CHAIN_GET,
	ST_CHAIN_SET, ST_UNIT_SEAL, ST_BATCH_COUNT, ST_EVENT_INS, ST_STALE_LIST,
	ST_UNIT_LOAD, ST_SPOOL_SEEN, ST_SPOOL_MARK, ST_OUTBOX_INS, ST_STEP_PROGRESS,
	ST_STEPS_CLEAR, ST_COUNT
};

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
	[ST_REPEAT_FIND] = "SELECT uuid FROM units WHERE batch_id = ?1 AND mac = ?2"
			   " AND result = 'PASS' AND id <> ?3 ORDER BY seq LIMIT 1",
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
	[ST_UNIT_LOAD] = "SELECT " UNIT_COLS " FROM units AS u JOIN batches AS b ON b.id = u.batch_id"
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
};

struct espl_db {
	sqlite3 *h;
	char *path;
	int version;
	int read_only;
	sqlite3_stmt *stmts[ST_COUNT];
};

/* ---- small helpers ----------------------------------------------------- */

static const char *const result_names[] = { "RUNNING", "PASS", "FAIL", "INTERRUPTED", "SKIPPED" };

const char *espl_db_result_name(int result)
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
	if (cli_path && *cli_path)
		return cli_path;
	const char *env = getenv(ESPL_DB_ENV);
	if (env && *env)
		return env;
	return ESPL_DB_DEFAULT_PATH;
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

static int sql_fail(espl_db *db, espl_error *err, int rc, const char *what)
{
	return espl_fail(err, code_for_sqlite(rc), "database %s: %s: %s%s", db->path, what,
			 sqlite3_errmsg(db->h), advice_for_sqlite(rc));
}

static sqlite3_stmt *stmt(espl_db *db, enum stmt_id id, espl_error *err)
{
	if (!db->stmts[id]) {
		int rc = sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &db->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			sql_fail(db, err, rc, "prepare");
			return NULL;
		}
	}
	return db->stmts[id];
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Step a statement that returns no row (or whose row we ignore); reset it. */
static int run(espl_db *db, sqlite3_stmt *s, espl_error *err, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_fail(db, err, rc, what);
	return ESPL_OK;
}

static int exec(espl_db *db, const char *sql, espl_error *err)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, err, rc, sql);
	return ESPL_OK;
}

/* Open a transaction, or a savepoint inside the caller's group transaction.
 * Returns 1 (own transaction), 2 (savepoint) or a negative code. */
static int tx_open(espl_db *db, espl_error *err)
{
	if (sqlite3_get_autocommit(db->h)) {
		ESPL_TRY(exec(db, "BEGIN IMMEDIATE", err));
		return 1;
	}
	ESPL_TRY(exec(db, "SAVEPOINT rec", err));
	return 2;
}

static int tx_close(espl_db *db, int kind, int rc, espl_error *err)
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
		int r = exec(db, "COMMIT", err);
		if (r < 0 && !sqlite3_get_autocommit(db->h))
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
	return exec(db, "RELEASE rec", err);
}

int espl_db_begin(espl_db *db, espl_error *err)
{
	return exec(db, "BEGIN IMMEDIATE", err);
}

int espl_db_commit(espl_db *db, espl_error *err)
{
	int rc = exec(db, "COMMIT", err);
	if (rc < 0)
		espl_db_rollback(db);
	return rc;
}

void espl_db_rollback(espl_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- open, pragmas, migration ----------------------------------------- */

static int make_parent_dir(const char *path, espl_error *err)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof copy, "%s", path);
	const char *dir = dirname(copy);
	if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
		return ESPL_OK;
	if (mkdir(dir, 0775) < 0 && errno != EEXIST)
		return espl_fail_errno(err, "cannot create the database folder %s", dir);
	return ESPL_OK;
}

static int pragma_int(espl_db *db, const char *sql, long long *out, espl_error *err)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db->h, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, err, rc, sql);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_fail(db, err, rc, sql);
	return ESPL_OK;
}

static int set_pragmas(espl_db *db, const espl_db_options *o, espl_error *err)
{
	char sql[96];
	sqlite3_busy_timeout(db->h, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
	ESPL_TRY(exec(db, "PRAGMA foreign_keys = ON", err));
	if (db->read_only)
		return ESPL_OK;
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	int wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
	sqlite3_finalize(s);
	if (!wal)
		return sql_fail(db, err, rc == SQLITE_ROW ? SQLITE_CANTOPEN : rc,
				"cannot switch to WAL journal mode");
	ESPL_TRY(exec(db, "PRAGMA synchronous = FULL", err));
	if (o->max_pages > 0) {
		snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", o->max_pages);
		ESPL_TRY(pragma_int(db, sql, NULL, err));
	}
	return ESPL_OK;
}

static int migrate(espl_db *db, int target, espl_error *err)
{
	long long v = 0;
	ESPL_TRY(pragma_int(db, "PRAGMA user_version", &v, err));
	if (v > ESPL_DB_SCHEMA_VERSION)
		return espl_fail(err, ESPL_EDB,
				 "database %s has schema version %lld, newer than this espline "
				 "understands (%d): use a newer espline",
				 db->path, v, ESPL_DB_SCHEMA_VERSION);
	if (v >= target) {
		db->version = (int)v;
		return ESPL_OK;
	}
	if (db->read_only)
		return espl_fail(err, ESPL_EDB,
				 "database %s has schema version %lld and needs migrating to %d: "
				 "open it once read-write (for example with `espline db verify`)",
				 db->path, v, target);
	for (int next = (int)v + 1; next <= target; next++) {
		char sql[64];
		int rc = exec(db, "BEGIN IMMEDIATE", err);
		if (rc == 0)
			rc = exec(db, migrations[next], err);
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", next);
		if (rc == 0)
			rc = exec(db, sql, err);
		if (rc == 0)
			rc = exec(db, "COMMIT", err);
		if (rc < 0) {
			espl_db_rollback(db);
			espl_error_prefix(err, "migrating the schema to version %d", next);
			return rc;
		}
		db->version = next;
	}
	return ESPL_OK;
}

int espl_db_open(espl_db **out, const espl_db_options *opts, espl_error *err)
{
	NEED_ERR(err);
	espl_db_options o = opts ? *opts : (espl_db_options){ 0 };
	const char *path = espl_db_path(o.path);
	int target = o.schema_version > 0 ? o.schema_version : ESPL_DB_SCHEMA_VERSION;
	*out = NULL;
	if (target > ESPL_DB_SCHEMA_VERSION)
		return espl_fail(err, ESPL_EARG, "schema version %d does not exist", target);
	if (access(path, F_OK) < 0) {
		if (!o.create || o.read_only)
			return espl_fail(err, ESPL_ENOTFOUND,
					 "no database at %s (give --db PATH or set %s)", path,
					 ESPL_DB_ENV);
		ESPL_TRY(make_parent_dir(path, err));
	}
	espl_db *db = calloc(1, sizeof *db);
	if (!db || !(db->path = strdup(path))) {
		free(db);
		return espl_fail(err, ESPL_ENOMEM, "out of memory opening %s", path);
	}
	db->read_only = o.read_only;
	int flags = o.read_only ? SQLITE_OPEN_READONLY
				: SQLITE_OPEN_READWRITE | (o.create ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &db->h, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = db->h ? sql_fail(db, err, rc, "cannot open")
			   : espl_fail(err, ESPL_ENOMEM, "out of memory opening %s", path);
		espl_db_close(db);
		return rc;
	}
	sqlite3_extended_result_codes(db->h, 0);
	rc = set_pragmas(db, &o, err);
	if (rc == 0)
		rc = migrate(db, target, err);
	if (rc < 0) {
		espl_db_close(db);
		return rc;
	}
	*out = db;
	return ESPL_OK;
}

void espl_db_close(espl_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->stmts[i]);
	sqlite3_close(db->h);
	free(db->path);
	free(db);
}

const char *espl_db_filename(const espl_db *db)
{
	return db->path;
}

int espl_db_schema_version(espl_db *db)
{
	return db->version;
}

sqlite3 *espl_db_sqlite(espl_db *db)
{
	return db->h;
}

/* ---- canonical serialization and hashes ------------------------------- */

static void h_str(EVP_MD_CTX *c, const char *name, const char *v)
{
	char head[64];
	int n = v ? snprintf(head, sizeof head, "%s:%zu:", name, strlen(v))
		  : snprintf(head, sizeof head, "%s:-\n", name);
	EVP_DigestUpdate(c, head, (size_t)n);
	if (v) {
		EVP_DigestUpdate(c, v, strlen(v));
		EVP_DigestUpdate(c, "\n", 1);
	}
}

static void h_int(EVP_MD_CTX *c, const char *name, int64_t v)
{
	char num[32];
	snprintf(num, sizeof num, "%" PRId64, v);
	h_str(c, name, num);
}

static void h_finish(EVP_MD_CTX *c, char out[ESPL_DB_HASH_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static EVP_MD_CTX *h_start(const char *tag)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		abort(); /* OpenSSL cannot allocate a few hundred bytes: nothing is sane */
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	h_str(c, tag, "1");
	return c;
}

static void h_unit(EVP_MD_CTX *c, int64_t seq, const char *prev, const char *batch_hash,
		   const espl_db_unit *u)
{
	h_int(c, "seq", seq);
	h_str(c, "prev", prev);
	h_str(c, "batch", batch_hash);
	h_str(c, "uuid", u->uuid);
	h_str(c, "mac", u->mac);
	h_int(c, "chip_id", u->chip_id);
	h_int(c, "flash_id", u->flash_id);
	h_str(c, "manufacturer", u->manufacturer);
	h_int(c, "flash_size", u->flash_size);
	h_int(c, "crystal_mhz", u->crystal_mhz);
	h_str(c, "port", u->port);
	h_str(c, "adapter_serial", u->adapter_serial);
	h_str(c, "adapter_location", u->adapter_location);
	h_int(c, "started_ms", u->started_ms);
	h_int(c, "ended_ms", u->ended_ms);
	h_int(c, "duration_ms", u->duration_ms);
	h_str(c, "result", espl_db_result_name(u->result));
	h_str(c, "error_kind", u->error_kind);
	h_str(c, "error", u->error);
}

static void h_step(EVP_MD_CTX *c, const espl_db_step *s)
{
	h_int(c, "step", s->index);
	h_str(c, "kind", s->kind);
	h_int(c, "address", s->address);
	h_int(c, "length", s->length);
	h_str(c, "expected_md5", s->expected_md5);
	h_str(c, "actual_md5", s->actual_md5);
	h_int(c, "bytes", (int64_t)s->bytes);
	h_int(c, "duration_ms", s->duration_ms);
	h_int(c, "retries", s->retries);
	h_str(c, "result", espl_db_result_name(s->result));
	h_str(c, "error", s->error);
}

void espl_db_unit_hash(int64_t seq, const char *prev_hash, const char *batch_hash,
		       const espl_db_unit *unit, const espl_db_step *steps,
		       size_t n_steps, char out[ESPL_DB_HASH_SIZE])
{
	EVP_MD_CTX *c = h_start("espline-unit");
	h_unit(c, seq, prev_hash, batch_hash, unit);
	for (size_t i = 0; i < n_steps; i++)
		h_step(c, &steps[i]);
	h_finish(c, out);
}

void espl_db_batch_hash(const espl_db_station *station, const espl_db_recipe *recipe,
			const espl_db_batch *batch, char out[ESPL_DB_HASH_SIZE])
{
	EVP_MD_CTX *c = h_start("espline-batch");
	h_str(c, "uuid", batch->uuid);
	h_str(c, "name", batch->name);
	h_str(c, "operator", batch->operator_name);
	h_int(c, "started_ms", batch->started_ms);
	h_int(c, "planned", batch->planned);
	h_str(c, "station", station->name);
	h_str(c, "host", station->host);
	h_str(c, "version", station->version);
	h_str(c, "recipe", recipe->name);
	h_str(c, "recipe_sha256", recipe->sha256);
	for (size_t i = 0; i < recipe->n_images; i++) {
		h_str(c, "image", recipe->images[i].name);
		h_str(c, "image_sha256", recipe->images[i].sha256);
	}
	h_finish(c, out);
}

/* ---- outbox ------------------------------------------------------------ */

/* Queue a record for the central database, inside the caller's transaction
 * (schema v3 on; older schemas opened on purpose by tests have no outbox). */
static int queue_outbox(espl_db *db, const char *kind, const char *ref, espl_error *err)
{
	if (db->version < 3)
		return ESPL_OK;
	sqlite3_stmt *s = stmt(db, ST_OUTBOX_INS, err);
	if (!s)
		return err->code;
	bind_text(s, 1, kind);
	bind_text(s, 2, ref);
	sqlite3_bind_int64(s, 3, espl_db_now_ms());
	return run(db, s, err, "queuing the record for the central database");
}

/* ---- batches ----------------------------------------------------------- */

static int lookup_id(espl_db *db, enum stmt_id id, const char *a, const char *b,
		     const char *c, int64_t *out, espl_error *err)
{
	sqlite3_stmt *s = stmt(db, id, err);
	if (!s)
		return err ? err->code : ESPL_EDB;
	bind_text(s, 1, a);
	if (b)
		bind_text(s, 2, b);
	if (c)
		bind_text(s, 3, c);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return ESPL_OK;
	if (rc == SQLITE_DONE)
		return ESPL_ENOTFOUND;
	return sql_fail(db, err, rc, "lookup");
}

static int put_station(espl_db *db, const espl_db_station *st, int64_t *id, espl_error *err)
{
	sqlite3_stmt *s = stmt(db, ST_STATION_INS, err);
	if (!s)
		return err->code;
	bind_text(s, 1, st->name);
	bind_text(s, 2, st->host);
	bind_text(s, 3, st->version);
	ESPL_TRY(run(db, s, err, "recording the station"));
	int rc = lookup_id(db, ST_STATION_ID, st->name, st->host, st->version, id, err);
	return rc == ESPL_ENOTFOUND ? espl_fail(err, ESPL_EDB, "station row vanished") : rc;
}

static int put_recipe(espl_db *db, const espl_db_recipe *r, int64_t *id, espl_error *err)
{
	sqlite3_stmt *s = stmt(db, ST_RECIPE_INS, err);
	if (!s)
		return err->code;
	bind_text(s, 1, r->name);
	bind_text(s, 2, r->sha256);
	bind_text(s, 3, r->yaml ? r->yaml : "");
	ESPL_TRY(run(db, s, err, "recording the recipe"));
	int rc = lookup_id(db, ST_RECIPE_ID, r->sha256, NULL, NULL, id, err);
	if (rc == ESPL_ENOTFOUND)
		return espl_fail(err, ESPL_EDB, "recipe row vanished");
	ESPL_TRY(rc);
	for (size_t i = 0; i < r->n_images; i++) {
		if (!r->images[i].name || !r->images[i].sha256)
			return espl_fail(err, ESPL_EARG, "recipe %s: image %zu has no name or sha256",
					 r->name, i);
		if (!(s = stmt(db, ST_IMAGE_INS, err)))
			return err->code;
		sqlite3_bind_int64(s, 1, *id);
		sqlite3_bind_int64(s, 2, (int64_t)i);
		bind_text(s, 3, r->images[i].name);
		bind_text(s, 4, r->images[i].sha256);
		ESPL_TRY(run(db, s, err, "recording the recipe's images"));
	}
	return ESPL_OK;
}

static int insert_batch(espl_db *db, const espl_db_station *station,
			const espl_db_recipe *recipe, const espl_db_batch *batch,
			espl_error *err)
{
	int64_t station_id, recipe_id;
	char hash[ESPL_DB_HASH_SIZE];
	ESPL_TRY(put_station(db, station, &station_id, err));
	ESPL_TRY(put_recipe(db, recipe, &recipe_id, err));
	espl_db_batch_hash(station, recipe, batch, hash);
	sqlite3_stmt *s = stmt(db, ST_BATCH_INS, err);
	if (!s)
		return err->code;
	bind_text(s, 1, batch->uuid);
	bind_text(s, 2, batch->name);
	sqlite3_bind_int64(s, 3, recipe_id);
	sqlite3_bind_int64(s, 4, station_id);
	bind_text(s, 5, batch->operator_name);
	sqlite3_bind_int64(s, 6, batch->started_ms);
	sqlite3_bind_int(s, 7, batch->planned);
	bind_text(s, 8, hash);
	ESPL_TRY(run(db, s, err, "recording the batch"));
	if (sqlite3_changes(db->h) == 0)
		return ESPL_OK; /* already recorded (a replayed record) */
	return queue_outbox(db, "batch", batch->uuid, err);
}

int espl_db_begin_batch(espl_db *db, const espl_db_station *station,
			const espl_db_recipe *recipe, const espl_db_batch *batch,
			espl_error *err)
{
	NEED_ERR(err);
	if (!station || !station->name || !station->host || !station->version || !recipe ||
	    !recipe->name || !recipe->sha256 || !batch || !batch->name || !batch->uuid[0])
		return espl_fail(err, ESPL_EARG,
				 "a batch needs a uuid, a name, a station (name, host, version) "
				 "and a recipe (name, sha256)");
	int tx = tx_open(db, err);
	ESPL_TRY(tx);
	return tx_close(db, tx, insert_batch(db, station, recipe, batch, err), err);
}

int espl_db_end_batch(espl_db *db, const char *batch_uuid, int64_t ended_ms, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = stmt(db, ST_BATCH_END, err);
	if (!s)
		return err->code;
	bind_text(s, 1, batch_uuid);
	sqlite3_bind_int64(s, 2, ended_ms);
	int tx = tx_open(db, err);
	ESPL_TRY(tx);
	int rc = run(db, s, err, "closing the batch");
	if (rc == 0 && sqlite3_changes(db->h) == 0)
		rc = espl_fail(err, ESPL_ENOTFOUND, "no batch %s in %s", batch_uuid, db->path);
	if (rc == 0)
		rc = queue_outbox(db, "batch", batch_uuid, err);
	return tx_close(db, tx, rc, err);
}

static int find_batch(espl_db *db, const char *uuid, int64_t *id,
		      char hash[ESPL_DB_HASH_SIZE], espl_error *err)
{
	sqlite3_stmt *s = stmt(db, ST_BATCH_FIND, err);
	if (!s)
		return err->code;
	bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		snprintf(hash, ESPL_DB_HASH_SIZE, "%s", col_text(s, 1) ? col_text(s, 1) : "");
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return ESPL_OK;
	if (rc == SQLITE_DONE)
		return espl_fail(err, ESPL_ENOTFOUND,
				 "unit refers to batch %s, which was never recorded", uuid);
	return sql_fail(db, err, rc, "looking up the batch");
}

/* ---- units ------------------------------------------------------------- */

static void bind_unit(sqlite3_stmt *s, const espl_db_unit *u, int64_t batch_id)
{
	bind_text(s, 1, u->uuid);
	sqlite3_bind_int64(s, 2, batch_id);
	bind_text(s, 3, u->mac);
	sqlite3_bind_int64(s, 4, u->chip_id);
	sqlite3_bind_int64(s, 5, u->flash_id);
	bind_text(s, 6, u->manufacturer);
	sqlite3_bind_int64(s, 7, u->flash_size);
	sqlite3_bind_int(s, 8, u->crystal_mhz);
	bind_text(s, 9, u->port);
	bind_text(s, 10, u->adapter_serial);
	bind_text(s, 11, u->adapter_location);
	sqlite3_bind_int64(s, 12, u->started_ms);
	sqlite3_bind_int64(s, 13, u->ended_ms);
	sqlite3_bind_int64(s, 14, u->duration_ms);
	bind_text(s, 15, espl_db_result_name(u->result));
	bind_text(s, 16, u->error_kind);
	bind_text(s, 17, u->error);
}

/* The stored form of a unit: MAC normalized where it parses. */
static espl_db_unit normalized(const espl_db_unit *u, char mac[18])
{
	espl_db_unit n = *u;
	if (u->mac && *u->mac && espl_db_normalize_mac(u->mac, mac) == 0)
		n.mac = mac;
	return n;
}

int espl_db_begin_unit(espl_db *db, const espl_db_unit *unit, espl_error *err)
{
	NEED_ERR(err);
	int64_t batch_id;
	char batch_hash[ESPL_DB_HASH_SIZE], mac[18];
	if (!unit || !unit->uuid[0])
		return espl_fail(err, ESPL_EARG, "a unit needs a uuid");
	espl_db_unit u = normalized(unit, mac);
	u.result = ESPL_DB_RUNNING;
	ESPL_TRY(find_batch(db, u.batch_uuid, &batch_id, batch_hash, err));
	sqlite3_stmt *s = stmt(db, ST_UNIT_INS, err);
	if (!s)
		return err->code;
	bind_unit(s, &u, batch_id);
	return run(db, s, err, "recording the unit's start");
}

typedef struct unit_state {
	int found;
	int64_t id;
	int result;
	int64_t seq;
	char hash[ESPL_DB_HASH_SIZE];
	char repeat_of[ESPL_DB_UUID_SIZE];
} unit_state;

static int find_unit(espl_db *db, const char *uuid, unit_state *st, espl_error *err)
{
	sqlite3_stmt *s = stmt(db, ST_UNIT_FIND, err);
	memset(st, 0, sizeof *st);
	if (!s)
		return err->code;
	bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		st->found = 1;
		st->id = sqlite3_column_int64(s, 0);
		st->result = espl_db_result_parse(col_text(s, 1));
		st->seq = sqlite3_column_int64(s, 2);
		snprintf(st->hash, sizeof st->hash, "%s", col_text(s, 3) ? col_text(s, 3) : "");
		snprintf(st->repeat_of, sizeof st->repeat_of, "%s",
			 col_text(s, 4) ? col_text(s, 4) : "");
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_fail(db, err, rc, "looking up the unit");
	return ESPL_OK;
}

/* Bind a step's columns to parameters 2..12 (1 is the unit). */
static void bind_step(sqlite3_stmt *s, const espl_db_step *st)
{
	sqlite3_bind_int(s, 2, st->index);
	bind_text(s, 3, st->kind ? st->kind : "");
	sqlite3_bind_int64(s, 4, st->address);
	sqlite3_bind_int64(s, 5, st->length);
	bind_text(s, 6, st->expected_md5);
	bind_text(s, 7, st->actual_md5);
	sqlite3_bind_int64(s, 8, (int64_t)st->bytes);
	sqlite3_bind_int64(s, 9, st->duration_ms);
	sqlite3_bind_int(s, 10, st->retries);
	bind_text(s, 11, espl_db_result_name(st->result));
	bind_text(s, 12, st->error);
}

static int insert_steps(espl_db *db, int64_t unit_id, const espl_db_step *steps, size_t n,
			espl_error *err)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(db, ST_STEP_INS, err);
		if (!s)
			return err->code;
		sqlite3_bind_int64(s, 1, unit_id);
		bind_step(s, &steps[i]);
		ESPL_TRY(run(db, s, err, "recording a step"));
	}
	return ESPL_OK;
}

static int flag_repeat(espl_db *db, int64_t unit_id, int64_t batch_id, const char *mac,
		       char repeat_of[ESPL_DB_UUID_SIZE], espl_error *err)
{
	repeat_of[0] = '\0';
	sqlite3_stmt *s = stmt(db, ST_REPEAT_FIND, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, batch_id);
	bind_text(s, 2, mac);
	sqlite3_bind_int64(s, 3, unit_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(repeat_of, ESPL_DB_UUID_SIZE, "%s", col_text(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_fail(db, err, rc, "checking for a repeated MAC");
	if (!repeat_of[0])
		return ESPL_OK;
	if (!(s = stmt(db, ST_REPEAT_SET, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	bind_text(s, 2, repeat_of);
	return run(db, s, err, "flagging a repeated MAC");
}

static int seal(espl_db *db, int64_t unit_id, int64_t batch_id, const char *batch_hash,
		const espl_db_unit *u, const espl_db_step *steps, size_t n,
		espl_db_sealed *out, espl_error *err)
{
	char prev[ESPL_DB_HASH_SIZE] = "";
	int64_t seq = 0;
	sqlite3_stmt *s = stmt(db, ST_CHAIN_GET, err);
	if (!s)
		return err->code;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(s, 0) + 1;
		snprintf(prev, sizeof prev, "%s", col_text(s, 1));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? espl_fail(err, ESPL_EDB, "database %s: chain head missing",
						     db->path)
					 : sql_fail(db, err, rc, "reading the chain head");
	espl_db_unit_hash(seq, prev, batch_hash, u, steps, n, out->hash);
	out->seq = seq;

	if (!(s = stmt(db, ST_UNIT_SEAL, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	sqlite3_bind_int64(s, 2, seq);
	bind_text(s, 3, prev);
	bind_text(s, 4, out->hash);
	ESPL_TRY(run(db, s, err, "sealing the unit"));
	if (!(s = stmt(db, ST_CHAIN_SET, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, seq);
	bind_text(s, 2, out->hash);
	ESPL_TRY(run(db, s, err, "advancing the chain"));
	if (!(s = stmt(db, ST_BATCH_COUNT, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, batch_id);
	sqlite3_bind_int(s, 2, u->result == ESPL_DB_PASS);
	sqlite3_bind_int(s, 3, u->result == ESPL_DB_FAIL);
	sqlite3_bind_int(s, 4, u->result == ESPL_DB_INTERRUPTED);
	return run(db, s, err, "counting the unit in its batch");
}

static int check_steps(const espl_db_step *steps, size_t n, espl_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && steps[i].index <= steps[i - 1].index)
			return espl_fail(err, ESPL_EARG,
					 "steps must be in increasing index order (step %zu has index %d)",
					 i, steps[i].index);
		if (steps[i].result < ESPL_DB_RUNNING || steps[i].result > ESPL_DB_SKIPPED)
			return espl_fail(err, ESPL_EARG, "step %d: bad result %d", steps[i].index,
					 steps[i].result);
	}
	return ESPL_OK;
}

static int read_steps(espl_db *db, int64_t unit_id, espl_db_step **steps, size_t *n,
		      int *oom, espl_error *err);

/* The steps a completing unit is sealed with.  Its record's steps replace
 * the rows recorded progressively while it ran, except for an INTERRUPTED
 * record without steps (made without the runner's result: a station that
 * was aborted, or restarted after a crash): that keeps the progressive rows
 * and is sealed with them, read back in index order (*owned receives the
 * copy to free).  What is hashed is exactly the rows left in the table. */
static int final_steps(espl_db *db, const espl_db_unit *u, int64_t unit_id,
		       const espl_db_step **steps, size_t *n, espl_db_step **owned,
		       espl_error *err)
{
	*owned = NULL;
	if (u->result == ESPL_DB_INTERRUPTED && *n == 0) {
		int oom = 0;
		size_t got = 0;
		int rc = read_steps(db, unit_id, owned, &got, &oom, err);
		if (rc == 0 && oom)
			rc = espl_fail(err, ESPL_ENOMEM, "out of memory reading unit %s's steps",
				       u->uuid);
		if (rc < 0) {
			espl_db_steps_free(*owned, got);
			*owned = NULL;
			return rc;
		}
		*steps = *owned;
		*n = got;
		return ESPL_OK;
	}
	sqlite3_stmt *s = stmt(db, ST_STEPS_CLEAR, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	ESPL_TRY(run(db, s, err, "replacing the unit's progressive steps"));
	return insert_steps(db, unit_id, *steps, *n, err);
}

static int complete_unit(espl_db *db, const espl_db_unit *u, const espl_db_step *steps,
			 size_t n, espl_db_sealed *out, espl_error *err)
{
	espl_db_step *owned = NULL;
	unit_state st;
	int64_t batch_id;
	char batch_hash[ESPL_DB_HASH_SIZE];
	ESPL_TRY(find_unit(db, u->uuid, &st, err));
	if (st.found && st.result != ESPL_DB_RUNNING) {
		out->already = 1;
		out->seq = st.seq;
		snprintf(out->hash, sizeof out->hash, "%s", st.hash);
		snprintf(out->repeat_of, sizeof out->repeat_of, "%s", st.repeat_of);
		return ESPL_OK;
	}
	ESPL_TRY(find_batch(db, u->batch_uuid, &batch_id, batch_hash, err));
	sqlite3_stmt *s = stmt(db, st.found ? ST_UNIT_UPDATE : ST_UNIT_INS, err);
	if (!s)
		return err->code;
	bind_unit(s, u, batch_id);
	ESPL_TRY(run(db, s, err, "recording the unit"));
	if (!st.found) {
		ESPL_TRY(find_unit(db, u->uuid, &st, err));
		if (!st.found)
			return espl_fail(err, ESPL_EDB, "unit %s vanished while recording it", u->uuid);
	}
	ESPL_TRY(final_steps(db, u, st.id, &steps, &n, &owned, err));
	int rc = ESPL_OK;
	if (u->result == ESPL_DB_PASS && u->mac && *u->mac)
		rc = flag_repeat(db, st.id, batch_id, u->mac, out->repeat_of, err);
	if (rc == 0)
		rc = seal(db, st.id, batch_id, batch_hash, u, steps, n, out, err);
	espl_db_steps_free(owned, owned ? n : 0);
	ESPL_TRY(rc);
	return queue_outbox(db, "unit", u->uuid, err);
}

int espl_db_step_done(espl_db *db, const char *unit_uuid, const espl_db_step *step,
		      espl_error *err)
{
	NEED_ERR(err);
	if (!unit_uuid || !*unit_uuid || !step)
		return espl_fail(err, ESPL_EARG, "a progressive step needs its unit's uuid");
	ESPL_TRY(check_steps(step, 1, err));
	sqlite3_stmt *s = stmt(db, ST_STEP_PROGRESS, err);
	if (!s)
		return err->code;
	bind_text(s, 1, unit_uuid);
	bind_step(s, step);
	return run(db, s, err, "recording a finished step");
}

int espl_db_end_unit(espl_db *db, const espl_db_unit *unit, const espl_db_step *steps,
		     size_t n_steps, espl_db_sealed *sealed, espl_error *err)
{
	NEED_ERR(err);
	espl_db_sealed local;
	char mac[18];
	if (!sealed)
		sealed = &local;
	memset(sealed, 0, sizeof *sealed);
	if (!unit || !unit->uuid[0])
		return espl_fail(err, ESPL_EARG, "a unit needs a uuid");
	if (unit->result <= ESPL_DB_RUNNING || unit->result >= ESPL_DB_SKIPPED)
		return espl_fail(err, ESPL_EARG,
				 "unit %s: a completed unit is PASS, FAIL or INTERRUPTED", unit->uuid);
	ESPL_TRY(check_steps(steps, n_steps, err));
	espl_db_unit u = normalized(unit, mac);
	int tx = tx_open(db, err);
	ESPL_TRY(tx);
	int rc = complete_unit(db, &u, steps, n_steps, sealed, err);
	if (rc < 0)
		memset(sealed, 0, sizeof *sealed);
	return tx_close(db, tx, rc, err);
}

int espl_db_add_event(espl_db *db, const espl_db_event *e, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = stmt(db, ST_EVENT_INS, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, e->time_ms);
	bind_text(s, 2, e->level ? e->level : "info");
	bind_text(s, 3, e->kind ? e->kind : "event");
	bind_text(s, 4, e->batch_uuid);
	bind_text(s, 5, e->unit_uuid);
	bind_text(s, 6, e->message ? e->message : "");
	return run(db, s, err, "recording an event");
}

/* ---- reading units back (verify, stale recovery) ----------------------- */

/* Fill u from UNIT_COLS starting at column c; strings point into the row. */
static void row_to_unit(sqlite3_stmt *s, int c, espl_db_unit *u)
{
	memset(u, 0, sizeof *u);
	snprintf(u->uuid, sizeof u->uuid, "%s", col_text(s, c) ? col_text(s, c) : "");
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s",
		 col_text(s, c + 1) ? col_text(s, c + 1) : "");
	u->mac = col_text(s, c + 2);
	u->chip_id = (uint32_t)sqlite3_column_int64(s, c + 3);
	u->flash_id = (uint32_t)sqlite3_column_int64(s, c + 4);
	u->manufacturer = col_text(s, c + 5);
	u->flash_size = (uint32_t)sqlite3_column_int64(s, c + 6);
	u->crystal_mhz = sqlite3_column_int(s, c + 7);
	u->port = col_text(s, c + 8);
	u->adapter_serial = col_text(s, c + 9);
	u->adapter_location = col_text(s, c + 10);
	u->started_ms = sqlite3_column_int64(s, c + 11);
	u->ended_ms = sqlite3_column_int64(s, c + 12);
	u->duration_ms = sqlite3_column_int64(s, c + 13);
	u->result = espl_db_result_parse(col_text(s, c + 14));
	u->error_kind = col_text(s, c + 15);
	u->error = col_text(s, c + 16);
}

static void row_to_step(sqlite3_stmt *s, espl_db_step *st)
{
	memset(st, 0, sizeof *st);
	st->index = sqlite3_column_int(s, 0);
	st->kind = col_text(s, 1);
	st->address = (uint32_t)sqlite3_column_int64(s, 2);
	st->length = (uint32_t)sqlite3_column_int64(s, 3);
	st->expected_md5 = col_text(s, 4);
	st->actual_md5 = col_text(s, 5);
	st->bytes = (uint64_t)sqlite3_column_int64(s, 6);
	st->duration_ms = sqlite3_column_int64(s, 7);
	st->retries = sqlite3_column_int(s, 8);
	st->result = espl_db_result_parse(col_text(s, 9));
	st->error = col_text(s, 10);
}

static int interrupt_one(espl_db *db, const char *uuid, const char *reason, int64_t now_ms,
			 espl_error *err)
{
	sqlite3_stmt *s = stmt(db, ST_UNIT_LOAD, err);
	if (!s)
		return err->code;
	bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? ESPL_OK : sql_fail(db, err, rc, "loading a unit");
	}
	espl_db_unit u;
	row_to_unit(s, 0, &u);
	u.result = ESPL_DB_INTERRUPTED;
	u.ended_ms = now_ms;
	u.duration_ms = now_ms > u.started_ms ? now_ms - u.started_ms : 0;
	u.error_kind = "interrupted";
	if (!u.error)
		u.error = reason;
	rc = espl_db_end_unit(db, &u, NULL, 0, NULL, err);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int espl_db_interrupt_stale(espl_db *db, const espl_db_station *station, const char *reason,
			    int64_t now_ms, int *count, espl_error *err)
{
	NEED_ERR(err);
	char (*uuids)[ESPL_DB_UUID_SIZE] = NULL;
	size_t n = 0, cap = 0;
	int rc = ESPL_OK;
	*count = 0;
	sqlite3_stmt *s = stmt(db, ST_STALE_LIST, err);
	if (!s)
		return err->code;
	bind_text(s, 1, station->name);
	bind_text(s, 2, station->host);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			void *grown = realloc(uuids, cap * sizeof *uuids);
			if (!grown) {
				rc = espl_fail(err, ESPL_ENOMEM, "out of memory listing stale units");
				break;
			}
			uuids = grown;
		}
		snprintf(uuids[n++], ESPL_DB_UUID_SIZE, "%s", col_text(s, 0));
	}
	if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = sql_fail(db, err, step, "listing stale units");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = interrupt_one(db, uuids[i], reason, now_ms, err);
		if (rc == 0)
			(*count)++;
	}
	free(uuids);
	return rc;
}

int espl_db_spool_seen(espl_db *db, const char *sha256_hex, espl_error *err)
{
	NEED_ERR(err);
	int64_t one;
	int rc = lookup_id(db, ST_SPOOL_SEEN, sha256_hex, NULL, NULL, &one, err);
	if (rc == ESPL_ENOTFOUND)
		return 0;
	return rc < 0 ? rc : 1;
}

int espl_db_spool_mark(espl_db *db, const char *sha256_hex, int records, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = stmt(db, ST_SPOOL_MARK, err);
	if (!s)
		return err->code;
	bind_text(s, 1, sha256_hex);
	sqlite3_bind_int64(s, 2, espl_db_now_ms());
	sqlite3_bind_int(s, 3, records);
	return run(db, s, err, "recording the spool replay");
}

/* ---- verification ------------------------------------------------------ */

static void problem(espl_db_verify_result *r, int64_t seq, const char *uuid, const char *fmt,
		    ...) ESPL_PRINTF(4, 5);

static void problem(espl_db_verify_result *r, int64_t seq, const char *uuid, const char *fmt, ...)
{
	ESPL_VERIFY_PROBLEM(r, seq, uuid, fmt);
}

static int prepare_once(espl_db *db, const char *sql, sqlite3_stmt **s, espl_error *err)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, s, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, err, rc, "prepare");
	return ESPL_OK;
}

static int verify_batches(espl_db *db, espl_db_verify_result *r, espl_error *err)
{
	sqlite3_stmt *b = NULL, *im = NULL;
	int rc = prepare_once(db,
			      "SELECT b.uuid, b.name, b.operator, b.started_ms, b.planned, b.hash,"
			      " s.name, s.host, s.version, r.name, r.sha256, r.id"
			      " FROM batches AS b JOIN stations AS s ON s.id = b.station_id"
			      " JOIN recipes AS r ON r.id = b.recipe_id ORDER BY b.id",
			      &b, err);
	if (rc == 0)
		rc = prepare_once(db,
				  "SELECT name, sha256 FROM recipe_images WHERE recipe_id = ?1"
				  " ORDER BY position",
				  &im, err);
	espl_db_image *images = NULL;
	size_t cap = 0;
	int step = SQLITE_DONE;
	while (rc == 0 && (step = sqlite3_step(b)) == SQLITE_ROW) {
		espl_db_batch batch = { .name = col_text(b, 1), .operator_name = col_text(b, 2),
					.started_ms = sqlite3_column_int64(b, 3),
					.planned = sqlite3_column_int(b, 4) };
		snprintf(batch.uuid, sizeof batch.uuid, "%s", col_text(b, 0));
		espl_db_station st = { col_text(b, 6), col_text(b, 7), col_text(b, 8) };
		espl_db_recipe rec = { .name = col_text(b, 9), .sha256 = col_text(b, 10) };
		sqlite3_bind_int64(im, 1, sqlite3_column_int64(b, 11));
		/* Image rows are copied because their text dies with the next step. */
		size_t n = 0;
		while (sqlite3_step(im) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				void *g = realloc(images, cap * sizeof *images);
				if (!g) {
					rc = espl_fail(err, ESPL_ENOMEM, "out of memory");
					break;
				}
				images = g;
			}
			images[n].name = strdup(col_text(im, 0) ? col_text(im, 0) : "");
			images[n].sha256 = strdup(col_text(im, 1) ? col_text(im, 1) : "");
			n++;
		}
		sqlite3_reset(im);
		rec.images = images;
		rec.n_images = n;
		char want[ESPL_DB_HASH_SIZE];
		espl_db_batch_hash(&st, &rec, &batch, want);
		const char *have = col_text(b, 5);
		if (!have || strcmp(have, want) != 0)
			problem(r, 0, batch.uuid,
				"changed: batch '%s' (%s): its name, operator, station, recipe or "
				"image hashes no longer match the batch hash",
				batch.name ? batch.name : "", batch.uuid);
		for (size_t i = 0; i < n; i++) {
			free((void *)images[i].name);
			free((void *)images[i].sha256);
		}
		r->batches_checked++;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = sql_fail(db, err, step, "reading batches");
	free(images);
	sqlite3_finalize(b);
	sqlite3_finalize(im);
	return rc;
}

typedef struct chain_walk {
	int64_t expect;                       /* next seq expected */
	char prev_hash[ESPL_DB_HASH_SIZE];    /* stored hash of the previous unit */
	char prev_uuid[ESPL_DB_UUID_SIZE];
} chain_walk;

static void check_unit(chain_walk *w, sqlite3_stmt *u, sqlite3_stmt *st,
		       espl_db_verify_result *r)
{
	espl_db_unit unit;
	int64_t seq = sqlite3_column_int64(u, 0);
	const char *prev = col_text(u, 1), *hash = col_text(u, 2), *batch_hash = col_text(u, 3);
	int64_t id = sqlite3_column_int64(u, 4);
	row_to_unit(u, 5, &unit);

	if (seq != w->expect) {
		if (seq > w->expect)
			problem(r, w->expect, unit.uuid,
				"deleted: unit%s seq %" PRId64 "%s%" PRId64 " missing "
				"(between %s and %s)",
				seq - w->expect > 1 ? "s" : "", w->expect,
				seq - w->expect > 1 ? "-" : "", seq - w->expect > 1 ? seq - 1 : w->expect,
				w->prev_uuid[0] ? w->prev_uuid : "the start", unit.uuid);
		else
			problem(r, seq, unit.uuid, "inserted: unit %s repeats seq %" PRId64,
				unit.uuid, seq);
	} else if (!prev || strcmp(prev, w->prev_hash) != 0) {
		problem(r, seq, unit.uuid,
			"inserted or deleted: unit seq %" PRId64 " (%s) is not chained to the "
			"unit before it (seq %" PRId64 ", %s): a record was inserted or removed there",
			seq, unit.uuid, seq - 1, w->prev_uuid[0] ? w->prev_uuid : "none");
	} else {
		EVP_MD_CTX *c = h_start("espline-unit");
		char want[ESPL_DB_HASH_SIZE];
		espl_db_step step;
		h_unit(c, seq, prev, batch_hash, &unit);
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			row_to_step(st, &step);
			h_step(c, &step);
		}
		sqlite3_reset(st);
		h_finish(c, want);
		if (!hash || strcmp(hash, want) != 0)
			problem(r, seq, unit.uuid,
				"changed: unit seq %" PRId64 " (%s, MAC %s): its fields or steps no "
				"longer match its hash",
				seq, unit.uuid, unit.mac ? unit.mac : "?");
	}
	w->expect = seq + 1;
	snprintf(w->prev_hash, sizeof w->prev_hash, "%s", hash ? hash : "");
	snprintf(w->prev_uuid, sizeof w->prev_uuid, "%s", unit.uuid);
	r->units_checked++;
}

static int verify_chain(espl_db *db, espl_db_verify_result *r, chain_walk *w, espl_error *err)
{
	sqlite3_stmt *u = NULL, *st = NULL;
	int rc = prepare_once(db,
			      "SELECT u.seq, u.prev_hash, u.hash, b.hash, u.id, " UNIT_COLS
			      " FROM units AS u JOIN batches AS b ON b.id = u.batch_id"
			      " WHERE u.seq IS NOT NULL ORDER BY u.seq",
			      &u, err);
	if (rc == 0)
		rc = prepare_once(db,
				  "SELECT idx, kind, address, length, expected_md5, actual_md5, bytes,"
				  " duration_ms, retries, result, error FROM steps WHERE unit_id = ?1"
				  " ORDER BY idx",
				  &st, err);
	int step = SQLITE_DONE;
	while (rc == 0 && (step = sqlite3_step(u)) == SQLITE_ROW)
		check_unit(w, u, st, r);
	if (rc == 0 && step != SQLITE_DONE)
		rc = sql_fail(db, err, step, "reading units");
	sqlite3_finalize(u);
	sqlite3_finalize(st);
	return rc;
}

/* Completed units outside the chain, and the recorded head. */
static int verify_edges(espl_db *db, espl_db_verify_result *r, const chain_walk *w,
			espl_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc = prepare_once(db,
			      "SELECT uuid, result FROM units WHERE seq IS NULL ORDER BY id", &s, err);
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		if (strcmp(col_text(s, 1), "RUNNING") == 0)
			r->running++;
		else
			problem(r, 0, col_text(s, 0),
				"inserted: unit %s is %s but is not in the chain", col_text(s, 0),
				col_text(s, 1));
	}
	sqlite3_finalize(s);
	ESPL_TRY(rc);
	ESPL_TRY(prepare_once(db, "SELECT seq, hash FROM chain WHERE id = 1", &s, err));
	if (sqlite3_step(s) == SQLITE_ROW) {
		r->head_seq = sqlite3_column_int64(s, 0);
		snprintf(r->head_hash, sizeof r->head_hash, "%s", col_text(s, 1));
	}
	sqlite3_finalize(s);
	int64_t last = w->expect - 1;
	if (r->head_seq > last)
		problem(r, last + 1, "",
			"deleted: the chain head says %" PRId64 " units were sealed but the last "
			"one present is seq %" PRId64 " (units %" PRId64 "-%" PRId64 " are missing)",
			r->head_seq, last, last + 1, r->head_seq);
	else if (r->head_seq < last || (last > 0 && strcmp(r->head_hash, w->prev_hash) != 0))
		problem(r, last, w->prev_uuid,
			"inserted or changed: the last unit (seq %" PRId64 ", %s) does not match "
			"the chain head (seq %" PRId64 ")",
			last, w->prev_uuid, r->head_seq);
	return ESPL_OK;
}

int espl_db_verify(espl_db *db, espl_db_verify_result *r, espl_error *err)
{
	NEED_ERR(err);
	chain_walk w = { .expect = 1, .prev_hash = ZERO_HASH };
	memset(r, 0, sizeof *r);
	r->ok = 1;
	/* One read transaction: a consistent snapshot while a station writes. */
	ESPL_TRY(exec(db, "BEGIN", err));
	int rc = verify_chain(db, r, &w, err);
	if (rc == 0)
		rc = verify_batches(db, r, err);
	if (rc == 0)
		rc = verify_edges(db, r, &w, err);
	sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
	return rc;
}

/* ---- replication: origin, outbox, sync state --------------------------- */

static int need_v3(espl_db *db, espl_error *err)
{
	if (db->version < 3)
		return espl_fail(err, ESPL_EDB,
				 "database %s has schema version %d, which has no outbox: open it "
				 "once read-write (any station start or `espline db verify`)",
				 db->path, db->version);
	return ESPL_OK;
}

int espl_db_origin(espl_db *db, char out[ESPL_DB_UUID_SIZE], espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	out[0] = '\0';
	ESPL_TRY(need_v3(db, err));
	ESPL_TRY(prepare_once(db, "SELECT value FROM meta WHERE key = 'origin'", &s, err));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(out, ESPL_DB_UUID_SIZE, "%s", col_text(s, 0) ? col_text(s, 0) : "");
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_fail(db, err, rc, "reading the database's origin");
	if (!out[0])
		return espl_fail(err, ESPL_EDB, "database %s has no origin id in its meta table",
				 db->path);
	return ESPL_OK;
}

/* Owned copy of a column (NULL stays NULL); sets *oom on failure. */
static const char *dup_col(sqlite3_stmt *s, int i, int *oom)
{
	return espl_strdup_oom(col_text(s, i), oom);
}

static void replica_clear(espl_db_replica *r)
{
	espl_db_station_free_strings(&r->station);
	espl_db_recipe_free_strings(&r->recipe);
	espl_db_batch_free_strings(&r->batch);
	espl_db_unit_free_strings(&r->unit);
	espl_db_steps_free(r->steps, r->n_steps);
	memset(r, 0, sizeof *r);
}

void espl_db_replicas_free(espl_db_replica *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		replica_clear(&r[i]);
	free(r);
}

static int load_images(espl_db *db, int64_t recipe_id, espl_db_replica *r, int *oom,
		       espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_once(db, "SELECT name, sha256 FROM recipe_images WHERE recipe_id = ?1"
				  " ORDER BY position", &s, err));
	sqlite3_bind_int64(s, 1, recipe_id);
	size_t cap = 0, n = 0;
	espl_db_image *im = NULL;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			void *g = realloc(im, cap * sizeof *im);
			if (!g) {
				*oom = 1;
				break;
			}
			im = g;
		}
		im[n].name = dup_col(s, 0, oom);
		im[n].sha256 = dup_col(s, 1, oom);
		n++;
	}
	sqlite3_finalize(s);
	r->recipe.images = im;
	r->recipe.n_images = n;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_fail(db, err, rc, "reading a recipe's images");
	return ESPL_OK;
}

static int load_batch(espl_db *db, const char *uuid, espl_db_replica *r, int *oom,
		      espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_once(db,
			      "SELECT b.uuid, b.name, b.operator, b.started_ms, b.planned, b.hash,"
			      " coalesce(b.ended_ms, 0), s.name, s.host, s.version, r.name, r.sha256,"
			      " r.yaml, r.id FROM batches AS b JOIN stations AS s ON s.id = b.station_id"
			      " JOIN recipes AS r ON r.id = b.recipe_id WHERE b.uuid = ?1",
			      &s, err));
	bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	int64_t recipe_id = 0;
	if (rc == SQLITE_ROW) {
		snprintf(r->batch.uuid, sizeof r->batch.uuid, "%s", col_text(s, 0));
		r->batch.name = dup_col(s, 1, oom);
		r->batch.operator_name = dup_col(s, 2, oom);
		r->batch.started_ms = sqlite3_column_int64(s, 3);
		r->batch.planned = sqlite3_column_int(s, 4);
		snprintf(r->batch_hash, sizeof r->batch_hash, "%s", col_text(s, 5) ? col_text(s, 5) : "");
		r->batch_ended_ms = sqlite3_column_int64(s, 6);
		r->station.name = dup_col(s, 7, oom);
		r->station.host = dup_col(s, 8, oom);
		r->station.version = dup_col(s, 9, oom);
		r->recipe.name = dup_col(s, 10, oom);
		r->recipe.sha256 = dup_col(s, 11, oom);
		r->recipe.yaml = dup_col(s, 12, oom);
		recipe_id = sqlite3_column_int64(s, 13);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return espl_fail(err, ESPL_ENOTFOUND, "outbox: batch %s is not in %s", uuid, db->path);
	if (rc != SQLITE_ROW)
		return sql_fail(db, err, rc, "reading a batch for the outbox");
	return load_images(db, recipe_id, r, oom, err);
}

/* The unit's step rows in index order, as owned copies (*steps grows; on
 * *oom the rows read so far are kept for the caller to free). */
static int read_steps(espl_db *db, int64_t unit_id, espl_db_step **steps, size_t *n,
		      int *oom, espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_once(db,
			      "SELECT idx, kind, address, length, expected_md5, actual_md5, bytes,"
			      " duration_ms, retries, result, error FROM steps WHERE unit_id = ?1"
			      " ORDER BY idx",
			      &s, err));
	sqlite3_bind_int64(s, 1, unit_id);
	size_t cap = *n;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			void *g = realloc(*steps, cap * sizeof **steps);
			if (!g) {
				*oom = 1;
				break;
			}
			*steps = g;
		}
		espl_db_step *st = &(*steps)[(*n)++];
		row_to_step(s, st);
		st->kind = dup_col(s, 1, oom);
		st->expected_md5 = dup_col(s, 4, oom);
		st->actual_md5 = dup_col(s, 5, oom);
		st->error = dup_col(s, 10, oom);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sql_fail(db, err, rc, "reading a unit's steps");
	return ESPL_OK;
}

static int load_steps(espl_db *db, int64_t unit_id, espl_db_replica *r, int *oom,
		      espl_error *err)
{
	return read_steps(db, unit_id, &r->steps, &r->n_steps, oom, err);
}

static int load_unit(espl_db *db, const char *uuid, espl_db_replica *r, int *oom,
		     espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_once(db,
			      "SELECT " UNIT_COLS ", u.seq, u.prev_hash, u.hash, u.repeat_of, u.id"
			      " FROM units AS u JOIN batches AS b ON b.id = u.batch_id"
			      " WHERE u.uuid = ?1 AND u.seq IS NOT NULL",
			      &s, err));
	bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	int64_t id = 0;
	if (rc == SQLITE_ROW) {
		espl_db_unit *u = &r->unit;
		row_to_unit(s, 0, u);
		u->mac = dup_col(s, 2, oom);
		u->manufacturer = dup_col(s, 5, oom);
		u->port = dup_col(s, 8, oom);
		u->adapter_serial = dup_col(s, 9, oom);
		u->adapter_location = dup_col(s, 10, oom);
		u->error_kind = dup_col(s, 15, oom);
		u->error = dup_col(s, 16, oom);
		r->seq = sqlite3_column_int64(s, UNIT_NCOLS);
		snprintf(r->prev_hash, sizeof r->prev_hash, "%s",
			 col_text(s, UNIT_NCOLS + 1) ? col_text(s, UNIT_NCOLS + 1) : "");
		snprintf(r->hash, sizeof r->hash, "%s",
			 col_text(s, UNIT_NCOLS + 2) ? col_text(s, UNIT_NCOLS + 2) : "");
		snprintf(r->repeat_of, sizeof r->repeat_of, "%s",
			 col_text(s, UNIT_NCOLS + 3) ? col_text(s, UNIT_NCOLS + 3) : "");
		id = sqlite3_column_int64(s, UNIT_NCOLS + 4);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return espl_fail(err, ESPL_ENOTFOUND, "outbox: sealed unit %s is not in %s", uuid,
				 db->path);
	if (rc != SQLITE_ROW)
		return sql_fail(db, err, rc, "reading a unit for the outbox");
	ESPL_TRY(load_steps(db, id, r, oom, err));
	return load_batch(db, r->unit.batch_uuid, r, oom, err);
}

int espl_db_outbox_read(espl_db *db, size_t max, espl_db_replica **out, size_t *count,
			espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	*out = NULL;
	*count = 0;
	ESPL_TRY(need_v3(db, err));
	espl_db_replica *r = calloc(max ? max : 1, sizeof *r);
	if (!r)
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading the outbox");
	/* One read transaction: the rows and what they point at agree. */
	int rc = exec(db, "BEGIN", err);
	if (rc == 0)
		rc = prepare_once(db, "SELECT id, kind, ref, queued_ms FROM outbox ORDER BY id LIMIT ?1",
				  &s, err);
	if (rc < 0) {
		espl_db_rollback(db);
		free(r);
		return rc;
	}
	sqlite3_bind_int64(s, 1, (int64_t)max);
	size_t n = 0;
	int step, oom = 0;
	while (rc == 0 && n < max && (step = sqlite3_step(s)) == SQLITE_ROW) {
		espl_db_replica *x = &r[n++];
		char ref[ESPL_DB_UUID_SIZE];
		x->id = sqlite3_column_int64(s, 0);
		x->kind = strcmp(col_text(s, 1), "unit") == 0 ? ESPL_DB_OUTBOX_UNIT
							       : ESPL_DB_OUTBOX_BATCH;
		snprintf(ref, sizeof ref, "%s", col_text(s, 2));
		x->queued_ms = sqlite3_column_int64(s, 3);
		rc = x->kind == ESPL_DB_OUTBOX_UNIT ? load_unit(db, ref, x, &oom, err)
						    : load_batch(db, ref, x, &oom, err);
		if (rc == 0 && oom)
			rc = espl_fail(err, ESPL_ENOMEM, "out of memory reading the outbox");
		if (rc < 0)
			espl_error_prefix(err, "outbox record %" PRId64, x->id);
	}
	sqlite3_finalize(s);
	sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
	if (rc < 0) {
		espl_db_replicas_free(r, n);
		return rc;
	}
	*out = r;
	*count = n;
	return ESPL_OK;
}

int espl_db_outbox_ack(espl_db *db, int64_t through_id, int64_t records, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = NULL;
	ESPL_TRY(need_v3(db, err));
	ESPL_TRY(exec(db, "BEGIN IMMEDIATE", err));
	int rc = prepare_once(db, "DELETE FROM outbox WHERE id <= ?1", &s, err);
	if (rc == 0) {
		sqlite3_bind_int64(s, 1, through_id);
		rc = run(db, s, err, "removing sent records from the outbox");
		sqlite3_finalize(s);
	}
	if (rc == 0)
		rc = prepare_once(db, "UPDATE sync_state SET sent = sent + ?1, last_ok_ms = ?2"
				      " WHERE id = 1", &s, err);
	if (rc == 0) {
		sqlite3_bind_int64(s, 1, records);
		sqlite3_bind_int64(s, 2, espl_db_now_ms());
		rc = run(db, s, err, "recording the sync state");
		sqlite3_finalize(s);
	}
	if (rc < 0) {
		espl_db_rollback(db);
		return rc;
	}
	return espl_db_commit(db, err);
}

int espl_db_sync_note(espl_db *db, const char *central, const char *error, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	ESPL_TRY(need_v3(db, err));
	ESPL_TRY(prepare_once(db,
			      error ? "UPDATE sync_state SET central = ?1, last_error = ?2,"
				      " last_error_ms = ?3 WHERE id = 1"
				    : "UPDATE sync_state SET central = ?1, last_ok_ms = ?3 WHERE id = 1",
			      &s, err));
	bind_text(s, 1, central);
	if (error)
		bind_text(s, 2, error);
	sqlite3_bind_int64(s, 3, espl_db_now_ms());
	int rc = run(db, s, err, "recording the sync state");
	sqlite3_finalize(s);
	return rc;
}

int espl_db_sync_read(espl_db *db, espl_db_sync_status *st, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	memset(st, 0, sizeof *st);
	ESPL_TRY(espl_db_origin(db, st->origin, err));
	ESPL_TRY(prepare_once(db,
			      "SELECT (SELECT count(*) FROM outbox),"
			      " (SELECT count(*) FROM outbox WHERE kind = 'unit'),"
			      " (SELECT min(queued_ms) FROM outbox), central, sent,"
			      " coalesce(last_ok_ms, 0), last_error, coalesce(last_error_ms, 0)"
			      " FROM sync_state WHERE id = 1",
			      &s, err));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		st->waiting = sqlite3_column_int64(s, 0);
		st->waiting_units = sqlite3_column_int64(s, 1);
		st->oldest_ms = sqlite3_column_int64(s, 2);
		snprintf(st->central, sizeof st->central, "%s", col_text(s, 3) ? col_text(s, 3) : "");
		st->sent = sqlite3_column_int64(s, 4);
		st->last_ok_ms = sqlite3_column_int64(s, 5);
		snprintf(st->last_error, sizeof st->last_error, "%s",
			 col_text(s, 6) ? col_text(s, 6) : "");
		st->last_error_ms = sqlite3_column_int64(s, 7);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return sql_fail(db, err, rc, "reading the sync state");
	return ESPL_OK;
}
