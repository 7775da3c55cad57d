/* report.c - history, reports and export; see include/espline/report.h. */
#include "espline/report.h"
#include "record/db_int.h"
#include "record/report_export.h"
#include "util/str.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const espl_export_columns[ESPL_EXPORT_NCOLUMNS + 1] = {
	"unit_uuid", "batch", "batch_uuid", "station", "host", "recipe", "recipe_sha256",
	"images", "mac", "chip_id", "flash_id", "manufacturer", "flash_size", "crystal_mhz",
	"port", "adapter_serial", "adapter_location", "started", "ended", "duration_ms",
	"result", "error_kind", "error", "repeat_of", "seq", "hash", "operator", "slot", "barcode",
	"label", "serial", NULL,
};

/* Tables every query joins; filters below add fixed clauses with bound values. */
#define FROM_UNITS                                                                   \
	" FROM units AS u JOIN batches AS b ON b.id = u.batch_id"                    \
	" JOIN stations AS s ON s.id = b.station_id JOIN recipes AS r ON r.id = b.recipe_id"

#define UNIT_SELECT                                                                  \
	"SELECT u.uuid, b.uuid, u.mac, u.chip_id, u.flash_id, u.manufacturer,"       \
	" u.flash_size, u.crystal_mhz, u.port, u.adapter_serial, u.adapter_location,"  \
	" u.started_ms, u.ended_ms, u.duration_ms, u.result, u.error_kind, u.error,"  \
	" b.name, s.name, s.host, r.name, r.sha256,"                                   \
	" (SELECT group_concat(x, ';') FROM (SELECT name || '=' || sha256 AS x"        \
	"    FROM recipe_images WHERE recipe_id = r.id ORDER BY position)),"           \
	" u.repeat_of, u.seq, u.hash, u.id, b.operator"

static int sql_fail(espl_db *db, espl_error *err, const char *what)
{
	return espl_fail(err, ESPL_EDB, "database %s: %s: %s", espl_db_filename(db), what,
			 sqlite3_errmsg(espl_db_sqlite(db)));
}

static const char *txt(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Prepare head + filter clauses + tail and bind the filter's values. */
static int prepare_filtered(espl_db *db, const char *head, const espl_report_filter *f,
			    const char *extra, const char *tail, sqlite3_stmt **out,
			    espl_error *err)
{
	char sql[3072];
	snprintf(sql, sizeof sql, "%s WHERE 1%s%s%s %s", head,
		 f && f->batch ? " AND b.name = :batch" : "",
		 f && f->since_ms ? " AND u.started_ms >= :since" : "", extra ? extra : "",
		 tail ? tail : "");
	if (sqlite3_prepare_v2(espl_db_sqlite(db), sql, -1, out, NULL) != SQLITE_OK)
		return sql_fail(db, err, "preparing a report query");
	int i;
	if (f && f->batch && (i = sqlite3_bind_parameter_index(*out, ":batch")))
		sqlite3_bind_text(*out, i, f->batch, -1, SQLITE_TRANSIENT);
	if (f && f->since_ms && (i = sqlite3_bind_parameter_index(*out, ":since")))
		sqlite3_bind_int64(*out, i, f->since_ms);
	return ESPL_OK;
}

static void row_to_report_unit(sqlite3_stmt *s, espl_report_unit *ru)
{
	espl_db_unit *u = &ru->unit;
	memset(ru, 0, sizeof *ru);
	snprintf(u->uuid, sizeof u->uuid, "%s", txt(s, 0) ? txt(s, 0) : "");
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s", txt(s, 1) ? txt(s, 1) : "");
	u->mac = txt(s, 2);
	u->chip_id = (uint32_t)sqlite3_column_int64(s, 3);
	u->flash_id = (uint32_t)sqlite3_column_int64(s, 4);
	u->manufacturer = txt(s, 5);
	u->flash_size = (uint32_t)sqlite3_column_int64(s, 6);
	u->crystal_mhz = sqlite3_column_int(s, 7);
	u->port = txt(s, 8);
	u->adapter_serial = txt(s, 9);
	u->adapter_location = txt(s, 10);
	u->started_ms = sqlite3_column_int64(s, 11);
	u->ended_ms = sqlite3_column_int64(s, 12);
	u->duration_ms = sqlite3_column_int64(s, 13);
	u->result = espl_db_result_parse(txt(s, 14));
	u->error_kind = txt(s, 15);
	u->error = txt(s, 16);
	ru->batch_name = txt(s, 17);
	ru->station = txt(s, 18);
	ru->host = txt(s, 19);
	ru->recipe = txt(s, 20);
	ru->recipe_sha256 = txt(s, 21);
	ru->images = txt(s, 22);
	ru->repeat_of = txt(s, 23);
	ru->seq = sqlite3_column_int64(s, 24);
	ru->hash = txt(s, 25);
	ru->operator_name = txt(s, 27);
	u->slot = txt(s, 28);     /* espl__db_unit_ident_cols */
	u->barcode = txt(s, 29);
	u->label = txt(s, 30);
	u->serial = txt(s, 31);
	/* espl__db_unit_serial_col (also a v5/v6 database's), then espl__db_unit_details_col */
	ru->serial = sqlite3_column_count(s) > 32 ? txt(s, 32) : NULL;
	ru->details = sqlite3_column_count(s) > 33 ? txt(s, 33) : NULL;
	ru->events = sqlite3_column_count(s) > 34 ? txt(s, 34) : NULL;  /* espl__db_unit_events_col */
}

/* Step s, handing each row to cb; returns rows seen or a negative code. */
static int each_unit(espl_db *db, sqlite3_stmt *s, espl_report_unit_cb cb, void *user,
		     espl_error *err)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		espl_report_unit ru;
		row_to_report_unit(s, &ru);
		n++;
		int stop = cb ? cb(&ru, user) : 0;
		if (stop)
			return stop;
	}
	if (rc != SQLITE_DONE)
		return sql_fail(db, err, "reading units");
	return n;
}

int espl_report_history(espl_db *db, const char *key, espl_report_unit_cb cb, void *user,
			espl_error *err)
{
	char norm[18];
	sqlite3_stmt *s;
	/* not a MAC: a scanned code (schema v6) or a serial number (v5) */
	int by_mac = espl_db_normalize_mac(key, norm) == 0;
	int version = espl_db_schema_version(db);
	if (!by_mac && (!key || !*key || version < 5))
		return espl_fail(err, ESPL_EARG,
				 "'%s' is not a MAC address (expected e.g. 5c:cf:7f:01:02:03)%s",
				 key ? key : "", key && *key ? " and this database has no serial numbers nor scanned codes" : "");
	char sql[2048];
	snprintf(sql, sizeof sql, "%s%s%s%s%s%s WHERE %s ORDER BY u.started_ms DESC, u.id DESC",
		 UNIT_SELECT, espl__db_unit_ident_cols(db), espl__db_unit_serial_col(db), espl__db_unit_details_col(db),
		 espl__db_unit_events_col, FROM_UNITS,
		 by_mac ? "u.mac = ?1"
		 : version >= 8 ? "(u.barcode = ?1 OR u.serial = ?1 OR u.uuid IN (SELECT unit_uuid FROM unit_identity WHERE serial = ?1))"
		 : version >= 6 ? "(u.barcode = ?1 OR u.uuid IN (SELECT unit_uuid FROM unit_identity WHERE serial = ?1))"
		                : "u.uuid IN (SELECT unit_uuid FROM unit_identity WHERE serial = ?1)");
	if (sqlite3_prepare_v2(espl_db_sqlite(db), sql, -1, &s, NULL) != SQLITE_OK)
		return sql_fail(db, err, "preparing the history query");
	sqlite3_bind_text(s, 1, by_mac ? norm : key, -1, SQLITE_TRANSIENT);
	int rc = each_unit(db, s, cb, user, err);
	sqlite3_finalize(s);
	return rc;
}

/* ---- report ------------------------------------------------------------ */

static double yield_of(int64_t passed, int64_t failed)
{
	return (passed + failed) ? (double)passed / (double)(passed + failed) : 0.0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static int64_t percentile(const int64_t *v, size_t n, int p)
{
	if (!n)
		return 0;
	size_t rank = ((size_t)p * n + 99) / 100;
	return v[rank ? rank - 1 : 0];
}

static int totals(espl_db *db, const espl_report_filter *f, espl_report *r, espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_filtered(db,
				  "SELECT count(*), sum(u.result = 'PASS'), sum(u.result = 'FAIL'),"
				  " sum(u.result IN ('INTERRUPTED', 'RUNNING')), count(u.repeat_of),"
				  " min(u.started_ms), max(max(u.ended_ms), u.started_ms)" FROM_UNITS,
				  f, NULL, NULL, &s, err));
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->units = sqlite3_column_int64(s, 0);
		r->passed = sqlite3_column_int64(s, 1);
		r->failed = sqlite3_column_int64(s, 2);
		r->interrupted = sqlite3_column_int64(s, 3);
		r->repeats = sqlite3_column_int64(s, 4);
		r->first_ms = sqlite3_column_int64(s, 5);
		r->last_ms = sqlite3_column_int64(s, 6);
		r->yield = yield_of(r->passed, r->failed);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? ESPL_OK : sql_fail(db, err, "counting units");
}

static int durations(espl_db *db, const espl_report_filter *f, espl_report *r, espl_error *err)
{
	sqlite3_stmt *s;
	ESPL_TRY(prepare_filtered(db, "SELECT u.duration_ms" FROM_UNITS, f,
				  " AND u.result IN ('PASS', 'FAIL')", NULL, &s, err));
	size_t n = 0, cap = (size_t)(r->passed + r->failed) + 1;
	int64_t *v = malloc(cap * sizeof *v), sum = 0;
	int rc = SQLITE_DONE;
	if (!v) {
		sqlite3_finalize(s);
		return espl_fail(err, ESPL_ENOMEM, "out of memory for %zu durations", cap);
	}
	while (n < cap && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		v[n] = sqlite3_column_int64(s, 0);
		sum += v[n++];
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		free(v);
		return sql_fail(db, err, "reading durations");
	}
	(void)sum;
	espl_report_set_durations(r, v, n);
	free(v);
	return ESPL_OK;
}

void espl_report_set_durations(espl_report *r, int64_t *v, size_t n)
{
	int64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof *v, cmp_i64);
	r->timed = (int64_t)n;
	r->p50_ms = percentile(v, n, 50);
	r->p90_ms = percentile(v, n, 90);
	r->p99_ms = percentile(v, n, 99);
	r->max_ms = n ? v[n - 1] : 0;
	r->mean_ms = n ? sum / (int64_t)n : 0;
}

static char *dup_text(const char *s)
{
	return strdup(s ? s : "");
}

/* Run a "key, total, passed, failed, interrupted[, example]" query into groups. */
static int groups(espl_db *db, sqlite3_stmt *s, int with_example, espl_report_group **out,
		  size_t *count, espl_error *err)
{
	size_t n = 0, cap = 0;
	espl_report_group *g = NULL;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			void *grown = realloc(g, cap * sizeof *g);
			if (!grown)
				break;
			g = grown;
		}
		espl_report_group *x = &g[n++];
		memset(x, 0, sizeof *x);
		x->key = dup_text(txt(s, 0));
		x->total = sqlite3_column_int64(s, 1);
		x->passed = sqlite3_column_int64(s, 2);
		x->failed = sqlite3_column_int64(s, 3);
		x->interrupted = sqlite3_column_int64(s, 4);
		x->yield = yield_of(x->passed, x->failed);
		if (with_example)
			x->example = dup_text(txt(s, 5));
	}
	sqlite3_finalize(s);
	*out = g;
	*count = n;
	if (rc == SQLITE_ROW)
		return espl_fail(err, ESPL_ENOMEM, "out of memory building the report");
	if (rc != SQLITE_DONE)
		return sql_fail(db, err, "grouping units");
	return ESPL_OK;
}

#define GROUP_COUNTS                                                           \
	", count(*), sum(u.result = 'PASS'), sum(u.result = 'FAIL'),"          \
	" sum(u.result IN ('INTERRUPTED', 'RUNNING'))"

int espl_report_build(espl_db *db, const espl_report_filter *f, espl_report *r, espl_error *err)
{
	sqlite3_stmt *s;
	memset(r, 0, sizeof *r);
	int rc = totals(db, f, r, err);
	if (rc == 0)
		rc = durations(db, f, r, err);
	if (rc == 0)
		rc = prepare_filtered(db, "SELECT coalesce(u.error_kind, 'unknown')" GROUP_COUNTS
				      ", min(u.error)" FROM_UNITS,
				      f, " AND u.result = 'FAIL'", "GROUP BY 1 ORDER BY 2 DESC, 1", &s,
				      err);
	if (rc == 0)
		rc = groups(db, s, 1, &r->reasons, &r->n_reasons, err);
	if (rc == 0)
		rc = prepare_filtered(db, "SELECT coalesce(u.port, '') AS k" GROUP_COUNTS FROM_UNITS, f,
				      NULL, "GROUP BY 1 ORDER BY length(k), k", &s, err);
	if (rc == 0)
		rc = groups(db, s, 0, &r->ports, &r->n_ports, err);
	if (rc == 0)
		rc = prepare_filtered(db,
				      "SELECT coalesce(nullif(u.adapter_serial, ''),"
				      " nullif(u.adapter_location, ''), '')" GROUP_COUNTS FROM_UNITS,
				      f, NULL, "GROUP BY 1 ORDER BY 1", &s, err);
	if (rc == 0)
		rc = groups(db, s, 0, &r->adapters, &r->n_adapters, err);
	if (rc == 0)
		rc = prepare_filtered(db, "SELECT coalesce(b.operator, '')" GROUP_COUNTS FROM_UNITS, f, NULL,
				      "GROUP BY 1 ORDER BY 1", &s, err);
	if (rc == 0)
		rc = groups(db, s, 0, &r->operators, &r->n_operators, err);
	if (rc < 0)
		espl_report_free(r);
	return rc;
}

static void free_groups(espl_report_group *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(g[i].key);
		free(g[i].example);
	}
	free(g);
}

void espl_report_free(espl_report *r)
{
	if (!r)
		return;
	free_groups(r->reasons, r->n_reasons);
	free_groups(r->ports, r->n_ports);
	free_groups(r->adapters, r->n_adapters);
	free_groups(r->operators, r->n_operators);
	memset(r, 0, sizeof *r);
}

static void print_groups(FILE *out, const char *title, const espl_report_group *g, size_t n)
{
	if (!n)
		return;
	fprintf(out, "\n%-24s %7s %7s %7s %7s %7s\n", title, "units", "pass", "fail", "intr",
		"yield");
	char key[256];
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%-24s %7" PRId64 " %7" PRId64 " %7" PRId64 " %7" PRId64 " %6.1f%%\n",
			g[i].key[0] ? espl__str_escape(g[i].key, key, sizeof key) : "(none)", g[i].total, g[i].passed, g[i].failed,
			g[i].interrupted, 100.0 * g[i].yield);
}

int espl_report_print(FILE *out, const espl_report *r)
{
	char first[32], last[32];
	espl_report_format_time(r->first_ms, first);
	espl_report_format_time(r->last_ms, last);
	fprintf(out, "units        %" PRId64 "  (%s .. %s)\n", r->units, r->units ? first : "-",
		r->units ? last : "-");
	fprintf(out, "passed       %" PRId64 "\nfailed       %" PRId64 "\n", r->passed, r->failed);
	fprintf(out, "interrupted  %" PRId64 "  (includes units still running)\n",
		r->interrupted);
	fprintf(out, "yield        %.2f%%  (passed / (passed + failed))\n", 100.0 * r->yield);
	if (r->repeats)
		fprintf(out, "repeats      %" PRId64 "  (MACs that had already passed, in any batch)\n",
			r->repeats);
	fprintf(out,
		"time/unit    p50 %.1f s  p90 %.1f s  p99 %.1f s  mean %.1f s  max %.1f s  "
		"(%" PRId64 " completed units)\n",
		r->p50_ms / 1000.0, r->p90_ms / 1000.0, r->p99_ms / 1000.0, r->mean_ms / 1000.0,
		r->max_ms / 1000.0, r->timed);
	if (r->n_reasons) {
		fprintf(out, "\nfailures by reason\n");
		char key[256], example[1024];
		for (size_t i = 0; i < r->n_reasons; i++)
			fprintf(out, "  %-20s %7" PRId64 "   e.g. %s\n",
				espl__str_escape(r->reasons[i].key, key, sizeof key), r->reasons[i].total,
				espl__str_escape(r->reasons[i].example, example, sizeof example));
	}
	print_groups(out, "port", r->ports, r->n_ports);
	print_groups(out, "adapter", r->adapters, r->n_adapters);
	print_groups(out, "operator", r->operators, r->n_operators);
	return ferror(out) ? ESPL_ESYS : ESPL_OK;
}

static json_t *groups_json(const espl_report_group *g, size_t n, int with_example)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:f}", "key", g[i].key, "units",
				      (json_int_t)g[i].total, "passed", (json_int_t)g[i].passed,
				      "failed", (json_int_t)g[i].failed, "interrupted",
				      (json_int_t)g[i].interrupted, "yield", g[i].yield);
		if (with_example)
			json_object_set_new(o, "example", json_string(g[i].example));
		json_array_append_new(a, o);
	}
	return a;
}

int espl_report_print_json(FILE *out, const espl_report *r)
{
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:{s:I,s:I,s:I,s:I,s:I,s:I}}", "units",
			      (json_int_t)r->units, "passed", (json_int_t)r->passed, "failed",
			      (json_int_t)r->failed, "interrupted", (json_int_t)r->interrupted,
			      "repeats", (json_int_t)r->repeats, "yield", r->yield, "time_per_unit_ms",
			      "completed", (json_int_t)r->timed, "p50", (json_int_t)r->p50_ms, "p90",
			      (json_int_t)r->p90_ms, "p99", (json_int_t)r->p99_ms, "mean",
			      (json_int_t)r->mean_ms, "max", (json_int_t)r->max_ms);
	if (!o)
		return ESPL_ENOMEM;
	json_object_set_new(o, "failures_by_reason", groups_json(r->reasons, r->n_reasons, 1));
	json_object_set_new(o, "ports", groups_json(r->ports, r->n_ports, 0));
	json_object_set_new(o, "adapters", groups_json(r->adapters, r->n_adapters, 0));
	json_object_set_new(o, "operators", groups_json(r->operators, r->n_operators, 0));
	int rc = json_dumpf(o, out, JSON_INDENT(2));
	json_decref(o);
	fputc('\n', out);
	return rc == 0 && !ferror(out) ? ESPL_OK : ESPL_ESYS;
}

/* ---- export ------------------------------------------------------------ */

/* The export columns of one row, as text ("" for NULL). */
typedef struct export_row {
	char chip[16], flash[16], size[24], crystal[16], started[32], ended[32], dur[24],
		seq[24];
	const char *v[ESPL_EXPORT_NCOLUMNS];
} export_row;

static const char *nz(const char *s)
{
	return s ? s : "";
}

static void export_fields(const espl_report_unit *ru, export_row *x)
{
	const espl_db_unit *u = &ru->unit;
	snprintf(x->chip, sizeof x->chip, "0x%08" PRIx32, u->chip_id);
	snprintf(x->flash, sizeof x->flash, "0x%06" PRIx32, u->flash_id);
	snprintf(x->size, sizeof x->size, "%" PRIu32, u->flash_size);
	snprintf(x->crystal, sizeof x->crystal, "%d", u->crystal_mhz);
	espl_report_format_time(u->started_ms, x->started);
	x->ended[0] = '\0';
	if (u->ended_ms)
		espl_report_format_time(u->ended_ms, x->ended);
	snprintf(x->dur, sizeof x->dur, "%" PRId64, u->duration_ms);
	x->seq[0] = '\0';
	if (ru->seq)
		snprintf(x->seq, sizeof x->seq, "%" PRId64, ru->seq);
	const char *v[ESPL_EXPORT_NCOLUMNS] = {
		u->uuid, nz(ru->batch_name), u->batch_uuid, nz(ru->station), nz(ru->host),
		nz(ru->recipe), nz(ru->recipe_sha256), nz(ru->images), nz(u->mac), x->chip,
		x->flash, nz(u->manufacturer), x->size, x->crystal, nz(u->port),
		nz(u->adapter_serial), nz(u->adapter_location), x->started, x->ended, x->dur,
		espl_db_result_name(u->result), nz(u->error_kind), nz(u->error),
		nz(ru->repeat_of), x->seq, nz(ru->hash), nz(ru->operator_name), nz(u->slot),
		nz(u->barcode), nz(u->label), nz(ru->serial),
	};
	memcpy(x->v, v, sizeof v);
}

/* The JSON type of an export column (docs/json-schema.md): counts and sizes
 * are numbers, seq is a number or null while the unit is not sealed; ids
 * (chip_id, flash_id) stay hex text, as everywhere else; the rest is text. */
static json_t *export_json_value(const char *column, const char *text)
{
	static const char *const numbers[] = { "flash_size", "crystal_mhz", "duration_ms", "seq" };
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
		if (strcmp(column, numbers[i]) == 0)
			return *text ? json_integer(strtoll(text, NULL, 10)) : json_null();
	return json_string(text);
}

static void csv_field(FILE *out, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

typedef struct export_ctx {
	FILE *out;
	int64_t n;
	sqlite3_stmt *steps;
} export_ctx;

static int export_csv(const espl_report_unit *ru, void *user)
{
	export_ctx *c = user;
	int rc = espl_report_export_unit(c->out, ESPL_EXPORT_CSV, c->n, ru, NULL, 0);
	c->n++;
	return rc;
}

static json_t *step_json(const espl_db_step *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "index", json_integer(st->index));
	json_object_set_new(o, "kind", json_string(nz(st->kind)));
	json_object_set_new(o, "address", json_integer(st->address));
	json_object_set_new(o, "length", json_integer(st->length));
	json_object_set_new(o, "expected_md5", json_string(nz(st->expected_md5)));
	json_object_set_new(o, "actual_md5", json_string(nz(st->actual_md5)));
	json_object_set_new(o, "bytes", json_integer((json_int_t)st->bytes));
	json_object_set_new(o, "duration_ms", json_integer(st->duration_ms));
	json_object_set_new(o, "retries", json_integer(st->retries));
	json_object_set_new(o, "result", json_string(espl_db_result_name(st->result)));
	json_object_set_new(o, "error", json_string(nz(st->error)));
	if (st->detail)
		json_object_set_new(o, "detail", json_string(st->detail));
	return o;
}

void espl_report_export_header(FILE *out, enum espl_export_format format)
{
	if (format == ESPL_EXPORT_CSV) {
		for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++)
			fprintf(out, "%s%s", i ? "," : "", espl_export_columns[i]);
		fputs("\r\n", out);
	} else {
		fputs("[", out);
	}
}

void espl_report_export_footer(FILE *out, enum espl_export_format format, int64_t count)
{
	if (format == ESPL_EXPORT_JSON)
		fputs(count ? "\n]\n" : "]\n", out);
}

int espl__report_export_finish(FILE *out, enum espl_export_format format, int64_t count, espl_error *err)
{
	espl_report_export_footer(out, format, count);
	if (fflush(out) != 0 || ferror(out))
		return espl_fail(err, ESPL_ESYS, "cannot write the export");
	return (int)(count > INT32_MAX ? INT32_MAX : count);
}

int espl_report_export_unit(FILE *out, enum espl_export_format format, int64_t index, const espl_report_unit *ru,
			    const espl_db_step *steps, size_t n_steps)
{
	export_row x;
	export_fields(ru, &x);
	if (format == ESPL_EXPORT_CSV) {
		for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++) {
			if (i)
				fputc(',', out);
			csv_field(out, x.v[i]);
		}
		fputs("\r\n", out);
		return ferror(out) ? ESPL_ESYS : ESPL_OK;
	}
	json_t *o = json_object();
	for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++)
		json_object_set_new(o, espl_export_columns[i], export_json_value(espl_export_columns[i], x.v[i]));
	json_t *a = json_array();
	for (size_t i = 0; i < n_steps; i++)
		json_array_append_new(a, step_json(&steps[i]));
	json_object_set_new(o, "steps", a);
	if (ru->events) {  /* the local database's: "TIME  KIND  MESSAGE" lines */
		json_t *ev = json_array();
		for (const char *p = ru->events; *p;) {
			size_t n = strcspn(p, "\n");
			json_array_append_new(ev, json_stringn(p, n));
			p += n + (p[n] == '\n');
		}
		json_object_set_new(o, "events", ev);
	}
	fputs(index ? ",\n" : "\n", out);
	int d = json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return d != 0 || ferror(out) ? ESPL_ESYS : ESPL_OK;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The steps of one unit, copied out of the statement's rows. */
static size_t load_steps(sqlite3_stmt *s, int64_t unit_id, espl_db_step **out)
{
	size_t n = 0, cap = 0;
	espl_db_step *v = NULL;
	sqlite3_bind_int64(s, 1, unit_id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			void *g = realloc(v, cap * sizeof *v);
			if (!g)
				break;
			v = g;
		}
		espl_db_step *st = &v[n++];
		memset(st, 0, sizeof *st);
		st->index = sqlite3_column_int(s, 0);
		st->kind = dup_or_null(txt(s, 1));
		st->address = (uint32_t)sqlite3_column_int64(s, 2);
		st->length = (uint32_t)sqlite3_column_int64(s, 3);
		st->expected_md5 = dup_or_null(txt(s, 4));
		st->actual_md5 = dup_or_null(txt(s, 5));
		st->bytes = (uint64_t)sqlite3_column_int64(s, 6);
		st->duration_ms = sqlite3_column_int64(s, 7);
		st->retries = sqlite3_column_int(s, 8);
		st->result = espl_db_result_parse(txt(s, 9));
		st->error = dup_or_null(txt(s, 10));
		st->detail = dup_or_null(txt(s, 11));
	}
	sqlite3_reset(s);
	*out = v;
	return n;
}

static void free_steps(espl_db_step *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((void *)v[i].kind);
		free((void *)v[i].expected_md5);
		free((void *)v[i].actual_md5);
		free((void *)v[i].error);
		free((void *)v[i].detail);
	}
	free(v);
}

/* JSON needs each unit's row id for its steps; the callback only sees
 * espl_report_unit, so this loop reads the id itself. */
static int export_json_rows(espl_db *db, sqlite3_stmt *s, export_ctx *c, espl_error *err)
{
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		espl_report_unit ru;
		espl_db_step *steps;
		row_to_report_unit(s, &ru);
		/* Column 26 of UNIT_SELECT is the unit's row id. */
		size_t n = load_steps(c->steps, sqlite3_column_int64(s, 26), &steps);
		int d = espl_report_export_unit(c->out, ESPL_EXPORT_JSON, c->n, &ru, steps, n);
		free_steps(steps, n);
		c->n++;
		if (d != 0)
			return espl_fail(err, ESPL_ESYS, "cannot write the export");
	}
	if (rc != SQLITE_DONE)
		return sql_fail(db, err, "reading units");
	return ESPL_OK;
}

int espl_report_export(espl_db *db, const espl_report_filter *f, enum espl_export_format format, FILE *out,
		       espl_error *err)
{
	sqlite3_stmt *s;
	export_ctx c = { .out = out };
	if (format != ESPL_EXPORT_CSV && format != ESPL_EXPORT_JSON)
		return espl_fail(err, ESPL_EARG, "export format must be csv or json");
	char head[2048], steps_sql[512];
	snprintf(head, sizeof head, "%s%s%s%s%s%s", UNIT_SELECT, espl__db_unit_ident_cols(db),
		 espl__db_unit_serial_col(db), espl__db_unit_details_col(db), espl__db_unit_events_col, FROM_UNITS);
	ESPL_TRY(prepare_filtered(db, head, f, NULL, "ORDER BY u.seq IS NULL, u.seq, u.started_ms, u.id", &s, err));
	int rc;
	espl_report_export_header(out, format);
	if (format == ESPL_EXPORT_CSV) {
		rc = each_unit(db, s, export_csv, &c, err);
		if (rc == ESPL_ESYS)
			rc = espl_fail(err, ESPL_ESYS, "cannot write the export");
	} else {
		snprintf(steps_sql, sizeof steps_sql,
			 "SELECT idx, kind, address, length, expected_md5, actual_md5,"
			 " bytes, duration_ms, retries, result, error, %s FROM steps"
			 " WHERE unit_id = ?1 ORDER BY idx", espl__db_step_detail_col(db));
		if (sqlite3_prepare_v2(espl_db_sqlite(db), steps_sql, -1, &c.steps, NULL) != SQLITE_OK) {
			sqlite3_finalize(s);
			return sql_fail(db, err, "preparing the steps query");
		}
		rc = export_json_rows(db, s, &c, err);
		sqlite3_finalize(c.steps);
	}
	sqlite3_finalize(s);
	if (rc < 0)
		return rc;
	return espl__report_export_finish(out, format, c.n, err);
}
