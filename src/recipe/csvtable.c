/* csvtable.c - per-unit data from a CSV file; see include/espline/csvtable.h. */
#include "espline/csvtable.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"

struct keyed {
	const char *key;
	size_t row;
};

struct espl_csv {
	char *name;
	char *cells;            /* every cell, NUL-terminated, one after another */
	size_t *cell_at;        /* (rows + 1) * cols offsets into cells; row 0 = header */
	unsigned *line_of;      /* rows + 1: the line each record starts on */
	size_t rows, cols, key;
	size_t cells_len;       /* bytes used in cells */
	struct keyed *by_key;   /* rows, sorted by key */
};

/* ---- UTF-8 ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	uint32_t cp;
	size_t n;
	if (p[0] < 0x80)
		return p[0] ? 1 : 0;
	if ((p[0] & 0xE0) == 0xC0) { n = 2; cp = p[0] & 0x1F; }
	else if ((p[0] & 0xF0) == 0xE0) { n = 3; cp = p[0] & 0x0F; }
	else if ((p[0] & 0xF8) == 0xF0) { n = 4; cp = p[0] & 0x07; }
	else return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static int check_utf8(const char *name, const char *text, size_t len, espl_error *err)
{
	unsigned line = 1;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq((const unsigned char *)text + i, len - i);
		if (n == 0)
			return espl_fail(err, ESPL_EARG, "%s:%u: byte 0x%02X at offset %zu is not UTF-8 text%s; save the file as UTF-8",
			                 name, line, (unsigned char)text[i], i, text[i] ? "" : " (a NUL byte)");
		line += text[i] == '\n';
		i += n;
	}
	return ESPL_OK;
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct builder {
	espl_csv *t;
	size_t cells_len, n_cells, cap_cells, n_records, cap_records;
	size_t fields_in_record;
} builder;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static int add_cell(builder *b, size_t start, espl_error *err)
{
	if (grow((void **)&b->t->cell_at, &b->cap_cells, b->n_cells + 1, sizeof *b->t->cell_at) < 0)
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading %s", b->t->name);
	b->t->cell_at[b->n_cells++] = start;
	b->fields_in_record++;
	return ESPL_OK;
}

static int end_record(builder *b, unsigned line, espl_error *err)
{
	size_t cols = b->n_records == 0 ? b->fields_in_record : b->t->cols;
	if (b->n_records == 0) {
		if (cols > ESPL_CSV_MAX_COLUMNS)
			return espl_fail(err, ESPL_EARG, "%s:%u: %zu columns; at most %d", b->t->name, line, cols,
			                 ESPL_CSV_MAX_COLUMNS);
		b->t->cols = cols;
	} else if (b->fields_in_record != cols) {
		return espl_fail(err, ESPL_EARG, "%s:%u: this row has %zu fields, the header has %zu columns (a missing column or a stray comma?)",
		                 b->t->name, line, b->fields_in_record, cols);
	}
	if (grow((void **)&b->t->line_of, &b->cap_records, b->n_records + 1, sizeof *b->t->line_of) < 0)
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading %s", b->t->name);
	b->t->line_of[b->n_records++] = line;
	b->fields_in_record = 0;
	return ESPL_OK;
}

/* Split text into records of cells, unquoting in place into t->cells. */
static int split(builder *b, const char *text, size_t len, espl_error *err)
{
	espl_csv *t = b->t;
	size_t i = 0;
	unsigned line = 1;
	while (i < len) {
		unsigned record_line = line;
		if (text[i] == '\n' || (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')) {
			i += text[i] == '\r' ? 2 : 1; /* a blank line */
			line++;
			continue;
		}
		for (;;) { /* one field */
			ESPL_TRY(add_cell(b, b->cells_len, err));
			if (i < len && text[i] == '"') {
				unsigned opened = line;
				for (i++;; i++) {
					if (i >= len)
						return espl_fail(err, ESPL_EARG, "%s:%u: a quoted field is never closed", t->name, opened);
					if (text[i] == '"' && i + 1 < len && text[i + 1] == '"')
						i++;
					else if (text[i] == '"')
						break;
					line += text[i] == '\n';
					t->cells[b->cells_len++] = text[i];
				}
				i++;
				if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
					return espl_fail(err, ESPL_EARG, "%s:%u: text after a closing quote (write \"\" for a quote inside a quoted field)",
					                 t->name, line);
			} else {
				for (; i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r'; i++) {
					if (text[i] == '"')
						return espl_fail(err, ESPL_EARG, "%s:%u: a quote inside an unquoted field (quote the whole field and write \"\")",
						                 t->name, line);
					t->cells[b->cells_len++] = text[i];
				}
			}
			t->cells[b->cells_len++] = '\0';
			if (i < len && text[i] == ',') {
				i++;
				continue;
			}
			if (i < len && text[i] == '\r') {
				if (i + 1 >= len || text[i + 1] != '\n')
					return espl_fail(err, ESPL_EARG, "%s:%u: a carriage return that does not end a line", t->name, line);
				i++;
			}
			if (i < len) {
				i++; /* the newline */
				line++;
			}
			break;
		}
		ESPL_TRY(end_record(b, record_line, err));
	}
	return ESPL_OK;
}

static int by_key_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* Keys sorted, so that a repeated key sits next to its twin. */
static int index_keys(espl_csv *t, espl_error *err)
{
	t->by_key = calloc(t->rows ? t->rows : 1, sizeof *t->by_key);
	if (!t->by_key)
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading %s", t->name);
	for (size_t r = 0; r < t->rows; r++) {
		t->by_key[r] = (struct keyed){ espl_csv_key(t, r), r };
		if (!*t->by_key[r].key)
			return espl_fail(err, ESPL_EARG, "%s:%u: the key column '%s' is empty in this row",
			                 t->name, espl_csv_row_line(t, r), espl_csv_column_name(t, t->key));
	}
	qsort(t->by_key, t->rows, sizeof *t->by_key, by_key_cmp);
	for (size_t i = 1; i < t->rows; i++)
		if (strcmp(t->by_key[i - 1].key, t->by_key[i].key) == 0)
			return espl_fail(err, ESPL_EARG, "%s:%u: duplicate key '%.64s' in column '%s' (first at line %u); every row needs its own key",
			                 t->name, espl_csv_row_line(t, t->by_key[i].row), t->by_key[i].key,
			                 espl_csv_column_name(t, t->key), espl_csv_row_line(t, t->by_key[i - 1].row));
	return ESPL_OK;
}

static int check_header(espl_csv *t, const char *key_column, espl_error *err)
{
	if (t->cols == 0)
		return espl_fail(err, ESPL_EARG, "%s: no header row (the first line names the columns)", t->name);
	for (size_t c = 0; c < t->cols; c++) {
		if (!*espl_csv_column_name(t, c))
			return espl_fail(err, ESPL_EARG, "%s:%u: column %zu has no name in the header", t->name, t->line_of[0], c + 1);
		for (size_t d = 0; d < c; d++)
			if (strcmp(espl_csv_column_name(t, c), espl_csv_column_name(t, d)) == 0)
				return espl_fail(err, ESPL_EARG, "%s:%u: column '%.64s' is named twice in the header", t->name,
				                 t->line_of[0], espl_csv_column_name(t, c));
	}
	if (key_column) {
		int k = espl_csv_column(t, key_column);
		if (k < 0)
			return espl_fail(err, ESPL_EARG, "%s:%u: no column '%.64s' in the header (the key column)", t->name,
			                 t->line_of[0], key_column);
		t->key = (size_t)k;
	}
	return ESPL_OK;
}

int espl_csv_parse(const char *name, const char *text, size_t len, const char *key_column,
                   espl_csv **out, espl_error *err)
{
	*out = NULL;
	ESPL_TRY(check_utf8(name, text, len, err));
	espl_csv *t = calloc(1, sizeof *t);
	builder b = { .t = t };
	if (!t || !(t->name = strdup(name)) || !(t->cells = malloc(2 * len + 2))) {
		espl_csv_free(t);
		return espl_fail(err, ESPL_ENOMEM, "out of memory reading %s", name);
	}
	int rc = split(&b, text, len, err);
	t->cells_len = b.cells_len;
	if (rc == 0 && b.n_records == 0)
		rc = espl_fail(err, ESPL_EARG, "%s: empty (expected a header row and one row per unit)", name);
	if (rc == 0) {
		t->rows = b.n_records - 1;
		rc = check_header(t, key_column, err);
	}
	if (rc == 0)
		rc = index_keys(t, err);
	if (rc < 0) {
		espl_csv_free(t);
		return rc;
	}
	*out = t;
	return ESPL_OK;
}

int espl_csv_load(const char *path, const char *key_column, espl_csv **out, espl_error *err)
{
	char *text;
	size_t len;
	*out = NULL;
	ESPL_TRY(espl__file_read(path, ESPL_CSV_MAX_BYTES, "CSV file", &text, &len, err));
	int rc = espl_csv_parse(path, text, len, key_column, out, err);
	/* the text may hold secrets: do not leave them in freed memory */
	memset(text, 0, len);
	free(text);
	return rc;
}

void espl_csv_free(espl_csv *t)
{
	if (!t)
		return;
	if (t->cells)
		memset(t->cells, 0, t->cells_len);
	free(t->name);
	free(t->cells);
	free(t->cell_at);
	free(t->line_of);
	free(t->by_key);
	free(t);
}

size_t espl_csv_rows(const espl_csv *t) { return t->rows; }
size_t espl_csv_columns(const espl_csv *t) { return t->cols; }
size_t espl_csv_key_column(const espl_csv *t) { return t->key; }

const char *espl_csv_column_name(const espl_csv *t, size_t col)
{
	return t->cells + t->cell_at[col];
}

int espl_csv_column(const espl_csv *t, const char *name)
{
	for (size_t c = 0; c < t->cols; c++)
		if (strcmp(espl_csv_column_name(t, c), name) == 0)
			return (int)c;
	return -1;
}

const char *espl_csv_cell(const espl_csv *t, size_t row, size_t col)
{
	return t->cells + t->cell_at[(row + 1) * t->cols + col];
}

const char *espl_csv_key(const espl_csv *t, size_t row)
{
	return espl_csv_cell(t, row, t->key);
}

long espl_csv_find(const espl_csv *t, const char *key)
{
	size_t lo = 0, hi = t->rows;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->by_key[mid].key, key);
		if (c == 0)
			return (long)t->by_key[mid].row;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

size_t espl_csv_max_len(const espl_csv *t, size_t col)
{
	size_t m = 0;
	for (size_t r = 0; r < t->rows; r++) {
		size_t n = strlen(espl_csv_cell(t, r, col));
		m = n > m ? n : m;
	}
	return m;
}

unsigned espl_csv_row_line(const espl_csv *t, size_t row)
{
	return t->line_of[row + 1];
}
