/* ui.c - the operator interface: state kept from the events, the public
 * calls (the three renderers are ui_plain.c, ui_json.c, ui_table.c); see
 * include/espline/ui.h. */
#include "espline/ui.h"
#include "station/ui_int.h"
#include "util/clock.h"
#include "util/str.h"

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
/* helpers                                                              */

void espl__ui_clock_text(int64_t ms, char out[16])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	snprintf(out, 16, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *espl__ui_result_name(enum espl_db_result result)
{
	return espl_db_result_name(result);
}

row *espl__ui_find_row(espl_ui *ui, const char *port)
{
	if (!port)
		return NULL;
	for (size_t i = 0; i < ui->n_rows; i++)
		if (strcmp(ui->rows[i].port, port) == 0)
			return &ui->rows[i];
	if (ui->n_rows == ui->cap_rows) {
		size_t cap = ui->cap_rows ? ui->cap_rows * 2 : 16;
		row *grown = realloc(ui->rows, cap * sizeof *grown);
		if (!grown)
			return NULL;
		ui->rows = grown;
		ui->cap_rows = cap;
	}
	row *r = &ui->rows[ui->n_rows++];
	memset(r, 0, sizeof *r);
	snprintf(r->port, sizeof r->port, "%s", port);
	r->state = ROW_IDLE;
	r->decile = -1;
	return r;
}

static row *row_of_unit(espl_ui *ui, const char *uuid)
{
	for (size_t i = 0; uuid && i < ui->n_rows; i++)
		if (strcmp(ui->rows[i].unit_uuid, uuid) == 0)
			return &ui->rows[i];
	return NULL;
}

static void add_message(espl_ui *ui, const char *port, const char *text)
{
	char clock[16];
	if (ui->n_messages == N_MESSAGES) {
		memmove(ui->messages[0], ui->messages[1], sizeof ui->messages[0] * (N_MESSAGES - 1));
		ui->n_messages--;
	}
	espl__ui_clock_text(espl_db_now_ms(), clock);
	snprintf(ui->messages[ui->n_messages++], sizeof ui->messages[0], "%s %s%s%.150s", clock,
	         port ? port : "", port ? ": " : "", text);
}

static void add_reason(espl_ui *ui, const char *kind, const char *example)
{
	size_t i;
	if (!kind || !*kind)
		kind = "unknown";
	for (i = 0; i < ui->n_reasons; i++)
		if (strcmp(ui->reasons[i].kind, kind) == 0)
			break;
	if (i == ui->n_reasons) {
		if (ui->n_reasons == MAX_REASONS)
			i = MAX_REASONS - 1;  /* lump the rest into the last one */
		else
			ui->n_reasons++;
		snprintf(ui->reasons[i].kind, sizeof ui->reasons[i].kind, "%s", kind);
		snprintf(ui->reasons[i].example, sizeof ui->reasons[i].example, "%s", example ? example : "");
	}
	ui->reasons[i].count++;
}

/* ------------------------------------------------------------------ */
/* state kept from the events (all modes, for the summary)              */

const ui_event espl__ui_events[ESPL_EV_COUNT] = {
	[ESPL_EV_STARTED] = { "started", "batch started", ROW_UNCHANGED },
	[ESPL_EV_PORT_ADDED] = { "port_added", "adapter added", ROW_READY },
	[ESPL_EV_PORT_REMOVED] = { "port_removed", "worker ended", ROW_FINISHED },  /* or UNPLUGGED */
	[ESPL_EV_WAITING] = { "waiting", "waiting for a unit", ROW_WAITING },
	[ESPL_EV_IDENTIFIED] = { "identified", "unit connected", ROW_PROGRAMMING },
	[ESPL_EV_STEP_START] = { "step_start", "step", ROW_UNCHANGED },
	[ESPL_EV_PROGRESS] = { "progress", NULL, ROW_UNCHANGED },
	[ESPL_EV_STEP_DONE] = { "step_done", "step done", ROW_UNCHANGED },
	[ESPL_EV_UNIT_DONE] = { "unit_done", "unit done", ROW_UNCHANGED },  /* DONE if programming */
	[ESPL_EV_UNIT_RECORDED] = { "unit_recorded", "unit recorded", ROW_UNCHANGED },
	[ESPL_EV_REMOVE_WAIT] = { "remove_wait", "remove the unit", ROW_REMOVE_UNIT },
	[ESPL_EV_UNIT_REMOVED] = { "unit_removed", "unit removed", ROW_REMOVED },
	[ESPL_EV_LOG] = { "log", NULL, ROW_UNCHANGED },
	[ESPL_EV_DB_STATE] = { "db_state", "database", ROW_UNCHANGED },
	[ESPL_EV_STOPPING] = { "stopping", "stopping", ROW_UNCHANGED },
	[ESPL_EV_FINISHED] = { "finished", "finished", ROW_UNCHANGED },
	[ESPL_EV_SCAN_WAIT] = { "scan_wait", "waits for its code", ROW_SCAN },
	[ESPL_EV_SCANNED] = { "scanned", "scanned", ROW_PROGRAMMING },
	[ESPL_EV_LABELS] = { "labels", "labels", ROW_UNCHANGED },
	[ESPL_EV_SLOT_PAUSED] = { "slot_paused", "paused", ROW_PAUSED },
};

const char *espl__ui_state_name(enum row_state state)
{
	static const char *const names[] = {
		[ROW_UNCHANGED] = "?", [ROW_IDLE] = "idle", [ROW_READY] = "ready", [ROW_WAITING] = "waiting",
		[ROW_PROGRAMMING] = "programming", [ROW_DONE] = "done", [ROW_REMOVE_UNIT] = "remove unit",
		[ROW_REMOVED] = "removed", [ROW_UNPLUGGED] = "unplugged", [ROW_FINISHED] = "finished",
		[ROW_SCAN] = "scan code",
		[ROW_PAUSED] = "paused",
	};
	return (size_t)state < sizeof names / sizeof *names && names[state] ? names[state] : "?";
}

/* The state the event sets: its kind's, or what the event itself says. */
static enum row_state state_after(const espl_station_event *ev, enum row_state now)
{
	if (ev->kind == ESPL_EV_PORT_REMOVED && ev->unplugged)
		return ROW_UNPLUGGED;
	if (ev->kind == ESPL_EV_UNIT_DONE)
		return now == ROW_PROGRAMMING ? ROW_DONE : now;
	return espl__ui_events[ev->kind].state != ROW_UNCHANGED ? espl__ui_events[ev->kind].state : now;
}

static void track(espl_ui *ui, const espl_station_event *ev)
{
	row *r = ev->port ? espl__ui_find_row(ui, ev->port) : NULL;

	if (r && ev->slot && !r->slot[0]) {
		snprintf(r->slot, sizeof r->slot, "%s", ev->slot);
		ui->any_slot = 1;
	}
	if (r)
		r->state = state_after(ev, r->state);

	switch (ev->kind) {
	case ESPL_EV_STARTED:
		snprintf(ui->batch, sizeof ui->batch, "%s", ev->message ? ev->message : "");
		ui->planned = ev->count;
		ui->planned_passed = ev->count_passed;
		break;
	case ESPL_EV_PORT_ADDED:
		if (r) {
			r->gone = 0;
		}
		break;
	case ESPL_EV_PORT_REMOVED:
		if (r) {
			r->gone = 1;
			r->has_progress = 0;
		}
		break;
	case ESPL_EV_WAITING:
		if (r) {
			r->step[0] = '\0';
			r->has_progress = 0;
			snprintf(r->note, sizeof r->note, "%.90s", ev->message ? ev->message : "insert a unit");
		}
		break;
	case ESPL_EV_IDENTIFIED:
		if (r) {
			snprintf(r->mac, sizeof r->mac, "%s", ev->mac ? ev->mac : "");
			snprintf(r->unit_uuid, sizeof r->unit_uuid, "%s", ev->unit_uuid ? ev->unit_uuid : "");
			r->result[0] = r->note[0] = r->step[0] = '\0';
			r->has_progress = 0;
		}
		break;
	case ESPL_EV_STEP_START:
		if (r) {
			snprintf(r->step, sizeof r->step, "%u/%u %s", ev->step_number, ev->n_steps, ev->step ? ev->step : "");
			r->step_started_ms = espl__now_ms();
			r->has_progress = 0;
			r->decile = -1;
		}
		break;
	case ESPL_EV_PROGRESS:
		if (r && ev->progress) {
			r->done = ev->progress->done;
			r->total = ev->progress->total;
			r->rate = ev->progress->rate;
			r->has_progress = 1;
		}
		break;
	case ESPL_EV_UNIT_DONE:
		if (r) {
			r->step[0] = '\0';
			snprintf(r->result, sizeof r->result, "%s", espl__ui_result_name(ev->result));
			if (ev->mac)
				snprintf(r->mac, sizeof r->mac, "%s", ev->mac);
			snprintf(r->unit_uuid, sizeof r->unit_uuid, "%s", ev->unit_uuid ? ev->unit_uuid : "");
			r->has_progress = 0;
			snprintf(r->note, sizeof r->note, "%.90s", ev->result == ESPL_DB_PASS ? "" : ev->error_kind ? ev->error_kind : "");
			r->passed += ev->result == ESPL_DB_PASS;
			r->failed += ev->result == ESPL_DB_FAIL;
		}
		if (ev->result == ESPL_DB_PASS) {
			ui->passed++;
		} else if (ev->result == ESPL_DB_FAIL) {
			ui->failed++;
			add_reason(ui, ev->error_kind, ev->message);
		} else {
			ui->interrupted++;
		}
		if (ev->result != ESPL_DB_INTERRUPTED && ev->duration_s > 0) {
			ui->timed++;
			ui->sum_s += ev->duration_s;
			if (ev->duration_s > ui->worst_s)
				ui->worst_s = ev->duration_s;
		}
		if (ev->result != ESPL_DB_PASS)
			add_message(ui, ev->port, ev->message ? ev->message : espl__ui_result_name(ev->result));
		break;
	case ESPL_EV_UNIT_RECORDED:
		if (ev->repeat_of) {
			ui->repeats++;
			row *u = row_of_unit(ui, ev->unit_uuid);
			if (u)
				snprintf(u->note, sizeof u->note, "%s", "REPEAT: this MAC had already passed (this batch or an earlier one)");
		}
		if (ev->message)
			add_message(ui, NULL, ev->message);
		break;
	case ESPL_EV_LOG:
		if (ev->message && ev->level && strcmp(ev->level, "info") != 0)
			add_message(ui, ev->port, ev->message);
		break;
	case ESPL_EV_DB_STATE:
		snprintf(ui->db_problem, sizeof ui->db_problem, "%.250s", ev->db_state ? (ev->message ? ev->message : "database problem") : "");
		break;
	case ESPL_EV_STOPPING:
		snprintf(ui->stopping, sizeof ui->stopping, "%.250s", ev->message ? ev->message : "stopping");
		break;
	case ESPL_EV_SCAN_WAIT:
		if (r)
			snprintf(r->note, sizeof r->note, "%.90s", ev->message ? ev->message : "scan the unit's code");
		break;
	case ESPL_EV_SCANNED:
		if (r)
			snprintf(r->note, sizeof r->note, "code %.80s", ev->message ? ev->message : "");
		break;
	case ESPL_EV_LABELS:
		ui->labels_queued = ev->count;
		if (ev->message && ev->level && strcmp(ev->level, "info") != 0)
			add_message(ui, NULL, ev->message);
		break;
	default:  /* the state alone (above) */
		break;
	}
}

/* ------------------------------------------------------------------ */
/* public                                                               */

static const char *escaped(const char *in, char *buf, size_t cap)
{
	return in ? espl__str_escape(in, buf, cap) : NULL;
}

int espl_ui_new(const espl_ui_options *opts, espl_ui **out, espl_error *err)
{
	espl_ui *ui = calloc(1, sizeof *ui);
	*out = NULL;
	if (!ui)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	ui->labels_queued = -1;
	if (opts)
		ui->o = *opts;
	ui->out = ui->o.out ? ui->o.out : stdout;
	int tty = isatty(fileno(ui->out));
	if (ui->o.mode == ESPL_UI_AUTO)
		ui->o.mode = tty ? ESPL_UI_TABLE : ESPL_UI_PLAIN;
	if (ui->o.color < 0)
		ui->o.color = tty && ui->o.mode != ESPL_UI_JSON;
	if (ui->o.redraw_ms <= 0)
		ui->o.redraw_ms = 250;
	if (ui->o.mode != ESPL_UI_JSON) {
		ui->o.recipe = escaped(ui->o.recipe, ui->recipe_shown, sizeof ui->recipe_shown);
		ui->o.db_path = escaped(ui->o.db_path, ui->db_shown, sizeof ui->db_shown);
	}
	ui->start_ms = espl__now_ms();
	pthread_mutex_init(&ui->lock, NULL);
	*out = ui;
	return ESPL_OK;
}

enum espl_ui_mode espl_ui_mode(const espl_ui *ui)
{
	return ui->o.mode;
}

/* The event with every string escaped (util/str.h), for the text modes:
 * names and messages come from operators, files and devices, and must not
 * reach a terminal or a log as control characters.  JSON escapes on its
 * own. */
typedef struct escaped_event {
	espl_station_event ev;
	char port[256], slot[64], unit_uuid[64], mac[64], step[64], error_kind[128], message[1024], level[32],
		repeat_of[64], operator_name[96];
} escaped_event;

static void escape_event(const espl_station_event *in, escaped_event *e)
{
	e->ev = *in;
	e->ev.port = escaped(in->port, e->port, sizeof e->port);
	e->ev.slot = escaped(in->slot, e->slot, sizeof e->slot);
	e->ev.unit_uuid = escaped(in->unit_uuid, e->unit_uuid, sizeof e->unit_uuid);
	e->ev.mac = escaped(in->mac, e->mac, sizeof e->mac);
	e->ev.step = escaped(in->step, e->step, sizeof e->step);
	e->ev.error_kind = escaped(in->error_kind, e->error_kind, sizeof e->error_kind);
	e->ev.message = escaped(in->message, e->message, sizeof e->message);
	e->ev.level = escaped(in->level, e->level, sizeof e->level);
	e->ev.repeat_of = escaped(in->repeat_of, e->repeat_of, sizeof e->repeat_of);
	e->ev.operator_name = escaped(in->operator_name, e->operator_name, sizeof e->operator_name);
}

void espl_ui_event(espl_ui *ui, const espl_station_event *raw)
{
	static _Thread_local escaped_event e;  /* 1.7 KB: off the worker's stack */
	const espl_station_event *ev = raw;

	if (ui->o.mode != ESPL_UI_JSON) {
		escape_event(raw, &e);
		ev = &e.ev;
	}
	pthread_mutex_lock(&ui->lock);
	track(ui, ev);
	if (ui->o.mode == ESPL_UI_PLAIN)
		espl__ui_plain_line(ui, ev);
	else if (ui->o.mode == ESPL_UI_JSON)
		espl__ui_json_line(ui, ev);
	else if (ev->kind == ESPL_EV_UNIT_DONE || ev->kind == ESPL_EV_STOPPING)
		espl__ui_draw(ui);  /* a result shows at once, not at the next tick */
	pthread_mutex_unlock(&ui->lock);
}

void espl_ui_on_event(void *ctx, const espl_station_event *ev)
{
	espl_ui_event(ctx, ev);
}

void espl_ui_tick(espl_ui *ui)
{
	if (ui->o.mode != ESPL_UI_TABLE)
		return;
	pthread_mutex_lock(&ui->lock);
	if (espl__now_ms() - ui->last_draw_ms >= ui->o.redraw_ms)
		espl__ui_draw(ui);
	pthread_mutex_unlock(&ui->lock);
}

void espl_ui_on_tick(void *ctx)
{
	espl_ui_tick(ctx);
}

static void summary_text(espl_ui *ui, const espl_station_totals *t)
{
	FILE *f = ui->out;
	int done = ui->passed + ui->failed;
	fprintf(f, "\n%sSummary of batch %s%s\n", ui->o.color ? BOLD : "", ui->batch, ui->o.color ? RESET : "");
	fprintf(f, "  passed       %s%d%s\n", ui->o.color ? "\033[1;32m" : "", ui->passed, ui->o.color ? RESET : "");
	fprintf(f, "  failed       %s%d%s\n", ui->o.color && ui->failed ? "\033[1;31m" : "", ui->failed,
	        ui->o.color && ui->failed ? RESET : "");
	for (size_t i = 0; i < ui->n_reasons; i++)
		fprintf(f, "    %4d x %s  (e.g. %s)\n", ui->reasons[i].count, ui->reasons[i].kind, ui->reasons[i].example);
	if (ui->interrupted)
		fprintf(f, "  interrupted  %d\n", ui->interrupted);
	if (ui->repeats)
		fprintf(f, "  repeats      %d (MACs that had already passed, in this batch or an earlier one)\n",
		        ui->repeats);
	fprintf(f, "  yield        %.1f%%\n", done ? 100.0 * ui->passed / done : 0.0);
	if (t && t->station_faults)
		fprintf(f, "  station      %d fault%s (a port busy or not permitted: no unit, outside yield; see the log)\n",
		        t->station_faults, t->station_faults == 1 ? "" : "s");
	if (t && t->unreached)
		fprintf(f, "  unreachable  %d port%s (could not be opened: no unit, outside yield)\n", t->unreached,
		        t->unreached == 1 ? "" : "s");
	if (ui->timed)
		fprintf(f, "  time/unit    mean %.1f s, worst %.1f s\n", ui->sum_s / ui->timed, ui->worst_s);
	if (t) {
		fprintf(f, "  elapsed      %.1f s, %d port%s, %.0f units/hour\n", t->elapsed_s, t->ports_seen,
		        t->ports_seen == 1 ? "" : "s", t->elapsed_s > 0 ? 3600.0 * done / t->elapsed_s : 0.0);
		fprintf(f, "  database     %s: %d recorded%s", ui->o.db_path ? ui->o.db_path : "?", t->recorded,
		        t->spooled || t->unsaved ? "" : "\n");
		if (t->spooled || t->unsaved)
			fprintf(f, ", %d spooled (replayed at the next start), %d NOT saved\n", t->spooled, t->unsaved);
		fprintf(f, "  batch uuid   %s\n", t->batch_uuid);
	}
	fflush(f);
}

static void summary_json(espl_ui *ui, const espl_station_totals *t)
{
	json_t *o = espl__ui_counts_json(ui, "summary");
	if (t) {
		json_object_set_new(o, "elapsed_s", json_real(t->elapsed_s));
		json_object_set_new(o, "recorded", json_integer(t->recorded));
		json_object_set_new(o, "spooled", json_integer(t->spooled));
		json_object_set_new(o, "unsaved", json_integer(t->unsaved));
		json_object_set_new(o, "station_faults", json_integer(t->station_faults));
		json_object_set_new(o, "unreachable_ports", json_integer(t->unreached));
		espl__ui_set_str(o, "batch_uuid", t->batch_uuid);
	}
	json_dumpf(o, ui->out, JSON_COMPACT);
	fputc('\n', ui->out);
	fflush(ui->out);
	json_decref(o);
}

void espl_ui_summary(espl_ui *ui, const espl_station_totals *totals)
{
	pthread_mutex_lock(&ui->lock);
	if (ui->o.mode == ESPL_UI_TABLE) {
		espl__ui_draw(ui);
		fputs("\033[?25h", ui->out);  /* the cursor back */
	}
	if (ui->o.mode == ESPL_UI_JSON)
		summary_json(ui, totals);
	else
		summary_text(ui, totals);
	pthread_mutex_unlock(&ui->lock);
}

void espl_ui_free(espl_ui *ui)
{
	if (!ui)
		return;
	pthread_mutex_destroy(&ui->lock);
	free(ui->rows);
	free(ui);
}
