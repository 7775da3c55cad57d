/* connect.c - connecting to one ESP8266 loader: reset, sync, the chip
 * check, the flasher stub, the fast baud rate, reconnects; composes the
 * command protocol (proto.c), the chip check (esp8266.c), the stub upload
 * (stub.c) and the baud ladder (baud.c).  See include/espline/loader.h. */
#include "espline/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/dev_bytes.h"
#include "device/loader_int.h"
#include "espline/esp8266.h"
#include "espline/reset.h"
#include "espline/stub.h"
#include "util/clock.h"

/* ---- options ---------------------------------------------------------- */

void espl_loader_options_init(espl_loader_options *o)
{
	memset(o, 0, sizeof *o);
	o->reset = ESPL_RESET_AUTO;
}

void espl_loader_options_for(const espl_connect_settings *s, espl_loader_options *o)
{
	unsigned all[ESPL_BAUD_LADDER_MAX];
	size_t n_lower = s->n_lower_bauds < ESPL_BAUD_LADDER_MAX ? s->n_lower_bauds : ESPL_BAUD_LADDER_MAX - 1;
	size_t n = n_lower + 1, first = 0;

	espl_loader_options_init(o);
	o->baud = s->rom_baud;
	o->reset = s->reset;
	o->no_stub = s->no_stub;
	o->stub = s->stub;
	o->connect_attempts = s->connect_attempts;
	o->connect_timeout_ms = s->connect_timeout_ms;
	o->events = s->events;
	o->cancel = s->cancel;
	all[0] = s->flash_baud;
	if (n_lower)
		memcpy(all + 1, s->lower_bauds, n_lower * sizeof *all);
	while (s->flash_baud_start && first + 1 < n && all[first] > s->flash_baud_start)
		first++;
	o->flash_baud = all[first];
	o->n_lower_bauds = (int)(n - first - 1);
	memcpy(o->lower_bauds, all + first + 1, (size_t)o->n_lower_bauds * sizeof *all);
}

int espl_loader_probe(const char *port_spec, unsigned baud, enum espl_reset_mode reset,
		      int timeout_ms, espl_error *err)
{
	espl_connect_settings s = {
		.reset = reset, .rom_baud = baud, .flash_baud = baud, .no_stub = 1,
		.connect_attempts = 1, .connect_timeout_ms = timeout_ms,
	};
	espl_loader_options o;
	espl_loader *l = NULL;

	espl_loader_options_for(&s, &o);
	int rc = espl_loader_open(port_spec, &o, &l, err);
	if (rc == ESPL_OK)
		espl_loader_close(l);
	return rc;
}

static void apply_defaults(espl_loader_options *o)
{
	if (!o->flash_baud)
		o->flash_baud = ESPL_DEFAULT_FLASH_BAUD;
	if (o->n_lower_bauds < 0 || o->n_lower_bauds > ESPL_BAUD_LADDER_MAX - 1)
		o->n_lower_bauds = 0;
	/* The ROM auto-bauds: sync and upload the stub at the fast rate, the
	 * ladder's last (safest) one; the stub then climbs to the top. */
	if (!o->baud)
		o->baud = o->no_stub ? ESPL_DEFAULT_BAUD
		        : o->n_lower_bauds ? o->lower_bauds[o->n_lower_bauds - 1] : o->flash_baud;
	if (o->connect_attempts <= 0)
		o->connect_attempts = ESPL_DEFAULT_CONNECT_ATTEMPTS;
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = ESPL_DEFAULT_CONNECT_TIMEOUT_MS;
	if (o->write_block_attempts <= 0)
		o->write_block_attempts = ESPL_DEFAULT_WRITE_BLOCK_ATTEMPTS;
}

/* ---- sync and connect --------------------------------------------------- */

/* A fast line answers SYNC in a few ms (USB latency included): short tries
 * find the ROM soon after it starts listening, so a fast connect does not
 * wait out a 100 ms timeout for a SYNC that arrived before the ROM was up. */
static unsigned sync_reply_ms(const espl_loader *l)
{
	return l->port->baud > ESPL_DEFAULT_BAUD ? FAST_SYNC_REPLY_MS : SYNC_REPLY_MS;
}

/* One SYNC try: on success *all_zero says whether every reply's value was 0
 * (the stub answers 0, the ROM junk). */
static int sync_once(espl_loader *l, int *all_zero, espl_error *err)
{
	static const uint8_t hdr[4] = { 0x07, 0x07, 0x12, 0x20 };
	uint8_t payload[36];
	uint32_t value;

	memcpy(payload, hdr, 4);
	memset(payload + 4, 0x55, 32);
	ESPL_TRY(espl__loader_discard_input(l, err));
	ESPL_TRY(espl_loader_command(l, ESPL_OP_SYNC, payload, sizeof payload, 0, sync_reply_ms(l),
				     &value, NULL, 0, NULL, err));
	*all_zero = value == 0;
	/* Drain the other replies (the ROM sends 8) so they cannot be mistaken
	 * for later answers. */
	for (int i = 0; i < SYNC_EXTRA_REPLIES; i++) {
		const uint8_t *f;
		size_t len;
		espl_error tmp;
		if (espl_loader_read_frame(l, SYNC_REPLY_MS, &f, &len, &tmp) < 0)
			break;
		if (len >= HEADER_LEN && f[0] == 0x01 && f[1] == ESPL_OP_SYNC && espl__get_le32(f + 4) != 0)
			*all_zero = 0;
	}
	return 0;
}

int espl_loader_sync(espl_loader *l, int *stub_running, espl_error *err)
{
	int zero = 0;
	ESPL_TRY(sync_once(l, &zero, err));
	if (stub_running)
		*stub_running = zero;
	return 0;
}

/* Firmware prints readable text at 115200; the ROM's 74880-baud boot line
 * read at 115200 is mostly unprintable. */
static int mostly_text(const char *s, size_t n)
{
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		if ((s[i] >= 0x20 && s[i] < 0x7F) || s[i] == '\r' || s[i] == '\n' || s[i] == '\t')
			ok++;
	return n >= 8 && ok * 10 >= n * 9;
}

/* A one-line printable copy of the chip's text for the message. */
static const char *printable(const char *s, size_t n, char out[72])
{
	size_t o = 0;
	for (size_t i = 0; i < n && o < 71; i++) {
		char c = s[i];
		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		if (c < 0x20 || c >= 0x7F)
			c = '?';
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = c;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}

static int sync_failed(espl_loader *l, int attempts, int64_t started, espl_error *last, espl_error *err)
{
	char text[72];
	double secs = (double)(espl__now_ms() - started) / 1000.0;
	if (last->code == ESPL_EDISCONNECTED) {
		*err = *last;
		return err->code;
	}
	if (l->noise > 0 && mostly_text(l->noise_text, l->noise_len))
		return espl_fail(err, ESPL_ETIMEOUT, "chip not in download mode: it is running its "
				 "firmware (it printed \"%s\") and never answered SYNC (%d resets, %.1f s). "
				 "GPIO0 was not low at reset: check the auto-reset circuit, or hold GPIO0 "
				 "low and use --reset none", printable(l->noise_text, l->noise_len, text),
				 attempts, secs);
	if (l->noise > 0)
		return espl_fail(err, ESPL_ETIMEOUT, "timed out syncing: %s sent %zu bytes of unreadable "
				 "data but never answered SYNC (%d resets, %.1f s). Either the chip is not "
				 "in download mode (GPIO0 not low at reset) or the line is noisy/at the "
				 "wrong baud; check the auto-reset circuit and --baud", l->port->name,
				 l->noise, attempts, secs);
	return espl_fail(err, ESPL_ETIMEOUT, "timed out syncing with the chip on %s: no reply at all "
			 "(%d %s, %.1f s). Check power and TX/RX wiring, that the port is the "
			 "right one, and that the chip enters download mode (GPIO0 low at reset%s)",
			 l->port->name, attempts, l->opt.reset == ESPL_RESET_NONE ? "rounds" : "resets", secs,
			 l->opt.reset == ESPL_RESET_NONE ? "; --reset none means the jig must do it" : "");
}

/* The ROM did not answer at a fast rate within FAST_SYNC_BUDGET_MS of the
 * reset: talk at 115200 from now on.  The ROM is still in download mode
 * and auto-bauds on the next SYNC, so no new reset is needed. */
static int fall_back_to_115200(espl_loader *l, espl_error *err)
{
	espl_loader_log(l, ESPL_LOG_WARN, "no answer from the ROM at %u baud within %d ms; falling "
			"back to %u baud (use connect.baud/--baud %u if this board or adapter cannot "
			"sync fast)", l->rom_baud, FAST_SYNC_BUDGET_MS, ESPL_DEFAULT_BAUD, ESPL_DEFAULT_BAUD);
	l->rom_baud = ESPL_DEFAULT_BAUD;
	ESPL_TRY(espl_port_set_baud(l->port, l->rom_baud, err));
	return espl__loader_flush_input(l, err);
}

/* A round that fell back to 115200 and got no answer there either: the
 * chip was not in download mode (a module seated late, a reset the board
 * missed), which says nothing about the fast rate.  Try it again after the
 * next reset, or the port would be remembered as slow (the station keeps
 * rom_baud for the port's next units) because of one missed reset. */
static int retry_fast_rate(espl_loader *l, unsigned rate, espl_error *err)
{
	espl_loader_log(l, ESPL_LOG_DEBUG, "no answer at %u baud either: the chip was not in download "
			"mode; trying %u baud again after the next reset", l->rom_baud, rate);
	l->rom_baud = rate;
	return espl_port_set_baud(l->port, rate, err);
}

/* Reset (per the options) and sync, at most `attempts` rounds within
 * deadline; *stub_running as for sync_once.  At a ROM rate above 115200
 * the first round tries it for FAST_SYNC_BUDGET_MS after the reset, then
 * goes on at 115200 (fall_back_to_115200): the fast try costs at most that
 * plus one short SYNC timeout.  A round with no answer at either rate
 * starts the next one at the fast rate again (retry_fast_rate). */
static int reset_and_sync(espl_loader *l, int attempts, int64_t deadline, int *stub_running,
			  espl_error *err)
{
	int64_t started = espl__now_ms();
	const unsigned first_rate = l->rom_baud;
	espl_error last;
	int attempt;

	espl_error_clear(&last);
	for (attempt = 0; attempt < attempts && espl__ms_left(deadline) > 0; attempt++) {
		if (l->rom_baud != first_rate)
			ESPL_TRY(retry_fast_rate(l, first_rate, err));
		if (l->opt.reset == ESPL_RESET_AUTO) {
			unsigned delay = attempt % 2 ? ESPL_RESET_LONG_DELAY_MS : ESPL_RESET_DELAY_MS;
			double t0 = espl__now_s();
			ESPL_TRY(espl__loader_flush_input(l, err));
			ESPL_TRY(espl_reset_to_bootloader(l->port, delay, err));
			espl__loader_clear_noise(l);
			l->ms_reset += (espl__now_s() - t0) * 1000.0;
		}
		int64_t fast_until = espl__now_ms() + FAST_SYNC_BUDGET_MS;
		for (int t = 0; t < SYNC_TRIES_PER_RESET && espl__ms_left(deadline) > 0; t++) {
			int rc = sync_once(l, stub_running, &last);
			if (rc == 0) {
				l->synced = 1;
				espl_loader_log(l, ESPL_LOG_DEBUG, "synced at %u baud after %d reset(s), %d tries",
						l->port->baud, attempt + 1, t + 1);
				return 0;
			}
			if (rc == ESPL_EDISCONNECTED || rc == ESPL_ESYS || rc == ESPL_EPERM ||
			    rc == ESPL_EINTERRUPTED) {
				*err = last;
				return rc;
			}
			if (l->rom_baud > ESPL_DEFAULT_BAUD) {
				if (espl__ms_left(fast_until) > 0)
					t--; /* fast tries are short: count the time, not the tries */
				else {
					ESPL_TRY(fall_back_to_115200(l, err));
					t = -1;
				}
				continue;
			}
			espl__sleep_ms(50);
		}
	}
	return sync_failed(l, attempt, started, &last, err);
}

/* The ROM rate: a fast one gets a bounded try (see reset_and_sync); the
 * time budget is shared, so a dead unit fails no later than before. */
static int sync_with_fallback(espl_loader *l, int *stub_running, espl_error *err)
{
	int64_t deadline = espl__now_ms() + l->opt.connect_timeout_ms;
	return reset_and_sync(l, l->opt.connect_attempts, deadline, stub_running, err);
}

static int check_chip(espl_loader *l, espl_error *err)
{
	return espl_esp8266_check_chip(l, err);
}

/* After a failed upload: is the stub running anyway (only its greeting or
 * the MEM_END reply was lost)?  The stub answers SYNC with value 0. */
static int stub_answers(espl_loader *l)
{
	int zero = 0;
	espl_error ignored;
	for (int t = 0; t < RESYNC_TRIES; t++)
		if (sync_once(l, &zero, &ignored) == 0)
			return zero;
	return 0;
}

/* A corrupted byte in a MEM_DATA block (bad checksum), a lost reply or a
 * lost greeting spoils one upload; the ROM accepts MEM_BEGIN again at any
 * time, so start the upload over, a bounded number of times. */
static int upload_with_restarts(espl_loader *l, const espl_stub *stub, espl_error *err)
{
	for (int attempt = 1;; attempt++) {
		int rc = espl_stub_run(l, stub, err);
		if (rc >= 0 || !espl__loader_link_error(rc))
			return rc;
		if (stub_answers(l)) {
			l->mode = ESPL_MODE_STUB;
			espl_loader_log(l, ESPL_LOG_DEBUG, "%s; but the flasher stub answers", err->msg);
			return 0;
		}
		if (attempt >= STUB_UPLOAD_ATTEMPTS)
			return rc;
		espl_loader_log(l, ESPL_LOG_WARN, "stub upload failed (%s); uploading it again", err->msg);
		ESPL_TRY(espl__loader_flush_input(l, err));
	}
}

static int upload_stub(espl_loader *l, espl_error *err)
{
	espl_stub own;
	const espl_stub *stub = l->opt.stub;
	int rc;

	if (!stub) {
		ESPL_TRY(espl_stub_find(l->stub_path, l->opt.stub_env, &own, err));
		stub = &own;
	}
	espl_loader_log(l, ESPL_LOG_DEBUG, "uploading flasher stub from %s", stub->path);
	rc = upload_with_restarts(l, stub, err);
	if (stub == &own)
		espl_stub_free(&own);
	return rc;
}

/* Add the time since *t to *phase_ms and restart *t. */
static void phase_done(double *phase_ms, double *t)
{
	double now = espl__now_s();
	*phase_ms += (now - *t) * 1000.0;
	*t = now;
}

static int connect_once(espl_loader *l, int switch_baud, espl_error *err)
{
	int stub_running = 0;

	l->connects++;
	l->mode = ESPL_MODE_ROM;
	if (l->port->baud != l->rom_baud)
		ESPL_TRY(espl_port_set_baud(l->port, l->rom_baud, err));
	double t = espl__now_s(), reset_before = l->ms_reset;
	ESPL_TRY(sync_with_fallback(l, &stub_running, err));
	phase_done(&l->ms_sync, &t);
	l->ms_sync -= l->ms_reset - reset_before; /* the resets have their own line */
	if (stub_running) {
		l->mode = ESPL_MODE_STUB;
		espl_loader_log(l, ESPL_LOG_INFO, "flasher stub already running");
	}
	ESPL_TRY(check_chip(l, err));
	phase_done(&l->ms_identify, &t);
	if (l->opt.no_stub)
		return 0;
	if (l->mode == ESPL_MODE_ROM)
		ESPL_TRY(upload_stub(l, err));
	phase_done(&l->ms_stub, &t);
	if (switch_baud && espl__loader_target_baud(l) != l->port->baud) {
		ESPL_TRY(espl__loader_climb(l, err));
		phase_done(&l->ms_baud, &t);
	}
	l->stub_baud = l->port->baud;
	return 0;
}

int espl_loader_reconnect(espl_loader *l, espl_error *err)
{
	int stub_running = 0;
	espl_error probe;

	ESPL_TRY(espl__loader_flush_input(l, err));
	/* The chip may still listen where we left it, stub and rate included. */
	for (int t = 0; t < RESYNC_TRIES; t++) {
		int rc = sync_once(l, &stub_running, &probe);
		if (rc == ESPL_EDISCONNECTED || rc == ESPL_EINTERRUPTED) {
			*err = probe;
			return rc;
		}
		if (rc == 0 && (stub_running || l->opt.no_stub)) {
			l->mode = stub_running ? ESPL_MODE_STUB : ESPL_MODE_ROM;
			return check_chip(l, err);
		}
		if (rc == 0)
			break; /* the ROM answers: the stub is gone, start over */
	}
	return connect_once(l, 1, err);
}

/* Connect, and once more if a link error spoiled it after the chip had
 * answered (a chip that never answered has used up its time already). */
static int connect_with_retry(espl_loader *l, espl_error *err)
{
	int rc = connect_once(l, 1, err);
	/* A fast rate failed after the stub switched to it: the chip now
	 * listens at a rate we cannot use.  Reset and connect again, one rung
	 * down the ladder, or at the ROM's rate once the ladder is used up. */
	while (rc < 0 && l->mode == ESPL_MODE_STUB && l->opt.reset == ESPL_RESET_AUTO &&
	       espl__loader_target_baud(l) != l->rom_baud && rc != ESPL_EDISCONNECTED &&
	       rc != ESPL_EINTERRUPTED) {
		unsigned failed = espl__loader_target_baud(l);
		int lower = espl__loader_next_rung(l);
		espl_loader_log(l, ESPL_LOG_WARN, "%u baud did not work (%s); reconnecting at %u baud",
				failed, err ? err->msg : "", lower ? espl__loader_target_baud(l) : l->rom_baud);
		rc = connect_once(l, lower, err);
		if (!lower)
			break;
	}
	if (rc < 0 && l->synced && espl__loader_link_error(rc)) {
		espl_loader_log(l, ESPL_LOG_WARN, "connect failed (%s); connecting again", err->msg);
		rc = espl_loader_reconnect(l, err);
	}
	return rc;
}

int espl_loader_connect(espl_port *port, const espl_loader_options *opt, espl_loader **out,
			espl_error *err)
{
	espl_loader *l = calloc(1, sizeof *l);
	int rc;

	*out = NULL;
	if (!l) {
		espl_port_close(port);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	l->port = port;
	l->opt = *opt;
	apply_defaults(&l->opt);
	l->rom_baud = l->opt.baud;
	if (opt->stub_path) {
		l->stub_path = strdup(opt->stub_path);
		l->opt.stub_path = l->stub_path;
	}
	espl_slip_decoder_init(&l->dec, l->frame, sizeof l->frame);

	double t0 = espl__now_s();
	rc = connect_with_retry(l, err);
	if (rc < 0) {
		espl_loader_close(l);
		return rc;
	}
	espl_loader_log(l, ESPL_LOG_INFO, "connected in %.0f ms: reset %.0f, sync %.0f, identify %.0f, "
			"stub %.0f, baud switch %.0f (ROM at %u, now %u baud)", (espl__now_s() - t0) * 1000.0,
			l->ms_reset, l->ms_sync, l->ms_identify, l->ms_stub, l->ms_baud, l->rom_baud,
			l->port->baud);
	*out = l;
	return 0;
}

int espl_loader_open(const char *port_spec, const espl_loader_options *opt, espl_loader **out,
		     espl_error *err)
{
	espl_port *port;
	unsigned baud = opt->baud ? opt->baud : ESPL_DEFAULT_BAUD;

	*out = NULL;
	ESPL_TRY(espl_port_open(port_spec, baud, &port, err));
	return espl_loader_connect(port, opt, out, err);
}

void espl_loader_close(espl_loader *l)
{
	if (!l)
		return;
	espl_port_close(l->port);
	free(l->stub_path);
	free(l);
}

int espl_loader_hard_reset(espl_loader *l, espl_error *err)
{
	if (l->opt.reset == ESPL_RESET_AUTO) {
		espl_error tmp;
		int rc = espl_reset_to_app(l->port, &tmp);
		if (rc == 0) {
			l->mode = ESPL_MODE_ROM;
			return 0;
		}
		if (rc != ESPL_EUNSUPPORTED) {
			*err = tmp;
			return rc;
		}
	}
	if (l->mode == ESPL_MODE_STUB) {
		/* No reset lines: ask the stub to jump into the firmware.  It
		 * sends no reply. */
		ESPL_TRY(espl__loader_send_command(l, ESPL_OP_RUN_USER_CODE, NULL, 0, NULL, 0, 0, err));
		ESPL_TRY(espl_port_drain(l->port, err));
		l->mode = ESPL_MODE_ROM;
		return 0;
	}
	return espl_fail(err, ESPL_EUNSUPPORTED, "cannot start the firmware: %s has no reset lines "
			 "and the ROM loader cannot jump to it; power-cycle the module",
			 l->port->name);
}
