/* reset.c - DTR/RTS reset sequences; see include/espline/reset.h. */
#include "espline/reset.h"
#include "util/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int espl_reset_mode_parse(const char *s, enum espl_reset_mode *mode, espl_error *err)
{
	if (strcmp(s, "auto") == 0 || strcmp(s, "default_reset") == 0) {
		*mode = ESPL_RESET_AUTO;
		return 0;
	}
	if (strcmp(s, "none") == 0 || strcmp(s, "no_reset") == 0 || strcmp(s, "no-reset") == 0) {
		*mode = ESPL_RESET_NONE;
		return 0;
	}
	return espl_fail(err, ESPL_EARG, "unknown reset mode '%s' (use auto or none)", s);
}

const char *espl_reset_mode_name(enum espl_reset_mode mode)
{
	return mode == ESPL_RESET_NONE ? "none" : "auto";
}

/* Explain a modem-line failure in operator terms. */
static int lines_failed(espl_port *p, espl_error *err)
{
	char why[ESPL_ERROR_MAX];
	if (!err)
		return ESPL_ESYS;
	snprintf(why, sizeof why, "%s", err->msg);
	if (err->code == ESPL_EUNSUPPORTED)
		return espl_fail(err, ESPL_EUNSUPPORTED, "auto-reset impossible: %s. If the jig puts the "
				 "chip in download mode itself (GPIO0 held low at reset), use --reset none",
				 why);
	return espl_fail(err, err->code, "resetting the chip through %s: %s", p->name, why);
}

static int set(espl_port *p, int dtr, int rts, espl_error *err)
{
	if (espl_port_set_lines(p, dtr, rts, err) < 0)
		return lines_failed(p, err);
	return 0;
}

int espl_reset_to_bootloader(espl_port *p, unsigned delay_ms, espl_error *err)
{
	/* EN low (RTS asserted), GPIO0 high (DTR released). */
	ESPL_TRY(set(p, ESPL_LINE_RELEASE, ESPL_LINE_ASSERT, err));
	espl__sleep_ms(ESPL_RESET_HOLD_MS);
	/* GPIO0 low, EN released: the chip boots and samples GPIO0 low. */
	ESPL_TRY(set(p, ESPL_LINE_ASSERT, ESPL_LINE_RELEASE, err));
	espl__sleep_ms(delay_ms);
	/* Release GPIO0 so the line is free for the boot log / UART. */
	ESPL_TRY(set(p, ESPL_LINE_RELEASE, ESPL_LINE_RELEASE, err));
	return 0;
}

int espl_reset_to_app(espl_port *p, espl_error *err)
{
	ESPL_TRY(set(p, ESPL_LINE_RELEASE, ESPL_LINE_ASSERT, err));
	espl__sleep_ms(ESPL_RESET_HOLD_MS);
	ESPL_TRY(set(p, ESPL_LINE_RELEASE, ESPL_LINE_RELEASE, err));
	return 0;
}
