/* schema.c - the local database schema, open, pragmas, migration; see include/espline/db.h and src/record/db_int.h. */
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

	/* v4: text kept with a step: boot_check's captured boot log, the
	 * screening checks' findings (issue 15).  NULL for older rows. */
	[4] =
	"ALTER TABLE steps ADD COLUMN detail TEXT;",

	/* v5: serial numbers and CSV rows handed to units (issue 16;
	 * include/espline/serials.h).  Only keys of CSV rows, never cells. */
	[5] =
	"CREATE TABLE serials ("
	"  id INTEGER PRIMARY KEY, counter TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  serial TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL CHECK (state IN ('reserved','committed','returned','voided')),"
	"  void_on_fail INTEGER NOT NULL DEFAULT 0, mac TEXT, unit_uuid TEXT,"
	"  changed_ms INTEGER NOT NULL, reason TEXT, UNIQUE (counter, seq));"
	"CREATE INDEX serials_unit ON serials (unit_uuid);"
	"CREATE INDEX serials_mac ON serials (counter, mac);"
	"CREATE TABLE csv_rows ("
	"  id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, position INTEGER,"
	"  state TEXT NOT NULL CHECK (state IN ('unused','reserved','committed','returned','voided')),"
	"  void_on_fail INTEGER NOT NULL DEFAULT 0, mac TEXT, unit_uuid TEXT,"
	"  changed_ms INTEGER, reason TEXT, UNIQUE (source, key));"
	"CREATE INDEX csv_rows_free ON csv_rows (source, position);"
	"CREATE INDEX csv_rows_unit ON csv_rows (unit_uuid);"
	"CREATE TABLE unit_identity ("
	"  unit_uuid TEXT PRIMARY KEY, serial TEXT, csv_source TEXT, csv_key TEXT) WITHOUT ROWID;"
	"CREATE INDEX unit_identity_serial ON unit_identity (serial);",

	/* v6: binding the physical unit (issue 16): the station's slot name,
	 * the scanned code (searchable: espline history CODE) and the text of
	 * the label printed on PASS.  NULL for older rows. */
	[6] =
	"ALTER TABLE units ADD COLUMN slot TEXT;"
	"ALTER TABLE units ADD COLUMN barcode TEXT;"
	"ALTER TABLE units ADD COLUMN label TEXT;"
	"CREATE INDEX units_barcode ON units (barcode) WHERE barcode IS NOT NULL;",

	/* v7: the baud rate each adapter's stub last worked at (the baud
	 * ladder's memory, issue 17); not chained. */
	[7] =
	"CREATE TABLE adapter_rates (adapter TEXT PRIMARY KEY, baud INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL) WITHOUT ROWID;",

	/* v8: the unit's serial number in its own record, so the hash chain
	 * covers it (issue 16); NULL for older rows and units without one. */
	[8] =
	"ALTER TABLE units ADD COLUMN serial TEXT;"
	"CREATE INDEX units_serial ON units (serial) WHERE serial IS NOT NULL;",

	/* v9: serial numbers leased from the central database (issue 16;
	 * serial_lease.h): a station with --central takes its numbers only
	 * from these ranges. */
	[9] =
	"CREATE TABLE serial_leases (id INTEGER PRIMARY KEY, counter TEXT NOT NULL,"
	"  first INTEGER NOT NULL, last INTEGER NOT NULL, next INTEGER NOT NULL,"
	"  leased_ms INTEGER NOT NULL);"
	"CREATE INDEX serial_leases_counter ON serial_leases (counter, first);",

	/* v10: a unit's events, found by its uuid: history and the JSON export
	 * show them with the unit (the scan's wait, the label's hand-off to
	 * the printer, the hooks). */
	[10] =
	"CREATE INDEX events_unit ON events (unit_uuid) WHERE unit_uuid IS NOT NULL;",
};

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
		return espl__db_sql_fail(db, err, rc, sql);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return espl__db_sql_fail(db, err, rc, sql);
	return ESPL_OK;
}

static int set_pragmas(espl_db *db, const espl_db_options *o, espl_error *err)
{
	char sql[96];
	sqlite3_busy_timeout(db->h, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000);
	ESPL_TRY(espl__db_exec(db, "PRAGMA foreign_keys = ON", err));
	if (db->read_only)
		return ESPL_OK;
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	int wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
	sqlite3_finalize(s);
	if (!wal)
		return espl__db_sql_fail(db, err, rc == SQLITE_ROW ? SQLITE_CANTOPEN : rc,
				"cannot switch to WAL journal mode");
	ESPL_TRY(espl__db_exec(db, "PRAGMA synchronous = FULL", err));
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
	if (db->read_only && v == 0)
		return espl_fail(err, ESPL_EDB,
				 "%s is not an espline database (it holds no espline schema); read "
				 "commands never create or change a database", db->path);
	if (db->read_only)
		return espl_fail(err, ESPL_EDB,
				 "database %s has schema version %lld, older than this espline's (%d); read "
				 "commands never migrate a database: run a station on it once to migrate it, "
				 "or read it with the espline that wrote it",
				 db->path, v, target);
	for (int next = (int)v + 1; next <= target; next++) {
		char sql[64];
		int rc = espl__db_exec(db, "BEGIN IMMEDIATE", err);
		if (rc == 0)
			rc = espl__db_exec(db, migrations[next], err);
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", next);
		if (rc == 0)
			rc = espl__db_exec(db, sql, err);
		if (rc == 0)
			rc = espl__db_exec(db, "COMMIT", err);
		if (rc < 0) {
			espl_db_rollback(db);
			espl_error_prefix(err, "migrating the schema to version %d", next);
			return rc;
		}
		db->version = next;
	}
	return ESPL_OK;
}

/* Whether a read-only connection can read: a WAL database on read-only
 * media (or in a folder the user cannot write) cannot get its -shm file,
 * and SQLite then refuses every query. */
static int readable(espl_db *db)
{
	return sqlite3_exec(db->h, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK;
}

/* Open db->path again as immutable (SQLite reads it as a plain file, with
 * no locks and no -shm): right for a copy kept for an audit or a database
 * on read-only media, which nothing can be writing. */
static int reopen_immutable(espl_db *db)
{
	char uri[PATH_MAX * 3 + 32];
	size_t n = (size_t)snprintf(uri, sizeof uri, "file:");
	for (const unsigned char *p = (const unsigned char *)db->path; *p && n + 4 < sizeof uri - 16; p++)
		n += (size_t)(*p == '%' || *p == '?' || *p == '#' || *p < 0x20 || *p >= 0x7F
		                      ? snprintf(uri + n, sizeof uri - n, "%%%02X", *p)
		                      : snprintf(uri + n, sizeof uri - n, "%c", *p));
	snprintf(uri + n, sizeof uri - n, "?immutable=1");
	sqlite3_close(db->h);
	db->h = NULL;
	return sqlite3_open_v2(uri, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
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
	if (rc == SQLITE_OK && o.read_only && !readable(db))
		rc = reopen_immutable(db);
	if (rc != SQLITE_OK) {
		rc = db->h ? espl__db_sql_fail(db, err, rc, "cannot open")
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

/* A step's detail column arrived in schema v4; read commands never
 * migrate, so an older database answers NULL for it. */
const char *espl__db_step_detail_col(espl_db *db)
{
	return espl_db_schema_version(db) >= 4 ? "detail" : "NULL";
}

/* The unit's slot, barcode and label arrived in schema v6, its serial in
 * v8 (a v5 to v7 database keeps serials in unit_identity only). */
const char *espl__db_unit_ident_cols(espl_db *db)
{
	int v = espl_db_schema_version(db);
	return v >= 8 ? UNIT_IDENT_COLS : v >= 6 ? ", u.slot, u.barcode, u.label, NULL" : ", NULL, NULL, NULL, NULL";
}

const char *espl__db_unit_serial_col(espl_db *db)
{
	int v = espl_db_schema_version(db);
	return v >= 8   ? ", coalesce(u.serial, (SELECT i.serial FROM unit_identity AS i WHERE i.unit_uuid = u.uuid))"
	       : v >= 5 ? ", (SELECT i.serial FROM unit_identity AS i WHERE i.unit_uuid = u.uuid)"
	                : ", NULL";
}

/* The events table has had unit_uuid since v1; v10 indexes it. */
const char espl__db_unit_events_col[] =
	", (SELECT group_concat(l, char(10)) FROM (SELECT strftime('%Y-%m-%dT%H:%M:%fZ', e.time_ms / 1000.0, 'unixepoch')"
	"    || '  ' || e.kind || '  ' || replace(e.message, char(10), ' ') AS l"
	"    FROM events AS e WHERE e.unit_uuid = u.uuid ORDER BY e.id))";

const char *espl__db_unit_details_col(espl_db *db)
{
	return espl_db_schema_version(db) >= 4
		       ? ", (SELECT group_concat(t.kind || ' (step ' || (t.idx + 1) || '):' || char(10)"
			 "    || t.detail, char(10)) FROM steps AS t"
			 "    WHERE t.unit_id = u.id AND t.detail IS NOT NULL)"
		       : ", NULL";
}

int espl_db_schema_version(espl_db *db)
{
	return db->version;
}

sqlite3 *espl_db_sqlite(espl_db *db)
{
	return db->h;
}
