/* ui_plain.c - the PLAIN operator interface: one line per event; see
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
/* PLAIN                                                                */

void espl__ui_plain_line(espl_ui *ui, const espl_station_event *ev)
{
	FILE *f = ui->out;
	char clock[16];
	char named[320];
	const char *port = ev->port ? ev->port : "station";
	if (ev->port && ev->slot) {  /* "A1 /dev/ttyUSB0" */
		snprintf(named, sizeof named, "%s %s", ev->slot, ev->port);
		port = named;
	}

	espl__ui_clock_text(ev->time_ms, clock);
	switch (ev->kind) {
	case ESPL_EV_STARTED:
		fprintf(f, "%s %s: batch %s started (%s%d units%s), operator %s, recipe %s, database %s\n", clock, port,
		        ev->message ? ev->message : "", ev->count ? "" : "open-ended, ", ev->count,
		        ev->count_passed ? " that pass" : "",
		        ev->operator_name ? ev->operator_name : "-", ui->o.recipe ? ui->o.recipe : "?",
		        ui->o.db_path ? ui->o.db_path : "?");
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
		fprintf(f, "%s %s: %s %s in %.1f s%s%s\n", clock, port, espl__ui_result_name(ev->result),
		        ev->mac ? ev->mac : "(no MAC)", ev->duration_s, ev->message ? ": " : "",
		        ev->message ? ev->message : "");
		break;
	case ESPL_EV_UNIT_RECORDED:
		if (ev->repeat_of || ev->message)
			fprintf(f, "%s %s: unit %s %s\n", clock, port, ev->unit_uuid ? ev->unit_uuid : "",
			        ev->message ? ev->message : "REPEAT: this MAC had already passed (this batch or an earlier one)");
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
	case ESPL_EV_SCAN_WAIT:
		fprintf(f, "%s %s: unit %s waits: %s\n", clock, port, ev->mac ? ev->mac : "", ev->message ? ev->message : "");
		break;
	case ESPL_EV_SCANNED:
		fprintf(f, "%s %s: scanned %s\n", clock, port, ev->message ? ev->message : "");
		break;
	case ESPL_EV_LABELS:
		if (!ev->message)
			return;  /* the count alone: the dashboard's, not a line */
		fprintf(f, "%s %s: %s: %s\n", clock, port, ev->level ? ev->level : "info", ev->message);
		break;
	case ESPL_EV_PROGRESS:
		return;
	default:  /* the event's phrase (ui.c's table), and its message */
		fprintf(f, "%s %s: %s%s%s\n", clock, port, espl__ui_events[ev->kind].phrase ? espl__ui_events[ev->kind].phrase : espl__ui_events[ev->kind].name,
		        ev->message ? ": " : "",
		        ev->message ? ev->message : "");
		break;
	}
	fflush(f);
}
