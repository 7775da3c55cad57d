/*
 * report.h - questions asked of the traceability database, months later.
 *
 * history (every time one MAC was programmed, newest first), a batch or
 * period report (yield, failures by reason, time-per-unit percentiles,
 * per-port and per-adapter yield to spot a bad jig), and export of unit
 * records as CSV or JSON with stable column names.  Everything here only
 * reads; it returns data structures, calls a callback per row, or writes to
 * a FILE* the caller chose.  It never decides where output goes and never
 * prints on its own.
 *
 * A unit still RUNNING in the database is counted as interrupted: either
 * its station is programming it right now or it stopped before the unit
 * completed (the station seals those as INTERRUPTED when it starts again).
 *
 * Thread safety: functions use the espl_db connection they are given, which
 * belongs to one thread at a time; open a separate read connection next to a
 * running writer (WAL lets it read while the writer writes).
 */
#ifndef ESPLINE_REPORT_H
#define ESPLINE_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "espline/db.h"
#include "espline/error.h"

/* Which units: every field optional (NULL / 0 = no restriction). */
typedef struct espl_report_filter {
	const char *batch;    /* batch name (all batches of that name, any station) */
	int64_t since_ms;     /* units started at or after this time */
} espl_report_filter;

/* One unit with its context; strings live until the callback returns. */
typedef struct espl_report_unit {
	espl_db_unit unit;
	const char *batch_name;
	const char *station;
	const char *host;
	const char *recipe;
	const char *recipe_sha256;
	const char *images;     /* "name=sha256;name=sha256" in recipe order */
	const char *repeat_of;  /* NULL or uuid of an earlier PASS in the batch */
	const char *operator_name; /* the batch's operator; NULL if none was recorded */
	int64_t seq;            /* chain position, 0 while not sealed */
	const char *hash;       /* chain hash, NULL while not sealed */
	/* The steps' kept text ("boot_check (step 5):\n<boot log>"), escaped
	 * when stored; NULL when none (and from the central database, whose
	 * JSON export carries it per step instead). */
	const char *details;
	const char *serial;     /* the serial number reserved for the unit, or NULL */
	/* The unit's events, one "TIME  KIND  MESSAGE" line each, oldest
	 * first: the scan and the operator's wait, the label's hand-off to the
	 * printer (label-sent, label-queued, label-failed), the hooks, serials
	 * returned or voided.  NULL when none, and from the central database
	 * (events are not replicated). */
	const char *events;
} espl_report_unit;

/* Return non-zero from the callback to stop early (that value is returned). */
typedef int (*espl_report_unit_cb)(const espl_report_unit *u, void *user);

/* Every unit with this MAC (any spelling espl_db_normalize_mac accepts),
 * or, when key is not a MAC, every unit whose scanned code (barcode) is
 * exactly key; newest first.  Returns the number of units, or a negative
 * code. */
int espl_report_history(espl_db *db, const char *key, espl_report_unit_cb cb, void *user,
			espl_error *err);

typedef struct espl_report_group {
	char *key;            /* port name, adapter serial/location, or reason */
	int64_t total, passed, failed, interrupted;
	double yield;         /* passed / (passed + failed); 0 when none completed */
	char *example;        /* reasons: one full error message */
} espl_report_group;

typedef struct espl_report {
	int64_t units, passed, failed, interrupted; /* interrupted includes RUNNING */
	int64_t repeats;         /* PASSes of a MAC that had already passed in its batch */
	double yield;            /* passed / (passed + failed) */
	int64_t first_ms, last_ms;
	/* Time per completed (PASS or FAIL) unit, nearest-rank percentiles. */
	int64_t timed, p50_ms, p90_ms, p99_ms, mean_ms, max_ms;
	espl_report_group *reasons;   /* FAIL units by error_kind, most frequent first */
	size_t n_reasons;
	espl_report_group *ports;     /* by port: ttyUSB2 before ttyUSB10 */
	size_t n_ports;
	espl_report_group *adapters;  /* by adapter serial (else location) */
	size_t n_adapters;
	espl_report_group *operators; /* by the batch's operator ("" when none) */
	size_t n_operators;
} espl_report;

int espl_report_build(espl_db *db, const espl_report_filter *filter, espl_report *out,
		      espl_error *err);
void espl_report_free(espl_report *r);
/* Human-readable text, or one JSON object. */
int espl_report_print(FILE *out, const espl_report *r);
int espl_report_print_json(FILE *out, const espl_report *r);

enum espl_export_format { ESPL_EXPORT_CSV, ESPL_EXPORT_JSON };

/*
 * Export units, oldest first.  Columns, in this order, never renamed:
 *   unit_uuid, batch, batch_uuid, station, host, recipe, recipe_sha256,
 *   images, mac, chip_id, flash_id, manufacturer, flash_size, crystal_mhz,
 *   port, adapter_serial, adapter_location, started, ended, duration_ms,
 *   result, error_kind, error, repeat_of, seq, hash, operator, slot,
 *   barcode, label (the label's ZPL text)
 * chip_id and flash_id are hex ("0x00a1b2c3", "0x1640ef"); started and ended
 * are ISO 8601 UTC with milliseconds ("2026-11-25T08:54:37.123Z", empty while
 * running).  CSV: RFC 4180 with a header line.  JSON: an array with one object
 * per unit (one per line), each with the columns above plus "steps" (index,
 * kind, address, length, expected_md5, actual_md5, bytes, duration_ms,
 * retries, result, error).  Returns the number of units written.
 */
int espl_report_export(espl_db *db, const espl_report_filter *filter, enum espl_export_format format, FILE *out,
		       espl_error *err);
extern const char *const espl_export_columns[];
#define ESPL_EXPORT_NCOLUMNS 31

/* Building blocks, for stores other than the local SQLite (central_query.h):
 * the same percentiles and the same export rows. */
/* Fill timed, p50/p90/p99, mean and max from n durations (sorted in place). */
void espl_report_set_durations(espl_report *r, int64_t *durations, size_t n);
void espl_report_export_header(FILE *out, enum espl_export_format format);
/* One unit; index is its 0-based position in the export (JSON separators). */
int espl_report_export_unit(FILE *out, enum espl_export_format format, int64_t index, const espl_report_unit *u,
			    const espl_db_step *steps, size_t n_steps);
void espl_report_export_footer(FILE *out, enum espl_export_format format, int64_t count);

/* "2026-11-25", "2026-11-25T08:54", "2026-11-25 08:54:37", optional ".mmm" and
 * "Z" (times are UTC) -> ms since the epoch.  0 or ESPL_EARG. */
int espl_report_parse_time(const char *text, int64_t *ms);
/* ms -> "2026-11-25T08:54:37.123Z". */
void espl_report_format_time(int64_t ms, char out[32]);

/* One batch, for a list of batches (batches.c); strings live until the
 * callback returns.  units/passed/failed count the recorded units. */
typedef struct espl_report_batch {
	const char *uuid, *name, *station, *host, *recipe, *operator_name, *recipe_sha256;
	int64_t started_ms, ended_ms;   /* ended 0: still open (or never closed) */
	int64_t planned, units, passed, failed;
} espl_report_batch;
typedef int (*espl_report_batch_cb)(const espl_report_batch *b, void *user);
/* The newest `limit` batches, newest first.  Returns the number listed, the
 * callback's non-zero value if it stopped early, or a negative code. */
int espl_report_batches(espl_db *db, int limit, espl_report_batch_cb cb, void *user, espl_error *err);
/* Device commands (espline erase, write, verify) recorded on the unit with
 * this MAC (events of kind device-*), newest first: time, level, kind,
 * message ("mac=... write 0x0 app.bin ... : PASS").  Returns the number,
 * the callback's non-zero value, or a negative code. */
typedef int (*espl_report_command_cb)(int64_t time_ms, const char *level, const char *kind,
                                      const char *message, void *user);
int espl_report_device_commands(espl_db *db, const char *mac, espl_report_command_cb cb, void *user,
                                espl_error *err);

/* Every batch named name, newest first (cb may be NULL to count them).
 * Returns the number found, the callback's non-zero value, or a negative
 * code.  A batch name names one batch: `espline run` refuses to reuse one
 * unless told to resume it. */
int espl_report_batches_named(espl_db *db, const char *name, espl_report_batch_cb cb, void *user,
                              espl_error *err);

#endif /* ESPLINE_REPORT_H */
