/* ui_json.c - the JSON operator interface: one object per event, and the
 * same objects plus a snapshot of the state for the web view; see
 * include/espline/ui.h. */
#include "espline/ui.h"
#include "station/ui_int.h"
#include "util/clock.h"
#include "util/str.h"
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "espline/db.h"
#include "espline/dbwriter.h"
#include "espline/report.h"

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

void espl__ui_set_str(json_t *o, const char *key, const char *value)
{
	if (value)
		json_object_set_new(o, key, json_string(value));
}

void espl__ui_json_time(json_t *o, int64_t ms)
{
	char text[32];
	espl_report_format_time(ms, text);
	json_object_set_new(o, "time", json_string(text));
}

/* Progress by tenths, so that an MES gets a handful of lines per step. */
static int json_progress_due(espl_ui *ui, const espl_station_event *ev)
{
	row *r = espl__ui_find_row(ui, ev->port);
	const espl_progress *p = ev->progress;
	if (!r || !p || !p->total)
		return 0;
	int decile = (int)(10 * (double)p->done / (double)p->total);
	if (decile == r->decile)
		return 0;
	r->decile = decile;
	return 1;
}

/* One event as a JSON object: the JSON view's lines and the web view's
 * Server-Sent Events (web.c) are the same objects. */
static json_t *event_json(const espl_ui *ui, const espl_station_event *ev)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "event", json_string(espl__ui_events[ev->kind].name));
	espl__ui_json_time(o, ev->time_ms);
	espl__ui_set_str(o, "port", ev->port);
	espl__ui_set_str(o, "slot", ev->slot);
	espl__ui_set_str(o, "unit", ev->unit_uuid);
	espl__ui_set_str(o, "mac", ev->mac);
	espl__ui_set_str(o, "level", ev->level);
	switch (ev->kind) {
	case ESPL_EV_STARTED:
		espl__ui_set_str(o, "batch", ev->message);
		espl__ui_set_str(o, "operator", ev->operator_name);
		json_object_set_new(o, "count", json_integer(ev->count));
		json_object_set_new(o, "count_passed", json_boolean(ev->count_passed));
		espl__ui_set_str(o, "recipe", ui->o.recipe);
		espl__ui_set_str(o, "db", ui->o.db_path);
		json_object_del(o, "unit");
		espl__ui_set_str(o, "batch_uuid", ev->unit_uuid);
		break;
	case ESPL_EV_STEP_START:
	case ESPL_EV_STEP_DONE:
		espl__ui_set_str(o, "step", ev->step);
		json_object_set_new(o, "step_number", json_integer(ev->step_number));
		json_object_set_new(o, "steps", json_integer(ev->n_steps));
		if (ev->kind == ESPL_EV_STEP_DONE) {
			espl__ui_set_str(o, "result", espl__ui_result_name(ev->result));
			json_object_set_new(o, "duration_s", json_real(ev->duration_s));
			espl__ui_set_str(o, "error", ev->message);
		}
		break;
	case ESPL_EV_PROGRESS:
		espl__ui_set_str(o, "step", ev->progress->step);
		json_object_set_new(o, "done", json_integer((json_int_t)ev->progress->done));
		json_object_set_new(o, "total", json_integer((json_int_t)ev->progress->total));
		json_object_set_new(o, "rate", json_real(ev->progress->rate));
		break;
	case ESPL_EV_UNIT_DONE:
		espl__ui_set_str(o, "result", espl__ui_result_name(ev->result));
		json_object_set_new(o, "duration_s", json_real(ev->duration_s));
		espl__ui_set_str(o, "error_kind", ev->error_kind && *ev->error_kind ? ev->error_kind : NULL);
		espl__ui_set_str(o, "error", ev->message);
		espl__ui_set_str(o, "operator", ev->operator_name);
		if (ev->unit && ev->unit->identified) {
			char id[16];
			snprintf(id, sizeof id, "0x%08" PRIx32, ev->unit->chip.chip_id);
			espl__ui_set_str(o, "chip_id", id);  /* hex text, as in the export */
			json_object_set_new(o, "flash_size", json_integer((json_int_t)ev->unit->chip.flash_size));
		}
		break;
	case ESPL_EV_UNIT_RECORDED:
		json_object_set_new(o, "saved", json_boolean(ev->saved));
		json_object_set_new(o, "seq", json_integer(ev->seq));
		json_object_set_new(o, "spooled", json_boolean(ev->spooled));
		espl__ui_set_str(o, "repeat_of", ev->repeat_of);
		espl__ui_set_str(o, "error", ev->message);
		break;
	case ESPL_EV_DB_STATE:
		espl__ui_set_str(o, "state", ev->db_state == ESPL_DBW_OK ? "ok" : ev->db_state == ESPL_DBW_SPOOLING ? "spooling" : "failed");
		espl__ui_set_str(o, "reason", ev->message);
		break;
	case ESPL_EV_FINISHED:
		/* the batch's uuid, under the same key as in "started" */
		json_object_del(o, "unit");
		espl__ui_set_str(o, "batch_uuid", ev->unit_uuid);
		espl__ui_set_str(o, "message", ev->message);
		break;
	case ESPL_EV_STOPPING:
		espl__ui_set_str(o, "mode", ev->stop_level >= ESPL_STOP_ABORT ? "abort" : "graceful");
		espl__ui_set_str(o, "reason", ev->message);
		break;
	case ESPL_EV_SCANNED:
		espl__ui_set_str(o, "code", ev->message);
		break;
	case ESPL_EV_LABELS:
		json_object_set_new(o, "queued", json_integer(ev->count));
		espl__ui_set_str(o, "message", ev->message);
		break;
	default:
		espl__ui_set_str(o, "message", ev->message);
		break;
	}
	return o;
}

void espl__ui_json_line(espl_ui *ui, const espl_station_event *ev)
{
	if (ev->kind == ESPL_EV_PROGRESS && !json_progress_due(ui, ev))
		return;
	json_t *o = event_json(ui, ev);
	if (!o)
		return;
	json_dumpf(o, ui->out, JSON_COMPACT);
	fputc('\n', ui->out);
	fflush(ui->out);
	json_decref(o);
}

/* The counts both the end-of-run summary and the web snapshot carry. */
json_t *espl__ui_counts_json(const espl_ui *ui, const char *event)
{
	json_t *o = json_object(), *reasons = json_object();
	int done = ui->passed + ui->failed;
	json_object_set_new(o, "event", json_string(event));
	espl__ui_json_time(o, espl_db_now_ms());
	espl__ui_set_str(o, "batch", ui->batch);
	json_object_set_new(o, "passed", json_integer(ui->passed));
	json_object_set_new(o, "failed", json_integer(ui->failed));
	json_object_set_new(o, "interrupted", json_integer(ui->interrupted));
	json_object_set_new(o, "repeats", json_integer(ui->repeats));
	json_object_set_new(o, "yield", json_real(done ? (double)ui->passed / done : 0.0));
	for (size_t i = 0; i < ui->n_reasons; i++)
		json_object_set_new(reasons, ui->reasons[i].kind, json_integer(ui->reasons[i].count));
	json_object_set_new(o, "failed_by_reason", reasons);
	json_object_set_new(o, "mean_s", json_real(ui->timed ? ui->sum_s / ui->timed : 0.0));
	json_object_set_new(o, "worst_s", json_real(ui->worst_s));
	if (ui->labels_queued >= 0)
		json_object_set_new(o, "labels_queued", json_integer(ui->labels_queued));
	return o;
}

/* ------------------------------------------------------------------ */
/* text for other views (web.c)                                         */

static char *dump_and_free(json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

char *espl_ui_event_text(espl_ui *ui, const espl_station_event *ev)
{
	return dump_and_free(event_json(ui, ev));
}

static json_t *row_json(const row *r)
{
	json_t *o = json_object();
	espl__ui_set_str(o, "port", r->port);
	if (r->slot[0])
		espl__ui_set_str(o, "slot", r->slot);
	espl__ui_set_str(o, "state", espl__ui_state_name(r->state));
	espl__ui_set_str(o, "step", r->step);
	espl__ui_set_str(o, "mac", r->mac);
	espl__ui_set_str(o, "result", r->result);
	espl__ui_set_str(o, "unit", r->unit_uuid);
	espl__ui_set_str(o, "note", r->note);
	if (r->has_progress) {
		json_object_set_new(o, "done", json_integer((json_int_t)r->done));
		json_object_set_new(o, "total", json_integer((json_int_t)r->total));
		json_object_set_new(o, "rate", json_real(r->rate));
	}
	json_object_set_new(o, "passed", json_integer(r->passed));
	json_object_set_new(o, "failed", json_integer(r->failed));
	json_object_set_new(o, "gone", json_boolean(r->gone));
	return o;
}

char *espl_ui_snapshot_text(espl_ui *ui)
{
	pthread_mutex_lock(&ui->lock);
	json_t *o = espl__ui_counts_json(ui, "snapshot"), *rows = json_array();
	json_object_set_new(o, "planned", json_integer(ui->planned));
	json_object_set_new(o, "planned_passed", json_boolean(ui->planned_passed));
	espl__ui_set_str(o, "recipe", ui->o.recipe);
	espl__ui_set_str(o, "db", ui->o.db_path);
	json_object_set_new(o, "elapsed_s", json_real((double)(espl__now_ms() - ui->start_ms) / 1000.0));
	espl__ui_set_str(o, "stopping", ui->stopping);
	espl__ui_set_str(o, "db_problem", ui->db_problem);
	for (size_t i = 0; i < ui->n_rows; i++)
		json_array_append_new(rows, row_json(&ui->rows[i]));
	json_object_set_new(o, "ports", rows);
	pthread_mutex_unlock(&ui->lock);
	return dump_and_free(o);
}
