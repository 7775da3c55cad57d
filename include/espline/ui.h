/*
 * ui.h - what the operator (or the MES) sees of a running station.
 *
 * Three views of the same supervisor events (supervisor.h):
 *   TABLE  a live dashboard for a terminal: one row per port (port, state,
 *          step, progress bar with percentage and rate, MAC, last result,
 *          units passed/failed on that port), totals with yield and units per
 *          hour, and the latest messages; redrawn a few times a second by
 *          moving the cursor home and overwriting (never clearing the whole
 *          screen), with PASS and FAIL in bold colour;
 *   PLAIN  one line per event, for logs and pipes (progress is left out);
 *   JSON   one JSON object per line (JSON Lines) for MES integration, every
 *          event with a stable "event" name, progress by tenths.
 * At the end espl_ui_summary prints passed, failed by reason, yield, mean
 * and worst time per unit.
 *
 * The module only writes to the FILE* it is given; it never decides where
 * output goes, never reads input and keeps no global state.
 *
 * Thread safety: espl_ui_event may be called from any number of threads at
 * once (it takes the ui's lock); espl_ui_tick, espl_ui_summary and
 * espl_ui_free from one thread.
 */
#ifndef ESPLINE_UI_H
#define ESPLINE_UI_H

#include <stdio.h>

#include "espline/error.h"
#include "espline/supervisor.h"

typedef struct espl_ui espl_ui;

enum espl_ui_mode {
	ESPL_UI_AUTO = 0,   /* TABLE on a terminal, PLAIN otherwise */
	ESPL_UI_TABLE,
	ESPL_UI_PLAIN,
	ESPL_UI_JSON,
};

typedef struct espl_ui_options {
	FILE *out;              /* NULL: stdout */
	enum espl_ui_mode mode;
	int color;              /* -1: when out is a terminal (the CLI passes 0
	                           when $NO_COLOR is set) */
	int redraw_ms;          /* TABLE: minimum time between frames; 0: 250 */
	const char *recipe;     /* shown in the header */
	const char *db_path;    /* shown in the header and the summary */
	int columns;            /* TABLE: the width to fit (the CLI passes $COLUMNS);
	                           0: the terminal's, asked at every frame, else 80 */
} espl_ui_options;

int espl_ui_new(const espl_ui_options *opts, espl_ui **out, espl_error *err);
/* The mode chosen (AUTO resolved). */
enum espl_ui_mode espl_ui_mode(const espl_ui *ui);
/* Take one event; a supervisor on_event callback can forward here. */
void espl_ui_event(espl_ui *ui, const espl_station_event *ev);
/* Adapter with the supervisor's callback signature (ctx is the espl_ui). */
void espl_ui_on_event(void *ctx, const espl_station_event *ev);
/* TABLE: redraw if the last frame is older than redraw_ms.  Others: nothing. */
void espl_ui_tick(espl_ui *ui);
void espl_ui_on_tick(void *ctx);
/* The last frame (TABLE) and the end-of-run summary. */
void espl_ui_summary(espl_ui *ui, const espl_station_totals *totals);
/* For other views of the same events (web.h): one event as compact JSON,
 * exactly the object the JSON view writes (no progress thinning; the caller
 * thins), and the state so far (counts, failures by reason, one object per
 * port) as one "snapshot" object.  Both malloc'd; NULL when out of memory.
 * espl_ui_event_text only reads the ui's options: any thread; the snapshot
 * takes the ui's lock. */
char *espl_ui_event_text(espl_ui *ui, const espl_station_event *ev);
char *espl_ui_snapshot_text(espl_ui *ui);
void espl_ui_free(espl_ui *ui);

#endif /* ESPLINE_UI_H */
