/* baud.c - the stub's line rate: CHANGE_BAUDRATE, proving a new rate, and
 * the baud ladder (climb at connect, step down during a write).  See
 * include/espline/loader.h and docs/baud-ladder.md.
 *
 * What the stub does (esptool-legacy-flasher-stub, flasher_stub/
 * stub_flasher.c cmd_loop and stub_io.c stub_io_set_baudrate): it checks
 * only that CHANGE_BAUDRATE carries 8 bytes, replies at the old rate, then
 * waits ~10 ms and sets its divider to divider * old / new.  The command
 * has no checksum.  It leaves the write state alone, so a write can go on
 * at the new rate with the next block. */
#include "espline/loader.h"

#include "device/dev_bytes.h"
#include "device/loader_int.h"
#include "espline/esp8266.h"
#include "util/clock.h"

unsigned espl__loader_target_baud(const espl_loader *l)
{
	return l->rung == 0 ? l->opt.flash_baud : l->opt.lower_bauds[l->rung - 1];
}

int espl__loader_next_rung(espl_loader *l)
{
	if (l->rung >= l->opt.n_lower_bauds)
		return 0;
	l->rung++;
	return 1;
}

unsigned espl_loader_flash_baud(const espl_loader *l)
{
	return l->stub_baud;
}

int espl_loader_can_step_down(const espl_loader *l)
{
	if (l->mode != ESPL_MODE_STUB)
		return 0; /* only the stub changes its rate */
	for (int k = l->rung + 1; k <= l->opt.n_lower_bauds; k++)
		if (l->opt.lower_bauds[k - 1] < l->port->baud)
			return 1;
	return 0;
}

int espl_loader_change_baud(espl_loader *l, unsigned baud, espl_error *err)
{
	uint8_t p[8];
	unsigned old = l->port->baud;

	ESPL_TRY(espl__loader_require_stub(l, "changing the baud rate", err));
	espl__put_le32(p, baud);
	espl__put_le32(p + 4, old);
	ESPL_TRY(espl_loader_command(l, ESPL_OP_CHANGE_BAUDRATE, p, sizeof p, 0,
				     ESPL_TIMEOUT_DEFAULT_MS, NULL, NULL, 0, NULL, err));
	/* The stub answered at the old rate and switches ~10 ms later. */
	if (espl_port_drain(l->port, err) < 0 || espl_port_set_baud(l->port, baud, err) < 0) {
		espl_error_prefix(err, "switching %s to %u baud", l->port->name, baud);
		return err->code;
	}
	/* The stub switches ~10 ms after its reply left; esptool waits 50 ms,
	 * 20 ms is enough (the reply reached us after it left) and the caller
	 * proves the new rate with a register read anyway. */
	espl__sleep_ms(20);
	return espl__loader_flush_input(l, err);
}

/* Does the chip answer sanely at the port's current rate?  A short
 * READ_REG of the chip magic (resent, and fenced, as any idempotent
 * command). */
static int answers_here(espl_loader *l)
{
	uint8_t p[4];
	uint32_t magic = 0;
	espl_error ignored;
	espl__put_le32(p, ESPL_CHIP_MAGIC_REG);
	if (espl__loader_flush_input(l, &ignored) < 0)
		return 0;
	return espl_loader_command_idempotent(l, ESPL_OP_READ_REG, p, sizeof p, 0, BAUD_PROBE_MS, &magic,
					      NULL, 0, NULL, &ignored) == 0 && magic == ESPL_ESP8266_MAGIC;
}

enum { SWITCHED = 0, STAYED = 1 };

/* Switch the stub from the port's rate to baud.  SWITCHED: both ends run at
 * baud and the chip answers there.  STAYED: both still at the old rate (the
 * adapter refused baud, or the chip refused or never got the command).  A
 * negative error: the chip is at neither rate that we can find. */
static int switch_rate(espl_loader *l, unsigned baud, espl_error *err)
{
	unsigned old = l->port->baud;
	espl_error probe;

	if (espl_port_set_baud(l->port, baud, &probe) < 0) { /* found out before the chip is told */
		ESPL_TRY(espl_port_set_baud(l->port, old, err));
		espl_loader_log(l, ESPL_LOG_WARN, "%s", probe.msg);
		return STAYED;
	}
	ESPL_TRY(espl_port_set_baud(l->port, old, err));
	int rc = espl_loader_change_baud(l, baud, &probe);
	if (rc == ESPL_EDEVICE) /* refused (a garbled length): the stub did not switch */
		return answers_here(l) ? STAYED : espl_fail(err, ESPL_ETIMEOUT, "%s", probe.msg);
	if (rc < 0 && !espl__loader_link_error(rc)) {
		*err = probe;
		return rc;
	}
	if (rc < 0) {
		/* The reply was lost or garbled: the stub may have switched or not. */
		espl_loader_log(l, ESPL_LOG_DEBUG, "%s; probing both rates", probe.msg);
		ESPL_TRY(espl_port_set_baud(l->port, baud, err));
		espl__sleep_ms(20);
	}
	if (answers_here(l))
		return SWITCHED;
	if (rc < 0) {
		ESPL_TRY(espl_port_set_baud(l->port, old, err));
		if (answers_here(l)) {
			espl_loader_log(l, ESPL_LOG_WARN, "the chip did not switch to %u baud; staying at "
					"%u baud", baud, old);
			return STAYED;
		}
	}
	return espl_fail(err, ESPL_ETIMEOUT, "no sane reply at %u baud", baud);
}

int espl__loader_climb(espl_loader *l, espl_error *err)
{
	for (;;) {
		unsigned want = espl__loader_target_baud(l);
		if (want == l->port->baud)
			return 0;
		int rc = switch_rate(l, want, err);
		if (rc == SWITCHED || rc < 0)
			return rc;
		if (!espl__loader_next_rung(l)) {
			espl_loader_log(l, ESPL_LOG_WARN, "staying at %u baud", l->port->baud);
			return 0;
		}
	}
}

int espl_loader_step_down(espl_loader *l, espl_error *err)
{
	unsigned from = l->port->baud;

	ESPL_TRY(espl__loader_require_stub(l, "changing the baud rate", err));
	if (!espl_loader_can_step_down(l))
		return espl_fail(err, ESPL_EUNSUPPORTED, "no lower rate in the baud ladder below %u baud", from);
	/* The rung moves first: if the chip is lost now, a reconnect starts
	 * at the lower rate. */
	while (espl__loader_target_baud(l) >= from)
		espl__loader_next_rung(l);
	unsigned to = espl__loader_target_baud(l);
	espl_loader_log(l, ESPL_LOG_WARN, "errors at %u baud: stepping down to %u baud and going on "
			"with the write", from, to);
	for (int t = 0; t < STEP_DOWN_TRIES; t++) {
		int rc = switch_rate(l, to, err);
		if (rc == SWITCHED)
			l->stub_baud = to;
		if (rc == SWITCHED || rc < 0)
			return rc;
	}
	return espl_fail(err, ESPL_ETIMEOUT, "could not step down from %u baud: the chip did not "
			 "take up %u baud in %d tries", from, to, STEP_DOWN_TRIES);
}
