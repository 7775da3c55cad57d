/* cli_record.c - device commands (erase, write, verify) on a unit are
 * recorded in the database, so a unit reworked by hand after a FAIL has a
 * history of it; see cli_device.h. */
#include "cli/cli.h"
#include "cli/cli_device.h"

#include <stdio.h>
#include <string.h>

#include "espline/db.h"

/* "chip", "region 0xA+0xN", or "0xADDR NAME N bytes md5 HEX" for each
 * file, ";"-separated (the MD5 of the image as written; "-" when the
 * command stopped before it was known). */
static void describe_job(const espl_dev_job *j, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < j->recipe->n_steps && len < cap; i++) {
		const espl_step *s = &j->recipe->steps[i];
		const espl_step_result *sr = j->res.steps ? &j->res.steps[i] : NULL;
		const char *md5 = sr && sr->expected_md5[0] ? sr->expected_md5 : "-";
		if (s->kind == ESPL_STEP_ERASE && s->erase.chip)
			len += (size_t)snprintf(out + len, cap - len, "chip");
		else if (s->kind == ESPL_STEP_ERASE)
			len += (size_t)snprintf(out + len, cap - len, "region 0x%X+0x%X", s->erase.regions[0].address,
			                        s->erase.regions[0].length);
		else if (s->kind == ESPL_STEP_WRITE) {
			const char *name = strrchr(s->write.file.path, '/');
			len += (size_t)snprintf(out + len, cap - len, "%s0x%X %s %u bytes md5 %s", len ? "; " : "",
			                        s->write.address, name ? name + 1 : s->write.file.path, s->write.file.size, md5);
		}
	}
}

/* The failed step's own message (without "step N (kind): "), else the
 * unit's first error. */
static const char *error_of(const espl_unit_result *res)
{
	for (size_t i = 0; i < res->n_steps; i++)
		if (res->steps[i].status == ESPL_STEP_FAILED)
			return res->steps[i].error.msg;
	return res->first_error.msg;
}

int espl__cli_record(const dev_args *a, const espl_dev_job *j, int code)
{
	const espl_chip_info *chip = &j->res.chip;
	const char *error = code ? error_of(&j->res) : NULL;
	if (a->no_record || !j->res.identified || !chip->mac_str[0])
		return code;
	char kind[32], what[2048], message[3072];
	describe_job(j, what, sizeof what);
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
