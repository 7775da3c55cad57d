/* test_ui.c - station/ui*.c without a station: the row state each event
 * sets (from the event, never from its message's words) and what every
 * view makes of an event kind it has no special case for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "espline/ui.h"

static espl_ui *new_ui(enum espl_ui_mode mode, FILE *out)
{
	espl_ui_options o = { .out = out, .mode = mode, .color = 0, .recipe = "r.yaml", .db_path = "x.sqlite" };
	espl_ui *ui;
	espl_error err;
	assert_int_equal(espl_ui_new(&o, &ui, &err), ESPL_OK);
	return ui;
}

static void send(espl_ui *ui, enum espl_station_event_kind kind, const char *port, const char *message,
		 bool unplugged)
{
	espl_station_event ev = { .kind = kind, .port = port, .level = "info", .message = message,
				  .unplugged = unplugged, .mac = "5c:cf:7f:00:00:01", .time_ms = 1 };
	espl_ui_event(ui, &ev);
}

/* The state of port's row in the snapshot ("" when absent). */
static void state_of(espl_ui *ui, const char *port, char *out, size_t cap)
{
	char *snap = espl_ui_snapshot_text(ui), key[160];
	assert_non_null(snap);
	snprintf(key, sizeof key, "\"port\":\"%s\",\"state\":\"", port);
	const char *at = strstr(snap, key);
	out[0] = '\0';
	if (at) {
		at += strlen(key);
		size_t n = strcspn(at, "\"");
		snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), at);
	}
	free(snap);
}

static void test_state_from_the_event(void **state)
{
	(void)state;
	FILE *out = tmpfile();
	espl_ui *ui = new_ui(ESPL_UI_PLAIN, out);
	char st[32];

	send(ui, ESPL_EV_PORT_ADDED, "/dev/a", NULL, false);
	state_of(ui, "/dev/a", st, sizeof st);
	assert_string_equal(st, "ready");
	send(ui, ESPL_EV_IDENTIFIED, "/dev/a", NULL, false);
	state_of(ui, "/dev/a", st, sizeof st);
	assert_string_equal(st, "programming");
	send(ui, ESPL_EV_REMOVE_WAIT, "/dev/a", NULL, false);
	state_of(ui, "/dev/a", st, sizeof st);
	assert_string_equal(st, "remove unit");
	send(ui, ESPL_EV_UNIT_REMOVED, "/dev/a", NULL, false);
	state_of(ui, "/dev/a", st, sizeof st);
	assert_string_equal(st, "removed");

	/* the flag decides, whatever the message says */
	send(ui, ESPL_EV_PORT_REMOVED, "/dev/a", "gone without a word", true);
	state_of(ui, "/dev/a", st, sizeof st);
	assert_string_equal(st, "unplugged");
	send(ui, ESPL_EV_PORT_ADDED, "/dev/b", NULL, false);
	send(ui, ESPL_EV_PORT_REMOVED, "/dev/b", "a message that says unplugged", false);
	state_of(ui, "/dev/b", st, sizeof st);
	assert_string_equal(st, "finished");

	/* a log line leaves the state alone */
	send(ui, ESPL_EV_PORT_ADDED, "/dev/c", NULL, false);
	send(ui, ESPL_EV_LOG, "/dev/c", "unplugged", false);
	state_of(ui, "/dev/c", st, sizeof st);
	assert_string_equal(st, "ready");
	espl_ui_free(ui);
	fclose(out);
}

/* Every kind has a JSON name and a plain line: a new kind that only got
 * its line in ui.c's table still shows in both views. */
static void test_every_kind_is_shown(void **state)
{
	(void)state;
	for (int k = 0; k < ESPL_EV_COUNT; k++) {
		if (k == ESPL_EV_PROGRESS)
			continue;  /* needs a progress struct; shown by the table only */
		espl_ui *ui = new_ui(ESPL_UI_JSON, NULL);
		espl_station_event ev = { .kind = (enum espl_station_event_kind)k, .port = "/dev/x",
					  .level = "warn", .message = "m" };
		char *text = espl_ui_event_text(ui, &ev);
		assert_non_null(text);
		assert_non_null(strstr(text, "\"event\":\""));
		assert_null(strstr(text, "\"event\":null"));
		free(text);
		espl_ui_free(ui);

		char *buf = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);
		ui = new_ui(ESPL_UI_PLAIN, out);
		espl_ui_event(ui, &ev);
		espl_ui_free(ui);
		fclose(out);
		if (k != ESPL_EV_UNIT_RECORDED) {  /* said only for repeats and errors */
			assert_true(len > 0);
			assert_null(strstr(buf, "(null)"));
		}
		free(buf);
	}
}

/* UNIT_RECORDED says whether the record was kept (it once rode on the
 * result field as a negative code, which an enum cannot hold). */
static void test_recorded_saved(void **state)
{
	(void)state;
	espl_ui *ui = new_ui(ESPL_UI_JSON, NULL);
	espl_station_event ev = { .kind = ESPL_EV_UNIT_RECORDED, .unit_uuid = "u1", .level = "error",
	                          .saved = false, .message = "disk full" };
	char *text = espl_ui_event_text(ui, &ev);
	assert_non_null(strstr(text, "\"saved\":false"));
	free(text);
	ev.saved = true;
	ev.message = NULL;
	text = espl_ui_event_text(ui, &ev);
	assert_non_null(strstr(text, "\"saved\":true"));
	free(text);
	espl_ui_free(ui);
}

/* The longest line of a TABLE frame in visible columns (escape sequences
 * skipped, UTF-8 counted by code point), and the header line's text. */
static int widest_line(const char *out, char *header, size_t cap)
{
	int widest = 0, w = 0;
	char line[1024];
	size_t n = 0;
	header[0] = '\0';
	for (const char *p = out;; p++) {
		if (*p == '\033') {
			if (p[1] == '[')
				for (p += 2; *p && !(*p >= 0x40 && *p <= 0x7E); p++)
					;
			if (!*p)
				break;
			continue;
		}
		if (*p == '\n' || !*p) {
			line[n] = '\0';
			if (strncmp(line, "PORT", 4) == 0 || strncmp(line, "SLOT", 4) == 0)
				snprintf(header, cap, "%.200s", line);
			widest = w > widest ? w : widest;
			w = 0;
			n = 0;
			if (!*p)
				break;
			continue;
		}
		if (((unsigned char)*p & 0xC0) != 0x80)
			w++;
		if (n + 1 < sizeof line)
			line[n++] = *p;
	}
	return widest;
}

/* A busy frame at a given width: long port names, a failure with a long
 * reason, a unit in progress.  Returns the widest line; header gets the
 * column heads. */
static int frame_at(int columns, char *header, size_t cap)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	espl_ui_options o = { .out = out, .mode = ESPL_UI_TABLE, .color = 1, .recipe = "recipes/a-long-recipe-name.yaml",
	                      .db_path = "/var/lib/espline/a/rather/long/path/espline.sqlite", .columns = columns };
	espl_ui *ui;
	espl_error err;
	assert_int_equal(espl_ui_new(&o, &ui, &err), ESPL_OK);
	espl_progress pr = { .step = "write", .done = 300000, .total = 1000000, .rate = 90000 };
	const char *ports[] = { "/dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0", "/dev/ttyUSB1" };
	for (int i = 0; i < 2; i++) {
		send(ui, ESPL_EV_PORT_ADDED, ports[i], NULL, false);
		send(ui, ESPL_EV_IDENTIFIED, ports[i], NULL, false);
		espl_station_event st = { .kind = ESPL_EV_STEP_START, .port = ports[i], .step = "write",
		                          .step_number = 2, .n_steps = 4 };
		espl_ui_event(ui, &st);
		espl_station_event pe = { .kind = ESPL_EV_PROGRESS, .port = ports[i], .progress = &pr };
		espl_ui_event(ui, &pe);
	}
	espl_station_event done = { .kind = ESPL_EV_UNIT_DONE, .port = ports[1], .result = ESPL_DB_FAIL,
	                            .error_kind = "verify: MD5 mismatch in the region written at 0x10000",
	                            .message = "step 3 (verify): MD5 mismatch at 0x10000: the module's flash "
	                                       "does not keep what is written; reject the module", .duration_s = 4 };
	espl_ui_event(ui, &done);  /* draws a frame at once */
	espl_ui_free(ui);
	fclose(out);
	int widest = widest_line(buf, header, cap);
	free(buf);
	return widest;
}

static void test_table_fits_the_width(void **state)
{
	(void)state;
	char head[512];
	/* wide: every column */
	assert_true(frame_at(250, head, sizeof head) < 250);
	for (const char *h = "PORT STATE STEP PROGRESS MAC RESULT PASS FAIL NOTE"; *h;) {
		char word[16];
		size_t n = strcspn(h, " ");
		snprintf(word, sizeof word, "%.*s", (int)n, h);
		assert_non_null(strstr(head, word));
		h += n + (h[n] == ' ');
	}
	/* 120: the per-port counts and the step go first */
	assert_true(frame_at(120, head, sizeof head) <= 119);
	assert_null(strstr(head, "PASS"));
	assert_null(strstr(head, "STEP"));
	assert_non_null(strstr(head, "PROGRESS"));
	assert_non_null(strstr(head, "MAC"));
	/* 80: the bar narrows to a percentage, the MAC stays */
	assert_true(frame_at(80, head, sizeof head) <= 79);
	assert_non_null(strstr(head, "MAC"));
	assert_non_null(strstr(head, "RESULT"));
	/* 60: the MAC goes; port, state and result stay */
	assert_true(frame_at(60, head, sizeof head) <= 59);
	assert_null(strstr(head, "MAC"));
	assert_non_null(strstr(head, "PORT"));
	assert_non_null(strstr(head, "STATE"));
	assert_non_null(strstr(head, "RESULT"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_from_the_event),
		cmocka_unit_test(test_every_kind_is_shown),
		cmocka_unit_test(test_table_fits_the_width),
		cmocka_unit_test(test_recorded_saved),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
