/* adapters.c - what the database remembers about each adapter: the baud
 * rate its flasher stub last worked at (the baud ladder's memory, issue 17);
 * see include/espline/db.h.  Not part of the hash chain: it describes the
 * station's hardware, not a unit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record/db_int.h"

#define ADAPTERS_MAX 4096 /* more than any station has ports; a bound on a hostile file */

int espl_db_adapter_rate_set(espl_db *db, const char *adapter, unsigned baud, int64_t now_ms,
			     espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	if (!adapter || !*adapter || !baud)
		return espl_fail(err, ESPL_EARG, "an adapter's rate needs its name and a rate");
	ESPL_TRY(espl__db_prepare_once(db, "INSERT INTO adapter_rates (adapter, baud, updated_ms) VALUES (?, ?, ?)"
				       " ON CONFLICT (adapter) DO UPDATE SET baud = excluded.baud,"
				       " updated_ms = excluded.updated_ms", &s, err));
	espl__db_bind_text(s, 1, adapter);
	sqlite3_bind_int64(s, 2, baud);
	sqlite3_bind_int64(s, 3, now_ms);
	int rc = espl__db_run(db, s, err, "remembering an adapter's baud rate");
	sqlite3_finalize(s);
	return rc;
}

int espl_db_adapter_rates(espl_db *db, espl_db_adapter_rate **out, size_t *count, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s;
	size_t n = 0, cap = 0;
	espl_db_adapter_rate *list = NULL;
	int rc;

	*out = NULL;
	*count = 0;
	ESPL_TRY(espl__db_prepare_once(db, "SELECT adapter, baud FROM adapter_rates ORDER BY adapter", &s, err));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < ADAPTERS_MAX) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			espl_db_adapter_rate *grown = realloc(list, cap * sizeof *list);
			if (!grown) {
				sqlite3_finalize(s);
				free(list);
				return espl_fail(err, ESPL_ENOMEM, "out of memory");
			}
			list = grown;
		}
		const char *name = espl__db_col_text(s, 0);
		snprintf(list[n].adapter, sizeof list[n].adapter, "%s", name ? name : "");
		list[n].baud = (unsigned)sqlite3_column_int64(s, 1);
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		free(list);
		return espl__db_sql_fail(db, err, rc, "reading the adapters' baud rates");
	}
	*out = list;
	*count = n;
	return ESPL_OK;
}
