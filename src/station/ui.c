/* ui.c - dashboard, plain lines and JSON events; see include/espline/ui.h. */
#include "espline/ui.h"
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

#define MAX_REASONS 32
#define N_MESSAGES 6
#define BAR_WIDTH 20

/* Terminal sequences: cursor home, erase to end of line / of screen. */
#define HOME "\033[H"
#define EOL "\033[K"
#define EOS "\033[J"
#define BOLD "\033[1m"
#define RESET "\033[0m"
#define PASS_STYLE "\033[1;97;42m"
#define FAIL_STYLE "\033[1;97;41m"
#define WARN_STYLE "\033[1;33m"
#define DIM "\033[2m"

typedef struct row {
	char port[128];
	char state[24];
	char step[40];
	char mac[18];
	char result[16];       /* "PASS", "FAIL", "INTERRUPTED", "" */
	char unit_uuid[ESPL_DB_UUID_SIZE];
	char note[96];         /* REPEAT, waiting reason, ... */
	size_t done, total;
	double rate;
	int64_t step_started_ms;
	int has_progress;
	int decile;            /* JSON progress: last tenth reported */
	int passed, failed;
	int gone;
} row;

typedef struct reason {
	char kind[64];
	int count;
	char example[160];
} reason;

struct espl_ui {
	espl_ui_options o;        /* o.recipe and o.db_path point at the escaped copies below
	                             in the text modes */
	char recipe_shown[192], db_shown[512];
	FILE *out;
	pthread_mutex_t lock;
	row *rows;
	size_t n_rows, cap_rows;
	reason reasons[MAX_REASONS];
	size_t n_reasons;
	int passed, failed, interrupted, repeats;
	double sum_s, worst_s;
	int timed;
	char batch[128];
	int planned;
	char messages[N_MESSAGES][200];
	size_t n_messages;
	char stopping[256];
	char db_problem[256];
	int64_t start_ms, last_draw_ms;
	int drawn;
};

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static void clock_text(int64_t ms, char out[16])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	snprintf(out, 16, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *result_name(int result)
{
	return espl_db_result_name(result);
}

static row *find_row(espl_ui *ui, const char *port)
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
	snprintf(r->state, sizeof r->state, "%s", "idle");
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
	clock_text(espl_db_now_ms(), clock);
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

static void track(espl_ui *ui, const espl_station_event *ev)
{
	row *r = ev->port ? find_row(ui, ev->port) : NULL;

	switch (ev->kind) {
	case ESPL_EV_STARTED:
		snprintf(ui->batch, sizeof ui->batch, "%s", ev->message ? ev->message : "");
		ui->planned = ev->count;
		break;
	case ESPL_EV_PORT_ADDED:
		if (r) {
			r->gone = 0;
			snprintf(r->state, sizeof r->state, "%s", "ready");
		}
		break;
	case ESPL_EV_PORT_REMOVED:
		if (r) {
			r->gone = 1;
			snprintf(r->state, sizeof r->state, "%s",
			         ev->message && strstr(ev->message, "unplugged") ? "unplugged" : "finished");
			r->has_progress = 0;
		}
		break;
	case ESPL_EV_WAITING:
		if (r) {
			snprintf(r->state, sizeof r->state, "%s", "waiting");
			r->step[0] = '\0';
			r->has_progress = 0;
			snprintf(r->note, sizeof r->note, "%.90s", ev->message ? ev->message : "insert a unit");
		}
		break;
	case ESPL_EV_IDENTIFIED:
		if (r) {
			snprintf(r->state, sizeof r->state, "%s", "programming");
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
			if (strcmp(r->state, "programming") == 0)
				snprintf(r->state, sizeof r->state, "%s", "done");
			r->step[0] = '\0';
			snprintf(r->result, sizeof r->result, "%s", result_name(ev->result));
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
			add_message(ui, ev->port, ev->message ? ev->message : result_name(ev->result));
		break;
	case ESPL_EV_UNIT_RECORDED:
		if (ev->repeat_of) {
			ui->repeats++;
			row *u = row_of_unit(ui, ev->unit_uuid);
			if (u)
				snprintf(u->note, sizeof u->note, "%s", "REPEAT: this MAC already passed in this batch");
		}
		if (ev->message)
			add_message(ui, NULL, ev->message);
		break;
	case ESPL_EV_REMOVE_WAIT:
		if (r)
			snprintf(r->state, sizeof r->state, "%s", "remove unit");
		break;
	case ESPL_EV_UNIT_REMOVED:
		if (r)
			snprintf(r->state, sizeof r->state, "%s", "removed");
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
	case ESPL_EV_STEP_DONE:
	case ESPL_EV_FINISHED:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* PLAIN                                                                */

static void plain_line(espl_ui *ui, const espl_station_event *ev)
{
	FILE *f = ui->out;
	char clock[16];
	const char *port = ev->port ? ev->port : "station";

	clock_text(ev->time_ms, clock);
	switch (ev->kind) {
	case ESPL_EV_STARTED:
		fprintf(f, "%s %s: batch %s started (%s%d units), recipe %s, database %s\n", clock, port,
		        ev->message ? ev->message : "", ev->count ? "" : "open-ended, ", ev->count,
		        ui->o.recipe ? ui->o.recipe : "?", ui->o.db_path ? ui->o.db_path : "?");
		break;
	case ESPL_EV_PORT_ADDED:
		fprintf(f, "%s %s: adapter added%s%s\n", clock, port, ev->message ? ": " : "", ev->message ? ev->message : "");
		break;
	case ESPL_EV_PORT_REMOVED:
		fprintf(f, "%s %s: worker ended (%s)\n", clock, port, ev->message ? ev->message : "");
		break;
	case ESPL_EV_WAITING:
		fprintf(f, "%s %s: waiting for a unit%s%s%s\n", clock, port, ev->message ? " (last try: " : "",
		        ev->message ? ev->message : "", ev->message ? ")" : "");
		break;
	case ESPL_EV_IDENTIFIED:
		fprintf(f, "%s %s: unit %s connected, programming\n", clock, port, ev->mac ? ev->mac : "?");
		break;
	case ESPL_EV_STEP_START:
		fprintf(f, "%s %s: step %u/%u %s\n", clock, port, ev->step_number, ev->n_steps, ev->step ? ev->step : "");
		break;
	case ESPL_EV_STEP_DONE:
		fprintf(f, "%s %s: step %u/%u %s %s in %.2f s%s%s\n", clock, port, ev->step_number, ev->n_steps,
		        ev->step ? ev->step : "", ev->result == ESPL_DB_PASS ? "passed" : "failed", ev->duration_s,
		        ev->message ? ": " : "", ev->message ? ev->message : "");
		break;
	case ESPL_EV_UNIT_DONE:
		fprintf(f, "%s %s: %s %s in %.1f s%s%s\n", clock, port, result_name(ev->result),
		        ev->mac ? ev->mac : "(no MAC)", ev->duration_s, ev->message ? ": " : "",
		        ev->message ? ev->message : "");
		break;
	case ESPL_EV_UNIT_RECORDED:
		if (ev->repeat_of || ev->message)
			fprintf(f, "%s %s: unit %s %s\n", clock, port, ev->unit_uuid ? ev->unit_uuid : "",
			        ev->message ? ev->message : "REPEAT: this MAC already passed in this batch");
		break;
	case ESPL_EV_REMOVE_WAIT:
		fprintf(f, "%s %s: remove the unit\n", clock, port);
		break;
	case ESPL_EV_UNIT_REMOVED:
		fprintf(f, "%s %s: unit removed\n", clock, port);
		break;
	case ESPL_EV_LOG:
		fprintf(f, "%s %s: %s: %s\n", clock, port, ev->level ? ev->level : "info", ev->message ? ev->message : "");
		break;
	case ESPL_EV_DB_STATE:
		fprintf(f, "%s %s: database %s%s%s\n", clock, port, ev->db_state == ESPL_DBW_OK ? "ok" :
		        ev->db_state == ESPL_DBW_SPOOLING ? "SPOOLING" : "FAILED", ev->message && *ev->message ? ": " : "",
		        ev->message ? ev->message : "");
		break;
	case ESPL_EV_STOPPING:
		fprintf(f, "%s %s: stopping: %s\n", clock, port, ev->message ? ev->message : "");
		break;
	case ESPL_EV_FINISHED:
		fprintf(f, "%s %s: finished: %s\n", clock, port, ev->message ? ev->message : "");
		break;
	case ESPL_EV_PROGRESS:
		return;
	}
	fflush(f);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                 */

static const char *const event_names[] = {
	[ESPL_EV_STARTED] = "started", [ESPL_EV_PORT_ADDED] = "port_added",
	[ESPL_EV_PORT_REMOVED] = "port_removed", [ESPL_EV_WAITING] = "waiting",
	[ESPL_EV_IDENTIFIED] = "identified", [ESPL_EV_STEP_START] = "step_start",
	[ESPL_EV_PROGRESS] = "progress", [ESPL_EV_STEP_DONE] = "step_done",
	[ESPL_EV_UNIT_DONE] = "unit_done", [ESPL_EV_UNIT_RECORDED] = "unit_recorded",
	[ESPL_EV_REMOVE_WAIT] = "remove_wait", [ESPL_EV_UNIT_REMOVED] = "unit_removed",
	[ESPL_EV_LOG] = "log", [ESPL_EV_DB_STATE] = "db_state", [ESPL_EV_STOPPING] = "stopping",
	[ESPL_EV_FINISHED] = "finished",
};

static void set_str(json_t *o, const char *key, const char *value)
{
	if (value)
		json_object_set_new(o, key, json_string(value));
}

static void json_time(json_t *o, int64_t ms)
{
	char text[32];
	espl_report_format_time(ms, text);
	json_object_set_new(o, "time", json_string(text));
}

/* Progress by tenths, so that an MES gets a handful of lines per step. */
static int json_progress_due(espl_ui *ui, const espl_station_event *ev)
{
	row *r = find_row(ui, ev->port);
	const espl_progress *p = ev->progress;
	if (!r || !p || !p->total)
		return 0;
	int decile = (int)(10 * (double)p->done / (double)p->total);
	if (decile == r->decile)
		return 0;
	r->decile = decile;
	return 1;
}

static void json_line(espl_ui *ui, const espl_station_event *ev)
{
	if (ev->kind == ESPL_EV_PROGRESS && !json_progress_due(ui, ev))
		return;
	json_t *o = json_object();
	if (!o)
		return;
	json_object_set_new(o, "event", json_string(event_names[ev->kind]));
	json_time(o, ev->time_ms);
	set_str(o, "port", ev->port);
	set_str(o, "unit", ev->unit_uuid);
	set_str(o, "mac", ev->mac);
	set_str(o, "level", ev->level);
	switch (ev->kind) {
	case ESPL_EV_STARTED:
		set_str(o, "batch", ev->message);
		json_object_set_new(o, "count", json_integer(ev->count));
		set_str(o, "recipe", ui->o.recipe);
		set_str(o, "db", ui->o.db_path);
		json_object_del(o, "unit");
		set_str(o, "batch_uuid", ev->unit_uuid);
		break;
	case ESPL_EV_STEP_START:
	case ESPL_EV_STEP_DONE:
		set_str(o, "step", ev->step);
		json_object_set_new(o, "step_number", json_integer(ev->step_number));
		json_object_set_new(o, "steps", json_integer(ev->n_steps));
		if (ev->kind == ESPL_EV_STEP_DONE) {
			set_str(o, "result", result_name(ev->result));
			json_object_set_new(o, "duration_s", json_real(ev->duration_s));
			set_str(o, "error", ev->message);
		}
		break;
	case ESPL_EV_PROGRESS:
		set_str(o, "step", ev->progress->step);
		json_object_set_new(o, "done", json_integer((json_int_t)ev->progress->done));
		json_object_set_new(o, "total", json_integer((json_int_t)ev->progress->total));
		json_object_set_new(o, "rate", json_real(ev->progress->rate));
		break;
	case ESPL_EV_UNIT_DONE:
		set_str(o, "result", result_name(ev->result));
		json_object_set_new(o, "duration_s", json_real(ev->duration_s));
		set_str(o, "error_kind", ev->error_kind && *ev->error_kind ? ev->error_kind : NULL);
		set_str(o, "error", ev->message);
		if (ev->unit && ev->unit->identified) {
			json_object_set_new(o, "chip_id", json_integer(ev->unit->chip.chip_id));
			json_object_set_new(o, "flash_size", json_integer((json_int_t)ev->unit->chip.flash_size));
		}
		break;
	case ESPL_EV_UNIT_RECORDED:
		json_object_set_new(o, "saved", json_boolean(ev->result >= 0));
		json_object_set_new(o, "seq", json_integer(ev->seq));
		json_object_set_new(o, "spooled", json_boolean(ev->spooled));
		set_str(o, "repeat_of", ev->repeat_of);
		set_str(o, "error", ev->message);
		break;
	case ESPL_EV_DB_STATE:
		set_str(o, "state", ev->db_state == ESPL_DBW_OK ? "ok" : ev->db_state == ESPL_DBW_SPOOLING ? "spooling" : "failed");
		set_str(o, "reason", ev->message);
		break;
	case ESPL_EV_STOPPING:
		set_str(o, "mode", ev->stop_level >= ESPL_STOP_ABORT ? "abort" : "graceful");
		set_str(o, "reason", ev->message);
		break;
	default:
		set_str(o, "message", ev->message);
		break;
	}
	json_dumpf(o, ui->out, JSON_COMPACT);
	fputc('\n', ui->out);
	fflush(ui->out);
	json_decref(o);
}

/* ------------------------------------------------------------------ */
/* TABLE                                                                */

static const char *style_for_result(const espl_ui *ui, const char *result)
{
	if (!ui->o.color)
		return "";
	if (strcmp(result, "PASS") == 0)
		return PASS_STYLE;
	if (strcmp(result, "FAIL") == 0)
		return FAIL_STYLE;
	if (*result)
		return WARN_STYLE;
	return "";
}

static void bar_text(const row *r, char *out, size_t len)
{
	char bar[BAR_WIDTH + 1];
	if (!r->has_progress) {
		snprintf(out, len, "%s", "");
		return;
	}
	double frac = r->total ? (double)r->done / (double)r->total : 0.0;
	if (frac > 1.0)
		frac = 1.0;
	int fill = (int)(frac * BAR_WIDTH + 0.5);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	if (r->total && (r->done || r->rate > 0))
		snprintf(out, len, "[%s] %3d%% %6.0f KB/s", bar, (int)(frac * 100.0 + 0.5), r->rate / 1024.0);
	else  /* a chip erase: no bytes to count, show that time passes */
		snprintf(out, len, "[%-*s] %5.1f s", BAR_WIDTH, "working...",
		         (double)(espl__now_ms() - r->step_started_ms) / 1000.0);
}

static void draw_row(espl_ui *ui, const row *r)
{
	char bar[96];
	const char *st = style_for_result(ui, r->result);
	bar_text(r, bar, sizeof bar);
	fprintf(ui->out, "%-26.26s %-12.12s %-18.18s %-41s %-17s %s%-6s%s %4d %4d %s%.60s%s" EOL "\n", r->port,
	        r->state, r->step, bar, r->mac[0] ? r->mac : "-", st,
	        r->result[0] ? (strcmp(r->result, "INTERRUPTED") == 0 ? "INTR" : r->result) : "-",
	        *st ? RESET : "", r->passed, r->failed, ui->o.color && strncmp(r->note, "REPEAT", 6) == 0 ? WARN_STYLE : "",
	        r->note, ui->o.color && strncmp(r->note, "REPEAT", 6) == 0 ? RESET : "");
}

static void draw_totals(espl_ui *ui)
{
	int done = ui->passed + ui->failed;
	double hours = (double)(espl__now_ms() - ui->start_ms) / 3600000.0;
	double uph = hours > 0 ? (double)done / hours : 0.0;
	int64_t secs = (espl__now_ms() - ui->start_ms) / 1000;
	fprintf(ui->out, "%sTOTAL%s  passed %s%d%s  failed %s%d%s  interrupted %d  yield %5.1f%%  %.0f units/hour  "
	        "elapsed %lld:%02lld" EOL "\n",
	        ui->o.color ? BOLD : "", ui->o.color ? RESET : "",
	        ui->o.color ? "\033[1;32m" : "", ui->passed, ui->o.color ? RESET : "",
	        ui->o.color && ui->failed ? "\033[1;31m" : "", ui->failed, ui->o.color && ui->failed ? RESET : "",
	        ui->interrupted, done ? 100.0 * ui->passed / done : 0.0, uph,
	        (long long)(secs / 60), (long long)(secs % 60));
	if (ui->planned)
		fprintf(ui->out, "batch %s: %d of %d units done" EOL "\n", ui->batch, done, ui->planned);
	else
		fprintf(ui->out, "batch %s: %d units done" EOL "\n", ui->batch, done);
}

static void draw(espl_ui *ui)
{
	char clock[16];
	FILE *f = ui->out;

	clock_text(espl_db_now_ms(), clock);
	if (!ui->drawn)
		fputs("\033[?25l\033[2J", f);  /* hide the cursor; clear once, at the first frame */
	ui->drawn = 1;
	fputs(HOME, f);
	fprintf(f, "%sespline station%s  recipe %s  db %s  %s" EOL "\n", ui->o.color ? BOLD : "",
	        ui->o.color ? RESET : "", ui->o.recipe ? ui->o.recipe : "?", ui->o.db_path ? ui->o.db_path : "?", clock);
	if (ui->db_problem[0])
		fprintf(f, "%sDATABASE: %s%s" EOL "\n", ui->o.color ? FAIL_STYLE : "", ui->db_problem, ui->o.color ? RESET : "");
	if (ui->stopping[0])
		fprintf(f, "%sSTOPPING: %s%s" EOL "\n", ui->o.color ? WARN_STYLE : "", ui->stopping, ui->o.color ? RESET : "");
	fprintf(f, "%s%-26s %-12s %-18s %-41s %-17s %-6s %4s %4s %s%s" EOL "\n", ui->o.color ? DIM : "", "PORT",
	        "STATE", "STEP", "PROGRESS", "MAC", "RESULT", "PASS", "FAIL", "NOTE", ui->o.color ? RESET : "");
	for (size_t i = 0; i < ui->n_rows; i++)
		draw_row(ui, &ui->rows[i]);
	fputs(EOL "\n", f);
	draw_totals(ui);
	for (size_t i = 0; i < ui->n_messages; i++)
		fprintf(f, "%s%s%s" EOL "\n", ui->o.color ? DIM : "", ui->messages[i], ui->o.color ? RESET : "");
	fputs(EOS, f);
	fflush(f);
	ui->last_draw_ms = espl__now_ms();
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
	if (opts)
		ui->o = *opts;
	ui->out = ui->o.out ? ui->o.out : stdout;
	int tty = isatty(fileno(ui->out));
	if (ui->o.mode == ESPL_UI_AUTO)
		ui->o.mode = tty ? ESPL_UI_TABLE : ESPL_UI_PLAIN;
	if (ui->o.color < 0) {
		const char *no = getenv("NO_COLOR");
		ui->o.color = tty && !(no && *no) && ui->o.mode != ESPL_UI_JSON;
	}
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

int espl_ui_mode(const espl_ui *ui)
{
	return ui->o.mode;
}

/* The event with every string escaped (util/str.h), for the text modes:
 * names and messages come from operators, files and devices, and must not
 * reach a terminal or a log as control characters.  JSON escapes on its
 * own. */
typedef struct escaped_event {
	espl_station_event ev;
	char port[256], unit_uuid[64], mac[64], step[64], error_kind[128], message[1024], level[32],
		repeat_of[64];
} escaped_event;

static void escape_event(const espl_station_event *in, escaped_event *e)
{
	e->ev = *in;
	e->ev.port = escaped(in->port, e->port, sizeof e->port);
	e->ev.unit_uuid = escaped(in->unit_uuid, e->unit_uuid, sizeof e->unit_uuid);
	e->ev.mac = escaped(in->mac, e->mac, sizeof e->mac);
	e->ev.step = escaped(in->step, e->step, sizeof e->step);
	e->ev.error_kind = escaped(in->error_kind, e->error_kind, sizeof e->error_kind);
	e->ev.message = escaped(in->message, e->message, sizeof e->message);
	e->ev.level = escaped(in->level, e->level, sizeof e->level);
	e->ev.repeat_of = escaped(in->repeat_of, e->repeat_of, sizeof e->repeat_of);
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
		plain_line(ui, ev);
	else if (ui->o.mode == ESPL_UI_JSON)
		json_line(ui, ev);
	else if (ev->kind == ESPL_EV_UNIT_DONE || ev->kind == ESPL_EV_STOPPING)
		draw(ui);  /* a result shows at once, not at the next tick */
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
		draw(ui);
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
		fprintf(f, "  repeats      %d (MACs that had already passed in this batch)\n", ui->repeats);
	fprintf(f, "  yield        %.1f%%\n", done ? 100.0 * ui->passed / done : 0.0);
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
	json_t *o = json_object(), *reasons = json_object();
	int done = ui->passed + ui->failed;
	json_object_set_new(o, "event", json_string("summary"));
	json_time(o, espl_db_now_ms());
	set_str(o, "batch", ui->batch);
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
	if (t) {
		json_object_set_new(o, "elapsed_s", json_real(t->elapsed_s));
		json_object_set_new(o, "recorded", json_integer(t->recorded));
		json_object_set_new(o, "spooled", json_integer(t->spooled));
		json_object_set_new(o, "unsaved", json_integer(t->unsaved));
		set_str(o, "batch_uuid", t->batch_uuid);
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
		draw(ui);
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
