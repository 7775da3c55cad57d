/* web_history.c - the web view's history, reports and exports; see
 * include/espline/web.h and src/station/web_int.h. */
#include "espline/web.h"
#include "station/web_int.h"
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "espline/db.h"
#include "espline/report.h"
#include "station/web_assets.h"
#include "util/clock.h"
#include "util/file.h"

/* ------------------------------------------------------------------ */
/* history                                                              */

/* A report.h function writing into memory: buf is malloc'd, or NULL. */
typedef struct memout {
	FILE *f;
	char *buf;
	size_t len;
} memout;

static int memout_open(memout *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	return m->f ? 0 : -1;
}

static char *memout_close(memout *m, int ok)
{
	fclose(m->f);
	if (!ok) {
		free(m->buf);
		m->buf = NULL;
	}
	return m->buf;
}

/* The local source: the database is opened read-only for each request, so
 * the pages see what the station wrote last and hold no lock between them. */
static int open_history(const char *path, espl_db **db, espl_error *err)
{
	espl_db_options o = { .path = path, .read_only = 1, .busy_timeout_ms = 2000 };
	return espl_db_open(db, &o, err);
}

#define LOCAL_CALL(path, err, call)                                \
	do {                                                        \
		espl_db *db_;                                       \
		int rc_ = open_history(path, &db_, err);            \
		if (rc_ < 0)                                        \
			return rc_;                                 \
		espl_db *db = db_;                                  \
		rc_ = (call);                                       \
		espl_db_close(db_);                                 \
		return rc_;                                         \
	} while (0)

static int local_batches(void *ctx, int limit, espl_report_batch_cb cb, void *user, espl_error *err)
{
	LOCAL_CALL(ctx, err, espl_report_batches(db, limit, cb, user, err));
}

static int local_history(void *ctx, const char *key, espl_report_unit_cb cb, void *user, espl_error *err)
{
	LOCAL_CALL(ctx, err, espl_report_history(db, key, cb, user, err));
}

static int local_report(void *ctx, const espl_report_filter *f, espl_report *out, espl_error *err)
{
	LOCAL_CALL(ctx, err, espl_report_build(db, f, out, err));
}

static int local_export(void *ctx, const espl_report_filter *f, enum espl_export_format format, FILE *out,
                        espl_error *err)
{
	LOCAL_CALL(ctx, err, espl_report_export(db, f, format, out, err));
}

void espl__web_history_local(espl_web_history *h, const char *db_path)
{
	*h = (espl_web_history){ .ctx = (void *)db_path, .batches = local_batches, .history = local_history,
		                 .report = local_report, .export_units = local_export };
}

static enum MHD_Result reply_db_error(struct MHD_Connection *c, const espl_error *err, int rc)
{
	return espl__web_reply_error(c, rc == ESPL_ENOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_INTERNAL_SERVER_ERROR, err->msg);
}

/* History rows in the export's JSON form (without steps, as `espline
 * history` shows none). */
typedef struct history_out {
	FILE *f;
	int64_t index;
} history_out;

static int history_unit(const espl_report_unit *u, void *user)
{
	history_out *h = user;
	return espl_report_export_unit(h->f, ESPL_EXPORT_JSON, h->index++, u, NULL, 0) < 0 ? ESPL_ESYS : 0;
}

/* ?mac= (the page's search box): a MAC, or a scanned code or serial, as
 * `espline history` takes. */
static enum MHD_Result serve_history(struct MHD_Connection *c, const espl_web_history *h)
{
	const char *key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mac");
	if (!key || !*key || strlen(key) > HISTORY_KEY_MAX)
		return espl__web_reply_error(c, MHD_HTTP_BAD_REQUEST, "mac=AA:BB:CC:DD:EE:FF (or a scanned code) is needed");
	memout m;
	espl_error err = { 0, "" };
	if (memout_open(&m) < 0)
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	history_out ctx = { m.f, 0 };
	espl_report_export_header(m.f, ESPL_EXPORT_JSON);
	int n = h->history(h->ctx, key, history_unit, &ctx, &err);
	if (n >= 0)
		espl_report_export_footer(m.f, ESPL_EXPORT_JSON, ctx.index);
	char *body = memout_close(&m, n >= 0);
	if (n < 0)
		return reply_db_error(c, &err, n);
	return espl__web_reply_json_text(c, MHD_HTTP_OK, body);
}

static int batch_json(const espl_report_batch *b, void *user)
{
	json_t *list = user, *o = json_object();
	char started[32], ended[32] = "";
	espl_report_format_time(b->started_ms, started);
	if (b->ended_ms)
		espl_report_format_time(b->ended_ms, ended);
	json_object_set_new(o, "uuid", json_string(b->uuid));
	json_object_set_new(o, "name", json_string(b->name));
	json_object_set_new(o, "station", json_string(b->station));
	json_object_set_new(o, "host", json_string(b->host));
	json_object_set_new(o, "recipe", json_string(b->recipe));
	json_object_set_new(o, "operator", json_string(b->operator_name));
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "ended", json_string(ended));
	json_object_set_new(o, "planned", json_integer(b->planned));
	json_object_set_new(o, "units", json_integer(b->units));
	json_object_set_new(o, "passed", json_integer(b->passed));
	json_object_set_new(o, "failed", json_integer(b->failed));
	json_array_append_new(list, o);
	return 0;
}

/* A JSON list a source filled (n: what the source returned); takes list. */
static enum MHD_Result reply_list(struct MHD_Connection *c, json_t *list, int n, const espl_error *err)
{
	char *text = n >= 0 ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	if (n < 0)
		return reply_db_error(c, err, n);
	return espl__web_reply_json_text(c, MHD_HTTP_OK, text);
}

static enum MHD_Result serve_batches(struct MHD_Connection *c, const espl_web_history *h)
{
	espl_error err = { 0, "" };
	json_t *list = json_array();
	return reply_list(c, list, h->batches(h->ctx, HISTORY_BATCHES, batch_json, list, &err), &err);
}

static void filter_from(struct MHD_Connection *c, espl_report_filter *f)
{
	memset(f, 0, sizeof *f);
	f->batch = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "batch");
	if (f->batch && !*f->batch)
		f->batch = NULL;
}

static enum MHD_Result serve_report(struct MHD_Connection *c, const espl_web_history *h)
{
	espl_report_filter f;
	espl_report r;
	espl_error err = { 0, "" };
	memout m;
	filter_from(c, &f);
	int rc = h->report(h->ctx, &f, &r, &err);
	if (rc < 0)
		return reply_db_error(c, &err, rc);
	if (memout_open(&m) < 0) {
		espl_report_free(&r);
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	rc = espl_report_print_json(m.f, &r);
	espl_report_free(&r);
	return espl__web_reply_json_text(c, MHD_HTTP_OK, memout_close(&m, rc == ESPL_OK));
}

static enum MHD_Result serve_export(struct MHD_Connection *c, const espl_web_history *h,
                                    enum espl_export_format format)
{
	espl_report_filter f;
	espl_error err = { 0, "" };
	memout m;
	filter_from(c, &f);
	if (memout_open(&m) < 0)
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	int n = h->export_units(h->ctx, &f, format, m.f, &err);
	size_t len;
	char *body = memout_close(&m, n >= 0);
	if (n < 0)
		return reply_db_error(c, &err, n);
	len = strlen(body);
	return espl__web_reply_owned(c, MHD_HTTP_OK, format == ESPL_EXPORT_CSV ? "text/csv; charset=utf-8"
	                                                             : "application/json; charset=utf-8",
	                   body, len);
}

/* The stations' latest state (a central source only), with "live" when the
 * newest unit ended less than STATION_LIVE_MS ago or its batch is open. */
static int station_json(const espl_central_station *st, void *user)
{
	json_t *list = user, *o = json_object();
	char started[32], last[32] = "";
	espl_report_format_time(st->batch_started_ms, started);
	if (st->last_unit_ms)
		espl_report_format_time(st->last_unit_ms, last);
	int64_t now = espl__wall_ms();
	int live = (st->last_unit_ms && now - st->last_unit_ms < STATION_LIVE_MS) ||
	           (!st->batch_ended_ms && now - st->batch_started_ms < STATION_LIVE_MS);
	json_object_set_new(o, "station", json_string(st->station));
	json_object_set_new(o, "host", json_string(st->host));
	json_object_set_new(o, "batch", json_string(st->batch));
	json_object_set_new(o, "recipe", json_string(st->recipe));
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "open", json_boolean(!st->batch_ended_ms));
	json_object_set_new(o, "planned", json_integer(st->planned));
	json_object_set_new(o, "units", json_integer(st->units));
	json_object_set_new(o, "passed", json_integer(st->passed));
	json_object_set_new(o, "failed", json_integer(st->failed));
	json_object_set_new(o, "last_unit", json_string(last));
	json_object_set_new(o, "live", json_boolean(live));
	json_array_append_new(list, o);
	return 0;
}

static enum MHD_Result serve_stations(struct MHD_Connection *c, const espl_web_history *h)
{
	if (!h->stations)
		return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "stations are listed only by espline serve --central");
	espl_error err = { 0, "" };
	json_t *list = json_array();
	return reply_list(c, list, h->stations(h->ctx, station_json, list, &err), &err);
}

enum MHD_Result espl__web_serve_db(espl_web *w, struct MHD_Connection *c, const char *url)
{
	const espl_web_history *h = &w->history;
	if (!h->batches)
		return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "this server has no history database");
	if (strcmp(url, "/api/batches") == 0)
		return serve_batches(c, h);
	if (strcmp(url, "/api/report") == 0)
		return serve_report(c, h);
	if (strcmp(url, "/api/history") == 0)
		return serve_history(c, h);
	if (strcmp(url, "/api/stations") == 0)
		return serve_stations(c, h);
	return serve_export(c, h, strcmp(url, "/api/export.csv") == 0 ? ESPL_EXPORT_CSV : ESPL_EXPORT_JSON);
}
