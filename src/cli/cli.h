/*
 * cli.h - the subcommand table shared by main.c and the cli_*.c files.
 *
 * Each cli_*.c file defines one or more espl_cli_command values; main.c
 * lists them in its table and dispatches on argv[1].  Only the CLI layer
 * prints and picks exit codes.
 */
#ifndef ESPLINE_CLI_H
#define ESPLINE_CLI_H

#include "espline/recipe.h"
#include "espline/stub.h"
#include "espline/web.h"

/* A macro's value as a string literal: "default " ESPL__STR(ESPL_DEFAULT_BAUD). */
#define ESPL__STR_(x) #x
#define ESPL__STR(x) ESPL__STR_(x)

/* given when it is non-empty, else the environment variable env when it is
 * set and non-empty, else NULL: how an option falls back to its variable
 * ($ESPLINE_DB, $ESPLINE_CENTRAL).  Only the CLI reads the environment. */
const char *espl__cli_or_env(const char *given, const char *env);

/* cli_env.c: the variables the library takes as options. */
/* $ESPLINE_STUB, $XDG_DATA_HOME, $HOME for the stub search (stub.h); the
 * same static struct on every call, refreshed. */
const espl_stub_env *espl_cli_stub_env(void);
/* $NO_COLOR set and non-empty: no colours, even on a terminal. */
int espl_cli_no_color(void);
/* $COLUMNS (the live table's width) when it is 20..1000, else 0 (ask the
 * terminal). */
int espl_cli_columns(void);
/* $ESPLINE_HTTP_TOKEN, or NULL when unset or empty. */
const char *espl_cli_http_token_env(void);
/* $ESPLINE_CENTRAL_BACKOFF_MAX_MS (a test knob: the sender's longest retry
 * delay), or 0 (the default) when unset or not in 1..3600000. */
int espl_cli_central_backoff_max_ms(void);

/* Exit codes scripts can rely on. */
enum espl_exit {
	ESPL_EXIT_OK = 0,        /* success; for run/write/verify: every unit passed */
	ESPL_EXIT_FAIL = 1,      /* the job ran and a unit or check failed */
	ESPL_EXIT_USAGE = 2,     /* bad command line or bad recipe */
	ESPL_EXIT_DEVICE = 3,    /* no device could be reached (nothing answered,
	                            no adapter, a port that is gone or refuses) */
	ESPL_EXIT_DB = 4,        /* database unusable (damaged, locked by another
	                            station, read-only or full file system) */
	ESPL_EXIT_STATION = 5,   /* a fault of the station or its setup: a port
	                            busy or not permitted, no flasher stub, out of
	                            memory, a system error; no unit is blamed */
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

extern const espl_cli_command espl_cmd_serve; /* cli_web.c */

/* The --http options `espline run` and `espline serve` share (cli_web.c). */
typedef struct espl_cli_web_args {
	const char *listen;       /* --http HOST:PORT; NULL: no server */
	const char *token_file;   /* --http-token-file FILE (else $ESPLINE_HTTP_TOKEN) */
	int control;              /* --http-control */
	const espl_web_history *history; /* serve --central: read there, not the database */
} espl_cli_web_args;

enum { CLI_OPT_HTTP = 1000, CLI_OPT_HTTP_TOKEN_FILE, CLI_OPT_HTTP_CONTROL };
#define CLI_WEB_LONG_OPTIONS                                                      \
	{ "http", required_argument, NULL, CLI_OPT_HTTP },                        \
	{ "http-token-file", required_argument, NULL, CLI_OPT_HTTP_TOKEN_FILE },  \
	{ "http-control", no_argument, NULL, CLI_OPT_HTTP_CONTROL }
#define CLI_WEB_OPTIONS_HELP                                                                        \
	"  --http HOST:PORT      serve the view to browsers there (loopback needs no token)\n"          \
	"  --http-token-file F   the token browsers must give, from a file only you can read\n"        \
	"                        (else $ESPLINE_HTTP_TOKEN; never on the command line); needed\n"     \
	"                        for an address other than loopback and for --http-control\n"

/* Refuse abbreviations of --http-token-file (they would take a token as a
 * file name); call before getopt_long.  Returns an exit code (0: fine). */
int espl_cli_web_check_argv(const char *cmd, int argc, char **argv);
/* Apply one getopt result if it is a --http option: 1 taken, 0 not ours. */
int espl_cli_web_option(int opt, const char *arg, espl_cli_web_args *a);
/* Start the server when --http was given (*out stays NULL otherwise); prints
 * the address or the error; returns an exit code.  ui/sup NULL: history only. */
int espl_cli_web_start(const char *cmd, const espl_cli_web_args *a, espl_ui *ui, espl_supervisor *sup,
                       const char *db_path, espl_web **out);

/* Stop the server (NULL: nothing) and say how many browsers it served. */
void espl_cli_web_stop(const char *cmd, espl_web *w);

/* The fallback spool's folder: $ESPLINE_SPOOL_DIR, else
 * /var/tmp/espline-spool.  Best on another file system than the database. */
const char *espl_cli_spool_dir(void);

/* --central-file PATH: the central connection string (one line) from a
 * file only its owner can read, so the password is not on the command line
 * for `ps` to show.  Refused (exit 2, with how to fix it) when group or
 * others may read it, when it is not a bounded regular file, or empty.
 * *conninfo points to a static buffer. */
int espl_cli_central_file(const char *cmd, const char *path, const char **conninfo);

extern const espl_cli_command espl_cmd_station;  /* cli_station.c */
extern const espl_cli_command espl_cmd_setup;    /* cli_setup.c */
extern const espl_cli_command espl_cmd_version;  /* version.c */

/* The release (VERSION) and the git revision of this build (version.c). */
const char *espl_cli_version(void);
const char *espl_cli_revision(void);

/* The station file `espline run` and `espline station` read when none is
 * given (the Makefile's SYSCONFDIR, /etc by default). */
#ifndef ESPLINE_SYSCONFDIR
#define ESPLINE_SYSCONFDIR "/etc"
#endif
#define ESPL_CLI_STATION_FILE ESPLINE_SYSCONFDIR "/espline/station.yaml"

/* Load and prepare a recipe (files read, hashed, pins checked); NULL on
 * failure, after the diagnostics were printed (cli_recipe.c). */
espl_recipe *espl_cli_recipe_load(const char *path);

/* s on stdout as a YAML double-quoted string: quotes, backslashes and
 * control characters escaped (cli_recipe.c). */
void espl_cli_put_quoted(const char *s);

/* Load a station file; NULL on failure, after the diagnostics were printed
 * (cli_station.c). */
struct espl_station_file *espl_cli_station_load(const char *path);

/* Map an ESPL_E* code to an exit code. */
int espl_cli_exit_for(int code);

#endif /* ESPLINE_CLI_H */
