/*
 * runner.h - run a recipe on one unit and say, with reasons, whether it passed.
 *
 * Two halves:
 *
 *   espl_plan    the work that is the same for every unit, done once per
 *                recipe: prepared images (patched, padded, deflated, hashed;
 *                image.h) for every write, init-data and blank-sector images
 *                for every flash size the system area can sit at, and the
 *                flasher stub loaded once.  Read-only once built.
 *   espl_runner_run   one unit: connect, identify, check `expect`, check the
 *                layout for the detected flash size, run the steps with their
 *                retries, and fill an espl_unit_result.
 *
 * A unit PASSes only if every step passed and every region written was
 * verified by an MD5 the chip computed (for a region skip_unchanged found
 * already there, the MD5 of that check counts, unless a later step or a
 * retried attempt may have written over it).  Exception: a recipe built for
 * `espline write` without --verify (recipe.h, verify_optional) passes with
 * its regions unverified, as the operator asked.  A built recipe's
 * write.check_only step (`espline verify`) writes nothing and counts its
 * region as checked on the chip; its read step leaves the bytes in the
 * step result's data.  Anything else is a FAIL with the
 * first error and its context (step, line of the recipe, what the chip
 * said).  Retries: a step is retried (up to its `retries`) only after a link
 * failure (timeout, protocol or device error); the loader is re-synced
 * before the next attempt.  A definite answer (MD5 mismatch, wrong chip,
 * failed expectation) is never retried away.  Step timeouts are checked
 * after each device operation, so an operation runs to its own protocol
 * timeout first; the stop flag, by contrast, reaches into the loader
 * (loader.h options.cancel) and ends an operation within one block.
 *
 * The runner never prints and never touches a file descriptor: it talks to
 * the chip through loader.h/flash.h and reports through callbacks.
 *
 * Thread safety: a plan is built by one thread and may then be shared by any
 * number of workers, each running its own units (one loader per worker).
 * A unit result belongs to the worker that filled it.
 */
#ifndef ESPLINE_RUNNER_H
#define ESPLINE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"
#include "espline/esp8266.h"
#include "espline/loader.h"
#include "espline/port.h"
#include "espline/recipe.h"
#include "espline/stub.h"

typedef struct espl_plan espl_plan;

/* Build the shared work for a loaded and prepared recipe (the recipe must
 * outlive the plan).  Loads the stub (connect.stub or the default search,
 * with the places of stub_env, which may be NULL: stub.h). */
int espl_plan_new(const espl_recipe *r, const espl_stub_env *stub_env, espl_plan **out, espl_error *err);
void espl_plan_free(espl_plan *p);
/* Deflate and hash now every write image that does not wait for the
 * unit's flash size (otherwise the first unit's write does it).  May run
 * on another thread while a unit connects: an image source builds each
 * variant once under its own lock.  An error resurfaces at the write. */
void espl_plan_prepare_images(const espl_plan *p);
const espl_recipe *espl_plan_recipe(const espl_plan *p);

/* Where a unit failed.  The text of each (espl_phase_name) is what the
 * database's error_kind, the events and the reports carry. */
enum espl_phase {
	ESPL_PHASE_NONE = 0,       /* nothing failed (yet) */
	ESPL_PHASE_CONNECT,        /* reset, sync, stub, baud */
	ESPL_PHASE_IDENTIFY,       /* reading the chip: MAC, flash id */
	ESPL_PHASE_EXPECT,         /* the recipe's expect: conditions */
	ESPL_PHASE_LAYOUT,         /* the images do not fit this chip's flash */
	ESPL_PHASE_IDENTITY,       /* the unit's identity (serial number) */
	ESPL_PHASE_UNIT_DATA,      /* the unit's data, once its identity was reserved */
	ESPL_PHASE_BARCODE,        /* the station's scanned code (missing, or not expect.barcode) */
	ESPL_PHASE_ROUTE_CHECK,    /* the station's route_check hook refused the unit */
	ESPL_PHASE_STEP,           /* a recipe step */
	ESPL_PHASE_VERIFY,         /* a region never verified after its last write */
	ESPL_PHASE_STOPPED,        /* the run was stopped before the unit ended */
};

/* "connect", "identify", "expect", "layout", "identity", "unit data",
 * "barcode", "route_check", "step", "verify", "stopped"; NULL for
 * ESPL_PHASE_NONE. */
const char *espl_phase_name(enum espl_phase phase);

enum espl_step_status {
	ESPL_STEP_NOT_RUN = 0,    /* an earlier step failed, or the run was stopped */
	ESPL_STEP_PASSED,
	ESPL_STEP_FAILED,
};

#define ESPL_UNIT_MAX_REGIONS 64

/* A region of flash the unit got (or was checked to already hold). */
typedef struct espl_written_region {
	uint32_t address, length;
	unsigned step;                  /* 1-based step that wrote it */
	char what[64];                  /* "nodemcu.bin", "init data", "blank sector" */
	char expected_md5[33];          /* of the bytes as written */
	char actual_md5[33];            /* from the chip at the last verify; "" = never verified */
	bool skipped;                   /* skip_unchanged found it already there
	                                 * (verify then trusts that MD5 unless a
	                                 * later step may have touched the region) */
	bool verified;                  /* the chip's MD5 matched */
} espl_written_region;

typedef struct espl_step_result {
	const espl_step *step;
	enum espl_step_status status;
	double duration_s;              /* all attempts */
	unsigned attempts;              /* 0 = not run; retries used = attempts - 1 */
	uint64_t bytes;                 /* written, erased or hashed */
	uint64_t bytes_skipped;         /* skip_unchanged: already on the chip (the
	                                 * whole image, or the 16 KiB chunks that
	                                 * matched when only some differed) */
	bool skipped;                   /* write with skip_unchanged: nothing needed writing */
	/* erase: chip: 64 KiB blocks hashed and found not blank (the rest were
	 * blank or are written later; bytes = what was erased) */
	unsigned blocks_checked, blocks_dirty;
	/* verify: the region that failed, else the last one checked; write and
	 * write_init_data: the image (expected = its MD5; actual = the chip's
	 * before writing, when skip_unchanged asked for it) */
	uint32_t md5_address, md5_length;
	char expected_md5[33], actual_md5[33];
	espl_error error;               /* of the last attempt, if it failed */
	/* Text kept with the step (malloc'd, escaped, or NULL): boot_check's
	 * captured boot log; the screening checks' findings on the last
	 * verify step.  Freed by espl_unit_result_clear. */
	char *detail;
	/* read (a built recipe's step, recipe.h): the bytes read, read.length
	 * of them (malloc'd).  Freed by espl_unit_result_clear. */
	uint8_t *data;
} espl_step_result;

#define ESPL_SERIAL_MAX 64

/* What makes a unit unique beyond its chip: reserved for it by the caller
 * (the station, from its database) when the recipe asks for it. */
typedef struct espl_unit_identity {
	char serial[ESPL_SERIAL_MAX];   /* "" when the recipe has no serial */
	long csv_row;                   /* the unit's row of recipe->csv.table; -1 = none */
	const char *batch;              /* {batch}; NULL = "" */
} espl_unit_identity;

typedef struct espl_unit_result {
	bool pass;
	char port[128];
	const char *recipe_name;        /* point into the recipe */
	const char *recipe_sha256;
	bool connected, identified;
	/* The port itself could not be opened (busy, permission denied, gone):
	 * a fault of the station, not of a unit; no unit was involved. */
	bool port_fault;
	espl_chip_info chip;            /* valid when identified */
	uint32_t system_flash_size;     /* size the init-data addresses were computed for */
	double connect_s;
	/* The unit's time from its start to its end, less operator_wait_s:
	 * the units/hour and per-unit tables count the line, not the
	 * operator. */
	double duration_s;
	/* Time spent waiting for the operator (the barcode scan), added by the
	 * admit event; the unit ended duration_s + operator_wait_s after it
	 * started. */
	double operator_wait_s;
	unsigned rom_baud;              /* the rate the ROM answered at (0 = not connected) */
	unsigned flash_baud;            /* the rate the stub last worked at: the baud
	                                   ladder's rung it ended on (0 = no stub);
	                                   set at connect, updated at the end */
	int64_t started_unix_ms;        /* wall clock at the start */
	size_t n_steps;
	espl_step_result *steps;        /* n_steps entries, in recipe order */
	size_t n_regions;
	espl_written_region regions[ESPL_UNIT_MAX_REGIONS];
	/* The first thing that went wrong, with context: "step 3 (write, line
	 * 21): ..." or "connect: ..." or "expect.flash_size_min (line 9): ...". */
	espl_error first_error;
	enum espl_phase failed_phase;   /* ESPL_PHASE_NONE while nothing failed */
	/* Set by the reserve event (before any step, after expect and the
	 * layout passed); reserved says it was called and succeeded. */
	espl_unit_identity identity;
	bool reserved;
} espl_unit_result;

typedef struct espl_runner_events {
	void *ctx;
	/* A step is about to start / has finished (status set). May be NULL. */
	void (*step_start)(void *ctx, const espl_step_result *s);
	void (*step_done)(void *ctx, const espl_step_result *s);
	/* The unit was identified (result->chip is valid). May be NULL. */
	void (*identified)(void *ctx, const espl_unit_result *u);
	/* The recipe has a serial, a CSV or write_unit_data: fill u->identity
	 * (serial, CSV row) after the unit passed expect and the layout check,
	 * before any step.  A negative return fails the unit before its flash
	 * is touched (ESPL_EINTERRUPTED: recorded as stopped).  NULL with such
	 * a recipe: the unit fails ("needs a station with a database"). */
	int (*reserve)(void *ctx, espl_unit_result *u, espl_error *err);
	/* The last word before the flash is touched (after reserve): the
	 * station's barcode scan and route check.  A negative return refuses
	 * the unit: it FAILs in *phase (ESPL_PHASE_BARCODE or
	 * ESPL_PHASE_ROUTE_CHECK, its error kind) with err as its reason
	 * (ESPL_EINTERRUPTED: recorded as stopped, never PASS).  The time it
	 * waits for the operator goes in u->operator_wait_s.  May be NULL. */
	int (*admit)(void *ctx, espl_unit_result *u, enum espl_phase *phase, espl_error *err);
} espl_runner_events;

typedef struct espl_runner_options {
	espl_loader_events loader_events;  /* log and progress from the device layer */
	espl_runner_events events;
	/* Checked between steps and attempts, and by the loader before every
	 * command and block it sends (set it on the runner's thread, e.g. from
	 * a progress event): non-zero stops the unit, failed_phase
	 * ESPL_PHASE_STOPPED, first_error ESPL_EINTERRUPTED.  May be NULL. */
	const volatile int *stop;
	/* Overrides for the loader's connect budget (0 = the loader's default). */
	int connect_attempts, connect_timeout_ms;
	/* The ROM rate to sync at instead of the recipe's connect.baud (0 =
	 * the recipe's): a station lowers it for a port whose unit fell back. */
	unsigned rom_baud;
	/* Start the recipe's flash_baud ladder at the highest rate not above
	 * this one (a rate that worked on this adapter before; 0 = the top). */
	unsigned flash_baud_start;
} espl_runner_options;

/* Fill o with defaults (no callbacks, no stop flag). */
void espl_runner_options_init(espl_runner_options *o);

/* Run the plan's recipe on the unit at port_spec (anything espl_port_open
 * takes).  Fills *res (free its contents with espl_unit_result_clear).
 * Returns ESPL_OK when the unit passed; otherwise the code of the first
 * error (res->first_error has the message). */
int espl_runner_run(const espl_plan *p, const char *port_spec, const espl_runner_options *o,
                    espl_unit_result *res);

/* The same on a port the caller opened; the runner takes ownership. */
int espl_runner_run_port(const espl_plan *p, espl_port *port, const espl_runner_options *o,
                         espl_unit_result *res);

void espl_unit_result_clear(espl_unit_result *res);

const char *espl_step_status_name(enum espl_step_status s);

#endif /* ESPLINE_RUNNER_H */
