/*
 * layout.h - a binary layout for write_unit_data: the unit's fields at
 * fixed offsets of the region, as numbers, text, bytes, a MAC and CRC-32s
 * (the binary counterpart of a unitdata.h template).
 *
 * A field has an offset, a type and, except for crc32, a value.  The
 * value is a unit-data template (unitdata.h: {serial} {mac} {chip_id}
 * {csv.COLUMN} ...) rendered for the unit, then read by the type:
 *
 *   u8 u16le u16be u32le u32be   an integer: decimal, or hex after 0x
 *                 ("0x{chip_id}", "{year}", "{csv.count}", "0x55AA");
 *                 it must fit the type
 *   str[N]        text, at most N bytes, the rest of the N filled with 0
 *   bytes[N]      exactly 2N hex digits ("{csv.key_hex}")
 *   mac           a MAC, "5c:cf:7f:a0:00:01" or 12 hex digits; the value
 *                 may be left out: the unit's own MAC
 *   crc32         no value: the CRC-32 (IEEE 802.3, zlib's crc32) of the
 *                 region's bytes [from, to), little-endian, computed after
 *                 every other field
 *
 * Bytes no field covers hold the step's pad.  espl_layout_check refuses
 * a field past the region, two fields that overlap, a crc32 range outside
 * the region or over a crc32 field, and a value template with an unknown
 * field (unitdata.h's check); it then renders the layout for every CSV
 * row (or once, with sample values) so that a value the type cannot hold
 * stops the recipe before any unit.  Pure functions: no state, any thread.
 */
#ifndef ESPLINE_LAYOUT_H
#define ESPLINE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "espline/csvtable.h"
#include "espline/error.h"
#include "espline/unitdata.h"

#define ESPL_LAYOUT_MAX_FIELDS 64
#define ESPL_LAYOUT_MAX_BYTES 4096   /* str[N] and bytes[N]: N at most this */

enum espl_layout_type {
	ESPL_LAYOUT_U8,
	ESPL_LAYOUT_U16LE,
	ESPL_LAYOUT_U16BE,
	ESPL_LAYOUT_U32LE,
	ESPL_LAYOUT_U32BE,
	ESPL_LAYOUT_STR,
	ESPL_LAYOUT_BYTES,
	ESPL_LAYOUT_MAC,
	ESPL_LAYOUT_CRC32,
};

typedef struct espl_layout_field {
	enum espl_layout_type type;
	uint32_t offset, size;      /* the bytes it takes (size: from the type) */
	char *value;                /* template text (owned); NULL: crc32, or mac = "{mac}" */
	uint32_t from, to;          /* crc32: over bytes [from, to) */
	unsigned line, column;      /* where the field is, for messages */
	unsigned value_line, value_column;
} espl_layout_field;

/* The type named by text ("u32le", "str[32]", "bytes[16]", "mac",
 * "crc32") and its size: 0 for "str" and "bytes" without [N] (the recipe
 * gives it as size: N).  ESPL_EARG (err says what is known) if none. */
int espl_layout_parse_type(const char *text, enum espl_layout_type *type, uint32_t *size, espl_error *err);

/* Check the layout against a region of size bytes and the CSV table (NULL:
 * csv fields are errors; csv_name names its file in messages), then render
 * it for every row of csv (or once) with sample values v (csv and csv_row
 * are set here).  On an error,
 * *field is the index of the field it is about (or n when it is about
 * the layout as a whole) and *in_value says the value is at fault. */
int espl_layout_check(const espl_layout_field *f, size_t n, uint32_t size, const espl_csv *csv, const char *csv_name,
                      const espl_unit_values *sample, size_t *field, bool *in_value, espl_error *err);

/* Render into out (size bytes, all written: pad where no field is).
 * ESPL_EARG when a value does not fit its type or a field cannot be
 * filled; err names the field by its offset. */
int espl_layout_render(const espl_layout_field *f, size_t n, const espl_unit_values *v, uint8_t pad, uint8_t *out,
                       uint32_t size, espl_error *err);

void espl_layout_free(espl_layout_field *f, size_t n);

#endif /* ESPLINE_LAYOUT_H */
