/* identity.c - a station's serial numbers and CSV rows: the CSV file's
 * keys listed in the database before the first unit, and each unit's
 * reservation made through the database writer (the runner's reserve
 * event); see include/espline/serials.h and src/station/station_int.h. */
#include "espline/supervisor.h"
#include "station/station_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espline/central.h"
#include "espline/csvtable.h"
#include "espline/dbwriter.h"
#include "espline/recipe.h"
#include "espline/serial_lease.h"
#include "espline/serials.h"

static const char *file_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

const char *espl__station_central_conninfo(const espl_supervisor *s)
{
	return s->o.central && !*s->o.central ? NULL : espl_central_conninfo(s->o.central);
}

/* A new range of the recipe's counter from the central database, recorded
 * in the local one; *left: the leased numbers not yet taken. */
static int lease_more(espl_supervisor *s, int64_t *left, espl_error *err)
{
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	char who[300];
	uint64_t first, last;
	snprintf(who, sizeof who, "%s@%s", s->station, s->host);
	ESPL_TRY(espl_central_lease_serials(espl__station_central_conninfo(s), r->serial.counter, who, r->serial.first,
	                                    r->serial.lease, &first, &last, err));
	int rc = espl_dbw_lease_add(s->dbw, r->serial.counter, first, last, left, err);
	if (rc == 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "leased serial numbers %llu to %llu of counter %s from the central database",
		         (unsigned long long)first, (unsigned long long)last, r->serial.counter);
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "info", msg);
	}
	return rc;
}

/* Before the first unit, with a central database: top the leased numbers
 * up to at least half a lease; with none left and the server unreachable,
 * the station does not start. */
static int serials_ready(espl_supervisor *s, espl_error *err)
{
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	int64_t left = 0;
	if (!r->serial.enabled || !espl__station_central_conninfo(s))
		return ESPL_OK;
	ESPL_TRY(espl_dbw_lease_add(s->dbw, r->serial.counter, 0, 0, &left, err));
	if (left >= r->serial.lease / 2 + 1)
		return ESPL_OK;
	espl_error why;
	if (lease_more(s, &left, &why) == 0)
		return ESPL_OK;
	if (left == 0)
		return espl_fail(err, ESPL_EDB, "no serial number of counter %s is leased to this station, and none can be leased from the central database (%.300s): "
		                 "connect it, then start again. No unit was programmed.", r->serial.counter, why.msg);
	char msg[ESPL_ERROR_MAX + 160];
	snprintf(msg, sizeof msg, "the central database cannot lease serial numbers (%s); this station has %lld leased numbers left",
	         why.msg, (long long)left);
	espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", msg);
	return ESPL_OK;
}

int espl__station_identity_ready(espl_supervisor *s, espl_error *err)
{
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	const espl_csv *t = r->csv.table;
	int64_t unused = 0;
	ESPL_TRY(serials_ready(s, err));
	if (!r->csv.path)
		return ESPL_OK;
	if (!t)
		return espl_fail(err, ESPL_EARG, "the recipe's CSV file was not read (recipe not prepared)");
	size_t n = espl_csv_rows(t);
	const char **keys = calloc(n ? n : 1, sizeof *keys);
	if (!keys)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		keys[i] = espl_csv_key(t, i);
	int rc = espl_dbw_csv_register(s->dbw, file_name(r->csv.path), keys, n, &unused, err);
	free(keys);
	ESPL_TRY(rc);
	if (unused == 0)
		return espl_fail(err, ESPL_ENOTFOUND, "%s is used up: all %zu rows went to units (or were voided); "
		                 "add rows to the file, then start again. No unit was programmed.",
		                 r->csv.path, n);
	if (s->o.mode == ESPL_STATION_BATCH && unused < s->o.count) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s has %lld unused rows for a batch of %d: the station stops when they run out",
		         file_name(r->csv.path), (long long)unused, s->o.count);
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", msg);
	}
	return ESPL_OK;
}

/* The station cannot go on without rows: it finishes the units in
 * progress and starts no more. */
static void stop_station(espl_supervisor *s, const char *port, const char *why)
{
	int none = ESPL_STOP_NONE;
	atomic_compare_exchange_strong(&s->stop_level, &none, ESPL_STOP_GRACEFUL);
	espl__station_emit_simple(s, ESPL_EV_LOG, port, "error", why);
}

/* Reserve; out of leased numbers, lease more and try once again.  The
 * writer's read lock is held.  Leasing is one worker at a time, and a
 * worker that waited for it first tries what the one before it leased:
 * workers that all ran out at once lease one range, not one each. */
static int reserve_leasing(espl_supervisor *s, const espl_db_reserve_req *q, espl_db_reserved *got, espl_error *err)
{
	int rc = espl_dbw_reserve(s->dbw, q, got, err);
	if (rc != ESPL_ENOTFOUND || !got->need_lease)
		return rc;
	pthread_mutex_lock(&s->lease_lock);
	rc = espl_dbw_reserve(s->dbw, q, got, err);
	if (rc == ESPL_ENOTFOUND && got->need_lease) {
		int64_t left = 0;
		espl_error why;
		if (lease_more(s, &left, &why) < 0)
			rc = espl_fail(err, ESPL_ENOTFOUND, "this station has used every serial number leased to it, and the central database cannot lease more (%.300s): "
			               "connect it, then start again", why.msg);
		else
			rc = espl_dbw_reserve(s->dbw, q, got, err);
	}
	pthread_mutex_unlock(&s->lease_lock);
	return rc;
}

int espl__station_reserve(void *ctx, espl_unit_result *res, espl_error *err)
{
	worker *w = ctx;
	espl_supervisor *s = w->sup;
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	espl_db_reserve_req q = { 0 };
	espl_db_reserved got;
	int rc;

	q.unit_uuid = w->unit_uuid;
	q.mac = res->chip.mac_str;
	q.now_ms = espl_db_now_ms();
	q.reuse_for_mac = r->serial.reuse_for_mac;
	if (r->serial.enabled) {
		q.counter = r->serial.counter;
		q.format = r->serial.format;
		q.first = r->serial.first;
		q.serial_void_on_fail = r->serial.policy == ESPL_POLICY_VOID_ON_FAIL;
	}
	if (r->csv.path) {
		q.csv_source = file_name(r->csv.path);
		q.csv_void_on_fail = r->csv.policy == ESPL_POLICY_VOID_ON_FAIL;
	}
	q.leased = r->serial.enabled && espl__station_central_conninfo(s);
	pthread_rwlock_rdlock(&s->dbw_lock);
	if (s->dbw_closed || !w->begun)
		rc = espl_fail(err, ESPL_EINTERRUPTED, "the station is stopping (or the unit is not recorded): no serial number reserved");
	else
		rc = reserve_leasing(s, &q, &got, err);
	pthread_rwlock_unlock(&s->dbw_lock);
	if (rc == ESPL_ENOTFOUND) {
		stop_station(s, w->info.path, err->msg);
		return espl_fail(err, ESPL_EINTERRUPTED, "not programmed: %.400s", err->msg);
	}
	ESPL_TRY(rc);
	snprintf(res->identity.serial, sizeof res->identity.serial, "%s", got.serial);
	res->identity.batch = s->batch_name;
	res->identity.csv_row = got.csv_key[0] ? espl_csv_find(r->csv.table, got.csv_key) : -1;
	if (got.csv_key[0] && res->identity.csv_row < 0)
		return espl_fail(err, ESPL_EARG, "the database gave row '%.64s', which %s no longer holds", got.csv_key,
		                 r->csv.path);
	return ESPL_OK;
}
