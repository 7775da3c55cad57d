/* unit_io.c - the operator's side of the station: the scanner and the
 * label printer started and stopped around a run (supervisor thread), and
 * for each unit (worker threads) the code scanned for it and the route
 * check before its flash is touched, its label on PASS, and the
 * on_unit_done hook after it is recorded; see src/station/station_int.h.  The scanner and the label queue are
 * scanner.c's and labels.c's; child processes are util/spawn.c's. */
#include "espline/supervisor.h"
#include "station/station_int.h"
#include "station/labels.h"
#include "station/scanner.h"
#include "util/clock.h"
#include "util/spawn.h"
#include "util/str.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espline/record.h"
#include "espline/report.h"

/* ---- around a run (supervisor thread) ---------------------------------------- */

/* The recipe's expect.barcode: a code is scanned for every unit then. */
int espl__station_barcode_pattern(espl_supervisor *s, espl_error *err)
{
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	if (!r->expect.barcode)
		return ESPL_OK;
	if (!s->o.io || !s->o.io->scan_from)
		return espl_fail(err, ESPL_EARG, "%s:%u: expect.barcode needs a scanner: add scan: { from: terminal } "
		                 "(or a serial port) to the station file", r->path, r->expect.barcode_pos.line);
	if (regcomp(&s->barcode_re, r->expect.barcode, REG_EXTENDED | REG_NOSUB) != 0)
		return espl_fail(err, ESPL_EARG, "expect.barcode: not a valid regular expression");
	s->has_barcode_re = 1;
	return ESPL_OK;
}

static void on_scanner_log(void *ctx, const char *level, const char *message)
{
	espl__station_emit_simple(ctx, ESPL_EV_LOG, NULL, level, message);
}

static void on_labels(void *ctx, int queued, const char *level, const char *message)
{
	espl_station_event ev = { .kind = ESPL_EV_LABELS, .count = queued, .level = level, .message = message };
	espl__station_emit(ctx, &ev);
}

/* A label's hand-off to the printer, in its unit's record (escaped: the
 * message holds the printer's name and its errors). */
static void on_label_unit(void *ctx, const char *unit_uuid, const char *kind, const char *level, const char *message)
{
	char shown[ESPL_ERROR_MAX * 4];
	espl__station_record_event(ctx, level, kind, unit_uuid, espl__str_escape(message, shown, sizeof shown));
}

int espl__station_start_io(espl_supervisor *s, espl_error *err)
{
	const espl_station_file *io = s->o.io;
	if (!io)
		return ESPL_OK;
	if (io->scan_from)
		ESPL_TRY(espl__scanner_start(strcmp(io->scan_from, "terminal") == 0 ? s->o.scan_fd : -1, io->scan_from,
		                             io->scan_map, io->slots, io->n_slots, on_scanner_log, s, &s->scanner, err));
	if (io->label_template && espl__labels_start(io, espl_db_path(s->o.db_path), on_labels, on_label_unit, s,
	                                                 &s->labels, err) < 0) {
		espl__scanner_stop(s->scanner);
		s->scanner = NULL;
		return err->code;
	}
	if (s->labels)
		on_labels(s, espl__labels_queued(s->labels), "info", NULL);
	return ESPL_OK;
}

/* After the workers: labels still queued stay on disk for the next start. */
void espl__station_stop_io(espl_supervisor *s, unsigned flush_ms)
{
	espl__scanner_stop(s->scanner);
	s->scanner = NULL;
	if (!s->labels)
		return;
	char msg[4400];
	snprintf(msg, sizeof msg, "%s", espl__labels_dir(s->labels));
	int left = espl__labels_stop(s->labels, flush_ms);
	s->labels = NULL;
	if (left) {
		char text[4600];
		snprintf(text, sizeof text, "%d label%s not printed yet, kept in %s: they are printed first at the "
		         "next start", left, left == 1 ? "" : "s", msg);
		espl__station_emit_simple(s, ESPL_EV_LOG, NULL, "warn", text);
	}
}

/* ---- the unit's record as JSON (the export's form) ------------------------ */

/* One unit as `espline export --format json` writes it: what route_check
 * (RUNNING, no steps yet) and on_unit_done (the finished record) read. */
static char *unit_json(worker *w, const espl_unit_result *res, const espl_db_unit *u, const espl_db_step *steps,
                       size_t n_steps)
{
	espl_supervisor *s = w->sup;
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	espl_report_unit ru = { .unit = *u, .batch_name = s->batch_name, .station = s->station, .host = s->host,
	                        .recipe = r->name, .recipe_sha256 = r->sha256,
	                        .operator_name = s->batch.operator_name,
	                        .serial = res->identity.serial[0] ? res->identity.serial : NULL };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	int rc = espl_report_export_unit(f, ESPL_EXPORT_JSON, 0, &ru, steps, n_steps);
	fputc('\n', f);
	if (fclose(f) != 0 || rc < 0) {
		free(text);
		return NULL;
	}
	memmove(text, text + 1, len);  /* the export's separator before the first unit */
	return text;
}

static void unit_context(worker *w, espl_record_context *ctx, const char *label)
{
	espl__station_record_context(w, ctx);
	ctx->barcode = w->barcode;
	ctx->label = label;
}

/* ---- hooks ------------------------------------------------------------------ */

/* Run a hook with json on its stdin.  0 when it exited 0; otherwise the
 * code (ESPL_EREFUSED for another exit status) with why: the hook, how it
 * ended and the first line it printed, escaped. */
static int run_hook(const espl_station_command *cmd, const char *name, const char *json, espl_error *why)
{
	espl__spawn_result res;
	char prog[160], how[96], said[200];
	espl__str_escape(cmd->argv[0], prog, sizeof prog);
	int rc = espl__spawn_run(cmd->argv, json, strlen(json), cmd->timeout_ms, &res, why);
	if (rc < 0 && !res.timed_out) {
		espl_error_prefix(why, "hooks.%s (%s)", name, prog);
		return rc;
	}
	if (rc == ESPL_OK && res.exited && res.status == 0)
		return ESPL_OK;
	res.out[strcspn(res.out, "\r\n")] = '\0';
	espl__str_escape(res.out, said, sizeof said);
	espl__spawn_outcome(&res, cmd->timeout_ms, how, sizeof how);
	return espl_fail(why, res.timed_out ? ESPL_ETIMEOUT : ESPL_EREFUSED, "hooks.%s (%s) %s%s%s", name, prog, how,
	                 said[0] ? ": " : "", said);
}

/* ---- before the flash: scan and route check ------------------------------- */

static int worker_leaving(void *ctx)
{
	worker *w = ctx;
	return atomic_load(&w->sup->stop_level) != ESPL_STOP_NONE || atomic_load(&w->removed);
}

/* The wait for the operator: not the unit's duration (res->operator_wait_s),
 * and recorded as the unit's "scan" event. */
static int scan_code(worker *w, espl_unit_result *res, espl_error *err)
{
	espl_supervisor *s = w->sup;
	const espl_recipe *r = espl_plan_recipe(s->o.plan);
	char hint[128], code[ESPL_SCAN_CODE_MAX], shown[ESPL_SCAN_CODE_MAX * 4], msg[ESPL_SCAN_CODE_MAX * 4 + 96];
	if (s->o.io->scan_map == ESPL_SCAN_SLOT_LABEL)
		snprintf(hint, sizeof hint, "scan slot %s's label, then the unit's code", w->slot[0] ? w->slot : "?");
	else
		snprintf(hint, sizeof hint, "scan the unit's code");
	espl__station_worker_emit_simple(w, ESPL_EV_SCAN_WAIT, "info", hint);
	double waited = espl__now_s();
	int rc = espl__scanner_wait(s->scanner, w->slot, s->o.io->scan_timeout_ms, worker_leaving, w, code, err);
	waited = espl__now_s() - waited;
	res->operator_wait_s += waited;
	if (rc < 0) {
		snprintf(msg, sizeof msg, "no code after %.1f s waiting for the operator", waited);
		espl__station_record_event(s, "info", "scan", w->unit_uuid, msg);
		return rc;
	}
	snprintf(msg, sizeof msg, "scanned '%s' after %.1f s waiting for the operator (not in the unit's duration)",
	         espl__str_escape(code, shown, sizeof shown), waited);
	espl__station_record_event(s, "info", "scan", w->unit_uuid, msg);
	snprintf(w->barcode, sizeof w->barcode, "%s", code);
	pthread_mutex_lock(&s->lock);
	snprintf(w->cur.barcode, sizeof w->cur.barcode, "%s", code);
	w->cur.begin.barcode = w->cur.barcode;
	pthread_mutex_unlock(&s->lock);
	espl__station_worker_emit_simple(w, ESPL_EV_SCANNED, "info", code);
	if (s->has_barcode_re && regexec(&s->barcode_re, code, 0, NULL, 0) != 0) {
		char pattern[256];
		return espl_fail(err, ESPL_EREFUSED, "scanned code '%s' does not match expect.barcode \"%s\" (line %u)",
		                 espl__str_escape(code, shown, sizeof shown),
		                 espl__str_escape(r->expect.barcode, pattern, sizeof pattern), r->expect.barcode_pos.line);
	}
	return ESPL_OK;
}

static int route_check(worker *w, const espl_unit_result *res, espl_error *err)
{
	espl_record_context ctx;
	espl_db_unit begin;
	unit_context(w, &ctx, NULL);
	espl_record_begin(res, &ctx, &begin);
	char *json = unit_json(w, res, &begin, NULL, 0);
	if (!json)
		return espl_fail(err, ESPL_ENOMEM, "out of memory writing the unit's JSON");
	int rc = run_hook(&w->sup->o.io->route_check, "route_check", json, err);
	free(json);
	return rc;
}

int espl__station_admit(void *ctx, espl_unit_result *res, enum espl_phase *phase, espl_error *err)
{
	worker *w = ctx;
	espl_supervisor *s = w->sup;
	if (s->scanner) {
		*phase = ESPL_PHASE_BARCODE;
		ESPL_TRY(scan_code(w, res, err));
	}
	if (s->o.io && s->o.io->route_check.argv) {
		*phase = ESPL_PHASE_ROUTE_CHECK;
		ESPL_TRY(route_check(w, res, err));
	}
	return ESPL_OK;
}

/* ---- after the unit ---------------------------------------------------------- */

char *espl__station_label(worker *w, const espl_unit_result *res)
{
	espl_supervisor *s = w->sup;
	espl_error err = { 0, "" };
	char *text = NULL;
	if (!s->labels || !res->pass)
		return NULL;
	espl_unit_values v = { .serial = res->identity.serial, .mac = res->chip.mac_str, .chip_id = res->chip.chip_id,
	                       .batch = s->batch_name, .time_ms = res->started_unix_ms, .slot = w->slot,
	                       .barcode = w->barcode };
	if (espl__labels_render(s->labels, &v, &text, &err) < 0 ||
	    espl__labels_enqueue(s->labels, w->unit_uuid, text, &err) < 0) {
		char msg[ESPL_ERROR_MAX + 64];
		snprintf(msg, sizeof msg, "no label for unit %s: %s", res->chip.mac_str, err.msg);
		espl__station_worker_emit_simple(w, ESPL_EV_LOG, "error", msg);
		on_label_unit(s, w->unit_uuid, "label-failed", "error", err.msg);
		if (!text)
			return NULL;
	}
	espl_station_event ev = { .kind = ESPL_EV_LABELS, .count = espl__labels_queued(s->labels), .level = "info",
	                          .unit_uuid = w->unit_uuid };
	espl__station_worker_emit(w, &ev);
	return text;
}

char *espl__station_done_json(worker *w, const espl_unit_result *res, const char *label)
{
	espl_record_context ctx;
	espl_record rec;
	espl_error err;
	if (!w->sup->o.io || !w->sup->o.io->on_unit_done.argv)
		return NULL;
	unit_context(w, &ctx, label);
	if (espl_record_from_result(res, &ctx, &rec, &err) < 0)
		return NULL;
	char *json = unit_json(w, res, &rec.unit, rec.steps, rec.n_steps);
	espl_record_free(&rec);
	return json;
}

void espl__station_done_hook(worker *w, char *json)
{
	espl_supervisor *s = w->sup;
	espl_error why = { 0, "" };
	char msg[ESPL_ERROR_MAX + 64];
	if (!json)
		return;
	int rc = run_hook(&s->o.io->on_unit_done, "on_unit_done", json, &why);
	free(json);
	if (rc == ESPL_OK)
		snprintf(msg, sizeof msg, "hooks.on_unit_done exited 0");
	else
		snprintf(msg, sizeof msg, "%s", why.msg);
	espl__station_worker_emit_simple(w, ESPL_EV_LOG, rc == ESPL_OK ? "info" : "warn", msg);
	espl__station_record_event(s, rc == ESPL_OK ? "info" : "warn", "hook", w->unit_uuid, msg);
}
