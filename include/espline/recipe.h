/*
 * recipe.h - YAML recipes: what to do to every unit, parsed and checked once.
 *
 * A recipe names the chip, how to connect, the flash settings, the
 * conditions a unit must meet (expect) and an ordered list of steps (erase,
 * write, write_init_data, verify, reset).  This module reads the YAML with
 * libyaml, validates everything that can be known without a device (types,
 * unknown keys, alignment, overlapping writes, regions past the end of the
 * smallest allowed flash, missing files, sha256 pins), fills in the defaults
 * and resolves paths relative to the recipe's folder.  Every diagnostic
 * carries the line and column of the YAML node it is about (a recipe built
 * by espl_recipe_build has no file: its diagnostics have line 0 and name
 * the file argument instead).
 *
 * espl_recipe_prepare() then reads each referenced file once, hashes it
 * (SHA-256, OpenSSL EVP) and checks the pins, so that the work that is the
 * same for every unit is done once per recipe.  Header patching, compression
 * and expected MD5s belong to the device layer and the runner; this module
 * never talks to a device and does not include loader.h.
 *
 * The format (the recipes/ folder holds commented samples):
 *
 *   recipe: NAME                     required
 *   chip: esp8266                    required; the only chip supported
 *   connect: { reset: auto|none, baud: N, flash_baud: N | [N, N, ...],
 *              stub: builtin|legacy|esp-flasher-stub|PATH }
 *   flash: { size: detect|keep|256KB..16MB, mode: qio|qout|dio|dout|keep,
 *            freq: 40m|26m|20m|80m|keep }
 *   expect: { flash_size_min: SIZE, flash_manufacturer: [0xEF, "Winbond", ...],
 *             mac_oui: ["5C:CF:7F", ...] }
 *   steps:                           required, at least one
 *     - erase: chip | { regions: [ {address, length}, ... ] }
 *     - write: { file, address, sha256, compress, skip_unchanged }
 *     - write_init_data: { file, sha256, blank: true|false, rf_cal: keep|erase }
 *     - verify: md5 | { regions: [ {address, length}, ... ] }
 *     - reset: run | stay
 *     - boot_check: { expect: [REGEX, ...], reject: [REGEX, ...], baud: N,
 *                     settle: DURATION, timeout: DURATION }
 *     - write_unit_data: { address, size, template: FILE | layout: [
 *                     { offset, type, size, value, over }, ...], pad: 0xFF,
 *                     skip_unchanged, from_csv: FILE, csv_key: COLUMN,
 *                     secret_columns: [COLUMN, ...],
 *                     csv_policy: commit_on_pass|void_on_fail }
 *   serial: { counter: NAME, format: "PX-{year}{week:02}-{seq:06}",
 *             policy: commit_on_pass|void_on_fail, reuse_for_mac: true,
 *             first: N, lease: N }
 *
 *   write_unit_data renders its template (include/espline/unitdata.h), or
 *   its binary layout (include/espline/layout.h), for each unit, pads it
 *   to size and writes it like any other region (MD5
 *   verified, skip_unchanged); at most one step names a CSV file, and its
 *   row is the unit's for every template.  The serial number is reserved
 *   in the database when the unit starts and committed when it passes.
 *
 *   connect.reset may also be a fixture's commands (no shell; each a
 *   string split at blanks): { download: [CMD, ...], run: [CMD, ...] }.
 *   expect.flash_capacity: verified, expect.crystal_mhz: 26|40 (screening:
 *   a fake-capacity part and init data for the wrong crystal fail).
 *
 *   boot_check restarts the module into its firmware and judges its first
 *   boot (include/espline/boot.h); it is the last step (it takes the place
 *   of `reset: run`).  Its patterns are POSIX extended regexes, checked
 *   here (an invalid one is reported at its position).
 *
 * `expect` is top-level only: it is checked once, right after the unit is
 * identified and before any step touches the flash, so a wrong part is never
 * half-programmed.  Each step may carry `retries` and `timeout`, either beside
 * the step key or inside its mapping; defaults are filled in here and shown
 * by `espline recipe show`.  Numbers are decimal, 0x hex, or carry a KB/MB
 * suffix (KB = 1024 bytes); durations are N, Ns, Nms or Nm (bare N = seconds).
 *
 * Defaults: connect { auto, 115200, 460800, builtin }; flash { detect, keep,
 * keep }; write { compress: true, skip_unchanged: false }; write_init_data
 * { blank: true, rf_cal: erase } (the init data goes to size - 0x4000 of the
 * size the SDK will assume: flash.size, else the detected size; see
 * espl_recipe_system_flash_size); retries 2 for write and write_init_data,
 * 1 otherwise; timeouts per attempt from esptool's per-MB figures (chip
 * erase 120 s, erase 30 s/MB, write 40 s/MB plus wire time at flash_baud,
 * MD5 8 s/MB, at least 10 s; reset 5 s).
 *
 * Rules that make a recipe hard to get wrong: every written region must be
 * verified by a later verify step (a unit passes only when all are); writes
 * are erased sector by sector, so two writes may not share a 4 KiB sector
 * and nothing may erase what an earlier step wrote; reset is the last step.
 * Write addresses must be 4-byte aligned, erase regions sector aligned.  A
 * file written at 0x0 must be an ESP8266 image (magic 0xE9) unless flash
 * size, mode and freq are all keep (esptool only warns; here it is a wrong
 * image until proven otherwise).
 *
 * Thread safety: loading and preparing must be done by one thread; a loaded
 * and prepared recipe is then read-only and may be shared by any number of
 * worker threads.  No global mutable state.
 */
#ifndef ESPLINE_RECIPE_H
#define ESPLINE_RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"
#include "espline/flash_vendor.h"
#include "espline/image.h"
#include "espline/layout.h"

#include "espline/loader.h"

struct espl_csv;

#define ESPL_RECIPE_SECTOR 0x1000u
#define ESPL_SHA256_HEX_LEN 64
#define ESPL_RECIPE_MAX_LIST 32       /* flash_manufacturer, mac_oui entries */
#define ESPL_INIT_DATA_MAX ESPL_RECIPE_SECTOR
/* esp_init_data_default.bin byte 48, crystal_26m_en: 0 = 40 MHz, 1 = 26 MHz,
 * 2 = 24 MHz (esp8266/Arduino cores/esp8266/core_esp8266_phy.cpp; the
 * esp8089 Linux driver's init table names the same byte). */
#define ESPL_INIT_DATA_CRYSTAL_BYTE 48

/* A place in the recipe file, 1-based, as printed in messages. */
typedef struct espl_recipe_pos {
	unsigned line, column;
} espl_recipe_pos;

/* One diagnostic: "file:line:column: error: message". */
typedef struct espl_recipe_diag {
	const char *file;       /* the recipe path as given to espl_recipe_load */
	espl_recipe_pos pos;
	bool warning;           /* false = error (the recipe is invalid) */
	const char *message;
} espl_recipe_diag;

/* Called for every diagnostic, errors and warnings, in file order where the
 * checks allow.  May be NULL: the first error still lands in espl_error. */
typedef void (*espl_recipe_diag_fn)(void *ctx, const espl_recipe_diag *d);

enum espl_connect_reset {
	ESPL_CONNECT_RESET_AUTO,   /* DTR/RTS auto-reset circuit (NodeMCU style) */
	ESPL_CONNECT_RESET_NONE,   /* a jig holds GPIO0 low; power-cycle by hand */
	ESPL_CONNECT_RESET_FIXTURE,/* the fixture's commands pull EN and GPIO0 */
};

#define ESPL_FIXTURE_MAX_CMDS 8

/* A fixture's reset commands: each runs without a shell (argv split at
 * blanks), must exit 0 within ESPL_FIXTURE_TIMEOUT_MS (link/fixture.h). */
typedef struct espl_recipe_fixture {
	char *download[ESPL_FIXTURE_MAX_CMDS];  /* into the ROM loader (GPIO0 low) */
	size_t n_download;
	char *run[ESPL_FIXTURE_MAX_CMDS];       /* into the firmware (GPIO0 high) */
	size_t n_run;
} espl_recipe_fixture;

enum espl_stub_mode {
	ESPL_STUB_BUILTIN,         /* the device layer's default stub file */
	ESPL_STUB_FILE,            /* stub_path */
	ESPL_STUB_GENERATION,      /* stub_path is "legacy" or "esp-flasher-stub" (stub.h) */
	ESPL_STUB_NONE,            /* the ROM loader only (espl_recipe_job's no_stub;
	                            * a recipe file cannot ask for it) */
};

typedef struct espl_recipe_connect {
	enum espl_connect_reset reset;
	unsigned baud;             /* connect (ROM) baud; see espl_recipe_rom_baud */
	unsigned flash_baud;       /* baud after the stub is running; with a ladder, its top */
	/* flash_baud given as a list (a baud ladder): the rates after the
	 * first, highest first; n_lower_bauds 0 = a single rate */
	unsigned lower_bauds[ESPL_BAUD_LADDER_MAX - 1];
	size_t n_lower_bauds;
	enum espl_stub_mode stub;
	char *stub_path;           /* absolute, for ESPL_STUB_FILE */
	espl_recipe_fixture fixture;/* for ESPL_CONNECT_RESET_FIXTURE */
	bool reset_default, baud_default, flash_baud_default, stub_default;
	/* The flash_baud the default step timeouts were computed for (set by
	 * load): a caller that changes flash_baud afterwards (--flash-baud)
	 * leaves it, so the runner can allow for a slower link. */
	unsigned timeouts_baud;
} espl_recipe_connect;

enum espl_flash_size_mode {
	ESPL_FLASH_SIZE_DETECT,    /* use the size detected from the JEDEC id */
	ESPL_FLASH_SIZE_KEEP,      /* leave the image header alone */
	ESPL_FLASH_SIZE_FIXED,     /* flash.size bytes */
};



typedef struct espl_recipe_flash {
	enum espl_flash_size_mode size_mode;
	uint32_t size;             /* bytes, for ESPL_FLASH_SIZE_FIXED */
	enum espl_flash_mode mode; /* image.h; or ESPL_FLASH_MODE_KEEP */
	enum espl_flash_freq freq; /* image.h; or ESPL_FREQ_KEEP */
	bool size_default, mode_default, freq_default;
	espl_recipe_pos size_pos;
} espl_recipe_flash;

typedef struct espl_recipe_expect {
	uint32_t flash_size_min;   /* bytes; 0 = no condition */
	size_t n_manufacturers;    /* 0 = any manufacturer */
	uint8_t manufacturers[ESPL_RECIPE_MAX_LIST];
	size_t n_ouis;             /* 0 = any OUI */
	uint8_t ouis[ESPL_RECIPE_MAX_LIST][3];
	bool flash_capacity;       /* flash_capacity: verified (no address aliasing) */
	unsigned crystal_mhz;      /* 26 or 40; 0 = no condition */
	/* expect.barcode: a POSIX extended regex the code scanned for the unit
	 * must match (checked by the station, which reads the scanner; the
	 * pattern compiled at load, so a bad one is a file:line:col error).
	 * NULL = any code, when the station scans at all. */
	char *barcode;
	espl_recipe_pos pos;       /* the `expect` key, for runtime messages */
	espl_recipe_pos capacity_pos, crystal_pos, barcode_pos;
} espl_recipe_expect;

typedef struct espl_region {
	uint32_t address, length;
	espl_recipe_pos pos;
} espl_region;

/* A file a step writes.  path, size and the pin are set by load; data and
 * sha256 by espl_recipe_prepare. */
typedef struct espl_recipe_file {
	char *path;                /* absolute (resolved against the recipe's folder) */
	uint32_t size;
	char pin[ESPL_SHA256_HEX_LEN + 1];     /* expected sha256, lowercase hex, or "" */
	uint8_t *data;             /* size bytes, after prepare */
	char sha256[ESPL_SHA256_HEX_LEN + 1];  /* actual, lowercase hex, after prepare */
	espl_recipe_pos pos, pin_pos;
} espl_recipe_file;

enum espl_step_kind {
	ESPL_STEP_ERASE,
	ESPL_STEP_WRITE,
	ESPL_STEP_WRITE_INIT_DATA,
	ESPL_STEP_VERIFY,
	ESPL_STEP_RESET,
	ESPL_STEP_BOOT_CHECK,
	ESPL_STEP_WRITE_UNIT_DATA,
	/* Built recipes only (espl_recipe_build; not a YAML key): read
	 * read.length bytes from read.address into the step result's data. */
	ESPL_STEP_READ,
};

/* What a FAIL does to the serial number or CSV row a unit reserved. */
enum espl_identity_policy {
	ESPL_POLICY_COMMIT_ON_PASS = 0, /* FAIL returns it: the next unit gets it */
	ESPL_POLICY_VOID_ON_FAIL = 1,   /* FAIL voids it (recorded); never used again */
};

/* serial: numbers from a named counter in the database (unitdata.h). */
typedef struct espl_recipe_serial {
	bool enabled;
	char *counter;             /* the counter's name */
	char *format;              /* checked: has {seq}, only serial fields */
	enum espl_identity_policy policy;
	bool reuse_for_mac;        /* a MAC that has a serial keeps it (default) */
	uint32_t first;            /* the first number a new counter gives (1) */
	uint32_t lease;            /* numbers leased from a central database at a time (100) */
	bool policy_default, reuse_default, first_default, lease_default;
	espl_recipe_pos pos, format_pos;
} espl_recipe_serial;

/* from_csv: one row per unit, each row used once (csvtable.h). */
typedef struct espl_recipe_csv {
	char *path;                /* absolute; NULL: no CSV */
	char *key_column;          /* NULL: the first column */
	char *secret[ESPL_RECIPE_MAX_LIST]; /* never stored: only their SHA-256 */
	size_t n_secret;
	enum espl_identity_policy policy;   /* default void_on_fail: a failed unit
	                                       may hold the row's secret already */
	bool policy_default;
	struct espl_csv *table;    /* after prepare */
	espl_recipe_pos pos, key_pos, secret_pos;
} espl_recipe_csv;

#define ESPL_BOOT_PATTERNS_MAX 16

enum espl_rf_cal { ESPL_RF_CAL_KEEP, ESPL_RF_CAL_ERASE };

typedef struct espl_step {
	enum espl_step_kind kind;
	unsigned number;           /* 1-based position in steps: */
	espl_recipe_pos pos;       /* the step's key */
	/* Extra attempts after a failed attempt.  The runner retries link
	 * failures (timeout, lost sync); a definite answer such as an MD5
	 * mismatch is never retried away. */
	unsigned retries;
	unsigned timeout_ms;       /* per attempt */
	bool retries_default, timeout_default;

	struct {
		bool chip;             /* erase: chip */
		espl_region *regions;  /* otherwise */
		size_t n_regions;
	} erase;
	struct {
		espl_recipe_file file;
		uint32_t address;
		bool compress, skip_unchanged;
		bool compress_default, skip_unchanged_default;
		/* Built recipes only (`espline verify`): write nothing, check
		 * that the flash already holds the file (its MD5, computed by
		 * the chip); the region then counts as verified. */
		bool check_only;
		espl_recipe_pos address_pos;
	} write;
	struct {
		espl_recipe_file file;
		bool blank;            /* fill the system-param sector (size-0x2000) with 0xFF */
		enum espl_rf_cal rf_cal;/* erase the RF calibration sector (size-0x5000) */
		bool blank_default, rf_cal_default;
	} init_data;
	struct {
		bool all;              /* verify: md5 = every region written before */
		espl_region *regions;  /* otherwise */
		size_t n_regions;
	} verify;
	struct {
		bool run;              /* run: start the application; stay: bootloader */
	} reset;
	struct {
		char *expect[ESPL_BOOT_PATTERNS_MAX];  /* all must match, in order */
		size_t n_expect;
		char *reject[ESPL_BOOT_PATTERNS_MAX];  /* besides the built-in ones */
		size_t n_reject;
		unsigned baud;         /* the firmware's UART rate (115200) */
		unsigned settle_ms;    /* keep watching for rejects after the last expect (50 ms) */
		bool baud_default, settle_default;
	} boot;
	struct {
		uint32_t address, size;    /* the region: rendered bytes, then pad */
		espl_recipe_file tmpl;     /* the template (text, unitdata.h), or */
		espl_layout_field *layout; /* a binary layout (layout.h): n_layout fields */
		size_t n_layout;
		espl_recipe_pos layout_pos;
		uint8_t pad;               /* fills the region after the text (0xFF) */
		bool skip_unchanged;
		bool pad_default, skip_unchanged_default;
		espl_recipe_pos address_pos, size_pos;
	} unit_data;
	struct {
		uint32_t address, length;  /* ESPL_STEP_READ */
	} read;
} espl_step;

typedef struct espl_recipe {
	char *name;
	char *path;                /* absolute path of the recipe file */
	char *dir;                 /* its folder; relative paths start here */
	char *text;                /* the whole YAML text, NUL-terminated */
	size_t text_len;
	char sha256[ESPL_SHA256_HEX_LEN + 1]; /* of text */
	espl_recipe_connect connect;
	espl_recipe_flash flash;
	espl_recipe_expect expect;
	espl_recipe_serial serial;
	espl_recipe_csv csv;
	espl_step *steps;
	size_t n_steps;
	bool prepared;
	/* Built from a command's arguments (espl_recipe_build), not loaded
	 * from a file: positions are 0 and messages carry none, and they are
	 * worded for the command line (--flash-size, "the flash", no step
	 * numbers: docs/ARCHITECTURE.md "One write path"). */
	bool built;
	/* `espline write` without --verify: the written regions need no verify
	 * step, and a unit passes without one (only a built recipe). */
	bool verify_optional;
	/* Flash size declared by the header of the image written at 0 (0 if
	 * none); used for the system area when flash.size is keep. Set by
	 * espl_recipe_prepare. */
	uint32_t image_declared_size;
} espl_recipe;

/* The rate to sync with the ROM at: connect.baud when the recipe gives it,
 * else connect.flash_baud, the last (lowest) rate of a ladder (issue 17:
 * the ROM auto-bauds on SYNC, so the stub goes up at the fast rate and no
 * baud switch is needed; the loader falls back to 115200 within 0.3 s if
 * the ROM does not answer there). */
unsigned espl_recipe_rom_baud(const espl_recipe *r);

/* Set connect.flash_baud to one rate (no ladder), e.g. from --flash-baud. */
void espl_recipe_set_flash_baud(espl_recipe *r, unsigned baud);

/* Parse and validate the recipe at path.  On success *out is a new recipe
 * (free with espl_recipe_free).  On failure returns ESPL_ERECIPE (or a file
 * error if the recipe itself cannot be read), *out is NULL, err holds the
 * first error as "file:line:col: error: ..." and diag_fn saw them all. */
int espl_recipe_load(const char *path, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                     espl_recipe **out, espl_error *err);

/* Read every referenced file once, hash it and check its sha256 pin.
 * Diagnostics as for espl_recipe_load.  Idempotent. */
int espl_recipe_prepare(espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                        espl_error *err);

void espl_recipe_free(espl_recipe *r);

/* --- system parameter area (non-OS SDK, protocol notes 9) ------------- */

typedef struct espl_system_area {
	uint32_t flash_size;       /* the size the addresses are computed for */
	uint32_t rf_cal;           /* size - 0x5000 */
	uint32_t init_data;        /* size - 0x4000 */
	uint32_t blank;            /* size - 0x2000 */
} espl_system_area;

/* Addresses for a flash of flash_size bytes (>= 64 KB). */
int espl_system_area_for(uint32_t flash_size, espl_system_area *out, espl_error *err);

/* The flash size the SDK will assume on a unit whose chip reports
 * detected_size: flash.size when fixed, the detected size for detect, and
 * for keep the size declared by the image at address 0 (after prepare),
 * falling back to the detected size.  Fails if that exceeds the chip. */
int espl_recipe_system_flash_size(const espl_recipe *r, uint32_t detected_size,
                                  uint32_t *out, espl_error *err);

/* The layout checks espl_recipe_load made for the smallest allowed flash,
 * redone for one unit: system area at the end of system_size bytes, chip
 * of chip_size bytes.  ESPL_ERECIPE with "file:line:col: error: ..." when a
 * region does not fit or init data collides with a write on this unit. */
int espl_recipe_check_layout(const espl_recipe *r, uint32_t system_size, uint32_t chip_size,
                             espl_error *err);

/* The layout rule that recipes and `espline write` share: do the bytes
 * [a, a_end) and [b, b_end) touch a common 4 KiB sector?  The stub erases
 * whole sectors before it writes, so two writes (or a write and a later
 * erase) must not, or the second wipes part of the first. */
bool espl_recipe_sectors_meet(uint32_t a, uint64_t a_end, uint32_t b, uint64_t b_end);

/* --- a recipe from a command's arguments ------------------------------ */

/* What a device command asks for; espl_recipe_build turns it into a recipe
 * of one unit's steps, so `espline write/verify/erase/read/info` run
 * through the same runner, layout rules, retries and resume as a recipe. */
enum espl_job_kind {
	ESPL_JOB_INFO,     /* connect and identify only */
	ESPL_JOB_WRITE,    /* write each file (verify: then check them all by MD5) */
	ESPL_JOB_VERIFY,   /* check each file's MD5 against the flash, write nothing */
	ESPL_JOB_ERASE,    /* the chip (length 0) or [address, address + length) */
	ESPL_JOB_READ,     /* length bytes from address into the step's data */
};

typedef struct espl_job_file {
	uint32_t address;
	const char *path;          /* read (bounded) by espl_recipe_build */
} espl_job_file;

typedef struct espl_recipe_job {
	const char *name;          /* the recipe's name and path: "espline write" */
	enum espl_job_kind kind;
	const espl_job_file *files;/* write, verify: in any order (run by address) */
	size_t n_files;
	bool verify;               /* write: a verify: md5 step after the writes */
	bool compress;             /* write: deflate through the stub */
	espl_flash_params params;  /* image.h: header patch for a file at 0x0 */
	uint32_t address, length;  /* erase (length 0 = the chip), read */
	bool reset_none;           /* connect.reset none (else auto) */
	unsigned baud;             /* the ROM rate; 0 = the recipe default */
	unsigned flash_baud;       /* 0 = the recipe default */
	const char *stub;          /* a stub file or generation; NULL = search */
	bool no_stub;              /* the ROM loader only */
	bool run_after;            /* last step reset: run (else reset: stay) */
} espl_recipe_job;

/* Build a prepared recipe for job: the files read and hashed, the layout
 * checked as for a recipe file (no overlap, no shared 4 KiB sector between
 * two writes, within 16 MB; at run time, within the unit's flash) and for
 * a verify, no two files overlapping.  Messages carry no line and column
 * (there is no file): they name the file argument.  Errors: ESPL_ERECIPE
 * (diag_fn saw each, err has the first), ESPL_EARG, a file's read error,
 * ESPL_ENOMEM.  *out is NULL on failure; free with espl_recipe_free. */
int espl_recipe_build(const espl_recipe_job *job, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                      espl_recipe **out, espl_error *err);

/* The smallest flash any allowed unit can have (flash.size when fixed,
 * else expect.flash_size_min), or 0 when unknown until detection. */
uint32_t espl_recipe_min_flash_size(const espl_recipe *r);

/* --- value parsing, shared with the CLI and the tests ----------------- */

/* "4096", "0x1000", "4KB", "1MB", "0x10 KB": 0 or -1 (not a number, or
 * above 4 GiB - 1). */
int espl_recipe_parse_u32(const char *s, uint32_t *out);

/* "30", "30s", "500ms", "2m": milliseconds; 0 or -1. */
int espl_recipe_parse_duration_ms(const char *s, unsigned *out);

/* "5C:CF:7F" or "5c-cf-7f": 0 or -1. */
int espl_recipe_parse_oui(const char *s, uint8_t oui[3]);

/* espl_flash_manufacturer_name(id): include/espline/flash_vendor.h. */

/* Names for printing: flash mode and frequency names are image.h's
 * espl_flash_mode_name and espl_flash_freq_name ("dio", "40m", "keep"). */
const char *espl_step_kind_name(enum espl_step_kind kind);
/* "512KB", "4MB", or "0x12345" when not a whole KB; buf holds >= 16 bytes. */
const char *espl_recipe_format_size(uint32_t bytes, char *buf, size_t len);

#endif /* ESPLINE_RECIPE_H */
