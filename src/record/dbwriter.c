/* dbwriter.c - the single database writer thread; see include/espline/dbwriter.h. */
#include "espline/dbwriter.h"

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

/* R_UNIT_STEP comes after R_EVENT: progressive step rows are never spooled,
 * so reading a spool back does not know them. */
enum rec_type { R_BATCH_BEGIN, R_BATCH_END, R_UNIT_BEGIN, R_UNIT_END, R_EVENT, R_SYNC,
		R_UNIT_STEP };

static const char *const type_names[] = {
	[R_BATCH_BEGIN] = "batch_begin", [R_BATCH_END] = "batch_end",
	[R_UNIT_BEGIN] = "unit_begin", [R_UNIT_END] = "unit_end", [R_EVENT] = "event",
	[R_SYNC] = "sync", [R_UNIT_STEP] = "unit_step",
};

/* One queued record: owned deep copies of what the producer gave. */
typedef struct rec {
	struct rec *next;
	int type;
	espl_db_station station;
	espl_db_recipe recipe;
	espl_db_image *images;
	espl_db_batch batch;
	espl_db_unit unit;
	espl_db_step *steps;
	size_t n_steps;
	espl_db_event event;
	char batch_uuid[ESPL_DB_UUID_SIZE]; /* batch_end */
	int64_t ended_ms;                    /* batch_end */
	/* outcome */
	int waited;   /* a producer waits for it and frees it */
	int done;
	espl_dbw_ack ack;
} rec;

struct espl_dbw {
	espl_dbw_options o;
	char *path, *spool_path, *rejected_path;
	char *fallback_path;        /* a spool elsewhere (NULL: none) */
	int fallback_fd;
	/* The spools are used in order and never go back: 0 none yet, 1 the one
	 * beside the database, 2 the fallback.  So a replay (the first spool,
	 * then the fallback) applies records in the order they were made. */
	int spool_stage;
	char *st_name, *st_host, *st_version;
	espl_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	rec *head, *tail;
	rec *held_head, *held_tail; /* neither written nor spooled */
	int stopping;
	int state;
	char reason[ESPL_ERROR_MAX];
	espl_dbw_stats stats;
	int spool_fd;
	int lock_fd;
};

/* ---- record copies ----------------------------------------------------- */

static void rec_free(rec *r)
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

static void copy_station(rec *r, const espl_db_station *s, int *oom)
{
	r->station.name = espl__strdup_oom(s->name, oom);
	r->station.host = espl__strdup_oom(s->host, oom);
	r->station.version = espl__strdup_oom(s->version, oom);
}

static void copy_recipe(rec *r, const espl_db_recipe *src, int *oom)
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

static void copy_batch(rec *r, const espl_db_batch *b, int *oom)
{
	r->batch = *b;
	r->batch.name = espl__strdup_oom(b->name, oom);
	r->batch.operator_name = espl__strdup_oom(b->operator_name, oom);
}

static void copy_unit(rec *r, const espl_db_unit *u, int *oom)
{
	r->unit = *u;
	r->unit.mac = espl__strdup_oom(u->mac, oom);
	r->unit.manufacturer = espl__strdup_oom(u->manufacturer, oom);
	r->unit.port = espl__strdup_oom(u->port, oom);
	r->unit.adapter_serial = espl__strdup_oom(u->adapter_serial, oom);
	r->unit.adapter_location = espl__strdup_oom(u->adapter_location, oom);
	r->unit.error_kind = espl__strdup_oom(u->error_kind, oom);
	r->unit.error = espl__strdup_oom(u->error, oom);
	snprintf(r->ack.uuid, sizeof r->ack.uuid, "%s", u->uuid);
}

static void copy_steps(rec *r, const espl_db_step *steps, size_t n, int *oom)
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
	}
}

static void copy_event(rec *r, const espl_db_event *e, int *oom)
{
	r->event.time_ms = e->time_ms;
	r->event.level = espl__strdup_oom(e->level, oom);
	r->event.kind = espl__strdup_oom(e->kind, oom);
	r->event.batch_uuid = espl__strdup_oom(e->batch_uuid, oom);
	r->event.unit_uuid = espl__strdup_oom(e->unit_uuid, oom);
	r->event.message = espl__strdup_oom(e->message, oom);
}

/* ---- JSON form (spool and rejected files) ----------------------------- */

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *station_json(const espl_db_station *s)
{
	return json_pack("{s:o,s:o,s:o}", "name", jstr(s->name), "host", jstr(s->host), "version",
			 jstr(s->version));
}

static json_t *unit_json(const espl_db_unit *u)
{
	json_t *j = json_object();
	json_object_set_new(j, "uuid", json_string(u->uuid));
	json_object_set_new(j, "batch_uuid", json_string(u->batch_uuid));
	json_object_set_new(j, "mac", jstr(u->mac));
	json_object_set_new(j, "chip_id", json_integer(u->chip_id));
	json_object_set_new(j, "flash_id", json_integer(u->flash_id));
	json_object_set_new(j, "manufacturer", jstr(u->manufacturer));
	json_object_set_new(j, "flash_size", json_integer(u->flash_size));
	json_object_set_new(j, "crystal_mhz", json_integer(u->crystal_mhz));
	json_object_set_new(j, "port", jstr(u->port));
	json_object_set_new(j, "adapter_serial", jstr(u->adapter_serial));
	json_object_set_new(j, "adapter_location", jstr(u->adapter_location));
	json_object_set_new(j, "started_ms", json_integer(u->started_ms));
	json_object_set_new(j, "ended_ms", json_integer(u->ended_ms));
	json_object_set_new(j, "duration_ms", json_integer(u->duration_ms));
	json_object_set_new(j, "result", json_string(espl_db_result_name(u->result)));
	json_object_set_new(j, "error_kind", jstr(u->error_kind));
	json_object_set_new(j, "error", jstr(u->error));
	return j;
}

static json_t *step_json(const espl_db_step *s)
{
	json_t *j = json_object();
	json_object_set_new(j, "index", json_integer(s->index));
	json_object_set_new(j, "kind", jstr(s->kind));
	json_object_set_new(j, "address", json_integer(s->address));
	json_object_set_new(j, "length", json_integer(s->length));
	json_object_set_new(j, "expected_md5", jstr(s->expected_md5));
	json_object_set_new(j, "actual_md5", jstr(s->actual_md5));
	json_object_set_new(j, "bytes", json_integer((json_int_t)s->bytes));
	json_object_set_new(j, "duration_ms", json_integer(s->duration_ms));
	json_object_set_new(j, "retries", json_integer(s->retries));
	json_object_set_new(j, "result", json_string(espl_db_result_name(s->result)));
	json_object_set_new(j, "error", jstr(s->error));
	return j;
}

static json_t *rec_json(const rec *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "v", json_integer(1));
	json_object_set_new(j, "type", json_string(type_names[r->type]));
	switch (r->type) {
	case R_BATCH_BEGIN: {
		json_t *im = json_array();
		for (size_t i = 0; i < r->recipe.n_images; i++)
			json_array_append_new(im, json_pack("{s:o,s:o}", "name",
							    jstr(r->images[i].name), "sha256",
							    jstr(r->images[i].sha256)));
		json_object_set_new(j, "station", station_json(&r->station));
		json_object_set_new(j, "recipe",
				    json_pack("{s:o,s:o,s:o,s:o}", "name", jstr(r->recipe.name),
					      "sha256", jstr(r->recipe.sha256), "yaml",
					      jstr(r->recipe.yaml), "images", im));
		json_object_set_new(j, "batch",
				    json_pack("{s:s,s:o,s:o,s:I,s:i}", "uuid", r->batch.uuid, "name",
					      jstr(r->batch.name), "operator",
					      jstr(r->batch.operator_name), "started_ms",
					      (json_int_t)r->batch.started_ms, "planned",
					      r->batch.planned));
		break;
	}
	case R_BATCH_END:
		json_object_set_new(j, "batch_uuid", json_string(r->batch_uuid));
		json_object_set_new(j, "ended_ms", json_integer(r->ended_ms));
		break;
	case R_UNIT_BEGIN:
	case R_UNIT_END: {
		json_object_set_new(j, "unit", unit_json(&r->unit));
		if (r->type == R_UNIT_END) {
			json_t *st = json_array();
			for (size_t i = 0; i < r->n_steps; i++)
				json_array_append_new(st, step_json(&r->steps[i]));
			json_object_set_new(j, "steps", st);
		}
		break;
	}
	case R_UNIT_STEP: /* only ever written to the rejected file */
		json_object_set_new(j, "unit_uuid", json_string(r->unit.uuid));
		if (r->n_steps)
			json_object_set_new(j, "step", step_json(&r->steps[0]));
		break;
	case R_EVENT:
		json_object_set_new(j, "event",
				    json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "time_ms",
					      (json_int_t)r->event.time_ms, "level", jstr(r->event.level),
					      "kind", jstr(r->event.kind), "batch_uuid",
					      jstr(r->event.batch_uuid), "unit_uuid",
					      jstr(r->event.unit_uuid), "message",
					      jstr(r->event.message)));
		break;
	default:
		break;
	}
	return j;
}

/* Parsing back.  Strings are copied; a missing key reads as NULL / 0. */
static const char *get_s(json_t *o, const char *k, int *oom)
{
	return espl__strdup_oom(json_string_value(json_object_get(o, k)), oom);
}

static int64_t get_i(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

static void get_uuid(json_t *o, const char *k, char out[ESPL_DB_UUID_SIZE])
{
	const char *s = json_string_value(json_object_get(o, k));
	snprintf(out, ESPL_DB_UUID_SIZE, "%s", s ? s : "");
}

static void unit_from_json(json_t *j, espl_db_unit *u, int *oom)
{
	get_uuid(j, "uuid", u->uuid);
	get_uuid(j, "batch_uuid", u->batch_uuid);
	u->mac = get_s(j, "mac", oom);
	u->chip_id = (uint32_t)get_i(j, "chip_id");
	u->flash_id = (uint32_t)get_i(j, "flash_id");
	u->manufacturer = get_s(j, "manufacturer", oom);
	u->flash_size = (uint32_t)get_i(j, "flash_size");
	u->crystal_mhz = (int)get_i(j, "crystal_mhz");
	u->port = get_s(j, "port", oom);
	u->adapter_serial = get_s(j, "adapter_serial", oom);
	u->adapter_location = get_s(j, "adapter_location", oom);
	u->started_ms = get_i(j, "started_ms");
	u->ended_ms = get_i(j, "ended_ms");
	u->duration_ms = get_i(j, "duration_ms");
	u->result = espl_db_result_parse(json_string_value(json_object_get(j, "result")));
	u->error_kind = get_s(j, "error_kind", oom);
	u->error = get_s(j, "error", oom);
}

static int steps_from_json(json_t *a, rec *r, int *oom)
{
	size_t n = json_array_size(a);
	if (!n)
		return ESPL_OK;
	r->steps = calloc(n, sizeof *r->steps);
	if (!r->steps)
		return ESPL_ENOMEM;
	r->n_steps = n;
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(a, i);
		espl_db_step *st = &r->steps[i];
		st->index = (int)get_i(s, "index");
		st->kind = get_s(s, "kind", oom);
		st->address = (uint32_t)get_i(s, "address");
		st->length = (uint32_t)get_i(s, "length");
		st->expected_md5 = get_s(s, "expected_md5", oom);
		st->actual_md5 = get_s(s, "actual_md5", oom);
		st->bytes = (uint64_t)get_i(s, "bytes");
		st->duration_ms = get_i(s, "duration_ms");
		st->retries = (int)get_i(s, "retries");
		st->result = espl_db_result_parse(json_string_value(json_object_get(s, "result")));
		st->error = get_s(s, "error", oom);
	}
	return ESPL_OK;
}

static int batch_from_json(json_t *j, rec *r, int *oom)
{
	json_t *st = json_object_get(j, "station"), *rc = json_object_get(j, "recipe");
	json_t *b = json_object_get(j, "batch"), *im = json_object_get(rc, "images");
	r->station.name = get_s(st, "name", oom);
	r->station.host = get_s(st, "host", oom);
	r->station.version = get_s(st, "version", oom);
	r->recipe.name = get_s(rc, "name", oom);
	r->recipe.sha256 = get_s(rc, "sha256", oom);
	r->recipe.yaml = get_s(rc, "yaml", oom);
	size_t n = json_array_size(im);
	if (n) {
		if (!(r->images = calloc(n, sizeof *r->images)))
			return ESPL_ENOMEM;
		r->recipe.n_images = n;
		r->recipe.images = r->images;
		for (size_t i = 0; i < n; i++) {
			r->images[i].name = get_s(json_array_get(im, i), "name", oom);
			r->images[i].sha256 = get_s(json_array_get(im, i), "sha256", oom);
		}
	}
	get_uuid(b, "uuid", r->batch.uuid);
	r->batch.name = get_s(b, "name", oom);
	r->batch.operator_name = get_s(b, "operator", oom);
	r->batch.started_ms = get_i(b, "started_ms");
	r->batch.planned = (int)get_i(b, "planned");
	return ESPL_OK;
}

static int rec_from_json(const char *line, rec **out, espl_error *err)
{
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	*out = NULL;
	if (!j)
		return espl_fail(err, ESPL_EARG, "not JSON: %s", jerr.text);
	const char *type = json_string_value(json_object_get(j, "type"));
	rec *r = calloc(1, sizeof *r);
	int oom = 0, rc = ESPL_OK;
	if (!r) {
		json_decref(j);
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading the spool");
	}
	r->type = -1;
	for (int t = R_BATCH_BEGIN; type && t <= R_EVENT; t++)
		if (strcmp(type, type_names[t]) == 0)
			r->type = t;
	switch (r->type) {
	case R_BATCH_BEGIN:
		rc = batch_from_json(j, r, &oom);
		break;
	case R_BATCH_END:
		get_uuid(j, "batch_uuid", r->batch_uuid);
		r->ended_ms = get_i(j, "ended_ms");
		break;
	case R_UNIT_BEGIN:
	case R_UNIT_END:
		unit_from_json(json_object_get(j, "unit"), &r->unit, &oom);
		snprintf(r->ack.uuid, sizeof r->ack.uuid, "%s", r->unit.uuid);
		if (r->type == R_UNIT_END)
			rc = steps_from_json(json_object_get(j, "steps"), r, &oom);
		break;
	case R_EVENT: {
		json_t *e = json_object_get(j, "event");
		r->event.time_ms = get_i(e, "time_ms");
		r->event.level = get_s(e, "level", &oom);
		r->event.kind = get_s(e, "kind", &oom);
		r->event.batch_uuid = get_s(e, "batch_uuid", &oom);
		r->event.unit_uuid = get_s(e, "unit_uuid", &oom);
		r->event.message = get_s(e, "message", &oom);
		break;
	}
	default:
		rc = espl_fail(err, ESPL_EARG, "unknown record type '%s'", type ? type : "(none)");
	}
	json_decref(j);
	if (rc == 0 && oom)
		rc = espl_fail(err, ESPL_ENOMEM, "out of memory reading the spool");
	if (rc < 0) {
		rec_free(r);
		return rc;
	}
	*out = r;
	return ESPL_OK;
}

/* ---- applying a record to the database -------------------------------- */

static int apply(espl_dbw *w, rec *r, espl_error *err)
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
	default:
		return ESPL_OK;
	}
}

/* Environmental failures (worth spooling) versus the record's own fault. */
static int is_environmental(int rc)
{
	return rc == ESPL_EDB || rc == ESPL_ENOMEM || rc == ESPL_ESYS;
}

/* ---- files ------------------------------------------------------------- */

static void log_msg(espl_dbw *w, const char *level, const char *fmt, ...) ESPL_PRINTF(3, 4);
static void log_msg(espl_dbw *w, const char *level, const char *fmt, ...)
{
	char msg[ESPL_ERROR_MAX + 256];
	va_list ap;
	if (!w->o.on_log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	w->o.on_log(level, msg, w->o.user);
}

static int fsync_dir_of(const char *path)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof copy, "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Append one record as a JSON line to path (fd cached in *fd) and fsync. */
static int append_line(const char *path, int *fd, const rec *r, espl_error *err)
{
	json_t *j = rec_json(r);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return espl_fail(err, ESPL_ENOMEM, "out of memory writing %s", path);
	int created = 0;
	if (*fd < 0) {
		created = access(path, F_OK) < 0;
		*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	}
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; json_dumps left room for nothing else */
	off_t end = *fd < 0 ? -1 : lseek(*fd, 0, SEEK_END);
	int rc = *fd < 0 || end < 0 ? -1 : write_all(*fd, text, len + 1);
	if (rc == 0)
		rc = fsync(*fd);
	if (rc < 0 && end >= 0) {
		/* A full disk can take half a line: cut it off, or the next line
		 * appended would be glued to it and both lost at replay. */
		int e = errno;
		if (ftruncate(*fd, end) < 0) {
			/* the replay drops a damaged line; the record is reported unsaved */
		}
		errno = e;
	}
	if (rc == 0 && created)
		rc = fsync_dir_of(path);
	free(text);
	if (rc < 0) {
		int e = errno;
		if (*fd >= 0) {
			close(*fd);
			*fd = -1;
		}
		errno = e;
		return espl_fail_errno(err, "cannot append to %s", path);
	}
	return ESPL_OK;
}

static void reject(espl_dbw *w, const rec *r, const espl_error *why)
{
	espl_error e;
	int fd = -1;
	if (append_line(w->rejected_path, &fd, r, &e) < 0)
		log_msg(w, "error", "record refused by the database (%s) and not saved: %s", why->msg,
			e.msg);
	else
		log_msg(w, "error", "record refused by the database, kept in %s: %s", w->rejected_path,
			why->msg);
	if (fd >= 0)
		close(fd);
	w->stats.rejected++;
}

/* ---- state ------------------------------------------------------------- */

static void set_state(espl_dbw *w, int state, const char *reason)
{
	pthread_mutex_lock(&w->mu);
	int changed = w->state != state;
	w->state = state;
	snprintf(w->reason, sizeof w->reason, "%s", reason);
	pthread_mutex_unlock(&w->mu);
	if (changed && w->o.on_state)
		w->o.on_state(state, reason, w->o.user);
	if (changed)
		log_msg(w, "error", "%s", reason);
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
		if (append_line(path, fd, r, &why) == 0) {
			if (stage != w->spool_stage && stage == 2)
				log_msg(w, "warn", "the spool %s cannot be written; records now go to %s",
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
		int rc = apply(w, g[i], &e);
		if (rc < 0 && is_environmental(rc)) {
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
 * the unit's end record (spooled) carries every step anyway. */
static void spool_or_drop(espl_dbw *w, rec *r)
{
	if (r->type == R_UNIT_STEP) {
		clear_outcome(r);
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
	int rc = apply(w, r, &e);
	if (rc == 0) {
		w->stats.written++;
		w->stats.transactions++;
		return;
	}
	if (is_environmental(rc)) {
		start_spooling(w, &e);
		spool_or_drop(w, r);
		return;
	}
	record_failure(r, rc, &e);
	reject(w, r, &e);
}

static void write_records(espl_dbw *w, rec **g, size_t n)
{
	espl_error e;
	if (w->state == ESPL_DBW_OK && n > 1 && write_group(w, g, n, &e) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (g[i]->ack.rc < 0) {
				espl_error why = { g[i]->ack.rc, "" };
				snprintf(why.msg, sizeof why.msg, "%s", g[i]->ack.error);
				reject(w, g[i], &why);
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
		int unsaved = r->type != R_SYNC && r->ack.rc < 0 && is_environmental(r->ack.rc);
		r->done = 1;
		if (unsaved && !r->waited) {
			hold(w, r);
			continue;
		}
		if (unsaved) {
			/* The producer frees r; keep a copy to save at stop. */
			rec *copy = NULL;
			json_t *j = rec_json(r);
			char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
			json_decref(j);
			if (text && rec_from_json(text, &copy, NULL) == 0) {
				copy->type = r->type;
				hold(w, copy);
			}
			free(text);
		}
		if (!r->waited)
			rec_free(r);
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
	rec_free(r);
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
		rec_free(r);
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
		rec_free(r);
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
	rec_free(r);
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
	copy_station(r, &w->o.station, &oom);
	copy_recipe(r, recipe, &oom);
	copy_batch(r, batch, &oom);
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
	copy_unit(r, unit, &oom);
	return await(w, r, oom, NULL, err);
}

int espl_dbw_end_unit(espl_dbw *w, const espl_db_unit *unit, const espl_db_step *steps,
		      size_t n_steps, espl_dbw_ack *ack, espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_UNIT_END, err);
	if (!r)
		return ESPL_ENOMEM;
	copy_unit(r, unit, &oom);
	copy_steps(r, steps, n_steps, &oom);
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
	copy_steps(r, step, 1, &oom);
	return enqueue_or_drop(w, r, oom, err);
}

int espl_dbw_event(espl_dbw *w, const espl_db_event *event, espl_error *err)
{
	int oom = 0;
	rec *r = new_rec(R_EVENT, err);
	if (!r)
		return ESPL_ENOMEM;
	copy_event(r, event, &oom);
	return enqueue(w, r, oom, 0, err);
}

int espl_dbw_sync(espl_dbw *w, espl_error *err)
{
	rec *r = new_rec(R_SYNC, err);
	if (!r)
		return ESPL_ENOMEM;
	return await(w, r, 0, NULL, err);
}

int espl_dbw_state(espl_dbw *w, char *reason, size_t reason_size)
{
	pthread_mutex_lock(&w->mu);
	int s = w->state;
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

/* ---- replay ------------------------------------------------------------ */

static void sha256_hex(const char *data, size_t len, char out[ESPL_DB_HASH_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Apply every line in one transaction.  A line the database refuses as wrong
 * goes to the rejected file; an environmental failure aborts (spool kept). */
static int replay_lines(espl_dbw *w, const char *path, char *text, const char *sha,
			espl_dbw_startup *info, espl_error *err)
{
	int count = 0;
	ESPL_TRY(espl_db_begin(w->db, err));
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (!next) {
			/* A last line without its newline was being written when the
			 * process died; it was never acknowledged as saved. */
			log_msg(w, "warn", "spool %s: ignoring an incomplete last line", path);
			break;
		}
		*next++ = '\0';
		if (!*line)
			continue;
		rec *r;
		espl_error e;
		int rc = rec_from_json(line, &r, &e);
		if (rc == ESPL_ENOMEM) {
			espl_db_rollback(w->db);
			*err = e;
			return rc;
		}
		if (rc < 0) {
			log_msg(w, "error", "spool %s: unreadable line dropped (%s): %.200s", path,
				e.msg, line);
			info->rejected++;
			continue;
		}
		rc = apply(w, r, &e);
		if (rc < 0 && is_environmental(rc)) {
			rec_free(r);
			espl_db_rollback(w->db);
			*err = e;
			return rc;
		}
		if (rc < 0) {
			reject(w, r, &e);
			info->rejected++;
		} else {
			count++;
		}
		rec_free(r);
	}
	int rc = espl_db_spool_mark(w->db, sha, count, err);
	if (rc == 0)
		rc = espl_db_commit(w->db, err);
	else
		espl_db_rollback(w->db);
	if (rc == 0)
		info->replayed += count;
	return rc;
}

/* The largest spool replayed: a unit record is a few KB, so this is some
 * tens of thousands of units, far more than a station makes while its
 * database is down; a larger file is not a spool. */
#define SPOOL_FILE_MAX (512u << 20)

static int replay_one(espl_dbw *w, const char *path, espl_dbw_startup *info, espl_error *err)
{
	char *text;
	size_t len = 0;
	char sha[ESPL_DB_HASH_SIZE];
	if (access(path, F_OK) < 0)
		return ESPL_OK;
	int before = info->replayed;
	ESPL_TRY(espl__file_read(path, SPOOL_FILE_MAX, "spool", &text, &len, err));
	sha256_hex(text, len, sha);
	int rc = espl_db_spool_seen(w->db, sha, err);
	if (rc == 0)
		rc = replay_lines(w, path, text, sha, info, err);
	free(text);
	if (rc < 0) {
		espl_error_prefix(err, "records from an earlier run wait in %s and cannot be replayed "
				  "into the database",
				  path);
		return rc;
	}
	if (unlink(path) < 0 || fsync_dir_of(path) < 0)
		return espl_fail_errno(err, "replayed %s but cannot remove it", path);
	log_msg(w, "info", "replayed %d records from %s", info->replayed - before, path);
	return ESPL_OK;
}

/* The spool beside the database first, then the fallback: the order the
 * records were made in. */
static int replay_spool(espl_dbw *w, espl_dbw_startup *info, espl_error *err)
{
	ESPL_TRY(replay_one(w, w->spool_path, info, err));
	return w->fallback_path ? replay_one(w, w->fallback_path, info, err) : ESPL_OK;
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
		rec_free(r);
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
	ESPL_TRY(replay_spool(w, info, err));
	int rc = espl_db_interrupt_stale(w->db, &w->o.station,
					 "the station stopped before this unit completed",
					 espl_db_now_ms(), &info->interrupted, err);
	if (rc < 0)
		espl_error_prefix(err, "recording interrupted units of an earlier run");
	else if (info->interrupted)
		log_msg(w, "warn", "%d units of an earlier run never completed; recorded as INTERRUPTED",
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
	json_t *j = rec_json(r);
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
		log_msg(w, "info", "%d unit records held in memory were saved in a spool at stop", *rescued);
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
	sha256_hex(name, strlen(name), sha);
	snprintf(base, sizeof base, "%s", name);
	int n = snprintf(out, cap, "%s/%s-%.16s.spool", dir, basename(base), sha);
	free(abs);
	return n < 0 || (size_t)n >= cap ? ESPL_EARG : ESPL_OK;
}
