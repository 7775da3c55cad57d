/*
 * csvtable.h - a CSV file of per-unit data (one row per unit), read once
 * and checked whole.
 *
 * The file is read as a bounded regular file (at most ESPL_CSV_MAX_BYTES),
 * must be UTF-8, and has a header row naming the columns.  Fields are
 * separated by commas; a field in double quotes may hold commas, line
 * breaks (a PEM certificate) and "" for one quote.  Lines end in LF or
 * CRLF.  Every row has as many fields as the header; blank lines are
 * skipped.  One column is the key that names a row (the first unless the
 * caller names another): a key must not be empty nor repeat.
 *
 * Errors are values: ESPL_EARG with "PATH:LINE: ..." for a malformed file,
 * the file layer's codes for one that cannot be read.  A table is
 * read-only once loaded and may be shared by any number of threads.  The
 * cells are kept in memory only: nothing here writes them anywhere.
 */
#ifndef ESPLINE_CSVTABLE_H
#define ESPLINE_CSVTABLE_H

#include <stddef.h>

#include "espline/error.h"

#define ESPL_CSV_MAX_BYTES (16u << 20)
#define ESPL_CSV_MAX_COLUMNS 64

typedef struct espl_csv espl_csv;

/* Load path; key_column NULL = the first column.  *out is NULL on failure. */
int espl_csv_load(const char *path, const char *key_column, espl_csv **out, espl_error *err);
/* The same from text in memory (name is used in messages). */
int espl_csv_parse(const char *name, const char *text, size_t len, const char *key_column,
                   espl_csv **out, espl_error *err);
void espl_csv_free(espl_csv *t);

size_t espl_csv_rows(const espl_csv *t);
size_t espl_csv_columns(const espl_csv *t);
const char *espl_csv_column_name(const espl_csv *t, size_t col);
/* The index of the column called name, or -1. */
int espl_csv_column(const espl_csv *t, const char *name);
size_t espl_csv_key_column(const espl_csv *t);
/* Cell text (NUL-terminated, never NULL) of row (0-based, header not counted). */
const char *espl_csv_cell(const espl_csv *t, size_t row, size_t col);
const char *espl_csv_key(const espl_csv *t, size_t row);
/* The row whose key is key, or -1. */
long espl_csv_find(const espl_csv *t, const char *key);
/* The longest cell of a column, in bytes. */
size_t espl_csv_max_len(const espl_csv *t, size_t col);
/* The file line where a row starts (for messages). */
unsigned espl_csv_row_line(const espl_csv *t, size_t row);

#endif /* ESPLINE_CSVTABLE_H */
