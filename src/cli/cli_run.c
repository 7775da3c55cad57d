/* cli_run.c - `espline run RECIPE`: program units on one adapter or a whole
 * station (supervisor.h), show them (ui.h) and record them in the database.
 * One --port and no mode is simply a station of one that programs one unit. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "espline/central.h"
#include "espline/db.h"
#include "espline/recipe.h"
#include "espline/report.h"
#include "espline/stub.h"
#include "espline/runner.h"
#include "espline/station_file.h"
#include "espline/supervisor.h"
#include "espline/ui.h"
#include "util/str.h"

#define MAX_PORTS 256

static const char run_help[] =
	"usage: espline run [RECIPE] [--station-file FILE] [--port SPEC ...]\n"
	"                   [--batch NAME --count N | --station]\n"
	"                   [--db PATH] [--central URL | --central-file F] [--operator NAME] [--station-name NAME]\n"
	"                   [--json | --plain] [--baud N] [--flash-baud N] [--stub STUB]\n"
	"                   [--http HOST:PORT [--http-token-file FILE] [--http-control]]\n\n"
	"Program ESP8266 units with RECIPE, one worker thread per adapter, and record\n"
	"every unit in the database.\n\n"
	"  --station-file FILE\n"
	"                     take the recipe, ports, operator rule, database, central URL,\n"
	"                     web view and station name from FILE (espline-station(5)); the options\n"
	"                     and RECIPE given here override it.  Without RECIPE and this\n"
	"                     option: " ESPL_CLI_STATION_FILE ", if it exists\n"
	"  --port SPEC        /dev/ttyUSB0, a glob '/dev/ttyUSB*', usb:VID:PID, rfc2217://HOST:PORT,\n"
	"                     socket://HOST:PORT; repeatable.  Default: every CP210x, CH340,\n"
	"                     CH9102 and FTDI adapter (usb:10c4:ea60 usb:1a86:7523 usb:1a86:55d4\n"
	"                     usb:0403:6001 usb:0403:6010 usb:0403:6014 usb:0403:6015)\n"
	"  --batch NAME --count N\n"
	"                     program N units in total under batch NAME, PASS or FAIL: each\n"
	"                     adapter waits for a unit, programs it, waits for it to be\n"
	"                     removed, ...\n"
	"  --batch NAME --count-passed N\n"
	"                     the same until N units have PASSED: a failed unit does not\n"
	"                     count, another one takes its place\n"
	"  --station          the same, until Ctrl-C; adapters plugged in later get a worker\n"
	"                     (without --batch/--station: one unit per adapter found, then exit)\n"
	"  --db PATH          database (default: the station file's, else $ESPLINE_DB,\n"
	"                     else db/espline.sqlite)\n"
	"  --central URL      also replicate every unit to PostgreSQL (default $ESPLINE_CENTRAL);\n"
	"                     the line never waits for it: see `espline sync status`.  A URL\n"
	"                     on the command line shows its password in `ps`: prefer\n"
	"  --central-file F   the URL from file F (mode 600, one line), or $ESPLINE_CENTRAL\n"
	"  --resume           add units to the existing batch --batch NAME (same recipe); without\n"
	"                     it a batch name already in the database is refused\n"
	"  --operator NAME    recorded with the batch and every unit's record (chained);\n"
	"                     default $ESPLINE_OPERATOR, else the login name (refused when\n"
	"                     $ESPLINE_REQUIRE_OPERATOR=1)\n"
	"  --station-name N   recorded station name (default: the host name)\n"
	"  --json             JSON Lines event stream on stdout (for MES integration)\n"
	"  --plain            one line per event even on a terminal (default when not a terminal)\n"
	"  --baud N           ROM connect rate (overrides the recipe's connect.baud)\n"
	"  --flash-baud N     rate once the stub runs (overrides connect.flash_baud)\n"
	"  --stub STUB        flasher stub JSON file, or legacy / esp-flasher-stub for that\n"
	"                     generation (overrides connect.stub; default: $ESPLINE_STUB, the\n"
	"                     copy made by scripts/install-deps.sh, an installed esptool)\n"
	CLI_WEB_OPTIONS_HELP
	"  --http-control        let the page stop the station (needs the token)\n\n"
	"Ctrl-C once: no new units, units in progress finish.  Twice: stop now, units in\n"
	"progress are recorded INTERRUPTED.\n"
	"Exit: 0 every unit passed, 1 a unit failed, 2 bad recipe or arguments, 3 no unit\n"
	"could be reached, 4 database unusable, 5 station fault (a port busy or not\n"
	"permitted, no flasher stub, out of memory; no unit recorded), 130 interrupted.\n";

typedef struct run_args {
	const char *recipe, *station_file;
	int operator_required;       /* the station file's operator_required */
	const char *ports[MAX_PORTS];
	size_t n_ports;
	const char *batch, *db, *central, *operator_name, *station_name;
	int count, station, json, plain, resume;
	int count_passed;         /* --count-passed: count counts PASS units only */
	unsigned baud, flash_baud;
	const char *stub;
	espl_cli_web_args web;
	const espl_station_file *sf; /* --station-file, or NULL */
} run_args;

/* Counts the CLI needs for its exit code, beside what the ui shows. */
typedef struct run_view {
	espl_ui *ui;
	espl_web *web;              /* NULL without --http; it forwards to the ui */
	atomic_int unreached;       /* units that never connected */
	atomic_int reached;
} run_view;

static void on_event(void *ctx, const espl_station_event *ev)
{
	run_view *v = ctx;
	if (ev->kind == ESPL_EV_UNIT_DONE && ev->unit) {
		if (ev->unit->connected)
			atomic_fetch_add(&v->reached, 1);
		else
			atomic_fetch_add(&v->unreached, 1);
	}
	if (v->web)
		espl_web_event(v->web, ev);
	else
		espl_ui_event(v->ui, ev);
}

static void on_tick(void *ctx)
{
	run_view *v = ctx;
	espl_ui_tick(v->ui);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "espline run: %s%s%s (espline run --help)\n", what, arg ? " " : "",
	        arg ? espl_cli_shown(arg) : "");
	return ESPL_EXIT_USAGE;
}

static int parse_uint(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v == 0 || v > 10000000)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A baud rate in the range the recipe accepts too (loader.h). */
static int parse_baud(const char *s, unsigned *out)
{
	unsigned v;
	if (parse_uint(s, &v) < 0 || v < ESPL_BAUD_MIN || v > ESPL_BAUD_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Every batch records an operator: --operator, else $ESPLINE_OPERATOR,
 * else the login name (so a record always says who ran the station).  A
 * station may require a named operator: $ESPLINE_REQUIRE_OPERATOR=1 then
 * refuses the login-name fallback. */
static int choose_operator(run_args *a)
{
	static char login[64];
	const char *env = getenv("ESPLINE_OPERATOR");
	const char *required = getenv("ESPLINE_REQUIRE_OPERATOR");
	if (a->operator_name)
		return 0;
	if (env && *env) {
		a->operator_name = env;
		return 0;
	}
	if (a->operator_required)
		return usage_error("this station requires an operator: give --operator NAME (or set "
		                   "$ESPLINE_OPERATOR); the station file says operator_required: true", NULL);
	if (required && *required && strcmp(required, "0") != 0)
		return usage_error("this station requires an operator: give --operator NAME (or set "
		                   "$ESPLINE_OPERATOR); $ESPLINE_REQUIRE_OPERATOR is set", NULL);
	struct passwd *pw = getpwuid(geteuid());
	snprintf(login, sizeof login, "%s", pw && pw->pw_name ? pw->pw_name : "unknown");
	a->operator_name = login;
	return 0;
}

/* Names are recorded and printed: refuse what would be cut, ambiguous or
 * able to drive a terminal, rather than store it altered. */
static int check_names(const run_args *a)
{
	const struct { const char *value, *option; } names[] = {
		{ a->batch, "--batch" }, { a->operator_name, "--operator" }, { a->station_name, "--station-name" },
	};
	espl_error err = { 0, "" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].value && espl__name_check(names[i].value, names[i].option, &err) < 0)
			return usage_error(err.msg, NULL);
	return 0;
}

static int parse_args(int argc, char **argv, run_args *a)
{
	enum { O_BATCH = 256, O_COUNT, O_STATION, O_DB, O_OPERATOR, O_NAME, O_JSON, O_PLAIN, O_BAUD, O_FBAUD, O_CENTRAL, O_STUB,
	       O_RESUME, O_CENTRAL_FILE, O_STATION_FILE, O_COUNT_PASSED };
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },      { "batch", required_argument, NULL, O_BATCH },
		{ "count", required_argument, NULL, O_COUNT }, { "station", no_argument, NULL, O_STATION },
		{ "count-passed", required_argument, NULL, O_COUNT_PASSED },
		{ "db", required_argument, NULL, O_DB },       { "central", required_argument, NULL, O_CENTRAL },
		{ "operator", required_argument, NULL, O_OPERATOR },
		{ "station-name", required_argument, NULL, O_NAME }, { "json", no_argument, NULL, O_JSON },
		{ "plain", no_argument, NULL, O_PLAIN },       { "baud", required_argument, NULL, O_BAUD },
		{ "flash-baud", required_argument, NULL, O_FBAUD }, { "stub", required_argument, NULL, O_STUB },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "central-file", required_argument, NULL, O_CENTRAL_FILE },
		{ "station-file", required_argument, NULL, O_STATION_FILE },
		{ "help", no_argument, NULL, 'h' },
		CLI_WEB_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	unsigned count;
	int c;

	memset(a, 0, sizeof *a);
	if ((c = espl_cli_web_check_argv("run", argc, argv)))
		return c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		if (espl_cli_web_option(c, optarg, &a->web))
			continue;
		switch (c) {
		case 'p':
			if (a->n_ports == MAX_PORTS)
				return usage_error("too many --port options", NULL);
			a->ports[a->n_ports++] = optarg;
			break;
		case O_BATCH: a->batch = optarg; break;
		case O_COUNT:
		case O_COUNT_PASSED:
			if (a->count)
				return usage_error("give one of --count N and --count-passed N", NULL);
			if (parse_uint(optarg, &count) < 0)
				return usage_error(c == O_COUNT ? "--count needs a positive number, not"
				                                : "--count-passed needs a positive number, not", optarg);
			a->count = (int)count;
			a->count_passed = c == O_COUNT_PASSED;
			break;
		case O_STATION: a->station = 1; break;
		case O_DB: a->db = optarg; break;
		case O_CENTRAL: a->central = optarg; break;
		case O_CENTRAL_FILE: {
			int rc = espl_cli_central_file("run", optarg, &a->central);
			if (rc)
				return rc;
			break;
		}
		case O_OPERATOR: a->operator_name = optarg; break;
		case O_NAME: a->station_name = optarg; break;
		case O_JSON: a->json = 1; break;
		case O_PLAIN: a->plain = 1; break;
		case O_BAUD:
			if (parse_baud(optarg, &a->baud) < 0)
				return usage_error("--baud needs a rate from " ESPL__STR(ESPL_BAUD_MIN) " to "
				                   ESPL__STR(ESPL_BAUD_MAX) ", not", optarg);
			break;
		case O_STUB: a->stub = optarg; break;
		case O_RESUME: a->resume = 1; break;
		case O_STATION_FILE: a->station_file = optarg; break;
		case O_FBAUD:
			if (parse_baud(optarg, &a->flash_baud) < 0)
				return usage_error("--flash-baud needs a rate from " ESPL__STR(ESPL_BAUD_MIN)
				                   " to " ESPL__STR(ESPL_BAUD_MAX) ", not", optarg);
			break;
		case 'h':
			fputs(run_help, stdout);
			return -1;
		default:
			return usage_error("unknown or incomplete option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		a->recipe = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (!a->recipe && !a->station_file) {
		if (access(ESPL_CLI_STATION_FILE, F_OK) != 0)
			return usage_error("which recipe? (give RECIPE or --station-file FILE; there is no "
			                   ESPL_CLI_STATION_FILE ")", NULL);
		a->station_file = ESPL_CLI_STATION_FILE;
	}
	if (a->count && !a->batch)
		return usage_error(a->count_passed ? "--count-passed goes with --batch NAME" : "--count goes with --batch NAME", NULL);
	if (a->batch && !a->count && !a->station)
		return usage_error("--batch NAME needs --count N (or --station for an open-ended batch)", NULL);
	if (a->json && a->plain)
		return usage_error("--json and --plain exclude each other", NULL);
	if ((a->web.token_file || a->web.control) && !a->web.listen && !a->station_file)
		return usage_error("--http-token-file and --http-control go with --http HOST:PORT", NULL);
	return 0;
}

/* --stub FILE|legacy|esp-flasher-stub: the recipe's connect.stub, as if it
 * had named it.  A file that cannot be read is a bad argument (exit 2), as
 * in a recipe. */
static int use_stub_file(espl_recipe *r, const char *path, espl_error *err)
{
	int generation = espl_stub_is_generation(path);
	if (!generation && access(path, R_OK) < 0)
		return espl_fail(err, ESPL_EARG, "--stub %s: %s", path, strerror(errno));
	char *copy = strdup(path);
	if (!copy)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	free(r->connect.stub_path);
	r->connect.stub_path = copy;
	r->connect.stub = generation ? ESPL_STUB_GENERATION : ESPL_STUB_FILE;
	return ESPL_OK;
}

static int load_plan(const run_args *a, espl_recipe **r, espl_plan **plan)
{
	espl_error err = { 0, "" };
	int setup_fault = 0;
	int rc = espl_recipe_load(a->recipe, espl_cli_print_diag, NULL, r, &err);
	if (rc == ESPL_OK)
		rc = espl_recipe_prepare(*r, espl_cli_print_diag, NULL, &err);
	if (rc == ESPL_OK) {
		if (a->baud)
			(*r)->connect.baud = a->baud;
		if (a->flash_baud)
			espl_recipe_set_flash_baud(*r, a->flash_baud);
		if (a->stub)
			rc = use_stub_file(*r, a->stub, &err);
		/* no usable stub (found by the search, not named by --stub), no
		 * memory: the station's setup is at fault, not the recipe */
		if (rc == ESPL_OK && (rc = espl_plan_new(*r, espl_cli_stub_env(), plan, &err)) < 0 && rc != ESPL_ERECIPE && !a->stub)
			setup_fault = 1;
		if (rc < 0)
			fprintf(stderr, "espline run: %s\n", espl_cli_shown(err.msg));
	} else if (rc != ESPL_ERECIPE) {
		fprintf(stderr, "espline run: %s\n", espl_cli_shown(err.msg));
	}
	if (rc < 0) {
		espl_recipe_free(*r);
		*r = NULL;
		return setup_fault ? ESPL_EXIT_STATION
		       : rc == ESPL_ERECIPE || rc == ESPL_EARG ? ESPL_EXIT_USAGE : espl_cli_exit_for(rc);
	}
	return ESPL_EXIT_OK;
}

static int exit_code(int rc, const espl_station_totals *t, run_view *v)
{
	if (rc == ESPL_EINTERRUPTED)
		return ESPL_EXIT_INTERRUPTED;
	if (rc == ESPL_EDB || t->db_state != 0 || t->unsaved)
		return ESPL_EXIT_DB;
	if (rc < 0)
		return espl_cli_exit_for(rc);
	if (t->failed > 0 || t->interrupted > 0) {
		if (atomic_load(&v->reached) == 0 && atomic_load(&v->unreached) > 0 && t->passed == 0)
			return ESPL_EXIT_DEVICE;
		return ESPL_EXIT_FAIL;
	}
	/* no unit failed, but a port was busy or refused: the station's fault */
	if (t->station_faults > 0)
		return ESPL_EXIT_STATION;
	if (t->unreached > 0 && t->units == 0)
		return ESPL_EXIT_DEVICE;
	return ESPL_EXIT_OK;
}

/* The batch named by --batch as recorded, copied out of the callback. */
typedef struct found_batch {
	int n;
	espl_db_batch b;
	char operator_name[128], recipe_sha256[ESPL_DB_HASH_SIZE], started[32];
	int64_t units;
} found_batch;

static int keep_newest(const espl_report_batch *b, void *user)
{
	found_batch *f = user;
	if (f->n++ == 0) {
		snprintf(f->b.uuid, sizeof f->b.uuid, "%s", b->uuid);
		snprintf(f->operator_name, sizeof f->operator_name, "%s", b->operator_name);
		snprintf(f->recipe_sha256, sizeof f->recipe_sha256, "%s", b->recipe_sha256);
		f->b.operator_name = b->operator_name[0] ? f->operator_name : NULL;
		f->b.started_ms = b->started_ms;
		f->b.planned = (int)b->planned;
		f->units = b->units;
		espl_report_format_time(b->started_ms, f->started);
	}
	return 0;
}

/* A batch name names one batch: refuse a name already recorded unless
 * --resume, and resume only a batch of the same recipe.  A database that
 * does not exist yet has no batches; one that cannot be read is left to
 * the station to report. */
static int check_batch(const run_args *a, const espl_recipe *r, const char *db_path, found_batch *f)
{
	espl_db *db;
	espl_error err;
	espl_db_options o = { .path = db_path, .read_only = 1 };
	memset(f, 0, sizeof *f);
	if (!a->batch)
		return a->resume ? usage_error("--resume goes with --batch NAME", NULL) : 0;
	if (espl_db_open(&db, &o, &err) == 0) {
		int n = espl_report_batches_named(db, a->batch, keep_newest, f, &err);
		espl_db_close(db);
		if (n < 0)
			f->n = 0;
	}
	if (f->n && !a->resume) {
		fprintf(stderr, "espline run: batch %s already exists in %s (started %s, %" PRId64 " units); give "
		        "--resume to add units to it, or choose another name\n", espl_cli_shown(a->batch),
		        espl_cli_shown(db_path), f->started, f->units);
		return ESPL_EXIT_USAGE;
	}
	if (!f->n && a->resume) {
		fprintf(stderr, "espline run: --resume: there is no batch %s in %s to resume\n",
		        espl_cli_shown(a->batch), espl_cli_shown(db_path));
		return ESPL_EXIT_USAGE;
	}
	if (f->n && strcmp(f->recipe_sha256, r->sha256) != 0) {
		fprintf(stderr, "espline run: --resume: batch %s was made with another recipe (sha256 %.16s...), "
		        "not %s (sha256 %.16s...); start a new batch for a new recipe\n", espl_cli_shown(a->batch),
		        f->recipe_sha256, espl_cli_shown(r->name), r->sha256);
		return ESPL_EXIT_USAGE;
	}
	return 0;
}

/* The station file fills in what the command line left out. */
static int apply_station_file(run_args *a, espl_station_file **sfp)
{
	espl_station_file *sf = *sfp = espl_cli_station_load(a->station_file);
	if (!sf)
		return ESPL_EXIT_USAGE;
	if (!a->recipe)
		a->recipe = sf->recipe;
	a->sf = sf;
	if (a->n_ports == 0) {
		for (size_t i = 0; i < sf->n_slots; i++)
			if (sf->slots[i].port)
				a->ports[a->n_ports++] = sf->slots[i].port;
		/* slots named by USB serial or socket are found among every
		 * supported adapter */
		for (size_t i = 0; espl_station_slots_need_usb(sf->slots, sf->n_slots) &&
		                   espl_supervisor_default_ports[i] && a->n_ports < MAX_PORTS; i++)
			a->ports[a->n_ports++] = espl_supervisor_default_ports[i];
	}
	if (!a->db)
		a->db = sf->database;
	if (!a->station_name)
		a->station_name = sf->name;
	if (!a->web.listen)
		a->web.listen = sf->web_bind;
	if (!a->web.token_file)
		a->web.token_file = sf->web_token_file;
	/* the URL file as --central-file reads it: one line, owner-only */
	if (!a->central && sf->central_url_file) {
		int rc = espl_cli_central_file("run", sf->central_url_file, &a->central);
		if (rc)
			return rc;
	}
	a->operator_required = sf->operator_required;
	fprintf(stderr, "espline run: station file %s: recipe %s", espl_cli_shown(sf->path),
	        espl_cli_shown(a->recipe));
	for (size_t i = 0; i < sf->n_slots; i++) {
		const espl_station_slot *s = &sf->slots[i];
		fprintf(stderr, "%s%s=", i ? ", " : "; slots ", espl_cli_shown(s->slot));
		fprintf(stderr, "%s%s", s->port ? "" : s->usb_serial ? "usb_serial:" : "usb_path:",
		        espl_cli_shown(s->port ? s->port : s->usb_serial ? s->usb_serial : s->usb_path));
	}
	fputc('\n', stderr);
	return ESPL_EXIT_OK;
}

/* A keyboard-wedge scanner types on the dashboard's terminal: its codes are
 * read as lines, not echoed over the dashboard.  The terminal is restored
 * however the run ends (not after an abort's exit: the shell's reset). */
static int run_with_scanner_terminal(espl_supervisor *sup, const espl_supervisor_options *so,
                                     espl_station_totals *totals, espl_error *err)
{
	struct termios saved, quiet;
	int tty = so->scan_fd >= 0 && isatty(so->scan_fd) && tcgetattr(so->scan_fd, &saved) == 0;
	if (tty) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		tcsetattr(so->scan_fd, TCSANOW, &quiet);
	}
	int rc = espl_supervisor_run(sup, totals, err);
	if (tty)
		tcsetattr(so->scan_fd, TCSANOW, &saved);
	return rc;
}

/* The whole command; *sfp is the station file it read, if any. */
static int run_all(int argc, char **argv, espl_station_file **sfp)
{
	run_args a;
	espl_recipe *r = NULL;
	espl_plan *plan = NULL;
	espl_ui *ui = NULL;
	espl_supervisor *sup = NULL;
	espl_station_totals totals;
	espl_error err = { 0, "" };
	run_view view;

	int code = parse_args(argc, argv, &a);
	if (code)
		return code < 0 ? ESPL_EXIT_OK : code;
	/* the options, then the station file, then the environment */
	if (a.station_file && (code = apply_station_file(&a, sfp)) != ESPL_EXIT_OK)
		return code;
	if ((a.web.token_file || a.web.control) && !a.web.listen)
		code = usage_error("--http-token-file and --http-control go with --http HOST:PORT", NULL);
	if (code == ESPL_EXIT_OK && (code = choose_operator(&a)) == ESPL_EXIT_OK)
		code = check_names(&a);
	if (code != ESPL_EXIT_OK)
		return code;
	a.db = espl__cli_or_env(a.db, ESPL_DB_ENV);
	if (!a.central) /* --central "" turns replication off, whatever the variable */
		a.central = espl__cli_or_env(NULL, ESPL_CENTRAL_ENV);
	if ((code = load_plan(&a, &r, &plan)) != ESPL_EXIT_OK)
		return code;

	const char *db_path = espl_db_path(a.db);
	found_batch resumed;
	if ((code = check_batch(&a, r, db_path, &resumed)) != 0) {
		espl_plan_free(plan);
		espl_recipe_free(r);
		return code;
	}
	espl_ui_options uo = { stdout, a.json ? ESPL_UI_JSON : a.plain ? ESPL_UI_PLAIN : ESPL_UI_AUTO,
	                       espl_cli_no_color() ? 0 : -1, 0,
	                       r->name, db_path, espl_cli_columns() };
	if (espl_ui_new(&uo, &ui, &err) < 0) {
		fprintf(stderr, "espline run: %s\n", espl_cli_shown(err.msg));
		return ESPL_EXIT_STATION;
	}
	memset(&view, 0, sizeof view);
	view.ui = ui;
	espl_supervisor_options so = {
		.plan = plan, .ports = a.n_ports ? a.ports : NULL, .n_ports = a.n_ports,
		.slots = a.sf ? a.sf->slots : NULL, .n_slots = a.sf ? a.sf->n_slots : 0,
		/* a keyboard-wedge scanner types on this terminal */
		.io = a.sf, .scan_fd = a.sf && a.sf->scan_from && strcmp(a.sf->scan_from, "terminal") == 0 ? STDIN_FILENO : -1,
		.mode = a.station ? ESPL_STATION_CONTINUOUS : a.batch ? ESPL_STATION_BATCH : ESPL_STATION_ONCE,
		.batch_name = a.batch, .count = a.count, .count_passed = a.count_passed,
		.operator_name = a.operator_name,
		.resume = resumed.n ? &resumed.b : NULL,
		.db_path = db_path, .central = a.central, .station_name = a.station_name, .version = espl_cli_version(),
		.handle_signals = 1, .on_event = on_event, .on_tick = on_tick, .ctx = &view,
	};
	/* A test knob: a database quota, to provoke "database or disk is full". */
	const char *quota = getenv("ESPLINE_DB_MAX_PAGES");
	so.db_max_pages = quota ? atoll(quota) : 0;
	/* The fallback spool: on another file system than the database, so a
	 * full disk does not take both (README, "Traceability"). */
	so.spool_dir = espl_cli_spool_dir();
	so.central_backoff_max_ms = espl_cli_central_backoff_max_ms();
	if (a.station && a.batch)
		so.mode = ESPL_STATION_CONTINUOUS;  /* an open-ended batch with a name */
	memset(&totals, 0, sizeof totals);
	int rc = espl_supervisor_new(&so, &sup, &err);
	if (rc == ESPL_OK && (code = espl_cli_web_start("run", &a.web, ui, sup, db_path, &view.web))) {
		espl_supervisor_free(sup);
		espl_ui_free(ui);
		espl_plan_free(plan);
		espl_recipe_free(r);
		return code;
	}
	if (rc == ESPL_OK)
		rc = run_with_scanner_terminal(sup, &so, &totals, &err);
	/* The page shows the end of the run; then the server goes. */
	espl_cli_web_stop("run", view.web);
	view.web = NULL;
	if (rc < 0 && rc != ESPL_EINTERRUPTED)
		fprintf(stderr, "espline run: %s\n", espl_cli_shown(err.msg));
	/* A summary only for a batch that began: a database that could not be
	 * opened has nothing to sum up, and the error above says why. */
	if (sup && (totals.batch_uuid[0] || totals.units > 0))
		espl_ui_summary(ui, &totals);
	code = exit_code(rc, &totals, &view);
	if (rc == ESPL_EINTERRUPTED && totals.stop_level >= ESPL_STOP_ABORT) {
		/* Workers may still be inside a device operation using the plan:
		 * the database is closed, so leave without freeing anything. */
		fflush(stdout);
		fflush(stderr);
		_exit(code);
	}
	espl_supervisor_free(sup);
	espl_ui_free(ui);
	espl_plan_free(plan);
	espl_recipe_free(r);
	return code;
}

static int run_main(int argc, char **argv)
{
	espl_station_file *sf = NULL;
	int code = run_all(argc, argv, &sf);
	espl_station_file_free(sf);
	return code;
}

const espl_cli_command espl_cmd_run = {
	"run", "program units with a recipe, on one adapter or a whole station", run_main,
};
