/* db_records.h - the station and the recipe (with two images) that the
 * database unit tests record their units under.  Header-only because each
 * test_*.c is its own program; db_fixture.h includes it. */
#ifndef ESPLINE_TEST_DB_RECORDS_H
#define ESPLINE_TEST_DB_RECORDS_H

#include "espline/db.h"

static const espl_db_station station = { "line1-st1", "bench-host", "0.1.0" };
static const espl_db_image images[] = {
	{ "nodemcu-combined.bin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	{ "esp_init_data_default.bin", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" },
};
static const espl_db_recipe recipe = {
	/* the SHA-256 of the text, as a recipe file's would be */
	"nodemcu-golden", "6282a64f377d416385bbdb171f27b353005c3fc08f7a919d62550be8968c7c03",
	"recipe: nodemcu-golden\nsteps: []\n", images, 2,
};

#endif /* ESPLINE_TEST_DB_RECORDS_H */
