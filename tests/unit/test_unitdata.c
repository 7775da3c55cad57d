/* test_unitdata.c - per-unit data (issue 16): serial formats and templates
 * (unitdata.h), binary layouts (layout.h), CSV files (csvtable.h), and the database's reservations
 * (serials.h): returned and voided numbers, reuse for a known MAC, an
 * exhausted CSV, what a restart does to open reservations, and numbers
 * taken from ranges leased from a central database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include <zlib.h>

#include "espline/csvtable.h"
#include "espline/db.h"
#include "espline/layout.h"
#include "espline/serials.h"
#include "espline/unitdata.h"

/* 2026-12-31 12:00 UTC: ISO week 53 of 2026 */
#define T_2026_12_31 1798718400000LL

static char *render(const char *tmpl, enum espl_template_kind kind, const espl_unit_values *v, size_t cap,
                    espl_error *e)
{
	static char out[512];
	size_t n = 0;
	if (espl_template_render(tmpl, strlen(tmpl), kind, v, (uint8_t *)out, cap, &n, e) < 0)
		return NULL;
	out[n] = '\0';
	return out;
}

static void test_serial_format(void **state)
{
	(void)state;
	espl_error e;
	espl_unit_values v = { .mac = "5c:cf:7f:a0:00:01", .time_ms = T_2026_12_31, .seq = 42 };
	assert_int_equal(espl_template_check("PX-{year}{week:02}-{seq:06}", 27, ESPL_TEMPLATE_SERIAL, NULL, &e), 0);
	assert_string_equal(render("PX-{year}{week:02}-{seq:06}", ESPL_TEMPLATE_SERIAL, &v, 64, &e), "PX-202653-000042");
	assert_string_equal(render("{{{seq}}}-{month:02}{day}", ESPL_TEMPLATE_SERIAL, &v, 64, &e), "{42}-1231");
	v.seq = 1234567; /* wider than the width: never cut */
	assert_string_equal(render("{seq:03}", ESPL_TEMPLATE_SERIAL, &v, 64, &e), "1234567");
	assert_int_equal(espl_template_check("PX-{year}", 9, ESPL_TEMPLATE_SERIAL, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "has no {seq}"));
	assert_int_equal(espl_template_check("{serial}{seq}", 13, ESPL_TEMPLATE_SERIAL, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "unknown field {serial} in a serial format"));
}

static void test_template_fields_and_errors(void **state)
{
	(void)state;
	espl_error e;
	espl_unit_values v = { .serial = "PX-1", .mac = "5c:cf:7f:a0:00:0b", .chip_id = 0xa0000b,
	                       .batch = "LOT42", .time_ms = T_2026_12_31 };
	const char *t = "{serial} {mac} {mac_hex} {chip_id} {batch} {date}";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), 0);
	assert_string_equal(render(t, ESPL_TEMPLATE_UNIT_DATA, &v, 512, &e),
	                    "PX-1 5c:cf:7f:a0:00:0b 5ccf7fa0000b 00a0000b LOT42 2026-12-31");
	t = "a\nbb {nope}";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "line 2, column 4: unknown field {nope}"));
	t = "{mac:04}";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "only numbers take a width"));
	t = "x } y";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "line 1, column 3: a lone '}'"));
	t = "{serial";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), ESPL_ERECIPE);
	t = "{csv.cert}";
	assert_int_equal(espl_template_check(t, strlen(t), ESPL_TEMPLATE_UNIT_DATA, NULL, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "needs a CSV file"));
	/* no room: the size and the need are said */
	assert_null(render("{serial}{serial}", ESPL_TEMPLATE_UNIT_DATA, &v, 6, &e));
	assert_string_equal(e.msg, "rendered unit data is 8 bytes, more than the 6 bytes it may take");
	v.serial = NULL;
	assert_null(render("{serial}", ESPL_TEMPLATE_UNIT_DATA, &v, 64, &e));
	assert_non_null(strstr(e.msg, "no serial number"));
}

/* A layout field: offset, type text, value (NULL: none). */
static espl_layout_field lf(uint32_t offset, const char *type, const char *value)
{
	espl_layout_field f = { .offset = offset, .line = offset + 1 };
	espl_error e;
	assert_int_equal(espl_layout_parse_type(type, &f.type, &f.size, &e), 0);
	f.value = value ? strdup(value) : NULL;
	return f;
}

static void test_layout_render(void **state)
{
	(void)state;
	espl_error e;
	espl_csv *t;
	const char *csv = "k,n,key\nr1,513,0a0b0c0d\n";
	assert_int_equal(espl_csv_parse("t.csv", csv, strlen(csv), NULL, &t, &e), 0);
	espl_layout_field f[] = {
		lf(0, "u32le", "0x55AA0001"), lf(4, "u32be", "0x{chip_id}"), lf(8, "str[8]", "{serial}"),
		lf(16, "mac", NULL), lf(22, "u16le", "{csv.n}"), lf(24, "bytes[4]", "{csv.key}"),
		lf(28, "crc32", NULL),
	};
	f[6].from = 0;
	f[6].to = 28;
	espl_unit_values v = { .serial = "PX-1", .mac = "5c:cf:7f:a0:00:0b", .chip_id = 0xa0000b, .csv = t,
	                       .time_ms = T_2026_12_31 };
	uint8_t got[36], want[36] = { 0x01, 0x00, 0xAA, 0x55, 0x00, 0xA0, 0x00, 0x0B, 'P', 'X', '-', '1', 0, 0, 0, 0,
	                              0x5c, 0xcf, 0x7f, 0xa0, 0x00, 0x0b, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d };
	uint32_t crc = (uint32_t)crc32(0L, want, 28);
	for (int i = 0; i < 4; i++)
		want[28 + i] = (uint8_t)(crc >> (8 * i));
	memset(want + 32, 0xEE, 4);  /* the pad, where no field is */
	size_t at;
	bool in_value;
	assert_int_equal(espl_layout_check(f, 7, 36, t, "t.csv", &v, &at, &in_value, &e), 0);
	assert_int_equal(espl_layout_render(f, 7, &v, 0xEE, got, sizeof got, &e), 0);
	assert_memory_equal(got, want, sizeof want);
	/* values the type cannot hold */
	free(f[4].value);
	f[4].value = strdup("{csv.n}00");  /* 51300 fits a u16 */
	assert_int_equal(espl_layout_render(f, 7, &v, 0xEE, got, sizeof got, &e), 0);
	free(f[4].value);
	f[4].value = strdup("{csv.n}000");
	assert_int_equal(espl_layout_check(f, 7, 36, t, "t.csv", &v, &at, &in_value, &e), ESPL_EARG);
	assert_true(at == 4 && in_value);
	assert_string_equal(e.msg, "with the row at t.csv:2: field at 0x16 (u16le): 513000 does not fit (at most 65535)");
	free(f[4].value);
	f[4].value = strdup("{batch}");
	v.batch = "12x";
	assert_int_equal(espl_layout_render(f, 7, &v, 0xEE, got, sizeof got, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "'12x' is not a number"));
	free(f[5].value);
	f[5].value = strdup("0a0b0c");
	free(f[4].value);
	f[4].value = strdup("1");
	assert_int_equal(espl_layout_render(f, 7, &v, 0xEE, got, sizeof got, &e), ESPL_EARG);
	assert_string_equal(e.msg, "field at 0x18 (bytes[4]): expected 4 bytes, got 3");
	free(f[5].value);
	f[5].value = strdup("{csv.key}");
	v.serial = "PX-123456";  /* 9 bytes in a str[8] */
	assert_int_equal(espl_layout_render(f, 7, &v, 0xEE, got, sizeof got, &e), ESPL_EARG);
	assert_string_equal(e.msg, "field at 0x8 (str[8]): the text is 9 bytes, more than its 8");
	espl_layout_free(NULL, 0);
	for (size_t i = 0; i < 7; i++)
		free(f[i].value);
	espl_csv_free(t);
}

static void test_layout_errors(void **state)
{
	(void)state;
	espl_error e;
	enum espl_layout_type type;
	uint32_t size;
	size_t at;
	bool in_value;
	espl_unit_values v = { .serial = "S-1", .mac = "5c:cf:7f:a0:00:0b" };
	assert_int_equal(espl_layout_parse_type("u24le", &type, &size, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "unknown type; expected u8, u16le"));
	assert_int_equal(espl_layout_parse_type("str[0]", &type, &size, &e), ESPL_EARG);
	assert_int_equal(espl_layout_parse_type("bytes[4097]", &type, &size, &e), ESPL_EARG);
	assert_int_equal(espl_layout_parse_type("str[ 4]", &type, &size, &e), ESPL_EARG);
	assert_int_equal(espl_layout_parse_type("bytes", &type, &size, &e), 0);
	assert_true(type == ESPL_LAYOUT_BYTES && size == 0);  /* size: N in the recipe */
	/* past the end, overlapping, a crc over a crc, an unknown field */
	espl_layout_field f[] = { lf(0, "u32le", "1"), lf(2, "mac", NULL) };
	assert_int_equal(espl_layout_check(f, 2, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	assert_true(at == 1 && !in_value);
	assert_string_equal(e.msg, "field at 0x2 (mac) overlaps the field at 0x0 (u32le) (line 1)");
	f[1].offset = 12;
	assert_int_equal(espl_layout_check(f, 2, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	assert_string_equal(e.msg, "field at 0xc (mac) ends at 0x12, past the region's size 0x10");
	f[1].offset = 10;
	assert_int_equal(espl_layout_check(f, 2, 16, NULL, NULL, &v, &at, &in_value, &e), 0);
	espl_layout_field c[] = { lf(0, "crc32", NULL), lf(4, "crc32", NULL) };
	c[0].from = 8, c[0].to = 16, c[1].from = 0, c[1].to = 4;
	assert_int_equal(espl_layout_check(c, 2, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	assert_true(at == 1);
	assert_string_equal(e.msg, "field at 0x4 (crc32): its range [0x0, 0x4) covers the field at 0x0 (crc32), whose value depends on it");
	c[1].from = 8;
	c[1].to = 20;
	assert_int_equal(espl_layout_check(c, 2, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "is not a range inside the region"));
	free(f[0].value);
	f[0].value = strdup("{nope}");
	assert_int_equal(espl_layout_check(f, 2, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	assert_true(at == 0 && in_value);
	assert_non_null(strstr(e.msg, "unknown field {nope}"));
	assert_int_equal(espl_layout_check(f, 0, 16, NULL, NULL, &v, &at, &in_value, &e), ESPL_ERECIPE);
	free(f[0].value);
}

static void test_csv_parse(void **state)
{
	(void)state;
	espl_error e;
	espl_csv *t;
	const char *text = "id,psk,cert\r\ndev-1,p1,\"-----BEGIN-----\nAB,\"\"C\"\"\n-----END-----\"\r\n\ndev-2,p2,x\n";
	assert_int_equal(espl_csv_parse("t.csv", text, strlen(text), NULL, &t, &e), 0);
	assert_int_equal(espl_csv_rows(t), 2);
	assert_int_equal(espl_csv_columns(t), 3);
	assert_string_equal(espl_csv_cell(t, 0, 2), "-----BEGIN-----\nAB,\"C\"\n-----END-----");
	assert_int_equal(espl_csv_row_line(t, 1), 6);
	assert_int_equal(espl_csv_find(t, "dev-2"), 1);
	assert_int_equal(espl_csv_find(t, "dev-3"), -1);
	assert_int_equal(espl_csv_column(t, "psk"), 1);
	assert_int_equal(espl_csv_max_len(t, 1), 2);
	espl_unit_values v = { .csv = t, .csv_row = 0 };
	const char *tm = "{csv.psk}|{csv.id}";
	assert_int_equal(espl_template_check(tm, strlen(tm), ESPL_TEMPLATE_UNIT_DATA, t, &e), 0);
	assert_string_equal(render(tm, ESPL_TEMPLATE_UNIT_DATA, &v, 64, &e), "p1|dev-1");
	tm = "{csv.key}";
	assert_int_equal(espl_template_check(tm, strlen(tm), ESPL_TEMPLATE_UNIT_DATA, t, &e), ESPL_ERECIPE);
	assert_non_null(strstr(e.msg, "the CSV file has no column 'key'"));
	espl_csv_free(t);
	/* another key column */
	assert_int_equal(espl_csv_parse("t.csv", "a,b\n1,x\n2,y\n", 12, "b", &t, &e), 0);
	assert_string_equal(espl_csv_key(t, 1), "y");
	espl_csv_free(t);
}

static void csv_fails(const char *text, const char *key, const char *want)
{
	espl_error e;
	espl_csv *t = NULL;
	assert_true(espl_csv_parse("t.csv", text, strlen(text), key, &t, &e) < 0);
	assert_null(t);
	if (!strstr(e.msg, want))
		fail_msg("got \"%s\", want \"%s\"", e.msg, want);
}

static void test_csv_errors(void **state)
{
	(void)state;
	csv_fails("", NULL, "t.csv: empty");
	csv_fails("a,b\n1,2\n3\n", NULL, "t.csv:3: this row has 1 fields, the header has 2 columns");
	csv_fails("a,b\n1,2\n1,3\n", NULL, "t.csv:3: duplicate key '1' in column 'a' (first at line 2)");
	csv_fails("a,b\n1,\xc3\x28\n", NULL, "t.csv:2: byte 0xC3 at offset 6 is not UTF-8 text");
	csv_fails("a,b\n1,\xc0\xaf\n", NULL, "is not UTF-8"); /* overlong '/' */
	csv_fails("a,b\n1,\"open\n", NULL, "t.csv:2: a quoted field is never closed");
	csv_fails("a,b\n1,x\"y\n", NULL, "a quote inside an unquoted field");
	csv_fails("a,a\n1,2\n", NULL, "column 'a' is named twice");
	csv_fails("a,b\n,2\n", NULL, "the key column 'a' is empty in this row");
	csv_fails("a,b\n1,2\n", "c", "no column 'c' in the header");
}

/* ---- the database's reservations --------------------------------------- */

static char dbdir[] = "/tmp/espline-test-unitdata.XXXXXX";

static espl_db *open_db(void)
{
	char path[128];
	espl_db *db;
	espl_error e;
	snprintf(path, sizeof path, "%s/u.sqlite", dbdir);
	unlink(path);
	espl_db_options o = { .path = path, .create = 1 };
	assert_int_equal(espl_db_open(&db, &o, &e), 0);
	return db;
}

static espl_db_reserve_req req(const char *uuid, const char *mac)
{
	espl_db_reserve_req q = { .unit_uuid = uuid, .mac = mac, .now_ms = T_2026_12_31, .counter = "c",
	                          .format = "S-{seq:03}", .first = 7, .csv_source = "k.csv", .reuse_for_mac = 1 };
	return q;
}

static int64_t count(espl_db *db, const char *sql)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(espl_db_sqlite(db), sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void test_reserve_commit_return_void(void **state)
{
	(void)state;
	espl_db *db = open_db();
	espl_error e;
	espl_db_reserved r;
	int64_t unused;
	const char *keys[] = { "k1", "k2", "k3" };
	assert_int_equal(espl_db_csv_register(db, "k.csv", keys, 3, &unused, &e), 0);
	assert_int_equal(unused, 3);

	espl_db_reserve_req q = req("u1", "5c:cf:7f:00:00:01");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-007");
	assert_string_equal(r.csv_key, "k1");
	assert_int_equal(espl_db_settle(db, "u1", ESPL_DB_PASS, 1, &e), 0);

	/* a FAIL under commit_on_pass returns the number; the row is voided */
	q = req("u2", "5c:cf:7f:00:00:02");
	q.csv_void_on_fail = 1;
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-008");
	assert_string_equal(r.csv_key, "k2");
	assert_int_equal(espl_db_settle(db, "u2", ESPL_DB_FAIL, 2, &e), 0);
	q = req("u3", "5c:cf:7f:00:00:03");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-008");   /* the returned number, again */
	assert_string_equal(r.csv_key, "k3");     /* k2 is voided: never again */
	assert_int_equal(espl_db_settle(db, "u3", ESPL_DB_PASS, 3, &e), 0);

	/* a known MAC keeps its serial and row; a new one finds the CSV used up */
	q = req("u4", "5c:cf:7f:00:00:01");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-007");
	assert_true(r.serial_reused && r.csv_reused);
	assert_string_equal(r.csv_key, "k1");
	q = req("u5", "5c:cf:7f:00:00:05");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), ESPL_ENOTFOUND);
	assert_non_null(strstr(e.msg, "k.csv is used up"));
	assert_int_equal(count(db, "select count(*) from serials where state = 'reserved'"), 0); /* rolled back */
	/* without reuse, the known MAC gets a new number */
	q = req("u6", "5c:cf:7f:00:00:01");
	q.reuse_for_mac = 0;
	q.csv_source = NULL;
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-009");
	assert_int_equal(count(db, "select count(*) from events where kind = 'identity-voided'"), 1);
	assert_int_equal(count(db, "select count(*) from events where kind = 'identity-returned'"), 1);
	espl_db_close(db);
}

/* A station that starts again voids what is open, whatever the policy. */
static void test_restart_voids_open(void **state)
{
	(void)state;
	espl_db *db = open_db();
	espl_error e;
	espl_db_reserved r;
	int n = -1;
	const char *keys[] = { "k1", "k2" };
	assert_int_equal(espl_db_csv_register(db, "k.csv", keys, 2, NULL, &e), 0);
	espl_db_reserve_req q = req("u1", "5c:cf:7f:00:00:01");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_int_equal(espl_db_void_open(db, 5, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(count(db, "select count(*) from serials where state = 'voided'"), 1);
	assert_int_equal(count(db, "select count(*) from csv_rows where state = 'voided'"), 1);
	q = req("u2", "5c:cf:7f:00:00:02");
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-008");
	assert_string_equal(r.csv_key, "k2");
	/* a settled unit is not touched again */
	assert_int_equal(espl_db_settle(db, "u1", ESPL_DB_PASS, 6, &e), 0);
	assert_int_equal(count(db, "select count(*) from serials where state = 'committed'"), 0);
	espl_db_close(db);
}

/* With a central database, numbers come only from leased ranges. */
static void test_leased_ranges(void **state)
{
	(void)state;
	espl_db *db = open_db();
	espl_error e;
	espl_db_reserved r;
	int64_t left = -1;
	espl_db_reserve_req q = req("u1", "5c:cf:7f:00:00:01");
	q.csv_source = NULL;
	q.leased = 1;
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), ESPL_ENOTFOUND);
	assert_true(r.need_lease);
	assert_int_equal(espl_db_lease_add(db, "c", 21, 22, 1, &left, &e), 0);
	assert_int_equal(left, 2);
	assert_int_equal(espl_db_lease_add(db, "c", 41, 41, 1, &left, &e), 0);
	assert_int_equal(left, 3);
	const char *want[] = { "S-021", "S-022", "S-041" };
	for (int i = 0; i < 3; i++) {
		char uuid[16];
		snprintf(uuid, sizeof uuid, "u%d", i + 1);
		q = req(uuid, NULL);
		q.csv_source = NULL;
		q.leased = 1;
		assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
		assert_string_equal(r.serial, want[i]);
	}
	assert_int_equal(espl_db_lease_add(db, "c", 0, 0, 1, &left, &e), 0);
	assert_int_equal(left, 0);
	q = req("u4", NULL);
	q.csv_source = NULL;
	q.leased = 1;
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), ESPL_ENOTFOUND);
	assert_true(r.need_lease);
	/* a returned number is given again before a new lease is needed */
	assert_int_equal(espl_db_settle(db, "u2", ESPL_DB_FAIL, 2, &e), 0);
	assert_int_equal(espl_db_reserve(db, &q, &r, &e), 0);
	assert_string_equal(r.serial, "S-022");
	espl_db_close(db);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dbdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dbdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_format),
		cmocka_unit_test(test_template_fields_and_errors),
		cmocka_unit_test(test_layout_render),
		cmocka_unit_test(test_layout_errors),
		cmocka_unit_test(test_csv_parse),
		cmocka_unit_test(test_csv_errors),
		cmocka_unit_test(test_reserve_commit_return_void),
		cmocka_unit_test(test_restart_voids_open),
		cmocka_unit_test(test_leased_ranges),
	};
	return cmocka_run_group_tests_name("unitdata", tests, setup, teardown);
}
