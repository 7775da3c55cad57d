/*
 * central.h - replicate a station's records to a central PostgreSQL.
 *
 * A station keeps working from its local SQLite (db.h); every batch and
 * sealed unit is also queued in the local outbox in the transaction that
 * records it.  The sender started here is one thread with its own connection
 * to the local database and one to PostgreSQL (libpq): it reads the outbox
 * in order, writes each record to the central database with idempotent
 * upserts keyed by the record's globally unique uuid (a unit resent after a
 * lost acknowledgement is not duplicated), commits a group of records at a
 * time, and only then removes them from the outbox.  While the server is
 * unreachable it retries with exponential backoff; the line never waits for
 * it (the writer only kicks the sender after a commit).
 *
 * The central schema is created and migrated here (table espline_schema
 * holds its version; migrations run under an advisory lock so that stations
 * starting together do not race).  Each local database is an "origin" whose
 * hash chain (seq, prev_hash, hash) is kept as sealed, so the chain of every
 * station can be verified centrally (central_query.h).
 *
 * Credentials come from the connection string, PGPASSFILE / ~/.pgpass or the
 * libpq environment (PGPASSWORD, ...).  Nothing here prints; every message
 * handed to on_log or stored as the last error has the password removed.
 *
 * What this does not do: it never changes or deletes central records, and it
 * does not replicate events or units still RUNNING.
 *
 * Thread safety: espl_central_kick and espl_central_get_stats may be called
 * from any thread; start and stop from one.  The helper functions
 * (redaction, connect, push) are reentrant.
 */
#ifndef ESPLINE_CENTRAL_H
#define ESPLINE_CENTRAL_H

#include <stddef.h>
#include <stdint.h>

#include "espline/db.h"
#include "espline/error.h"

#define ESPL_CENTRAL_ENV "ESPLINE_CENTRAL"
/* Central schema version this code writes. */
#define ESPL_CENTRAL_SCHEMA_VERSION 5

struct pg_conn; /* libpq's PGconn */

typedef struct espl_central espl_central;

typedef struct espl_central_options {
	const char *conninfo;     /* postgresql://... or "key=value ..."; required */
	const char *db_path;      /* the local database (already created and migrated) */
	int group_max;            /* records per central transaction; 0: 200 */
	int poll_ms;              /* look at the outbox this often when idle; 0: 1000 */
	int backoff_min_ms;       /* first retry delay; 0: 250 */
	int backoff_max_ms;       /* longest retry delay; 0: 10000 */
	/* Diagnostics ("info", "warn", "error"), on the sender thread. */
	void (*on_log)(const char *level, const char *message, void *user);
	void *user;
} espl_central_options;

typedef struct espl_central_stats {
	uint64_t sent;            /* records acknowledged by the server (this run) */
	uint64_t transactions;
	uint64_t failures;        /* failed attempts (connect or send) */
	int connected;
	char last_error[ESPL_ERROR_MAX];
} espl_central_stats;

/* The connection string to use: cli if non-empty, else NULL (replication
 * off).  The library reads no environment: the CLI passes $ESPLINE_CENTRAL
 * (ESPL_CENTRAL_ENV) when --central is not given. */
const char *espl_central_conninfo(const char *cli);

/* Copy conninfo with any password (URI user:password@, ?password=,
 * password=... keyword) replaced by "***". */
void espl_central_redact(const char *conninfo, char *out, size_t size);
/* Remove the password of conninfo (if any) from text, in place. */
void espl_central_scrub(const char *conninfo, char *text);

/* Connect (libpq, connect_timeout 5 s unless given) and create or migrate
 * the central schema.  Error messages are redacted. */
int espl_central_connect(struct pg_conn **out, const char *conninfo, espl_error *err);
void espl_central_disconnect(struct pg_conn *conn);

/* Start the sender thread.  It connects in the background: a server that is
 * down is not an error here. */
int espl_central_start(espl_central **out, const espl_central_options *opts, espl_error *err);
/* New records are in the outbox: look now rather than at the next poll. */
void espl_central_kick(espl_central *c);
void espl_central_get_stats(espl_central *c, espl_central_stats *st);
/* Stop the sender.  While connected it keeps sending for at most flush_ms
 * (0: stop at once); what is left stays in the outbox for the next run. */
void espl_central_stop(espl_central *c, int flush_ms);

/* Send everything waiting in db's outbox now, in the caller's thread (for
 * `espline sync push`).  *sent receives the records acknowledged. */
int espl_central_push(espl_db *db, const char *conninfo, int64_t *sent, espl_error *err);

#endif /* ESPLINE_CENTRAL_H */
