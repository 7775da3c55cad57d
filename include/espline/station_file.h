/*
 * station_file.h - the station file: what a station runs with, written once
 * (/etc/espline/station.yaml on an installed station, see espline-station(5))
 * instead of typed on every command line.
 *
 *   station: line1-st2                  name recorded with every unit
 *   recipe: recipes/nodemcu-4mb.yaml    required; relative to this file's folder
 *   ports:                              the adapters, each with a slot name
 *     - { slot: A1, port: /dev/espline/by-path/pci-0000:00:14.0-usb-0:2.1:1.0 }
 *     - { slot: A2, usb_serial: "0001A2F3" }   the adapter with this USB serial
 *     - { slot: A3, usb_path: "1-1.3" }        the adapter in this USB socket
 *       (a slot keeps its name when the adapters re-enumerate: /dev/ttyUSBn
 *       changes, the socket path and the adapter's serial number do not)
 *   operator_required: true             a batch needs an operator name
 *   database: /var/lib/espline/espline.sqlite
 *   central_url_file: /etc/espline/central.url   a file holding postgresql://...
 *   web: { bind: 127.0.0.1:8080, token_file: /etc/espline/web.token }
 *   scan: { from: terminal, map: slot_label, timeout: 5m }
 *                                       a code scanned for every unit before it
 *                                       starts: from the terminal's lines (a
 *                                       keyboard-wedge scanner) or a serial port
 *                                       spec; map: slot_label (scan the slot's
 *                                       label, then the unit) or next_waiting
 *                                       (a code goes to the slot waiting
 *                                       longest); the recipe's expect.barcode
 *                                       checks it
 *   label:                              printed for every PASS unit
 *     on_pass: unit.zpl                 a ZPL template (unitdata.h's label fields)
 *     printer: 10.0.0.7:9100            raw TCP; or file: PATH (appended); or
 *                                       command: [lp, -d, zebra, -o, raw]
 *     queue: /var/lib/espline/labels    labels not printed yet (default: the
 *                                       database's path + ".labels")
 *     timeout: 3s, retry: 5s
 *   hooks:                              commands, no shell, unit JSON on stdin
 *     route_check: { run: [/usr/local/bin/mes-route], timeout: 3s }
 *     on_unit_done: { run: [/usr/local/bin/mes-report, --line, "1"], timeout: 5s }
 *
 * espl_station_file_load() reads and checks it without touching a device:
 * YAML, types, unknown keys (with "did you mean"), slot names (unique,
 * [A-Za-z0-9_.-]), port specs (syntax), the recipe (a readable file; its
 * contents are the recipe loader's business, with its own file:line:col
 * messages: `espline station check` runs both), the central URL file (readable,
 * a postgresql:// URL), the web bind address and token file (by web.c's own
 * rules, as `espline run --http` and --http-token-file: an address to
 * listen on, a token file only its owner can read; off loopback a token
 * file is required).  Every diagnostic goes to diag_fn as FILE:LINE:COL like a
 * recipe's (recipe/yaml.c does both).  Paths come back absolute.
 *
 * `espline run` reads the central URL file as --central-file does.
 *
 * Errors: ESPL_ERECIPE for a bad file (the first diagnostic is in *err),
 * ESPL_ENOTFOUND / ESPL_EPERM / ESPL_ESYS when it cannot be read.
 * Ownership: *out is the caller's, freed with espl_station_file_free.
 * Threads: no shared state; a loaded file is read-only.
 */
#ifndef ESPLINE_STATION_FILE_H
#define ESPLINE_STATION_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "espline/error.h"
#include "espline/recipe.h"

#define ESPL_STATION_MAX_SLOTS 256
#define ESPL_STATION_SLOT_MAX 32     /* characters in a slot name */

/* A slot: a name and exactly one way to find its adapter. */
typedef struct espl_station_slot {
	char *slot;                  /* "A1" */
	char *port;                  /* a port spec, as espline run --port takes, or NULL */
	char *usb_serial;            /* the adapter's USB serial number, or NULL */
	char *usb_path;              /* the USB socket ("1-1.3", espline ports), or NULL */
	espl_recipe_pos pos;         /* of the list item */
} espl_station_slot;

/* The slot an enumerated adapter (path, USB serial, USB location) belongs
 * to: a port equal to the path (or a glob matching it), else the same USB
 * serial number, else the same USB socket.  NULL when none. */
const espl_station_slot *espl_station_slot_find(const espl_station_slot *slots, size_t n,
                                                const char *path, const char *usb_serial,
                                                const char *usb_location);

/* Whether a slot list names an adapter by USB serial or socket (then every
 * supported adapter must be enumerated to find them). */
int espl_station_slots_need_usb(const espl_station_slot *slots, size_t n);

/* A command run without a shell: argv[0] with a '/' is resolved from the
 * station file's folder. */
typedef struct espl_station_command {
	char **argv;                 /* NULL-ended; NULL: no command */
	unsigned timeout_ms;         /* default 5000 */
} espl_station_command;

enum espl_scan_map {
	ESPL_SCAN_SLOT_LABEL = 0,    /* the slot's label (its name), then the unit's code */
	ESPL_SCAN_NEXT_WAITING,      /* a code goes to the slot waiting longest */
};

#define ESPL_LABEL_TEMPLATE_MAX (64u << 10)

typedef struct espl_station_file {
	char *path;                  /* absolute */
	char *name;                  /* station: NAME, or NULL (the host name) */
	char *recipe;                /* absolute path of the recipe */
	espl_station_slot *slots;    /* n_slots; none: every supported adapter */
	size_t n_slots;
	bool operator_required;
	char *database;              /* absolute, or NULL */
	char *central_url_file;      /* absolute, or NULL */
	char *web_bind;              /* "HOST:PORT", or NULL */
	char *web_token_file;        /* absolute, or NULL */
	/* scan: NULL scan_from = no scan */
	char *scan_from;             /* "terminal" or a port spec */
	enum espl_scan_map scan_map;
	unsigned scan_timeout_ms;    /* 0: wait as long as it takes */
	/* label: NULL label_template = no labels */
	char *label_template;        /* the ZPL text, read and checked at load */
	char *label_template_path;   /* absolute */
	char *label_printer;         /* HOST:PORT, or NULL */
	char *label_file;            /* absolute, or NULL */
	espl_station_command label_command;
	char *label_queue;           /* absolute, or NULL: beside the database */
	unsigned label_timeout_ms, label_retry_ms;
	/* hooks */
	espl_station_command route_check, on_unit_done;
} espl_station_file;

int espl_station_file_load(const char *path, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                           espl_station_file **out, espl_error *err);

void espl_station_file_free(espl_station_file *sf);

#endif /* ESPLINE_STATION_FILE_H */
