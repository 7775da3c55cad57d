/* station.c - the station's supervisor thread: adapters, hotplug, results,
 * shutdown (the workers are worker.c); see include/espline/supervisor.h. */
#include "espline/supervisor.h"
#include "station/station_int.h"
#include "util/clock.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "espline/dbwriter.h"
#include "espline/record.h"
#include "espline/recipe.h"
#include "espline/reset.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

void espl__station_emit(espl_supervisor *s, espl_station_event *ev)
{
	if (!s->o.on_event)
		return;
	ev->time_ms = espl_db_now_ms();
	s->o.on_event(s->o.ctx, ev);
}

void espl__station_emit_simple(espl_supervisor *s, enum espl_station_event_kind kind,
			       const char *port, const char *level, const char *message)
{
	espl_station_event ev = { .kind = kind, .port = port, .level = level, .message = message };
	espl__station_emit(s, &ev);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* ------------------------------------------------------------------ */
/* supervisor thread: workers                                           */

static int start_worker(espl_supervisor *s, const espl_port_info *info)
{
	const espl_station_slot *slot = espl_station_slot_find(s->o.slots, s->o.n_slots, info->path,
	                                                      info->serial, info->location);
	if (!slot && espl__station_ignored_adapter(s, info))
		return ESPL_OK;
	worker *w = calloc(1, sizeof *w);
	if (!w)
		return ESPL_ENOMEM;
	w->sup = s;
	w->info = *info;
	if (slot)
		snprintf(w->slot, sizeof w->slot, "%s", slot->slot);
	atomic_init(&w->removed, 0);
	atomic_init(&w->finished, 0);
	atomic_init(&w->hold, ESPL_SLOT_RESUME);
	if (pthread_create(&w->thread, NULL, espl__station_worker_main, w) != 0) {
		free(w);
		espl__station_emit_simple(s, ESPL_EV_LOG, info->path, "error", "cannot start a worker thread for this port");
		return ESPL_ESYS;
	}
	pthread_mutex_lock(&s->lock);
	w->next = s->workers;
	s->workers = w;
	pthread_mutex_unlock(&s->lock);
	s->totals.ports_seen++;
	espl__station_worker_emit_simple(w, ESPL_EV_PORT_ADDED, "info",
	                                 info->description[0] ? info->description : NULL);
	return ESPL_OK;
}

static int has_worker(espl_supervisor *s, const char *path)
{
	for (worker *w = s->workers; w; w = w->next)
		if (strcmp(w->info.path, path) == 0)
			return 1;
	return 0;
}

static int scan(espl_supervisor *s, int start_new, espl_error *err)
{
	espl_port_info *list = NULL;
	int n = espl_supervisor_enumerate(s->o.ports, s->o.n_ports, &list, err);
	if (n < 0)
		return n;
	for (worker *w = s->workers; w; w = w->next) {
		int present = 0;
		for (int i = 0; i < n && !present; i++)
			present = strcmp(list[i].path, w->info.path) == 0;
		if (!present)
			atomic_store(&w->removed, 1);
	}
	for (int i = 0; i < n && start_new; i++)
		if (!has_worker(s, list[i].path))
			start_worker(s, &list[i]);
	free(list);
	return n;
}

/* The port's row turns "unplugged" or "finished" from the flag, not from
 * the message's words. */
static void port_removed(worker *w, bool unplugged)
{
	espl_station_event ev = {
		.kind = ESPL_EV_PORT_REMOVED, .level = "info", .unplugged = unplugged,
		.message = unplugged ? "the adapter was unplugged" : "the worker finished",
	};
	espl__station_worker_emit(w, &ev);
}

/* Join workers whose thread ended. */
static void reap(espl_supervisor *s)
{
	worker **pp = &s->workers;
	while (*pp) {
		worker *w = *pp;
		if (!atomic_load(&w->finished)) {
			pp = &w->next;
			continue;
		}
		pthread_join(w->thread, NULL);
		pthread_mutex_lock(&s->lock);
		*pp = w->next;
		pthread_mutex_unlock(&s->lock);
		port_removed(w, atomic_load(&w->removed));
		free(w);
	}
}

/* ------------------------------------------------------------------ */
/* supervisor thread: results                                           */

static void count_result(espl_supervisor *s, enum espl_db_result result)
{
	pthread_mutex_lock(&s->lock);
	s->totals.units++;
	if (result == ESPL_DB_PASS)
		s->totals.passed++;
	else if (result == ESPL_DB_FAIL)
		s->totals.failed++;
	else
		s->totals.interrupted++;
	if (result == ESPL_DB_PASS || (result == ESPL_DB_FAIL && !s->o.count_passed))
		s->done++;
	if (s->o.mode == ESPL_STATION_BATCH && s->done >= s->o.count)
		atomic_store(&s->complete, 1);
	pthread_mutex_unlock(&s->lock);
}

static void save_record(espl_supervisor *s, const espl_record *rec)
{
	espl_error err = { 0, "" };
	if (espl_dbw_end_unit(s->dbw, &rec->unit, rec->steps, rec->n_steps, NULL, &err) < 0)
		espl__station_emit_simple(s, ESPL_EV_LOG, rec->unit.port, "error", err.msg);
}

static void record_item(espl_supervisor *s, result_item *it)
{
	espl_record rec;
	espl_error err = { 0, "" };
	espl_record_context ctx = { .batch_uuid = s->batch.uuid, .unit_uuid = it->unit_uuid, .port = it->port,
	                            .adapter_serial = it->serial, .adapter_location = it->location,
	                            .slot = it->slot, .barcode = it->barcode, .label = it->label };

	if (espl_record_from_result(&it->res, &ctx, &rec, &err) < 0) {
		espl__station_emit_simple(s, ESPL_EV_LOG, it->port, "error", err.msg);
		return;
	}
	save_record(s, &rec);
	count_result(s, rec.unit.result);
	espl_station_event ev = { .kind = ESPL_EV_UNIT_DONE, .port = it->port,
	                          .slot = it->slot[0] ? it->slot : NULL, .unit_uuid = it->unit_uuid,
	                          .mac = rec.unit.mac, .result = rec.unit.result,
	                          .duration_s = it->res.duration_s, .unit = &it->res,
	                          .error_kind = rec.unit.error_kind, .message = rec.unit.error,
	                          .operator_name = s->batch.operator_name,
	                          .level = rec.unit.result == ESPL_DB_PASS ? "info" : "error" };
	espl__station_emit(s, &ev);
	espl_record_free(&rec);
}

static result_item *take_queue(espl_supervisor *s)
{
	pthread_mutex_lock(&s->lock);
	result_item *list = s->q_head;
	s->q_head = NULL;
	s->q_tail = &s->q_head;
	pthread_mutex_unlock(&s->lock);
	return list;
}

static void record_items(espl_supervisor *s, result_item *list)
{
	while (list) {
		result_item *next = list->next;
		record_item(s, list);
		espl_unit_result_clear(&list->res);
		free(list->label);
		free(list);
		list = next;
	}
}

/* ------------------------------------------------------------------ */
/* supervisor thread: stop requests and database state                  */

void espl_supervisor_stop(espl_supervisor *s, int level)
{
	int cur = atomic_load(&s->stop_level);
	while (level > cur && !atomic_compare_exchange_weak(&s->stop_level, &cur, level))
		;
}

static void announce_stop(espl_supervisor *s, const char *why)
{
	int level = atomic_load(&s->stop_level);
	if (level <= s->stop_shown)
		return;
	s->stop_shown = level;
	espl_station_event ev = { .kind = ESPL_EV_STOPPING, .stop_level = level, .level = "warn",
	                          .message = why };
	espl__station_emit(s, &ev);
}

/* Wait up to TICK_MS for a signal; a signal raises the stop level. */
static void wait_tick(espl_supervisor *s)
{
	if (!s->sigs_blocked) {
		espl__sleep_ms((unsigned)TICK_MS);
		return;
	}
	struct timespec ts = { 0, TICK_MS * 1000000L };
	int sig = sigtimedwait(&s->sigs, NULL, &ts);
	if (sig == SIGINT || sig == SIGTERM) {
		int level = atomic_load(&s->stop_level) + 1;
		espl_supervisor_stop(s, level > ESPL_STOP_ABORT ? ESPL_STOP_ABORT : level);
		announce_stop(s, level >= ESPL_STOP_ABORT
		                         ? "second signal: stopping now, units in progress are recorded INTERRUPTED"
		                         : "signal: no new units; units in progress finish (signal again to abort)");
	}
}

static void check_db_state(espl_supervisor *s)
{
	int state = atomic_load(&s->db_state);
	char reason[ESPL_ERROR_MAX];
	if (state == s->db_state_shown)
		return;
	s->db_state_shown = state;
	pthread_mutex_lock(&s->lock);
	snprintf(reason, sizeof reason, "%s", s->db_reason);
	pthread_mutex_unlock(&s->lock);
	espl_station_event ev = { .kind = ESPL_EV_DB_STATE, .db_state = state, .message = reason,
	                          .level = state ? "error" : "info" };
	espl__station_emit(s, &ev);
	if (state != 0) {
		char why[ESPL_ERROR_MAX + 160];
		snprintf(why, sizeof why, "the database cannot be written (%s): no new units; "
		         "units in progress finish and are kept in the spool", reason);
		espl_supervisor_stop(s, ESPL_STOP_GRACEFUL);
		announce_stop(s, why);
	}
}

/* ------------------------------------------------------------------ */
/* run                                                                  */

/* The central sender (central.h) runs beside the database writer, not
 * inside it: started once the writer has opened and migrated the database,
 * woken after each commit, stopped after the writer, given this long to
 * finish sending while the server answers. */
#define CENTRAL_FLUSH_MS 3000

static void kick_central(void *user)
{
	espl_supervisor *s = user;
	espl_central_kick(atomic_load(&s->central));
}

static int start_central(espl_supervisor *s, espl_error *err)
{
	const char *conninfo = espl__station_central_conninfo(s);
	if (!conninfo)
		return ESPL_OK;
	espl_central_options co = { .conninfo = conninfo, .db_path = espl_db_path(s->o.db_path),
				    .backoff_max_ms = s->o.central_backoff_max_ms,
				    .on_log = espl__station_on_db_log, .user = s };
	char red[256], msg[320];
	espl_central_redact(conninfo, red, sizeof red);
	snprintf(msg, sizeof msg, "replicating to the central database %s", red);
	espl__station_on_db_log("info", msg, s);
	espl_central *c;
	ESPL_TRY(espl_central_start(&c, &co, err));
	atomic_store(&s->central, c);
	return ESPL_OK;
}

/* Stop the writer, then the sender it was waking. */
static int stop_writer(espl_supervisor *s, espl_error *err)
{
	int rescued = 0;
	int rc = espl_dbw_stop_count(s->dbw, &rescued, err);
	s->dbw = NULL;
	if (rescued) {
		/* held in memory when the unit ended, in a spool after all */
		pthread_mutex_lock(&s->lock);
		int units = rescued < s->totals.unsaved ? rescued : s->totals.unsaved;
		s->totals.unsaved -= units;
		s->totals.spooled += units;
		pthread_mutex_unlock(&s->lock);
	}
	espl_central_stop(atomic_exchange(&s->central, NULL), CENTRAL_FLUSH_MS);
	return rc;
}

static int start_database(espl_supervisor *s, espl_error *err)
{
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	espl_dbw_options dopt;
	espl_dbw_startup info;
	espl_db_image images[64];
	size_t n_images = 0;

	char fallback[PATH_MAX];
	memset(&dopt, 0, sizeof dopt);
	dopt.path = s->o.db_path;
	if (s->o.spool_dir && espl_dbw_fallback_spool_path(espl_db_path(s->o.db_path), s->o.spool_dir, fallback,
	                                                    sizeof fallback) == ESPL_OK)
		dopt.fallback_spool_path = fallback;
	dopt.station = (espl_db_station){ s->station, s->host, s->o.version ? s->o.version : "?" };
	dopt.max_pages = s->o.db_max_pages;
	dopt.on_unit = espl__station_on_db_unit;
	dopt.on_state = espl__station_on_db_state;
	dopt.on_log = espl__station_on_db_log;
	dopt.on_commit = kick_central;
	dopt.user = s;
	ESPL_TRY(espl_dbw_start(&s->dbw, &dopt, &info, err));
	int rc = espl__station_identity_ready(s, err);
	rc = rc < 0 ? rc : start_central(s, err);
	if (rc < 0) {
		espl_error ignored;
		stop_writer(s, &ignored);
		return rc;
	}
	if (info.replayed || info.interrupted) {
		char msg[160];
		snprintf(msg, sizeof msg, "database: replayed %d spooled records, sealed %d units left running by an earlier run as INTERRUPTED",
		         info.replayed, info.interrupted);
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", msg);
	}
	for (size_t i = 0; i < r->n_steps && n_images < 64; i++) {
		const espl_step *st = &r->steps[i];
		const espl_recipe_file *f = st->kind == ESPL_STEP_WRITE ? &st->write.file
		                            : st->kind == ESPL_STEP_WRITE_INIT_DATA ? &st->init_data.file : NULL;
		if (f)
			images[n_images++] = (espl_db_image){ base_name(f->path), f->sha256 };
	}
	espl_db_recipe rec = { r->name, r->sha256, r->text, images, n_images };
	rc = espl_dbw_begin_batch(s->dbw, &rec, &s->batch, err);
	if (rc < 0) {
		espl_error ignored;
		stop_writer(s, &ignored);
		return rc;
	}
	espl_station_event ev = { .kind = ESPL_EV_STARTED, .message = s->batch_name,
	                          .count = s->o.mode == ESPL_STATION_BATCH ? s->o.count : 0,
	                          .count_passed = s->o.mode == ESPL_STATION_BATCH && s->o.count_passed,
	                          .unit_uuid = s->batch.uuid, .operator_name = s->batch.operator_name };
	espl__station_emit(s, &ev);
	return ESPL_OK;
}

static void stop_database(espl_supervisor *s)
{
	espl_error err = { 0, "" };
	if (!s->dbw)
		return;
	if (espl_dbw_end_batch(s->dbw, s->batch.uuid, espl_db_now_ms(), &err) < 0)
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "error", err.msg);
	if (stop_writer(s, &err) < 0)
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "error", err.msg);
	s->totals.db_state = atomic_load(&s->db_state);
}

/* Second stop request: record what is in flight, close the database, and
 * leave the workers to the process exit. */
static void abort_now(espl_supervisor *s)
{
	enum { MAX_ACTIVE = 256 };
	espl_record *recs = calloc(MAX_ACTIVE, sizeof *recs);
	size_t n = 0;
	int64_t now = espl_db_now_ms();

	pthread_rwlock_wrlock(&s->dbw_lock);   /* waits for begin records in flight */
	pthread_mutex_lock(&s->lock);
	s->aborted = 1;
	result_item *done = s->q_head;
	s->q_head = NULL;
	s->q_tail = &s->q_head;
	for (worker *w = s->workers; w && recs; w = w->next)
		if (w->cur.active && n < MAX_ACTIVE) {
			espl_record_interrupted(&w->cur.begin, now, "stopped: the station was aborted (second signal) while this unit was programmed", &recs[n]);
			/* the strings live in w->cur, which stays allocated: workers are not freed */
			w->cur.active = 0;
			n++;
		}
	pthread_mutex_unlock(&s->lock);
	record_items(s, done);
	for (size_t i = 0; i < n; i++) {
		save_record(s, &recs[i]);
		count_result(s, ESPL_DB_INTERRUPTED);
		espl_station_event ev = { .kind = ESPL_EV_UNIT_DONE, .port = recs[i].unit.port, .slot = recs[i].unit.slot,
		                          .unit_uuid = recs[i].unit.uuid, .mac = recs[i].unit.mac,
		                          .result = ESPL_DB_INTERRUPTED, .error_kind = recs[i].unit.error_kind,
		                          .message = recs[i].unit.error, .level = "warn",
		                          .operator_name = s->batch.operator_name };
		espl__station_emit(s, &ev);
	}
	stop_database(s);
	s->dbw_closed = 1;
	pthread_rwlock_unlock(&s->dbw_lock);
	free(recs);
	for (worker *w = s->workers; w; w = w->next)
		pthread_detach(w->thread);
}

static int all_finished(espl_supervisor *s)
{
	return s->workers == NULL;
}

static void block_signals(espl_supervisor *s)
{
	sigemptyset(&s->sigs);
	sigaddset(&s->sigs, SIGINT);
	sigaddset(&s->sigs, SIGTERM);
	if (s->o.handle_signals && pthread_sigmask(SIG_BLOCK, &s->sigs, NULL) == 0)
		s->sigs_blocked = 1;
}

static void unblock_signals(espl_supervisor *s)
{
	struct timespec zero = { 0, 0 };
	if (!s->sigs_blocked)
		return;
	while (sigtimedwait(&s->sigs, NULL, &zero) > 0)
		;  /* a late signal must not kill us on the way out */
	pthread_sigmask(SIG_UNBLOCK, &s->sigs, NULL);
	s->sigs_blocked = 0;
}

static void finish_totals(espl_supervisor *s, espl_station_totals *totals)
{
	double now = espl__now_s();
	pthread_mutex_lock(&s->lock);
	s->totals.elapsed_s = now - s->started_s;
	s->totals.stop_level = atomic_load(&s->stop_level);
	snprintf(s->totals.batch_uuid, sizeof s->totals.batch_uuid, "%s", s->batch.uuid);
	if (totals)
		*totals = s->totals;
	pthread_mutex_unlock(&s->lock);
}

static void emit_finished(espl_supervisor *s)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "%d units: %d passed, %d failed, %d interrupted", s->totals.units,
	                 s->totals.passed, s->totals.failed, s->totals.interrupted);
	if (s->totals.station_faults || s->totals.unreached)
		snprintf(msg + n, sizeof msg - (size_t)n, "; %d station faults, %d ports unreachable (no units)",
		         s->totals.station_faults, s->totals.unreached);
	espl_station_event ev = { .kind = ESPL_EV_FINISHED, .message = msg, .unit_uuid = s->batch.uuid,
	                          .duration_s = s->totals.elapsed_s, .stop_level = s->totals.stop_level,
	                          .db_state = s->totals.db_state, .level = "info" };
	espl__station_emit(s, &ev);
}

static int run_loop(espl_supervisor *s, espl_error *err)
{
	int64_t next_scan = espl__now_ms() + s->o.scan_ms;
	int once = s->o.mode == ESPL_STATION_ONCE;
	int n = scan(s, 1, err);
	if (n < 0)
		return n;
	if (n == 0 && once)
		return espl_fail(err, ESPL_ENOTFOUND, "no adapter found for the given --port specs; check the cable, "
		                 "`espline ports` lists what is there");
	if (n == 0)
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", "no adapter found yet; waiting for one to be plugged in");
	for (;;) {
		wait_tick(s);
		record_items(s, take_queue(s));
		if (atomic_load(&s->stop_level) >= ESPL_STOP_ABORT) {
			announce_stop(s, "stop requested: aborting now");
			abort_now(s);
			return ESPL_EINTERRUPTED;
		}
		announce_stop(s, "stop requested: no new units; units in progress finish");
		check_db_state(s);
		if (s->o.on_tick)
			s->o.on_tick(s->o.ctx);
		if (!once && espl__now_ms() >= next_scan) {
			espl_error scan_err;
			int start_new = atomic_load(&s->stop_level) == ESPL_STOP_NONE && !atomic_load(&s->complete);
			if (scan(s, start_new, &scan_err) < 0)
				espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", scan_err.msg);
			next_scan = espl__now_ms() + s->o.scan_ms;
		}
		reap(s);
		int ending = once || atomic_load(&s->stop_level) != ESPL_STOP_NONE || atomic_load(&s->complete);
		if (ending && all_finished(s))
			break;
	}
	record_items(s, take_queue(s));
	return ESPL_OK;
}

int espl_supervisor_run(espl_supervisor *s, espl_station_totals *totals, espl_error *err)
{
	s->started_s = espl__now_s();
	if (s->o.mode == ESPL_STATION_ONCE) {
		/* one unit per adapter present now: none, no batch to record */
		espl_port_info *list = NULL;
		int n = espl_supervisor_enumerate(s->o.ports, s->o.n_ports, &list, err);
		free(list);
		if (n < 0)
			return n;
		if (n == 0)
			return espl_fail(err, ESPL_ENOTFOUND, "no adapter found for the given --port specs; check the "
			                 "cable (`espline ports` lists what is there)");
	}
	block_signals(s);
	int rc = start_database(s, err);
	if (rc == ESPL_OK && (rc = espl__station_start_io(s, err)) < 0)
		stop_database(s);
	if (rc < 0) {
		unblock_signals(s);
		return rc;
	}
	rc = run_loop(s, err);
	/* After an abort, workers may still be in a unit (the caller exits):
	 * the scanner and the label queue stay for them; queued labels are on
	 * disk for the next start. */
	if (rc != ESPL_EINTERRUPTED)
		espl__station_stop_io(s, s->o.io ? s->o.io->label_timeout_ms : 0);
	if (rc == ESPL_EINTERRUPTED) {
		finish_totals(s, totals);
		emit_finished(s);
		espl_fail(err, ESPL_EINTERRUPTED, "aborted: units in progress were recorded INTERRUPTED");
		unblock_signals(s);
		return rc;
	}
	if (rc < 0) {
		/* no worker ever started; the batch stays empty */
		espl_supervisor_stop(s, ESPL_STOP_GRACEFUL);
	}
	stop_database(s);
	finish_totals(s, totals);
	emit_finished(s);
	unblock_signals(s);
	if (rc < 0)
		return rc;
	if (s->totals.db_state != 0)
		return espl_fail(err, ESPL_EDB, "the database could not be written: %s", s->db_reason);
	if (s->totals.stop_level != ESPL_STOP_NONE)
		return espl_fail(err, ESPL_EINTERRUPTED, "stopped on request");
	return ESPL_OK;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                           */

static void default_batch_name(char *out, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "run-%Y%m%d-%H%M%S", &tm);
}

int espl_supervisor_new(const espl_supervisor_options *opts, espl_supervisor **out, espl_error *err)
{
	espl_supervisor *s;
	*out = NULL;
	if (!opts || !opts->plan)
		return espl_fail(err, ESPL_EARG, "supervisor: no plan");
	if (opts->mode == ESPL_STATION_BATCH && opts->count <= 0)
		return espl_fail(err, ESPL_EARG, "a batch needs a count of at least 1 (--count N)");
	s = calloc(1, sizeof *s);
	if (!s)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	s->o = *opts;
	if (espl__station_barcode_pattern(s, err) < 0) {
		free(s);
		return err->code;
	}
	if (s->o.scan_ms <= 0)
		s->o.scan_ms = 1000;
	if (s->o.presence_ms <= 0)
		s->o.presence_ms = 500;
	if (s->o.presence_connect_ms <= 0)
		s->o.presence_connect_ms = 3000;
	if (opts->batch_name && *opts->batch_name)
		snprintf(s->batch_name, sizeof s->batch_name, "%s", opts->batch_name);
	else
		default_batch_name(s->batch_name, sizeof s->batch_name);
	if (gethostname(s->host, sizeof s->host) < 0 || !s->host[0])
		snprintf(s->host, sizeof s->host, "%s", "localhost");
	s->host[sizeof s->host - 1] = '\0';
	snprintf(s->station, sizeof s->station, "%s",
	         opts->station_name && *opts->station_name ? opts->station_name : s->host);
	if (opts->resume) {
		/* the same batch row again: recorded once (its hash is unchanged) */
		s->batch = *opts->resume;
		s->batch.name = s->batch_name;
	} else {
		if (espl_db_uuid(s->batch.uuid, err) < 0) {
			free(s);
			return err->code;
		}
		s->batch.name = s->batch_name;
		s->batch.operator_name = opts->operator_name;
		s->batch.started_ms = espl_db_now_ms();
		s->batch.planned = opts->mode == ESPL_STATION_BATCH ? opts->count : 0;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_rwlock_init(&s->dbw_lock, NULL);
	pthread_mutex_init(&s->lease_lock, NULL);
	s->q_tail = &s->q_head;
	atomic_init(&s->stop_level, 0);
	atomic_init(&s->complete, 0);
	atomic_init(&s->db_state, 0);
	*out = s;
	return ESPL_OK;
}

void espl_supervisor_free(espl_supervisor *s)
{
	if (!s)
		return;
	while (s->workers) {
		worker *w = s->workers;
		s->workers = w->next;
		pthread_join(w->thread, NULL);
		free(w);
	}
	record_items(s, NULL);
	if (s->has_barcode_re)
		regfree(&s->barcode_re);
	pthread_mutex_destroy(&s->lock);
	pthread_rwlock_destroy(&s->dbw_lock);
	pthread_mutex_destroy(&s->lease_lock);
	free(s);
}

