/* fuzz_loader.c - libFuzzer target: the loader's reply handling
 * (src/device/proto.c await_reply/take_reply, and the parsers built on it in
 * src/device/esp8266.c and src/device/flash.c), driven through the public API.
 *
 * take_reply() is static, so the target goes through espl_loader_command()
 * and friends with a fake espl_port: during connect the port answers SYNC
 * and the chip-magic READ_REG like an ESP8266 ROM; after that, whatever the
 * loader writes is dropped and every read returns the next bytes of the
 * fuzz input, exactly as if a broken or hostile chip had sent them.
 *
 * Input: byte 0 = flags (bit 0: stub mode, by sending "OHAI" first; bit 1:
 * the port reports a disconnect, not a timeout, at the end of the input),
 * byte 1 = which operation, byte 2 = read chunk size (0 = all at once),
 * bytes 3..6 = a parameter word; the rest is the chip's byte stream.
 *
 * Checks: no memory error; a successful espl_loader_command never reports
 * more reply bytes than the reply carried and never writes past out_cap; a
 * failure always carries a message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/esp8266.h"
#include "espline/flash.h"
#include "espline/image.h"
#include "espline/loader.h"
#include "espline/reset.h"
#include "espline/slip.h"
#include "fuzz_util.h"

#define FUZZ_LD_QUEUE 4096

typedef struct fuzz_ld_port {
	espl_port base;
	int fuzzing;               /* 0: answer like a ROM; 1: replay input */
	const uint8_t *in;         /* fuzzing: the chip's bytes */
	size_t in_len, in_pos, chunk;
	int disconnect_at_end;
	uint8_t q[FUZZ_LD_QUEUE];  /* connect: queued replies */
	size_t q_len, q_pos;
	espl_slip_decoder dec;
	uint8_t frame[512];
} fuzz_ld_port;

static void fuzz_ld_reply(fuzz_ld_port *fp, uint8_t op, uint32_t value)
{
	uint8_t r[10] = { 0x01, op, 2, 0, 0, 0, 0, 0, 0, 0 };
	fuzz_put_le32(r + 4, value);
	if (fp->q_len + ESPL_SLIP_ENCODED_MAX(sizeof r) <= sizeof fp->q)
		fp->q_len += espl_slip_encode(r, sizeof r, fp->q + fp->q_len);
}

/* Just enough of a ROM loader for espl_loader_connect to succeed. */
static void fuzz_ld_answer(fuzz_ld_port *fp, const uint8_t *f, size_t n)
{
	if (n < 8 || f[0] != 0x00)
		return;
	if (f[1] == ESPL_OP_SYNC)
		fuzz_ld_reply(fp, f[1], 0x20120707u);
	else if (f[1] == ESPL_OP_READ_REG && n >= 12)
		fuzz_ld_reply(fp, f[1], fuzz_le32(f + 8) == ESPL_CHIP_MAGIC_REG ? ESPL_ESP8266_MAGIC : 0);
	else
		fuzz_ld_reply(fp, f[1], 0);
}

static int fuzz_ld_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	fuzz_ld_port *fp = (fuzz_ld_port *)p;
	(void)timeout_ms;
	const uint8_t *src = fp->fuzzing ? fp->in : fp->q;
	size_t *pos = fp->fuzzing ? &fp->in_pos : &fp->q_pos;
	size_t end = fp->fuzzing ? fp->in_len : fp->q_len;
	size_t avail = end - *pos;
	if (avail == 0) {
		if (fp->fuzzing && fp->disconnect_at_end)
			return espl_fail(err, ESPL_EDISCONNECTED, "%s: device went away", p->name);
		if (!fp->fuzzing)
			fp->q_len = fp->q_pos = 0;
		return espl_fail(err, ESPL_ETIMEOUT, "%s: nothing to read", p->name);
	}
	if (fp->fuzzing && fp->chunk && avail > fp->chunk)
		avail = fp->chunk;
	if (len > avail)
		len = avail;
	memcpy(buf, src + *pos, len);
	*pos += len;
	return (int)len;
}

static int fuzz_ld_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	fuzz_ld_port *fp = (fuzz_ld_port *)p;
	(void)err;
	if (fp->fuzzing)
		return (int)len;
	for (size_t i = 0; i < len; i++)
		if (espl_slip_feed(&fp->dec, buf[i]) == ESPL_SLIP_FRAME)
			fuzz_ld_answer(fp, fp->dec.frame, fp->dec.len);
	return (int)len;
}

static int fuzz_ld_ok(espl_port *p, espl_error *err) { (void)p; (void)err; return 0; }

static int fuzz_ld_flush(espl_port *p, espl_error *err)
{
	fuzz_ld_port *fp = (fuzz_ld_port *)p;
	(void)err;
	if (!fp->fuzzing)
		fp->q_len = fp->q_pos = 0;
	return 0;
}

static int fuzz_ld_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	(void)err;
	p->baud = baud;
	return 0;
}

static int fuzz_ld_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	(void)dtr; (void)rts;
	return espl_fail(err, ESPL_EUNSUPPORTED, "%s: no modem lines", p->name);
}

static void fuzz_ld_close(espl_port *p) { free(p); }

static const espl_port_ops fuzz_ld_ops = {
	.kind = "fuzz", .read = fuzz_ld_read, .write = fuzz_ld_write, .drain = fuzz_ld_ok,
	.flush_input = fuzz_ld_flush, .set_baud = fuzz_ld_set_baud, .set_lines = fuzz_ld_set_lines,
	.close = fuzz_ld_close, .limits = ESPL_PORT_NO_LINES,
};

/* A command with an output buffer: check out_len and the guard bytes. */
static void fuzz_ld_command(espl_loader *l, uint8_t op, uint32_t param)
{
	uint8_t out[64 + 16];
	size_t cap = param % 65, out_len = 12345;
	uint32_t value;
	espl_error err;
	memset(out, 0xA5, sizeof out);
	int rc = espl_loader_command(l, op, (const uint8_t *)&param, sizeof param, 0, 100, &value,
				     out, cap, &out_len, &err);
	for (size_t i = cap; i < sizeof out; i++)
		FUZZ_CHECK(out[i] == 0xA5);
	if (rc == 0)
		FUZZ_CHECK(out_len <= ESPL_STUB_WRITE_BLOCK + 64);
	else
		FUZZ_CHECK(err.msg[0] != '\0');
}

static const espl_image *fuzz_ld_image(void)
{
	static espl_image *img;
	if (!img) {
		uint8_t data[6000];
		espl_flash_params keep;
		espl_error err;
		for (size_t i = 0; i < sizeof data; i++)
			data[i] = (uint8_t)(i * 7 % 251);
		espl_flash_params_keep(&keep);
		FUZZ_CHECK(espl_image_prepare(data, sizeof data, 0x1000, &keep, 0, "fuzz.bin", &img,
					      &err) == 0);
	}
	return img;
}

static int fuzz_ld_run(espl_loader *l, uint8_t op, uint32_t param)
{
	espl_error err;
	uint32_t v;
	int rc;
	espl_error_clear(&err);
	switch (op % 14) {
	case 0: fuzz_ld_command(l, (uint8_t)(param >> 24), param); return 0;
	case 1: rc = espl_loader_read_reg(l, param, &v, &err); break;
	case 2: {
		int stub = -1;
		rc = espl_loader_sync(l, &stub, &err);
		break;
	}
	case 3: {
		espl_chip_info info;
		rc = espl_esp8266_identify(l, &info, &err);
		if (rc == 0)
			FUZZ_CHECK(strlen(info.mac_str) == 17);
		break;
	}
	case 4: {
		uint8_t md5[16];
		rc = espl_flash_md5(l, 0, param & 0xFFFFF, md5, &err);
		break;
	}
	case 5: {
		uint32_t len = param & 0xFFFF;
		uint8_t *buf = malloc(len ? len : 1);
		FUZZ_CHECK(buf != NULL);
		rc = espl_flash_read(l, 0x1000, len, buf, &err);
		free(buf);
		break;
	}
	case 6: {
		int z = (int)(param & 1);
		rc = espl_loader_flash_begin(l, z, 0x4000, 1, 0x4000, 0, &err);
		if (rc == 0)
			rc = espl_loader_flash_data(l, z, (const uint8_t *)"abcd", 4, 0, 100, &err);
		if (rc == 0)
			rc = espl_loader_flash_end(l, z, (int)(param >> 1 & 1), 100, &err);
		break;
	}
	case 7: rc = espl_loader_mem_end(l, param, &err); break;
	case 8: rc = espl_loader_wait_ohai(l, 100, &err); break;
	case 9: rc = espl_flash_erase_region(l, param & ~0xFFFu, 0x1000, &err); break;
	case 10: rc = espl_flash_write(l, fuzz_ld_image(), (int)(param & 1), &err); break;
	case 11: rc = espl_flash_verify(l, fuzz_ld_image(), &err); break;
	case 12: {
		uint32_t id;
		rc = espl_esp8266_flash_id(l, &id, &err);
		break;
	}
	default: rc = espl_loader_spi_set_params(l, param, &err); break;
	}
	if (rc < 0)
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
	(void)espl_loader_last_status(l);
	(void)espl_loader_last_was_rejected_block(l);
	return 0;
}

static int fuzz_loader_one(const uint8_t *data, size_t size)
{
	static const uint8_t ohai[] = { 0xC0, 'O', 'H', 'A', 'I', 0xC0 };
	if (size < 7 || size > (64u << 10))
		return 0;
	fuzz_ld_port *fp = calloc(1, sizeof *fp);
	FUZZ_CHECK(fp != NULL);
	fp->base.ops = &fuzz_ld_ops;
	snprintf(fp->base.name, sizeof fp->base.name, "fuzzport");
	fp->base.baud = 115200;
	espl_slip_decoder_init(&fp->dec, fp->frame, sizeof fp->frame);

	espl_loader_options o;
	espl_loader_options_init(&o);
	o.reset = ESPL_RESET_NONE;
	o.no_stub = 1;
	o.baud = o.flash_baud = 115200;
	o.connect_attempts = 1;
	o.connect_timeout_ms = 2000;
	o.write_block_attempts = 2;
	espl_loader *l;
	espl_error err;
	FUZZ_CHECK(espl_loader_connect(&fp->base, &o, &l, &err) == 0);

	int stub = data[0] & 1;
	fp->disconnect_at_end = data[0] >> 1 & 1;
	fp->chunk = data[2];
	uint32_t param = fuzz_le32(data + 3);
	fp->fuzzing = 1;
	if (stub) {
		fp->in = ohai;
		fp->in_len = sizeof ohai;
		fp->in_pos = 0;
		FUZZ_CHECK(espl_loader_wait_ohai(l, 100, &err) == 0);
		FUZZ_CHECK(espl_loader_mode(l) == ESPL_MODE_STUB);
	}
	fp->in = data + 7;
	fp->in_len = size - 7;
	fp->in_pos = 0;
	fuzz_ld_run(l, data[1], param);
	espl_loader_close(l);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_loader_one(data, size);
}
#endif
