/* parse_unit.c - a recipe's per-unit data: the serial section and the
 * write_unit_data step, and their checks once the files are read; see
 * include/espline/recipe.h and src/recipe/recipe_int.h. */
#include "espline/recipe.h"
#include "espline/csvtable.h"
#include "espline/layout.h"
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

/* One field of a layout: { offset: 0x10, type: u32le, value: "0x{chip_id}" }
 * or { offset: 0xFC, type: crc32, over: [0, 0xFC] }.  false: reported. */
static bool parse_layout_field(parse_ctx *c, yaml_node_t *n, size_t i, espl_layout_field *out)
{
	static const char *const keys[] = { "offset", "type", "size", "value", "over" };
	espl__yaml_fields f = { keys, 5, { 0 }, { 0 } };
	char what[48], buf[64];
	yaml_node_t *x;
	espl_error e;
	const char *text;
	snprintf(what, sizeof what, "write_unit_data.layout[%zu]", i + 1);
	if (!espl__yaml_want_mapping(&c->y, n, what, "{ offset: 0x10, type: u32le, value: \"0x{chip_id}\" }"))
		return false;
	espl__yaml_read_fields(&c->y, n, what, &f, NULL, NULL);
	out->line = espl__yaml_pos(n).line;
	out->column = espl__yaml_pos(n).column;
	snprintf(buf, sizeof buf, "%s.offset", what);
	if (!(x = espl__yaml_field(&f, "offset")))
		espl__yaml_missing_key(&c->y, n, what, "offset", "offset: 0x10");
	else if (!espl__recipe_get_u32(c, x, buf, &out->offset))
		return false;
	if (!(x = espl__yaml_field(&f, "type"))) {
		espl__yaml_missing_key(&c->y, n, what, "type", "type: u32le");
		return false;
	}
	snprintf(buf, sizeof buf, "%s.type", what);
	if (!espl__yaml_string(&c->y, x, buf, &text))
		return false;
	if (espl_layout_parse_type(text, &out->type, &out->size, &e) < 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(x), "%s: '%s': %s", buf, text, e.msg);
		return false;
	}
	yaml_node_t *size = espl__yaml_field(&f, "size");
	snprintf(buf, sizeof buf, "%s.size", what);
	if (out->size == 0 && !size) {
		espl__yaml_missing_key(&c->y, n, what, "size", "size: 32 (the bytes a str or bytes field takes)");
		return false;
	}
	if (size && out->size) {
		espl__yaml_error(&c->y, espl__yaml_pos(size), "%s: a %s has its own size; size: goes with str and bytes", buf, text);
		return false;
	}
	if (size && (!espl__recipe_get_u32(c, size, buf, &out->size) || out->size == 0 || out->size > ESPL_LAYOUT_MAX_BYTES)) {
		if (out->size == 0 || out->size > ESPL_LAYOUT_MAX_BYTES)
			espl__yaml_error(&c->y, espl__yaml_pos(size), "%s: expected 1 to %d bytes", buf, ESPL_LAYOUT_MAX_BYTES);
		return false;
	}
	yaml_node_t *value = espl__yaml_field(&f, "value"), *over = espl__yaml_field(&f, "over");
	if (out->type == ESPL_LAYOUT_CRC32) {
		if (value)
			espl__yaml_error(&c->y, espl__yaml_pos(value), "%s.value: a crc32 has no value: it is computed over: [FROM, TO]", what);
		yaml_node_item_t *it = over && over->type == YAML_SEQUENCE_NODE ? over->data.sequence.items.start : NULL;
		if (!over || !it || over->data.sequence.items.top - it != 2) {
			espl__yaml_error(&c->y, over ? espl__yaml_pos(over) : espl__yaml_pos(n),
			                 "%s.over: a crc32 needs the range it covers, from and to (not included): over: [0, 0xFC]", what);
			return false;
		}
		snprintf(buf, sizeof buf, "%s.over", what);
		return espl__recipe_get_u32(c, espl__yaml_node(&c->y, it[0]), buf, &out->from) &&
		       espl__recipe_get_u32(c, espl__yaml_node(&c->y, it[1]), buf, &out->to);
	}
	if (over)
		espl__yaml_error(&c->y, espl__yaml_pos(over), "%s.over: only a crc32 covers a range", what);
	if (!value) {
		if (out->type != ESPL_LAYOUT_MAC)
			espl__yaml_missing_key(&c->y, n, what, "value", "value: \"{serial}\"");
		return out->type == ESPL_LAYOUT_MAC;
	}
	snprintf(buf, sizeof buf, "%s.value", what);
	if (!espl__yaml_string(&c->y, value, buf, &text))
		return false;
	out->value_line = espl__yaml_pos(value).line;
	out->value_column = espl__yaml_pos(value).column;
	return (out->value = dup_or_report(c, value, text)) != NULL;
}

/* layout: a list of fields (layout.h) instead of a template. */
static void parse_layout(parse_ctx *c, yaml_node_t *n, espl_step *s)
{
	s->unit_data.layout_pos = espl__yaml_pos(n);
	yaml_node_item_t *it = n->type == YAML_SEQUENCE_NODE ? n->data.sequence.items.start : NULL;
	size_t total = it ? (size_t)(n->data.sequence.items.top - it) : 0;
	if (!it || total == 0 || total > ESPL_LAYOUT_MAX_FIELDS) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "write_unit_data.layout: expected a list of 1 to %d fields, e.g. "
		                 "[{ offset: 0, type: str[32], value: \"{serial}\" }, { offset: 32, type: mac }]",
		                 ESPL_LAYOUT_MAX_FIELDS);
		return;
	}
	if (!(s->unit_data.layout = calloc(total, sizeof *s->unit_data.layout))) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
		return;
	}
	for (size_t i = 0; i < total; i++) {
		if (!parse_layout_field(c, espl__yaml_node(&c->y, it[i]), i, &s->unit_data.layout[i])) {
			free(s->unit_data.layout[i].value);
			continue;
		}
		s->unit_data.n_layout++;
		if (s->unit_data.n_layout != i + 1)  /* keep the fields contiguous */
			s->unit_data.layout[s->unit_data.n_layout - 1] = s->unit_data.layout[i];
	}
}

void espl__recipe_parse_unit_data(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	static const char *const keys[] = { "address", "size", "template", "layout", "pad", "skip_unchanged", "from_csv",
	                                    "csv_key", "secret_columns", "csv_policy", "retries", "timeout" };
	espl__yaml_fields f = { keys, 12, { 0 }, { 0 } };
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
	yaml_node_t *layout = espl__yaml_field(&f, "layout");
	if (!(x = espl__yaml_field(&f, "template")) && !layout)
		espl__yaml_missing_key(&c->y, v, "write_unit_data", "template", "template: unit.tmpl (or layout: [fields])");
	else if (x && layout)
		espl__yaml_error(&c->y, espl__yaml_pos(layout), "write_unit_data: a template (line %u) or a layout, not both",
		                 espl__yaml_pos(x).line);
	else if (x)
		espl__recipe_get_file(c, x, "write_unit_data.template", &s->unit_data.tmpl);
	else
		parse_layout(c, layout, s);
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

/* Check a layout's shape and render it for every CSV row (or once). */
static void check_layout(parse_ctx *c, const espl_recipe *r, const espl_step *s)
{
	const espl_layout_field *f = s->unit_data.layout;
	char serial[128];
	espl_unit_values v;
	espl_error e;
	size_t at;
	bool in_value;
	sample_values(r, &v, serial, sizeof serial);
	if (espl_layout_check(f, s->unit_data.n_layout, s->unit_data.size, r->csv.table, r->csv.path, &v, &at,
	                      &in_value, &e) == 0)
		return;
	if (at >= s->unit_data.n_layout)
		espl__yaml_error(&c->y, s->unit_data.layout_pos, "write_unit_data.layout: %s", e.msg);
	else if (in_value && f[at].value_line)
		espl__yaml_error(&c->y, (espl_recipe_pos){ f[at].value_line, f[at].value_column },
		                 "write_unit_data.layout[%zu].value: %s", at + 1, e.msg);
	else
		espl__yaml_error(&c->y, (espl_recipe_pos){ f[at].line, f[at].column }, "write_unit_data.layout[%zu]: %s",
		                 at + 1, e.msg);
}

void espl__recipe_prepare_unit_data(parse_ctx *c, espl_recipe *r)
{
	if (r->csv.path && !r->csv.table)
		load_csv(c, &r->csv);
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		if (s->kind == ESPL_STEP_WRITE_UNIT_DATA && s->unit_data.layout)
			check_layout(c, r, s);
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
