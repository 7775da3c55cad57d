/* db_fixture.h - the fixture the database unit tests share: a scratch
 * folder per test (removed afterwards), one station, one recipe with two
 * images, and a helper that opens (creates) a database at a schema version.
 * Header-only because each test_*.c is its own program. */
#ifndef ESPLINE_TEST_DB_FIXTURE_H
#define ESPLINE_TEST_DB_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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

static const espl_db_station station = { "line1-st1", "bench-host", "0.1.0" };
static const espl_db_image images[] = {
	{ "nodemcu-combined.bin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	{ "esp_init_data_default.bin", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" },
};
static const espl_db_recipe recipe = {
	"nodemcu-golden", "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	"recipe: nodemcu-golden\nsteps: []\n", images, 2,
};

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

#endif /* ESPLINE_TEST_DB_FIXTURE_H */
