/* cli_db.c - `espline history`, `report`, `export` and `db verify|info`.
 *
 * Every command takes --db PATH (default: $ESPLINE_DB, else db/espline.sqlite
 * relative to the current directory) and never creates a database.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "espline/db.h"
#include "espline/error.h"
#include "espline/report.h"

typedef struct db_args {
	const char *db, *batch, *since, *format, *output;
	int json;
	const char *positional[4];
	int n_positional;
} db_args;

/* Accepts "--opt VALUE" and "--opt=VALUE".  Returns 0 or prints and fails. */
static int parse_args(int argc, char **argv, const char *allowed, db_args *a)
{
	memset(a, 0, sizeof *a);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		char name[32];
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (a->n_positional == 4)
				goto bad;
			a->positional[a->n_positional++] = arg;
			continue;
		}
		if (len >= sizeof name)
			goto bad;
		memcpy(name, arg, len);
		name[len] = '\0';
		if (strcmp(name, "-o") == 0)
			snprintf(name, sizeof name, "--output");
		if (!strstr(allowed, name + 2) || strncmp(name, "--", 2) != 0)
			goto bad;
		if (strcmp(name, "--json") == 0) {
			a->json = 1;
			continue;
		}
		const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!value) {
			fprintf(stderr, "espline %s: %s needs a value\n", argv[0], name);
			return ESPL_EXIT_USAGE;
		}
		const char **slot = strcmp(name, "--db") == 0       ? &a->db
				    : strcmp(name, "--batch") == 0  ? &a->batch
				    : strcmp(name, "--since") == 0  ? &a->since
				    : strcmp(name, "--format") == 0 ? &a->format
				    : strcmp(name, "--output") == 0 ? &a->output
								    : NULL;
		if (!slot)
			goto bad;
		*slot = value;
	}
	return ESPL_EXIT_OK;
bad:
	fprintf(stderr, "espline %s: unexpected argument (try espline %s --help)\n", argv[0],
		argv[0]);
	return ESPL_EXIT_USAGE;
}

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

static int fail(const char *cmd, const espl_error *err)
{
	fprintf(stderr, "espline %s: %s\n", cmd, err->msg);
	return espl_cli_exit_for(err->code);
}

/* Open an existing database; read-only when the file cannot be written. */
static int open_db(const char *cmd, const char *path, espl_db **db)
{
	espl_error err;
	espl_db_options o = { .path = path };
	if (espl_db_open(db, &o, &err) == 0)
		return ESPL_EXIT_OK;
	if (err.code != ESPL_ENOTFOUND && access(espl_db_path(path), W_OK) < 0) {
		o.read_only = 1;
		if (espl_db_open(db, &o, &err) == 0)
			return ESPL_EXIT_OK;
	}
	fprintf(stderr, "espline %s: %s\n", cmd, err.msg);
	return ESPL_EXIT_DB;
}

static int filter_from(const char *cmd, const db_args *a, espl_report_filter *f)
{
	memset(f, 0, sizeof *f);
	f->batch = a->batch;
	if (a->since && espl_report_parse_time(a->since, &f->since_ms) < 0) {
		fprintf(stderr,
			"espline %s: --since '%s' is not a date (use YYYY-MM-DD or "
			"YYYY-MM-DDTHH:MM[:SS], UTC)\n",
			cmd, a->since);
		return ESPL_EXIT_USAGE;
	}
	return ESPL_EXIT_OK;
}

/* ---- history ----------------------------------------------------------- */

static int print_history_unit(const espl_report_unit *ru, void *user)
{
	const espl_db_unit *u = &ru->unit;
	char started[32];
	(void)user;
	espl_report_format_time(u->started_ms, started);
	printf("%s  %-11s %s  batch %s  station %s@%s  port %s  adapter %s\n", started,
	       espl_db_result_name(u->result), u->mac ? u->mac : "", ru->batch_name, ru->station,
	       ru->host, u->port ? u->port : "-",
	       u->adapter_serial && *u->adapter_serial ? u->adapter_serial
						       : (u->adapter_location ? u->adapter_location : "-"));
	printf("    recipe %s (sha256 %s)\n", ru->recipe, ru->recipe_sha256);
	if (ru->images)
		printf("    images %s\n", ru->images);
	printf("    chip 0x%08" PRIx32 "  flash 0x%06" PRIx32 " %s %" PRIu32 " KB  crystal %d MHz"
	       "  %.1f s  unit %s\n",
	       u->chip_id, u->flash_id, u->manufacturer ? u->manufacturer : "", u->flash_size / 1024,
	       u->crystal_mhz, u->duration_ms / 1000.0, u->uuid);
	if (u->error && *u->error)
		printf("    error (%s): %s\n", u->error_kind ? u->error_kind : "?", u->error);
	if (ru->repeat_of && *ru->repeat_of)
		printf("    REPEAT: this MAC had already passed in this batch (unit %s)\n",
		       ru->repeat_of);
	return 0;
}

static int cmd_history(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	espl_error err;
	if (wants_help(argc, argv)) {
		printf("usage: espline history [--db PATH] MAC\n"
		       "Every time MAC was programmed, newest first: result, batch, station,\n"
		       "port, recipe and image hashes.  Exit 1 if it never was.\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db", &a);
	if (rc)
		return rc;
	if (a.n_positional != 1) {
		fprintf(stderr, "usage: espline history [--db PATH] MAC\n");
		return ESPL_EXIT_USAGE;
	}
	if ((rc = open_db(argv[0], a.db, &db)))
		return rc;
	int n = espl_report_history(db, a.positional[0], print_history_unit, NULL, &err);
	espl_db_close(db);
	if (n < 0)
		return fail(argv[0], &err);
	if (n == 0) {
		printf("%s was never programmed (according to %s)\n", a.positional[0],
		       espl_db_path(a.db));
		return ESPL_EXIT_FAIL;
	}
	return ESPL_EXIT_OK;
}

/* ---- report ------------------------------------------------------------ */

static int cmd_report(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	espl_error err;
	espl_report_filter f;
	espl_report r;
	if (wants_help(argc, argv)) {
		printf("usage: espline report [--db PATH] [--batch NAME] [--since DATE] [--json]\n"
		       "Yield, failures by reason, time per unit (p50/p90/p99) and per-port and\n"
		       "per-adapter yield.  DATE is UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS].\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db --batch --since --json", &a);
	if (rc || (rc = filter_from(argv[0], &a, &f)))
		return rc;
	if (a.n_positional) {
		fprintf(stderr, "espline report: unexpected '%s'\n", a.positional[0]);
		return ESPL_EXIT_USAGE;
	}
	if ((rc = open_db(argv[0], a.db, &db)))
		return rc;
	rc = espl_report_build(db, &f, &r, &err);
	espl_db_close(db);
	if (rc < 0)
		return fail(argv[0], &err);
	if (a.json)
		espl_report_print_json(stdout, &r);
	else
		espl_report_print(stdout, &r);
	espl_report_free(&r);
	return ESPL_EXIT_OK;
}

/* ---- export ------------------------------------------------------------ */

static int cmd_export(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	espl_error err;
	espl_report_filter f;
	if (wants_help(argc, argv)) {
		printf("usage: espline export --format csv|json [--batch NAME] [--since DATE]\n"
		       "                      [--db PATH] [-o FILE]\n"
		       "Unit records with stable column names (see include/espline/report.h).\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db --batch --since --format --output", &a);
	if (rc || (rc = filter_from(argv[0], &a, &f)))
		return rc;
	int format = !a.format || strcmp(a.format, "csv") == 0 ? ESPL_EXPORT_CSV
		     : strcmp(a.format, "json") == 0            ? ESPL_EXPORT_JSON
								: -1;
	if (format < 0 || a.n_positional) {
		fprintf(stderr, "espline export: --format is csv or json\n");
		return ESPL_EXIT_USAGE;
	}
	if ((rc = open_db(argv[0], a.db, &db)))
		return rc;
	FILE *out = stdout;
	if (a.output && strcmp(a.output, "-") != 0 && !(out = fopen(a.output, "w"))) {
		espl_fail_errno(&err, "cannot create %s", a.output);
		espl_db_close(db);
		return fail(argv[0], &err);
	}
	int n = espl_report_export(db, &f, format, out, &err);
	espl_db_close(db);
	if (out != stdout && fclose(out) != 0 && n >= 0)
		n = espl_fail_errno(&err, "cannot write %s", a.output);
	if (n < 0)
		return fail(argv[0], &err);
	if (out != stdout)
		fprintf(stderr, "exported %d units to %s\n", n, a.output);
	return ESPL_EXIT_OK;
}

/* ---- db verify | info -------------------------------------------------- */

static int db_verify(espl_db *db)
{
	espl_db_verify_result v;
	espl_error err;
	if (espl_db_verify(db, &v, &err) < 0)
		return fail("db verify", &err);
	if (!v.ok) {
		printf("TAMPERED: %s\n", v.problem);
		if (v.bad_seq)
			printf("first bad record: seq %" PRId64 "%s%s\n", v.bad_seq,
			       v.bad_uuid[0] ? ", unit " : "", v.bad_uuid);
		else if (v.bad_uuid[0])
			printf("first bad record: %s\n", v.bad_uuid);
		return ESPL_EXIT_FAIL;
	}
	printf("OK: %" PRId64 " sealed units and %" PRId64 " batches verified; %" PRId64
	       " units not completed\n",
	       v.units_checked, v.batches_checked, v.running);
	printf("chain head: seq %" PRId64 " %s\n", v.head_seq, v.head_hash);
	printf("(keep the head somewhere else; a later verify proves nothing before it changed)\n");
	return ESPL_EXIT_OK;
}

static int db_info(espl_db *db, const char *path)
{
	char spool[4096];
	printf("database  %s\nschema    version %d\n", path, espl_db_schema_version(db));
	snprintf(spool, sizeof spool, "%s.spool", path);
	if (access(spool, F_OK) == 0)
		printf("spool     %s holds records waiting to be replayed (start a station)\n", spool);
	return ESPL_EXIT_OK;
}

static int cmd_db(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	if (wants_help(argc, argv) || argc < 2) {
		printf("usage: espline db verify [--db PATH]   walk the hash chain; exit 1 if tampered\n"
		       "       espline db info [--db PATH]     path, schema version, pending spool\n");
		return argc < 2 ? ESPL_EXIT_USAGE : ESPL_EXIT_OK;
	}
	int rc = parse_args(argc - 1, argv + 1, "--db", &a);
	if (rc)
		return rc;
	int verify = strcmp(argv[1], "verify") == 0, info = strcmp(argv[1], "info") == 0;
	if ((!verify && !info) || a.n_positional) {
		fprintf(stderr, "espline db: unknown subcommand '%s' (verify or info)\n", argv[1]);
		return ESPL_EXIT_USAGE;
	}
	if ((rc = open_db("db", a.db, &db)))
		return rc;
	rc = verify ? db_verify(db) : db_info(db, espl_db_path(a.db));
	espl_db_close(db);
	return rc;
}

const espl_cli_command espl_cmd_history = {
	"history", "every time a MAC was programmed, newest first", cmd_history
};
const espl_cli_command espl_cmd_report = {
	"report", "yield, failures by reason, time per unit, per-port yield", cmd_report
};
const espl_cli_command espl_cmd_export = {
	"export", "unit records as CSV or JSON", cmd_export
};
const espl_cli_command espl_cmd_db = {
	"db", "database checks: `db verify` (hash chain), `db info`", cmd_db
};
