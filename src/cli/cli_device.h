/*
 * cli_device.h - what the single-device commands' files share (internal to
 * src/cli; private names start with espl__cli_).
 *
 *   cli_device.c  output, argument parsing, connecting; ports, info, erase,
 *                 read
 *   cli_write.c   write and verify
 */
#ifndef ESPLINE_CLI_DEVICE_H
#define ESPLINE_CLI_DEVICE_H

#include <stdint.h>

#include "espline/esp8266.h"
#include "espline/flash.h"
#include "espline/image.h"
#include "espline/loader.h"

#define MAX_FILES 32
/* The getopt letters of the connection options: baud flash-baud reset after
 * stub no-stub. */
#define CONN_OPTS "ABCDEF"

/* Everything the device commands accept; each command uses a subset. */
typedef struct dev_args {
	const char *cmd;
	espl_loader_options lo;
	int verbose, quiet;
	int stay;                  /* --after stay: leave the chip in the loader */
	int no_compress, verify;
	espl_flash_params params;
	int region;                /* erase --region */
	const char *region_addr;
	const char *db;            /* --db: where device commands are recorded */
	int no_record;             /* --no-record */
	char **pos;                /* positional arguments after the options */
	int npos;
} dev_args;

/* Terminal progress state, owned by the command that runs. */
typedef struct progress_view {
	int tty, quiet, verbose;
	int last_decile;
	const char *last_step;
	uint32_t last_addr;
} progress_view;

/* cli_device.c */
/* The help text of the connection options every device command takes. */
extern const char espl__cli_common_help[];
/* The message of the last espl__cli_fail ("" if none). */
const char *espl__cli_last_error(void);
/* Print err for command a->cmd; returns the exit code it maps to. */
int espl__cli_fail(const dev_args *a, const espl_error *err);
/* Parse a number argument (decimal, 0x hex, KB/MB); prints why not. */
int espl__cli_parse_u32(const char *cmd, const char *what, const char *s, uint32_t *out);
/* Parse the options in allowed and the positional arguments into a. */
int espl__cli_parse_args(dev_args *a, int argc, char **argv, const char *allowed,
			 const char *help);
/* The frame of a device command: parse with the help text help_head plus
 * the connection options' help, run body unless that gave an exit code
 * (help, usage error), free the arguments.  Returns the exit code. */
int espl__cli_device_command(int argc, char **argv, const char *allowed, const char *help_head,
                             int (*body)(dev_args *a));
/* Open spec and connect, with progress on v; *chip identifies the module. */
int espl__cli_connect_device(dev_args *a, const char *spec, progress_view *v, espl_loader **l,
			     espl_chip_info *chip);
/* Reset the chip per --after and close the loader. */
void espl__cli_finish(dev_args *a, espl_loader *l);

/* cli_record.c */
/* The getopt letters of --db and --no-record, for erase, write and verify. */
#define RECORD_OPTS "MN"
/* Record a device command on an identified unit in the database (an event
 * of kind "device-CMD": the MAC, what was done, the result), unless
 * --no-record.  what describes the regions ("chip", "0x0 app.bin 262144
 * bytes md5 ..."); code is the command's exit code, error its message
 * (NULL when it succeeded).  Returns code, or ESPL_EXIT_DB when the command
 * succeeded but its record could not be written (said on stderr). */
int espl__cli_record(const dev_args *a, const espl_chip_info *chip, const char *what, int code,
                     const char *error);
/* "0xADDR NAME N bytes md5 HEX" for each image, ";"-separated, into out. */
void espl__cli_describe_images(const espl_image *const *imgs, int n, char *out, size_t cap);

#endif /* ESPLINE_CLI_DEVICE_H */
