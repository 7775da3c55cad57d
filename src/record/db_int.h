/*
 * db_int.h - what the files of the local database share: the handle, the
 * prepared statements, the SQL helpers (internal to src/record, not
 * installed; private names start with espl__db_).
 *
 * The database is one module (include/espline/db.h) in five files:
 *   db.c      statements, small helpers, transactions
 *   schema.c  the schema migrations, open, pragmas
 *   chain.c   canonical serialization, hashes, the chain check
 *   units.c   batches, units, steps, events, reading units back
 *   outbox.c  replication: origin, outbox, sync state
 *   adapters.c the baud rate each adapter last worked at
 *
 * Thread-safety: as db.h, one thread uses a handle at a time.
 */
#ifndef ESPLINE_RECORD_DB_INT_H
#define ESPLINE_RECORD_DB_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "espline/db.h"

/* Public entry points accept err == NULL; the helpers below need one. */
#define NEED_ERR(err)            \
	espl_error err##_local_; \
	if (!(err))              \
		(err) = &err##_local_

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"


#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

#define UNIT_COLS                                                              \
	"u.uuid, b.uuid, u.mac, u.chip_id, u.flash_id, u.manufacturer,"        \
	" u.flash_size, u.crystal_mhz, u.port, u.adapter_serial,"             \
	" u.adapter_location, u.started_ms, u.ended_ms, u.duration_ms,"       \
	" u.result, u.error_kind, u.error"
/* Schema v6 (slot, barcode, label) and v8 (serial); writer-side queries, whose database is
 * always migrated, append it to UNIT_COLS; read commands ask
 * espl__db_unit_ident_cols. */
#define UNIT_IDENT_COLS ", u.slot, u.barcode, u.label, u.serial"
#define UNIT_NCOLS 21

enum stmt_id {
	ST_STATION_INS, ST_STATION_ID, ST_RECIPE_INS, ST_RECIPE_ID, ST_IMAGE_INS,
	ST_BATCH_INS, ST_BATCH_END, ST_BATCH_FIND, ST_UNIT_INS, ST_UNIT_FIND,
	ST_UNIT_UPDATE, ST_STEP_INS, ST_REPEAT_FIND, ST_REPEAT_SET, ST_CHAIN_GET,
	ST_CHAIN_SET, ST_UNIT_SEAL, ST_BATCH_COUNT, ST_EVENT_INS, ST_STALE_LIST,
	ST_UNIT_LOAD, ST_SPOOL_SEEN, ST_SPOOL_MARK, ST_OUTBOX_INS, ST_STEP_PROGRESS,
	ST_STEPS_CLEAR, ST_STEP_DETAIL, ST_STEP_DETAIL_PROGRESS, ST_UNIT_IDENT, ST_UNIT_LOAD_V5, ST_COUNT
};

struct espl_db {
	sqlite3 *h;
	char *path;
	int version;
	int read_only;
	sqlite3_stmt *stmts[ST_COUNT];
};

/* db.c */
int espl__db_sql_fail(espl_db *db, espl_error *err, int rc, const char *what);
sqlite3_stmt *espl__db_stmt(espl_db *db, enum stmt_id id, espl_error *err);
void espl__db_bind_text(sqlite3_stmt *s, int i, const char *v);
const char *espl__db_col_text(sqlite3_stmt *s, int i);
int espl__db_prepare_once(espl_db *db, const char *sql, sqlite3_stmt **s, espl_error *err);
int espl__db_run(espl_db *db, sqlite3_stmt *s, espl_error *err, const char *what);
int espl__db_exec(espl_db *db, const char *sql, espl_error *err);
int espl__db_tx_open(espl_db *db, espl_error *err);
int espl__db_tx_close(espl_db *db, int kind, int rc, espl_error *err);

/* units.c */
void espl__db_row_to_unit(sqlite3_stmt *s, int c, espl_db_unit *u);
void espl__db_row_to_step(sqlite3_stmt *s, espl_db_step *st);
/* Schema v4's step detail in a query: "detail" or "NULL" for an older
 * database (read commands never migrate it). */
const char *espl__db_step_detail_col(espl_db *db);
const char *espl__db_unit_ident_cols(espl_db *db);
/* Column 33 of a report's unit query (report.c): ", (SELECT ...)" joining
 * the unit's step details "kind (step N):\n<detail>", or ", NULL". */
const char *espl__db_unit_details_col(espl_db *db);
/* Column 32 of a report's unit query, after the slot, barcode, label and serial, before the details: the unit's
 * serial number (schema v5, serials.h), or ", NULL". */
const char *espl__db_unit_serial_col(espl_db *db);
/* Column 34, after the details: the unit's events (a scan's wait, the
 * label's hand-off to the printer, the hooks, serials returned or voided),
 * one "TIME  KIND  MESSAGE" line each, oldest first, or NULL. */
extern const char espl__db_unit_events_col[];

/* outbox.c */
int espl__db_queue_outbox(espl_db *db, const char *kind, const char *ref, espl_error *err);
int espl__db_read_steps(espl_db *db, int64_t unit_id, espl_db_step **steps, size_t *n,
			  int *oom, espl_error *err);

#endif /* ESPLINE_RECORD_DB_INT_H */
