/* producers.c - the database writer's producer calls (any thread): queue a
 * record, wait for it when asked; see include/espline/dbwriter.h. */
#include "espline/dbwriter.h"
#include "record/dbwriter_int.h"
#include "record/db_owned.h"
#include "util/file.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- producers --------------------------------------------------------- */

static size_t queue_limit(const espl_dbw *w)
{
	return w->o.max_queue > 0 ? (size_t)w->o.max_queue : 10000;
}

/* Append r to the queue and wake the writer; w->mu is held. */
static void append_locked(espl_dbw *w, rec *r)
{
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	w->stats.queued++;
	pthread_cond_signal(&w->work);
}

static int refuse_oom(rec *r, espl_error *err)
{
	espl__dbw_rec_free(r);
	return espl_fail(err, ESPL_ENOMEM, "out of memory queuing a database record");
}

static int enqueue(espl_dbw *w, rec *r, int oom, int wait, espl_error *err)
{
	if (oom)
		return refuse_oom(r, err);
	r->waited = wait;
	pthread_mutex_lock(&w->mu);
	/* Backpressure: a producer far ahead of the disk waits for room rather
	 * than filling memory. */
	while (w->stats.queued >= queue_limit(w) && !w->stopping)
		pthread_cond_wait(&w->done, &w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		espl__dbw_rec_free(r);
		return espl_fail(err, ESPL_EDB, "the database writer is stopping; record refused");
	}
	append_locked(w, r);
	if (!wait) {
		pthread_mutex_unlock(&w->mu);
		return ESPL_OK;
	}
	while (!r->done)
		pthread_cond_wait(&w->done, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return ESPL_OK;
}

/* Queue r unless that would mean waiting (the queue is full) or the record
 * could only be dropped later (the writer is spooling or stopping): then
 * drop it.  For records that are worth having but never worth a wait. */
static int enqueue_or_drop(espl_dbw *w, rec *r, int oom, espl_error *err)
{
	if (oom)
		return refuse_oom(r, err);
	pthread_mutex_lock(&w->mu);
	int room = !w->stopping && w->state == ESPL_DBW_OK && w->stats.queued < queue_limit(w);
	if (room)
		append_locked(w, r);
	pthread_mutex_unlock(&w->mu);
	if (!room)
		espl__dbw_rec_free(r);
	return ESPL_OK;
}

/* Wait for r, then report and free it. */
static int await(espl_dbw *w, rec *r, int oom, espl_dbw_ack *ack, espl_error *err)
{
	ESPL_TRY(enqueue(w, r, oom, 1, err));
	int rc = r->ack.rc;
	if (rc < 0)
		espl_fail(err, rc, "%s", r->ack.error);
	if (ack)
		*ack = r->ack;
	espl__dbw_rec_free(r);
	return rc;
}

static rec *new_rec(int type, espl_error *err)
{
	rec *r = calloc(1, sizeof *r);
	if (!r)
		espl_fail(err, ESPL_ENOMEM, "out of memory queuing a database record");
	else
		r->type = type;
	return r;
}

int espl_dbw_begin_batch(espl_dbw *w, const espl_db_recipe *recipe, const espl_db_batch *batch,
			 espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_BATCH_BEGIN, err);
	if (!r)
		return ESPL_ENOMEM;
	espl__dbw_copy_station(r, &w->o.station, &oom);
	espl__dbw_copy_recipe(r, recipe, &oom);
	espl__dbw_copy_batch(r, batch, &oom);
	return await(w, r, oom, NULL, err);
}

int espl_dbw_end_batch(espl_dbw *w, const char *batch_uuid, int64_t ended_ms, espl_error *err)
{
	rec *r = new_rec(R_BATCH_END, err);
	if (!r)
		return ESPL_ENOMEM;
	snprintf(r->batch_uuid, sizeof r->batch_uuid, "%s", batch_uuid);
	r->ended_ms = ended_ms;
	return await(w, r, 0, NULL, err);
}

int espl_dbw_begin_unit(espl_dbw *w, const espl_db_unit *unit, espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_UNIT_BEGIN, err);
	if (!r)
		return ESPL_ENOMEM;
	espl__dbw_copy_unit(r, unit, &oom);
	return await(w, r, oom, NULL, err);
}

int espl_dbw_end_unit(espl_dbw *w, const espl_db_unit *unit, const espl_db_step *steps,
		      size_t n_steps, espl_dbw_ack *ack, espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_UNIT_END, err);
	if (!r)
		return ESPL_ENOMEM;
	espl__dbw_copy_unit(r, unit, &oom);
	espl__dbw_copy_steps(r, steps, n_steps, &oom);
	if (!ack)
		return enqueue(w, r, oom, 0, err);
	return await(w, r, oom, ack, err);
}

int espl_dbw_step_done(espl_dbw *w, const char *unit_uuid, const espl_db_step *step,
		       espl_error *err)
{
	int oom = 0;
	if (!unit_uuid || !*unit_uuid || !step)
		return espl_fail(err, ESPL_EARG, "a progressive step needs its unit's uuid");
	rec *r = new_rec(R_UNIT_STEP, err);
	if (!r)
		return ESPL_ENOMEM;
	snprintf(r->unit.uuid, sizeof r->unit.uuid, "%s", unit_uuid);
	espl__dbw_copy_steps(r, step, 1, &oom);
	return enqueue_or_drop(w, r, oom, err);
}

int espl_dbw_event(espl_dbw *w, const espl_db_event *event, espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_EVENT, err);
	if (!r)
		return ESPL_ENOMEM;
	espl__dbw_copy_event(r, event, &oom);
	return enqueue(w, r, oom, 0, err);
}

/* A question waits for its answer like a record, but never stays in a
 * spool: await() hands back what the database said. */
int espl_dbw_reserve(espl_dbw *w, const espl_db_reserve_req *q, espl_db_reserved *out,
		     espl_error *err)
{
	rec *r = new_rec(R_RESERVE, err);
	if (!r)
		return ESPL_ENOMEM;
	r->reserve = *q;
	ESPL_TRY(enqueue(w, r, 0, 1, err));
	int rc = r->ack.rc;
	if (rc < 0)
		espl_fail(err, rc, "%s", r->ack.error);
	*out = r->reserved;
	espl__dbw_rec_free(r);
	return rc;
}

int espl_dbw_csv_register(espl_dbw *w, const char *source, const char *const *keys, size_t n,
			  int64_t *unused, espl_error *err)
{
	rec *r = new_rec(R_CSV_REGISTER, err);
	if (!r)
		return ESPL_ENOMEM;
	r->reserve.csv_source = source;
	r->keys = keys;
	r->n_keys = n;
	ESPL_TRY(enqueue(w, r, 0, 1, err));
	int rc = r->ack.rc;
	if (rc < 0)
		espl_fail(err, rc, "%s", r->ack.error);
	if (unused)
		*unused = r->unused;
	espl__dbw_rec_free(r);
	return rc;
}

int espl_dbw_lease_add(espl_dbw *w, const char *counter, uint64_t first, uint64_t last, int64_t *left,
		       espl_error *err)
{
	rec *r = new_rec(R_LEASE_ADD, err);
	if (!r)
		return ESPL_ENOMEM;
	r->reserve.counter = counter;
	r->lease_first = first;
	r->lease_last = last;
	ESPL_TRY(enqueue(w, r, 0, 1, err));
	int rc = r->ack.rc;
	if (rc < 0)
		espl_fail(err, rc, "%s", r->ack.error);
	if (left)
		*left = r->unused;
	espl__dbw_rec_free(r);
	return rc;
}

int espl_dbw_sync(espl_dbw *w, espl_error *err)
{
	rec *r = new_rec(R_SYNC, err);
	if (!r)
		return ESPL_ENOMEM;
	return await(w, r, 0, NULL, err);
}

enum espl_dbw_state espl_dbw_state(espl_dbw *w, char *reason, size_t reason_size)
{
	pthread_mutex_lock(&w->mu);
	enum espl_dbw_state s = w->state;
	if (reason && reason_size)
		snprintf(reason, reason_size, "%s", s == ESPL_DBW_OK ? "" : w->reason);
	pthread_mutex_unlock(&w->mu);
	return s;
}

void espl_dbw_get_stats(espl_dbw *w, espl_dbw_stats *stats)
{
	pthread_mutex_lock(&w->mu);
	*stats = w->stats;
	pthread_mutex_unlock(&w->mu);
}

const char *espl_dbw_spool_path(const espl_dbw *w)
{
	return w->spool_path;
}

/* Under w->mu: the entry for adapter, or NULL. */
static espl_db_adapter_rate *find_rate(espl_dbw *w, const char *adapter)
{
	for (size_t i = 0; i < w->n_rates; i++)
		if (strcmp(w->rates[i].adapter, adapter) == 0)
			return &w->rates[i];
	return NULL;
}

unsigned espl_dbw_adapter_rate_get(espl_dbw *w, const char *adapter)
{
	pthread_mutex_lock(&w->mu);
	const espl_db_adapter_rate *e = adapter ? find_rate(w, adapter) : NULL;
	unsigned baud = e ? e->baud : 0;
	pthread_mutex_unlock(&w->mu);
	return baud;
}

/* Under w->mu: remember the rate in memory (0 when out of memory). */
static int keep_rate(espl_dbw *w, const char *adapter, unsigned baud)
{
	espl_db_adapter_rate *e = find_rate(w, adapter);
	if (!e) {
		espl_db_adapter_rate *grown = realloc(w->rates, (w->n_rates + 1) * sizeof *grown);
		if (!grown)
			return 0;
		w->rates = grown;
		e = &w->rates[w->n_rates++];
		snprintf(e->adapter, sizeof e->adapter, "%s", adapter);
	}
	e->baud = baud;
	return 1;
}

int espl_dbw_adapter_rate(espl_dbw *w, const char *adapter, unsigned baud, espl_error *err)
{
	if (!adapter || !*adapter || strlen(adapter) >= sizeof ((espl_db_adapter_rate *)0)->adapter || !baud)
		return espl_fail(err, ESPL_EARG, "an adapter's rate needs its name (at most %zu bytes) and a rate",
				 sizeof ((espl_db_adapter_rate *)0)->adapter - 1);
	rec *r = new_rec(R_ADAPTER_RATE, err);
	if (!r)
		return ESPL_ENOMEM;
	snprintf(r->rate.adapter, sizeof r->rate.adapter, "%s", adapter);
	r->rate.baud = baud;
	pthread_mutex_lock(&w->mu);
	int kept = keep_rate(w, adapter, baud);
	pthread_mutex_unlock(&w->mu);
	return enqueue_or_drop(w, r, !kept, err);
}
