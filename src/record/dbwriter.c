/* dbwriter.c - the single database writer thread: record copies, applying
 * a record, state, the writer loop, start and stop (producers.c: the calls
 * producers make; spool.c: the spool); see include/espline/dbwriter.h. */
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

/* ---- record copies ----------------------------------------------------- */

void espl__dbw_rec_free(rec *r)
{
	if (!r)
		return;
	/* r->recipe.images is r->images (or both are NULL) */
	espl__db_station_free_strings(&r->station);
	espl__db_recipe_free_strings(&r->recipe);
	espl__db_batch_free_strings(&r->batch);
	espl__db_unit_free_strings(&r->unit);
	espl__db_steps_free(r->steps, r->n_steps);
	espl__db_event_free_strings(&r->event);
	free(r);
}

void espl__dbw_copy_station(rec *r, const espl_db_station *s, int *oom)
{
	r->station.name = espl__strdup_oom(s->name, oom);
	r->station.host = espl__strdup_oom(s->host, oom);
	r->station.version = espl__strdup_oom(s->version, oom);
}

void espl__dbw_copy_recipe(rec *r, const espl_db_recipe *src, int *oom)
{
	r->recipe.name = espl__strdup_oom(src->name, oom);
	r->recipe.sha256 = espl__strdup_oom(src->sha256, oom);
	r->recipe.yaml = espl__strdup_oom(src->yaml, oom);
	if (src->n_images) {
		r->images = calloc(src->n_images, sizeof *r->images);
		if (!r->images) {
			*oom = 1;
			return;
		}
		r->recipe.n_images = src->n_images;
		for (size_t i = 0; i < src->n_images; i++) {
			r->images[i].name = espl__strdup_oom(src->images[i].name, oom);
			r->images[i].sha256 = espl__strdup_oom(src->images[i].sha256, oom);
		}
	}
	r->recipe.images = r->images;
}

void espl__dbw_copy_batch(rec *r, const espl_db_batch *b, int *oom)
{
	r->batch = *b;
	r->batch.name = espl__strdup_oom(b->name, oom);
	r->batch.operator_name = espl__strdup_oom(b->operator_name, oom);
}

void espl__dbw_copy_unit(rec *r, const espl_db_unit *u, int *oom)
{
	r->unit = *u;
	r->unit.mac = espl__strdup_oom(u->mac, oom);
	r->unit.manufacturer = espl__strdup_oom(u->manufacturer, oom);
	r->unit.port = espl__strdup_oom(u->port, oom);
	r->unit.adapter_serial = espl__strdup_oom(u->adapter_serial, oom);
	r->unit.adapter_location = espl__strdup_oom(u->adapter_location, oom);
	r->unit.error_kind = espl__strdup_oom(u->error_kind, oom);
	r->unit.error = espl__strdup_oom(u->error, oom);
	r->unit.slot = espl__strdup_oom(u->slot, oom);
	r->unit.barcode = espl__strdup_oom(u->barcode, oom);
	r->unit.label = espl__strdup_oom(u->label, oom);
	r->unit.serial = espl__strdup_oom(u->serial, oom);
	snprintf(r->ack.uuid, sizeof r->ack.uuid, "%s", u->uuid);
}

void espl__dbw_copy_steps(rec *r, const espl_db_step *steps, size_t n, int *oom)
{
	if (!n)
		return;
	r->steps = calloc(n, sizeof *r->steps);
	if (!r->steps) {
		*oom = 1;
		return;
	}
	r->n_steps = n;
	for (size_t i = 0; i < n; i++) {
		r->steps[i] = steps[i];
		r->steps[i].kind = espl__strdup_oom(steps[i].kind, oom);
		r->steps[i].expected_md5 = espl__strdup_oom(steps[i].expected_md5, oom);
		r->steps[i].actual_md5 = espl__strdup_oom(steps[i].actual_md5, oom);
		r->steps[i].error = espl__strdup_oom(steps[i].error, oom);
		r->steps[i].detail = espl__strdup_oom(steps[i].detail, oom);
	}
}

void espl__dbw_copy_event(rec *r, const espl_db_event *e, int *oom)
{
	r->event.time_ms = e->time_ms;
	r->event.level = espl__strdup_oom(e->level, oom);
	r->event.kind = espl__strdup_oom(e->kind, oom);
	r->event.batch_uuid = espl__strdup_oom(e->batch_uuid, oom);
	r->event.unit_uuid = espl__strdup_oom(e->unit_uuid, oom);
	r->event.message = espl__strdup_oom(e->message, oom);
}

/* ---- applying a record to the database -------------------------------- */

int espl__dbw_apply(espl_dbw *w, rec *r, espl_error *err)
{
	switch (r->type) {
	case R_BATCH_BEGIN:
		return espl_db_begin_batch(w->db, &r->station, &r->recipe, &r->batch, err);
	case R_BATCH_END:
		return espl_db_end_batch(w->db, r->batch_uuid, r->ended_ms, err);
	case R_UNIT_BEGIN:
		return espl_db_begin_unit(w->db, &r->unit, err);
	case R_UNIT_END:
		return espl_db_end_unit(w->db, &r->unit, r->steps, r->n_steps, &r->ack.sealed, err);
	case R_EVENT:
		return espl_db_add_event(w->db, &r->event, err);
	case R_UNIT_STEP:
		return espl_db_step_done(w->db, r->unit.uuid, r->steps, err);
	case R_RESERVE:
		return espl_db_reserve(w->db, &r->reserve, &r->reserved, err);
	case R_CSV_REGISTER:
		return espl_db_csv_register(w->db, r->reserve.csv_source, r->keys, r->n_keys, &r->unused, err);
	case R_LEASE_ADD:
		return espl_db_lease_add(w->db, r->reserve.counter, r->lease_first, r->lease_last, espl_db_now_ms(),
		                         &r->unused, err);
	case R_ADAPTER_RATE:
		return espl_db_adapter_rate_set(w->db, r->rate.adapter, r->rate.baud, espl_db_now_ms(), err);
	default:
		return ESPL_OK;
	}
}

/* Environmental failures (worth spooling) versus the record's own fault. */
int espl__dbw_is_environmental(int rc)
{
	return rc == ESPL_EDB || rc == ESPL_ENOMEM || rc == ESPL_ESYS;
}

/* ---- state ------------------------------------------------------------- */

static void set_state(espl_dbw *w, enum espl_dbw_state state, const char *reason)
{
	pthread_mutex_lock(&w->mu);
	int changed = w->state != state;
	w->state = state;
	snprintf(w->reason, sizeof w->reason, "%s", reason);
	pthread_mutex_unlock(&w->mu);
	if (changed && w->o.on_state)
		w->o.on_state(state, reason, w->o.user);
	if (changed)
		espl__dbw_log_msg(w, "error", "%s", reason);
}

static void start_spooling(espl_dbw *w, const espl_error *why)
{
	char reason[ESPL_ERROR_MAX];
	snprintf(reason, sizeof reason,
		 "%.250s; unit records now go to %.150s and will be replayed when the database "
		 "works again: stop starting new units",
		 why->msg, w->spool_path);
	set_state(w, ESPL_DBW_SPOOLING, reason);
}

/* Append r to the spool in use, or a later one; 0 when it is on disk. */
static int append_spooled(espl_dbw *w, const rec *r, espl_error *e)
{
	int stage = w->spool_stage ? w->spool_stage : 1;
	for (; stage <= 2; stage++) {
		const char *path = stage == 1 ? w->spool_path : w->fallback_path;
		int *fd = stage == 1 ? &w->spool_fd : &w->fallback_fd;
		if (!path)
			continue;
		espl_error why;
		if (espl__dbw_append_line(path, fd, r, &why) == 0) {
			if (stage != w->spool_stage && stage == 2)
				espl__dbw_log_msg(w, "warn", "the spool %s cannot be written; records now go to %s",
				        w->spool_path, path);
			w->spool_stage = stage;
			return ESPL_OK;
		}
		*e = why;
	}
	return e->code ? e->code : ESPL_EDB;
}

/* Put r in a spool; if no spool takes it, hold it in memory. */
static void spool(espl_dbw *w, rec *r)
{
	espl_error e = { 0, "" };
	if (append_spooled(w, r, &e) == 0) {
		w->stats.spooled++;
		r->ack.rc = 0;
		r->ack.spooled = 1;
		return;
	}
	char reason[ESPL_ERROR_MAX];
	snprintf(reason, sizeof reason,
		 "neither the database nor a spool accepts records (%.300s): records are held "
		 "in memory only; no unit is started; free space, then stop",
		 e.msg);
	set_state(w, ESPL_DBW_FAILED, reason);
	r->ack.rc = ESPL_EDB;
	snprintf(r->ack.error, sizeof r->ack.error, "%s", reason);
}

/* ---- the writer loop --------------------------------------------------- */

static void record_failure(rec *r, int rc, const espl_error *e)
{
	r->ack.rc = rc;
	snprintf(r->ack.error, sizeof r->ack.error, "%s", e->msg);
}

/* Try the group in one transaction.  Returns 0 when committed (records the
 * database refused as wrong were rolled back to their savepoint and marked),
 * or a negative code when the environment failed: nothing was committed. */
static int write_group(espl_dbw *w, rec **g, size_t n, espl_error *err)
{
	ESPL_TRY(espl_db_begin(w->db, err));
	for (size_t i = 0; i < n; i++) {
		espl_error e;
		int rc = espl__dbw_apply(w, g[i], &e);
		if (rc < 0 && espl__dbw_is_environmental(rc)) {
			espl_db_rollback(w->db);
			*err = e;
			return rc;
		}
		g[i]->ack.rc = rc;
		if (rc < 0)
			record_failure(g[i], rc, &e);
	}
	ESPL_TRY(espl_db_commit(w->db, err));
	w->stats.transactions++;
	return ESPL_OK;
}

static void clear_outcome(rec *r)
{
	r->ack.rc = 0;
	r->ack.spooled = 0;
	r->ack.error[0] = '\0';
	memset(&r->ack.sealed, 0, sizeof r->ack.sealed);
}

/* A progressive step row the database cannot take is dropped, not spooled:
 * the unit's end record (spooled) carries every step anyway.  So is an
 * adapter's rate: the next station start finds that rate again. */
static void spool_or_drop(espl_dbw *w, rec *r)
{
	if (r->type == R_UNIT_STEP || r->type == R_ADAPTER_RATE) {
		clear_outcome(r);
		return;
	}
	if (r->type == R_RESERVE || r->type == R_CSV_REGISTER || r->type == R_LEASE_ADD) {
		r->ack.rc = ESPL_EDB;
		snprintf(r->ack.error, sizeof r->ack.error, "the database cannot be written, and serial numbers "
		         "and CSV rows come only from it: %.300s", w->reason);
		return;
	}
	spool(w, r);
}

static void write_one(espl_dbw *w, rec *r)
{
	espl_error e;
	if (w->state != ESPL_DBW_OK) {
		spool_or_drop(w, r);
		return;
	}
	clear_outcome(r);
	int rc = espl__dbw_apply(w, r, &e);
	if (rc == 0) {
		w->stats.written++;
		w->stats.transactions++;
		return;
	}
	if (espl__dbw_is_environmental(rc)) {
		start_spooling(w, &e);
		spool_or_drop(w, r);
		return;
	}
	record_failure(r, rc, &e);
	if (!REC_IS_QUESTION(r->type))
		espl__dbw_reject(w, r, &e);
}

static void write_records(espl_dbw *w, rec **g, size_t n)
{
	espl_error e;
	if (w->state == ESPL_DBW_OK && n > 1 && write_group(w, g, n, &e) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (g[i]->ack.rc < 0 && REC_IS_QUESTION(g[i]->type)) {
				continue;
			} else if (g[i]->ack.rc < 0) {
				espl_error why = { g[i]->ack.rc, "" };
				snprintf(why.msg, sizeof why.msg, "%s", g[i]->ack.error);
				espl__dbw_reject(w, g[i], &why);
			} else {
				w->stats.written++;
			}
		}
		return;
	}
	/* One by one: find which record the environment refused, spool from there. */
	for (size_t i = 0; i < n; i++)
		write_one(w, g[i]);
}

static void hold(espl_dbw *w, rec *r)
{
	/* Called with the lock held: the record stays alive until stop. */
	r->next = NULL;
	if (w->held_tail)
		w->held_tail->next = r;
	else
		w->held_head = r;
	w->held_tail = r;
	w->stats.held++;
}

static void finish(espl_dbw *w, rec **g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (g[i]->type == R_UNIT_END && w->o.on_unit)
			w->o.on_unit(&g[i]->ack, w->o.user);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		rec *r = g[i];
		int unsaved = !REC_IS_QUESTION(r->type) && r->ack.rc < 0 && espl__dbw_is_environmental(r->ack.rc);
		r->done = 1;
		if (unsaved && !r->waited) {
			hold(w, r);
			continue;
		}
		if (unsaved) {
			/* The producer frees r; keep a copy to save at stop. */
			rec *copy = NULL;
			json_t *j = espl__dbw_rec_json(r);
			char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
			json_decref(j);
			if (text && espl__dbw_rec_from_json(text, &copy, NULL) == 0) {
				copy->type = r->type;
				hold(w, copy);
			}
			free(text);
		}
		if (!r->waited)
			espl__dbw_rec_free(r);
	}
	w->stats.queued -= n;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
}

static void *writer_main(void *arg)
{
	espl_dbw *w = arg;
	int max = w->o.max_group > 0 ? w->o.max_group : 256;
	rec **g = calloc((size_t)max, sizeof *g);
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&w->mu);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->work, &w->mu);
		if (!w->head && w->stopping) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		/* Without memory for a group, go one at a time. */
		size_t limit = g ? (size_t)max : 1;
		rec *single = NULL, **take = g ? g : &single;
		while (w->head && n < limit) {
			take[n++] = w->head;
			w->head = w->head->next;
		}
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->mu);
		write_records(w, take, n);
		finish(w, take, n);
		if (w->o.on_commit)
			w->o.on_commit(w->o.user);
	}
	free(g);
	return NULL;
}

/* ---- start / stop ------------------------------------------------------ */

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

/* The database's folder may not exist yet (db/ on a fresh checkout). */
static int make_parent_dir_of(const char *path, espl_error *err)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof copy, "%s", path);
	const char *dir = dirname(copy);
	if (mkdir(dir, 0775) < 0 && errno != EEXIST)
		return espl_fail_errno(err, "cannot create the database folder %s", dir);
	return ESPL_OK;
}

static void dbw_free(espl_dbw *w)
{
	if (!w)
		return;
	espl_db_close(w->db);
	if (w->spool_fd >= 0)
		close(w->spool_fd);
	if (w->fallback_fd >= 0)
		close(w->fallback_fd);
	free(w->fallback_path);
	if (w->lock_fd >= 0)
		close(w->lock_fd); /* releases the flock */
	while (w->held_head) {
		rec *r = w->held_head;
		w->held_head = r->next;
		espl__dbw_rec_free(r);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->done);
	free(w->path);
	free(w->spool_path);
	free(w->rejected_path);
	free(w->st_name);
	free(w->st_host);
	free(w->st_version);
	free(w->rates);
	free(w);
}

/* One writer process per database: two would seal each other's running
 * units as interrupted and share one spool. */
static int take_writer_lock(espl_dbw *w, espl_error *err)
{
	char *path = concat(w->path, ".lock"), pid[32] = "";
	if (!path)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	ESPL_TRY(make_parent_dir_of(path, err));
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0) {
		int rc = espl_fail_errno(err, "cannot create the writer lock %s", path);
		free(path);
		return rc;
	}
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = pread(w->lock_fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\r\n")] = '\0';  /* the holder wrote "PID\n" */
		int rc = espl_fail(err, ESPL_EBUSY,
				   "another espline station (pid %s) is writing to %s: give each "
				   "station its own database with --db",
				   pid[0] ? pid : "?", w->path);
		free(path);
		return rc;
	}
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(w->lock_fd, 0) < 0 || pwrite(w->lock_fd, pid, strlen(pid), 0) < 0) {
		/* Only the message for a second station is lost; the lock holds. */
	}
	free(path);
	return ESPL_OK;
}

static int prepare_db(espl_dbw *w, espl_dbw_startup *info, espl_error *err)
{
	espl_db_options dbo = { .path = w->path, .create = 1,
				.busy_timeout_ms = w->o.busy_timeout_ms,
				.max_pages = w->o.max_pages };
	ESPL_TRY(espl_db_open(&w->db, &dbo, err));
	ESPL_TRY(espl__dbw_replay_spool(w, info, err));
	/* before the stale units are sealed: their reservations are voided,
	 * not returned, whatever the policy (the units may hold them) */
	int rc = espl_db_void_open(w->db, espl_db_now_ms(), &info->voided, err);
	if (rc < 0) {
		espl_error_prefix(err, "voiding the serial numbers and CSV rows of an earlier run's unfinished units");
		return rc;
	}
	if (info->voided)
		espl__dbw_log_msg(w, "warn", "%d serial numbers or CSV rows reserved by unfinished units of an earlier run were voided",
			info->voided);
	ESPL_TRY(espl_db_adapter_rates(w->db, &w->rates, &w->n_rates, err));
	rc = espl_db_interrupt_stale(w->db, &w->o.station,
					 "the station stopped before this unit completed",
					 espl_db_now_ms(), &info->interrupted, err);
	if (rc < 0)
		espl_error_prefix(err, "recording interrupted units of an earlier run");
	else if (info->interrupted)
		espl__dbw_log_msg(w, "warn", "%d units of an earlier run never completed; recorded as INTERRUPTED",
			info->interrupted);
	return rc;
}

int espl_dbw_start(espl_dbw **out, const espl_dbw_options *opts, espl_dbw_startup *info,
		   espl_error *err)
{
	espl_dbw_startup local;
	*out = NULL;
	if (!info)
		info = &local;
	memset(info, 0, sizeof *info);
	if (!opts || !opts->station.name || !opts->station.host || !opts->station.version)
		return espl_fail(err, ESPL_EARG, "the database writer needs the station's name, "
						 "host and version");
	espl_dbw *w = calloc(1, sizeof *w);
	if (!w)
		return espl_fail(err, ESPL_ENOMEM, "out of memory starting the database writer");
	w->spool_fd = -1;
	w->fallback_fd = -1;
	w->lock_fd = -1;
	w->o = *opts;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	w->path = strdup(espl_db_path(opts->path));
	w->spool_path = opts->spool_path ? strdup(opts->spool_path)
					 : (w->path ? concat(w->path, ".spool") : NULL);
	w->rejected_path = w->path ? concat(w->path, ".rejected") : NULL;
	if (opts->fallback_spool_path && !(w->fallback_path = strdup(opts->fallback_spool_path))) {
		dbw_free(w);
		return espl_fail(err, ESPL_ENOMEM, "out of memory starting the database writer");
	}
	w->st_name = strdup(opts->station.name);
	w->st_host = strdup(opts->station.host);
	w->st_version = strdup(opts->station.version);
	if (!w->path || !w->spool_path || !w->rejected_path || !w->st_name || !w->st_host ||
	    !w->st_version) {
		dbw_free(w);
		return espl_fail(err, ESPL_ENOMEM, "out of memory starting the database writer");
	}
	w->o.station = (espl_db_station){ w->st_name, w->st_host, w->st_version };
	w->o.path = w->path;
	w->o.spool_path = w->spool_path;
	int rc = take_writer_lock(w, err);
	if (rc == 0 && w->fallback_path) {
		espl_error ignored;  /* without its folder the fallback fails when needed, and says so */
		(void)make_parent_dir_of(w->fallback_path, &ignored);
	}
	if (rc == 0)
		rc = prepare_db(w, info, err);
	/* A held lock, a read-only or full file system, a damaged file: the
	 * database is unusable (ESPL_EDB), whatever the system call said.
	 * Only running out of memory stays itself. */
	if (rc < 0 && rc != ESPL_ENOMEM)
		rc = err->code = ESPL_EDB;
	if (rc == 0 && pthread_create(&w->thread, NULL, writer_main, w) != 0)
		rc = espl_fail(err, ESPL_ESYS, "cannot start the database writer thread");
	if (rc < 0) {
		dbw_free(w);
		return rc;
	}
	*out = w;
	return ESPL_OK;
}

/* A record no file would take, whole, for the operator to save by hand:
 * never cut (the line is as long as the record), so it replays as it is. */
static void log_unsaved(espl_dbw *w, const rec *r)
{
	json_t *j = espl__dbw_rec_json(r);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	const char *fmt = "UNSAVED RECORD (append this line to %s, then start the station): %s";
	size_t need = strlen(fmt) + strlen(w->spool_path) + (text ? strlen(text) : 32) + 1;
	char *msg = malloc(need);
	if (msg && w->o.on_log) {
		snprintf(msg, need, fmt, w->spool_path, text ? text : "(out of memory)");
		w->o.on_log("error", msg, w->o.user);
	}
	free(msg);
	free(text);
}

/* Last chance for records held in memory: a spool (space may have come
 * back), else the log, whole.  *rescued counts the records a spool took. */
static int save_held(espl_dbw *w, int *rescued, espl_error *err)
{
	int lost = 0;
	*rescued = 0;
	for (rec *r = w->held_head; r; r = r->next) {
		espl_error e = { 0, "" };
		if (append_spooled(w, r, &e) == 0) {
			*rescued += r->type == R_UNIT_END;
			continue;
		}
		log_unsaved(w, r);
		lost++;
	}
	if (*rescued)
		espl__dbw_log_msg(w, "info", "%d unit records held in memory were saved in a spool at stop", *rescued);
	if (lost)
		return espl_fail(err, ESPL_EDB,
				 "%d records could be saved neither in %s nor in a spool (%s%s%s); each "
				 "was written whole to the log",
				 lost, w->path, w->spool_path, w->fallback_path ? ", " : "",
				 w->fallback_path ? w->fallback_path : "");
	return ESPL_OK;
}

int espl_dbw_stop(espl_dbw *w, espl_error *err)
{
	return espl_dbw_stop_count(w, NULL, err);
}

int espl_dbw_stop_count(espl_dbw *w, int *rescued_out, espl_error *err)
{
	if (rescued_out)
		*rescued_out = 0;
	if (!w)
		return ESPL_OK;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	int rescued = 0;
	int rc = save_held(w, &rescued, err);
	if (rescued_out)
		*rescued_out = rescued;
	dbw_free(w);
	return rc;
}

int espl_dbw_fallback_spool_path(const char *db_path, const char *dir, char *out, size_t cap)
{
	char *abs = realpath(db_path, NULL);
	const char *name = abs ? abs : db_path;
	char sha[ESPL_DB_HASH_SIZE], base[PATH_MAX];
	espl__dbw_sha256_hex(name, strlen(name), sha);
	snprintf(base, sizeof base, "%s", name);
	int n = snprintf(out, cap, "%s/%s-%.16s.spool", dir, basename(base), sha);
	free(abs);
	return n < 0 || (size_t)n >= cap ? ESPL_EARG : ESPL_OK;
}
