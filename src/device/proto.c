/* proto.c - the command protocol of one ESP8266 loader: frames, replies,
 * commands (the connect sequence is connect.c); see include/espline/loader.h. */
#include "espline/loader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/dev_bytes.h"
#include "device/loader_int.h"
#include "espline/slip.h"
#include "util/clock.h"

/* ---- state, events ----------------------------------------------- */

enum espl_loader_mode espl_loader_mode(const espl_loader *l) { return l->mode; }
unsigned espl_loader_baud(const espl_loader *l) { return l->port->baud; }
espl_port *espl_loader_port(espl_loader *l) { return l->port; }
const espl_loader_options *espl_loader_opts(const espl_loader *l) { return &l->opt; }
size_t espl_loader_flash_size(const espl_loader *l) { return l->flash_size; }
void espl_loader_set_flash_size(espl_loader *l, size_t bytes) { l->flash_size = bytes; }
unsigned espl_loader_last_status(const espl_loader *l) { return l->last_status; }

int espl_loader_last_was_rejected_block(const espl_loader *l)
{
	/* Both stubs check a data block's length and checksum before any of it
	 * reaches the inflater or the flash, and report a write error of an
	 * earlier block under other codes (C4, C7, C8, C9): docs/
	 * simulator-fidelity.md rows 7 and 7b. */
	if (l->mode == ESPL_MODE_STUB)
		return (l->last_status >> 8) == 0xC0 || (l->last_status >> 8) == 0xC1;
	return l->last_status == 0x0107;
}

unsigned espl_loader_connects(const espl_loader *l)
{
	return l->connects;
}

unsigned espl_loader_rom_baud(const espl_loader *l)
{
	return l->rom_baud;
}

void espl_loader_log(espl_loader *l, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!l->opt.events.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	l->opt.events.log(l->opt.events.ctx, level, msg);
}

void espl_loader_progress(espl_loader *l, const espl_progress *p)
{
	if (l->opt.events.progress)
		l->opt.events.progress(l->opt.events.ctx, p);
}

int espl_timeout_for(unsigned ms_per_mb, size_t bytes)
{
	double ms = (double)ms_per_mb * (double)bytes / 1e6;
	if (ms < ESPL_TIMEOUT_DEFAULT_MS)
		return ESPL_TIMEOUT_DEFAULT_MS;
	if (ms > ESPL_TIMEOUT_MAX_MS)
		return ESPL_TIMEOUT_MAX_MS;
	return (int)ms;
}

uint8_t espl_checksum(const uint8_t *data, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		seed ^= data[i];
	return seed;
}

static const char *op_name(uint8_t op)
{
	switch (op) {
	case ESPL_OP_FLASH_BEGIN: return "FLASH_BEGIN";
	case ESPL_OP_FLASH_DATA: return "FLASH_DATA";
	case ESPL_OP_FLASH_END: return "FLASH_END";
	case ESPL_OP_MEM_BEGIN: return "MEM_BEGIN";
	case ESPL_OP_MEM_END: return "MEM_END";
	case ESPL_OP_MEM_DATA: return "MEM_DATA";
	case ESPL_OP_SYNC: return "SYNC";
	case ESPL_OP_WRITE_REG: return "WRITE_REG";
	case ESPL_OP_READ_REG: return "READ_REG";
	case ESPL_OP_SPI_SET_PARAMS: return "SPI_SET_PARAMS";
	case ESPL_OP_SPI_ATTACH: return "SPI_ATTACH";
	case ESPL_OP_CHANGE_BAUDRATE: return "CHANGE_BAUDRATE";
	case ESPL_OP_FLASH_DEFL_BEGIN: return "FLASH_DEFL_BEGIN";
	case ESPL_OP_FLASH_DEFL_DATA: return "FLASH_DEFL_DATA";
	case ESPL_OP_FLASH_DEFL_END: return "FLASH_DEFL_END";
	case ESPL_OP_SPI_FLASH_MD5: return "SPI_FLASH_MD5";
	case ESPL_OP_ERASE_FLASH: return "ERASE_FLASH";
	case ESPL_OP_ERASE_REGION: return "ERASE_REGION";
	case ESPL_OP_READ_FLASH: return "READ_FLASH";
	case ESPL_OP_RUN_USER_CODE: return "RUN_USER_CODE";
	default: return "command";
	}
}

static const char *rom_error_text(uint8_t code)
{
	switch (code) {
	case 0x01: return "invalid parameter";
	case 0x02: return "out of memory";
	case 0x03: return "failed to send";
	case 0x04: return "failed to receive";
	case 0x05: return "invalid message (unsupported command or bad length)";
	case 0x06: return "execution failed";
	case 0x07: return "bad data checksum";
	case 0x08: return "flash write failed (read-back differs)";
	case 0x09: return "flash read failed";
	case 0x0A: return "flash read length error";
	default: return "undefined error";
	}
}

static const char *stub_error_text(uint8_t code)
{
	switch (code) {
	case 0xC0: return "bad data length";
	case 0xC1: return "bad data checksum";
	case 0xC2: return "bad block size";
	case 0xC3: return "invalid command";
	case 0xC4: return "SPI flash operation failed";
	case 0xC5: return "SPI flash unlock failed (write-protected)";
	case 0xC6: return "not in flash mode";
	case 0xC7: return "inflate (decompression) error";
	case 0xC8: return "not enough data";
	case 0xC9: return "too much data";
	case 0xFF: return "command not implemented";
	case 0x01: return "a failure (the legacy stub reports most failures as 1)";
	case 0x32: return "erase address not sector-aligned";
	case 0x33: return "erase length not sector-aligned";
	case 0x34: return "flash unlock failed";
	case 0x35: case 0x36: case 0x37: return "flash erase failed";
	case 0x63: return "flash read failed";
	default: return "unknown error";
	}
}

/* What to tell the operator about a device-side failure. */
static const char *status_hint(int mode, unsigned status)
{
	unsigned code = mode == ESPL_MODE_STUB ? status >> 8 : status & 0xFF;
	if ((mode == ESPL_MODE_STUB && code == 0xC1) || (mode == ESPL_MODE_ROM && code == 0x07))
		return "; bytes were corrupted on the serial line: check the cable, or lower --flash-baud";
	if ((mode == ESPL_MODE_STUB && (code == 0xC4 || code == 0x35 || code == 0x36 || code == 0x37)) ||
	    (mode == ESPL_MODE_ROM && code == 0x08))
		return "; the flash chip did not take the write: reject the module if it repeats";
	return "";
}

/* ---- bytes and frames -------------------------------------------------- */

static void rx_clear(espl_loader *l)
{
	l->rx_pos = l->rx_len = 0;
	espl_slip_decoder_reset(&l->dec);
}

int espl__loader_flush_input(espl_loader *l, espl_error *err)
{
	rx_clear(l);
	return espl_port_flush_input(l->port, err);
}

static void note_noise(espl_loader *l, uint8_t byte)
{
	l->noise++;
	if (l->noise_len < sizeof l->noise_text - 1)
		l->noise_text[l->noise_len++] = (char)byte;
}

void espl__loader_clear_noise(espl_loader *l)
{
	l->noise = 0;
	l->noise_len = 0;
}

/* Instead of flushing (which would hide what the chip printed), read and
 * count whatever is waiting, then start the decoder afresh. */
int espl__loader_discard_input(espl_loader *l, espl_error *err)
{
	uint8_t buf[512];
	for (int i = 0; i < 64; i++) {
		int n = espl_port_read(l->port, buf, sizeof buf, 0, err);
		if (n == ESPL_ETIMEOUT)
			break;
		if (n < 0)
			return n;
		for (int k = 0; k < n; k++)
			note_noise(l, buf[k]);
	}
	rx_clear(l);
	return 0;
}

/* A port error code rc passed on; a vanished port says so in the words the
 * operator needs, whether it was noticed reading or writing. */
static int port_failed(espl_error *err, int rc)
{
	if (rc == ESPL_EDISCONNECTED)
		espl_error_prefix(err, "lost the connection to the chip");
	return rc;
}

int espl_loader_read_frame(espl_loader *l, int timeout_ms, const uint8_t **frame, size_t *len,
			   espl_error *err)
{
	int64_t deadline = espl__now_ms() + timeout_ms;
	int last_chance = 0;

	for (;;) {
		while (l->rx_pos < l->rx_len) {
			switch (espl_slip_feed(&l->dec, l->rx[l->rx_pos++])) {
			case ESPL_SLIP_FRAME:
				*frame = l->dec.frame;
				*len = l->dec.len;
				return 0;
			case ESPL_SLIP_GARBAGE:
				note_noise(l, l->rx[l->rx_pos - 1]);
				break;
			default:
				break;
			}
		}
		/* Past the deadline, look once more at what already arrived,
		 * then stop: a chip spewing text must not keep us here. */
		int left = espl__ms_left(deadline);
		if (left == 0 && last_chance)
			break;
		last_chance = left == 0;
		int n = espl_port_read(l->port, l->rx, sizeof l->rx, left, err);
		if (n == ESPL_ETIMEOUT)
			break;
		if (n < 0)
			return port_failed(err, n);
		l->rx_pos = 0;
		l->rx_len = (size_t)n;
	}
	if (l->dec.in_frame && l->dec.len > 0)
		return espl_fail(err, ESPL_ETIMEOUT, "reply stopped after %zu bytes (no end of frame "
				 "within %d ms)", l->dec.len, timeout_ms);
	return espl_fail(err, ESPL_ETIMEOUT, "no reply within %d ms", timeout_ms);
}

int espl_loader_write_frame(espl_loader *l, const uint8_t *data, size_t len, espl_error *err)
{
	ESPL_TRY(espl__loader_cancelled(l, err));
	if (ESPL_SLIP_ENCODED_MAX(len) > sizeof l->tx)
		return espl_fail(err, ESPL_EARG, "frame of %zu bytes is too long", len);
	size_t n = espl_slip_encode(data, len, l->tx);
	return espl_port_write(l->port, l->tx, n, err) < 0 ? port_failed(err, err->code) : 0;
}

/* Encode header + two payload parts into one frame and write it once. */
int espl__loader_send_command(espl_loader *l, uint8_t op, const uint8_t *a, size_t alen,
			      const uint8_t *b, size_t blen, uint32_t chk, espl_error *err)
{
	uint8_t hdr[HEADER_LEN];
	size_t total = alen + blen, n = 0;

	ESPL_TRY(espl__loader_cancelled(l, err));
	if (ESPL_SLIP_ENCODED_MAX(HEADER_LEN + total) > sizeof l->tx)
		return espl_fail(err, ESPL_EARG, "%s payload of %zu bytes is too long", op_name(op), total);
	hdr[0] = 0x00;
	hdr[1] = op;
	hdr[2] = (uint8_t)total;
	hdr[3] = (uint8_t)(total >> 8);
	espl__put_le32(hdr + 4, chk);
	l->tx[n++] = ESPL_SLIP_END;
	n += espl_slip_escape(hdr, sizeof hdr, l->tx + n);
	if (alen)
		n += espl_slip_escape(a, alen, l->tx + n);
	if (blen)
		n += espl_slip_escape(b, blen, l->tx + n);
	l->tx[n++] = ESPL_SLIP_END;
	if (espl_port_write(l->port, l->tx, n, err) < 0) {
		espl_error_prefix(err, "sending %s", op_name(op));
		return port_failed(err, err->code);
	}
	return 0;
}

/* Status [1, error] while the stub should be running: the ROM answered. */
static int rom_answered(uint8_t op, unsigned status, espl_error *err)
{
	return espl_fail(err, ESPL_EDEVICE, "%s failed: the chip answered like its ROM loader "
			 "(status 0x%04X): it was reset during the operation, and the flasher stub "
			 "is gone. Check the supply and the EN/RST line, then start again",
			 op_name(op), status);
}

/* Check a reply to op's status bytes; fill the caller's outputs. */
static int check_reply(int mode, uint8_t op, const uint8_t *f, size_t flen, uint32_t *value,
		       uint8_t *out, size_t out_cap, size_t *out_len, unsigned *status, espl_error *err)
{
	size_t size = (size_t)f[2] | (size_t)f[3] << 8;
	const uint8_t *data = f + HEADER_LEN;
	size_t dlen = flen - HEADER_LEN;

	if (size < dlen)
		dlen = size;
	if (value)
		*value = espl__get_le32(f + 4);
	if (op == ESPL_OP_READ_REG) {
		/* Only data[0] counts: ESP32-family ROMs send 4 status bytes. */
		*status = dlen >= 2 ? (unsigned)data[0] << 8 | data[1] : 0;
		if (dlen >= 1 && data[0] != 0)
			return espl_fail(err, ESPL_EDEVICE, "READ_REG failed (status 0x%04X)", *status);
		if (out_len)
			*out_len = 0;
		return 0;
	}
	if (dlen < 2)
		return espl_fail(err, ESPL_EPROTO, "%s reply has no status bytes", op_name(op));
	*status = (unsigned)data[dlen - 2] << 8 | data[dlen - 1];
	/* ROM-style status while the stub should be running.  The legacy stub
	 * also sends [1, 0] (its `||` of two checks), never with an error code. */
	if (mode == ESPL_MODE_STUB && data[dlen - 2] == 0x01 && data[dlen - 1] != 0 && op != ESPL_OP_SYNC)
		return rom_answered(op, *status, err);
	if (data[dlen - 2] != 0) {
		const char *text = mode == ESPL_MODE_STUB ? stub_error_text(data[dlen - 2])
							  : rom_error_text(data[dlen - 1]);
		return espl_fail(err, ESPL_EDEVICE, "%s failed: the %s reported %s (status 0x%04X)%s",
				 op_name(op), mode == ESPL_MODE_STUB ? "flasher stub" : "ROM loader",
				 text, *status, status_hint(mode, *status));
	}
	dlen -= 2;
	if (out) {
		size_t n = dlen < out_cap ? dlen : out_cap;
		memcpy(out, data, n);
	}
	if (out_len)
		*out_len = dlen;
	return 0;
}

int espl_loader_parse_reply(enum espl_loader_mode mode, uint8_t op, const uint8_t *frame, size_t len, uint32_t *value,
			    uint8_t *out, size_t out_cap, size_t *out_len, unsigned *status,
			    espl_error *err)
{
	unsigned ignored;
	if (!status)
		status = &ignored;
	*status = 0;
	if (!frame || len < HEADER_LEN || frame[0] != 0x01)
		return 1; /* noise, or a stray frame */
	if (frame[1] != op) {
		/* The ROM's answer to a command it lacks: [non-zero, 0x05] under
		 * another op (esptool and esptool-js test it the same way).  From
		 * a chip that should be running the stub, it means a reset. */
		if (len >= HEADER_LEN + 2 && frame[HEADER_LEN] != 0 && frame[HEADER_LEN + 1] == 0x05 &&
		    frame[1] != ESPL_OP_SYNC) {
			*status = (unsigned)frame[HEADER_LEN] << 8 | frame[HEADER_LEN + 1];
			if (mode == ESPL_MODE_STUB)
				return rom_answered(op, *status, err);
			return espl_fail(err, ESPL_EUNSUPPORTED, "%s: the chip does not support this "
					 "command", op_name(op));
		}
		return 1; /* e.g. a surplus SYNC reply */
	}
	return check_reply(mode, op, frame, len, value, out, out_cap, out_len, status, err);
}

/* The ROM sends its "unsupported" reply eight times: read the copies still
 * coming, so none answers the next command (esptool drains them too).  At
 * 115200 baud a copy takes about 1 ms. */
#define DRAIN_QUIET_MS 30
static void drain_repeats(espl_loader *l)
{
	for (int i = 0; i < 7; i++) {
		const uint8_t *f;
		size_t flen;
		espl_error ignored;
		if (espl_loader_read_frame(l, DRAIN_QUIET_MS, &f, &flen, &ignored) < 0)
			return;
	}
}

static int await_reply(espl_loader *l, uint8_t op, int timeout_ms, uint32_t *value, uint8_t *out,
		       size_t out_cap, size_t *out_len, espl_error *err)
{
	int64_t deadline = espl__now_ms() + timeout_ms;

	for (int skipped = 0; skipped < MAX_SKIPPED_REPLIES; skipped++) {
		const uint8_t *f;
		size_t flen;
		unsigned status;
		int rc = espl_loader_read_frame(l, espl__ms_left(deadline), &f, &flen, err);
		if (rc < 0) {
			espl_error_prefix(err, "%s", op_name(op));
			return rc;
		}
		int other_op = flen >= 2 && f[1] != op;
		rc = espl_loader_parse_reply(l->mode, op, f, flen, value, out, out_cap, out_len, &status,
					     err);
		if (rc == 1)
			continue;
		if (rc < 0 && other_op)
			drain_repeats(l);
		if (rc != ESPL_EUNSUPPORTED)
			l->last_status = status;
		return rc;
	}
	return espl_fail(err, ESPL_EPROTO, "%s: %d replies arrived, none for this command",
			 op_name(op), MAX_SKIPPED_REPLIES);
}

static int command2(espl_loader *l, uint8_t op, const uint8_t *a, size_t alen, const uint8_t *b,
		    size_t blen, uint32_t chk, int timeout_ms, uint32_t *value, uint8_t *out,
		    size_t out_cap, size_t *out_len, espl_error *err)
{
	ESPL_TRY(espl__loader_send_command(l, op, a, alen, b, blen, chk, err));
	return await_reply(l, op, timeout_ms, value, out, out_cap, out_len, err);
}

int espl_loader_command(espl_loader *l, uint8_t op, const uint8_t *data, size_t len, uint32_t chk,
			int timeout_ms, uint32_t *value, uint8_t *out, size_t out_cap, size_t *out_len,
			espl_error *err)
{
	return command2(l, op, data, len, NULL, 0, chk, timeout_ms, value, out, out_cap, out_len, err);
}

/* Failures a second identical command may not repeat: the reply was lost or
 * garbled, or a byte of the command was, and the chip refused it.  Not a
 * lost port, and never a definite answer from a higher layer. */
int espl__loader_link_error(int rc)
{
	return rc == ESPL_ETIMEOUT || rc == ESPL_EPROTO || rc == ESPL_EDEVICE ||
	       rc == ESPL_EUNSUPPORTED;
}

/* A fence value no earlier reply carried: never 0, ~0 or the last read. */
static uint32_t fence_value(int attempt, uint32_t avoid)
{
	uint32_t v = (uint32_t)espl__now_ms() * 2654435761u ^ 0x5EED0000u ^ (uint32_t)attempt << 24;
	if (v == 0 || v == 0xFFFFFFFFu || v == avoid)
		v ^= 0x00A5A500u;
	return v;
}

/* Write v to the fence word, then read it back: every READ_REG reply before
 * the one that carries v is stale (replies come in the order the chip got
 * the commands) and is skipped. */
static int fence_once(espl_loader *l, uint32_t v, espl_error *err)
{
	uint8_t p[16];
	espl__put_write_reg(p, FENCE_REG, v, 0xFFFFFFFFu, 0);
	ESPL_TRY(espl_loader_command(l, ESPL_OP_WRITE_REG, p, sizeof p, 0, ESPL_TIMEOUT_DEFAULT_MS,
				     NULL, NULL, 0, NULL, err));
	ESPL_TRY(espl__loader_send_command(l, ESPL_OP_READ_REG, p, 4, NULL, 0, 0, err));
	int64_t deadline = espl__now_ms() + ESPL_TIMEOUT_DEFAULT_MS;
	for (int skipped = 0; skipped < MAX_SKIPPED_REPLIES; skipped++) {
		uint32_t got = 0;
		ESPL_TRY(await_reply(l, ESPL_OP_READ_REG, espl__ms_left(deadline), &got, NULL, 0, NULL,
				     err));
		if (got == v)
			return ESPL_OK;
	}
	return espl_fail(err, ESPL_EPROTO, "fencing stale replies: %d replies arrived, none with "
			 "the fence value", MAX_SKIPPED_REPLIES);
}

/* A command was sent again and answered: the first copy may still come (a
 * stalled line delivers both late), and its reply would answer the next
 * command of its kind: each READ_REG would return the register before it
 * (a PASS recorded with MAC 18:fe:34:00:00:00).  Replies have no sequence
 * number, so fence the line. */
static int fence_stale_replies(espl_loader *l, uint32_t last_value, espl_error *err)
{
	int rc = ESPL_OK;
	for (int attempt = 1; attempt <= IDEMPOTENT_ATTEMPTS; attempt++) {
		rc = fence_once(l, fence_value(attempt, last_value), err);
		if (rc >= 0 || !espl__loader_link_error(rc))
			return rc;
		espl_error ignored;
		if (espl__loader_flush_input(l, &ignored) < 0) {
			*err = ignored;
			return ignored.code;
		}
	}
	espl_error_prefix(err, "after a command sent again");
	return rc;
}

int espl_loader_command_idempotent(espl_loader *l, uint8_t op, const uint8_t *data, size_t len,
				   uint32_t chk, int timeout_ms, uint32_t *value, uint8_t *out,
				   size_t out_cap, size_t *out_len, espl_error *err)
{
	for (int attempt = 1;; attempt++) {
		uint32_t got = 0;
		int rc = espl_loader_command(l, op, data, len, chk, timeout_ms, &got, out, out_cap,
					     out_len, err);
		if (value)
			*value = got;
		if (rc >= 0 && attempt > 1)
			return fence_stale_replies(l, got, err);
		if (rc >= 0 || !espl__loader_link_error(rc) || attempt >= IDEMPOTENT_ATTEMPTS)
			return rc;
		espl_loader_log(l, ESPL_LOG_DEBUG, "%s; sending %s again", err->msg, op_name(op));
		/* A stale or half-received reply must not answer the next try. */
		espl_error ignored;
		if (espl__loader_flush_input(l, &ignored) < 0) {
			*err = ignored;
			return ignored.code;
		}
	}
}

/* ---- simple commands ---------------------------------------------------- */

int espl_loader_read_reg(espl_loader *l, uint32_t addr, uint32_t *value, espl_error *err)
{
	uint8_t p[4];
	espl__put_le32(p, addr);
	int rc = espl_loader_command_idempotent(l, ESPL_OP_READ_REG, p, sizeof p, 0,
						ESPL_TIMEOUT_DEFAULT_MS, value, NULL, 0, NULL, err);
	if (rc < 0)
		espl_error_prefix(err, "reading register 0x%08X", addr);
	return rc;
}

int espl_loader_write_reg(espl_loader *l, uint32_t addr, uint32_t value, uint32_t mask,
			  uint32_t delay_us, espl_error *err)
{
	uint8_t p[16];
	espl__put_write_reg(p, addr, value, mask, delay_us);
	int rc = espl_loader_command_idempotent(l, ESPL_OP_WRITE_REG, p, sizeof p, 0,
						ESPL_TIMEOUT_DEFAULT_MS, NULL, NULL, 0, NULL, err);
	if (rc < 0)
		espl_error_prefix(err, "writing register 0x%08X", addr);
	return rc;
}

int espl_loader_mem_begin(espl_loader *l, uint32_t size, uint32_t blocks, uint32_t block_size,
			  uint32_t addr, espl_error *err)
{
	uint8_t p[16];
	espl__put_le32(p, size);
	espl__put_le32(p + 4, blocks);
	espl__put_le32(p + 8, block_size);
	espl__put_le32(p + 12, addr);
	return espl_loader_command(l, ESPL_OP_MEM_BEGIN, p, sizeof p, 0, ESPL_TIMEOUT_DEFAULT_MS,
				   NULL, NULL, 0, NULL, err);
}

static void data_header(uint8_t h[DATA_HEADER_LEN], size_t len, uint32_t seq)
{
	memset(h, 0, DATA_HEADER_LEN);
	espl__put_le32(h, (uint32_t)len);
	espl__put_le32(h + 4, seq);
}

int espl_loader_mem_data(espl_loader *l, const uint8_t *data, size_t len, uint32_t seq,
			 espl_error *err)
{
	uint8_t h[DATA_HEADER_LEN];
	data_header(h, len, seq);
	return command2(l, ESPL_OP_MEM_DATA, h, sizeof h, data, len, espl_checksum(data, len, 0xEF),
			ESPL_TIMEOUT_DEFAULT_MS, NULL, NULL, 0, NULL, err);
}

int espl_loader_mem_end(espl_loader *l, uint32_t entry, espl_error *err)
{
	uint8_t p[8];
	espl__put_le32(p, entry == 0);
	espl__put_le32(p + 4, entry);
	if (l->mode == ESPL_MODE_ROM && entry != 0) {
		/* The jump may overtake the reply: a missing one is fine. */
		espl_error tmp;
		int rc = espl_loader_command(l, ESPL_OP_MEM_END, p, sizeof p, 0, MEM_END_ROM_MS, NULL,
					     NULL, 0, NULL, &tmp);
		if (rc == ESPL_EDISCONNECTED) {
			if (err)
				*err = tmp;
			return rc;
		}
		return 0;
	}
	return espl_loader_command(l, ESPL_OP_MEM_END, p, sizeof p, 0, ESPL_TIMEOUT_DEFAULT_MS,
				   NULL, NULL, 0, NULL, err);
}

uint32_t espl_rom_erase_size(uint32_t offset, uint32_t size)
{
	uint32_t sectors = (size + ESPL_SECTOR_SIZE - 1) / ESPL_SECTOR_SIZE;
	uint32_t start = offset / ESPL_SECTOR_SIZE;
	uint32_t head = 16 - start % 16;

	if (sectors < head)
		head = sectors;
	if (sectors < 2 * head)
		return (sectors + 1) / 2 * ESPL_SECTOR_SIZE;
	return (sectors - head) * ESPL_SECTOR_SIZE;
}

int espl__loader_require_stub(espl_loader *l, const char *what, espl_error *err)
{
	if (l->mode == ESPL_MODE_STUB)
		return 0;
	return espl_fail(err, ESPL_EUNSUPPORTED, "%s needs the flasher stub; the ESP8266 ROM loader "
			 "cannot do it (do not use --no-stub for this)", what);
}

int espl_loader_flash_begin(espl_loader *l, int compressed, uint32_t size, uint32_t blocks,
			    uint32_t block_size, uint32_t offset, espl_error *err)
{
	uint8_t p[16];
	int timeout = ESPL_TIMEOUT_DEFAULT_MS;
	uint32_t erase = size;

	if (compressed)
		ESPL_TRY(espl__loader_require_stub(l, "compressed writing", err));
	if (l->mode == ESPL_MODE_ROM) {
		/* The ROM erases everything before it replies. */
		erase = espl_rom_erase_size(offset, size);
		timeout = espl_timeout_for(ESPL_ERASE_MS_PER_MB, size);
	}
	espl__put_le32(p, erase);
	espl__put_le32(p + 4, blocks);
	espl__put_le32(p + 8, block_size);
	espl__put_le32(p + 12, offset);
	if (size == 0 && !compressed)
		/* FLASH_BEGIN(0, 0) only attaches the SPI flash: safe to repeat. */
		return espl_loader_command_idempotent(l, ESPL_OP_FLASH_BEGIN, p, sizeof p, 0, timeout,
						      NULL, NULL, 0, NULL, err);
	return espl_loader_command(l, compressed ? ESPL_OP_FLASH_DEFL_BEGIN : ESPL_OP_FLASH_BEGIN, p,
				   sizeof p, 0, timeout, NULL, NULL, 0, NULL, err);
}

int espl_loader_flash_data(espl_loader *l, int compressed, const uint8_t *data, size_t len,
			   uint32_t seq, int timeout_ms, espl_error *err)
{
	uint8_t h[DATA_HEADER_LEN];
	data_header(h, len, seq);
	return command2(l, compressed ? ESPL_OP_FLASH_DEFL_DATA : ESPL_OP_FLASH_DATA, h, sizeof h,
			data, len, espl_checksum(data, len, 0xEF), timeout_ms, NULL, NULL, 0, NULL, err);
}

int espl_loader_flash_end(espl_loader *l, int compressed, int run_app, int timeout_ms,
			  espl_error *err)
{
	uint8_t p[4];
	espl__put_le32(p, run_app ? 0 : 1);
	return espl_loader_command(l, compressed ? ESPL_OP_FLASH_DEFL_END : ESPL_OP_FLASH_END, p,
				   sizeof p, 0, timeout_ms, NULL, NULL, 0, NULL, err);
}

int espl_loader_spi_set_params(espl_loader *l, uint32_t flash_size, espl_error *err)
{
	uint8_t p[24];
	ESPL_TRY(espl__loader_require_stub(l, "SPI_SET_PARAMS", err));
	espl__put_le32(p, 0);
	espl__put_le32(p + 4, flash_size);
	espl__put_le32(p + 8, 0x10000);
	espl__put_le32(p + 12, 0x1000);
	espl__put_le32(p + 16, 0x100);
	espl__put_le32(p + 20, 0xFFFF);
	return espl_loader_command_idempotent(l, ESPL_OP_SPI_SET_PARAMS, p, sizeof p, 0,
					      ESPL_TIMEOUT_DEFAULT_MS, NULL, NULL, 0, NULL, err);
}

int espl_loader_wait_ohai(espl_loader *l, int timeout_ms, espl_error *err)
{
	int64_t deadline = espl__now_ms() + timeout_ms;

	for (;;) {
		const uint8_t *f;
		size_t len;
		int rc = espl_loader_read_frame(l, espl__ms_left(deadline), &f, &len, err);
		if (rc < 0) {
			espl_error_prefix(err, "the flasher stub did not start (no \"OHAI\" greeting)");
			return rc;
		}
		if (len == 4 && memcmp(f, "OHAI", 4) == 0) {
			l->mode = ESPL_MODE_STUB;
			return 0;
		}
		/* A late MEM_END reply may come first; anything else is wrong. */
		if (len >= HEADER_LEN && f[0] == 0x01)
			continue;
		return espl_fail(err, ESPL_EPROTO, "the flasher stub did not start: expected \"OHAI\", "
				 "got a %zu-byte frame; is the stub file for the ESP8266?", len);
	}
}

