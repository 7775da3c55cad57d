/*
 * sim_stub.c - the flasher stub as the host sees it, in the flavour that was
 * uploaded (c->stub.kind, told apart by sim_ram.c):
 *
 *  - the legacy stub (esptool-legacy-flasher-stub, and esptool's own
 *    flasher_stub/ before it): trusts the header's length, joins most checks
 *    with C's || so they fail as 0x01, keeps a write error until FLASH_BEGIN;
 *  - esp-flasher-stub: checks the frame against the header, answers 0xC3 to
 *    an unknown op, 0xC4 for SPI failures, and reports an error of the work
 *    it does after a reply ("post-process") on the next command instead,
 *    which it then skips.
 *
 * Both acknowledge FLASH_(DEFL_)DATA before writing, and run one command at
 * a time (the next waits until the previous write has finished, which makes
 * READ_REG a barrier).  Every difference is a row of
 * docs/simulator-fidelity.md with the source line it comes from.
 *
 * Time: a deferred write does not sleep; it pushes busy_until forward, and
 * the next command sleeps until then.  The host's transfer of that command
 * overlaps the write, as on the real chip.
 */
#include <string.h>

#include "sim_chip_int.h"

#define SECTORS_PER_BLOCK (SIM_FLASH_BLOCK / SIM_FLASH_SECTOR)
#define MD5_US_PER_4_BYTES 1u      /* ~0.26 s per MiB hashed */
#define BLANK_CHECK_US 400u        /* esp-flasher-stub reads a sector before erasing it */
#define EFS_FRAME_MAX (8u + SIM_STUB_MAX_BLOCK + 0xFFu)  /* its frame buffer (frame_buffer.h) */
#define FAULTED (-1)               /* an unplug/reset fault fired mid-write: no reply */

static bool is_efs(const sim_chip *c)
{
	return c->stub.kind == SIM_STUB_EFS;
}

/* [err, s1].  The legacy stub has announced 18 bytes for MD5 before it
 * knows whether it fails; esp-flasher-stub sizes the reply to its data. */
static void reply2(sim_chip *c, uint8_t op, uint8_t err, uint8_t s1)
{
	uint16_t size = !is_efs(c) && op == OP_SPI_FLASH_MD5 ? 18 : 2;
	sim_emit_response(c, op, 0, size, NULL, 0, err, s1);
}

static void reply(sim_chip *c, uint8_t op, uint8_t err)
{
	reply2(c, op, err, 0);
}

/* The legacy stub's `error = verify_data_len(...) || handler(...)`: any
 * failure reaches the host as 1.  esp-flasher-stub returns the code. */
static uint8_t joined(const sim_chip *c, uint8_t err)
{
	return !is_efs(c) && err ? 1 : err;
}

/* A failure found after the reply: legacy keeps it for every later data
 * command and FLASH_END; esp-flasher-stub reports it once, on the next
 * command, and skips that command. */
static void late_error(sim_chip *c, uint8_t err)
{
	if (!err)
		return;
	if (is_efs(c)) {
		if (!c->stub.pending_error)
			c->stub.pending_error = err;
	} else {
		c->fw.last_error = err;
	}
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

/* The ROM flash driver's bound (SPI_SET_PARAMS total size, or the default at
 * stub start).  Inside it, addresses past the part's end wrap in the part. */
static bool in_limit(const sim_chip *c, uint64_t addr, uint64_t n)
{
	return addr + n <= c->fw.believed_size;
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
	c->stub.pending_error = 0;
	c->stub.dirty_seen = false;
	c->stub.hung = false;
	memset(&c->mem, 0, sizeof c->mem);
}

/* ---- writing (legacy stub_write_flash.c, esp-flasher-stub s_*flash*) ------ */

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
	c->stub.dirty_seen = false;
	if (deflate) {
		memset(&c->fw.z, 0, sizeof c->fw.z);
		c->fw.z_live = inflateInit(&c->fw.z) == Z_OK;
	}
}

static bool sector_blank(const sim_chip *c, uint32_t sector)
{
	uint8_t buf[SIM_FLASH_SECTOR];
	if (sim_flash_read(&c->flash, sector * SIM_FLASH_SECTOR, buf, sizeof buf) != 0)
		return false;
	for (size_t i = 0; i < sizeof buf; i++)
		if (buf[i] != 0xFF)
			return false;
	return true;
}

/* One erase step: a 64 KiB block where aligned and wanted, else a sector.
 * esp-flasher-stub first skips sectors that read blank, until the first one
 * that does not.  The legacy stub erases with raw SPI commands (24-bit
 * address, no bound), so it never fails; esp-flasher-stub answers 0xC4. */
static uint8_t erase_next(sim_chip *c, uint64_t *us)
{
	uint32_t sector = c->fw.next_erase_sector;
	if (is_efs(c) && !c->stub.dirty_seen) {
		*us += BLANK_CHECK_US;
		if (!in_limit(c, (uint64_t)sector * SIM_FLASH_SECTOR, SIM_FLASH_SECTOR))
			return STUB_FAILED_SPI_OP;
		if (sector_blank(c, sector)) {
			c->fw.next_erase_sector++;
			c->fw.remaining_erase_sector--;
			return 0;
		}
		c->stub.dirty_seen = true;
	}
	bool block = c->fw.remaining_erase_sector >= SECTORS_PER_BLOCK && sector % SECTORS_PER_BLOCK == 0;
	uint32_t n = block ? SECTORS_PER_BLOCK : 1;
	uint8_t err = 0;
	if (is_efs(c) && !in_limit(c, (uint64_t)sector * SIM_FLASH_SECTOR, (uint64_t)n * SIM_FLASH_SECTOR)) {
		err = STUB_FAILED_SPI_OP;
	} else {
		uint32_t addr = (sector * SIM_FLASH_SECTOR) & 0xFFFFFFu;
		int rc = block ? sim_flash_erase_block(&c->flash, addr / SIM_FLASH_BLOCK, us)
			       : sim_flash_erase_sector(&c->flash, addr / SIM_FLASH_SECTOR, us);
		if (rc && is_efs(c))
			err = STUB_FAILED_SPI_OP;
	}
	c->fw.remaining_erase_sector -= n < c->fw.remaining_erase_sector ? n : c->fw.remaining_erase_sector;
	c->fw.next_erase_sector += n;
	return err;
}

/* Erase far enough for a write that ends at end (exclusive).  The legacy
 * stub erases through the sector holding end itself, one too many when end
 * is aligned; esp-flasher-stub stops before it.  A write past the region
 * FLASH_BEGIN announced (more inflated data than declared) hangs
 * esp-flasher-stub: s_ensure_flash_erased_to loops on "nothing left to
 * erase" for ever (command_handler.c v1.1.0, 185-187 and 214-222); the
 * legacy stub trims it instead. */
static uint8_t erase_ahead(sim_chip *c, uint64_t end, uint64_t *us)
{
	uint64_t last = is_efs(c) ? (end - 1) / SIM_FLASH_SECTOR : end / SIM_FLASH_SECTOR;
	if (is_efs(c) && c->fw.remaining_erase_sector == 0 && c->fw.next_erase_sector <= last) {
		c->stub.hung = true;
		sim_log(c, "stub: esp-flasher-stub hangs: write past the region FLASH_BEGIN announced");
		return STUB_FAILED_SPI_OP;
	}
	while (c->fw.remaining_erase_sector > 0 && c->fw.next_erase_sector <= last) {
		uint8_t err = erase_next(c, us);
		if (err)
			return err;
	}
	return 0;
}

/* Erase, program.  0, a stub error code, or FAULTED.  The legacy stub trims
 * a padded last block and moves on after a failed write; esp-flasher-stub
 * trims only uncompressed data and stops where the write failed. */
static int write_data(sim_chip *c, const uint8_t *buf, uint32_t length, bool trim, uint64_t *us)
{
	if (trim && length > c->fw.remaining)
		length = c->fw.remaining;
	if (length == 0)
		return 0;
	uint8_t err = erase_ahead(c, (uint64_t)c->fw.next_write + length, us);
	if (err)
		return err;
	int rc = in_limit(c, c->fw.next_write, length)
		? sim_chip_program(c, c->fw.next_write, buf, length, us) : SIM_FLASH_OUT_OF_RANGE;
	if (rc == 1)
		return FAULTED;
	/* Neither stub reads back what it programmed: bits a stuck sector
	 * refused go unnoticed here, and only the MD5 verify finds them.
	 * (The ROM does read back: sim_chip.c answers 0x08 there.) */
	if (rc != 0 && rc != SIM_FLASH_VERIFY_FAILED) {
		err = STUB_FAILED_SPI_OP;
		if (is_efs(c))
			return err;
	}
	c->fw.next_write += length;
	c->fw.remaining -= length;  /* esp-flasher-stub may wrap below 0: FLASH_END then fails */
	return err;
}

static int flush_inflated(sim_chip *c, uint64_t *us)
{
	int rc = write_data(c, c->fw.out, (uint32_t)c->fw.out_len, !is_efs(c), us);
	c->fw.out_len = 0;
	if (rc > 0)
		late_error(c, (uint8_t)rc);
	return rc == FAULTED || (rc > 0 && is_efs(c)) ? 1 : 0;
}

/* The zlib stream continues across blocks. */
static void inflate_data(sim_chip *c, const uint8_t *data, uint32_t length, uint64_t *us)
{
	if (!is_efs(c) && c->fw.remaining == 0 && length > 4) {
		late_error(c, STUB_TOO_MUCH_DATA);  /* only a lone Adler-32 may trail */
		return;
	}
	if (!c->fw.z_live || (is_efs(c) && c->fw.z_done && length > 0)) {
		late_error(c, STUB_INFLATE_ERROR);  /* tinfl refuses input past the end */
		return;
	}
	z_stream *z = &c->fw.z;
	while (length > 0 && (is_efs(c) || c->fw.remaining > 0) && !c->fw.z_done) {
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
			late_error(c, STUB_INFLATE_ERROR);
			return;
		}
		if ((c->fw.z_done || c->fw.out_len == SIM_STUB_INFLATE_BUF) && flush_inflated(c, us))
			return;
		if (zr == Z_BUF_ERROR && used == 0)
			break;
	}
	if (!is_efs(c) && c->fw.z_done && c->fw.remaining > 0)
		late_error(c, STUB_NOT_ENOUGH_DATA);
}

static bool checksum_ok(const uint8_t *p, size_t n, uint32_t expected)
{
	return sim_checksum(p, n) == expected;  /* both stubs compare all 32 bits */
}

/* Legacy cmd_loop: the deferred error, then the length word, then the
 * checksum, each overriding the one before (so both wrong gives 0xC1). */
static uint8_t legacy_data_check(sim_chip *c, const sim_req *r)
{
	if (!c->fw.in_flash_mode)
		return STUB_NOT_IN_FLASH_MODE;
	uint8_t err = c->fw.last_error;
	long payload = (long)r->len - 16;
	if (sim_le32(r->data) != (uint32_t)payload)
		err = STUB_BAD_DATA_LEN;
	if (!checksum_ok(r->data + 16, payload > 0 ? (size_t)payload : 0, r->checksum))
		err = STUB_BAD_CHECKSUM;
	return err;
}

/* esp-flasher-stub s_flash_data / s_flash_defl_data.  *n gets the length
 * to write: the frame's for FLASH_DATA, the header word's for DEFL. */
static uint8_t efs_data_check(sim_chip *c, const sim_req *r, uint32_t *n)
{
	bool defl = r->op == OP_FLASH_DEFL_DATA;
	if (r->len < 16)
		return defl ? STUB_BAD_DATA_LEN : STUB_NOT_ENOUGH_DATA;
	if (!c->fw.in_flash_mode)
		return STUB_NOT_IN_FLASH_MODE;
	uint32_t word = sim_le32(r->data), actual = (uint32_t)(r->len - 16);
	if (!defl && word != actual)
		return STUB_TOO_MUCH_DATA;
	/* DEFL hashes as many bytes as the word says; past the frame they are
	 * stale buffer bytes: assumed not to match */
	if (word > actual || !checksum_ok(r->data + 16, word, r->checksum))
		return STUB_BAD_CHECKSUM;
	*n = defl ? word : actual;
	return 0;
}

static void cmd_flash_data(sim_chip *c, const sim_req *r)
{
	uint32_t n = r->len >= 16 ? (uint32_t)(r->len - 16) : 0;
	uint8_t err = is_efs(c) ? efs_data_check(c, r, &n) : legacy_data_check(c, r);
	reply(c, r->op, err);  /* ACK first; the write overlaps the next block */
	if (err)
		return;  /* a rejected block never reaches the inflater (item 7) */
	uint64_t us = 0;
	const uint8_t *payload = r->data + 16;
	if (r->op == OP_FLASH_DEFL_DATA) {
		inflate_data(c, payload, n, &us);
	} else {
		int rc = write_data(c, payload, n, true, &us);
		if (rc > 0)
			late_error(c, (uint8_t)rc);
	}
	add_busy(c, us);
}

static uint8_t flash_begin_check(const sim_chip *c, const sim_req *r)
{
	uint32_t block = r->len >= 12 ? sim_le32(r->data + 8) : 0;
	switch (c->stub.kind) {
	case SIM_STUB_EFS:  /* no block-size check */
		return r->len == 16 || r->len == 20 ? 0 : STUB_BAD_DATA_LEN;
	case SIM_STUB_LEGACY_OLD:  /* block size checked only for 16 bytes, then verify_data_len(16) || ... */
		if (r->len == 16 && block > SIM_STUB_MAX_BLOCK)
			return STUB_BAD_BLOCKSIZE;
		return r->len == 16 ? 0 : 1;
	default:
		if (r->len != 16 && r->len != 20)
			return STUB_BAD_DATA_LEN;
		return block > SIM_STUB_MAX_BLOCK ? STUB_BAD_BLOCKSIZE : 0;
	}
}

static void cmd_flash_begin(sim_chip *c, const sim_req *r)
{
	uint8_t err = flash_begin_check(c, r);
	if (!err) {
		flash_begin(c, sim_le32(r->data), sim_le32(r->data + 12), r->op == OP_FLASH_DEFL_BEGIN);
		if (is_efs(c)) {  /* it starts the first (conditional) erase at once */
			uint64_t us = 0;
			err = c->fw.remaining_erase_sector ? erase_next(c, &us) : 0;
			add_busy(c, us);
		}
	}
	reply(c, r->op, err);
}

static void cmd_flash_end(sim_chip *c, const sim_req *r)
{
	uint8_t err;
	if (is_efs(c) && r->len != 4)
		err = STUB_BAD_DATA_LEN;
	else if (!c->fw.in_flash_mode)
		err = STUB_NOT_IN_FLASH_MODE;
	else if (c->fw.remaining > 0)
		err = is_efs(c) ? STUB_BAD_DATA_LEN : STUB_NOT_ENOUGH_DATA;
	else {
		c->fw.in_flash_mode = false;
		err = is_efs(c) ? 0 : c->fw.last_error;
	}
	reply(c, r->op, err);
	/* the legacy stub reads the flag without a length check (stale bytes
	 * of a short frame); esp-flasher-stub never reboots here */
	if (err == 0 && !is_efs(c) && sim_le32(r->data) == 0) {
		sim_sleep(c, 10000);
		sim_chip_software_reset(c);
	}
}

/* ---- erase, MD5, read --------------------------------------------------- */

/* handle_flash_erase: the ROM's sector and block erases, bounded by the ROM
 * driver's size; codes 0x32..0x37 (legacy, joined to 1 by its caller). */
static uint8_t erase_region(sim_chip *c, uint32_t addr, uint32_t len)
{
	if (addr % SIM_FLASH_SECTOR || len % SIM_FLASH_SECTOR)
		return is_efs(c) ? STUB_BAD_DATA_LEN : (addr % SIM_FLASH_SECTOR ? 0x32 : 0x33);
	uint64_t us = 0;
	uint8_t err = 0;
	while (!err && len > 0 && addr % SIM_FLASH_BLOCK) {
		if (!in_limit(c, addr, SIM_FLASH_SECTOR) || sim_flash_erase_sector(&c->flash, addr / SIM_FLASH_SECTOR, &us))
			err = 0x35;
		len -= SIM_FLASH_SECTOR;
		addr += SIM_FLASH_SECTOR;
	}
	while (!err && len > SIM_FLASH_BLOCK) {
		if (!in_limit(c, addr, SIM_FLASH_BLOCK) || sim_flash_erase_block(&c->flash, addr / SIM_FLASH_BLOCK, &us))
			err = 0x36;
		len -= SIM_FLASH_BLOCK;
		addr += SIM_FLASH_BLOCK;
	}
	while (!err && len > 0) {
		if (!in_limit(c, addr, SIM_FLASH_SECTOR) || sim_flash_erase_sector(&c->flash, addr / SIM_FLASH_SECTOR, &us))
			err = 0x37;
		len -= SIM_FLASH_SECTOR;
		addr += SIM_FLASH_SECTOR;
	}
	sim_sleep(c, us);
	return err && is_efs(c) ? STUB_FAILED_SPI_OP : err;
}

static void cmd_spi_flash_md5(sim_chip *c, const sim_req *r)
{
	if (r->len != 16) {
		reply(c, r->op, joined(c, STUB_BAD_DATA_LEN));
		return;
	}
	uint32_t addr = sim_le32(r->data), len = sim_le32(r->data + 4);
	if (!in_limit(c, addr, len)) {  /* the ROM's SPIRead refuses it */
		reply(c, r->op, joined(c, is_efs(c) ? STUB_FAILED_SPI_OP : STUB_MD5_READ_FAILED));
		return;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t digest[16], buf[SIM_FLASH_SECTOR];
	unsigned dlen = 0;
	EVP_DigestInit_ex(md, EVP_md5(), NULL);
	for (uint32_t done = 0; done < len;) {
		uint32_t n = len - done < sizeof buf ? len - done : (uint32_t)sizeof buf;
		sim_flash_read(&c->flash, addr + done, buf, n);
		EVP_DigestUpdate(md, buf, n);
		done += n;
	}
	EVP_DigestFinal_ex(md, digest, &dlen);
	EVP_MD_CTX_free(md);
	sim_sleep(c, (uint64_t)len / 4 * MD5_US_PER_4_BYTES);
	sim_emit_response(c, r->op, 0, 18, digest, sizeof digest, 0, 0);
}

static void read_flash_finish(sim_chip *c)
{
	uint8_t digest[16];
	unsigned dlen = 0;
	EVP_DigestFinal_ex(c->rd.md5, digest, &dlen);
	c->rd.active = false;
	c->io.emit(c->io.ctx, digest, sizeof digest);
}

/* Legacy handle_flash_read: "in flight" compares bytes sent-but-unacked with
 * the host's packet count, so in practice one packet is outstanding.
 * esp-flasher-stub counts packets and forces the window to 1.  A read the
 * ROM driver refuses ends the sending: legacy then waits for an ACK that
 * never comes (as on the chip, the host times out); esp-flasher-stub
 * returns 0xC4 for the next command. */
static bool window_open(const sim_chip *c)
{
	if (is_efs(c))
		return c->rd.sent_packets - c->rd.acked_packets < 1;
	return c->rd.sent - c->rd.acked < c->rd.max_in_flight;
}

static void read_flash_pump(sim_chip *c)
{
	bool more = is_efs(c) ? c->rd.sent < c->rd.len || c->rd.acked < c->rd.len
			      : c->rd.acked < c->rd.len && c->rd.acked <= c->rd.sent;
	if (!more) {
		read_flash_finish(c);
		return;
	}
	while (c->rd.sent < c->rd.len && window_open(c)) {
		uint8_t buf[SIM_FLASH_SECTOR];
		uint32_t n = c->rd.len - c->rd.sent;
		if (n > c->rd.block)
			n = c->rd.block;
		if (!in_limit(c, c->rd.addr, n)) {
			if (is_efs(c)) {
				c->rd.active = false;
				late_error(c, STUB_FAILED_SPI_OP);
			}
			return;
		}
		sim_flash_read(&c->flash, c->rd.addr, buf, n);
		c->io.emit(c->io.ctx, buf, n);
		EVP_DigestUpdate(c->rd.md5, buf, n);
		c->rd.addr += n;
		c->rd.sent += n;
		c->rd.sent_packets++;
	}
}

void sim_stub_read_flash_frame(sim_chip *c, const uint8_t *frame, size_t len)
{
	if (len != 4) {  /* not an ACK: the stub gives up and sends the MD5 */
		read_flash_finish(c);
		return;
	}
	c->rd.acked = sim_le32(frame);
	c->rd.acked_packets++;
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
	if (block > SIM_FLASH_SECTOR || block == 0) {
		/* nothing is sent (legacy returns; esp-flasher-stub reports 0xC0
		 * next, and with 0 would send empty frames forever: not modelled) */
		if (is_efs(c) && block)
			late_error(c, STUB_BAD_DATA_LEN);
		return;
	}
	c->rd.active = true;
	c->rd.addr = sim_le32(r->data);
	c->rd.len = sim_le32(r->data + 4);
	c->rd.block = block;
	c->rd.max_in_flight = sim_le32(r->data + 12);
	c->rd.sent = c->rd.acked = c->rd.sent_packets = c->rd.acked_packets = 0;
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

static void set_line_rate(sim_chip *c, unsigned baud)
{
	sim_sleep(c, 10000);
	c->uart_baud = baud;
	if (c->io.set_baud)
		c->io.set_baud(c->io.ctx, baud);
	sim_sleep(c, 1000);
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
	if (is_efs(c)) {  /* sets the divider for new_baud from its own clock */
		set_line_rate(c, new_baud);
		return;
	}
	/* The legacy stub scales its divider by old/new, trusting the host's
	 * old rate.  Within UART tolerance report the nominal rate; a wrong old
	 * rate gives a wrong line rate, as on the chip. */
	uint64_t actual = old_baud ? (uint64_t)c->uart_baud * new_baud / old_baud : new_baud;
	uint64_t diff = actual > new_baud ? actual - new_baud : new_baud - actual;
	set_line_rate(c, diff * 100 <= (uint64_t)new_baud * 3 ? new_baud : (unsigned)actual);
}

static void cmd_write_reg(sim_chip *c, const sim_req *r)
{
	if (r->len % 16 || (is_efs(c) && r->len == 0)) {
		reply(c, r->op, is_efs(c) ? STUB_NOT_ENOUGH_DATA : STUB_BAD_DATA_LEN);
		return;
	}
	for (size_t i = 0; i < r->len; i += 16)
		sim_chip_apply_write_reg(c, r->data + i);
	reply(c, r->op, 0);
}

static uint8_t mem_begin(sim_chip *c, const sim_req *r)
{
	if (r->len != 16)
		return joined(c, STUB_BAD_DATA_LEN);
	c->mem.remaining = sim_le32(r->data);
	c->mem.addr = sim_le32(r->data + 12);
	/* legacy: a NULL offset means "not started"; efs keeps a flag */
	c->mem.active = is_efs(c) || c->mem.addr != 0;
	sim_ram_begin(c, c->mem.addr, c->mem.remaining);
	return 0;
}

static uint8_t mem_data(sim_chip *c, const sim_req *r)
{
	uint32_t n = (uint32_t)r->len - 16;  /* legacy: wraps huge for a short frame */
	if (is_efs(c)) {
		if (r->len < 16)
			return STUB_NOT_ENOUGH_DATA;
		if (!c->mem.active)
			return STUB_NOT_IN_FLASH_MODE;
		if (c->mem.remaining < sim_le32(r->data) || sim_le32(r->data) != n)
			return STUB_TOO_MUCH_DATA;
	} else {
		if (!c->mem.active && n > 0)
			return STUB_NOT_IN_FLASH_MODE;
		if (n > c->mem.remaining)
			return STUB_TOO_MUCH_DATA;
		if (n % 4)
			return STUB_BAD_DATA_LEN;
	}
	c->mem.remaining -= n;
	c->mem.uploaded += n;
	sim_ram_append(c, r->data + 16, n);
	return 0;
}

static uint8_t mem_end(sim_chip *c, const sim_req *r)
{
	uint8_t err;
	if (r->len != 8)
		err = STUB_BAD_DATA_LEN;
	else if (is_efs(c))
		err = c->mem.active ? 0 : STUB_NOT_IN_FLASH_MODE;
	else
		err = c->mem.remaining > 0 ? STUB_NOT_ENOUGH_DATA : 0;
	if (err != STUB_BAD_DATA_LEN || !is_efs(c)) {
		c->mem.active = false;
		c->mem.remaining = 0;
	}
	return joined(c, err);
}

static void cmd_mem(sim_chip *c, const sim_req *r)
{
	uint8_t err = r->op == OP_MEM_BEGIN ? mem_begin(c, r) : r->op == OP_MEM_DATA ? mem_data(c, r) : mem_end(c, r);
	reply(c, r->op, err);
	if (r->op != OP_MEM_END || err)
		return;
	/* legacy jumps when the entry is non-zero, whatever the flag says;
	 * esp-flasher-stub jumps when the flag is 0, whatever the entry */
	uint32_t flag = sim_le32(r->data), entry = sim_le32(r->data + 4);
	if (is_efs(c) ? flag == 0 : entry != 0)
		sim_chip_jump(c, entry);
}

static uint8_t simple_cmd(sim_chip *c, const sim_req *r)
{
	switch (r->op) {
	case OP_ERASE_FLASH: {
		if (r->len != 0 && !is_efs(c))  /* esp-flasher-stub does not look */
			return joined(c, STUB_BAD_DATA_LEN);
		uint64_t us = 0;
		sim_flash_erase_chip(&c->flash, &us);
		sim_sleep(c, us);
		return 0;
	}
	case OP_ERASE_REGION:
		return joined(c, r->len != 8 ? STUB_BAD_DATA_LEN : erase_region(c, sim_le32(r->data), sim_le32(r->data + 4)));
	case OP_SPI_SET_PARAMS:
		/* the second status byte is SPIParamCfg's result (legacy),
		 * assumed 0: what the ESP8266 ROM refuses is unknown */
		if (r->len != 24)
			return joined(c, STUB_BAD_DATA_LEN);
		c->fw.believed_size = sim_le32(r->data + 4);
		return 0;
	case OP_SPI_ATTACH:
		if (r->len != 4)
			return joined(c, STUB_BAD_DATA_LEN);
		c->flash_attached = true;
		return 0;
	default:
		return is_efs(c) ? STUB_INVALID_COMMAND : STUB_NOT_IMPLEMENTED;
	}
}

static void dispatch(sim_chip *c, const sim_req *r)
{
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
	case OP_RUN_USER_CODE:  /* no reply; esp-flasher-stub also stays put */
		if (!is_efs(c))
			sim_chip_run_user_code(c);
		break;
	default: reply(c, r->op, simple_cmd(c, r)); break;
	}
}

/* The legacy stub reads frames into two alternating buffers and believes the
 * header's length: bytes a short frame lacks are whatever that buffer held
 * before.  A frame longer than a buffer is cut. */
static sim_req legacy_view(sim_chip *c, const sim_req *r)
{
	uint8_t *buf = c->stub.rx[c->stub.rx_next];
	c->stub.rx_next ^= 1;
	size_t room = SIM_STUB_RX_BUF - 8;
	memcpy(buf, r->data, r->len < room ? r->len : room);
	sim_req v = *r;
	v.data = buf;
	v.len = r->size;  /* <= SIM_STUB_MAX_BLOCK + 16 < room, checked by the caller */
	return v;
}

static void legacy_handle(sim_chip *c, const sim_req *r)
{
	if (r->size > SIM_STUB_MAX_BLOCK + 16) {
		reply2(c, r->op, STUB_BAD_DATA_LEN, 0xEE);
		return;
	}
	sim_req v = legacy_view(c, r);
	dispatch(c, &v);
}

static void efs_handle(sim_chip *c, const sim_req *r)
{
	if (c->stub.hung || r->len + 8 > EFS_FRAME_MAX)
		return;  /* overflowed its frame buffer: dropped, no reply */
	if (r->dir != 0) {
		reply(c, r->op, STUB_INVALID_COMMAND);
		return;
	}
	if (r->size != r->len) {  /* checked before the pending error, which stays */
		reply(c, r->op, STUB_BAD_DATA_LEN);
		return;
	}
	if (c->stub.pending_error) {
		reply(c, r->op, c->stub.pending_error);
		c->stub.pending_error = 0;
		return;
	}
	dispatch(c, r);
}

void sim_stub_handle(sim_chip *c, const sim_req *r)
{
	wait_idle(c);  /* one thread: the previous write finishes first */
	if (is_efs(c))
		efs_handle(c, r);
	else
		legacy_handle(c, r);
}
