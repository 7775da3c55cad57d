/*
 * ui_int.h - what the operator interface's files share (internal to
 * src/station, not installed; private names start with espl__ui_).
 *
 *   ui.c        the state kept from the events, helpers, the public calls
 *   ui_plain.c  one line per event (PLAIN)
 *   ui_json.c   one JSON object per event (JSON), the web view's text
 *   ui_table.c  the live table redrawn in place (TABLE)
 *
 * Thread-safety: as ui.h; the ui's lock is held by the caller of every
 * function here.
 */
#ifndef ESPLINE_STATION_UI_INT_H
#define ESPLINE_STATION_UI_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "espline/ui.h"

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

/* A port's state in the views (the JSON "state" text: espl__ui_state_name),
 * set by the event that causes it (espl__ui_events). */
enum row_state {
	ROW_UNCHANGED = 0,     /* in espl__ui_events: the event leaves it */
	ROW_IDLE,              /* "idle": seen, no event yet */
	ROW_READY,             /* "ready": its worker started */
	ROW_WAITING,           /* "waiting": for a unit */
	ROW_PROGRAMMING,       /* "programming" */
	ROW_DONE,              /* "done": the unit ended */
	ROW_REMOVE_UNIT,       /* "remove unit": waits for the unit to be taken out */
	ROW_REMOVED,           /* "removed": it was taken out */
	ROW_UNPLUGGED,         /* "unplugged": the adapter went away */
	ROW_FINISHED,          /* "finished": its worker ended */
	ROW_SCAN,              /* "scan code": the unit waits for its scanned code */
	ROW_PAUSED,            /* "paused": the operator paused or stopped the slot */
};

/* What the views know of each event kind: adding a kind means adding its
 * line to the table in ui.c; the views' switches fall back on it. */
typedef struct ui_event {
	const char *name;      /* JSON "event" */
	const char *phrase;    /* the plain view's words: "PORT: phrase[: message]" */
	enum row_state state;  /* the port's state after it */
} ui_event;
extern const ui_event espl__ui_events[ESPL_EV_COUNT];

typedef struct row {
	char port[128];
	char slot[40];         /* the station file's slot name, "" if none */
	enum row_state state;
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
	bool planned_passed;      /* planned counts PASS units only (--count-passed) */
	char messages[N_MESSAGES][200];
	size_t n_messages;
	char stopping[256];
	char db_problem[256];
	int64_t start_ms, last_draw_ms;
	int drawn;
	int any_slot;             /* a row has a slot name: the table shows SLOT */
	int labels_queued;        /* -1: no labels; else labels not printed yet */
};

/* ui.c */
const char *espl__ui_state_name(enum row_state state);
void espl__ui_clock_text(int64_t ms, char out[16]);
const char *espl__ui_result_name(enum espl_db_result result);
row *espl__ui_find_row(espl_ui *ui, const char *port);

/* ui_plain.c */
void espl__ui_plain_line(espl_ui *ui, const espl_station_event *ev);

/* ui_json.c */
void espl__ui_set_str(json_t *o, const char *key, const char *value);
void espl__ui_json_time(json_t *o, int64_t ms);
void espl__ui_json_line(espl_ui *ui, const espl_station_event *ev);
/* The counts (passed, failed, by reason, yield, times) as a JSON object
 * whose "event" is event. */
json_t *espl__ui_counts_json(const espl_ui *ui, const char *event);

/* ui_table.c */
void espl__ui_draw(espl_ui *ui);

#endif /* ESPLINE_STATION_UI_INT_H */
