/* unitdata.c - serial formats and unit-data templates; see include/espline/unitdata.h. */
#include "espline/unitdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIELD_MAX 96     /* a field's name and width, in bytes */
#define VALUE_MAX 32     /* a number or a MAC, formatted */

enum field_id { F_SERIAL, F_MAC, F_MAC_HEX, F_CHIP_ID, F_BATCH, F_DATE, F_YEAR, F_MONTH, F_DAY,
                F_WEEK, F_SEQ, F_CSV, F_SLOT, F_BARCODE, F_ID };

static const struct {
	const char *name;
	bool number;           /* takes a width */
	bool serial_ok, data_ok, label_ok;
} fields[] = {
	[F_SERIAL] = { "serial", false, false, true, true },
	[F_MAC] = { "mac", false, true, true, true },
	[F_MAC_HEX] = { "mac_hex", false, true, true, true },
	[F_CHIP_ID] = { "chip_id", false, true, true, true },
	[F_BATCH] = { "batch", false, true, true, true },
	[F_DATE] = { "date", false, true, true, true },
	[F_YEAR] = { "year", true, true, true, true },
	[F_MONTH] = { "month", true, true, true, true },
	[F_DAY] = { "day", true, true, true, true },
	[F_WEEK] = { "week", true, true, true, true },
	[F_SEQ] = { "seq", true, true, false, false },
	[F_CSV] = { "csv.", false, false, true, false },
	[F_SLOT] = { "slot", false, false, false, true },
	[F_BARCODE] = { "barcode", false, false, false, true },
	[F_ID] = { "id", false, false, false, true },
};

static bool allowed(size_t i, enum espl_template_kind kind)
{
	return kind == ESPL_TEMPLATE_SERIAL ? fields[i].serial_ok
	       : kind == ESPL_TEMPLATE_LABEL ? fields[i].label_ok : fields[i].data_ok;
}
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* One parsed {field}. */
typedef struct field {
	enum field_id id;
	const char *column;    /* F_CSV: the column name (inside spec) */
	int width;             /* 0 = none */
	char spec[FIELD_MAX];
} field;

/* Where a byte of the template is, for messages. */
static void place(const char *text, size_t at, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < at; i++) {
		if (text[i] == '\n') {
			++*line;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			++*col;
		}
	}
}

static int fail_at(const char *text, size_t at, espl_error *err, const char *what)
{
	unsigned line, col;
	place(text, at, &line, &col);
	return espl_fail(err, ESPL_ERECIPE, "line %u, column %u: %s", line, col, what);
}

static const char *kind_names(enum espl_template_kind kind)
{
	if (kind == ESPL_TEMPLATE_LABEL)
		return "serial, id, mac, mac_hex, chip_id, batch, slot, barcode, date, year, month, day, week";
	return kind == ESPL_TEMPLATE_SERIAL ? "seq, year, month, day, week, date, mac, mac_hex, chip_id, batch"
	                                    : "serial, mac, mac_hex, chip_id, batch, date, year, month, day, week, csv.COLUMN";
}

/* Parse the spec between braces into f; a message in why on failure. */
static bool parse_field(const char *spec, enum espl_template_kind kind, field *f, char *why, size_t cap)
{
	snprintf(f->spec, sizeof f->spec, "%s", spec);
	f->width = 0;
	f->column = NULL;
	char *colon = strchr(f->spec, ':');
	if (colon) {
		char *end;
		*colon = '\0';
		long w = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || w < 1 || w > 20) {
			snprintf(why, cap, "{%s}: the width after ':' must be a number from 1 to 20 (e.g. {seq:06})", spec);
			return false;
		}
		f->width = (int)w;
	}
	for (size_t i = 0; i < N_FIELDS; i++) {
		bool csv = i == F_CSV;
		if (csv ? strncmp(f->spec, fields[i].name, 4) != 0 : strcmp(f->spec, fields[i].name) != 0)
			continue;
		if (!allowed(i, kind))
			break;
		f->id = (enum field_id)i;
		if (csv && !(f->column = f->spec + 4)[0]) {
			snprintf(why, cap, "{%s}: name the column, e.g. {csv.cert}", spec);
			return false;
		}
		if (f->width && !fields[i].number) {
			snprintf(why, cap, "{%s}: only numbers take a width (year, month, day, week, seq)", spec);
			return false;
		}
		return true;
	}
	snprintf(why, cap, "unknown field {%.*s} in a %s; known: %s", (int)strcspn(spec, ":"), spec,
	         kind == ESPL_TEMPLATE_SERIAL ? "serial format"
	         : kind == ESPL_TEMPLATE_LABEL ? "label template" : "unit-data template", kind_names(kind));
	return false;
}

/* Walk text: literal bytes go to lit(), fields to fld().  Stops at the
 * first nonzero return of either. */
typedef int (*lit_fn)(void *ctx, const char *p, size_t n);
typedef int (*fld_fn)(void *ctx, const field *f, size_t at);

static int walk(const char *text, size_t len, enum espl_template_kind kind, lit_fn lit, fld_fn fld,
                void *ctx, espl_error *err)
{
	size_t i = 0;
	while (i < len) {
		size_t run = i;
		while (run < len && text[run] != '{' && text[run] != '}')
			run++;
		if (run > i)
			ESPL_TRY(lit(ctx, text + i, run - i));
		if (run >= len)
			break;
		i = run;
		if (i + 1 < len && text[i + 1] == text[i]) { /* {{ or }} */
			ESPL_TRY(lit(ctx, text + i, 1));
			i += 2;
			continue;
		}
		if (text[i] == '}')
			return fail_at(text, i, err, "a lone '}' (write '}}' for a brace)");
		size_t close = i + 1;
		while (close < len && text[close] != '}' && text[close] != '{' && text[close] != '\n')
			close++;
		if (close >= len || text[close] != '}' || close - i - 1 >= FIELD_MAX)
			return fail_at(text, i, err, "a '{' that does not start a {field} (write '{{' for a brace)");
		char spec[FIELD_MAX], why[300];
		field f;
		memcpy(spec, text + i + 1, close - i - 1);
		spec[close - i - 1] = '\0';
		if (!parse_field(spec, kind, &f, why, sizeof why))
			return fail_at(text, i, err, why);
		ESPL_TRY(fld(ctx, &f, i));
		i = close + 1;
	}
	return ESPL_OK;
}

/* ---- check ------------------------------------------------------------ */

typedef struct check_ctx {
	const char *text;
	const espl_csv *csv;
	bool seq;
	espl_error *err;
} check_ctx;

static int check_lit(void *ctx, const char *p, size_t n)
{
	(void)ctx; (void)p; (void)n;
	return ESPL_OK;
}

static int check_fld(void *ctx, const field *f, size_t at)
{
	check_ctx *c = ctx;
	char why[300];
	c->seq |= f->id == F_SEQ;
	if (f->id != F_CSV)
		return ESPL_OK;
	if (!c->csv)
		return fail_at(c->text, at, c->err, "{csv.*} needs a CSV file: add from_csv: FILE to this step");
	if (espl_csv_column(c->csv, f->column) < 0) {
		snprintf(why, sizeof why, "{csv.%.64s}: the CSV file has no column '%.64s'", f->column, f->column);
		return fail_at(c->text, at, c->err, why);
	}
	return ESPL_OK;
}

int espl_template_check(const char *text, size_t len, enum espl_template_kind kind,
                        const espl_csv *csv, espl_error *err)
{
	check_ctx c = { text, csv, false, err };
	ESPL_TRY(walk(text, len, kind, check_lit, check_fld, &c, err));
	if (kind == ESPL_TEMPLATE_SERIAL && !c.seq)
		return espl_fail(err, ESPL_ERECIPE, "the format has no {seq}: every serial number must differ (e.g. \"PX-{year}{week:02}-{seq:06}\")");
	return ESPL_OK;
}

/* ---- render ----------------------------------------------------------- */

typedef struct render_ctx {
	enum espl_template_kind kind;
	const espl_unit_values *v;
	uint8_t *out;
	size_t cap, len;
	bool overflow;
	struct tm tm;
	espl_error *err;
} render_ctx;

static int put(void *ctx, const char *p, size_t n)
{
	render_ctx *r = ctx;
	if (r->len + n > r->cap)
		r->overflow = true;
	else
		memcpy(r->out + r->len, p, n);
	r->len += n;
	return ESPL_OK;
}

/* ISO 8601 week number of tm (Monday weeks; week 1 holds the first Thursday). */
static int iso_week(const struct tm *tm)
{
	char buf[8];
	strftime(buf, sizeof buf, "%V", tm);
	return atoi(buf);
}

/* A field's value: in a label, '^', '~' and control characters would start
 * ZPL commands or break the field, so they are written as '?'. */
static int value(render_ctx *r, const char *s)
{
	s = s ? s : "";
	if (r->kind != ESPL_TEMPLATE_LABEL)
		return put(r, s, strlen(s));
	for (; *s; s++) {
		char c = (unsigned char)*s < 0x20 || *s == 0x7F || *s == '^' || *s == '~' ? '?' : *s;
		put(r, &c, 1);
	}
	return ESPL_OK;
}

static int number(render_ctx *r, const field *f, unsigned long long n)
{
	char buf[VALUE_MAX];
	int k = snprintf(buf, sizeof buf, "%0*llu", f->width, n);
	return put(r, buf, (size_t)k);
}

static int render_fld(void *ctx, const field *f, size_t at)
{
	render_ctx *r = ctx;
	const espl_unit_values *v = r->v;
	char buf[VALUE_MAX];
	(void)at;
	switch (f->id) {
	case F_SERIAL:
		if ((!v->serial || !*v->serial) && r->kind != ESPL_TEMPLATE_LABEL)
			return espl_fail(r->err, ESPL_EARG, "{serial}: the unit has no serial number (add a serial: section to the recipe)");
		return value(r, v->serial);
	case F_SLOT:
		return value(r, v->slot);
	case F_BARCODE:
		return value(r, v->barcode);
	case F_ID:
		return value(r, v->serial && *v->serial ? v->serial : v->mac);
	case F_MAC:
	case F_MAC_HEX: {
		const char *m = v->mac ? v->mac : "";
		size_t k = 0;
		if (f->id == F_MAC)
			return put(r, m, strlen(m));
		for (; *m && k + 1 < sizeof buf; m++)
			if (*m != ':')
				buf[k++] = *m;
		return put(r, buf, k);
	}
	case F_CHIP_ID:
		return put(r, buf, (size_t)snprintf(buf, sizeof buf, "%08x", (unsigned)v->chip_id));
	case F_BATCH:
		return value(r, v->batch);
	case F_DATE:
		return put(r, buf, strftime(buf, sizeof buf, "%Y-%m-%d", &r->tm));
	case F_YEAR: return number(r, f, (unsigned long long)r->tm.tm_year + 1900);
	case F_MONTH: return number(r, f, (unsigned long long)r->tm.tm_mon + 1);
	case F_DAY: return number(r, f, (unsigned long long)r->tm.tm_mday);
	case F_WEEK: return number(r, f, (unsigned long long)iso_week(&r->tm));
	case F_SEQ: return number(r, f, v->seq);
	case F_CSV: {
		int col = v->csv ? espl_csv_column(v->csv, f->column) : -1;
		if (col < 0 || v->csv_row >= espl_csv_rows(v->csv))
			return espl_fail(r->err, ESPL_EARG, "{csv.%.64s}: the unit has no CSV row with that column", f->column);
		const char *cell = espl_csv_cell(v->csv, v->csv_row, (size_t)col);
		return put(r, cell, strlen(cell));
	}
	}
	return espl_fail(r->err, ESPL_EARG, "unknown field");
}

int espl_template_render(const char *text, size_t len, enum espl_template_kind kind,
                         const espl_unit_values *v, uint8_t *out, size_t cap, size_t *out_len,
                         espl_error *err)
{
	render_ctx r = { kind, v, out, cap, 0, false, { 0 }, err };
	time_t t = (time_t)(v->time_ms / 1000);
	*out_len = 0;
	if (!gmtime_r(&t, &r.tm))
		return espl_fail(err, ESPL_EARG, "the clock's time cannot be read as a date");
	ESPL_TRY(walk(text, len, kind, put, render_fld, &r, err));
	if (r.overflow)
		return espl_fail(err, ESPL_EARG, "rendered %s is %zu bytes, more than the %zu bytes it may take",
		                 kind == ESPL_TEMPLATE_SERIAL ? "serial number"
		                 : kind == ESPL_TEMPLATE_LABEL ? "label" : "unit data", r.len, cap);
	*out_len = r.len;
	return ESPL_OK;
}
