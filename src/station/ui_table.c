/* ui_table.c - the TABLE operator interface: a live table redrawn in
 * place; see include/espline/ui.h. */
#include "espline/ui.h"
#include "station/ui_int.h"
#include "util/clock.h"
#include "util/str.h"
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "espline/db.h"
#include "espline/dbwriter.h"
#include "espline/report.h"

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

/* The progress column: a bar with the percentage and rate (wide), or the
 * percentage alone (narrow). */
static void bar_text(const row *r, bool narrow, char *out, size_t len)
{
	char bar[BAR_WIDTH + 1];
	if (!r->has_progress) {
		snprintf(out, len, "%s", "");
		return;
	}
	double frac = r->total ? (double)r->done / (double)r->total : 0.0;
	if (frac > 1.0)
		frac = 1.0;
	double secs = (double)(espl__now_ms() - r->step_started_ms) / 1000.0;
	bool counting = r->total && (r->done || r->rate > 0);
	if (narrow) {
		if (counting)
			snprintf(out, len, "%3d%%", (int)(frac * 100.0 + 0.5));
		else
			snprintf(out, len, "%3.0fs", secs);
		return;
	}
	int fill = (int)(frac * BAR_WIDTH + 0.5);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	if (counting)
		snprintf(out, len, "[%s] %3d%% %6.0f KB/s", bar, (int)(frac * 100.0 + 0.5), r->rate / 1024.0);
	else  /* a chip erase: no bytes to count, show that time passes */
		snprintf(out, len, "[%-*s] %5.1f s", BAR_WIDTH, "working...", secs);
}

/* ---- fitting the terminal's width ----------------------------------- */

enum col { C_SLOT, C_PORT, C_STATE, C_STEP, C_PROGRESS, C_MAC, C_RESULT, C_PASS, C_FAIL, C_NOTE, N_COLS };

static const struct {
	const char *head;
	int width;          /* 0: the rest of the line (NOTE) */
	bool right;
} cols[N_COLS] = {
	[C_SLOT] = { "SLOT", 6, false }, [C_PORT] = { "PORT", 26, false },
	[C_STATE] = { "STATE", 12, false }, [C_STEP] = { "STEP", 18, false },
	[C_PROGRESS] = { "PROGRESS", 41, false }, [C_MAC] = { "MAC", 17, false },
	[C_RESULT] = { "RESULT", 6, false }, [C_PASS] = { "PASS", 4, true },
	[C_FAIL] = { "FAIL", 4, true }, [C_NOTE] = { "NOTE", 0, false },
};
#define NARROW_PROGRESS 4
#define MIN_PORT 12
#define MIN_NOTE 8    /* NOTE is shown when at least this much is left */

/* Which columns a frame shows, and how wide. */
typedef struct layout {
	int width[N_COLS];      /* 0: not shown (NOTE: the rest, -1 not shown) */
	int columns;            /* the terminal's width */
} layout;

static int line_width(const layout *l)
{
	int w = 0;
	for (int c = 0; c < N_COLS; c++)
		if (c != C_NOTE && l->width[c] > 0)
			w += l->width[c] + 1;
	return w;
}

/* The terminal's width: the option, else the terminal's own, else 80.
 * Asked at every frame, so a resized window is followed. */
static int terminal_columns(const espl_ui *ui)
{
	struct winsize ws;
	if (ui->o.columns > 0)
		return ui->o.columns;
	if (ioctl(fileno(ui->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Give up the least important things first until a row fits: the per-port
 * counts, the step, the long progress bar, the MAC, then PORT's width.
 * PORT, STATE and RESULT (and SLOT when slots are named) always stay;
 * NOTE gets what is left.  One column is kept free: a line that fills the
 * last column can wrap on some terminals. */
static void fit(const espl_ui *ui, layout *l)
{
	l->columns = terminal_columns(ui);
	int room = l->columns - 1;
	for (int c = 0; c < N_COLS; c++)
		l->width[c] = cols[c].width;
	if (!ui->any_slot)
		l->width[C_SLOT] = 0;
	static const enum col drops[] = { C_PASS, C_FAIL, C_STEP, C_PROGRESS, C_MAC };
	for (size_t i = 0; i < sizeof drops / sizeof *drops && line_width(l) + MIN_NOTE > room; i++)
		l->width[drops[i]] = drops[i] == C_PROGRESS ? NARROW_PROGRESS : 0;
	int over = line_width(l) + MIN_NOTE - room;
	if (over > 0)
		l->width[C_PORT] = l->width[C_PORT] - over > MIN_PORT ? l->width[C_PORT] - over : MIN_PORT;
	int rest = room - line_width(l);
	l->width[C_NOTE] = rest > 0 ? rest : -1;
}

/* Write s (which may hold escape sequences) cut to the frame's width,
 * then erase to the end of the line.  Columns are counted by code point:
 * the escaped texts are ASCII and UTF-8. */
static void put_line(espl_ui *ui, const layout *l, const char *s)
{
	int shown = 0, room = l->columns - 1;
	bool styled = false;
	const char *p = s;
	while (*p) {
		if (*p == '\033') {  /* CSI: ESC [ parameters final-byte */
			const char *q = p + 1;
			if (*q == '[')
				for (q++; *q && !(*q >= 0x40 && *q <= 0x7E); q++)
					;
			if (*q)
				q++;
			styled = !(q - p == 4 && strncmp(p, RESET, 4) == 0);
			fwrite(p, 1, (size_t)(q - p), ui->out);
			p = q;
			continue;
		}
		if (((unsigned char)*p & 0xC0) != 0x80 && shown++ >= room)
			break;
		fputc(*p++, ui->out);
	}
	while (*p && ((unsigned char)*p & 0xC0) == 0x80)  /* finish a cut code point */
		fputc(*p++, ui->out);
	fputs(styled && ui->o.color ? RESET EOL "\n" : EOL "\n", ui->out);
}

/* Append one cell (cut to its width and padded; NOTE only cut) and its
 * separator; a column the layout hides adds nothing. */
static size_t cell(char *buf, size_t at, size_t cap, const layout *l, enum col c, const char *text,
		   const char *style, const char *unstyle)
{
	int w = l->width[c], n;
	if (w <= 0 || at + 1 >= cap)
		return at;
	if (c == C_NOTE)
		n = snprintf(buf + at, cap - at, "%s%.*s%s", style, w, text, unstyle);
	else if (cols[c].right)
		n = snprintf(buf + at, cap - at, "%s%*.*s%s ", style, w, w, text, unstyle);
	else
		n = snprintf(buf + at, cap - at, "%s%-*.*s%s ", style, w, w, text, unstyle);
	if (n < 0)
		return at;
	return at + (size_t)n < cap ? at + (size_t)n : cap - 1;
}

static void draw_header(espl_ui *ui, const layout *l)
{
	char buf[512];
	size_t at = (size_t)snprintf(buf, sizeof buf, "%s", ui->o.color ? DIM : "");
	for (int c = 0; c < N_COLS; c++)
		at = cell(buf, at, sizeof buf, l, (enum col)c, cols[c].head, "", "");
	snprintf(buf + at, sizeof buf - at, "%s", ui->o.color ? RESET : "");
	put_line(ui, l, buf);
}

static void draw_row(espl_ui *ui, const layout *l, const row *r)
{
	char bar[96], buf[1024], passed[16], failed[16];
	const char *st = style_for_result(ui, r->result);
	const char *result = r->result[0] ? (strcmp(r->result, "INTERRUPTED") == 0 ? "INTR" : r->result) : "-";
	bool repeat = ui->o.color && strncmp(r->note, "REPEAT", 6) == 0;
	size_t at = 0;

	buf[0] = '\0';
	bar_text(r, l->width[C_PROGRESS] == NARROW_PROGRESS, bar, sizeof bar);
	snprintf(passed, sizeof passed, "%d", r->passed);
	snprintf(failed, sizeof failed, "%d", r->failed);
	at = cell(buf, at, sizeof buf, l, C_SLOT, r->slot[0] ? r->slot : "-", "", "");
	at = cell(buf, at, sizeof buf, l, C_PORT, r->port, "", "");
	at = cell(buf, at, sizeof buf, l, C_STATE, espl__ui_state_name(r->state), "", "");
	at = cell(buf, at, sizeof buf, l, C_STEP, r->step, "", "");
	at = cell(buf, at, sizeof buf, l, C_PROGRESS, bar, "", "");
	at = cell(buf, at, sizeof buf, l, C_MAC, r->mac[0] ? r->mac : "-", "", "");
	at = cell(buf, at, sizeof buf, l, C_RESULT, result, st, *st ? RESET : "");
	at = cell(buf, at, sizeof buf, l, C_PASS, passed, "", "");
	at = cell(buf, at, sizeof buf, l, C_FAIL, failed, "", "");
	cell(buf, at, sizeof buf, l, C_NOTE, r->note, repeat ? WARN_STYLE : "", repeat ? RESET : "");
	put_line(ui, l, buf);
}

static void draw_totals(espl_ui *ui, const layout *l)
{
	char buf[512];
	int done = ui->passed + ui->failed;
	double hours = (double)(espl__now_ms() - ui->start_ms) / 3600000.0;
	double uph = hours > 0 ? (double)done / hours : 0.0;
	int64_t secs = (espl__now_ms() - ui->start_ms) / 1000;
	snprintf(buf, sizeof buf, "%sTOTAL%s  passed %s%d%s  failed %s%d%s  interrupted %d  yield %5.1f%%  "
	         "%.0f units/hour  elapsed %lld:%02lld",
	         ui->o.color ? BOLD : "", ui->o.color ? RESET : "",
	         ui->o.color ? "\033[1;32m" : "", ui->passed, ui->o.color ? RESET : "",
	         ui->o.color && ui->failed ? "\033[1;31m" : "", ui->failed, ui->o.color && ui->failed ? RESET : "",
	         ui->interrupted, done ? 100.0 * ui->passed / done : 0.0, uph,
	         (long long)(secs / 60), (long long)(secs % 60));
	put_line(ui, l, buf);
	char labels[64] = "";
	if (ui->labels_queued >= 0)  /* labels are printed: how many wait for the printer */
		snprintf(labels, sizeof labels, "  labels queued %d%s", ui->labels_queued,
		         ui->labels_queued ? " (printer not taking them)" : "");
	if (ui->planned && ui->planned_passed)
		snprintf(buf, sizeof buf, "batch %s: %d of %d units passed (%d done)%s", ui->batch, ui->passed,
		         ui->planned, done, labels);
	else if (ui->planned)
		snprintf(buf, sizeof buf, "batch %s: %d of %d units done%s", ui->batch, done, ui->planned, labels);
	else
		snprintf(buf, sizeof buf, "batch %s: %d units done%s", ui->batch, done, labels);
	put_line(ui, l, buf);
}

/* A line in a style (when colours are on). */
static void styled_line(espl_ui *ui, const layout *l, const char *style, const char *label, const char *text)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s%s%s%s", ui->o.color ? style : "", label, text, ui->o.color ? RESET : "");
	put_line(ui, l, buf);
}

void espl__ui_draw(espl_ui *ui)
{
	char clock[16], buf[1024];
	FILE *f = ui->out;
	layout l;

	fit(ui, &l);
	espl__ui_clock_text(espl_db_now_ms(), clock);
	if (!ui->drawn)
		fputs("\033[?25l\033[2J", f);  /* hide the cursor; clear once, at the first frame */
	ui->drawn = 1;
	fputs(HOME, f);
	snprintf(buf, sizeof buf, "%sespline station%s  recipe %s  db %s  %s", ui->o.color ? BOLD : "",
	         ui->o.color ? RESET : "", ui->o.recipe ? ui->o.recipe : "?", ui->o.db_path ? ui->o.db_path : "?",
	         clock);
	put_line(ui, &l, buf);
	if (ui->db_problem[0])
		styled_line(ui, &l, FAIL_STYLE, "DATABASE: ", ui->db_problem);
	if (ui->stopping[0])
		styled_line(ui, &l, WARN_STYLE, "STOPPING: ", ui->stopping);
	draw_header(ui, &l);
	for (size_t i = 0; i < ui->n_rows; i++)
		draw_row(ui, &l, &ui->rows[i]);
	put_line(ui, &l, "");
	draw_totals(ui, &l);
	for (size_t i = 0; i < ui->n_messages; i++)
		styled_line(ui, &l, DIM, "", ui->messages[i]);
	fputs(EOS, f);
	fflush(f);
	ui->last_draw_ms = espl__now_ms();
}
