/*
 * boot.h - watch an ESP8266 boot from flash and judge it: the first-boot
 * check of a recipe's boot_check step.
 *
 * After programming, the module is restarted into its firmware (DTR/RTS or
 * a fixture's commands, through a restart callback) and this module reads
 * what it prints: first the mask ROM's log at the ROM rate that follows from
 * the crystal (115200 x crystal / 40: 74880 baud at 26 MHz, 115200 at
 * 40 MHz), then the firmware's own output at the firmware's rate.  The
 * capture is bounded (ESPL_BOOT_CAPTURE_MAX raw bytes) and kept as text,
 * one line per line, with every byte that could act on a terminal escaped
 * (util/str.h), so it can be stored, hashed and printed as it is.
 *
 * The judgement (espl_boot_judge) is a pure function over that text, so it
 * is tested on real logs without a device.  The rules, in the order a line
 * is looked at (docs/boot-model.md has the texts and their sources):
 *
 *   - a ROM banner ("ets Jan  8 2013,rst cause:C, boot mode:(M,x)") seen a
 *     second time: boot loop, with every reset cause seen;
 *     boot mode 1 (GPIO0 held low): the module went to download mode;
 *   - "csum err", or "ets_main.c" with no image loaded: the ROM rejected
 *     the image (checksum; bad magic or blank flash);
 *   - a reject pattern (built in: rf_cal, csum err, Fatal exception,
 *     wdt reset; plus the recipe's): which pattern, and the line;
 *   - the expect patterns must each match a line, in order.
 *
 * At the end (timeout): no banner at all is "no ROM banner"; a ROM log
 * without its final "csum" line is an image the ROM did not finish
 * loading; an expect pattern never seen is reported with what was seen
 * instead (the last lines).  With no expect patterns the firmware must run
 * for the whole timeout without a reject or a reset.
 *
 * Thread safety: rules are built once and then shared read-only (regexec
 * on a compiled regex_t is thread-safe); a capture uses only the port it is
 * given, which belongs to the calling thread.
 */
#ifndef ESPLINE_BOOT_H
#define ESPLINE_BOOT_H

#include <stdbool.h>
#include <stddef.h>

#include "espline/error.h"
#include "espline/port.h"

#define ESPL_BOOT_CAPTURE_MAX 8192     /* raw bytes kept of one boot check */
#define ESPL_BOOT_MAX_PATTERNS 16      /* expect, and reject beyond the built-in ones */
#define ESPL_BOOT_MAX_CAUSES 8         /* reset causes remembered for a loop */
/* After the ROM's "csum" line the SDK may still print at the ROM rate (the
 * rf_cal line comes ~40 ms later on the simulator): switch to the firmware
 * rate only after this much silence. */
#define ESPL_BOOT_ROM_QUIET_MS 60

typedef struct espl_boot_rules espl_boot_rules;

/* Compile the rules: expect[0..n_expect) in order, reject[0..n_reject) in
 * addition to the built-in rejects.  POSIX extended regexes.  ESPL_EARG
 * with regerror's text and the pattern's index when one does not compile. */
int espl_boot_rules_new(const char *const *expect, size_t n_expect, const char *const *reject,
                        size_t n_reject, espl_boot_rules **out, espl_error *err);
void espl_boot_rules_free(espl_boot_rules *r);

/* The patterns every boot check rejects, NULL-terminated (for docs, show). */
extern const char *const espl_boot_builtin_rejects[];

enum espl_boot_verdict {
	ESPL_BOOT_PENDING = 0,      /* not decided yet (more output may come) */
	ESPL_BOOT_OK,               /* booted: every expect seen, no reject */
	ESPL_BOOT_NO_BANNER,        /* no ROM banner: dead crystal, no power, no reset */
	ESPL_BOOT_DOWNLOAD_MODE,    /* the ROM banner says boot mode 1: GPIO0 held low */
	ESPL_BOOT_IMAGE_REJECTED,   /* csum err, bad magic / blank flash, or a load that never ended */
	ESPL_BOOT_LOOP,             /* the ROM banner more than once */
	ESPL_BOOT_REJECTED_TEXT,    /* a reject pattern matched */
	ESPL_BOOT_EXPECT_MISSING,   /* an expect pattern not seen before the timeout */
};

/* "booted", "no ROM banner", "image rejected by the ROM", "boot loop", ... */
const char *espl_boot_verdict_name(enum espl_boot_verdict v);

typedef struct espl_boot_judgement {
	enum espl_boot_verdict verdict;
	bool expect_done;           /* every expect pattern has matched */
	bool rom_done;              /* the ROM's final "csum 0x.." line was seen */
	unsigned banners;           /* ROM banners seen */
	int causes[ESPL_BOOT_MAX_CAUSES]; /* rst cause of the first banners */
	char reason[ESPL_ERROR_MAX];/* for a failure: what, with the line */
} espl_boot_judgement;

/* Judge the escaped text of a capture (lines separated by '\n').  final:
 * no more output will come (the timeout passed), so a pending check is
 * decided.  Pure. */
void espl_boot_judge(const espl_boot_rules *r, const char *text, bool final, espl_boot_judgement *out);

/* How a capture restarts the module into its firmware: called once, with
 * the port already at the ROM rate; returns 0 or a negative code (err). */
typedef int (*espl_boot_restart_fn)(void *ctx, espl_port *p, espl_error *err);

typedef struct espl_boot_config {
	const espl_boot_rules *rules;
	unsigned rom_baud;          /* 74880 (26 MHz) or 115200 (40 MHz): espl_boot_rom_baud */
	unsigned fw_baud;           /* the firmware's UART rate */
	unsigned timeout_ms;        /* from the restart to the verdict */
	unsigned settle_ms;         /* after the last expect matched, keep
	                             * watching for rejects this long */
	espl_boot_restart_fn restart;
	void *restart_ctx;
} espl_boot_config;

typedef struct espl_boot_capture {
	espl_boot_judgement j;
	char *text;                 /* malloc'd escaped capture ("" if none); free() it */
	size_t raw_bytes;           /* bytes received (capture holds at most the first
	                             * ESPL_BOOT_CAPTURE_MAX) */
	double restart_s;           /* time the restart took */
	double boot_s;              /* from the restart to the verdict */
} espl_boot_capture;

/* The ROM's UART rate for a crystal of xtal_mhz (26 or 40). */
unsigned espl_boot_rom_baud(unsigned xtal_mhz);

/* Restart the module (cfg->restart), read and judge its boot.  Returns 0
 * when it booted, ESPL_EBOOT when it did not (out->j.reason says why), or
 * the restart's or the port's error.  out->text is set in every case
 * (free it); the port is left at the last rate used. */
int espl_boot_check(espl_port *p, const espl_boot_config *cfg, espl_boot_capture *out, espl_error *err);

#endif /* ESPLINE_BOOT_H */
