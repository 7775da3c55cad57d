/* units.c - batches, units, steps and events, and reading units back; see include/espline/db.h and src/record/db_int.h. */
#include "espline/db.h"
#include "espline/serials.h"
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

/* ---- batches ----------------------------------------------------------- */

static int lookup_id(espl_db *db, enum stmt_id id, const char *a, const char *b,
		     const char *c, int64_t *out, espl_error *err)
{
	sqlite3_stmt *s = espl__db_stmt(db, id, err);
	if (!s)
		return err ? err->code : ESPL_EDB;
	espl__db_bind_text(s, 1, a);
	if (b)
		espl__db_bind_text(s, 2, b);
	if (c)
		espl__db_bind_text(s, 3, c);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return ESPL_OK;
	if (rc == SQLITE_DONE)
		return ESPL_ENOTFOUND;
	return espl__db_sql_fail(db, err, rc, "lookup");
}

static int put_station(espl_db *db, const espl_db_station *st, int64_t *id, espl_error *err)
{
	sqlite3_stmt *s = espl__db_stmt(db, ST_STATION_INS, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, st->name);
	espl__db_bind_text(s, 2, st->host);
	espl__db_bind_text(s, 3, st->version);
	ESPL_TRY(espl__db_run(db, s, err, "recording the station"));
	int rc = lookup_id(db, ST_STATION_ID, st->name, st->host, st->version, id, err);
	return rc == ESPL_ENOTFOUND ? espl_fail(err, ESPL_EDB, "station row vanished") : rc;
}

static int put_recipe(espl_db *db, const espl_db_recipe *r, int64_t *id, espl_error *err)
{
	sqlite3_stmt *s = espl__db_stmt(db, ST_RECIPE_INS, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, r->name);
	espl__db_bind_text(s, 2, r->sha256);
	espl__db_bind_text(s, 3, r->yaml ? r->yaml : "");
	ESPL_TRY(espl__db_run(db, s, err, "recording the recipe"));
	int rc = lookup_id(db, ST_RECIPE_ID, r->sha256, NULL, NULL, id, err);
	if (rc == ESPL_ENOTFOUND)
		return espl_fail(err, ESPL_EDB, "recipe row vanished");
	ESPL_TRY(rc);
	for (size_t i = 0; i < r->n_images; i++) {
		if (!r->images[i].name || !r->images[i].sha256)
			return espl_fail(err, ESPL_EARG, "recipe %s: image %zu has no name or sha256",
					 r->name, i);
		if (!(s = espl__db_stmt(db, ST_IMAGE_INS, err)))
			return err->code;
		sqlite3_bind_int64(s, 1, *id);
		sqlite3_bind_int64(s, 2, (int64_t)i);
		espl__db_bind_text(s, 3, r->images[i].name);
		espl__db_bind_text(s, 4, r->images[i].sha256);
		ESPL_TRY(espl__db_run(db, s, err, "recording the recipe's images"));
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
	if (espl_db_batch_hash(station, recipe, batch, hash) < 0)
		return espl_fail(err, ESPL_ENOMEM, "out of memory hashing batch %s", batch->uuid);
	sqlite3_stmt *s = espl__db_stmt(db, ST_BATCH_INS, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, batch->uuid);
	espl__db_bind_text(s, 2, batch->name);
	sqlite3_bind_int64(s, 3, recipe_id);
	sqlite3_bind_int64(s, 4, station_id);
	espl__db_bind_text(s, 5, batch->operator_name);
	sqlite3_bind_int64(s, 6, batch->started_ms);
	sqlite3_bind_int(s, 7, batch->planned);
	espl__db_bind_text(s, 8, hash);
	ESPL_TRY(espl__db_run(db, s, err, "recording the batch"));
	if (sqlite3_changes(db->h) == 0)
		return ESPL_OK; /* already recorded (a replayed record) */
	return espl__db_queue_outbox(db, "batch", batch->uuid, err);
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
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	return espl__db_tx_close(db, tx, insert_batch(db, station, recipe, batch, err), err);
}

int espl_db_end_batch(espl_db *db, const char *batch_uuid, int64_t ended_ms, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = espl__db_stmt(db, ST_BATCH_END, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, batch_uuid);
	sqlite3_bind_int64(s, 2, ended_ms);
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = espl__db_run(db, s, err, "closing the batch");
	if (rc == 0 && sqlite3_changes(db->h) == 0)
		rc = espl_fail(err, ESPL_ENOTFOUND, "no batch %s in %s", batch_uuid, db->path);
	if (rc == 0)
		rc = espl__db_queue_outbox(db, "batch", batch_uuid, err);
	return espl__db_tx_close(db, tx, rc, err);
}

static int find_batch(espl_db *db, const char *uuid, int64_t *id,
		      char hash[ESPL_DB_HASH_SIZE], espl_error *err)
{
	sqlite3_stmt *s = espl__db_stmt(db, ST_BATCH_FIND, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		snprintf(hash, ESPL_DB_HASH_SIZE, "%s", espl__db_col_text(s, 1) ? espl__db_col_text(s, 1) : "");
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return ESPL_OK;
	if (rc == SQLITE_DONE)
		return espl_fail(err, ESPL_ENOTFOUND,
				 "unit refers to batch %s, which was never recorded", uuid);
	return espl__db_sql_fail(db, err, rc, "looking up the batch");
}

/* ---- units ------------------------------------------------------------- */

static void bind_unit(sqlite3_stmt *s, const espl_db_unit *u, int64_t batch_id)
{
	espl__db_bind_text(s, 1, u->uuid);
	sqlite3_bind_int64(s, 2, batch_id);
	espl__db_bind_text(s, 3, u->mac);
	sqlite3_bind_int64(s, 4, u->chip_id);
	sqlite3_bind_int64(s, 5, u->flash_id);
	espl__db_bind_text(s, 6, u->manufacturer);
	sqlite3_bind_int64(s, 7, u->flash_size);
	sqlite3_bind_int(s, 8, u->crystal_mhz);
	espl__db_bind_text(s, 9, u->port);
	espl__db_bind_text(s, 10, u->adapter_serial);
	espl__db_bind_text(s, 11, u->adapter_location);
	sqlite3_bind_int64(s, 12, u->started_ms);
	sqlite3_bind_int64(s, 13, u->ended_ms);
	sqlite3_bind_int64(s, 14, u->duration_ms);
	espl__db_bind_text(s, 15, espl_db_result_name(u->result));
	espl__db_bind_text(s, 16, u->error_kind);
	espl__db_bind_text(s, 17, u->error);
}

/* The unit's slot, barcode and label, when it has any (schema v6). */
static int set_ident(espl_db *db, const espl_db_unit *u, espl_error *err)
{
	if (!u->slot && !u->barcode && !u->label && !u->serial)
		return ESPL_OK;
	sqlite3_stmt *s = espl__db_stmt(db, ST_UNIT_IDENT, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, u->uuid);
	espl__db_bind_text(s, 2, u->slot);
	espl__db_bind_text(s, 3, u->barcode);
	espl__db_bind_text(s, 4, u->label);
	espl__db_bind_text(s, 5, u->serial);
	return espl__db_run(db, s, err, "recording the unit's slot, code and label");
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
	sqlite3_stmt *s = espl__db_stmt(db, ST_UNIT_INS, err);
	if (!s)
		return err->code;
	bind_unit(s, &u, batch_id);
	ESPL_TRY(espl__db_run(db, s, err, "recording the unit's start"));
	return set_ident(db, &u, err);
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
	sqlite3_stmt *s = espl__db_stmt(db, ST_UNIT_FIND, err);
	memset(st, 0, sizeof *st);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		st->found = 1;
		st->id = sqlite3_column_int64(s, 0);
		st->result = espl_db_result_parse(espl__db_col_text(s, 1));
		st->seq = sqlite3_column_int64(s, 2);
		snprintf(st->hash, sizeof st->hash, "%s", espl__db_col_text(s, 3) ? espl__db_col_text(s, 3) : "");
		snprintf(st->repeat_of, sizeof st->repeat_of, "%s",
			 espl__db_col_text(s, 4) ? espl__db_col_text(s, 4) : "");
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return espl__db_sql_fail(db, err, rc, "looking up the unit");
	return ESPL_OK;
}

/* Bind a step's columns to parameters 2..12 (1 is the unit). */
static void bind_step(sqlite3_stmt *s, const espl_db_step *st)
{
	sqlite3_bind_int(s, 2, st->index);
	espl__db_bind_text(s, 3, st->kind ? st->kind : "");
	sqlite3_bind_int64(s, 4, st->address);
	sqlite3_bind_int64(s, 5, st->length);
	espl__db_bind_text(s, 6, st->expected_md5);
	espl__db_bind_text(s, 7, st->actual_md5);
	sqlite3_bind_int64(s, 8, (int64_t)st->bytes);
	sqlite3_bind_int64(s, 9, st->duration_ms);
	sqlite3_bind_int(s, 10, st->retries);
	espl__db_bind_text(s, 11, espl_db_result_name(st->result));
	espl__db_bind_text(s, 12, st->error);
}

/* The step's detail, when it has one: statement ST_STEP_DETAIL (key: the
 * unit's row id) or ST_STEP_DETAIL_PROGRESS (key: its uuid). */
static int set_detail(espl_db *db, int which, int64_t unit_id, const char *unit_uuid,
		      const espl_db_step *st, espl_error *err)
{
	if (!st->detail)
		return ESPL_OK;
	sqlite3_stmt *s = espl__db_stmt(db, which, err);
	if (!s)
		return err->code;
	if (unit_uuid)
		espl__db_bind_text(s, 1, unit_uuid);
	else
		sqlite3_bind_int64(s, 1, unit_id);
	sqlite3_bind_int(s, 2, st->index);
	espl__db_bind_text(s, 3, st->detail);
	return espl__db_run(db, s, err, "recording a step's text");
}

static int insert_steps(espl_db *db, int64_t unit_id, const espl_db_step *steps, size_t n,
			espl_error *err)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = espl__db_stmt(db, ST_STEP_INS, err);
		if (!s)
			return err->code;
		sqlite3_bind_int64(s, 1, unit_id);
		bind_step(s, &steps[i]);
		ESPL_TRY(espl__db_run(db, s, err, "recording a step"));
		ESPL_TRY(set_detail(db, ST_STEP_DETAIL, unit_id, NULL, &steps[i], err));
	}
	return ESPL_OK;
}

static int flag_repeat(espl_db *db, int64_t unit_id, int64_t batch_id, const char *mac,
		       char repeat_of[ESPL_DB_UUID_SIZE], espl_error *err)
{
	repeat_of[0] = '\0';
	sqlite3_stmt *s = espl__db_stmt(db, ST_REPEAT_FIND, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, batch_id);
	espl__db_bind_text(s, 2, mac);
	sqlite3_bind_int64(s, 3, unit_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(repeat_of, ESPL_DB_UUID_SIZE, "%s", espl__db_col_text(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return espl__db_sql_fail(db, err, rc, "checking for a repeated MAC");
	if (!repeat_of[0])
		return ESPL_OK;
	if (!(s = espl__db_stmt(db, ST_REPEAT_SET, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	espl__db_bind_text(s, 2, repeat_of);
	return espl__db_run(db, s, err, "flagging a repeated MAC");
}

static int seal(espl_db *db, int64_t unit_id, int64_t batch_id, const char *batch_hash,
		const espl_db_unit *u, const espl_db_step *steps, size_t n,
		espl_db_sealed *out, espl_error *err)
{
	char prev[ESPL_DB_HASH_SIZE] = "";
	int64_t seq = 0;
	sqlite3_stmt *s = espl__db_stmt(db, ST_CHAIN_GET, err);
	if (!s)
		return err->code;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(s, 0) + 1;
		snprintf(prev, sizeof prev, "%s", espl__db_col_text(s, 1));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? espl_fail(err, ESPL_EDB, "database %s: chain head missing",
						     db->path)
					 : espl__db_sql_fail(db, err, rc, "reading the chain head");
	if (espl_db_unit_hash(seq, prev, batch_hash, u, steps, n, out->hash) < 0)
		return espl_fail(err, ESPL_ENOMEM, "out of memory hashing unit %s", u->uuid);
	out->seq = seq;

	if (!(s = espl__db_stmt(db, ST_UNIT_SEAL, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	sqlite3_bind_int64(s, 2, seq);
	espl__db_bind_text(s, 3, prev);
	espl__db_bind_text(s, 4, out->hash);
	ESPL_TRY(espl__db_run(db, s, err, "sealing the unit"));
	if (!(s = espl__db_stmt(db, ST_CHAIN_SET, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, seq);
	espl__db_bind_text(s, 2, out->hash);
	ESPL_TRY(espl__db_run(db, s, err, "advancing the chain"));
	if (!(s = espl__db_stmt(db, ST_BATCH_COUNT, err)))
		return err->code;
	sqlite3_bind_int64(s, 1, batch_id);
	sqlite3_bind_int(s, 2, u->result == ESPL_DB_PASS);
	sqlite3_bind_int(s, 3, u->result == ESPL_DB_FAIL);
	sqlite3_bind_int(s, 4, u->result == ESPL_DB_INTERRUPTED);
	return espl__db_run(db, s, err, "counting the unit in its batch");
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
		int rc = espl__db_read_steps(db, unit_id, owned, &got, &oom, err);
		if (rc == 0 && oom)
			rc = espl_fail(err, ESPL_ENOMEM, "out of memory reading unit %s's steps",
				       u->uuid);
		if (rc < 0) {
			espl__db_steps_free(*owned, got);
			*owned = NULL;
			return rc;
		}
		*steps = *owned;
		*n = got;
		return ESPL_OK;
	}
	sqlite3_stmt *s = espl__db_stmt(db, ST_STEPS_CLEAR, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, unit_id);
	ESPL_TRY(espl__db_run(db, s, err, "replacing the unit's progressive steps"));
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
	sqlite3_stmt *s = espl__db_stmt(db, st.found ? ST_UNIT_UPDATE : ST_UNIT_INS, err);
	if (!s)
		return err->code;
	bind_unit(s, u, batch_id);
	ESPL_TRY(espl__db_run(db, s, err, "recording the unit"));
	ESPL_TRY(set_ident(db, u, err));
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
	if (rc == 0) /* the unit's serial and CSV row follow its result, atomically */
		rc = espl_db_settle(db, u->uuid, u->result, u->ended_ms ? u->ended_ms : espl_db_now_ms(), err);
	espl__db_steps_free(owned, owned ? n : 0);
	ESPL_TRY(rc);
	return espl__db_queue_outbox(db, "unit", u->uuid, err);
}

int espl_db_step_done(espl_db *db, const char *unit_uuid, const espl_db_step *step,
		      espl_error *err)
{
	NEED_ERR(err);
	if (!unit_uuid || !*unit_uuid || !step)
		return espl_fail(err, ESPL_EARG, "a progressive step needs its unit's uuid");
	ESPL_TRY(check_steps(step, 1, err));
	sqlite3_stmt *s = espl__db_stmt(db, ST_STEP_PROGRESS, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, unit_uuid);
	bind_step(s, step);
	ESPL_TRY(espl__db_run(db, s, err, "recording a finished step"));
	return set_detail(db, ST_STEP_DETAIL_PROGRESS, 0, unit_uuid, step, err);
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
	int tx = espl__db_tx_open(db, err);
	ESPL_TRY(tx);
	int rc = complete_unit(db, &u, steps, n_steps, sealed, err);
	if (rc < 0)
		memset(sealed, 0, sizeof *sealed);
	return espl__db_tx_close(db, tx, rc, err);
}

int espl_db_add_event(espl_db *db, const espl_db_event *e, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = espl__db_stmt(db, ST_EVENT_INS, err);
	if (!s)
		return err->code;
	sqlite3_bind_int64(s, 1, e->time_ms);
	espl__db_bind_text(s, 2, e->level ? e->level : "info");
	espl__db_bind_text(s, 3, e->kind ? e->kind : "event");
	espl__db_bind_text(s, 4, e->batch_uuid);
	espl__db_bind_text(s, 5, e->unit_uuid);
	espl__db_bind_text(s, 6, e->message ? e->message : "");
	return espl__db_run(db, s, err, "recording an event");
}

/* ---- reading units back (verify, stale recovery) ----------------------- */

/* Fill u from UNIT_COLS starting at column c; strings point into the row. */
void espl__db_row_to_unit(sqlite3_stmt *s, int c, espl_db_unit *u)
{
	memset(u, 0, sizeof *u);
	snprintf(u->uuid, sizeof u->uuid, "%s", espl__db_col_text(s, c) ? espl__db_col_text(s, c) : "");
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s",
		 espl__db_col_text(s, c + 1) ? espl__db_col_text(s, c + 1) : "");
	u->mac = espl__db_col_text(s, c + 2);
	u->chip_id = (uint32_t)sqlite3_column_int64(s, c + 3);
	u->flash_id = (uint32_t)sqlite3_column_int64(s, c + 4);
	u->manufacturer = espl__db_col_text(s, c + 5);
	u->flash_size = (uint32_t)sqlite3_column_int64(s, c + 6);
	u->crystal_mhz = sqlite3_column_int(s, c + 7);
	u->port = espl__db_col_text(s, c + 8);
	u->adapter_serial = espl__db_col_text(s, c + 9);
	u->adapter_location = espl__db_col_text(s, c + 10);
	u->started_ms = sqlite3_column_int64(s, c + 11);
	u->ended_ms = sqlite3_column_int64(s, c + 12);
	u->duration_ms = sqlite3_column_int64(s, c + 13);
	u->result = espl_db_result_parse(espl__db_col_text(s, c + 14));
	u->error_kind = espl__db_col_text(s, c + 15);
	u->error = espl__db_col_text(s, c + 16);
	u->slot = espl__db_col_text(s, c + 17);
	u->barcode = espl__db_col_text(s, c + 18);
	u->label = espl__db_col_text(s, c + 19);
	u->serial = espl__db_col_text(s, c + 20);
}

void espl__db_row_to_step(sqlite3_stmt *s, espl_db_step *st)
{
	memset(st, 0, sizeof *st);
	st->index = sqlite3_column_int(s, 0);
	st->kind = espl__db_col_text(s, 1);
	st->address = (uint32_t)sqlite3_column_int64(s, 2);
	st->length = (uint32_t)sqlite3_column_int64(s, 3);
	st->expected_md5 = espl__db_col_text(s, 4);
	st->actual_md5 = espl__db_col_text(s, 5);
	st->bytes = (uint64_t)sqlite3_column_int64(s, 6);
	st->duration_ms = sqlite3_column_int64(s, 7);
	st->retries = sqlite3_column_int(s, 8);
	st->result = espl_db_result_parse(espl__db_col_text(s, 9));
	st->error = espl__db_col_text(s, 10);
	st->detail = sqlite3_column_count(s) > 11 ? espl__db_col_text(s, 11) : NULL;
}

static int interrupt_one(espl_db *db, const char *uuid, const char *reason, int64_t now_ms,
			 espl_error *err)
{
	sqlite3_stmt *s = espl__db_stmt(db, espl_db_schema_version(db) >= 8 ? ST_UNIT_LOAD : ST_UNIT_LOAD_V5, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, uuid);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? ESPL_OK : espl__db_sql_fail(db, err, rc, "loading a unit");
	}
	espl_db_unit u;
	espl__db_row_to_unit(s, 0, &u);
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
	sqlite3_stmt *s = espl__db_stmt(db, ST_STALE_LIST, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, station->name);
	espl__db_bind_text(s, 2, station->host);
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
		snprintf(uuids[n++], ESPL_DB_UUID_SIZE, "%s", espl__db_col_text(s, 0));
	}
	if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = espl__db_sql_fail(db, err, step, "listing stale units");
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
	sqlite3_stmt *s = espl__db_stmt(db, ST_SPOOL_MARK, err);
	if (!s)
		return err->code;
	espl__db_bind_text(s, 1, sha256_hex);
	sqlite3_bind_int64(s, 2, espl_db_now_ms());
	sqlite3_bind_int(s, 3, records);
	return espl__db_run(db, s, err, "recording the spool replay");
}
