/*
 * sim_chip.c - the simulated ESP8266: lifecycle, frame dispatch and the
 * mask-ROM UART loader.  The flasher stub lives in sim_stub.c, the register
 * map in sim_regs.c, the NOR part in sim_flash.c.
 *
 * ROM model (protocol notes 3.1, 4, 5.3-5.5, 11): replies are complete
 * frames with 2 status bytes [status, error]; FLASH_BEGIN erases up front
 * with the erase-size bug; FLASH_DATA programs and verifies before replying;
 * opcodes the ROM lacks get status 1 / error 0x05, eight times, under an op
 * that is not the request's (that is how clients tell "unsupported" apart:
 * docs/simulator-fidelity.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_chip_int.h"

/* ---- helpers shared with sim_stub.c / sim_regs.c ------------------------ */

uint32_t sim_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint8_t sim_checksum(const uint8_t *p, size_t n)
{
	uint8_t x = 0xEF;
	for (size_t i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

void sim_sleep(sim_chip *c, uint64_t us)
{
	if (us && c->io.sleep_us)
		c->io.sleep_us(c->io.ctx, us);
}

uint64_t sim_now(sim_chip *c)
{
	return c->io.now_us ? c->io.now_us(c->io.ctx) : 0;
}

void sim_emit_response(sim_chip *c, uint8_t op, uint32_t value, uint16_t size_field,
		       const uint8_t *out, size_t out_len, uint8_t s0, uint8_t s1)
{
	uint8_t buf[8 + 64 + 2];
	if (out_len > 64)
		out_len = 64;
	buf[0] = 0x01;
	buf[1] = op;
	buf[2] = (uint8_t)size_field;
	buf[3] = (uint8_t)(size_field >> 8);
	put_le32(buf + 4, value);
	if (out_len)
		memcpy(buf + 8, out, out_len);
	buf[8 + out_len] = s0;
	buf[9 + out_len] = s1;
	c->io.emit(c->io.ctx, buf, 10 + out_len);
}

static void rom_reply(sim_chip *c, uint8_t op, uint32_t value, uint8_t error)
{
	sim_emit_response(c, op, value, 2, NULL, 0, error ? 1 : 0, error);
}

int sim_chip_program(sim_chip *c, uint32_t addr, const uint8_t *src, size_t n, uint64_t *us)
{
	sim_chip_faults *f = &c->cfg.faults;
	long *offs[2] = { &f->unplug_at_flash_offset, &f->reset_at_flash_offset };
	static const char *const what[2] = { "unplug", "reset" };
	for (int i = 0; i < 2; i++) {
		long o = *offs[i];
		if (o < 0 || (uint64_t)o < addr || (uint64_t)o >= (uint64_t)addr + n)
			continue;
		/* the bytes before the offset made it into flash, the rest did not */
		sim_flash_program(&c->flash, addr, src, (size_t)((uint64_t)o - addr), us);
		*offs[i] = -1;  /* fire once, so a retry after the reset can succeed */
		if (c->io.fault)
			c->io.fault(c->io.ctx, what[i]);
		return 1;
	}
	return sim_flash_program(&c->flash, addr, src, n, us);
}

/* ---- lifecycle ---------------------------------------------------------- */

void sim_chip_config_defaults(sim_chip_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	static const uint8_t mac[6] = { 0x18, 0xFE, 0x34, 0x00, 0x00, 0x01 };
	memcpy(cfg->mac, mac, sizeof mac);
	cfg->jedec_id = 0x1640EF;
	cfg->flash_size = 4u << 20;
	cfg->xtal_mhz = 26;
	cfg->faults.stuck_sector = -1;
	cfg->faults.unplug_at_flash_offset = -1;
	cfg->faults.reset_at_flash_offset = -1;
}

static void fill_zero_fields(sim_chip_config *cfg)
{
	static const uint8_t zero[6], mac[6] = { 0x18, 0xFE, 0x34, 0x00, 0x00, 0x01 };
	if (memcmp(cfg->mac, zero, 6) == 0)
		memcpy(cfg->mac, mac, 6);
	if (!cfg->jedec_id)
		cfg->jedec_id = 0x1640EF;
	if (!cfg->flash_size) {
		unsigned cap = (cfg->jedec_id >> 16) & 0xFF;
		cfg->flash_size = (cap >= 0x10 && cap <= 0x1C) ? (size_t)1 << cap : 4u << 20;
	}
	if (!cfg->xtal_mhz)
		cfg->xtal_mhz = 26;
}

/* dirty=: leftovers of earlier use in chosen or random sectors. */
static void make_used(sim_chip *c)
{
	uint32_t x = c->cfg.flash_seed ? c->cfg.flash_seed : 0x9E3779B9u;
	uint32_t sectors = (uint32_t)(c->flash.size / SIM_FLASH_SECTOR);
	for (size_t i = 0; i < c->cfg.n_dirty_at; i++)
		sim_flash_dirty_sector(&c->flash, c->cfg.dirty_at[i] / SIM_FLASH_SECTOR, &x);
	for (uint32_t s = 0; c->cfg.dirty_pct && s < sectors; s++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (x % 100 < c->cfg.dirty_pct)
			sim_flash_dirty_sector(&c->flash, s, &x);
	}
}

sim_chip *sim_chip_new(const sim_chip_config *cfg, const sim_chip_io *io)
{
	sim_chip *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->cfg = *cfg;
	fill_zero_fields(&c->cfg);
	c->io = *io;
	c->host_baud = c->uart_baud = 115200;
	c->ram.cur = -1;
	c->fw.out = malloc(SIM_STUB_INFLATE_BUF);
	c->rd.md5 = EVP_MD_CTX_new();
	if (!c->fw.out || !c->rd.md5 ||
	    sim_flash_init(&c->flash, c->cfg.flash_size, c->cfg.flash_random, c->cfg.flash_seed) != 0) {
		sim_chip_free(c);
		return NULL;
	}
	make_used(c);
	c->flash.stuck_sector = c->cfg.faults.stuck_sector;
	/* Any NOR part, not only one that claims more than its die, ignores
	 * the address bits above its capacity: a loader command past the end
	 * aliases (docs/simulator-fidelity.md, row 2).  The stubs bound
	 * addresses by the ROM driver's size, not by the part. */
	c->flash.wrap = 1;
	c->mode = SIM_MODE_OFF;
	return c;
}

void sim_chip_free(sim_chip *c)
{
	if (!c)
		return;
	sim_stub_reset(c);
	sim_ram_free(c);
	sim_flash_free(&c->flash);
	free(c->fw.out);
	EVP_MD_CTX_free(c->rd.md5);
	free(c);
}

void sim_chip_boot(sim_chip *c, int download)
{
	c->latched_download = download;
	c->mode = download ? SIM_MODE_ROM : SIM_MODE_APP;
	c->uart_baud = c->host_baud;  /* the ROM auto-bauds on the next SYNC */
	sim_stub_reset(c);
	sim_regs_reset(c);
	sim_ram_free(c);  /* assumed: a reset leaves nothing the host could jump back into */
	memset(&c->rom_flash, 0, sizeof c->rom_flash);
	memset(&c->mem, 0, sizeof c->mem);
	c->flash_attached = false;  /* the ROM loader leaves the SPI pins alone */
	c->busy_until = 0;
}

enum sim_chip_mode sim_chip_mode(const sim_chip *c)
{
	return c->mode;
}

const char *sim_chip_stub_name(const sim_chip *c)
{
	if (c->mode != SIM_MODE_STUB)
		return NULL;
	switch (c->stub.kind) {
	case SIM_STUB_EFS: return "esp-flasher-stub";
	case SIM_STUB_LEGACY_OLD: return "legacy-old";
	default: return "legacy";
	}
}

void sim_chip_set_host_baud(sim_chip *c, unsigned baud)
{
	/* The ROM auto-bauds to the host; the stub keeps its divider until
	 * CHANGE_BAUDRATE (a host that just switches gets garbage, as in life). */
	c->host_baud = baud;
	if (c->mode != SIM_MODE_STUB)
		c->uart_baud = baud;
}

void sim_chip_software_reset(sim_chip *c)
{
	/* straps are latched at the last EN rise, so a software reset comes back
	 * in the same boot mode (protocol notes 5.7) */
	sim_chip_boot(c, c->latched_download);
	if (c->io.reboot)
		c->io.reboot(c->io.ctx, 0);
}

void sim_chip_run_user_code(sim_chip *c)
{
	sim_stub_reset(c);
	c->mode = SIM_MODE_APP;
	if (c->io.reboot)
		c->io.reboot(c->io.ctx, 1);
}

void sim_chip_enter_stub(sim_chip *c, enum sim_stub_kind kind)
{
	static const uint8_t ohai[4] = { 'O', 'H', 'A', 'I' };
	sim_sleep(c, 1000);  /* the loader flushes its reply, then jumps */
	sim_stub_reset(c);
	c->mode = SIM_MODE_STUB;
	c->stub.kind = kind;
	memset(c->stub.rx, 0, sizeof c->stub.rx);  /* its .bss starts zeroed */
	c->stub.rx_next = 0;
	c->flash_attached = true;  /* the stub attaches SPI flash at start-up */
	c->fw.believed_size = SIM_STUB_DEFAULT_FLASH;
	c->io.emit(c->io.ctx, ohai, sizeof ohai);
}

void sim_chip_jump(sim_chip *c, uint32_t entry)
{
	enum sim_stub_kind kind;
	if (sim_ram_identify(c, entry, &kind) == 0) {
		if (c->cfg.stub_as)
			kind = !strcmp(c->cfg.stub_as, "esp-flasher-stub") ? SIM_STUB_EFS
			       : !strcmp(c->cfg.stub_as, "legacy-old")    ? SIM_STUB_LEGACY_OLD
			                                                  : SIM_STUB_LEGACY;
		sim_chip_enter_stub(c, kind);
	}
	else
		sim_chip_software_reset(c);  /* jumped into RAM nobody filled: crash, reboot */
}

/* ---- ROM loader --------------------------------------------------------- */

/* A command the ROM does not know.  esptool (loader.py, command()) and
 * esptool-js (readPacket) both call a reply "unsupported" only when its op
 * differs from the request's and its status is [non-zero, 0x05], and both
 * drain the eight copies the ROM sends. */
static void rom_unsupported(sim_chip *c)
{
	for (int i = 0; i < 8; i++)
		sim_emit_response(c, SIM_ROM_UNSUPPORTED_OP, 0, 2, NULL, 0, 1, ROM_ERR_INVALID);
}

static bool sync_payload_ok(const sim_req *r)
{
	static const uint8_t head[4] = { 0x07, 0x07, 0x12, 0x20 };
	if (r->len != 36 || memcmp(r->data, head, 4) != 0)
		return false;
	for (size_t i = 4; i < 36; i++)
		if (r->data[i] != 0x55)
			return false;
	return true;
}

static void rom_sync(sim_chip *c, const sim_req *r)
{
	if (!sync_payload_ok(r)) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	for (int i = 0; i < 8; i++)
		rom_reply(c, OP_SYNC, SIM_ROM_SYNC_VALUE, 0);
}

static void rom_read_reg(sim_chip *c, const sim_req *r)
{
	if (r->len != 4) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	rom_reply(c, r->op, sim_regs_read(c, sim_le32(r->data)), 0);
}

void sim_chip_apply_write_reg(sim_chip *c, const uint8_t *p)
{
	uint32_t addr = sim_le32(p), value = sim_le32(p + 4), mask = sim_le32(p + 8);
	sim_sleep(c, sim_le32(p + 12));
	uint32_t v = value & mask;
	if (mask != 0xFFFFFFFFu)
		v |= sim_regs_read(c, addr) & ~mask;
	sim_regs_write(c, addr, v);
}

static void rom_write_reg(sim_chip *c, const sim_req *r)
{
	/* esptool's write_reg(delay_after_us=) appends a second entry, and
	 * Espressif's hardware test (test_esptool.py, _test_read_write) runs it
	 * against the ROM: the ROM takes a list of entries like the stub does */
	if (r->len == 0 || r->len % 16) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	for (size_t i = 0; i < r->len; i += 16)
		sim_chip_apply_write_reg(c, r->data + i);
	rom_reply(c, r->op, 0, 0);
}

/* Sectors the ROM really erases for erase_size at offset (notes 5.4). */
static uint32_t rom_erase_sectors(uint32_t erase_size, uint32_t offset)
{
	uint32_t r = (erase_size + SIM_FLASH_SECTOR - 1) / SIM_FLASH_SECTOR;
	uint32_t head = 16 - (offset / SIM_FLASH_SECTOR) % 16;
	return r + (r < head ? r : head);
}

static void rom_flash_begin(sim_chip *c, const sim_req *r)
{
	/* esptool sends 16 bytes; esptool-js adds a 5th "encrypted" word even
	 * for the ESP8266 ROM, which evidently tolerates it */
	if (r->len != 16 && r->len != 20) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	uint32_t erase_size = sim_le32(r->data), num_blocks = sim_le32(r->data + 4);
	uint32_t block_size = sim_le32(r->data + 8), offset = sim_le32(r->data + 12);
	c->flash_attached = true;
	uint32_t start = offset / SIM_FLASH_SECTOR;
	uint32_t count = erase_size ? rom_erase_sectors(erase_size, offset) : 0;
	uint64_t us = 0;
	int rc = sim_flash_erase_range(&c->flash, start, count, &us);
	sim_sleep(c, us);
	if (rc != 0) {
		rom_reply(c, r->op, 0, ROM_ERR_FAILED);
		return;
	}
	c->rom_flash.active = true;
	c->rom_flash.offset = offset;
	c->rom_flash.block_size = block_size;
	c->rom_flash.num_blocks = num_blocks;
	rom_reply(c, r->op, 0, 0);
}

/* Common checks of FLASH_DATA / MEM_DATA: 0 or a ROM error code. */
static uint8_t rom_check_data(const sim_req *r)
{
	if (r->len < 16 || sim_le32(r->data) != r->len - 16)
		return ROM_ERR_INVALID;
	if (sim_checksum(r->data + 16, r->len - 16) != (uint8_t)r->checksum)
		return ROM_ERR_CHECKSUM;
	return 0;
}

static void rom_flash_data(sim_chip *c, const sim_req *r)
{
	uint8_t err = rom_check_data(r);
	if (!err && !c->rom_flash.active)
		err = ROM_ERR_FAILED;
	if (!err && r->len - 16 != c->rom_flash.block_size)
		err = ROM_ERR_INVALID;  /* hosts pad the last block (notes 5.5) */
	if (err) {
		rom_reply(c, r->op, 0, err);
		return;
	}
	uint32_t seq = sim_le32(r->data + 4);
	uint64_t addr = c->rom_flash.offset + (uint64_t)seq * c->rom_flash.block_size;
	uint64_t us = 0;
	int rc = addr > UINT32_MAX ? SIM_FLASH_OUT_OF_RANGE
		: sim_chip_program(c, (uint32_t)addr, r->data + 16, r->len - 16, &us);
	sim_sleep(c, us);
	if (rc == 1)
		return;  /* unplugged / reset mid-write: no reply */
	rom_reply(c, r->op, 0, rc == 0 ? 0 : ROM_ERR_WRITE);
}

static void rom_flash_end(sim_chip *c, const sim_req *r)
{
	if (r->len != 4) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	bool run = sim_le32(r->data) != 0;
	c->rom_flash.active = false;
	rom_reply(c, r->op, 0, 0);
	if (run)
		sim_chip_run_user_code(c);
	else
		sim_chip_software_reset(c);
}

static void rom_mem_begin(sim_chip *c, const sim_req *r)
{
	if (r->len != 16) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	c->mem.active = true;
	c->mem.remaining = sim_le32(r->data);
	c->mem.addr = sim_le32(r->data + 12);
	sim_ram_begin(c, c->mem.addr, c->mem.remaining);
	rom_reply(c, r->op, 0, 0);
}

static void rom_mem_data(sim_chip *c, const sim_req *r)
{
	uint8_t err = rom_check_data(r);
	if (!err && !c->mem.active)
		err = ROM_ERR_FAILED;
	if (!err && r->len - 16 > c->mem.remaining)
		err = ROM_ERR_INVALID;
	if (!err) {
		c->mem.remaining -= (uint32_t)(r->len - 16);
		c->mem.uploaded += (uint32_t)(r->len - 16);
		sim_ram_append(c, r->data + 16, r->len - 16);
	}
	rom_reply(c, r->op, 0, err);
}

static void rom_mem_end(sim_chip *c, const sim_req *r)
{
	if (r->len != 8) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	uint32_t flag = sim_le32(r->data), entry = sim_le32(r->data + 4);
	c->mem.active = false;
	rom_reply(c, r->op, 0, 0);  /* first: esptool-js waits 200 ms for it */
	if (flag != 0 || entry == 0)
		return;
	sim_chip_jump(c, entry);
}

static void rom_handle(sim_chip *c, const sim_req *r)
{
	if (r->dir != 0 || r->size != r->len) {
		rom_reply(c, r->op, 0, ROM_ERR_INVALID);
		return;
	}
	switch (r->op) {
	case OP_SYNC: rom_sync(c, r); break;
	case OP_READ_REG: rom_read_reg(c, r); break;
	case OP_WRITE_REG: rom_write_reg(c, r); break;
	case OP_FLASH_BEGIN: rom_flash_begin(c, r); break;
	case OP_FLASH_DATA: rom_flash_data(c, r); break;
	case OP_FLASH_END: rom_flash_end(c, r); break;
	case OP_MEM_BEGIN: rom_mem_begin(c, r); break;
	case OP_MEM_DATA: rom_mem_data(c, r); break;
	case OP_MEM_END: rom_mem_end(c, r); break;
	default: rom_unsupported(c); break;
	}
}

/* ---- dispatch ----------------------------------------------------------- */

void sim_chip_handle_frame(sim_chip *c, const uint8_t *frame, size_t len)
{
	if (c->cfg.faults.silent || !frame)
		return;
	if (c->mode == SIM_MODE_STUB && c->rd.active) {
		sim_stub_read_flash_frame(c, frame, len);
		return;
	}
	if (len < 8 || (c->mode != SIM_MODE_ROM && c->mode != SIM_MODE_STUB))
		return;
	sim_req r = {
		.dir = frame[0], .op = frame[1],
		.size = (uint16_t)(frame[2] | frame[3] << 8),
		.checksum = sim_le32(frame + 4),
		.data = frame + 8, .len = len - 8,
	};
	if (c->mode == SIM_MODE_ROM)
		rom_handle(c, &r);
	else
		sim_stub_handle(c, &r);
}

uint8_t *sim_chip_flash(sim_chip *c, size_t *size)
{
	if (size)
		*size = c->flash.size;
	return c->flash.data;
}

int sim_chip_load_flash(sim_chip *c, const char *path)
{
	return sim_flash_load(&c->flash, path);
}

int sim_chip_save_flash(const sim_chip *c, const char *path)
{
	return sim_flash_save(&c->flash, path);
}
