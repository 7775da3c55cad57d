/* test_report.c - history, batch reports and CSV/JSON export round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "espline/db.h"
#include "espline/report.h"

#include "db_records.h"

#define N_B1 100
#define N_B2 10
#define N_UNITS (N_B1 + N_B2)
#define T0 1764000000000LL /* 2025-11-24T16:00:00Z */

/* Awkward text on purpose: CSV must quote commas, quotes and newlines. */
static const char *const awkward_error =
	"verify 0x1000: MD5 mismatch, \"expected\" 0f00\nsecond line; caf\xc3\xa9";

typedef struct source {
	espl_db_unit unit;
	char mac[18], port[24], serial[16], location[16];
	const char *batch;
	int steps; /* 3 when completed, 0 when still running */
} source;

typedef struct fx {
	char dir[64], path[128];
	espl_db *db;
	source units[N_UNITS + 1];
	int n;
} fx;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static void step_set(espl_db_step st[3], const espl_db_unit *u)
{
	static const char *kinds[] = { "erase", "write", "verify" };
	for (int i = 0; i < 3; i++)
		st[i] = (espl_db_step){ .index = i, .kind = kinds[i], .address = 0x1000u * (uint32_t)i,
					.length = 4096u << i, .bytes = 1000u + (uint64_t)i,
					.duration_ms = 10 * i, .retries = i, .result = ESPL_DB_PASS };
	st[2].expected_md5 = "0123456789abcdef0123456789abcdef";
	st[2].actual_md5 = u->result == ESPL_DB_PASS ? st[2].expected_md5
						      : "fedcba9876543210fedcba9876543210";
	st[2].result = u->result == ESPL_DB_PASS ? ESPL_DB_PASS : ESPL_DB_FAIL;
	st[2].error = u->result == ESPL_DB_PASS ? NULL : u->error;
}

static void add_unit(fx *f, const espl_db_batch *b, int i, int64_t started, int64_t dur_ms,
		     int result)
{
	espl_error err;
	source *s = &f->units[f->n++];
	espl_db_unit *u = &s->unit;
	memset(s, 0, sizeof *s);
	assert_int_equal(espl_db_uuid(u->uuid, &err), 0);
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s", b->uuid);
	snprintf(s->mac, sizeof s->mac, "5c:cf:7f:00:00:%02x", i % 100);
	snprintf(s->port, sizeof s->port, "/dev/ttyUSB%d", i % 4);
	if (i % 4 != 3) /* the adapter on port 3 reports no serial number */
		snprintf(s->serial, sizeof s->serial, "S%d", i % 4);
	snprintf(s->location, sizeof s->location, "1-1.%d", i % 4);
	s->batch = b->name;
	u->mac = s->mac;
	u->chip_id = 0xa0000000u + (uint32_t)i;
	u->flash_id = 0x1640ef;
	u->manufacturer = "Winbond";
	u->flash_size = 4u << 20;
	u->crystal_mhz = 26;
	u->port = s->port;
	u->adapter_serial = s->serial;
	u->adapter_location = s->location;
	u->started_ms = started;
	u->result = result;
	if (result == ESPL_DB_RUNNING) {
		assert_int_equal(espl_db_begin_unit(f->db, u, &err), 0);
		return;
	}
	u->duration_ms = dur_ms;
	u->ended_ms = started + dur_ms;
	if (result == ESPL_DB_FAIL) {
		u->error_kind = i % 10 == 0 ? "timeout" : "mismatch";
		u->error = i % 10 == 0 ? "erase: no response in 10 s" : awkward_error;
	}
	espl_db_step st[3];
	step_set(st, u);
	s->steps = 3;
	int rc = espl_db_end_unit(f->db, u, st, 3, NULL, &err);
	if (rc)
		print_error("end_unit: %s\n", err.msg);
	assert_int_equal(rc, 0);
}

/* Each batch has its own operator, so every view can be checked for it. */
static const char *operator_of(const char *batch)
{
	return strcmp(batch, "B1") == 0 ? "ana" : "bo";
}

static void new_batch(fx *f, const char *name, int64_t started, espl_db_batch *b)
{
	espl_error err;
	memset(b, 0, sizeof *b);
	espl_db_uuid(b->uuid, &err);
	b->name = name;
	b->operator_name = operator_of(name);
	b->started_ms = started;
	assert_int_equal(espl_db_begin_batch(f->db, &station, &recipe, b, &err), 0);
}

/* B1: 100 units one minute apart, unit i takes i seconds; every 10th fails
 * with a timeout, i = 1, 26, 51, 76 fail verify.  Then one unit still running.
 * B2: 10 units a day later, 200 s each, all pass. */
static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	espl_error err;
	snprintf(f->dir, sizeof f->dir, "/tmp/espl-test-report-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/espline.sqlite", f->dir);
	espl_db_options o = { .path = f->path, .create = 1 };
	if (espl_db_open(&f->db, &o, &err))
		return -1;
	static espl_db_batch b1, b2;
	new_batch(f, "B1", T0, &b1);
	new_batch(f, "B2", T0 + 86400000, &b2);
	for (int i = 1; i <= N_B1; i++)
		add_unit(f, &b1, i, T0 + i * 60000, i * 1000,
			 i % 10 == 0 || i % 25 == 1 ? ESPL_DB_FAIL : ESPL_DB_PASS);
	for (int i = 1; i <= N_B2; i++)
		add_unit(f, &b2, i, T0 + 86400000 + i * 60000, 200000, ESPL_DB_PASS);
	add_unit(f, &b1, 7, T0 + 3 * 86400000LL, 0, ESPL_DB_RUNNING);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	espl_db_close(f->db);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static const source *find_source(const fx *f, const char *uuid)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->units[i].unit.uuid, uuid) == 0)
			return &f->units[i];
	return NULL;
}

/* ---- report ------------------------------------------------------------ */

static const espl_report_group *group(const espl_report_group *g, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(g[i].key, key) == 0)
			return &g[i];
	return NULL;
}

static void test_batch_report(void **state)
{
	fx *f = *state;
	espl_error err;
	espl_report r;
	espl_report_filter flt = { .batch = "B1" };
	assert_int_equal(espl_report_build(f->db, &flt, &r, &err), 0);
	/* 10 timeouts (10, 20, .., 100) and 4 mismatches (1, 26, 51, 76). */
	assert_int_equal(r.units, N_B1 + 1);
	assert_int_equal(r.failed, 14);
	assert_int_equal(r.passed, 86);
	assert_int_equal(r.interrupted, 1); /* the running one */
	assert_true(r.yield > 0.859 && r.yield < 0.861);
	/* Durations 1..100 s: nearest rank. */
	assert_int_equal(r.timed, 100);
	assert_int_equal(r.p50_ms, 50000);
	assert_int_equal(r.p90_ms, 90000);
	assert_int_equal(r.p99_ms, 99000);
	assert_int_equal(r.max_ms, 100000);
	assert_int_equal(r.mean_ms, 50500);
	assert_int_equal(r.n_reasons, 2);
	assert_string_equal(r.reasons[0].key, "timeout");
	assert_int_equal(r.reasons[0].total, 10);
	assert_string_equal(r.reasons[0].example, "erase: no response in 10 s");
	assert_string_equal(r.reasons[1].key, "mismatch");
	assert_int_equal(r.reasons[1].total, 4);
	/* Ports: i % 4.  Port 2 gets i = 2, 6, .., 98 (25 units): timeouts at
	 * 10, 30, 50, 70, 90 and mismatch at 26. */
	assert_int_equal(r.n_ports, 4);
	const espl_report_group *p2 = group(r.ports, r.n_ports, "/dev/ttyUSB2");
	assert_non_null(p2);
	assert_int_equal(p2->total, 25);
	assert_int_equal(p2->failed, 6);
	assert_int_equal(p2->passed, 19);
	/* Adapters: by serial, else location (port 3 has no serial). */
	assert_int_equal(r.n_adapters, 4);
	assert_non_null(group(r.adapters, r.n_adapters, "S0"));
	const espl_report_group *loc = group(r.adapters, r.n_adapters, "1-1.3");
	assert_non_null(loc);
	assert_int_equal(loc->total, 26); /* 25 + the running unit i = 7 */
	assert_int_equal(loc->interrupted, 1);
	/* Operators: B1 is ana's batch (101 units) */
	assert_int_equal(r.n_operators, 1);
	assert_string_equal(r.operators[0].key, "ana");
	assert_int_equal(r.operators[0].total, 101);

	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	assert_int_equal(espl_report_print(mem, &r), 0);
	fclose(mem);
	assert_non_null(strstr(text, "p50 50.0 s"));
	assert_non_null(strstr(text, "/dev/ttyUSB2"));
	assert_non_null(strstr(text, "\noperator "));
	assert_non_null(strstr(text, "\nana "));
	free(text);
	mem = open_memstream(&text, &len);
	assert_int_equal(espl_report_print_json(mem, &r), 0);
	fclose(mem);
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "failed")), 14);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "time_per_unit_ms"),
							    "p90")),
			 90000);
	json_decref(j);
	free(text);
	espl_report_free(&r);
}

static void test_report_filters(void **state)
{
	fx *f = *state;
	espl_error err;
	espl_report r;
	assert_int_equal(espl_report_build(f->db, NULL, &r, &err), 0);
	assert_int_equal(r.units, N_UNITS + 1);
	assert_int_equal(r.passed, 96);
	espl_report_free(&r);

	espl_report_filter since = { 0 };
	assert_int_equal(espl_report_parse_time("2025-11-25", &since.since_ms), 0);
	assert_int_equal(espl_report_build(f->db, &since, &r, &err), 0);
	assert_int_equal(r.units, N_B2 + 1); /* B2 and the running unit */
	assert_int_equal(r.p50_ms, 200000);
	espl_report_free(&r);

	espl_report_filter both = { .batch = "B2", .since_ms = T0 + 86400000 + 5 * 60000 };
	assert_int_equal(espl_report_build(f->db, &both, &r, &err), 0);
	assert_int_equal(r.units, 6); /* i = 5..10 of B2, 16:05 onwards */
	espl_report_free(&r);

	espl_report_filter none = { .batch = "no-such-batch" };
	assert_int_equal(espl_report_build(f->db, &none, &r, &err), 0);
	assert_int_equal(r.units, 0);
	assert_int_equal(r.timed, 0);
	assert_int_equal(r.n_ports, 0);
	espl_report_free(&r);
}

/* ---- history ----------------------------------------------------------- */

typedef struct seen {
	int n;
	int64_t started[8];
	char batch[8][8];
	char images[256];
} seen;

static int collect(const espl_report_unit *u, void *user)
{
	seen *s = user;
	if (s->n < 8) {
		s->started[s->n] = u->unit.started_ms;
		snprintf(s->batch[s->n], sizeof s->batch[0], "%s", u->batch_name);
		snprintf(s->images, sizeof s->images, "%s", u->images ? u->images : "");
	}
	s->n++;
	return 0;
}

static void test_history_newest_first(void **state)
{
	fx *f = *state;
	espl_error err;
	seen s = { 0 };
	/* MAC ..:07: B1 i = 7 (completed), B2 i = 7, and the running unit. */
	assert_int_equal(espl_report_history(f->db, "5C-CF-7F-00-00-07", collect, &s, &err), 3);
	assert_int_equal(s.n, 3);
	assert_true(s.started[0] > s.started[1] && s.started[1] > s.started[2]);
	assert_string_equal(s.batch[0], "B1"); /* the running one, latest */
	assert_string_equal(s.batch[1], "B2");
	assert_string_equal(s.batch[2], "B1");
	assert_string_equal(s.images, "nodemcu-combined.bin=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				      "aaaaaaaaaaaaaaaaaaaaa;esp_init_data_default.bin=bbbbbbbbbbbbbbbbbbb"
				      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	seen none = { 0 };
	assert_int_equal(espl_report_history(f->db, "5c:cf:7f:ff:ff:ff", collect, &none, &err), 0);
	/* not a MAC: looked up as a serial number (issue 16); none here */
	assert_int_equal(espl_report_history(f->db, "not-a-mac", collect, &none, &err), 0);
	assert_int_equal(none.n, 0);
	assert_int_equal(espl_report_history(f->db, "", collect, &none, &err), ESPL_EARG);
}

/* ---- export round trips ------------------------------------------------ */

static void hex_eq(const char *text, uint32_t want)
{
	assert_true(strncmp(text, "0x", 2) == 0);
	assert_int_equal(strtoul(text + 2, NULL, 16), want);
}

static void time_eq(const char *text, int64_t want_ms)
{
	int64_t ms;
	if (want_ms == 0) {
		assert_string_equal(text, "");
		return;
	}
	assert_int_equal(espl_report_parse_time(text, &ms), 0);
	assert_int_equal(ms, want_ms);
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* The unit s repeats: the first PASS of its MAC recorded before it, in any
 * batch (B2 re-flashes B1's MACs), or "". */
static const char *expected_repeat(const fx *f, const source *s)
{
	for (int i = 0; i < f->n && &f->units[i] != s; i++)
		if (strcasecmp(f->units[i].unit.mac, s->unit.mac) == 0 && f->units[i].unit.result == ESPL_DB_PASS)
			return f->units[i].unit.uuid;
	return "";
}

/* Compare one exported record (columns in espl_export_columns order) with
 * what the test put in. */
static void check_record(const fx *f, const char *const v[ESPL_EXPORT_NCOLUMNS])
{
	const source *s = find_source(f, v[0]);
	assert_non_null(s);
	const espl_db_unit *u = &s->unit;
	assert_string_equal(v[1], s->batch);
	assert_string_equal(v[2], u->batch_uuid);
	assert_string_equal(v[3], station.name);
	assert_string_equal(v[4], station.host);
	assert_string_equal(v[5], recipe.name);
	assert_string_equal(v[6], recipe.sha256);
	assert_non_null(strstr(v[7], images[1].sha256));
	assert_string_equal(v[8], u->mac);
	hex_eq(v[9], u->chip_id);
	hex_eq(v[10], u->flash_id);
	assert_string_equal(v[11], u->manufacturer);
	assert_int_equal(strtoul(v[12], NULL, 10), u->flash_size);
	assert_int_equal(atoi(v[13]), u->crystal_mhz);
	assert_string_equal(v[14], u->port);
	assert_string_equal(v[15], u->adapter_serial);
	assert_string_equal(v[16], u->adapter_location);
	time_eq(v[17], u->started_ms);
	time_eq(v[18], u->ended_ms);
	assert_int_equal(strtoll(v[19], NULL, 10), u->duration_ms);
	assert_string_equal(v[20], espl_db_result_name(u->result));
	assert_string_equal(v[21], nz(u->error_kind));
	assert_string_equal(v[22], nz(u->error));
	assert_string_equal(v[23], s->unit.result == ESPL_DB_PASS ? expected_repeat(f, s) : "");
	assert_string_equal(v[26], operator_of(s->batch));
	if (u->result == ESPL_DB_RUNNING) {
		assert_string_equal(v[24], "");
		assert_string_equal(v[25], "");
	} else {
		assert_true(atoll(v[24]) >= 1);
		assert_int_equal(strlen(v[25]), 64);
	}
}

/* A small RFC 4180 reader: fields into out[], returns the count, advances *p. */
static int csv_record(const char **p, char out[][256], int max)
{
	int n = 0;
	const char *c = *p;
	if (!*c)
		return 0;
	for (;;) {
		size_t len = 0;
		char *dst = out[n];
		if (*c == '"') {
			for (c++;; c++) {
				if (*c == '"' && c[1] == '"')
					c++;
				else if (*c == '"') {
					c++;
					break;
				}
				assert_true(*c != '\0');
				dst[len++] = *c;
			}
		} else {
			while (*c && *c != ',' && *c != '\r' && *c != '\n')
				dst[len++] = *c++;
		}
		dst[len] = '\0';
		n++;
		if (*c == ',') {
			c++;
			assert_true(n < max);
			continue;
		}
		if (*c == '\r')
			c++;
		if (*c == '\n')
			c++;
		break;
	}
	*p = c;
	return n;
}

static char *export_to_string(fx *f, const espl_report_filter *flt, int format, int *count)
{
	char *text = NULL;
	size_t len = 0;
	espl_error err;
	FILE *mem = open_memstream(&text, &len);
	*count = espl_report_export(f->db, flt, format, mem, &err);
	fclose(mem);
	assert_true(*count >= 0);
	return text;
}

static void test_export_csv_round_trip(void **state)
{
	fx *f = *state;
	int count;
	char *text = export_to_string(f, NULL, ESPL_EXPORT_CSV, &count);
	assert_int_equal(count, N_UNITS + 1);
	const char *p = text;
	static char fields[ESPL_EXPORT_NCOLUMNS + 1][256];
	assert_int_equal(csv_record(&p, fields, ESPL_EXPORT_NCOLUMNS + 1), ESPL_EXPORT_NCOLUMNS);
	for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++)
		assert_string_equal(fields[i], espl_export_columns[i]);
	int rows = 0, awkward = 0;
	int n;
	while ((n = csv_record(&p, fields, ESPL_EXPORT_NCOLUMNS + 1)) > 0) {
		assert_int_equal(n, ESPL_EXPORT_NCOLUMNS);
		const char *v[ESPL_EXPORT_NCOLUMNS];
		for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++)
			v[i] = fields[i];
		check_record(f, v);
		awkward += strcmp(v[22], awkward_error) == 0;
		rows++;
	}
	assert_int_equal(rows, N_UNITS + 1);
	assert_int_equal(awkward, 4);
	free(text);

	espl_report_filter b2 = { .batch = "B2" };
	text = export_to_string(f, &b2, ESPL_EXPORT_CSV, &count);
	assert_int_equal(count, N_B2);
	free(text);
}

static void test_export_json_round_trip(void **state)
{
	fx *f = *state;
	int count;
	char *text = export_to_string(f, NULL, ESPL_EXPORT_JSON, &count);
	assert_int_equal(count, N_UNITS + 1);
	json_error_t je;
	json_t *arr = json_loads(text, 0, &je);
	if (!arr)
		print_error("json: %s at line %d\n", je.text, je.line);
	assert_non_null(arr);
	assert_int_equal(json_array_size(arr), N_UNITS + 1);
	for (size_t r = 0; r < json_array_size(arr); r++) {
		json_t *o = json_array_get(arr, r);
		const char *v[ESPL_EXPORT_NCOLUMNS];
		static char num[ESPL_EXPORT_NCOLUMNS][32];
		for (int i = 0; i < ESPL_EXPORT_NCOLUMNS; i++) {
			json_t *j = json_object_get(o, espl_export_columns[i]);
			assert_non_null(j);
			/* docs/json-schema.md: sizes, counts and seq are numbers
			 * (seq null while not sealed), the rest text */
			int numeric = !strcmp(espl_export_columns[i], "flash_size") ||
			              !strcmp(espl_export_columns[i], "crystal_mhz") ||
			              !strcmp(espl_export_columns[i], "duration_ms") || !strcmp(espl_export_columns[i], "seq");
			if (numeric) {
				assert_true(json_is_integer(j) || (json_is_null(j) && !strcmp(espl_export_columns[i], "seq")));
				if (json_is_null(j))
					num[i][0] = '\0';
				else
					snprintf(num[i], sizeof num[i], "%" JSON_INTEGER_FORMAT, json_integer_value(j));
				v[i] = num[i];
			} else {
				v[i] = json_string_value(j);
				assert_non_null(v[i]);
			}
		}
		check_record(f, v);
		const source *s = find_source(f, v[0]);
		json_t *steps = json_object_get(o, "steps");
		assert_int_equal(json_array_size(steps), (size_t)s->steps);
		if (!s->steps)
			continue;
		espl_db_step want[3];
		step_set(want, &s->unit);
		for (size_t i = 0; i < 3; i++) {
			json_t *st = json_array_get(steps, i);
			assert_int_equal(json_integer_value(json_object_get(st, "index")), want[i].index);
			assert_string_equal(json_string_value(json_object_get(st, "kind")), want[i].kind);
			assert_int_equal(json_integer_value(json_object_get(st, "address")),
					 want[i].address);
			assert_int_equal(json_integer_value(json_object_get(st, "length")),
					 want[i].length);
			assert_string_equal(json_string_value(json_object_get(st, "expected_md5")),
					    nz(want[i].expected_md5));
			assert_string_equal(json_string_value(json_object_get(st, "actual_md5")),
					    nz(want[i].actual_md5));
			assert_int_equal(json_integer_value(json_object_get(st, "bytes")), want[i].bytes);
			assert_int_equal(json_integer_value(json_object_get(st, "retries")),
					 want[i].retries);
			assert_string_equal(json_string_value(json_object_get(st, "result")),
					    espl_db_result_name(want[i].result));
			assert_string_equal(json_string_value(json_object_get(st, "error")),
					    nz(want[i].error));
		}
	}
	json_decref(arr);
	free(text);

	espl_report_filter none = { .batch = "nothing" };
	text = export_to_string(f, &none, ESPL_EXPORT_JSON, &count);
	assert_int_equal(count, 0);
	arr = json_loads(text, 0, &je);
	assert_non_null(arr);
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
	free(text);
}

static void test_time_parse_and_format(void **state)
{
	(void)state;
	int64_t ms;
	char buf[32];
	assert_int_equal(espl_report_parse_time("2025-11-24T16:00:00Z", &ms), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(espl_report_parse_time("2025-11-24 16:00", &ms), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(espl_report_parse_time("2025-11-24T16:00:01.5", &ms), 0);
	assert_int_equal(ms, T0 + 1500);
	espl_report_format_time(T0 + 1234, buf);
	assert_string_equal(buf, "2025-11-24T16:00:01.234Z");
	assert_int_equal(espl_report_parse_time(buf, &ms), 0);
	assert_int_equal(ms, T0 + 1234);
	assert_int_equal(espl_report_parse_time("yesterday", &ms), ESPL_EARG);
	assert_int_equal(espl_report_parse_time("2025-13-01", &ms), ESPL_EARG);
	assert_int_equal(espl_report_parse_time("2025-11-24T16:00junk", &ms), ESPL_EARG);
}

/* ---- the CLI commands, run as a user would ---------------------------- */

/* Run a shell command line; capture stdout; return the exit status. */
static int run_cli(const char *cmdline, char *out, size_t out_size)
{
	FILE *p = popen(cmdline, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, out_size - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int count_of(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void test_cli_commands(void **state)
{
	fx *f = *state;
	const char *build = getenv("ESPLINE_BUILD");
	if (!build) {
		print_message("# ESPLINE_BUILD not set (run through tests/run.sh): CLI not tested\n");
		skip();
	}
	static char out[1 << 20];
	char cmd[1024], csv[256];
	snprintf(cmd, sizeof cmd, "%s/espline history --db %s 5C:CF:7F:00:00:07", build, f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	assert_int_equal(count_of(out, "recipe nodemcu-golden"), 3);
	assert_true(strstr(out, "RUNNING") < strstr(out, "batch B2")); /* newest first */
	assert_non_null(strstr(out, "batch B2  operator bo  station"));
	assert_non_null(strstr(out, "batch B1  operator ana  station"));
	snprintf(cmd, sizeof cmd, "%s/espline history --db %s 5c:cf:7f:ff:ff:ff", build, f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 1);
	assert_non_null(strstr(out, "never programmed"));

	snprintf(cmd, sizeof cmd, "%s/espline report --db %s --batch B1 --json", build, f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "failed")), 14);
	json_decref(j);
	snprintf(cmd, sizeof cmd, "%s/espline report --db %s --since 2025-11-25", build, f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	assert_non_null(strstr(out, "passed       10\n"));
	snprintf(cmd, sizeof cmd, "%s/espline report --db %s --since tomorrow 2>/dev/null", build,
		 f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 2);

	snprintf(csv, sizeof csv, "%s/b2.csv", f->dir);
	snprintf(cmd, sizeof cmd, "%s/espline export --db %s --format csv --batch B2 -o %s 2>&1",
		 build, f->path, csv);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	snprintf(cmd, sizeof cmd, "cat %s", csv);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	assert_int_equal(count_of(out, "\r\n"), 1 + N_B2);
	assert_int_equal(strncmp(out, "unit_uuid,batch,batch_uuid,", 27), 0);

	snprintf(cmd, sizeof cmd, "ESPLINE_DB=%s %s/espline db verify", f->path, build);
	assert_int_equal(run_cli(cmd, out, sizeof out), 0);
	assert_non_null(strstr(out, "OK: 110 sealed units"));
	assert_int_equal(sqlite3_exec(espl_db_sqlite(f->db),
				      "UPDATE units SET port = '/dev/ttyUSB9' WHERE seq = 42", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(run_cli(cmd, out, sizeof out), 1);
	assert_non_null(strstr(out, "TAMPERED: changed: unit seq 42"));

	snprintf(cmd, sizeof cmd, "%s/espline db verify --db %s/none.sqlite 2>/dev/null", build,
		 f->dir);
	assert_int_equal(run_cli(cmd, out, sizeof out), 4);
	snprintf(cmd, sizeof cmd, "%s/espline export --db %s --format xml 2>/dev/null", build,
		 f->path);
	assert_int_equal(run_cli(cmd, out, sizeof out), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_newest_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_csv_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_json_round_trip, setup, teardown),
		cmocka_unit_test(test_time_parse_and_format),
		cmocka_unit_test_setup_teardown(test_cli_commands, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
