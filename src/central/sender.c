/* sender.c - replication to a central PostgreSQL: sending records and the
 * sender thread; see include/espline/central.h. */
#include "espline/central.h"
#include "central/central_int.h"
#include "util/clock.h"
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- sending records --------------------------------------------------- */

/* What one connection already knows is on the server (valid after commit). */
#define KNOWN_BATCHES 32
typedef struct sender {
	PGconn *conn;
	const char *conninfo;
	char origin[ESPL_DB_UUID_SIZE];
	int origin_known;
	char known[KNOWN_BATCHES][ESPL_DB_UUID_SIZE];
	int n_known, next_known;
	char pending[KNOWN_BATCHES][ESPL_DB_UUID_SIZE]; /* sent in the open transaction */
	int n_pending;
} sender;

static int batch_known(const sender *s, const char *uuid)
{
	for (int i = 0; i < s->n_known; i++)
		if (strcmp(s->known[i], uuid) == 0)
			return 1;
	for (int i = 0; i < s->n_pending; i++)
		if (strcmp(s->pending[i], uuid) == 0)
			return 1;
	return 0;
}

static void commit_known(sender *s)
{
	for (int i = 0; i < s->n_pending; i++) {
		memcpy(s->known[s->next_known], s->pending[i], ESPL_DB_UUID_SIZE);
		s->next_known = (s->next_known + 1) % KNOWN_BATCHES;
		if (s->n_known < KNOWN_BATCHES)
			s->n_known++;
	}
	s->n_pending = 0;
}

static void i64(char *buf, size_t size, int64_t v)
{
	snprintf(buf, size, "%" PRId64, v);
}

static int put_origin(sender *s, espl_error *err)
{
	char now[24];
	i64(now, sizeof now, espl_db_now_ms());
	const char *v[] = { s->origin, now };
	ESPL_TRY(espl__central_exec_params(s->conn, s->conninfo, "recording the station's origin",
			     "INSERT INTO origins (uuid, first_seen_ms, last_seen_ms)"
			     " VALUES ($1, $2::bigint, $2::bigint) ON CONFLICT (uuid) DO NOTHING",
			     2, v, NULL, err));
	s->origin_known = 1;
	return ESPL_OK;
}

/* Run an INSERT ... RETURNING id (a row of the kind named by noun, e.g.
 * "station"); the id as text in out. */
static int insert_returning_id(sender *s, const char *what, const char *noun, const char *sql,
			       int n, const char *const *values, char *out, size_t size,
			       espl_error *err)
{
	PGresult *r;
	ESPL_TRY(espl__central_exec_params(s->conn, s->conninfo, what, sql, n, values, &r, err));
	snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	if (!out[0])
		return espl_fail(err, ESPL_EDB, "central database: no %s id returned", noun);
	return ESPL_OK;
}

static int put_batch(sender *s, const espl_db_replica *x, espl_error *err)
{
	char station_id[24], recipe_id[24], started[24], ended[24], planned[16], pos[24];
	const espl_db_station *st = &x->station;
	const espl_db_recipe *rc = &x->recipe;
	const char *sv[] = { st->name, st->host, st->version };
	ESPL_TRY(insert_returning_id(s, "recording a station", "station",
				     "INSERT INTO stations (name, host, version) VALUES ($1, $2, $3)"
				     " ON CONFLICT (name, host, version) DO UPDATE"
				     " SET name = EXCLUDED.name RETURNING id",
				     3, sv, station_id, sizeof station_id, err));
	const char *rv[] = { rc->name, rc->sha256, rc->yaml ? rc->yaml : "" };
	ESPL_TRY(insert_returning_id(s, "recording a recipe", "recipe",
				     "INSERT INTO recipes (name, sha256, yaml) VALUES ($1, $2, $3)"
				     " ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256"
				     " RETURNING id",
				     3, rv, recipe_id, sizeof recipe_id, err));
	for (size_t i = 0; i < rc->n_images; i++) {
		snprintf(pos, sizeof pos, "%zu", i);
		const char *iv[] = { recipe_id, pos, rc->images[i].name, rc->images[i].sha256 };
		ESPL_TRY(espl__central_exec_params(s->conn, s->conninfo, "recording a recipe's images",
				     "INSERT INTO recipe_images (recipe_id, position, name, sha256)"
				     " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
				     4, iv, NULL, err));
	}
	i64(started, sizeof started, x->batch.started_ms);
	i64(ended, sizeof ended, x->batch_ended_ms);
	snprintf(planned, sizeof planned, "%d", x->batch.planned);
	const char *bv[] = { x->batch.uuid, s->origin, x->batch.name, recipe_id, station_id,
			     x->batch.operator_name, started, x->batch_ended_ms ? ended : NULL,
			     planned, x->batch_hash };
	ESPL_TRY(espl__central_exec_params(s->conn, s->conninfo, "recording a batch",
			     "INSERT INTO batches (uuid, origin, name, recipe_id, station_id, operator,"
			     " started_ms, ended_ms, planned, hash)"
			     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
			     " ON CONFLICT (uuid) DO UPDATE"
			     " SET ended_ms = coalesce(EXCLUDED.ended_ms, batches.ended_ms)",
			     10, bv, NULL, err));
	if (s->n_pending < KNOWN_BATCHES)
		snprintf(s->pending[s->n_pending++], ESPL_DB_UUID_SIZE, "%s", x->batch.uuid);
	return ESPL_OK;
}

static json_t *jstr(const char *v)
{
	return v ? json_string(v) : json_null();
}

static char *steps_json(const espl_db_replica *x)
{
	json_t *a = json_array();
	for (size_t i = 0; i < x->n_steps; i++) {
		const espl_db_step *st = &x->steps[i];
		json_t *o = json_object();
		json_object_set_new(o, "idx", json_integer(st->index));
		json_object_set_new(o, "kind", json_string(st->kind ? st->kind : ""));
		json_object_set_new(o, "address", json_integer(st->address));
		json_object_set_new(o, "length", json_integer(st->length));
		json_object_set_new(o, "expected_md5", jstr(st->expected_md5));
		json_object_set_new(o, "actual_md5", jstr(st->actual_md5));
		json_object_set_new(o, "bytes", json_integer((json_int_t)st->bytes));
		json_object_set_new(o, "duration_ms", json_integer(st->duration_ms));
		json_object_set_new(o, "retries", json_integer(st->retries));
		json_object_set_new(o, "result", json_string(espl_db_result_name(st->result)));
		json_object_set_new(o, "error", jstr(st->error));
		json_object_set_new(o, "detail", jstr(st->detail));
		json_array_append_new(a, o);
	}
	char *text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return text;
}

/* A unit and its steps in one statement; an existing uuid changes nothing
 * (sealed records never change), which makes a resend harmless. */
static const char unit_sql[] =
	"WITH u AS (INSERT INTO units (uuid, batch_id, origin, mac, chip_id, flash_id,"
	" manufacturer, flash_size, crystal_mhz, port, adapter_serial, adapter_location,"
	" started_ms, ended_ms, duration_ms, result, error_kind, error, repeat_of, seq,"
	" prev_hash, hash, received_ms, slot, barcode, label, serial)"
	" VALUES ($1, (SELECT id FROM batches WHERE uuid = $2), $3, $4, $5, $6, $7, $8, $9,"
	" $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $25, $26, $27, $28)"
	" ON CONFLICT (uuid) DO NOTHING RETURNING id)"
	" INSERT INTO steps (unit_id, idx, kind, address, length, expected_md5, actual_md5,"
	" bytes, duration_ms, retries, result, error, detail)"
	" SELECT u.id, s.idx, s.kind, s.address, s.length, s.expected_md5, s.actual_md5,"
	" s.bytes, s.duration_ms, s.retries, s.result, s.error, s.detail"
	" FROM u, jsonb_to_recordset($24::jsonb) AS s(idx int, kind text, address bigint,"
	" length bigint, expected_md5 text, actual_md5 text, bytes bigint, duration_ms bigint,"
	" retries int, result text, error text, detail text)";

static int put_unit(sender *s, const espl_db_replica *x, espl_error *err)
{
	const espl_db_unit *u = &x->unit;
	char chip[16], flash[16], size[16], xtal[16], started[24], ended[24], dur[24], seq[24],
		now[24];
	if (!batch_known(s, u->batch_uuid))
		ESPL_TRY(put_batch(s, x, err));
	snprintf(chip, sizeof chip, "%" PRIu32, u->chip_id);
	snprintf(flash, sizeof flash, "%" PRIu32, u->flash_id);
	snprintf(size, sizeof size, "%" PRIu32, u->flash_size);
	snprintf(xtal, sizeof xtal, "%d", u->crystal_mhz);
	i64(started, sizeof started, u->started_ms);
	i64(ended, sizeof ended, u->ended_ms);
	i64(dur, sizeof dur, u->duration_ms);
	i64(seq, sizeof seq, x->seq);
	i64(now, sizeof now, espl_db_now_ms());
	char *steps = steps_json(x);
	if (!steps)
		return espl_fail(err, ESPL_ENOMEM, "out of memory encoding steps");
	const char *v[] = { u->uuid, u->batch_uuid, s->origin, u->mac, chip, flash,
			    u->manufacturer, size, xtal, u->port, u->adapter_serial,
			    u->adapter_location, started, ended, dur, espl_db_result_name(u->result),
			    u->error_kind, u->error, x->repeat_of[0] ? x->repeat_of : NULL, seq,
			    x->prev_hash, x->hash, now, steps, u->slot, u->barcode, u->label, u->serial };
	int rc = espl__central_exec_params(s->conn, s->conninfo, "recording a unit", unit_sql, 28, v, NULL, err);
	free(steps);
	return rc;
}

static int put_head(sender *s, const espl_db_replica *last_unit, espl_error *err)
{
	char seq[24], now[24];
	i64(seq, sizeof seq, last_unit->seq);
	i64(now, sizeof now, espl_db_now_ms());
	const char *v[] = { s->origin, seq, last_unit->hash, now };
	return espl__central_exec_params(s->conn, s->conninfo, "advancing the station's chain head",
			   "UPDATE origins SET head_hash = CASE WHEN $2::bigint > head_seq"
			   " THEN $3 ELSE head_hash END, head_seq = greatest(head_seq, $2::bigint),"
			   " last_seen_ms = $4::bigint WHERE uuid = $1",
			   4, v, NULL, err);
}

/* Write records in one central transaction. */
static int send_group(sender *s, const espl_db_replica *x, size_t n, espl_error *err)
{
	const espl_db_replica *last_unit = NULL;
	if (!s->origin_known)
		ESPL_TRY(put_origin(s, err));
	ESPL_TRY(espl__central_exec_ok(s->conn, s->conninfo, "BEGIN", err));
	int rc = ESPL_OK;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (x[i].kind == ESPL_DB_OUTBOX_UNIT) {
			rc = put_unit(s, &x[i], err);
			last_unit = &x[i];
		} else {
			rc = put_batch(s, &x[i], err);
		}
	}
	if (rc == 0 && last_unit)
		rc = put_head(s, last_unit, err);
	if (rc == 0)
		rc = espl__central_exec_ok(s->conn, s->conninfo, "COMMIT", err);
	if (rc < 0) {
		s->n_pending = 0;
		PQclear(PQexec(s->conn, "ROLLBACK"));
		return rc;
	}
	commit_known(s);
	return ESPL_OK;
}

/* One round: read up to max outbox records, send, acknowledge.  Returns the
 * number of records sent (0: the outbox is empty) or a negative code. */
static int send_round(sender *s, espl_db *db, size_t max, espl_error *err)
{
	espl_db_replica *x;
	size_t n;
	ESPL_TRY(espl_db_outbox_read(db, max, &x, &n, err));
	if (n == 0) {
		espl_db_replicas_free(x, n);
		return 0;
	}
	int rc = send_group(s, x, n, err);
	if (rc == 0) {
		/* The server has them: a failure to acknowledge locally only means
		 * they are sent again, and the upserts ignore them then. */
		rc = espl_db_outbox_ack(db, x[n - 1].id, (int64_t)n, err);
		if (rc < 0)
			espl_error_prefix(err, "sent %zu records but could not mark them sent", n);
	}
	espl_db_replicas_free(x, n);
	return rc < 0 ? rc : (int)n;
}

static int sender_open(sender *s, espl_db *db, const char *conninfo, espl_error *err)
{
	memset(s, 0, sizeof *s);
	s->conninfo = conninfo;
	ESPL_TRY(espl_db_origin(db, s->origin, err));
	return espl_central_connect(&s->conn, conninfo, err);
}

int espl_central_push(espl_db *db, const char *conninfo, int64_t *sent, espl_error *err)
{
	sender s;
	*sent = 0;
	ESPL_TRY(sender_open(&s, db, conninfo, err));
	int rc;
	while ((rc = send_round(&s, db, 500, err)) > 0)
		*sent += rc;
	char red[256];
	espl_central_redact(conninfo, red, sizeof red);
	espl_db_sync_note(db, red, rc < 0 ? err->msg : NULL, NULL);
	PQfinish(s.conn);
	return rc < 0 ? rc : ESPL_OK;
}

/* ---- the sender thread ------------------------------------------------- */

struct espl_central {
	espl_central_options o;
	char *conninfo, *db_path;
	char redacted[256];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int kicked, stopping;
	struct timespec flush_deadline;
	espl_central_stats stats;
	char last_noted[ESPL_ERROR_MAX];
};

static void c_log(espl_central *c, const char *level, const char *fmt, ...) ESPL_PRINTF(3, 4);
static void c_log(espl_central *c, const char *level, const char *fmt, ...)
{
	char msg[ESPL_ERROR_MAX + 128];
	va_list ap;
	if (!c->o.on_log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	espl_central_scrub(c->conninfo, msg);
	c->o.on_log(level, msg, c->o.user);
}

/* Sleep up to ms or until stopped (or kicked, when kick_wakes: a backoff
 * is not cut short by new records).  Returns 1 when stopping. */
static int nap(espl_central *c, int ms, int kick_wakes)
{
	struct timespec until = espl__mono_after_ms(ms);
	pthread_mutex_lock(&c->mu);
	while (!(kick_wakes && c->kicked) && !c->stopping &&
	       pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
		;
	c->kicked = 0;
	int stop = c->stopping;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

/* While stopping: keep going only while connected, with work, before the
 * flush deadline. */
static int should_quit(espl_central *c, const sender *s)
{
	pthread_mutex_lock(&c->mu);
	int quit = c->stopping && (!s->conn || espl__mono_past(&c->flush_deadline));
	pthread_mutex_unlock(&c->mu);
	return quit;
}

static void note_failure(espl_central *c, espl_db *db, const espl_error *e)
{
	pthread_mutex_lock(&c->mu);
	c->stats.failures++;
	snprintf(c->stats.last_error, sizeof c->stats.last_error, "%s", e->msg);
	pthread_mutex_unlock(&c->mu);
	/* Log and store a new error once, not at every retry. */
	if (strcmp(c->last_noted, e->msg) != 0) {
		snprintf(c->last_noted, sizeof c->last_noted, "%s", e->msg);
		c_log(c, "warn", "central sync: %s (records wait in the outbox; retrying)", e->msg);
	}
	espl_db_sync_note(db, c->redacted, e->msg, NULL);
}

static void note_success(espl_central *c, int sent)
{
	pthread_mutex_lock(&c->mu);
	c->stats.sent += (uint64_t)sent;
	c->stats.transactions++;
	pthread_mutex_unlock(&c->mu);
	if (c->last_noted[0]) {
		c->last_noted[0] = '\0';
		c_log(c, "info", "central sync: %s answers again", c->redacted);
	}
}

static void set_connected(espl_central *c, int on)
{
	pthread_mutex_lock(&c->mu);
	c->stats.connected = on;
	pthread_mutex_unlock(&c->mu);
}

static int backoff_max(const espl_central_options *o)
{
	return o->backoff_max_ms > 0 ? o->backoff_max_ms : 10000;
}

static void *sender_main(void *arg)
{
	espl_central *c = arg;
	espl_db *db = NULL;
	sender s = { 0 };
	espl_error e;
	int min = c->o.backoff_min_ms > 0 ? c->o.backoff_min_ms : 250, max = backoff_max(&c->o);
	int poll = c->o.poll_ms > 0 ? c->o.poll_ms : 1000;
	size_t group = c->o.group_max > 0 ? (size_t)c->o.group_max : 200;
	int delay = min;
	espl_db_options dbo = { .path = c->db_path };
	while (!should_quit(c, &s)) {
		if (!db && espl_db_open(&db, &dbo, &e) < 0) {
			c_log(c, "error", "central sync: cannot open the local database: %s", e.msg);
			if (nap(c, max, 0))
				break;
			continue;
		}
		if (!s.conn) {
			if (sender_open(&s, db, c->conninfo, &e) < 0) {
				note_failure(c, db, &e);
				if (nap(c, delay, 0))
					break;
				delay = delay * 2 > max ? max : delay * 2;
				continue;
			}
			set_connected(c, 1);
			espl_db_sync_note(db, c->redacted, NULL, NULL);
			c_log(c, "info", "central sync: connected to %s", c->redacted);
		}
		int n = send_round(&s, db, group, &e);
		if (n > 0) {
			note_success(c, n);
			delay = min;
			continue;
		}
		if (n == 0) {
			pthread_mutex_lock(&c->mu);
			int stopping = c->stopping;
			pthread_mutex_unlock(&c->mu);
			if (stopping)
				break;
			/* Woken by stop: one more round sends what the writer
			 * committed last (should_quit bounds it). */
			nap(c, poll, 1);
			continue;
		}
		note_failure(c, db, &e);
		if (PQstatus(s.conn) != CONNECTION_OK) {
			PQfinish(s.conn);
			s.conn = NULL;
			set_connected(c, 0);
		}
		if (nap(c, delay, 0))
			break;
		delay = delay * 2 > max ? max : delay * 2;
	}
	PQfinish(s.conn);
	set_connected(c, 0);
	espl_db_close(db);
	return NULL;
}

int espl_central_start(espl_central **out, const espl_central_options *opts, espl_error *err)
{
	*out = NULL;
	if (!opts || !opts->conninfo || !*opts->conninfo || !opts->db_path)
		return espl_fail(err, ESPL_EARG, "central sync needs a server and a local database");
	espl_central *c = calloc(1, sizeof *c);
	if (!c)
		return espl_fail(err, ESPL_ENOMEM, "out of memory starting central sync");
	c->o = *opts;
	c->conninfo = strdup(opts->conninfo);
	c->db_path = strdup(opts->db_path);
	espl_central_redact(opts->conninfo, c->redacted, sizeof c->redacted);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!c->conninfo || !c->db_path || pthread_create(&c->thread, NULL, sender_main, c) != 0) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c->conninfo);
		free(c->db_path);
		free(c);
		return espl_fail(err, ESPL_ESYS, "cannot start the central sync thread");
	}
	*out = c;
	return ESPL_OK;
}

void espl_central_kick(espl_central *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->kicked = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void espl_central_get_stats(espl_central *c, espl_central_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->stats;
	pthread_mutex_unlock(&c->mu);
}

void espl_central_stop(espl_central *c, int flush_ms)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	c->flush_deadline = espl__mono_after_ms(flush_ms > 0 ? flush_ms : 0);
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->conninfo);
	free(c->db_path);
	free(c);
}
