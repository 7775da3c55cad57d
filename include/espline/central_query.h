/*
 * central_query.h - history, reports, export and chain verification against
 * the central PostgreSQL database (central.h), with the same results and
 * the same output as the local ones (report.h, db.h).
 *
 * Rows are fetched with libpq (parameterised queries, large results
 * streamed row by row); the formatting of export rows and the percentiles
 * are report.c's, so a unit exported centrally reads exactly as it does
 * from its station.  Verification walks every origin's (local database's)
 * hash chain in seq order and recomputes each unit and batch hash with
 * db.h's public hash functions; it names the first unit changed, deleted
 * or inserted per chain, and checks the chain head the senders recorded.
 *
 * Everything here only reads.  Thread safety: a PGconn belongs to one
 * thread at a time.
 */
#ifndef ESPLINE_CENTRAL_QUERY_H
#define ESPLINE_CENTRAL_QUERY_H

#include <stdint.h>
#include <stdio.h>

#include "espline/db.h"
#include "espline/error.h"
#include "espline/report.h"

struct pg_conn;

/* As espl_report_history / espl_report_build / espl_report_export. */
int espl_central_history(struct pg_conn *conn, const char *mac, espl_report_unit_cb cb,
			 void *user, espl_error *err);
int espl_central_report(struct pg_conn *conn, const espl_report_filter *filter,
			espl_report *out, espl_error *err);
int espl_central_export(struct pg_conn *conn, const espl_report_filter *filter, enum espl_export_format format,
			FILE *out, espl_error *err);

/* One station's chain as found centrally. */
typedef struct espl_central_chain {
	char origin[ESPL_DB_UUID_SIZE];
	char station[256];        /* "name@host" of its latest batch */
	int64_t units_checked;
	int64_t head_seq;         /* last unit the station's sender reported */
	char head_hash[ESPL_DB_HASH_SIZE];
	int ok;
	int64_t bad_seq;
	char bad_uuid[ESPL_DB_UUID_SIZE];
	char problem[384];
} espl_central_chain;

typedef struct espl_central_verify_result {
	int ok;                   /* every chain and batch intact */
	int64_t chains, units_checked, batches_checked;
	char batch_problem[384];  /* first batch whose hash no longer matches */
} espl_central_verify_result;

/* Calls cb for each chain.  Returns 0 with res->ok, or a negative code when
 * the server could not be read. */
int espl_central_verify(struct pg_conn *conn,
			void (*cb)(const espl_central_chain *chain, void *user), void *user,
			espl_central_verify_result *res, espl_error *err);

/* The newest `limit` batches of every station, newest first, as
 * espl_report_batches lists a local database's (central_batches.c). */
int espl_central_batches(struct pg_conn *conn, int limit, espl_report_batch_cb cb, void *user, espl_error *err);

/* Each station (name and host) that ever sent a batch, with its latest
 * batch and the end of its newest unit: what a line overview shows.
 * Strings live until the callback returns. */
typedef struct espl_central_station {
	const char *station, *host, *batch, *recipe;
	int64_t batch_started_ms, batch_ended_ms;  /* ended 0: still open */
	int64_t planned, units, passed, failed;     /* of that batch, as received */
	int64_t last_unit_ms;                       /* 0: no unit yet */
} espl_central_station;
typedef int (*espl_central_station_cb)(const espl_central_station *s, void *user);
/* Returns the number of stations, the callback's non-zero value if it
 * stopped early, or a negative code. */
int espl_central_stations(struct pg_conn *conn, espl_central_station_cb cb, void *user, espl_error *err);

#endif /* ESPLINE_CENTRAL_QUERY_H */
