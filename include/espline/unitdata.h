/*
 * unitdata.h - per-unit text: serial-number formats and unit-data
 * templates, checked once and rendered for each unit.
 *
 * A template is text with fields in braces; "{{" and "}}" stand for one
 * brace.  A field is a name, optionally with a width for numbers:
 * {seq:06} pads the number with zeros to 6 digits.  The names:
 *
 *   serial   the unit's serial number (unit data only)
 *   mac      "5c:cf:7f:a0:00:01"          mac_hex   "5ccf7fa00001"
 *   chip_id  8 lowercase hex digits        batch     the batch name
 *   date     YYYY-MM-DD (UTC)
 *   year, month, day, week (ISO 8601 week number), seq (serial formats
 *            only: the counter's number)  -- numbers, width allowed
 *   csv.COLUMN   the unit's CSV row (unit data with from_csv only)
 *   slot, barcode   the station's slot name and the code scanned for the
 *            unit (labels only)
 *   id       the serial number, or the MAC when the unit has none (labels
 *            only: what a label's QR code carries)
 *
 * A label (ESPL_TEMPLATE_LABEL, a ZPL text) renders a value the unit does
 * not have ({serial} without a serial: section, {barcode} without a scan,
 * {slot} on a port without a slot name) as nothing, so one template serves
 * every station; and in every value it writes '^', '~' and control
 * characters as '?', since they would start ZPL commands.
 *
 * espl_template_check reports an unknown field, a width on a text field,
 * an unclosed brace, or a csv column the table does not have, at its
 * line:column inside the template.  Render fails on a checked template
 * only for lack of room or a value it was not given.  Pure functions: no
 * state, any thread.
 */
#ifndef ESPLINE_UNITDATA_H
#define ESPLINE_UNITDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "espline/csvtable.h"
#include "espline/error.h"

enum espl_template_kind {
	ESPL_TEMPLATE_SERIAL,      /* a serial number's format: needs {seq} */
	ESPL_TEMPLATE_UNIT_DATA,   /* a write_unit_data template */
	ESPL_TEMPLATE_LABEL,       /* a ZPL label printed on PASS (station) */
};

/* What a unit's fields are filled from. */
typedef struct espl_unit_values {
	const char *serial;        /* NULL or "": the recipe has no serial */
	const char *mac;           /* "5c:cf:7f:a0:00:01" */
	uint32_t chip_id;
	const char *batch;         /* NULL = "" */
	int64_t time_ms;           /* wall clock (UTC) for date, year, week */
	uint64_t seq;              /* serial formats */
	const espl_csv *csv;       /* NULL: no row */
	size_t csv_row;
	const char *slot;          /* labels: NULL = "" */
	const char *barcode;       /* labels: NULL = "" */
} espl_unit_values;

/* Check text.  csv: the table csv.COLUMN fields must name columns of (NULL:
 * csv fields are errors).  ESPL_ERECIPE with "line L, column C: ..." in err. */
int espl_template_check(const char *text, size_t len, enum espl_template_kind kind,
                        const espl_csv *csv, espl_error *err);

/* Render into out (cap bytes; not NUL-terminated), *out_len = bytes.
 * ESPL_EARG when it does not fit ("... needs N bytes, the region holds
 * cap") or a field cannot be filled (no serial, no CSV row). */
int espl_template_render(const char *text, size_t len, enum espl_template_kind kind,
                         const espl_unit_values *v, uint8_t *out, size_t cap, size_t *out_len,
                         espl_error *err);

#endif /* ESPLINE_UNITDATA_H */
