/* ui_table.c - the TABLE operator interface: a live table redrawn in
 * place; see include/espline/ui.h. */
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
	if (ui->any_slot)
		fprintf(ui->out, "%-6.6s ", r->slot[0] ? r->slot : "-");
	fprintf(ui->out, "%-26.26s %-12.12s %-18.18s %-41s %-17s %s%-6s%s %4d %4d %s%.60s%s" EOL "\n", r->port,
	        espl__ui_state_name(r->state), r->step, bar, r->mac[0] ? r->mac : "-", st,
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

void espl__ui_draw(espl_ui *ui)
{
	char clock[16];
	FILE *f = ui->out;

	espl__ui_clock_text(espl_db_now_ms(), clock);
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
	if (ui->any_slot)
		fprintf(f, "%s%-6s %s", ui->o.color ? DIM : "", "SLOT", ui->o.color ? RESET : "");
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
