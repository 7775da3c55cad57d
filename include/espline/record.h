/*
 * record.h - the one place where a runner's unit result becomes database
 * records.
 *
 * The runner (runner.h) describes a unit in its own terms: a pass flag, the
 * phase that failed, step results with attempts and MD5s, the regions it
 * wrote.  The database (db.h) stores plain records: a unit row with a result
 * PASS/FAIL/INTERRUPTED and a short error kind for grouping, and one row per
 * step that ran.  This module maps the first onto the second, so the rules
 * ("a stopped unit is INTERRUPTED", "retries = attempts - 1", which MD5 a
 * write step carries) live in one place.  It does no I/O and never touches
 * the database or a port.
 *
 * Strings in the records point into the unit result and into the espl_record
 * itself: keep both alive and unchanged until the record has been handed to
 * the database writer (which copies it).
 *
 * Thread safety: pure functions over caller-owned data; any thread.
 */
#ifndef ESPLINE_RECORD_H
#define ESPLINE_RECORD_H

#include <stddef.h>

#include "espline/db.h"
#include "espline/error.h"
#include "espline/runner.h"

/* Who and where, beyond what the unit result knows. */
typedef struct espl_record_context {
	const char *batch_uuid;
	const char *unit_uuid;
	const char *port;             /* the port name to record; NULL: res->port */
	const char *adapter_serial;   /* USB serial number or NULL */
	const char *adapter_location; /* USB bus location or NULL */
	const char *slot;             /* the station file's slot name or NULL */
	const char *barcode;          /* the code scanned for the unit or NULL */
	const char *label;            /* the label text rendered on PASS or NULL */
} espl_record_context;

/* A unit record with storage for the strings the mapping composes. */
typedef struct espl_record {
	espl_db_unit unit;
	espl_db_step *steps;          /* n_steps entries (malloc'd) */
	size_t n_steps;
	char error_kind[64];          /* "write: disconnected", "connect: timeout" */
	char error[ESPL_ERROR_MAX];
} espl_record;

/* PASS, FAIL or INTERRUPTED (enum espl_db_result) for a finished unit: a
 * unit the runner stopped on request is INTERRUPTED, not FAIL. */
enum espl_db_result espl_record_result(const espl_unit_result *res);

/* The short reason for grouping failures ("" for a pass): the phase (or
 * the kind of the step that failed) and the kind of error, e.g.
 * "write: disconnected", "verify: mismatch", "expect: wrong chip". */
void espl_record_error_kind(const espl_unit_result *res, char *out, size_t len);

/* The RUNNING record written when programming starts (after identify). */
void espl_record_begin(const espl_unit_result *res, const espl_record_context *ctx,
                       espl_db_unit *out);

/* The completed record: unit and the steps that ran (not-run steps are left
 * out).  Free with espl_record_free.  ESPL_ENOMEM only. */
int espl_record_from_result(const espl_unit_result *res, const espl_record_context *ctx,
                            espl_record *out, espl_error *err);

/* The row of one step that has just finished (the runner's step_done
 * callback), the same row espl_record_from_result will give for it, except
 * that a write step's actual MD5 is only known once a later verify ran.
 * sr must point into res->steps and have run; else ESPL_EARG. */
int espl_record_step(const espl_unit_result *res, const espl_step_result *sr,
                     espl_db_step *out);

/* An INTERRUPTED record for a unit whose result will never come (the
 * station aborted while it ran): begin is what espl_record_begin gave. */
void espl_record_interrupted(const espl_db_unit *begin, int64_t now_ms, const char *reason,
                             espl_record *out);

void espl_record_free(espl_record *rec);

#endif /* ESPLINE_RECORD_H */
