/* sim_port.c - an espl_port wired to an in-process sim_chip; see sim_port.h. */
#include "sim_port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RXQ_CAP (1u << 20)

/* Does this request/reply (opcode op) get the fault?  Counts it down. */
static int fault_hits(sim_port_fault *f, uint8_t op)
{
	if (f->op < 0 || f->count == 0 || op != (uint8_t)f->op)
		return 0;
	if (f->skip > 0) {
		f->skip--;
		return 0;
	}
	if (f->count > 0)
		f->count--;
	return 1;
}

static void queue(sim_port *sp, const uint8_t *b, size_t n)
{
	if (sp->rx_tail + n > RXQ_CAP) {
		fprintf(stderr, "sim_port: receive queue overflow\n");
		abort(); /* a test bug: the loader never reads */
	}
	memcpy(sp->rxq + sp->rx_tail, b, n);
	sp->rx_tail += n;
}

static int garbled(const sim_port *sp)
{
	return sp->unit->chip_baud != sp->base.baud ||
	       (sp->garble_above && sp->base.baud > sp->garble_above);
}

/* ---- the chip's side ---------------------------------------------------- */

static void chip_emit(void *ctx, const uint8_t *frame, size_t len)
{
	sim_unit *u = ctx;
	sim_port *sp = u->port;
	uint8_t enc[ESPL_SLIP_ENCODED_MAX(0x4100)];
	uint8_t copy[0x4100];

	if (!sp)
		return;
	if (garbled(sp)) {
		static const uint8_t junk[] = { 0x00, 0xF0, 0x80, 0x78, 0x00 };
		queue(sp, junk, sizeof junk); /* what a wrong baud looks like */
		return;
	}
	if (len >= 8 && frame[0] == 0x01 && len <= sizeof copy) {
		if (fault_hits(&sp->drop_reply, frame[1]))
			return;
		if (fault_hits(&sp->corrupt_reply, frame[1])) {
			memcpy(copy, frame, len);
			copy[4] ^= 0x10;
			copy[6] ^= 0x01;
			frame = copy;
		}
	}
	queue(sp, enc, espl_slip_encode(frame, len, enc));
}

static void chip_sleep(void *ctx, uint64_t us) { ((sim_unit *)ctx)->now_us += us; }
static uint64_t chip_now(void *ctx) { return ((sim_unit *)ctx)->now_us; }
static void chip_set_baud(void *ctx, unsigned baud) { ((sim_unit *)ctx)->chip_baud = baud; }
static void chip_reboot(void *ctx, int to_app) { (void)ctx; (void)to_app; }
static void chip_fault(void *ctx, const char *what) { (void)ctx; (void)what; }

sim_unit *sim_unit_new(const sim_chip_config *cfg)
{
	sim_unit *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	sim_chip_io io = { .ctx = u, .emit = chip_emit, .sleep_us = chip_sleep, .now_us = chip_now,
			   .set_baud = chip_set_baud, .reboot = chip_reboot, .fault = chip_fault };
	u->chip = sim_chip_new(cfg, &io);
	if (!u->chip) {
		free(u);
		return NULL;
	}
	u->chip_baud = 115200;
	return u;
}

void sim_unit_free(sim_unit *u)
{
	if (!u)
		return;
	sim_chip_free(u->chip);
	free(u);
}

/* ---- port ops ----------------------------------------------------------- */

static int sp_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	sim_port *sp = (sim_port *)p;
	(void)timeout_ms;
	if (sp->spew) {
		static const char text[] = "wifi: scanning... ";
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)text[i % (sizeof text - 1)];
		return (int)len;
	}
	size_t avail = sp->rx_tail - sp->rx_head;
	if (avail == 0) {
		sp->rx_head = sp->rx_tail = 0;
		return espl_fail(err, ESPL_ETIMEOUT, "timeout");
	}
	if (len > avail)
		len = avail;
	memcpy(buf, sp->rxq + sp->rx_head, len);
	sp->rx_head += len;
	return (int)len;
}

static int sp_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	sim_port *sp = (sim_port *)p;
	(void)err;
	if (garbled(sp))
		return (int)len; /* the chip hears noise */
	for (size_t i = 0; i < len; i++) {
		if (espl_slip_feed(&sp->dec, buf[i]) != ESPL_SLIP_FRAME || sp->dec.len < 2)
			continue;
		uint8_t *f = sp->dec.frame;
		uint8_t op = f[1];
		sp->unit->op_count[op]++;
		if (fault_hits(&sp->drop, op))
			continue; /* lost on the wire: the loader times out */
		if (sp->dec.len > 8 + 16 && fault_hits(&sp->corrupt, op))
			f[8 + 16] ^= 0x01;
		if (sp->held_len) {
			sim_chip_handle_frame(sp->unit->chip, sp->held, sp->held_len);
			sp->held_len = 0;
		}
		if (sp->dec.len <= sizeof sp->held && fault_hits(&sp->hold, op)) {
			memcpy(sp->held, f, sp->dec.len);
			sp->held_len = sp->dec.len;
			continue;
		}
		sim_chip_handle_frame(sp->unit->chip, f, sp->dec.len);
	}
	return (int)len;
}

static int sp_drain(espl_port *p, espl_error *err) { (void)p; (void)err; return 0; }

static int sp_flush(espl_port *p, espl_error *err)
{
	sim_port *sp = (sim_port *)p;
	(void)err;
	sp->rx_head = sp->rx_tail = 0;
	return 0;
}

static int sp_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	sim_port *sp = (sim_port *)p;
	if (sp->max_baud && baud > sp->max_baud)
		return espl_fail(err, ESPL_ESYS, "%s: %u baud not supported", p->name, baud);
	p->baud = baud;
	if (sim_chip_mode(sp->unit->chip) != SIM_MODE_STUB)
		sp->unit->chip_baud = baud; /* the ROM auto-bauds */
	sim_chip_set_host_baud(sp->unit->chip, baud);
	return 0;
}

void sim_port_boot(sim_port *sp, int download)
{
	static const uint8_t rom_garbage[] = { 0x00, 0x8E, 0xF2, 0x6C, 0x9C, 0x12, 0x8C, 0x7C, 0x02 };
	static const char app_text[] = "\r\nNodeMCU 3.0.0 build 2026\r\n> ";
	sim_chip_boot(sp->unit->chip, download);
	sp->unit->chip_baud = sp->base.baud;
	sim_chip_set_host_baud(sp->unit->chip, sp->base.baud);
	sp->boots++;
	if (sp->boots_out)
		(*sp->boots_out)++;
	if (download)
		queue(sp, rom_garbage, sizeof rom_garbage);
	else
		queue(sp, (const uint8_t *)app_text, sizeof app_text - 1);
}

static int sp_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	sim_port *sp = (sim_port *)p;
	if (sp->no_lines)
		return espl_fail(err, ESPL_EUNSUPPORTED, "%s is a pseudo-terminal: no modem lines", p->name);
	int en_was_low = sp->rts && !sp->dtr;
	if (dtr != ESPL_LINE_KEEP)
		sp->dtr = dtr;
	if (rts != ESPL_LINE_KEEP)
		sp->rts = rts;
	int en_low = sp->rts && !sp->dtr;
	int gpio0_low = sp->dtr && !sp->rts && !sp->gpio0_stuck_high;
	if (en_was_low && !en_low) {
		if (sp->resets_missed > 0) {
			sp->resets_missed--;
			gpio0_low = 0;
		}
		sim_port_boot(sp, gpio0_low);
	}
	return 0;
}

static void sp_close(espl_port *p)
{
	sim_port *sp = (sim_port *)p;
	if (sp->unit->port == sp)
		sp->unit->port = NULL;
	if (sp->owns_unit)
		sim_unit_free(sp->unit);
	free(sp->rxq);
	free(sp);
}

static const espl_port_ops sim_port_ops = {
	.kind = "test", .read = sp_read, .write = sp_write, .drain = sp_drain,
	.flush_input = sp_flush, .set_baud = sp_set_baud, .set_lines = sp_set_lines,
	.close = sp_close,
};

static const sim_port_fault no_fault = { .op = -1 };

sim_port *sim_port_attach(sim_unit *u)
{
	sim_port *sp = calloc(1, sizeof *sp);
	if (!sp || !(sp->rxq = malloc(RXQ_CAP))) {
		free(sp);
		return NULL;
	}
	sp->base.ops = &sim_port_ops;
	snprintf(sp->base.name, sizeof sp->base.name, "testchip");
	sp->base.baud = 115200;
	sp->unit = u;
	sp->drop = sp->corrupt = sp->drop_reply = sp->corrupt_reply = sp->hold = no_fault;
	u->port = sp;
	u->chip_baud = 115200;
	espl_slip_decoder_init(&sp->dec, sp->frame, sizeof sp->frame);
	return sp;
}

sim_port *sim_port_new(const sim_chip_config *cfg)
{
	sim_unit *u = sim_unit_new(cfg);
	if (!u)
		return NULL;
	sim_port *sp = sim_port_attach(u);
	if (!sp) {
		sim_unit_free(u);
		return NULL;
	}
	sp->owns_unit = 1;
	return sp;
}
