/* boot.c - watch a boot from flash and judge it; see include/espline/boot.h. */
#include "espline/boot.h"
#include "util/clock.h"
#include "util/str.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Texts the ROM and the SDK print; docs/boot-model.md names their sources. */
#define ROM_BANNER "ets Jan  8 2013,rst cause:"
#define ROM_LOAD "load 0x"
#define ROM_ZERO_HEADER "load 0x00000000, len 0,"
#define ROM_CSUM "csum 0x"
#define ROM_CSUM_ERR "csum err"
#define ROM_HALT "ets_main.c"

const char *const espl_boot_builtin_rejects[] = { "rf_cal", "csum err", "Fatal exception", "wdt reset", NULL };
#define N_BUILTIN 4

struct espl_boot_rules {
	size_t n_expect, n_reject;
	regex_t expect[ESPL_BOOT_MAX_PATTERNS];
	regex_t reject[ESPL_BOOT_MAX_PATTERNS + N_BUILTIN];
	char *expect_src[ESPL_BOOT_MAX_PATTERNS];
	char *reject_src[ESPL_BOOT_MAX_PATTERNS + N_BUILTIN];
};

/* ------------------------------------------------------------------ */
/* rules                                                                */

static int compile(regex_t *re, char **src, const char *pattern, const char *what, size_t index,
                   espl_error *err)
{
	int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[160], shown[128];
		regerror(rc, re, why, sizeof why);
		return espl_fail(err, ESPL_EARG, "%s[%zu] \"%s\" is not a valid regular expression: %s", what,
		                 index + 1, espl__str_escape(pattern, shown, sizeof shown), why);
	}
	*src = strdup(pattern);
	if (!*src) {
		regfree(re);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	return ESPL_OK;
}

int espl_boot_rules_new(const char *const *expect, size_t n_expect, const char *const *reject,
                        size_t n_reject, espl_boot_rules **out, espl_error *err)
{
	*out = NULL;
	if (n_expect > ESPL_BOOT_MAX_PATTERNS || n_reject > ESPL_BOOT_MAX_PATTERNS)
		return espl_fail(err, ESPL_EARG, "at most %d expect and %d reject patterns", ESPL_BOOT_MAX_PATTERNS,
		                 ESPL_BOOT_MAX_PATTERNS);
	espl_boot_rules *r = calloc(1, sizeof *r);
	if (!r)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	int rc = ESPL_OK;
	for (size_t i = 0; i < n_expect && rc == ESPL_OK; i++)
		if ((rc = compile(&r->expect[i], &r->expect_src[i], expect[i], "expect", i, err)) == ESPL_OK)
			r->n_expect++;
	for (size_t i = 0; i < N_BUILTIN && rc == ESPL_OK; i++)
		if ((rc = compile(&r->reject[i], &r->reject_src[i], espl_boot_builtin_rejects[i], "reject", i, err)) == ESPL_OK)
			r->n_reject++;
	for (size_t i = 0; i < n_reject && rc == ESPL_OK; i++)
		if ((rc = compile(&r->reject[r->n_reject], &r->reject_src[r->n_reject], reject[i], "reject", i, err)) == ESPL_OK)
			r->n_reject++;
	if (rc < 0) {
		espl_boot_rules_free(r);
		return rc;
	}
	*out = r;
	return ESPL_OK;
}

void espl_boot_rules_free(espl_boot_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_expect; i++) {
		regfree(&r->expect[i]);
		free(r->expect_src[i]);
	}
	for (size_t i = 0; i < r->n_reject; i++) {
		regfree(&r->reject[i]);
		free(r->reject_src[i]);
	}
	free(r);
}

const char *espl_boot_verdict_name(enum espl_boot_verdict v)
{
	switch (v) {
	case ESPL_BOOT_OK: return "booted";
	case ESPL_BOOT_NO_BANNER: return "no ROM banner";
	case ESPL_BOOT_DOWNLOAD_MODE: return "started in download mode";
	case ESPL_BOOT_IMAGE_REJECTED: return "image rejected by the ROM";
	case ESPL_BOOT_LOOP: return "boot loop";
	case ESPL_BOOT_REJECTED_TEXT: return "reject pattern matched";
	case ESPL_BOOT_EXPECT_MISSING: return "expected text not seen";
	default: return "pending";
	}
}

/* ------------------------------------------------------------------ */
/* judging the text                                                     */

/* boards.rst, "rst cause" table. */
static const char *cause_name(int cause)
{
	switch (cause) {
	case 1: return "power-on";
	case 2: return "external reset";
	case 3: return "software reset";
	case 4: return "watchdog";
	default: return "unknown";
	}
}

typedef struct judge_state {
	const espl_boot_rules *r;
	espl_boot_judgement *j;
	size_t next_expect;
	unsigned loads, zero_headers, csums;  /* in the current boot */
	char last[3][128];                    /* the last non-empty lines, for "seen instead" */
} judge_state;

static void decide(judge_state *s, enum espl_boot_verdict v, const char *fmt, ...) ESPL_PRINTF(3, 4);
static void decide(judge_state *s, enum espl_boot_verdict v, const char *fmt, ...)
{
	va_list ap;
	if (s->j->verdict != ESPL_BOOT_PENDING)
		return;
	s->j->verdict = v;
	va_start(ap, fmt);
	vsnprintf(s->j->reason, sizeof s->j->reason, fmt, ap);
	va_end(ap);
}

static void causes_text(const espl_boot_judgement *j, char *out, size_t cap)
{
	size_t used = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < j->banners && i < ESPL_BOOT_MAX_CAUSES && used < cap; i++)
		used += (size_t)snprintf(out + used, cap - used, "%s%d (%s)", i ? ", " : "", j->causes[i],
		                         cause_name(j->causes[i]));
}

static void on_banner(judge_state *s, const char *line)
{
	espl_boot_judgement *j = s->j;
	int cause = -1, mode = -1;
	const char *at = strstr(line, ROM_BANNER);
	sscanf(at + strlen(ROM_BANNER), "%d, boot mode:(%d", &cause, &mode);
	if (j->banners < ESPL_BOOT_MAX_CAUSES)
		j->causes[j->banners] = cause;
	j->banners++;
	s->loads = s->zero_headers = 0;
	if (j->banners == 1 && mode == 1)
		decide(s, ESPL_BOOT_DOWNLOAD_MODE, "the module started in download mode (boot mode 1: GPIO0 was low at reset), not from flash: check the jig's GPIO0 line or the reset wiring");
	if (j->banners >= 2) {
		char causes[160];
		causes_text(j, causes, sizeof causes);
		decide(s, ESPL_BOOT_LOOP, "boot loop: the ROM banner came %u times (reset causes %s)", j->banners, causes);
	}
}

static void on_halt(judge_state *s, const char *line, bool checksum)
{
	char shown[96];
	espl__str_escape(line, shown, sizeof shown);
	if (checksum && s->zero_headers)
		decide(s, ESPL_BOOT_IMAGE_REJECTED, "image rejected by the ROM: checksum error, and its segment headers read as zeros after the first (\"%s\"): the flash part cannot do the SPI mode in the image header (e.g. QIO on a DIO-only part); set flash.mode to dio or dout",
		       ROM_ZERO_HEADER);
	else if (checksum)
		decide(s, ESPL_BOOT_IMAGE_REJECTED, "image rejected by the ROM: checksum error (\"%s\" after %u segments): the bytes at 0x0 are not the image that was verified, or the image itself is corrupt",
		       shown, s->loads);
	else if (!s->loads)
		decide(s, ESPL_BOOT_IMAGE_REJECTED, "image rejected by the ROM: no image at 0x0 (bad magic byte, or blank flash; the ROM printed \"%s\" and stopped)",
		       shown);
}

static const char *reject_hint(const char *pattern)
{
	if (strcmp(pattern, "rf_cal") == 0)
		return ": the SDK found no valid init data at (flash size - 16 KiB) of the size the image header declares (missing, stale or misplaced esp_init_data)";
	if (strcmp(pattern, "wdt reset") == 0)
		return ": the watchdog reset the firmware";
	if (strcmp(pattern, "Fatal exception") == 0)
		return ": the firmware crashed";
	return "";
}

static void remember(judge_state *s, const char *line)
{
	if (!*line)
		return;
	size_t n = strlen(line);
	memmove(s->last[0], s->last[1], sizeof s->last[0] * 2);
	if (n >= sizeof s->last[2])
		n = sizeof s->last[2] - 1;
	memcpy(s->last[2], line, n);
	s->last[2][n] = '\0';
}

static void judge_line(judge_state *s, const char *line)
{
	const espl_boot_rules *r = s->r;
	espl_boot_judgement *j = s->j;

	remember(s, line);
	if (strstr(line, ROM_BANNER))
		on_banner(s, line);
	if (strstr(line, ROM_ZERO_HEADER))
		s->zero_headers++;
	if (strncmp(line, ROM_LOAD, strlen(ROM_LOAD)) == 0)
		s->loads++;
	if (strstr(line, ROM_CSUM_ERR))
		on_halt(s, line, true);
	else if (strstr(line, ROM_HALT))
		on_halt(s, line, false);
	else if (strncmp(line, ROM_CSUM, strlen(ROM_CSUM)) == 0) {
		j->rom_done = true;
		if (++s->csums >= 2 && j->banners < 2) {
			char causes[160];
			causes_text(j, causes, sizeof causes);
			decide(s, ESPL_BOOT_LOOP, "boot loop: the module reset and the ROM loaded the image again (%u ROM logs; reset cause read: %s; the later banners came while espline listened at the firmware's rate, unreadable)",
			       s->csums, *causes ? causes : "none");
		}
	}
	for (size_t i = 0; i < r->n_reject; i++)
		if (regexec(&r->reject[i], line, 0, NULL, 0) == 0) {
			char shown[200];
			decide(s, ESPL_BOOT_REJECTED_TEXT, "reject pattern \"%s\" matched the line \"%s\"%s",
			       espl__str_escape(r->reject_src[i], shown, 64), line,
			       i < N_BUILTIN ? reject_hint(r->reject_src[i]) : "");
			break;
		}
	while (s->next_expect < r->n_expect && regexec(&r->expect[s->next_expect], line, 0, NULL, 0) == 0)
		s->next_expect++;
}

static void judge_final(judge_state *s)
{
	espl_boot_judgement *j = s->j;
	char seen[400];
	snprintf(seen, sizeof seen, "%s%s%s%s%s", s->last[0], *s->last[0] ? " | " : "", s->last[1],
	         *s->last[1] ? " | " : "", s->last[2]);
	if (!j->banners)
		decide(s, ESPL_BOOT_NO_BANNER, "no ROM banner (\"ets Jan  8 2013,rst cause:...\") came%s%s: a dead crystal, no power, or the module was not reset",
		       *seen ? "; received only: " : "", seen);
	else if (!j->rom_done)
		decide(s, ESPL_BOOT_IMAGE_REJECTED, "image rejected by the ROM: it did not finish loading the image (no \"csum\" line); last: %s",
		       seen);
	else if (s->next_expect < s->r->n_expect)
		decide(s, ESPL_BOOT_EXPECT_MISSING, "expected \"%s\" (expect[%zu]) not seen; seen instead: %s",
		       s->r->expect_src[s->next_expect], s->next_expect + 1, *seen ? seen : "(nothing)");
	else
		decide(s, ESPL_BOOT_OK, "booted");
}

void espl_boot_judge(const espl_boot_rules *r, const char *text, bool final, espl_boot_judgement *out)
{
	judge_state s = { .r = r, .j = out };
	char line[1024];

	memset(out, 0, sizeof *out);
	for (const char *p = text; *p && out->verdict == ESPL_BOOT_PENDING;) {
		const char *nl = strchr(p, '\n');
		if (!nl && !final)
			break; /* an unfinished line: wait for the rest */
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
		judge_line(&s, line);
		p += n + (nl ? 1 : 0);
	}
	out->expect_done = out->rom_done && r->n_expect && s.next_expect == r->n_expect;
	if (final)
		judge_final(&s);
}

/* ------------------------------------------------------------------ */
/* capturing                                                            */

unsigned espl_boot_rom_baud(unsigned xtal_mhz)
{
	/* The ROM's UART divider assumes a 40 MHz crystal. */
	return (unsigned)(115200ull * (xtal_mhz ? xtal_mhz : 26) / 40);
}

typedef struct capture {
	uint8_t raw[ESPL_BOOT_CAPTURE_MAX];
	size_t len, total;
	char *text;
} capture;

/* The raw bytes as text: a line per line, "\r" dropped at line ends, every
 * other byte that could act on a terminal escaped. */
static int rebuild_text(capture *c, espl_error *err)
{
	size_t cap = c->len * 4 + 64;
	char *text = malloc(cap), *at = text;
	char line[ESPL_BOOT_CAPTURE_MAX + 1];
	if (!text)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	*at = '\0';
	for (size_t i = 0; i < c->len;) {
		const uint8_t *nl = memchr(c->raw + i, '\n', c->len - i);
		size_t n = nl ? (size_t)(nl - (c->raw + i)) : c->len - i, keep = n;
		if (keep && c->raw[i + keep - 1] == '\r')
			keep--;
		/* escaped piece by piece: a NUL byte would end the string early */
		for (size_t k = 0; k < keep;) {
			size_t piece = strnlen((const char *)c->raw + i + k, keep - k);
			memcpy(line, c->raw + i + k, piece);
			line[piece] = '\0';
			espl__str_escape(line, at, cap - (size_t)(at - text) - 8);
			at += strlen(at);
			k += piece;
			if (k < keep) {
				memcpy(at, "\\x00", 5);
				at += 4;
				k++;
			}
		}
		if (nl)
			*at++ = '\n';
		*at = '\0';
		i += n + (nl ? 1 : 0);
	}
	free(c->text);
	c->text = text;
	return ESPL_OK;
}

static bool has_noise(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((b[i] < 0x20 || b[i] > 0x7E) && b[i] != '\r' && b[i] != '\n' && b[i] != '\t')
			return true;
	return false;
}

typedef struct watch {
	espl_port *p;
	const espl_boot_config *cfg;
	capture *c;
	unsigned rate;
	unsigned csums_at_switch;   /* ROM logs seen when we last went back to the ROM rate */
	double last_rx, settle_until;
} watch;

static int switch_rate(watch *w, unsigned rate, espl_error *err)
{
	if (w->rate == rate)
		return ESPL_OK;
	w->rate = rate;
	return espl_port_set_baud(w->p, rate, err);
}

static unsigned count_csums(const char *text)
{
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, "\n" ROM_CSUM)); p++)
		n++;
	return n;
}

/* One read and what follows from it; 1 = decided, 0 = go on, < 0 error. */
static int watch_once(watch *w, espl_boot_judgement *j, double deadline, espl_error *err)
{
	const espl_boot_config *cfg = w->cfg;
	uint8_t buf[512];
	double now = espl__now_s();
	int wait = (int)((deadline - now) * 1000.0);
	if (wait > 10)
		wait = 10;
	if (wait < 1)
		wait = 1;
	int n = espl_port_read(w->p, buf, sizeof buf, wait, err);
	if (n == ESPL_ETIMEOUT)
		n = 0;
	if (n < 0)
		return n;
	now = espl__now_s();
	if (n > 0) {
		size_t room = sizeof w->c->raw - w->c->len, take = (size_t)n < room ? (size_t)n : room;
		memcpy(w->c->raw + w->c->len, buf, take);
		w->c->len += take;
		w->c->total += (size_t)n;
		w->last_rx = now;
		/* The ROM rate's bytes read at the firmware's rate are noise: a
		 * reset is printing its ROM log; listen at the ROM rate again. */
		if (w->rate != cfg->rom_baud && has_noise(buf, (size_t)n)) {
			w->csums_at_switch = count_csums(w->c->text ? w->c->text : "");
			ESPL_TRY(switch_rate(w, cfg->rom_baud, err));
		}
		ESPL_TRY(rebuild_text(w->c, err));
		espl_boot_judge(cfg->rules, w->c->text, false, j);
		if (j->verdict != ESPL_BOOT_PENDING)
			return 1;
		if (j->expect_done && !w->settle_until)
			w->settle_until = now + cfg->settle_ms / 1000.0;
	}
	if (w->rate == cfg->rom_baud && cfg->fw_baud != cfg->rom_baud && j->rom_done && w->c->text &&
	    count_csums(w->c->text) > w->csums_at_switch && now - w->last_rx >= ESPL_BOOT_ROM_QUIET_MS / 1000.0)
		ESPL_TRY(switch_rate(w, cfg->fw_baud, err));
	return w->settle_until && now >= w->settle_until ? 1 : 0;
}

int espl_boot_check(espl_port *p, const espl_boot_config *cfg, espl_boot_capture *out, espl_error *err)
{
	capture *c = calloc(1, sizeof *c);
	watch w = { .p = p, .cfg = cfg, .c = c, .rate = 0 };
	int rc;

	memset(out, 0, sizeof *out);
	if (!c)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	double started = espl__now_s();
	if ((rc = switch_rate(&w, cfg->rom_baud, err)) == ESPL_OK &&
	    (rc = espl_port_flush_input(p, err)) == ESPL_OK)
		rc = cfg->restart(cfg->restart_ctx, p, err);
	double booted = espl__now_s(), deadline = booted + cfg->timeout_ms / 1000.0;
	out->restart_s = booted - started;
	w.last_rx = booted;
	while (rc == ESPL_OK && espl__now_s() < deadline && (rc = watch_once(&w, &out->j, deadline, err)) == 0)
		;
	out->boot_s = espl__now_s() - booted;
	if (rc >= 0 && rebuild_text(c, err) == ESPL_OK) {
		espl_boot_judge(cfg->rules, c->text, true, &out->j);
		rc = out->j.verdict == ESPL_BOOT_OK ? ESPL_OK : espl_fail(err, ESPL_EBOOT, "%s", out->j.reason);
	}
	out->raw_bytes = c->total;
	out->text = c->text ? c->text : strdup("");
	free(c);
	if (!out->text && rc == ESPL_OK)
		rc = espl_fail(err, ESPL_ENOMEM, "out of memory");
	return rc;
}
