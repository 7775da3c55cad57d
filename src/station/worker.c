/* worker.c - one worker thread per adapter: presence checks, one unit at a
 * time through the runner, its records on their way to the database writer;
 * see include/espline/supervisor.h and src/station/station_int.h. */
#include "espline/supervisor.h"
#include "station/station_int.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "espline/dbwriter.h"
#include "espline/record.h"
#include "espline/recipe.h"
#include "espline/reset.h"

/* ------------------------------------------------------------------ */
/* the database, as seen from the threads                               */

void espl__station_on_db_state(int state, const char *reason, void *user)
{
	espl_supervisor *s = user;
	pthread_mutex_lock(&s->lock);
	snprintf(s->db_reason, sizeof s->db_reason, "%s", reason ? reason : "");
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->db_state, state);
}

void espl__station_on_db_unit(const espl_dbw_ack *ack, void *user)
{
	espl_supervisor *s = user;
	espl_station_event ev = { .kind = ESPL_EV_UNIT_RECORDED, .unit_uuid = ack->uuid };
	pthread_mutex_lock(&s->lock);
	if (ack->rc < 0)
		s->totals.unsaved++;
	else if (ack->spooled)
		s->totals.spooled++;
	else
		s->totals.recorded++;
	pthread_mutex_unlock(&s->lock);
	ev.seq = ack->sealed.seq;
	ev.repeat_of = ack->sealed.repeat_of[0] ? ack->sealed.repeat_of : NULL;
	ev.spooled = ack->spooled;
	ev.saved = ack->rc >= 0;
	ev.message = ack->rc < 0 ? ack->error : NULL;
	ev.level = ack->rc < 0 ? "error" : "info";
	espl__station_emit(s, &ev);
}

void espl__station_on_db_log(const char *level, const char *message, void *user)
{
	espl__station_emit_simple(user, ESPL_EV_LOG, NULL, level, message);
}

/* Run fn on the writer unless the supervisor closed it (abort). */
static int begin_unit_record(espl_supervisor *s, const espl_db_unit *u, espl_error *err)
{
	int rc;
	pthread_rwlock_rdlock(&s->dbw_lock);
	if (s->dbw_closed)
		rc = espl_fail(err, ESPL_EINTERRUPTED, "the station is stopping");
	else
		rc = espl_dbw_begin_unit(s->dbw, u, err);
	pthread_rwlock_unlock(&s->dbw_lock);
	return rc;
}

void espl__station_record_event(espl_supervisor *s, const char *level, const char *kind, const char *unit_uuid,
                                const char *message)
{
	espl_error err;
	espl_db_event e = { espl_db_now_ms(), level, kind, s->batch.uuid, unit_uuid, message };
	pthread_rwlock_rdlock(&s->dbw_lock);
	if (!s->dbw_closed)
		(void)espl_dbw_event(s->dbw, &e, &err);  /* the event is on screen either way */
	pthread_rwlock_unlock(&s->dbw_lock);
}

static int may_start_unit(worker *w)
{
	espl_supervisor *s = w->sup;
	return atomic_load(&s->stop_level) == ESPL_STOP_NONE && !atomic_load(&w->removed) &&
	       !atomic_load(&s->complete) && atomic_load(&s->db_state) == 0;
}

/* ------------------------------------------------------------------ */
/* worker callbacks (worker thread)                                     */

static void check_abort(worker *w)
{
	if (atomic_load(&w->sup->stop_level) >= ESPL_STOP_ABORT || atomic_load(&w->hold) == ESPL_SLOT_STOP)
		w->stop_unit = 1;
}

static void on_loader_log(void *ctx, int level, const char *msg)
{
	worker *w = ctx;
	if (!w->in_unit || level < ESPL_LOG_WARN)
		return;
	espl__station_worker_emit_simple(w, ESPL_EV_LOG, "warn", msg);
}

static void on_loader_progress(void *ctx, const espl_progress *p)
{
	worker *w = ctx;
	check_abort(w);
	if (!w->in_unit)
		return;
	int64_t now = espl__now_ms();
	int edge = p->done == 0 || (p->total && p->done >= p->total);
	if (!edge && now - w->last_progress_ms < PROGRESS_EVERY_MS)
		return;
	w->last_progress_ms = now;
	espl_station_event ev = { .kind = ESPL_EV_PROGRESS, .unit_uuid = w->unit_uuid, .step = p->step,
	                          .progress = p };
	espl__station_worker_emit(w, &ev);
}

static void on_step_start(void *ctx, const espl_step_result *sr)
{
	worker *w = ctx;
	check_abort(w);
	espl_station_event ev = { .kind = ESPL_EV_STEP_START, .unit_uuid = w->unit_uuid,
	                          .step = espl_step_kind_name(sr->step->kind), .step_number = sr->step->number,
	                          .n_steps = (unsigned)espl_plan_recipe(w->sup->o.plan)->n_steps };
	espl__station_worker_emit(w, &ev);
}

/* Queue the finished step's row so that a unit cut short by a crash shows
 * how far it got.  Never waits: if the writer is busy being closed (abort)
 * or cannot take it, the row is dropped; the end record has every step. */
static void record_step(worker *w, const espl_step_result *sr)
{
	espl_supervisor *s = w->sup;
	espl_db_step row;
	espl_error err = { 0, "" };
	if (!w->begun || !w->res || espl_record_step(w->res, sr, &row) < 0)
		return;
	if (pthread_rwlock_tryrdlock(&s->dbw_lock) != 0)
		return;
	if (!s->dbw_closed && s->dbw)
		espl_dbw_step_done(s->dbw, w->unit_uuid, &row, &err);
	pthread_rwlock_unlock(&s->dbw_lock);
}

static void on_step_done(void *ctx, const espl_step_result *sr)
{
	worker *w = ctx;
	check_abort(w);
	record_step(w, sr);
	espl_station_event ev = { .kind = ESPL_EV_STEP_DONE, .unit_uuid = w->unit_uuid,
	                          .step = espl_step_kind_name(sr->step->kind), .step_number = sr->step->number,
	                          .n_steps = (unsigned)espl_plan_recipe(w->sup->o.plan)->n_steps,
	                          .result = sr->status == ESPL_STEP_PASSED ? ESPL_DB_PASS : ESPL_DB_FAIL,
	                          .duration_s = sr->duration_s,
	                          .message = sr->status == ESPL_STEP_FAILED ? sr->error.msg : NULL };
	espl__station_worker_emit(w, &ev);
}

static void set_current(worker *w, const espl_db_unit *u)
{
	current_unit *c = &w->cur;
	pthread_mutex_lock(&w->sup->lock);
	c->begin = *u;
	snprintf(c->mac, sizeof c->mac, "%s", u->mac ? u->mac : "");
	snprintf(c->manufacturer, sizeof c->manufacturer, "%s", u->manufacturer ? u->manufacturer : "");
	snprintf(c->port, sizeof c->port, "%s", u->port ? u->port : "");
	snprintf(c->serial, sizeof c->serial, "%s", u->adapter_serial ? u->adapter_serial : "");
	snprintf(c->location, sizeof c->location, "%s", u->adapter_location ? u->adapter_location : "");
	snprintf(c->slot, sizeof c->slot, "%s", u->slot ? u->slot : "");
	snprintf(c->barcode, sizeof c->barcode, "%s", u->barcode ? u->barcode : "");
	c->begin.mac = c->mac[0] ? c->mac : NULL;
	c->begin.manufacturer = c->manufacturer[0] ? c->manufacturer : NULL;
	c->begin.port = c->port;
	c->begin.adapter_serial = c->serial[0] ? c->serial : NULL;
	c->begin.adapter_location = c->location[0] ? c->location : NULL;
	c->begin.slot = c->slot[0] ? c->slot : NULL;
	c->begin.barcode = c->barcode[0] ? c->barcode : NULL;
	c->active = 1;
	pthread_mutex_unlock(&w->sup->lock);
}

void espl__station_record_context(worker *w, espl_record_context *ctx)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->batch_uuid = w->sup->batch.uuid;
	ctx->unit_uuid = w->unit_uuid;
	ctx->port = w->info.path;
	ctx->adapter_serial = w->info.serial;
	ctx->adapter_location = w->info.location;
	ctx->slot = w->slot;
}

/* The unit answered: write its RUNNING row before any step touches the
 * flash; if the database cannot take it, do not program the unit. */
static void on_identified(void *ctx, const espl_unit_result *res)
{
	worker *w = ctx;
	espl_supervisor *s = w->sup;
	espl_record_context rc_ctx = { 0 };
	espl_db_unit begin;
	espl_error err = { 0, "" };

	w->in_unit = 1;
	w->res = res;
	espl__station_record_context(w, &rc_ctx);
	espl_record_begin(res, &rc_ctx, &begin);
	set_current(w, &begin);
	espl_station_event ev = { .kind = ESPL_EV_IDENTIFIED, .unit_uuid = w->unit_uuid,
	                          .mac = res->chip.mac_str, .unit = res };
	espl__station_worker_emit(w, &ev);
	if (begin_unit_record(s, &begin, &err) == ESPL_OK && atomic_load(&s->db_state) == 0) {
		w->begun = 1;
	} else {
		char msg[ESPL_ERROR_MAX + 128];
		snprintf(msg, sizeof msg, "not programming %s: the database cannot record it (%s)",
		         res->chip.mac_str, err.msg[0] ? err.msg : "it is spooling: see the database message");
		espl__station_worker_emit_simple(w, ESPL_EV_LOG, "error", msg);
		w->stop_unit = 1;
	}
	check_abort(w);
}

/* ------------------------------------------------------------------ */
/* worker                                                               */

enum { UNIT_DONE = 0, NO_UNIT = 1, PORT_FAULT = 2 };

/* Port faults that are the station's to fix: no unit was involved, so none
 * is recorded and yield is untouched.  A port that is missing or refuses
 * the connection is "no unit reached" instead. */
static int is_station_fault(int code)
{
	return code == ESPL_EBUSY || code == ESPL_EPERM || code == ESPL_ENOMEM;
}

/* The port could not be opened: log it (on screen and in the database's
 * events), once per distinct message, and count it for the exit code. */
static int port_fault(worker *w, const espl_unit_result *res)
{
	espl_supervisor *s = w->sup;
	int station = is_station_fault(res->first_error.code);
	if (strcmp(w->fault_msg, res->first_error.msg) == 0)
		return PORT_FAULT;
	snprintf(w->fault_msg, sizeof w->fault_msg, "%s", res->first_error.msg);
	pthread_mutex_lock(&s->lock);
	if (station)
		s->totals.station_faults++;
	else
		s->totals.unreached++;
	pthread_mutex_unlock(&s->lock);
	char msg[ESPL_ERROR_MAX + 64];
	snprintf(msg, sizeof msg, "%s: %s (no unit recorded)", station ? "station fault" : "port unreachable",
	         res->first_error.msg);
	espl__station_worker_emit_simple(w, ESPL_EV_LOG, station ? "error" : "warn", msg);
	espl__station_record_event(s, "error", station ? "station-fault" : "port-unreachable", NULL, msg);
	return PORT_FAULT;
}

/* Connect failures that mean "nothing answers on this port (yet)". */
static int means_no_unit(const espl_unit_result *res)
{
	if (res->connected)
		return 0;
	switch (res->first_error.code) {
	case ESPL_ECHIP:
	case ESPL_ENOMEM:
		return 0;
	default:
		return 1;
	}
}

/* The finished unit to the supervisor, with its label (taken). */
static void queue_result(worker *w, espl_unit_result *res, char *label)
{
	espl_supervisor *s = w->sup;
	result_item *it = calloc(1, sizeof *it);
	if (!it) {
		/* Without memory the unit stays RUNNING in the database; the
		 * next start seals it INTERRUPTED. */
		espl__station_worker_emit_simple(w, ESPL_EV_LOG, "error", "out of memory: unit result lost");
		espl_unit_result_clear(res);
		free(label);
		pthread_mutex_lock(&s->lock);
		w->cur.active = 0;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	it->res = *res;
	it->label = label;
	snprintf(it->barcode, sizeof it->barcode, "%s", w->barcode);
	snprintf(it->unit_uuid, sizeof it->unit_uuid, "%s", w->unit_uuid);
	snprintf(it->port, sizeof it->port, "%s", w->info.path);
	snprintf(it->serial, sizeof it->serial, "%s", w->info.serial);
	snprintf(it->location, sizeof it->location, "%s", w->info.location);
	snprintf(it->slot, sizeof it->slot, "%s", w->slot);
	/* recipe_name etc. point into the shared recipe; steps move with it */
	pthread_mutex_lock(&s->lock);
	w->cur.active = 0;
	if (s->aborted) {
		pthread_mutex_unlock(&s->lock);
		espl_unit_result_clear(&it->res);
		free(it->label);
		free(it);
		return;
	}
	*s->q_tail = it;
	s->q_tail = &it->next;
	pthread_mutex_unlock(&s->lock);
}

/* A unit whose ROM would not sync at the recipe's connect.baud fell back
 * to 115200.  The cause is usually the port's adapter or cable, so the next
 * units on this port start at the rate that worked instead of paying for the
 * failed fast rounds again; said once, as a warning. */
static void remember_rom_baud(worker *w, const espl_unit_result *res)
{
	const espl_recipe *r = espl_plan_recipe(w->sup->o.plan);
	unsigned tried = espl_recipe_rom_baud(r);
	if (w->rom_baud || !res->rom_baud || res->rom_baud >= tried)
		return;
	w->rom_baud = res->rom_baud;
	char msg[200];
	snprintf(msg, sizeof msg, "the ROM did not answer at %u baud on this port; its next units "
	         "connect at %u (set connect.baud: %u in the recipe to skip the fast try)",
	         tried, res->rom_baud, res->rom_baud);
	espl__station_worker_emit_simple(w, ESPL_EV_LOG, "warn", msg);
}

/* The name the database remembers this adapter's rate under: its USB
 * serial number (it follows the adapter to another socket), else its path. */
static void adapter_key(const worker *w, char *out, size_t cap)
{
	if (w->info.serial[0])
		snprintf(out, cap, "usb:%s", w->info.serial);
	else
		snprintf(out, cap, "%s", w->info.path);
}

/* The flash_baud ladder's rate that last worked on this adapter (0 = none
 * known: start from the top). */
static unsigned remembered_flash_baud(worker *w)
{
	espl_supervisor *s = w->sup;
	char key[sizeof ((espl_db_adapter_rate *)0)->adapter];
	unsigned baud = 0;
	adapter_key(w, key, sizeof key);
	pthread_rwlock_rdlock(&s->dbw_lock);
	if (!s->dbw_closed && s->dbw)
		baud = espl_dbw_adapter_rate_get(s->dbw, key);
	pthread_rwlock_unlock(&s->dbw_lock);
	return baud;
}

/* A unit passed with the stub at a rate other than the one remembered
 * (the ladder stepped down, or a rate below the top is newly known):
 * remember it, so the next unit on this adapter, in this run or the next,
 * starts there. */
static void remember_flash_baud(worker *w, unsigned was, const espl_unit_result *res)
{
	espl_supervisor *s = w->sup;
	char key[sizeof ((espl_db_adapter_rate *)0)->adapter];
	espl_error err;
	unsigned top = espl_plan_recipe(s->o.plan)->connect.flash_baud;
	if (!res->pass || !res->flash_baud || res->flash_baud == was || (!was && res->flash_baud >= top))
		return; /* nothing new: the ladder starts at the top anyway */
	adapter_key(w, key, sizeof key);
	pthread_rwlock_rdlock(&s->dbw_lock);
	if (!s->dbw_closed && s->dbw)
		(void)espl_dbw_adapter_rate(s->dbw, key, res->flash_baud, &err); /* best effort */
	pthread_rwlock_unlock(&s->dbw_lock);
	char msg[160];
	snprintf(msg, sizeof msg, "the flasher stub worked at %u baud on this adapter; its next units "
	         "start there", res->flash_baud);
	espl__station_worker_emit_simple(w, ESPL_EV_LOG, "info", msg);
}

static int program_unit(worker *w, int waiting)
{
	espl_supervisor *s = w->sup;
	espl_runner_options ro;
	espl_unit_result res;
	espl_error err;

	if (espl_db_uuid(w->unit_uuid, &err) < 0) {
		espl__station_worker_emit_simple(w, ESPL_EV_LOG, "error", err.msg);
		return NO_UNIT;
	}
	espl_runner_options_init(&ro);
	ro.loader_events = (espl_loader_events){ w, on_loader_log, on_loader_progress };
	ro.events = (espl_runner_events){ w, on_step_start, on_step_done, on_identified, espl__station_reserve,
	                                  espl__station_admit };
	ro.stop = &w->stop_unit;
	ro.rom_baud = w->rom_baud;
	ro.flash_baud_start = remembered_flash_baud(w);
	if (waiting) {
		ro.connect_attempts = 2;
		ro.connect_timeout_ms = s->o.presence_connect_ms;
	}
	w->stop_unit = 0;
	w->barcode[0] = '\0';
	w->in_unit = 0;
	w->begun = 0;
	w->res = NULL;
	espl_runner_run(s->o.plan, w->info.path, &ro, &res);
	w->in_unit = 0;
	w->res = NULL;
	remember_rom_baud(w, &res);
	remember_flash_baud(w, ro.flash_baud_start, &res);
	if (res.port_fault) {
		int rc = port_fault(w, &res);
		espl_unit_result_clear(&res);
		return rc;
	}
	w->fault_msg[0] = '\0';
	if (waiting && means_no_unit(&res)) {
		if (strcmp(w->waiting_msg, res.first_error.msg) != 0) {
			snprintf(w->waiting_msg, sizeof w->waiting_msg, "%s", res.first_error.msg);
			espl__station_worker_emit_simple(w, ESPL_EV_WAITING, "info", w->waiting_msg);
		}
		espl_unit_result_clear(&res);
		return NO_UNIT;
	}
	w->waiting_msg[0] = '\0';
	char *label = espl__station_label(w, &res);
	char *json = espl__station_done_json(w, &res, label);
	w->unit_passed = espl_record_result(&res) == ESPL_DB_PASS;
	queue_result(w, &res, label);
	espl__station_done_hook(w, json);
	return UNIT_DONE;
}

static int answers_at(worker *w, unsigned baud, enum espl_reset_mode reset)
{
	espl_error err;
	int rc = espl_loader_probe(w->info.path, baud, reset, w->sup->o.presence_connect_ms, &err);
	/* A chip that syncs but is not an ESP8266 (an ESP32 left in the jig)
	 * is still there: it must not count as a new unit every second. */
	return rc == ESPL_OK || rc == ESPL_ECHIP;
}

/* Is the finished unit still there?
 * - a board with its own USB bridge (auto-reset, a device path): it is
 *   there as long as its port is; resetting it to ask would stop the
 *   firmware it was just given;
 * - a jig (reset: none) or a network port: the port stays, so ask the chip:
 *   a bare sync, at the connect rate, and at the stub's rate in case the
 *   unit stayed in the flasher stub (reset: stay). */
static int unit_present(worker *w)
{
	const espl_recipe *r = espl_plan_recipe(w->sup->o.plan);
	int jig = r->connect.reset == ESPL_CONNECT_RESET_NONE;

	if (!jig && !espl__station_is_url(w->info.path))
		return access(w->info.path, F_OK) == 0;
	if (answers_at(w, w->rom_baud ? w->rom_baud : r->connect.baud, jig ? ESPL_RESET_NONE : ESPL_RESET_AUTO))
		return 1;
	return jig && r->connect.flash_baud != r->connect.baud && answers_at(w, r->connect.flash_baud, ESPL_RESET_NONE);
}

static int worker_should_leave(worker *w)
{
	espl_supervisor *s = w->sup;
	return atomic_load(&s->stop_level) != ESPL_STOP_NONE || atomic_load(&w->removed) ||
	       atomic_load(&s->complete) || atomic_load(&s->db_state) != 0;
}

/* Sleep ms, waking early when the worker should leave. */
static void worker_pause(worker *w, int ms)
{
	for (int slept = 0; slept < ms && !worker_should_leave(w); slept += TICK_MS)
		espl__sleep_ms((unsigned)ms - slept < TICK_MS ? ms - slept : TICK_MS);
}

/* 1 when the unit was taken out; 0 when the worker must leave or the
 * operator paused the slot first (the removal is then still pending). */
static int wait_removal(worker *w)
{
	int misses = 0;
	espl__station_worker_emit_simple(w, ESPL_EV_REMOVE_WAIT, "info", NULL);
	while (!worker_should_leave(w) && atomic_load(&w->hold) == ESPL_SLOT_RESUME) {
		misses = unit_present(w) ? 0 : misses + 1;
		if (misses >= REMOVED_AFTER_MISSES) {
			espl__station_worker_emit_simple(w, ESPL_EV_UNIT_REMOVED, "info", NULL);
			return 1;
		}
		worker_pause(w, w->sup->o.presence_ms);
	}
	return 0;
}

/* Paused or stopped by the operator: say so, then wait for resume. */
static void wait_while_held(worker *w)
{
	int stopped = atomic_load(&w->hold) == ESPL_SLOT_STOP;
	espl__station_worker_emit_simple(w, ESPL_EV_SLOT_PAUSED, "warn",
	                                 stopped ? "stopped by the operator: no unit until resumed"
	                                         : "paused by the operator: no new unit until resumed");
	while (atomic_load(&w->hold) != ESPL_SLOT_RESUME && !worker_should_leave(w))
		espl__sleep_ms((unsigned)TICK_MS);
}

int espl_supervisor_slot_control(espl_supervisor *s, const char *slot_or_port, enum espl_slot_action action,
                                 espl_error *err)
{
	int found = 0;
	if (!slot_or_port || !*slot_or_port)
		return espl_fail(err, ESPL_EARG, "which slot? (a slot name or a port)");
	pthread_mutex_lock(&s->lock);
	for (worker *w = s->workers; w; w = w->next) {
		if (strcmp(w->slot, slot_or_port) == 0 || strcmp(w->info.path, slot_or_port) == 0) {
			atomic_store(&w->hold, action);
			found = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!found)
		return espl_fail(err, ESPL_ENOTFOUND, "no slot or port '%s' in this run", slot_or_port);
	return ESPL_OK;
}

/* BATCH: take one of the count's slots.  1 taken, 0 none free now. */
static int claim_slot(espl_supervisor *s)
{
	int ok = 1;
	if (s->o.mode != ESPL_STATION_BATCH)
		return 1;
	pthread_mutex_lock(&s->lock);
	if (s->claimed < s->o.count)
		s->claimed++;
	else
		ok = 0;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void release_slot(espl_supervisor *s)
{
	if (s->o.mode != ESPL_STATION_BATCH)
		return;
	pthread_mutex_lock(&s->lock);
	s->claimed--;
	pthread_mutex_unlock(&s->lock);
}

void *espl__station_worker_main(void *arg)
{
	worker *w = arg;
	espl_supervisor *s = w->sup;
	int once = s->o.mode == ESPL_STATION_ONCE;

	/* A finished unit must be taken out before the next; a pause meanwhile
	 * leaves that pending. */
	int removal_pending = 0;

	if (!once)
		espl__station_worker_emit_simple(w, ESPL_EV_WAITING, "info", NULL);
	while (may_start_unit(w)) {
		if (atomic_load(&w->hold) != ESPL_SLOT_RESUME) {
			wait_while_held(w);
			if (!removal_pending && may_start_unit(w))
				espl__station_worker_emit_simple(w, ESPL_EV_WAITING, "info", NULL);
			continue;
		}
		if (removal_pending) {
			removal_pending = !wait_removal(w);
			if (!removal_pending && may_start_unit(w))
				espl__station_worker_emit_simple(w, ESPL_EV_WAITING, "info", NULL);
			continue;
		}
		if (!claim_slot(s)) {
			worker_pause(w, s->o.presence_ms);
			continue;
		}
		int done = program_unit(w, !once);
		if (done != UNIT_DONE && once)
			break;  /* one try: the fault is logged and counted */
		if (done != UNIT_DONE) {
			release_slot(s);
			worker_pause(w, s->o.presence_ms);
			continue;
		}
		if (once)
			break;
		if (s->o.count_passed && !w->unit_passed)
			release_slot(s);  /* --count-passed: another unit takes its place */
		removal_pending = 1;
	}
	atomic_store(&w->finished, 1);
	return NULL;
}

