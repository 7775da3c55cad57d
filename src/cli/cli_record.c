/* cli_record.c - device commands (erase, write, verify) on a unit are
 * recorded in the database, so a unit reworked by hand after a FAIL has a
 * history of it; see cli_device.h. */
#include "cli/cli.h"
#include "cli/cli_device.h"

#include <stdio.h>
#include <string.h>

#include "espline/db.h"

void espl__cli_describe_images(const espl_image *const *imgs, int n, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s0x%X %s %zu bytes md5 %s", i ? "; " : "",
		                        imgs[i]->address, imgs[i]->name, imgs[i]->file_size, imgs[i]->md5_hex);
}

int espl__cli_record(const dev_args *a, const espl_chip_info *chip, const char *what, int code,
                     const char *error)
{
	if (a->no_record || !chip->mac_str[0])
		return code;
	char kind[32], message[3072];
	snprintf(kind, sizeof kind, "device-%s", a->cmd);
	snprintf(message, sizeof message, "mac=%s %s %s: %s%s%s", chip->mac_str, a->cmd, what,
	         code == ESPL_EXIT_OK ? "PASS" : "FAIL", error && *error ? ": " : "", error ? error : "");
	espl_db_event e = { espl_db_now_ms(), code == ESPL_EXIT_OK ? "info" : "error", kind, NULL, NULL, message };
	espl_db_options o = { .path = espl__cli_or_env(a->db, ESPL_DB_ENV), .create = 1 };
	espl_db *db = NULL;
	espl_error err;
	int rc = espl_db_open(&db, &o, &err);
	if (rc == 0)
		rc = espl_db_add_event(db, &e, &err);
	espl_db_close(db);
	if (rc == 0)
		return code;
	fprintf(stderr, "espline %s: this %s of %s was NOT recorded in %s: %s (--no-record to skip)\n", a->cmd,
	        a->cmd, chip->mac_str, espl_cli_shown(espl_db_path(o.path)), espl_cli_shown(err.msg));
	return code == ESPL_EXIT_OK ? ESPL_EXIT_DB : code;
}
