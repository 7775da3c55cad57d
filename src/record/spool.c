/* spool.c - the database writer's spool: records as JSON lines, the spool
 * and rejected files, and replaying a spool into the database; see
 * include/espline/dbwriter.h and src/record/dbwriter_int.h. */
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

static const char *const type_names[] = {
	[R_BATCH_BEGIN] = "batch_begin", [R_BATCH_END] = "batch_end",
	[R_UNIT_BEGIN] = "unit_begin", [R_UNIT_END] = "unit_end", [R_EVENT] = "event",
	[R_SYNC] = "sync", [R_UNIT_STEP] = "unit_step", [R_ADAPTER_RATE] = "adapter_rate",
};

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
	if (u->slot) /* left out when unset, so older readers see what they knew */
		json_object_set_new(j, "slot", jstr(u->slot));
	if (u->barcode)
		json_object_set_new(j, "barcode", jstr(u->barcode));
	if (u->label)
		json_object_set_new(j, "label", jstr(u->label));
	if (u->serial)
		json_object_set_new(j, "serial", jstr(u->serial));
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
	if (s->detail)
		json_object_set_new(j, "detail", jstr(s->detail));
	return j;
}

json_t *espl__dbw_rec_json(const rec *r)
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
	case R_ADAPTER_RATE: /* only ever written to the rejected file */
		json_object_set_new(j, "adapter", json_string(r->rate.adapter));
		json_object_set_new(j, "baud", json_integer(r->rate.baud));
		break;
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
	u->slot = get_s(j, "slot", oom);
	u->barcode = get_s(j, "barcode", oom);
	u->label = get_s(j, "label", oom);
	u->serial = get_s(j, "serial", oom);
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
		st->detail = get_s(s, "detail", oom);
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

int espl__dbw_rec_from_json(const char *line, rec **out, espl_error *err)
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
		espl__dbw_rec_free(r);
		return rc;
	}
	*out = r;
	return ESPL_OK;
}

/* ---- files ------------------------------------------------------------- */

void espl__dbw_log_msg(espl_dbw *w, const char *level, const char *fmt, ...) ESPL_PRINTF(3, 4);
void espl__dbw_log_msg(espl_dbw *w, const char *level, const char *fmt, ...)
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
int espl__dbw_append_line(const char *path, int *fd, const rec *r, espl_error *err)
{
	json_t *j = espl__dbw_rec_json(r);
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

void espl__dbw_reject(espl_dbw *w, const rec *r, const espl_error *why)
{
	espl_error e;
	int fd = -1;
	if (espl__dbw_append_line(w->rejected_path, &fd, r, &e) < 0)
		espl__dbw_log_msg(w, "error", "record refused by the database (%s) and not saved: %s", why->msg,
			e.msg);
	else
		espl__dbw_log_msg(w, "error", "record refused by the database, kept in %s: %s", w->rejected_path,
			why->msg);
	if (fd >= 0)
		close(fd);
	w->stats.rejected++;
}

/* ---- replay ------------------------------------------------------------ */

void espl__dbw_sha256_hex(const char *data, size_t len, char out[ESPL_DB_HASH_SIZE])
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
			espl__dbw_log_msg(w, "warn", "spool %s: ignoring an incomplete last line", path);
			break;
		}
		*next++ = '\0';
		if (!*line)
			continue;
		rec *r;
		espl_error e;
		int rc = espl__dbw_rec_from_json(line, &r, &e);
		if (rc == ESPL_ENOMEM) {
			espl_db_rollback(w->db);
			*err = e;
			return rc;
		}
		if (rc < 0) {
			espl__dbw_log_msg(w, "error", "spool %s: unreadable line dropped (%s): %.200s", path,
				e.msg, line);
			info->rejected++;
			continue;
		}
		rc = espl__dbw_apply(w, r, &e);
		if (rc < 0 && espl__dbw_is_environmental(rc)) {
			espl__dbw_rec_free(r);
			espl_db_rollback(w->db);
			*err = e;
			return rc;
		}
		if (rc < 0) {
			espl__dbw_reject(w, r, &e);
			info->rejected++;
		} else {
			count++;
		}
		espl__dbw_rec_free(r);
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
	espl__dbw_sha256_hex(text, len, sha);
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
	espl__dbw_log_msg(w, "info", "replayed %d records from %s", info->replayed - before, path);
	return ESPL_OK;
}

/* The spool beside the database first, then the fallback: the order the
 * records were made in. */
int espl__dbw_replay_spool(espl_dbw *w, espl_dbw_startup *info, espl_error *err)
{
	ESPL_TRY(replay_one(w, w->spool_path, info, err));
	return w->fallback_path ? replay_one(w, w->fallback_path, info, err) : ESPL_OK;
}
