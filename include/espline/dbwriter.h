/*
 * dbwriter.h - the single database writer thread, fed by a queue.
 *
 * Workers never touch SQLite: they hand records (batch start/end, unit
 * start/end with steps, events) to espl_dbw_* functions, which copy them onto
 * a bounded queue (mutex + condition variables) and return.  One writer thread owns
 * the espl_db connection and writes the records in order, grouping whatever
 * is queued at the same moment into one transaction (group commit; each unit
 * with its steps is always all-or-nothing).
 *
 * When the database refuses a write for a reason of the environment (disk
 * full, read-only, locked past the busy timeout, I/O error), the writer
 * switches to ESPL_DBW_SPOOLING: it tells the station through on_state (and
 * espl_dbw_state), and appends this and every later record to the journal
 * spool next to the database (PATH.spool: one JSON object per line, fsync'd
 * before the record counts as saved).  The station must stop starting new
 * units; units in progress still end safely.  The next espl_dbw_start
 * replays the spool into the database in one transaction and removes it
 * (a spool already replayed is recognised by its SHA-256 and not applied
 * twice).  When the spool cannot be written (the disk that holds the
 * database is full), records go to the fallback spool, best on another file
 * system, and stay there (the spools are never mixed, so a replay keeps the
 * order).  A partly written line is cut off again.  If no spool can be
 * written the state is ESPL_DBW_FAILED and records are held in memory; the
 * station must then start no unit; espl_dbw_stop tries the spools once more
 * and otherwise hands each unsaved record, whole, to on_log as a JSON line
 * that can be appended to the spool by hand, so that no programmed unit goes
 * unrecorded without the operator being told.
 *
 * A record the database rejects because it is wrong (a unit of an unknown
 * batch) is appended to PATH.rejected and reported; it never blocks others.
 *
 * One writer process per database: start takes an exclusive lock on
 * PATH.lock (flock, released on stop or when the process dies) and fails with
 * ESPL_EBUSY if another station holds it.  Reports read without the lock.
 *
 * On start the writer also turns this station's units left RUNNING by an
 * earlier run (a crash, a power cut) into sealed INTERRUPTED records.
 *
 * The writer knows nothing of replication: the records layer sits below the
 * central one.  The caller that wants it (the station) starts the central
 * sender (central.h) beside the writer and wakes it from on_commit.
 *
 * Thread safety: every espl_dbw_* function except start and stop may be
 * called from any number of threads at once.  Callbacks run on the writer
 * thread: keep them short and do not call espl_dbw_* functions that wait
 * (begin_batch, begin_unit, end_unit with an ack, sync) from them.
 */
#ifndef ESPLINE_DBWRITER_H
#define ESPLINE_DBWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "espline/db.h"
#include "espline/error.h"
#include "espline/serials.h"

typedef struct espl_dbw espl_dbw;

enum espl_dbw_state {
	ESPL_DBW_OK = 0,       /* records go to the database */
	ESPL_DBW_SPOOLING = 1, /* the database refused; records go to the spool */
	ESPL_DBW_FAILED = 2,   /* the spool refused too; records are held in memory */
};

/* What became of one unit's end record. */
typedef struct espl_dbw_ack {
	char uuid[ESPL_DB_UUID_SIZE];
	int rc;                /* 0: saved (in the database or the spool); <0: not saved */
	int spooled;           /* 1: saved in the spool, not yet in the database */
	espl_db_sealed sealed; /* seq, hash, repeat_of when written to the database */
	char error[ESPL_ERROR_MAX];
} espl_dbw_ack;

typedef struct espl_dbw_options {
	const char *path;           /* database; NULL: espl_db_path(NULL) */
	const char *spool_path;     /* NULL: PATH ".spool" */
	/* A second spool, best on another file system (a full disk fills the
	 * database and the spool beside it at once); used once PATH.spool
	 * cannot be written, and replayed after it.  NULL: none. */
	const char *fallback_spool_path;
	espl_db_station station;    /* this station (recorded with each batch) */
	int busy_timeout_ms;        /* 0: 5000 */
	long long max_pages;        /* see espl_db_options; 0: unlimited */
	int max_group;              /* records per transaction at most; 0: 256 */
	int max_queue;              /* records queued at most before producers wait
	                               for room (backpressure); 0: 10000 */
	/* Called on the writer thread after each unit end record is saved (or not). */
	void (*on_unit)(const espl_dbw_ack *ack, void *user);
	/* Called on the writer thread when the state changes; reason says why and
	 * what to do, in words for the operator. */
	void (*on_state)(int state, const char *reason, void *user);
	/* Diagnostics for the log: level "info", "warn" or "error". */
	void (*on_log)(const char *level, const char *message, void *user);
	/* Called on the writer thread after each group of records is written,
	 * so that a replication sender looks at the outbox now rather than at
	 * its next poll.  NULL: nothing. */
	void (*on_commit)(void *user);
	void *user;
} espl_dbw_options;

/* What start found. */
typedef struct espl_dbw_startup {
	int replayed;          /* records replayed from a spool */
	int rejected;          /* spool records the database refused as wrong */
	int interrupted;       /* stale RUNNING units sealed as INTERRUPTED */
	int voided;            /* their open serial/CSV reservations, voided */
} espl_dbw_startup;

typedef struct espl_dbw_stats {
	uint64_t written;      /* records committed to the database */
	uint64_t spooled;      /* records appended to the spool */
	uint64_t rejected;     /* records refused as wrong */
	uint64_t held;         /* records neither written nor spooled (now) */
	uint64_t queued;       /* records waiting in the queue (now) */
	uint64_t transactions; /* commits */
} espl_dbw_stats;

/* Open (create, migrate) the database, replay a spool left by an earlier run,
 * seal stale units, and start the writer thread.  Fails (and starts nothing)
 * when the database cannot be opened or the spool cannot be replayed: the
 * station must not start programming. info may be NULL. */
int espl_dbw_start(espl_dbw **out, const espl_dbw_options *opts, espl_dbw_startup *info,
		   espl_error *err);
/* Write everything still queued, stop the thread, close the database.
 * Returns ESPL_EDB if some records could be saved neither in the database
 * nor in the spool (each was passed to on_log). */
int espl_dbw_stop(espl_dbw *w, espl_error *err);
/* The same; *rescued counts records that were held in memory and that a
 * spool took at stop (unit end records only: space came back), so a caller
 * that counted them as
 * unsaved can correct itself. */
int espl_dbw_stop_count(espl_dbw *w, int *rescued, espl_error *err);

/* The fallback spool for db_path in dir: DIR/NAME-HASH.spool, with NAME the
 * database's file name and HASH from its absolute path, so stations with
 * several databases never share one.  ESPL_EARG if it does not fit cap. */
int espl_dbw_fallback_spool_path(const char *db_path, const char *dir, char *out, size_t cap);

/* Current state; the reason (for SPOOLING/FAILED) is copied into reason. */
enum espl_dbw_state espl_dbw_state(espl_dbw *w, char *reason, size_t reason_size);
void espl_dbw_get_stats(espl_dbw *w, espl_dbw_stats *stats);
const char *espl_dbw_spool_path(const espl_dbw *w);

/* Records.  All copy what they are given; the caller keeps ownership.
 * begin_batch and begin_unit return once the record is saved (database or
 * spool), so a unit row exists before its flash is touched.  They return 0
 * when saved, a negative code when it was not (check espl_dbw_state). */
int espl_dbw_begin_batch(espl_dbw *w, const espl_db_recipe *recipe,
			 const espl_db_batch *batch, espl_error *err);
int espl_dbw_end_batch(espl_dbw *w, const char *batch_uuid, int64_t ended_ms,
		       espl_error *err);
int espl_dbw_begin_unit(espl_dbw *w, const espl_db_unit *unit, espl_error *err);
/* With ack: waits until the record is saved and fills ack (repeat flag, seq);
 * returns ack->rc.  Without ack (NULL): returns once queued; on_unit reports. */
int espl_dbw_end_unit(espl_dbw *w, const espl_db_unit *unit, const espl_db_step *steps,
		      size_t n_steps, espl_dbw_ack *ack, espl_error *err);
/* Queue one finished step of a running unit (espl_db_step_done) and return
 * at once: never waits for the disk or for room in the queue.  Best effort:
 * the row is dropped (and 0 returned) when the queue is full or the writer
 * is spooling or stopping; the unit's end record always carries its full
 * step list.  Returns 0, or ESPL_EARG / ESPL_ENOMEM. */
int espl_dbw_step_done(espl_dbw *w, const char *unit_uuid, const espl_db_step *step,
		       espl_error *err);
/* Never waits. */
int espl_dbw_event(espl_dbw *w, const espl_db_event *event, espl_error *err);
/* Reserve a unit's serial number and CSV row (serials.h) and wait for the
 * answer; a writer that is not writing to the database refuses (ESPL_EDB):
 * numbers never come from a spool. */
int espl_dbw_reserve(espl_dbw *w, const espl_db_reserve_req *q, espl_db_reserved *out,
		     espl_error *err);
/* List a CSV file's keys (serials.h) and wait; *unused may be NULL. */
int espl_dbw_csv_register(espl_dbw *w, const char *source, const char *const *keys, size_t n,
			  int64_t *unused, espl_error *err);
/* The baud rate an adapter's stub last worked at (espl_db_adapter_rate_set;
 * adapter as there), from the table read at start and kept up to date by
 * espl_dbw_adapter_rate; 0 = none known.  Never waits for the disk. */
unsigned espl_dbw_adapter_rate_get(espl_dbw *w, const char *adapter);
/* Remember it: in memory at once, and a row in the database through the
 * writer.  Never waits; best effort, like espl_dbw_step_done (the row is
 * dropped, never spooled, when the writer cannot take it now). */
int espl_dbw_adapter_rate(espl_dbw *w, const char *adapter, unsigned baud, espl_error *err);

/* Record a range leased from the central database and count what is left
 * (serials.h espl_db_lease_add; first 0: only count); waits. */
int espl_dbw_lease_add(espl_dbw *w, const char *counter, uint64_t first, uint64_t last, int64_t *left,
		       espl_error *err);
/* Wait until every record queued before this call is saved (or refused). */
int espl_dbw_sync(espl_dbw *w, espl_error *err);

#endif /* ESPLINE_DBWRITER_H */
