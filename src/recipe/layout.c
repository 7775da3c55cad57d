/* layout.c - binary layouts for write_unit_data; see include/espline/layout.h. */
#include "espline/layout.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define TEXT_MAX (2 * ESPL_LAYOUT_MAX_BYTES + 64) /* a rendered value */

static const struct {
	const char *name;
	uint32_t size;        /* 0: [N] follows the name */
	uint64_t max;         /* integers: the largest value */
	bool big_endian;
} types[] = {
	[ESPL_LAYOUT_U8] = { "u8", 1, 0xFF, false },
	[ESPL_LAYOUT_U16LE] = { "u16le", 2, 0xFFFF, false },
	[ESPL_LAYOUT_U16BE] = { "u16be", 2, 0xFFFF, true },
	[ESPL_LAYOUT_U32LE] = { "u32le", 4, 0xFFFFFFFFu, false },
	[ESPL_LAYOUT_U32BE] = { "u32be", 4, 0xFFFFFFFFu, true },
	[ESPL_LAYOUT_STR] = { "str", 0, 0, false },
	[ESPL_LAYOUT_BYTES] = { "bytes", 0, 0, false },
	[ESPL_LAYOUT_MAC] = { "mac", 6, 0, false },
	[ESPL_LAYOUT_CRC32] = { "crc32", 4, 0, false },
};
#define N_TYPES (sizeof types / sizeof types[0])

static bool is_integer(enum espl_layout_type t)
{
	return t <= ESPL_LAYOUT_U32BE;
}

int espl_layout_parse_type(const char *text, enum espl_layout_type *type, uint32_t *size, espl_error *err)
{
	for (size_t i = 0; i < N_TYPES; i++) {
		size_t n = strlen(types[i].name);
		if (strncmp(text, types[i].name, n) != 0)
			continue;
		if (text[n] == '\0') {  /* str and bytes: *size 0, the size comes apart */
			*type = (enum espl_layout_type)i;
			*size = types[i].size;
			return ESPL_OK;
		}
		if (!types[i].size && text[n] == '[') {
			char *end;
			errno = 0;
			unsigned long v = strtoul(text + n + 1, &end, 10);
			if (!isdigit((unsigned char)text[n + 1]) || errno || strcmp(end, "]") != 0 || v == 0 ||
			    v > ESPL_LAYOUT_MAX_BYTES)
				return espl_fail(err, ESPL_EARG, "%s[N] takes a size N from 1 to %d, e.g. %s[32]", types[i].name,
				                 ESPL_LAYOUT_MAX_BYTES, types[i].name);
			*type = (enum espl_layout_type)i;
			*size = (uint32_t)v;
			return ESPL_OK;
		}
	}
	return espl_fail(err, ESPL_EARG, "unknown type; expected u8, u16le, u16be, u32le, u32be, str[N], bytes[N], mac or crc32");
}

/* "field at 0x10 (u32le)" for messages. */
static const char *name_of(const espl_layout_field *f, char *buf, size_t cap)
{
	if (types[f->type].size)
		snprintf(buf, cap, "field at 0x%x (%s)", f->offset, types[f->type].name);
	else
		snprintf(buf, cap, "field at 0x%x (%s[%u])", f->offset, types[f->type].name, f->size);
	return buf;
}

/* ---- one field's bytes ----------------------------------------------------- */

static int put_integer(const espl_layout_field *f, const char *text, uint8_t *out, espl_error *err)
{
	char *end, shown[80];
	errno = 0;
	unsigned long long v = strtoull(text, &end, 0);
	if (!isdigit((unsigned char)text[0]) || *end || errno)
		return espl_fail(err, ESPL_EARG, "%s: '%.40s' is not a number (decimal, or hex after 0x: \"0x{chip_id}\")",
		                 name_of(f, shown, sizeof shown), text);
	if (v > types[f->type].max)
		return espl_fail(err, ESPL_EARG, "%s: %llu does not fit (at most %llu)", name_of(f, shown, sizeof shown), v,
		                 (unsigned long long)types[f->type].max);
	for (uint32_t i = 0; i < f->size; i++) {
		uint32_t shift = 8 * (types[f->type].big_endian ? f->size - 1 - i : i);
		out[i] = (uint8_t)(v >> shift);
	}
	return ESPL_OK;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Exactly want bytes of hex text, with ':' between bytes allowed when colons. */
static int put_hex(const espl_layout_field *f, const char *text, uint32_t want, bool colons, uint8_t *out,
                   espl_error *err)
{
	char shown[80];
	uint32_t n = 0;
	for (const char *p = text; *p;) {
		if (colons && n && *p == ':')
			p++;
		int hi = hex_digit(p[0]), lo = hi < 0 ? -1 : hex_digit(p[1]);
		if (lo < 0 || n == want)
			return espl_fail(err, ESPL_EARG, "%s: expected %u bytes as %u hex digits%s, got '%.40s'",
			                 name_of(f, shown, sizeof shown), want, 2 * want, colons ? " (':' between bytes allowed)" : "",
			                 text);
		out[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	if (n != want)
		return espl_fail(err, ESPL_EARG, "%s: expected %u bytes, got %u", name_of(f, shown, sizeof shown), want, n);
	return ESPL_OK;
}

static int put_field(const espl_layout_field *f, const espl_unit_values *v, uint8_t *out, espl_error *err)
{
	char text[TEXT_MAX + 1], shown[80];
	const char *tmpl = f->value ? f->value : "{mac}";
	size_t len = 0;
	if (espl_template_render(tmpl, strlen(tmpl), ESPL_TEMPLATE_UNIT_DATA, v, (uint8_t *)text, TEXT_MAX, &len, err) < 0) {
		espl_error_prefix(err, "%s", name_of(f, shown, sizeof shown));
		return err->code;
	}
	if (f->type == ESPL_LAYOUT_STR) {
		if (len > f->size)
			return espl_fail(err, ESPL_EARG, "%s: the text is %zu bytes, more than its %u", name_of(f, shown, sizeof shown),
			                 len, f->size);
		memcpy(out, text, len);
		memset(out + len, 0, f->size - len);
		return ESPL_OK;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len))
		return espl_fail(err, ESPL_EARG, "%s: the value holds a NUL byte", name_of(f, shown, sizeof shown));
	if (is_integer(f->type))
		return put_integer(f, text, out, err);
	return put_hex(f, text, f->size, f->type == ESPL_LAYOUT_MAC, out, err);
}

int espl_layout_render(const espl_layout_field *f, size_t n, const espl_unit_values *v, uint8_t pad, uint8_t *out,
                       uint32_t size, espl_error *err)
{
	memset(out, pad, size);
	for (size_t i = 0; i < n; i++)
		if (f[i].type != ESPL_LAYOUT_CRC32 && f[i].offset <= size && f[i].size <= size - f[i].offset)
			ESPL_TRY(put_field(&f[i], v, out + f[i].offset, err));
	for (size_t i = 0; i < n; i++) {
		const espl_layout_field *c = &f[i];
		if (c->type != ESPL_LAYOUT_CRC32 || c->to > size || c->from >= c->to || c->offset > size - 4)
			continue;
		uint32_t crc = (uint32_t)crc32(0L, out + c->from, c->to - c->from);
		for (int b = 0; b < 4; b++)
			out[c->offset + b] = (uint8_t)(crc >> (8 * b));
	}
	return ESPL_OK;
}

/* ---- checks ------------------------------------------------------------------ */

static bool overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return a < b + blen && b < a + alen;
}

static int check_shape(const espl_layout_field *f, size_t n, uint32_t size, size_t *at, espl_error *err)
{
	char shown[80], other[80];
	for (size_t i = 0; i < n; i++) {
		*at = i;
		if (f[i].offset > size || f[i].size > size - f[i].offset)
			return espl_fail(err, ESPL_ERECIPE, "%s ends at 0x%llx, past the region's size 0x%x", name_of(&f[i], shown, sizeof shown),
			                 (unsigned long long)f[i].offset + f[i].size, size);
		for (size_t j = 0; j < i; j++)
			if (overlap(f[i].offset, f[i].size, f[j].offset, f[j].size))
				return espl_fail(err, ESPL_ERECIPE, "%s overlaps the %s (line %u)", name_of(&f[i], shown, sizeof shown),
				                 name_of(&f[j], other, sizeof other), f[j].line);
		if (f[i].type != ESPL_LAYOUT_CRC32)
			continue;
		if (f[i].from >= f[i].to || f[i].to > size)
			return espl_fail(err, ESPL_ERECIPE, "%s: over: [0x%x, 0x%x) is not a range inside the region (0 to 0x%x)",
			                 name_of(&f[i], shown, sizeof shown), f[i].from, f[i].to, size);
		for (size_t j = 0; j < n; j++)
			if (f[j].type == ESPL_LAYOUT_CRC32 && overlap(f[i].from, f[i].to - f[i].from, f[j].offset, 4))
				return espl_fail(err, ESPL_ERECIPE, "%s: its range [0x%x, 0x%x) covers the %s, whose value depends on it",
				                 name_of(&f[i], shown, sizeof shown), f[i].from, f[i].to,
				                 j == i ? "CRC itself" : name_of(&f[j], other, sizeof other));
	}
	*at = n;
	return n ? ESPL_OK : espl_fail(err, ESPL_ERECIPE, "a layout needs at least one field");
}

int espl_layout_check(const espl_layout_field *f, size_t n, uint32_t size, const espl_csv *csv, const char *csv_name,
                      const espl_unit_values *sample, size_t *field, bool *in_value, espl_error *err)
{
	*in_value = false;
	ESPL_TRY(check_shape(f, n, size, field, err));
	*in_value = true;
	for (size_t i = 0; i < n; i++) {
		*field = i;
		if (f[i].value && espl_template_check(f[i].value, strlen(f[i].value), ESPL_TEMPLATE_UNIT_DATA, csv, err) < 0)
			return err->code;
	}
	uint8_t *buf = malloc(size);
	if (!buf)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	espl_unit_values v = *sample;
	size_t rows = csv ? espl_csv_rows(csv) : 0;
	int rc = ESPL_OK;
	v.csv = csv;
	for (size_t row = 0; row < (rows ? rows : 1) && rc == ESPL_OK; row++) {
		v.csv_row = row;
		for (size_t i = 0; i < n && rc == ESPL_OK; i++) {
			*field = i;
			if (f[i].type == ESPL_LAYOUT_CRC32)
				continue;
			rc = put_field(&f[i], &v, buf + f[i].offset, err);
			if (rc < 0 && (strstr(err->msg, "no serial") || strstr(err->msg, "no CSV")))
				rc = ESPL_OK;  /* a value the sample does not have */
			else if (rc < 0 && rows && strstr(f[i].value ? f[i].value : "", "{csv."))
				espl_error_prefix(err, "with the row at %s:%u", csv_name ? csv_name : "the CSV file",
				                  espl_csv_row_line(csv, row));
		}
	}
	memset(buf, 0, size);
	free(buf);
	return rc;
}

void espl_layout_free(espl_layout_field *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		free(f[i].value);
	free(f);
}
