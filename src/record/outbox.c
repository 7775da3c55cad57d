/* outbox.c - replication state: origin, outbox, sync state; see include/espline/db.h and src/record/db_int.h. */
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

/* ---- outbox ------------------------------------------------------------ */

/* Queue a record for the central database, inside the caller's transaction
 * (schema v3 on; older schemas opened on purpose by tests have no outbox). */
int espl__db_queue_outbox(espl_db *db, const char *kind, const char *ref, espl_error *err)
{
	if (db->version < 3)
		return ESPL_OK;
	sqlite3_stmt *s = espl__db_stmt(db, ST_OUTBOX_INS, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, kind);
	espl__db_bind_text(s, 2, ref);
	sqlite3_bind_int64(s, 3, espl_db_now_ms());
	return espl__db_run(db, s, err, "queuing the record for the central database");
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
	ESPL_TRY(espl__db_prepare_once(db, "SELECT value FROM meta WHERE key = 'origin'", &s, err));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(out, ESPL_DB_UUID_SIZE, "%s", espl__db_col_text(s, 0) ? espl__db_col_text(s, 0) : "");
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return espl__db_sql_fail(db, err, rc, "reading the database's origin");
	if (!out[0])
		return espl_fail(err, ESPL_EDB, "database %s has no origin id in its meta table",
				 db->path);
	return ESPL_OK;
}

/* Owned copy of a column (NULL stays NULL); sets *oom on failure. */
static const char *dup_col(sqlite3_stmt *s, int i, int *oom)
{
	return espl__strdup_oom(espl__db_col_text(s, i), oom);
}

static void replica_clear(espl_db_replica *r)
{
	espl__db_station_free_strings(&r->station);
	espl__db_recipe_free_strings(&r->recipe);
	espl__db_batch_free_strings(&r->batch);
	espl__db_unit_free_strings(&r->unit);
	espl__db_steps_free(r->steps, r->n_steps);
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
	ESPL_TRY(espl__db_prepare_once(db, "SELECT name, sha256 FROM recipe_images WHERE recipe_id = ?1"
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
		return espl__db_sql_fail(db, err, rc, "reading a recipe's images");
	return ESPL_OK;
}

static int load_batch(espl_db *db, const char *uuid, espl_db_replica *r, int *oom,
		      espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(espl__db_prepare_once(db,
			      "SELECT b.uuid, b.name, b.operator, b.started_ms, b.planned, b.hash,"
			      " coalesce(b.ended_ms, 0), s.name, s.host, s.version, r.name, r.sha256,"
			      " r.yaml, r.id FROM batches AS b JOIN stations AS s ON s.id = b.station_id"
			      " JOIN recipes AS r ON r.id = b.recipe_id WHERE b.uuid = ?1",
			      &s, err));
	espl__db_bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	int64_t recipe_id = 0;
	if (rc == SQLITE_ROW) {
		snprintf(r->batch.uuid, sizeof r->batch.uuid, "%s", espl__db_col_text(s, 0));
		r->batch.name = dup_col(s, 1, oom);
		r->batch.operator_name = dup_col(s, 2, oom);
		r->batch.started_ms = sqlite3_column_int64(s, 3);
		r->batch.planned = sqlite3_column_int(s, 4);
		snprintf(r->batch_hash, sizeof r->batch_hash, "%s", espl__db_col_text(s, 5) ? espl__db_col_text(s, 5) : "");
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
		return espl__db_sql_fail(db, err, rc, "reading a batch for the outbox");
	return load_images(db, recipe_id, r, oom, err);
}

/* The unit's step rows in index order, as owned copies (*steps grows; on
 * *oom the rows read so far are kept for the caller to free). */
int espl__db_read_steps(espl_db *db, int64_t unit_id, espl_db_step **steps, size_t *n,
			  int *oom, espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(espl__db_prepare_once(db,
			      "SELECT idx, kind, address, length, expected_md5, actual_md5, bytes,"
			      " duration_ms, retries, result, error, detail FROM steps WHERE unit_id = ?1"
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
		espl__db_row_to_step(s, st);
		st->kind = dup_col(s, 1, oom);
		st->expected_md5 = dup_col(s, 4, oom);
		st->actual_md5 = dup_col(s, 5, oom);
		st->error = dup_col(s, 10, oom);
		st->detail = dup_col(s, 11, oom);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return espl__db_sql_fail(db, err, rc, "reading a unit's steps");
	return ESPL_OK;
}

static int load_steps(espl_db *db, int64_t unit_id, espl_db_replica *r, int *oom,
		      espl_error *err)
{
	return espl__db_read_steps(db, unit_id, &r->steps, &r->n_steps, oom, err);
}

static int load_unit(espl_db *db, const char *uuid, espl_db_replica *r, int *oom,
		     espl_error *err)
{
	sqlite3_stmt *s;
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT " UNIT_COLS "%s, u.seq, u.prev_hash, u.hash, u.repeat_of, u.id"
		 " FROM units AS u JOIN batches AS b ON b.id = u.batch_id WHERE u.uuid = ?1 AND u.seq IS NOT NULL",
		 espl__db_unit_ident_cols(db));
	ESPL_TRY(espl__db_prepare_once(db, sql, &s, err));
	espl__db_bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	int64_t id = 0;
	if (rc == SQLITE_ROW) {
		espl_db_unit *u = &r->unit;
		espl__db_row_to_unit(s, 0, u);
		u->mac = dup_col(s, 2, oom);
		u->manufacturer = dup_col(s, 5, oom);
		u->port = dup_col(s, 8, oom);
		u->adapter_serial = dup_col(s, 9, oom);
		u->adapter_location = dup_col(s, 10, oom);
		u->error_kind = dup_col(s, 15, oom);
		u->error = dup_col(s, 16, oom);
		u->slot = dup_col(s, 17, oom);
		u->barcode = dup_col(s, 18, oom);
		u->label = dup_col(s, 19, oom);
		u->serial = dup_col(s, 20, oom);
		r->seq = sqlite3_column_int64(s, UNIT_NCOLS);
		snprintf(r->prev_hash, sizeof r->prev_hash, "%s",
			 espl__db_col_text(s, UNIT_NCOLS + 1) ? espl__db_col_text(s, UNIT_NCOLS + 1) : "");
		snprintf(r->hash, sizeof r->hash, "%s",
			 espl__db_col_text(s, UNIT_NCOLS + 2) ? espl__db_col_text(s, UNIT_NCOLS + 2) : "");
		snprintf(r->repeat_of, sizeof r->repeat_of, "%s",
			 espl__db_col_text(s, UNIT_NCOLS + 3) ? espl__db_col_text(s, UNIT_NCOLS + 3) : "");
		id = sqlite3_column_int64(s, UNIT_NCOLS + 4);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return espl_fail(err, ESPL_ENOTFOUND, "outbox: sealed unit %s is not in %s", uuid,
				 db->path);
	if (rc != SQLITE_ROW)
		return espl__db_sql_fail(db, err, rc, "reading a unit for the outbox");
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
	int rc = espl__db_exec(db, "BEGIN", err);
	if (rc == 0)
		rc = espl__db_prepare_once(db, "SELECT id, kind, ref, queued_ms FROM outbox ORDER BY id LIMIT ?1",
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
		x->kind = strcmp(espl__db_col_text(s, 1), "unit") == 0 ? ESPL_DB_OUTBOX_UNIT
							       : ESPL_DB_OUTBOX_BATCH;
		snprintf(ref, sizeof ref, "%s", espl__db_col_text(s, 2));
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
	ESPL_TRY(espl__db_exec(db, "BEGIN IMMEDIATE", err));
	int rc = espl__db_prepare_once(db, "DELETE FROM outbox WHERE id <= ?1", &s, err);
	if (rc == 0) {
		sqlite3_bind_int64(s, 1, through_id);
		rc = espl__db_run(db, s, err, "removing sent records from the outbox");
		sqlite3_finalize(s);
	}
	if (rc == 0)
		rc = espl__db_prepare_once(db, "UPDATE sync_state SET sent = sent + ?1, last_ok_ms = ?2"
				      " WHERE id = 1", &s, err);
	if (rc == 0) {
		sqlite3_bind_int64(s, 1, records);
		sqlite3_bind_int64(s, 2, espl_db_now_ms());
		rc = espl__db_run(db, s, err, "recording the sync state");
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
	ESPL_TRY(espl__db_prepare_once(db,
			      error ? "UPDATE sync_state SET central = ?1, last_error = ?2,"
				      " last_error_ms = ?3 WHERE id = 1"
				    : "UPDATE sync_state SET central = ?1, last_ok_ms = ?3 WHERE id = 1",
			      &s, err));
	espl__db_bind_text(s, 1, central);
	if (error)
		espl__db_bind_text(s, 2, error);
	sqlite3_bind_int64(s, 3, espl_db_now_ms());
	int rc = espl__db_run(db, s, err, "recording the sync state");
	sqlite3_finalize(s);
	return rc;
}

int espl_db_sync_read(espl_db *db, espl_db_sync_status *st, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	memset(st, 0, sizeof *st);
	ESPL_TRY(espl_db_origin(db, st->origin, err));
	ESPL_TRY(espl__db_prepare_once(db,
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
		snprintf(st->central, sizeof st->central, "%s", espl__db_col_text(s, 3) ? espl__db_col_text(s, 3) : "");
		st->sent = sqlite3_column_int64(s, 4);
		st->last_ok_ms = sqlite3_column_int64(s, 5);
		snprintf(st->last_error, sizeof st->last_error, "%s",
			 espl__db_col_text(s, 6) ? espl__db_col_text(s, 6) : "");
		st->last_error_ms = sqlite3_column_int64(s, 7);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return espl__db_sql_fail(db, err, rc, "reading the sync state");
	return ESPL_OK;
}
