/* loader.c - the command protocol and connection to one ESP8266 loader;
 * see include/espline/loader.h. */
#include "espline/loader.h"
#include "util/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/dev_bytes.h"
#include "espline/esp8266.h"
#include "espline/reset.h"
#include "espline/slip.h"
#include "espline/stub.h"

#define FRAME_CAP (ESPL_STUB_WRITE_BLOCK + 64)
#define HEADER_LEN 8
#define DATA_HEADER_LEN 16
/* Largest command: a 16 KiB data block with its two headers. */
#define TX_CAP ESPL_SLIP_ENCODED_MAX(HEADER_LEN + DATA_HEADER_LEN + ESPL_STUB_WRITE_BLOCK)
#define MAX_SKIPPED_REPLIES 100
#define SYNC_TRIES_PER_RESET 5
#define SYNC_REPLY_MS 100
/* Connect rounds given to a ROM rate above 115200 before falling back. */
#define FAST_SYNC_ROUNDS 2
#define SYNC_EXTRA_REPLIES 7
#define MEM_END_ROM_MS 500
#define OHAI_MS 3000
/* Tries of a command that may safely be sent twice (a lost or corrupted
 * reply, or a corrupted command the chip rejected). */
#define IDEMPOTENT_ATTEMPTS 3
/* Uploads of the flasher stub before connect gives up. */
#define STUB_UPLOAD_ATTEMPTS 3
/* SYNC tries at the current rate before a reconnect resets the chip. */
#define RESYNC_TRIES 3

struct espl_loader {
	espl_port *port;
	espl_loader_options opt;
	char *stub_path;          /* owned copy of opt.stub_path */
	int mode;
	size_t flash_size;
	unsigned last_status;

	/* receive side: raw bytes read but not yet decoded, and the decoder */
	uint8_t rx[4096];
	size_t rx_pos, rx_len;
	uint8_t frame[FRAME_CAP];
	espl_slip_decoder dec;
	size_t noise;             /* bytes outside frames since the last reset */
	char noise_text[72];      /* the first of them, to show the operator */
	size_t noise_len;

	int synced;               /* a SYNC was answered since the loader was made */
	unsigned rom_baud;        /* rate the ROM syncs at: opt.baud, or 115200 after a fallback */
	unsigned connects;        /* full connects (reset, sync, stub) so far */

	uint8_t tx[TX_CAP];
};

/* ---- options, state, events -------------------------------------------- */

void espl_loader_options_init(espl_loader_options *o)
{
	memset(o, 0, sizeof *o);
	o->reset = ESPL_RESET_AUTO;
}

static void apply_defaults(espl_loader_options *o)
{
	if (!o->baud)
		o->baud = ESPL_DEFAULT_BAUD;
	if (!o->flash_baud)
		o->flash_baud = ESPL_DEFAULT_FLASH_BAUD;
	if (o->connect_attempts <= 0)
		o->connect_attempts = 7;
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = 20000;
	if (o->write_block_attempts <= 0)
		o->write_block_attempts = 3;
}

int espl_loader_mode(const espl_loader *l) { return l->mode; }
unsigned espl_loader_baud(const espl_loader *l) { return l->port->baud; }
espl_port *espl_loader_port(espl_loader *l) { return l->port; }
const espl_loader_options *espl_loader_opts(const espl_loader *l) { return &l->opt; }
size_t espl_loader_flash_size(const espl_loader *l) { return l->flash_size; }
void espl_loader_set_flash_size(espl_loader *l, size_t bytes) { l->flash_size = bytes; }
unsigned espl_loader_last_status(const espl_loader *l) { return l->last_status; }

int espl_loader_last_was_checksum_error(const espl_loader *l)
{
	if (l->mode == ESPL_MODE_STUB)
		return (l->last_status >> 8) == 0xC1;
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

static int flush_input(espl_loader *l, espl_error *err)
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

static void clear_noise(espl_loader *l)
{
	l->noise = 0;
	l->noise_len = 0;
}

/* Instead of flushing (which would hide what the chip printed), read and
 * count whatever is waiting, then start the decoder afresh. */
static int discard_input(espl_loader *l, espl_error *err)
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
	if (ESPL_SLIP_ENCODED_MAX(len) > sizeof l->tx)
		return espl_fail(err, ESPL_EARG, "frame of %zu bytes is too long", len);
	size_t n = espl_slip_encode(data, len, l->tx);
	return espl_port_write(l->port, l->tx, n, err) < 0 ? port_failed(err, err->code) : 0;
}

/* Encode header + two payload parts into one frame and write it once. */
static int send_command(espl_loader *l, uint8_t op, const uint8_t *a, size_t alen,
			const uint8_t *b, size_t blen, uint32_t chk, espl_error *err)
{
	uint8_t hdr[HEADER_LEN];
	size_t total = alen + blen, n = 0;

	if (ESPL_SLIP_ENCODED_MAX(HEADER_LEN + total) > sizeof l->tx)
		return espl_fail(err, ESPL_EARG, "%s payload of %zu bytes is too long", op_name(op), total);
	hdr[0] = 0x00;
	hdr[1] = op;
	hdr[2] = (uint8_t)total;
	hdr[3] = (uint8_t)(total >> 8);
	espl_put_le32(hdr + 4, chk);
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
		*value = espl_get_le32(f + 4);
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
	if (mode == ESPL_MODE_STUB && data[dlen - 2] == 0x01 && op != ESPL_OP_SYNC)
		/* ROM-style status while the stub should be running. */
		return espl_fail(err, ESPL_EDEVICE, "%s failed: the chip answered like its ROM loader "
				 "(status 0x%04X): it was reset during the operation, and the flasher stub "
				 "is gone. Check the supply and the EN/RST line, then start again",
				 op_name(op), *status);
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

int espl_loader_parse_reply(int mode, uint8_t op, const uint8_t *frame, size_t len, uint32_t *value,
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
		/* ROM "invalid message" for what we sent: no use waiting. */
		if (len >= HEADER_LEN + 2 && frame[HEADER_LEN] != 0 && frame[HEADER_LEN + 1] == 0x05 &&
		    frame[1] != ESPL_OP_SYNC)
			return espl_fail(err, ESPL_EUNSUPPORTED, "%s: the chip does not support this "
					 "command", op_name(op));
		return 1; /* e.g. a surplus SYNC reply */
	}
	return check_reply(mode, op, frame, len, value, out, out_cap, out_len, status, err);
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
		rc = espl_loader_parse_reply(l->mode, op, f, flen, value, out, out_cap, out_len, &status,
					     err);
		if (rc == 1)
			continue;
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
	ESPL_TRY(send_command(l, op, a, alen, b, blen, chk, err));
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
static int link_error(int rc)
{
	return rc == ESPL_ETIMEOUT || rc == ESPL_EPROTO || rc == ESPL_EDEVICE ||
	       rc == ESPL_EUNSUPPORTED;
}

int espl_loader_command_idempotent(espl_loader *l, uint8_t op, const uint8_t *data, size_t len,
				   uint32_t chk, int timeout_ms, uint32_t *value, uint8_t *out,
				   size_t out_cap, size_t *out_len, espl_error *err)
{
	for (int attempt = 1;; attempt++) {
		int rc = espl_loader_command(l, op, data, len, chk, timeout_ms, value, out, out_cap,
					     out_len, err);
		if (rc >= 0 || !link_error(rc) || attempt >= IDEMPOTENT_ATTEMPTS)
			return rc;
		espl_loader_log(l, ESPL_LOG_DEBUG, "%s; sending %s again", err->msg, op_name(op));
		/* A stale or half-received reply must not answer the next try. */
		espl_error ignored;
		if (flush_input(l, &ignored) < 0) {
			*err = ignored;
			return ignored.code;
		}
	}
}

/* ---- simple commands ---------------------------------------------------- */

int espl_loader_read_reg(espl_loader *l, uint32_t addr, uint32_t *value, espl_error *err)
{
	uint8_t p[4];
	espl_put_le32(p, addr);
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
	espl_put_le32(p, addr);
	espl_put_le32(p + 4, value);
	espl_put_le32(p + 8, mask);
	espl_put_le32(p + 12, delay_us);
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
	espl_put_le32(p, size);
	espl_put_le32(p + 4, blocks);
	espl_put_le32(p + 8, block_size);
	espl_put_le32(p + 12, addr);
	return espl_loader_command(l, ESPL_OP_MEM_BEGIN, p, sizeof p, 0, ESPL_TIMEOUT_DEFAULT_MS,
				   NULL, NULL, 0, NULL, err);
}

static void data_header(uint8_t h[DATA_HEADER_LEN], size_t len, uint32_t seq)
{
	memset(h, 0, DATA_HEADER_LEN);
	espl_put_le32(h, (uint32_t)len);
	espl_put_le32(h + 4, seq);
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
	espl_put_le32(p, entry == 0);
	espl_put_le32(p + 4, entry);
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

static int require_stub(espl_loader *l, const char *what, espl_error *err)
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
		ESPL_TRY(require_stub(l, "compressed writing", err));
	if (l->mode == ESPL_MODE_ROM) {
		/* The ROM erases everything before it replies. */
		erase = espl_rom_erase_size(offset, size);
		timeout = espl_timeout_for(ESPL_ERASE_MS_PER_MB, size);
	}
	espl_put_le32(p, erase);
	espl_put_le32(p + 4, blocks);
	espl_put_le32(p + 8, block_size);
	espl_put_le32(p + 12, offset);
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
	espl_put_le32(p, run_app ? 0 : 1);
	return espl_loader_command(l, compressed ? ESPL_OP_FLASH_DEFL_END : ESPL_OP_FLASH_END, p,
				   sizeof p, 0, timeout_ms, NULL, NULL, 0, NULL, err);
}

int espl_loader_spi_set_params(espl_loader *l, uint32_t flash_size, espl_error *err)
{
	uint8_t p[24];
	ESPL_TRY(require_stub(l, "SPI_SET_PARAMS", err));
	espl_put_le32(p, 0);
	espl_put_le32(p + 4, flash_size);
	espl_put_le32(p + 8, 0x10000);
	espl_put_le32(p + 12, 0x1000);
	espl_put_le32(p + 16, 0x100);
	espl_put_le32(p + 20, 0xFFFF);
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

/* ---- sync and connect --------------------------------------------------- */

/* One SYNC try: on success *all_zero says whether every reply's value was 0
 * (the stub answers 0, the ROM junk). */
static int sync_once(espl_loader *l, int *all_zero, espl_error *err)
{
	static const uint8_t hdr[4] = { 0x07, 0x07, 0x12, 0x20 };
	uint8_t payload[36];
	uint32_t value;

	memcpy(payload, hdr, 4);
	memset(payload + 4, 0x55, 32);
	ESPL_TRY(discard_input(l, err));
	ESPL_TRY(espl_loader_command(l, ESPL_OP_SYNC, payload, sizeof payload, 0, SYNC_REPLY_MS,
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
		if (len >= HEADER_LEN && f[0] == 0x01 && f[1] == ESPL_OP_SYNC && espl_get_le32(f + 4) != 0)
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

/* Reset (per the options) and sync, at most `attempts` rounds within
 * deadline; *stub_running as for sync_once. */
static int reset_and_sync(espl_loader *l, int attempts, int64_t deadline, int *stub_running,
			  espl_error *err)
{
	int64_t started = espl__now_ms();
	espl_error last;
	int attempt;

	espl_error_clear(&last);
	for (attempt = 0; attempt < attempts && espl__ms_left(deadline) > 0; attempt++) {
		if (l->opt.reset == ESPL_RESET_AUTO) {
			unsigned delay = attempt % 2 ? ESPL_RESET_LONG_DELAY_MS : ESPL_RESET_DELAY_MS;
			ESPL_TRY(flush_input(l, err));
			ESPL_TRY(espl_reset_to_bootloader(l->port, delay, err));
			clear_noise(l);
		}
		for (int t = 0; t < SYNC_TRIES_PER_RESET && espl__ms_left(deadline) > 0; t++) {
			int rc = sync_once(l, stub_running, &last);
			if (rc == 0) {
				l->synced = 1;
				espl_loader_log(l, ESPL_LOG_DEBUG, "synced after %d reset(s), %d tries",
						attempt + 1, t + 1);
				return 0;
			}
			if (rc == ESPL_EDISCONNECTED || rc == ESPL_ESYS || rc == ESPL_EPERM) {
				*err = last;
				return rc;
			}
			espl__sleep_ms(50);
		}
	}
	return sync_failed(l, attempt, started, &last, err);
}

/* A ROM rate above 115200: the ROM auto-bauds on SYNC, but some chips and
 * adapters fail at fast rates.  Give the fast rate a bounded share of the
 * connect rounds, then fall back to 115200, which every ROM syncs at, for
 * the rest (at least one round each, so a one-round presence probe still
 * finds such a unit; the time budget is shared, so a dead unit fails no
 * later than before). */
static int sync_with_fallback(espl_loader *l, int *stub_running, espl_error *err)
{
	int64_t deadline = espl__now_ms() + l->opt.connect_timeout_ms;
	int attempts = l->opt.connect_attempts;
	int fast = attempts - 1 < FAST_SYNC_ROUNDS ? attempts - 1 : FAST_SYNC_ROUNDS;

	if (fast < 1)
		fast = 1;
	if (l->rom_baud <= ESPL_DEFAULT_BAUD)
		return reset_and_sync(l, attempts, deadline, stub_running, err);
	int rc = reset_and_sync(l, fast, deadline, stub_running, err);
	if (rc != ESPL_ETIMEOUT)
		return rc;
	espl_loader_log(l, ESPL_LOG_WARN, "no answer from the ROM at %u baud in %d round(s); falling "
			"back to %u baud (use connect.baud/--baud %u if this board or adapter cannot "
			"sync fast)", l->rom_baud, fast, ESPL_DEFAULT_BAUD, ESPL_DEFAULT_BAUD);
	l->rom_baud = ESPL_DEFAULT_BAUD;
	ESPL_TRY(espl_port_set_baud(l->port, l->rom_baud, err));
	ESPL_TRY(flush_input(l, err));
	return reset_and_sync(l, attempts - fast > 1 ? attempts - fast : 1, deadline, stub_running, err);
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
		if (rc >= 0 || !link_error(rc))
			return rc;
		if (stub_answers(l)) {
			l->mode = ESPL_MODE_STUB;
			espl_loader_log(l, ESPL_LOG_DEBUG, "%s; but the flasher stub answers", err->msg);
			return 0;
		}
		if (attempt >= STUB_UPLOAD_ATTEMPTS)
			return rc;
		espl_loader_log(l, ESPL_LOG_WARN, "stub upload failed (%s); uploading it again", err->msg);
		ESPL_TRY(flush_input(l, err));
	}
}

static int upload_stub(espl_loader *l, espl_error *err)
{
	espl_stub own;
	const espl_stub *stub = l->opt.stub;
	int rc;

	if (!stub) {
		ESPL_TRY(espl_stub_find(l->stub_path, &own, err));
		stub = &own;
	}
	espl_loader_log(l, ESPL_LOG_DEBUG, "uploading flasher stub from %s", stub->path);
	rc = upload_with_restarts(l, stub, err);
	if (stub == &own)
		espl_stub_free(&own);
	return rc;
}

int espl_loader_change_baud(espl_loader *l, unsigned baud, espl_error *err)
{
	uint8_t p[8];
	unsigned old = l->port->baud;

	ESPL_TRY(require_stub(l, "changing the baud rate", err));
	espl_put_le32(p, baud);
	espl_put_le32(p + 4, old);
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
	return flush_input(l, err);
}

/* Switch to flash_baud and prove it works with one register read.  An
 * adapter that refuses the rate is found out before the chip is told, so
 * that case needs no reconnect: we just stay at the old rate. */
static int try_fast_baud(espl_loader *l, espl_error *err)
{
	uint32_t magic;
	unsigned old = l->port->baud;
	espl_error probe;
	if (espl_port_set_baud(l->port, l->opt.flash_baud, &probe) < 0) {
		ESPL_TRY(espl_port_set_baud(l->port, old, err));
		espl_loader_log(l, ESPL_LOG_WARN, "%s; staying at %u baud", probe.msg, old);
		return 0;
	}
	ESPL_TRY(espl_port_set_baud(l->port, old, err));
	int rc = espl_loader_change_baud(l, l->opt.flash_baud, err);
	if (rc < 0 && !link_error(rc))
		return rc;
	if (rc < 0) {
		/* The reply was lost or garbled: the stub may have switched or
		 * not.  Ask at the new rate, then at the old one. */
		espl_loader_log(l, ESPL_LOG_DEBUG, "%s; probing both rates", err->msg);
		ESPL_TRY(espl_port_set_baud(l->port, l->opt.flash_baud, err));
		espl__sleep_ms(20);
		ESPL_TRY(flush_input(l, err));
	}
	if (espl_loader_read_reg(l, ESPL_CHIP_MAGIC_REG, &magic, err) == 0 &&
	    magic == ESPL_ESP8266_MAGIC)
		return 0;
	if (rc < 0) {
		ESPL_TRY(espl_port_set_baud(l->port, old, err));
		ESPL_TRY(flush_input(l, err));
		if (espl_loader_read_reg(l, ESPL_CHIP_MAGIC_REG, &magic, err) == 0 &&
		    magic == ESPL_ESP8266_MAGIC) {
			espl_loader_log(l, ESPL_LOG_WARN, "the chip did not switch to %u baud; staying "
					"at %u baud", l->opt.flash_baud, old);
			return 0;
		}
	}
	return espl_fail(err, ESPL_ETIMEOUT, "no sane reply at %u baud", l->opt.flash_baud);
}

static int connect_once(espl_loader *l, int switch_baud, espl_error *err)
{
	int stub_running = 0;

	l->connects++;
	l->mode = ESPL_MODE_ROM;
	if (l->port->baud != l->rom_baud)
		ESPL_TRY(espl_port_set_baud(l->port, l->rom_baud, err));
	ESPL_TRY(sync_with_fallback(l, &stub_running, err));
	if (stub_running) {
		l->mode = ESPL_MODE_STUB;
		espl_loader_log(l, ESPL_LOG_INFO, "flasher stub already running");
	}
	ESPL_TRY(check_chip(l, err));
	if (l->opt.no_stub)
		return 0;
	if (l->mode == ESPL_MODE_ROM)
		ESPL_TRY(upload_stub(l, err));
	if (switch_baud && l->opt.flash_baud != l->port->baud)
		return try_fast_baud(l, err);
	return 0;
}

int espl_loader_reconnect(espl_loader *l, espl_error *err)
{
	int stub_running = 0;
	espl_error probe;

	ESPL_TRY(flush_input(l, err));
	/* The chip may still listen where we left it, stub and rate included. */
	for (int t = 0; t < RESYNC_TRIES; t++) {
		int rc = sync_once(l, &stub_running, &probe);
		if (rc == ESPL_EDISCONNECTED) {
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
	if (rc < 0 && l->mode == ESPL_MODE_STUB && l->opt.reset == ESPL_RESET_AUTO &&
	    l->opt.flash_baud != l->rom_baud && rc != ESPL_EDISCONNECTED) {
		/* The fast rate failed after the stub switched: the chip now
		 * listens at a rate we cannot use.  Start over at the old one. */
		espl_loader_log(l, ESPL_LOG_WARN, "%u baud did not work (%s); reconnecting at %u baud",
				l->opt.flash_baud, err ? err->msg : "", l->rom_baud);
		return connect_once(l, 0, err);
	}
	if (rc < 0 && l->synced && link_error(rc)) {
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

	rc = connect_with_retry(l, err);
	if (rc < 0) {
		espl_loader_close(l);
		return rc;
	}
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
		ESPL_TRY(send_command(l, ESPL_OP_RUN_USER_CODE, NULL, 0, NULL, 0, 0, err));
		ESPL_TRY(espl_port_drain(l->port, err));
		l->mode = ESPL_MODE_ROM;
		return 0;
	}
	return espl_fail(err, ESPL_EUNSUPPORTED, "cannot start the firmware: %s has no reset lines "
			 "and the ROM loader cannot jump to it; power-cycle the module",
			 l->port->name);
}
