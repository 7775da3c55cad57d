/* cli_web.c - the browser view from the command line: `espline serve --db
 * FILE` (history only) and the --http options of `espline run` (web.h). */
#include <getopt.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "espline/central.h"
#include "espline/central_query.h"
#include "espline/db.h"
#include "espline/web.h"

static const char serve_help[] =
	"usage: espline serve [--db PATH | --central [URL] | --central-file FILE]\n"
	"                     [--http HOST:PORT] [--http-token-file FILE]\n\n"
	"Serve the history of a database to a browser, read-only: batches, batch\n"
	"reports with failures by reason, CSV/JSON export, and a search by MAC (or\n"
	"scanned code) that shows what `espline history` shows.  Runs until Ctrl-C.\n\n"
	"  --db PATH             database (default $ESPLINE_DB or db/espline.sqlite)\n"
	"  --central [URL]       every station's records from the central PostgreSQL\n"
	"                        (URL, else $ESPLINE_CENTRAL), with each station's\n"
	"                        latest batch and whether it is live\n"
	"  --central-file FILE   the central connection string from a file only you\n"
	"                        can read\n"
	CLI_WEB_OPTIONS_HELP;

/* The control the page may ask for: stopping the station (no port), or
 * pausing, resuming or stopping one slot (its slot name or port). */
static int control_station(void *ctx, const char *action, const char *port, espl_error *err)
{
	espl_supervisor *sup = ctx;
	if (!port) {
		if (strcmp(action, "stop") != 0)
			return espl_fail(err, ESPL_EARG, "%s needs a slot (port=NAME)", action);
		espl_supervisor_stop(sup, ESPL_STOP_GRACEFUL);
		return ESPL_OK;
	}
	enum espl_slot_action a = strcmp(action, "pause") == 0  ? ESPL_SLOT_PAUSE
	                          : strcmp(action, "stop") == 0 ? ESPL_SLOT_STOP
	                                                        : ESPL_SLOT_RESUME;
	return espl_supervisor_slot_control(sup, port, a, err);
}

int espl_cli_web_start(const char *cmd, const espl_cli_web_args *a, espl_ui *ui, espl_supervisor *sup,
                       const char *db_path, espl_web **out)
{
	espl_error err = { 0, "" };
	char *token = NULL;
	*out = NULL;
	if (!a->listen)
		return ESPL_EXIT_OK;
	if (espl_web_load_token(a->token_file, espl_cli_http_token_env(), &token, &err) < 0) {
		fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err.msg));
		return ESPL_EXIT_USAGE;
	}
	espl_web_options o = {
		.listen = a->listen, .token = token, .ui = ui, .db_path = db_path, .history = a->history,
		.control = a->control ? control_station : NULL, .control_ctx = sup,
	};
	int rc = espl_web_start(&o, out, &err);
	free(token);
	if (rc < 0) {
		fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err.msg));
		return rc == ESPL_EARG ? ESPL_EXIT_USAGE : ESPL_EXIT_STATION;  /* the web view cannot listen: a setup fault */
	}
	/* The address a browser opens; a wildcard address is any of the host's. */
	const char *colon = strrchr(a->listen, ':');
	char host[256];
	snprintf(host, sizeof host, "%.*s", (int)(colon - a->listen), a->listen);
	fprintf(stderr, "espline %s: web view at http://%s:%u/%s\n", cmd, espl_cli_shown(host), espl_web_port(*out),
	        a->control ? " (control allowed)" : "");
	return ESPL_EXIT_OK;
}

/* getopt_long takes any unambiguous prefix: `--http-token SECRET` would
 * read the secret as a file name and print it in the error.  Refuse any
 * spelling of the token option but the full one, before parsing. */
int espl_cli_web_check_argv(const char *cmd, int argc, char **argv)
{
	static const char full[] = "--http-token-file";
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *arg = argv[i];
		size_t n = strcspn(arg, "=");
		if (n >= 8 && strncmp(arg, full, n) == 0 && n != sizeof full - 1) {
			fprintf(stderr, "espline %s: the token is never given on the command line; "
			                "use --http-token-file FILE or $ESPLINE_HTTP_TOKEN\n", cmd);
			return ESPL_EXIT_USAGE;
		}
	}
	return ESPL_EXIT_OK;
}

void espl_cli_web_stop(const char *cmd, espl_web *w)
{
	unsigned long long streams, overflows;
	if (!w)
		return;
	espl_web_stats(w, &streams, &overflows);
	espl_web_stop(w);
	if (streams)
		fprintf(stderr, "espline %s: web view: %llu event stream%s served; %llu time%s a browser fell behind "
		        "and got a fresh snapshot instead of the events it missed\n", cmd, streams,
		        streams == 1 ? "" : "s", overflows, overflows == 1 ? "" : "s");
}

int espl_cli_web_option(int opt, const char *arg, espl_cli_web_args *a)
{
	switch (opt) {
	case CLI_OPT_HTTP: a->listen = arg; return 1;
	case CLI_OPT_HTTP_TOKEN_FILE: a->token_file = arg; return 1;
	case CLI_OPT_HTTP_CONTROL: a->control = 1; return 1;
	default: return 0;
	}
}

/* serve --central: one connection, used by one request at a time (a PGconn
 * belongs to one thread), made again after the server went away. */
typedef struct central_source {
	pthread_mutex_t lock;
	PGconn *conn;
	const char *conninfo;
} central_source;

static int central_ready(central_source *cs, espl_error *err)
{
	if (cs->conn && PQstatus(cs->conn) == CONNECTION_OK)
		return ESPL_OK;
	espl_central_disconnect(cs->conn);
	cs->conn = NULL;
	return espl_central_connect(&cs->conn, cs->conninfo, err);
}

#define CENTRAL_CALL(ctx, err, call)                        \
	do {                                                \
		central_source *cs_ = ctx;                  \
		pthread_mutex_lock(&cs_->lock);             \
		int rc_ = central_ready(cs_, err);          \
		PGconn *conn = cs_->conn;                   \
		if (rc_ >= 0)                               \
			rc_ = (call);                       \
		pthread_mutex_unlock(&cs_->lock);           \
		return rc_;                                 \
	} while (0)

static int central_batches(void *ctx, int limit, espl_report_batch_cb cb, void *user, espl_error *err)
{
	CENTRAL_CALL(ctx, err, espl_central_batches(conn, limit, cb, user, err));
}

static int central_history(void *ctx, const char *key, espl_report_unit_cb cb, void *user, espl_error *err)
{
	CENTRAL_CALL(ctx, err, espl_central_history(conn, key, cb, user, err));
}

static int central_report(void *ctx, const espl_report_filter *f, espl_report *out, espl_error *err)
{
	CENTRAL_CALL(ctx, err, espl_central_report(conn, f, out, err));
}

static int central_export(void *ctx, const espl_report_filter *f, enum espl_export_format format, FILE *out,
                          espl_error *err)
{
	CENTRAL_CALL(ctx, err, espl_central_export(conn, f, format, out, err));
}

static int central_stations(void *ctx, espl_central_station_cb cb, void *user, espl_error *err)
{
	CENTRAL_CALL(ctx, err, espl_central_stations(conn, cb, user, err));
}

/* Connect once before serving, so a wrong URL is an error at start. */
static int central_source_open(central_source *cs, const char *conninfo, espl_web_history *h)
{
	espl_error err = { 0, "" };
	if (!conninfo) {
		fprintf(stderr, "espline serve: --central needs a connection string (postgresql://...) or $%s\n",
		        ESPL_CENTRAL_ENV);
		return ESPL_EXIT_USAGE;
	}
	*cs = (central_source){ .conninfo = conninfo };
	pthread_mutex_init(&cs->lock, NULL);
	if (espl_central_connect(&cs->conn, conninfo, &err) < 0) {
		fprintf(stderr, "espline serve: %s\n", espl_cli_shown(err.msg));
		pthread_mutex_destroy(&cs->lock);
		return ESPL_EXIT_DB;
	}
	*h = (espl_web_history){ .ctx = cs, .batches = central_batches, .history = central_history,
		                 .report = central_report, .export_units = central_export,
		                 .stations = central_stations };
	return ESPL_EXIT_OK;
}

static void central_source_close(central_source *cs)
{
	espl_central_disconnect(cs->conn);
	pthread_mutex_destroy(&cs->lock);
}

/* The database must exist: serve never creates one. */
static int probe_db(const char *path)
{
	espl_db *probe;
	espl_error err = { 0, "" };
	espl_db_options dbo = { .path = path, .read_only = 1 };
	if (espl_db_open(&probe, &dbo, &err) < 0) {
		fprintf(stderr, "espline serve: %s\n", espl_cli_shown(err.msg));
		return ESPL_EXIT_DB;
	}
	espl_db_close(probe);
	return ESPL_EXIT_OK;
}

/* Wait for SIGINT or SIGTERM (blocked in every thread, taken here). */
static void wait_for_stop(const sigset_t *set)
{
	int sig;
	sigwait(set, &sig);
}

static int serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
		{ "central", optional_argument, NULL, 'c' }, { "central-file", required_argument, NULL, 'f' },
		CLI_WEB_LONG_OPTIONS, { NULL, 0, NULL, 0 },
	};
	espl_cli_web_args web = { "127.0.0.1:8080", NULL, 0, NULL };
	const char *db = NULL, *central = NULL;
	int use_central = 0;
	int c = espl_cli_web_check_argv("serve", argc, argv);
	if (c != ESPL_EXIT_OK)
		return c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (espl_cli_web_option(c, optarg, &web))
			continue;
		if (c == 'd') {
			db = optarg;
			continue;
		}
		if (c == 'c') {
			/* --central URL as well as --central=URL */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				optarg = argv[optind++];
			central = optarg;
			use_central = 1;
			continue;
		}
		if (c == 'f') {
			int rc = espl_cli_central_file("serve", optarg, &central);
			if (rc != ESPL_EXIT_OK)
				return rc;
			use_central = 1;
			continue;
		}
		if (c == 'h') {
			fputs(serve_help, stdout);
			return ESPL_EXIT_OK;
		}
		fprintf(stderr, "espline serve: unknown or incomplete option %s (espline serve --help)\n",
		        espl_cli_shown(argv[optind - 1]));
		return ESPL_EXIT_USAGE;
	}
	if (optind < argc || web.control || (use_central && db)) {
		fprintf(stderr, "espline serve: %s (espline serve --help)\n",
		        web.control ? "--http-control belongs to espline run"
		        : optind < argc ? "unexpected argument" : "--db and --central: one or the other");
		return ESPL_EXIT_USAGE;
	}
	db = espl__cli_or_env(db, ESPL_DB_ENV);
	central_source cs;
	espl_web_history central_history_source;
	c = use_central ? central_source_open(&cs, espl_central_conninfo(espl__cli_or_env(central, ESPL_CENTRAL_ENV)),
	                                      &central_history_source)
	                : probe_db(espl_db_path(db));
	if (c != ESPL_EXIT_OK)
		return c;
	web.history = use_central ? &central_history_source : NULL;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);  /* before any server thread starts */
	espl_web *w;
	int code = espl_cli_web_start("serve", &web, NULL, NULL, use_central ? NULL : espl_db_path(db), &w);
	if (code == ESPL_EXIT_OK) {
		wait_for_stop(&set);
		espl_cli_web_stop("serve", w);
	}
	if (use_central)
		central_source_close(&cs);
	return code;
}

const espl_cli_command espl_cmd_serve = {
	"serve", "serve a database's history to a browser (read-only)", serve_main,
};
