/*
 * cli.h - the subcommand table shared by main.c and the cli_*.c files.
 *
 * Each cli_*.c file defines one or more espl_cli_command values; main.c
 * lists them in its table and dispatches on argv[1].  Only the CLI layer
 * prints and picks exit codes.
 */
#ifndef ESPLINE_CLI_H
#define ESPLINE_CLI_H

/* Exit codes scripts can rely on. */
enum espl_exit {
	ESPL_EXIT_OK = 0,        /* success; for run/write/verify: every unit passed */
	ESPL_EXIT_FAIL = 1,      /* the job ran and a unit or check failed */
	ESPL_EXIT_USAGE = 2,     /* bad command line or bad recipe */
	ESPL_EXIT_DEVICE = 3,    /* could not talk to the device/port */
	ESPL_EXIT_DB = 4,        /* database unusable */
	ESPL_EXIT_INTERRUPTED = 130,
};

typedef struct espl_cli_command {
	const char *name;        /* argv[1], e.g. "info" or "db" */
	const char *summary;     /* one line for `espline --help` */
	/* argv[0] is the subcommand name; returns an enum espl_exit value. */
	int (*run)(int argc, char **argv);
} espl_cli_command;

extern const espl_cli_command espl_cmd_recipe;   /* cli_recipe.c */
extern const espl_cli_command espl_cmd_run;      /* cli_run.c */
extern const espl_cli_command espl_cmd_history, espl_cmd_report, espl_cmd_export, espl_cmd_db; /* cli_db.c */
extern const espl_cli_command espl_cmd_sync; /* cli_db.c */

extern const espl_cli_command espl_cmd_ports, espl_cmd_info, espl_cmd_erase, espl_cmd_write,
	espl_cmd_verify, espl_cmd_read; /* cli_device.c */

/* s escaped for a terminal or a log (util/str.h: control characters and
 * invalid UTF-8 made visible), for every user-supplied string the CLI
 * prints; NULL gives "".  The result lives in one of 12 static buffers
 * used in turn, so up to 12 may appear in one printf.  The CLI is
 * single-threaded. */
const char *espl_cli_shown(const char *s);

/* A recipe diagnostic on stderr as FILE:LINE:COL: error: MESSAGE, escaped;
 * the espl_recipe_diag_fn of every command that loads a recipe. */
struct espl_recipe_diag;
void espl_cli_print_diag(void *ctx, const struct espl_recipe_diag *d);

/* Map an ESPL_E* code to an exit code. */
int espl_cli_exit_for(int code);

#endif /* ESPLINE_CLI_H */
