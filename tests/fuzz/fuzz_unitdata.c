/* fuzz_unitdata.c - libFuzzer target: CSV files (include/espline/csvtable.h)
 * and unit-data templates and serial formats (include/espline/unitdata.h).
 *
 * The input's first byte chooses the key column (none, or the second); the
 * rest is split at the first NUL byte: before it a CSV text, after it a
 * template.  The CSV is parsed; when it parses, every row's key is found
 * again by espl_csv_find, no cell is longer than espl_csv_max_len says, and
 * a cell never holds a NUL.  The template is checked as a unit-data
 * template against the table (and as a serial format without one); when it
 * passes, it is rendered for every row (at most 64) into a small and a
 * large buffer: the rendering either fits and says how long it is, or
 * fails; the small one never receives more than its size. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/csvtable.h"
#include "espline/unitdata.h"
#include "fuzz_util.h"

#define FUZZ_UD_SMALL 16
#define FUZZ_UD_BIG 8192

static void fuzz_ud_check_table(const espl_csv *t)
{
	for (size_t c = 0; c < espl_csv_columns(t); c++) {
		FUZZ_CHECK(espl_csv_column(t, espl_csv_column_name(t, c)) == (int)c);
		size_t max = espl_csv_max_len(t, c);
		for (size_t r = 0; r < espl_csv_rows(t); r++)
			FUZZ_CHECK(strlen(espl_csv_cell(t, r, c)) <= max);
	}
	for (size_t r = 0; r < espl_csv_rows(t); r++)
		FUZZ_CHECK(espl_csv_find(t, espl_csv_key(t, r)) == (long)r);
}

static void fuzz_ud_render(const char *tmpl, size_t len, enum espl_template_kind kind, const espl_csv *t)
{
	static uint8_t small[FUZZ_UD_SMALL + 1], big[FUZZ_UD_BIG];
	espl_unit_values v = { .serial = "PX-000001", .mac = "5c:cf:7f:a0:00:01", .chip_id = 0xa00001,
	                       .batch = "B", .time_ms = 1798718400000LL, .seq = 7, .csv = t };
	size_t rows = t ? espl_csv_rows(t) : 1;
	for (size_t r = 0; r < rows && r < 64; r++) {
		espl_error e;
		size_t n = 0;
		v.csv_row = r;
		small[FUZZ_UD_SMALL] = 0xA5; /* a guard past the end */
		if (espl_template_render(tmpl, len, kind, &v, small, FUZZ_UD_SMALL, &n, &e) == 0)
			FUZZ_CHECK(n <= FUZZ_UD_SMALL);
		FUZZ_CHECK(small[FUZZ_UD_SMALL] == 0xA5);
		if (espl_template_render(tmpl, len, kind, &v, big, sizeof big, &n, &e) == 0)
			FUZZ_CHECK(n <= sizeof big);
		else
			FUZZ_CHECK(e.msg[0] != '\0');
	}
}

static int fuzz_unitdata_one(const uint8_t *data, size_t size)
{
	espl_csv *t = NULL;
	espl_error e;
	if (size < 1)
		return 0;
	const char *key = data[0] & 1 ? "b" : NULL;
	const char *text = (const char *)data + 1;
	size -= 1;
	const char *nul = memchr(text, '\0', size);
	size_t csv_len = nul ? (size_t)(nul - text) : size;
	const char *tmpl = nul ? nul + 1 : "";
	size_t tmpl_len = nul ? size - csv_len - 1 : 0;
	if (espl_csv_parse("fuzz.csv", text, csv_len, key, &t, &e) == 0)
		fuzz_ud_check_table(t);
	else
		FUZZ_CHECK(t == NULL && e.msg[0] != '\0');
	if (espl_template_check(tmpl, tmpl_len, ESPL_TEMPLATE_UNIT_DATA, t, &e) == 0)
		fuzz_ud_render(tmpl, tmpl_len, ESPL_TEMPLATE_UNIT_DATA, t);
	if (espl_template_check(tmpl, tmpl_len, ESPL_TEMPLATE_SERIAL, NULL, &e) == 0)
		fuzz_ud_render(tmpl, tmpl_len, ESPL_TEMPLATE_SERIAL, NULL);
	espl_csv_free(t);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_unitdata_one(data, size);
}
#endif
