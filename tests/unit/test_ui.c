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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_from_the_event),
		cmocka_unit_test(test_every_kind_is_shown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
