/* central.c - replication to a central PostgreSQL: connection strings,
 * errors, the central schema (the sender is sender.c); see
 * include/espline/central.h. */
#include "espline/central.h"
#include "central/central_int.h"
#include "util/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An arbitrary constant naming espline's migration lock on the server. */
#define MIGRATION_LOCK 0x6573706c696e65LL

/* ---- connection strings and redaction ----------------------------------- */

const char *espl_central_conninfo(const char *cli)
{
	return cli && *cli ? cli : NULL;
}

static int is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* Append n bytes of s to out (size, *len), truncating safely. */
static void put(char *out, size_t size, size_t *len, const char *s, size_t n)
{
	while (n-- && *len + 1 < size)
		out[(*len)++] = *s++;
	out[*len] = '\0';
}

static void redact_uri(const char *in, char *out, size_t size)
{
	size_t len = 0;
	const char *auth = strstr(in, "://") + 3;
	const char *end = auth + strcspn(auth, "/?");
	const char *at = NULL;
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon) {
		put(out, size, &len, in, (size_t)(colon + 1 - in));
		put(out, size, &len, "***", 3);
		put(out, size, &len, at, (size_t)(end - at));
	} else {
		put(out, size, &len, in, (size_t)(end - in));
	}
	/* Query parameters: ?password=...&... */
	for (const char *p = end; *p;) {
		size_t seg = strcspn(p + 1, "&") + 1; /* the separator and one parameter */
		if (strncmp(p + 1, "password=", 9) == 0) {
			put(out, size, &len, p, 10);
			put(out, size, &len, "***", 3);
		} else {
			put(out, size, &len, p, seg);
		}
		p += seg;
	}
}

/* "host=x password = 'se cret' user=y": the value after password=, quoted
 * ('...' with backslash escapes) or up to the next blank. */
static void redact_keywords(const char *in, char *out, size_t size)
{
	size_t len = 0;
	const char *p = in;
	while (*p) {
		const char *kw = strstr(p, "password");
		if (!kw) {
			put(out, size, &len, p, strlen(p));
			break;
		}
		const char *q = kw + 8;
		while (*q == ' ' || *q == '\t')
			q++;
		int at_word = kw == in || kw[-1] == ' ' || kw[-1] == '\t';
		if (*q != '=' || !at_word) {
			put(out, size, &len, p, (size_t)(kw + 8 - p));
			p = kw + 8;
			continue;
		}
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		put(out, size, &len, p, (size_t)(q - p));
		put(out, size, &len, "***", 3);
		if (*q == '\'') {
			for (q++; *q && *q != '\''; q++)
				if (*q == '\\' && q[1])
					q++;
			if (*q)
				q++;
		} else {
			while (*q && *q != ' ' && *q != '\t')
				q++;
		}
		p = q;
	}
}

void espl_central_redact(const char *conninfo, char *out, size_t size)
{
	if (!size)
		return;
	out[0] = '\0';
	if (!conninfo)
		return;
	if (is_uri(conninfo))
		redact_uri(conninfo, out, size);
	else
		redact_keywords(conninfo, out, size);
}

/* Replace each occurrence of pw (n bytes) in text by "***" (a password
 * shorter than that by as many '*': the text never grows).  The search goes
 * on after each replacement, so a password made of '*' cannot loop. */
static void mask(char *text, const char *pw, size_t n)
{
	for (char *p = text, *hit; n && (hit = strstr(p, pw)); p = hit + (n < 3 ? n : 3)) {
		if (n < 3) {
			memset(hit, '*', n);
			continue;
		}
		memcpy(hit, "***", 3);
		memmove(hit + 3, hit + n, strlen(hit + n) + 1);
	}
}

/* The password as written in conninfo, found without libpq (which cannot
 * parse a malformed string, and whose messages quote the raw text, so a
 * percent-encoded password appears encoded): in a URI the part between the
 * first ':' of the user info and its last '@', and any password= value. */
static void mask_raw(const char *conninfo, char *text)
{
	char pw[256];
	const char *p = strstr(conninfo, "://");
	if (p) {
		p += 3;
		size_t hostpart = strcspn(p, "/?#");
		const char *at = NULL;
		for (const char *q = p; q < p + hostpart; q++)
			if (*q == '@')
				at = q;
		const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon && at - colon - 1 > 0 && (size_t)(at - colon - 1) < sizeof pw) {
			memcpy(pw, colon + 1, (size_t)(at - colon - 1));
			pw[at - colon - 1] = '\0';
			mask(text, pw, strlen(pw));
		}
	}
	for (const char *k = conninfo; (k = strstr(k, "password=")); ) {
		k += 9;
		size_t n = *k == '\'' ? strcspn(k + 1, "'") : strcspn(k, " \t&#");
		const char *v = *k == '\'' ? k + 1 : k;
		if (n && n < sizeof pw) {
			memcpy(pw, v, n);
			pw[n] = '\0';
			mask(text, pw, n);
		}
	}
}

void espl_central_scrub(const char *conninfo, char *text)
{
	if (!conninfo)
		return;
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			mask(text, o->val, strlen(o->val));
	PQconninfoFree(opts);
	mask_raw(conninfo, text);
}

/* ---- errors ------------------------------------------------------------ */

/* PQerrorMessage ends with a newline; drop it and the password. */
static int pg_fail(espl_error *err, PGconn *conn, const char *conninfo, const char *what)
{
	char msg[ESPL_ERROR_MAX];
	snprintf(msg, sizeof msg, "%s", conn ? PQerrorMessage(conn) : "out of memory");
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	espl_central_scrub(conninfo, msg);
	return espl_fail(err, ESPL_EDB, "central database: %s: %s", what, msg);
}

int espl__central_exec_ok(PGconn *conn, const char *conninfo, const char *sql, espl_error *err)
{
	PGresult *r = PQexec(conn, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	return ok ? ESPL_OK : pg_fail(err, conn, conninfo, sql);
}

/* Run a parameterised statement; *res receives the result when wanted. */
int espl__central_exec_params(PGconn *conn, const char *conninfo, const char *what, const char *sql,
		       int n, const char *const *values, PGresult **res, espl_error *err)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_fail(err, conn, conninfo, what);
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return ESPL_OK;
}

/* ---- central schema ---------------------------------------------------- */

static const char *const migrations[ESPL_CENTRAL_SCHEMA_VERSION + 1] = {
	[1] =
	"CREATE TABLE stations ("
	"  id bigserial PRIMARY KEY, name text NOT NULL, host text NOT NULL,"
	"  version text NOT NULL, UNIQUE (name, host, version));"
	"CREATE TABLE recipes ("
	"  id bigserial PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL UNIQUE,"
	"  yaml text NOT NULL);"
	"CREATE TABLE recipe_images ("
	"  recipe_id bigint NOT NULL REFERENCES recipes(id), position int NOT NULL,"
	"  name text NOT NULL, sha256 text NOT NULL, PRIMARY KEY (recipe_id, position));"
	/* One row per local database (hash chain): the last unit received. */
	"CREATE TABLE origins ("
	"  uuid text PRIMARY KEY, head_seq bigint NOT NULL DEFAULT 0, head_hash text,"
	"  first_seen_ms bigint NOT NULL, last_seen_ms bigint NOT NULL);"
	"CREATE TABLE batches ("
	"  id bigserial PRIMARY KEY, uuid text NOT NULL UNIQUE,"
	"  origin text NOT NULL REFERENCES origins(uuid), name text NOT NULL,"
	"  recipe_id bigint NOT NULL REFERENCES recipes(id),"
	"  station_id bigint NOT NULL REFERENCES stations(id), operator text,"
	"  started_ms bigint NOT NULL, ended_ms bigint, planned int NOT NULL,"
	"  hash text NOT NULL);"
	"CREATE INDEX batches_name ON batches (name);"
	/* No uniqueness on (origin, seq): a record that breaks the chain is
	 * kept as evidence and reported by verify, never refused. */
	"CREATE TABLE units ("
	"  id bigserial PRIMARY KEY, uuid text NOT NULL UNIQUE,"
	"  batch_id bigint NOT NULL REFERENCES batches(id),"
	"  origin text NOT NULL REFERENCES origins(uuid),"
	"  mac text, chip_id bigint NOT NULL, flash_id bigint NOT NULL, manufacturer text,"
	"  flash_size bigint NOT NULL, crystal_mhz int NOT NULL,"
	"  port text, adapter_serial text, adapter_location text,"
	"  started_ms bigint NOT NULL, ended_ms bigint NOT NULL, duration_ms bigint NOT NULL,"
	"  result text NOT NULL CHECK (result IN ('PASS','FAIL','INTERRUPTED')),"
	"  error_kind text, error text, repeat_of text,"
	"  seq bigint NOT NULL, prev_hash text NOT NULL, hash text NOT NULL,"
	"  received_ms bigint NOT NULL);"
	"CREATE INDEX units_mac ON units (mac, started_ms);"
	"CREATE INDEX units_origin_seq ON units (origin, seq);"
	"CREATE INDEX units_batch ON units (batch_id, result);"
	"CREATE INDEX units_started ON units (started_ms);"
	"CREATE TABLE steps ("
	"  unit_id bigint NOT NULL REFERENCES units(id), idx int NOT NULL,"
	"  kind text NOT NULL, address bigint NOT NULL, length bigint NOT NULL,"
	"  expected_md5 text, actual_md5 text, bytes bigint NOT NULL,"
	"  duration_ms bigint NOT NULL, retries int NOT NULL, result text NOT NULL,"
	"  error text, PRIMARY KEY (unit_id, idx));",
	/* v2: text kept with a step (boot_check's boot log, screening). */
	[2] = "ALTER TABLE steps ADD COLUMN detail text;",
	/* v3: binding the physical unit (issue 16): slot, scanned code, label. */
	[3] = "ALTER TABLE units ADD COLUMN slot text, ADD COLUMN barcode text,"
	      " ADD COLUMN label text;"
	      "CREATE INDEX units_barcode ON units (barcode) WHERE barcode IS NOT NULL;",
	/* v4: the unit's serial number (issue 16), covered by its hash. */
	[4] = "ALTER TABLE units ADD COLUMN serial text;"
	      "CREATE INDEX units_serial ON units (serial) WHERE serial IS NOT NULL;",
	/* v5: serial numbers leased to stations (serial_lease.h). */
	[5] = "CREATE TABLE serial_counters (counter text PRIMARY KEY, next bigint NOT NULL);"
	      "CREATE TABLE serial_leases (id bigserial PRIMARY KEY, counter text NOT NULL,"
	      " station text NOT NULL, first bigint NOT NULL, last bigint NOT NULL,"
	      " leased_ms bigint NOT NULL);",
};

static int schema_version(PGconn *conn, const char *ci, int *version, espl_error *err)
{
	PGresult *r;
	ESPL_TRY(espl__central_exec_params(conn, ci, "reading the schema version",
			     "SELECT version FROM espline_schema", 0, NULL, &r, err));
	*version = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return ESPL_OK;
}

static int migrate_locked(PGconn *conn, const char *ci, espl_error *err)
{
	char sql[64];
	int v;
	snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", MIGRATION_LOCK);
	ESPL_TRY(espl__central_exec_ok(conn, ci, sql, err));
	ESPL_TRY(espl__central_exec_ok(conn, ci,
			 "CREATE TABLE IF NOT EXISTS espline_schema (version int NOT NULL)", err));
	ESPL_TRY(schema_version(conn, ci, &v, err));
	if (v < 0) {
		ESPL_TRY(espl__central_exec_ok(conn, ci, "INSERT INTO espline_schema VALUES (0)", err));
		v = 0;
	}
	if (v > ESPL_CENTRAL_SCHEMA_VERSION)
		return espl_fail(err, ESPL_EDB,
				 "central database has schema version %d, newer than this espline "
				 "understands (%d): use a newer espline",
				 v, ESPL_CENTRAL_SCHEMA_VERSION);
	for (int next = v + 1; next <= ESPL_CENTRAL_SCHEMA_VERSION; next++) {
		ESPL_TRY(espl__central_exec_ok(conn, ci, migrations[next], err));
		snprintf(sql, sizeof sql, "UPDATE espline_schema SET version = %d", next);
		ESPL_TRY(espl__central_exec_ok(conn, ci, sql, err));
	}
	return ESPL_OK;
}

static int migrate(PGconn *conn, const char *ci, espl_error *err)
{
	/* The common case needs no lock: the schema is already current. */
	PGresult *r = PQexec(conn, "SELECT version FROM espline_schema");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    atoi(PQgetvalue(r, 0, 0)) == ESPL_CENTRAL_SCHEMA_VERSION) {
		PQclear(r);
		return ESPL_OK;
	}
	PQclear(r);
	ESPL_TRY(espl__central_exec_ok(conn, ci, "BEGIN", err));
	int rc = migrate_locked(conn, ci, err);
	if (rc == 0)
		rc = espl__central_exec_ok(conn, ci, "COMMIT", err);
	if (rc < 0) {
		PQclear(PQexec(conn, "ROLLBACK"));
		espl_error_prefix(err, "creating or migrating the central schema");
		return rc;
	}
	return ESPL_OK;
}

/* Silence the server's NOTICEs (e.g. "relation already exists"). */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int espl_central_connect(PGconn **out, const char *conninfo, espl_error *err)
{
	*out = NULL;
	if (!conninfo || !*conninfo)
		return espl_fail(err, ESPL_EARG,
				 "no central database given (--central postgresql://... or $%s)",
				 ESPL_CENTRAL_ENV);
	/* libpq processes keywords in order and expands dbname (a URI or
	 * keywords) where it stands: our defaults first, so the user's win. */
	const char *k2[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *v2[] = { "5", "espline", conninfo, NULL };
	PGconn *conn = PQconnectdbParams(k2, v2, 1);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		char red[256];
		espl_central_redact(conninfo, red, sizeof red);
		int rc = pg_fail(err, conn, conninfo, "cannot connect");
		espl_error_prefix(err, "%s", red);
		PQfinish(conn);
		return rc;
	}
	PQsetNoticeProcessor(conn, quiet_notice, NULL);
	int rc = migrate(conn, conninfo, err);
	if (rc < 0) {
		PQfinish(conn);
		return rc;
	}
	*out = conn;
	return ESPL_OK;
}

void espl_central_disconnect(PGconn *conn)
{
	PQfinish(conn);
}
