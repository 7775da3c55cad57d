/* cli_web.c - the browser view from the command line: `espline serve --db
 * FILE` (history only) and the --http options of `espline run` (web.h). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "espline/db.h"
#include "espline/web.h"

static const char serve_help[] =
	"usage: espline serve [--db PATH] [--http HOST:PORT] [--http-token-file FILE]\n\n"
	"Serve the history of a database to a browser, read-only: batches, batch\n"
	"reports with failures by reason, CSV/JSON export, and a search by MAC that\n"
	"shows what `espline history` shows.  Runs until Ctrl-C.\n\n"
	"  --db PATH             database (default $ESPLINE_DB or db/espline.sqlite)\n"
	CLI_WEB_OPTIONS_HELP;

/* The control the page may ask for: stopping the station.  A slot cannot be
 * paused or stopped on its own yet (the supervisor has no such call). */
static int control_station(void *ctx, const char *action, const char *port, espl_error *err)
{
	espl_supervisor *sup = ctx;
	if (strcmp(action, "stop") == 0 && !port) {
		espl_supervisor_stop(sup, ESPL_STOP_GRACEFUL);
		return ESPL_OK;
	}
	return espl_fail(err, ESPL_EUNSUPPORTED, "%s of one slot is not supported yet; stop the station instead",
	                 action);
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
		.listen = a->listen, .token = token, .ui = ui, .db_path = db_path,
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
	fprintf(stderr, "espline %s: web view at http://%.*s:%u/%s\n", cmd, (int)(colon - a->listen), a->listen,
	        espl_web_port(*out), a->control ? " (control allowed)" : "");
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
		CLI_WEB_LONG_OPTIONS, { NULL, 0, NULL, 0 },
	};
	espl_cli_web_args web = { "127.0.0.1:8080", NULL, 0 };
	const char *db = NULL;
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
		if (c == 'h') {
			fputs(serve_help, stdout);
			return ESPL_EXIT_OK;
		}
		fprintf(stderr, "espline serve: unknown or incomplete option %s (espline serve --help)\n",
		        espl_cli_shown(argv[optind - 1]));
		return ESPL_EXIT_USAGE;
	}
	if (optind < argc || web.control) {
		fprintf(stderr, "espline serve: %s (espline serve --help)\n",
		        web.control ? "--http-control belongs to espline run" : "unexpected argument");
		return ESPL_EXIT_USAGE;
	}
	/* The database must exist: serve never creates one. */
	espl_db *probe;
	espl_error err = { 0, "" };
	db = espl__cli_or_env(db, ESPL_DB_ENV);
	espl_db_options dbo = { .path = espl_db_path(db), .read_only = 1 };
	if (espl_db_open(&probe, &dbo, &err) < 0) {
		fprintf(stderr, "espline serve: %s\n", espl_cli_shown(err.msg));
		return ESPL_EXIT_DB;
	}
	espl_db_close(probe);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);  /* before any server thread starts */
	espl_web *w;
	int code = espl_cli_web_start("serve", &web, NULL, NULL, espl_db_path(db), &w);
	if (code != ESPL_EXIT_OK)
		return code;
	wait_for_stop(&set);
	espl_cli_web_stop("serve", w);
	return ESPL_EXIT_OK;
}

const espl_cli_command espl_cmd_serve = {
	"serve", "serve a database's history to a browser (read-only)", serve_main,
};
