/*
 * serials.h - serial numbers and CSV rows reserved for units, in the local
 * database (schema v5), so that none is ever handed out twice.
 *
 * A unit reserves its identity when it starts (after it is identified,
 * before its flash is touched): the next number of a named counter (or the
 * lowest one a failed unit returned), rendered with the recipe's format,
 * and the first unused row of its CSV file.  Each reservation is one
 * committed transaction, so a crash cannot lose it.  espl_db_end_unit
 * settles the unit's reservations in the same transaction that seals it:
 * PASS commits them; FAIL and INTERRUPTED return them (policy
 * commit_on_pass: the next unit gets them) or void them (void_on_fail).
 * A reservation still open when a station starts again (a crash, kill -9,
 * power cut) is voided, never returned: the unit may already hold it in
 * its flash.  Every return and void is also recorded as an event.
 *
 * A MAC that already has a committed serial (or CSV row) of the same
 * counter (or file) gets it again when reuse is asked for.
 *
 * CSV rows are tracked by their key only: the cells (secrets) never reach
 * the database.  espl_db_csv_register lists the file's keys in order
 * (new keys are added; keys no longer in the file are never handed out).
 *
 * Errors: ESPL_ENOTFOUND "no unused row" for an exhausted CSV file,
 * ESPL_EDB from SQLite, ESPL_EARG for a bad request.  Same threading as
 * db.h (one connection, one thread); through the station, dbwriter.h's
 * espl_dbw_reserve and espl_dbw_csv_register.
 */
#ifndef ESPLINE_SERIALS_H
#define ESPLINE_SERIALS_H

#include <stddef.h>
#include <stdint.h>

#include "espline/db.h"
#include "espline/error.h"

#define ESPL_DB_SERIAL_MAX 64
#define ESPL_DB_CSV_KEY_MAX 256

typedef struct espl_db_reserve_req {
	const char *unit_uuid;
	const char *mac;              /* normalized or NULL */
	int64_t now_ms;
	/* serial (counter NULL: none) */
	const char *counter;
	const char *format;           /* unitdata.h serial format */
	uint32_t first;               /* a new counter's first number */
	int serial_void_on_fail;
	/* the CSV file (source NULL: none) */
	const char *csv_source;       /* the file's name, e.g. "certs.csv" */
	int csv_void_on_fail;
	int reuse_for_mac;
	/* take new numbers only from ranges leased from the central database
	 * (espl_db_lease_add); none left: ESPL_ENOTFOUND with need_lease */
	int leased;
} espl_db_reserve_req;

typedef struct espl_db_reserved {
	char serial[ESPL_DB_SERIAL_MAX];   /* "" when no counter */
	uint64_t seq;
	int serial_reused;                 /* the MAC had it already */
	char csv_key[ESPL_DB_CSV_KEY_MAX]; /* "" when no CSV */
	int csv_reused;
	int need_lease;                    /* leased, and no leased number is left */
} espl_db_reserved;

/* Reserve for one unit, in one transaction (or inside the caller's). */
int espl_db_reserve(espl_db *db, const espl_db_reserve_req *q, espl_db_reserved *out, espl_error *err);
/* The CSV file's keys in file order; *unused = rows never handed out or
 * returned (may be NULL). */
int espl_db_csv_register(espl_db *db, const char *source, const char *const *keys, size_t n,
                         int64_t *unused, espl_error *err);
/* Settle unit_uuid's open reservations for a unit that ended with result
 * (espl_db_end_unit calls it inside its transaction). */
int espl_db_settle(espl_db *db, const char *unit_uuid, int result, int64_t now_ms, espl_error *err);
/* Record a range first..last leased from the central database (first 0:
 * record nothing) and count the leased numbers of counter not yet taken
 * into *left (may be NULL). */
int espl_db_lease_add(espl_db *db, const char *counter, uint64_t first, uint64_t last, int64_t now_ms,
                      int64_t *left, espl_error *err);
/* Void every reservation still open (a station starting again). */
int espl_db_void_open(espl_db *db, int64_t now_ms, int *count, espl_error *err);

#endif /* ESPLINE_SERIALS_H */
