/*
 * station_int.h - what the station's two files share: the supervisor's
 * state, a worker's state, the result queue (internal to src/station, not
 * installed; private names start with espl__station_).
 *
 *   station.c  the supervisor thread: enumeration, scans, reaping, results,
 *              stop requests, the database writer, the run loop, life cycle
 *   ports.c    enumeration, slot names, the events of a port
 *   worker.c   one worker thread per adapter: presence, one unit at a time
 *              through the runner, its records on their way to the writer
 *
 * Locks: the supervisor's lock guards the result queue, the counters and
 * each worker's current unit; dbw_lock (a read-write lock) guards the writer
 * handle while workers use it; lease_lock makes one worker at a time lease
 * serial numbers (taken under dbw_lock's read side, never the other way
 * round).  See docs/ARCHITECTURE.md.
 */
#ifndef ESPLINE_STATION_INT_H
#define ESPLINE_STATION_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <regex.h>

#include "espline/central.h"
#include "espline/dbwriter.h"
#include "espline/record.h"
#include "espline/supervisor.h"
#include "espline/runner.h"

#define TICK_MS 50
#define PROGRESS_EVERY_MS 100
#define REMOVED_AFTER_MISSES 2
#define ESPL_BARCODE_MAX 128          /* a scanned code, with its NUL */

/* The unit a worker is programming, as the database knows it (begin
 * record), so that an abort can record it INTERRUPTED.  Guarded by the
 * supervisor's lock. */
typedef struct current_unit {
	int active;
	espl_db_unit begin;          /* strings point into the buffers below */
	char mac[18], manufacturer[48], port[256], serial[128], location[64];
	char slot[ESPL_STATION_SLOT_MAX + 1], barcode[ESPL_BARCODE_MAX];
} current_unit;

typedef struct worker {
	struct espl_supervisor *sup;
	pthread_t thread;
	espl_port_info info;
	char slot[ESPL_STATION_SLOT_MAX + 1]; /* "" when the port has no slot name */
	char barcode[ESPL_BARCODE_MAX];  /* worker thread: the running unit's scanned code, "" */
	atomic_int removed;          /* supervisor -> worker: the adapter vanished */
	atomic_int finished;         /* worker -> supervisor: the thread is about to end */
	atomic_int hold;             /* any thread -> worker: enum espl_slot_action */
	current_unit cur;            /* guarded by sup->lock */
	/* Worker thread only: */
	int stop_unit;               /* the runner's stop flag */
	int in_unit;                 /* identified: events and progress are shown */
	int begun;                   /* the begin record was saved */
	const espl_unit_result *res; /* the running unit's result (from identified) */
	char unit_uuid[ESPL_DB_UUID_SIZE];
	char waiting_msg[ESPL_ERROR_MAX];
	char fault_msg[ESPL_ERROR_MAX];  /* the last port fault logged, said once */
	int64_t last_progress_ms;
	unsigned rom_baud;           /* 0, or the slower ROM rate this port's units need */
	bool unit_passed;            /* the last unit programmed ended PASS */
	struct worker *next;
} worker;

/* A finished unit on its way to the database. */
typedef struct result_item {
	struct result_item *next;
	espl_unit_result res;
	char unit_uuid[ESPL_DB_UUID_SIZE];
	char port[256], serial[128], location[64];
	char slot[ESPL_STATION_SLOT_MAX + 1];
	char barcode[ESPL_BARCODE_MAX];  /* "" when none was scanned */
	char *label;                     /* the label rendered on PASS (malloc'd) or NULL */
} result_item;

struct espl_supervisor {
	espl_supervisor_options o;
	char batch_name[128], station[128], host[128];
	espl_db_batch batch;
	pthread_mutex_t lock;
	/* guarded by lock */
	result_item *q_head, **q_tail;
	int claimed, done;           /* BATCH: units started / finished */
	int aborted;                 /* results are no longer recorded */
	char db_reason[ESPL_ERROR_MAX];
	espl_station_totals totals;
	/* cross-thread flags */
	atomic_int stop_level;
	atomic_int complete;         /* BATCH: count reached */
	atomic_int db_state;
	/* the database writer; workers use it under the read lock while open */
	espl_dbw *dbw;
	pthread_rwlock_t dbw_lock;
	int dbw_closed;              /* guarded by dbw_lock */
	/* one worker at a time leases serial numbers from the central database
	 * (else every worker that ran out at once leased a range of its own) */
	pthread_mutex_t lease_lock;
	/* the central sender beside the writer (NULL: replication off); read
	 * by the writer thread's on_commit */
	espl_central *_Atomic central;
	/* operator I/O (NULL: not configured); started and stopped by the
	 * supervisor thread, used by the workers in between */
	struct espl__scanner *scanner;
	struct espl__labels *labels;
	regex_t barcode_re;           /* the recipe's expect.barcode */
	int has_barcode_re;
	/* changed by the supervisor thread only, under lock (read by it
	 * without; by espl_supervisor_slot_control under lock) */
	worker *workers;
	/* supervisor thread only */
	char ignored[16][256];        /* adapters that match no slot, said once */
	int n_ignored;
	int db_state_shown;
	int stop_shown;
	sigset_t sigs;
	int sigs_blocked;
	double started_s;             /* espl__now_s() when run began */
};

/* station.c */
/* Hand an event to the operator interface (on_event), from any thread. */
void espl__station_emit(espl_supervisor *s, espl_station_event *ev);
void espl__station_emit_simple(espl_supervisor *s, enum espl_station_event_kind kind,
			       const char *port, const char *level, const char *message);
/* Hand a worker's event on, with its port and slot filled in. */
void espl__station_worker_emit(struct worker *w, espl_station_event *ev);
void espl__station_worker_emit_simple(struct worker *w, enum espl_station_event_kind kind,
                                      const char *level, const char *message);
/* ports.c: an adapter that matches none of the station file's slots while
 * slots name their adapters by USB serial or socket: 1 (said once, left
 * alone), else 0.  Supervisor thread. */
int espl__station_ignored_adapter(espl_supervisor *s, const espl_port_info *info);
/* Whether a port spec is a URL (rfc2217://, socket://), not a device path. */
int espl__station_is_url(const char *spec);

/* unit_io.c (supervisor thread) */
/* Compile the recipe's expect.barcode; it needs the station file's scan. */
int espl__station_barcode_pattern(espl_supervisor *s, espl_error *err);
/* Start the scanner and the label printer (o.io), before the workers. */
int espl__station_start_io(espl_supervisor *s, espl_error *err);
/* Stop them after the workers; labels still queued stay on disk (said). */
void espl__station_stop_io(espl_supervisor *s, unsigned flush_ms);

/* unit_io.c (worker threads) */
/* The runner's admit event: the scanned code (expect.barcode), then the
 * route check; ctx is the worker. */
int espl__station_admit(void *ctx, espl_unit_result *res, enum espl_phase *phase, espl_error *err);
/* A PASS unit's label, rendered and queued for the printer: the text to
 * record (malloc'd), or NULL (no labels, not PASS, or it failed: said). */
char *espl__station_label(struct worker *w, const espl_unit_result *res);
/* The finished unit's record as JSON for on_unit_done (malloc'd), or NULL
 * when there is no such hook. */
char *espl__station_done_json(struct worker *w, const espl_unit_result *res, const char *label);
/* Run on_unit_done with json (taken; NULL: nothing to do); its exit status
 * is logged and recorded as an event of the unit. */
void espl__station_done_hook(struct worker *w, char *json);

/* worker.c */
/* Log an event in the database's events table, unless the writer is closed. */
void espl__station_record_event(espl_supervisor *s, const char *level, const char *kind, const char *unit_uuid,
                                const char *message);
/* The database writer's callbacks (writer thread); user is the supervisor. */
void espl__station_on_db_state(int state, const char *reason, void *user);
void espl__station_on_db_unit(const espl_dbw_ack *ack, void *user);
void espl__station_on_db_log(const char *level, const char *message, void *user);
/* A worker thread's body; arg is its worker. */
void *espl__station_worker_main(void *arg);
/* What every record of the worker's current unit carries: batch, unit,
 * port, adapter and slot (the caller adds barcode and label). */
void espl__station_record_context(worker *w, espl_record_context *ctx);

/* identity.c */
/* The central database's connection string, or NULL (replication off). */
const char *espl__station_central_conninfo(const espl_supervisor *s);
/* Before the first unit: the recipe's CSV keys listed in the database;
 * fails (the station must not start) when no row is left. */
int espl__station_identity_ready(espl_supervisor *s, espl_error *err);
/* The runner's reserve event; ctx is the worker. */
int espl__station_reserve(void *ctx, espl_unit_result *res, espl_error *err);

#endif /* ESPLINE_STATION_INT_H */
