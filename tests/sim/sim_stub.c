/*
 * sim_stub.c - the esptool flasher stub (legacy "set 1" stub, which
 * esptool v4 and esptool-js upload) as the host sees it: 2 status bytes
 * [error, 0], exact length checks, FLASH_(DEFL_)DATA acknowledged before the
 * write, write errors reported on the next data command or on END, and a
 * strictly sequential command loop (the next command waits until the
 * previous write has finished, which is what makes READ_REG a barrier).
 *
 * Time: a deferred write does not sleep; it pushes busy_until forward, and
 * the next command sleeps until then.  The host's transfer of that command
 * overlaps the write, as on the real chip.
 */
#include <string.h>

#include "sim_chip_int.h"

#define SECTORS_PER_BLOCK (SIM_FLASH_BLOCK / SIM_FLASH_SECTOR)
#define MD5_US_PER_4_BYTES 1u  /* ~0.26 s per MiB hashed */

static void reply(sim_chip *c, uint8_t op, uint8_t err)
{
	sim_emit_response(c, op, 0, op == OP_SPI_FLASH_MD5 ? 18 : 2, NULL, 0, err, 0);
}

static void wait_idle(sim_chip *c)
{
	uint64_t now = sim_now(c);
	if (c->busy_until > now)
		sim_sleep(c, c->busy_until - now);
}

static void add_busy(sim_chip *c, uint64_t us)
{
	uint64_t now = sim_now(c);
	c->busy_until = (c->busy_until > now ? c->busy_until : now) + us;
}

/* Flash the stub may address: the physical part, and no more than the size
 * the ROM flash driver was configured with (SPI_SET_PARAMS). */
static uint64_t flash_limit(const sim_chip *c)
{
	uint64_t b = c->fw.believed_size;
	return b && b < c->flash.size ? b : c->flash.size;
}

void sim_stub_reset(sim_chip *c)
{
	if (c->fw.z_live)
		inflateEnd(&c->fw.z);
	c->fw.z_live = false;
	c->fw.z_done = false;
	c->fw.in_flash_mode = false;
	c->fw.out_len = 0;
	c->fw.last_error = 0;
	c->rd.active = false;
	c->busy_until = 0;
	memset(&c->mem, 0, sizeof c->mem);
}

/* ---- writing (stub_write_flash.c semantics) ----------------------------- */

static void flash_begin(sim_chip *c, uint32_t size, uint32_t offset, bool deflate)
{
	if (c->fw.z_live)
		inflateEnd(&c->fw.z);
	c->fw.z_live = false;
	c->fw.in_flash_mode = true;
	c->fw.deflate = deflate;
	c->fw.next_write = offset;
	c->fw.remaining = size;
	c->fw.next_erase_sector = offset / SIM_FLASH_SECTOR;
	c->fw.remaining_erase_sector = (offset % SIM_FLASH_SECTOR + size + SIM_FLASH_SECTOR - 1) / SIM_FLASH_SECTOR;
	c->fw.last_error = 0;
	c->fw.out_len = 0;
	c->fw.z_done = false;
	if (deflate) {
		memset(&c->fw.z, 0, sizeof c->fw.z);
		c->fw.z_live = inflateInit(&c->fw.z) == Z_OK;
	}
}

/* Erase ahead of the write, 64 KiB blocks where aligned, like the stub. */
static void erase_through(sim_chip *c, uint32_t last_sector, uint64_t *us)
{
	while (c->fw.remaining_erase_sector > 0 && c->fw.next_erase_sector <= last_sector) {
		bool block = c->fw.remaining_erase_sector >= SECTORS_PER_BLOCK &&
			     c->fw.next_erase_sector % SECTORS_PER_BLOCK == 0;
		uint32_t n = block ? SECTORS_PER_BLOCK : 1;
		int rc = (uint64_t)(c->fw.next_erase_sector + n) * SIM_FLASH_SECTOR > flash_limit(c)
			? SIM_FLASH_OUT_OF_RANGE
			: block ? sim_flash_erase_block(&c->flash, c->fw.next_erase_sector / SECTORS_PER_BLOCK, us)
				: sim_flash_erase_sector(&c->flash, c->fw.next_erase_sector, us);
		if (rc)
			c->fw.last_error = STUB_FAILED_SPI_OP;
		c->fw.remaining_erase_sector -= n < c->fw.remaining_erase_sector ? n : c->fw.remaining_erase_sector;
		c->fw.next_erase_sector += n;
	}
}

/* handle_flash_data(): trim, erase, program.  Returns 1 if a fault fired. */
static int write_data(sim_chip *c, const uint8_t *buf, uint32_t length, uint64_t *us)
{
	if (length > c->fw.remaining)
		length = c->fw.remaining;  /* the padded last block */
	if (length == 0)
		return 0;
	erase_through(c, (c->fw.next_write + length) / SIM_FLASH_SECTOR, us);
	int rc = (uint64_t)c->fw.next_write + length > flash_limit(c)
		? SIM_FLASH_OUT_OF_RANGE
		: sim_chip_program(c, c->fw.next_write, buf, length, us);
	if (rc == 1)
		return 1;
	/* The real stub never reads back what it programmed: bits a stuck
	 * sector refused go unnoticed here, and only the MD5 verify finds them.
	 * (The ROM does read back: sim_chip.c answers 0x08 there.) */
	if (rc != 0 && rc != SIM_FLASH_VERIFY_FAILED)
		c->fw.last_error = STUB_FAILED_SPI_OP;
	c->fw.next_write += length;
	c->fw.remaining -= length;
	return 0;
}

static int flush_inflated(sim_chip *c, uint64_t *us)
{
	int rc = write_data(c, c->fw.out, (uint32_t)c->fw.out_len, us);
	c->fw.out_len = 0;
	return rc;
}

/* handle_flash_deflated_data(): the zlib stream continues across blocks. */
static void inflate_data(sim_chip *c, const uint8_t *data, uint32_t length, uint64_t *us)
{
	if (c->fw.remaining == 0 && length > 4) {
		c->fw.last_error = STUB_TOO_MUCH_DATA;  /* only a lone Adler-32 may trail */
		return;
	}
	if (!c->fw.z_live) {
		c->fw.last_error = STUB_INFLATE_ERROR;
		return;
	}
	z_stream *z = &c->fw.z;
	while (length > 0 && c->fw.remaining > 0 && !c->fw.z_done) {
		z->next_in = (Bytef *)data;
		z->avail_in = length;
		z->next_out = c->fw.out + c->fw.out_len;
		z->avail_out = (uInt)(SIM_STUB_INFLATE_BUF - c->fw.out_len);
		int zr = inflate(z, Z_NO_FLUSH);
		uint32_t used = length - z->avail_in;
		data += used;
		length -= used;
		c->fw.out_len = SIM_STUB_INFLATE_BUF - z->avail_out;
		if (zr == Z_STREAM_END)
			c->fw.z_done = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			c->fw.last_error = STUB_INFLATE_ERROR;
			return;
		}
		if ((c->fw.z_done || c->fw.out_len == SIM_STUB_INFLATE_BUF) && flush_inflated(c, us))
			return;
		if (zr == Z_BUF_ERROR && used == 0)
			break;
	}
	if (c->fw.z_done && c->fw.remaining > 0)
		c->fw.last_error = STUB_NOT_ENOUGH_DATA;
}

static uint8_t check_data_cmd(sim_chip *c, const sim_req *r)
{
	if (!c->fw.in_flash_mode)
		return STUB_NOT_IN_FLASH_MODE;
	uint8_t err = c->fw.last_error;
	if (r->len < 16 || sim_le32(r->data) != r->len - 16)
		return STUB_BAD_DATA_LEN;
	if (sim_checksum(r->data + 16, r->len - 16) != (uint8_t)r->checksum)
		return STUB_BAD_CHECKSUM;
	return err;
}

static void cmd_flash_data(sim_chip *c, const sim_req *r)
{
	uint8_t err = check_data_cmd(c, r);
	reply(c, r->op, err);  /* ACK first; the write overlaps the next block */
	if (err)
		return;
	uint64_t us = 0;
	const uint8_t *payload = r->data + 16;
	uint32_t n = (uint32_t)(r->len - 16);
	if (r->op == OP_FLASH_DEFL_DATA)
		inflate_data(c, payload, n, &us);
	else
		write_data(c, payload, n, &us);
	add_busy(c, us);
}

static void cmd_flash_begin(sim_chip *c, const sim_req *r)
{
	uint8_t err;
	if (r->len == 16 && sim_le32(r->data + 8) > SIM_STUB_MAX_BLOCK)
		err = STUB_BAD_BLOCKSIZE;
	else if (r->len != 16)
		err = STUB_BAD_DATA_LEN;
	else {
		flash_begin(c, sim_le32(r->data), sim_le32(r->data + 12), r->op == OP_FLASH_DEFL_BEGIN);
		err = 0;
	}
	reply(c, r->op, err);
}

static void cmd_flash_end(sim_chip *c, const sim_req *r)
{
	uint8_t err;
	if (r->len < 4)
		err = STUB_BAD_DATA_LEN;
	else if (!c->fw.in_flash_mode)
		err = STUB_NOT_IN_FLASH_MODE;
	else if (c->fw.remaining > 0)
		err = STUB_NOT_ENOUGH_DATA;
	else {
		c->fw.in_flash_mode = false;
		err = c->fw.last_error;
	}
	reply(c, r->op, err);
	if (err == 0 && sim_le32(r->data) == 0) {
		sim_sleep(c, 10000);
		sim_chip_software_reset(c);
	}
}

/* ---- erase, MD5, read --------------------------------------------------- */

static uint8_t erase_region(sim_chip *c, uint32_t addr, uint32_t len)
{
	if (addr % SIM_FLASH_SECTOR)
		return 0x32;
	if (len % SIM_FLASH_SECTOR)
		return 0x33;
	uint64_t us = 0;
	uint8_t err = 0;
	uint64_t limit = flash_limit(c);
	while (!err && len > 0 && addr % SIM_FLASH_BLOCK) {
		if (addr + (uint64_t)SIM_FLASH_SECTOR > limit || sim_flash_erase_sector(&c->flash, addr / SIM_FLASH_SECTOR, &us))
			err = 0x35;
		len -= SIM_FLASH_SECTOR;
		addr += SIM_FLASH_SECTOR;
	}
	while (!err && len > SIM_FLASH_BLOCK) {
		if (addr + (uint64_t)SIM_FLASH_BLOCK > limit || sim_flash_erase_block(&c->flash, addr / SIM_FLASH_BLOCK, &us))
			err = 0x36;
		len -= SIM_FLASH_BLOCK;
		addr += SIM_FLASH_BLOCK;
	}
	while (!err && len > 0) {
		if (addr + (uint64_t)SIM_FLASH_SECTOR > limit || sim_flash_erase_sector(&c->flash, addr / SIM_FLASH_SECTOR, &us))
			err = 0x37;
		len -= SIM_FLASH_SECTOR;
		addr += SIM_FLASH_SECTOR;
	}
	sim_sleep(c, us);
	return err;
}

static void cmd_spi_flash_md5(sim_chip *c, const sim_req *r)
{
	if (r->len != 16) {
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	uint32_t addr = sim_le32(r->data), len = sim_le32(r->data + 4);
	if ((uint64_t)addr + len > flash_limit(c)) {
		reply(c, r->op, STUB_MD5_READ_FAILED);
		return;
	}
	uint8_t digest[16];
	unsigned dlen = 0;
	EVP_Digest(c->flash.data + addr, len, digest, &dlen, EVP_md5(), NULL);
	sim_sleep(c, (uint64_t)len / 4 * MD5_US_PER_4_BYTES);
	sim_emit_response(c, r->op, 0, 18, digest, sizeof digest, 0, 0);
}

/* The loop of handle_flash_read(): send while the window allows, then wait
 * for the host's ACK frame (sim_stub_read_flash_frame). */
static void read_flash_pump(sim_chip *c)
{
	if (!(c->rd.acked < c->rd.len && c->rd.acked <= c->rd.sent)) {
		uint8_t digest[16];
		unsigned dlen = 0;
		EVP_DigestFinal_ex(c->rd.md5, digest, &dlen);
		c->rd.active = false;
		c->io.emit(c->io.ctx, digest, sizeof digest);
		return;
	}
	/* the real stub compares bytes in flight with a packet count, so in
	 * practice one packet is outstanding at a time; keep that */
	while (c->rd.sent < c->rd.len && c->rd.sent - c->rd.acked < c->rd.max_in_flight) {
		uint8_t buf[SIM_FLASH_SECTOR];
		uint32_t n = c->rd.len - c->rd.sent;
		if (n > c->rd.block)
			n = c->rd.block;
		if ((uint64_t)c->rd.addr + n > flash_limit(c) || sim_flash_read(&c->flash, c->rd.addr, buf, n))
			break;  /* as in the stub: nothing more is sent, the host times out */
		c->io.emit(c->io.ctx, buf, n);
		EVP_DigestUpdate(c->rd.md5, buf, n);
		c->rd.addr += n;
		c->rd.sent += n;
	}
}

void sim_stub_read_flash_frame(sim_chip *c, const uint8_t *frame, size_t len)
{
	if (len != 4) {
		c->rd.acked = c->rd.len;  /* not an ACK: the stub gives up and sends the MD5 */
		c->rd.sent = c->rd.len;
	} else {
		c->rd.acked = sim_le32(frame);
	}
	read_flash_pump(c);
}

static void cmd_read_flash(sim_chip *c, const sim_req *r)
{
	if (r->len != 16) {
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	reply(c, r->op, 0);
	uint32_t block = sim_le32(r->data + 8);
	if (block > SIM_FLASH_SECTOR || block == 0)
		return;  /* the stub returns without sending anything */
	c->rd.active = true;
	c->rd.addr = sim_le32(r->data);
	c->rd.len = sim_le32(r->data + 4);
	c->rd.block = block;
	c->rd.max_in_flight = sim_le32(r->data + 12);
	c->rd.sent = c->rd.acked = 0;
	EVP_DigestInit_ex(c->rd.md5, EVP_md5(), NULL);
	read_flash_pump(c);
}

/* ---- everything else ---------------------------------------------------- */

static void cmd_sync(sim_chip *c, const sim_req *r)
{
	if (r->len != 36) {
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	for (int i = 0; i < 8; i++)  /* like the ROM, value 0 marks the stub */
		reply(c, r->op, 0);
}

static void cmd_change_baud(sim_chip *c, const sim_req *r)
{
	if (r->len != 8) {
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	uint32_t new_baud = sim_le32(r->data), old_baud = sim_le32(r->data + 4);
	reply(c, r->op, 0);  /* at the old rate */
	if (new_baud == 0)
		return;
	/* The stub scales its divider by old/new, trusting the host's old rate.
	 * Within UART tolerance report the nominal rate; a wrong old rate gives
	 * a wrong line rate, as on the chip. */
	uint64_t actual = old_baud ? (uint64_t)c->uart_baud * new_baud / old_baud : new_baud;
	uint64_t diff = actual > new_baud ? actual - new_baud : new_baud - actual;
	unsigned baud = diff * 100 <= (uint64_t)new_baud * 3 ? new_baud : (unsigned)actual;
	sim_sleep(c, 10000);
	c->uart_baud = baud;
	if (c->io.set_baud)
		c->io.set_baud(c->io.ctx, baud);
	sim_sleep(c, 1000);
}

static void cmd_write_reg(sim_chip *c, const sim_req *r)
{
	if (r->len % 16) {
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	for (size_t i = 0; i < r->len; i += 16)
		sim_chip_apply_write_reg(c, r->data + i);
	reply(c, r->op, 0);
}

static void cmd_mem(sim_chip *c, const sim_req *r)
{
	uint8_t err = 0;
	if (r->op == OP_MEM_BEGIN) {
		if (r->len != 16)
			err = STUB_BAD_DATA_LEN;
		else {
			c->mem.active = true;
			c->mem.remaining = sim_le32(r->data);
			c->mem.addr = sim_le32(r->data + 12);
		}
	} else if (r->op == OP_MEM_DATA) {
		uint32_t n = r->len >= 16 ? (uint32_t)(r->len - 16) : 0;
		if (r->len < 16)
			err = STUB_BAD_DATA_LEN;
		else if (!c->mem.active && n > 0)
			err = STUB_NOT_IN_FLASH_MODE;
		else if (n > c->mem.remaining)
			err = STUB_TOO_MUCH_DATA;
		else if (n % 4)
			err = STUB_BAD_DATA_LEN;
		else {
			c->mem.remaining -= n;
			c->mem.uploaded += n;
		}
	} else {
		if (r->len != 8)
			err = STUB_BAD_DATA_LEN;
		else
			err = c->mem.remaining > 0 ? STUB_NOT_ENOUGH_DATA : 0;
		c->mem.active = false;
		c->mem.remaining = 0;
	}
	reply(c, r->op, err);
	if (r->op == OP_MEM_END && err == 0 && sim_le32(r->data + 4) != 0 && c->mem.uploaded > 0)
		sim_chip_enter_stub(c);  /* a freshly uploaded stub starts over */
}

static uint8_t simple_cmd(sim_chip *c, const sim_req *r)
{
	switch (r->op) {
	case OP_ERASE_FLASH: {
		if (r->len != 0)
			return STUB_BAD_DATA_LEN;
		uint64_t us = 0;
		sim_flash_erase_chip(&c->flash, &us);
		sim_sleep(c, us);
		return 0;
	}
	case OP_ERASE_REGION:
		return r->len != 8 ? STUB_BAD_DATA_LEN : erase_region(c, sim_le32(r->data), sim_le32(r->data + 4));
	case OP_SPI_SET_PARAMS:
		if (r->len != 24)
			return STUB_BAD_DATA_LEN;
		c->fw.believed_size = sim_le32(r->data + 4);
		return 0;
	case OP_SPI_ATTACH:
		if (r->len != 4)
			return STUB_BAD_DATA_LEN;
		c->flash_attached = true;
		return 0;
	default:
		return STUB_NOT_IMPLEMENTED;
	}
}

void sim_stub_handle(sim_chip *c, const sim_req *r)
{
	wait_idle(c);  /* one thread: the previous write finishes first */
	if (r->size > SIM_STUB_MAX_BLOCK + 16) {
		sim_emit_response(c, r->op, 0, r->op == OP_SPI_FLASH_MD5 ? 18 : 2, NULL, 0, STUB_BAD_DATA_LEN, 0xEE);
		return;
	}
	if (r->size != r->len) {  /* the frame disagrees with its own header */
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	switch (r->op) {
	case OP_SYNC: cmd_sync(c, r); break;
	case OP_READ_REG:
		if (r->len != 4)
			reply(c, r->op, STUB_BAD_DATA_LEN);
		else
			sim_emit_response(c, r->op, sim_regs_read(c, sim_le32(r->data)), 2, NULL, 0, 0, 0);
		break;
	case OP_WRITE_REG: cmd_write_reg(c, r); break;
	case OP_FLASH_BEGIN:
	case OP_FLASH_DEFL_BEGIN: cmd_flash_begin(c, r); break;
	case OP_FLASH_DATA:
	case OP_FLASH_DEFL_DATA: cmd_flash_data(c, r); break;
	case OP_FLASH_END:
	case OP_FLASH_DEFL_END: cmd_flash_end(c, r); break;
	case OP_MEM_BEGIN:
	case OP_MEM_DATA:
	case OP_MEM_END: cmd_mem(c, r); break;
	case OP_SPI_FLASH_MD5: cmd_spi_flash_md5(c, r); break;
	case OP_READ_FLASH: cmd_read_flash(c, r); break;
	case OP_CHANGE_BAUDRATE: cmd_change_baud(c, r); break;
	case OP_RUN_USER_CODE: sim_chip_run_user_code(c); break;  /* no reply */
	default: reply(c, r->op, simple_cmd(c, r)); break;
	}
}
