/* parse_unit.c - a recipe's per-unit data: the serial section and the
 * write_unit_data step, and their checks once the files are read; see
 * include/espline/recipe.h and src/recipe/recipe_int.h. */
#include "espline/recipe.h"
#include "espline/csvtable.h"
#include "espline/unitdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recipe/recipe_int.h"
#include "recipe/yaml.h"

#define COUNTER_NAME_MAX 64

static const char *const policies[] = { "commit_on_pass", "void_on_fail" };

static bool get_policy(parse_ctx *c, yaml_node_t *v, const char *what, enum espl_identity_policy *out)
{
	int i = espl__yaml_choice(&c->y, v, what, policies, 2);
	if (i < 0)
		return false;
	*out = (enum espl_identity_policy)i;
	return true;
}

static char *dup_or_report(parse_ctx *c, yaml_node_t *n, const char *s)
{
	char *d = strdup(s);
	if (!d)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
	return d;
}

static bool counter_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > COUNTER_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

void espl__recipe_parse_serial(parse_ctx *c, yaml_node_t *key, yaml_node_t *n)
{
	static const char *const names[] = { "counter", "format", "policy", "reuse_for_mac", "first", "lease" };
	espl__yaml_fields f = { names, 6, { 0 }, { 0 } };
	espl_recipe_serial *s = &c->r->serial;
	yaml_node_t *v;
	const char *str;

	s->pos = espl__yaml_pos(key);
	if (!espl__yaml_want_mapping(&c->y, n, "serial", "{ counter: product-x, format: \"PX-{year}{week:02}-{seq:06}\" }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in serial", &f, NULL, NULL);
	if (!(v = espl__yaml_field(&f, "counter")))
		espl__yaml_missing_key(&c->y, n, "serial", "counter", "counter: product-x");
	else if (espl__yaml_string(&c->y, v, "serial.counter", &str)) {
		if (!counter_name_ok(str))
			espl__yaml_error(&c->y, espl__yaml_pos(v), "serial.counter: use 1 to %d letters, digits, '-', '_' or '.'",
			                 COUNTER_NAME_MAX);
		else
			s->counter = dup_or_report(c, v, str);
	}
	if (!(v = espl__yaml_field(&f, "format")))
		espl__yaml_missing_key(&c->y, n, "serial", "format", "format: \"PX-{year}{week:02}-{seq:06}\"");
	else if (espl__yaml_string(&c->y, v, "serial.format", &str)) {
		espl_error e;
		s->format_pos = espl__yaml_pos(v);
		if (espl_template_check(str, strlen(str), ESPL_TEMPLATE_SERIAL, NULL, &e) < 0)
			espl__yaml_error(&c->y, s->format_pos, "serial.format: %s", e.msg);
		else
			s->format = dup_or_report(c, v, str);
	}
	if ((v = espl__yaml_field(&f, "policy")) && get_policy(c, v, "serial.policy", &s->policy))
		s->policy_default = false;
	if ((v = espl__yaml_field(&f, "reuse_for_mac")) && espl__yaml_bool(&c->y, v, "serial.reuse_for_mac", &s->reuse_for_mac))
		s->reuse_default = false;
	if ((v = espl__yaml_field(&f, "first")) && espl__recipe_get_u32(c, v, "serial.first", &s->first))
		s->first_default = false;
	if ((v = espl__yaml_field(&f, "lease")) && espl__recipe_get_u32(c, v, "serial.lease", &s->lease)) {
		s->lease_default = false;
		if (s->lease == 0 || s->lease > 1000000)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "serial.lease: expected a count from 1 to 1000000, got %u", s->lease);
	}
	s->enabled = s->counter && s->format;
}

/* from_csv and its companions: the recipe's one CSV file. */
static void parse_csv(parse_ctx *c, const espl__yaml_fields *f, yaml_node_t *from)
{
	espl_recipe_csv *csv = &c->r->csv;
	espl_recipe_file file = { 0 };
	yaml_node_t *v;
	const char *str;

	if (csv->path) {
		espl__yaml_error(&c->y, espl__yaml_pos(from), "write_unit_data.from_csv: the recipe already takes its CSV file at line %u; one row per unit comes from one file, and every template can use it",
		                 csv->pos.line);
		return;
	}
	if (!espl__recipe_get_file(c, from, "write_unit_data.from_csv", &file)) {
		free(file.path);
		return;
	}
	csv->path = file.path;
	csv->pos = file.pos;
	if ((v = espl__yaml_field(f, "csv_key")) && espl__yaml_string(&c->y, v, "write_unit_data.csv_key", &str)) {
		csv->key_column = dup_or_report(c, v, str);
		csv->key_pos = espl__yaml_pos(v);
	}
	if ((v = espl__yaml_field(f, "secret_columns"))) {
		csv->secret_pos = espl__yaml_pos(v);
		espl__recipe_string_list(c, v, "write_unit_data.secret_columns", ESPL_RECIPE_MAX_LIST, csv->secret,
		                         &csv->n_secret);
	}
	if ((v = espl__yaml_field(f, "csv_policy")) && get_policy(c, v, "write_unit_data.csv_policy", &csv->policy))
		csv->policy_default = false;
}

void espl__recipe_parse_unit_data(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	static const char *const keys[] = { "address", "size", "template", "pad", "skip_unchanged", "from_csv",
	                                    "csv_key", "secret_columns", "csv_policy", "retries", "timeout" };
	espl__yaml_fields f = { keys, 11, { 0 }, { 0 } };
	yaml_node_t *x;
	uint32_t pad;

	if (!espl__yaml_want_mapping(&c->y, v, "write_unit_data", "{ address: 0x3F8000, size: 4KB, template: unit.tmpl }"))
		return;
	espl__yaml_read_fields(&c->y, v, "in write_unit_data", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	if (!(x = espl__yaml_field(&f, "address")))
		espl__yaml_missing_key(&c->y, v, "write_unit_data", "address", "address: 0x3F8000");
	else if (espl__recipe_get_u32(c, x, "write_unit_data.address", &s->unit_data.address)) {
		s->unit_data.address_pos = espl__yaml_pos(x);
		if (s->unit_data.address % 4)
			espl__yaml_error(&c->y, espl__yaml_pos(x), "write_unit_data.address: 0x%x is not 4-byte aligned; the flasher writes whole 32-bit words",
			                 s->unit_data.address);
	}
	if (!(x = espl__yaml_field(&f, "size")))
		espl__yaml_missing_key(&c->y, v, "write_unit_data", "size", "size: 4KB");
	else if (espl__recipe_get_u32(c, x, "write_unit_data.size", &s->unit_data.size)) {
		s->unit_data.size_pos = espl__yaml_pos(x);
		if (s->unit_data.size == 0 || s->unit_data.size % 4 || s->unit_data.size > (1u << 20))
			espl__yaml_error(&c->y, espl__yaml_pos(x), "write_unit_data.size: expected a multiple of 4 from 4 bytes to 1MB, got 0x%x",
			                 s->unit_data.size);
	}
	if (!(x = espl__yaml_field(&f, "template")))
		espl__yaml_missing_key(&c->y, v, "write_unit_data", "template", "template: unit.tmpl");
	else
		espl__recipe_get_file(c, x, "write_unit_data.template", &s->unit_data.tmpl);
	if ((x = espl__yaml_field(&f, "pad")) && espl__recipe_get_u32(c, x, "write_unit_data.pad", &pad)) {
		if (pad > 0xFF)
			espl__yaml_error(&c->y, espl__yaml_pos(x), "write_unit_data.pad: expected a byte (0x00 to 0xFF), got 0x%x", pad);
		s->unit_data.pad = (uint8_t)pad;
		s->unit_data.pad_default = false;
	}
	if ((x = espl__yaml_field(&f, "skip_unchanged")) &&
	    espl__yaml_bool(&c->y, x, "write_unit_data.skip_unchanged", &s->unit_data.skip_unchanged))
		s->unit_data.skip_unchanged_default = false;
	if ((x = espl__yaml_field(&f, "from_csv")))
		parse_csv(c, &f, x);
	else if ((x = espl__yaml_field(&f, "csv_key")) || (x = espl__yaml_field(&f, "secret_columns")) ||
	         (x = espl__yaml_field(&f, "csv_policy")))
		espl__yaml_error(&c->y, espl__yaml_pos(x), "write_unit_data: csv_key, secret_columns and csv_policy go with from_csv: FILE");
}

/* ---- after the files are read ------------------------------------------ */

static void load_csv(parse_ctx *c, espl_recipe_csv *csv)
{
	espl_error e;
	if (espl_csv_load(csv->path, csv->key_column, &csv->table, &e) < 0) {
		espl__yaml_error(&c->y, e.msg[0] && strstr(e.msg, "key column") ? csv->key_pos : csv->pos,
		                 "write_unit_data.from_csv: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < csv->n_secret; i++) {
		int col = espl_csv_column(csv->table, csv->secret[i]);
		if (col < 0)
			espl__yaml_error(&c->y, csv->secret_pos, "write_unit_data.secret_columns: %s has no column '%s'",
			                 csv->path, csv->secret[i]);
		else if ((size_t)col == espl_csv_key_column(csv->table))
			espl__yaml_error(&c->y, csv->secret_pos, "write_unit_data.secret_columns: '%s' is the key column; the key is recorded with the unit, so it cannot be secret (csv_key: names another)",
			                 csv->secret[i]);
	}
	if (espl_csv_rows(csv->table) == 0)
		espl__yaml_warn(&c->y, csv->pos, "write_unit_data.from_csv: %s has no rows: no unit can be programmed",
		                csv->path);
}

/* Sample values for the size check: the longest a unit's fields get. */
static void sample_values(const espl_recipe *r, espl_unit_values *v, char *serial, size_t cap)
{
	size_t n = 0;
	memset(v, 0, sizeof *v);
	v->mac = "ff:ff:ff:ff:ff:ff";
	v->time_ms = (int64_t)time(NULL) * 1000;
	v->seq = r->serial.first;
	if (r->serial.enabled &&
	    espl_template_render(r->serial.format, strlen(r->serial.format), ESPL_TEMPLATE_SERIAL, v,
	                         (uint8_t *)serial, cap - 1, &n, NULL) == 0) {
		serial[n] = '\0';
		v->serial = serial;
	}
	v->csv = r->csv.table;
}

/* Check a template, and render it for every CSV row (or once) against
 * its size, so that a row too long for the region stops the recipe here. */
static void check_template(parse_ctx *c, const espl_recipe *r, const espl_step *s)
{
	const espl_recipe_file *t = &s->unit_data.tmpl;
	char serial[128], msg[ESPL_ERROR_MAX];
	espl_unit_values v;
	espl_error e;
	size_t n, rows = r->csv.table ? espl_csv_rows(r->csv.table) : 0;

	if (espl_template_check((const char *)t->data, t->size, ESPL_TEMPLATE_UNIT_DATA, r->csv.table, &e) < 0) {
		espl__yaml_error(&c->y, t->pos, "write_unit_data.template: %s %s", t->path, e.msg);
		return;
	}
	uint8_t *buf = malloc(s->unit_data.size);
	if (!buf) {
		espl__yaml_error(&c->y, t->pos, "out of memory");
		return;
	}
	sample_values(r, &v, serial, sizeof serial);
	for (size_t row = 0; row < (rows ? rows : 1); row++) {
		v.csv_row = row;
		if (espl_template_render((const char *)t->data, t->size, ESPL_TEMPLATE_UNIT_DATA, &v, buf, s->unit_data.size,
		                         &n, &e) == 0 || strstr(e.msg, "no serial") || strstr(e.msg, "no CSV"))
			continue;
		snprintf(msg, sizeof msg, "%s", e.msg);
		if (rows)
			espl__yaml_error(&c->y, s->unit_data.size_pos, "write_unit_data.size: with the row at %s:%u, %s",
			                 r->csv.path, espl_csv_row_line(r->csv.table, row), msg);
		else
			espl__yaml_error(&c->y, s->unit_data.size_pos, "write_unit_data.size: %s", msg);
		break;
	}
	free(buf);
}

void espl__recipe_prepare_unit_data(parse_ctx *c, espl_recipe *r)
{
	if (r->csv.path && !r->csv.table)
		load_csv(c, &r->csv);
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		if (s->kind != ESPL_STEP_WRITE_UNIT_DATA || !s->unit_data.tmpl.data)
			continue;
		check_template(c, r, s);
		if (r->csv.path && !r->csv.table)
			return;
	}
}

void espl__recipe_free_unit_data(espl_recipe *r)
{
	free(r->serial.counter);
	free(r->serial.format);
	free(r->csv.path);
	free(r->csv.key_column);
	for (size_t i = 0; i < r->csv.n_secret; i++)
		free(r->csv.secret[i]);
	espl_csv_free(r->csv.table);
}
