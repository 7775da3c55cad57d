/*
 * db.h - the traceability store: every unit in SQLite, tamper-evident.
 *
 * This module owns the SQLite schema (created and migrated by
 * PRAGMA user_version), writes stations, recipes, batches, units, steps and
 * events with prepared statements only, seals every completed unit into a
 * SHA-256 hash chain, and verifies that chain.  It knows nothing of ports,
 * recipes files or threads: callers (the runner, the station) map their
 * results onto the plain record structs below.  It does not queue, spool or
 * retry; that is dbwriter.h.  Reports and exports are report.h.
 *
 * Connection settings: WAL journal, synchronous=FULL (a committed unit is on
 * disk), foreign_keys=ON, a busy timeout (default 5 s).
 *
 * Unit lifecycle: espl_db_begin_unit() inserts the unit as RUNNING when
 * programming starts; espl_db_step_done() adds each step's row as the step
 * finishes (progressive rows, so that a unit cut short by a crash still shows
 * how far it got); espl_db_end_unit() completes the unit, replaces its
 * progressive rows by the record's full step list in one transaction, and
 * seals it into the chain.  A unit still RUNNING after its station stopped is
 * an interrupted unit; espl_db_interrupt_stale() turns such rows into sealed
 * INTERRUPTED records when the station restarts, keeping (and sealing) the
 * step rows it has.
 *
 * Hash chain: completed unit number `seq` (1, 2, 3, ... with no gaps) carries
 *   hash = SHA-256(canonical(seq, prev_hash, batch hash, unit, steps))
 * where prev_hash is the hash of unit seq-1 (64 zeros for seq 1) and the
 * canonical text is documented at espl_db_unit_hash().  The steps hashed are
 * exactly the unit's step rows when it is sealed: the record's steps for a
 * unit that ended normally, the progressive rows for an INTERRUPTED unit
 * sealed without a step list (stale recovery, abort); `db verify` rehashes
 * the rows, so the two always agree.  Progressive rows of a unit still
 * RUNNING are not covered (nothing is sealed yet).  Each batch carries
 * its own hash over its identity, station, recipe and image hashes, which
 * every unit hash covers.  A changed field changes a hash; a deleted unit
 * leaves a gap in seq; an inserted one breaks a prev_hash link or has no seq.
 * The chain does not stop someone who recomputes every hash after an edit;
 * anchoring the head elsewhere (the `db verify` output, central replication)
 * does.  The repeat_of flag and the batch counters are derived data and are
 * not covered.
 *
 * Times are milliseconds since the Unix epoch (UTC).  MACs are stored as
 * lowercase "aa:bb:cc:dd:ee:ff"; espl_db_normalize_mac() accepts other forms.
 *
 * Thread safety: an espl_db connection belongs to one thread at a time.  Many
 * connections (threads or processes) may open the same file: readers never
 * block the writer (WAL) and writers serialize with BEGIN IMMEDIATE.
 */
#ifndef ESPLINE_DB_H
#define ESPLINE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"

/* Schema version this code writes; older databases are migrated on open. */
#define ESPL_DB_SCHEMA_VERSION 10
/* Relative to the current directory, like any other path a user types. */
#define ESPL_DB_DEFAULT_PATH "db/espline.sqlite"
#define ESPL_DB_ENV "ESPLINE_DB"
#define ESPL_DB_UUID_SIZE 37   /* 36 characters and a NUL */
#define ESPL_DB_HASH_SIZE 65   /* 64 hex digits and a NUL */

typedef struct espl_db espl_db;
struct sqlite3;

enum espl_db_result {
	ESPL_DB_RUNNING = 0,     /* unit started, not completed (yet) */
	ESPL_DB_PASS = 1,
	ESPL_DB_FAIL = 2,
	ESPL_DB_INTERRUPTED = 3, /* stopped on request or by a crash */
	ESPL_DB_SKIPPED = 4,     /* steps only: not needed (skip_unchanged) */
};

/* "RUNNING", "PASS", ...; "?" for an unknown value. */
const char *espl_db_result_name(enum espl_db_result result);
/* The inverse; returns a negative ESPL_EARG for an unknown name. */
int espl_db_result_parse(const char *name);

typedef struct espl_db_station {
	const char *name;     /* operator-chosen, e.g. "line2-st1" */
	const char *host;     /* hostname */
	const char *version;  /* espline version */
} espl_db_station;

typedef struct espl_db_image {
	const char *name;     /* file name as written in the recipe */
	const char *sha256;   /* hex */
} espl_db_image;

typedef struct espl_db_recipe {
	const char *name;
	const char *sha256;   /* hex SHA-256 of the recipe's YAML text */
	const char *yaml;     /* full text */
	const espl_db_image *images;
	size_t n_images;
} espl_db_recipe;

typedef struct espl_db_batch {
	char uuid[ESPL_DB_UUID_SIZE]; /* client-generated, espl_db_uuid() */
	const char *name;
	const char *operator_name;    /* may be NULL */
	int64_t started_ms;
	int planned;                  /* units planned (--count), 0 = open-ended */
} espl_db_batch;

typedef struct espl_db_unit {
	char uuid[ESPL_DB_UUID_SIZE];       /* client-generated, globally unique */
	char batch_uuid[ESPL_DB_UUID_SIZE];
	const char *mac;                    /* NULL or "" while unknown */
	uint32_t chip_id;
	uint32_t flash_id;                  /* JEDEC id, e.g. 0x1640ef */
	const char *manufacturer;           /* flash manufacturer name */
	uint32_t flash_size;                /* bytes */
	int crystal_mhz;                    /* 26, 40, 0 = unknown */
	const char *port;
	const char *adapter_serial;         /* USB serial number */
	const char *adapter_location;       /* USB bus location */
	int64_t started_ms;
	int64_t ended_ms;                   /* 0 while running */
	int64_t duration_ms;
	enum espl_db_result result;
	const char *error_kind;             /* short reason for grouping, e.g. "timeout" */
	const char *error;                  /* first error with its context */
	/* Binding the physical unit (schema v6; NULL when not used, and then
	 * left out of the unit's hash, so older records hash as they did): */
	const char *slot;                   /* the station file's slot name ("A1") */
	const char *barcode;                /* the code scanned for this unit */
	const char *label;                  /* the label text rendered on PASS (ZPL) */
	/* The serial number the unit was given (schema v8; serials.h); NULL
	 * when the recipe has none, and then left out of the hash too. */
	const char *serial;
} espl_db_unit;

typedef struct espl_db_step {
	int index;                /* 0-based position in the recipe */
	const char *kind;         /* "erase", "write", "verify", ... */
	uint32_t address;
	uint32_t length;
	const char *expected_md5; /* hex or NULL */
	const char *actual_md5;   /* hex or NULL */
	uint64_t bytes;           /* bytes sent over the wire */
	int64_t duration_ms;
	int retries;
	enum espl_db_result result;
	const char *error;
	const char *detail;       /* text kept with the step (boot_check's boot
	                           * log, screening findings) or NULL; hashed
	                           * only when present, so older records keep
	                           * their hashes */
} espl_db_step;

typedef struct espl_db_event {
	int64_t time_ms;
	const char *level;        /* "info", "warn", "error" */
	const char *kind;         /* short tag, e.g. "port-added", "db-degraded" */
	const char *batch_uuid;   /* may be NULL */
	const char *unit_uuid;    /* may be NULL */
	const char *message;
} espl_db_event;

/* What sealing a completed unit produced. */
typedef struct espl_db_sealed {
	int64_t seq;                          /* position in the chain */
	char hash[ESPL_DB_HASH_SIZE];
	char repeat_of[ESPL_DB_UUID_SIZE];    /* "" or the uuid of an earlier PASS of
	                                         the same MAC in the same batch */
	int already;                          /* 1: the unit was already complete
	                                         (a replayed record); nothing changed */
} espl_db_sealed;

typedef struct espl_db_options {
	const char *path;         /* NULL: espl_db_path(NULL) */
	int create;               /* create the file (and its parent folder) if missing */
	int read_only;            /* open read-only: no migration, no writes */
	int busy_timeout_ms;      /* 0: 5000 */
	long long max_pages;      /* >0: PRAGMA max_page_count (a quota; tests use it
	                             to provoke "database or disk is full") */
	int schema_version;       /* 0: ESPL_DB_SCHEMA_VERSION; tests create older
	                             schemas with it; never above the current one */
} espl_db_options;

/* The path to use: cli_path if given and non-empty, else
 * ESPL_DB_DEFAULT_PATH (relative to the current directory).  The library
 * reads no environment: the CLI passes $ESPLINE_DB (ESPL_DB_ENV) as the
 * path when --db is not given. */
const char *espl_db_path(const char *cli_path);

/* Open (and create, and migrate) a database.  ESPL_ENOTFOUND if it does not
 * exist and opts->create is 0; ESPL_EDB if SQLite refuses. */
int espl_db_open(espl_db **out, const espl_db_options *opts, espl_error *err);
void espl_db_close(espl_db *db);
const char *espl_db_filename(const espl_db *db);
int espl_db_schema_version(espl_db *db);
/* The raw connection, for report.c and tests.  Use prepared statements. */
struct sqlite3 *espl_db_sqlite(espl_db *db);

/* A random UUIDv4 (getrandom), lowercase with dashes. */
int espl_db_uuid(char out[ESPL_DB_UUID_SIZE], espl_error *err);
int64_t espl_db_now_ms(void);
/* "5C-CF-7F-01-02-03", "5ccf7f010203", "5c:cf:7f:1:2:3" -> "5c:cf:7f:01:02:03".
 * Returns 0, or ESPL_EARG if text is not a MAC. */
int espl_db_normalize_mac(const char *text, char out[18]);

/* Group several writes into one transaction (the writer's group commit).
 * The record functions below also work alone: each then commits itself. */
int espl_db_begin(espl_db *db, espl_error *err);
int espl_db_commit(espl_db *db, espl_error *err);
void espl_db_rollback(espl_db *db);

/* Record functions.  Return 0, ESPL_EDB when SQLite refused for a reason of
 * the environment (full, read-only, locked past the timeout, I/O error): retry
 * later or spool; ESPL_EARG or ESPL_ENOTFOUND when the record itself is wrong
 * (unknown batch, bad value): retrying will not help. */

/* Insert the station and recipe if new, and the batch (idempotent by uuid). */
int espl_db_begin_batch(espl_db *db, const espl_db_station *station,
			const espl_db_recipe *recipe, const espl_db_batch *batch,
			espl_error *err);
int espl_db_end_batch(espl_db *db, const char *batch_uuid, int64_t ended_ms,
		      espl_error *err);
/* Insert the unit as RUNNING (idempotent by uuid). */
int espl_db_begin_unit(espl_db *db, const espl_db_unit *unit, espl_error *err);
/* Record one finished step of a RUNNING unit (a progressive row), or replace
 * the row of the same index.  Does nothing (returns 0) when the unit is
 * unknown or no longer RUNNING: a late row never changes a sealed unit. */
int espl_db_step_done(espl_db *db, const char *unit_uuid, const espl_db_step *step,
		      espl_error *err);
/* Complete a unit (inserting it if begin was never recorded) with its steps,
 * flag a repeat, and seal it; one transaction.  The steps given replace any
 * progressive rows, except that an INTERRUPTED unit given no steps keeps its
 * progressive rows and is sealed with them.  A unit already complete is
 * left alone and reported with sealed->already = 1. unit->result must not be
 * RUNNING. */
int espl_db_end_unit(espl_db *db, const espl_db_unit *unit,
		     const espl_db_step *steps, size_t n_steps,
		     espl_db_sealed *sealed, espl_error *err);
int espl_db_add_event(espl_db *db, const espl_db_event *event, espl_error *err);
/* Turn this station's RUNNING units into sealed INTERRUPTED ones (a station
 * that starts again knows its earlier units can no longer complete).  Sets
 * *count to the number of units changed. */
int espl_db_interrupt_stale(espl_db *db, const espl_db_station *station,
			    const char *reason, int64_t now_ms, int *count,
			    espl_error *err);

/* The baud rate an adapter's flasher stub last worked at (the recipe's
 * flash_baud ladder: issue 17), by adapter: "usb:SERIAL" for a USB
 * adapter with a serial number, else its port path.  Not chained: it
 * describes the station's hardware, not a unit.  Schema 7 and later. */
typedef struct espl_db_adapter_rate {
	char adapter[264];  /* "usb:" + a 128-byte serial, or a 256-byte path */
	unsigned baud;
} espl_db_adapter_rate;
int espl_db_adapter_rate_set(espl_db *db, const char *adapter, unsigned baud, int64_t now_ms,
			     espl_error *err);
/* Every remembered rate; *out is malloc'd (free it), *count entries. */
int espl_db_adapter_rates(espl_db *db, espl_db_adapter_rate **out, size_t *count, espl_error *err);

/* Spool replay bookkeeping: was a spool with this SHA-256 already replayed?
 * (1 yes, 0 no, <0 error) / remember that it was (inside the replay txn). */
int espl_db_spool_seen(espl_db *db, const char *sha256_hex, espl_error *err);
int espl_db_spool_mark(espl_db *db, const char *sha256_hex, int records,
		       espl_error *err);

/*
 * The hash of a completed unit.  The canonical text hashed is, in order, one
 * line per field "name:LEN:VALUE\n" (LEN = byte length of VALUE in decimal;
 * a NULL string is "name:-\n"; integers in decimal):
 *   "espline-unit:1:1\n", seq, prev, batch, uuid, mac, chip_id, flash_id,
 *   manufacturer, flash_size, crystal_mhz, port, adapter_serial,
 *   adapter_location, started_ms, ended_ms, duration_ms, result (name),
 *   error_kind, error,
 * then for each step in index order: step, kind, address, length,
 *   expected_md5, actual_md5, bytes, duration_ms, retries, result, error.
 * batch is the batch's hash.  out receives 64 lowercase hex digits.
 * Returns 0, or ESPL_ENOMEM (out is then "") when OpenSSL cannot allocate
 * a digest context.
 */
int espl_db_unit_hash(int64_t seq, const char *prev_hash, const char *batch_hash,
		      const espl_db_unit *unit, const espl_db_step *steps,
		      size_t n_steps, char out[ESPL_DB_HASH_SIZE]);
/* The hash of a batch, same encoding: "espline-batch:1:1\n", uuid, name,
 * operator, started_ms, planned, station, host, version, recipe, recipe_sha256,
 * then per image: image, image_sha256.  Returns as espl_db_unit_hash. */
int espl_db_batch_hash(const espl_db_station *station, const espl_db_recipe *recipe,
		       const espl_db_batch *batch, char out[ESPL_DB_HASH_SIZE]);

/* Result of walking the chain. */
typedef struct espl_db_verify_result {
	int ok;                           /* 1: every check passed */
	int64_t units_checked;
	int64_t batches_checked;
	int64_t recipes_checked;          /* recipe texts checked against their SHA-256 */
	int64_t running;                  /* units not sealed (running/interrupted) */
	int64_t head_seq;                 /* last sealed unit, 0 if none */
	char head_hash[ESPL_DB_HASH_SIZE];
	/* First problem found (when ok == 0). */
	int64_t bad_seq;                  /* chain position, 0 if none applies */
	char bad_uuid[ESPL_DB_UUID_SIZE]; /* unit or batch uuid */
	char problem[384];                /* "changed: ...", "deleted: ...", "inserted: ..." */
} espl_db_verify_result;

/* Walk every batch and the unit chain in seq order and recompute every hash.
 * Returns 0 with res->ok telling whether the chain is intact; a negative code
 * only when the database could not be read. */
int espl_db_verify(espl_db *db, espl_db_verify_result *res, espl_error *err);

/*
 * Anchors: the chain head kept outside the database (printed, signed, sent
 * elsewhere), so that a later verify can tell a database rewound or rebuilt
 * past that point, which a chain checked only against itself cannot.  The
 * text form is one line:
 *   espline-anchor 1 origin=UUID seq=N hash=HEX time=YYYY-MM-DDTHH:MM:SSZ
 * and may sit inside a signature envelope (gpg --clearsign).
 */
typedef struct espl_db_anchor {
	char origin[ESPL_DB_UUID_SIZE];   /* the database it was taken from */
	int64_t seq;                      /* the head: units sealed so far */
	char hash[ESPL_DB_HASH_SIZE];     /* the head unit's hash (zeros when seq is 0) */
	int64_t time_ms;                  /* when it was taken (not checked) */
} espl_db_anchor;

/* The current head as an anchor. */
int espl_db_anchor_take(espl_db *db, espl_db_anchor *a, espl_error *err);
/* The text form, with a trailing newline; returns what snprintf returns. */
int espl_db_anchor_format(const espl_db_anchor *a, char *out, size_t cap);
/* Parse the text form (the first anchor line in text); ESPL_EARG if none. */
int espl_db_anchor_parse(const char *text, espl_db_anchor *a, espl_error *err);
/* After espl_db_verify filled res: check the chain still holds the anchor
 * (same origin, head at or past its seq, the unit at its seq with its hash).
 * A problem sets res->ok to 0 like any other (the first one is kept). */
int espl_db_verify_anchor(espl_db *db, const espl_db_anchor *a, espl_db_verify_result *res,
                          espl_error *err);

/*
 * Replication (schema v3).  Every database has an origin: a UUID made when
 * the schema was created or migrated, naming its hash chain wherever its
 * records are copied (a copied database file keeps its origin; do not run two
 * stations from copies of one file).  espl_db_begin_batch, espl_db_end_batch
 * and espl_db_end_unit (on sealing) append a row to the outbox in the same
 * transaction as the record, so a committed unit is always queued for the
 * central database; a sender (central.h) reads the outbox in order and
 * acknowledges what the server committed.  Outbox rows point at the records;
 * sealed records never change, so what is sent is what was sealed.
 */
enum espl_db_outbox_kind { ESPL_DB_OUTBOX_BATCH = 1, ESPL_DB_OUTBOX_UNIT = 2 };

/* One outbox record with everything the central database needs: the batch
 * (with its station, recipe and images) and, for a unit, the unit, its steps
 * and its place in the chain.  Strings are owned; free with
 * espl_db_replicas_free. */
typedef struct espl_db_replica {
	int64_t id;                            /* outbox position (increasing) */
	enum espl_db_outbox_kind kind;
	int64_t queued_ms;
	espl_db_station station;
	espl_db_recipe recipe;
	espl_db_batch batch;
	char batch_hash[ESPL_DB_HASH_SIZE];
	int64_t batch_ended_ms;                /* 0 while the batch is open */
	espl_db_unit unit;                     /* ESPL_DB_OUTBOX_UNIT only */
	espl_db_step *steps;
	size_t n_steps;
	int64_t seq;
	char prev_hash[ESPL_DB_HASH_SIZE];
	char hash[ESPL_DB_HASH_SIZE];
	char repeat_of[ESPL_DB_UUID_SIZE];
} espl_db_replica;

/* This database's origin id. */
int espl_db_origin(espl_db *db, char out[ESPL_DB_UUID_SIZE], espl_error *err);
/* The oldest max outbox records, in order (fewer when fewer wait). */
int espl_db_outbox_read(espl_db *db, size_t max, espl_db_replica **out, size_t *count,
			espl_error *err);
void espl_db_replicas_free(espl_db_replica *r, size_t n);
/* The central database committed every record up to through_id (records of
 * them): drop them from the outbox and count them as sent. */
int espl_db_outbox_ack(espl_db *db, int64_t through_id, int64_t records, espl_error *err);
/* Remember the sender's last outcome: error NULL for a success.  central is
 * the server's address with any password already removed. */
int espl_db_sync_note(espl_db *db, const char *central, const char *error, espl_error *err);

typedef struct espl_db_sync_status {
	char origin[ESPL_DB_UUID_SIZE];
	int64_t waiting;          /* outbox records (batches and units) */
	int64_t waiting_units;
	int64_t oldest_ms;        /* when the oldest waiting record was queued; 0 if none */
	int64_t sent;             /* records acknowledged by the central database, ever */
	int64_t last_ok_ms;       /* last successful contact; 0 never */
	int64_t last_error_ms;    /* 0 never */
	char last_error[ESPL_ERROR_MAX];
	char central[256];        /* last server used, password removed */
} espl_db_sync_status;

int espl_db_sync_read(espl_db *db, espl_db_sync_status *st, espl_error *err);

#endif /* ESPLINE_DB_H */
