/* cli_db.c - `espline history`, `report`, `export` and `db verify|info`.
 *
 * Every command takes --db PATH (default: $ESPLINE_DB, else db/espline.sqlite
 * relative to the current directory) and never creates a database.
 * history, report, export and `db verify` take --central [URL] instead to
 * ask the central PostgreSQL (URL, else $ESPLINE_CENTRAL).  `espline sync`
 * shows and drives a station's replication (central.h).
 */
#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "espline/central.h"
#include "espline/central_query.h"
#include "espline/db.h"
#include "espline/dbwriter.h"
#include "espline/error.h"
#include "espline/report.h"
#include "util/file.h"

typedef struct pg_conn PGconn;

typedef struct db_args {
	const char *db, *batch, *since, *format, *output, *central, *timeout, *anchor;
	int json;
	int use_central;   /* --central given (its value may come from the env) */
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
		if (strcmp(name, "--central-file") == 0) {
			const char *path = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			int rc = path ? espl_cli_central_file(argv[0], path, &a->central) : ESPL_EXIT_USAGE;
			if (!path)
				fprintf(stderr, "espline %s: --central-file needs a file\n", argv[0]);
			if (rc)
				return rc;
			a->use_central = 1;
			continue;
		}
		if (strcmp(name, "--central") == 0) {
			/* The URL is optional ($ESPLINE_CENTRAL): take the next word
			 * only if it looks like a connection string. */
			const char *next = i + 1 < argc ? argv[i + 1] : NULL;
			a->use_central = 1;
			if (eq)
				a->central = eq + 1;
			else if (next && (strncmp(next, "postgres", 8) == 0 || strchr(next, '=')))
				a->central = argv[++i];
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
				    : strcmp(name, "--timeout") == 0 ? &a->timeout
				    : strcmp(name, "--anchor") == 0 ? &a->anchor
								    : NULL;
		if (!slot)
			goto bad;
		*slot = value;
	}
	a->db = espl__cli_or_env(a->db, ESPL_DB_ENV);
	a->central = espl__cli_or_env(a->central, ESPL_CENTRAL_ENV);
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
	fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err->msg));
	return espl_cli_exit_for(err->code);
}

/* Open an existing database.  Read commands (history, report, export, db,
 * sync status) open it read-only: an audit copy on read-only media can be
 * checked, and a file that is not an espline database is never created,
 * turned into one or migrated. */
static int open_db(const char *cmd, const char *path, int writable, espl_db **db)
{
	espl_error err;
	espl_db_options o = { .path = path, .read_only = !writable };
	if (espl_db_open(db, &o, &err) == 0)
		return ESPL_EXIT_OK;
	fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err.msg));
	return ESPL_EXIT_DB;
}

/* Connect to the central database named by --central (or the env). */
static int open_central(const char *cmd, const db_args *a, PGconn **conn)
{
	espl_error err;
	const char *ci = espl_central_conninfo(a->central);
	if (!ci) {
		fprintf(stderr, "espline %s: --central needs a connection string "
				"(postgresql://...) or $%s\n", cmd, ESPL_CENTRAL_ENV);
		return ESPL_EXIT_USAGE;
	}
	if (espl_central_connect(conn, ci, &err) < 0) {
		fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err.msg));
		return ESPL_EXIT_DB;
	}
	return ESPL_EXIT_OK;
}

static int filter_from(const char *cmd, const db_args *a, espl_report_filter *f)
{
	memset(f, 0, sizeof *f);
	f->batch = a->batch;
	if (a->since && espl_report_parse_time(a->since, &f->since_ms) < 0) {
		fprintf(stderr,
			"espline %s: --since '%s' is not a date (use YYYY-MM-DD or "
			"YYYY-MM-DDTHH:MM[:SS], UTC)\n",
			cmd, espl_cli_shown(a->since));
		return ESPL_EXIT_USAGE;
	}
	return ESPL_EXIT_OK;
}

/* The database a command reads: the central one with --central (*conn),
 * else the local one (*db); the other stays NULL. */
static int open_source(const char *cmd, const db_args *a, espl_db **db, PGconn **conn)
{
	*db = NULL;
	*conn = NULL;
	int rc = a->use_central ? open_central(cmd, a, conn) : open_db(cmd, a->db, 0, db);
	if (rc || !a->batch || !*db)
		return rc;
	/* --batch TYPO is an error, not an empty report */
	espl_error err;
	int n = espl_report_batches_named(*db, a->batch, NULL, NULL, &err);
	if (n > 0)
		return ESPL_EXIT_OK;
	if (n < 0)
		rc = fail(cmd, &err);
	else {
		fprintf(stderr, "espline %s: no batch named %s in %s\n", cmd, espl_cli_shown(a->batch),
		        espl_cli_shown(espl_db_path(a->db)));
		rc = ESPL_EXIT_FAIL;
	}
	espl_db_close(*db);
	*db = NULL;
	return rc;
}

static void close_source(espl_db *db, PGconn *conn)
{
	espl_db_close(db);
	espl_central_disconnect(conn);
}

/* ---- history ----------------------------------------------------------- */

/* Each line indented under the unit; stored escaped, shown escaped again
 * in case the database was written by something else. */
static void print_details(const char *details)
{
	char line[1024];
	for (const char *p = details; *p;) {
		size_t n = strcspn(p, "\n");
		snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
		/* stored escaped already: only a line with a raw control byte
		 * (a database written by something else) is escaped again */
		bool raw = false;
		for (const char *c = line; *c && !raw; c++)
			raw = (unsigned char)*c < 0x20 || *c == 0x7F;
		printf("      %s\n", raw ? espl_cli_shown(line) : line);
		p += n + (p[n] == '\n');
	}
}

/* A device command recorded on the MAC (espline erase/write/verify). */
static int print_command(int64_t time_ms, const char *level, const char *kind, const char *message, void *user)
{
	char when[32];
	(void)level;
	(void)user;
	espl_report_format_time(time_ms, when);
	printf("%s  %-11s by hand: %s\n", when, kind, espl_cli_shown(message));
	return 0;
}

static int print_history_unit(const espl_report_unit *ru, void *user)
{
	const espl_db_unit *u = &ru->unit;
	char started[32];
	(void)user;
	espl_report_format_time(u->started_ms, started);
	printf("%s  %-11s %s  batch %s  operator %s  station %s@%s  port %s  adapter %s\n", started,
	       espl_db_result_name(u->result), espl_cli_shown(u->mac), espl_cli_shown(ru->batch_name),
	       ru->operator_name && *ru->operator_name ? espl_cli_shown(ru->operator_name) : "-",
	       espl_cli_shown(ru->station), espl_cli_shown(ru->host), u->port ? espl_cli_shown(u->port) : "-",
	       espl_cli_shown(u->adapter_serial && *u->adapter_serial ? u->adapter_serial
	                                                     : (u->adapter_location ? u->adapter_location : "-")));
	if (ru->serial && *ru->serial)
		printf("    serial %s\n", espl_cli_shown(ru->serial));
	printf("    recipe %s (sha256 %s)\n", espl_cli_shown(ru->recipe), espl_cli_shown(ru->recipe_sha256));
	if (ru->images)
		printf("    images %s\n", espl_cli_shown(ru->images));
	printf("    chip 0x%08" PRIx32 "  flash 0x%06" PRIx32 " %s %" PRIu32 " KB  crystal %d MHz"
	       "  %.1f s  unit %s\n",
	       u->chip_id, u->flash_id, espl_cli_shown(u->manufacturer), u->flash_size / 1024,
	       u->crystal_mhz, u->duration_ms / 1000.0, espl_cli_shown(u->uuid));
	if (u->slot || u->barcode)
		printf("    slot %s  scanned %s\n", u->slot ? espl_cli_shown(u->slot) : "-",
		       u->barcode ? espl_cli_shown(u->barcode) : "-");
	if (u->label)
		printf("    label %s\n", espl_cli_shown(u->label));
	if (u->error && *u->error)
		printf("    error (%s): %s\n", u->error_kind ? espl_cli_shown(u->error_kind) : "?", espl_cli_shown(u->error));
	if (ru->details)
		print_details(ru->details);
	if (ru->events)  /* the scan's wait, the label's hand-off, the hooks */
		print_details(ru->events);
	if (ru->repeat_of && *ru->repeat_of)
		printf("    REPEAT: this MAC had already passed (unit %s)\n",
		       espl_cli_shown(ru->repeat_of));
	return 0;
}

static int cmd_history(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	espl_error err;
	if (wants_help(argc, argv)) {
		printf("usage: espline history [--db PATH | --central [URL]] MAC|CODE\n"
		       "Every time MAC was programmed, newest first: result, batch, station,\n"
		       "port, recipe and image hashes, slot, scanned code and label.  Exit 1 if\n"
		       "it never was.  CODE (not a MAC): the units that code was scanned for.\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db --central --central-file", &a);
	if (rc)
		return rc;
	if (a.n_positional != 1) {
		fprintf(stderr, "usage: espline history [--db PATH | --central [URL]] MAC|CODE\n");
		return ESPL_EXIT_USAGE;
	}
	PGconn *conn;
	if ((rc = open_source(argv[0], &a, &db, &conn)))
		return rc;
	int n = conn ? espl_central_history(conn, a.positional[0], print_history_unit, NULL, &err)
		     : espl_report_history(db, a.positional[0], print_history_unit, NULL, &err);
	char mac[18];
	int is_mac = espl_db_normalize_mac(a.positional[0], mac) == 0;  /* else a scanned code */
	int commands = db && n >= 0 && is_mac ? espl_report_device_commands(db, a.positional[0], print_command, NULL, &err) : 0;
	close_source(db, conn);
	if (n < 0 || commands < 0)
		return fail(argv[0], &err);
	n += commands;
	if (n == 0) {
		printf("%s was never programmed (according to %s)\n", espl_cli_shown(a.positional[0]),
		       a.use_central ? "the central database" : espl_cli_shown(espl_db_path(a.db)));
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
		printf("usage: espline report [--db PATH | --central [URL]] [--batch NAME] [--since DATE]\n"
		       "                      [--json]\n"
		       "Yield, failures by reason, time per unit (p50/p90/p99) and per-port and\n"
		       "per-adapter yield.  DATE is UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS].\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db --batch --since --json --central --central-file", &a);
	if (rc || (rc = filter_from(argv[0], &a, &f)))
		return rc;
	if (a.n_positional) {
		fprintf(stderr, "espline report: unexpected '%s'\n", espl_cli_shown(a.positional[0]));
		return ESPL_EXIT_USAGE;
	}
	PGconn *conn;
	if ((rc = open_source(argv[0], &a, &db, &conn)))
		return rc;
	rc = conn ? espl_central_report(conn, &f, &r, &err) : espl_report_build(db, &f, &r, &err);
	close_source(db, conn);
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
		       "                      [--db PATH | --central [URL]] [-o FILE]\n"
		       "Unit records with stable column names (see include/espline/report.h).\n");
		return ESPL_EXIT_OK;
	}
	int rc = parse_args(argc, argv, "--db --batch --since --format --output --central --central-file", &a);
	if (rc || (rc = filter_from(argv[0], &a, &f)))
		return rc;
	int format = !a.format || strcmp(a.format, "csv") == 0 ? ESPL_EXPORT_CSV
		     : strcmp(a.format, "json") == 0            ? ESPL_EXPORT_JSON
								: -1;
	if (format < 0 || a.n_positional) {
		fprintf(stderr, "espline export: --format is csv or json\n");
		return ESPL_EXIT_USAGE;
	}
	PGconn *conn;
	if ((rc = open_source(argv[0], &a, &db, &conn)))
		return rc;
	FILE *out = stdout;
	if (a.output && strcmp(a.output, "-") != 0 && !(out = fopen(a.output, "w"))) {
		espl_fail_errno(&err, "cannot create %s", a.output);
		close_source(db, conn);
		return fail(argv[0], &err);
	}
	int n = conn ? espl_central_export(conn, &f, format, out, &err)
		     : espl_report_export(db, &f, format, out, &err);
	close_source(db, conn);
	if (out != stdout && fclose(out) != 0 && n >= 0)
		n = espl_fail_errno(&err, "cannot write %s", a.output);
	if (n < 0)
		return fail(argv[0], &err);
	if (out != stdout)
		fprintf(stderr, "exported %d units to %s\n", n, espl_cli_shown(a.output));
	return ESPL_EXIT_OK;
}

/* ---- db verify | info -------------------------------------------------- */

static int db_verify(espl_db *db, const espl_db_anchor *anchor)
{
	espl_db_verify_result v;
	espl_error err;
	if (espl_db_verify(db, &v, &err) < 0 || (anchor && espl_db_verify_anchor(db, anchor, &v, &err) < 0))
		return fail("db verify", &err);
	if (!v.ok) {
		printf("TAMPERED: %s\n", espl_cli_shown(v.problem));  /* database text: a tampered one holds anything */
		if (v.bad_seq)
			printf("first bad record: seq %" PRId64 "%s%s\n", v.bad_seq,
			       v.bad_uuid[0] ? ", unit " : "", espl_cli_shown(v.bad_uuid));
		else if (v.bad_uuid[0])
			printf("first bad record: %s\n", espl_cli_shown(v.bad_uuid));
		return ESPL_EXIT_FAIL;
	}
	printf("OK: %" PRId64 " sealed units, %" PRId64 " batches and %" PRId64 " recipe texts verified; %" PRId64
	       " units not completed\n",
	       v.units_checked, v.batches_checked, v.recipes_checked, v.running);
	printf("chain head: seq %" PRId64 " %s\n", v.head_seq, v.head_hash);
	if (anchor)
		printf("anchor: the chain still holds seq %" PRId64 " %s\n", anchor->seq, anchor->hash);
	else
		printf("(keep the head elsewhere with `espline db anchor`; `db verify --anchor FILE` then\n"
		       " detects a database rewound or rebuilt past it)\n");
	return ESPL_EXIT_OK;
}

static void print_chain(const espl_central_chain *ch, void *user)
{
	(void)user;
	if (ch->ok)
		printf("OK: station %s (origin %s): %" PRId64 " units, head seq %" PRId64 " %s\n",
		       espl_cli_shown(ch->station), espl_cli_shown(ch->origin), ch->units_checked, ch->head_seq,
		       espl_cli_shown(ch->head_hash));
	else
		printf("TAMPERED: station %s (origin %s): %s\nfirst bad record: seq %" PRId64
		       "%s%s\n",
		       espl_cli_shown(ch->station), espl_cli_shown(ch->origin), espl_cli_shown(ch->problem),
		       ch->bad_seq, ch->bad_uuid[0] ? ", unit " : "", espl_cli_shown(ch->bad_uuid));
}

static int central_verify(const db_args *a)
{
	PGconn *conn;
	espl_error err;
	espl_central_verify_result v;
	int rc = open_central("db verify", a, &conn);
	if (rc)
		return rc;
	rc = espl_central_verify(conn, print_chain, NULL, &v, &err);
	espl_central_disconnect(conn);
	if (rc < 0)
		return fail("db verify", &err);
	if (v.batch_problem[0])
		printf("TAMPERED: %s\n", espl_cli_shown(v.batch_problem));
	printf("%s: %" PRId64 " station chains, %" PRId64 " units and %" PRId64
	       " batches verified centrally\n",
	       v.ok ? "OK" : "TAMPERED", v.chains, v.units_checked, v.batches_checked);
	return v.ok ? ESPL_EXIT_OK : ESPL_EXIT_FAIL;
}

static int db_info(espl_db *db, const char *path)
{
	char spool[4096];
	printf("database  %s\nschema    version %d\n", espl_cli_shown(path), espl_db_schema_version(db));
	snprintf(spool, sizeof spool, "%s.spool", path);
	if (access(spool, F_OK) == 0)
		printf("spool     %s holds records waiting to be replayed (start a station)\n", espl_cli_shown(spool));
	if (espl_dbw_fallback_spool_path(path, espl_cli_spool_dir(), spool, sizeof spool) == 0 &&
	    access(spool, F_OK) == 0)
		printf("spool     %s (the fallback) holds records waiting to be replayed (start a station)\n",
		       espl_cli_shown(spool));
	espl_db_sync_status st;
	if (espl_db_sync_read(db, &st, NULL) == 0 && st.central[0])
		printf("origin    %s\noutbox    %" PRId64 " records waiting for the central database"
		       " (espline sync status)\n",
		       espl_cli_shown(st.origin), st.waiting);
	else if (espl_db_sync_read(db, &st, NULL) == 0)
		printf("origin    %s\ncentral   none configured (records are kept for one, should one be "
		       "given with --central-file or $ESPLINE_CENTRAL)\n",
		       espl_cli_shown(st.origin));
	return ESPL_EXIT_OK;
}

/* espline CMD SUB [options] where SUB is one of subs (NULL-ended) and no
 * positional argument follows: parse the options; *which is SUB's index. */
static int parse_sub(const char *cmd, int argc, char **argv, const char *allowed,
		     const char *const *subs, db_args *a, int *which)
{
	int rc = parse_args(argc - 1, argv + 1, allowed, a);
	if (rc)
		return rc;
	for (*which = 0; subs[*which] && strcmp(argv[1], subs[*which]) != 0; ++*which)
		;
	if (!subs[*which] || a->n_positional) {
		fprintf(stderr, "espline %s: unknown subcommand '%s' (", cmd, espl_cli_shown(argv[1]));
		for (int i = 0; subs[i]; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", subs[i]);
		fprintf(stderr, ")\n");
		return ESPL_EXIT_USAGE;
	}
	return 0;
}

/* db anchor: the head in a form to keep elsewhere (signed, printed). */
static int db_anchor(espl_db *db, const db_args *a)
{
	espl_db_anchor an;
	espl_error err;
	char line[256];
	if (espl_db_anchor_take(db, &an, &err) < 0)
		return fail("db anchor", &err);
	espl_db_anchor_format(&an, line, sizeof line);
	if (!a->output || strcmp(a->output, "-") == 0) {
		fputs(line, stdout);
		return ESPL_EXIT_OK;
	}
	FILE *f = fopen(a->output, "wx");  /* never overwrite an earlier anchor */
	if (!f || fputs(line, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "espline db anchor: cannot write %s: %s\n", espl_cli_shown(a->output), strerror(errno));
		return ESPL_EXIT_STATION;
	}
	fprintf(stderr, "anchor (head seq %" PRId64 ") written to %s\n", an.seq, espl_cli_shown(a->output));
	return ESPL_EXIT_OK;
}

/* db verify --anchor FILE: read and parse the anchor (a bounded file). */
static int read_anchor(const char *path, espl_db_anchor *an)
{
	espl_error err;
	char *text;
	size_t len;
	if (espl__file_read(path, 64 * 1024, "anchor", &text, &len, &err) < 0 ||
	    espl_db_anchor_parse(text, an, &err) < 0) {
		if (err.code == ESPL_EARG && strncmp(err.msg, "not an espline anchor", 21) == 0)
			espl_error_prefix(&err, "%s", path);
		free(text);
		return fail("db verify", &err);
	}
	free(text);
	return 0;
}

static int cmd_db(int argc, char **argv)
{
	static const char *const subs[] = { "verify", "info", "anchor", NULL };
	db_args a;
	espl_db *db;
	espl_db_anchor an;
	if (wants_help(argc, argv) || argc < 2) {
		printf("usage: espline db verify [--db PATH] [--anchor FILE]\n"
		       "         walk the hash chain; exit 1 if tampered.  With --anchor, also check\n"
		       "         the chain still holds that earlier head (no rewind, no rebuild)\n"
		       "       espline db verify --central [URL]  every station's chain, centrally\n"
		       "       espline db anchor [--db PATH] [--output FILE]\n"
		       "         print the chain head (origin, seq, hash, time) as one line to keep\n"
		       "         elsewhere or sign; --output never overwrites a file\n"
		       "       espline db info [--db PATH]     path, schema version, pending spool\n"
		       "Every db command opens the database read-only.\n");
		return argc < 2 ? ESPL_EXIT_USAGE : ESPL_EXIT_OK;
	}
	int which, rc = parse_sub("db", argc, argv, "--db --central --central-file --anchor --output", subs, &a, &which);
	if (rc)
		return rc;
	if (which == 0 && a.use_central)
		return central_verify(&a);
	if (which == 0 && a.anchor && (rc = read_anchor(a.anchor, &an)))
		return rc;
	if ((rc = open_db("db", a.db, 0, &db)))
		return rc;
	rc = which == 0 ? db_verify(db, a.anchor ? &an : NULL) : which == 1 ? db_info(db, espl_db_path(a.db))
	                                                          : db_anchor(db, &a);
	espl_db_close(db);
	return rc;
}

/* ---- sync status | push ----------------------------------------------- */

static void print_age(const char *label, int64_t ms)
{
	char when[32];
	if (!ms) {
		printf("%-14s never\n", label);
		return;
	}
	espl_report_format_time(ms, when);
	printf("%-14s %s (%.1f s ago)\n", label, when, (double)(espl_db_now_ms() - ms) / 1000.0);
}

static int sync_status(espl_db *db, const db_args *a)
{
	espl_db_sync_status st;
	espl_error err;
	if (espl_db_sync_read(db, &st, &err) < 0)
		return fail("sync status", &err);
	int64_t age = st.oldest_ms ? espl_db_now_ms() - st.oldest_ms : 0;
	if (a->json) {
		/* jansson writes the origin (database text) as a JSON string, escaped */
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "origin", st.origin,
		                      "waiting", (json_int_t)st.waiting, "waiting_units", (json_int_t)st.waiting_units,
		                      "oldest_age_ms", (json_int_t)age, "sent", (json_int_t)st.sent,
		                      "last_ok_ms", (json_int_t)st.last_ok_ms, "last_error_ms", (json_int_t)st.last_error_ms);
		if (!o || json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0) {
			json_decref(o);
			fprintf(stderr, "espline sync status: out of memory\n");
			return ESPL_EXIT_STATION;
		}
		json_decref(o);
		putchar('\n');
		return ESPL_EXIT_OK;
	}
	printf("database       %s (origin %s)\n", espl_cli_shown(espl_db_path(a->db)), espl_cli_shown(st.origin));
	printf("central        %s\n", st.central[0] ? espl_cli_shown(st.central) : "(never contacted)");
	printf("waiting        %" PRId64 " records (%" PRId64 " units)\n", st.waiting,
	       st.waiting_units);
	if (st.waiting)
		printf("oldest         %.1f s old\n", (double)age / 1000.0);
	printf("sent           %" PRId64 " records\n", st.sent);
	print_age("last success", st.last_ok_ms);
	if (st.last_error_ms) {
		print_age("last error", st.last_error_ms);
		printf("               %s\n", espl_cli_shown(st.last_error));
	}
	return ESPL_EXIT_OK;
}

static int sync_push(espl_db *db, const db_args *a)
{
	espl_error err;
	int64_t sent = 0;
	const char *ci = espl_central_conninfo(a->central);
	if (!ci) {
		fprintf(stderr, "espline sync push: give --central URL or set $%s\n",
			ESPL_CENTRAL_ENV);
		return ESPL_EXIT_USAGE;
	}
	int rc = espl_central_push(db, ci, &sent, &err);
	if (rc < 0) {
		fprintf(stderr, "espline sync push: %s (sent %" PRId64 " records before)\n", espl_cli_shown(err.msg),
			sent);
		return ESPL_EXIT_DB;
	}
	printf("sent %" PRId64 " records; the outbox is empty\n", sent);
	return ESPL_EXIT_OK;
}

static int cmd_sync(int argc, char **argv)
{
	db_args a;
	espl_db *db;
	if (wants_help(argc, argv) || argc < 2) {
		printf("usage: espline sync status [--db PATH] [--json]\n"
		       "         records waiting in the outbox, the oldest one's age, the last error\n"
		       "       espline sync push [--db PATH] [--central [URL]]\n"
		       "         send everything waiting now (a station sends on its own while it runs)\n");
		return argc < 2 ? ESPL_EXIT_USAGE : ESPL_EXIT_OK;
	}
	static const char *const subs[] = { "status", "push", NULL };
	int push, rc = parse_sub("sync", argc, argv, "--db --json --central --central-file", subs, &a, &push);
	if (rc)
		return rc;
	int status = !push;
	if ((rc = open_db("sync", a.db, push, &db)))
		return rc;
	rc = status ? sync_status(db, &a) : sync_push(db, &a);
	espl_db_close(db);
	return rc;
}

const espl_cli_command espl_cmd_sync = {
	"sync", "central replication: `sync status` (outbox), `sync push`", cmd_sync
};

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
	"db", "database checks: `db verify` (hash chain), `db anchor` (the head, to keep elsewhere), `db info`", cmd_db
};
