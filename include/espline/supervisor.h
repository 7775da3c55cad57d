/*
 * supervisor.h - the station: many adapters, one worker thread each.
 *
 * The supervisor finds the adapters (explicit paths, globs, usb:VID:PID
 * filters, rfc2217:// and socket:// URLs; with no spec, the common ESP
 * USB-serial bridges), starts one worker thread per adapter, and keeps
 * polling the enumeration: a new adapter gets a worker, a vanished one ends
 * its worker without disturbing the others.  Each worker owns its port,
 * loader and runner; all workers share one read-only espl_plan.  Finished
 * units come back to the supervisor thread through a queue; it maps them to
 * records (record.h) and hands them to the single database writer
 * (dbwriter.h), which the supervisor starts and stops.
 *
 * Modes:
 *   ONCE     every adapter found at start programs one unit (the unit must
 *            be there), then the run ends: `espline run RECIPE --port P`.
 *   BATCH    N units in total (PASS or FAIL) under one batch name; each
 *            adapter waits for a unit, programs it, waits for it to be
 *            removed, and so on, until N units have been programmed.
 *   STATION  the same without an end: runs until stopped.
 * "A unit is there" means the loader syncs.  "Removed": for a board with
 * its own USB bridge (reset: auto on a device path) its port disappears (it
 * is not reset to ask, so its new firmware keeps running); in a jig
 * (reset: none) or behind a network port it stops answering a bare sync.
 *
 * Stopping: espl_supervisor_stop(GRACEFUL) (or the first SIGINT/SIGTERM when
 * handle_signals is set) starts no new unit and lets units in progress
 * finish; then the workers are joined and the database closed.  A second
 * request (ABORT) stops at once: units in progress are recorded INTERRUPTED,
 * the database writer is flushed and closed, and espl_supervisor_run returns
 * ESPL_EINTERRUPTED while workers may still be inside a device operation;
 * the caller must then leave the process (exit) without freeing the plan.
 * When the database writer reports SPOOLING or FAILED the station also stops
 * starting units (graceful stop) and says why through an event.
 *
 * The supervisor never prints: everything the operator sees comes through
 * the on_event callback (see ui.h for the dashboard, plain and JSON views).
 *
 * Thread safety: espl_supervisor_run runs on the calling thread (the
 * supervisor thread).  on_event is called from any worker thread and from the
 * supervisor thread, concurrently: it must be thread-safe.  on_tick is called
 * on the supervisor thread only.  espl_supervisor_stop may be called from any
 * thread (not from a signal handler; use handle_signals for that).
 */
#ifndef ESPLINE_SUPERVISOR_H
#define ESPLINE_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "espline/db.h"
#include "espline/dbwriter.h"
#include "espline/error.h"
#include "espline/loader.h"
#include "espline/runner.h"
#include "espline/station_file.h"

typedef struct espl_supervisor espl_supervisor;

enum espl_station_mode {
	ESPL_STATION_ONCE = 0,
	ESPL_STATION_BATCH,
	ESPL_STATION_CONTINUOUS,
};

enum espl_stop_level {
	ESPL_STOP_NONE = 0,
	ESPL_STOP_GRACEFUL = 1,  /* no new units; units in progress finish */
	ESPL_STOP_ABORT = 2,     /* record units in progress INTERRUPTED, leave now */
};

/* What happened; one struct for every kind, unused fields are 0/NULL. */
enum espl_station_event_kind {
	ESPL_EV_STARTED,       /* batch recorded: message = batch name, count = planned */
	ESPL_EV_PORT_ADDED,    /* a worker started for port */
	ESPL_EV_PORT_REMOVED,  /* its worker ended (message: why) */
	ESPL_EV_WAITING,       /* the port waits for a unit (message: last connect error or NULL) */
	ESPL_EV_IDENTIFIED,    /* a unit answered and was identified: mac known, programming starts */
	ESPL_EV_STEP_START,    /* step, step_number, n_steps */
	ESPL_EV_PROGRESS,      /* progress (called often: keep it cheap) */
	ESPL_EV_STEP_DONE,     /* step, step_number, result, duration_s, message (error) */
	ESPL_EV_UNIT_DONE,     /* result, duration_s, error_kind, message, unit (full result) */
	ESPL_EV_UNIT_RECORDED, /* the database saved the unit: seq, repeat_of, spooled */
	ESPL_EV_REMOVE_WAIT,   /* the port waits for the finished unit to be taken out */
	ESPL_EV_UNIT_REMOVED,  /* it was taken out */
	ESPL_EV_LOG,           /* a warning from the device layer or the station (message, level) */
	ESPL_EV_DB_STATE,      /* db_state changed: message = reason */
	ESPL_EV_STOPPING,      /* stop_level, message = why */
	ESPL_EV_FINISHED,      /* the run is over; message = summary line */
	ESPL_EV_SCAN_WAIT,     /* the identified unit waits for its scanned code (message: what to scan) */
	ESPL_EV_SCANNED,       /* the unit's code: message = the code */
	ESPL_EV_LABELS,        /* the label queue changed: count = labels queued, message/level: what happened */
	ESPL_EV_SLOT_PAUSED,   /* the slot takes no unit until resumed (message: why) */
	ESPL_EV_COUNT          /* the number of kinds, not an event */
};

typedef struct espl_station_event {
	enum espl_station_event_kind kind;
	int64_t time_ms;              /* wall clock */
	const char *port;             /* NULL for station-wide events */
	const char *slot;             /* the port's slot name (station file), or NULL */
	const char *unit_uuid;
	const char *mac;
	const char *step;             /* step kind name */
	unsigned step_number, n_steps;
	const espl_progress *progress;
	enum espl_db_result result;   /* UNIT_DONE; STEP_DONE: PASS or FAIL */
	double duration_s;
	const char *error_kind;
	const char *message;
	const char *operator_name;    /* STARTED, UNIT_DONE: the batch's operator (NULL: none) */
	const char *level;            /* "info", "warn", "error" */
	const espl_unit_result *unit; /* UNIT_DONE only */
	int64_t seq;                  /* UNIT_RECORDED */
	const char *repeat_of;        /* UNIT_RECORDED: uuid of an earlier PASS, or NULL */
	int spooled;                  /* UNIT_RECORDED */
	bool saved;                   /* UNIT_RECORDED: in the database or the spool
	                                 (false: lost; message says why) */
	bool unplugged;               /* PORT_REMOVED: the adapter went away (else
	                                 its worker finished) */
	enum espl_dbw_state db_state; /* DB_STATE */
	enum espl_stop_level stop_level; /* STOPPING */
	int count;                    /* STARTED: planned units (0 = open-ended); LABELS: queued */
	bool count_passed;            /* STARTED: count is of PASS units only */
} espl_station_event;

typedef struct espl_supervisor_options {
	const espl_plan *plan;        /* shared read-only by every worker */
	const char *const *ports;     /* specs; NULL/0: espl_supervisor_default_ports */
	size_t n_ports;
	/* The station file's slots: each adapter found is named by the slot it
	 * matches (espl_station_slot_find), in every event and unit record.
	 * When a slot names its adapter by USB serial or socket, an adapter
	 * that matches no slot is left alone (said once). */
	const espl_station_slot *slots;
	size_t n_slots;
	/* The station file's operator I/O (scan, label, hooks; NULL: none of
	 * them), and for scan.from: terminal, the terminal's descriptor (the
	 * caller's; -1 otherwise).  The recipe's expect.barcode needs a scan. */
	const espl_station_file *io;
	int scan_fd;
	enum espl_station_mode mode;
	const char *batch_name;       /* NULL: "run-YYYYMMDD-HHMMSS" */
	int count;                    /* BATCH: units to program */
	bool count_passed;            /* BATCH: count only units that PASS (a lot of
	                                 count good units); else PASS and FAIL both */
	const char *operator_name;    /* may be NULL */
	/* Continue this recorded batch (uuid, operator, started_ms, planned as
	 * recorded; the name is batch_name) instead of starting a new one.
	 * NULL: a new batch.  The caller checked the name and the recipe. */
	const espl_db_batch *resume;
	/* database */
	const char *db_path;          /* NULL: espl_db_path(NULL) */
	const char *central;          /* PostgreSQL URL; NULL or "": none (the CLI
	                                 passes $ESPLINE_CENTRAL) */
	const char *station_name;     /* NULL: the host name */
	const char *version;          /* espline version recorded with the batch */
	long long db_max_pages;       /* >0: database quota in pages (tests provoke "disk full") */
	const char *spool_dir;        /* the fallback spool's folder, best on another file
	                                 system than the database (espl_dbw_options); NULL: none */
	int central_backoff_max_ms;   /* the sender's longest retry delay; 0: its default */
	/* timing (0 = default) */
	int scan_ms;                  /* adapter enumeration period, default 1000 */
	int presence_ms;              /* unit present / removed probe period, default 500 */
	int presence_connect_ms;      /* connect budget when waiting for a unit, default 3000 */
	int handle_signals;           /* block SIGINT/SIGTERM and treat them as stop requests */
	/* output */
	void (*on_event)(void *ctx, const espl_station_event *ev);
	void (*on_tick)(void *ctx);   /* about ten times a second, supervisor thread */
	void *ctx;
} espl_supervisor_options;

/* What the run did. */
typedef struct espl_station_totals {
	int units, passed, failed, interrupted;
	int recorded, spooled, unsaved;  /* database outcome of the unit records */
	int ports_seen;
	/* Ports that could not be opened, counted once per distinct cause; no
	 * unit is recorded for them and they are outside yield.  Station
	 * faults are the station's to fix (a port busy or not permitted, out
	 * of memory); unreached ports had nothing behind them (gone, refused). */
	int station_faults, unreached;
	double elapsed_s;
	int stop_level;                  /* how it ended */
	int db_state;                    /* writer state at the end */
	char batch_uuid[ESPL_DB_UUID_SIZE];
} espl_station_totals;

/* The default filters used when no port is given: CP210x 10c4:ea60, CH340
 * 1a86:7523, CH9102 1a86:55d4, FTDI 0403:6001/6010/6014/6015.  NULL-ended. */
extern const char *const espl_supervisor_default_ports[];

/* Expand specs (as in the options) into the adapters present right now,
 * without duplicates, in spec order.  A plain device path that does not
 * exist is left out (it may appear later); rfc2217:// and socket:// always
 * count.  *list is malloc'd.  Returns the count or a negative code. */
int espl_supervisor_enumerate(const char *const *specs, size_t n_specs, espl_port_info **list,
                              espl_error *err);

/* Create a supervisor; nothing starts until espl_supervisor_run. */
int espl_supervisor_new(const espl_supervisor_options *opts, espl_supervisor **out, espl_error *err);

/* Start the database writer, record the batch, run the workers until the
 * mode's end or a stop, and close the database.  Returns ESPL_OK when the
 * run ended normally (units may have failed: see totals), ESPL_EINTERRUPTED
 * after a stop request, ESPL_EDB when the database could not be opened or
 * stopped the run, another code when no adapter could be found (ONCE).
 * totals may be NULL. */
int espl_supervisor_run(espl_supervisor *s, espl_station_totals *totals, espl_error *err);

/* Ask the run to stop (level: enum espl_stop_level; a higher level wins).
 * Safe from any thread; returns at once. */
void espl_supervisor_stop(espl_supervisor *s, int level);

/* One slot, by its slot name (station file) or its port path:
 *  - PAUSE: it starts no new unit; the unit in progress finishes;
 *  - STOP: the unit in progress is interrupted before the next command
 *    or data block its worker sends (a write stops within one block;
 *    recorded INTERRUPTED, never PASS unless its last command had already
 *    been sent) and the slot stays paused;
 *  - RESUME: it takes units again.
 * The slot says so with ESPL_EV_SLOT_PAUSED, and ESPL_EV_WAITING on resume.
 * Safe from any thread while espl_supervisor_run runs; returns at once.
 * ESPL_ENOTFOUND when no slot of this run has that name or port. */
enum espl_slot_action { ESPL_SLOT_RESUME = 0, ESPL_SLOT_PAUSE, ESPL_SLOT_STOP };
int espl_supervisor_slot_control(espl_supervisor *s, const char *slot_or_port, enum espl_slot_action action,
                                 espl_error *err);

/* Free a supervisor after run returned (not after an abort: exit instead). */
void espl_supervisor_free(espl_supervisor *s);

#endif /* ESPLINE_SUPERVISOR_H */
