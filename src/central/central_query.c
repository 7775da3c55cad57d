/* central_query.c - reports against the central database; see
 * include/espline/central_query.h. */
#include "espline/central_query.h"
#include "record/report_export.h"
#include "record/chain.h"

#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Same columns, in the same order, as report.c's UNIT_SELECT with its
 * ident columns; column 26 is the unit's id, 27 the batch's operator, 28-31
 * slot, barcode, label and serial, 32 its steps as JSON when asked for. */
#define UNIT_SELECT                                                                    \
	"SELECT u.uuid, b.uuid, u.mac, u.chip_id, u.flash_id, u.manufacturer,"         \
	" u.flash_size, u.crystal_mhz, u.port, u.adapter_serial, u.adapter_location,"    \
	" u.started_ms, u.ended_ms, u.duration_ms, u.result, u.error_kind, u.error,"    \
	" b.name, s.name, s.host, r.name, r.sha256,"                                     \
	" (SELECT string_agg(i.name || '=' || i.sha256, ';' ORDER BY i.position)"       \
	"    FROM recipe_images AS i WHERE i.recipe_id = r.id),"                         \
	" u.repeat_of, u.seq, u.hash, u.id, b.operator, u.slot, u.barcode, u.label, u.serial"
#define STEPS_JSON                                                                     \
	", (SELECT json_agg(json_build_object('index', t.idx, 'kind', t.kind,"          \
	"    'address', t.address, 'length', t.length, 'expected_md5', t.expected_md5,"  \
	"    'actual_md5', t.actual_md5, 'bytes', t.bytes, 'duration_ms', t.duration_ms,"\
	"    'retries', t.retries, 'result', t.result, 'error', t.error,"                 \
	"    'detail', t.detail) ORDER BY t.idx)"                                          \
	"    FROM steps AS t WHERE t.unit_id = u.id)"
#define FROM_UNITS                                                                     \
	" FROM units AS u JOIN batches AS b ON b.id = u.batch_id"                      \
	" JOIN stations AS s ON s.id = b.station_id JOIN recipes AS r ON r.id = b.recipe_id"

static int q_fail(espl_error *err, PGconn *conn, const char *what)
{
	char msg[ESPL_ERROR_MAX];
	snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	return espl_fail(err, ESPL_EDB, "central database: %s: %s", what, msg);
}

static const char *pv(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t pi(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Build " WHERE true AND ..." for a filter, with its parameters. */
typedef struct filter_sql {
	char where[256];
	const char *values[2];
	char since[24];
	int n;
} filter_sql;

static void filter_build(const espl_report_filter *f, const char *extra, filter_sql *q)
{
	char part[96];
	memset(q, 0, sizeof *q);
	snprintf(q->where, sizeof q->where, " WHERE true");
	if (f && f->batch) {
		q->values[q->n++] = f->batch;
		snprintf(part, sizeof part, " AND b.name = $%d", q->n);
		strcat(q->where, part);
	}
	if (f && f->since_ms) {
		snprintf(q->since, sizeof q->since, "%" PRId64, f->since_ms);
		q->values[q->n++] = q->since;
		snprintf(part, sizeof part, " AND u.started_ms >= $%d::bigint", q->n);
		strcat(q->where, part);
	}
	if (extra)
		strncat(q->where, extra, sizeof q->where - strlen(q->where) - 1);
}

static void row_to_unit(const PGresult *r, int i, espl_report_unit *ru)
{
	espl_db_unit *u = &ru->unit;
	memset(ru, 0, sizeof *ru);
	snprintf(u->uuid, sizeof u->uuid, "%s", PQgetvalue(r, i, 0));
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s", PQgetvalue(r, i, 1));
	u->mac = pv(r, i, 2);
	u->chip_id = (uint32_t)pi(r, i, 3);
	u->flash_id = (uint32_t)pi(r, i, 4);
	u->manufacturer = pv(r, i, 5);
	u->flash_size = (uint32_t)pi(r, i, 6);
	u->crystal_mhz = (int)pi(r, i, 7);
	u->port = pv(r, i, 8);
	u->adapter_serial = pv(r, i, 9);
	u->adapter_location = pv(r, i, 10);
	u->started_ms = pi(r, i, 11);
	u->ended_ms = pi(r, i, 12);
	u->duration_ms = pi(r, i, 13);
	u->result = espl_db_result_parse(pv(r, i, 14));
	u->error_kind = pv(r, i, 15);
	u->error = pv(r, i, 16);
	ru->batch_name = pv(r, i, 17);
	ru->station = pv(r, i, 18);
	ru->host = pv(r, i, 19);
	ru->recipe = pv(r, i, 20);
	ru->recipe_sha256 = pv(r, i, 21);
	ru->images = pv(r, i, 22);
	ru->repeat_of = pv(r, i, 23);
	ru->seq = pi(r, i, 24);
	ru->hash = pv(r, i, 25);
	ru->operator_name = pv(r, i, 27);
	u->slot = pv(r, i, 28);
	u->barcode = pv(r, i, 29);
	u->label = pv(r, i, 30);
	u->serial = pv(r, i, 31);
	ru->serial = u->serial;
}

/* Steps from a json_agg column; strings point into *doc (json_decref it). */
static size_t steps_from_json(const char *text, json_t **doc, espl_db_step **out)
{
	*out = NULL;
	*doc = text ? json_loads(text, 0, NULL) : NULL;
	size_t n = json_array_size(*doc);
	if (!n)
		return 0;
	espl_db_step *v = calloc(n, sizeof *v);
	if (!v)
		return 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(*doc, i);
		v[i].index = (int)json_integer_value(json_object_get(o, "index"));
		v[i].kind = json_string_value(json_object_get(o, "kind"));
		v[i].address = (uint32_t)json_integer_value(json_object_get(o, "address"));
		v[i].length = (uint32_t)json_integer_value(json_object_get(o, "length"));
		v[i].expected_md5 = json_string_value(json_object_get(o, "expected_md5"));
		v[i].actual_md5 = json_string_value(json_object_get(o, "actual_md5"));
		v[i].bytes = (uint64_t)json_integer_value(json_object_get(o, "bytes"));
		v[i].duration_ms = json_integer_value(json_object_get(o, "duration_ms"));
		v[i].retries = (int)json_integer_value(json_object_get(o, "retries"));
		v[i].result = espl_db_result_parse(json_string_value(json_object_get(o, "result")));
		v[i].error = json_string_value(json_object_get(o, "error"));
		v[i].detail = json_string_value(json_object_get(o, "detail"));
	}
	*out = v;
	return n;
}

/* Stream a query row by row (single-row mode): constant memory for any
 * number of units.  row() returns non-zero to stop (that value returned). */
typedef int (*row_fn)(const PGresult *r, void *user);

static int stream(PGconn *conn, const char *sql, int n, const char *const *values, row_fn row,
		  void *user, espl_error *err)
{
	if (!PQsendQueryParams(conn, sql, n, NULL, values, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(conn))
		return q_fail(err, conn, "sending a query");
	PGresult *r;
	int rc = ESPL_OK, failed = 0;
	while ((r = PQgetResult(conn))) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_SINGLE_TUPLE && rc == 0)
			rc = row(r, user);
		else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && !failed) {
			failed = 1;
			rc = q_fail(err, conn, "reading units");
		}
		PQclear(r);
	}
	return rc;
}

/* ---- history ----------------------------------------------------------- */

typedef struct unit_ctx {
	espl_report_unit_cb cb;
	void *user;
	int n;
} unit_ctx;

static int history_row(const PGresult *r, void *user)
{
	unit_ctx *c = user;
	espl_report_unit ru;
	row_to_unit(r, 0, &ru);
	c->n++;
	return c->cb ? c->cb(&ru, c->user) : 0;
}

int espl_central_history(PGconn *conn, const char *key, espl_report_unit_cb cb, void *user,
			 espl_error *err)
{
	char norm[18];
	int by_mac = espl_db_normalize_mac(key, norm) == 0;
	if (!by_mac && (!key || !*key))
		return espl_fail(err, ESPL_EARG,
				 "'%s' is not a MAC address (expected e.g. 5c:cf:7f:01:02:03)",
				 key ? key : "");
	const char *v[] = { by_mac ? norm : key };
	unit_ctx c = { cb, user, 0 };
	int rc = stream(conn, by_mac ? UNIT_SELECT FROM_UNITS
			" WHERE u.mac = $1 ORDER BY u.started_ms DESC, u.id DESC"
			: UNIT_SELECT FROM_UNITS
			" WHERE u.barcode = $1 OR u.serial = $1 ORDER BY u.started_ms DESC, u.id DESC",
			1, v, history_row, &c, err);
	return rc < 0 ? rc : c.n;
}

/* ---- report ------------------------------------------------------------ */

static int query(PGconn *conn, const char *sql, const filter_sql *q, PGresult **out,
		 espl_error *err)
{
	PGresult *r = PQexecParams(conn, sql, q->n, NULL, q->values, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return q_fail(err, conn, "report query");
	}
	*out = r;
	return ESPL_OK;
}

#define COUNTS                                                                         \
	" count(*), count(*) FILTER (WHERE u.result = 'PASS'),"                        \
	" count(*) FILTER (WHERE u.result = 'FAIL'),"                                  \
	" count(*) FILTER (WHERE u.result IN ('INTERRUPTED', 'RUNNING'))"

static int totals(PGconn *conn, const espl_report_filter *f, espl_report *out, espl_error *err)
{
	filter_sql q;
	char sql[1024];
	PGresult *r;
	filter_build(f, NULL, &q);
	snprintf(sql, sizeof sql,
		 "SELECT" COUNTS ", count(u.repeat_of), coalesce(min(u.started_ms), 0),"
		 " coalesce(max(greatest(u.ended_ms, u.started_ms)), 0)" FROM_UNITS "%s",
		 q.where);
	ESPL_TRY(query(conn, sql, &q, &r, err));
	out->units = pi(r, 0, 0);
	out->passed = pi(r, 0, 1);
	out->failed = pi(r, 0, 2);
	out->interrupted = pi(r, 0, 3);
	out->repeats = pi(r, 0, 4);
	out->first_ms = pi(r, 0, 5);
	out->last_ms = pi(r, 0, 6);
	out->yield = (out->passed + out->failed)
			     ? (double)out->passed / (double)(out->passed + out->failed)
			     : 0.0;
	PQclear(r);
	return ESPL_OK;
}

static int durations(PGconn *conn, const espl_report_filter *f, espl_report *out,
		     espl_error *err)
{
	filter_sql q;
	char sql[1024];
	PGresult *r;
	filter_build(f, " AND u.result IN ('PASS', 'FAIL')", &q);
	snprintf(sql, sizeof sql, "SELECT u.duration_ms" FROM_UNITS "%s", q.where);
	ESPL_TRY(query(conn, sql, &q, &r, err));
	size_t n = (size_t)PQntuples(r);
	int64_t *v = malloc((n ? n : 1) * sizeof *v);
	if (!v) {
		PQclear(r);
		return espl_fail(err, ESPL_ENOMEM, "out of memory for %zu durations", n);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = pi(r, (int)i, 0);
	PQclear(r);
	espl_report_set_durations(out, v, n);
	free(v);
	return ESPL_OK;
}

/* key, total, passed, failed, interrupted[, example] -> groups.  Keys sort
 * byte-wise (COLLATE "C") as they do in SQLite. */
static int groups(PGconn *conn, const espl_report_filter *f, const char *key,
		  const char *example, const char *extra, const char *order,
		  espl_report_group **out, size_t *count, espl_error *err)
{
	filter_sql q;
	char sql[1536];
	PGresult *r;
	filter_build(f, extra, &q);
	snprintf(sql, sizeof sql, "SELECT * FROM (SELECT %s COLLATE \"C\" AS k," COUNTS "%s"
		 FROM_UNITS "%s GROUP BY 1) AS g ORDER BY %s",
		 key, example ? example : "", q.where, order);
	ESPL_TRY(query(conn, sql, &q, &r, err));
	size_t n = (size_t)PQntuples(r);
	espl_report_group *g = calloc(n ? n : 1, sizeof *g);
	if (!g) {
		PQclear(r);
		return espl_fail(err, ESPL_ENOMEM, "out of memory building the report");
	}
	for (size_t i = 0; i < n; i++) {
		int row = (int)i;
		g[i].key = strdup(pv(r, row, 0) ? pv(r, row, 0) : "");
		g[i].total = pi(r, row, 1);
		g[i].passed = pi(r, row, 2);
		g[i].failed = pi(r, row, 3);
		g[i].interrupted = pi(r, row, 4);
		g[i].yield = (g[i].passed + g[i].failed)
				     ? (double)g[i].passed / (double)(g[i].passed + g[i].failed)
				     : 0.0;
		if (example)
			g[i].example = strdup(pv(r, row, 5) ? pv(r, row, 5) : "");
	}
	PQclear(r);
	*out = g;
	*count = n;
	return ESPL_OK;
}

int espl_central_report(PGconn *conn, const espl_report_filter *f, espl_report *out,
			espl_error *err)
{
	memset(out, 0, sizeof *out);
	int rc = totals(conn, f, out, err);
	if (rc == 0)
		rc = durations(conn, f, out, err);
	if (rc == 0)
		rc = groups(conn, f, "coalesce(u.error_kind, 'unknown')",
			    ", min(u.error COLLATE \"C\")", " AND u.result = 'FAIL'", "2 DESC, 1",
			    &out->reasons, &out->n_reasons, err);
	if (rc == 0)
		rc = groups(conn, f, "coalesce(u.port, '')", NULL, NULL, "length(k), k",
			    &out->ports, &out->n_ports, err);
	if (rc == 0)
		rc = groups(conn, f,
			    "coalesce(nullif(u.adapter_serial, ''), nullif(u.adapter_location, ''), '')",
			    NULL, NULL, "1", &out->adapters, &out->n_adapters, err);
	if (rc == 0)
		rc = groups(conn, f, "coalesce(b.operator, '')", NULL, NULL, "1", &out->operators,
			    &out->n_operators, err);
	if (rc < 0)
		espl_report_free(out);
	return rc;
}

/* ---- export ------------------------------------------------------------ */

typedef struct export_ctx {
	FILE *out;
	int format;
	int64_t n;
} export_ctx;

static int export_row(const PGresult *r, void *user)
{
	export_ctx *c = user;
	espl_report_unit ru;
	espl_db_step *steps = NULL;
	json_t *doc = NULL;
	size_t n = 0;
	row_to_unit(r, 0, &ru);
	if (c->format == ESPL_EXPORT_JSON)
		n = steps_from_json(pv(r, 0, 32), &doc, &steps);
	int rc = espl_report_export_unit(c->out, c->format, c->n++, &ru, steps, n);
	free(steps);
	json_decref(doc);
	return rc;
}

int espl_central_export(PGconn *conn, const espl_report_filter *f, enum espl_export_format format, FILE *out,
			espl_error *err)
{
	filter_sql q;
	char sql[2048];
	export_ctx c = { out, format, 0 };
	if (format != ESPL_EXPORT_CSV && format != ESPL_EXPORT_JSON)
		return espl_fail(err, ESPL_EARG, "export format must be csv or json");
	filter_build(f, NULL, &q);
	snprintf(sql, sizeof sql, "%s%s" FROM_UNITS "%s ORDER BY u.started_ms, u.id", UNIT_SELECT,
		 format == ESPL_EXPORT_JSON ? STEPS_JSON : "", q.where);
	espl_report_export_header(out, format);
	int rc = stream(conn, sql, q.n, q.values, export_row, &c, err);
	if (rc == ESPL_ESYS)
		rc = espl_fail(err, ESPL_ESYS, "cannot write the export");
	if (rc < 0)
		return rc;
	return espl__report_export_finish(out, format, c.n, err);
}

/* ---- verify ------------------------------------------------------------ */

static int verify_batches(PGconn *conn, espl_central_verify_result *res, espl_error *err)
{
	PGresult *r = PQexec(conn,
			     "SELECT b.uuid, b.name, b.operator, b.started_ms, b.planned, b.hash,"
			     " s.name, s.host, s.version, r.name, r.sha256,"
			     " (SELECT json_agg(json_build_object('name', i.name, 'sha256', i.sha256)"
			     "   ORDER BY i.position) FROM recipe_images AS i WHERE i.recipe_id = r.id)"
			     " FROM batches AS b JOIN stations AS s ON s.id = b.station_id"
			     " JOIN recipes AS r ON r.id = b.recipe_id ORDER BY b.id");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return q_fail(err, conn, "reading batches");
	}
	for (int i = 0; i < PQntuples(r); i++) {
		espl_db_batch b = { .name = pv(r, i, 1), .operator_name = pv(r, i, 2),
				    .started_ms = pi(r, i, 3), .planned = (int)pi(r, i, 4) };
		snprintf(b.uuid, sizeof b.uuid, "%s", PQgetvalue(r, i, 0));
		espl_db_station st = { pv(r, i, 6), pv(r, i, 7), pv(r, i, 8) };
		json_t *doc = pv(r, i, 11) ? json_loads(pv(r, i, 11), 0, NULL) : NULL;
		size_t n = json_array_size(doc);
		espl_db_image *im = calloc(n ? n : 1, sizeof *im);
		for (size_t k = 0; im && k < n; k++) {
			im[k].name = json_string_value(json_object_get(json_array_get(doc, k), "name"));
			im[k].sha256 =
				json_string_value(json_object_get(json_array_get(doc, k), "sha256"));
		}
		espl_db_recipe rec = { .name = pv(r, i, 9), .sha256 = pv(r, i, 10), .images = im,
				       .n_images = im ? n : 0 };
		char want[ESPL_DB_HASH_SIZE];
		if (!im || espl_db_batch_hash(&st, &rec, &b, want) < 0) {
			free(im);
			json_decref(doc);
			PQclear(r);
			return espl_fail(err, ESPL_ENOMEM, "out of memory hashing batch %s", b.uuid);
		}
		if (strcmp(want, PQgetvalue(r, i, 5)) != 0 && res->ok) {
			res->ok = 0;
			snprintf(res->batch_problem, sizeof res->batch_problem,
				 "changed: batch '%s' (%s): its name, operator, station, recipe or "
				 "image hashes no longer match the batch hash",
				 b.name ? b.name : "", b.uuid);
		}
		free(im);
		json_decref(doc);
		res->batches_checked++;
	}
	PQclear(r);
	return ESPL_OK;
}

/* A unit row's expected hash: its fields and its steps (a JSON array). */
typedef struct unit_row {
	const PGresult *r;
	const espl_report_unit *ru;
} unit_row;

static int unit_row_hash(void *ctx, char want[ESPL_DB_HASH_SIZE])
{
	unit_row *row = ctx;
	espl_db_step *steps;
	json_t *doc;
	size_t n = steps_from_json(pv(row->r, 0, 32), &doc, &steps);
	int rc = espl_db_unit_hash(row->ru->seq, pv(row->r, 0, 33), pv(row->r, 0, 34),
				   &row->ru->unit, steps, n, want);
	free(steps);
	json_decref(doc);
	return rc;
}

/* Columns: UNIT_SELECT (0..31), steps (32), prev_hash (33), batch hash (34). */
static int walk_unit(const PGresult *r, void *user)
{
	espl__chain_walk *w = user;
	espl_report_unit ru;
	row_to_unit(r, 0, &ru);
	unit_row row = { r, &ru };
	return espl__chain_unit(w, ru.seq, ru.unit.uuid, ru.unit.mac, pv(r, 0, 33), ru.hash,
				unit_row_hash, &row);
}

static int verify_chain(PGconn *conn, espl_central_chain *ch, espl_error *err)
{
	espl__chain_walk w;
	espl__chain_start(&w, ESPL__CHAIN_SINK(ch));
	const char *v[] = { ch->origin };
	int rc = stream(conn, UNIT_SELECT STEPS_JSON ", u.prev_hash, b.hash" FROM_UNITS
			" WHERE u.origin = $1 ORDER BY u.seq, u.id",
			1, v, walk_unit, &w, err);
	if (rc == ESPL_ENOMEM) /* from walk_unit, which has no err to fill */
		return espl_fail(err, rc, "out of memory walking the chain of %s", ch->origin);
	ESPL_TRY(rc);
	ch->units_checked += w.units;
	espl__chain_end(&w, ch->head_seq, ch->head_hash, "the head the station reported");
	return ESPL_OK;
}

int espl_central_verify(PGconn *conn, void (*cb)(const espl_central_chain *, void *),
			void *user, espl_central_verify_result *res, espl_error *err)
{
	memset(res, 0, sizeof *res);
	res->ok = 1;
	/* One snapshot for the whole walk while senders keep writing. */
	PQclear(PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
	int rc = verify_batches(conn, res, err);
	PGresult *r = NULL;
	if (rc == 0) {
		r = PQexec(conn,
			   "SELECT o.uuid, o.head_seq, coalesce(o.head_hash, ''),"
			   " coalesce((SELECT s.name || '@' || s.host FROM batches AS b"
			   "   JOIN stations AS s ON s.id = b.station_id WHERE b.origin = o.uuid"
			   "   ORDER BY b.id DESC LIMIT 1), '?')"
			   " FROM origins AS o ORDER BY o.first_seen_ms, o.uuid");
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			rc = q_fail(err, conn, "reading the stations' chains");
	}
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		espl_central_chain ch = { .ok = 1 };
		snprintf(ch.origin, sizeof ch.origin, "%s", PQgetvalue(r, i, 0));
		ch.head_seq = pi(r, i, 1);
		snprintf(ch.head_hash, sizeof ch.head_hash, "%s", PQgetvalue(r, i, 2));
		snprintf(ch.station, sizeof ch.station, "%s", PQgetvalue(r, i, 3));
		rc = verify_chain(conn, &ch, err);
		if (rc == 0) {
			res->chains++;
			res->units_checked += ch.units_checked;
			if (!ch.ok)
				res->ok = 0;
			if (cb)
				cb(&ch, user);
		}
	}
	PQclear(r);
	PQclear(PQexec(conn, "COMMIT"));
	return rc;
}
