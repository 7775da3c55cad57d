/* db_fixture.h - the fixture the database unit tests share: a scratch
 * folder per test (removed afterwards), the records of db_records.h, a
 * helper that opens (creates) a database at a schema version, and two for
 * raw SQL on it (query_int, exec_sql: a failure prints the error).
 * Header-only because each test_*.c is its own program. */
#ifndef ESPLINE_TEST_DB_FIXTURE_H
#define ESPLINE_TEST_DB_FIXTURE_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "db_records.h"
#include "espline/db.h"

typedef struct fx {
	char dir[64];
	char path[128];
} fx;

static int fx_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

/* A scratch folder /tmp/espl-test-TAG-XXXXXX; the database path inside it
 * is REL (a sub-folder in REL tests that espline creates it). */
static int fx_setup(void **state, const char *tag, const char *rel)
{
	fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/espl-test-%s-XXXXXX", tag);
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/%s", f->dir, rel);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	nftw(f->dir, fx_rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static espl_db *open_db(const char *path, int version)
{
	espl_db *db = NULL;
	espl_error err = { 0 };
	espl_db_options o = { .path = path, .create = 1, .schema_version = version };
	int rc = espl_db_open(&db, &o, &err);
	if (rc)
		print_error("open: %s\n", err.msg);
	assert_int_equal(rc, 0);
	return db;
}

/* The first column of the one row SQL returns. */
static int64_t query_int(espl_db *db, const char *sql)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(espl_db_sqlite(db), sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void exec_sql(espl_db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(espl_db_sqlite(db), sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		print_error("%s: %s\n", sql, msg);
	sqlite3_free(msg);
	assert_int_equal(rc, SQLITE_OK);
}

#endif /* ESPLINE_TEST_DB_FIXTURE_H */
