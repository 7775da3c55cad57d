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

static int open_history(espl_web *w, espl_db **db, espl_error *err)
{
	espl_db_options o = { .path = w->db_path, .read_only = 1, .busy_timeout_ms = 2000 };
	return espl_db_open(db, &o, err);
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

static enum MHD_Result serve_history(struct MHD_Connection *c, espl_db *db)
{
	const char *mac = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mac");
	char norm[18];
	if (!mac || espl_db_normalize_mac(mac, norm) < 0)
		return espl__web_reply_error(c, MHD_HTTP_BAD_REQUEST, "mac=AA:BB:CC:DD:EE:FF is needed");
	memout m;
	espl_error err = { 0, "" };
	if (memout_open(&m) < 0)
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	history_out ctx = { m.f, 0 };
	espl_report_export_header(m.f, ESPL_EXPORT_JSON);
	int n = espl_report_history(db, norm, history_unit, &ctx, &err);
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

static enum MHD_Result serve_batches(struct MHD_Connection *c, espl_db *db)
{
	espl_error err = { 0, "" };
	json_t *list = json_array();
	int n = espl_report_batches(db, HISTORY_BATCHES, batch_json, list, &err);
	char *text = n >= 0 ? json_dumps(list, JSON_COMPACT) : NULL;
	json_decref(list);
	if (n < 0)
		return reply_db_error(c, &err, n);
	return espl__web_reply_json_text(c, MHD_HTTP_OK, text);
}

static void filter_from(struct MHD_Connection *c, espl_report_filter *f)
{
	memset(f, 0, sizeof *f);
	f->batch = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "batch");
	if (f->batch && !*f->batch)
		f->batch = NULL;
}

static enum MHD_Result serve_report(struct MHD_Connection *c, espl_db *db)
{
	espl_report_filter f;
	espl_report r;
	espl_error err = { 0, "" };
	memout m;
	filter_from(c, &f);
	int rc = espl_report_build(db, &f, &r, &err);
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

static enum MHD_Result serve_export(struct MHD_Connection *c, espl_db *db, int format)
{
	espl_report_filter f;
	espl_error err = { 0, "" };
	memout m;
	filter_from(c, &f);
	if (memout_open(&m) < 0)
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	int n = espl_report_export(db, &f, format, m.f, &err);
	size_t len;
	char *body = memout_close(&m, n >= 0);
	if (n < 0)
		return reply_db_error(c, &err, n);
	len = strlen(body);
	return espl__web_reply_owned(c, MHD_HTTP_OK, format == ESPL_EXPORT_CSV ? "text/csv; charset=utf-8"
	                                                             : "application/json; charset=utf-8",
	                   body, len);
}

enum MHD_Result espl__web_serve_db(espl_web *w, struct MHD_Connection *c, const char *url)
{
	espl_db *db;
	espl_error err = { 0, "" };
	if (!w->db_path)
		return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "this server has no history database");
	int rc = open_history(w, &db, &err);
	if (rc < 0)
		return reply_db_error(c, &err, rc);
	enum MHD_Result r;
	if (strcmp(url, "/api/batches") == 0)
		r = serve_batches(c, db);
	else if (strcmp(url, "/api/report") == 0)
		r = serve_report(c, db);
	else if (strcmp(url, "/api/history") == 0)
		r = serve_history(c, db);
	else if (strcmp(url, "/api/export.csv") == 0)
		r = serve_export(c, db, ESPL_EXPORT_CSV);
	else
		r = serve_export(c, db, ESPL_EXPORT_JSON);
	espl_db_close(db);
	return r;
}
