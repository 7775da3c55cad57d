/*
 * cli_device.h - what the single-device commands' files share (internal to
 * src/cli; private names start with espl__cli_).
 *
 * Every device command builds a one-unit job from its arguments
 * (espl_recipe_build, recipe.h) and runs it through the runner
 * (espl_runner_run), as `espline run` runs a recipe: the same layout rules,
 * connect, retries, resume and verify.  The CLI opens no port and builds no
 * loader options itself.
 *
 *   cli_device.c  output, argument parsing, the job's plan and run; ports,
 *                 info, erase, read
 *   cli_write.c   write and verify
 *   cli_record.c  the record of a command in the database
 */
#ifndef ESPLINE_CLI_DEVICE_H
#define ESPLINE_CLI_DEVICE_H

#include <stdint.h>

#include "espline/recipe.h"
#include "espline/runner.h"

#define MAX_FILES ESPL_RECIPE_MAX_LIST
/* The getopt letters of the connection options: baud flash-baud reset after
 * stub no-stub. */
#define CONN_OPTS "ABCDEF"

/* Everything the device commands accept; each command uses a subset. */
typedef struct dev_args {
	const char *cmd;
	char name[32];             /* "espline CMD": the job's name */
	espl_recipe_job job;       /* the options, as the job to build */
	int verbose, quiet;
	int region;                /* erase --region */
	const char *region_addr;
	const char *db;            /* --db: where device commands are recorded */
	int no_record;             /* --no-record */
	char **pos;                /* positional arguments after the options */
	int npos;
} dev_args;

/* A command's job: the built recipe, its plan and the unit's result. */
typedef struct espl_dev_job {
	espl_recipe *recipe;
	espl_plan *plan;
	espl_unit_result res;
} espl_dev_job;

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
/* Build a->job's recipe and plan into *j (files read, layout checked, stub
 * loaded); prints why not.  Returns 0 or the exit code.  Free *j with
 * espl__cli_job_free either way. */
int espl__cli_plan(dev_args *a, espl_dev_job *j);
/* Run the plan on the port a->pos[0] (a glob or usb:VID:PID must match
 * one), with progress on stderr; j->res holds the unit's result.  Returns
 * the exit code (the failure printed). */
int espl__cli_run(dev_args *a, espl_dev_job *j);
void espl__cli_job_free(espl_dev_job *j);

/* cli_record.c */
/* The getopt letters of --db and --no-record, for erase, write and verify. */
#define RECORD_OPTS "MN"
/* Record a device command on an identified unit in the database (an event
 * of kind "device-CMD": the MAC, what was done, the result), unless
 * --no-record or the unit was never identified.  What was done comes from
 * the job ("chip", "region 0x11000+0x1000", "0x0 app.bin 262144 bytes md5
 * ..."); code is the command's exit code, the error the unit's first.
 * Returns code, or ESPL_EXIT_DB when the command succeeded but its record
 * could not be written (said on stderr). */
int espl__cli_record(const dev_args *a, const espl_dev_job *j, int code);

#endif /* ESPLINE_CLI_DEVICE_H */
